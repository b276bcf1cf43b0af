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
    json!({
        "description": "Agora transaction test vectors (wire format v1). See docs/wire-format.md.",
        "signer": {
            "seed_hex": hex::encode(seed),
            "public_key_hex": hex::encode(key.account().0),
            "ss58": key.account().to_ss58(),
        },
        "transfers": cases,
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
