//! The CPU twin of every kernel: what miners without a GPU run, and the oracle the GPU
//! kernels are tested against. Row-major f32 throughout; rows are processed in parallel
//! with rayon, and the matmul is blocked so its inner loop streams over contiguous rows.

use rayon::prelude::*;

use crate::shape::check;
use crate::{Activation, ComputeError, Gemm, Mat};

/// Rows of A per parallel task, and the K block kept hot in cache.
const ROW_BLOCK: usize = 16;
const K_BLOCK: usize = 256;

/// `C = A · B` for `A: m×k`, `B: k×n`.
pub fn matmul(a: &Mat, b: &Mat) -> Result<Mat, ComputeError> {
    check::matmul(a.shape(), b.shape())?;
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut c = vec![0.0f32; m * n];
    blocked(&a.data, &b.data, &mut c, k, n);
    Mat::new(m, n, c)
}

/// `c += a · b` for dense row-major `a: m×k`, `b: k×n`, `c: m×n` (m = c.len() / n):
/// ROW_BLOCK rows of C per parallel task, K in blocks that stay in cache.
fn blocked(a: &[f32], b: &[f32], c: &mut [f32], k: usize, n: usize) {
    if n == 0 {
        return;
    }
    c.par_chunks_mut(ROW_BLOCK * n)
        .enumerate()
        .for_each(|(blk, out)| {
            let row0 = blk * ROW_BLOCK;
            let rows = out.len() / n;
            for k0 in (0..k).step_by(K_BLOCK) {
                let k1 = (k0 + K_BLOCK).min(k);
                for r in 0..rows {
                    let arow = &a[(row0 + r) * k..(row0 + r + 1) * k];
                    let crow = &mut out[r * n..(r + 1) * n];
                    for (kk, av) in arow.iter().enumerate().take(k1).skip(k0) {
                        let brow = &b[kk * n..(kk + 1) * n];
                        for (cv, bv) in crow.iter_mut().zip(brow) {
                            *cv += av * bv;
                        }
                    }
                }
            }
        });
}

/// The strided, batched product [`Gemm`] describes, into `c` (elements outside the C view
/// are left alone). Dense products take the blocked [`matmul`]; strided ones compute each
/// output row in parallel from contiguous slices.
pub fn gemm(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<(), ComputeError> {
    g.check(a.len(), b.len(), c.len())?;
    if g.is_empty() {
        return Ok(());
    }
    let (m, k, n) = (g.m, g.k, g.n);
    let dense = Gemm {
        alpha: g.alpha,
        ..Gemm::dense(m, k, n)
    };
    if *g == dense && c.len() == m * n {
        c.fill(0.0);
        blocked(&a[..m * k], &b[..k * n], c, k, n);
        if g.alpha != 1.0 {
            c.iter_mut().for_each(|v| *v *= g.alpha);
        }
        return Ok(());
    }
    for z in 0..g.batch {
        let a0 = g.a.offset + z * g.a.batch_stride;
        let b0 = g.b.offset + z * g.b.batch_stride;
        let mut out = vec![0.0f32; m * n];
        out.par_chunks_mut(n).enumerate().for_each(|(i, orow)| {
            let arow = &a[a0 + i * g.a.ld..][..k];
            if g.trans_b {
                for (j, o) in orow.iter_mut().enumerate() {
                    let brow = &b[b0 + j * g.b.ld..][..k];
                    *o = arow.iter().zip(brow).map(|(x, y)| x * y).sum();
                }
            } else {
                for (kk, av) in arow.iter().enumerate() {
                    let brow = &b[b0 + kk * g.b.ld..][..n];
                    for (o, bv) in orow.iter_mut().zip(brow) {
                        *o += av * bv;
                    }
                }
            }
        });
        let c0 = g.c.offset + z * g.c.batch_stride;
        for (i, orow) in out.chunks(n).enumerate() {
            for (dst, v) in c[c0 + i * g.c.ld..][..n].iter_mut().zip(orow) {
                *dst = g.alpha * v;
            }
        }
    }
    Ok(())
}

/// Each value rounded to the nearest f16 (and back to f32): what an f16 kernel sees.
pub fn round_f16(x: &Mat) -> Mat {
    Mat {
        rows: x.rows,
        cols: x.cols,
        data: x
            .data
            .iter()
            .map(|v| half::f16::from_f32(*v).to_f32())
            .collect(),
    }
}

/// The twin of the f16 GPU matmul: inputs rounded to f16, products accumulated in f32.
pub fn matmul_f16(a: &Mat, b: &Mat) -> Result<Mat, ComputeError> {
    matmul(&round_f16(a), &round_f16(b))
}

/// `C[i] = A[i] · B[i]` for each of a batch of equally shaped pairs.
pub fn batched_matmul(a: &[Mat], b: &[Mat]) -> Result<Vec<Mat>, ComputeError> {
    if a.len() != b.len() {
        return Err(ComputeError::Shape(format!(
            "batched matmul: {} left and {} right matrices",
            a.len(),
            b.len()
        )));
    }
    a.iter().zip(b).map(|(x, y)| matmul(x, y)).collect()
}

fn gelu(x: f32) -> f32 {
    // tanh approximation, the same formula as the WGSL kernel. The tanh argument is
    // clamped to ±15 (tanh(15) rounds to 1 in f32) because some GPU tanh implementations
    // overflow to NaN far out.
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    let t = (C * (x + 0.044_715 * x * x * x)).clamp(-15.0, 15.0);
    0.5 * x * (1.0 + t.tanh())
}

/// `act(x + bias)` with `bias` broadcast over rows (one value per column).
pub fn bias_act(x: &Mat, bias: &[f32], act: Activation) -> Result<Mat, ComputeError> {
    if bias.len() != x.cols {
        return Err(ComputeError::Shape(format!(
            "bias has {} values for {} columns",
            bias.len(),
            x.cols
        )));
    }
    let mut out = x.data.clone();
    if x.cols > 0 {
        out.par_chunks_mut(x.cols).for_each(|row| {
            for (v, b) in row.iter_mut().zip(bias) {
                let y = *v + b;
                *v = match act {
                    Activation::None => y,
                    Activation::Relu => y.max(0.0),
                    Activation::Gelu => gelu(y),
                };
            }
        });
    }
    Mat::new(x.rows, x.cols, out)
}

/// Softmax of each row of `scale · x` (max-subtracted). With `causal = Some(p)`, row `i`
/// keeps columns `0..=i % p` and the rest are 0: the mask of causal attention over `p`
/// tokens, one `p × p` block per head.
pub fn softmax(x: &Mat, scale: f32, causal: Option<usize>) -> Result<Mat, ComputeError> {
    if causal == Some(0) {
        return Err(ComputeError::Shape("causal softmax period 0".into()));
    }
    let mut out = x.data.clone();
    if x.cols > 0 {
        out.par_chunks_mut(x.cols).enumerate().for_each(|(i, row)| {
            let valid = causal.map_or(row.len(), |p| (i % p + 1).min(row.len()));
            let (keep, masked) = row.split_at_mut(valid);
            let max = keep
                .iter()
                .map(|v| v * scale)
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for v in keep.iter_mut() {
                *v = (*v * scale - max).exp();
                sum += *v;
            }
            for v in keep.iter_mut() {
                *v /= sum;
            }
            masked.fill(0.0);
        });
    }
    Mat::new(x.rows, x.cols, out)
}

/// `x + y`, elementwise.
pub fn add(x: &Mat, y: &Mat) -> Result<Mat, ComputeError> {
    check::same("add", x.shape(), y.shape())?;
    let data = x.data.iter().zip(&y.data).map(|(a, b)| a + b).collect();
    Mat::new(x.rows, x.cols, data)
}

/// Layer normalisation of each row: `(x - mean) / sqrt(var + eps) * gamma + beta`.
pub fn layernorm(x: &Mat, gamma: &[f32], beta: &[f32], eps: f32) -> Result<Mat, ComputeError> {
    if gamma.len() != x.cols || beta.len() != x.cols {
        return Err(ComputeError::Shape(format!(
            "layernorm: gamma {} and beta {} values for {} columns",
            gamma.len(),
            beta.len(),
            x.cols
        )));
    }
    let mut out = x.data.clone();
    if x.cols > 0 {
        let n = x.cols as f32;
        out.par_chunks_mut(x.cols).for_each(|row| {
            let mean = row.iter().sum::<f32>() / n;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = (*v - mean) * inv * g + b;
            }
        });
    }
    Mat::new(x.rows, x.cols, out)
}

/// Per-row sum, max, and argmax (first index of the max).
pub fn row_sum(x: &Mat) -> Vec<f32> {
    x.row_iter().map(|r| r.iter().sum()).collect()
}

pub fn row_max(x: &Mat) -> Vec<f32> {
    x.row_iter()
        .map(|r| r.iter().copied().fold(f32::NEG_INFINITY, f32::max))
        .collect()
}

pub fn row_argmax(x: &Mat) -> Vec<u32> {
    x.row_iter()
        .map(|r| {
            let mut best = 0usize;
            for (i, v) in r.iter().enumerate() {
                if *v > r[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

/// Cosine similarity of row `i` of `a` with row `i` of `b` (0 when either is zero).
pub fn cosine(a: &Mat, b: &Mat) -> Result<Vec<f32>, ComputeError> {
    check::same("cosine", a.shape(), b.shape())?;
    Ok(a.row_iter()
        .zip(b.row_iter())
        .map(|(x, y)| {
            let dot: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
            let nx: f32 = x.iter().map(|p| p * p).sum::<f32>().sqrt();
            let ny: f32 = y.iter().map(|q| q * q).sum::<f32>().sqrt();
            if nx == 0.0 || ny == 0.0 {
                0.0
            } else {
                dot / (nx * ny)
            }
        })
        .collect())
}

/// Cross-entropy of each row of logits against its target class: `logsumexp(x) - x[t]`.
pub fn cross_entropy(logits: &Mat, targets: &[u32]) -> Result<Vec<f32>, ComputeError> {
    if targets.len() != logits.rows {
        return Err(ComputeError::Shape(format!(
            "cross-entropy: {} targets for {} rows",
            targets.len(),
            logits.rows
        )));
    }
    logits
        .row_iter()
        .zip(targets)
        .map(|(r, t)| {
            let t = *t as usize;
            let xt = *r.get(t).ok_or_else(|| {
                ComputeError::Shape(format!("target class {t} but only {} classes", r.len()))
            })?;
            let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = max + r.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
            Ok(lse - xt)
        })
        .collect()
}

/// `y = M · v` for a vector `v` (the O(n²) step of Freivalds' check).
pub fn matvec(m: &Mat, v: &[f32]) -> Result<Vec<f32>, ComputeError> {
    if v.len() != m.cols {
        return Err(ComputeError::Shape(format!(
            "matvec: {}x{} times a vector of {}",
            m.rows,
            m.cols,
            v.len()
        )));
    }
    Ok(m.row_iter()
        .map(|r| r.iter().zip(v).map(|(a, b)| a * b).sum())
        .collect())
}
