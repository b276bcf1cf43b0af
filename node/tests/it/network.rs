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

/// `agora testnet init` of `validators` and `full_nodes` under `dir` on OS-chosen ports,
/// 300 ms blocks, no subnets: its JSON (nodes with their argv).
fn init_network(dir: &Path, validators: u32, full_nodes: u32) -> Value {
    let net_dir = dir.join("net");
    cli_json(
        dir,
        &[
            "testnet",
            "init",
            "--validators",
            &validators.to_string(),
            "--full-nodes",
            &full_nodes.to_string(),
            "--dir",
            net_dir.to_str().unwrap(),
            "--base-port",
            "0",
            "--block-time-ms",
            "300",
            "--subnets",
            "0",
        ],
    )
}

#[test]
fn four_validators_finalize_survive_a_kill_and_a_full_node_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_network(dir.path(), 4, 1);
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

/// Governance replaces the consensus validator set on a running 4-validator network: the
/// new set (v0 with 5 of 7 power, v1 and v2 with 1 each, v3 out) certifies blocks from two
/// after the enactment block; then v0 alone keeps finalizing with v1 and v2 killed (it
/// could not under the old set of four equals), and a killed validator restarted later
/// syncs across the change.
#[test]
fn governance_replaces_the_validator_set_on_a_running_network() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_network(dir.path(), 4, 0);
    let mut nodes: Vec<Proc> = init["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(Proc::start)
        .collect();
    let all: Vec<&Proc> = nodes.iter().collect();
    wait_until(
        "every node at height 2",
        Duration::from_secs(60),
        &all,
        || nodes.iter().all(|n| n.height().is_some_and(|h| h >= 2)),
    );
    let ids: Vec<agora_core::AccountId> = nodes
        .iter()
        .map(|n| {
            n.call("consensus_status", Value::Null).unwrap()["validator"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let chain_id = init["chain_id"].as_u64().unwrap();
    let (alice, hot) = (Keypair::dev("alice"), Keypair::dev("gov-hot"));
    let sign = |key: &Keypair, nonce: u64, call: agora_core::Call| {
        hex_tx(
            &agora_core::Transaction {
                chain_id,
                signer: key.account(),
                nonce,
                call,
                tip: 0,
            }
            .sign(key),
        )
    };
    let new_set = vec![(ids[0], 5), (ids[1], 1), (ids[2], 1)];
    for (nonce, call) in [
        agora_core::Call::RootRegister {
            hotkey: hot.account(),
        },
        agora_core::Call::AddStake {
            hotkey: hot.account(),
            netuid: 0,
            amount: 1_000_000_000_000,
        },
        agora_core::Call::Propose {
            action: agora_core::gov::Action::SetValidators {
                validators: new_set.clone(),
            },
            emergency: true,
        },
    ]
    .into_iter()
    .enumerate()
    {
        let sent = nodes[0].call("tx_submit", json!({"tx": sign(&alice, nonce as u64, call)}));
        assert!(sent.is_some(), "submission {nonce} refused");
    }
    wait_until("the proposal", Duration::from_secs(30), &all, || {
        nodes[0]
            .call("gov_proposal", json!({"id": 0}))
            .is_some_and(|p| p["status"]["status"] == "voting")
    });
    let vote = agora_core::Call::Vote {
        proposal: 0,
        choice: agora_core::gov::Choice::Yes,
    };
    assert!(nodes[1]
        .call("tx_submit", json!({"tx": sign(&hot, 0, vote)}))
        .is_some());
    wait_until("the enactment", Duration::from_secs(60), &all, || {
        nodes[0]
            .call("gov_proposal", json!({"id": 0}))
            .is_some_and(|p| p["status"]["status"] == "enacted")
    });
    let e = nodes[0].call("gov_proposal", json!({"id": 0})).unwrap()["status"]["block"]
        .as_u64()
        .unwrap();
    wait_until(
        "four blocks past the change",
        Duration::from_secs(60),
        &all,
        || {
            nodes
                .iter()
                .take(3)
                .all(|n| n.height().is_some_and(|h| h >= e + 4))
        },
    );
    let signers = |node: &Proc, h: u64| -> Vec<String> {
        let b = node.call("chain_block", json!({"height": h})).unwrap();
        assert_eq!(b["cert_valid"], true, "height {h}: {b}");
        b["cert"]["votes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["authority"].as_str().unwrap().to_string())
            .collect()
    };
    let v3 = ids[3].to_string();
    for h in e + 2..=e + 4 {
        assert!(
            !signers(&nodes[0], h).contains(&v3),
            "height {h} certified by the new set only"
        );
    }
    // The old set's certificates still check against the old set.
    assert!(signers(&nodes[0], e).len() >= 3);
    let status = nodes[0].call("consensus_status", Value::Null).unwrap();
    assert_eq!(
        status["validators"].as_array().unwrap().len(),
        3,
        "{status}"
    );
    let info = nodes[2].call("chain_info", Value::Null).unwrap();
    assert_eq!(info["authority_power"], json!([5, 1, 1]), "{info}");

    // v0 holds 5 of 7: with v1 and v2 gone it finalizes alone.
    nodes[1].kill9();
    nodes[2].kill9();
    let before = nodes[0].height().unwrap();
    wait_until(
        "v0 to finalize alone",
        Duration::from_secs(60),
        &[&nodes[0]],
        || nodes[0].height().is_some_and(|h| h >= before + 3),
    );
    assert_eq!(
        signers(&nodes[0], before + 3).len(),
        1,
        "one signature is a quorum now"
    );
    // v2 restarts and syncs across the change (its store is at or before it).
    nodes[2].spawn();
    let target = nodes[0].height().unwrap();
    wait_until(
        "v2 to sync",
        Duration::from_secs(60),
        &[&nodes[0], &nodes[2]],
        || nodes[2].height().is_some_and(|h| h >= target),
    );
}
