//! A subnet's dynamic-TAO pool (PROTOCOL §5; R§8 at 50/50 weights): constant product
//! `tao * alpha = k`, in integers.
//!
//! - Price is TAO per alpha, `tao / alpha`; limits are given in rao per alpha (1e9 = 1 TAO).
//! - Fee: `floor(amount * fee_rate / 65535)` of the input (default 33), paid to the block
//!   proposer by the caller; when a price limit cuts the swap short, the fee is charged on
//!   the part that executes: `floor(used * rate / (65535 - rate))`.
//! - Refused: net input above 1000x the input reserve, an output reserve below 1,000,000,
//!   a price already past the limit, or a swap that would return nothing.
//! - Outputs round down, so `tao * alpha` never decreases across a swap.

use serde::Serialize;

/// Default swap fee: 33/65535 of the input (~0.05%).
pub const DEFAULT_FEE_RATE: u16 = 33;
/// A swap's output reserve must hold at least this much before the swap.
pub const MIN_RESERVE: u64 = 1_000_000;
/// Net input may be at most this multiple of the input reserve.
pub const MAX_INPUT_MULTIPLE: u64 = 1_000;
/// rao per alpha that represents a price of 1 TAO per alpha.
pub const PRICE_SCALE: u128 = 1_000_000_000;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, bincode::Encode, bincode::Decode,
)]
pub struct Pool {
    /// TAO reserve (rao).
    pub tao: u64,
    /// Alpha reserve (alpha rao).
    pub alpha: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// TAO in, alpha out (staking).
    Buy,
    /// Alpha in, TAO out (unstaking).
    Sell,
}

/// The result of a (possibly simulated) swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Swap {
    /// Input actually taken from the caller, fee included.
    pub amount_in: u64,
    /// Part of `amount_in` that goes to the proposer.
    pub fee: u64,
    /// What the caller receives.
    pub amount_out: u64,
    /// Whether a price limit stopped the swap before all input was used.
    pub partial: bool,
    /// Pool after the swap (the fee is not added to the reserves).
    pub after: Pool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwapError {
    #[error(
        "swap input {net} is more than {MAX_INPUT_MULTIPLE}x the pool's input reserve {reserve}"
    )]
    InputTooLarge { net: u64, reserve: u64 },
    #[error("pool reserves too low: the output reserve {reserve} is below {MIN_RESERVE}")]
    ReservesTooLow { reserve: u64 },
    #[error("price limit exceeded: the pool price {price_rao} rao/alpha is already past the limit {limit_rao}")]
    PriceLimitExceeded { price_rao: u64, limit_rao: u64 },
    #[error("the swap would return nothing")]
    ZeroOutput,
}

// Newton's iteration on u128: `x >= 1` and `x + n / x` stays below 2^128 because
// `x <= 2^64` after the first step and `n / x <= n`; the shift is at most 64.
#[allow(clippy::arithmetic_side_effects)]
pub(crate) fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    // Newton's method from a power-of-two upper bound; converges monotonically down.
    let mut x = 1u128 << (128 - n.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

impl Pool {
    /// Spot price in rao per alpha, floored (0 for an empty alpha reserve).
    pub fn price_rao(&self) -> u64 {
        if self.alpha == 0 {
            return 0;
        }
        let p = u128::from(self.tao)
            .saturating_mul(PRICE_SCALE)
            .checked_div(u128::from(self.alpha))
            .unwrap_or(0);
        u64::try_from(p).unwrap_or(u64::MAX)
    }

    fn k(&self) -> u128 {
        // Two u64s: their product fits u128.
        u128::from(self.tao).saturating_mul(u128::from(self.alpha))
    }

    /// Swap `amount` (fee included) in `direction`, stopping at `limit_rao` if given (buy:
    /// the price may rise up to the limit; sell: it may fall down to it).
    pub fn swap(
        &self,
        direction: Direction,
        amount: u64,
        fee_rate: u16,
        limit_rao: Option<u64>,
    ) -> Result<Swap, SwapError> {
        let rate = u128::from(fee_rate.min(u16::MAX - 1));
        let fee =
            u64::try_from(u128::from(amount).saturating_mul(rate) / 65_535).unwrap_or(u64::MAX);
        // rate < 65_535, so fee < amount.
        let net = amount.saturating_sub(fee);
        let (reserve_in, reserve_out) = match direction {
            Direction::Buy => (self.tao, self.alpha),
            Direction::Sell => (self.alpha, self.tao),
        };
        if net > reserve_in.saturating_mul(MAX_INPUT_MULTIPLE) {
            return Err(SwapError::InputTooLarge {
                net,
                reserve: reserve_in,
            });
        }
        if reserve_out < MIN_RESERVE {
            return Err(SwapError::ReservesTooLow {
                reserve: reserve_out,
            });
        }
        let price = self.price_rao();
        if let Some(limit) = limit_rao {
            let ok = match direction {
                Direction::Buy => price < limit,
                Direction::Sell => price > limit,
            };
            if !ok {
                return Err(SwapError::PriceLimitExceeded {
                    price_rao: price,
                    limit_rao: limit,
                });
            }
        }
        // Input that moves the price exactly to the limit: reserve_in' = sqrt(k * limit) for
        // a buy (tao' = sqrt(k p)), sqrt(k / limit) for a sell (alpha' = sqrt(k / p)).
        let to_limit = limit_rao.and_then(|limit| {
            let target = match direction {
                Direction::Buy => self
                    .k()
                    .checked_mul(u128::from(limit))
                    .map(|v| isqrt(v / PRICE_SCALE)),
                Direction::Sell => self
                    .k()
                    .checked_mul(PRICE_SCALE)
                    .and_then(|v| v.checked_div(u128::from(limit.max(1))))
                    .map(isqrt),
            }?;
            Some(u64::try_from(target.saturating_sub(u128::from(reserve_in))).unwrap_or(u64::MAX))
        });
        let (used, fee, partial) = match to_limit {
            Some(max_in) if net > max_in => {
                // rate < 65_535: the divisor is at least 1.
                let fee = u64::try_from(
                    u128::from(max_in)
                        .saturating_mul(rate)
                        .checked_div(65_535u128.saturating_sub(rate))
                        .unwrap_or(0),
                )
                .unwrap_or(u64::MAX);
                (max_in, fee, true)
            }
            _ => (net, fee, false),
        };
        // out = reserve_out * used / (reserve_in + used), floored: k never decreases.
        let out = u128::from(reserve_out)
            .saturating_mul(u128::from(used))
            .checked_div(u128::from(reserve_in).saturating_add(u128::from(used)))
            .unwrap_or(0);
        let out = u64::try_from(out).unwrap_or(u64::MAX).min(reserve_out);
        if out == 0 && used > 0 {
            return Err(SwapError::ZeroOutput);
        }
        // out <= reserve_out (clamped above).
        let (new_in, new_out) = (
            reserve_in.saturating_add(used),
            reserve_out.saturating_sub(out),
        );
        let after = match direction {
            Direction::Buy => Pool {
                tao: new_in,
                alpha: new_out,
            },
            Direction::Sell => Pool {
                tao: new_out,
                alpha: new_in,
            },
        };
        Ok(Swap {
            amount_in: used.saturating_add(fee),
            fee,
            amount_out: out,
            partial,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TAO: u64 = 1_000_000_000;

    #[test]
    fn buy_and_sell_follow_constant_product_with_fee() {
        let p = Pool {
            tao: 1_000 * TAO,
            alpha: 1_000 * TAO,
        };
        assert_eq!(p.price_rao(), TAO);
        let s = p
            .swap(Direction::Buy, 10 * TAO, DEFAULT_FEE_RATE, None)
            .unwrap();
        assert_eq!(s.fee, 10 * TAO * 33 / 65_535);
        let net = 10 * TAO - s.fee;
        assert_eq!(
            s.amount_out,
            u64::try_from(
                u128::from(1_000 * TAO) * u128::from(net) / u128::from(1_000 * TAO + net)
            )
            .unwrap()
        );
        assert_eq!(s.after.tao, 1_000 * TAO + net);
        assert!(s.after.price_rao() > p.price_rao());
        let back = s
            .after
            .swap(Direction::Sell, s.amount_out, DEFAULT_FEE_RATE, None)
            .unwrap();
        assert!(back.amount_out < 10 * TAO, "a round trip never profits");
    }

    #[test]
    fn refusals_name_the_rule() {
        let p = Pool {
            tao: 1_000 * TAO,
            alpha: 1_000 * TAO,
        };
        assert!(matches!(
            p.swap(Direction::Buy, 1_001_000 * TAO * 2, 0, None),
            Err(SwapError::InputTooLarge { .. })
        ));
        let thin = Pool {
            tao: 1_000 * TAO,
            alpha: 999_999,
        };
        assert!(matches!(
            thin.swap(Direction::Buy, TAO, 0, None),
            Err(SwapError::ReservesTooLow { .. })
        ));
        assert!(matches!(
            p.swap(Direction::Buy, TAO, 0, Some(TAO)),
            Err(SwapError::PriceLimitExceeded { .. })
        ));
        assert!(matches!(
            p.swap(Direction::Sell, TAO, 0, Some(TAO)),
            Err(SwapError::PriceLimitExceeded { .. })
        ));
        assert!(matches!(
            p.swap(Direction::Buy, 1, 0, None),
            Err(SwapError::ZeroOutput)
        ));
    }

    #[test]
    fn a_price_limit_fills_partially_and_lands_on_the_limit() {
        let p = Pool {
            tao: 1_000 * TAO,
            alpha: 1_000 * TAO,
        };
        let limit = 1_210_000_000; // 1.21 TAO/alpha: tao must grow to sqrt(1.21) * 1000 = 1100 TAO
        let s = p
            .swap(Direction::Buy, 500 * TAO, DEFAULT_FEE_RATE, Some(limit))
            .unwrap();
        assert!(s.partial);
        assert_eq!(s.after.tao, 1_100 * TAO);
        assert!(
            s.after.price_rao().abs_diff(limit) < 1_000,
            "{}",
            s.after.price_rao()
        );
        assert_eq!(s.amount_in, 100 * TAO + s.fee);
        let whole = p
            .swap(Direction::Buy, 50 * TAO, DEFAULT_FEE_RATE, Some(limit))
            .unwrap();
        assert!(!whole.partial);
        let sell = p
            .swap(Direction::Sell, 500 * TAO, 0, Some(810_000_000))
            .unwrap();
        assert!(sell.partial);
        assert!(sell.after.price_rao().abs_diff(810_000_000) < 1_000);
    }

    proptest! {
        #[test]
        fn product_never_decreases_and_outputs_stay_in_reserve(
            tao in MIN_RESERVE..u64::MAX / 4, alpha in MIN_RESERVE..u64::MAX / 4,
            amount in 0u64..u64::MAX / 4, sell: bool, fee in 0u16..10_000, limit in proptest::option::of(1u64..u64::MAX / 1024),
        ) {
            let p = Pool { tao, alpha };
            let dir = if sell { Direction::Sell } else { Direction::Buy };
            if let Ok(s) = p.swap(dir, amount, fee, limit) {
                prop_assert!(s.after.k() >= p.k());
                prop_assert!(s.amount_in <= amount);
                prop_assert!(s.fee <= s.amount_in);
                let out_reserve = if sell { tao } else { alpha };
                prop_assert!(s.amount_out <= out_reserve);
                if let (Some(l), true) = (limit, s.partial) {
                    // A partial fill stops at the limit, within 1e-6 relative for rounding.
                    let after = u128::from(s.after.price_rao());
                    let tol = u128::from(l) / 1_000_000 + 2;
                    if sell { prop_assert!(after + tol >= u128::from(l)); } else { prop_assert!(after <= u128::from(l) + tol); }
                }
            }
        }
    }

    #[test]
    fn isqrt_is_exact() {
        for n in [
            0u128,
            1,
            2,
            3,
            4,
            15,
            16,
            17,
            u128::from(u64::MAX),
            u128::MAX,
        ] {
            let r = isqrt(n);
            assert!(
                r * r <= n && (r + 1).checked_mul(r + 1).is_none_or(|s| s > n),
                "{n}"
            );
        }
    }
}
