use std::path::PathBuf;

use serde_json::{json, Value};

use crate::harness::*;

/// A dev node sealing one block per submitted transaction (and otherwise only when the
/// test asks), 10-block epochs, the dev wallets regenerated with the hotkeys named, and the
/// CLI pointed at it. Block heights depend only on what the test does, never on how fast
/// the machine runs the CLI.
pub(crate) struct Market {
    pub(crate) node: Node,
    url: String,
    w: PathBuf,
    // Dropped last: the node's data directory.
    _dir: tempfile::TempDir,
}

impl Market {
    pub(crate) fn start(wallets: &[(&str, &[&str])]) -> Market {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("wallets");
        let genesis = subnet_genesis(dir.path(), false);
        let node = Node::start(dir.path(), &genesis, Mode::Instant, "1");
        for (wallet, hotkeys) in wallets {
            cli_json(&w, &["wallet", "regen", "--name", wallet, "--dev", wallet]);
            for h in *hotkeys {
                cli_json(&w, &["wallet", "create", "--name", wallet, "--hotkey", h]);
            }
        }
        Market {
            url: node.url(),
            node,
            w,
            _dir: dir,
        }
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--rpc-url", self.url.as_str()]);
        all
    }

    /// A command that must succeed; its `--json` output.
    pub(crate) fn run(&self, args: &[&str]) -> Value {
        cli_json(&self.w, &self.args(args))
    }

    /// A command that must fail; its stderr.
    pub(crate) fn refused(&self, args: &[&str]) -> String {
        let (code, _, err) = cli(&self.w, &self.args(args));
        assert_ne!(code, 0, "{args:?} should fail");
        err
    }

    /// Seal blocks one at a time until subnet 1's epoch index passes `after`; its
    /// metagraph as `agora subnet show` prints it then.
    pub(crate) fn wait_epoch(&self, after: u64) -> Value {
        // Tempo 10: an epoch runs at least every 11 blocks.
        for _ in 0..=11 {
            let m = self.node.ok("subnet_metagraph", json!({"netuid": 1}));
            if m["epoch_index"].as_u64().unwrap() > after {
                return self.run(&["subnet", "show", "1"]);
            }
            self.node.produce(1);
        }
        panic!("no epoch after {after} within 12 blocks");
    }
}

/// Issue 4's "done when", through the CLI alone: create and start a subnet, register a
/// validator and two miners, stake to the validator, set weights, and after an epoch see
/// incentive, dividends and growing stake in `agora subnet show`; supply holds throughout.
#[test]
fn the_market_runs_through_the_cli() {
    let market = Market::start(&[
        ("alice", &["default"][..]),
        ("bob", &["val"][..]),
        ("charlie", &["m1", "m2"][..]),
    ]);
    let run = |args: &[&str]| market.run(args);
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

    let wait_epoch = |after| market.wait_epoch(after);
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
    // The slim metagraph (what neurons poll) leaves out the weight and bond matrices.
    let full = market.node.ok("subnet_metagraph", json!({"netuid": 1}));
    let slim = market
        .node
        .ok("subnet_metagraph", json!({"netuid": 1, "weights": false}));
    assert!(full["neurons"][1]["weights"]
        .as_array()
        .is_some_and(|w| !w.is_empty()));
    assert!(
        slim["neurons"][1].get("weights").is_none() && slim["neurons"][1].get("bonds").is_none()
    );
    assert_eq!(
        slim["neurons"][3]["incentive"],
        full["neurons"][3]["incentive"]
    );
    let stake_after = run(&["stake", "list", "--name", "bob"])[0]["alpha"]
        .as_u64()
        .unwrap();
    assert!(
        stake_after > stake_before,
        "{stake_after} <= {stake_before}"
    );
    let text = {
        let (code, out, err) = cli(&market.w, &market.args(&["subnet", "show", "1"]));
        assert_eq!(code, 0, "{err}");
        out
    };
    assert!(
        text.contains("incent.") && text.lines().count() >= 6,
        "{text}"
    );
    let s = market.node.ok("chain_supply", json!(null));
    let (issued, free, staked, burned) = (
        s["issued"].as_u64().unwrap(),
        s["free"].as_u64().unwrap(),
        s["staked"].as_u64().unwrap(),
        s["burned"].as_u64().unwrap(),
    );
    assert_eq!(free + staked + burned, issued);
    assert!(staked > 0);
}

/// The rest of the market's verbs through the CLI: root stake and registration, stake
/// move/swap/transfer/unstake-all, takes, hyperparameters, commit-reveal, serving, epoch
/// history and dissolution, with refusals that name the broken rule.
#[test]
fn root_moves_takes_commit_reveal_serve_and_dissolve_through_the_cli() {
    let market = Market::start(&[
        ("alice", &["default"][..]),
        ("bob", &["val"][..]),
        ("charlie", &["m1"][..]),
        ("dave", &["default"][..]),
    ]);
    let (run, refused) = (
        |args: &[&str]| market.run(args),
        |args: &[&str]| market.refused(args),
    );
    let w = &market.w;
    let node = &market.node;
    run(&["subnet", "create", "--name", "alice"]);
    run(&["subnet", "start", "--netuid", "1", "--name", "alice"]);
    run(&["subnet", "create", "--name", "dave"]);
    run(&["subnet", "start", "--netuid", "2", "--name", "dave"]);
    run(&[
        "subnet", "register", "--netuid", "1", "--name", "bob", "--hotkey", "val",
    ]);
    run(&[
        "subnet", "register", "--netuid", "1", "--name", "charlie", "--hotkey", "m1",
    ]);

    // Root: stake 1:1, register, list.
    let add = |netuid: &str, amount: &str| {
        run(&[
            "stake", "add", "--netuid", netuid, "--hotkey", "val", "--amount", amount, "--name",
            "bob",
        ])
    };
    assert_eq!(add("0", "50")["quote"]["amount_out"], 50_000_000_000u64);
    run(&["root", "register", "--name", "bob", "--hotkey", "val"]);
    let root = run(&["root", "list"]);
    assert_eq!(
        root["members"][0]["root_stake"], 50_000_000_000u64,
        "{root}"
    );
    assert_eq!(root["total_stake"], 50_000_000_000u64);

    // Moves: swap part of subnet 1 into subnet 2, move some to m1, transfer some to dave.
    add("1", "100");
    let alpha = |list: &Value, netuid: u64, hotkey: &Value| -> u64 {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["netuid"] == netuid && s["hotkey"] == *hotkey)
            .map_or(0, |s| s["alpha"].as_u64().unwrap())
    };
    let val = cli_json(w, &["wallet", "show", "--name", "bob"])["hotkeys"][0]["address"].clone();
    let m1 = cli_json(w, &["wallet", "show", "--name", "charlie"])["hotkeys"][0]["address"].clone();
    let before = alpha(&run(&["stake", "list", "--name", "bob"]), 1, &val);
    let sw = run(&[
        "stake",
        "swap",
        "--hotkey",
        "val",
        "--origin-netuid",
        "1",
        "--dest-netuid",
        "2",
        "--amount",
        "10",
        "--name",
        "bob",
    ]);
    assert_eq!(sw["status"], "finalized", "{sw}");
    run(&[
        "stake",
        "move",
        "--origin-netuid",
        "1",
        "--origin-hotkey",
        "val",
        "--dest-netuid",
        "1",
        "--dest-hotkey",
        m1.as_str().unwrap(),
        "--amount",
        "5",
        "--name",
        "bob",
    ]);
    let dave = cli_json(w, &["wallet", "show", "--name", "dave"])["coldkey"].clone();
    run(&[
        "stake",
        "transfer",
        "--dest",
        dave.as_str().unwrap(),
        "--hotkey",
        "val",
        "--origin-netuid",
        "1",
        "--amount",
        "5",
        "--name",
        "bob",
    ]);
    let list = run(&["stake", "list", "--name", "bob"]);
    // 20 alpha left subnet 1 (dividends keep adding to it meanwhile).
    assert!(alpha(&list, 1, &val) < before, "{list}");
    assert!(
        alpha(&list, 2, &val) > 0 && alpha(&list, 1, &m1).abs_diff(5_000_000_000) <= 1,
        "{list}"
    );
    assert!(
        alpha(&list, 0, &val) >= 50_000_000_000,
        "root stake only grows (root dividends)"
    );
    let dave_list = run(&["stake", "list", "--address", dave.as_str().unwrap()]);
    // Shares are minted at the pool's share price, floored: within a rao of 5 alpha.
    assert!(
        alpha(&dave_list, 1, &val).abs_diff(5_000_000_000) <= 1,
        "{dave_list}"
    );

    // Take: lower it freely, raising it right after is rate limited.
    run(&[
        "stake",
        "take",
        "--hotkey",
        "val",
        "--percent",
        "9",
        "--name",
        "bob",
    ]);
    let info = node.ok("hotkey_info", json!({"hotkey": val}));
    assert_eq!(info["take"], 5_898, "{info}");
    let err = refused(&[
        "stake",
        "take",
        "--hotkey",
        "val",
        "--percent",
        "10",
        "--name",
        "bob",
    ]);
    assert!(err.contains("take_rate_limited"), "{err}");

    // Hyperparameters: bob is not the owner; alice (owner and dev admin) turns on commit-reveal.
    let err = refused(&[
        "subnet",
        "set",
        "1",
        "commit_reveal",
        "true",
        "--name",
        "bob",
    ]);
    assert!(err.contains("not_subnet_owner"), "{err}");
    let err = refused(&["subnet", "set", "1", "colour", "3", "--name", "alice"]);
    assert!(err.contains("unknown hyperparameter"), "{err}");
    run(&[
        "subnet",
        "set",
        "1",
        "commit_reveal",
        "true",
        "--name",
        "alice",
    ]);
    assert_eq!(run(&["subnet", "hyperparams", "1"])["commit_reveal"], true);

    // Commit-reveal: commit now, reveal in the next epoch.
    let wait_epoch = |after| market.wait_epoch(after);
    let m = wait_epoch(0);
    assert_eq!(m["neurons"][1]["validator_permit"], true, "{m}");
    let err = refused(&[
        "weights",
        "set",
        "--netuid",
        "1",
        "--name",
        "bob",
        "--hotkey",
        "val",
        "--uids",
        "2",
        "--weights",
        "1",
    ]);
    assert!(err.contains("commit_reveal_enabled"), "{err}");
    let c = run(&[
        "weights",
        "commit",
        "--netuid",
        "1",
        "--name",
        "bob",
        "--hotkey",
        "val",
        "--uids",
        "2",
        "--weights",
        "1",
    ]);
    assert_eq!(c["status"], "finalized", "{c}");
    let err = refused(&[
        "weights", "reveal", "--netuid", "1", "--name", "bob", "--hotkey", "val",
    ]);
    assert!(err.contains("reveal_too_early"), "{err}");
    let m = wait_epoch(m["epoch_index"].as_u64().unwrap());
    assert_eq!(
        m["neurons"][1]["weights"],
        json!([]),
        "hidden until revealed"
    );
    run(&[
        "weights", "reveal", "--netuid", "1", "--name", "bob", "--hotkey", "val",
    ]);
    let m = run(&["subnet", "show", "1"]);
    assert_eq!(m["neurons"][1]["weights"], json!([[2, 65535]]), "{m}");

    // Serving info and epoch history.
    let err = refused(&[
        "subnet",
        "serve",
        "--netuid",
        "1",
        "--name",
        "bob",
        "--hotkey",
        "val",
        "--addr",
        "not-a-multiaddr",
    ]);
    assert!(err.contains("multiaddr"), "{err}");
    run(&[
        "subnet",
        "serve",
        "--netuid",
        "1",
        "--name",
        "bob",
        "--hotkey",
        "val",
        "--addr",
        "/ip4/127.0.0.1/tcp/4001",
    ]);
    let m = run(&["subnet", "show", "1"]);
    assert_eq!(
        m["neurons"][1]["axon"]["addrs"][0],
        "/ip4/127.0.0.1/tcp/4001"
    );
    let epochs = run(&["subnet", "epochs", "1", "--limit", "2"]);
    assert_eq!(epochs.as_array().unwrap().len(), 2, "{epochs}");
    assert!(epochs[0]["epoch_index"].as_u64() > epochs[1]["epoch_index"].as_u64());

    // Unstake everything on val (root included), then dissolve subnet 2 as the admin.
    let bob_before = run(&["wallet", "balance", "--name", "bob"])["free"]
        .as_u64()
        .unwrap();
    run(&["stake", "unstake-all", "--hotkey", "val", "--name", "bob"]);
    let list = run(&["stake", "list", "--name", "bob"]);
    assert!(
        list.as_array().unwrap().iter().all(|s| s["hotkey"] != val),
        "{list}"
    );
    let bob_after = run(&["wallet", "balance", "--name", "bob"])["free"]
        .as_u64()
        .unwrap();
    assert!(
        bob_after > bob_before + 50_000_000_000,
        "root stake came back 1:1 plus the rest"
    );
    // Dave stakes on his own subnet 2; dissolving it pays him in the next block.
    run(&[
        "stake", "add", "--netuid", "2", "--hotkey", "default", "--amount", "3", "--name", "dave",
    ]);
    let err = refused(&["subnet", "dissolve", "2", "--name", "dave"]);
    assert!(err.contains("not_admin"), "{err}");
    run(&["subnet", "dissolve", "2", "--name", "alice"]);
    let subnets = run(&["subnet", "list"]);
    assert_eq!(subnets.as_array().unwrap().len(), 1, "{subnets}");
    let listed = node.ok("subnet_list", json!(null));
    assert_eq!(listed["dissolving"][0]["netuid"], 2, "{listed}");
    let on_2 = |list: &Value| -> Vec<Value> {
        list.as_array()
            .unwrap()
            .iter()
            .filter(|s| s["netuid"] == 2)
            .cloned()
            .collect()
    };
    let pending = on_2(&run(&["stake", "list", "--name", "dave"]));
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["dissolving"], true);
    let payout = pending[0]["tao_value"].as_u64().unwrap();
    assert!(payout > 2_000_000_000, "about the 3 TAO staked: {payout}");
    let free = || {
        run(&["wallet", "balance", "--name", "dave"])["free"]
            .as_u64()
            .unwrap()
    };
    let dave_before = free();
    node.produce(1);
    assert_eq!(
        free(),
        dave_before + payout,
        "paid exactly what stake_list showed"
    );
    assert!(on_2(&run(&["stake", "list", "--name", "dave"])).is_empty());
    let listed = node.ok("subnet_list", json!(null));
    assert_eq!(listed["dissolving"], json!([]), "{listed}");
    let s = node.ok("chain_supply", json!(null));
    assert_eq!(
        s["free"].as_u64().unwrap() + s["staked"].as_u64().unwrap() + s["burned"].as_u64().unwrap(),
        s["issued"].as_u64().unwrap()
    );
}
