//! `agora compute info|bench`: the GPU adapters wgpu sees, and kernel throughput on the
//! GPU and the CPU side by side.

use std::time::Instant;

use agora_compute::{cpu, freivalds, gpu, Backend, Mat};
use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

use super::Out;

#[derive(Subcommand, Debug)]
pub enum ComputeCmd {
    /// Every adapter on every wgpu backend (Vulkan, Metal, DX12, GL), and which one
    /// `--device` / `AGORA_DEVICE` selects.
    Info {
        /// `cpu`, `gpu`, an adapter index, or part of an adapter's name or backend.
        #[arg(long)]
        device: Option<String>,
    },
    /// Matmul GFLOP/s on the GPU and the CPU at several sizes, and Freivalds' check time
    /// against recomputing the product.
    Bench {
        #[arg(long)]
        device: Option<String>,
        /// Square sizes to time (comma separated).
        #[arg(long, value_delimiter = ',', default_value = "256,512,1024")]
        sizes: Vec<usize>,
        /// Timed runs per size (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

fn median_secs(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?; // warm-up: pipeline caches, buffer pool
    let mut t = Vec::new();
    for _ in 0..runs.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

pub fn run(cmd: ComputeCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        ComputeCmd::Info { device } => {
            let adapters = gpu::enumerate();
            let chosen = Backend::auto(device.as_deref());
            let v = json!({"adapters": adapters, "selected": chosen.name()});
            out.print(&v, || {
                let mut t = String::new();
                if adapters.is_empty() {
                    t.push_str("no wgpu adapter found (kernels run on the CPU)\n");
                }
                for a in &adapters {
                    t.push_str(&format!(
                        "[{}] {} ({}, {}), driver {} {}\n    f16: {}, cooperative matrix: {}, max storage binding {} MiB, workgroup storage {} KiB, {} invocations/workgroup\n",
                        a.index, a.name, a.backend, a.device_type, a.driver, a.driver_info,
                        a.shader_f16, a.cooperative_matrix,
                        a.max_storage_buffer_binding_size >> 20,
                        a.max_compute_workgroup_storage_size >> 10,
                        a.max_compute_invocations_per_workgroup
                    ));
                }
                t.push_str(&format!("selected: {}", chosen.name()));
                t
            });
        }
        ComputeCmd::Bench {
            device,
            sizes,
            runs,
        } => {
            if sizes.iter().any(|s| *s == 0 || *s > 16_384) {
                bail!("--sizes must be between 1 and 16384");
            }
            let backend = Backend::auto(device.as_deref());
            out.progress(&format!("benchmarking on {} and the CPU", backend.name()));
            let mut rows = Vec::new();
            for &n in &sizes {
                let a = Mat::random(n, n, 1);
                let b = Mat::random(n, n, 2);
                let flops = 2.0 * (n as f64).powi(3);
                let dev = median_secs(runs, || Ok(backend.matmul(&a, &b).map(|_| ())?))?;
                let host = median_secs(runs, || Ok(cpu::matmul(&a, &b).map(|_| ())?))?;
                let c = cpu::matmul(&a, &b)?;
                let check = median_secs(runs, || {
                    let v = freivalds::check(&a, &b, &c, 1, 9, freivalds::DEFAULT_TOLERANCE)?;
                    if !v.accepted {
                        bail!("freivalds rejected an honest product at n={n}: {v:?}");
                    }
                    Ok(())
                })?;
                out.progress(&format!("n={n} done"));
                rows.push(json!({
                    "n": n,
                    "device_gflops": flops / dev / 1e9, "device_ms": dev * 1e3,
                    "cpu_gflops": flops / host / 1e9, "cpu_ms": host * 1e3,
                    "device_vs_cpu": host / dev,
                    "freivalds_ms": check * 1e3, "recompute_ms": host * 1e3,
                    "freivalds_vs_recompute": host / check,
                }));
            }
            let v = json!({"device": backend.name(), "cpu_threads": rayon_threads(), "runs": runs, "results": rows});
            out.print(&v, || {
                let mut t = format!(
                    "matmul f32, n x n x n, median of {runs} (device: {})\n{:>6}  {:>12}  {:>12}  {:>9}  {:>14}  {:>10}",
                    backend.name(), "n", "device GF/s", "CPU GF/s", "dev/CPU", "Freivalds ms", "vs recompute"
                );
                for r in &rows {
                    t.push_str(&format!(
                        "\n{:>6}  {:>12.2}  {:>12.2}  {:>8.2}x  {:>14.3}  {:>9.0}x",
                        r["n"], r["device_gflops"].as_f64().unwrap_or(0.0), r["cpu_gflops"].as_f64().unwrap_or(0.0),
                        r["device_vs_cpu"].as_f64().unwrap_or(0.0), r["freivalds_ms"].as_f64().unwrap_or(0.0),
                        r["freivalds_vs_recompute"].as_f64().unwrap_or(0.0)
                    ));
                }
                t
            });
        }
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
