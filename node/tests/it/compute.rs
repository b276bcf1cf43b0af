use serde_json::Value;

use crate::harness::*;

fn logits(v: &Value, seq: usize) -> Vec<f64> {
    v["sequences"][seq]["last_logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// An executable `python` in `dir` that is the shell script `body`: a stand-in for the
/// interpreter `compute bench --pytorch` starts.
fn stand_in_python(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let python = dir.join("python");
    std::fs::write(&python, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    python
}

/// The largest |a - b|, and the largest |b| (the scale it is measured against).
fn max_diff(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    (worst, b.iter().fold(0.0, |m, x| m.max(x.abs())))
}

/// `example-model` then `run` on the GPU (lavapipe in CI) and the CPU: the same logits
/// within 1e-4 of the largest, the same next tokens, every output in the `--out` file.
#[test]
fn compute_run_gives_the_same_outputs_on_gpu_and_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("gpt.safetensors");
    let m = model.to_str().unwrap();
    let made = cli_json(dir.path(), &["compute", "example-model", "gpt", "--out", m]);
    assert_eq!(made["model"]["kind"], "gpt");
    let input = "[[1, 2, 3, 4, 5, 6, 7], [200, 9]]";
    let out = dir.path().join("logits.npy");
    let gpu = cli_json(
        dir.path(),
        &[
            "compute",
            "run",
            "--model",
            m,
            "--input",
            input,
            "--device",
            "gpu",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let cpu = cli_json(
        dir.path(),
        &[
            "compute", "run", "--model", m, "--input", input, "--device", "cpu",
        ],
    );
    assert!(
        !gpu["device"].as_str().unwrap().starts_with("cpu"),
        "{}",
        gpu["device"]
    );
    assert!(cpu["device"].as_str().unwrap().starts_with("cpu"));
    for s in 0..2 {
        let (g, c) = (logits(&gpu, s), logits(&cpu, s));
        assert_eq!(g.len(), 256);
        let scale = c.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let err = g
            .iter()
            .zip(&c)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-4 * scale, "sequence {s}: {err} of {scale}");
        assert_eq!(
            gpu["sequences"][s]["top"][0]["token"],
            cpu["sequences"][s]["top"][0]["token"]
        );
        assert_eq!(gpu["sequences"][s]["argmax"], cpu["sequences"][s]["argmax"]);
    }
    // By default only each sequence's last position is computed and written.
    let file = agora_compute::npy::read(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(file.shape, vec![2, 256]);
    assert_eq!(gpu["positions"], "last");
    // --all-positions: every position, whose last rows are the same logits; --repeat
    // reports the cold run and the warm median.
    let all = cli_json(
        dir.path(),
        &[
            "compute",
            "run",
            "--model",
            m,
            "--input",
            input,
            "--device",
            "gpu",
            "--all-positions",
            "--repeat",
            "3",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let file = agora_compute::npy::read(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(file.shape, vec![9, 256]);
    assert_eq!(all["timings_ms"]["forwards"].as_array().unwrap().len(), 3);
    assert!(all["timings_ms"]["forward_warm_median"].as_f64().unwrap() > 0.0);
    // --f16-weights: the GPU's f16 weights against the CPU twin's rounded ones.
    let with = |device: &str, flag: &str| {
        cli_json(
            dir.path(),
            &[
                "compute", "run", "--model", m, "--input", input, "--device", device, flag,
            ],
        )
    };
    let (hg, hc) = (with("gpu", "--f16-weights"), with("cpu", "--f16-weights"));
    assert_eq!(hg["f16_weights"], true);
    for s in 0..2 {
        let (err, scale) = max_diff(&logits(&hg, s), &logits(&hc, s));
        assert!(
            err < 1e-4 * scale,
            "f16 weights, sequence {s}: {err} of {scale}"
        );
    }
    // --tensor-cores: every product with f16-rounded inputs. On the CPU that is the twin
    // (close to the f32 logits, not equal); on an adapter without cooperative matrices
    // (Debian 12's lavapipe) it is refused with the reason. The GPU side is checked on
    // Mesa 26's lavapipe by the compute crate's tests (scripts/lavapipe-coop).
    let cores = with("cpu", "--tensor-cores");
    assert_eq!(cores["tensor_cores"], true);
    for s in 0..2 {
        let (err, scale) = max_diff(&logits(&cores, s), &logits(&hc, s));
        assert!(
            err > 0.0 && err < 2e-2 * scale,
            "tensor cores on the CPU, sequence {s}: {err}"
        );
    }
    let (code, _, err) = cli(
        dir.path(),
        &[
            "compute",
            "run",
            "--model",
            m,
            "--input",
            input,
            "--device",
            "gpu",
            "--tensor-cores",
        ],
    );
    if code != 0 {
        assert!(
            err.contains("--tensor-cores") && err.contains("cooperative"),
            "{err}"
        );
    }
    for s in 0..2 {
        let (worst, _) = max_diff(&logits(&all, s), &logits(&gpu, s));
        assert!(worst < 1e-5, "sequence {s}: {worst}");
    }

    // An MLP from a .npy input file, on the CPU.
    let mlp = dir.path().join("mlp.safetensors");
    cli_json(
        dir.path(),
        &[
            "compute",
            "example-model",
            "mlp",
            "--out",
            mlp.to_str().unwrap(),
        ],
    );
    let x = dir.path().join("x.npy");
    std::fs::write(&x, agora_compute::npy::write_f32(&[3, 16], &[0.25; 48])).unwrap();
    let v = cli_json(
        dir.path(),
        &[
            "compute",
            "run",
            "--model",
            mlp.to_str().unwrap(),
            "--input",
            x.to_str().unwrap(),
            "--device",
            "cpu",
        ],
    );
    assert_eq!(v["outputs"].as_array().unwrap().len(), 3);
    assert_eq!(v["outputs"][0].as_array().unwrap().len(), 10);
    assert_eq!(v["outputs"][0], v["outputs"][2]);

    // Bad inputs: the error names the problem, nothing is printed to stdout.
    for (args, want) in [
        (
            vec!["--model", m, "--input", "[[1, 2.5]]"],
            "not a non-negative integer",
        ),
        (
            vec!["--model", m, "--input", "[[999]]"],
            "outside the vocabulary",
        ),
        (
            vec!["--model", mlp.to_str().unwrap(), "--input", "[[1, 2]]"],
            "takes 16 features",
        ),
        (
            vec!["--model", "/nonexistent.safetensors", "--input", "[1]"],
            "reading /nonexistent",
        ),
        (
            vec!["--model", m, "--input", "/nonexistent.json"],
            "reading /nonexistent.json",
        ),
    ] {
        let mut all = vec!["compute", "run", "--device", "cpu"];
        all.extend(args);
        let (code, stdout, stderr) = cli(dir.path(), &all);
        assert_ne!(code, 0);
        assert!(stderr.contains(want), "{all:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
}

#[test]
fn compute_info_and_bench_report_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let info = cli_json(dir.path(), &["compute", "info"]);
    assert!(!info["adapters"].as_array().unwrap().is_empty(), "{info}");
    let bench = cli_json(
        dir.path(),
        &[
            "compute",
            "bench",
            "--sizes",
            "33,64",
            "--runs",
            "1",
            "--device",
            "gpu",
            "--pytorch",
            "/nonexistent/python",
        ],
    );
    let rows = bench["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        for k in [
            "device_gflops",
            "cpu_gflops",
            "freivalds_cpu_ms",
            "freivalds_device_ms",
        ] {
            assert!(r[k].as_f64().unwrap() > 0.0, "{k}: {r}");
        }
    }
    // No interpreter: the bench still runs and says why PyTorch was not measured.
    assert!(bench["pytorch"]["error"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/python"));
    let (code, _, err) = cli(dir.path(), &["compute", "bench", "--sizes", "0"]);
    assert_ne!(code, 0);
    assert!(err.contains("--sizes"), "{err}");
    // --no-cpu: the GPU figures and the GPU's Freivalds check of its own product, no CPU
    // timing; refused when no GPU is selected.
    let gpu_only = cli_json(
        dir.path(),
        &[
            "compute", "bench", "--sizes", "40", "--runs", "1", "--device", "gpu", "--no-cpu",
        ],
    );
    let r = &gpu_only["results"][0];
    assert!(r["device_gflops"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["freivalds_device_ms"].as_f64().unwrap() > 0.0, "{r}");
    assert!(
        r["cpu_gflops"].is_null() && r["device_vs_cpu"].is_null(),
        "{r}"
    );
    let (code, _, err) = cli(
        dir.path(),
        &[
            "compute", "bench", "--sizes", "8", "--device", "cpu", "--no-cpu",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("--no-cpu"), "{err}");
}

/// The `--pytorch` plumbing end to end, with a stand-in `torch` module (this checks that
/// the script runs, its output is read and the ratio is computed; it measures nothing).
/// Then the real `python3`, which has no torch here: the bench says so and carries on.
#[test]
fn compute_bench_reads_pytorch_timings_and_reports_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(
        fake.join("torch.py"),
        "import time\n__version__ = 'stand-in'\n\
         class _N:\n    pass\n\
         backends = _N(); backends.cuda = _N(); backends.cuda.matmul = _N(); backends.cudnn = _N()\n\
         class cuda:\n    is_available = staticmethod(lambda: True)\n    \
         synchronize = staticmethod(lambda: None)\n    get_device_name = staticmethod(lambda i: 'stand-in GPU')\n\
         class _T:\n    def __mul__(self, o): return self\n    def __sub__(self, o): return self\n    \
         def half(self): return self\n    def bfloat16(self): return self\n\
         def rand(*a, **k): return _T()\n\
         def matmul(a, b):\n    time.sleep(0.002)\n    return a\n",
    )
    .unwrap();
    let python = stand_in_python(
        dir.path(),
        &format!("PYTHONPATH={} exec python3 \"$@\"", fake.display()),
    );
    let args = |py: &str| {
        cli_json(
            dir.path(),
            &[
                "compute",
                "bench",
                "--sizes",
                "32",
                "--runs",
                "1",
                "--device",
                "gpu",
                "--pytorch",
                py,
            ],
        )
    };
    let v = args(python.to_str().unwrap());
    assert_eq!(v["pytorch"]["device"], "stand-in GPU", "{v}");
    let r = &v["results"][0];
    let (dev, torch) = (
        r["device_gflops"].as_f64().unwrap(),
        r["pytorch_gflops"].as_f64().unwrap(),
    );
    // 2 * 32^3 flops in >= 2 ms is at most 0.033 GFLOP/s.
    assert!(torch > 0.0 && torch < 0.033, "{r}");
    assert!((r["wgpu_vs_pytorch"].as_f64().unwrap() - dev / torch).abs() < 1e-9 * dev / torch);
    // fp16 and bf16 are timed too; the f16 kernel's ratio is against fp16.
    let t16 = r["pytorch_f16_gflops"].as_f64().unwrap();
    assert!(
        t16 > 0.0 && t16 < 0.033 && r["pytorch_bf16_gflops"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    if let Some(ours) = r["device_f16_gflops"].as_f64() {
        let ratio = r["f16_vs_pytorch_f16"].as_f64().unwrap();
        assert!((ratio - ours / t16).abs() < 1e-9 * ratio, "{r}");
    }
    // Without cooperative matrices (Debian 12's lavapipe) the bench says why.
    assert!(
        v["gemm"]["coop"]["unavailable"].is_string() || r["device_coop_gflops"].as_f64().is_some(),
        "{v}"
    );

    let real = args("python3");
    let p = &real["pytorch"];
    assert!(
        p["results"].is_array()
            || p["error"]
                .as_str()
                .is_some_and(|e| e.contains("torch") || e.contains("CUDA")),
        "{p}"
    );
}

/// `compute bench --inference`: a model of the given shape is built, uploaded once and run
/// cold and warm; PyTorch's figures (here from a stand-in interpreter that prints fixed
/// timings) give the ratio; without torch the row says why; bad shapes are refused.
#[test]
fn compute_bench_inference_row_times_cold_and_warm_and_compares_with_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let python = stand_in_python(
        dir.path(),
        "echo '{\"device\": \"stand-in GPU\", \"torch\": \"stand-in\", \"cold_ms\": 10.0, \"warm_ms\": 4.0, \"warm_last_logits_to_host_ms\": 5.0, \"warm_f16_last_logits_to_host_ms\": 2.0}'",
    );
    let bench = |py: &str| {
        cli_json(
            dir.path(),
            &[
                "compute",
                "bench",
                "--sizes",
                "32",
                "--runs",
                "2",
                "--device",
                "gpu",
                "--inference",
                "1,32,2,64,16",
                "--batch",
                "2x8",
                "--pytorch",
                py,
            ],
        )
    };
    let v = bench(python.to_str().unwrap());
    let i = &v["inference"];
    assert_eq!(
        (i["layers"].as_u64(), i["batch"].as_u64(), i["seq"].as_u64()),
        (Some(1), Some(2), Some(8)),
        "{v}"
    );
    let warm = i["warm_ms"].as_f64().unwrap();
    assert!(warm > 0.0 && i["cold_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(i["pytorch"]["device"], "stand-in GPU");
    let ratio = i["warm_vs_pytorch"].as_f64().unwrap();
    assert!((ratio - warm / 5.0).abs() < 1e-9, "{ratio} vs {warm} / 5");
    // Tensor cores against PyTorch fp16, where the adapter has them (not Debian 12's
    // lavapipe: then both are null).
    match i["warm_ms_tensor_cores"].as_f64() {
        Some(t) => {
            let r = i["tensor_cores_vs_pytorch_f16"].as_f64().unwrap();
            assert!((r - t / 2.0).abs() < 1e-9, "{r} vs {t} / 2");
        }
        None => assert!(i["tensor_cores_vs_pytorch_f16"].is_null(), "{v}"),
    }
    // A python without torch: the row says so and has no ratio.
    let v = bench("python3");
    assert!(
        v["inference"]["pytorch"]["error"]
            .as_str()
            .unwrap()
            .contains("torch"),
        "{v}"
    );
    assert!(v["inference"]["warm_vs_pytorch"].is_null());
    for (shape, batch) in [
        ("1,32,3,64,16", "2x8"),
        ("1,32", "2x8"),
        ("1,32,2,64,16", "2x99"),
        ("1,32,2,64,16", "two"),
    ] {
        let (code, _, err) = cli(
            dir.path(),
            &[
                "compute",
                "bench",
                "--sizes",
                "8",
                "--inference",
                shape,
                "--batch",
                batch,
            ],
        );
        assert_ne!(code, 0, "{shape} {batch}");
        assert!(
            err.contains("--inference") || err.contains("--batch"),
            "{err}"
        );
    }
}
