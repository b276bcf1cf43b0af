//! Models from generated safetensors files: the CPU and GPU backends against each other
//! and against f64 references written out with plain loops (so a mistake in the shared
//! generic forward pass cannot hide behind agreement between backends).

use super::weights::{write, Weights};
use super::*;
use crate::gpu::tests::gpu;
use crate::{ComputeError, Cpu};

/// Both backends' outputs for `input`.
fn both(host: &Model<Mat>, input: &Input) -> (Vec<Mat>, Vec<Mat>) {
    let cpu = host.upload(&Cpu).unwrap().forward(&Cpu, input).unwrap();
    let g = gpu();
    let on_gpu = host.upload(&g).unwrap().forward(&g, input).unwrap();
    (cpu, on_gpu)
}

/// Largest |got - want| over the largest |want|.
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            assert!(g.is_finite(), "non-finite output {g}");
            (f64::from(*g) - w).abs() / scale
        })
        .fold(0.0, f64::max)
}

fn to64(m: &Mat) -> Vec<f64> {
    m.data.iter().map(|v| f64::from(*v)).collect()
}

#[test]
fn a_hand_computed_mlp_gives_its_exact_outputs_on_both_backends() {
    // 2 -> 2 (ReLU) -> 1, PyTorch layout (out x in).
    let bytes = write(
        &[
            ("layers.0.weight", vec![2, 2], &[1.0, -1.0, 2.0, 0.0]),
            ("layers.0.bias", vec![2], &[0.0, -1.0]),
            ("layers.1.weight", vec![1, 2], &[1.0, 1.0]),
            ("layers.1.bias", vec![1], &[0.5]),
        ],
        &[],
    )
    .unwrap();
    let host = Model::from_bytes(&bytes).unwrap();
    let s = host.summary();
    assert_eq!(
        (s.kind, s.layers, s.inputs, s.outputs, s.parameters),
        ("mlp", 2, 2, 1, 9)
    );
    // [3, 1] -> relu([2, 5]) -> 7.5; [-1, 2] -> relu([-3, -3]) -> 0.5.
    let x = Input::Features(Mat::new(2, 2, vec![3.0, 1.0, -1.0, 2.0]).unwrap());
    let (cpu, on_gpu) = both(&host, &x);
    assert_eq!(cpu[0].data, vec![7.5, 0.5]);
    assert_eq!(on_gpu[0].data, vec![7.5, 0.5]);
}

/// f64 reference: x · Wᵀ + b per layer, the activation between layers.
fn mlp_reference(bytes: &[u8], x: &Mat, gelu: bool) -> Vec<f64> {
    let w = Weights::parse(bytes).unwrap();
    let mut h: Vec<Vec<f64>> = x
        .row_iter()
        .map(|r| r.iter().map(|v| f64::from(*v)).collect())
        .collect();
    let layers = (0..)
        .take_while(|i| w.has(&format!("layers.{i}.weight")))
        .count();
    for l in 0..layers {
        let wt = w.mat(&format!("layers.{l}.weight"), None).unwrap();
        let b = w.mat(&format!("layers.{l}.bias"), None).unwrap();
        h = h
            .iter()
            .map(|row| {
                (0..wt.rows)
                    .map(|o| {
                        let mut y = f64::from(b.data[o]);
                        for (i, v) in row.iter().enumerate() {
                            y += v * f64::from(wt.data[o * wt.cols + i]);
                        }
                        match (l + 1 == layers, gelu) {
                            (true, _) => y,
                            (false, true) => gelu64(y),
                            (false, false) => y.max(0.0),
                        }
                    })
                    .collect()
            })
            .collect();
    }
    h.concat()
}

fn gelu64(x: f64) -> f64 {
    0.5 * x * (1.0 + (0.797_884_560_802_865_4 * (x + 0.044_715 * x * x * x)).tanh())
}

/// Bound: 1e-5 of the largest output, both backends, against f64.
#[test]
fn a_random_mlp_matches_the_f64_reference_on_both_backends() {
    for (widths, act) in [(vec![37, 65, 19, 10], "relu"), (vec![5, 130, 3], "gelu")] {
        let bytes = example::mlp(&widths, act, 7).unwrap();
        let host = Model::from_bytes(&bytes).unwrap();
        let x = Mat::random(23, widths[0], 8);
        let want = mlp_reference(&bytes, &x, act == "gelu");
        let (cpu, on_gpu) = both(&host, &Input::Features(x));
        assert_eq!((cpu[0].rows, cpu[0].cols), (23, *widths.last().unwrap()));
        for (name, got) in [("cpu", &cpu[0]), ("gpu", &on_gpu[0])] {
            let e = rel_err(&got.data, &want);
            assert!(e < 1e-5, "{name} {widths:?}: {e}");
        }
    }
}

fn layernorm64(x: &[f64], g: &Mat, b: &Mat) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    x.iter()
        .enumerate()
        .map(|(j, v)| {
            (v - mean) / (var + 1e-5).sqrt() * f64::from(g.data[j]) + f64::from(b.data[j])
        })
        .collect()
}

/// `x · W + b` with W stored in × out (GPT-2's Conv1D).
fn conv1d(x: &[Vec<f64>], w: &Mat, b: &Mat) -> Vec<Vec<f64>> {
    x.iter()
        .map(|row| {
            (0..w.cols)
                .map(|o| {
                    f64::from(b.data[o])
                        + row
                            .iter()
                            .enumerate()
                            .map(|(i, v)| v * f64::from(w.data[i * w.cols + o]))
                            .sum::<f64>()
                })
                .collect()
        })
        .collect()
}

/// GPT-2's forward pass in f64, one sequence, straight from the tensor names.
fn gpt_reference(bytes: &[u8], tokens: &[u32], n_head: usize) -> Vec<f64> {
    let w = Weights::parse(bytes).unwrap();
    let m = |n: &str| w.mat(n, None).unwrap();
    let (wte, wpe) = (m("wte.weight"), m("wpe.weight"));
    let d = wte.cols;
    let dh = d / n_head;
    let mut x: Vec<Vec<f64>> = tokens
        .iter()
        .enumerate()
        .map(|(p, t)| {
            (0..d)
                .map(|j| f64::from(wte.data[*t as usize * d + j]) + f64::from(wpe.data[p * d + j]))
                .collect()
        })
        .collect();
    let t = tokens.len();
    let mut l = 0;
    while w.has(&format!("h.{l}.ln_1.weight")) {
        let p = |n: &str| m(&format!("h.{l}.{n}"));
        let h: Vec<Vec<f64>> = x
            .iter()
            .map(|r| layernorm64(r, &p("ln_1.weight"), &p("ln_1.bias")))
            .collect();
        let qkv = conv1d(&h, &p("attn.c_attn.weight"), &p("attn.c_attn.bias"));
        let mut att = vec![vec![0.0; d]; t];
        for hh in 0..n_head {
            for i in 0..t {
                let scores: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..dh)
                            .map(|c| qkv[i][hh * dh + c] * qkv[j][d + hh * dh + c])
                            .sum::<f64>()
                            / (dh as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for (j, s) in scores.iter().enumerate() {
                    let pj = (s - max).exp() / z;
                    for c in 0..dh {
                        att[i][hh * dh + c] += pj * qkv[j][2 * d + hh * dh + c];
                    }
                }
            }
        }
        let proj = conv1d(&att, &p("attn.c_proj.weight"), &p("attn.c_proj.bias"));
        for (xr, pr) in x.iter_mut().zip(&proj) {
            xr.iter_mut().zip(pr).for_each(|(a, b)| *a += b);
        }
        let h: Vec<Vec<f64>> = x
            .iter()
            .map(|r| layernorm64(r, &p("ln_2.weight"), &p("ln_2.bias")))
            .collect();
        let mut f = conv1d(&h, &p("mlp.c_fc.weight"), &p("mlp.c_fc.bias"));
        f.iter_mut().flatten().for_each(|v| *v = gelu64(*v));
        let f = conv1d(&f, &p("mlp.c_proj.weight"), &p("mlp.c_proj.bias"));
        for (xr, fr) in x.iter_mut().zip(&f) {
            xr.iter_mut().zip(fr).for_each(|(a, b)| *a += b);
        }
        l += 1;
    }
    x.iter()
        .flat_map(|r| {
            let h = layernorm64(r, &m("ln_f.weight"), &m("ln_f.bias"));
            (0..wte.rows)
                .map(|v| {
                    (0..d)
                        .map(|j| h[j] * f64::from(wte.data[v * d + j]))
                        .sum::<f64>()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Ragged batch (lengths 5, 16 = the full context, 1) through a 2-layer, 3-head model of
/// odd width 45: logits within 1e-4 of the largest, both backends, against f64; a
/// sequence batched gives what it gives alone.
#[test]
fn a_transformer_matches_the_f64_reference_on_both_backends() {
    let bytes = example::gpt(61, 45, 3, 16, 2, 3).unwrap();
    let host = Model::from_bytes(&bytes).unwrap();
    let s = host.summary();
    assert_eq!((s.kind, s.layers, s.inputs, s.outputs), ("gpt", 2, 45, 61));
    // wte + wpe + 2 blocks of (12 d^2 + 13 d) + ln_f.
    assert_eq!(
        s.parameters,
        61 * 45 + 16 * 45 + 2 * (12 * 45 * 45 + 13 * 45) + 2 * 45
    );
    let seqs: Vec<Vec<u32>> = vec![
        vec![1, 7, 60, 3, 3],
        (0..16).map(|i| (i * 13 % 61) as u32).collect(),
        vec![42],
    ];
    let (cpu, on_gpu) = both(&host, &Input::Tokens(seqs.clone()));
    for (i, seq) in seqs.iter().enumerate() {
        let want = gpt_reference(&bytes, seq, 3);
        for (name, got) in [("cpu", &cpu[i]), ("gpu", &on_gpu[i])] {
            assert_eq!((got.rows, got.cols), (seq.len(), 61));
            let e = rel_err(&got.data, &want);
            assert!(e < 1e-4, "{name} sequence {i}: {e}");
        }
    }
    let alone = both(&host, &Input::Tokens(vec![seqs[0].clone()]));
    assert!(rel_err(&alone.1[0].data, &to64(&on_gpu[0])) < 1e-6);
    assert!(rel_err(&alone.0[0].data, &to64(&cpu[0])) < 1e-6);
}

/// Changing a later token leaves every earlier position's logits unchanged.
#[test]
fn attention_is_causal() {
    let host = Model::from_bytes(&example::gpt(30, 32, 2, 8, 1, 9).unwrap()).unwrap();
    let g = gpu();
    let dev = host.upload(&g).unwrap();
    let a = dev
        .forward(&g, &Input::Tokens(vec![vec![1, 2, 3, 4, 5]]))
        .unwrap();
    let b = dev
        .forward(&g, &Input::Tokens(vec![vec![1, 2, 3, 4, 29]]))
        .unwrap();
    assert_eq!(a[0].data[..4 * 30], b[0].data[..4 * 30]);
    assert_ne!(a[0].data[4 * 30..], b[0].data[4 * 30..]);
}

#[test]
fn bad_inputs_and_bad_files_are_named_errors() {
    let host = Model::from_bytes(&example::gpt(30, 32, 2, 8, 1, 9).unwrap()).unwrap();
    let dev = host.upload(&Cpu).unwrap();
    for (seqs, want) in [
        (vec![vec![30]], "vocabulary"),
        (vec![vec![1; 9]], "1 to 8"),
        (vec![vec![]], "1 to 8"),
    ] {
        let e = dev
            .forward(&Cpu, &Input::Tokens(seqs))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
    assert!(dev
        .forward(&Cpu, &Input::Features(Mat::zeros(1, 32)))
        .is_err());
    let mlp = Model::from_bytes(&example::mlp(&[4, 3], "none", 1).unwrap()).unwrap();
    let e = mlp
        .upload(&Cpu)
        .unwrap()
        .forward(&Cpu, &Input::Features(Mat::zeros(2, 5)));
    assert!(e.unwrap_err().to_string().contains("takes 4 features"));

    let model_err = |bytes: &[u8]| match Model::from_bytes(bytes) {
        Err(ComputeError::Model(e)) => e,
        Err(other) => panic!("wrong error kind {other}"),
        Ok(_) => panic!("loaded a bad file"),
    };
    assert!(model_err(b"not a model").contains("not a safetensors file"));
    let chained = write(
        &[
            ("layers.0.weight", vec![3, 2], &[0.0; 6]),
            ("layers.1.weight", vec![1, 4], &[0.0; 4]),
        ],
        &[],
    )
    .unwrap();
    assert!(model_err(&chained).contains("previous layer gives 3"));
    let act = write(
        &[("0.weight", vec![1, 1], &[1.0])],
        &[("activation", "swish")],
    )
    .unwrap();
    assert!(model_err(&act).contains("swish"));
    assert!(model_err(&write(&[("x", vec![1], &[1.0])], &[]).unwrap()).contains("no layers"));
    let heads = example::gpt(30, 32, 3, 8, 1, 9);
    assert!(model_err(&heads.unwrap()).contains("do not divide"));
    // A GPT file missing one tensor names it.
    let full = example::gpt(30, 32, 2, 8, 1, 9).unwrap();
    let w = Weights::parse(&full).unwrap();
    let keep: Vec<(String, Mat, Vec<usize>)> = w
        .names()
        .into_iter()
        .filter(|n| n != "h.0.mlp.c_fc.bias")
        .map(|n| (n.clone(), w.mat(&n, None).unwrap(), w.shape(&n).unwrap()))
        .collect();
    let named: Vec<_> = keep
        .iter()
        .map(|(n, m, s)| (n.as_str(), s.clone(), m.data.as_slice()))
        .collect();
    assert!(model_err(&write(&named, &[("n_head", "2")]).unwrap()).contains("h.0.mlp.c_fc.bias"));
}

/// f16 and bf16 tensors load as f32 (a half-precision checkpoint runs as is).
#[test]
fn half_precision_tensors_load() {
    use safetensors::{tensor::TensorView, Dtype};
    let vals = [1.5f32, -0.25, 3.0];
    let f16: Vec<u8> = vals
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = vals
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    let bytes = safetensors::serialize(
        [
            ("a", TensorView::new(Dtype::F16, vec![3], &f16).unwrap()),
            (
                "b",
                TensorView::new(Dtype::BF16, vec![1, 3], &bf16).unwrap(),
            ),
        ],
        &None,
    )
    .unwrap();
    let w = Weights::parse(&bytes).unwrap();
    assert_eq!(w.mat("a", Some((1, 3))).unwrap().data, vals);
    assert_eq!(w.mat("b", None).unwrap().data, vals);
    assert!(w.mat("a", Some((3, 1))).is_err());
}

#[test]
fn inputs_parse_from_json_and_npy() {
    let f = Input::from_json("[[1, 2.5], [3, -4]]", false).unwrap();
    assert_eq!(
        f,
        Input::Features(Mat::new(2, 2, vec![1.0, 2.5, 3.0, -4.0]).unwrap())
    );
    assert_eq!(
        Input::from_json("[1, 2]", false).unwrap(),
        Input::Features(Mat::new(1, 2, vec![1.0, 2.0]).unwrap())
    );
    assert_eq!(
        Input::from_json("[[1, 2, 3], [4]]", true).unwrap(),
        Input::Tokens(vec![vec![1, 2, 3], vec![4]])
    );
    assert_eq!(
        Input::from_json("[7, 8]", true).unwrap(),
        Input::Tokens(vec![vec![7, 8]])
    );
    for (text, tokens, want) in [
        ("[[1, 2], [3]]", false, "differ in length"),
        ("[1.5]", true, "not a non-negative integer"),
        ("[-1]", true, "not a non-negative integer"),
        ("{\"a\": 1}", false, "expected an array"),
        ("[\"x\"]", false, "expected numbers"),
        ("[1,", false, "JSON input"),
    ] {
        let e = Input::from_json(text, tokens).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
    let npy = crate::npy::write_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(
        Input::from_npy(&npy, false).unwrap(),
        Input::Features(Mat::new(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap())
    );
    assert!(Input::from_npy(&npy, true)
        .unwrap_err()
        .to_string()
        .contains("integer array"));
    let ids = std::fs::read(format!(
        "{}/tests/data/tokens_i8.npy",
        crate::npy::tests::manifest_dir()
    ))
    .unwrap();
    assert_eq!(
        Input::from_npy(&ids, true).unwrap(),
        Input::Tokens(vec![vec![1, 2, 3, 60], vec![5, 4, 0, 9]])
    );
}

/// Last-position logits are exactly the last rows of the all-positions forward, on both
/// backends, for sequences of different lengths in one batch.
#[test]
fn last_position_logits_are_the_last_rows_of_the_full_forward() {
    let host = Model::from_bytes(&example::gpt(30, 32, 2, 8, 2, 4).unwrap()).unwrap();
    let input = Input::Tokens(vec![vec![1, 2, 3], vec![4, 5, 6, 7, 8], vec![9]]);
    let g = gpu();
    for (name, all, last) in [
        {
            let dev = host.upload(&Cpu).unwrap();
            (
                "cpu",
                dev.forward_positions(&Cpu, &input, Positions::All).unwrap(),
                dev.forward_positions(&Cpu, &input, Positions::Last)
                    .unwrap(),
            )
        },
        {
            let dev = host.upload(&g).unwrap();
            (
                "gpu",
                dev.forward_positions(&g, &input, Positions::All).unwrap(),
                dev.forward_positions(&g, &input, Positions::Last).unwrap(),
            )
        },
    ] {
        assert_eq!(last.len(), 3, "{name}");
        for (a, l) in all.iter().zip(&last) {
            assert_eq!((l.rows, l.cols), (1, 30), "{name}");
            let want = a.row_iter().last().unwrap();
            let got = l.row_iter().next().unwrap();
            let worst = got
                .iter()
                .zip(want)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "{name}: {worst}");
        }
    }
}

/// Half weights: the GPU stores the product weights as f16 and multiplies them with f32
/// activations; the CPU twin computes with the same weights rounded to f16. They agree to
/// 1e-4 of the largest logit (as the f32 models do); against the f32 model the difference
/// is the rounding, small but not zero. An f16 tensor where an f32 one is read is refused.
#[test]
fn half_weight_models_match_the_rounded_cpu_twin() {
    let g = gpu();
    assert!(
        g.has_f16(),
        "{} has no SHADER_F16: this test needs it (lavapipe has it)",
        g.info.name
    );
    let host = Model::from_bytes(&example::gpt(40, 32, 2, 16, 2, 6).unwrap()).unwrap();
    let input = Input::Tokens(vec![vec![1, 2, 3, 4, 5], vec![7, 39]]);
    let cpu = host
        .upload_half(&Cpu)
        .unwrap()
        .forward(&Cpu, &input)
        .unwrap();
    let gpu_half = host.upload_half(&g).unwrap().forward(&g, &input).unwrap();
    let full = host.upload(&Cpu).unwrap().forward(&Cpu, &input).unwrap();
    for ((h, c), f) in gpu_half.iter().zip(&cpu).zip(&full) {
        let e = rel_err(&h.data, &to64(c));
        assert!(e < 1e-4, "half weights, GPU vs rounded CPU twin: {e}");
        let d = rel_err(&h.data, &to64(f));
        assert!(
            d > 0.0 && d < 2e-2,
            "half vs f32 weights differ by the rounding only: {d}"
        );
    }
    let mlp = Model::from_bytes(&example::mlp(&[6, 9, 4], "gelu", 2).unwrap()).unwrap();
    let x = Input::Features(Mat::random(5, 6, 3));
    let a = mlp.upload_half(&g).unwrap().forward(&g, &x).unwrap();
    let b = mlp.upload_half(&Cpu).unwrap().forward(&Cpu, &x).unwrap();
    assert!(rel_err(&a[0].data, &to64(&b[0])) < 1e-5);
    let w = g.upload_half(&Mat::random(3, 3, 1)).unwrap();
    let y = g.upload(&Mat::random(3, 3, 2)).unwrap();
    assert!(matches!(g.add(&w, &y), Err(ComputeError::Unsupported(_))));
    assert!(matches!(
        g.gemm_into(
            &w,
            &y,
            &mut g.alloc(3, 3).unwrap(),
            &crate::Gemm::dense(3, 3, 3)
        ),
        Err(ComputeError::Unsupported(_))
    ));
    assert_eq!(
        g.download_one(&w).unwrap().rows,
        3,
        "half tensors read back as f32"
    );
}

/// Tensor cores for a whole model: every product (linear layers, attention, the LM head)
/// takes its inputs rounded to f16 and accumulates in f32; the twin is the CPU doing the
/// same ([`crate::CpuF16Products`]), with f32 or f16 weights. Rounding to f16 is
/// discontinuous, so an activation the two sides compute a few f32 ulps apart can round to
/// neighbouring halves (2^-11 apart): the bound is 2e-3 of the largest logit, not the 1e-4
/// of the f32 models. Against the f32 model the difference is the rounding, small but not
/// zero. Without cooperative matrices the mode is refused (and AGORA_REQUIRE_COOP, set by
/// `scripts/lavapipe-coop test`, fails the test instead of skipping it).
#[test]
fn tensor_core_models_match_the_f16_products_twin() {
    use crate::CpuF16Products;
    let Some(g) = crate::gpu::coop::tests::coop_gpu() else {
        return;
    };
    let host = Model::from_bytes(&example::gpt(40, 32, 2, 16, 2, 6).unwrap()).unwrap();
    let input = Input::Tokens(vec![
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        vec![7, 39],
    ]);
    let full = host.upload(&Cpu).unwrap().forward(&Cpu, &input).unwrap();
    g.set_tensor_cores(true).unwrap();
    for half in [false, true] {
        let (on_gpu, twin) = if half {
            (host.upload_half(&g), host.upload_half(&CpuF16Products))
        } else {
            (host.upload(&g), host.upload(&CpuF16Products))
        };
        let got = on_gpu.unwrap().forward(&g, &input).unwrap();
        let want = twin.unwrap().forward(&CpuF16Products, &input).unwrap();
        for ((h, c), f) in got.iter().zip(&want).zip(&full) {
            let e = rel_err(&h.data, &to64(c));
            assert!(
                e < 2e-3,
                "f16 weights {half}: GPU tensor cores vs twin: {e}"
            );
            let d = rel_err(&h.data, &to64(f));
            assert!(
                d > 0.0 && d < 2e-2,
                "f16 weights {half}: tensor cores vs the f32 model: {d}"
            );
        }
    }
    let mlp = Model::from_bytes(&example::mlp(&[6, 9, 4], "gelu", 2).unwrap()).unwrap();
    let x = Input::Features(Mat::random(5, 6, 3));
    let a = mlp.upload(&g).unwrap().forward(&g, &x).unwrap();
    let b = mlp
        .upload(&CpuF16Products)
        .unwrap()
        .forward(&CpuF16Products, &x)
        .unwrap();
    assert!(rel_err(&a[0].data, &to64(&b[0])) < 2e-3);
    // Off again: the f32 kernels, and the f32 model's results.
    g.set_tensor_cores(false).unwrap();
    let back = host.upload(&g).unwrap().forward(&g, &input).unwrap();
    assert!(rel_err(&back[0].data, &to64(&full[0])) < 1e-4);
}
