//! The mempool under abuse, through the real node: a spammer with 1,000 fresh keys (no
//! balance: only fee-free calls are open to it) cannot delay an honest transfer by more
//! than one block.

use agora_core::{Call, Keypair, Transaction};
use serde_json::{json, Value};

use crate::harness::*;

#[test]
fn a_spammer_with_a_thousand_keys_cannot_delay_an_honest_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let (genesis, path) = fast_genesis(dir.path());
    let node = Node::start(dir.path(), &path, Mode::Manual, "1");
    let id = genesis.chain_id;
    // 1,000 keys x 25 fee-free calls each: more than the pool holds (20,000) if nothing
    // capped them.
    let mut txs = Vec::new();
    for k in 0..1000 {
        let key = Keypair::dev(&format!("spammer-{k}"));
        for nonce in 0..25 {
            let stx = Transaction {
                chain_id: id,
                signer: key.account(),
                nonce,
                call: Call::SetWeights {
                    netuid: 1,
                    uids: vec![0],
                    values: vec![1],
                    version_key: 0,
                },
                tip: 0,
            }
            .sign(&key);
            txs.push(hex_tx(&stx));
        }
    }
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    for chunk in txs.chunks(100) {
        let batch: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"jsonrpc": "2.0", "id": i, "method": "tx_submit", "params": {"tx": t}}))
            .collect();
        let answer: Value =
            serde_json::from_str(&rpc_raw(node.port, &Value::Array(batch).to_string()).unwrap())
                .unwrap();
        for a in answer.as_array().unwrap() {
            let kind = match a["error"]["data"]["kind"].as_str() {
                Some(k) => k.to_string(),
                None => "admitted".into(),
            };
            *kinds.entry(kind).or_default() += 1;
        }
    }
    assert_eq!(
        kinds.get("admitted"),
        Some(&4000),
        "4 fee-free per key: {kinds:?}"
    );
    assert_eq!(kinds.get("sender_queue_full"), Some(&21_000), "{kinds:?}");

    // The honest transfer is admitted and lands in the very next block.
    let bob = Keypair::dev("bob");
    let honest = transfer(id, &bob, 0, 1_000);
    let hash = node.ok("tx_submit", json!({"tx": hex_tx(&honest)}))["hash"].clone();
    let head = node.produce(1)["height"].as_u64().unwrap();
    let status = node.ok("chain_tx", json!({"hash": hash}));
    assert_eq!(status["status"], "finalized", "{status}");
    assert_eq!(status["block_height"].as_u64(), Some(head), "{status}");
    // The spam failed (no such subnet) and left; what waits behind it is parked, not
    // re-run by every block.
    let text = http_get(node.port, "/metrics").unwrap();
    let m = parse_metrics(&text).unwrap();
    assert_eq!(
        m["agora_mempool_transactions"], 3000.0,
        "nonces 1..3 of each key wait"
    );
    let t = std::time::Instant::now();
    node.produce(1);
    assert!(
        t.elapsed().as_secs_f64() < 5.0,
        "a block after the spam is quick"
    );
}
