//! `set_weights` (R§5.1): validation in subtensor's order, max-upscale normalisation, and
//! storage on the neuron.

use fixed::types::I32F32;

use super::{neuron, put_neuron, subnet, uid_of, Netuid, SubnetError, TxFailure, Uid};
use crate::crypto::AccountId;
use crate::state::Overlay;

/// Scale so the largest weight becomes 65535, rounding to nearest in I32F32
/// (subtensor's `vec_max_upscale_to_u16`); all-zero input is returned unchanged.
pub fn max_upscale(values: &[u16]) -> Vec<u16> {
    let max = values.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return values.to_vec();
    }
    let scale = I32F32::from_num(u16::MAX) / I32F32::from_num(max);
    values
        .iter()
        .map(|v| {
            let x = if max > 32_768 {
                I32F32::from_num(*v).saturating_mul(scale)
            } else {
                I32F32::from_num(*v).saturating_mul(I32F32::from_num(u16::MAX))
                    / I32F32::from_num(max)
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
    if me.last_update != 0 && now.saturating_sub(me.last_update) < sn.hyper.weights_rate_limit {
        return Err(SubnetError::WeightsRateLimited {
            next: me.last_update.saturating_add(sn.hyper.weights_rate_limit),
        }
        .into());
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
    me.last_update = now;
    put_neuron(o, netuid, uid, &me);
    Ok(())
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
