//! `agora compute info|bench|run|example-model`: the GPU adapters wgpu sees, kernel
//! throughput on the GPU and the CPU side by side, and safetensors models run on either.

use std::path::{Path, PathBuf};
use std::time::Instant;

use agora_compute::model::{example, Input, Model, Positions};
use agora_compute::{cpu, freivalds, gpu, Backend, Cpu, CpuF16Products, Mat, Ops};
use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

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
    /// Matmul GFLOP/s on the GPU (f32, and f16 where supported) and the CPU at several
    /// sizes, and Freivalds' check against recomputing the product.
    Bench {
        #[arg(long)]
        device: Option<String>,
        /// Square sizes to time (comma separated).
        #[arg(long, value_delimiter = ',', default_value = "256,512,1024")]
        sizes: Vec<usize>,
        /// Timed runs per size (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Also time torch.matmul (TF32 off, CUDA) with this Python interpreter in the
        /// same run and report wgpu / PyTorch (and, with --inference, the same model's
        /// forward in transformers' GPT2LMHeadModel).
        #[arg(long, value_name = "PYTHON")]
        pytorch: Option<PathBuf>,
        /// Add an inference row: a random GPT-2-layout model of this shape
        /// (LAYERS,WIDTH,HEADS,VOCAB,CONTEXT; GPT-2 small is 12,768,12,50257,1024), run on
        /// BATCH x SEQ tokens with last-position logits, cold and warm.
        #[arg(long, value_name = "L,D,H,V,T")]
        inference: Option<String>,
        /// Inference batch: sequences x tokens.
        #[arg(long, default_value = "4x512", value_name = "BxS")]
        batch: String,
        /// Time the GPU only: no CPU matmul or CPU Freivalds (minutes at large sizes);
        /// the GPU's Freivalds check then verifies the GPU's own product.
        #[arg(long)]
        no_cpu: bool,
    },
    /// Run a safetensors model (an MLP, or a GPT-2-layout transformer) on a batch.
    Run {
        /// The .safetensors file.
        #[arg(long)]
        model: PathBuf,
        /// A .npy or .json file, or inline JSON (`'[[1, 2, 3]]'`): rows of features for
        /// an MLP, rows of token ids for a transformer.
        #[arg(long)]
        input: String,
        #[arg(long)]
        device: Option<String>,
        /// Write every output to this .npy file (MLP: batch x outputs; transformer: the
        /// logits computed, stacked: the last position of each sequence, or every position
        /// with --all-positions).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Next tokens to show per sequence (transformer).
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Transformer: compute and read back the logits of every position, not only each
        /// sequence's last (the LM head then runs on every row).
        #[arg(long)]
        all_positions: bool,
        /// Run the forward pass K times on the resident weights: reports the first (cold)
        /// and the median of the others (warm).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Store the product weights (linear layers, LM head) as f16 on the GPU, half the
        /// memory and traffic, f32 accumulation (on the CPU: the same weights rounded).
        #[arg(long)]
        f16_weights: bool,
        /// Run every product on tensor cores (cooperative matrices; `compute info` says
        /// whether the adapter has them): inputs rounded to f16, f32 accumulation,
        /// everything else f32. With --device cpu, the CPU computes the same rounding.
        #[arg(long)]
        tensor_cores: bool,
    },
    /// Write a small random model to try `compute run` with.
    ExampleModel {
        #[arg(value_enum)]
        kind: ExampleKind,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ExampleKind {
    /// 16 -> 64 -> 64 -> 10, ReLU.
    Mlp,
    /// Vocabulary 256, width 64, 4 heads, context 64, 2 layers.
    Gpt,
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
        ComputeCmd::Info { device } => info(device, out),
        ComputeCmd::Bench {
            device,
            sizes,
            runs,
            pytorch,
            inference,
            batch,
            no_cpu,
        } => {
            let inference = inference
                .map(|shape| InferenceBench::parse(&shape, &batch))
                .transpose()?;
            let with_cpu = !no_cpu;
            bench(
                device,
                &sizes,
                runs,
                pytorch.as_deref(),
                inference,
                with_cpu,
                out,
            )
        }
        ComputeCmd::Run {
            model,
            input,
            device,
            out: file,
            top,
            all_positions,
            repeat,
            f16_weights,
            tensor_cores,
        } => {
            let positions = if all_positions {
                Positions::All
            } else {
                Positions::Last
            };
            let opts = RunOpts {
                file: file.as_deref(),
                top,
                positions,
                repeat: repeat.clamp(1, 1_000),
                half: f16_weights,
                tensor_cores,
            };
            run_model(&model, &input, device, &opts, out)
        }
        ComputeCmd::ExampleModel {
            kind,
            out: file,
            seed,
        } => {
            let bytes = match kind {
                ExampleKind::Mlp => example::mlp(&[16, 64, 64, 10], "relu", seed)?,
                ExampleKind::Gpt => example::gpt(256, 64, 4, 64, 2, seed)?,
            };
            std::fs::write(&file, &bytes).with_context(|| format!("writing {}", file.display()))?;
            let summary = Model::from_bytes(&bytes)?.summary();
            let v = json!({"path": file, "bytes": bytes.len(), "model": summary});
            out.print(&v, || {
                format!(
                    "wrote {} ({} {}, {} parameters)\ntry: agora compute run --model {} --input '{}'",
                    file.display(),
                    summary.kind,
                    describe(&summary),
                    summary.parameters,
                    file.display(),
                    match kind {
                        ExampleKind::Mlp => "[[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6]]",
                        ExampleKind::Gpt => "[[1, 2, 3, 4], [9, 8]]",
                    }
                )
            });
            Ok(())
        }
    }
}

fn info(device: Option<String>, out: Out) -> anyhow::Result<()> {
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
                "[{}] {} ({}, {}), driver {} {}\n    f16: {}, subgroups of {} to {}, cooperative matrix: {} ({}), tensor-core gemm: {}\n    max storage binding {} MiB, workgroup storage {} KiB, {} invocations/workgroup\n",
                a.index, a.name, a.backend, a.device_type, a.driver, a.driver_info,
                a.shader_f16, a.subgroup_min_size, a.subgroup_max_size, a.cooperative_matrix,
                if a.cooperative_matrix_configs.is_empty() {
                    "no configurations".to_string()
                } else {
                    a.cooperative_matrix_configs.join(", ")
                },
                a.cooperative_gemm,
                a.max_storage_buffer_binding_size >> 20,
                a.max_compute_workgroup_storage_size >> 10,
                a.max_compute_invocations_per_workgroup
            ));
        }
        t.push_str(&format!("selected: {}", chosen.name()));
        t
    });
    Ok(())
}

/// torch.matmul timings at `sizes`: fp32 (TF32 off), fp16 and bf16 (`gflops`,
/// `gflops_f16`, `gflops_bf16`), as JSON from the interpreter.
const TORCH_BENCH: &str = r#"
import json, sys, time
try:
    import torch
except Exception as e:
    print(json.dumps({"error": "no torch: %s" % e})); sys.exit(0)
if not torch.cuda.is_available():
    print(json.dumps({"error": "torch sees no CUDA device"})); sys.exit(0)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
sizes = [int(s) for s in sys.argv[1].split(",")]
runs = int(sys.argv[2])
out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "results": []}
def median(a, b):
    torch.matmul(a, b); torch.cuda.synchronize()
    ts = []
    for _ in range(max(runs, 1)):
        torch.cuda.synchronize(); t = time.perf_counter()
        torch.matmul(a, b); torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    ts.sort(); return ts[len(ts) // 2]
for n in sizes:
    a = torch.rand(n, n, device="cuda") * 2 - 1
    b = torch.rand(n, n, device="cuda") * 2 - 1
    row = {"n": n}
    for suffix, x, y in (("", a, b), ("_f16", a.half(), b.half()), ("_bf16", a.bfloat16(), b.bfloat16())):
        med = median(x, y)
        row["ms" + suffix] = med * 1e3
        row["gflops" + suffix] = 2 * n ** 3 / med / 1e9
    out["results"].append(row)
print(json.dumps(out))
"#;

fn torch_bench(python: &Path, sizes: &[usize], runs: usize) -> Value {
    let list: Vec<String> = sizes.iter().map(usize::to_string).collect();
    python_json(python, TORCH_BENCH, &[list.join(","), runs.to_string()])
}

/// Run `script` with `python -c` and these arguments; its stdout as JSON, or an object
/// whose `error` says why not (a missing interpreter or module is a reason, not a failure).
fn python_json(python: &Path, script: &str, args: &[String]) -> Value {
    let res = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output();
    match res {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| json!({"error": format!("unreadable output: {e}")})),
        Ok(o) => json!({"error": String::from_utf8_lossy(&o.stderr).trim().to_string()}),
        Err(e) => json!({"error": format!("running {}: {e}", python.display())}),
    }
}

/// The inference row of `compute bench`: a model shape and a batch.
struct InferenceBench {
    layers: usize,
    width: usize,
    heads: usize,
    vocab: usize,
    context: usize,
    batch: usize,
    seq: usize,
}

impl InferenceBench {
    fn parse(shape: &str, batch: &str) -> anyhow::Result<InferenceBench> {
        let dims: Vec<usize> = shape
            .split(',')
            .map(|x| x.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("--inference {shape:?}: {e} (give L,D,H,V,T)"))?;
        let [layers, width, heads, vocab, context] = dims[..] else {
            bail!("--inference {shape:?}: give five numbers, LAYERS,WIDTH,HEADS,VOCAB,CONTEXT");
        };
        let (b, s) = batch
            .split_once('x')
            .and_then(|(b, s)| Some((b.parse().ok()?, s.parse().ok()?)))
            .ok_or_else(|| {
                anyhow::anyhow!("--batch {batch:?}: give SEQUENCESxTOKENS, e.g. 4x512")
            })?;
        if layers == 0 || width == 0 || heads == 0 || width % heads != 0 || vocab < 2 {
            bail!("--inference {shape:?}: layers, width, heads at least 1, width divisible by heads, vocab at least 2");
        }
        if b == 0 || s == 0 || s > context {
            bail!("--batch {batch}: at least one sequence of 1 to CONTEXT ({context}) tokens");
        }
        Ok(InferenceBench {
            layers,
            width,
            heads,
            vocab,
            context,
            batch: b,
            seq: s,
        })
    }

    /// Seeded token ids, the same for both sides.
    fn tokens(&self) -> Vec<Vec<u32>> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..self.batch)
            .map(|_| {
                (0..self.seq)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x % self.vocab as u64) as u32
                    })
                    .collect()
            })
            .collect()
    }
}

/// GPT2LMHeadModel (transformers) on the same safetensors file and tokens: cold and warm
/// forward (median), and the warm forward with the last positions' logits copied to the
/// host, in fp32 (TF32 off) and then with the model in fp16, as JSON.
const TORCH_INFER: &str = r#"
import json, sys, time
try:
    import torch
    from safetensors.torch import load_file
    from transformers import GPT2Config, GPT2LMHeadModel
except Exception as e:
    print(json.dumps({"error": "no torch/transformers/safetensors: %s" % e})); sys.exit(0)
if not torch.cuda.is_available():
    print(json.dumps({"error": "torch sees no CUDA device"})); sys.exit(0)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
path, tokens_path, heads, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sd = load_file(path)
sd = {k[len("transformer."):] if k.startswith("transformer.") else k: v for k, v in sd.items()}
layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("h."))
vocab, width = sd["wte.weight"].shape
cfg = GPT2Config(vocab_size=vocab, n_positions=sd["wpe.weight"].shape[0], n_embd=width,
                 n_layer=layers, n_head=heads)
model = GPT2LMHeadModel(cfg)
model.transformer.load_state_dict(sd, strict=False)
model.tie_weights()
model = model.cuda().eval()
ids = torch.tensor(json.load(open(tokens_path)), device="cuda")
def forward(to_host):
    torch.cuda.synchronize(); t = time.perf_counter()
    with torch.no_grad():
        logits = model(ids).logits
        if to_host:
            logits[:, -1, :].cpu()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) * 1e3
def median(xs):
    xs = sorted(xs); return xs[len(xs) // 2]
cold = forward(False)
warm = median(forward(False) for _ in range(max(runs, 1)))
warm_host = median(forward(True) for _ in range(max(runs, 1)))
model = model.half()  # fp16 weights and activations, as tensor cores run them
forward(True)
warm_f16_host = median(forward(True) for _ in range(max(runs, 1)))
print(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                  "cold_ms": cold, "warm_ms": warm, "warm_last_logits_to_host_ms": warm_host,
                  "warm_f16_last_logits_to_host_ms": warm_f16_host}))
"#;

/// Run the PyTorch side of the inference row.
fn torch_infer(python: &Path, model: &Path, tokens: &Path, heads: usize, runs: usize) -> Value {
    let args = [
        model.display().to_string(),
        tokens.display().to_string(),
        heads.to_string(),
        runs.to_string(),
    ];
    python_json(python, TORCH_INFER, &args)
}

/// The inference row: the model built, written, uploaded once, then the forward pass
/// (last-position logits, read back) cold and warm on `backend`, and PyTorch's on the same
/// file and tokens when asked.
fn inference_row(
    backend: &Backend,
    spec: &InferenceBench,
    runs: usize,
    pytorch: Option<&Path>,
    out: Out,
) -> anyhow::Result<Value> {
    out.progress(&format!(
        "inference: building a {}-layer, width {}, vocabulary {} model",
        spec.layers, spec.width, spec.vocab
    ));
    let bytes = example::gpt(
        spec.vocab,
        spec.width,
        spec.heads,
        spec.context,
        spec.layers,
        1,
    )?;
    let dir = tempfile::tempdir()?;
    let (model_path, tokens_path) = (
        dir.path().join("model.safetensors"),
        dir.path().join("tokens.json"),
    );
    std::fs::write(&model_path, &bytes)?;
    let seqs = spec.tokens();
    std::fs::write(&tokens_path, serde_json::to_vec(&seqs)?)?;
    let host = Model::from_bytes(&bytes)?;
    drop(bytes);
    let input = Input::Tokens(seqs);
    let last = (Positions::Last, false);
    let (_, upload_ms, times) = match backend {
        Backend::Gpu(g) => forward_on(g.as_ref(), &host, &input, last, runs + 1)?,
        Backend::Cpu => forward_on(&Cpu, &host, &input, last, runs + 1)?,
    };
    // The same with f16 product weights, where the GPU stores them; and with every
    // product on tensor cores, where it has them.
    let (half, tensor_cores) = match backend {
        Backend::Gpu(g) if g.has_f16() => {
            let halved = (Positions::Last, true);
            let (_, _, t) = forward_on(g.as_ref(), &host, &input, halved, runs + 1)?;
            let on_cores = if g.has_coop() {
                g.set_tensor_cores(true)?;
                let timed = forward_on(g.as_ref(), &host, &input, halved, runs + 1);
                g.set_tensor_cores(false)?;
                warm_median(&timed?.2)
            } else {
                None
            };
            (warm_median(&t), on_cores)
        }
        _ => (None, None),
    };
    let cold = times.first().copied().unwrap_or(f64::NAN);
    let warm = warm_median(&times).unwrap_or(cold);
    let mut row = json!({
        "layers": spec.layers, "width": spec.width, "heads": spec.heads, "vocab": spec.vocab,
        "batch": spec.batch, "seq": spec.seq, "parameters": host.summary().parameters,
        "upload_ms": upload_ms, "cold_ms": cold, "warm_ms": warm, "warm_ms_f16_weights": half,
        "warm_ms_tensor_cores": tensor_cores,
        "note": "agora times include reading back the last positions' logits",
    });
    if let Some(py) = pytorch {
        out.progress(&format!(
            "inference: the same model in PyTorch with {}",
            py.display()
        ));
        let t = torch_infer(py, &model_path, &tokens_path, spec.heads, runs);
        row["pytorch"] = t.clone();
        row["warm_vs_pytorch"] = inference_ratio(warm, &t);
        if let (Some(ours), Some(theirs)) =
            (tensor_cores, t["warm_f16_last_logits_to_host_ms"].as_f64())
        {
            row["tensor_cores_vs_pytorch_f16"] = json!(ours / theirs);
        }
    }
    Ok(row)
}

/// Agora's warm forward over PyTorch's warm forward with the last logits on the host (how
/// many times slower; null when PyTorch gave no figure).
fn inference_ratio(agora_warm_ms: f64, torch: &Value) -> Value {
    match torch["warm_last_logits_to_host_ms"].as_f64() {
        Some(t) if t > 0.0 => json!(agora_warm_ms / t),
        _ => Value::Null,
    }
}

fn bench(
    device: Option<String>,
    sizes: &[usize],
    runs: usize,
    pytorch: Option<&Path>,
    inference: Option<InferenceBench>,
    with_cpu: bool,
    out: Out,
) -> anyhow::Result<()> {
    if sizes.iter().any(|s| *s == 0 || *s > 16_384) {
        bail!("--sizes must be between 1 and 16384");
    }
    let backend = Backend::auto(device.as_deref());
    if !with_cpu && matches!(backend, Backend::Cpu) {
        bail!("--no-cpu needs a GPU, and none was selected (see `agora compute info`)");
    }
    out.progress(&format!(
        "benchmarking on {}{}",
        backend.name(),
        if with_cpu { " and the CPU" } else { "" }
    ));
    let torch = pytorch.map(|p| {
        out.progress(&format!("timing torch.matmul with {}", p.display()));
        torch_bench(p, sizes, runs)
    });
    let mut rows = Vec::new();
    for &n in sizes {
        let a = Mat::random(n, n, 1);
        let b = Mat::random(n, n, 2);
        let flops = 2.0 * (n as f64).powi(3);
        let mut row = json!({"n": n});
        // The CPU's product is the one the GPU's Freivalds check verifies; without the
        // CPU, the GPU's own.
        let mut product = None;
        let mut host = None;
        if with_cpu {
            let t = median_secs(runs, || Ok(cpu::matmul(&a, &b).map(|_| ())?))?;
            let c = cpu::matmul(&a, &b)?;
            let check = median_secs(runs, || {
                let v = freivalds::check(&a, &b, &c, 1, 9, freivalds::DEFAULT_TOLERANCE)?;
                if !v.accepted {
                    bail!("freivalds rejected an honest product at n={n}: {v:?}");
                }
                Ok(())
            })?;
            row["cpu_gflops"] = json!(flops / t / 1e9);
            row["cpu_ms"] = json!(t * 1e3);
            row["freivalds_cpu_ms"] = json!(check * 1e3);
            row["freivalds_vs_recompute"] = json!(t / check);
            product = Some(c);
            host = Some(t);
        }
        if let Backend::Gpu(g) = &backend {
            let g = g.as_ref();
            // Operands resident on the device, as a miner's would be; each run includes
            // poisoning the output and waiting for the kernel.
            let (ga, gb) = (g.upload(&a)?, g.upload(&b)?);
            let c = match product {
                Some(c) => c,
                None => g.download_one(&g.matmul(&ga, &gb)?)?,
            };
            let gc = g.upload(&c)?;
            let dev = median_secs(runs, || {
                let c = g.matmul(&ga, &gb)?;
                g.sync()?;
                drop(c);
                Ok(())
            })?;
            let check_gpu = median_secs(runs, || {
                let v = freivalds::check_gpu(g, &ga, &gb, &gc, 1, 9, freivalds::DEFAULT_TOLERANCE)?;
                if !v.accepted {
                    bail!("GPU freivalds rejected an honest product at n={n}: {v:?}");
                }
                Ok(())
            })?;
            row["device_gflops"] = json!(flops / dev / 1e9);
            row["device_ms"] = json!(dev * 1e3);
            if let Some(t) = host {
                row["device_vs_cpu"] = json!(t / dev);
            }
            row["freivalds_device_ms"] = json!(check_gpu * 1e3);
            // f16 operands resident too: the portable kernel, and tensor cores where the
            // adapter has cooperative matrices.
            if g.has_f16() {
                let (ha, hb) = (g.upload_half(&a)?, g.upload_half(&b)?);
                for (key, coop) in [("device_f16_gflops", false), ("device_coop_gflops", true)] {
                    if coop && !g.has_coop() {
                        continue;
                    }
                    let t = median_secs(runs, || {
                        let c = g.matmul_half(&ha, &hb, coop)?;
                        g.sync()?;
                        drop(c);
                        Ok(())
                    })?;
                    row[key] = json!(flops / t / 1e9);
                }
            }
            let torch_row = torch.as_ref().and_then(|t| {
                t["results"]
                    .as_array()?
                    .iter()
                    .find(|r| r["n"] == n)
                    .cloned()
            });
            if let Some(t) = torch_row {
                let tg = t["gflops"].as_f64().unwrap_or(f64::NAN);
                row["pytorch_gflops"] = json!(tg);
                row["wgpu_vs_pytorch"] = json!(flops / dev / 1e9 / tg);
                if let Some(t16) = t["gflops_f16"].as_f64() {
                    row["pytorch_f16_gflops"] = json!(t16);
                    row["pytorch_bf16_gflops"] = t["gflops_bf16"].clone();
                    for (ours, ratio) in [
                        ("device_f16_gflops", "f16_vs_pytorch_f16"),
                        ("device_coop_gflops", "coop_vs_pytorch_f16"),
                    ] {
                        if let Some(x) = row[ours].as_f64() {
                            row[ratio] = json!(x / t16);
                        }
                    }
                }
            }
        }
        out.progress(&format!("n={n} done"));
        rows.push(row);
    }
    let gemm = match &backend {
        Backend::Gpu(g) => {
            let (variant, chosen) = g.gemm_variant();
            let coop = match g.coop() {
                Ok((shape, variant)) => json!({"shape": shape, "variant": variant}),
                Err(why) => json!({"unavailable": why}),
            };
            json!({"variant": variant, "chosen": chosen, "coop": coop})
        }
        Backend::Cpu => Value::Null,
    };
    let inference = inference
        .map(|spec| inference_row(&backend, &spec, runs, pytorch, out))
        .transpose()?;
    let v = json!({
        "device": backend.name(), "cpu_threads": rayon_threads(), "runs": runs,
        "results": rows, "pytorch": torch, "gemm": gemm, "inference": inference,
    });
    out.print(&v, || bench_table(&v, runs));
    Ok(())
}

fn bench_table(v: &Value, runs: usize) -> String {
    let f = |r: &Value, k: &str| r[k].as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
    let tiling = match v["gemm"]["variant"]["name"].as_str() {
        Some(name) => format!(
            "; gemm tiling {name}, {}",
            match &v["gemm"]["chosen"] {
                Value::String(s) => s.clone(),
                Value::Object(o) if o.contains_key("tuned") => "tuned now".into(),
                other => other.to_string(),
            }
        ),
        None => String::new(),
    };
    let mut t = format!(
        "matmul n x n x n, median of {runs} (device: {}{tiling}; GPU operands resident)\n{:>6}  {:>11}  {:>11}  {:>9}  {:>13}  {:>12}  {:>12}  {:>12}",
        v["device"].as_str().unwrap_or("?"),
        "n", "GPU GF/s", "CPU GF/s", "GPU/CPU", "GPU f16 GF/s", "Freivalds ms", "vs recompute", "on GPU ms"
    );
    for r in v["results"].as_array().into_iter().flatten() {
        t.push_str(&format!(
            "\n{:>6}  {:>11}  {:>11}  {:>9}  {:>13}  {:>12}  {:>12}  {:>12}",
            r["n"].as_u64().unwrap_or(0),
            f(r, "device_gflops"),
            f(r, "cpu_gflops"),
            f(r, "device_vs_cpu"),
            f(r, "device_f16_gflops"),
            f(r, "freivalds_cpu_ms"),
            r["freivalds_vs_recompute"]
                .as_f64()
                .map_or("-".into(), |x| format!("{x:.0}x")),
            f(r, "freivalds_device_ms"),
        ));
    }
    match v["gemm"]["coop"]["variant"]["name"].as_str() {
        Some(name) => {
            t.push_str(&format!(
                "\ntensor cores (cooperative matrices, {0}x{0} f16 -> f32, tiling {name}):",
                v["gemm"]["coop"]["shape"]["side"]
            ));
            for r in v["results"].as_array().into_iter().flatten() {
                t.push_str(&format!(
                    "\n  n={}: {} GF/s",
                    r["n"],
                    f(r, "device_coop_gflops")
                ));
            }
        }
        None => {
            if let Some(why) = v["gemm"]["coop"]["unavailable"].as_str() {
                t.push_str(&format!("\ntensor cores: not used ({why})"));
            }
        }
    }
    match &v["pytorch"] {
        Value::Null => {}
        p if p.get("error").is_some() => {
            t.push_str(&format!(
                "\npytorch: not measured ({})",
                p["error"].as_str().unwrap_or("?")
            ));
        }
        p => {
            t.push_str(&format!(
                "\npytorch {} on {} (TF32 off):",
                p["torch"].as_str().unwrap_or("?"),
                p["device"].as_str().unwrap_or("?")
            ));
            for r in v["results"].as_array().into_iter().flatten() {
                t.push_str(&format!(
                    "\n  n={}: fp32 {} GF/s, wgpu/PyTorch {}; fp16 {} GF/s (bf16 {}), wgpu f16/PyTorch {}, tensor cores/PyTorch {}",
                    r["n"],
                    f(r, "pytorch_gflops"),
                    f(r, "wgpu_vs_pytorch"),
                    f(r, "pytorch_f16_gflops"),
                    f(r, "pytorch_bf16_gflops"),
                    f(r, "f16_vs_pytorch_f16"),
                    f(r, "coop_vs_pytorch_f16"),
                ));
            }
        }
    }
    let i = &v["inference"];
    if !i.is_null() {
        t.push_str(&format!(
            "
inference: {} layers, width {}, vocabulary {}, {} x {} tokens, last-position logits: upload {} ms, forward cold {} ms, warm {} ms",
            i["layers"], i["width"], i["vocab"], i["batch"], i["seq"],
            f(i, "upload_ms"), f(i, "cold_ms"), f(i, "warm_ms")
        ));
        t.push_str(&format!(
            "; warm with f16 weights {} ms, on tensor cores (f16 products) {} ms",
            f(i, "warm_ms_f16_weights"),
            f(i, "warm_ms_tensor_cores")
        ));
        match &i["pytorch"] {
            Value::Null => {}
            p if p.get("error").is_some() => t.push_str(&format!(
                "
  pytorch: not measured ({})",
                p["error"].as_str().unwrap_or("?")
            )),
            p => {
                t.push_str(&format!(
                    "\n  pytorch {} on {}: cold {} ms, warm {} ms, warm with last logits to host {} ms; agora warm / that = {}",
                    p["torch"].as_str().unwrap_or("?"),
                    p["device"].as_str().unwrap_or("?"),
                    f(p, "cold_ms"),
                    f(p, "warm_ms"),
                    f(p, "warm_last_logits_to_host_ms"),
                    f(i, "warm_vs_pytorch")
                ));
                t.push_str(&format!(
                    "; fp16 warm with last logits to host {} ms, agora tensor cores / that = {}",
                    f(p, "warm_f16_last_logits_to_host_ms"),
                    f(i, "tensor_cores_vs_pytorch_f16")
                ));
            }
        }
    }
    t
}

fn describe(s: &agora_compute::model::Summary) -> String {
    match &s.gpt {
        Some(g) => format!(
            "{} layers, width {}, {} heads, vocabulary {}, context {}",
            g.n_layer, g.d_model, g.n_head, g.vocab, g.n_ctx
        ),
        None => format!(
            "{} layers, {} inputs -> {} outputs",
            s.layers, s.inputs, s.outputs
        ),
    }
}

/// Upload the weights, run the batch; (outputs, upload ms, forward ms).
/// The median of every forward time but the first (the cold one); None with only one.
fn warm_median(times: &[f64]) -> Option<f64> {
    let mut warm: Vec<f64> = times.iter().skip(1).copied().collect();
    warm.sort_by(f64::total_cmp);
    warm.get(warm.len() / 2).copied()
}

/// What `compute run` computes and reports.
struct RunOpts<'a> {
    file: Option<&'a Path>,
    top: usize,
    positions: Positions,
    repeat: usize,
    /// Product weights as f16.
    half: bool,
    /// Every product on tensor cores (inputs rounded to f16).
    tensor_cores: bool,
}

/// Upload once, then run the forward pass `repeat` times on the resident weights:
/// the outputs, the upload time and every forward time (ms; each includes reading back
/// the outputs it returns).
fn forward_on<O: Ops>(
    ops: &O,
    host: &Model<Mat>,
    input: &Input,
    (positions, half): (Positions, bool),
    repeat: usize,
) -> anyhow::Result<(Vec<Mat>, f64, Vec<f64>)> {
    let t = Instant::now();
    let dev = if half {
        host.upload_half(ops)?
    } else {
        host.upload(ops)?
    };
    ops.sync()?;
    let upload = t.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(repeat);
    let mut outputs = Vec::new();
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        outputs = dev.forward_positions(ops, input, positions)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((outputs, upload, times))
}

fn run_model(
    model: &Path,
    input: &str,
    device: Option<String>,
    opts: &RunOpts<'_>,
    out: Out,
) -> anyhow::Result<()> {
    let (file, top) = (opts.file, opts.top);
    let t = Instant::now();
    let host = Model::load(model)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let summary = host.summary();
    let tokens = summary.gpt.is_some();
    let batch = if Path::new(input).exists() || !input.trim_start().starts_with('[') {
        Input::read(Path::new(input), tokens)?
    } else {
        Input::from_json(input, tokens)?
    };
    let backend = Backend::auto(device.as_deref());
    out.progress(&format!(
        "{} ({}), {} parameters, on {}",
        summary.kind,
        describe(&summary),
        summary.parameters,
        backend.name()
    ));
    let how = (opts.positions, opts.half);
    let (outputs, upload_ms, forwards) = match &backend {
        Backend::Gpu(g) => {
            g.set_tensor_cores(opts.tensor_cores)
                .context("--tensor-cores")?;
            forward_on(g.as_ref(), &host, &batch, how, opts.repeat)?
        }
        Backend::Cpu if opts.tensor_cores => {
            forward_on(&CpuF16Products, &host, &batch, how, opts.repeat)?
        }
        Backend::Cpu => forward_on(&Cpu, &host, &batch, how, opts.repeat)?,
    };
    let forward_ms = forwards.first().copied().unwrap_or(0.0);
    let warm_ms = warm_median(&forwards);
    if let Some(path) = file {
        let cols = outputs.first().map_or(0, |m| m.cols);
        let rows: usize = outputs.iter().map(|m| m.rows).sum();
        let data: Vec<f32> = outputs
            .iter()
            .flat_map(|m| m.data.iter().copied())
            .collect();
        std::fs::write(path, agora_compute::npy::write_f32(&[rows, cols], &data))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let timings = json!({"load": load_ms, "upload": upload_ms, "forward": forward_ms,
        "forward_warm_median": warm_ms, "forwards": forwards});
    let positions = match opts.positions {
        Positions::Last => "last",
        Positions::All => "all",
    };
    let mut v = json!({"model": summary, "device": backend.name(), "timings_ms": timings,
        "positions": positions, "f16_weights": opts.half, "tensor_cores": opts.tensor_cores});
    let mut text = format!(
        "{} on {}: load {load_ms:.1} ms, upload {upload_ms:.1} ms, forward {forward_ms:.1} ms",
        summary.kind,
        backend.name()
    );
    if let Some(w) = warm_ms {
        text.push_str(&format!(
            " (cold), {w:.1} ms warm (median of {})",
            forwards.len() - 1
        ));
    }
    match &batch {
        Input::Features(_) => {
            let m = outputs.first().cloned().unwrap_or_else(|| Mat::zeros(0, 0));
            let argmax = cpu::row_argmax(&m);
            v["outputs"] = json!(m.row_iter().map(<[f32]>::to_vec).collect::<Vec<_>>());
            v["argmax"] = json!(argmax);
            for (i, row) in m.row_iter().enumerate().take(20) {
                let shown: Vec<String> = row.iter().take(8).map(|x| format!("{x:.4}")).collect();
                let more = if row.len() > 8 { ", ..." } else { "" };
                text.push_str(&format!(
                    "\nrow {i}: [{}{more}] argmax {}",
                    shown.join(", "),
                    argmax[i]
                ));
            }
            if m.rows > 20 {
                text.push_str(&format!(
                    "\n... {} more rows (--json or --out for all)",
                    m.rows - 20
                ));
            }
        }
        Input::Tokens(seqs) => {
            let mut per_seq = Vec::new();
            for (i, (seq, logits)) in seqs.iter().zip(&outputs).enumerate() {
                let last = logits.row_iter().last().unwrap_or_default();
                let mut order: Vec<usize> = (0..last.len()).collect();
                order.sort_by(|a, b| last[*b].total_cmp(&last[*a]));
                let best: Vec<Value> = order
                    .iter()
                    .take(top)
                    .map(|t| json!({"token": t, "logit": last[*t]}))
                    .collect();
                text.push_str(&format!(
                    "\nsequence {i} ({} tokens), next token: {}",
                    seq.len(),
                    order
                        .iter()
                        .take(top)
                        .map(|t| format!("{t} ({:.3})", last[*t]))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                per_seq.push(json!({
                    "tokens": seq.len(),
                    "top": best,
                    "argmax": cpu::row_argmax(logits),
                    "last_logits": last,
                }));
            }
            v["sequences"] = json!(per_seq);
        }
    }
    if let Some(p) = file {
        text.push_str(&format!("\nall outputs written to {}", p.display()));
    }
    out.print(&v, || text);
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
