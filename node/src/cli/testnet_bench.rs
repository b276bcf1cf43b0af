//! `agora testnet bench`: the network measured against the single-node dev chain in one
//! run, on the same machine, with the same transactions and block time.
//!
//! - finality latency: for each new block on validator 0, the time from the proposer's
//!   header timestamp (taken when it built the block) until validator 0 reports it
//!   finalized (polled every 2 ms); p50 and p99;
//! - throughput: the same signed transfers (from funded bench accounts, many senders so no
//!   sender's queue limits it) submitted in JSON-RPC batches, round-robin over the
//!   validators' RPCs, until every one is in a finalized block.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agora_core::genesis::GenesisBalance;
use agora_core::{Call, Genesis, Keypair, SignedTransaction, Transaction};
use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

use super::testnet::{init_with, stop_all, InitArgs};
use super::Out;
use crate::client::RpcClient;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    #[arg(long, default_value_t = 1000)]
    pub block_time_ms: u64,
    /// Transfers to push through each chain.
    #[arg(long, default_value_t = 6000)]
    pub txs: usize,
    /// Blocks to time for the latency figures.
    #[arg(long, default_value_t = 20)]
    pub latency_blocks: usize,
}

const SENDERS: usize = 100;
const BATCH: usize = 100;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn senders() -> Vec<Keypair> {
    (0..SENDERS)
        .map(|i| Keypair::dev(&format!("bench-sender-{i}")))
        .collect()
}

fn funded() -> Vec<GenesisBalance> {
    senders()
        .iter()
        .map(|k| GenesisBalance {
            address: k.account(),
            balance_rao: 1_000 * agora_core::RAO_PER_TAO,
        })
        .collect()
}

/// `n` transfers, nonce-major so consecutive ones come from different senders.
fn transfers(chain_id: u64, n: usize) -> Vec<SignedTransaction> {
    let keys = senders();
    let dest = Keypair::dev("bench-sink").account();
    (0..n)
        .map(|i| {
            let k = &keys[i % SENDERS];
            Transaction {
                chain_id,
                signer: k.account(),
                nonce: (i / SENDERS) as u64,
                call: Call::Transfer { dest, amount: 1 },
                tip: 0,
            }
            .sign(k)
        })
        .collect()
}

async fn wait_height(rpc: &RpcClient, height: u64, within: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if let Ok(h) = rpc.call("chain_head", Value::Null).await {
            if h["height"].as_u64().unwrap_or(0) >= height {
                return Ok(());
            }
        }
        if start.elapsed() > within {
            bail!("no height {height} after {}s", within.as_secs());
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Submit every transaction (retrying those a full queue refused), then wait until the
/// chain seen through `watch` has included them all. Returns transfers per second.
async fn push(
    rpcs: &[RpcClient],
    watch: &RpcClient,
    txs: &[SignedTransaction],
    out: Out,
) -> anyhow::Result<f64> {
    let start_height = watch.call("chain_head", Value::Null).await?["height"]
        .as_u64()
        .unwrap_or(0);
    let started = Instant::now();
    let mut pending: Vec<&SignedTransaction> = txs.iter().collect();
    let mut round = 0usize;
    while !pending.is_empty() {
        let mut retry = Vec::new();
        for (b, chunk) in pending.chunks(BATCH).enumerate() {
            let calls: Vec<(&str, Value)> = chunk
                .iter()
                .map(|t| {
                    (
                        "tx_submit",
                        json!({"tx": format!("0x{}", hex::encode(t.encode()))}),
                    )
                })
                .collect();
            let rpc = &rpcs[(b + round) % rpcs.len()];
            let answers = rpc.batch(&calls).await?;
            for (t, a) in chunk.iter().zip(answers) {
                if let Err(e) = a {
                    match e["data"]["kind"].as_str() {
                        Some("sender_queue_full" | "mempool_full" | "future_nonce") => {
                            retry.push(*t)
                        }
                        Some("already_pending" | "stale_nonce" | "nonce_taken") => {}
                        _ => bail!("a bench transfer was refused: {e}"),
                    }
                }
            }
        }
        if !retry.is_empty() {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        pending = retry;
        round += 1;
        if started.elapsed() > Duration::from_secs(600) {
            bail!("could not submit every transfer in 10 minutes");
        }
    }
    // Count included transfers block by block.
    let mut included = 0usize;
    let mut next = start_height + 1;
    while included < txs.len() {
        let head = watch.call("chain_head", Value::Null).await?["height"]
            .as_u64()
            .unwrap_or(0);
        while next <= head {
            let b = watch.call("chain_block", json!({"height": next})).await?;
            included += b["txs"].as_array().map_or(0, Vec::len);
            next += 1;
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!(
                "only {included} of {} transfers finalized after 15 minutes",
                txs.len()
            );
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    out.progress(&format!(
        "  {} transfers finalized in {secs:.2} s",
        txs.len()
    ));
    Ok(txs.len() as f64 / secs)
}

fn spawn(argv: &[String], log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log)?;
    Command::new(&argv[0])
        .args(&argv[1..])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting a node")
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(0)
}

pub async fn run(args: BenchArgs, out: Out) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?.display().to_string();

    // The single-node dev chain.
    out.progress(&format!(
        "dev chain: 1 node, {} ms blocks",
        args.block_time_ms
    ));
    let mut genesis = Genesis::dev();
    genesis.block_time_ms = args.block_time_ms;
    genesis.balances.extend(funded());
    let gpath = dir.path().join("dev-genesis.toml");
    std::fs::write(&gpath, toml::to_string(&genesis)?)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let argv: Vec<String> = vec![
        exe.clone(),
        "node".into(),
        "--dev".into(),
        "--genesis".into(),
        gpath.display().to_string(),
        "--data-dir".into(),
        dir.path().join("dev").display().to_string(),
        "--rpc-addr".into(),
        format!("127.0.0.1:{port}"),
    ];
    let mut dev = vec![(
        "dev".to_string(),
        spawn(&argv, &dir.path().join("dev.log"))?,
    )];
    let dev_rpc = RpcClient::new(&format!("http://127.0.0.1:{port}"));
    let dev_result = async {
        wait_height(&dev_rpc, 1, Duration::from_secs(30)).await?;
        push(
            std::slice::from_ref(&dev_rpc),
            &dev_rpc,
            &transfers(genesis.chain_id, args.txs),
            out,
        )
        .await
    }
    .await;
    stop_all(&mut dev);
    let dev_tps = dev_result?;

    // The network.
    out.progress(&format!(
        "network: {} validators, {} ms blocks",
        args.validators, args.block_time_ms
    ));
    let init = InitArgs {
        validators: args.validators,
        full_nodes: 0,
        dir: dir.path().join("net"),
        block_time_ms: args.block_time_ms,
        base_port: 0,
        force: false,
        plan: super::testnet_subnets::PlanArgs::none(),
    };
    let nodes = init_with(&init, &funded(), out)?;
    let mut children = Vec::new();
    for n in &nodes.nodes {
        children.push((n.name.clone(), spawn(&n.argv, &n.log)?));
    }
    let rpcs: Vec<RpcClient> = nodes
        .nodes
        .iter()
        .map(|n| RpcClient::new(&n.rpc_url))
        .collect();
    let net_result = async {
        wait_height(&rpcs[0], 2, Duration::from_secs(60)).await?;
        // Latency: poll validator 0's head; arrival minus the proposer's build time.
        let mut latencies = Vec::new();
        let mut last = rpcs[0].call("chain_head", Value::Null).await?["height"]
            .as_u64()
            .unwrap_or(0);
        let deadline = Instant::now()
            + Duration::from_millis(args.block_time_ms * (args.latency_blocks as u64 * 3 + 10));
        while latencies.len() < args.latency_blocks && Instant::now() < deadline {
            let h = rpcs[0].call("chain_head", Value::Null).await?;
            let height = h["height"].as_u64().unwrap_or(0);
            if height > last {
                if height == last + 1 {
                    latencies
                        .push(now_ms().saturating_sub(h["timestamp_ms"].as_u64().unwrap_or(0)));
                }
                last = height;
            }
            actix_rt::time::sleep(Duration::from_millis(2)).await;
        }
        let tps = push(&rpcs, &rpcs[0], &transfers(nodes.chain_id, args.txs), out).await?;
        anyhow::Ok((latencies, tps))
    }
    .await;
    stop_all(&mut children);
    let (mut latencies, net_tps) = net_result?;
    latencies.sort_unstable();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let ratio = net_tps / dev_tps;
    let summary = json!({
        "validators": args.validators,
        "block_time_ms": args.block_time_ms,
        "transfers": args.txs,
        "finality_latency_ms": {"p50": p50, "p99": p99, "blocks": latencies.len()},
        "dev_transfers_per_s": dev_tps,
        "network_transfers_per_s": net_tps,
        "network_vs_dev": ratio,
    });
    out.print(&summary, || {
        format!(
            "finality after proposal ({} validators, {} blocks): p50 {p50} ms, p99 {p99} ms\n\
             transfers finalized per second: dev chain {dev_tps:.0}, {} validators {net_tps:.0}  (ratio {ratio:.2})",
            args.validators,
            latencies.len(),
            args.validators
        )
    });
    Ok(())
}
