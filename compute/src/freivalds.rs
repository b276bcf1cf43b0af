//! Freivalds' check: is `C = A · B` without recomputing it? Pick a random vector `r`
//! and compare `A · (B · r)` with `C · r`: three matrix-vector products, O(n²) instead of
//! O(n³). A wrong product passes one round with probability at most 1/2 for ±1 vectors
//! (far less for errors bigger than the float tolerance), so `rounds` rounds bound a false
//! accept by 2^-rounds.
//!
//! Floats: an honest f32 product differs from the exact one by about
//! `k · ε · (|A|·|B|)`, so each row is compared against a tolerance built from the same
//! products over absolute values: `|y_i − z_i| ≤ tol · (|A| · (|B| · |r|))_i + tiny`.

use rayon::prelude::*;

use crate::{ComputeError, Mat};

/// Relative tolerance per unit of `|A|·(|B|·|r|)`. The check itself runs in f64, so what
/// it measures is the claimed product's own error; an honest f32 product (any summation
/// order) stays orders of magnitude below this, while one element wrong by ~1% of a
/// typical entry exceeds it at the sizes in the tests.
pub const DEFAULT_TOLERANCE: f64 = 1e-5;

/// What a check found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub accepted: bool,
    pub rounds: u32,
    /// Largest `|y_i − z_i| / bound_i` seen (≤ 1 means within tolerance).
    pub worst_ratio: f64,
}

/// `M · v` (or `|M| · v`) accumulated in f64, rows in parallel.
fn matvec64(m: &Mat, v: &[f64], absolute: bool) -> Vec<f64> {
    if m.cols == 0 {
        return vec![0.0; m.rows];
    }
    m.data
        .par_chunks(m.cols)
        .map(|r| {
            r.iter()
                .zip(v)
                .map(|(a, b)| f64::from(if absolute { a.abs() } else { *a }) * b)
                .sum()
        })
        .collect()
}

fn sign_vector(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0xD134_2543_DE82_EF95) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            if s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 63 == 1 {
                1.0
            } else {
                -1.0
            }
        })
        .collect()
}

/// Check the claim `c = a · b` with `rounds` random ±1 vectors derived from `seed`.
pub fn check(
    a: &Mat,
    b: &Mat,
    c: &Mat,
    rounds: u32,
    seed: u64,
    tolerance: f64,
) -> Result<Verdict, ComputeError> {
    if a.cols != b.rows || c.rows != a.rows || c.cols != b.cols {
        return Err(ComputeError::Shape(format!(
            "freivalds: A {}x{}, B {}x{}, C {}x{}",
            a.rows, a.cols, b.rows, b.cols, c.rows, c.cols
        )));
    }
    // |r| is all ones, so the scale is the same every round.
    let scale = matvec64(a, &matvec64(b, &vec![1.0; b.cols], true), true);
    let mut worst = 0.0f64;
    for round in 0..rounds {
        let r = sign_vector(b.cols, seed.wrapping_add(u64::from(round)));
        let y = matvec64(a, &matvec64(b, &r, false), false);
        let z = matvec64(c, &r, false);
        for ((yi, zi), si) in y.iter().zip(&z).zip(&scale) {
            let bound = tolerance * si + 1e-12;
            let ratio = (yi - zi).abs() / bound;
            if ratio.is_nan() {
                worst = f64::INFINITY;
            } else {
                worst = worst.max(ratio);
            }
        }
        if worst > 1.0 {
            return Ok(Verdict {
                accepted: false,
                rounds: round + 1,
                worst_ratio: worst,
            });
        }
    }
    Ok(Verdict {
        accepted: true,
        rounds,
        worst_ratio: worst,
    })
}
