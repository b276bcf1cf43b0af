//! `agora miner run|status` and `agora validator run|status`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agora_compute::Backend;
use anyhow::Context;
use clap::{Args, Subcommand};

use super::subnet::SignOpts;
use super::Out;
use crate::neuron::compute_task::{ComputeMiner, ComputeValidator, MAX_N};
use crate::neuron::inference_task::{InferenceMiner, InferenceValidator, Loaded};
use crate::neuron::join::Joining;
use crate::neuron::miner::{self, Fault, MinerConfig};
use crate::neuron::status;
use crate::neuron::validator::{self, ValidatorConfig};
use crate::wallet::KeyRole;

/// The built-in tasks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Proof-of-compute: matrix products checked with Freivalds' test.
    Compute,
    /// The subnet's model (`agora subnet set-model`) on batches; a sample recomputed.
    Inference,
}

/// The model file of `--task inference`.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// The safetensors file the subnet names (by its blake3 hash).
    #[arg(long)]
    model: Option<PathBuf>,
}

impl ModelArgs {
    /// The model loaded on `device`, with its bytes' hash.
    fn load(&self, device: Option<&str>) -> anyhow::Result<Loaded> {
        let path = self.model.as_ref().context(
            "--task inference needs --model FILE (the safetensors file the subnet names)",
        )?;
        let bytes =
            std::fs::read(path).with_context(|| format!("reading model {}", path.display()))?;
        let backend = Backend::auto(device);
        tracing::info!(device = %backend.name(), model = %path.display(), "loading the model");
        Loaded::open(&bytes, backend).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// Which task a neuron runs, and on what.
#[derive(Args, Debug)]
pub struct TaskArgs {
    #[arg(long, value_enum, default_value = "compute")]
    task: TaskKind,
    #[command(flatten)]
    model: ModelArgs,
    /// `cpu`, `gpu`, an adapter index or name (default: the best GPU, else the CPU): where
    /// a miner runs its task, where a validator recomputes inference samples.
    #[arg(long)]
    device: Option<String>,
}

/// Who the neuron is and where its status goes.
#[derive(Args, Debug)]
pub struct NeuronArgs {
    #[arg(long)]
    netuid: u16,
    /// The wallet's hotkey: the neuron's identity on chain and on the network.
    #[arg(long, default_value = "default")]
    hotkey: String,
    #[command(flatten)]
    sign: SignOpts,
    /// Status file (default: <wallet>/neurons/<role>-<netuid>-<hotkey>.json).
    #[arg(long)]
    status_file: Option<PathBuf>,
}

/// Where the neuron listens and whom it joins.
#[derive(Args, Debug)]
pub struct P2pArgs {
    /// libp2p listen address (`/tcp/0` picks a free port).
    #[arg(long, default_value = "/ip4/0.0.0.0/tcp/0")]
    p2p_addr: agora_p2p::Multiaddr,
    /// DHT bootnodes, comma separated. Default: the node's own p2p addresses (`net_info`).
    #[arg(long, value_delimiter = ',')]
    bootnodes: Vec<agora_p2p::Multiaddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics (port 0 picks one; the status
    /// file shows it).
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Subcommand, Debug)]
pub enum MinerCmd {
    /// Serve a subnet's task until Ctrl-C: answer admitted validators' queries.
    Run {
        #[command(flatten)]
        who: NeuronArgs,
        #[command(flatten)]
        p2p: P2pArgs,
        #[command(flatten)]
        task: TaskArgs,
        /// Misbehave on purpose (tests and demos).
        #[arg(long, value_enum)]
        fault: Option<Fault>,
        /// With `--fault slow`: how late each answer is.
        #[arg(long, default_value_t = 400)]
        slow_ms: u64,
        /// Callers without a validator permit must stake at least this much alpha.
        #[arg(long, default_value = "1000", value_parser = parse_alpha)]
        admit_stake: u64,
        /// How many blocks old a query may be.
        #[arg(long, default_value_t = 20)]
        window_blocks: u64,
        /// Queries per second per caller.
        #[arg(long, default_value_t = 50)]
        rate_limit: u32,
        /// Admitted queries waiting for or in work; more are refused as busy.
        #[arg(long, default_value_t = 32)]
        queue_max: u32,
    },
    /// A running miner's status (from its status file), with whether it is alive.
    Status {
        #[command(flatten)]
        who: NeuronArgs,
    },
}

// Parsed once per process: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum ValidatorCmd {
    /// Query the subnet's neurons every few blocks, score them, and send weights until Ctrl-C.
    Run {
        #[command(flatten)]
        who: NeuronArgs,
        #[command(flatten)]
        p2p: P2pArgs,
        #[command(flatten)]
        task: TaskArgs,
        /// Inference: rows per query.
        #[arg(long, default_value_t = 8)]
        batch: u32,
        /// Inference on a transformer: tokens per sequence.
        #[arg(long, default_value_t = 16)]
        seq: u32,
        /// Blocks between rounds.
        #[arg(long, default_value_t = 10)]
        interval_blocks: u64,
        /// Matrix side of the compute task.
        #[arg(long, default_value_t = 256)]
        size: u32,
        /// Latency at which a correct answer scores half of an instant one.
        #[arg(long, default_value_t = 200)]
        half_ms: u64,
        /// Seconds a miner has to answer.
        #[arg(long, default_value_t = 10)]
        query_timeout: u64,
        /// Queries in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Dial loopback and private addresses found in the DHT (a local network).
        #[arg(long)]
        allow_private_addrs: bool,
        /// Where wrong answers' signed evidence is kept (default: beside the status file).
        #[arg(long)]
        evidence_dir: Option<PathBuf>,
        /// Stop after this many rounds.
        #[arg(long)]
        rounds: Option<u64>,
    },
    /// A running validator's status and last round, with whether it is alive.
    Status {
        #[command(flatten)]
        who: NeuronArgs,
    },
}

fn parse_alpha(s: &str) -> Result<u64, String> {
    agora_core::parse_tao(s).map_err(|e| e.to_string())
}

impl NeuronArgs {
    fn status_file(&self, role: &str) -> anyhow::Result<PathBuf> {
        match &self.status_file {
            Some(p) => Ok(p.clone()),
            None => Ok(status::default_path(
                &self.sign.wallet.dir()?.wallet_path(&self.sign.name)?,
                role,
                self.netuid,
                &self.hotkey,
            )),
        }
    }

    fn hotkey(&self) -> anyhow::Result<agora_core::Keypair> {
        self.sign.key(&KeyRole::Hotkey(self.hotkey.clone()))
    }

    /// Who joins the network, and where (the hotkey unlocked from the wallet).
    fn joining(&self, p2p: &P2pArgs, model: Option<agora_core::Hash>) -> anyhow::Result<Joining> {
        Ok(Joining {
            rpc_url: self.sign.rpc.rpc_url.clone(),
            netuid: self.netuid,
            hotkey: self.hotkey()?,
            hotkey_name: self.hotkey.clone(),
            model,
            p2p_addr: p2p.p2p_addr.clone(),
            bootnodes: p2p.bootnodes.clone(),
        })
    }
}

fn show_status(who: &NeuronArgs, role: &str, out: Out) -> anyhow::Result<()> {
    let v = status::read(&who.status_file(role)?)?;
    out.print(&v, || {
        let alive = if v["running"] == true {
            "running"
        } else {
            "NOT RUNNING"
        };
        let mut lines = vec![format!(
            "{role} uid {} on subnet {} ({alive}), head {}, hotkey {}",
            v["uid"], v["netuid"], v["head"], v["hotkey"]
        )];
        if role == "miner" {
            let q = &v["queries"];
            lines.push(format!(
                "queries: {} received, {} answered, refused {}, task calls {}",
                q["received"], q["answered"], q["refused"], q["task_calls"]
            ));
        } else {
            let r = &v["last_round"];
            lines.push(format!(
                "rounds: {}, last at block {}: weights {} -> {}",
                v["rounds"], r["block"], r["weights"], r["weights_sent"]
            ));
        }
        lines.join("\n")
    });
    Ok(())
}

pub async fn run_miner(cmd: MinerCmd, out: Out, log: &str) -> anyhow::Result<()> {
    match cmd {
        MinerCmd::Status { who } => show_status(&who, "miner", out),
        MinerCmd::Run {
            who,
            p2p,
            task:
                TaskArgs {
                    task,
                    model,
                    device,
                },
            fault,
            slow_ms,
            admit_stake,
            window_blocks,
            rate_limit,
            queue_max,
        } => {
            super::init_logs(log);
            let fault_wrong = fault == Some(Fault::Wrong);
            let (task, model_hash): (Arc<dyn crate::neuron::task::MinerTask>, _) = match task {
                TaskKind::Compute => {
                    let backend = Backend::auto(device.as_deref());
                    tracing::info!(device = %backend.name(), "compute backend");
                    (
                        Arc::new(ComputeMiner {
                            backend,
                            fault_wrong,
                        }),
                        None,
                    )
                }
                TaskKind::Inference => {
                    let model = model.load(device.as_deref())?;
                    let hash = model.hash;
                    (Arc::new(InferenceMiner { model, fault_wrong }), Some(hash))
                }
            };
            let cfg = MinerConfig {
                join: who.joining(&p2p, model_hash)?,
                task,
                fault,
                slow_ms,
                admit_stake,
                window_blocks,
                per_caller_per_second: rate_limit,
                queue_max,
                status_file: who.status_file("miner")?,
                metrics_addr: p2p.metrics_addr,
            };
            miner::check(&cfg)?;
            miner::run(cfg).await
        }
    }
}

pub async fn run_validator(cmd: ValidatorCmd, out: Out, log: &str) -> anyhow::Result<()> {
    match cmd {
        ValidatorCmd::Status { who } => show_status(&who, "validator", out),
        ValidatorCmd::Run {
            who,
            p2p,
            task:
                TaskArgs {
                    task,
                    model,
                    device,
                },
            batch,
            seq,
            interval_blocks,
            size,
            half_ms,
            query_timeout,
            concurrency,
            allow_private_addrs,
            evidence_dir,
            rounds,
        } => {
            super::init_logs(log);
            if size == 0 || size > MAX_N {
                anyhow::bail!("--size must be in 1..={MAX_N}");
            }
            let (task, model_hash): (Arc<dyn crate::neuron::task::ValidatorTask>, _) = match task {
                TaskKind::Compute => (
                    Arc::new(ComputeValidator {
                        n: size,
                        half_ms,
                        secret: rand::random(),
                    }),
                    None,
                ),
                TaskKind::Inference => {
                    let max = crate::neuron::inference_task::MAX_BATCH;
                    if batch == 0 || batch > max {
                        anyhow::bail!("--batch must be in 1..={max}");
                    }
                    let model = model.load(device.as_deref())?;
                    let hash = model.hash;
                    (
                        Arc::new(InferenceValidator {
                            model,
                            batch,
                            seq,
                            half_ms,
                            secret: rand::random(),
                        }),
                        Some(hash),
                    )
                }
            };
            let status_file = who.status_file("validator")?;
            let evidence_dir =
                evidence_dir.unwrap_or_else(|| status_file.with_extension("evidence"));
            validator::run(ValidatorConfig {
                join: who.joining(&p2p, model_hash)?,
                task,
                interval_blocks,
                query_timeout: Duration::from_secs(query_timeout),
                concurrency,
                allow_private: allow_private_addrs,
                status_file,
                evidence_dir,
                rounds,
                metrics_addr: p2p.metrics_addr,
            })
            .await
        }
    }
}
