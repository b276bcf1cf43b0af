//! The Yuma consensus epoch (PROTOCOL §4; R§6.2-6.8), sparse path, in fixed point.
//!
//! [`run_epoch`] turns one subnet's stakes, weights and bonds into consensus, incentive,
//! dividends, validator trust, new bonds and the split of `emission_rao`. Every step
//! mirrors subtensor's `epoch_mechanism` so that rounding happens at the same points;
//! `math` holds the operations. Pure: same input, same bytes, on every node.

mod json;
pub mod math;

use fixed::types::{I32F32, I64F64, I96F32};

pub use json::{parse_input, parse_input_bytes, parse_input_reader, InputError};
use math::*;

/// Subtensor defaults for fields a caller may omit.
pub mod defaults {
    pub const KAPPA: u16 = 32_767;
    pub const BONDS_MOVING_AVG: u64 = 900_000;
    pub const BONDS_PENALTY: u16 = 65_535;
    pub const STAKE_THRESHOLD: u64 = 0;
    pub const ACTIVITY_CUTOFF: u64 = 5_000;
    pub const MAX_ALLOWED_VALIDATORS: u16 = 128;
    /// `Yuma3On` storage default (new subnets are created with `true`).
    pub const YUMA3: bool = false;
    pub const LIQUID_ALPHA: bool = false;
    pub const ALPHA_LOW: u16 = 45_875;
    pub const ALPHA_HIGH: u16 = 58_982;
    pub const ALPHA_SIGMOID_STEEPNESS: i16 = 1_000;
}

/// One epoch's inputs for a subnet of `n` neurons. Rows of `weights` and `bonds` are
/// sparse `(uid, value)` lists with ascending uids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochInput {
    pub n: usize,
    /// Stake weight per uid in rao (alpha + tao_weight x root stake).
    pub stake: Vec<u64>,
    /// Permits from the previous epoch.
    pub validator_permit: Vec<bool>,
    pub max_allowed_validators: u16,
    pub weights: Vec<Vec<(u16, u16)>>,
    pub bonds: Vec<Vec<(u16, u16)>>,
    pub kappa: u16,
    /// Per million; EMA alpha = 1 - this / 1e6.
    pub bonds_moving_avg: u64,
    pub bonds_penalty: u16,
    pub stake_threshold: u64,
    pub emission_rao: u64,
    pub current_block: u64,
    pub activity_cutoff: u64,
    pub last_update: Vec<u64>,
    pub block_at_registration: Vec<u64>,
    /// Bond columns of neurons registered at or after this block are reset.
    pub last_tempo: u64,
    pub yuma3: bool,
    pub liquid_alpha: bool,
    pub alpha_low: u16,
    pub alpha_high: u16,
    pub alpha_sigmoid_steepness: i16,
    /// The subnet owner's uid: keeps its self-weight, always has a permit, ignores the stake threshold.
    pub owner_uid: Option<u16>,
}

/// One epoch's results: proportions as u16 (`floor(x * 65535)`), emissions in rao.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EpochOutput {
    pub consensus: Vec<u16>,
    pub incentive: Vec<u16>,
    pub dividends: Vec<u16>,
    pub validator_trust: Vec<u16>,
    pub stake_weight: Vec<u16>,
    /// Stored bonds, one sparse `(uid, bond)` row per uid; serialized as a dense `n x n`
    /// matrix for `agora sim epoch`.
    #[serde(serialize_with = "dense_rows")]
    pub bonds: Vec<Vec<(u16, u16)>>,
    pub server_emission: Vec<u64>,
    pub validator_emission: Vec<u64>,
    pub emission: Vec<u64>,
    pub validator_permit: Vec<bool>,
    pub active: Vec<bool>,
}

fn to_sparse(rows: &[Vec<(u16, u16)>], n: usize, scale: impl Fn(u16) -> I32F32) -> Sparse {
    rows.iter()
        .map(|r| {
            r.iter()
                .filter(|(j, _)| usize::from(*j) < n)
                .map(|(j, v)| (u32::from(*j), scale(*v)))
                .collect()
        })
        .collect()
}

fn dense_rows<S: serde::Serializer>(rows: &[Vec<(u16, u16)>], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let n = rows.len();
    let mut seq = s.serialize_seq(Some(n))?;
    for row in rows {
        let mut dense = vec![0u16; n];
        for (j, v) in row {
            if let Some(cell) = dense.get_mut(usize::from(*j)) {
                *cell = *v;
            }
        }
        seq.serialize_element(&dense)?;
    }
    seq.end()
}

fn floor_emission(x: I32F32, e: I96F32) -> u64 {
    I96F32::saturating_from_num(x)
        .saturating_mul(e)
        .saturating_to_num::<u64>()
}

/// Run one epoch. Inputs must be consistent (lengths `n`); [`parse_input`] checks that.
pub fn run_epoch(input: &EpochInput) -> EpochOutput {
    let n = input.n;
    let is_owner = |i: usize| input.owner_uid.is_some_and(|o| usize::from(o) == i);
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);

    // Activity (R§6.3).
    let inactive: Vec<bool> = (0..n)
        .map(|i| {
            at(&input.last_update, i).saturating_add(input.activity_cutoff) < input.current_block
        })
        .collect();
    let active: Vec<bool> = inactive.iter().map(|b| !b).collect();

    // Stake: threshold filter, normalise in I64F64, then I32F32 (R§6.2).
    let mut stake64: Vec<I64F64> = (0..n)
        .map(|i| {
            let s = at(&input.stake, i);
            if s < input.stake_threshold && !is_owner(i) {
                I64F64::ZERO
            } else {
                I64F64::saturating_from_num(s)
            }
        })
        .collect();
    normalize_64(&mut stake64);
    let stake: Vec<I32F32> = stake64
        .iter()
        .map(|s| I32F32::saturating_from_num(*s))
        .collect();

    // Permits: previous (masks rows and active stake) and new (top-k by stake).
    let old_permit: Vec<bool> = (0..n)
        .map(|i| input.validator_permit.get(i).copied().unwrap_or(false) || is_owner(i))
        .collect();
    let mut new_permit = is_topk_nonzero(&stake, usize::from(input.max_allowed_validators));
    if let Some(o) = input
        .owner_uid
        .and_then(|o| new_permit.get_mut(usize::from(o)))
    {
        *o = true;
    }

    let mut active_stake: Vec<I32F32> = stake
        .iter()
        .zip(inactive.iter().zip(&old_permit))
        .map(|(s, (inactive, permit))| if *inactive || !permit { ZERO } else { *s })
        .collect();
    normalize(&mut active_stake);

    // Weights preprocessing (R§6.4).
    let mut weights: Sparse = to_sparse(&input.weights, n, I32F32::from_num);
    for (i, (row, permit)) in weights.iter_mut().zip(&old_permit).enumerate() {
        if !permit {
            row.clear();
            continue;
        }
        let updated = at(&input.last_update, i);
        row.retain(|(j, _)| {
            let j = *j as usize;
            (j != i || is_owner(i)) && updated > at(&input.block_at_registration, j)
        });
    }
    row_normalize(&mut weights);

    // Consensus, clipping, validator trust, incentive (R§6.5).
    let kappa = u16_proportion(input.kappa);
    let consensus = weighted_median_cols(&active_stake, &weights, n, kappa);
    let clipped = col_clip(&weights, &consensus);
    let validator_trust = row_sums(&clipped);
    let mut incentive = matmul(&clipped, &active_stake, n);
    normalize(&mut incentive);

    // Bonds and dividends (R§6.6).
    let penalty = u16_proportion(input.bonds_penalty);
    let weights_for_bonds = interpolate(&weights, &clipped, penalty);
    let recent = |j: u32| at(&input.block_at_registration, j as usize) >= input.last_tempo;
    let bma = I64F64::saturating_from_num(input.bonds_moving_avg)
        .saturating_div(I64F64::from_num(1_000_000));
    let ema_alpha_fixed = ONE.saturating_sub(I32F32::saturating_from_num(bma));

    let mut dividends: Vec<I32F32>;
    let mut ema_bonds: Sparse;
    if input.yuma3 {
        let mut bonds = to_sparse(&input.bonds, n, u16_proportion);
        bonds
            .iter_mut()
            .for_each(|r| r.retain(|(j, _)| !recent(*j)));
        ema_bonds = if input.liquid_alpha && consensus.iter().any(|c| *c != ZERO) {
            let alphas = liquid_alphas(input, &weights_for_bonds, &bonds, &consensus);
            ema_alpha(&weights_for_bonds, &bonds, &alphas)
        } else {
            ema(&weights_for_bonds, &bonds, ema_alpha_fixed)
        };
        let mut norm = ema_bonds.clone();
        col_normalize(&mut norm, n);
        let per_validator = matmul_transpose(&norm, &incentive);
        dividends = per_validator
            .iter()
            .zip(&active_stake)
            .map(|(b, s)| b.saturating_mul(*s))
            .collect();
        normalize(&mut dividends);
    } else {
        let mut bonds = to_sparse(&input.bonds, n, I32F32::from_num);
        bonds
            .iter_mut()
            .for_each(|r| r.retain(|(j, _)| !recent(*j)));
        col_normalize(&mut bonds, n);
        let mut delta = row_hadamard(&weights_for_bonds, &active_stake);
        col_normalize(&mut delta, n);
        ema_bonds = ema(&delta, &bonds, ema_alpha_fixed);
        col_normalize(&mut ema_bonds, n);
        dividends = matmul_transpose(&ema_bonds, &incentive);
        normalize(&mut dividends);
        col_max_upscale(&mut ema_bonds, n);
    }

    // Emission split and the zero-weights fallback (R§6.7).
    let combined: Vec<I32F32> = incentive
        .iter()
        .zip(&dividends)
        .map(|(a, b)| a.saturating_add(*b))
        .collect();
    let emission_sum = sum(&combined);
    let mut server_norm = incentive.clone();
    let mut validator_norm = dividends.clone();
    let mut combined_norm = combined.clone();
    normalize_using_sum(&mut server_norm, emission_sum);
    normalize_using_sum(&mut validator_norm, emission_sum);
    normalize(&mut combined_norm);
    if emission_sum == ZERO {
        let fallback = if active_stake.iter().all(|s| *s == ZERO) {
            &stake
        } else {
            &active_stake
        };
        validator_norm.clone_from(fallback);
        combined_norm.clone_from(fallback);
    }
    let e = I96F32::saturating_from_num(input.emission_rao);

    // Stored bonds: new permit -> the row; otherwise empty (R§6.6 storage rule).
    let bonds_out: Vec<Vec<(u16, u16)>> = new_permit
        .iter()
        .zip(&ema_bonds)
        .map(|(permit, row)| {
            if !permit {
                return Vec::new();
            }
            row.iter()
                .map(|(j, v)| (u16::try_from(*j).unwrap_or(u16::MAX), proportion_to_u16(*v)))
                .filter(|(_, v)| *v > 0)
                .collect()
        })
        .collect();

    let u16s = |v: &[I32F32]| {
        v.iter()
            .map(|x| proportion_to_u16(*x))
            .collect::<Vec<u16>>()
    };
    EpochOutput {
        consensus: u16s(&consensus),
        incentive: u16s(&incentive),
        dividends: u16s(&dividends),
        validator_trust: u16s(&validator_trust),
        stake_weight: u16s(&stake),
        bonds: bonds_out,
        server_emission: server_norm.iter().map(|x| floor_emission(*x, e)).collect(),
        validator_emission: validator_norm
            .iter()
            .map(|x| floor_emission(*x, e))
            .collect(),
        emission: combined_norm
            .iter()
            .map(|x| floor_emission(*x, e))
            .collect(),
        validator_permit: new_permit,
        active,
    }
}

/// Per-entry EMA rates for liquid alpha (R§6.6 `alpha_sigmoid`), shaped like `weights`.
fn liquid_alphas(
    input: &EpochInput,
    weights: &Sparse,
    bonds: &Sparse,
    consensus: &[I32F32],
) -> Vec<Vec<I32F32>> {
    let low = u16_proportion(input.alpha_low);
    let high = u16_proportion(input.alpha_high);
    let steepness =
        I32F32::from_num(input.alpha_sigmoid_steepness).saturating_div(I32F32::from_num(100));
    let half = I32F32::from_num(0.5);
    weights
        .iter()
        .zip(bonds)
        .map(|(wr, br)| {
            wr.iter()
                .map(|(j, w)| {
                    let c = consensus.get(*j as usize).copied().unwrap_or(ZERO);
                    let b = row_get(br, *j);
                    let d = if *w >= b {
                        w.saturating_sub(c).clamp(ZERO, ONE)
                    } else {
                        b.saturating_sub(*w).clamp(ZERO, ONE)
                    };
                    let x = ZERO.saturating_sub(steepness.saturating_mul(d.saturating_sub(half)));
                    let sigma = ONE.saturating_div(ONE.saturating_add(exp_safe(x)));
                    low.saturating_add(sigma.saturating_mul(high.saturating_sub(low)))
                        .clamp(low, high)
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests;
