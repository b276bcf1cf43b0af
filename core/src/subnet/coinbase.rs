//! The per-block subnet step (PROTOCOL §5; R§4.2, R§6.1, R§7.1-7.6).
//!
//! Every block: registration prices decay; the block's TAO emission is split across
//! started subnets by their EMA prices and enters their pools; each subnet mints its alpha
//! emission into pending buckets (18% owner cut, then half miners, half validators); price
//! EMAs move. At a subnet's epoch (every `tempo` blocks, at most two per block) Yuma runs on
//! the stored weights and stakes and the pending alpha is paid out as stake.
//!
//! Root staking is not implemented yet, so the root proportion is 0: TAO emission enters
//! each pool as a fee-free chain buy (R§7.4 with the injection cap at 0) and validators
//! receive the whole validator half.

use fixed::types::I64F64;

use super::stake::{credit_alpha, distribute_to_nominators, hotkey_alpha};
use super::{hotkey_owner, networks, neuron, put_neuron, put_subnet, subnet, Netuid, Subnet};
use crate::emission::block_emission;
use crate::epoch::{run_epoch, EpochInput};
use crate::pool::{Direction, PRICE_SCALE};
use crate::state::{Overlay, StateError};

/// Most epochs run in one block; later subnets wait for the next block (R§6.1).
pub const MAX_EPOCHS_PER_BLOCK: usize = 2;
/// Owner cut of each block's alpha emission: 11796/65535 = 18% (R§7.4).
pub const OWNER_CUT: u64 = 11_796;
/// Delegate take on validator dividends: 18% (R§2 default).
pub const DEFAULT_TAKE: u64 = 11_796;
/// Price EMA: `a = 3e-6 * b / (b + 201600)` with `b` blocks since start (R§7.3).
const MOVING_ALPHA_PPB: u64 = 3_000;
const EMA_HALVING_BLOCKS: u64 = 201_600;

/// What the subnet step did this block.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// TAO (rao) that entered subnet pools; the rest of the block emission is not theirs.
    pub tao_to_pools: u64,
    pub epochs: Vec<Netuid>,
}

/// `floor(2^32 * 0.5^(1/half_life))`: the largest Q32 factor whose `half_life`-th power is
/// at most one half (R§4.2), by binary search over exact Q32 powers.
pub fn decay_factor_q32(half_life: u64) -> u64 {
    if half_life == 0 {
        return 0;
    }
    let pow = |f: u64| -> u64 {
        let (mut base, mut exp, mut acc) = (u128::from(f), half_life, 1u128 << 32);
        while exp > 0 {
            if exp & 1 == 1 {
                acc = (acc * base) >> 32;
            }
            base = (base * base) >> 32;
            exp >>= 1;
        }
        u64::try_from(acc).unwrap_or(u64::MAX)
    };
    let (mut lo, mut hi) = (0u64, (1u64 << 32) - 1);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if pow(mid) <= 1 << 31 {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

fn update_ema(sn: &mut Subnet, now: u64) {
    let Some(first) = sn.first_emission_block else {
        return;
    };
    let b = now.saturating_sub(first.saturating_sub(1));
    let a = I64F64::from_num(MOVING_ALPHA_PPB) / I64F64::from_num(1_000_000_000u64)
        * I64F64::from_num(b)
        / I64F64::from_num(b.saturating_add(EMA_HALVING_BLOCKS));
    let spot = I64F64::from_num(sn.pool.price_rao().min(PRICE_SCALE as u64));
    let ema = I64F64::from_num(sn.ema_price_rao);
    let next = a
        .saturating_mul(spot)
        .saturating_add((I64F64::ONE - a).saturating_mul(ema));
    sn.ema_price_rao = next.round().saturating_to_num::<u64>();
}

/// Run the subnet part of a block at height `now` with `tao_emission` rao to hand out.
pub fn step(o: &mut Overlay<'_>, now: u64, tao_emission: u64) -> Result<StepOutcome, StateError> {
    let nets = networks(o)?;
    let mut subnets: Vec<Subnet> = Vec::with_capacity(nets.netuids.len());
    for n in &nets.netuids {
        if let Some(sn) = subnet(o, *n)? {
            subnets.push(sn);
        }
    }
    let mut outcome = StepOutcome::default();
    // Registration prices decay (R§4.2).
    for sn in subnets.iter_mut() {
        let f = decay_factor_q32(sn.hyper.burn_half_life);
        let decayed = (u128::from(sn.burn) * u128::from(f)) >> 32;
        sn.burn = u64::try_from(decayed)
            .unwrap_or(u64::MAX)
            .clamp(sn.hyper.min_burn, sn.hyper.max_burn.max(sn.hyper.min_burn));
    }
    // Emission shares by EMA price among emitting subnets (R§7.3).
    let emitting = |sn: &Subnet| {
        sn.first_emission_block.is_some_and(|f| f <= now) && sn.hyper.registration_allowed
    };
    let ema_total: u128 = subnets
        .iter()
        .filter(|s| emitting(s))
        .map(|s| u128::from(s.ema_price_rao))
        .sum();
    for sn in subnets.iter_mut().filter(|s| emitting(s)) {
        let tao = (u128::from(tao_emission) * u128::from(sn.ema_price_rao))
            .checked_div(ema_total)
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(0);
        // Injection cap = root proportion (0 without root stake): all of it is a chain buy.
        if tao > 0 {
            if let Ok(buy) = sn.pool.swap(Direction::Buy, tao, 0, None) {
                sn.pool = buy.after;
                sn.alpha_out = sn.alpha_out.saturating_add(buy.amount_out);
                outcome.tao_to_pools = outcome.tao_to_pools.saturating_add(buy.amount_in);
            }
        }
        // Alpha emission on the subnet's own halving curve, into the pending buckets (R§7.4).
        let issued = sn.pool.alpha.saturating_add(sn.alpha_out);
        let alpha = block_emission(issued);
        sn.alpha_out = sn.alpha_out.saturating_add(alpha);
        let owner_cut = alpha * OWNER_CUT / 65_535;
        let rest = alpha - owner_cut;
        sn.pending_owner = sn.pending_owner.saturating_add(owner_cut);
        sn.pending_server = sn.pending_server.saturating_add(rest / 2);
        sn.pending_validator = sn.pending_validator.saturating_add(rest - rest / 2);
        update_ema(sn, now);
    }
    // Epochs (R§6.1), in netuid order, at most MAX_EPOCHS_PER_BLOCK.
    for sn in subnets.iter_mut() {
        let tempo = sn.hyper.tempo;
        if tempo == 0
            || now.saturating_sub(sn.last_epoch_block) < tempo
            || outcome.epochs.len() >= MAX_EPOCHS_PER_BLOCK
        {
            continue;
        }
        run_subnet_epoch(o, sn, now)?;
        outcome.epochs.push(sn.netuid);
    }
    for sn in &subnets {
        put_subnet(o, sn);
    }
    Ok(outcome)
}

/// Drain the pending buckets through one Yuma epoch and pay them out (R§7.5-7.6).
fn run_subnet_epoch(o: &mut Overlay<'_>, sn: &mut Subnet, now: u64) -> Result<(), StateError> {
    let (server, validator, owner) = (sn.pending_server, sn.pending_validator, sn.pending_owner);
    sn.pending_server = 0;
    sn.pending_validator = 0;
    sn.pending_owner = 0;
    let n = usize::from(sn.n);
    let mut neurons = Vec::with_capacity(n);
    for uid in 0..sn.n {
        neurons.push(neuron(o, sn.netuid, uid)?);
    }
    let mut stake = Vec::with_capacity(n);
    for nr in neurons.iter() {
        stake.push(match nr {
            Some(nr) => hotkey_alpha(o, sn.netuid, &nr.hotkey)?.total_alpha,
            None => 0,
        });
    }
    let field = |f: &dyn Fn(&super::Neuron) -> u64| -> Vec<u64> {
        neurons.iter().map(|nr| nr.as_ref().map_or(0, f)).collect()
    };
    let input = EpochInput {
        n,
        stake,
        validator_permit: neurons
            .iter()
            .map(|nr| nr.as_ref().is_some_and(|x| x.validator_permit))
            .collect(),
        max_allowed_validators: sn.hyper.max_allowed_validators,
        weights: neurons
            .iter()
            .map(|nr| nr.as_ref().map(|x| x.weights.clone()).unwrap_or_default())
            .collect(),
        bonds: neurons
            .iter()
            .map(|nr| nr.as_ref().map(|x| x.bonds.clone()).unwrap_or_default())
            .collect(),
        kappa: sn.hyper.kappa,
        bonds_moving_avg: sn.hyper.bonds_moving_avg,
        bonds_penalty: sn.hyper.bonds_penalty,
        stake_threshold: 0,
        emission_rao: server.saturating_add(validator),
        current_block: now,
        activity_cutoff: sn.hyper.activity_cutoff(),
        last_update: field(&|x| x.last_update),
        block_at_registration: field(&|x| x.block_at_registration),
        last_tempo: sn.last_epoch_block.saturating_add(1),
        yuma3: sn.hyper.yuma3,
        liquid_alpha: sn.hyper.liquid_alpha,
        alpha_low: 45_875,
        alpha_high: 58_982,
        alpha_sigmoid_steepness: 1_000,
        owner_uid: neurons
            .iter()
            .position(|nr| nr.as_ref().is_some_and(|x| x.hotkey == sn.owner_hotkey))
            .and_then(|u| u16::try_from(u).ok()),
    };
    let out = run_epoch(&input);

    // Store each neuron's results.
    for (uid, nr) in neurons.iter_mut().enumerate() {
        let Some(nr) = nr else { continue };
        let at = |v: &[u16]| v.get(uid).copied().unwrap_or(0);
        nr.consensus = at(&out.consensus);
        nr.incentive = at(&out.incentive);
        nr.dividends = at(&out.dividends);
        nr.validator_trust = at(&out.validator_trust);
        nr.stake_weight = at(&out.stake_weight);
        nr.emission = out.emission.get(uid).copied().unwrap_or(0);
        nr.validator_permit = out.validator_permit.get(uid).copied().unwrap_or(false);
        nr.active = out.active.get(uid).copied().unwrap_or(false);
        nr.bonds = out.bonds.get(uid).cloned().unwrap_or_default();
        put_neuron(o, sn.netuid, uid as u16, nr);
    }

    // Miner incentive: staked to the miner's coldkey; the owner's own incentive is burned.
    let mut burned: u64 = 0;
    for (nr, amount) in neurons.iter().zip(&out.server_emission) {
        let Some(nr) = nr else { continue };
        if *amount == 0 {
            continue;
        }
        if nr.hotkey == sn.owner_hotkey {
            burned = burned.saturating_add(*amount);
            continue;
        }
        if let Some(cold) = hotkey_owner(o, &nr.hotkey)? {
            credit_alpha(o, sn.netuid, &nr.hotkey, &cold, *amount)?;
        }
    }
    // Validator dividends: the validator half (plus the miners' half when nobody earned
    // incentive), split by the epoch's dividends; 18% take to the hotkey's owner, the rest
    // to its nominators.
    let incentive_paid: u64 = out.server_emission.iter().sum();
    let validator_alpha = if incentive_paid > 0 {
        validator
    } else {
        validator.saturating_add(server)
    };
    let div_total: u128 = out.validator_emission.iter().map(|v| u128::from(*v)).sum();
    for (nr, div) in neurons.iter().zip(&out.validator_emission) {
        let Some(nr) = nr else { continue };
        let payout = (u128::from(validator_alpha) * u128::from(*div))
            .checked_div(div_total)
            .and_then(|p| u64::try_from(p).ok())
            .unwrap_or(0);
        if payout == 0 {
            continue;
        }
        let Some(cold) = hotkey_owner(o, &nr.hotkey)? else {
            continue;
        };
        let take = payout * DEFAULT_TAKE / 65_535;
        credit_alpha(o, sn.netuid, &nr.hotkey, &cold, take)?;
        if hotkey_alpha(o, sn.netuid, &nr.hotkey)?.total_shares == 0 {
            credit_alpha(o, sn.netuid, &nr.hotkey, &cold, payout - take)?;
        } else {
            distribute_to_nominators(o, sn.netuid, &nr.hotkey, payout - take)?;
        }
    }
    // Owner cut: staked to the owner's hotkey.
    credit_alpha(o, sn.netuid, &sn.owner_hotkey, &sn.owner_coldkey, owner)?;
    sn.alpha_out = sn.alpha_out.saturating_sub(burned);
    sn.last_epoch_block = now;
    sn.epoch_index = sn.epoch_index.saturating_add(1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_factor_halves_over_the_half_life() {
        for half_life in [1u64, 7, 360, 36_100] {
            let f = decay_factor_q32(half_life);
            let mut x: u128 = 1 << 40;
            for _ in 0..half_life {
                x = (x * u128::from(f)) >> 32;
            }
            let ratio = x as f64 / (1u64 << 40) as f64;
            assert!((0.4999..=0.5).contains(&ratio), "{half_life}: {ratio}");
        }
        assert_eq!(decay_factor_q32(0), 0);
    }
}
