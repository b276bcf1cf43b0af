//! Issue 13's "done when" through the real binary: on a dev chain two stakers propose a
//! fee change, vote for it, watch it pass and take effect at the announced block, and read
//! the concentration figures.

use serde_json::{json, Value};

use crate::market::Market;

#[test]
fn a_fee_change_is_proposed_voted_passed_and_enacted_through_the_cli() {
    let market = Market::start(&[
        ("alice", &["default"][..]),
        ("bob", &["default"][..]),
        ("eve", &[][..]),
    ]);
    let (run, refused) = (
        |args: &[&str]| market.run(args),
        |args: &[&str]| market.refused(args),
    );
    let node = &market.node;
    for (name, tao) in [("alice", "400"), ("bob", "300")] {
        run(&["root", "register", "--name", name, "--hotkey", "default"]);
        run(&[
            "stake", "add", "--netuid", "0", "--hotkey", "default", "--amount", tao, "--name", name,
        ]);
    }
    // eve holds TAO but no stake: she can neither propose nor vote.
    let err = refused(&[
        "gov",
        "propose",
        "param",
        "base_fee_rao",
        "1",
        "--name",
        "eve",
    ]);
    assert!(err.contains("not_enough_stake_to_propose"), "{err}");

    let p = run(&[
        "gov",
        "propose",
        "param",
        "base_fee_rao",
        "5000000",
        "--name",
        "alice",
    ]);
    assert_eq!(p["status"], "finalized", "{p}");
    let id = p["id"].as_u64().unwrap();
    let (ends, enact) = (
        p["schedule"]["voting_ends"].as_u64().unwrap(),
        p["schedule"]["enact_at"].as_u64().unwrap(),
    );
    assert_eq!(enact, ends + 5, "dev genesis: 5 blocks of enactment delay");
    let bad = refused(&[
        "gov", "propose", "param", "chain_id", "7", "--name", "alice",
    ]);
    assert!(bad.contains("unknown_parameter"), "{bad}");

    for name in ["alice", "bob"] {
        let v = run(&[
            "gov",
            "vote",
            &id.to_string(),
            "yes",
            "--name",
            name,
            "--hotkey",
            "default",
        ]);
        assert_eq!(v["status"], "finalized", "{v}");
    }
    let shown = run(&["gov", "show", &id.to_string()]);
    assert_eq!(shown["current_tally"]["yes"], 700_000_000_000u64, "{shown}");
    assert_eq!(
        shown["verdict_if_closed_now"]["status"], "passed",
        "{shown}"
    );
    let votes = run(&["gov", "votes", &id.to_string()]);
    assert_eq!(votes["votes"].as_array().unwrap().len(), 2, "{votes}");

    // Through the vote, then up to the block before enactment: the old fee.
    let fee = || {
        node.ok("chain_info", Value::Null)["base_fee_rao"]
            .as_u64()
            .unwrap()
    };
    let height = || {
        node.ok("chain_head", Value::Null)["height"]
            .as_u64()
            .unwrap()
    };
    node.produce(enact - 1 - height());
    assert_eq!(
        run(&["gov", "show", &id.to_string()])["status"]["status"],
        "passed"
    );
    assert_eq!(fee(), 100_000);
    node.produce(1);
    assert_eq!(height(), enact);
    assert_eq!(fee(), 5_000_000, "in force from the announced block");
    let shown = run(&["gov", "show", &id.to_string()]);
    assert_eq!(
        shown["status"],
        json!({"status": "enacted", "block": enact})
    );
    // The next transfer pays it.
    let t = run(&[
        "wallet",
        "transfer",
        "--name",
        "bob",
        "--dest",
        &agora_core::Keypair::dev("alice").account().to_string(),
        "--amount",
        "1",
    ]);
    assert_eq!(t["fee"], 5_000_000 + 1_000 * 165, "{t}");

    // Concentration: alice's hotkey 400, bob's 300 (stake power in rao).
    let c = run(&["gov", "concentration"]);
    let g = &c["governance"];
    assert_eq!(
        (
            g["holders"].as_u64(),
            g["nakamoto_third"].as_u64(),
            g["nakamoto_half"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{c}"
    );
    let hhi = (4.0f64 / 7.0).powi(2) + (3.0f64 / 7.0).powi(2);
    assert!((g["hhi"].as_f64().unwrap() - hhi).abs() < 1e-9, "{c}");
    assert!(
        (g["gini"].as_f64().unwrap() - 1.0 / 14.0).abs() < 1e-9,
        "{c}"
    );
    assert_eq!(c["validator_set"]["holders"], 1, "the dev authority");
    let list = run(&["gov", "list"]);
    assert_eq!(
        list["proposals"][0]["status"]["status"], "enacted",
        "{list}"
    );
    let s = node.ok("chain_supply", Value::Null);
    assert_eq!(
        s["free"].as_u64().unwrap() + s["staked"].as_u64().unwrap() + s["burned"].as_u64().unwrap(),
        s["issued"].as_u64().unwrap()
    );
}

/// A block-time proposal on a dev node sealing on its clock: blocks come every 250 ms
/// until the enactment block, then every 750 ms.
#[test]
fn an_enacted_block_time_paces_the_following_blocks() {
    use crate::harness::*;
    use agora_core::{Call, Keypair, Transaction};
    let dir = tempfile::tempdir().unwrap();
    let (genesis, path) = fast_genesis(dir.path());
    let node = Node::start(dir.path(), &path, Mode::Interval, "1");
    let (alice, hot) = (Keypair::dev("alice"), Keypair::dev("gov-hot"));
    let sign = |key: &Keypair, nonce: u64, call: Call| {
        hex_tx(
            &Transaction {
                chain_id: genesis.chain_id,
                signer: key.account(),
                nonce,
                call,
                tip: 0,
            }
            .sign(key),
        )
    };
    for (nonce, call) in [
        Call::RootRegister {
            hotkey: hot.account(),
        },
        Call::AddStake {
            hotkey: hot.account(),
            netuid: 0,
            amount: 100_000_000_000,
        },
        Call::Propose {
            action: agora_core::gov::Action::SetChainParam {
                name: "block_time_ms".into(),
                value: 750,
            },
            emergency: true,
        },
    ]
    .into_iter()
    .enumerate()
    {
        node.ok("tx_submit", json!({"tx": sign(&alice, nonce as u64, call)}));
    }
    let wait = |what: &str, ok: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !ok() {
            assert!(
                start.elapsed().as_secs() < 30,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let proposal = || node.call("gov_proposal", json!({"id": 0}))["result"].clone();
    wait("the proposal", &|| {
        proposal()["status"]["status"] == "voting"
    });
    let vote = Call::Vote {
        proposal: 0,
        choice: agora_core::gov::Choice::Yes,
    };
    node.ok("tx_submit", json!({"tx": sign(&hot, 0, vote)}));
    wait("the enactment", &|| {
        proposal()["status"]["status"] == "enacted"
    });
    let e = proposal()["status"]["block"].as_u64().unwrap();
    wait("four more blocks", &|| node.height() >= e + 4);
    let stamp = |h: u64| {
        node.ok("chain_block", json!({"height": h}))["header"]["timestamp_ms"]
            .as_u64()
            .unwrap()
    };
    let before: Vec<u64> = (2..e).map(|h| stamp(h) - stamp(h - 1)).collect();
    let after: Vec<u64> = (e + 1..=e + 4).map(|h| stamp(h) - stamp(h - 1)).collect();
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
    assert!(mean(&before) < 450.0, "250 ms blocks before: {before:?}");
    assert!(
        after.iter().all(|d| *d >= 650),
        "750 ms blocks after: {after:?}"
    );
    assert_eq!(node.ok("chain_info", Value::Null)["block_time_ms"], 750);
}
