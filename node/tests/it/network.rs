//! A real multi-process network on loopback: 4 validators and a full node started from
//! `agora testnet init`'s nodes.json, a transfer finalized everywhere, a validator killed
//! with SIGKILL while the rest keep finalizing, its restart and catch-up, and the full node
//! agreeing on every block hash with a valid certificate.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_core::Keypair;
use serde_json::{json, Value};

use crate::harness::*;

/// A node process started from its nodes.json argv; SIGKILLed on drop.
struct Proc {
    name: String,
    argv: Vec<String>,
    log: std::path::PathBuf,
    child: Option<Child>,
    port: u16,
}

impl Proc {
    fn start(entry: &Value) -> Proc {
        let argv: Vec<String> = entry["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let port = entry["rpc_url"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut p = Proc {
            name: entry["name"].as_str().unwrap().to_string(),
            argv,
            log: Path::new(entry["log"].as_str().unwrap()).to_path_buf(),
            child: None,
            port,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BIN)
            .args(&self.argv[1..])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }

    fn call(&self, method: &str, params: Value) -> Option<Value> {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let v: Value = serde_json::from_str(&rpc_raw(self.port, &body).ok()?).ok()?;
        v.get("result").cloned()
    }

    fn height(&self) -> Option<u64> {
        self.call("chain_head", Value::Null)?["height"].as_u64()
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_until(what: &str, within: Duration, nodes: &[&Proc], mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > within {
            let logs: String = nodes
                .iter()
                .map(|n| {
                    let l = n.logs();
                    let tail: Vec<&str> = l.lines().rev().take(15).collect();
                    format!(
                        "--- {} ---\n{}\n",
                        n.name,
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    )
                })
                .collect();
            panic!("timed out waiting for {what}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn four_validators_finalize_survive_a_kill_and_a_full_node_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let net_dir = dir.path().join("net");
    let init = cli_json(
        dir.path(),
        &[
            "testnet",
            "init",
            "--validators",
            "4",
            "--full-nodes",
            "1",
            "--dir",
            net_dir.to_str().unwrap(),
            "--base-port",
            "0",
            "--block-time-ms",
            "300",
            "--subnets",
            "0",
        ],
    );
    let entries = init["nodes"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 5);
    let mut nodes: Vec<Proc> = entries.iter().map(Proc::start).collect();
    let all: Vec<&Proc> = nodes.iter().collect();
    wait_until(
        "every node at height 3",
        Duration::from_secs(60),
        &all,
        || nodes.iter().all(|n| n.height().is_some_and(|h| h >= 3)),
    );

    // A transfer sent to one validator's RPC is finalized in the same block everywhere.
    let chain_id = init["chain_id"].as_u64().unwrap();
    let bob = Keypair::dev("bob");
    let hash = nodes[2]
        .call(
            "tx_submit",
            json!({"tx": hex_tx(&transfer(chain_id, &bob, 0, 777))}),
        )
        .unwrap()["hash"]
        .clone();
    let all: Vec<&Proc> = nodes.iter().collect();
    wait_until(
        "the transfer finalized on every node",
        Duration::from_secs(30),
        &all,
        || {
            nodes.iter().all(|n| {
                n.call("chain_tx", json!({"hash": hash}))
                    .is_some_and(|t| t["status"] == "finalized")
            })
        },
    );
    let in_block: Vec<Value> = nodes
        .iter()
        .map(|n| n.call("chain_tx", json!({"hash": hash})).unwrap()["block_hash"].clone())
        .collect();
    assert!(in_block.windows(2).all(|w| w[0] == w[1]), "{in_block:?}");
    let charlie = Keypair::dev("charlie").account().to_string();
    let balances: Vec<Value> = nodes
        .iter()
        .map(|n| n.call("account_info", json!({"address": charlie})).unwrap()["free"].clone())
        .collect();
    assert!(balances.windows(2).all(|w| w[0] == w[1]), "{balances:?}");

    // Kill validator 3 with SIGKILL: the other three (3 of 4 > 2/3) keep finalizing.
    nodes[3].kill9();
    let before = nodes[0].height().unwrap();
    let live: Vec<&Proc> = nodes.iter().take(3).collect();
    wait_until(
        "three validators to finalize 5 more blocks",
        Duration::from_secs(60),
        &live,
        || {
            nodes
                .iter()
                .take(3)
                .all(|n| n.height().is_some_and(|h| h >= before + 5))
        },
    );

    // It restarts from its store and catches up with the others.
    nodes[3].spawn();
    let all: Vec<&Proc> = nodes.iter().collect();
    wait_until(
        "the restarted validator to catch up",
        Duration::from_secs(60),
        &all,
        || {
            let target = nodes[0].height().unwrap_or(u64::MAX);
            nodes[3]
                .height()
                .is_some_and(|h| h + 1 >= target && h > before + 5)
        },
    );
    let status = nodes[3].call("consensus_status", Value::Null).unwrap();
    assert_eq!(
        status["validators"].as_array().unwrap().len(),
        4,
        "{status}"
    );
    assert!(status["validator"].is_string(), "{status}");

    // The full node holds the same block at every height, each with a valid certificate
    // from a quorum of the validators.
    let top = nodes.iter().filter_map(Proc::height).min().unwrap();
    for h in 1..=top {
        let a = nodes[0].call("chain_block", json!({"height": h})).unwrap();
        let f = nodes[4].call("chain_block", json!({"height": h})).unwrap();
        let r = nodes[3].call("chain_block", json!({"height": h})).unwrap();
        assert_eq!(a["hash"], f["hash"], "height {h}");
        assert_eq!(a["hash"], r["hash"], "height {h}");
        assert_eq!(f["cert_valid"], true, "height {h}: {}", f["cert"]);
        assert!(f["cert"]["votes"].as_array().unwrap().len() >= 3);
    }
    let full = nodes[4].call("consensus_status", Value::Null).unwrap();
    assert!(
        full["validator"].is_null(),
        "the full node does not vote: {full}"
    );
    assert!(
        nodes[4]
            .call("net_peers", Value::Null)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
}

/// `agora testnet up` in one command: init, start, progress, stop by itself at a height;
/// `status` then reports every node down, by name; `init` refuses to overwrite.
#[test]
fn testnet_up_runs_a_network_to_a_height_and_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let net = net.to_str().unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "testnet",
            "up",
            "--validators",
            "3",
            "--dir",
            net,
            "--base-port",
            "0",
            "--block-time-ms",
            "200",
            "--until-height",
            "4",
            "--subnets",
            "0",
            "--json",
        ])
        .env("AGORA_WALLET_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["stopped"], 3, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("height 4"), "{v}");
    let status = cli_json(dir.path(), &["testnet", "status", "--dir", net]);
    let rows = status["nodes"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| r["up"] == false && r["name"].as_str().unwrap().starts_with("validator-")),
        "{status}"
    );
    let (code, _, err) = cli(dir.path(), &["testnet", "init", "--dir", net]);
    assert_ne!(code, 0);
    assert!(err.contains("already holds a network"), "{err}");
    // Keys are private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("net/validator-0.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
