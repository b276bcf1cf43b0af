//! `agora testnet up --detach`: a whole network from one command (validators, a subnet,
//! its miners and validator neuron as processes), watched through `testnet status`, checked
//! against the nodes' RPC, and stopped by `testnet down` with nothing left running.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

/// Alive, and not a zombie waiting to be reaped.
fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| rest.trim_start().to_string())
        })
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

fn status(dir: &Path, net: &str) -> Value {
    cli_json(dir, &["testnet", "status", "--dir", net])
}

fn rpc(url: &str, method: &str, params: Value) -> Value {
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let v: Value = serde_json::from_str(&rpc_raw(port, &body).unwrap()).unwrap();
    v["result"].clone()
}

/// Stops the network if the test fails half way.
struct Down<'a>(&'a Path, &'a str);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = cli(self.0, &["testnet", "down", "--dir", self.1]);
    }
}

#[test]
fn testnet_up_brings_a_subnet_to_life_and_down_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let net_path = dir.path().join("net");
    let net = net_path.to_str().unwrap();
    let up = cli_json(
        dir.path(),
        &[
            "testnet",
            "up",
            "--dir",
            net,
            "--base-port",
            "0",
            "--validators",
            "2",
            "--block-time-ms",
            "500",
            "--subnets",
            "1",
            "--miners",
            "3",
            "--faulty",
            "1",
            "--detach",
        ],
    );
    let _down = Down(dir.path(), net);
    let url = up["rpc_url"].as_str().unwrap().to_string();
    let pids: Vec<(String, u64)> =
        serde_json::from_str(&std::fs::read_to_string(net_path.join("pids.json")).unwrap())
            .unwrap();
    assert_eq!(
        pids.len(),
        2 + 4,
        "2 nodes, 1 validator neuron, 3 miners: {pids:?}"
    );

    // Within 90 s every honest miner earns and the faulty one does not.
    let start = Instant::now();
    let first = loop {
        let s = status(dir.path(), net);
        let neurons = s["subnets"][0]["neurons"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let miners: Vec<&Value> = neurons.iter().filter(|n| n["role"] == "miner").collect();
        let honest_earn = miners
            .iter()
            .filter(|n| n["faulty"] == false)
            .all(|n| n["incentive"].as_u64() > Some(0));
        if miners.len() == 3 && honest_earn {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no incentive for the honest miners within 90 s: {s}\n{}",
            std::fs::read_to_string(net_path.join("neurons/sn1-validator0.log"))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let sn = &first["subnets"][0];
    let faulty: Vec<&Value> = sn["neurons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["faulty"] == true)
        .collect();
    assert_eq!(faulty.len(), 1);
    assert_eq!(faulty[0]["incentive"], 0, "{sn}");
    assert!(sn["neurons"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["running"] == true));

    // The status agrees with the node's RPC: same uids, hotkeys and, within one epoch,
    // the same incentive.
    let mut agreed = false;
    for _ in 0..10 {
        let s = status(dir.path(), net);
        let m = rpc(&url, "subnet_metagraph", json!({"netuid": 1}));
        if s["subnets"][0]["epoch_index"] != m["epoch_index"] {
            continue;
        }
        for n in s["subnets"][0]["neurons"].as_array().unwrap() {
            let uid = n["uid"].as_u64().unwrap() as usize;
            assert_eq!(n["hotkey"], m["neurons"][uid]["hotkey"], "{n}");
            assert_eq!(n["incentive"], m["neurons"][uid]["incentive"], "{n}");
        }
        let height = rpc(&url, "chain_head", Value::Null)["height"]
            .as_u64()
            .unwrap();
        assert!(s["nodes"][0]["finalized_height"].as_u64().unwrap() <= height);
        agreed = true;
        break;
    }
    assert!(agreed, "status and RPC never saw the same epoch");

    // Emissions and stakes grow: the validator's stake and the issued supply, an epoch on.
    let stake = |s: &Value| {
        s["subnets"][0]["neurons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["role"] == "validator")
            .and_then(|n| n["stake"].as_u64())
            .unwrap()
    };
    let (stake0, issued0, epoch0) = (
        stake(&first),
        rpc(&url, "chain_supply", Value::Null)["issued"]
            .as_u64()
            .unwrap(),
        first["subnets"][0]["epoch_index"].as_u64().unwrap(),
    );
    let start = Instant::now();
    loop {
        let s = status(dir.path(), net);
        if s["subnets"][0]["epoch_index"].as_u64().unwrap() > epoch0 {
            assert!(stake(&s) > stake0, "{stake0} -> {s}");
            let issued = rpc(&url, "chain_supply", Value::Null)["issued"]
                .as_u64()
                .unwrap();
            assert!(issued > issued0);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no epoch in 30 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Down: every process stopped.
    let down = cli_json(dir.path(), &["testnet", "down", "--dir", net]);
    assert_eq!(down["stopped"], 6, "{down}");
    assert_eq!(down["killed"], json!([]), "{down}");
    for (name, pid) in &pids {
        assert!(!running(*pid), "{name} ({pid}) still running");
    }
    assert!(!net_path.join("pids.json").exists());

    // Up again resumes the same network (no second setup) with every neuron running.
    let again = cli_json(dir.path(), &["testnet", "up", "--dir", net, "--detach"]);
    assert_eq!(again["detached"], 6, "{again}");
    let start = Instant::now();
    loop {
        let s = status(dir.path(), net);
        let neurons = s["subnets"][0]["neurons"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if neurons.len() == 4 && neurons.iter().all(|n| n["running"] == true) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "neurons not all running again: {s}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let pids: Vec<(String, u64)> =
        serde_json::from_str(&std::fs::read_to_string(net_path.join("pids.json")).unwrap())
            .unwrap();
    cli_json(dir.path(), &["testnet", "down", "--dir", net]);
    for (name, pid) in &pids {
        assert!(!running(*pid), "{name} ({pid}) still running");
    }
}
