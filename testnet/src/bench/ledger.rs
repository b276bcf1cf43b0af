//! `agora bench`: signed transfers applied and committed per second, next to raw ed25519
//! verification measured in the same run.
//!
//! The ledger path is the dev producer's: batch signature check (parallel), execution on
//! an overlay, state-root update, finality certificate, and one synced RocksDB write per
//! block. Transactions are signed before timing starts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use agora_core::block::FinalityCert;
use agora_core::crypto::{hash_with_domain, verify_batch};
use agora_core::genesis::{Genesis, GenesisBalance};
use agora_core::ledger::{build_block, Proposal};
use agora_core::{Call, Keypair, SignedTransaction, Transaction, RAO_PER_TAO};
use agora_storage::{ChainStore, KvStore, MemStore, RocksStore};
use anyhow::{bail, Context};
use serde_json::json;

use super::Report;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Transfers to apply.
    #[arg(long, default_value_t = 40_000)]
    pub txs: usize,
    /// Transfers per block.
    #[arg(long, default_value_t = 4_000)]
    pub block_size: usize,
    /// Distinct sending accounts.
    #[arg(long, default_value_t = 4_000)]
    pub accounts: usize,
    /// Where to put the RocksDB (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

struct Setup {
    genesis: Genesis,
    txs: Vec<SignedTransaction>,
}

fn setup(args: &BenchArgs) -> Setup {
    let keys: Vec<Keypair> = (0..args.accounts)
        .map(|i| {
            Keypair::from_seed(&hash_with_domain(b"agora/bench", &[&(i as u64).to_le_bytes()]).0)
        })
        .collect();
    let mut genesis = Genesis::dev();
    genesis.balances.extend(keys.iter().map(|k| GenesisBalance {
        address: k.account(),
        balance_rao: 1_000 * RAO_PER_TAO,
    }));
    let mut nonces = vec![0u64; keys.len()];
    let txs = (0..args.txs)
        .map(|i| {
            let from = i % keys.len();
            let to = (i * 7 + 1) % keys.len();
            let nonce = nonces[from];
            nonces[from] += 1;
            Transaction {
                chain_id: genesis.chain_id,
                signer: keys[from].account(),
                nonce,
                call: Call::Transfer {
                    dest: keys[to].account(),
                    amount: 1_000,
                },
                tip: 0,
            }
            .sign(&keys[from])
        })
        .collect();
    Setup { genesis, txs }
}

/// Returns transfers per second.
fn run_ledger<S: KvStore>(kv: Arc<S>, setup: &Setup, block_size: usize) -> anyhow::Result<f64> {
    let chain = ChainStore::open(kv, &setup.genesis)?;
    let params = setup.genesis.params();
    let alice = Keypair::dev("alice");
    let start = Instant::now();
    for chunk in setup.txs.chunks(block_size.max(1)) {
        let head = chain.head_header()?;
        let proposal = Proposal {
            proposer: alice.account(),
            timestamp_ms: head.timestamp_ms + 1_000,
            view: 0,
            parent_cert: chain.cert(head.height)?,
        };
        let built = build_block(
            &chain,
            &chain.lthash()?,
            &params,
            &head,
            proposal,
            chunk.to_vec(),
        )?;
        if let Some((hash, e)) = built.rejected.first() {
            bail!("benchmark transaction {hash} rejected: {e}");
        }
        let b = &built.executed.block;
        let cert = FinalityCert::sign_single(params.chain_id, b.header.height, b.hash(), &alice);
        chain.commit(&built.executed, &cert)?;
    }
    Ok(setup.txs.len() as f64 / start.elapsed().as_secs_f64())
}

pub fn run(args: BenchArgs, out: &dyn Report) -> anyhow::Result<()> {
    if args.txs == 0 || args.accounts < 2 {
        bail!("need --txs > 0 and --accounts >= 2");
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    out.progress(&format!(
        "signing {} transfers from {} accounts...",
        args.txs, args.accounts
    ));
    let setup = setup(&args);
    let items: Vec<_> = setup
        .txs
        .iter()
        .map(|t| (t.tx.signer, t.tx.signing_payload(), t.signature))
        .collect();

    out.progress("raw ed25519 verification...");
    let single_n = items.len().min(20_000);
    let start = Instant::now();
    for (acc, msg, sig) in &items[..single_n] {
        if !acc.verify(&msg.0, sig) {
            bail!("bench signature failed to verify");
        }
    }
    let single_per_s = single_n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    if !verify_batch(&items) {
        bail!("bench batch failed to verify");
    }
    let batch_per_s = items.len() as f64 / start.elapsed().as_secs_f64();

    out.progress("ledger on RocksDB...");
    let tmp = tempfile::tempdir().context("creating temp dir")?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("bench-db"));
    let rocks_per_s = run_ledger(Arc::new(RocksStore::open(&dir)?), &setup, args.block_size)?;
    out.progress("ledger in memory...");
    let mem_per_s = run_ledger(Arc::new(MemStore::new()), &setup, args.block_size)?;

    let v = json!({
        "cores": cores,
        "txs": args.txs,
        "block_size": args.block_size,
        "accounts": args.accounts,
        "ed25519_single_verify_per_s": single_per_s.round(),
        "ed25519_batch_verify_per_s": batch_per_s.round(),
        "ledger_rocksdb_tx_per_s": rocks_per_s.round(),
        "ledger_memory_tx_per_s": mem_per_s.round(),
        "ratio_rocksdb_to_batch_verify": (rocks_per_s / batch_per_s * 1000.0).round() / 1000.0,
        "ratio_rocksdb_to_single_verify": (rocks_per_s / single_per_s * 1000.0).round() / 1000.0,
    });
    out.result(&v, &{
        format!(
            "cores {cores}, {} transfers in blocks of {} from {} accounts\n\
             ed25519 verify, single thread     {:>10.0} /s\n\
             ed25519 verify, batch, all cores  {:>10.0} /s\n\
             ledger (RocksDB, synced commits)  {:>10.0} tx/s   = {:.2}x batch verify, {:.2}x single verify\n\
             ledger (in-memory store)          {:>10.0} tx/s",
            args.txs, args.block_size, args.accounts,
            single_per_s, batch_per_s, rocks_per_s, rocks_per_s / batch_per_s, rocks_per_s / single_per_s, mem_per_s
        )
    });
    Ok(())
}

/// The numpy reference implementation, embedded so the bench runs from any directory.
const YUMA_NUMPY: &str = include_str!("../../bench/yuma_numpy.py");

#[derive(clap::Args, Debug)]
pub struct EpochBenchArgs {
    /// Python with numpy for the comparison (default: ~/.cache/agora/venv/bin/python if present, else python3).
    #[arg(long, env = "AGORA_PYTHON")]
    pub python: Option<PathBuf>,
    /// Timed runs per size (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Miners each validator weights (sparse weights).
    #[arg(long, default_value_t = 256)]
    pub weights_per_validator: usize,
    /// Skip numpy and time only the Rust epoch.
    #[arg(long)]
    pub no_numpy: bool,
}

/// A seeded epoch case: `v` validators with stake and permits, each weighting `k` random
/// miners, with bonds from a previous epoch on the same pattern. Yuma3 (new-subnet default).
fn epoch_case(n: usize, v: usize, k: usize, seed: u64) -> agora_core::epoch::EpochInput {
    let mut rng = crate::rng::Rng::new(seed);
    let miners = n - v;
    let sparse_row = |rng: &mut crate::rng::Rng| -> Vec<(u16, u16)> {
        let mut cols: Vec<u16> = (0..k.min(miners))
            .map(|_| (v + (rng.next_u64() as usize % miners)) as u16)
            .collect();
        cols.sort_unstable();
        cols.dedup();
        cols.into_iter()
            .map(|j| (j, 1 + (rng.next_u64() % 65_535) as u16))
            .collect()
    };
    let mut validator_rows = || -> Vec<Vec<(u16, u16)>> {
        (0..n)
            .map(|i| {
                if i < v {
                    sparse_row(&mut rng)
                } else {
                    Vec::new()
                }
            })
            .collect()
    };
    let weights = validator_rows();
    let bonds = validator_rows();
    agora_core::epoch::EpochInput {
        n,
        stake: (0..n)
            .map(|i| {
                if i < v {
                    (100 + rng.next_u64() % 10_000) * RAO_PER_TAO
                } else {
                    rng.next_u64() % RAO_PER_TAO
                }
            })
            .collect(),
        validator_permit: (0..n).map(|i| i < v).collect(),
        max_allowed_validators: v as u16,
        weights,
        bonds,
        kappa: 32_767,
        bonds_moving_avg: 900_000,
        bonds_penalty: u16::MAX,
        stake_threshold: 0,
        emission_rao: 295 * RAO_PER_TAO,
        current_block: 100_000,
        activity_cutoff: 5_000,
        last_update: (0..n).map(|_| 99_000 + rng.next_u64() % 999).collect(),
        block_at_registration: (0..n).map(|_| rng.next_u64() % 99_000).collect(),
        last_tempo: 99_640,
        yuma3: true,
        liquid_alpha: false,
        alpha_low: 45_875,
        alpha_high: 58_982,
        alpha_sigmoid_steepness: 1_000,
        owner_uid: None,
    }
}

fn case_json(x: &agora_core::epoch::EpochInput) -> serde_json::Value {
    let sparse = |m: &Vec<Vec<(u16, u16)>>| -> serde_json::Value {
        m.iter()
            .map(|r| r.iter().map(|(j, v)| json!([j, v])).collect::<Vec<_>>())
            .collect::<Vec<_>>()
            .into()
    };
    json!({
        "n": x.n, "stake": x.stake, "validator_permit": x.validator_permit,
        "max_allowed_validators": x.max_allowed_validators, "weights_sparse": sparse(&x.weights),
        "bonds_sparse": sparse(&x.bonds), "kappa": x.kappa, "bonds_moving_avg": x.bonds_moving_avg,
        "bonds_penalty": x.bonds_penalty, "stake_threshold": x.stake_threshold, "emission_rao": x.emission_rao,
        "current_block": x.current_block, "activity_cutoff": x.activity_cutoff, "last_update": x.last_update,
        "block_at_registration": x.block_at_registration, "last_tempo": x.last_tempo, "yuma3": x.yuma3,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub fn run_epoch_bench(args: EpochBenchArgs, out: &dyn Report) -> anyhow::Result<()> {
    let python = args.python.clone().unwrap_or_else(|| {
        let venv =
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/agora/venv/bin/python"));
        venv.filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("python3"))
    });
    let tmp = tempfile::tempdir()?;
    let script = tmp.path().join("yuma_numpy.py");
    std::fs::write(&script, YUMA_NUMPY)?;
    let repeat = args.repeat.max(1);
    let mut rows = Vec::new();
    for (n, v) in [
        (256usize, 64usize),
        (1024, 64),
        (1024, 256),
        (4096, 64),
        (4096, 256),
    ] {
        let case = epoch_case(
            n,
            v,
            args.weights_per_validator,
            n as u64 * 1_000 + v as u64,
        );
        let rust_s = median(
            (0..repeat)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(agora_core::epoch::run_epoch(std::hint::black_box(&case)));
                    t.elapsed().as_secs_f64()
                })
                .collect(),
        );
        let numpy_s = if args.no_numpy {
            None
        } else {
            let path = tmp.path().join(format!("case-{n}-{v}.json"));
            std::fs::write(&path, case_json(&case).to_string())?;
            let o = std::process::Command::new(&python)
                .arg(&script)
                .arg("bench")
                .arg(&path)
                .arg(repeat.to_string())
                .output()
                .with_context(|| {
                    format!("running {} (use --python or --no-numpy)", python.display())
                })?;
            if !o.status.success() {
                bail!(
                    "numpy bench failed (is numpy installed for {}?): {}",
                    python.display(),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
            v["median_s"].as_f64()
        };
        let row = json!({
            "n": n, "validators": v, "weights_per_validator": args.weights_per_validator.min(n - v),
            "rust_ms": rust_s * 1e3, "numpy_ms": numpy_s.map(|s| s * 1e3),
            "speedup": numpy_s.map(|s| s / rust_s),
        });
        out.progress(&format!(
            "n={n:>5} validators={v:>3}: rust {:>9.3} ms   numpy {:>9} ms   {}",
            rust_s * 1e3,
            numpy_s.map_or("-".into(), |s| format!("{:.3}", s * 1e3)),
            numpy_s.map_or(String::new(), |s| format!("{:.1}x", s / rust_s))
        ));
        rows.push(row);
    }
    let v = json!({"epoch_bench": rows, "repeat": repeat, "mode": "yuma3, sparse weights"});
    if out.json() {
        out.result(&v, "");
    }
    Ok(())
}
