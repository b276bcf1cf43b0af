//! Subnet RPC methods: `subnet_list`, `subnet_metagraph`, `subnet_lockCost`, `stake_list`,
//! `sim_swap`. Each reads committed state through the chain actor.

use agora_core::emission::block_emission;
use agora_core::genesis::ChainParams;
use agora_core::pool::{Direction, DEFAULT_FEE_RATE};
use agora_core::state::{self, StateRead};
use agora_core::subnet::{self, stake, Subnet};
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

fn summary(sn: &Subnet, head: u64, ema_total: u128) -> Value {
    let next_epoch = sn.last_epoch_block.saturating_add(sn.hyper.tempo);
    let share = if ema_total == 0 || sn.first_emission_block.is_none() {
        0.0
    } else {
        sn.ema_price_rao as f64 / ema_total as f64
    };
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
        "burn": sn.burn,
        "tempo": sn.hyper.tempo,
        "epoch_index": sn.epoch_index,
        "last_epoch_block": sn.last_epoch_block,
        "blocks_to_next_epoch": next_epoch.saturating_sub(head),
        "pending": {"server": sn.pending_server, "validator": sn.pending_validator, "owner": sn.pending_owner},
    })
}

/// Sum of started subnets' EMA prices: the denominator of the emission shares.
fn ema_total(all: &[Subnet]) -> u128 {
    all.iter()
        .filter(|x| x.first_emission_block.is_some())
        .map(|x| u128::from(x.ema_price_rao))
        .sum()
}

pub fn list(s: &dyn StateRead, head: u64) -> Result<Value, NodeError> {
    let all = subnets(s)?;
    let ema_total = ema_total(&all);
    Ok(Value::Array(
        all.iter().map(|sn| summary(sn, head, ema_total)).collect(),
    ))
}

pub fn metagraph(s: &dyn StateRead, netuid: u16, head: u64) -> Result<Option<Value>, NodeError> {
    let Some(sn) = subnet::subnet(s, netuid)? else {
        return Ok(None);
    };
    let all = subnets(s)?;
    let ema_total = ema_total(&all);
    let mut neurons = Vec::with_capacity(usize::from(sn.n));
    for uid in 0..sn.n {
        let Some(nr) = subnet::neuron(s, netuid, uid)? else {
            continue;
        };
        let coldkey = subnet::hotkey_owner(s, &nr.hotkey)?;
        let stake = stake::hotkey_alpha(s, netuid, &nr.hotkey)?.total_alpha;
        neurons.push(json!({
            "uid": uid, "hotkey": nr.hotkey, "coldkey": coldkey, "stake": stake,
            "incentive": nr.incentive, "dividends": nr.dividends, "emission": nr.emission,
            "consensus": nr.consensus, "validator_trust": nr.validator_trust, "stake_weight": nr.stake_weight,
            "validator_permit": nr.validator_permit, "active": nr.active,
            "last_update": nr.last_update, "block_at_registration": nr.block_at_registration,
            "weights": nr.weights, "bonds": nr.bonds,
        }));
    }
    let mut v = summary(&sn, head, ema_total);
    v["hyperparams"] = serde_json::to_value(&sn.hyper).map_err(internal)?;
    v["neurons"] = Value::Array(neurons);
    Ok(Some(v))
}

pub fn lock_cost(s: &dyn StateRead, params: &ChainParams, head: u64) -> Result<Value, NodeError> {
    let nets = subnet::networks(s)?;
    let emission = block_emission(state::supply(s)?.issued);
    let cost = subnet::lock_cost(&nets, &params.subnets, head.saturating_add(1), emission);
    Ok(
        json!({"lock_cost": cost, "subnets": nets.netuids.len(), "subnet_limit": params.subnets.subnet_limit}),
    )
}

pub fn stakes(s: &dyn StateRead, coldkey: &AccountId) -> Result<Value, NodeError> {
    let mut out = Vec::new();
    for sn in subnets(s)? {
        for uid in 0..sn.n {
            let Some(nr) = subnet::neuron(s, sn.netuid, uid)? else {
                continue;
            };
            let alpha = stake::stake_of(s, sn.netuid, &nr.hotkey, coldkey)?;
            if alpha == 0 {
                continue;
            }
            let tao_value = sn
                .pool
                .swap(Direction::Sell, alpha, DEFAULT_FEE_RATE, None)
                .map(|q| q.amount_out)
                .unwrap_or(0);
            out.push(json!({"netuid": sn.netuid, "hotkey": nr.hotkey, "uid": uid, "alpha": alpha, "tao_value": tao_value}));
        }
    }
    Ok(Value::Array(out))
}

pub fn sim_swap(
    s: &dyn StateRead,
    netuid: u16,
    direction: Direction,
    amount: u64,
) -> Result<Value, NodeError> {
    let sn = subnet::subnet(s, netuid)?
        .ok_or_else(|| NodeError::Internal(format!("no subnet {netuid}")))?;
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
