//! `agora bench market`: issue 4's performance figures on a synthetic chain of 128 started
//! subnets x 256 uids (64 staked validators each weighting every miner).

use std::collections::BTreeMap;
use std::time::Instant;

use agora_core::crypto::hash_with_domain;
use agora_core::genesis::Genesis;
use agora_core::ledger::{apply_changes, build_block, Proposal};
use agora_core::state::{self, Account, LtHash, Overlay};
use agora_core::subnet::{self, stake, Networks, Neuron, Subnet};
use agora_core::{Call, Header, Keypair, SignedTransaction, Transaction, RAO_PER_TAO};
use anyhow::bail;
use serde_json::json;

use super::Report;

#[derive(clap::Args, Debug)]
pub struct MarketBenchArgs {
    #[arg(long, default_value_t = 128)]
    pub subnets: u16,
    #[arg(long, default_value_t = 256)]
    pub uids: u16,
    #[arg(long, default_value_t = 64)]
    pub validators: u16,
    /// Transactions per measured block for the add_stake / set_weights figures.
    #[arg(long, default_value_t = 2_000)]
    pub txs: usize,
}

fn key(tag: &str, i: u64) -> Keypair {
    Keypair::from_seed(
        &hash_with_domain(b"agora/bench-market", &[tag.as_bytes(), &i.to_le_bytes()]).0,
    )
}

struct World {
    genesis: Genesis,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    lthash: LtHash,
    head: Header,
    stakers: Vec<Keypair>,
    validators: Vec<(u16, Keypair)>,
}

/// Build the synthetic chain state directly (registration through calls would need
/// millions of TAO of burns): subnets, neurons, stakes, weights, funded stakers.
/// Root stake of each synthetic validator.
const ROOT_STAKE: u64 = 500 * RAO_PER_TAO;

fn world(args: &MarketBenchArgs, height: u64) -> anyhow::Result<World> {
    let mut genesis = Genesis::dev();
    genesis.subnets.defaults.tempo = 360;
    let built = genesis.build()?;
    let mut base = BTreeMap::new();
    apply_changes(&mut base, &built.changes);
    let mut o = Overlay::new(&base);
    let mut nets = Networks::default();
    let mut validators = Vec::new();
    let stakers: Vec<Keypair> = (0..args.txs as u64).map(|i| key("staker", i)).collect();
    let mut supply = state::supply(&o)?;
    let mut root_total: u64 = 0;
    for s in &stakers {
        state::put_account(
            &mut o,
            &s.account(),
            &Account {
                free: 10_000 * RAO_PER_TAO,
                nonce: 0,
            },
        );
        supply.issued += 10_000 * RAO_PER_TAO;
        supply.free += 10_000 * RAO_PER_TAO;
    }
    let owner_cold = key("owner", 0).account();
    for netuid in 1..=args.subnets {
        nets.netuids.push(netuid);
        let owner_hot = key("owner-hot", u64::from(netuid)).account();
        let pool_tao = 10_000 * RAO_PER_TAO;
        supply.issued += pool_tao;
        supply.staked += pool_tao;
        let mut sn = Subnet {
            netuid,
            owner_coldkey: owner_cold,
            owner_hotkey: owner_hot,
            registered_at: 0,
            lock_rao: pool_tao,
            first_emission_block: Some(1),
            n: args.uids,
            burn: RAO_PER_TAO,
            pool: agora_core::pool::Pool {
                tao: pool_tao,
                alpha: pool_tao,
            },
            alpha_out: 0,
            hyper: genesis.subnets.defaults.clone(),
            // Two subnets reach their epoch at `height`; the others are mid-tempo.
            last_epoch_block: if netuid <= 2 {
                height - 360
            } else {
                height - 100
            },
            epoch_index: 1,
            pending_server: 1_000 * RAO_PER_TAO,
            pending_validator: 1_000 * RAO_PER_TAO,
            pending_owner: 100 * RAO_PER_TAO,
            pending_root: 0,
            pending_tao: 0,
            protocol_alpha: 0,
            ema_price_rao: RAO_PER_TAO,
        };
        sn.hyper.max_allowed_uids = args.uids;
        for uid in 0..args.uids {
            let hot = if uid == 0 {
                owner_hot
            } else {
                key(&format!("hot{netuid}"), u64::from(uid)).account()
            };
            let is_validator = uid >= 1 && uid <= args.validators;
            let weights: Vec<(u16, u16)> = if is_validator {
                (args.validators + 1..args.uids)
                    .map(|j| {
                        (
                            j,
                            1 + ((u32::from(uid) * 7919 + u32::from(j) * 104_729) % 65_535) as u16,
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let neuron = Neuron {
                last_update: if is_validator { height - 10 } else { 0 },
                bonds: weights.iter().map(|(j, v)| (*j, v / 4)).collect(),
                weights,
                validator_permit: is_validator,
                ..subnet::new_neuron(hot, 0)
            };
            subnet::put_neuron(&mut o, netuid, uid, &neuron);
            o.put_value(subnet::keys::uid(netuid, &hot), &uid);
            o.put_value(subnet::keys::hotkey_owner(&hot), &owner_cold);
            if is_validator {
                let alpha = (1_000 + u64::from(uid) * 10) * RAO_PER_TAO;
                stake::credit_alpha(&mut o, netuid, &hot, &owner_cold, alpha)?;
                sn.alpha_out += alpha;
                // Root stake too, so epochs pay root dividends (sold through the pool).
                stake::credit_alpha(&mut o, 0, &hot, &owner_cold, ROOT_STAKE)?;
                root_total += ROOT_STAKE;
                if netuid <= 4 {
                    validators.push((netuid, key(&format!("hot{netuid}"), u64::from(uid))));
                }
            }
        }
        subnet::put_subnet(&mut o, &sn);
    }
    let rootnet = subnet::root::RootNet {
        total_stake: root_total,
        ..Default::default()
    };
    subnet::root::put_root(&mut o, &rootnet);
    supply.issued += root_total;
    supply.staked += root_total;
    state::put_supply(&mut o, &supply);
    o.put_value(subnet::keys::NETWORKS.to_vec(), &nets);
    let changes = o.into_changes();
    let mut lthash = built.lthash.clone();
    lthash.apply(&base, &changes)?;
    apply_changes(&mut base, &changes);
    let mut head = built.block.header;
    head.height = height - 1;
    head.timestamp_ms = 1;
    head.state_root = lthash.root();
    Ok(World {
        genesis,
        state: base,
        lthash,
        head,
        stakers,
        validators,
    })
}

/// Median time to write `changes` as one synced RocksDB batch (what committing the block's
/// state costs on disk), into a scratch database; also the batch's key count and bytes.
fn time_commit(
    changes: &agora_core::state::Changes,
    runs: usize,
) -> anyhow::Result<(f64, usize, usize)> {
    use agora_storage::tables::Table;
    use agora_storage::{KvStore, RocksStore, WriteBatch};
    let dir = tempfile::tempdir()?;
    let db = RocksStore::open(dir.path())?;
    let bytes: usize = changes
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let mut batch = WriteBatch::default();
        for (k, v) in changes {
            match v {
                Some(v) => batch.put(Table::State, k.clone(), v.clone()),
                None => batch.delete(Table::State, k.clone()),
            }
        }
        let t = Instant::now();
        db.write(batch)?;
        times.push(t.elapsed().as_secs_f64());
    }
    db.close();
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], changes.len(), bytes))
}

fn time_block(
    w: &World,
    txs: Vec<SignedTransaction>,
    runs: usize,
) -> anyhow::Result<(f64, usize, Vec<u16>)> {
    let params = w.genesis.params();
    let mut times = Vec::new();
    let mut included = 0;
    let mut epochs = Vec::new();
    for _ in 0..runs.max(1) {
        let proposal = Proposal {
            proposer: Keypair::dev("alice").account(),
            timestamp_ms: 2,
            view: 0,
            parent_cert: None,
        };
        let t = Instant::now();
        let built = build_block(&w.state, &w.lthash, &params, &w.head, proposal, txs.clone())?;
        times.push(t.elapsed().as_secs_f64());
        included = built.executed.block.txs.len();
        if let Some((h, e)) = built.rejected.first() {
            bail!("bench tx {h} rejected: {e}");
        }
        epochs = (1..=2u16)
            .filter(|n| {
                let after = subnet::subnet(&Overlay::new(&w.state), *n)
                    .ok()
                    .flatten()
                    .map(|s| s.epoch_index);
                let changes = &built.executed.changes;
                changes
                    .get(&subnet::keys::subnet(*n))
                    .and_then(|v| v.as_ref())
                    .and_then(|b| agora_core::codec::decode_value::<Subnet>(b, "subnet").ok())
                    .map(|s| s.epoch_index)
                    > after
            })
            .collect();
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], included, epochs))
}

pub fn run(args: MarketBenchArgs, out: &dyn Report) -> anyhow::Result<()> {
    if args.validators == 0 || args.validators + 1 >= args.uids || args.subnets == 0 {
        bail!("need 0 < validators < uids - 1 and at least one subnet");
    }
    let height = 10_000;
    out.progress(&format!(
        "building {} subnets x {} uids...",
        args.subnets, args.uids
    ));
    let w = world(&args, height)?;
    let chain_id = w.genesis.chain_id;
    out.progress("timing blocks...");
    let (epoch_block, _, epochs) = time_block(&w, Vec::new(), 5)?;
    let epoch_changes = {
        let proposal = Proposal {
            proposer: Keypair::dev("alice").account(),
            timestamp_ms: 2,
            view: 0,
            parent_cert: None,
        };
        let params = w.genesis.params();
        build_block(&w.state, &w.lthash, &params, &w.head, proposal, Vec::new())?
            .executed
            .changes
    };
    let (commit, commit_keys, commit_bytes) = time_commit(&epoch_changes, 5)?;
    let mut quiet = world(&args, height)?;
    for n in 1..=2u16 {
        let mut o = Overlay::new(&quiet.state);
        if let Some(mut sn) = subnet::subnet(&o, n)? {
            sn.last_epoch_block = height - 100;
            subnet::put_subnet(&mut o, &sn);
        }
        let changes = o.into_changes();
        quiet.lthash.apply(&quiet.state, &changes)?;
        apply_changes(&mut quiet.state, &changes);
    }
    let (coinbase_block, _, _) = time_block(&quiet, Vec::new(), 5)?;

    let stake_txs: Vec<SignedTransaction> = w
        .stakers
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let netuid = 1 + (i as u16 % args.subnets);
            let hotkey = key(&format!("hot{netuid}"), 1).account();
            Transaction {
                chain_id,
                signer: k.account(),
                nonce: 0,
                call: Call::AddStake {
                    hotkey,
                    netuid,
                    amount: RAO_PER_TAO,
                },
                tip: 0,
            }
            .sign(k)
        })
        .collect();
    let n_stake = stake_txs.len();
    let (stake_block, _, _) = time_block(&quiet, stake_txs, 3)?;
    let weight_txs: Vec<SignedTransaction> = w
        .validators
        .iter()
        .take(args.txs)
        .map(|(netuid, k)| {
            let uids: Vec<u16> = (args.validators + 1..args.uids).collect();
            let values: Vec<u16> = uids.iter().map(|u| 1 + u * 3).collect();
            Transaction {
                chain_id,
                signer: k.account(),
                nonce: 0,
                call: Call::SetWeights {
                    netuid: *netuid,
                    uids,
                    values,
                    version_key: 0,
                },
                tip: 0,
            }
            .sign(k)
        })
        .collect();
    let n_weights = weight_txs.len();
    let (weights_block, _, _) = time_block(&quiet, weight_txs, 3)?;

    let stake_per_s = n_stake as f64 / (stake_block - coinbase_block).max(1e-9);
    let weights_per_s = n_weights as f64 / (weights_block - coinbase_block).max(1e-9);
    let v = json!({
        "subnets": args.subnets, "uids": args.uids, "validators_per_subnet": args.validators,
        "block_with_epochs_ms": epoch_block * 1e3, "epochs_in_block": epochs,
        "block_coinbase_only_ms": coinbase_block * 1e3,
        "epoch_block_commit_ms": commit * 1e3, "epoch_block_changed_keys": commit_keys, "epoch_block_changed_bytes": commit_bytes,
        "epoch_cost_ms_each": (epoch_block - coinbase_block) * 1e3 / epochs.len().max(1) as f64,
        "add_stake_txs": n_stake, "add_stake_block_ms": stake_block * 1e3, "add_stake_per_s": stake_per_s,
        "set_weights_txs": n_weights, "set_weights_block_ms": weights_block * 1e3, "set_weights_per_s": weights_per_s,
    });
    out.result(&v, &{
        format!(
            "{} subnets x {} uids ({} validators each weighting every miner), in-memory state\n\
             block with {} epochs + coinbase  {:>9.2} ms\n\
             block with coinbase only         {:>9.2} ms   (so one epoch ~ {:.2} ms)\n\
             commit of the epoch block        {:>9.2} ms   ({} keys, {} KiB, one synced RocksDB batch)\n\
             add_stake:   {} txs in a block {:>9.2} ms   ~ {:.0} tx/s beyond the coinbase\n\
             set_weights: {} txs ({} weights each) {:>9.2} ms   ~ {:.0} tx/s beyond the coinbase",
            args.subnets,
            args.uids,
            args.validators,
            epochs.len(),
            epoch_block * 1e3,
            coinbase_block * 1e3,
            (epoch_block - coinbase_block) * 1e3 / epochs.len().max(1) as f64,
            commit * 1e3,
            commit_keys,
            commit_bytes / 1024,
            n_stake,
            stake_block * 1e3,
            stake_per_s,
            n_weights,
            args.uids - args.validators - 1,
            weights_block * 1e3,
            weights_per_s
        )
    });
    Ok(())
}
