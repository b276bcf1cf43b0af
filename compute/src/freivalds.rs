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

use crate::gpu::{Gpu, GpuMat};
use crate::{ComputeError, Mat, Ops};

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

fn shapes(a: (usize, usize), b: (usize, usize), c: (usize, usize)) -> Result<(), ComputeError> {
    if a.1 != b.0 || c.0 != a.0 || c.1 != b.1 {
        return Err(ComputeError::Shape(format!(
            "freivalds: A {}x{}, B {}x{}, C {}x{}",
            a.0, a.1, b.0, b.1, c.0, c.1
        )));
    }
    Ok(())
}

/// The verdict from `scale = |A|·(|B|·1)` and, per round, `y = A·(B·r)` and `z = C·r`:
/// rejected at the first round with a row outside `tolerance · scale`.
fn judge(scale: &[f64], rounds: &[(Vec<f64>, Vec<f64>)], tolerance: f64) -> Verdict {
    let mut worst = 0.0f64;
    for (round, (y, z)) in rounds.iter().enumerate() {
        for ((yi, zi), si) in y.iter().zip(z).zip(scale) {
            let bound = tolerance * si + 1e-12;
            let ratio = (yi - zi).abs() / bound;
            worst = if ratio.is_nan() {
                f64::INFINITY
            } else {
                worst.max(ratio)
            };
        }
        if worst > 1.0 {
            return Verdict {
                accepted: false,
                rounds: round as u32 + 1,
                worst_ratio: worst,
            };
        }
    }
    Verdict {
        accepted: true,
        rounds: rounds.len() as u32,
        worst_ratio: worst,
    }
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
    shapes((a.rows, a.cols), (b.rows, b.cols), (c.rows, c.cols))?;
    // |r| is all ones, so the scale is the same every round.
    let scale = matvec64(a, &matvec64(b, &vec![1.0; b.cols], true), true);
    let mut worst = 0.0f64;
    for round in 0..rounds {
        let r = sign_vector(b.cols, seed.wrapping_add(u64::from(round)));
        let y = matvec64(a, &matvec64(b, &r, false), false);
        let z = matvec64(c, &r, false);
        let v = judge(&scale, &[(y, z)], tolerance);
        worst = worst.max(v.worst_ratio);
        if !v.accepted {
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

/// The same check with the matrices already on the GPU: every matrix-vector product runs
/// there (Kahan-compensated f32, see `matvec.wgsl`), all rounds are recorded into one
/// stream and read back at once, and the comparison runs on the host in f64. The f32
/// rounding of `B·r` adds at most ~2^-24 of `scale` per row, far inside `tolerance`.
pub fn check_gpu(
    g: &Gpu,
    a: &GpuMat,
    b: &GpuMat,
    c: &GpuMat,
    rounds: u32,
    seed: u64,
    tolerance: f64,
) -> Result<Verdict, ComputeError> {
    shapes((a.rows, a.cols), (b.rows, b.cols), (c.rows, c.cols))?;
    let vector = |v: Vec<f64>| Mat::new(v.len(), 1, v.into_iter().map(|x| x as f32).collect());
    let ones = g.upload(&vector(vec![1.0; b.cols])?)?;
    let scale = g.matvec(a, &g.matvec(b, &ones, true)?, true)?;
    let mut outputs = vec![scale];
    for round in 0..rounds {
        let r = g.upload(&vector(sign_vector(
            b.cols,
            seed.wrapping_add(u64::from(round)),
        ))?)?;
        outputs.push(g.matvec(a, &g.matvec(b, &r, false)?, false)?);
        outputs.push(g.matvec(c, &r, false)?);
    }
    let refs: Vec<&GpuMat> = outputs.iter().collect();
    let host: Vec<Vec<f64>> = g
        .download(&refs)?
        .into_iter()
        .map(|m| m.data.into_iter().map(f64::from).collect())
        .collect();
    let (scale, rest) = host
        .split_first()
        .ok_or_else(|| ComputeError::Gpu("no readback".into()))?;
    let pairs: Vec<(Vec<f64>, Vec<f64>)> = rest
        .chunks(2)
        .filter_map(|p| Some((p.first()?.clone(), p.get(1)?.clone())))
        .collect();
    Ok(judge(scale, &pairs, tolerance))
}
