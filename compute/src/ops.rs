//! The operations models are written against, implemented by both backends: [`Cpu`] (the
//! twin, tensors are host [`Mat`]s) and [`crate::gpu::Gpu`] (tensors live in GPU buffers,
//! work is recorded into one command stream and submitted when results are read back).
//! A model's forward pass is generic over [`Ops`], so the GPU and CPU run the same code
//! and differ only in the kernels underneath.

use crate::shape::check;
use crate::shape::Gemm;
use crate::{cpu, Activation, ComputeError, Mat};

/// The kernels a model needs, on one backend. Tensors are row-major f32 matrices; every
/// op checks shapes and returns [`ComputeError::Shape`] rather than panicking. Outputs
/// start poisoned (NaN), so an element a kernel fails to write shows up in any result.
pub trait Ops {
    type Tensor;

    fn name(&self) -> String;
    fn upload(&self, m: &Mat) -> Result<Self::Tensor, ComputeError>;
    /// Upload a product weight; with `half`, rounded to f16. The default keeps f32 storage
    /// of the rounded values (what the CPU twin of a half-weight model computes with); a
    /// GPU stores f16.
    fn upload_weight(&self, m: &Mat, half: bool) -> Result<Self::Tensor, ComputeError> {
        if !half {
            return self.upload(m);
        }
        let data = m
            .data
            .iter()
            .map(|v| half::f16::from_f32(*v).to_f32())
            .collect();
        self.upload(&Mat::new(m.rows, m.cols, data)?)
    }
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
    /// A linear layer, `act(x · w + bias)`. The default is the product then
    /// [`Ops::bias_act`]; a backend may fuse them.
    fn linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: &Self::Tensor,
        act: Activation,
    ) -> Result<Self::Tensor, ComputeError> {
        self.bias_act(&self.matmul(x, w)?, bias, act)
    }
    /// A linear layer and the residual connection after it, `residual + (x · w + bias)`.
    /// The default is [`Ops::linear`] then [`Ops::add`]; a backend may fuse them.
    fn linear_residual(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: &Self::Tensor,
        residual: &Self::Tensor,
    ) -> Result<Self::Tensor, ComputeError> {
        self.add(residual, &self.linear(x, w, bias, Activation::None)?)
    }
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

/// The CPU twin of a GPU running every product on tensor cores
/// ([`crate::gpu::Gpu::set_tensor_cores`]): [`Cpu`], except that each product rounds its
/// inputs to f16 first (and accumulates in f32, as the tensor cores do).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuF16Products;

impl Ops for CpuF16Products {
    type Tensor = Mat;

    fn name(&self) -> String {
        format!("{} with f16 products", Cpu.name())
    }

    fn upload(&self, m: &Mat) -> Result<Mat, ComputeError> {
        Cpu.upload(m)
    }

    fn download(&self, ts: &[&Mat]) -> Result<Vec<Mat>, ComputeError> {
        Cpu.download(ts)
    }

    fn shape(&self, t: &Mat) -> (usize, usize) {
        Cpu.shape(t)
    }

    fn alloc(&self, rows: usize, cols: usize) -> Result<Mat, ComputeError> {
        Cpu.alloc(rows, cols)
    }

    fn gemm_into(&self, a: &Mat, b: &Mat, c: &mut Mat, g: &Gemm) -> Result<(), ComputeError> {
        let (a, b) = (cpu::round_f16(a), cpu::round_f16(b));
        cpu::gemm(g, &a.data, &b.data, &mut c.data)
    }

    fn bias_act(&self, x: &Mat, bias: &Mat, act: Activation) -> Result<Mat, ComputeError> {
        Cpu.bias_act(x, bias, act)
    }

    fn add(&self, x: &Mat, y: &Mat) -> Result<Mat, ComputeError> {
        Cpu.add(x, y)
    }

    fn softmax(&self, x: &Mat, scale: f32, causal: Option<usize>) -> Result<Mat, ComputeError> {
        Cpu.softmax(x, scale, causal)
    }

    fn layernorm(&self, x: &Mat, gamma: &Mat, beta: &Mat, eps: f32) -> Result<Mat, ComputeError> {
        Cpu.layernorm(x, gamma, beta, eps)
    }

    fn row_sum(&self, x: &Mat) -> Result<Vec<f32>, ComputeError> {
        Cpu.row_sum(x)
    }

    fn row_max(&self, x: &Mat) -> Result<Vec<f32>, ComputeError> {
        Cpu.row_max(x)
    }

    fn row_argmax(&self, x: &Mat) -> Result<Vec<u32>, ComputeError> {
        Cpu.row_argmax(x)
    }

    fn cosine(&self, a: &Mat, b: &Mat) -> Result<Vec<f32>, ComputeError> {
        Cpu.cosine(a, b)
    }

    fn cross_entropy(&self, logits: &Mat, targets: &[u32]) -> Result<Vec<f32>, ComputeError> {
        Cpu.cross_entropy(logits, targets)
    }
}
