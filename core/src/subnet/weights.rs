//! `set_weights` (R§5.1): validation in subtensor's order, max-upscale normalisation, and
//! storage on the neuron; hash commit-reveal (R§5.2) with blake3 over the canonical
//! encoding: `commit_weights` stores `blake3("agora/weights/v1" || encode(hotkey, netuid,
//! uids, values, salt, version_key))`, and `reveal_weights` in exactly the epoch
//! `commit epoch + reveal_period_epochs` applies the weights.

use bincode::{Decode, Encode};
use fixed::types::I32F32;
use serde::Serialize;

use super::{keys, neuron, put_neuron, subnet, uid_of, Netuid, SubnetError, TxFailure, Uid};
use crate::crypto::{hash_with_domain, AccountId, Hash};
use crate::state::{read, Overlay, StateError, StateRead};

/// Domain prefix of a weights commit hash.
pub const COMMIT_DOMAIN: &[u8] = b"agora/weights/v1";
/// Most unrevealed commits per hotkey and subnet (R§11).
pub const MAX_PENDING_COMMITS: usize = 10;

/// One pending weights commit.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Commit {
    pub hash: Hash,
    /// The subnet's epoch index when committed.
    pub epoch: u64,
    pub block: u64,
}

/// The hash a validator commits to.
pub fn commit_hash(
    hotkey: &AccountId,
    netuid: Netuid,
    uids: &[Uid],
    values: &[u16],
    salt: &[u16],
    version_key: u64,
) -> Hash {
    let body = crate::codec::canonical(&(
        *hotkey,
        netuid,
        uids.to_vec(),
        values.to_vec(),
        salt.to_vec(),
        version_key,
    ));
    hash_with_domain(COMMIT_DOMAIN, &[&body])
}

pub fn commits(
    s: &dyn StateRead,
    netuid: Netuid,
    hotkey: &AccountId,
) -> Result<Vec<Commit>, StateError> {
    Ok(read(s, &keys::commits(netuid, hotkey), "weight commits")?.unwrap_or_default())
}

fn put_commits(o: &mut Overlay<'_>, netuid: Netuid, hotkey: &AccountId, c: &[Commit]) {
    let key = keys::commits(netuid, hotkey);
    if c.is_empty() {
        o.delete(key);
    } else {
        o.put_value(key, &c.to_vec());
    }
}

/// A commit is still revealable while the subnet's epoch index has not passed its reveal
/// epoch.
pub fn commit_live(c: &Commit, reveal_period: u64, epoch_index: u64) -> bool {
    c.epoch.saturating_add(reveal_period) >= epoch_index
}

/// Scale so the largest weight becomes 65535, rounding to nearest in I32F32
/// (subtensor's `vec_max_upscale_to_u16`); all-zero input is returned unchanged.
pub fn max_upscale(values: &[u16]) -> Vec<u16> {
    let max = values.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return values.to_vec();
    }
    let scale = I32F32::from_num(u16::MAX).saturating_div(I32F32::from_num(max));
    values
        .iter()
        .map(|v| {
            let x = if max > 32_768 {
                I32F32::from_num(*v).saturating_mul(scale)
            } else {
                I32F32::from_num(*v)
                    .saturating_mul(I32F32::from_num(u16::MAX))
                    .saturating_div(I32F32::from_num(max))
            };
            x.round().saturating_to_num::<u16>()
        })
        .collect()
}

/// `set_weights(netuid, uids, values, version_key)` signed by `hotkey` at block `now`.
pub fn set_weights(
    o: &mut Overlay<'_>,
    now: u64,
    hotkey: &AccountId,
    netuid: Netuid,
    uids: &[Uid],
    values: &[u16],
    version_key: u64,
) -> Result<(), TxFailure> {
    apply_weights(o, now, hotkey, netuid, uids, values, version_key, false)
}

/// The `set_weights` path; a reveal skips the rate limit and leaves `last_update` (the
/// commit already counted as activity).
#[allow(clippy::too_many_arguments)]
fn apply_weights(
    o: &mut Overlay<'_>,
    now: u64,
    hotkey: &AccountId,
    netuid: Netuid,
    uids: &[Uid],
    values: &[u16],
    version_key: u64,
    revealed: bool,
) -> Result<(), TxFailure> {
    if netuid == 0 {
        return Err(SubnetError::RootNetuid.into());
    }
    if uids.len() != values.len() {
        return Err(SubnetError::WeightsLengthMismatch {
            uids: uids.len(),
            values: values.len(),
        }
        .into());
    }
    let sn = subnet(o, netuid)?.ok_or(SubnetError::NoSuchSubnet(netuid))?;
    if uids.len() > usize::from(sn.n) {
        return Err(SubnetError::TooManyWeights {
            given: uids.len(),
            n: sn.n,
        }
        .into());
    }
    let uid = uid_of(o, netuid, hotkey)?.ok_or(SubnetError::NotRegistered(*hotkey))?;
    let mut me = neuron(o, netuid, uid)?.ok_or(SubnetError::NotRegistered(*hotkey))?;
    let is_owner = *hotkey == sn.owner_hotkey;
    // The stake-threshold check (R§5.1 step 3) is vacuous while StakeThreshold is 0.
    let min_version = sn.hyper.weights_version_key;
    if min_version != 0 && version_key < min_version {
        return Err(SubnetError::IncorrectVersionKey {
            got: version_key,
            min: min_version,
        }
        .into());
    }
    if sn.hyper.commit_reveal && !revealed {
        return Err(SubnetError::CommitRevealEnabled.into());
    }
    if !revealed {
        check_rate_limit(&me, &sn, now)?;
    }
    let self_weight = uids.len() == 1 && uids.first() == Some(&uid);
    if !self_weight && !is_owner && !me.validator_permit {
        return Err(SubnetError::NoValidatorPermit.into());
    }
    let mut sorted: Vec<Uid> = uids.to_vec();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w.first() == w.get(1)) {
        return Err(SubnetError::DuplicateUids.into());
    }
    if let Some(bad) = sorted.iter().find(|u| **u >= sn.n) {
        return Err(SubnetError::UnknownUid(*bad).into());
    }
    let min = usize::from(sn.hyper.min_allowed_weights.min(sn.n));
    if !self_weight && uids.len() < min {
        return Err(SubnetError::TooFewWeights {
            given: uids.len(),
            min,
        }
        .into());
    }
    let scaled = max_upscale(values);
    let mut row: Vec<(Uid, u16)> = uids.iter().copied().zip(scaled).collect();
    row.sort_unstable();
    me.weights = row;
    if !revealed {
        me.last_update = now;
    }
    put_neuron(o, netuid, uid, &me);
    Ok(())
}

/// `weights_rate_limit` blocks since the neuron's last update (R§5.1 step 5).
fn check_rate_limit(me: &super::Neuron, sn: &super::Subnet, now: u64) -> Result<(), TxFailure> {
    if me.last_update != 0 && now.saturating_sub(me.last_update) < sn.hyper.weights_rate_limit {
        return Err(SubnetError::WeightsRateLimited {
            next: me.last_update.saturating_add(sn.hyper.weights_rate_limit),
        }
        .into());
    }
    Ok(())
}

/// The subnet of a commit or reveal: not root, existing, commit-reveal on.
fn commit_reveal_subnet(o: &Overlay<'_>, netuid: Netuid) -> Result<super::Subnet, TxFailure> {
    let sn = super::named_subnet(o, netuid)?;
    if !sn.hyper.commit_reveal {
        return Err(SubnetError::CommitRevealDisabled.into());
    }
    Ok(sn)
}

/// `commit_weights(netuid, hash)` signed by `hotkey` (R§5.2).
pub fn commit_weights(
    o: &mut Overlay<'_>,
    now: u64,
    hotkey: &AccountId,
    netuid: Netuid,
    hash: Hash,
) -> Result<(), TxFailure> {
    let sn = commit_reveal_subnet(o, netuid)?;
    let uid = uid_of(o, netuid, hotkey)?.ok_or(SubnetError::NotRegistered(*hotkey))?;
    let mut me = neuron(o, netuid, uid)?.ok_or(SubnetError::NotRegistered(*hotkey))?;
    check_rate_limit(&me, &sn, now)?;
    let mut pending = commits(o, netuid, hotkey)?;
    pending.retain(|c| commit_live(c, sn.hyper.reveal_period_epochs, sn.epoch_index));
    if pending.len() >= MAX_PENDING_COMMITS {
        return Err(SubnetError::TooManyCommits.into());
    }
    pending.push(Commit {
        hash,
        epoch: sn.epoch_index,
        block: now,
    });
    put_commits(o, netuid, hotkey, &pending);
    me.last_update = now;
    put_neuron(o, netuid, uid, &me);
    Ok(())
}

/// `reveal_weights(netuid, uids, values, salt, version_key)` signed by `hotkey` (R§5.2):
/// the matching commit must be revealed in exactly its reveal epoch; it and every older
/// commit are dropped, then the weights go through the `set_weights` checks.
#[allow(clippy::too_many_arguments)]
pub fn reveal_weights(
    o: &mut Overlay<'_>,
    now: u64,
    hotkey: &AccountId,
    netuid: Netuid,
    uids: &[Uid],
    values: &[u16],
    salt: &[u16],
    version_key: u64,
) -> Result<(), TxFailure> {
    let sn = commit_reveal_subnet(o, netuid)?;
    uid_of(o, netuid, hotkey)?.ok_or(SubnetError::NotRegistered(*hotkey))?;
    let hash = commit_hash(hotkey, netuid, uids, values, salt, version_key);
    let mut pending = commits(o, netuid, hotkey)?;
    let pos = pending
        .iter()
        .position(|c| c.hash == hash)
        .ok_or(SubnetError::NoMatchingCommit)?;
    let epoch = pending
        .get(pos)
        .map_or(0, |c| c.epoch.saturating_add(sn.hyper.reveal_period_epochs));
    if sn.epoch_index < epoch {
        return Err(SubnetError::RevealTooEarly {
            epoch,
            now: sn.epoch_index,
        }
        .into());
    }
    if sn.epoch_index > epoch {
        return Err(SubnetError::RevealExpired { epoch }.into());
    }
    pending.drain(..=pos);
    put_commits(o, netuid, hotkey, &pending);
    apply_weights(o, now, hotkey, netuid, uids, values, version_key, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_upscale_matches_subtensor() {
        assert_eq!(max_upscale(&[1, 2, 4]), vec![16_384, 32_768, 65_535]);
        assert_eq!(max_upscale(&[0, 0]), vec![0, 0]);
        assert_eq!(max_upscale(&[65_535, 100]), vec![65_535, 100]);
        assert_eq!(max_upscale(&[3]), vec![65_535]);
    }
}
