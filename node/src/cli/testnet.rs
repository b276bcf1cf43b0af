//! `agora testnet`: a local multi-process network in one command. `init` writes the
//! genesis, one validator key per validator and `nodes.json` (each node's name, data dir,
//! addresses, peer id and the exact argv that starts it); `up` starts them as child
//! processes, shows live progress and stops them on Ctrl-C; `status` reads every node's RPC.
//! A small orchestration layer: nodes are ordinary `agora node` processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_core::{Genesis, Keypair};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Out;
use crate::client::RpcClient;

#[derive(Subcommand, Debug)]
pub enum TestnetCmd {
    /// Write a local network's genesis, validator keys and nodes.json into a directory.
    Init(InitArgs),
    /// Start a local network (init first if the directory has none) and show its progress
    /// until Ctrl-C, which stops every node cleanly.
    Up(UpArgs),
    /// Height, finalized height, round and peers of every node of a local network, and its
    /// subnets and neurons.
    Status {
        #[arg(long, default_value = "./testnet")]
        dir: PathBuf,
    },
    /// Stop a network started with `up --detach`: every node and neuron, by its PID.
    Down {
        #[arg(long, default_value = "./testnet")]
        dir: PathBuf,
    },
    /// Write the same network as a Docker Compose bundle (Dockerfile, docker-compose.yml,
    /// genesis, keys, wallets, setup script, README) for one host or many.
    Compose(super::testnet_compose::ComposeArgs),
    /// Measure a local network: finality latency after proposal, and transfers finalized
    /// per second on N validators against the single-node dev chain, in one run.
    Bench(super::testnet_bench::BenchArgs),
}

#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    /// Validators (equal voting power).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Full nodes (follow and verify, no vote).
    #[arg(long, default_value_t = 0)]
    pub full_nodes: usize,
    #[arg(long, default_value = "./testnet")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 1000)]
    pub block_time_ms: u64,
    /// First p2p port; node i listens on P+i and serves RPC on P+100+i. 0: free ports
    /// picked now.
    #[arg(long, default_value_t = 30400)]
    pub base_port: u16,
    /// Replace an existing network in the directory (its data is deleted).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub plan: super::testnet_subnets::PlanArgs,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub init: InitArgs,
    /// Stop by itself once every node has finalized this height (scripts, CI).
    #[arg(long)]
    pub until_height: Option<u64>,
    /// Leave a node that exits (or is killed) down instead of restarting it.
    #[arg(long)]
    pub no_restart: bool,
    /// Start everything and return, leaving it running (`testnet status|down --dir D`).
    #[arg(long)]
    pub detach: bool,
}

/// One node of a local network, as nodes.json lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeEntry {
    pub name: String,
    pub role: String,
    pub account: Option<String>,
    pub peer_id: String,
    pub data_dir: PathBuf,
    pub rpc_url: String,
    pub p2p_addr: String,
    pub key_file: Option<PathBuf>,
    pub log: PathBuf,
    pub argv: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodesFile {
    pub chain_id: u64,
    pub genesis: PathBuf,
    pub genesis_hash: String,
    pub block_time_ms: u64,
    pub nodes: Vec<NodeEntry>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn nodes_path(dir: &Path) -> PathBuf {
    dir.join("nodes.json")
}

pub fn read_nodes(dir: &Path) -> anyhow::Result<NodesFile> {
    let path = nodes_path(dir);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (run `agora testnet init --dir {}` first)",
            path.display(),
            dir.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a nodes file", path.display()))
}

pub fn init(args: &InitArgs, out: Out) -> anyhow::Result<NodesFile> {
    init_with(args, &[], out)
}

/// [`init`], with `extra` accounts funded in genesis (benchmarks).
pub fn init_with(
    args: &InitArgs,
    extra: &[agora_core::genesis::GenesisBalance],
    out: Out,
) -> anyhow::Result<NodesFile> {
    if args.validators == 0 || args.validators > 64 {
        bail!("--validators must be 1..=64");
    }
    if args.full_nodes > 64 {
        bail!("--full-nodes must be at most 64");
    }
    if !(100..=600_000).contains(&args.block_time_ms) {
        bail!("--block-time-ms must be 100..=600000");
    }
    let dir = &args.dir;
    if nodes_path(dir).exists() {
        if !args.force {
            bail!("{} already holds a network (nodes.json): use it with `agora testnet up --dir {}`, or pass --force to replace it", dir.display(), dir.display());
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let exe = std::env::current_exe().context("finding the agora binary")?;

    let (plan, funded) = if args.plan.subnets > 0 {
        let (plan, funded) = super::testnet_subnets::prepare(&args.plan, &dir)?;
        (Some(plan), funded)
    } else {
        (None, Vec::new())
    };
    let keys: Vec<Keypair> = (0..args.validators)
        .map(|_| Keypair::generate(&mut rand::rngs::OsRng))
        .collect();
    let mut genesis = Genesis::dev();
    genesis.block_time_ms = args.block_time_ms;
    genesis.authorities = keys.iter().map(Keypair::account).collect();
    genesis.balances.extend_from_slice(extra);
    genesis.balances.extend(funded);
    if plan.is_some() {
        super::testnet_subnets::tune_genesis(&mut genesis);
    }
    let genesis_path = dir.join("genesis.toml");
    std::fs::write(&genesis_path, toml::to_string(&genesis)?)?;
    let genesis_hash = genesis.build()?.block.hash();

    let total = args.validators + args.full_nodes;
    let mut ports = Vec::with_capacity(total);
    for i in 0..total {
        ports.push(if args.base_port == 0 {
            (free_port()?, free_port()?)
        } else {
            let p2p =
                u16::try_from(usize::from(args.base_port) + i).context("port out of range")?;
            let rpc = u16::try_from(usize::from(args.base_port) + 100 + i)
                .context("port out of range")?;
            (p2p, rpc)
        });
    }
    let mut nodes = Vec::with_capacity(total);
    for (i, &(p2p, rpc)) in ports.iter().enumerate() {
        let validator = keys.get(i);
        let name = match validator {
            Some(_) => format!("validator-{i}"),
            None => format!("full-{}", i - args.validators),
        };
        let data_dir = dir.join(&name);
        std::fs::create_dir_all(&data_dir)?;
        let (key_file, identity) = match validator {
            Some(k) => {
                let path = dir.join(format!("{name}.key"));
                crate::validator_key::write(&path, k)?;
                (Some(path), k.seed())
            }
            None => (None, crate::validator_key::node_key(&data_dir)?.seed()),
        };
        let peer_id = agora_p2p::peer_id_from_seed(identity)?;
        nodes.push(NodeEntry {
            account: validator.map(|k| k.account().to_string()),
            role: if validator.is_some() {
                "validator"
            } else {
                "full"
            }
            .into(),
            peer_id: peer_id.to_string(),
            rpc_url: format!("http://127.0.0.1:{rpc}"),
            p2p_addr: format!("/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer_id}"),
            log: data_dir.join("node.log"),
            data_dir,
            key_file,
            name,
            argv: Vec::new(),
        });
    }
    let bootnodes: Vec<String> = nodes
        .iter()
        .filter(|n| n.role == "validator")
        .map(|n| n.p2p_addr.clone())
        .collect();
    for (i, n) in nodes.iter_mut().enumerate() {
        let (p2p, rpc) = ports[i];
        let mut argv = vec![
            exe.display().to_string(),
            "node".into(),
            "--genesis".into(),
            genesis_path.display().to_string(),
            "--data-dir".into(),
            n.data_dir.display().to_string(),
            "--rpc-addr".into(),
            format!("127.0.0.1:{rpc}"),
            "--p2p-addr".into(),
            format!("/ip4/127.0.0.1/tcp/{p2p}"),
        ];
        let others: Vec<&String> = bootnodes.iter().filter(|b| **b != n.p2p_addr).collect();
        if !others.is_empty() {
            argv.push("--bootnodes".into());
            argv.push(
                others
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        if let Some(k) = &n.key_file {
            argv.push("--validator-key".into());
            argv.push(k.display().to_string());
        }
        n.argv = argv;
    }
    let file = NodesFile {
        chain_id: genesis.chain_id,
        genesis: genesis_path,
        genesis_hash: genesis_hash.to_string(),
        block_time_ms: args.block_time_ms,
        nodes,
    };
    std::fs::write(nodes_path(&dir), serde_json::to_string_pretty(&file)?)?;
    out.progress(&format!(
        "wrote {} ({} validators, {} full nodes, {} ms blocks)",
        dir.display(),
        args.validators,
        args.full_nodes,
        args.block_time_ms
    ));
    if let Some(p) = &plan {
        out.progress(&format!(
            "planned {} subnet(s) with {} validator neuron(s) and {} miner(s) each ({} faulty); wallets funded in genesis under {}",
            p.args.subnets,
            p.args.validator_neurons,
            p.args.miners,
            p.args.faulty,
            p.wallet_dir.display()
        ));
    }
    Ok(file)
}

/// Every node's view: head, consensus round and peers (errors as values: a node that is
/// down is reported, not fatal).
pub async fn poll(nodes: &NodesFile) -> Vec<Value> {
    let mut rows = Vec::with_capacity(nodes.nodes.len());
    for n in &nodes.nodes {
        let rpc = RpcClient::new(&n.rpc_url).with_timeout(Duration::from_secs(2));
        let head = rpc.call("chain_head", Value::Null).await;
        let status = rpc.call("consensus_status", Value::Null).await;
        let peers = rpc.call("net_peers", Value::Null).await;
        rows.push(match head {
            Ok(h) => json!({
                "name": n.name,
                "role": n.role,
                "up": true,
                "finalized_height": h["height"],
                "head": h["hash"],
                "consensus_height": status.as_ref().ok().map(|s| s["height"].clone()),
                "round": status.as_ref().ok().map(|s| s["round"].clone()),
                "peers": peers.as_ref().ok().and_then(|p| p.as_array().map(Vec::len)),
                "rpc_url": n.rpc_url,
            }),
            Err(e) => json!({"name": n.name, "role": n.role, "up": false, "error": e.to_string(), "rpc_url": n.rpc_url}),
        });
    }
    rows
}

fn row_text(r: &Value) -> String {
    if r["up"] == true {
        format!(
            "{} h={} #{} r={} peers={}",
            r["name"].as_str().unwrap_or("?"),
            r["finalized_height"],
            r["head"]
                .as_str()
                .map_or("?", |h| h.get(2..8).unwrap_or("?")),
            r["round"].as_u64().map_or("-".into(), |x| x.to_string()),
            r["peers"].as_u64().map_or("-".into(), |x| x.to_string())
        )
    } else {
        format!("{} down", r["name"].as_str().unwrap_or("?"))
    }
}

pub fn stop_all(children: &mut [(String, Child)]) {
    for (_, c) in children.iter() {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
    }
    for (name, c) in children.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match c.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    eprintln!("{name} did not stop in 10 s: killing it");
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
            }
        }
    }
}

/// A node that keeps dying is left down after this many restarts.
const RESTARTS_MAX: u32 = 5;

/// A process of the network: a node or a neuron.
#[derive(Debug, Clone)]
struct Launch {
    name: String,
    argv: Vec<String>,
    log: PathBuf,
}

impl From<&NodeEntry> for Launch {
    fn from(n: &NodeEntry) -> Self {
        Launch {
            name: n.name.clone(),
            argv: n.argv.clone(),
            log: n.log.clone(),
        }
    }
}

impl From<&super::testnet_subnets::NeuronEntry> for Launch {
    fn from(n: &super::testnet_subnets::NeuronEntry) -> Self {
        Launch {
            name: n.name.clone(),
            argv: n.argv.clone(),
            log: n.log.clone(),
        }
    }
}

/// Start `l`, its stderr appended to its log; `detach`: in a process group of its own, so
/// it outlives the terminal that started it.
fn start_process(l: &Launch, detach: bool) -> anyhow::Result<Child> {
    if let Some(d) = l.log.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&l.log)
        .with_context(|| format!("opening {}", l.log.display()))?;
    let (program, rest) = l.argv.split_first().context("an empty command line")?;
    let mut c = Command::new(program);
    c.args(rest)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if detach {
        use std::os::unix::process::CommandExt;
        c.process_group(0);
    }
    c.spawn().with_context(|| format!("starting {}", l.name))
}

fn pids_path(dir: &Path) -> PathBuf {
    dir.join("pids.json")
}

/// Whether `pid` is alive and runs the agora binary (a recycled PID is left alone).
fn is_ours(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("agora"))
        .unwrap_or(false)
}

/// Stop the processes `up --detach` left running: SIGTERM, then SIGKILL after 15 s.
fn down(dir: &Path, out: Out) -> anyhow::Result<()> {
    let path = pids_path(dir);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no {}: nothing was started with `agora testnet up --detach --dir {}`",
            path.display(),
            dir.display()
        )
    })?;
    let procs: Vec<(String, u32)> =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let alive: Vec<&(String, u32)> = procs.iter().filter(|(_, pid)| is_ours(*pid)).collect();
    for (_, pid) in &alive {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive.iter().any(|(_, pid)| is_ours(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut killed = Vec::new();
    for (name, pid) in &alive {
        if is_ours(*pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            killed.push(name.clone());
        }
    }
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    out.print(
        &json!({"stopped": alive.len(), "killed": killed, "dir": dir}),
        || {
            let mut t = format!("stopped {} processes", alive.len());
            if !killed.is_empty() {
                t.push_str(&format!(
                    " ({} did not stop in 15 s and were killed: {})",
                    killed.len(),
                    killed.join(", ")
                ));
            }
            t
        },
    );
    Ok(())
}

/// Wait until node 0 has finalized `height` (the chain runs), at most `secs`.
async fn wait_for_height(nodes: &NodesFile, height: u64, secs: u64) -> anyhow::Result<()> {
    let first = nodes.nodes.first().context("a network without nodes")?;
    let rpc = RpcClient::new(&first.rpc_url).with_timeout(Duration::from_secs(2));
    let start = Instant::now();
    loop {
        if let Ok(h) = rpc.call("chain_head", Value::Null).await {
            if h["height"].as_u64().is_some_and(|x| x >= height) {
                return Ok(());
            }
        }
        if start.elapsed() > Duration::from_secs(secs) {
            bail!(
                "{} did not finalize height {height} within {secs} s (see its node.log)",
                first.name
            );
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The subnets and their neurons at node 0, with each neuron's wallet name, role and
/// status (from its status file).
async fn subnets_view(dir: &Path, nodes: &NodesFile) -> Vec<Value> {
    let Ok(neurons) = std::fs::read_to_string(super::testnet_subnets::neurons_path(dir))
        .map_err(anyhow::Error::from)
        .and_then(|t| {
            Ok(serde_json::from_str::<
                Vec<super::testnet_subnets::NeuronEntry>,
            >(&t)?)
        })
    else {
        return Vec::new();
    };
    let Some(first) = nodes.nodes.first() else {
        return Vec::new();
    };
    let plan: Option<super::testnet_subnets::Plan> =
        std::fs::read_to_string(super::testnet_subnets::plan_path(dir))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
    let wallets = plan
        .as_ref()
        .map(|p| crate::wallet::WalletDir::new(p.wallet_dir.clone()));
    let rpc = RpcClient::new(&first.rpc_url).with_timeout(Duration::from_secs(3));
    let mut netuids: Vec<u16> = neurons.iter().map(|n| n.netuid).collect();
    netuids.dedup();
    let mut out = Vec::new();
    for netuid in netuids {
        let Ok(m) = rpc
            .call(
                "subnet_metagraph",
                json!({"netuid": netuid, "weights": false}),
            )
            .await
        else {
            out.push(json!({"netuid": netuid, "error": "node 0 does not answer"}));
            continue;
        };
        let mut rows = Vec::new();
        for n in neurons.iter().filter(|n| n.netuid == netuid) {
            let hotkey = wallets.as_ref().and_then(|w| {
                w.address(&n.name, &crate::wallet::KeyRole::Hotkey("default".into()))
                    .ok()
            });
            let on_chain = m["neurons"].as_array().and_then(|all| {
                all.iter().find(|x| {
                    hotkey.is_some_and(|h| {
                        serde_json::from_value::<agora_core::AccountId>(x["hotkey"].clone()).ok()
                            == Some(h)
                    })
                })
            });
            let status = crate::neuron::status::read(&n.status_file).ok();
            rows.push(json!({
                "name": n.name,
                "role": n.role,
                "faulty": n.faulty,
                "hotkey": hotkey,
                "uid": on_chain.map(|x| x["uid"].clone()),
                "incentive": on_chain.map(|x| x["incentive"].clone()),
                "dividends": on_chain.map(|x| x["dividends"].clone()),
                "stake": on_chain.map(|x| x["stake"].clone()),
                "running": status.as_ref().map(|s| s["running"].clone()),
                "answered": status.as_ref().map(|s| s["queries"]["answered"].clone()),
                "rounds": status.as_ref().map(|s| s["rounds"].clone()),
            }));
        }
        out.push(json!({
            "netuid": netuid,
            "price_rao": m["price_rao"],
            "emission_share": m["emission_share"],
            "pool_tao": m["pool_tao"],
            "epoch_index": m["epoch_index"],
            "blocks_to_next_epoch": m["blocks_to_next_epoch"],
            "neurons": rows,
        }));
    }
    out
}

fn subnet_line(s: &Value) -> String {
    let mut miners: Vec<&Value> = s["neurons"]
        .as_array()
        .map(|a| a.iter().filter(|n| n["role"] == "miner").collect())
        .unwrap_or_default();
    miners.sort_by_key(|n| std::cmp::Reverse(n["incentive"].as_u64().unwrap_or(0)));
    let top: Vec<String> = miners
        .iter()
        .map(|n| {
            format!(
                "{}{} {:.3}",
                n["name"].as_str().unwrap_or("?"),
                if n["faulty"] == true { "(faulty)" } else { "" },
                n["incentive"].as_u64().unwrap_or(0) as f64 / 65_535.0
            )
        })
        .collect();
    format!(
        "subnet {}: price {} TAO/alpha, share {:.3}, epoch {} (next in {} blocks); incentive: {}",
        s["netuid"],
        agora_core::format_tao(s["price_rao"].as_u64().unwrap_or(0)),
        s["emission_share"].as_f64().unwrap_or(0.0),
        s["epoch_index"],
        s["blocks_to_next_epoch"],
        top.join(", ")
    )
}

async fn up(args: UpArgs, out: Out) -> anyhow::Result<()> {
    let dir = args.init.dir.clone();
    if let Ok(text) = std::fs::read_to_string(pids_path(&dir)) {
        let procs: Vec<(String, u32)> = serde_json::from_str(&text).unwrap_or_default();
        if procs.iter().any(|(_, pid)| is_ours(*pid)) {
            bail!("a network is already running from {} (started with --detach): `agora testnet down --dir {}` stops it", dir.display(), dir.display());
        }
    }
    let nodes = if nodes_path(&dir).exists() && !args.init.force {
        read_nodes(&dir)?
    } else {
        init(&args.init, out)?
    };
    let dir = dir.canonicalize()?;
    let mut launches: Vec<Launch> = nodes.nodes.iter().map(Launch::from).collect();
    let mut children: Vec<(String, Child)> = Vec::new();
    for l in &launches {
        match start_process(l, args.detach) {
            Ok(c) => children.push((l.name.clone(), c)),
            Err(e) => {
                stop_all(&mut children);
                return Err(e);
            }
        }
    }
    out.progress(&format!(
        "started {} nodes (logs: <dir>/<node>/node.log)",
        children.len()
    ));
    if let Some(first) = nodes.nodes.first() {
        out.progress(&format!(
            "dashboard: {url}/dashboard  metrics: {url}/metrics  RPC: {url}",
            url = first.rpc_url
        ));
    }
    let plan_file = super::testnet_subnets::plan_path(&dir);
    if plan_file.exists() {
        let neurons = match set_up_subnets(&dir, &nodes, out).await {
            Ok(n) => n,
            Err(e) => {
                stop_all(&mut children);
                return Err(e);
            }
        };
        for n in &neurons {
            let l = Launch::from(n);
            match start_process(&l, args.detach) {
                Ok(c) => children.push((l.name.clone(), c)),
                Err(e) => {
                    stop_all(&mut children);
                    return Err(e);
                }
            }
            launches.push(l);
        }
        out.progress(&format!(
            "started {} neurons (logs and status: <dir>/neurons/)",
            neurons.len()
        ));
    }
    if args.detach {
        let pids: Vec<(String, u32)> = children.iter().map(|(n, c)| (n.clone(), c.id())).collect();
        std::fs::write(pids_path(&dir), serde_json::to_string_pretty(&pids)?)?;
        out.print(
            &json!({
                "detached": pids.len(),
                "dir": dir,
                "rpc_url": nodes.nodes.first().map(|n| n.rpc_url.clone()),
                "dashboard": nodes.nodes.first().map(|n| format!("{}/dashboard", n.rpc_url)),
            }),
            || format!("{} processes running in the background; `agora testnet status --dir {d}` watches them, `agora testnet down --dir {d}` stops them", pids.len(), d = dir.display()),
        );
        return Ok(());
    }
    out.progress("Ctrl-C stops everything");
    let started = Instant::now();
    let mut restarts = vec![0u32; children.len()];
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = actix_rt::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    let reason = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break "Ctrl-C".to_string(),
            _ = sigterm.recv() => break "SIGTERM".to_string(),
            _ = tick.tick() => {}
        }
        for (i, (name, c)) in children.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                restarts[i] += 1;
                if args.no_restart || restarts[i] > RESTARTS_MAX {
                    if restarts[i] == RESTARTS_MAX + 1 || args.no_restart {
                        out.progress(&format!(
                            "{name} exited ({status}); not restarting it (see its log)"
                        ));
                    }
                    continue;
                }
                out.progress(&format!("{name} exited ({status}); restarting it"));
                match start_process(&launches[i], false) {
                    Ok(new) => *c = new,
                    Err(e) => out.progress(&format!("{name}: {e:#}")),
                }
            }
        }
        let rows = poll(&nodes).await;
        let line: Vec<String> = rows.iter().map(row_text).collect();
        out.progress(&format!(
            "[{:>4}s] {}",
            started.elapsed().as_secs(),
            line.join(" | ")
        ));
        ticks += 1;
        if ticks % 5 == 1 {
            for s in subnets_view(&dir, &nodes).await {
                out.progress(&format!("        {}", subnet_line(&s)));
            }
        }
        if let Some(target) = args.until_height {
            let all = rows
                .iter()
                .all(|r| r["finalized_height"].as_u64().is_some_and(|h| h >= target));
            if all {
                break format!("every node finalized height {target}");
            }
        }
    };
    out.progress(&format!("{reason}: stopping every process"));
    // Neurons first (they were started last), then the nodes.
    children.reverse();
    stop_all(&mut children);
    let rows = poll(&nodes).await;
    out.print(
        &json!({"stopped": children.len(), "reason": reason, "dir": args.init.dir, "nodes": rows}),
        || format!("stopped {} processes", children.len()),
    );
    Ok(())
}

/// Once the chain runs: the subnets created and populated (the first time), and the
/// neuron processes to start.
async fn set_up_subnets(
    dir: &Path,
    nodes: &NodesFile,
    out: Out,
) -> anyhow::Result<Vec<super::testnet_subnets::NeuronEntry>> {
    let neurons_file = super::testnet_subnets::neurons_path(dir);
    out.progress("waiting for the chain to finalize blocks");
    wait_for_height(nodes, 2, 120).await?;
    if neurons_file.exists() {
        let text = std::fs::read_to_string(&neurons_file)?;
        return serde_json::from_str(&text)
            .with_context(|| format!("reading {}", neurons_file.display()));
    }
    let text = std::fs::read_to_string(super::testnet_subnets::plan_path(dir))?;
    let plan: super::testnet_subnets::Plan = serde_json::from_str(&text)?;
    let first = nodes.nodes.first().context("a network without nodes")?;
    let exe = std::env::current_exe().context("finding the agora binary")?;
    out.progress(&format!(
        "setting up {} subnet(s) through {} (agora subnet create/start/register, stake add)",
        plan.args.subnets, first.rpc_url
    ));
    super::testnet_subnets::setup(&plan, dir, &exe, &first.rpc_url, &first.p2p_addr, out)
}

pub async fn run(cmd: TestnetCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        TestnetCmd::Init(args) => {
            let file = init(&args, out)?;
            out.print(&serde_json::to_value(&file)?, || {
                let mut text = String::new();
                for n in &file.nodes {
                    text.push_str(&format!(
                        "{:<13} {:<9} rpc {}  p2p {}\n",
                        n.name, n.role, n.rpc_url, n.p2p_addr
                    ));
                }
                text.push_str(&format!(
                    "start them all: agora testnet up --dir {}",
                    args.dir.display()
                ));
                text
            });
            Ok(())
        }
        TestnetCmd::Up(args) => up(args, out).await,
        TestnetCmd::Bench(args) => super::testnet_bench::run(args, out).await,
        TestnetCmd::Down { dir } => down(&dir, out),
        TestnetCmd::Compose(args) => super::testnet_compose::run(args, out),
        TestnetCmd::Status { dir } => {
            let nodes = read_nodes(&dir)?;
            let rows = poll(&nodes).await;
            let subnets = subnets_view(&dir, &nodes).await;
            let v = json!({"nodes": rows, "subnets": subnets});
            out.print(&v, || {
                let mut text = format!(
                    "{:<13} {:<9} {:>9} {:>7} {:>5}  head\n",
                    "node", "role", "finalized", "round", "peers"
                );
                for r in &rows {
                    if r["up"] == true {
                        text.push_str(&format!(
                            "{:<13} {:<9} {:>9} {:>7} {:>5}  {}\n",
                            r["name"].as_str().unwrap_or(""),
                            r["role"].as_str().unwrap_or(""),
                            r["finalized_height"],
                            r["round"].as_u64().map_or("-".into(), |x| x.to_string()),
                            r["peers"].as_u64().map_or("-".into(), |x| x.to_string()),
                            r["head"].as_str().unwrap_or("")
                        ));
                    } else {
                        text.push_str(&format!(
                            "{:<13} {:<9} down: {}\n",
                            r["name"].as_str().unwrap_or(""),
                            r["role"].as_str().unwrap_or(""),
                            r["error"].as_str().unwrap_or("")
                        ));
                    }
                }
                for sn in &subnets {
                    text.push_str(&subnet_line(sn));
                    text.push('\n');
                }
                text.trim_end().to_string()
            });
            Ok(())
        }
    }
}
