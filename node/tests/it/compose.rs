//! `agora testnet compose`: the bundle's YAML parses, every service's command is one the
//! CLI accepts, the files it names exist, and its setup script really sets the subnets up
//! (run here against a one-validator chain made from the bundle's own genesis and key).

use std::path::Path;
use std::process::Command;

use clap::Parser;
use serde_json::{json, Value};

use crate::harness::*;

/// Whether `agora <args>` parses (clap), without running it.
fn parses(args: &[String]) -> Result<(), String> {
    let mut all = vec!["agora".to_string()];
    all.extend_from_slice(args);
    agora_node::cli::Cli::try_parse_from(&all)
        .map(|_| ())
        .map_err(|e| format!("{all:?}: {e}"))
}

#[test]
fn the_compose_bundle_is_consistent_and_its_setup_script_works() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    let bundle = out.to_str().unwrap();
    cli_json(
        dir.path(),
        &[
            "testnet",
            "compose",
            "--validators",
            "1",
            "--subnets",
            "1",
            "--miners",
            "2",
            "--faulty",
            "1",
            "--out",
            bundle,
        ],
    );
    for f in [
        "Dockerfile",
        "docker-compose.yml",
        "README.md",
        "agora",
        "net/genesis.toml",
        "net/setup.sh",
        "net/validator-0.key",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.join("docker-compose.yml")).unwrap())
            .unwrap();
    let services = yaml["services"].as_mapping().unwrap();
    let names: Vec<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "validator-0",
            "setup",
            "sn1-validator0",
            "sn1-miner0",
            "sn1-miner1"
        ],
        "{names:?}"
    );
    let mut ips = std::collections::BTreeSet::new();
    for (name, s) in services {
        let name = name.as_str().unwrap();
        let ip = s["networks"]["agora"]["ipv4_address"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(ips.insert(ip), "{name}: duplicate address");
        if name == "setup" {
            continue;
        }
        let cmd: Vec<String> = s["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        parses(&cmd).unwrap();
        // Files under /net it names exist in the bundle's net/.
        for a in cmd.iter().filter(|a| a.starts_with("/net/")) {
            assert!(out.join(&a[1..]).exists(), "{name}: {a} not in the bundle");
        }
        assert_eq!(
            s["depends_on"]["setup"]["condition"].as_str().is_some(),
            name.starts_with("sn1-")
        );
    }
    // Docker's own check, where Docker Compose exists (not on every CI machine).
    let compose = Command::new("docker").args(["compose", "version"]).output();
    if compose.is_ok_and(|o| o.status.success()) {
        let config = Command::new("docker")
            .args(["compose", "-f"])
            .arg(out.join("docker-compose.yml"))
            .args(["config", "-q"])
            .output()
            .unwrap();
        assert!(
            config.status.success(),
            "{}",
            String::from_utf8_lossy(&config.stderr)
        );
    }
    // A broken command is caught by the same check.
    assert!(parses(&["miner".into(), "run".into(), "--no-such-flag".into()]).is_err());

    // The setup script, run for real: the bundle's /net paths pointed at its net/, against
    // a node made from the bundle's genesis and validator key.
    let net = out.join("net");
    let port = free_port();
    let log = dir.path().join("node.log");
    let mut node = Command::new(BIN)
        .args(["node", "--genesis"])
        .arg(net.join("genesis.toml"))
        .arg("--validator-key")
        .arg(net.join("validator-0.key"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--rpc-addr",
            &format!("127.0.0.1:{port}"),
            "--p2p-addr",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let script = std::fs::read_to_string(net.join("setup.sh"))
        .unwrap()
        .replace("/net/", &format!("{}/", net.display()))
        .replace(
            "RPC=http://172.28.0.10:9944",
            &format!("RPC=http://127.0.0.1:{port}"),
        );
    for line in script.lines().filter(|l| l.starts_with("agora ")) {
        let args: Vec<String> = line
            .trim_end_matches('&')
            .replace(">/dev/null", "")
            .split_whitespace()
            .skip(1)
            .map(|a| a.trim_matches('"').to_string())
            .collect();
        parses(&args).unwrap();
    }
    let local = dir.path().join("setup.sh");
    std::fs::write(&local, &script).unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = || {
        Command::new("timeout")
            .args(["120", "sh"])
            .arg(&local)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let first = run();
    let rpc = |method: &str, params: Value| -> Value {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        serde_json::from_str::<Value>(&rpc_raw(port, &body).unwrap()).unwrap()["result"].clone()
    };
    let m = rpc("subnet_metagraph", json!({"netuid": 1}));
    let second = run();
    let _ = node.kill();
    let _ = node.wait();
    assert!(
        first.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        m["neurons"].as_array().unwrap().len(),
        4,
        "owner, 1 validator, 2 miners: {m}"
    );
    assert!(m["neurons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["stake"].as_u64() > Some(1_000_000_000)));
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("already set up"));
}
