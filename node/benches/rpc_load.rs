//! Metagraph queries under load (issue 15 item 5): a dev node sealing a block every
//! `BLOCK_MS`, a subnet of `NEURONS` neurons, and `CLIENTS` connections asking
//! `subnet_metagraph` as fast as the node answers for `SECONDS`. Reports the request rate
//! and the block-time jitter under load against an idle window measured in the same run.
//!
//!     cargo bench -p agora-node --bench rpc_load            (release build)
//!     AGORA_BENCH_SECONDS=20 AGORA_BENCH_CLIENTS=16 cargo bench -p agora-node --bench rpc_load

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_core::{Call, Genesis, Keypair, Transaction};
use serde_json::{json, Value};

const BLOCK_MS: u64 = 1000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn post(port: u16, body: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    Ok(resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

fn call(port: u16, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let text = post(port, &body).unwrap_or_default();
    serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)["result"].clone()
}

fn submit_all(port: u16, txs: &[String]) {
    for chunk in txs.chunks(100) {
        let batch: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"jsonrpc": "2.0", "id": i, "method": "tx_submit", "params": {"tx": t}}))
            .collect();
        let _ = post(port, &Value::Array(batch).to_string());
    }
}

fn wait_height(port: u16, h: u64) {
    while call(port, "chain_head", Value::Null)["height"]
        .as_u64()
        .unwrap_or(0)
        < h
    {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Intervals between the blocks sealed in `from..=to`, from their header timestamps:
/// (mean, p99 deviation from the block time, worst deviation), in ms.
fn jitter(port: u16, from: u64, to: u64) -> (f64, f64, f64) {
    let ts: Vec<u64> = (from..=to)
        .filter_map(|h| {
            call(port, "chain_block", json!({"height": h}))["header"]["timestamp_ms"].as_u64()
        })
        .collect();
    let gaps: Vec<f64> = ts
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]) as f64)
        .collect();
    if gaps.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let mut dev: Vec<f64> = gaps.iter().map(|g| (g - BLOCK_MS as f64).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let p99 = dev[((dev.len() as f64 * 0.99) as usize).min(dev.len() - 1)];
    (mean, p99, dev[dev.len() - 1])
}

fn main() {
    let seconds = env("AGORA_BENCH_SECONDS", 10);
    let clients = env("AGORA_BENCH_CLIENTS", 8) as usize;
    let neurons = env("AGORA_BENCH_NEURONS", 256) as usize;
    let dir = tempfile::tempdir().unwrap();
    let mut g = Genesis::dev();
    g.block_time_ms = BLOCK_MS;
    g.subnets.defaults.max_allowed_uids = 4096;
    let genesis = dir.path().join("genesis.toml");
    std::fs::write(&genesis, toml::to_string(&g).unwrap()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut node = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args([
            "node",
            "--dev",
            "--rpc-addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--genesis")
        .arg(&genesis)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_height(port, 1);

    // A subnet of `neurons` neurons, registered by alice (nonces in runs of 256).
    let alice = Keypair::dev("alice");
    let sign = |nonce: u64, call: Call| {
        let stx = Transaction {
            chain_id: g.chain_id,
            signer: alice.account(),
            nonce,
            call,
            tip: 0,
        }
        .sign(&alice);
        format!("0x{}", hex::encode(stx.encode()))
    };
    submit_all(
        port,
        &[sign(
            0,
            Call::RegisterNetwork {
                hotkey: Keypair::dev("owner").account(),
            },
        )],
    );
    let h = call(port, "chain_head", Value::Null)["height"]
        .as_u64()
        .unwrap_or(0);
    wait_height(port, h + 2);
    submit_all(port, &[sign(1, Call::StartCall { netuid: 1 })]);
    let mut nonce = 2;
    let mut done = 0;
    while done < neurons {
        let n = (neurons - done).min(200);
        let txs: Vec<String> = (0..n)
            .map(|i| {
                let hotkey = Keypair::dev(&format!("neuron-{}", done + i)).account();
                sign(nonce + i as u64, Call::BurnedRegister { netuid: 1, hotkey })
            })
            .collect();
        submit_all(port, &txs);
        nonce += n as u64;
        done += n;
        let target = nonce;
        while call(
            port,
            "account_info",
            json!({"address": alice.account().to_string()}),
        )["nonce"]
            .as_u64()
            .unwrap_or(0)
            < target
        {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let n = call(port, "subnet_metagraph", json!({"netuid": 1}))["neurons"]
        .as_array()
        .map_or(0, Vec::len);
    eprintln!("subnet 1 has {n} neurons; idle window of {seconds} s");

    let idle_from = call(port, "chain_head", Value::Null)["height"]
        .as_u64()
        .unwrap_or(0);
    std::thread::sleep(Duration::from_secs(seconds));
    let idle_to = call(port, "chain_head", Value::Null)["height"]
        .as_u64()
        .unwrap_or(0);

    eprintln!("load: {clients} clients asking subnet_metagraph for {seconds} s");
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let load_from = idle_to;
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, count) = (stop.clone(), count.clone());
            std::thread::spawn(move || {
                let body = json!({"jsonrpc": "2.0", "id": 1, "method": "subnet_metagraph", "params": {"netuid": 1}}).to_string();
                while !stop.load(Ordering::Relaxed) {
                    if post(port, &body).is_ok_and(|r| r.contains("\"neurons\"")) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let load_to = call(port, "chain_head", Value::Null)["height"]
        .as_u64()
        .unwrap_or(0);
    let rate = count.load(Ordering::Relaxed) as f64 / elapsed;
    let idle = jitter(port, idle_from, idle_to);
    let load = jitter(port, load_from, load_to);
    let _ = node.kill();
    let _ = node.wait();
    let v = json!({
        "neurons": n, "clients": clients, "seconds": seconds, "block_time_ms": BLOCK_MS,
        "metagraph_per_s": rate,
        "idle": {"blocks": idle_to - idle_from, "mean_interval_ms": idle.0, "p99_deviation_ms": idle.1, "max_deviation_ms": idle.2},
        "load": {"blocks": load_to - load_from, "mean_interval_ms": load.0, "p99_deviation_ms": load.1, "max_deviation_ms": load.2},
    });
    println!("{v}");
    eprintln!(
        "{rate:.0} metagraph queries/s ({n} neurons, {clients} clients); block interval idle {:.0} ms (worst deviation {:.0} ms), under load {:.0} ms (worst {:.0} ms)",
        idle.0, idle.2, load.0, load.2
    );
}
