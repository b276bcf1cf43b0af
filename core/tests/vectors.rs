//! Golden test vectors for independent clients (docs/test-vectors.json). The test fails if
//! the encoding, signing payload, signature or hash of these transactions ever changes.
//! Regenerate deliberately with `AGORA_BLESS=1 cargo test -p agora-core --test vectors`.

use agora_core::genesis::Genesis;
use agora_core::{Call, Keypair, Transaction};
use serde_json::{json, Value};

fn vectors() -> Value {
    let seed = [7u8; 32];
    let key = Keypair::from_seed(&seed);
    let dest = Keypair::from_seed(&[9u8; 32]).account();
    let params = Genesis::dev().params();
    let cases: Vec<Value> = [(0u64, 1_500_000_000u64, 0u64), (42, 1, 1_000)]
        .iter()
        .map(|&(nonce, amount, tip)| {
            let tx = Transaction {
                chain_id: params.chain_id,
                signer: key.account(),
                nonce,
                call: Call::Transfer { dest, amount },
                tip,
            };
            let unsigned = agora_core::codec::canonical(&tx);
            let payload = tx.signing_payload();
            let stx = tx.sign(&key);
            let bytes = stx.encode();
            json!({
                "chain_id": params.chain_id,
                "nonce": nonce,
                "call": "transfer",
                "dest_ss58": dest.to_ss58(),
                "dest_hex": dest.to_hex(),
                "amount_rao": amount,
                "tip_rao": tip,
                "unsigned_tx_hex": hex::encode(&unsigned),
                "signing_payload_hex": hex::encode(payload.0),
                "signature_hex": hex::encode(stx.signature),
                "signed_tx_hex": hex::encode(&bytes),
                "signed_tx_len": bytes.len(),
                "tx_hash_hex": hex::encode(stx.hash().0),
                "fee_rao_dev_genesis": params.fee(bytes.len()),
            })
        })
        .collect();
    // A block at height 1 carrying the first transfer, the parent's certificate, and its
    // own certificate: fixed values, not an executed chain.
    let first = Transaction {
        chain_id: params.chain_id,
        signer: key.account(),
        nonce: 0,
        call: Call::Transfer {
            dest,
            amount: 1_500_000_000,
        },
        tip: 0,
    }
    .sign(&key);
    let parent = agora_core::Hash([1; 32]);
    let parent_cert = agora_core::FinalityCert::sign_single(params.chain_id, 0, parent, &key);
    let header = agora_core::Header {
        chain_id: params.chain_id,
        height: 1,
        parent,
        view: 2,
        timestamp_ms: 1_700_000_000_000,
        proposer: key.account(),
        tx_root: agora_core::block::tx_root(std::slice::from_ref(&first)),
        state_root: agora_core::Hash([3; 32]),
        parent_cert: parent_cert.hash(),
    };
    let block = agora_core::Block {
        header: header.clone(),
        txs: vec![first],
        parent_cert: Some(parent_cert.clone()),
    };
    let cert = agora_core::FinalityCert::sign_single(params.chain_id, 1, block.hash(), &key);
    let cert_json = |c: &agora_core::FinalityCert| {
        json!({
            "height": c.height,
            "round": c.round,
            "block_hash_hex": hex::encode(c.block_hash.0),
            "votes": c.votes.iter().map(|v| json!({
                "authority_hex": hex::encode(v.authority.0),
                "signature_hex": hex::encode(v.signature),
            })).collect::<Vec<_>>(),
            "vote_payload_hex": hex::encode(
                agora_core::FinalityCert::signing_payload(params.chain_id, c.height, c.round, &c.block_hash).0
            ),
            "cert_hex": hex::encode(agora_core::codec::canonical(c)),
            "cert_hash_hex": hex::encode(c.hash().0),
        })
    };
    let block_vector = json!({
        "header": {
            "chain_id": header.chain_id,
            "height": header.height,
            "parent_hex": hex::encode(header.parent.0),
            "view": header.view,
            "timestamp_ms": header.timestamp_ms,
            "proposer_hex": hex::encode(header.proposer.0),
            "tx_root_hex": hex::encode(header.tx_root.0),
            "state_root_hex": hex::encode(header.state_root.0),
            "parent_cert_hex": hex::encode(header.parent_cert.0),
            "header_hex": hex::encode(agora_core::codec::canonical(&header)),
            "header_hash_hex": hex::encode(header.hash().0),
        },
        "parent_certificate": cert_json(&parent_cert),
        "certificate": cert_json(&cert),
        "block_hex": hex::encode(block.encode()),
    });
    json!({
        "description": "Agora transaction test vectors (wire format v1). See docs/wire-format.md.",
        "signer": {
            "seed_hex": hex::encode(seed),
            "public_key_hex": hex::encode(key.account().0),
            "ss58": key.account().to_ss58(),
        },
        "transfers": cases,
        "block": block_vector,
    })
}

#[test]
fn test_vectors_match_docs() {
    // At run time where the test runner says (a shared target directory may hold a binary
    // built from another checkout), else where it was built.
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = format!("{dir}/../docs/test-vectors.json");
    let path = path.as_str();
    let fresh = serde_json::to_string_pretty(&vectors()).unwrap() + "\n";
    if std::env::var_os("AGORA_BLESS").is_some() {
        std::fs::write(path, &fresh).unwrap();
    }
    let stored = std::fs::read_to_string(path)
        .expect("docs/test-vectors.json missing: run with AGORA_BLESS=1");
    assert_eq!(
        stored, fresh,
        "wire format changed: if deliberate, bump the tx version and re-bless"
    );
}
