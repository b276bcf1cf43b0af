//! GPU kernels against the CPU twin on a real wgpu adapter. In CI that is lavapipe
//! (software Vulkan, installed by `scripts/install-deps`): with no adapter these tests
//! fail, they never skip.

use super::*;
use crate::cpu;

fn gpu() -> Gpu {
    Gpu::open(std::env::var("AGORA_DEVICE").ok().as_deref())
        .unwrap_or_else(|e| panic!("GPU tests need a wgpu adapter (lavapipe in CI): {e}"))
}

/// Largest |gpu - cpu| relative to the largest |cpu| value.
fn rel_err(gpu: &[f32], cpu: &[f32]) -> f32 {
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

/// Tolerance: 1e-5 of the largest output (f32 sums of k <= 300 terms in a different order).
#[test]
fn matmul_matches_the_cpu_twin_on_odd_sizes() {
    let g = gpu();
    for (m, k, n) in [
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 9),
        (65, 130, 31),
        (100, 300, 129),
    ] {
        let a = Mat::random(m, k, 11);
        let b = Mat::random(k, n, 12);
        let want = cpu::matmul(&a, &b).unwrap();
        let got = g.matmul(&a, &b).unwrap();
        assert_eq!((got.rows, got.cols), (m, n));
        let e = rel_err(&got.data, &want.data);
        assert!(e < 1e-5, "{m}x{k}x{n}: relative error {e}");
    }
    // Buffers are reused: a second, smaller call into the same size classes is still exact.
    let a = Mat::random(2, 3, 1);
    let b = Mat::random(3, 2, 2);
    let e = rel_err(
        &g.matmul(&a, &b).unwrap().data,
        &cpu::matmul(&a, &b).unwrap().data,
    );
    assert!(e < 1e-6);
    assert!(matches!(
        g.matmul(&Mat::zeros(2, 3), &Mat::zeros(4, 2)),
        Err(ComputeError::Shape(_))
    ));
}
