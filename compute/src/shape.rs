//! Operand layouts and shape rules, below both the CPU kernels ([`crate::cpu`]) and the
//! backend interface ([`crate::ops`]), so neither has to import the other for them.

use crate::ComputeError;

/// Where a matrix operand sits inside a flat buffer: element `(i, j)` of batch `z` is at
/// `offset + z * batch_stride + i * ld + j`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub offset: usize,
    pub ld: usize,
    pub batch_stride: usize,
}

impl View {
    /// A dense row-major matrix with `cols` columns, one per batch of `rows × cols`.
    pub fn dense(rows: usize, cols: usize) -> View {
        View {
            offset: 0,
            ld: cols,
            batch_stride: rows * cols,
        }
    }
}

/// A strided, batched matrix product: `C_z = alpha · A_z · op(B_z)` for `z < batch`, with
/// `A_z: m×k`, `op(B_z): k×n` (`B_z` stored `n×k` when `trans_b`), `C_z: m×n`. Strided
/// views let attention read per-head slices of one QKV matrix and write each head's
/// output into its columns without copies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gemm {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub batch: usize,
    pub trans_b: bool,
    pub alpha: f32,
    pub a: View,
    pub b: View,
    pub c: View,
}

impl Gemm {
    /// `C = A · B` for dense row-major `A: m×k`, `B: k×n`.
    pub fn dense(m: usize, k: usize, n: usize) -> Gemm {
        Gemm {
            m,
            k,
            n,
            batch: 1,
            trans_b: false,
            alpha: 1.0,
            a: View::dense(m, k),
            b: View::dense(k, n),
            c: View::dense(m, n),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.m == 0 || self.n == 0 || self.batch == 0
    }

    /// One past the largest element a `rows × cols` view touches over the batch.
    fn extent(v: &View, batch: usize, rows: usize, cols: usize) -> Option<usize> {
        if batch == 0 || rows == 0 || cols == 0 {
            return Some(0);
        }
        v.offset
            .checked_add((batch - 1).checked_mul(v.batch_stride)?)?
            .checked_add((rows - 1).checked_mul(v.ld)?)?
            .checked_add(cols)
    }

    /// Every element the product reads or writes lies inside buffers of these lengths,
    /// and rows do not overlap columns (`ld >= cols`).
    pub fn check(&self, a_len: usize, b_len: usize, c_len: usize) -> Result<(), ComputeError> {
        let (b_rows, b_cols) = if self.trans_b {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        };
        let operands = [
            ("A", &self.a, self.m, self.k, a_len),
            ("B", &self.b, b_rows, b_cols, b_len),
            ("C", &self.c, self.m, self.n, c_len),
        ];
        for (name, v, rows, cols, len) in operands {
            if rows > 1 && v.ld < cols {
                return Err(ComputeError::Shape(format!(
                    "gemm: {name} rows of {cols} with leading dimension {}",
                    v.ld
                )));
            }
            if self.is_empty() {
                continue;
            }
            match Self::extent(v, self.batch, rows, cols) {
                Some(end) if end <= len => {}
                _ => {
                    return Err(ComputeError::Shape(format!(
                    "gemm: {name} view {v:?} of {}x{rows}x{cols} reaches past its {len} elements",
                    self.batch
                )))
                }
            }
        }
        Ok(())
    }
}

/// Shape rules both backends apply, one message per rule.
pub(crate) mod check {
    use crate::ComputeError;

    /// `shape` is `1 × cols` (a bias, a LayerNorm gain or shift).
    pub fn row(what: &str, shape: (usize, usize), cols: usize) -> Result<(), ComputeError> {
        if shape != (1, cols) {
            return Err(ComputeError::Shape(format!(
                "{what} must be 1x{cols}, got {}x{}",
                shape.0, shape.1
            )));
        }
        Ok(())
    }

    /// Elementwise operands: the same shape.
    pub fn same(what: &str, a: (usize, usize), b: (usize, usize)) -> Result<(), ComputeError> {
        if a != b {
            return Err(ComputeError::Shape(format!(
                "{what}: {}x{} vs {}x{}",
                a.0, a.1, b.0, b.1
            )));
        }
        Ok(())
    }

    /// `A · B`: A's columns are B's rows.
    pub fn matmul(a: (usize, usize), b: (usize, usize)) -> Result<(), ComputeError> {
        if a.1 != b.0 {
            return Err(ComputeError::Shape(format!(
                "matmul: A is {}x{}, B is {}x{}",
                a.0, a.1, b.0, b.1
            )));
        }
        Ok(())
    }
}
