//! How concentrated a distribution of power is: the Nakamoto coefficient (the fewest
//! holders who together hold more than a third, and more than half), the top-5 share, the
//! Gini coefficient and the Herfindahl-Hirschman index. Computed in f64 from exact
//! integer holdings; for reporting only, never in consensus.

use serde::Serialize;

/// The figures for one distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Concentration {
    /// Holders with non-zero power.
    pub holders: usize,
    pub total: u128,
    /// Fewest holders holding more than 1/3 (can halt a BFT vote or block a 2/3 one).
    pub nakamoto_third: usize,
    /// Fewest holders holding more than 1/2.
    pub nakamoto_half: usize,
    /// Share of the five largest, 0..=1.
    pub top5_share: f64,
    /// 0 (all equal) ..= 1 - 1/n (one holder has everything).
    pub gini: f64,
    /// Sum of squared shares, 1/n ..= 1.
    pub hhi: f64,
}

/// The figures for `powers` (any order; zeros are ignored).
pub fn measure(powers: &[u128]) -> Concentration {
    let mut p: Vec<u128> = powers.iter().copied().filter(|x| *x > 0).collect();
    p.sort_unstable_by(|a, b| b.cmp(a));
    let total: u128 = p.iter().fold(0, |a, x| a.saturating_add(*x));
    let n = p.len();
    // Fewest largest holders whose sum exceeds num/den of the total (exact integers).
    let nakamoto = |num: u128, den: u128| -> usize {
        let mut acc: u128 = 0;
        for (i, x) in p.iter().enumerate() {
            acc = acc.saturating_add(*x);
            if acc.saturating_mul(den) > total.saturating_mul(num) {
                return i.saturating_add(1);
            }
        }
        n
    };
    let t = total as f64;
    let share = |x: u128| if t > 0.0 { x as f64 / t } else { 0.0 };
    let top5 = p.iter().take(5).fold(0u128, |a, x| a.saturating_add(*x));
    // (An empty f64 sum is -0.0: start from +0.0.)
    let hhi = p.iter().fold(0.0, |acc, x| acc + share(*x).powi(2));
    // Gini from the ascending order: sum_i (2i - n - 1) x_i / (n * total), i = 1..n.
    let gini = if n == 0 || t == 0.0 {
        0.0
    } else {
        let nf = n as f64;
        p.iter()
            .rev()
            .enumerate()
            .map(|(i, x)| (2.0 * (i as f64 + 1.0) - nf - 1.0) * (*x as f64))
            .sum::<f64>()
            / (nf * t)
    };
    Concentration {
        holders: n,
        total,
        nakamoto_third: nakamoto(1, 3),
        nakamoto_half: nakamoto(1, 2),
        top5_share: share(top5),
        gini,
        hhi,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Hand-computed: holdings 50, 20, 10, 10, 5, 5 (total 100).
    /// Nakamoto 1/3: 50 > 33.3 -> 1. 1/2: 50 is not > 50, 70 is -> 2. Top 5: 95%.
    /// HHI: .25 + .04 + .01 + .01 + .0025 + .0025 = .315.
    /// Gini ascending 5,5,10,10,20,50: sum (2i-7) x_i = -5*5 -3*5 -1*10 +1*10 +3*20 +5*50
    /// = -25 - 15 - 10 + 10 + 60 + 250 = 270; / (6 * 100) = 0.45.
    #[test]
    fn figures_match_hand_computed_values() {
        let c = measure(&[10, 50, 5, 20, 0, 10, 5]);
        assert_eq!(c.holders, 6);
        assert_eq!(c.total, 100);
        assert_eq!((c.nakamoto_third, c.nakamoto_half), (1, 2));
        assert!(close(c.top5_share, 0.95), "{}", c.top5_share);
        assert!(close(c.hhi, 0.315), "{}", c.hhi);
        assert!(close(c.gini, 0.45), "{}", c.gini);
    }

    #[test]
    fn equal_holders_and_edge_cases() {
        let c = measure(&[7; 10]);
        assert_eq!((c.nakamoto_third, c.nakamoto_half), (4, 6));
        assert!(close(c.gini, 0.0) && close(c.hhi, 0.1) && close(c.top5_share, 0.5));
        let one = measure(&[3]);
        assert_eq!((one.nakamoto_third, one.nakamoto_half), (1, 1));
        assert!(close(one.hhi, 1.0) && close(one.gini, 0.0));
        let none = measure(&[]);
        assert_eq!((none.holders, none.nakamoto_half), (0, 0));
        assert!(
            none.hhi == 0.0 && none.hhi.is_sign_positive(),
            "{}",
            none.hhi
        );
        assert!(close(none.gini, 0.0) && close(none.top5_share, 0.0));
    }
}

/// The figures for every kind of power the chain has, from one state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Governance voting power under the chain's mode (hotkeys, or seats).
    pub governance: Concentration,
    /// Root (netuid 0) stake by hotkey.
    pub root_stake: Concentration,
    /// Each subnet's validators' stake weight (alpha + tao_weight x root stake) among the
    /// hotkeys holding a validator permit.
    pub subnets: Vec<SubnetConcentration>,
    /// The consensus validator set's voting power.
    pub validator_set: Concentration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubnetConcentration {
    pub netuid: crate::subnet::Netuid,
    #[serde(flatten)]
    pub figures: Concentration,
}

pub fn report(
    s: &dyn crate::state::StateRead,
    params: &crate::genesis::ChainParams,
) -> Result<Report, crate::state::StateError> {
    use crate::subnet::{networks, neuron, root::ROOT, stake::hotkey_alpha, subnet};
    let governance: Vec<u128> = super::power::holders(s, params)?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let prices = super::power::Prices::read(s, params)?;
    let mut root = Vec::new();
    for (hotkey, _) in super::power::hotkey_powers(s, &prices)? {
        root.push(u128::from(hotkey_alpha(s, ROOT, &hotkey)?.total_alpha));
    }
    let mut subnets = Vec::new();
    for n in networks(s)?.netuids {
        let Some(sn) = subnet(s, n)? else { continue };
        let mut weights = Vec::new();
        for uid in 0..sn.n {
            let Some(nr) = neuron(s, n, uid)? else {
                continue;
            };
            if !nr.validator_permit {
                continue;
            }
            let alpha = u128::from(hotkey_alpha(s, n, &nr.hotkey)?.total_alpha);
            let root_stake = u128::from(hotkey_alpha(s, ROOT, &nr.hotkey)?.total_alpha);
            let weighted_root = root_stake
                .saturating_mul(u128::from(params.subnets.tao_weight_ppm))
                .checked_div(1_000_000)
                .unwrap_or(0);
            weights.push(alpha.saturating_add(weighted_root));
        }
        subnets.push(SubnetConcentration {
            netuid: n,
            figures: measure(&weights),
        });
    }
    let validator_set: Vec<u128> = match params.validator_set() {
        Ok(set) => set
            .validators()
            .iter()
            .map(|v| u128::from(v.power))
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(Report {
        governance: measure(&governance),
        root_stake: measure(&root),
        subnets,
        validator_set: measure(&validator_set),
    })
}
