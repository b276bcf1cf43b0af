//! `agora-compute`: machine-learning work on any GPU vendor through wgpu, with a CPU
//! implementation of every kernel as fallback and test oracle.
//!
//! - [`Mat`]: row-major f32 matrices on the host.
//! - [`Ops`]: the kernels models are written against, implemented by [`Cpu`] (the twin:
//!   blocked multithreaded matmul and rayon row kernels, see [`cpu`]) and by
//!   [`gpu::Gpu`] (WGSL kernels, one recorded command stream, pooled buffers).
//! - [`freivalds`]: checking a claimed matrix product in O(n²), on either backend.
//! - [`Backend`]: the device a node picks (`--device` / `AGORA_DEVICE`), GPU or CPU.
//!
//! GPU floats never feed consensus: scores leave this crate as f32 and are quantised to
//! u16 by the caller (see [`score_to_u16`]).

pub mod cpu;
pub mod freivalds;
pub mod gpu;
pub mod model;
pub mod npy;
pub mod ops;
pub mod shape;

pub use ops::{Cpu, CpuF16Products, Ops};
pub use shape::{Gemm, View};

/// A row-major f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Mat {
    /// A matrix from its rows × cols values, row-major; the length must match.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self, ComputeError> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(ComputeError::Shape(format!(
                "{rows}x{cols} needs {} values, got {}",
                rows.saturating_mul(cols),
                data.len()
            )));
        }
        Ok(Mat { rows, cols, data })
    }

    pub fn zeros(rows: usize, cols: usize) -> Self {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Deterministic pseudo-random values in [-1, 1) (xorshift64*, seeded).
    pub fn random(rows: usize, cols: usize, seed: u64) -> Self {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let data = (0..rows * cols)
            .map(|_| {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                let x = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 bits
                x as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect();
        Mat { rows, cols, data }
    }

    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    pub fn row_iter(&self) -> impl Iterator<Item = &[f32]> {
        // `chunks` panics on 0; a 0-column matrix has rows of nothing.
        let width = self.cols.max(1);
        self.data
            .chunks(width)
            .take(if self.cols == 0 { 0 } else { self.rows })
    }
}

/// Where kernels run: a GPU through wgpu, or the CPU twin.
pub enum Backend {
    Gpu(Box<gpu::Gpu>),
    Cpu,
}

impl Backend {
    /// `pref` (or `AGORA_DEVICE`): `cpu` forces the CPU; anything else picks a GPU adapter
    /// as [`gpu::Gpu::open`] does. No adapter: the CPU, with a log line saying why. With
    /// no preference (or `auto`), a software adapter (lavapipe, llvmpipe, WARP) is passed
    /// over for the CPU twin, which is far faster than a rasteriser emulating a GPU;
    /// `gpu`, an index or a name selects it anyway.
    pub fn auto(pref: Option<&str>) -> Backend {
        let env = std::env::var("AGORA_DEVICE").ok();
        let pref = pref.or(env.as_deref());
        if pref.is_some_and(|p| p.eq_ignore_ascii_case("cpu")) {
            return Backend::Cpu;
        }
        match gpu::Gpu::open(pref) {
            Ok(g) if g.info.device_type == "Cpu" && pref.is_none_or(|p| p == "auto") => {
                tracing::warn!(
                    "only a software adapter ({}) found; running kernels on the CPU twin (--device gpu to use it anyway)",
                    g.info.name
                );
                Backend::Cpu
            }
            Ok(g) => Backend::Gpu(Box::new(g)),
            Err(e) => {
                tracing::warn!("no GPU backend ({e}); running kernels on the CPU");
                Backend::Cpu
            }
        }
    }

    pub fn name(&self) -> String {
        match self {
            Backend::Gpu(g) => format!("{} ({})", g.info.name, g.info.backend),
            Backend::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
        }
    }

    pub fn matmul(&self, a: &Mat, b: &Mat) -> Result<Mat, ComputeError> {
        match self {
            Backend::Gpu(g) => {
                let (a, b) = (g.upload(a)?, g.upload(b)?);
                g.download_one(&g.matmul(&a, &b)?)
            }
            Backend::Cpu => cpu::matmul(a, b),
        }
    }
}

/// Activation after a bias add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None,
    Relu,
    /// The tanh approximation.
    Gelu,
}

/// A compute call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ComputeError {
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    #[error("GPU: {0}")]
    Gpu(String),
    #[error("input: {0}")]
    Input(String),
    #[error("model: {0}")]
    Model(String),
    #[error("not supported here: {0}")]
    Unsupported(String),
}

/// A score in [0, 1] as the u16 a validator puts on chain: clamped, NaN as 0, rounded to
/// the nearest of 65536 steps. Two backends whose floats differ by less than 1/131070
/// give the same u16 except at rounding boundaries; weights are relative, so a one-step
/// difference never changes consensus materially.
pub fn score_to_u16(score: f32) -> u16 {
    if score.is_nan() {
        return 0;
    }
    (score.clamp(0.0, 1.0) * 65_535.0).round() as u16
}

#[cfg(test)]
mod tests;
