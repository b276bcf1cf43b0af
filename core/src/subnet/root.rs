//! The root network, netuid 0 (R§4.4, R§7.7, R§9).
//!
//! Root is a stable pool: TAO staked on root stays TAO, 1:1, no fee, no AMM. A hotkey's
//! root stake counts `tao_weight * root_stake` in its stake weight on every subnet, and the
//! root proportion of each subnet's validator emission is paid to root stakers. Root
//! dividends are sold through the subnet's pool at the epoch (fee-free) and the TAO is
//! added to the hotkey's root share pool, so every root nominator's stake grows pro rata
//! (the dTAO-launch rule, paid at once rather than claimed later).
//!
//! Root membership (at most `root_max_uids` hotkeys) matters for the legacy
//! `root_weights` emission mode, where members' weights over subnets split the emission.

use super::store::hotkey_alpha;
use super::{bind_hotkey, Netuid, SubnetError, SubnetParams, TxFailure};
use crate::crypto::AccountId;
use crate::state::{Overlay, StateError, StateRead};

pub use super::store::{put_root, root, RootMember, RootNet, ROOT, ROOT_KEY};

/// A hotkey's root (TAO) stake.
pub fn root_stake(s: &dyn StateRead, hotkey: &AccountId) -> Result<u64, StateError> {
    Ok(hotkey_alpha(s, ROOT, hotkey)?.total_alpha)
}

/// `root_register(hotkey)` signed by `coldkey` (R§4.4): one registration per block; a full
/// root replaces its lowest-stake member only for a newcomer with strictly more root stake.
pub fn root_register(
    o: &mut Overlay<'_>,
    params: &SubnetParams,
    now: u64,
    coldkey: &AccountId,
    hotkey: &AccountId,
) -> Result<(), TxFailure> {
    let mut r = root(o)?;
    if r.last_registration_block == Some(now) {
        return Err(SubnetError::RootRegistrationsPerBlock.into());
    }
    if r.members.iter().any(|m| m.hotkey == *hotkey) {
        return Err(SubnetError::AlreadyRegistered(*hotkey).into());
    }
    bind_hotkey(o, hotkey, coldkey)?;
    let mine = root_stake(o, hotkey)?;
    let member = RootMember {
        hotkey: *hotkey,
        weights: Vec::new(),
        last_update: now,
    };
    if r.members.len() < usize::from(params.root_max_uids) {
        r.members.push(member);
    } else {
        let mut lowest: Option<(u64, usize)> = None;
        for (i, m) in r.members.iter().enumerate() {
            let s = root_stake(o, &m.hotkey)?;
            if lowest.is_none_or(|(ls, _)| s < ls) {
                lowest = Some((s, i));
            }
        }
        let Some((_, slot)) = lowest.filter(|(low, _)| mine > *low) else {
            return Err(SubnetError::RootFull {
                needed: lowest.map_or(0, |(l, _)| l),
            }
            .into());
        };
        if let Some(m) = r.members.get_mut(slot) {
            *m = member;
        }
    }
    r.last_registration_block = Some(now);
    put_root(o, &r);
    Ok(())
}

/// Root weights over subnets (`set_weights` on netuid 0), only in `root_weights` mode.
pub fn set_root_weights(
    o: &mut Overlay<'_>,
    now: u64,
    hotkey: &AccountId,
    netuids: &[Netuid],
    values: &[u16],
    rate_limit: u64,
) -> Result<(), TxFailure> {
    if netuids.len() != values.len() {
        return Err(SubnetError::WeightsLengthMismatch {
            uids: netuids.len(),
            values: values.len(),
        }
        .into());
    }
    let mut r = root(o)?;
    let nets = super::networks(o)?;
    let Some(me) = r.members.iter_mut().find(|m| m.hotkey == *hotkey) else {
        return Err(SubnetError::NotRegistered(*hotkey).into());
    };
    if me.last_update != 0
        && now.saturating_sub(me.last_update) < rate_limit
        && !me.weights.is_empty()
    {
        return Err(SubnetError::WeightsRateLimited {
            next: me.last_update.saturating_add(rate_limit),
        }
        .into());
    }
    let mut row: Vec<(Netuid, u16)> = netuids
        .iter()
        .copied()
        .zip(super::weights::max_upscale(values))
        .collect();
    row.sort_unstable();
    if row
        .windows(2)
        .any(|w| w.first().map(|a| a.0) == w.get(1).map(|b| b.0))
    {
        return Err(SubnetError::DuplicateUids.into());
    }
    if let Some((bad, _)) = row.iter().find(|(n, _)| !nets.netuids.contains(n)) {
        return Err(SubnetError::NoSuchSubnet(*bad).into());
    }
    me.weights = row;
    me.last_update = now;
    put_root(o, &r);
    Ok(())
}
