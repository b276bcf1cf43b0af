//! Dissolving a subnet (R§3.4): by the admin, or when a new registration needs its slot.
//!
//! The pool's TAO (and, in `root_weights` mode, its pending TAO) is the pot. Every staker's
//! alpha value and the pool's own alpha plus the protocol-owned alpha divide it pro rata;
//! each position is paid the floor of its share as free TAO, and what is left (the
//! protocol's share and the rounding dust) is recycled: issuance goes down, so it will be
//! emitted again.
//!
//! The work is bounded per block (issue 15 item 3). The `dissolve_network` transaction,
//! or the registration that prunes a subnet, does a constant amount of work: it removes
//! the subnet from the registry (no more emission, staking, registration or weights) and
//! queues a [`Dissolving`] record with the pot and the divisor. Then each block's coinbase
//! pays or deletes at most [`DISSOLVE_ROWS_PER_BLOCK`] rows, oldest dissolve first: the
//! stake positions (paying each), then every other per-subnet row. When none is left the
//! rest of the pot is recycled and the netuid is free; until then it stays reserved, so a
//! new subnet never shares keys with the rows of an old one.

use bincode::{Decode, Encode};
use serde::Serialize;

use super::stake::{hotkey_alpha, keys as stake_keys};
use super::{keys, named_subnet, networks, subnet, Netuid, SubnetParams, TxFailure};
use crate::state::{self, Overlay, StateError, StateRead};

/// Every per-subnet key kind but the stake shares, which are paid first (one byte, then
/// the big-endian netuid).
const PER_SUBNET_KINDS: [u8; 7] = [
    keys::NEURON,
    keys::UID,
    stake_keys::HOTKEY_ALPHA,
    keys::COMMITS,
    keys::SERVE,
    keys::EPOCH,
    keys::HYPER_SET,
];

fn prefix(kind: u8, netuid: Netuid) -> Vec<u8> {
    let mut k = vec![kind];
    k.extend_from_slice(&netuid.to_be_bytes());
    k
}

/// The subnet a full registry gives up (R§3.1): past its immunity, lowest EMA price, then
/// earliest registration, then lowest netuid.
pub fn subnet_to_prune(
    s: &dyn StateRead,
    params: &SubnetParams,
    now: u64,
) -> Result<Option<Netuid>, StateError> {
    let mut best: Option<(u64, u64, Netuid)> = None;
    for n in networks(s)?.netuids {
        let Some(sn) = subnet(s, n)? else { continue };
        if now
            < sn.registered_at
                .saturating_add(params.network_immunity_period)
        {
            continue;
        }
        let key = (sn.ema_price_rao, sn.registered_at, n);
        if best.is_none_or(|b| key < b) {
            best = Some(key);
        }
    }
    Ok(best.map(|(_, _, n)| n))
}

/// Rows (stake positions paid, or per-subnet rows deleted) the coinbase of one block
/// handles for dissolving subnets, all of them together.
pub const DISSOLVE_ROWS_PER_BLOCK: usize = 256;

/// The queue of subnets being dissolved, oldest first.
pub const DISSOLVING_KEY: &[u8] = b"d";

/// A subnet being dissolved: what its stakers divide and how far the payout has come.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Dissolving {
    pub netuid: Netuid,
    /// Block of the transaction that dissolved it.
    pub started_at: u64,
    /// The subnet's pool TAO plus pending TAO at that block, rao.
    pub pot: u64,
    /// The divisor: stakers' alpha plus the pool's and the protocol's alpha at that block.
    pub total_alpha: u128,
    /// TAO paid to stakers so far.
    pub paid: u64,
    /// Stake positions paid so far.
    pub positions_paid: u64,
}

impl Dissolving {
    /// What a position worth `alpha` is paid: the floor of its share of the pot.
    pub fn payout(&self, alpha: u64) -> u64 {
        u128::from(self.pot)
            .saturating_mul(u128::from(alpha))
            .checked_div(self.total_alpha)
            .map_or(0, |v| u64::try_from(v).unwrap_or(u64::MAX))
    }
}

/// The subnets being dissolved, oldest first.
pub fn dissolving(s: &dyn StateRead) -> Result<Vec<Dissolving>, StateError> {
    Ok(state::read(s, DISSOLVING_KEY, "dissolve queue")?.unwrap_or_default())
}

fn put_dissolving(o: &mut Overlay<'_>, queue: &[Dissolving]) {
    if queue.is_empty() {
        o.delete(DISSOLVING_KEY.to_vec());
    } else {
        o.put_value(DISSOLVING_KEY.to_vec(), &queue.to_vec());
    }
}

/// Dissolve `netuid` (never root) at block `now`: take it out of the registry and queue
/// its payout, in constant work. The stakers are paid over the next blocks ([`step`]).
pub fn dissolve(o: &mut Overlay<'_>, netuid: Netuid, now: u64) -> Result<Dissolving, TxFailure> {
    let sn = named_subnet(o, netuid)?;
    let pending = sn
        .pending_server
        .saturating_add(sn.pending_validator)
        .saturating_add(sn.pending_owner)
        .saturating_add(sn.pending_root);
    // `alpha_out` is what hotkeys hold, plus pending buckets, plus protocol alpha: without
    // the pending buckets (never paid out) it is the stakers' and the protocol's alpha.
    let total_alpha =
        u128::from(sn.pool.alpha).saturating_add(u128::from(sn.alpha_out.saturating_sub(pending)));
    let record = Dissolving {
        netuid,
        started_at: now,
        pot: sn.pool.tao.saturating_add(sn.pending_tao),
        total_alpha,
        paid: 0,
        positions_paid: 0,
    };
    o.delete(keys::subnet(netuid));
    let mut nets = networks(o)?;
    nets.netuids.retain(|n| *n != netuid);
    o.put_value(keys::NETWORKS.to_vec(), &nets);
    let mut queue = dissolving(o)?;
    queue.push(record.clone());
    put_dissolving(o, &queue);
    Ok(record)
}

/// A dissolve the coinbase finished in this block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dissolved {
    pub netuid: Netuid,
    pub paid: u64,
    pub recycled: u64,
}

/// One block's share of the queued dissolves: at most [`DISSOLVE_ROWS_PER_BLOCK`] rows.
pub fn step(o: &mut Overlay<'_>) -> Result<Vec<Dissolved>, StateError> {
    let mut queue = dissolving(o)?;
    if queue.is_empty() {
        return Ok(Vec::new());
    }
    let mut budget = DISSOLVE_ROWS_PER_BLOCK;
    let mut done = Vec::new();
    let mut paid_now: u64 = 0;
    let mut recycled_now: u64 = 0;
    while let Some(d) = queue.first_mut() {
        let before = d.paid;
        budget = budget.saturating_sub(pay_positions(o, d, budget)?);
        paid_now = paid_now.saturating_add(d.paid.saturating_sub(before));
        if budget == 0 {
            break;
        }
        for kind in PER_SUBNET_KINDS {
            let rows = o.scan_prefix_limit(&prefix(kind, d.netuid), budget)?;
            budget = budget.saturating_sub(rows.len());
            for (k, _) in rows {
                o.delete(k);
            }
            if budget == 0 {
                break;
            }
        }
        // Each scan came back short of its budget: nothing of the subnet is left.
        if budget == 0 {
            break;
        }
        let recycled = d.pot.saturating_sub(d.paid);
        recycled_now = recycled_now.saturating_add(recycled);
        done.push(Dissolved {
            netuid: d.netuid,
            paid: d.paid,
            recycled,
        });
        queue.remove(0);
    }
    put_dissolving(o, &queue);
    let mut supply = state::supply(o)?;
    supply.staked = supply
        .staked
        .saturating_sub(paid_now.saturating_add(recycled_now));
    supply.free = supply.free.saturating_add(paid_now);
    supply.issued = supply.issued.saturating_sub(recycled_now);
    state::put_supply(o, &supply);
    Ok(done)
}

/// Pay and delete up to `budget` of `d`'s stake positions; returns how many.
fn pay_positions(
    o: &mut Overlay<'_>,
    d: &mut Dissolving,
    budget: usize,
) -> Result<usize, StateError> {
    let share_prefix = prefix(stake_keys::SHARES, d.netuid);
    let rows = o.scan_prefix_limit(&share_prefix, budget)?;
    for (k, v) in &rows {
        let [hotkey, coldkey] = state::key_accounts(k, share_prefix.len(), "share")?;
        let shares: u128 = state::decode_row(k, v, "stake shares")?;
        let value = hotkey_alpha(o, d.netuid, &hotkey)?.value_of(shares);
        // Never more than the pot holds, whatever the rows say.
        let amount = d.payout(value).min(d.pot.saturating_sub(d.paid));
        o.delete(k.clone());
        o.delete(stake_keys::position(&coldkey, d.netuid, &hotkey));
        d.positions_paid = d.positions_paid.saturating_add(1);
        if amount == 0 {
            continue;
        }
        let mut acc = state::account(o, &coldkey)?;
        acc.free = acc.free.saturating_add(amount);
        state::put_account(o, &coldkey, &acc);
        d.paid = d.paid.saturating_add(amount);
    }
    Ok(rows.len())
}
