//! `agora bench-query`: one validator querying `miners` miners on loopback through the real
//! query protocol (libp2p TCP + Noise + Yamux, signed queries through the miner's guard,
//! signed answers verified by the validator), closed loop with `concurrency` queries in
//! flight: requests/s and p50/p99 latency for a 1 KiB echo and for proof-of-compute
//! (products checked with Freivalds' test). With `--python`, the same measurements of the
//! axon/dendrite pattern (FastAPI + uvicorn miners, an aiohttp client, ed25519-signed
//! headers; `testnet/bench/axon_dendrite.py`) in the same run, and the ratios.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_compute::Backend;
use agora_core::Keypair;
use agora_p2p::query::{peer_of_hotkey, AllowList, Guard, GuardConfig, QueryAnswer, SignedQuery};
use agora_p2p::{Libp2pNetwork, Multiaddr, NetEvent, Network, PeerId};
use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::compute_task::{ComputeMiner, ComputeValidator};
use super::miner::Server;
use super::task::{MinerTask, ValidatorTask};
use crate::cli::Out;

const PY_SCRIPT: &str = include_str!("../../../testnet/bench/axon_dendrite.py");
const CHAIN_ID: u64 = 0xBE9C;

#[derive(clap::Args, Debug)]
pub struct QueryBenchArgs {
    /// Miners, each with its own swarm (and, for Python, its own uvicorn process).
    #[arg(long, default_value_t = 16)]
    pub miners: usize,
    /// Seconds measured per task (after a one-second warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Echo queries in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Proof-of-compute queries in flight at once.
    #[arg(long, default_value_t = 16)]
    pub compute_concurrency: usize,
    /// Matrix side of the proof-of-compute task.
    #[arg(long, default_value_t = 1024)]
    pub n: u32,
    /// Tasks to measure: echo, compute (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "echo,compute")]
    pub tasks: Vec<String>,
    /// Miners' device for the compute task (`cpu`, `gpu`, ...; default: the best GPU).
    #[arg(long)]
    pub device: Option<String>,
    /// A Python with fastapi, uvicorn, aiohttp, cryptography and numpy: measure the
    /// axon/dendrite pattern too (`testnet/bench/query.sh` makes one).
    #[arg(long)]
    pub python: Option<std::path::PathBuf>,
}

/// The body back, as it came.
struct Echo;

impl MinerTask for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn answer(&self, request: &[u8]) -> Result<Vec<u8>, String> {
        Ok(request.to_vec())
    }
    fn light(&self) -> bool {
        true
    }
}

impl ValidatorTask for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn request(&self, seed: u64) -> Vec<u8> {
        let mut body = vec![0u8; 1024];
        for (i, chunk) in body.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(seed ^ i as u64).to_le_bytes());
        }
        body
    }
    fn score(&self, request: &[u8], answer: &[u8], _: u64) -> f32 {
        if request == answer {
            1.0
        } else {
            0.0
        }
    }
    fn light(&self) -> bool {
        true
    }
}

/// One measured task.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Measured {
    pub completed: u64,
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

fn measured(mut latencies: Vec<f64>, errors: u64, seconds: f64) -> Measured {
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let i = ((latencies.len() as f64) * p) as usize;
        latencies
            .get(i.min(latencies.len().saturating_sub(1)))
            .copied()
    };
    Measured {
        completed: latencies.len() as u64,
        errors,
        seconds,
        requests_per_s: latencies.len() as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// A miner on the bench's runtime: the guard, then the task off the runtime's threads.
async fn start_miner(
    i: usize,
    task: Arc<dyn MinerTask>,
    validator: agora_core::AccountId,
) -> anyhow::Result<(PeerId, Multiaddr)> {
    let key = Keypair::dev(&format!("bench-miner-{i}"));
    let (net, mut events, addrs) = Libp2pNetwork::start(agora_p2p::NetConfig {
        chain_id: CHAIN_ID,
        genesis_hash: agora_core::Hash([0; 32]),
        key_seed: key.seed(),
        listen: "/ip4/127.0.0.1/tcp/0".parse()?,
        bootnodes: Vec::new(),
        mdns: false,
        local: true,
    })
    .await?;
    let peer = net.local_peer_id();
    let addr = addrs
        .first()
        .context("miner not listening")?
        .clone()
        .with(agora_p2p::multiaddr::Protocol::P2p(peer));
    let guard = Guard::new(
        GuardConfig {
            chain_id: CHAIN_ID,
            netuid: 1,
            task: task.name(),
            window_blocks: 1000,
            per_caller_per_second: u32::MAX,
            queue_max: 4096,
            callers_max: 16,
        },
        0,
    );
    let (mut server, mut done_rx) = Server::new(guard, task, key, None, 0)?;
    tokio::spawn(async move {
        let admit = AllowList(vec![validator]);
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Some(NetEvent::Query { peer, data, reply }) => {
                        if server.query(&net, &peer, &data, reply, 1, &admit).is_err() {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => break,
                },
                Some(done) = done_rx.recv() => server.done(&net, done),
            }
        }
    });
    Ok((peer, addr))
}

/// The validator's closed loop: `concurrency` workers, each sending its next query when the
/// last is answered and checked, round-robin over the miners, for `seconds`.
async fn drive(
    net: &Libp2pNetwork,
    miners: &[(PeerId, agora_core::AccountId)],
    task: Arc<dyn ValidatorTask>,
    key: &Keypair,
    concurrency: usize,
    seconds: f64,
) -> Measured {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let nonce = Arc::new(AtomicU64::new(super::status::now_ms() * 1000));
    let started = Instant::now();
    let workers = (0..concurrency).map(|w| {
        let (net, task, key, nonce) = (net.clone(), task.clone(), key.clone(), nonce.clone());
        let miners = miners.to_vec();
        async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            let mut i = w;
            while Instant::now() < deadline {
                let (peer, hotkey) = miners[i % miners.len()];
                i += 1;
                let n = nonce.fetch_add(1, Ordering::Relaxed);
                let q = SignedQuery::sign(CHAIN_ID, 1, task.name(), n, 1, task.request(n), &key);
                let t0 = Instant::now();
                let answer = match q.encode() {
                    Ok(bytes) => net.query(peer, bytes).await.ok(),
                    Err(_) => None,
                };
                let response = match answer.as_deref().map(QueryAnswer::decode) {
                    Some(Ok(QueryAnswer::Answered(r))) if r.verify(&q, &hotkey) => r,
                    _ => {
                        errors += 1;
                        continue;
                    }
                };
                let latency = t0.elapsed().as_secs_f64() * 1000.0;
                let ok = if task.light() {
                    task.score(&q.body, &response.body, 0) > 0.0
                } else {
                    let task = task.clone();
                    tokio::task::spawn_blocking(move || {
                        task.score(&q.body, &response.body, 0) > 0.0
                    })
                    .await
                    .unwrap_or(false)
                };
                if ok {
                    latencies.push(latency);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }
    });
    let results = futures_util::future::join_all(workers.map(tokio::spawn)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (mut all, mut errors) = (Vec::new(), 0);
    for (l, e) in results.into_iter().flatten() {
        all.extend(l);
        errors += e;
    }
    measured(all, errors, elapsed)
}

async fn agora_side(args: &QueryBenchArgs, task: &str, out: Out) -> anyhow::Result<Measured> {
    let vkey = Keypair::dev("bench-validator");
    let (miner_task, validator_task, concurrency): (
        Arc<dyn MinerTask>,
        Arc<dyn ValidatorTask>,
        usize,
    ) = match task {
        "echo" => (Arc::new(Echo), Arc::new(Echo), args.concurrency),
        "compute" => (
            Arc::new(ComputeMiner {
                backend: Backend::auto(args.device.as_deref()),
                fault_wrong: false,
            }),
            Arc::new(ComputeValidator {
                n: args.n,
                half_ms: 100,
                secret: rand::random(),
            }),
            args.compute_concurrency,
        ),
        other => bail!("unknown task {other}: echo or compute"),
    };
    let mut miners = Vec::new();
    let mut boot = Vec::new();
    for i in 0..args.miners {
        let (peer, addr) = start_miner(i, miner_task.clone(), vkey.account()).await?;
        let hotkey = Keypair::dev(&format!("bench-miner-{i}")).account();
        debug_assert_eq!(peer_of_hotkey(&hotkey), Some(peer));
        miners.push((peer, hotkey));
        boot.push(addr);
    }
    let (net, _events, _) = Libp2pNetwork::start(agora_p2p::NetConfig {
        chain_id: CHAIN_ID,
        genesis_hash: agora_core::Hash([0; 32]),
        key_seed: vkey.seed(),
        listen: "/ip4/127.0.0.1/tcp/0".parse()?,
        bootnodes: boot,
        mdns: false,
        local: true,
    })
    .await?;
    let wait = Instant::now();
    while net.peers().await.len() < args.miners {
        if wait.elapsed() > Duration::from_secs(20) {
            bail!(
                "connected to {} of {} miners",
                net.peers().await.len(),
                args.miners
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out.progress(&format!(
        "agora {task}: {} miners connected, warming up",
        args.miners
    ));
    drive(
        &net,
        &miners,
        validator_task.clone(),
        &vkey,
        concurrency,
        1.0,
    )
    .await;
    Ok(drive(
        &net,
        &miners,
        validator_task,
        &vkey,
        concurrency,
        args.seconds,
    )
    .await)
}

fn python_side(
    args: &QueryBenchArgs,
    python: &std::path::Path,
    task: &str,
) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("axon_dendrite.py");
    std::fs::write(&script, PY_SCRIPT)?;
    let concurrency = if task == "echo" {
        args.concurrency
    } else {
        args.compute_concurrency
    };
    let output = std::process::Command::new(python)
        .arg(&script)
        .args(["run", "--miners", &args.miners.to_string()])
        .args(["--seconds", &args.seconds.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--task", task, "--n", &args.n.to_string()])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "the Python axon/dendrite bench failed (does {} have fastapi, uvicorn, aiohttp, cryptography, numpy? testnet/bench/query.sh sets one up):\n{}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&output.stdout).context("the Python bench's output")?;
    Ok(Measured {
        completed: v["completed"].as_u64().unwrap_or(0),
        errors: v["errors"].as_u64().unwrap_or(0),
        seconds: v["seconds"].as_f64().unwrap_or(0.0),
        requests_per_s: v["requests_per_s"].as_f64().unwrap_or(0.0),
        p50_ms: v["p50_ms"].as_f64(),
        p99_ms: v["p99_ms"].as_f64(),
    })
}

/// What each refusal costs the miner, against one signature verification: nanoseconds per
/// `Guard::check` of a 1 KiB query refused for that reason (median of 5 runs of 400).
pub fn refusal_costs() -> anyhow::Result<Vec<(&'static str, f64)>> {
    use agora_p2p::query::QUERY_MAX_BYTES;
    let (v, stranger) = (
        Keypair::dev("bench-validator"),
        Keypair::dev("bench-stranger"),
    );
    let cfg = GuardConfig {
        chain_id: CHAIN_ID,
        netuid: 1,
        task: "echo",
        window_blocks: 10,
        per_caller_per_second: 1,
        queue_max: 1,
        callers_max: 16,
    };
    let allow = AllowList(vec![v.account()]);
    let body = vec![7u8; 1024];
    let sign = |key: &Keypair, chain: u64, nonce: u64, block: u64| {
        SignedQuery::sign(chain, 1, "echo", nonce, block, body.clone(), key)
            .encode()
            .unwrap_or_default()
    };
    let me = peer_of_hotkey(&v.account());
    let them = peer_of_hotkey(&stranger.account());
    let good = sign(&v, CHAIN_ID, 1, 100);
    let mut forged_q = SignedQuery::sign(CHAIN_ID, 1, "echo", 2, 100, body.clone(), &v);
    forged_q.signature[0] ^= 1;
    let forged = forged_q.encode().unwrap_or_default();
    let time = |kind: &'static str, bytes: &[u8], from: Option<&PeerId>, guard: &mut Guard| {
        match guard.check(bytes, from, 100, 5_000, &allow) {
            Err(r) if r.kind() == kind => {}
            other => bail!("expected a {kind} refusal, got {other:?}"),
        }
        let mut runs: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..400 {
                    let _ = std::hint::black_box(guard.check(bytes, from, 100, 5_000, &allow));
                }
                t.elapsed().as_nanos() as f64 / 400.0
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        Ok((kind, runs[2]))
    };
    let fresh = || Guard::new(cfg, 50);
    let mut out = Vec::new();
    // The reference: one verification of the query's signature.
    let q = SignedQuery::decode(&good).ok();
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..400 {
                if let Some(q) = &q {
                    std::hint::black_box(q.header.caller.verify(&q.hash().0, &q.signature));
                }
            }
            t.elapsed().as_nanos() as f64 / 400.0
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    out.push(("signature_check", runs[2]));
    let oversize = vec![0u8; QUERY_MAX_BYTES + 1];
    out.push(time("oversize", &oversize, me.as_ref(), &mut fresh())?);
    out.push(time("malformed", &[1, 2, 3], me.as_ref(), &mut fresh())?);
    let other_chain = sign(&v, 1, 1, 100);
    out.push(time(
        "wrong_chain",
        &other_chain,
        me.as_ref(),
        &mut fresh(),
    )?);
    out.push(time("bad_signature", &forged, me.as_ref(), &mut fresh())?);
    out.push(time("not_from_caller", &good, them.as_ref(), &mut fresh())?);
    let old = sign(&v, CHAIN_ID, 1, 10);
    out.push(time("stale", &old, me.as_ref(), &mut fresh())?);
    let strangers = sign(&stranger, CHAIN_ID, 1, 100);
    out.push(time(
        "not_admitted",
        &strangers,
        them.as_ref(),
        &mut fresh(),
    )?);
    // Replayed and rate limited: after one query is admitted, the same one again, then
    // another in the same second (one per second allowed).
    let mut g = fresh();
    let _ = g.check(&good, me.as_ref(), 100, 5_000, &allow);
    out.push(time("replayed", &good, me.as_ref(), &mut g)?);
    g.done();
    let next = sign(&v, CHAIN_ID, 3, 100);
    out.push(time("rate_limited", &next, me.as_ref(), &mut g)?);
    Ok(out)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.1} ms"))
}

pub fn run(args: QueryBenchArgs, out: Out) -> anyhow::Result<()> {
    if args.miners == 0 || args.concurrency == 0 || args.compute_concurrency == 0 {
        bail!("--miners and the concurrencies must be at least 1");
    }
    if args.n == 0 || args.n > super::compute_task::MAX_N {
        bail!("--n must be in 1..={}", super::compute_task::MAX_N);
    }
    // Its own runtime on its own thread: the CLI already runs inside one.
    let results = std::thread::scope(|s| {
        s.spawn(|| -> anyhow::Result<Vec<Value>> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let mut rows = Vec::new();
            for task in &args.tasks {
                let agora = rt.block_on(agora_side(&args, task, out))?;
                out.progress(&format!(
                    "agora {task}: {:.0} req/s, p50 {}, p99 {} ({} errors)",
                    agora.requests_per_s,
                    ms(agora.p50_ms),
                    ms(agora.p99_ms),
                    agora.errors
                ));
                let python = match &args.python {
                    Some(py) => {
                        out.progress(&format!(
                            "python {task}: starting {} uvicorn miners",
                            args.miners
                        ));
                        let p = python_side(&args, py, task)?;
                        if p.completed == 0 || p.errors > 0 {
                            bail!(
                                "python {task}: {} requests failed or were wrong, {} completed",
                                p.errors,
                                p.completed
                            );
                        }
                        Some(p)
                    }
                    None => None,
                };
                let ratio = python.as_ref().map(|p| {
                    json!({
                        "requests_per_s": agora.requests_per_s / p.requests_per_s.max(1e-9),
                        "p50": p.p50_ms.zip(agora.p50_ms).map(|(p, a)| p / a.max(1e-9)),
                        "p99": p.p99_ms.zip(agora.p99_ms).map(|(p, a)| p / a.max(1e-9)),
                    })
                });
                rows.push(json!({"task": task, "agora": agora, "python": python, "ratio": ratio}));
            }
            Ok(rows)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the bench thread panicked"))?
    })?;
    let costs = refusal_costs()?;
    let verify_ns = costs.first().map_or(1.0, |c| c.1);
    let refusals: Vec<Value> = costs
        .iter()
        .map(|(kind, ns)| json!({"kind": kind, "ns": ns, "vs_signature_check": ns / verify_ns}))
        .collect();
    let v = json!({
        "refusals": refusals,
        "miners": args.miners,
        "seconds": args.seconds,
        "concurrency": {"echo": args.concurrency, "compute": args.compute_concurrency},
        "n": args.n,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "results": results,
    });
    out.print(&v, || {
        let mut lines = vec![format!(
            "{} miners on loopback, {} s per task, {} cores",
            args.miners, args.seconds, v["cores"]
        )];
        for r in &results {
            let a: Measured = serde_json::from_value(r["agora"].clone())
                .unwrap_or_else(|_| measured(Vec::new(), 0, 1.0));
            lines.push(format!(
                "{:8} agora  {:>9.0} req/s  p50 {:>9}  p99 {:>9}",
                r["task"].as_str().unwrap_or(""),
                a.requests_per_s,
                ms(a.p50_ms),
                ms(a.p99_ms)
            ));
            if let Ok(p) = serde_json::from_value::<Measured>(r["python"].clone()) {
                lines.push(format!(
                    "{:8} python {:>9.0} req/s  p50 {:>9}  p99 {:>9}",
                    "",
                    p.requests_per_s,
                    ms(p.p50_ms),
                    ms(p.p99_ms)
                ));
                lines.push(format!(
                    "{:8} ratio  {:>9.1}x         p50 {:.1}x lower, p99 {:.1}x lower",
                    "",
                    r["ratio"]["requests_per_s"].as_f64().unwrap_or(0.0),
                    r["ratio"]["p50"].as_f64().unwrap_or(0.0),
                    r["ratio"]["p99"].as_f64().unwrap_or(0.0)
                ));
            }
        }
        lines.push(format!(
            "refusal cost per query (1 KiB body) vs one signature check ({:.1} us):",
            verify_ns / 1000.0
        ));
        for (kind, ns) in costs.iter().skip(1) {
            lines.push(format!(
                "  {kind:16} {:>8.2} us  {:>5.2}x",
                ns / 1000.0,
                ns / verify_ns
            ));
        }
        lines.join("\n")
    });
    Ok(())
}
