//! Fuzzing every decoder that takes bytes from outside: transactions, blocks, headers,
//! certificates, consensus messages, sync and gossip messages, neuron queries and answers,
//! genesis files, key files, `.npy` arrays and safetensors models. Inputs are valid
//! encodings mutated (bit flips, truncations, insertions, overwritten ranges, spliced
//! length fields) and plain random bytes; a decoder may refuse anything but must never
//! panic. CI spends a fixed budget (`AGORA_FUZZ_SECONDS` per decoder, default 0.3) with a
//! fixed seed; `scripts/fuzz SECONDS` runs longer with a random one. A panicking input is
//! saved to `<target>/artifacts/fuzz/` (hex) to become a regression test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use agora_core::block::{FinalityCert, Header};
use agora_core::codec;
use agora_core::{Call, Genesis, Keypair, SignedTransaction, Transaction};
use agora_p2p::query::{QueryAnswer, SignedQuery, SignedResponse};
use agora_p2p::{Announcement, SyncRequest, SyncResponse, TxBatch};
use rand::{Rng, RngCore, SeedableRng};

use crate::harness::BIN;

type Decoder = fn(&[u8]);

fn budget() -> Duration {
    let secs: f64 = std::env::var("AGORA_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.3);
    Duration::from_secs_f64(secs)
}

fn mutate(rng: &mut rand::rngs::StdRng, input: &mut Vec<u8>) {
    match rng.gen_range(0..6) {
        0 if !input.is_empty() => {
            let i = rng.gen_range(0..input.len());
            input[i] ^= 1 << rng.gen_range(0..8);
        }
        1 if !input.is_empty() => {
            let n = rng.gen_range(0..input.len());
            input.truncate(n);
        }
        2 => {
            let at = rng.gen_range(0..=input.len());
            let mut extra = vec![0u8; rng.gen_range(1..16)];
            rng.fill_bytes(&mut extra);
            input.splice(at..at, extra);
        }
        3 if input.len() >= 8 => {
            // A length-like field: 8 bytes set to an extreme.
            let i = rng.gen_range(0..=input.len() - 8);
            let v: u64 = [u64::MAX, 1 << 40, 0, u64::from(u32::MAX) + 1][rng.gen_range(0..4)];
            input[i..i + 8].copy_from_slice(&v.to_le_bytes());
        }
        4 if !input.is_empty() => {
            let i = rng.gen_range(0..input.len());
            let n = rng.gen_range(1..=(input.len() - i).min(32));
            rng.fill_bytes(&mut input[i..i + n]);
        }
        _ => {
            let mut fresh = vec![0u8; rng.gen_range(0..256)];
            rng.fill_bytes(&mut fresh);
            *input = fresh;
        }
    }
}

struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    decode: Decoder,
}

fn targets() -> Vec<Target> {
    let genesis = Genesis::dev();
    let alice = Keypair::dev("alice");
    let tx = |call: Call| -> SignedTransaction {
        Transaction {
            chain_id: genesis.chain_id,
            signer: alice.account(),
            nonce: 3,
            call,
            tip: 7,
        }
        .sign(&alice)
    };
    let transfer = tx(Call::Transfer {
        dest: Keypair::dev("bob").account(),
        amount: 5,
    });
    let weights = tx(Call::SetWeights {
        netuid: 1,
        uids: vec![1, 2, 3],
        values: vec![9, 8, 7],
        version_key: 0,
    });
    let mut block = genesis.build().unwrap().block;
    block.txs = vec![transfer.clone(), weights.clone()];
    let cert = FinalityCert::sign_single(genesis.chain_id, 1, block.hash(), &alice);
    let decided = agora_core::consensus::Message::Decided(block.clone(), cert.clone());
    let query = SignedQuery::sign(7, 1, "compute", 1, 2, vec![1, 2, 3, 4], &alice);
    let response = SignedResponse::sign(&query, vec![5; 64], &Keypair::dev("miner"));
    let key_file = agora_node::wallet::keyfile::encrypt(&alice, None, "pw").unwrap();
    vec![
        Target {
            name: "transaction",
            seeds: vec![transfer.encode(), weights.encode()],
            decode: |b| drop(SignedTransaction::decode(b)),
        },
        Target {
            name: "block",
            seeds: vec![block.encode()],
            decode: |b| drop(agora_core::Block::decode(b)),
        },
        Target {
            name: "header",
            seeds: vec![codec::canonical(&block.header)],
            decode: |b| drop(codec::decode::<Header, 1024>(b, "header")),
        },
        Target {
            name: "certificate",
            seeds: vec![codec::canonical(&cert)],
            decode: |b| {
                drop(codec::decode::<FinalityCert, { codec::MAX_BLOCK_BYTES }>(
                    b,
                    "certificate",
                ))
            },
        },
        Target {
            name: "consensus message",
            seeds: vec![decided.encode().unwrap()],
            decode: |b| drop(agora_core::consensus::Message::decode(b)),
        },
        Target {
            name: "sync",
            seeds: vec![
                SyncRequest::Blocks { from: 1, count: 9 }.encode(),
                SyncResponse::Blocks(vec![(block.clone(), cert.clone())])
                    .encode()
                    .unwrap(),
            ],
            decode: |b| {
                drop(SyncRequest::decode(b));
                drop(SyncResponse::decode(b));
            },
        },
        Target {
            name: "gossip",
            seeds: vec![
                TxBatch(vec![transfer.encode()]).encode().unwrap(),
                Announcement {
                    height: 9,
                    hash: block.hash(),
                }
                .encode(),
            ],
            decode: |b| {
                drop(TxBatch::decode(b));
                drop(Announcement::decode(b));
            },
        },
        Target {
            name: "neuron query",
            seeds: vec![
                query.encode().unwrap(),
                QueryAnswer::Answered(response).encode().unwrap(),
            ],
            decode: |b| {
                drop(SignedQuery::decode(b));
                drop(SignedResponse::decode(b));
                drop(QueryAnswer::decode(b));
            },
        },
        Target {
            name: "genesis",
            seeds: vec![toml::to_string(&genesis).unwrap().into_bytes()],
            decode: |b| {
                let text = String::from_utf8_lossy(b);
                drop(Genesis::parse(&text, "fuzz.toml"));
                drop(Genesis::parse(&text, "fuzz.json"));
            },
        },
        Target {
            name: "epoch input",
            seeds: vec![
                br#"{"n": 3, "stake": [1, 2, 3], "validator_permit": [true, false, true],
                "weights": [[0, 5, 0], [1, 0, 2], [0, 0, 0]], "bonds": [[0, 1, 0], [0, 0, 0], [3, 0, 0]],
                "kappa": 32767, "owner_uid": 0, "yuma3": true, "alpha_sigmoid_steepness": -4}"#
                    .to_vec(),
                br#"{"input": {"n": 1, "stake": [1], "weights": [[0]]}}"#.to_vec(),
            ],
            decode: |b| {
                if let Ok(x) = agora_core::epoch::parse_input_bytes(b) {
                    // A parsed case is consistent: the epoch runs on it without panicking.
                    drop(agora_core::epoch::run_epoch(&x));
                }
                drop(agora_core::epoch::parse_input_reader(b));
            },
        },
        Target {
            name: "key file",
            seeds: vec![serde_json::to_vec(&key_file).unwrap()],
            decode: |b| {
                if let Ok(f) = serde_json::from_slice::<agora_node::wallet::keyfile::KeyFile>(b) {
                    drop(agora_node::wallet::keyfile::decrypt(&f, "pw"));
                }
            },
        },
        Target {
            name: "npy",
            seeds: vec![agora_compute::npy::write_f32(&[2, 3], &[1.0; 6])],
            decode: |b| {
                drop(agora_compute::npy::read(b));
                drop(agora_compute::model::Input::from_npy(b, true));
            },
        },
        Target {
            name: "safetensors",
            seeds: vec![
                agora_compute::model::example::mlp(&[3, 4, 2], "relu", 1).unwrap(),
                agora_compute::model::example::gpt(16, 8, 2, 8, 1, 2).unwrap(),
            ],
            decode: |b| drop(agora_compute::model::Model::from_bytes(b)),
        },
    ]
}

#[test]
fn no_decoder_panics_on_hostile_bytes() {
    let seed: u64 = std::env::var("AGORA_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xA60A);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let out_dir = PathBuf::from(BIN)
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .join("artifacts")
        .join("fuzz");
    // Panics are expected to be caught here: keep their messages off the output.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for t in targets() {
        for s in &t.seeds {
            assert!(
                catch_unwind(AssertUnwindSafe(|| (t.decode)(s))).is_ok(),
                "{}: the valid seed itself panics",
                t.name
            );
        }
        let start = Instant::now();
        let mut tried = 0u64;
        while start.elapsed() < budget() {
            let mut input = t.seeds[rng.gen_range(0..t.seeds.len())].clone();
            for _ in 0..rng.gen_range(1..=4) {
                mutate(&mut rng, &mut input);
            }
            tried += 1;
            if catch_unwind(AssertUnwindSafe(|| (t.decode)(&input))).is_err() {
                std::fs::create_dir_all(&out_dir).unwrap();
                let path = out_dir.join(format!("{}-{tried}.hex", t.name.replace(' ', "-")));
                std::fs::write(&path, hex::encode(&input)).unwrap();
                failures.push(format!("{}: panicked on {}", t.name, path.display()));
            }
        }
        report.push(format!("{} {tried}", t.name));
    }
    let _ = std::panic::take_hook();
    eprintln!("fuzz (seed {seed}): {}", report.join(", "));
    assert!(failures.is_empty(), "{failures:#?}");
}
