use agora_core::codec::MAX_TX_BYTES;
use agora_core::Keypair;
use serde_json::{json, Value};

use crate::harness::*;

/// Every kind of bad input is refused with its own error, and the sender's state is unchanged.
#[test]
fn bad_transactions_and_bad_requests_are_rejected_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (genesis, genesis_path) = fast_genesis(dir.path());
    let node = Node::start(dir.path(), &genesis_path, Mode::Instant, "1");
    let bob = Keypair::dev("bob");
    let bob_addr = bob.account().to_string();
    let id = genesis.chain_id;

    // One good transfer, finalized, to have a used nonce.
    let good = transfer(id, &bob, 0, 1_000);
    let hash = node.ok("tx_submit", json!({"tx": hex_tx(&good)}))["hash"].clone();
    let start = std::time::Instant::now();
    while node.ok("chain_tx", json!({"hash": hash}))["status"] != "finalized" {
        assert!(start.elapsed().as_secs() < 20);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let before = node.ok("account_info", json!({"address": bob_addr}));
    assert_eq!(before["nonce"], 1);

    let rejected = |tx: String| -> Value {
        let v = node.call("tx_submit", json!({"tx": tx}));
        assert_eq!(v["error"]["code"], -32010, "{v}");
        v["error"]["data"]["kind"].clone()
    };
    let mut bad_sig = transfer(id, &bob, 1, 1);
    bad_sig.signature[10] ^= 1;
    assert_eq!(rejected(hex_tx(&bad_sig)), "bad_signature");
    assert_eq!(
        rejected(hex_tx(&transfer(id + 1, &bob, 1, 1))),
        "wrong_chain_id"
    );
    assert_eq!(
        rejected(hex_tx(&good)),
        "stale_nonce",
        "replay of an included transaction"
    );
    assert_eq!(
        rejected(hex_tx(&transfer(id, &bob, 10_000, 1))),
        "future_nonce"
    );
    assert_eq!(
        rejected(hex_tx(&transfer(id, &bob, 1, u64::MAX / 2))),
        "insufficient_funds"
    );
    assert_eq!(
        rejected(hex_tx(&transfer(id, &Keypair::dev("nobody"), 0, 1))),
        "insufficient_funds"
    );
    assert_eq!(
        rejected(format!("0x{}", "00".repeat(MAX_TX_BYTES + 1))),
        "oversize"
    );
    assert_eq!(rejected("0x0102".into()), "malformed");
    // Refused at submission (not admitted and dropped at the next block).
    assert_eq!(rejected(hex_tx(&transfer(id, &bob, 1, 0))), "zero_amount");

    let mut trailing = good.encode();
    trailing.push(0);
    assert_eq!(
        rejected(format!("0x{}", hex::encode(trailing))),
        "malformed"
    );

    // Malformed JSON-RPC.
    let raw =
        |body: &str| -> Value { serde_json::from_str(&rpc_raw(node.port, body).unwrap()).unwrap() };
    assert_eq!(raw("{not json")["error"]["code"], -32700);
    assert_eq!(
        raw(r#"{"id":1,"method":"chain_head"}"#)["error"]["code"],
        -32600
    );
    assert_eq!(
        raw(r#"{"jsonrpc":"2.0","id":1,"method":5}"#)["error"]["code"],
        -32600
    );
    assert_eq!(
        raw(r#"{"jsonrpc":"2.0","id":1,"method":"chain_head","params":3}"#)["error"]["code"],
        -32600
    );
    assert_eq!(raw(r#"[]"#)["error"]["code"], -32600);
    assert_eq!(
        node.call("no_such_method", Value::Null)["error"]["code"],
        -32601
    );
    assert_eq!(
        node.call("tx_submit", json!({"tx": "zz"}))["error"]["code"],
        -32602
    );
    assert_eq!(node.call("tx_submit", json!({}))["error"]["code"], -32602);
    assert_eq!(
        node.call("account_info", json!({"address": "5Oops"}))["error"]["code"],
        -32602
    );
    assert_eq!(
        node.call("chain_block", json!({"height": -1}))["error"]["code"],
        -32602
    );
    assert_eq!(
        node.call("chain_block", json!({"height": 1_000_000}))["error"]["code"],
        -32004
    );
    assert_eq!(
        node.call(
            "chain_tx",
            json!({"hash": format!("0x{}", "ab".repeat(32))})
        )["error"]["code"],
        -32004
    );
    // What does not exist is "not found" with a stable kind, not an internal error.
    let missing = node.call(
        "sim_swap",
        json!({"netuid": 9, "direction": "buy", "amount": 1_000}),
    );
    assert_eq!(missing["error"]["code"], -32004, "{missing}");
    assert_eq!(missing["error"]["data"]["kind"], "not_found", "{missing}");
    // A batch answers each request in order; positional params work too.
    let batch = raw(&format!(
        r#"[{{"jsonrpc":"2.0","id":1,"method":"chain_head"}},{{"jsonrpc":"2.0","id":2,"method":"account_info","params":["{bob_addr}"]}},{{"jsonrpc":"2.0","id":3,"method":"nope"}}]"#
    ));
    assert_eq!(batch[0]["id"], 1);
    assert_eq!(batch[1]["result"]["nonce"], 1);
    assert_eq!(batch[2]["error"]["code"], -32601);

    // Nothing above touched bob's account (blocks come and his nonce and balance stay).
    node.produce(2);
    let after = node.ok("account_info", json!({"address": bob_addr}));
    assert_eq!(
        (&after["free"], &after["nonce"]),
        (&before["free"], &before["nonce"])
    );
    assert!(
        after["height"].as_u64() > before["height"].as_u64(),
        "read at a later head"
    );

    // JSON-RPC 2.0 notifications (no `id`) run and get no answer: nothing for a single
    // one, and nothing in a batch's array for each of them.
    let quiet = rpc_raw(node.port, r#"{"jsonrpc":"2.0","method":"chain_head"}"#).unwrap();
    assert_eq!(quiet, "", "no reply to a notification");
    let mixed = rpc_raw(
        node.port,
        r#"[{"jsonrpc":"2.0","method":"chain_head"},{"jsonrpc":"2.0","id":5,"method":"chain_head"}]"#,
    )
    .unwrap();
    let mixed: Value = serde_json::from_str(&mixed).unwrap();
    assert_eq!(mixed.as_array().unwrap().len(), 1, "{mixed}");
    assert_eq!(mixed[0]["id"], 5);
    // A notification still runs: a transfer sent as one is included.
    let silent = transfer(id, &bob, 1, 77);
    let body = json!({"jsonrpc": "2.0", "method": "tx_submit", "params": {"tx": hex_tx(&silent)}});
    assert_eq!(rpc_raw(node.port, &body.to_string()).unwrap(), "");
    let start = std::time::Instant::now();
    while node.ok("chain_tx", json!({"hash": silent.hash()}))["status"] != "finalized" {
        assert!(
            start.elapsed().as_secs() < 20,
            "the notified transfer never landed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // Answers name the height they read; only the head can be read (no state history).
    node.produce(1);
    let head = node.height();
    let acct = node.ok("account_info", json!({"address": bob_addr}));
    assert_eq!(acct["height"], head, "{acct}");
    assert_eq!(node.ok("chain_supply", Value::Null)["height"], head);
    let at_head = node.ok("account_info", json!({"address": bob_addr, "block": head}));
    assert_eq!(at_head["nonce"], acct["nonce"]);
    let past = node.call(
        "account_info",
        json!({"address": bob_addr, "block": head - 1}),
    );
    assert_eq!(past["error"]["code"], -32602, "{past}");
    assert!(past["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no state history"));
}

/// Per-address rate limits: over the limit a request (or a whole batch) is refused with
/// HTTP 429 and -32005, and the next second is allowed again.
#[test]
fn clients_over_the_rate_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, genesis_path) = fast_genesis(dir.path());
    let node = Node::start_with(
        dir.path(),
        &genesis_path,
        Mode::Manual,
        "1",
        &["--rpc-rate-limit", "20", "--rpc-limit-loopback"],
    );
    // Start at the beginning of a second so the 30 requests share one.
    std::thread::sleep(std::time::Duration::from_millis(
        1000 - (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1000) as u64,
    ));
    let mut refused = 0;
    for _ in 0..30 {
        let v = node.call("chain_head", Value::Null);
        if v["error"]["code"] == -32005 {
            refused += 1;
        }
    }
    assert!(refused >= 10, "{refused} refused of 30 at 20/s");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let batch: Vec<Value> = (0..25)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "chain_head"}))
        .collect();
    let v: Value =
        serde_json::from_str(&rpc_raw(node.port, &Value::Array(batch).to_string()).unwrap())
            .unwrap();
    assert_eq!(v["error"]["code"], -32005, "a batch of 25 counts 25: {v}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(node.call("chain_head", Value::Null).get("result").is_some());
}
