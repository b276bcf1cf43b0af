//! Subnet RPC methods: `subnet_list`, `subnet_metagraph`, `subnet_lockCost`,
//! `subnet_epochs`, `stake_list`, `root_info`, `hotkey_info`, `sim_swap`. Each reads
//! committed state through the chain actor, by key or by a bounded prefix scan.

use agora_core::codec::decode_value;
use agora_core::emission::block_emission;
use agora_core::genesis::ChainParams;
use agora_core::ledger::params_in_force;
use agora_core::pool::{Direction, DEFAULT_FEE_RATE};
use agora_core::state::{self, StateRead};
use agora_core::subnet::coinbase::EpochRecord;
use agora_core::subnet::{self, dissolve, root, serve, stake, EmissionMode, Subnet};
use agora_core::AccountId;
use serde_json::{json, Value};

use crate::NodeError;

fn internal(e: impl std::fmt::Display) -> NodeError {
    NodeError::Internal(e.to_string())
}

fn subnets(s: &dyn StateRead) -> Result<Vec<Subnet>, NodeError> {
    let mut out = Vec::new();
    for n in subnet::networks(s)?.netuids {
        if let Some(sn) = subnet::subnet(s, n)? {
            out.push(sn);
        }
    }
    Ok(out)
}

/// Each subnet's share of the block's TAO emission: by EMA price among emitting subnets
/// (dTAO), or the last root epoch's split (`root_weights`).
fn shares(
    s: &dyn StateRead,
    params: &ChainParams,
    all: &[Subnet],
    head: u64,
) -> Result<Vec<f64>, NodeError> {
    let emitting = |sn: &Subnet| {
        sn.first_emission_block
            .is_some_and(|f| f <= head.saturating_add(1))
            && sn.hyper.registration_allowed
    };
    Ok(match params.subnets.emission_mode {
        EmissionMode::Dtao => {
            let total: u128 = all
                .iter()
                .filter(|x| emitting(x))
                .map(|x| u128::from(x.ema_price_rao))
                .sum();
            all.iter()
                .map(|sn| {
                    if total == 0 || !emitting(sn) {
                        0.0
                    } else {
                        sn.ema_price_rao as f64 / total as f64
                    }
                })
                .collect()
        }
        EmissionMode::RootWeights => {
            let ppb = root::root(s)?.emission_ppb;
            all.iter()
                .map(|sn| {
                    ppb.iter()
                        .find(|(n, _)| *n == sn.netuid)
                        .map_or(0.0, |(_, p)| *p as f64 / 1e9)
                })
                .collect()
        }
    })
}

fn summary(sn: &Subnet, head: u64, share: f64) -> Value {
    let next_epoch = sn.last_epoch_block.saturating_add(sn.hyper.tempo);
    json!({
        "netuid": sn.netuid,
        "owner_coldkey": sn.owner_coldkey,
        "owner_hotkey": sn.owner_hotkey,
        "registered_at": sn.registered_at,
        "started": sn.first_emission_block.is_some(),
        "n": sn.n,
        "max_allowed_uids": sn.hyper.max_allowed_uids,
        "price_rao": sn.pool.price_rao(),
        "ema_price_rao": sn.ema_price_rao,
        "emission_share": share,
        "pool_tao": sn.pool.tao,
        "pool_alpha": sn.pool.alpha,
        "alpha_out": sn.alpha_out,
        "protocol_alpha": sn.protocol_alpha,
        "burn": sn.burn,
        "tempo": sn.hyper.tempo,
        "epoch_index": sn.epoch_index,
        "last_epoch_block": sn.last_epoch_block,
        "blocks_to_next_epoch": next_epoch.saturating_sub(head),
        "commit_reveal": sn.hyper.commit_reveal,
        "pending": {
            "server": sn.pending_server,
            "validator": sn.pending_validator,
            "owner": sn.pending_owner,
            "root": sn.pending_root,
            "tao": sn.pending_tao,
        },
    })
}

/// Every subnet's summary, and the subnets being dissolved with their payout's progress.
pub fn list(s: &dyn StateRead, params: &ChainParams, head: u64) -> Result<Value, NodeError> {
    let params = &params_in_force(s, params)?;
    let all = subnets(s)?;
    let shares = shares(s, params, &all, head)?;
    let subnets: Vec<Value> = all
        .iter()
        .zip(shares)
        .map(|(sn, share)| summary(sn, head, share))
        .collect();
    Ok(json!({"subnets": subnets, "dissolving": dissolve::dissolving(s)?}))
}

/// A subnet's metagraph at `head`; `matrices`: with every neuron's weights and bonds
/// (the bulk of a large subnet's metagraph), else without.
pub fn metagraph(
    s: &dyn StateRead,
    params: &ChainParams,
    netuid: u16,
    head: u64,
    matrices: bool,
) -> Result<Option<Value>, NodeError> {
    let params = &params_in_force(s, params)?;
    let Some(sn) = subnet::subnet(s, netuid)? else {
        return Ok(None);
    };
    let all = subnets(s)?;
    let share = shares(s, params, &all, head)?
        .into_iter()
        .zip(&all)
        .find(|(_, x)| x.netuid == netuid)
        .map_or(0.0, |(sh, _)| sh);
    let mut neurons = Vec::with_capacity(usize::from(sn.n));
    for uid in 0..sn.n {
        let Some(nr) = subnet::neuron(s, netuid, uid)? else {
            continue;
        };
        let coldkey = subnet::hotkey_owner(s, &nr.hotkey)?;
        let stake = stake::hotkey_alpha(s, netuid, &nr.hotkey)?.total_alpha;
        let root_stake = root::root_stake(s, &nr.hotkey)?;
        let axon = serve::serve_info(s, netuid, &nr.hotkey)?;
        let mut row = json!({
            "uid": uid, "hotkey": nr.hotkey, "coldkey": coldkey, "stake": stake, "root_stake": root_stake,
            "take": stake::take_of(s, &nr.hotkey)?, "axon": axon,
            "incentive": nr.incentive, "dividends": nr.dividends, "emission": nr.emission,
            "consensus": nr.consensus, "validator_trust": nr.validator_trust, "stake_weight": nr.stake_weight,
            "validator_permit": nr.validator_permit, "active": nr.active,
            "last_update": nr.last_update, "block_at_registration": nr.block_at_registration,
        });
        if matrices {
            row["weights"] = json!(nr.weights);
            row["bonds"] = json!(nr.bonds);
        }
        neurons.push(row);
    }
    let mut v = summary(&sn, head, share);
    v["hyperparams"] = serde_json::to_value(&sn.hyper).map_err(internal)?;
    v["neurons"] = Value::Array(neurons);
    Ok(Some(v))
}

pub fn lock_cost(s: &dyn StateRead, params: &ChainParams, head: u64) -> Result<Value, NodeError> {
    let params = &params_in_force(s, params)?;
    let nets = subnet::networks(s)?;
    let emission = block_emission(state::supply(s)?.issued);
    let cost = subnet::lock_cost(&nets, &params.subnets, head.saturating_add(1), emission);
    Ok(
        json!({"lock_cost": cost, "subnets": nets.netuids.len(), "subnet_limit": params.subnets.subnet_limit}),
    )
}

/// A coldkey's positions from the position index: O(positions), not O(subnets x uids).
/// A position on a subnet being dissolved shows the TAO it will be paid, marked
/// `dissolving`.
pub fn stakes(s: &dyn StateRead, coldkey: &AccountId) -> Result<Value, NodeError> {
    let dissolving = dissolve::dissolving(s)?;
    let mut out = Vec::new();
    for (netuid, hotkey) in stake::positions(s, coldkey)? {
        let alpha = stake::stake_of(s, netuid, &hotkey, coldkey)?;
        if let Some(d) = dissolving.iter().find(|d| d.netuid == netuid) {
            out.push(
                json!({"netuid": netuid, "hotkey": hotkey, "uid": null, "alpha": alpha,
                "tao_value": d.payout(alpha), "dissolving": true}),
            );
            continue;
        }
        let (uid, tao_value) = if netuid == root::ROOT {
            (None, alpha)
        } else {
            let Some(sn) = subnet::subnet(s, netuid)? else {
                continue;
            };
            let value = sn
                .pool
                .swap(Direction::Sell, alpha, DEFAULT_FEE_RATE, None)
                .map(|q| q.amount_out)
                .unwrap_or(0);
            (subnet::uid_of(s, netuid, &hotkey)?, value)
        };
        out.push(json!({"netuid": netuid, "hotkey": hotkey, "uid": uid, "alpha": alpha, "tao_value": tao_value}));
    }
    Ok(json!({"positions": out}))
}

/// The last `limit` epochs of a subnet, newest first.
pub fn epochs(s: &dyn StateRead, netuid: u16, limit: usize) -> Result<Value, NodeError> {
    let rows = s.scan_prefix(&subnet::keys::epochs(netuid))?;
    let mut out = Vec::new();
    for (_, v) in rows.iter().rev().take(limit) {
        let r: EpochRecord = decode_value(v, "epoch record").map_err(internal)?;
        out.push(serde_json::to_value(&r).map_err(internal)?);
    }
    Ok(json!({"epochs": out}))
}

/// The root network: members with their root stake and weights, totals, emission split.
pub fn root_info(s: &dyn StateRead, params: &ChainParams) -> Result<Value, NodeError> {
    let params = &params_in_force(s, params)?;
    let r = root::root(s)?;
    let mut members = Vec::new();
    for (uid, m) in r.members.iter().enumerate() {
        members.push(json!({
            "uid": uid, "hotkey": m.hotkey, "coldkey": subnet::hotkey_owner(s, &m.hotkey)?,
            "root_stake": root::root_stake(s, &m.hotkey)?, "weights": m.weights, "last_update": m.last_update,
        }));
    }
    let emission: Vec<Value> = r
        .emission_ppb
        .iter()
        .map(|(n, p)| json!({"netuid": n, "share": *p as f64 / 1e9}))
        .collect();
    Ok(json!({
        "emission_mode": params.subnets.emission_mode,
        "tao_weight": params.subnets.tao_weight_ppm as f64 / 1e6,
        "total_stake": r.total_stake,
        "max_members": params.subnets.root_max_uids,
        "members": members,
        "emission_shares": emission,
        "last_epoch_block": r.last_epoch_block,
    }))
}

/// One hotkey: its owner, take, root stake, and where it is registered.
pub fn hotkey_info(s: &dyn StateRead, hotkey: &AccountId) -> Result<Value, NodeError> {
    let mut registrations = Vec::new();
    for n in subnet::networks(s)?.netuids {
        if let Some(uid) = subnet::uid_of(s, n, hotkey)? {
            registrations.push(json!({
                "netuid": n, "uid": uid, "stake": stake::hotkey_alpha(s, n, hotkey)?.total_alpha,
                "axon": serve::serve_info(s, n, hotkey)?,
            }));
        }
    }
    Ok(json!({
        "hotkey": hotkey,
        "coldkey": subnet::hotkey_owner(s, hotkey)?,
        "take": stake::take_of(s, hotkey)?,
        "root_stake": root::root_stake(s, hotkey)?,
        "root_member": root::root(s)?.members.iter().any(|m| m.hotkey == *hotkey),
        "registrations": registrations,
    }))
}

pub fn sim_swap(
    s: &dyn StateRead,
    netuid: u16,
    direction: Direction,
    amount: u64,
) -> Result<Value, NodeError> {
    if netuid == root::ROOT {
        // Root is 1:1 and fee-free.
        let price = agora_core::RAO_PER_TAO;
        return Ok(
            json!({"netuid": 0, "direction": direction, "amount_in": amount, "fee": 0, "amount_out": amount,
                    "price_before_rao": price, "price_after_rao": price}),
        );
    }
    let sn = subnet::subnet(s, netuid)?
        .ok_or_else(|| NodeError::NotFound(format!("no subnet {netuid}")))?;
    Ok(
        match sn.pool.swap(direction, amount, DEFAULT_FEE_RATE, None) {
            Ok(q) => {
                json!({"netuid": netuid, "direction": direction, "amount_in": q.amount_in, "fee": q.fee, "amount_out": q.amount_out,
                        "price_before_rao": sn.pool.price_rao(), "price_after_rao": q.after.price_rao()})
            }
            Err(e) => json!({"netuid": netuid, "direction": direction, "error": e.to_string()}),
        },
    )
}
