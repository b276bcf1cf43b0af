//! GPU kernels against the CPU twin on a real wgpu adapter. In CI that is lavapipe
//! (software Vulkan, installed by `scripts/install-deps`): with no adapter these tests
//! fail, they never skip. Sizes are odd on purpose (not multiples of the 64x64 gemm tile
//! or the 64-wide row groups); each test states its error bound.

use super::*;
use crate::{cpu, Cpu, View};

/// The adapter `AGORA_DEVICE` names, else the default; panics (fails the test) with none.
pub(crate) fn gpu() -> Gpu {
    Gpu::open(std::env::var("AGORA_DEVICE").ok().as_deref())
        .unwrap_or_else(|e| panic!("GPU tests need a wgpu adapter (lavapipe in CI): {e}"))
}

/// Largest |gpu - cpu| relative to the largest |cpu| value (at least 1e-30).
pub(crate) fn rel_err(gpu: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(gpu.len(), cpu.len());
    let scale = cpu.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
    gpu.iter()
        .zip(cpu)
        .map(|(g, c)| {
            assert!(g.is_finite(), "unwritten or non-finite output {g}");
            (g - c).abs() / scale
        })
        .fold(0.0, f32::max)
}

pub(crate) fn max_abs_err(gpu: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(gpu.len(), cpu.len());
    gpu.iter()
        .zip(cpu)
        .map(|(g, c)| {
            assert!(g.is_finite(), "unwritten or non-finite output {g}");
            (g - c).abs()
        })
        .fold(0.0, f32::max)
}

fn down(g: &Gpu, t: &GpuMat) -> Mat {
    g.download_one(t).unwrap()
}

/// `a · b` on the GPU against the CPU twin: the relative error (the shape checked).
fn matmul_err(g: &Gpu, a: &Mat, b: &Mat) -> f32 {
    let want = cpu::matmul(a, b).unwrap();
    let got = down(
        g,
        &g.matmul(&g.upload(a).unwrap(), &g.upload(b).unwrap())
            .unwrap(),
    );
    assert_eq!((got.rows, got.cols), (a.rows, b.cols));
    rel_err(&got.data, &want.data)
}

/// The model's own attention products on `t` tokens of `heads` heads of width `dh` (scores
/// = Q_h · K_h^T / sqrt(dh) out of one QKV matrix, then each head's P · V_h in its own
/// columns), on the GPU against the CPU twin: each spec with its relative error.
fn attention_errs(g: &Gpu, t: usize, dh: usize, heads: usize, seed: u64) -> Vec<(Gemm, f32)> {
    let d = dh * heads;
    let qkv = Mat::random(t, 3 * d, seed);
    let p = Mat::random(heads * t, t, seed + 1);
    let (scores, mix) = crate::model::gpt::attention_gemms(0, t, d, heads);
    let (gq, gp) = (g.upload(&qkv).unwrap(), g.upload(&p).unwrap());
    [(scores, &qkv, &gq, heads * t, t), (mix, &p, &gp, t, d)]
        .into_iter()
        .map(|(spec, a, ga, rows, cols)| {
            let mut want = Cpu.alloc(rows, cols).unwrap();
            cpu::gemm(&spec, &a.data, &qkv.data, &mut want.data).unwrap();
            let mut got = g.alloc(rows, cols).unwrap();
            g.gemm_into(ga, &gq, &mut got, &spec).unwrap();
            (spec, rel_err(&down(g, &got).data, &want.data))
        })
        .collect()
}

#[test]
fn adapters_are_found_and_described() {
    let all = enumerate();
    assert!(!all.is_empty(), "no wgpu adapter at all");
    for a in &all {
        assert!(
            !a.name.is_empty() && a.max_storage_buffer_binding_size > 0,
            "{a:?}"
        );
    }
    assert!(matches!(
        Gpu::open(Some("no-such-adapter-anywhere")),
        Err(ComputeError::NoAdapter(_))
    ));
}

#[test]
fn grids_fold_into_two_dimensions_within_the_limit() {
    assert_eq!(grid(0, 65_535).unwrap(), [1, 1, 1]);
    assert_eq!(grid(10, 65_535).unwrap(), [10, 1, 1]);
    assert_eq!(grid(70_000, 65_535).unwrap(), [65_535, 2, 1]);
    assert_eq!(grid(7, 3).unwrap(), [3, 3, 1]);
    assert!(grid(10, 3).is_err());
}

#[test]
fn buffer_classes_never_pass_the_adapter_limit() {
    assert_eq!(size_class(0, 1 << 30), 16);
    assert_eq!(size_class(100, 1 << 30), 128);
    assert_eq!(size_class(1 << 20, 1 << 30), 1 << 20);
    // 3 GiB on an adapter whose largest buffer is 4 GiB - 1: not rounded to 4 GiB.
    let max = (1u64 << 32) - 1;
    assert_eq!(size_class(3 << 30, max), 3 << 30);
    assert_eq!(size_class((3 << 30) + 1, max), (3 << 30) + 4);
}

/// Bound: 1e-5 of the largest output (f32 sums of k <= 300 terms in another order).
#[test]
fn matmul_matches_the_cpu_twin_on_odd_sizes() {
    let g = gpu();
    for (m, k, n) in [
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 9),
        (65, 130, 31),
        (100, 300, 129),
        (1, 257, 70),
    ] {
        let e = matmul_err(&g, &Mat::random(m, k, 11), &Mat::random(k, n, 12));
        assert!(e < 1e-5, "{m}x{k}x{n}: relative error {e}");
    }
    // Pooled buffers come back dirty: a smaller call into the same size classes is exact.
    let a = Mat::random(2, 3, 1);
    let b = Mat::random(3, 2, 2);
    let got = crate::Backend::Gpu(Box::new(gpu())).matmul(&a, &b).unwrap();
    assert!(rel_err(&got.data, &cpu::matmul(&a, &b).unwrap().data) < 1e-6);
    let (x, y) = (
        g.upload(&Mat::zeros(2, 3)).unwrap(),
        g.upload(&Mat::zeros(4, 2)).unwrap(),
    );
    assert!(matches!(g.matmul(&x, &y), Err(ComputeError::Shape(_))));
}

/// The strided, batched, transposed and scaled forms attention uses, and the poison:
/// elements outside the C view stay NaN on both backends. Bound as for matmul.
#[test]
fn strided_batched_gemm_matches_the_cpu_twin() {
    let g = gpu();
    // Three heads of width 7 inside a 13 x 3*21 QKV matrix.
    for (spec, e) in attention_errs(&g, 13, 7, 3, 21) {
        assert!(e < 1e-5, "{spec:?}: relative error {e}");
    }
    // Only the first 5 columns of a 9 x 8 output are written: the rest stay poisoned.
    let a = Mat::random(9, 4, 3);
    let b = Mat::random(4, 5, 4);
    let mut part = Gemm::dense(9, 4, 5);
    part.c = View::dense(9, 8);
    let mut got = g.alloc(9, 8).unwrap();
    g.gemm_into(
        &g.upload(&a).unwrap(),
        &g.upload(&b).unwrap(),
        &mut got,
        &part,
    )
    .unwrap();
    let got = down(&g, &got);
    let mut want = Cpu.alloc(9, 8).unwrap();
    cpu::gemm(&part, &a.data, &b.data, &mut want.data).unwrap();
    for (i, (x, y)) in got.data.iter().zip(&want.data).enumerate() {
        if i % 8 < 5 {
            assert!((x - y).abs() < 1e-5, "element {i}: {x} vs {y}");
        } else {
            assert!(x.is_nan() && y.is_nan(), "element {i} should be unwritten");
        }
    }
    // A view reaching past its buffer is a shape error on both backends, not a fault.
    let mut bad = Gemm::dense(9, 4, 5);
    bad.b.offset = 1;
    let mut c = g.alloc(9, 5).unwrap();
    let (ga, gb) = (g.upload(&a).unwrap(), g.upload(&b).unwrap());
    assert!(matches!(
        g.gemm_into(&ga, &gb, &mut c, &bad),
        Err(ComputeError::Shape(_))
    ));
    assert!(cpu::gemm(&bad, &a.data, &b.data, &mut [0.0; 45]).is_err());
}

/// f16 storage, f32 accumulation, against the CPU product of the same f16-rounded inputs:
/// bound 1e-5 of the largest output. Against the f32 product the difference is the
/// inputs' rounding (about 2^-11 relative per element), checked below 2e-3.
#[test]
fn f16_matmul_matches_the_rounded_cpu_twin() {
    let g = gpu();
    if !g.info.shader_f16 {
        assert!(matches!(
            g.matmul_f16(&Mat::zeros(1, 1), &Mat::zeros(1, 1)),
            Err(ComputeError::Unsupported(_))
        ));
        return;
    }
    for (m, k, n) in [(1, 1, 1), (5, 3, 7), (67, 129, 33), (3, 200, 1)] {
        let a = Mat::random(m, k, 31);
        let b = Mat::random(k, n, 32);
        let got = g.matmul_f16(&a, &b).unwrap();
        let e = rel_err(&got.data, &cpu::matmul_f16(&a, &b).unwrap().data);
        assert!(
            e < 1e-5,
            "{m}x{k}x{n}: relative error {e} against the f16 twin"
        );
        let e32 = rel_err(&got.data, &cpu::matmul(&a, &b).unwrap().data);
        assert!(e32 < 2e-3, "{m}x{k}x{n}: {e32} against f32");
    }
}

/// Bounds: ReLU and plain bias exact to 1e-6; GELU 1e-5 (GPU tanh); add exact.
#[test]
fn bias_activation_and_add_match_the_cpu_twin() {
    let g = gpu();
    for (rows, cols) in [(1, 1), (7, 13), (33, 257), (300, 5)] {
        let x = Mat::random(rows, cols, 41);
        let mut x4 = x.clone();
        x4.data.iter_mut().for_each(|v| *v *= 4.0); // GELU's interesting range
        let bias = Mat::random(1, cols, 42);
        let (gx, gb) = (g.upload(&x4).unwrap(), g.upload(&bias).unwrap());
        for (act, bound) in [
            (Activation::None, 1e-6),
            (Activation::Relu, 1e-6),
            (Activation::Gelu, 1e-5),
        ] {
            let got = down(&g, &g.bias_act(&gx, &gb, act).unwrap());
            let want = Cpu.bias_act(&x4, &bias, act).unwrap();
            let e = max_abs_err(&got.data, &want.data);
            assert!(e < bound, "{act:?} {rows}x{cols}: {e}");
        }
        let y = Mat::random(rows, cols, 43);
        let got = down(
            &g,
            &g.add(&g.upload(&x).unwrap(), &g.upload(&y).unwrap())
                .unwrap(),
        );
        assert_eq!(got, cpu::add(&x, &y).unwrap());
    }
    let (x, b) = (
        g.upload(&Mat::zeros(2, 3)).unwrap(),
        g.upload(&Mat::zeros(1, 4)).unwrap(),
    );
    assert!(g.bias_act(&x, &b, Activation::Relu).is_err());
    assert!(g.add(&x, &b).is_err());
}

/// Bounds: probabilities within 1e-6 absolute; masked entries exactly 0; layernorm
/// outputs (O(1) after normalising, gamma, beta in [-1, 1)) within 1e-5 absolute.
#[test]
fn softmax_and_layernorm_match_the_cpu_twin() {
    let g = gpu();
    for (rows, cols) in [(1, 1), (5, 3), (13, 63), (9, 65), (40, 1000)] {
        let mut x = Mat::random(rows, cols, 51);
        x.data.iter_mut().for_each(|v| *v *= 8.0);
        let gx = g.upload(&x).unwrap();
        for (scale, causal) in [(1.0, None), (0.3, None), (0.5, Some(cols)), (1.0, Some(3))] {
            let got = down(&g, &g.softmax(&gx, scale, causal).unwrap());
            let want = cpu::softmax(&x, scale, causal).unwrap();
            let e = max_abs_err(&got.data, &want.data);
            assert!(e < 1e-6, "softmax {rows}x{cols} {scale} {causal:?}: {e}");
            for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
                assert_eq!(*a == 0.0, *b == 0.0, "mask differs at {i}");
            }
        }
        let gamma = Mat::random(1, cols, 52);
        let beta = Mat::random(1, cols, 53);
        let (gg, gb) = (g.upload(&gamma).unwrap(), g.upload(&beta).unwrap());
        let got = down(&g, &g.layernorm(&gx, &gg, &gb, 1e-5).unwrap());
        let want = Cpu.layernorm(&x, &gamma, &beta, 1e-5).unwrap();
        let e = max_abs_err(&got.data, &want.data);
        assert!(e < 1e-5, "layernorm {rows}x{cols}: {e}");
    }
    let x = g.upload(&Mat::zeros(2, 3)).unwrap();
    assert!(g.softmax(&x, 1.0, Some(0)).is_err());
}

/// Bounds: sums within 1e-5 of the row's sum of |x|; max and argmax exact; cosine within
/// 1e-5; cross-entropy within 1e-5 of its value.
#[test]
fn reductions_cosine_and_cross_entropy_match_the_cpu_twin() {
    let g = gpu();
    for (rows, cols) in [(1, 1), (3, 2), (17, 64), (31, 65), (8, 3001)] {
        let x = Mat::random(rows, cols, 61);
        let gx = g.upload(&x).unwrap();
        let sums = g.row_sum(&gx).unwrap();
        for ((s, want), row) in sums.iter().zip(cpu::row_sum(&x)).zip(x.row_iter()) {
            let mass: f32 = row.iter().map(|v| v.abs()).sum();
            assert!((s - want).abs() <= 1e-5 * mass, "sum {s} vs {want}");
        }
        assert_eq!(g.row_max(&gx).unwrap(), cpu::row_max(&x));
        assert_eq!(g.row_argmax(&gx).unwrap(), cpu::row_argmax(&x));
        let y = Mat::random(rows, cols, 62);
        let gy = g.upload(&y).unwrap();
        let e = max_abs_err(&g.cosine(&gx, &gy).unwrap(), &cpu::cosine(&x, &y).unwrap());
        assert!(e < 1e-5, "cosine {rows}x{cols}: {e}");
        let targets: Vec<u32> = (0..rows).map(|i| ((i * 7) % cols) as u32).collect();
        let got = g.cross_entropy(&gx, &targets).unwrap();
        let want = cpu::cross_entropy(&x, &targets).unwrap();
        assert!(rel_err(&got, &want) < 1e-5, "{got:?} vs {want:?}");
    }
    // Ties go to the first index, as on the CPU; an all-zero row has cosine 0.
    let tied = Mat::new(2, 70, (0..140).map(|i| (i % 3 == 2) as u8 as f32).collect()).unwrap();
    let gt = g.upload(&tied).unwrap();
    assert_eq!(g.row_argmax(&gt).unwrap(), cpu::row_argmax(&tied));
    let zero = g.upload(&Mat::zeros(2, 70)).unwrap();
    assert_eq!(g.cosine(&zero, &gt).unwrap(), vec![0.0, 0.0]);
    assert!(matches!(
        g.cross_entropy(&gt, &[0, 70]),
        Err(ComputeError::Shape(_))
    ));
}

/// Kahan-compensated f32 matvec: within 1e-6 of |M|·|v| per row against f64, including
/// a row of one 1.0 and 20,000 values of 3e-8, each below half an ulp of 1.0: a plain
/// running sum drops every one of them (an error of ~9e-6 of the row's mass).
#[test]
fn matvec_is_compensated() {
    let g = gpu();
    let cols = 20_001;
    let mut m = Mat::random(33, cols, 71);
    m.data
        .extend((0..cols).map(|j| if j == 0 { 1.0 } else { 3e-8 }));
    m.rows += 1;
    let mut v = Mat::random(cols, 1, 72);
    let last = m.rows - 1;
    let got = down(
        &g,
        &g.matvec(&g.upload(&m).unwrap(), &g.upload(&v).unwrap(), false)
            .unwrap(),
    );
    v.data.iter_mut().for_each(|x| *x = 1.0);
    let ones = down(
        &g,
        &g.matvec(&g.upload(&m).unwrap(), &g.upload(&v).unwrap(), true)
            .unwrap(),
    );
    let ones_exact = 1.0 + 3e-8f64 * (cols - 1) as f64;
    let err = (f64::from(ones.data[last]) - ones_exact).abs();
    assert!(err <= 1e-6 * ones_exact, "small terms lost: error {err}");
    let v = Mat::random(cols, 1, 72);
    for (i, row) in m.row_iter().enumerate() {
        let exact: f64 = row
            .iter()
            .zip(&v.data)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let mass: f64 = row
            .iter()
            .zip(&v.data)
            .map(|(a, b)| f64::from((a * b).abs()))
            .sum();
        let err = (f64::from(got.data[i]) - exact).abs();
        assert!(err <= 1e-6 * mass, "row {i}: error {err} of mass {mass}");
    }
}

/// Freivalds on the GPU reaches the CPU check's verdicts: honest products pass (worst
/// ratio well under 1), one element off by ~1% of a typical entry fails.
#[test]
fn freivalds_on_the_gpu_agrees_with_the_cpu_check() {
    use crate::freivalds::{check, check_gpu, DEFAULT_TOLERANCE};
    let g = gpu();
    let a = Mat::random(129, 200, 5);
    let b = Mat::random(200, 77, 6);
    let c = cpu::matmul(&a, &b).unwrap();
    let (ga, gb) = (g.upload(&a).unwrap(), g.upload(&b).unwrap());
    let v = check_gpu(
        &g,
        &ga,
        &gb,
        &g.upload(&c).unwrap(),
        8,
        42,
        DEFAULT_TOLERANCE,
    )
    .unwrap();
    assert!(v.accepted && v.worst_ratio < 0.05, "{v:?}");
    // The GPU's own product passes the GPU check.
    let gc = g.matmul(&ga, &gb).unwrap();
    assert!(
        check_gpu(&g, &ga, &gb, &gc, 4, 1, DEFAULT_TOLERANCE)
            .unwrap()
            .accepted
    );
    for (i, delta) in [(0usize, 0.05f32), (129 * 77 - 1, -0.05), (5_000, 1.0)] {
        let mut bad = c.clone();
        bad.data[i] += delta;
        let on_gpu = check_gpu(
            &g,
            &ga,
            &gb,
            &g.upload(&bad).unwrap(),
            8,
            7,
            DEFAULT_TOLERANCE,
        )
        .unwrap();
        let on_cpu = check(&a, &b, &bad, 8, 7, DEFAULT_TOLERANCE).unwrap();
        assert!(
            !on_gpu.accepted && !on_cpu.accepted,
            "{i}: {on_gpu:?} {on_cpu:?}"
        );
    }
    let wrong = g.upload(&Mat::zeros(3, 3)).unwrap();
    assert!(check_gpu(&g, &ga, &gb, &wrong, 1, 0, 1e-4).is_err());
}

/// Every tiling the adapter can run gives the CPU twin's products: odd sizes, ragged
/// edges against every tile size, the transposed, strided and batched attention forms,
/// and f16 storage where present. Bound 1e-5 relative, as for the default.
#[test]
fn every_gemm_variant_matches_the_cpu_twin() {
    let mut g = gpu();
    let variants = tune::fitting(&g.info);
    assert!(!variants.is_empty());
    eprintln!(
        "{}: {} of {} tilings fit ({} bytes of workgroup memory)",
        g.info.name,
        variants.len(),
        tune::GEMM_VARIANTS.len(),
        g.info.max_compute_workgroup_storage_size
    );
    for v in variants {
        g.set_gemm_variant(v).unwrap();
        assert_eq!(g.gemm_variant().0, v);
        for (m, k, n) in [
            (1, 1, 1),
            (3, 5, 7),
            (65, 130, 31),
            (129, 17, 257),
            (200, 9, 130),
        ] {
            let a = Mat::random(m, k, 11);
            let b = Mat::random(k, n, 12);
            let e = matmul_err(&g, &a, &b);
            assert!(e < 1e-5, "{}: {m}x{k}x{n}: relative error {e}", v.name);
            if g.has_f16() {
                let got = g.matmul_f16(&a, &b).unwrap();
                let round = |x: &Mat| {
                    let data = x
                        .data
                        .iter()
                        .map(|v| half::f16::from_f32(*v).to_f32())
                        .collect();
                    Mat::new(x.rows, x.cols, data).unwrap()
                };
                let want = cpu::matmul(&round(&a), &round(&b)).unwrap();
                let e = rel_err(&got.data, &want.data);
                assert!(e < 1e-5, "{} f16: {m}x{k}x{n}: relative error {e}", v.name);
            }
        }
        for (spec, e) in attention_errs(&g, 13, 7, 3, 21) {
            assert!(e < 1e-5, "{} {spec:?}: relative error {e}", v.name);
        }
    }
    let too_big = tune::GemmVariant {
        name: "too-big",
        wgx: 16,
        wgy: 16,
        rm: 64,
        rn: 64,
        tk: 64,
    };
    assert!(matches!(
        g.set_gemm_variant(too_big),
        Err(ComputeError::Unsupported(_))
    ));
}

/// The tune times every fitting tiling and picks the fastest; its record round-trips
/// through the cache file, keyed by adapter and driver; an unknown forced name is refused.
#[test]
fn the_gemm_tune_picks_a_fitting_variant_and_caches_it() {
    let g = gpu();
    let record = g.tune_gemm(96).unwrap();
    let fit: Vec<&str> = tune::fitting(&g.info).iter().map(|v| v.name).collect();
    assert_eq!(record.gflops.len(), fit.len(), "{record:?}");
    assert!(fit.contains(&record.variant.as_str()));
    let best = record
        .gflops
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    assert_eq!(best.0, &record.variant);
    assert!(record.gflops.values().all(|r| *r > 0.0));
    let dir = tempfile_dir();
    let path = dir.join("gemm-tune.json");
    let key = tune::adapter_key(&g.info);
    assert!(key.contains(&g.info.name));
    tune::write_cache(&path, &key, &record).unwrap();
    tune::write_cache(&path, "another adapter", &record).unwrap();
    let back = tune::read_cache(&path);
    let got = back.get(&key).unwrap();
    assert_eq!((&got.variant, got.size), (&record.variant, record.size));
    for (name, rate) in &record.gflops {
        assert!((got.gflops[name] - rate).abs() <= 1e-9 * rate, "{name}");
    }
    assert_eq!(back.len(), 2);
    assert!(tune::by_name("no-such-tiling").is_err());
    // Tensor-core tilings are timed with the portable ones where the adapter has them.
    match g.coop() {
        Ok((shape, _)) => {
            let fit = coop::fitting(&g.info, shape);
            assert_eq!(record.coop_gflops.len(), fit.len(), "{record:?}");
            let chosen = coop::by_name(record.coop.as_deref().unwrap()).unwrap();
            assert!(fit.contains(&chosen));
            assert_eq!(got.coop, record.coop);
        }
        Err(_) => assert!(record.coop.is_none() && record.coop_gflops.is_empty()),
    }
    // A record written before tensor cores existed still reads (with none), so an adapter
    // that has them is tuned again rather than left without.
    let old: tune::TuneRecord =
        serde_json::from_str(r#"{"variant": "64x64-r4-k8", "size": 96, "gflops": {}}"#).unwrap();
    assert!(old.coop.is_none() && old.coop_gflops.is_empty());
    assert!(coop::by_name("no-such-tiling").is_err());
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agora-tune-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The fused linear layer (gemm with a bias and activation epilogue) against the CPU
/// twin's product then bias_act, for every tiling and activation; bound 1e-5 relative.
/// Shape errors are refused as for the separate kernels.
#[test]
fn fused_linear_matches_the_cpu_twin() {
    let mut g = gpu();
    for v in tune::fitting(&g.info) {
        g.set_gemm_variant(v).unwrap();
        for (m, k, n) in [(1, 1, 1), (7, 33, 65), (130, 70, 129)] {
            let x = Mat::random(m, k, 31);
            let w = Mat::random(k, n, 32);
            let b = Mat::random(1, n, 33);
            // With the residual connection fused in too.
            let res = Mat::random(m, n, 34);
            let want = Cpu.linear_residual(&x, &w, &b, &res).unwrap();
            let (gx, gw, gb, gr) = (
                g.upload(&x).unwrap(),
                g.upload(&w).unwrap(),
                g.upload(&b).unwrap(),
                g.upload(&res).unwrap(),
            );
            let got = down(&g, &g.linear_residual(&gx, &gw, &gb, &gr).unwrap());
            let e = rel_err(&got.data, &want.data);
            assert!(
                e < 1e-5,
                "{} residual {m}x{k}x{n}: relative error {e}",
                v.name
            );
            for act in [Activation::None, Activation::Relu, Activation::Gelu] {
                let want = Cpu.linear(&x, &w, &b, act).unwrap();
                let (gx, gw, gb) = (
                    g.upload(&x).unwrap(),
                    g.upload(&w).unwrap(),
                    g.upload(&b).unwrap(),
                );
                let got = down(&g, &g.linear(&gx, &gw, &gb, act).unwrap());
                let e = rel_err(&got.data, &want.data);
                assert!(
                    e < 1e-5,
                    "{} {act:?} {m}x{k}x{n}: relative error {e}",
                    v.name
                );
            }
        }
    }
    let (x, w) = (
        g.upload(&Mat::zeros(2, 3)).unwrap(),
        g.upload(&Mat::zeros(3, 4)).unwrap(),
    );
    let short_bias = g.upload(&Mat::zeros(1, 3)).unwrap();
    assert!(matches!(
        g.linear(&x, &w, &short_bias, Activation::None),
        Err(ComputeError::Shape(_))
    ));
    assert!(matches!(
        g.linear(&x, &x, &short_bias, Activation::None),
        Err(ComputeError::Shape(_))
    ));
    let bias = g.upload(&Mat::zeros(1, 4)).unwrap();
    let wrong_residual = g.upload(&Mat::zeros(2, 3)).unwrap();
    assert!(matches!(
        g.linear_residual(&x, &w, &bias, &wrong_residual),
        Err(ComputeError::Shape(_))
    ));
}

/// The vec4 loads (shapes aligned to 4 elements) against the CPU twin for every tiling:
/// dense products with ragged tile edges, the transposed and strided attention forms with
/// aligned heads, and fused linear layers; `aligned_to` says which shapes take them.
#[test]
fn vec4_gemm_matches_the_cpu_twin_on_aligned_shapes() {
    let dense = |m, k, n| Gemm::dense(m, k, n);
    assert!(aligned_to(&dense(4, 8, 12), 4));
    assert!(!aligned_to(&dense(4, 6, 12), 4), "k not a multiple of 4");
    assert!(!aligned_to(&dense(4, 8, 10), 4), "n not a multiple of 4");
    let mut t = dense(4, 8, 10);
    t.trans_b = true;
    t.b = View::dense(10, 8);
    assert!(aligned_to(&t, 4), "transposed B: only k matters");
    let mut off = dense(4, 8, 12);
    off.a.offset = 2;
    assert!(!aligned_to(&off, 4));
    // The tensor-core kernel's 8-half loads.
    assert!(aligned_to(&dense(4, 8, 16), 8));
    assert!(!aligned_to(&dense(4, 8, 12), 8), "n a multiple of 4, not 8");
    off.a.offset = 4;
    assert!(aligned_to(&off, 4) && !aligned_to(&off, 8));

    let mut g = gpu();
    let (t, dh, heads) = (12, 8, 3);
    let (scores, mix) = crate::model::gpt::attention_gemms(0, t, dh * heads, heads);
    assert!(
        aligned_to(&scores, 4) && aligned_to(&mix, 4),
        "t = 12, dh = 8: both attention products aligned"
    );
    for v in tune::fitting(&g.info) {
        g.set_gemm_variant(v).unwrap();
        for (m, k, n) in [(4, 4, 4), (132, 68, 260), (64, 128, 64), (3, 8, 4)] {
            let a = Mat::random(m, k, 43);
            let b = Mat::random(k, n, 44);
            let e = matmul_err(&g, &a, &b);
            assert!(e < 1e-5, "{} vec4 {m}x{k}x{n}: relative error {e}", v.name);
            let bias = Mat::random(1, n, 45);
            let res = Mat::random(m, n, 46);
            let want = Cpu.linear_residual(&a, &b, &bias, &res).unwrap();
            let got = g
                .linear_residual(
                    &g.upload(&a).unwrap(),
                    &g.upload(&b).unwrap(),
                    &g.upload(&bias).unwrap(),
                    &g.upload(&res).unwrap(),
                )
                .unwrap();
            let e = rel_err(&down(&g, &got).data, &want.data);
            assert!(
                e < 1e-5,
                "{} vec4 residual {m}x{k}x{n}: relative error {e}",
                v.name
            );
            let want = Cpu.linear(&a, &b, &bias, Activation::Gelu).unwrap();
            let (ga, gb, gbias) = (
                g.upload(&a).unwrap(),
                g.upload(&b).unwrap(),
                g.upload(&bias).unwrap(),
            );
            let got = down(&g, &g.linear(&ga, &gb, &gbias, Activation::Gelu).unwrap());
            let e = rel_err(&got.data, &want.data);
            assert!(
                e < 1e-5,
                "{} vec4 linear {m}x{k}x{n}: relative error {e}",
                v.name
            );
        }
        for (spec, e) in attention_errs(&g, t, dh, heads, 41) {
            assert!(e < 1e-5, "{} {spec:?}: relative error {e}", v.name);
        }
    }
}

/// A kernel the device refuses (here, WGSL that does not parse) is an error from
/// `scoped`, not a panic from wgpu's default handler: how a driver refusing the
/// experimental tensor-core kernel falls back to the portable gemm.
#[test]
fn kernels_the_device_refuses_are_errors_not_panics() {
    let g = gpu();
    let err = scoped(&g.device, || {
        Kernel::gemm(&g.device, "broken", "fn main( {", "main")
    })
    .err()
    .expect("a broken kernel compiled");
    assert!(!err.is_empty());
    let ok = scoped(&g.device, || {
        Kernel::new(&g.device, "fill", include_str!("fill.wgsl"), "main")
    });
    assert!(ok.is_ok(), "{:?}", ok.err());
    // The device still works afterwards.
    assert!(matmul_err(&g, &Mat::random(3, 4, 1), &Mat::random(4, 2, 2)) < 1e-5);
}
