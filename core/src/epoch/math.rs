//! Sparse fixed-point helpers for the epoch, following subtensor's `epoch/math.rs`
//! operation by operation so that rounding happens at the same points (R§6.8).
//!
//! A sparse matrix is one `Vec<(column, value)>` per row, columns ascending.

use fixed::types::{I32F32, I64F64};

pub type Row = Vec<(u32, I32F32)>;
pub type Sparse = Vec<Row>;

pub const ZERO: I32F32 = I32F32::ZERO;
pub const ONE: I32F32 = I32F32::ONE;

/// `a / b`, bit-identical to `a.saturating_div(b)` (a property test checks it). The
/// common case in the epoch, `0 <= a < 2^32` raw and `b > 0`, needs no 128-bit division:
/// `(a << 32) / b` fits a u64 and truncation equals flooring for non-negative operands.
#[inline]
// The fast path cannot overflow or divide by zero: `ra < 2^32` so `ra << 32 < 2^64`, and
// `rb > 0`.
#[allow(clippy::arithmetic_side_effects)]
pub fn div(a: I32F32, b: I32F32) -> I32F32 {
    let (ra, rb) = (a.to_bits(), b.to_bits());
    if (0..1i64 << 32).contains(&ra) && rb > 0 {
        let q = ((ra as u64) << 32) / (rb as u64);
        if let Ok(q) = i64::try_from(q) {
            return I32F32::from_bits(q);
        }
    }
    a.saturating_div(b)
}

pub fn sum(x: &[I32F32]) -> I32F32 {
    x.iter().fold(ZERO, |a, b| a.saturating_add(*b))
}

/// `x /= sum(x)`, unchanged when the sum is 0.
pub fn normalize(x: &mut [I32F32]) {
    let s = sum(x);
    if s != ZERO {
        x.iter_mut().for_each(|v| *v = div(*v, s));
    }
}

pub fn normalize_64(x: &mut [I64F64]) {
    let s = x.iter().fold(I64F64::ZERO, |a, b| a.saturating_add(*b));
    if s != I64F64::ZERO {
        x.iter_mut().for_each(|v| *v = v.saturating_div(s));
    }
}

/// `x /= s`, unchanged when `s` is 0.
pub fn normalize_using_sum(x: &mut [I32F32], s: I32F32) {
    if s != ZERO {
        x.iter_mut().for_each(|v| *v = div(*v, s));
    }
}

/// `floor(x * 65535)` saturated to u16.
pub fn proportion_to_u16(x: I32F32) -> u16 {
    x.saturating_mul(I32F32::from_num(u16::MAX))
        .saturating_to_num::<u16>()
}

pub fn u16_proportion(v: u16) -> I32F32 {
    I32F32::from_num(v).saturating_div(I32F32::from_num(u16::MAX))
}

/// Permits for the `k` largest non-zero entries. Stable ascending sort: among equal
/// values the lower index loses its permit first.
pub fn is_topk_nonzero(x: &[I32F32], k: usize) -> Vec<bool> {
    let n = x.len();
    let mut result: Vec<bool> = x.iter().map(|v| *v != ZERO).collect();
    if n < k {
        return result;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by_key(|&i| x.get(i).copied().unwrap_or(ZERO));
    for &i in idx.iter().take(n.saturating_sub(k)) {
        if let Some(r) = result.get_mut(i) {
            *r = false;
        }
    }
    result
}

pub fn row_normalize(m: &mut Sparse) {
    for row in m.iter_mut() {
        let s = row.iter().fold(ZERO, |a, (_, v)| a.saturating_add(*v));
        if s > ZERO {
            row.iter_mut().for_each(|(_, v)| *v = div(*v, s));
        }
    }
}

pub fn col_sums(m: &Sparse, columns: usize) -> Vec<I32F32> {
    let mut s = vec![ZERO; columns];
    for row in m {
        for (j, v) in row {
            if let Some(c) = s.get_mut(*j as usize) {
                *c = c.saturating_add(*v);
            }
        }
    }
    s
}

pub fn col_normalize(m: &mut Sparse, columns: usize) {
    let s = col_sums(m, columns);
    for row in m.iter_mut() {
        for (j, v) in row.iter_mut() {
            let c = s.get(*j as usize).copied().unwrap_or(ZERO);
            if c != ZERO {
                *v = div(*v, c);
            }
        }
    }
}

pub fn col_max_upscale(m: &mut Sparse, columns: usize) {
    let mut max = vec![ZERO; columns];
    for row in m.iter() {
        for (j, v) in row {
            if let Some(c) = max.get_mut(*j as usize) {
                *c = (*c).max(*v);
            }
        }
    }
    for row in m.iter_mut() {
        for (j, v) in row.iter_mut() {
            let c = max.get(*j as usize).copied().unwrap_or(ZERO);
            if c != ZERO {
                *v = div(*v, c);
            }
        }
    }
}

/// `r_j = sum_i x_i * m_ij`.
pub fn matmul(m: &Sparse, x: &[I32F32], columns: usize) -> Vec<I32F32> {
    let mut r = vec![ZERO; columns];
    for (row, xi) in m.iter().zip(x) {
        for (j, v) in row {
            if let Some(c) = r.get_mut(*j as usize) {
                *c = c.saturating_add(xi.saturating_mul(*v));
            }
        }
    }
    r
}

/// `r_i = sum_j m_ij * x_j`.
pub fn matmul_transpose(m: &Sparse, x: &[I32F32]) -> Vec<I32F32> {
    m.iter()
        .map(|row| {
            row.iter().fold(ZERO, |a, (j, v)| {
                a.saturating_add(
                    x.get(*j as usize)
                        .copied()
                        .unwrap_or(ZERO)
                        .saturating_mul(*v),
                )
            })
        })
        .collect()
}

pub fn row_sums(m: &Sparse) -> Vec<I32F32> {
    m.iter()
        .map(|row| row.iter().fold(ZERO, |a, (_, v)| a.saturating_add(*v)))
        .collect()
}

/// `m_ij * x_i`.
pub fn row_hadamard(m: &Sparse, x: &[I32F32]) -> Sparse {
    m.iter()
        .zip(x)
        .map(|(row, xi)| {
            row.iter()
                .map(|(j, v)| (*j, v.saturating_mul(*xi)))
                .collect()
        })
        .collect()
}

/// `min(m_ij, c_j)`, dropping entries clipped to a zero threshold.
pub fn col_clip(m: &Sparse, c: &[I32F32]) -> Sparse {
    m.iter()
        .map(|row| {
            row.iter()
                .filter_map(|(j, v)| {
                    let t = c.get(*j as usize).copied().unwrap_or(ZERO);
                    if t < *v {
                        (ZERO < t).then_some((*j, t))
                    } else {
                        Some((*j, *v))
                    }
                })
                .collect()
        })
        .collect()
}

/// The value at column `j` of a sorted sparse row (0 when absent).
pub fn row_get(row: &Row, j: u32) -> I32F32 {
    row.binary_search_by_key(&j, |(c, _)| *c)
        .ok()
        .and_then(|p| row.get(p))
        .map_or(ZERO, |(_, v)| *v)
}

/// Merge two sorted rows: `f(a_j, b_j)` for every column present in either (missing = 0).
// `i` and `k` count positions in `a` and `b`: bounded by their lengths.
#[allow(clippy::arithmetic_side_effects)]
fn merge(a: &Row, b: &Row, mut f: impl FnMut(I32F32, I32F32) -> I32F32) -> Row {
    let (mut i, mut k) = (0, 0);
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    loop {
        let (j, va, vb) = match (a.get(i), b.get(k)) {
            (Some(&(ja, va)), Some(&(jb, vb))) if ja == jb => {
                i += 1;
                k += 1;
                (ja, va, vb)
            }
            (Some(&(ja, va)), Some(&(jb, _))) if ja < jb => {
                i += 1;
                (ja, va, ZERO)
            }
            (Some(&(ja, va)), None) => {
                i += 1;
                (ja, va, ZERO)
            }
            (_, Some(&(jb, vb))) => {
                k += 1;
                (jb, ZERO, vb)
            }
            (None, None) => break,
        };
        let r = f(va, vb);
        if r > ZERO {
            out.push((j, r));
        }
    }
    out
}

/// `a + ratio * (b - a)`, keeping positive entries (subtensor's `interpolate_sparse`).
pub fn interpolate(a: &Sparse, b: &Sparse, ratio: I32F32) -> Sparse {
    if ratio == ZERO {
        return a.clone();
    }
    if ratio == ONE {
        return b.clone();
    }
    a.iter()
        .zip(b)
        .map(|(ra, rb)| {
            merge(ra, rb, |x, y| {
                x.saturating_add(ratio.saturating_mul(y.saturating_sub(x)))
            })
        })
        .collect()
}

/// `alpha * new + (1 - alpha) * old`, keeping positive entries (`mat_ema_sparse`).
pub fn ema(new: &Sparse, old: &Sparse, alpha: I32F32) -> Sparse {
    let one_minus = ONE.saturating_sub(alpha);
    new.iter()
        .zip(old)
        .map(|(rn, ro)| {
            merge(rn, ro, |x, y| {
                ZERO.saturating_add(alpha.saturating_mul(x))
                    .saturating_add(one_minus.saturating_mul(y))
            })
        })
        .collect()
}

/// Per-entry EMA for liquid alpha (`mat_ema_alpha_sparse`): only entries with a new value
/// survive; `min(1, (1 - a) * old + max(0, a * new))`.
pub fn ema_alpha(new: &Sparse, old: &Sparse, alpha: &[Vec<I32F32>]) -> Sparse {
    new.iter()
        .zip(old)
        .zip(alpha)
        .map(|((rn, ro), ra)| {
            rn.iter()
                .zip(ra)
                .filter_map(|((j, nv), a)| {
                    let old_v = row_get(ro, *j);
                    let decayed = ONE.saturating_sub(*a).saturating_mul(old_v);
                    let bought = a.saturating_mul(*nv).max(ZERO);
                    let r = decayed.saturating_add(bought).min(ONE);
                    (r > ZERO).then_some((*j, r))
                })
                .collect()
        })
        .collect()
}

/// Stake-weighted kappa-median of each column over rows with positive stake
/// (subtensor's `weighted_median_col_sparse`, pivot algorithm included, so ties resolve
/// the same way).
pub fn weighted_median_cols(
    stake: &[I32F32],
    m: &Sparse,
    columns: usize,
    majority: I32F32,
) -> Vec<I32F32> {
    let mut use_stake: Vec<I32F32> = stake.iter().copied().filter(|s| *s > ZERO).collect();
    normalize(&mut use_stake);
    let stake_sum = sum(&use_stake);
    let minority = stake_sum.saturating_sub(majority);
    let k_rows = use_stake.len();
    // Column-major scores of the staked rows.
    let mut scores = vec![ZERO; columns.saturating_mul(k_rows)];
    let mut k = 0usize;
    for (row, s) in m.iter().zip(stake) {
        if *s <= ZERO {
            continue;
        }
        for (j, v) in row {
            if let Some(cell) =
                scores.get_mut((*j as usize).saturating_mul(k_rows).saturating_add(k))
            {
                *cell = *v;
            }
        }
        k = k.saturating_add(1);
    }
    let all: Vec<usize> = (0..k_rows).collect();
    (0..columns)
        .map(|c| {
            let col = scores
                .get(c.saturating_mul(k_rows)..c.saturating_add(1).saturating_mul(k_rows))
                .unwrap_or(&[]);
            if col.iter().all(|v| *v == ZERO) {
                return ZERO; // every pivot is 0: the median is 0
            }
            weighted_median(&use_stake, col, &all, minority, ZERO, stake_sum)
        })
        .collect()
}

fn weighted_median(
    stake: &[I32F32],
    score: &[I32F32],
    idx: &[usize],
    minority: I32F32,
    lo: I32F32,
    hi: I32F32,
) -> I32F32 {
    let at = |i: usize| score.get(i).copied().unwrap_or(ZERO);
    match idx {
        [] => return ZERO,
        [only] => return at(*only),
        _ => {}
    }
    let pivot = at(idx.get(idx.len() / 2).copied().unwrap_or(0));
    let (mut lo_stake, mut hi_stake) = (ZERO, ZERO);
    let (mut lower, mut upper) = (Vec::new(), Vec::new());
    for &i in idx {
        let v = at(i);
        let s = stake.get(i).copied().unwrap_or(ZERO);
        if v == pivot {
            continue;
        }
        if v < pivot {
            lo_stake = lo_stake.saturating_add(s);
            lower.push(i);
        } else {
            hi_stake = hi_stake.saturating_add(s);
            upper.push(i);
        }
    }
    let lo_edge = lo.saturating_add(lo_stake);
    let hi_edge = hi.saturating_sub(hi_stake);
    if lo_edge <= minority && minority < hi_edge {
        pivot
    } else if minority < lo_edge && !lower.is_empty() {
        weighted_median(stake, score, &lower, minority, lo, lo_edge)
    } else if hi_edge <= minority && !upper.is_empty() {
        weighted_median(stake, score, &upper, minority, hi_edge, hi)
    } else {
        pivot
    }
}

/// `exp(x)` for x clamped to [-20, 20], in I64F64: range reduction to `2^k * e^r` with
/// `r` in [0, ln 2), then a Taylor series. Deterministic, ~1e-15 relative error.
// On the clamped domain nothing can overflow: |k| <= 29, terms and sums stay below 2,
// the result below 2^29 before the final saturating conversion.
#[allow(clippy::arithmetic_side_effects)]
pub fn exp_safe(x: I32F32) -> I32F32 {
    let x = I64F64::from_num(x.clamp(I32F32::from_num(-20), I32F32::from_num(20)));
    let ln2 = I64F64::LN_2;
    let k = (x / ln2).floor();
    let r = x - k * ln2;
    let mut term = I64F64::ONE;
    let mut acc = I64F64::ONE;
    for i in 1..=24 {
        term = term * r / I64F64::from_num(i);
        acc += term;
    }
    let k = k.to_num::<i32>();
    let scaled = if k >= 0 {
        acc << k.unsigned_abs()
    } else {
        acc >> k.unsigned_abs()
    };
    I32F32::saturating_from_num(scaled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> I32F32 {
        I32F32::from_num(v)
    }

    #[test]
    fn weighted_median_picks_the_stake_majority_value() {
        // Stakes 0.2/0.3/0.5 score 0.9/0.5/0.1. The result c satisfies
        // stake(score < c) <= 1 - kappa < stake(score <= c).
        let stake = [f(0.2), f(0.3), f(0.5)];
        let col: Sparse = vec![vec![(0, f(0.9))], vec![(0, f(0.5))], vec![(0, f(0.1))]];
        let median = |kappa: f64| weighted_median_cols(&stake, &col, 1, f(kappa))[0];
        assert_eq!(median(0.45), f(0.5)); // 0.5 <= 0.55 < 0.8
        assert_eq!(median(0.55), f(0.1)); // 0 <= 0.45 < 0.5
        assert_eq!(median(0.9), f(0.1)); // 0 <= 0.1 < 0.5
        assert_eq!(median(0.1), f(0.9)); // 0.8 <= 0.9 < 1.0
    }

    #[test]
    fn topk_is_stable_and_ignores_zero() {
        let x = [f(0.2), f(0.0), f(0.2), f(0.6)];
        assert_eq!(is_topk_nonzero(&x, 2), vec![false, false, true, true]);
        assert_eq!(is_topk_nonzero(&x, 10), vec![true, false, true, true]);
    }

    proptest::proptest! {
        #[test]
        fn fast_div_is_bit_identical(a in proptest::prelude::any::<i64>(), b in proptest::prelude::any::<i64>(), small in 0i64..(1 << 33), pos in 1i64..(1 << 40)) {
            for (x, y) in [(a, b), (small, pos), (small, b), (a, pos)] {
                let (x, y) = (I32F32::from_bits(x), I32F32::from_bits(y));
                if y != ZERO {
                    proptest::prop_assert_eq!(div(x, y), x.saturating_div(y), "{} / {}", x, y);
                }
            }
        }
    }

    #[test]
    fn exp_matches_f64() {
        for i in -40..=40 {
            let x = f64::from(i) * 0.5;
            let got = exp_safe(f(x)).to_num::<f64>();
            let want = x.clamp(-20.0, 20.0).exp();
            assert!(
                (got - want).abs() <= want * 1e-8 + 1e-9,
                "{x}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn merge_based_ops_match_dense_definitions() {
        let a: Sparse = vec![vec![(0, f(0.5)), (2, f(0.25))], vec![]];
        let b: Sparse = vec![vec![(1, f(0.5)), (2, f(0.75))], vec![(0, f(1.0))]];
        let e = ema(&a, &b, f(0.25));
        assert_eq!(e[0], vec![(0, f(0.125)), (1, f(0.375)), (2, f(0.625))]);
        assert_eq!(e[1], vec![(0, f(0.75))]);
        let i = interpolate(&a, &b, f(0.5));
        assert_eq!(i[0], vec![(0, f(0.25)), (1, f(0.25)), (2, f(0.5))]);
    }
}
