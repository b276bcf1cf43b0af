//! Block emission with halvings (PROTOCOL §1, R§1.1), in integers only.
//!
//! Emission is 1 TAO per block while issuance is below 10.5M TAO and halves each time
//! issuance crosses `21M * (1 - 2^-k)`. Subtensor finds `k` with a fixed-point `log2`; we
//! find the same `k` exactly: issuance `I` has crossed threshold `k` iff
//! `(CAP - I) * 2^k <= CAP`. The same curve gives a subnet's alpha emission from that
//! subnet's alpha issuance.

use crate::amount::{MAX_SUPPLY_RAO, RAO_PER_TAO};

/// Base emission per block before any halving: 1 TAO.
pub const BASE_BLOCK_EMISSION_RAO: u64 = RAO_PER_TAO;

/// Number of halvings that have happened at issuance `issued` (rao).
pub fn halvings(issued: u64) -> u32 {
    if issued >= MAX_SUPPLY_RAO {
        return u32::MAX;
    }
    let remaining = u128::from(MAX_SUPPLY_RAO.saturating_sub(issued));
    let cap = u128::from(MAX_SUPPLY_RAO);
    // Largest k with remaining * 2^k <= cap; remaining >= 1 so k <= 55.
    let mut k = 0u32;
    // remaining * 2^56 < 2^128: the shifts never lose bits.
    while remaining
        .checked_shl(k.saturating_add(1))
        .is_some_and(|v| v <= cap)
    {
        k = k.saturating_add(1);
    }
    k
}

/// rao emitted per block at issuance `issued`: `floor(1e9 / 2^k)`, 0 once the cap is reached,
/// and never more than what is left under the cap.
pub fn block_emission(issued: u64) -> u64 {
    let k = halvings(issued);
    if k >= 64 {
        return 0;
    }
    let emission = BASE_BLOCK_EMISSION_RAO >> k;
    emission.min(MAX_SUPPLY_RAO.saturating_sub(issued))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAO: u64 = RAO_PER_TAO;

    #[test]
    fn halves_at_each_threshold() {
        assert_eq!(block_emission(0), TAO);
        assert_eq!(block_emission(10_500_000 * TAO - 1), TAO);
        assert_eq!(block_emission(10_500_000 * TAO), TAO / 2);
        assert_eq!(block_emission(15_750_000 * TAO - 1), TAO / 2);
        assert_eq!(block_emission(15_750_000 * TAO), TAO / 4);
        assert_eq!(block_emission(18_375_000 * TAO), TAO / 8);
        assert_eq!(block_emission(MAX_SUPPLY_RAO - 1), 0); // 2^30 > 1e9: floor(1e9/2^k) = 0 late on
        assert_eq!(block_emission(MAX_SUPPLY_RAO), 0);
    }

    #[test]
    fn matches_the_float_log2_definition_away_from_thresholds() {
        for i in 0..2000u64 {
            let issued = i * (MAX_SUPPLY_RAO / 2000) + 12_345;
            let ratio = issued as f64 / MAX_SUPPLY_RAO as f64;
            let k = (1.0 / (1.0 - ratio)).log2().floor() as u32;
            assert_eq!(halvings(issued), k, "issued {issued}");
        }
    }

    #[test]
    fn never_exceeds_the_cap() {
        let mut issued = MAX_SUPPLY_RAO - 3 * TAO;
        for _ in 0..100_000 {
            issued += block_emission(issued);
        }
        assert!(issued <= MAX_SUPPLY_RAO);
    }
}
