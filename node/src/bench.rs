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

use crate::cli::Out;

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

pub fn run(args: BenchArgs, out: Out) -> anyhow::Result<()> {
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
    out.print(&v, || {
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
