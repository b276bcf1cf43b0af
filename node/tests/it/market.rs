use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

/// Issue 4's "done when", through the CLI alone: create and start a subnet, register a
/// validator and two miners, stake to the validator, set weights, and after an epoch see
/// incentive, dividends and growing stake in `agora subnet show`; supply holds throughout.
#[test]
fn the_market_runs_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("wallets");
    let mut g = agora_core::Genesis::dev();
    g.block_time_ms = 250;
    g.subnets.defaults.tempo = 10;
    g.subnets.defaults.weights_rate_limit = 2;
    let genesis = dir.path().join("genesis.toml");
    std::fs::write(&genesis, toml::to_string(&g).unwrap()).unwrap();
    let node = Node::start(dir.path(), &genesis, true, "1");
    let url = node.url();
    let rpc = ["--rpc-url", url.as_str()];
    let run = |args: &[&str]| -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&rpc);
        cli_json(&w, &all)
    };
    for (wallet, hotkeys) in [
        ("alice", &["default"][..]),
        ("bob", &["val"][..]),
        ("charlie", &["m1", "m2"][..]),
    ] {
        cli_json(&w, &["wallet", "regen", "--name", wallet, "--dev", wallet]);
        for h in hotkeys {
            cli_json(&w, &["wallet", "create", "--name", wallet, "--hotkey", h]);
        }
    }
    let created = run(&["subnet", "create", "--name", "alice"]);
    assert_eq!(created["netuid"], 1, "{created}");
    run(&["subnet", "start", "--netuid", "1", "--name", "alice"]);
    assert_eq!(
        run(&["subnet", "register", "--netuid", "1", "--name", "bob", "--hotkey", "val"])["uid"],
        1
    );
    assert_eq!(
        run(&["subnet", "register", "--netuid", "1", "--name", "charlie", "--hotkey", "m1"])["uid"],
        2
    );
    assert_eq!(
        run(&["subnet", "register", "--netuid", "1", "--name", "charlie", "--hotkey", "m2"])["uid"],
        3
    );
    let staked = run(&[
        "stake", "add", "--netuid", "1", "--hotkey", "val", "--amount", "100", "--name", "bob",
    ]);
    assert_eq!(staked["status"], "finalized");
    let stake_before = run(&["stake", "list", "--name", "bob"])[0]["alpha"]
        .as_u64()
        .unwrap();

    let show = || run(&["subnet", "show", "1"]);
    let wait_epoch = |after: u64| {
        let start = Instant::now();
        loop {
            let m = show();
            if m["epoch_index"].as_u64().unwrap() > after {
                return m;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no epoch after {after}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let m = wait_epoch(0);
    assert_eq!(m["neurons"][1]["validator_permit"], true, "{m}");
    let epoch = m["epoch_index"].as_u64().unwrap();
    let set = run(&[
        "weights",
        "set",
        "--netuid",
        "1",
        "--name",
        "bob",
        "--hotkey",
        "val",
        "--uids",
        "2,3",
        "--weights",
        "1,3",
    ]);
    assert_eq!(set["status"], "finalized", "{set}");
    let m = wait_epoch(epoch);
    let n = &m["neurons"];
    assert!(
        n[3]["incentive"].as_u64() > n[2]["incentive"].as_u64()
            && n[2]["incentive"].as_u64() > Some(0),
        "{m}"
    );
    assert!(n[1]["dividends"].as_u64() > Some(0), "{m}");
    let stake_after = run(&["stake", "list", "--name", "bob"])[0]["alpha"]
        .as_u64()
        .unwrap();
    assert!(
        stake_after > stake_before,
        "{stake_after} <= {stake_before}"
    );
    let text = {
        let (code, out, err) = cli(&w, &["subnet", "show", "1", "--rpc-url", &url]);
        assert_eq!(code, 0, "{err}");
        out
    };
    assert!(
        text.contains("incent.") && text.lines().count() >= 6,
        "{text}"
    );
    let s = node.ok("chain_supply", json!(null));
    let (issued, free, staked, burned) = (
        s["issued"].as_u64().unwrap(),
        s["free"].as_u64().unwrap(),
        s["staked"].as_u64().unwrap(),
        s["burned"].as_u64().unwrap(),
    );
    assert_eq!(free + staked + burned, issued);
    assert!(staked > 0);
}
