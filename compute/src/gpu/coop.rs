//! Tensor cores through cooperative matrices: `gemm_coop.wgsl`, f16 products and f32
//! accumulation (operands stored as f16, or as f32 and rounded to f16 as they are staged:
//! [`CoopLoads`]), on adapters whose wgpu backend offers `EXPERIMENTAL_COOPERATIVE_MATRIX`
//! with a square f16 x f16 -> f32 configuration (16x16x16 on NVIDIA, 8x8x8 on lavapipe),
//! `SUBGROUP` and `SHADER_F16`, and one fixed subgroup size (the kernel gives each
//! subgroup its own block of C). Everywhere else the portable gemm is used and
//! [`CoopShape::probe`] says why. `AGORA_COOP=0` turns it off.
//!
//! bf16 is not offered: naga (wgpu's shader compiler) has no bf16 type.

use serde::Serialize;

use super::{AdapterReport, Epilogue, Extra, Gpu, GpuMat, Kernel};
use crate::{ComputeError, Gemm, Mat, Ops};

/// What the adapter's cooperative matrices look like: the side of the square f16 x f16 ->
/// f32 matrix, and the subgroup size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CoopShape {
    pub side: u32,
    pub subgroup: u32,
}

impl CoopShape {
    /// The shape the kernel can use on `adapter`, or why none.
    pub fn probe(adapter: &wgpu::Adapter) -> Result<CoopShape, String> {
        if std::env::var("AGORA_COOP").is_ok_and(|v| v == "0") {
            return Err("turned off by AGORA_COOP=0".into());
        }
        let features = adapter.features();
        for (f, name) in [
            (
                wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
                "EXPERIMENTAL_COOPERATIVE_MATRIX",
            ),
            (wgpu::Features::SHADER_F16, "SHADER_F16"),
            (wgpu::Features::SUBGROUP, "SUBGROUP"),
        ] {
            if !features.contains(f) {
                return Err(format!("the adapter has no {name}"));
            }
        }
        let configs = adapter.cooperative_matrix_properties();
        let info = adapter.get_info();
        Self::choose(&configs, info.subgroup_min_size, info.subgroup_max_size)
    }

    /// The largest square f16 x f16 -> f32 configuration among `configs`, for a fixed
    /// subgroup size.
    pub fn choose(
        configs: &[wgpu::CooperativeMatrixProperties],
        subgroup_min: u32,
        subgroup_max: u32,
    ) -> Result<CoopShape, String> {
        use wgpu::CooperativeScalarType::{F16, F32};
        let side = configs
            .iter()
            .filter(|c| c.ab_type == F16 && c.cr_type == F32)
            .filter(|c| c.m_size == c.n_size && c.n_size == c.k_size)
            .filter(|c| c.m_size == 8 || c.m_size == 16)
            .map(|c| c.m_size)
            .max()
            .ok_or_else(|| {
                format!(
                    "no square 8 or 16 f16 x f16 -> f32 configuration among {}",
                    describe(configs).join(", ")
                )
            })?;
        if subgroup_min != subgroup_max || subgroup_min == 0 {
            return Err(format!(
                "the subgroup size varies ({subgroup_min} to {subgroup_max})"
            ));
        }
        Ok(CoopShape {
            side,
            subgroup: subgroup_min,
        })
    }
}

/// `MxNxK A->C` for each configuration, as `compute info` prints them.
pub fn describe(configs: &[wgpu::CooperativeMatrixProperties]) -> Vec<String> {
    configs
        .iter()
        .map(|c| {
            format!(
                "{}x{}x{} {:?}->{:?}",
                c.m_size, c.n_size, c.k_size, c.ab_type, c.cr_type
            )
            .to_lowercase()
        })
        .collect()
}

/// One tiling of `gemm_coop.wgsl`: `wm x wn` subgroups, each owning `fm x fn_` matrices of
/// C, K in steps of `tk` matrix sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CoopVariant {
    pub name: &'static str,
    pub wm: u32,
    pub wn: u32,
    pub fm: u32,
    pub fn_: u32,
    pub tk: u32,
}

impl CoopVariant {
    /// The workgroup's tile of C, rows x columns.
    pub fn tile(&self, s: CoopShape) -> (u32, u32) {
        (self.wm * self.fm * s.side, self.wn * self.fn_ * s.side)
    }

    pub fn threads(&self, s: CoopShape) -> u32 {
        self.wm * self.wn * s.subgroup
    }

    /// Workgroup memory: the f16 tiles of A and B (rows padded by 8) and one f32 matrix
    /// per subgroup.
    pub fn shared_bytes(&self, s: CoopShape) -> u32 {
        let (tm, tn) = self.tile(s);
        let tk = self.tk * s.side;
        2 * (tm * (tk + 8) + tk * (tn + 8)) + 4 * self.wm * self.wn * s.side * s.side
    }

    /// The kernel source for operands stored as `loads` says.
    pub fn source(&self, s: CoopShape, loads: CoopLoads) -> String {
        let scalar = include_str!("gemm_coop_load.wgsl");
        let (load, a, b) = match loads {
            CoopLoads::Half => (scalar, "f16", "f16"),
            CoopLoads::HalfVec => (
                include_str!("gemm_coop_load_vec.wgsl"),
                "vec4<u32>",
                "vec4<u32>",
            ),
            CoopLoads::F32Half => (scalar, "f32", "f16"),
            CoopLoads::F32 => (scalar, "f32", "f32"),
        };
        let src = include_str!("gemm_coop.wgsl")
            .replace(
                "// COMMON:",
                &format!("{}\n// (common above)", super::tune::GEMM_COMMON),
            )
            .replace("// LOAD:", &format!("{load}\n// (loads above)"))
            .replace("ATYPE", a)
            .replace("BTYPE", b);
        let side = format!("{0}x{0}", s.side);
        // Longest names first: COOP_S is a prefix of the others.
        [
            ("COOP_SIDE", side),
            ("COOP_SG", format!("{}u", s.subgroup)),
            ("COOP_S", format!("{}u", s.side)),
            ("COOP_WM", format!("{}u", self.wm)),
            ("COOP_WN", format!("{}u", self.wn)),
            ("COOP_FM", format!("{}u", self.fm)),
            ("COOP_FN", format!("{}u", self.fn_)),
            ("COOP_TK", format!("{}u", self.tk * s.side)),
        ]
        .iter()
        .fold(super::tune::with_epilogues(&src), |src, (k, v)| {
            src.replace(k, v)
        })
    }
}

/// The tilings, the smallest (it fits every adapter that has cooperative matrices) first.
pub const COOP_VARIANTS: &[CoopVariant] = &[
    CoopVariant {
        name: "coop-w2x2-f2x2-k2",
        wm: 2,
        wn: 2,
        fm: 2,
        fn_: 2,
        tk: 2,
    },
    CoopVariant {
        name: "coop-w2x2-f4x2-k2",
        wm: 2,
        wn: 2,
        fm: 4,
        fn_: 2,
        tk: 2,
    },
    CoopVariant {
        name: "coop-w2x2-f4x4-k1",
        wm: 2,
        wn: 2,
        fm: 4,
        fn_: 4,
        tk: 1,
    },
    CoopVariant {
        name: "coop-w4x2-f2x4-k2",
        wm: 4,
        wn: 2,
        fm: 2,
        fn_: 4,
        tk: 2,
    },
];

/// The tilings `info` can run with shape `s`.
pub fn fitting(info: &AdapterReport, s: CoopShape) -> Vec<CoopVariant> {
    COOP_VARIANTS
        .iter()
        .copied()
        .filter(|v| {
            v.shared_bytes(s) <= info.max_compute_workgroup_storage_size
                && v.threads(s) <= info.max_compute_invocations_per_workgroup
        })
        .collect()
}

pub fn by_name(name: &str) -> Result<CoopVariant, ComputeError> {
    COOP_VARIANTS
        .iter()
        .copied()
        .find(|v| v.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = COOP_VARIANTS.iter().map(|v| v.name).collect();
            ComputeError::Unsupported(format!(
                "no cooperative-matrix variant {name:?} (there are {})",
                names.join(", ")
            ))
        })
}

/// How a tensor-core kernel's operands are stored (they are multiplied as f16 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum CoopLoads {
    /// A and B f16, one element per load (any shape).
    Half,
    /// A and B f16, 8 halves per load (shapes aligned to 8, see `aligned_to`).
    HalfVec,
    /// f32 activations times f16 weights, A rounded to f16 as it is staged.
    F32Half,
    /// Both f32, rounded to f16 as they are staged.
    F32,
}

impl CoopLoads {
    pub const ALL: [CoopLoads; 4] = [
        CoopLoads::Half,
        CoopLoads::HalfVec,
        CoopLoads::F32Half,
        CoopLoads::F32,
    ];

    /// The loads for A and B stored as f16 (`half`) or f32, of a product `aligned` to 8.
    pub fn of(a_half: bool, b_half: bool, aligned: bool) -> Result<CoopLoads, ComputeError> {
        match (a_half, b_half) {
            (true, true) if aligned => Ok(CoopLoads::HalfVec),
            (true, true) => Ok(CoopLoads::Half),
            (false, true) => Ok(CoopLoads::F32Half),
            (false, false) => Ok(CoopLoads::F32),
            (true, false) => Err(ComputeError::Unsupported(
                "an f16 activation times f32 weights has no tensor-core kernel".into(),
            )),
        }
    }
}

/// GFLOP/s by tiling name.
pub type Rates = std::collections::BTreeMap<String, f64>;

/// The compiled cooperative-matrix gemm: its shape and tiling, and the entry points for
/// each way of loading the operands, each compiled on first use.
pub(super) struct CoopKernels {
    pub shape: CoopShape,
    pub variant: CoopVariant,
    sets: [std::sync::OnceLock<Result<super::GemmSet, String>>; 4],
}

impl CoopKernels {
    pub fn new(shape: CoopShape, variant: CoopVariant) -> CoopKernels {
        CoopKernels {
            shape,
            variant,
            sets: Default::default(),
        }
    }

    /// The entry points for `loads`, compiled on first use; an error (the driver refusing
    /// them) is kept and returned, not raised.
    pub fn set(
        &self,
        device: &wgpu::Device,
        loads: CoopLoads,
    ) -> Result<&super::GemmSet, ComputeError> {
        self.sets[loads as usize]
            .get_or_init(|| {
                let src = self.variant.source(self.shape, loads);
                super::scoped(device, || super::GemmSet::new(device, "gemm_coop", &src))
            })
            .as_ref()
            .map_err(|e| {
                ComputeError::Gpu(format!(
                    "the tensor-core kernel {} ({loads:?}) did not compile: {e}",
                    self.variant.name
                ))
            })
    }

    pub fn tile(&self) -> (usize, usize) {
        let (m, n) = self.variant.tile(self.shape);
        (m as usize, n as usize)
    }
}

impl Gpu {
    /// The cooperative-matrix shape and tiling in use, or why there is none.
    pub fn coop(&self) -> Result<(CoopShape, CoopVariant), &str> {
        match &self.kernels.gemm_coop {
            Some(k) => Ok((k.shape, k.variant)),
            None => Err(&self.coop_absent),
        }
    }

    /// Whether [`Gpu::matmul_half`] can use tensor cores.
    pub fn has_coop(&self) -> bool {
        self.kernels.gemm_coop.is_some()
    }

    /// Run every product (linear layers, attention, the LM head) on tensor cores: inputs
    /// rounded to f16 as they are staged, f32 accumulation, everything else f32. Its CPU
    /// twin is [`crate::CpuF16Products`]. Refused where the adapter has no cooperative
    /// matrices.
    pub fn set_tensor_cores(&self, on: bool) -> Result<(), ComputeError> {
        if on && !self.has_coop() {
            return Err(self.no_coop());
        }
        self.tensor_cores
            .store(on, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    pub fn tensor_cores(&self) -> bool {
        self.tensor_cores.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Use cooperative tiling `v` from now on (recompiles that kernel).
    pub fn set_coop_variant(&mut self, v: CoopVariant) -> Result<(), ComputeError> {
        let shape = self
            .coop()
            .map_err(|e| ComputeError::Unsupported(e.into()))?
            .0;
        if !fitting(&self.info, shape).contains(&v) {
            return Err(ComputeError::Unsupported(format!(
                "cooperative variant {} needs {} bytes of workgroup memory and {} invocations; {} offers {} and {}",
                v.name,
                v.shared_bytes(shape),
                v.threads(shape),
                self.info.name,
                self.info.max_compute_workgroup_storage_size,
                self.info.max_compute_invocations_per_workgroup,
            )));
        }
        if self.kernels.gemm_coop.as_ref().map(|k| k.variant) != Some(v) {
            let k = CoopKernels::new(shape, v);
            k.set(&self.device, CoopLoads::HalfVec)?;
            self.kernels.gemm_coop = Some(k);
        }
        Ok(())
    }

    fn no_coop(&self) -> ComputeError {
        ComputeError::Unsupported(format!(
            "{}: no cooperative matrices: {}",
            self.info.name, self.coop_absent
        ))
    }

    /// The tensor-core kernel for `a · b` as `g` says, with `epilogue`: its workgroup tile
    /// and the element sizes of A and B. A and B may be f16 or f32 (rounded to f16 as
    /// they are staged), except an f16 A with an f32 B.
    pub(super) fn coop_kernel(
        &self,
        a: &GpuMat,
        b: &GpuMat,
        g: &Gemm,
        epilogue: Epilogue,
    ) -> Result<super::GemmKernel<'_>, ComputeError> {
        let k = self
            .kernels
            .gemm_coop
            .as_ref()
            .ok_or_else(|| self.no_coop())?;
        let loads = CoopLoads::of(a.half, b.half, super::aligned_to(g, 8))?;
        let elem = |t: &GpuMat| if t.half { 2 } else { 4 };
        Ok(super::GemmKernel {
            kernel: k.set(&self.device, loads)?.pick(epilogue),
            tile: k.tile(),
            elems: (elem(a), elem(b)),
        })
    }

    /// Record the tensor-core gemm `g` into `c`, with the bias (and residual) epilogue when
    /// `extra` is given.
    fn coop_gemm_into(
        &self,
        a: &GpuMat,
        b: &GpuMat,
        c: &mut GpuMat,
        g: &Gemm,
        extra: Option<Extra<'_>>,
    ) -> Result<(), ComputeError> {
        let epilogue = match extra {
            None => Epilogue::None,
            Some(Extra {
                residual: Some(_), ..
            }) => Epilogue::BiasResidual,
            Some(_) => Epilogue::Bias,
        };
        self.full(&[c])?;
        let k = self.coop_kernel(a, b, g, epilogue)?;
        self.gemm_epilogue(k.kernel, k.tile, k.elems, &a.buf, &b.buf, c, g, extra)
    }

    /// `C = A · B` for A and B uploaded with [`Gpu::upload_half`]: f16 products, f32
    /// accumulation, on tensor cores (`coop`: the adapter must have cooperative matrices)
    /// or with the portable f16 gemm.
    pub fn matmul_half(&self, a: &GpuMat, b: &GpuMat, coop: bool) -> Result<GpuMat, ComputeError> {
        crate::shape::check::matmul(a.shape(), b.shape())?;
        if !(a.half && b.half) {
            return Err(ComputeError::Unsupported(
                "matmul_half takes two f16 tensors (upload_half)".into(),
            ));
        }
        let mut c = self.matrix(a.rows, b.cols, self.poisoned("C", a.rows * b.cols)?);
        let g = Gemm::dense(a.rows, a.cols, b.cols);
        if coop {
            self.coop_gemm_into(a, b, &mut c, &g, None)?;
        } else {
            let k = self.kernels.gemm_f16.as_ref().ok_or_else(|| {
                ComputeError::Unsupported(format!("{} has no SHADER_F16", self.info.name))
            })?;
            let tile = self.kernels.gemm_variant.tile();
            self.gemm_epilogue(k, tile, (2, 2), &a.buf, &b.buf, &mut c, &g, None)?;
        }
        Ok(c)
    }

    /// [`Gpu::matmul_half`] from and to the host: A and B rounded to f16 on upload.
    pub fn matmul_coop(&self, a: &Mat, b: &Mat) -> Result<Mat, ComputeError> {
        if !self.has_coop() {
            return Err(self.no_coop());
        }
        let c = self.matmul_half(&self.upload_half(a)?, &self.upload_half(b)?, true)?;
        Mat::new(c.rows, c.cols, self.read_f32(&c.buf)?)
    }

    /// Time every cooperative tiling that fits on a `size`-square product; the fastest,
    /// with each one's GFLOP/s. The Gpu keeps its current tiling.
    pub fn tune_coop(&self, size: usize) -> Result<Option<(CoopVariant, Rates)>, ComputeError> {
        let Ok((shape, _)) = self.coop() else {
            return Ok(None);
        };
        let a = self.upload_half(&Mat::random(size, size, 1))?;
        let b = self.upload_half(&Mat::random(size, size, 2))?;
        let mut c = self.alloc(size, size)?;
        let g = Gemm::dense(size, size, size);
        let flop = 2.0 * (size as f64).powi(3);
        let mut gflops = Rates::new();
        let mut best: Option<(f64, CoopVariant)> = None;
        for v in fitting(&self.info, shape) {
            // The square product is aligned: what it runs in use is the vector-load kernel.
            let src = v.source(shape, CoopLoads::HalfVec);
            let k = match super::scoped(&self.device, || {
                Kernel::gemm(&self.device, v.name, &src, "main")
            }) {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(
                        "{}: tensor-core tiling {} refused: {e}",
                        self.info.name,
                        v.name
                    );
                    continue;
                }
            };
            let (tm, tn) = v.tile(shape);
            let tile = (tm as usize, tn as usize);
            let rate = super::tune::best_rate(self, flop, || {
                self.gemm_epilogue(&k, tile, (2, 2), &a.buf, &b.buf, &mut c, &g, None)
            })?;
            gflops.insert(v.name.to_string(), rate);
            if best.is_none_or(|(r, _)| rate > r) {
                best = Some((rate, v));
            }
        }
        Ok(best.map(|(_, v)| (v, gflops)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::tests::{gpu, max_abs_err, rel_err};
    use super::*;
    use crate::{cpu, Activation, Cpu, Ops};
    use wgpu::naga;

    fn config(
        side: u32,
        ab: wgpu::CooperativeScalarType,
        cr: wgpu::CooperativeScalarType,
    ) -> wgpu::CooperativeMatrixProperties {
        wgpu::CooperativeMatrixProperties {
            m_size: side,
            n_size: side,
            k_size: side,
            ab_type: ab,
            cr_type: cr,
            saturating_accumulation: false,
        }
    }

    #[test]
    fn coop_shape_is_the_largest_square_f16_to_f32_configuration() {
        use wgpu::CooperativeScalarType::{F16, F32};
        // What lavapipe (Mesa 26) reports: 8x8x8, f16 -> f16 and f16 -> f32.
        let lavapipe = [config(8, F16, F16), config(8, F16, F32)];
        assert_eq!(
            CoopShape::choose(&lavapipe, 8, 8),
            Ok(CoopShape {
                side: 8,
                subgroup: 8
            })
        );
        // NVIDIA-like: 16x16x16 and 16x8x16 (not square: skipped), f16 -> f16 / f32.
        let mut nvidia = vec![
            config(16, F16, F16),
            config(16, F16, F32),
            config(8, F16, F32),
        ];
        nvidia.push(wgpu::CooperativeMatrixProperties {
            n_size: 8,
            ..config(16, F16, F32)
        });
        assert_eq!(
            CoopShape::choose(&nvidia, 32, 32),
            Ok(CoopShape {
                side: 16,
                subgroup: 32
            })
        );
        // f16 accumulation only: refused, the configurations named.
        let err = CoopShape::choose(&[config(16, F16, F16)], 32, 32).unwrap_err();
        assert!(err.contains("16x16x16 f16->f16"), "{err}");
        // A varying subgroup size: the kernel's subgroup blocks would not line up.
        let err = CoopShape::choose(&nvidia, 32, 64).unwrap_err();
        assert!(err.contains("32 to 64"), "{err}");
    }

    /// The kernel for every tiling, at both sides wgpu offers (8 as on lavapipe, 16 as on
    /// NVIDIA), parses, validates and compiles to SPIR-V with cooperative-matrix
    /// instructions, without any adapter. Without the capability validation refuses it,
    /// so the check can fail.
    #[test]
    fn coop_kernels_compile_to_spirv_for_both_sides() {
        let caps = naga::valid::Capabilities::COOPERATIVE_MATRIX
            | naga::valid::Capabilities::SHADER_FLOAT16
            | naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32
            | naga::valid::Capabilities::SUBGROUP;
        let flags = naga::valid::ValidationFlags::all();
        for shape in [
            CoopShape {
                side: 8,
                subgroup: 8,
            },
            CoopShape {
                side: 16,
                subgroup: 32,
            },
        ] {
            for (v, loads) in COOP_VARIANTS
                .iter()
                .flat_map(|v| CoopLoads::ALL.map(|l| (v, l)))
            {
                let src = v.source(shape, loads);
                let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
                    panic!("{} side {}: {}", v.name, shape.side, e.emit_to_string(&src))
                });
                let info = naga::valid::Validator::new(flags, caps)
                    .validate(&module)
                    .unwrap_or_else(|e| panic!("{} side {}: {e:?}", v.name, shape.side));
                let words = naga::back::spv::write_vec(
                    &module,
                    &info,
                    &naga::back::spv::Options {
                        lang_version: (1, 6),
                        ..Default::default()
                    },
                    None,
                )
                .unwrap_or_else(|e| panic!("{} side {}: {e}", v.name, shape.side));
                // OpCooperativeMatrixMulAddKHR is opcode 4459; an instruction's first word
                // holds its opcode in the low 16 bits.
                assert!(
                    words.iter().any(|w| w & 0xffff == 4459),
                    "{} side {}: no cooperative multiply-add in the SPIR-V",
                    v.name,
                    shape.side
                );
                let without = naga::valid::Validator::new(
                    flags,
                    caps - naga::valid::Capabilities::COOPERATIVE_MATRIX,
                )
                .validate(&module);
                assert!(
                    without.is_err(),
                    "{}: validated without the capability",
                    v.name
                );
            }
        }
    }

    fn round(x: &Mat) -> Mat {
        cpu::round_f16(x)
    }

    /// The adapter `gpu()` opens if it has cooperative matrices. Without them: a failure
    /// where they are required (AGORA_REQUIRE_COOP, as `scripts/lavapipe-coop test` sets),
    /// else `None` once the tensor-core calls are seen to be refused.
    pub(crate) fn coop_gpu() -> Option<Gpu> {
        let g = gpu();
        match g.coop() {
            Ok(_) => Some(g),
            Err(why) if std::env::var_os("AGORA_REQUIRE_COOP").is_some() => {
                panic!(
                    "AGORA_REQUIRE_COOP is set but {} has no cooperative gemm: {why}",
                    g.info.name
                )
            }
            Err(_) => {
                assert!(matches!(
                    g.matmul_coop(&Mat::zeros(1, 1), &Mat::zeros(1, 1)),
                    Err(ComputeError::Unsupported(_))
                ));
                assert!(matches!(
                    g.set_tensor_cores(true),
                    Err(ComputeError::Unsupported(_))
                ));
                None
            }
        }
    }

    /// f16 inputs, f32 accumulation: against the CPU product of the same rounded inputs,
    /// bound 1e-5 of the largest output (products of two f16 are exact in f32; only the
    /// order of the sums differs). Every tiling; ragged shapes against every tile (scalar
    /// loads), then shapes aligned to 8 (vector loads).
    #[test]
    fn coop_matmul_matches_the_rounded_cpu_twin() {
        let Some(mut g) = coop_gpu() else { return };
        let (shape, _) = g.coop().unwrap();
        let variants = fitting(&g.info, shape);
        eprintln!(
            "{}: side {}, {} tilings fit",
            g.info.name,
            shape.side,
            variants.len()
        );
        assert!(!variants.is_empty());
        let shapes = [
            (1, 1, 1),
            (5, 3, 7),
            (67, 129, 33),
            (3, 200, 1),
            (130, 40, 71),
            (8, 8, 8),
            (72, 136, 24),
            (130, 40, 72),
        ];
        for v in variants {
            g.set_coop_variant(v).unwrap();
            assert_eq!(g.coop().unwrap().1, v);
            for (m, k, n) in shapes {
                let a = Mat::random(m, k, 41);
                let b = Mat::random(k, n, 42);
                let got = g.matmul_coop(&a, &b).unwrap();
                let want = cpu::matmul_f16(&a, &b).unwrap();
                let e = rel_err(&got.data, &want.data);
                assert!(e < 1e-5, "{} {m}x{k}x{n}: relative error {e}", v.name);
            }
        }
        let half = g.upload_half(&Mat::random(3, 3, 1)).unwrap();
        let full = g.upload(&Mat::random(3, 3, 1)).unwrap();
        for (a, b) in [(&half, &full), (&full, &half), (&full, &full)] {
            for coop in [true, false] {
                assert!(
                    g.matmul_half(a, b, coop).is_err(),
                    "an f32 operand is refused (tensor cores {coop})"
                );
            }
        }
    }

    /// The model's attention forms (transposed, strided, batched B read out of one QKV
    /// matrix) at a ragged length (scalar loads) and one aligned to 8 (vector loads), and
    /// the bias, activation and residual epilogues at both kinds of shape, through the
    /// tensor-core kernel against the CPU twin on f16-rounded inputs.
    #[test]
    fn coop_gemm_runs_every_spec_and_epilogue() {
        let Some(g) = coop_gpu() else { return };
        let (heads, dh) = (3, 8);
        let d = heads * dh;
        for t in [21, 24] {
            let qkv = round(&Mat::random(t, 3 * d, 51));
            let p = round(&Mat::random(heads * t, t, 52));
            let (scores, mix) = crate::model::gpt::attention_gemms(0, t, d, heads);
            let gq = g.upload_half(&qkv).unwrap();
            let gp = g.upload_half(&p).unwrap();
            for (spec, a, ga, rows, cols) in
                [(scores, &qkv, &gq, heads * t, t), (mix, &p, &gp, t, d)]
            {
                let mut want = Cpu.alloc(rows, cols).unwrap();
                cpu::gemm(&spec, &a.data, &qkv.data, &mut want.data).unwrap();
                let mut got = g.alloc(rows, cols).unwrap();
                g.coop_gemm_into(ga, &gq, &mut got, &spec, None).unwrap();
                let e = rel_err(&g.download_one(&got).unwrap().data, &want.data);
                assert!(e < 1e-5, "t {t} {spec:?}: relative error {e}");
            }
        }
        for (m, k, n) in [(37, 45, 29), (40, 48, 32)] {
            let x = round(&Mat::random(m, k, 53));
            let w = round(&Mat::random(k, n, 54));
            let bias = Mat::random(1, n, 55);
            let res = Mat::random(m, n, 56);
            let (gx, gw) = (g.upload_half(&x).unwrap(), g.upload_half(&w).unwrap());
            let (gb, gr) = (g.upload(&bias).unwrap(), g.upload(&res).unwrap());
            for act in [Activation::None, Activation::Relu, Activation::Gelu] {
                for residual in [false, true] {
                    let mut want =
                        cpu::bias_act(&cpu::matmul(&x, &w).unwrap(), &bias.data, act).unwrap();
                    if residual {
                        want = cpu::add(&want, &res).unwrap();
                    }
                    let mut got = g.alloc(m, n).unwrap();
                    let extra = Extra {
                        bias: &gb.buf,
                        act: super::super::act_code(act),
                        residual: residual.then_some(&gr.buf),
                    };
                    g.coop_gemm_into(&gx, &gw, &mut got, &Gemm::dense(m, k, n), Some(extra))
                        .unwrap();
                    let e = max_abs_err(&g.download_one(&got).unwrap().data, &want.data);
                    assert!(
                        e < 1e-4,
                        "{m}x{k}x{n} {act:?} residual {residual}: max error {e}"
                    );
                }
            }
        }
    }

    /// With tensor cores on, the products a model makes go through them: f32 x f32 and
    /// f32 x f16-weight products (plain and fused linear) match the CPU on f16-rounded
    /// inputs to 1e-5, and differ from the f32 product by the rounding (more than 1e-4),
    /// so the f32 kernels were not used.
    #[test]
    fn tensor_core_mode_routes_every_product_through_the_coop_kernel() {
        let Some(g) = coop_gpu() else { return };
        let (m, k, n) = (19, 70, 23);
        let (x, w) = (Mat::random(m, k, 61), Mat::random(k, n, 62));
        let bias = Mat::random(1, n, 63);
        let twin = cpu::matmul_f16(&x, &w).unwrap();
        let f32_product = cpu::matmul(&x, &w).unwrap();
        g.set_tensor_cores(true).unwrap();
        let (gx, gb) = (g.upload(&x).unwrap(), g.upload(&bias).unwrap());
        for half in [false, true] {
            let gw = g.upload_weight(&w, half).unwrap();
            let got = g.download_one(&g.matmul(&gx, &gw).unwrap()).unwrap();
            assert!(rel_err(&got.data, &twin.data) < 1e-5, "half {half}");
            assert!(rel_err(&got.data, &f32_product.data) > 1e-4, "half {half}");
            let lin = g.linear(&gx, &gw, &gb, Activation::Relu).unwrap();
            let want = cpu::bias_act(&twin, &bias.data, Activation::Relu).unwrap();
            let e = max_abs_err(&g.download_one(&lin).unwrap().data, &want.data);
            assert!(e < 1e-5, "linear, half {half}: {e}");
        }
        g.set_tensor_cores(false).unwrap();
        let got = g
            .download_one(&g.matmul(&gx, &g.upload(&w).unwrap()).unwrap())
            .unwrap();
        assert!(
            rel_err(&got.data, &f32_product.data) < 1e-5,
            "off: the f32 kernel"
        );
    }
}
