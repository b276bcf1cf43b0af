//! The subnets and neurons of `agora testnet up`: wallets made and funded in genesis at
//! init, then, once the chain runs, each subnet created, started and populated through the
//! same `agora` commands a user would type (run as child processes with `--json`), and the
//! miners and validators started as `agora miner run` / `agora validator run` processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use agora_core::genesis::GenesisBalance;
use agora_core::{Genesis, Keypair};
use anyhow::{bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Out;
use crate::wallet::{KeyRole, Secret, WalletDir};

/// What runs on a local network besides its nodes.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct PlanArgs {
    /// Subnets to create, each with its own miners and validators (0: nodes only).
    #[arg(long, default_value_t = 1)]
    pub subnets: usize,
    /// Miners per subnet.
    #[arg(long, default_value_t = 3)]
    pub miners: usize,
    /// Validator neurons per subnet (they query the miners and set weights).
    #[arg(long, default_value_t = 1)]
    pub validator_neurons: usize,
    /// Of each subnet's miners, this many answer wrong on purpose (`--fault wrong`).
    #[arg(long, default_value_t = 1)]
    pub faulty: usize,
    /// The subnets' task.
    #[arg(long, value_enum, default_value = "compute")]
    pub task: super::neuron::TaskKind,
    /// Inference: the model file (default: `agora compute example-model gpt`).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

impl PlanArgs {
    /// Nodes only.
    pub fn none() -> Self {
        PlanArgs {
            subnets: 0,
            miners: 0,
            validator_neurons: 0,
            faulty: 0,
            task: super::neuron::TaskKind::Compute,
            model: None,
        }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        if self.subnets > 8 {
            bail!("--subnets must be at most 8");
        }
        if self.subnets > 0 && (self.miners == 0 || self.validator_neurons == 0) {
            bail!("each subnet needs at least one miner and one validator neuron");
        }
        if self.miners + self.validator_neurons > 32 {
            bail!("at most 32 neurons per subnet on a local network");
        }
        if self.faulty > self.miners {
            bail!(
                "--faulty {} is more than the {} miners",
                self.faulty,
                self.miners
            );
        }
        Ok(())
    }
}

/// One wallet of the plan: a coldkey (funded in genesis) with a `default` hotkey.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedWallet {
    pub name: String,
    pub netuid: u16,
    /// owner, validator or miner.
    pub role: String,
    pub faulty: bool,
}

/// The plan, as `plan.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub args: PlanArgs,
    pub wallet_dir: PathBuf,
    pub password_file: PathBuf,
    pub wallets: Vec<PlannedWallet>,
}

/// A neuron process of the network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NeuronEntry {
    pub name: String,
    pub netuid: u16,
    pub role: String,
    pub faulty: bool,
    pub status_file: PathBuf,
    pub log: PathBuf,
    pub argv: Vec<String>,
}

const FUNDS_RAO: u64 = 100_000 * 1_000_000_000;
/// What each validator neuron stakes on its hotkey.
const VALIDATOR_STAKE: &str = "100";

pub fn plan_path(dir: &Path) -> PathBuf {
    dir.join("plan.json")
}

pub fn neurons_path(dir: &Path) -> PathBuf {
    dir.join("neurons.json")
}

/// Make the wallets (random keys, encrypted with a password kept in the directory) and
/// return the balances that fund them in genesis; write `plan.json`.
pub fn prepare(args: &PlanArgs, dir: &Path) -> anyhow::Result<(Plan, Vec<GenesisBalance>)> {
    args.check()?;
    let wallet_dir = dir.join("wallets");
    let password_file = dir.join("wallet-password");
    let password = hex::encode(rand::random::<[u8; 16]>());
    std::fs::create_dir_all(&wallet_dir)?;
    write_private(&password_file, password.as_bytes())?;
    let wallets_root = WalletDir::new(wallet_dir.clone());
    let mut wallets = Vec::new();
    for s in 1..=args.subnets {
        let netuid = u16::try_from(s)?;
        let mut add = |name: String, role: &str, faulty: bool| -> anyhow::Result<()> {
            for r in [KeyRole::Coldkey, KeyRole::Hotkey("default".into())] {
                let secret = Secret {
                    key: Keypair::generate(&mut rand::rngs::OsRng),
                    mnemonic: None,
                };
                wallets_root.store(&name, &r, &secret, &password, false)?;
            }
            wallets.push(PlannedWallet {
                name,
                netuid,
                role: role.into(),
                faulty,
            });
            Ok(())
        };
        add(format!("sn{s}-owner"), "owner", false)?;
        for v in 0..args.validator_neurons {
            add(format!("sn{s}-validator{v}"), "validator", false)?;
        }
        for m in 0..args.miners {
            // The last `faulty` miners cheat.
            add(
                format!("sn{s}-miner{m}"),
                "miner",
                m >= args.miners - args.faulty,
            )?;
        }
    }
    let balances = wallets
        .iter()
        .map(|w| {
            Ok(GenesisBalance {
                address: wallets_root.address(&w.name, &KeyRole::Coldkey)?,
                balance_rao: FUNDS_RAO,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let plan = Plan {
        args: args.clone(),
        wallet_dir,
        password_file,
        wallets,
    };
    std::fs::write(plan_path(dir), serde_json::to_string_pretty(&plan)?)?;
    Ok((plan, balances))
}

/// Subnet parameters for a network where incentive shows within minutes: 20-block epochs,
/// weights every 2 blocks, commit-reveal off.
pub fn tune_genesis(genesis: &mut Genesis) {
    let d = &mut genesis.subnets.defaults;
    d.tempo = 20;
    d.weights_rate_limit = 2;
    d.commit_reveal = false;
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// Runs `agora` commands for the plan's wallets against one node.
struct Cli<'a> {
    exe: &'a Path,
    plan: &'a Plan,
    rpc_url: &'a str,
}

impl Cli<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.exe);
        c.args(args)
            .args(["--json", "--rpc-url", self.rpc_url])
            .arg("--wallet-dir")
            .arg(&self.plan.wallet_dir)
            .arg("--password-file")
            .arg(&self.plan.password_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Run commands concurrently; each must succeed. Their JSON outputs, in order.
    fn all(&self, commands: &[Vec<String>]) -> anyhow::Result<Vec<Value>> {
        let children = commands
            .iter()
            .map(|args| {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                self.command(&refs)
                    .spawn()
                    .with_context(|| format!("starting agora {}", args.join(" ")))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        children
            .into_iter()
            .zip(commands)
            .map(|(child, args)| {
                let out = child.wait_with_output()?;
                if !out.status.success() {
                    bail!(
                        "agora {} failed: {}{}",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stdout).trim(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                serde_json::from_slice(&out.stdout)
                    .with_context(|| format!("agora {} printed no JSON", args.join(" ")))
            })
            .collect()
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

impl Plan {
    fn of(&self, netuid: u16, role: &str) -> Vec<&PlannedWallet> {
        self.wallets
            .iter()
            .filter(|w| w.netuid == netuid && w.role == role)
            .collect()
    }

    /// The `agora` commands (without the connection and wallet flags) that set subnet
    /// `netuid` up, in steps: the commands of one step may run at once, a step waits for
    /// the one before. `model`: the inference model file, as the commands will see it.
    pub fn setup_steps(
        &self,
        netuid: u16,
        model: Option<&str>,
    ) -> anyhow::Result<Vec<Vec<Vec<String>>>> {
        let n = netuid.to_string();
        let owner = self
            .of(netuid, "owner")
            .first()
            .map(|w| w.name.clone())
            .context("plan without an owner")?;
        let mut steps = vec![
            vec![strings(&["subnet", "create", "--name", &owner])],
            vec![strings(&[
                "subnet", "start", "--netuid", &n, "--name", &owner,
            ])],
        ];
        if let Some(m) = model {
            steps.push(vec![strings(&[
                "subnet",
                "set-model",
                "--netuid",
                &n,
                "--name",
                &owner,
                "--model",
                m,
            ])]);
        }
        steps.push(
            self.of(netuid, "validator")
                .into_iter()
                .chain(self.of(netuid, "miner"))
                .map(|w| strings(&["subnet", "register", "--netuid", &n, "--name", &w.name]))
                .collect(),
        );
        steps.push(
            self.of(netuid, "validator")
                .iter()
                .map(|w| {
                    strings(&[
                        "stake",
                        "add",
                        "--netuid",
                        &n,
                        "--hotkey",
                        "default",
                        "--amount",
                        VALIDATOR_STAKE,
                        "--name",
                        &w.name,
                    ])
                })
                .collect(),
        );
        Ok(steps)
    }

    /// The neurons of the plan (everyone but the owners).
    pub fn neurons(&self) -> impl Iterator<Item = &PlannedWallet> {
        self.wallets.iter().filter(|w| w.role != "owner")
    }
}

/// Where a neuron finds what it needs, as its command line names them.
pub struct NeuronSite<'a> {
    pub exe: &'a str,
    pub wallet_dir: &'a str,
    pub password_file: &'a str,
    pub status_file: &'a str,
    pub rpc_url: &'a str,
    pub bootnode: &'a str,
    pub p2p_addr: &'a str,
    pub metrics_addr: &'a str,
    pub model: Option<&'a str>,
}

/// The command line of `w`'s neuron: `agora miner run` or `agora validator run`.
pub fn neuron_argv(w: &PlannedWallet, at: &NeuronSite<'_>) -> Vec<String> {
    let role = if w.role == "validator" {
        "validator"
    } else {
        "miner"
    };
    let netuid = w.netuid.to_string();
    let mut argv = strings(&[
        at.exe,
        role,
        "run",
        "--netuid",
        &netuid,
        "--name",
        &w.name,
        "--hotkey",
        "default",
        "--rpc-url",
        at.rpc_url,
        "--wallet-dir",
        at.wallet_dir,
        "--password-file",
        at.password_file,
        "--status-file",
        at.status_file,
        "--p2p-addr",
        at.p2p_addr,
        "--bootnodes",
        at.bootnode,
        "--device",
        "cpu",
        "--metrics-addr",
        at.metrics_addr,
    ]);
    if let Some(m) = at.model {
        argv.extend(strings(&["--task", "inference", "--model", m]));
    }
    if role == "validator" {
        argv.extend(strings(&[
            "--allow-private-addrs",
            "--interval-blocks",
            "4",
            "--size",
            "128",
        ]));
    } else {
        // Validators are admitted by their stake before the first epoch gives them a permit.
        argv.extend(strings(&["--admit-stake", "1"]));
        if w.faulty {
            argv.extend(strings(&["--fault", "wrong"]));
        }
    }
    argv
}

/// The inference model file of the plan: `--model`, or the example model written into
/// `dir` by `agora compute example-model gpt`. None for proof-of-compute.
pub fn model_file(plan: &Plan, dir: &Path, exe: &Path) -> anyhow::Result<Option<PathBuf>> {
    match (&plan.args.task, &plan.args.model) {
        (super::neuron::TaskKind::Inference, Some(m)) => Ok(Some(m.clone())),
        (super::neuron::TaskKind::Inference, None) => {
            let path = dir.join("model.safetensors");
            let p = path.display().to_string();
            let status = Command::new(exe)
                .args(["compute", "example-model", "gpt", "--out", &p, "--json"])
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("writing the example model {p} failed");
            }
            Ok(Some(path))
        }
        _ => Ok(None),
    }
}

/// Create, start and populate every subnet (through `agora` commands against `rpc_url`),
/// then describe the neuron processes to start. `bootnode`: a node's p2p address, where
/// neurons join the DHT.
pub fn setup(
    plan: &Plan,
    dir: &Path,
    exe: &Path,
    rpc_url: &str,
    bootnode: &str,
    out: Out,
) -> anyhow::Result<Vec<NeuronEntry>> {
    let cli = Cli { exe, plan, rpc_url };
    let model = model_file(plan, dir, exe)?;
    let model_arg = model.as_ref().map(|m| m.display().to_string());
    for s in 1..=plan.args.subnets {
        let netuid = u16::try_from(s)?;
        for (i, step) in plan
            .setup_steps(netuid, model_arg.as_deref())?
            .iter()
            .enumerate()
        {
            let answers = cli.all(step)?;
            if i == 0 && answers[0]["netuid"].as_u64() != Some(u64::from(netuid)) {
                bail!(
                    "subnet create answered {}, expected netuid {netuid}: was this chain set up before?",
                    answers[0]
                );
            }
        }
        out.progress(&format!(
            "subnet {netuid}: created, started, {} validators and {} miners registered ({} faulty), validators staked {VALIDATOR_STAKE} TAO each",
            plan.of(netuid, "validator").len(),
            plan.of(netuid, "miner").len(),
            plan.args.faulty
        ));
    }
    let exe = exe.display().to_string();
    let wallet_dir = plan.wallet_dir.display().to_string();
    let password_file = plan.password_file.display().to_string();
    let neurons: Vec<NeuronEntry> = plan
        .neurons()
        .map(|w| {
            let status_file = dir.join("neurons").join(format!("{}.json", w.name));
            let status = status_file.display().to_string();
            let argv = neuron_argv(
                w,
                &NeuronSite {
                    exe: &exe,
                    wallet_dir: &wallet_dir,
                    password_file: &password_file,
                    status_file: &status,
                    rpc_url,
                    bootnode,
                    p2p_addr: "/ip4/127.0.0.1/tcp/0",
                    metrics_addr: "127.0.0.1:0",
                    model: model_arg.as_deref(),
                },
            );
            NeuronEntry {
                name: w.name.clone(),
                netuid: w.netuid,
                role: if w.role == "validator" {
                    "validator"
                } else {
                    "miner"
                }
                .into(),
                faulty: w.faulty,
                log: dir.join("neurons").join(format!("{}.log", w.name)),
                status_file,
                argv,
            }
        })
        .collect();
    std::fs::write(neurons_path(dir), serde_json::to_string_pretty(&neurons)?)?;
    Ok(neurons)
}
