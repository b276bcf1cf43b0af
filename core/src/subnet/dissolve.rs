//! Dissolving a subnet (R§3.4): by the admin, or when a new registration needs its slot.
//!
//! The pool's TAO is the pot. Every staker's alpha value and the pool's own alpha (the
//! protocol share) divide it pro rata, floor first and the leftover rao by largest
//! remainder. Stakers are paid free TAO; the protocol share is recycled (issuance goes
//! down, so it will be emitted again). Then every per-subnet key is deleted and the netuid
//! is free for reuse.

use super::stake::{hotkey_alpha, keys as stake_keys};
use super::{keys, named_subnet, networks, subnet, Netuid, SubnetParams, TxFailure};
use crate::codec::decode_value;
use crate::crypto::AccountId;
use crate::state::{self, Overlay, StateError, StateRead};

/// Every per-subnet key kind (one byte, then the big-endian netuid).
const PER_SUBNET_KINDS: [u8; 8] = [
    keys::NEURON,
    keys::UID,
    stake_keys::HOTKEY_ALPHA,
    stake_keys::SHARES,
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

/// Split `pot` pro rata to `weights`: floors, then one rao each to the largest remainders
/// (ties: earlier entries first). The result sums to `pot` when any weight is positive.
pub fn split_pro_rata(pot: u64, weights: &[u128]) -> Vec<u64> {
    let total: u128 = weights.iter().fold(0, |a, w| a.saturating_add(*w));
    if total == 0 {
        return vec![0; weights.len()];
    }
    let mut out = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let num = u128::from(pot).saturating_mul(*w);
        out.push(
            num.checked_div(total)
                .map_or(0, |v| u64::try_from(v).unwrap_or(u64::MAX)),
        );
        remainders.push((num.checked_rem(total).unwrap_or(0), i));
    }
    let paid: u64 = out.iter().fold(0, |a, x| a.saturating_add(*x));
    let leftover = usize::try_from(pot.saturating_sub(paid)).unwrap_or(usize::MAX);
    // Largest remainder first; among equal remainders the earlier entry.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders.into_iter().take(leftover) {
        if let Some(x) = out.get_mut(i) {
            *x = x.saturating_add(1);
        }
    }
    out
}

/// Dissolve `netuid` (never root): pay stakers their share of the pool's TAO, recycle the rest, delete
/// the subnet. Returns the TAO paid to stakers and the TAO recycled.
pub fn dissolve(o: &mut Overlay<'_>, netuid: Netuid) -> Result<(u64, u64), TxFailure> {
    let sn = named_subnet(o, netuid)?;
    // Stakers: (coldkey, hotkey, value), from the share rows.
    let share_prefix = prefix(stake_keys::SHARES, netuid);
    let mut stakers: Vec<(AccountId, AccountId, u128)> = Vec::new();
    for (k, v) in o.scan_prefix(&share_prefix)? {
        let rest = k.get(share_prefix.len()..).unwrap_or_default();
        let hotkey = rest.get(..32).and_then(|h| <[u8; 32]>::try_from(h).ok());
        let coldkey = rest.get(32..).and_then(|c| <[u8; 32]>::try_from(c).ok());
        let (Some(hotkey), Some(coldkey)) = (hotkey, coldkey) else {
            return Err(StateError::Corrupt {
                key: hex::encode(&k),
                reason: "share key has the wrong length".into(),
            }
            .into());
        };
        let shares: u128 = decode_value(&v, "stake shares").map_err(|e| StateError::Corrupt {
            key: hex::encode(&k),
            reason: e.to_string(),
        })?;
        let (hotkey, coldkey) = (AccountId(hotkey), AccountId(coldkey));
        let value = hotkey_alpha(o, netuid, &hotkey)?.value_of(shares);
        stakers.push((coldkey, hotkey, u128::from(value)));
    }
    let pot = sn.pool.tao.saturating_add(sn.pending_tao);
    let mut weights: Vec<u128> = stakers.iter().map(|s| s.2).collect();
    // The protocol's share: the pool's alpha and the alpha the chain bought (R§3.4).
    weights.push(u128::from(sn.pool.alpha).saturating_add(u128::from(sn.protocol_alpha)));
    let split = split_pro_rata(pot, &weights);
    let mut paid: u64 = 0;
    for ((coldkey, hotkey, _), amount) in stakers.iter().zip(&split) {
        o.delete(stake_keys::position(coldkey, netuid, hotkey));
        if *amount == 0 {
            continue;
        }
        let mut acc = state::account(o, coldkey)?;
        acc.free = acc.free.saturating_add(*amount);
        state::put_account(o, coldkey, &acc);
        paid = paid.saturating_add(*amount);
    }
    let recycled = pot.saturating_sub(paid);
    let mut supply = state::supply(o)?;
    supply.staked = supply.staked.saturating_sub(pot);
    supply.free = supply.free.saturating_add(paid);
    supply.issued = supply.issued.saturating_sub(recycled);
    state::put_supply(o, &supply);

    for kind in PER_SUBNET_KINDS {
        for (k, _) in o.scan_prefix(&prefix(kind, netuid))? {
            o.delete(k);
        }
    }
    o.delete(keys::subnet(netuid));
    let mut nets = networks(o)?;
    nets.netuids.retain(|n| *n != netuid);
    o.put_value(keys::NETWORKS.to_vec(), &nets);
    Ok((paid, recycled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pro_rata_split_hands_out_every_rao_by_largest_remainder() {
        assert_eq!(split_pro_rata(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(split_pro_rata(10, &[2, 1, 1]), vec![5, 3, 2]);
        assert_eq!(split_pro_rata(0, &[5, 5]), vec![0, 0]);
        assert_eq!(split_pro_rata(7, &[0, 0]), vec![0, 0]);
        assert_eq!(
            split_pro_rata(u64::MAX, &[u128::from(u64::MAX), 1])
                .iter()
                .sum::<u64>(),
            u64::MAX
        );
    }
}
