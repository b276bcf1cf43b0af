//! The operations models are written against, implemented by both backends: [`Cpu`] (the
//! twin, tensors are host [`Mat`]s) and [`crate::gpu::Gpu`] (tensors live in GPU buffers,
//! work is recorded into one command stream and submitted when results are read back).
//! A model's forward pass is generic over [`Ops`], so the GPU and CPU run the same code
//! and differ only in the kernels underneath.

use crate::{cpu, Activation, ComputeError, Mat};

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

/// The kernels a model needs, on one backend. Tensors are row-major f32 matrices; every
/// op checks shapes and returns [`ComputeError::Shape`] rather than panicking. Outputs
/// start poisoned (NaN), so an element a kernel fails to write shows up in any result.
pub trait Ops {
    type Tensor;

    fn name(&self) -> String;
    fn upload(&self, m: &Mat) -> Result<Self::Tensor, ComputeError>;
    /// Read several tensors back at once (on the GPU: one submit, one mapping).
    fn download(&self, ts: &[&Self::Tensor]) -> Result<Vec<Mat>, ComputeError>;
    fn shape(&self, t: &Self::Tensor) -> (usize, usize);
    /// A `rows × cols` tensor filled with NaN.
    fn alloc(&self, rows: usize, cols: usize) -> Result<Self::Tensor, ComputeError>;
    /// Write `g`'s product into `c` (elements outside `g.c` keep their values).
    fn gemm_into(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        c: &mut Self::Tensor,
        g: &Gemm,
    ) -> Result<(), ComputeError>;
    /// `act(x + bias)`, `bias` a `1 × cols` row broadcast over `x`'s rows.
    fn bias_act(
        &self,
        x: &Self::Tensor,
        bias: &Self::Tensor,
        act: Activation,
    ) -> Result<Self::Tensor, ComputeError>;
    fn add(&self, x: &Self::Tensor, y: &Self::Tensor) -> Result<Self::Tensor, ComputeError>;
    /// Row softmax of `scale · x`; with `causal = Some(p)`, row `i` keeps only columns
    /// `0..=i % p` (the rest become 0), the mask of `p`-token causal attention.
    fn softmax(
        &self,
        x: &Self::Tensor,
        scale: f32,
        causal: Option<usize>,
    ) -> Result<Self::Tensor, ComputeError>;
    /// `gamma`, `beta`: `1 × cols`.
    fn layernorm(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        eps: f32,
    ) -> Result<Self::Tensor, ComputeError>;
    fn row_sum(&self, x: &Self::Tensor) -> Result<Vec<f32>, ComputeError>;
    fn row_max(&self, x: &Self::Tensor) -> Result<Vec<f32>, ComputeError>;
    /// First index of each row's maximum.
    fn row_argmax(&self, x: &Self::Tensor) -> Result<Vec<u32>, ComputeError>;
    /// Cosine similarity of matching rows (0 when either row is zero).
    fn cosine(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Vec<f32>, ComputeError>;
    /// `logsumexp(row) - row[target]` per row.
    fn cross_entropy(
        &self,
        logits: &Self::Tensor,
        targets: &[u32],
    ) -> Result<Vec<f32>, ComputeError>;

    /// Wait until everything recorded so far has run (for timing; results do not need
    /// it, reading them back waits).
    fn sync(&self) -> Result<(), ComputeError> {
        Ok(())
    }

    /// Read one tensor back.
    fn download_one(&self, t: &Self::Tensor) -> Result<Mat, ComputeError> {
        self.download(&[t])?
            .pop()
            .ok_or_else(|| ComputeError::Gpu("no readback".into()))
    }

    /// `A · B`.
    fn matmul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor, ComputeError> {
        let (m, k) = self.shape(a);
        let (kb, n) = self.shape(b);
        check::matmul((m, k), (kb, n))?;
        let mut c = self.alloc(m, n)?;
        self.gemm_into(a, b, &mut c, &Gemm::dense(m, k, n))?;
        Ok(c)
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

/// The CPU backend: host matrices and the kernels in [`crate::cpu`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

impl Ops for Cpu {
    type Tensor = Mat;

    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn upload(&self, m: &Mat) -> Result<Mat, ComputeError> {
        Ok(m.clone())
    }

    fn download(&self, ts: &[&Mat]) -> Result<Vec<Mat>, ComputeError> {
        Ok(ts.iter().map(|t| (*t).clone()).collect())
    }

    fn shape(&self, t: &Mat) -> (usize, usize) {
        t.shape()
    }

    fn alloc(&self, rows: usize, cols: usize) -> Result<Mat, ComputeError> {
        let len = rows
            .checked_mul(cols)
            .ok_or_else(|| ComputeError::Shape(format!("{rows}x{cols} overflows")))?;
        Mat::new(rows, cols, vec![f32::NAN; len])
    }

    fn gemm_into(&self, a: &Mat, b: &Mat, c: &mut Mat, g: &Gemm) -> Result<(), ComputeError> {
        cpu::gemm(g, &a.data, &b.data, &mut c.data)
    }

    fn bias_act(&self, x: &Mat, bias: &Mat, act: Activation) -> Result<Mat, ComputeError> {
        check::row("bias", bias.shape(), x.cols)?;
        cpu::bias_act(x, &bias.data, act)
    }

    fn add(&self, x: &Mat, y: &Mat) -> Result<Mat, ComputeError> {
        cpu::add(x, y)
    }

    fn softmax(&self, x: &Mat, scale: f32, causal: Option<usize>) -> Result<Mat, ComputeError> {
        cpu::softmax(x, scale, causal)
    }

    fn layernorm(&self, x: &Mat, gamma: &Mat, beta: &Mat, eps: f32) -> Result<Mat, ComputeError> {
        check::row("layernorm gamma", gamma.shape(), x.cols)?;
        check::row("layernorm beta", beta.shape(), x.cols)?;
        cpu::layernorm(x, &gamma.data, &beta.data, eps)
    }

    fn row_sum(&self, x: &Mat) -> Result<Vec<f32>, ComputeError> {
        Ok(cpu::row_sum(x))
    }

    fn row_max(&self, x: &Mat) -> Result<Vec<f32>, ComputeError> {
        Ok(cpu::row_max(x))
    }

    fn row_argmax(&self, x: &Mat) -> Result<Vec<u32>, ComputeError> {
        Ok(cpu::row_argmax(x))
    }

    fn cosine(&self, a: &Mat, b: &Mat) -> Result<Vec<f32>, ComputeError> {
        cpu::cosine(a, b)
    }

    fn cross_entropy(&self, logits: &Mat, targets: &[u32]) -> Result<Vec<f32>, ComputeError> {
        cpu::cross_entropy(logits, targets)
    }
}
