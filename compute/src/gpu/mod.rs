//! The GPU backend over wgpu: adapters on every backend (Vulkan, Metal, DX12, GL), one
//! device, compiled kernels, and buffers reused across calls.
//!
//! Choosing a device: `AGORA_DEVICE` (or the CLI's `--device`) is `cpu`, `gpu`, an adapter
//! index from `agora compute info`, or a case-insensitive part of the adapter's name or
//! backend (`vulkan`, `llvmpipe`, `nvidia`...). Without a preference the first hardware
//! adapter wins, then any adapter; with none at all [`crate::Backend::auto`] falls back to
//! the CPU and logs why.
//!
//! Execution: every kernel (and every upload, as a copy from a staging buffer) is recorded
//! into one command encoder; nothing is submitted until a result is read back, and
//! [`Ops::download`] reads several tensors through one mapping. So a model's whole
//! forward pass is one submit and one readback. Tensors ([`GpuMat`]) hold buffers from a
//! pool keyed by power-of-two size and return them when dropped; recording order keeps
//! reuse safe, since a later command in the stream runs after every earlier one.
//!
//! Kernels, one WGSL module each (bindings and dispatch in each file's header): `gemm`
//! (f32, and f16 storage where the adapter has `SHADER_F16`; tilings autotuned, [`tune`]),
//! `gemm_coop` (tensor cores through cooperative matrices where the adapter has them,
//! [`coop`]), `fill` (NaN poisoning),
//! `elementwise` (bias + activation, add), `softmax`, `layernorm`, `reduce` (row sum,
//! max), `argmax`, `cosine`, `cross_entropy`, `matvec` (Freivalds). Size limits: every
//! buffer within the adapter's `max_storage_buffer_binding_size`, indices within u32.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use wgpu::util::DeviceExt;

use crate::shape::check;
use crate::{Activation, ComputeError, Gemm, Mat, Ops};

/// What `agora compute info` reports for an adapter.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterReport {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub vendor: u32,
    pub device: u32,
    pub driver: String,
    pub driver_info: String,
    pub shader_f16: bool,
    pub cooperative_matrix: bool,
    /// Each cooperative-matrix configuration wgpu accepts, `MxNxK ab->cr`.
    pub cooperative_matrix_configs: Vec<String>,
    /// What the tensor-core gemm would use here, or why it cannot run.
    pub cooperative_gemm: String,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
}

/// An instance on `backends`, unless `WGPU_BACKEND` says otherwise.
fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = backends;
    }
    wgpu::Instance::new(desc)
}

fn report(index: usize, adapter: &wgpu::Adapter) -> AdapterReport {
    let info = adapter.get_info();
    let limits = adapter.limits();
    let features = adapter.features();
    AdapterReport {
        index,
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        vendor: info.vendor,
        device: info.device,
        driver: info.driver,
        driver_info: info.driver_info,
        shader_f16: features.contains(wgpu::Features::SHADER_F16),
        cooperative_matrix: features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
        cooperative_matrix_configs: coop::describe(&adapter.cooperative_matrix_properties()),
        cooperative_gemm: match coop::CoopShape::probe(adapter) {
            Ok(s) => format!(
                "{0}x{0} f16 -> f32 matrices, subgroups of {1}",
                s.side, s.subgroup
            ),
            Err(why) => format!("unavailable: {why}"),
        },
        subgroup_min_size: info.subgroup_min_size,
        subgroup_max_size: info.subgroup_max_size,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
    }
}

/// Every adapter on every enabled backend, in wgpu's order.
pub fn enumerate() -> Vec<AdapterReport> {
    let adapters = pollster::block_on(
        instance(wgpu::Backends::all()).enumerate_adapters(wgpu::Backends::all()),
    );
    adapters
        .iter()
        .enumerate()
        .map(|(i, a)| report(i, a))
        .collect()
}

/// Pick an adapter by preference (index, or part of its name/backend/type), else the
/// first non-CPU adapter, else any.
fn choose(adapters: Vec<wgpu::Adapter>, pref: Option<&str>) -> Result<wgpu::Adapter, ComputeError> {
    if adapters.is_empty() {
        return Err(ComputeError::NoAdapter(
            "wgpu found no adapter on any backend (install a Vulkan driver, e.g. Debian's mesa-vulkan-drivers)".into(),
        ));
    }
    let described: Vec<(wgpu::Adapter, String)> = adapters
        .into_iter()
        .map(|a| {
            let i = a.get_info();
            let text = format!("{} {:?} {:?}", i.name, i.backend, i.device_type).to_lowercase();
            (a, text)
        })
        .collect();
    let pick = match pref.map(str::to_lowercase).as_deref() {
        None | Some("") | Some("gpu") | Some("auto") => described
            .iter()
            .position(|(_, t)| !t.contains("cpu"))
            .unwrap_or(0),
        Some(p) => match p.parse::<usize>() {
            Ok(i) if i < described.len() => i,
            Ok(i) => {
                return Err(ComputeError::NoAdapter(format!(
                    "adapter index {i} out of range ({} found)",
                    described.len()
                )))
            }
            Err(_) => described
                .iter()
                .position(|(_, t)| t.contains(p))
                .ok_or_else(|| {
                    let names: Vec<&str> = described.iter().map(|(_, t)| t.as_str()).collect();
                    ComputeError::NoAdapter(format!(
                        "no adapter matches {p:?}; found: {}",
                        names.join("; ")
                    ))
                })?,
        },
    };
    described
        .into_iter()
        .nth(pick)
        .map(|(a, _)| a)
        .ok_or_else(|| ComputeError::NoAdapter("adapter vanished".into()))
}

/// Run `f` (compiling kernels) with wgpu's validation and internal errors caught, rather
/// than sent to the device's handler (which panics): `Err` names the first one.
fn scoped<T>(device: &wgpu::Device, f: impl FnOnce() -> T) -> Result<T, String> {
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
    let out = f();
    let errors = [
        pollster::block_on(internal.pop()),
        pollster::block_on(validation.pop()),
    ];
    match errors.into_iter().flatten().next() {
        Some(e) => Err(e.to_string()),
        None => Ok(out),
    }
}

/// A device on `adapter` with `features`, and the adapter's own limits.
fn request_device(
    adapter: &wgpu::Adapter,
    features: wgpu::Features,
) -> Result<(wgpu::Device, wgpu::Queue), wgpu::RequestDeviceError> {
    let experimental = if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        // SAFETY: wgpu asks callers of experimental features to accept that their
        // implementation may have bugs. The only experimental feature requested is
        // cooperative matrices, used by one kernel (`gemm_coop.wgsl`) whose every output is
        // checked against the CPU twin in the tests, on an adapter that offers them.
        #[allow(unsafe_code)]
        unsafe {
            wgpu::ExperimentalFeatures::enabled()
        }
    } else {
        wgpu::ExperimentalFeatures::disabled()
    };
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("agora-compute"),
        required_features: features,
        required_limits: adapter.limits(),
        experimental_features: experimental,
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
}

/// A GPU device, its compiled kernels, the command stream being recorded, and a pool of
/// reusable buffers.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pub info: AdapterReport,
    kernels: Kernels,
    gemm_chosen: tune::Chosen,
    /// Why there is no cooperative-matrix gemm (empty when there is one).
    coop_absent: String,
    /// Every product on tensor cores ([`Gpu::set_tensor_cores`]).
    tensor_cores: std::sync::atomic::AtomicBool,
    pool: Arc<Pool>,
    encoder: Mutex<Option<wgpu::CommandEncoder>>,
}

struct Kernels {
    gemm_variant: tune::GemmVariant,
    /// f32 x f32 with scalar loads (any shape).
    gemm: GemmSet,
    /// f32 x f32 with vec4 loads, for shapes aligned to 4 elements.
    gemm_v4: GemmSet,
    /// f16 x f16 (`matmul_f16`).
    gemm_f16: Option<Kernel>,
    /// f32 activations times f16 weights.
    gemm_w16: Option<GemmSet>,
    /// f16 x f16 on tensor cores, where the adapter has cooperative matrices.
    gemm_coop: Option<coop::CoopKernels>,
    fill: Kernel,
    bias_act: Kernel,
    add: Kernel,
    softmax: Kernel,
    layernorm: Kernel,
    row_sum: Kernel,
    row_max: Kernel,
    argmax: Kernel,
    cosine: Kernel,
    cross_entropy: Kernel,
    matvec: Kernel,
}

/// A compute pipeline and the layout of its bindings.
struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    name: &'static str,
}

impl Kernel {
    fn new(device: &wgpu::Device, name: &'static str, source: &str, entry: &str) -> Kernel {
        Kernel::compile(device, name, source, entry, true)
    }

    /// A gemm kernel, compiled for speed in two ways, both sound for the gemm sources:
    ///
    /// - Without wgpu's zeroing of workgroup memory at the start of every workgroup (a pass
    ///   over the tiles and a barrier each time): every gemm stores each tile element it
    ///   reads (zero outside the matrices) before reading it.
    /// - Without the counter naga adds to every loop to force termination (it keeps driver
    ///   compilers from unrolling the register-blocked inner loops; without it the f32 gemm
    ///   ran 1.5x faster on Mesa 22's lavapipe and 4.7x on Mesa 26's, while bounds checks
    ///   made no measurable difference, so those stay). Every gemm loop runs to a bound fixed before it starts: constants, the
    ///   subgroup's share of a tile, or k in steps of the tile depth, where k is below
    ///   2^31 (its operands fit a storage binding), so the step never wraps.
    fn gemm(device: &wgpu::Device, name: &'static str, source: &str, entry: &str) -> Kernel {
        Kernel::compile(device, name, source, entry, false)
    }

    fn compile(
        device: &wgpu::Device,
        name: &'static str,
        source: &str,
        entry: &str,
        checked: bool,
    ) -> Kernel {
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        let module = if checked {
            device.create_shader_module(desc)
        } else {
            let checks = wgpu::ShaderRuntimeChecks {
                force_loop_bounding: false,
                ..wgpu::ShaderRuntimeChecks::checked()
            };
            // SAFETY: only the loop-termination counters are left out, and only for the
            // gemm kernels ([`Kernel::gemm`]), whose every loop terminates (see there).
            // Bounds checks, and every other check, stay on.
            #[allow(unsafe_code)]
            unsafe {
                device.create_shader_module_trusted(desc, checks)
            }
        };
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                zero_initialize_workgroup_memory: checked,
                ..Default::default()
            },
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        Kernel {
            pipeline,
            layout,
            name,
        }
    }
}

impl Kernels {
    fn new(device: &wgpu::Device, f16: bool) -> Kernels {
        let rows = |body: &str| format!("{}\n{body}", include_str!("rows.wgsl"));
        let elementwise = include_str!("elementwise.wgsl");
        let reduce = rows(include_str!("reduce.wgsl"));
        let v = tune::GEMM_VARIANTS[0];
        Kernels {
            gemm_variant: v,
            gemm: GemmSet::new(device, "gemm", &v.source("f32")),
            gemm_v4: GemmSet::new(device, "gemm_v4", &v.source_vec4()),
            gemm_f16: f16.then(|| Kernel::gemm(device, "gemm_f16", &v.source("f16"), "main")),
            gemm_w16: f16.then(|| GemmSet::new(device, "gemm_w16", &v.source_mixed("f32", "f16"))),
            gemm_coop: None,
            fill: Kernel::new(device, "fill", include_str!("fill.wgsl"), "main"),
            bias_act: Kernel::new(device, "bias_act", elementwise, "bias_act"),
            add: Kernel::new(device, "add", elementwise, "add"),
            softmax: Kernel::new(
                device,
                "softmax",
                &rows(include_str!("softmax.wgsl")),
                "main",
            ),
            layernorm: Kernel::new(
                device,
                "layernorm",
                &rows(include_str!("layernorm.wgsl")),
                "main",
            ),
            row_sum: Kernel::new(device, "row_sum", &reduce, "row_sum"),
            row_max: Kernel::new(device, "row_max", &reduce, "row_max"),
            argmax: Kernel::new(device, "argmax", &rows(include_str!("argmax.wgsl")), "main"),
            cosine: Kernel::new(device, "cosine", &rows(include_str!("cosine.wgsl")), "main"),
            cross_entropy: Kernel::new(
                device,
                "cross_entropy",
                &rows(include_str!("cross_entropy.wgsl")),
                "main",
            ),
            matvec: Kernel::new(device, "matvec", &rows(include_str!("matvec.wgsl")), "main"),
        }
    }

    /// Recompile the gemm kernels (f32, and f16 where present) for tiling `v`.
    fn set_gemm(&mut self, device: &wgpu::Device, v: tune::GemmVariant) {
        if v == self.gemm_variant {
            return;
        }
        self.gemm = GemmSet::new(device, "gemm", &v.source("f32"));
        self.gemm_v4 = GemmSet::new(device, "gemm_v4", &v.source_vec4());
        if self.gemm_f16.is_some() {
            self.gemm_f16 = Some(Kernel::gemm(device, "gemm_f16", &v.source("f16"), "main"));
            self.gemm_w16 = Some(GemmSet::new(
                device,
                "gemm_w16",
                &v.source_mixed("f32", "f16"),
            ));
        }
        self.gemm_variant = v;
    }
}

/// One gemm source's three entry points.
struct GemmSet {
    plain: Kernel,
    /// With a bias and activation epilogue: a linear layer in one pass.
    bias: Kernel,
    /// The same plus a residual: a linear layer and its skip connection in one pass.
    bias_res: Kernel,
}

impl GemmSet {
    fn new(device: &wgpu::Device, name: &'static str, src: &str) -> GemmSet {
        GemmSet {
            plain: Kernel::gemm(device, name, src, "main"),
            bias: Kernel::gemm(device, name, src, "main_bias"),
            bias_res: Kernel::gemm(device, name, src, "main_bias_res"),
        }
    }

    fn pick(&self, epilogue: Epilogue) -> &Kernel {
        match epilogue {
            Epilogue::None => &self.plain,
            Epilogue::Bias => &self.bias,
            Epilogue::BiasResidual => &self.bias_res,
        }
    }
}

/// A compiled gemm ready to record: the kernel, its workgroup tile of C (rows x columns),
/// and the bytes per element of A and B.
struct GemmKernel<'a> {
    kernel: &'a Kernel,
    tile: (usize, usize),
    elems: (u64, u64),
}

/// A bias epilogue's operands: the bias row, the activation code (0 none, 1 ReLU,
/// 2 GELU), and a residual laid out like C.
#[derive(Clone, Copy)]
struct Extra<'a> {
    bias: &'a Pooled,
    act: u32,
    residual: Option<&'a Pooled>,
}

/// What a gemm does after the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Epilogue {
    None,
    Bias,
    BiasResidual,
}

/// Whether every A and B offset, leading dimension and batch stride of `g`, and k (and n
/// unless B is transposed), are multiples of `elems`: vectors of that many elements never
/// straddle a matrix edge (4 for the f32 vec4 loads, 8 for the tensor-core kernel's
/// 8-half loads).
fn aligned_to(g: &Gemm, elems: usize) -> bool {
    let fits = |x: usize| x.is_multiple_of(elems);
    [g.a, g.b]
        .iter()
        .all(|v| fits(v.offset) && fits(v.ld) && (g.batch <= 1 || fits(v.batch_stride)))
        && fits(g.k)
        && (g.trans_b || fits(g.n))
}

/// Free buffers by size class. At most [`POOL_DEPTH`] are kept per class.
#[derive(Default)]
struct Pool {
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
}

const POOL_DEPTH: usize = 16;

/// Every tensor buffer has the same usage, so any free buffer of a class fits any tensor.
const TENSOR: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// A pooled buffer holding `bytes` meaningful bytes; back to the pool when dropped.
struct Pooled {
    buf: Option<wgpu::Buffer>,
    bytes: u64,
    pool: Arc<Pool>,
}

impl Pooled {
    fn buffer(&self) -> Result<&wgpu::Buffer, ComputeError> {
        self.buf
            .as_ref()
            .ok_or_else(|| ComputeError::Gpu("buffer already released".into()))
    }

    /// The binding: the meaningful bytes rounded up to 4, at least 4 (wgpu refuses empty
    /// or unaligned storage bindings).
    fn binding(&self) -> Result<wgpu::BindingResource<'_>, ComputeError> {
        Ok(wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer()?,
            offset: 0,
            size: wgpu::BufferSize::new(self.bytes.next_multiple_of(4).max(4)),
        }))
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let (Some(b), Ok(mut free)) = (self.buf.take(), self.pool.free.lock()) {
            let class = free.entry(b.size()).or_default();
            if class.len() < POOL_DEPTH {
                class.push(b);
            }
        }
    }
}

/// The buffer size for `bytes`: power-of-two classes (at least 16) reuse well; where that
/// would pass the adapter's largest buffer, the exact size rounded up to 4.
fn size_class(bytes: u64, max_buffer: u64) -> u64 {
    let class = bytes.max(16).next_power_of_two();
    if class > max_buffer {
        bytes.next_multiple_of(4)
    } else {
        class
    }
}

/// A row-major f32 matrix in GPU memory.
pub struct GpuMat {
    pub rows: usize,
    pub cols: usize,
    buf: Pooled,
    /// Stored as f16 ([`Gpu::upload_half`]): only a gemm's B operand (model weights) may be.
    half: bool,
}

impl GpuMat {
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
}

/// Workgroups for `groups` one-dimensional groups, folded into (x, y) within the limit.
fn grid(groups: usize, max: u32) -> Result<[u32; 3], ComputeError> {
    let max = max.max(1) as usize;
    let x = groups.clamp(1, max);
    let y = groups.div_ceil(x).max(1);
    if y > max {
        return Err(ComputeError::Shape(format!(
            "{groups} workgroups exceed the adapter's {max} x {max} grid"
        )));
    }
    Ok([x as u32, y as u32, 1])
}

fn u32_of(what: &str, v: usize) -> Result<u32, ComputeError> {
    u32::try_from(v).map_err(|_| ComputeError::Shape(format!("{what} = {v} exceeds u32")))
}

impl Gpu {
    /// Open the adapter `pref` chooses (see the module docs).
    pub fn open(pref: Option<&str>) -> Result<Gpu, ComputeError> {
        // GL is probed only when asked for (by name, or by an index into `enumerate`'s
        // list) or when no primary backend (Vulkan, Metal, DX12) has an adapter: probing
        // it makes Mesa's EGL print errors on headless machines.
        let every = pref
            .is_some_and(|p| p.to_lowercase().contains("gl") || p.trim().parse::<usize>().is_ok());
        let mut adapters = Vec::new();
        if !every {
            let inst = instance(wgpu::Backends::PRIMARY);
            adapters = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::PRIMARY));
        }
        if adapters.is_empty() {
            let inst = instance(wgpu::Backends::all());
            adapters = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
        }
        let adapter = choose(adapters, pref)?;
        let info = report(0, &adapter);
        let f16 = adapter.features() & wgpu::Features::SHADER_F16;
        let mut coop = coop::CoopShape::probe(&adapter);
        let opened = match coop {
            Ok(_) => {
                let with = f16
                    | wgpu::Features::SUBGROUP
                    | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
                match request_device(&adapter, with) {
                    Ok(d) => Ok(d),
                    Err(e) => {
                        tracing::warn!("{}: no device with cooperative matrices ({e}); using the portable gemm", info.name);
                        coop = Err(format!("request_device refused it: {e}"));
                        request_device(&adapter, f16)
                    }
                }
            }
            Err(_) => request_device(&adapter, f16),
        };
        let (device, queue) = opened
            .map_err(|e| ComputeError::Gpu(format!("request_device on {}: {e}", info.name)))?;
        let mut kernels = Kernels::new(&device, !f16.is_empty());
        if let Ok(shape) = coop {
            // An experimental feature: a driver may still refuse the kernel. Then the
            // portable gemm is used, and `compute info` / `coop()` say why.
            let k = coop::CoopKernels::new(shape, coop::COOP_VARIANTS[0]);
            match k.set(&device, coop::CoopLoads::HalfVec) {
                Ok(_) => kernels.gemm_coop = Some(k),
                Err(e) => {
                    tracing::warn!("{}: tensor-core gemm unavailable: {e}", info.name);
                    coop = Err(e.to_string());
                }
            }
        }
        let mut gpu = Gpu {
            device,
            queue,
            info,
            kernels,
            gemm_chosen: tune::Chosen::Default,
            coop_absent: coop.err().unwrap_or_default(),
            tensor_cores: Default::default(),
            pool: Arc::default(),
            encoder: Mutex::new(None),
        };
        gpu.choose_gemm()?;
        Ok(gpu)
    }

    /// Whether [`Gpu::matmul_f16`] is available (the adapter has `SHADER_F16`).
    pub fn has_f16(&self) -> bool {
        self.kernels.gemm_f16.is_some()
    }

    fn check_size(&self, what: &str, bytes: u64) -> Result<(), ComputeError> {
        let max = self
            .info
            .max_storage_buffer_binding_size
            .min(self.info.max_buffer_size);
        if bytes > max {
            return Err(ComputeError::Shape(format!(
                "{what} needs {bytes} bytes, the adapter binds at most {max}"
            )));
        }
        Ok(())
    }

    /// A tensor buffer of at least `bytes`, from the pool when one of its class is free.
    fn buffer(&self, what: &str, bytes: u64) -> Result<Pooled, ComputeError> {
        self.check_size(what, bytes)?;
        let size = size_class(bytes, self.info.max_buffer_size);
        let reused = self
            .pool
            .free
            .lock()
            .ok()
            .and_then(|mut free| free.get_mut(&size)?.pop());
        let buf = reused.unwrap_or_else(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size,
                usage: TENSOR,
                mapped_at_creation: false,
            })
        });
        Ok(Pooled {
            buf: Some(buf),
            bytes,
            pool: self.pool.clone(),
        })
    }

    /// Run `f` on the encoder being recorded (starting one if none is).
    fn record<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> Result<R, ComputeError> {
        let mut slot = self
            .encoder
            .lock()
            .map_err(|_| ComputeError::Gpu("encoder lock poisoned".into()))?;
        let enc = slot.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        Ok(f(enc))
    }

    /// Submit everything recorded so far.
    pub fn flush(&self) -> Result<(), ComputeError> {
        let enc = self
            .encoder
            .lock()
            .map_err(|_| ComputeError::Gpu("encoder lock poisoned".into()))?
            .take();
        if let Some(enc) = enc {
            self.queue.submit([enc.finish()]);
        }
        Ok(())
    }

    /// Upload raw bytes (zero-padded to 4) through a staging copy in the command stream.
    fn upload_bytes(&self, what: &str, bytes: &[u8]) -> Result<Pooled, ComputeError> {
        let buf = self.buffer(what, bytes.len() as u64)?;
        if !bytes.is_empty() {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().next_multiple_of(4), 0);
            let staging = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("upload"),
                    contents: &padded,
                    usage: wgpu::BufferUsages::COPY_SRC,
                });
            let dst = buf.buffer()?;
            self.record(|enc| enc.copy_buffer_to_buffer(&staging, 0, dst, 0, padded.len() as u64))?;
        }
        Ok(buf)
    }

    /// Record one dispatch of `k`: binding 0 is `params` (a uniform), then `bufs` in order.
    fn dispatch(
        &self,
        k: &Kernel,
        params: &[u32],
        bufs: &[&Pooled],
        groups: [u32; 3],
    ) -> Result<(), ComputeError> {
        let mut words = params.to_vec();
        words.resize(params.len().next_multiple_of(4).max(4), 0);
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(k.name),
                contents: bytemuck::cast_slice(&words),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for (i, b) in bufs.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.binding()?,
            });
        }
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(k.name),
            layout: &k.layout,
            entries: &entries,
        });
        self.record(|enc| {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(k.name),
                timestamp_writes: None,
            });
            pass.set_pipeline(&k.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        })
    }

    fn groups(&self, n: usize) -> Result<[u32; 3], ComputeError> {
        grid(n, self.info.max_compute_workgroups_per_dimension)
    }

    /// A buffer of `n` f32s, every one NaN (recorded in the stream, so it lands before any
    /// later kernel writes).
    fn poisoned(&self, what: &str, n: usize) -> Result<Pooled, ComputeError> {
        let buf = self.buffer(what, (n as u64) * 4)?;
        if n > 0 {
            let groups = self.groups(n.div_ceil(256))?;
            self.dispatch(
                &self.kernels.fill,
                &[u32_of("elements", n)?, f32::NAN.to_bits()],
                &[&buf],
                groups,
            )?;
        }
        Ok(buf)
    }

    /// Submit, then read the meaningful bytes of each buffer through one mapping.
    fn read(&self, bufs: &[&Pooled]) -> Result<Vec<Vec<u8>>, ComputeError> {
        let total: u64 = bufs.iter().map(|b| b.bytes.next_multiple_of(4)).sum();
        if total == 0 {
            self.flush()?;
            return Ok(bufs.iter().map(|_| Vec::new()).collect());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: total.next_multiple_of(8),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut at = 0;
        for b in bufs {
            let len = b.bytes.next_multiple_of(4);
            if len > 0 {
                let src = b.buffer()?;
                self.record(|enc| enc.copy_buffer_to_buffer(src, 0, &staging, at, len))?;
            }
            at += len;
        }
        self.flush()?;
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| ComputeError::Gpu(format!("poll: {e}")))?;
        rx.recv()
            .map_err(|e| ComputeError::Gpu(format!("map callback lost: {e}")))?
            .map_err(|e| ComputeError::Gpu(format!("map: {e}")))?;
        let view = slice
            .get_mapped_range()
            .map_err(|e| ComputeError::Gpu(format!("mapped range: {e}")))?;
        let mut out = Vec::with_capacity(bufs.len());
        let mut at = 0usize;
        for b in bufs {
            let len = b.bytes as usize;
            out.push(view.get(at..at + len).unwrap_or_default().to_vec());
            at += len.next_multiple_of(4);
        }
        drop(view);
        staging.unmap();
        Ok(out)
    }

    fn read_f32(&self, buf: &Pooled) -> Result<Vec<f32>, ComputeError> {
        let bytes = self.read(&[buf])?.pop().unwrap_or_default();
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn matrix(&self, rows: usize, cols: usize, buf: Pooled) -> GpuMat {
        GpuMat {
            rows,
            cols,
            buf,
            half: false,
        }
    }

    /// `C = A · B` with A and B stored as f16 (rounded to nearest on upload) and f32
    /// accumulation: half the memory traffic of f32. Needs `SHADER_F16`.
    pub fn matmul_f16(&self, a: &Mat, b: &Mat) -> Result<Mat, ComputeError> {
        let k = self.kernels.gemm_f16.as_ref().ok_or_else(|| {
            ComputeError::Unsupported(format!("{} has no SHADER_F16", self.info.name))
        })?;
        check::matmul(a.shape(), b.shape())?;
        let halves = |m: &Mat| -> Vec<u8> {
            m.data
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_bits().to_le_bytes())
                .collect()
        };
        let ga = self.upload_bytes("A", &halves(a))?;
        let gb = self.upload_bytes("B", &halves(b))?;
        let mut c = self.matrix(a.rows, b.cols, self.poisoned("C", a.rows * b.cols)?);
        let tile = self.kernels.gemm_variant.tile();
        self.gemm_with(
            k,
            tile,
            2,
            &ga,
            &gb,
            &mut c,
            &Gemm::dense(a.rows, a.cols, b.cols),
        )?;
        Mat::new(c.rows, c.cols, self.read_f32(&c.buf)?)
    }

    /// Record `k` (a gemm compiled for a workgroup tile of C of `tile` rows x columns;
    /// `elem` bytes per A and B element) for `g`.
    #[allow(clippy::too_many_arguments)]
    fn gemm_with(
        &self,
        k: &Kernel,
        tile: (usize, usize),
        elem: u64,
        a: &Pooled,
        b: &Pooled,
        c: &mut GpuMat,
        g: &Gemm,
    ) -> Result<(), ComputeError> {
        self.gemm_epilogue(k, tile, (elem, elem), a, b, c, g, None)
    }

    /// [`Gpu::gemm_with`], with the buffers of a bias epilogue (`main_bias`, or
    /// `main_bias_res` with a residual).
    #[allow(clippy::too_many_arguments)]
    fn gemm_epilogue(
        &self,
        k: &Kernel,
        (tm, tn): (usize, usize),
        (a_elem, b_elem): (u64, u64),
        a: &Pooled,
        b: &Pooled,
        c: &mut GpuMat,
        g: &Gemm,
        extra: Option<Extra<'_>>,
    ) -> Result<(), ComputeError> {
        g.check(
            (a.bytes / a_elem) as usize,
            (b.bytes / b_elem) as usize,
            c.rows * c.cols,
        )?;
        if g.is_empty() {
            return Ok(());
        }
        let max = self.info.max_compute_workgroups_per_dimension as usize;
        if g.m.div_ceil(tm) > max || g.n.div_ceil(tn) > max || g.batch > max {
            return Err(ComputeError::Shape(format!(
                "gemm {}x{}x{} (batch {}) needs more than {max} workgroups per dimension",
                g.m, g.k, g.n, g.batch
            )));
        }
        let u = |what, v| u32_of(what, v);
        let params = [
            u("m", g.m)?,
            u("k", g.k)?,
            u("n", g.n)?,
            u32::from(g.trans_b),
            u("A offset", g.a.offset)?,
            u("lda", g.a.ld)?,
            u("A batch stride", g.a.batch_stride)?,
            g.alpha.to_bits(),
            u("B offset", g.b.offset)?,
            u("ldb", g.b.ld)?,
            u("B batch stride", g.b.batch_stride)?,
            extra.map_or(0, |e| e.act),
            u("C offset", g.c.offset)?,
            u("ldc", g.c.ld)?,
            u("C batch stride", g.c.batch_stride)?,
            0,
        ];
        let groups = [
            g.n.div_ceil(tn) as u32,
            g.m.div_ceil(tm) as u32,
            g.batch as u32,
        ];
        let mut bufs = vec![a, b, &c.buf];
        if let Some(e) = extra {
            bufs.push(e.bias);
            bufs.extend(e.residual);
        }
        self.dispatch(k, &params, &bufs, groups)
    }

    /// One f32 per row of `x`, from a row kernel (`rows` groups of 64).
    fn per_row(&self, k: &Kernel, x: &GpuMat, extra: &[&Pooled]) -> Result<Pooled, ComputeError> {
        self.full(&[x])?;
        let out = self.poisoned("row results", x.rows)?;
        if x.rows > 0 {
            let mut bufs = vec![&x.buf];
            bufs.extend_from_slice(extra);
            bufs.push(&out);
            let params = [u32_of("rows", x.rows)?, u32_of("cols", x.cols)?];
            self.dispatch(k, &params, &bufs, self.groups(x.rows)?)?;
        }
        Ok(out)
    }

    /// `y = M · v` (or `|M| · v`) with Kahan-compensated f32 sums; `v` is `cols × 1`.
    pub fn matvec(&self, m: &GpuMat, v: &GpuMat, absolute: bool) -> Result<GpuMat, ComputeError> {
        self.full(&[m, v])?;
        if v.rows != m.cols || v.cols != 1 {
            return Err(ComputeError::Shape(format!(
                "matvec: {}x{} times {}x{}",
                m.rows, m.cols, v.rows, v.cols
            )));
        }
        let out = self.poisoned("matvec", m.rows)?;
        if m.rows > 0 {
            let params = [
                u32_of("rows", m.rows)?,
                u32_of("cols", m.cols)?,
                u32::from(absolute),
                1.0f32.to_bits(),
            ];
            let groups = self.groups(m.rows)?;
            self.dispatch(
                &self.kernels.matvec,
                &params,
                &[&m.buf, &v.buf, &out],
                groups,
            )?;
        }
        Ok(self.matrix(m.rows, 1, out))
    }
}

impl Gpu {
    /// Refuse f16 tensors where a kernel reads f32 (only a gemm's B may be f16).
    fn full(&self, ts: &[&GpuMat]) -> Result<(), ComputeError> {
        if ts.iter().any(|t| t.half) {
            return Err(ComputeError::Unsupported(
                "an f16 tensor (half weights) can only be the weight operand of a product".into(),
            ));
        }
        Ok(())
    }

    /// The gemm kernel for `a · b` (f32 x f32, or f32 x f16 weights; on tensor cores, with
    /// the inputs rounded to f16, when [`Gpu::set_tensor_cores`] is on), with or without
    /// the bias epilogue.
    fn gemm_kernel(
        &self,
        a: &GpuMat,
        b: &GpuMat,
        c: &GpuMat,
        g: &Gemm,
        epilogue: Epilogue,
    ) -> Result<GemmKernel<'_>, ComputeError> {
        self.full(&[a, c])?;
        if self.tensor_cores() {
            return self.coop_kernel(a, b, g, epilogue);
        }
        let tile = self.kernels.gemm_variant.tile();
        let (set, elems) = match (b.half, &self.kernels.gemm_w16) {
            (false, _) if aligned_to(g, 4) => (&self.kernels.gemm_v4, (4, 4)),
            (false, _) => (&self.kernels.gemm, (4, 4)),
            (true, Some(w16)) => (w16, (4, 2)),
            (true, None) => {
                return Err(ComputeError::Unsupported(format!(
                    "{} has no SHADER_F16",
                    self.info.name
                )))
            }
        };
        Ok(GemmKernel {
            kernel: set.pick(epilogue),
            tile,
            elems,
        })
    }

    /// Upload `m` stored as f16 (rounded to nearest), for use as model weights: the B
    /// operand of products, half the memory and traffic of f32. Needs `SHADER_F16`.
    pub fn upload_half(&self, m: &Mat) -> Result<GpuMat, ComputeError> {
        if !self.has_f16() {
            return Err(ComputeError::Unsupported(format!(
                "{} has no SHADER_F16",
                self.info.name
            )));
        }
        let bytes: Vec<u8> = m
            .data
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_bits().to_le_bytes())
            .collect();
        let buf = self.upload_bytes("half upload", &bytes)?;
        Ok(GpuMat {
            rows: m.rows,
            cols: m.cols,
            buf,
            half: true,
        })
    }
}

impl Gpu {
    /// `act(x · w + bias)`, plus `residual` when given, as one gemm.
    fn fused_linear(
        &self,
        x: &GpuMat,
        w: &GpuMat,
        bias: &GpuMat,
        act: Activation,
        residual: Option<&GpuMat>,
    ) -> Result<GpuMat, ComputeError> {
        check::matmul(x.shape(), w.shape())?;
        check::row("bias", bias.shape(), w.cols)?;
        self.full(&[bias])?;
        if let Some(r) = residual {
            self.full(&[r])?;
        }
        let mut c = self.alloc(x.rows, w.cols)?;
        let g = Gemm::dense(x.rows, x.cols, w.cols);
        let epilogue = if residual.is_some() {
            Epilogue::BiasResidual
        } else {
            Epilogue::Bias
        };
        let k = self.gemm_kernel(x, w, &c, &g, epilogue)?;
        let extra = Extra {
            bias: &bias.buf,
            act: act_code(act),
            residual: residual.map(|r| &r.buf),
        };
        self.gemm_epilogue(
            k.kernel,
            k.tile,
            k.elems,
            &x.buf,
            &w.buf,
            &mut c,
            &g,
            Some(extra),
        )?;
        Ok(c)
    }
}

fn act_code(act: Activation) -> u32 {
    match act {
        Activation::None => 0,
        Activation::Relu => 1,
        Activation::Gelu => 2,
    }
}

impl Ops for Gpu {
    type Tensor = GpuMat;

    fn name(&self) -> String {
        format!("{} ({})", self.info.name, self.info.backend)
    }

    fn upload(&self, m: &Mat) -> Result<GpuMat, ComputeError> {
        let buf = self.upload_bytes("upload", bytemuck::cast_slice(&m.data))?;
        Ok(self.matrix(m.rows, m.cols, buf))
    }

    fn upload_weight(&self, m: &Mat, half: bool) -> Result<GpuMat, ComputeError> {
        if half {
            self.upload_half(m)
        } else {
            self.upload(m)
        }
    }

    fn download(&self, ts: &[&GpuMat]) -> Result<Vec<Mat>, ComputeError> {
        let bufs: Vec<&Pooled> = ts.iter().map(|t| &t.buf).collect();
        self.read(&bufs)?
            .into_iter()
            .zip(ts)
            .map(|(bytes, t)| {
                let data = if t.half {
                    bytes
                        .chunks_exact(2)
                        .take(t.rows * t.cols)
                        .map(|h| half::f16::from_bits(u16::from_le_bytes([h[0], h[1]])).to_f32())
                        .collect()
                } else {
                    bytemuck::pod_collect_to_vec(&bytes)
                };
                Mat::new(t.rows, t.cols, data)
            })
            .collect()
    }

    fn shape(&self, t: &GpuMat) -> (usize, usize) {
        t.shape()
    }

    fn sync(&self) -> Result<(), ComputeError> {
        self.flush()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| ComputeError::Gpu(format!("poll: {e}")))
    }

    fn alloc(&self, rows: usize, cols: usize) -> Result<GpuMat, ComputeError> {
        let n = rows
            .checked_mul(cols)
            .ok_or_else(|| ComputeError::Shape(format!("{rows}x{cols} overflows")))?;
        Ok(self.matrix(rows, cols, self.poisoned("tensor", n)?))
    }

    fn gemm_into(
        &self,
        a: &GpuMat,
        b: &GpuMat,
        c: &mut GpuMat,
        g: &Gemm,
    ) -> Result<(), ComputeError> {
        let k = self.gemm_kernel(a, b, c, g, Epilogue::None)?;
        self.gemm_epilogue(k.kernel, k.tile, k.elems, &a.buf, &b.buf, c, g, None)
    }

    fn bias_act(&self, x: &GpuMat, bias: &GpuMat, act: Activation) -> Result<GpuMat, ComputeError> {
        check::row("bias", bias.shape(), x.cols)?;
        self.elementwise(&self.kernels.bias_act, x, bias, act_code(act))
    }

    /// One pass: the gemm writes `act(x · w + bias)` (no separate bias kernel, no second
    /// pass over the output).
    fn linear(
        &self,
        x: &GpuMat,
        w: &GpuMat,
        bias: &GpuMat,
        act: Activation,
    ) -> Result<GpuMat, ComputeError> {
        self.fused_linear(x, w, bias, act, None)
    }

    /// One pass: `residual + (x · w + bias)`.
    fn linear_residual(
        &self,
        x: &GpuMat,
        w: &GpuMat,
        bias: &GpuMat,
        residual: &GpuMat,
    ) -> Result<GpuMat, ComputeError> {
        check::same("residual", residual.shape(), (x.rows, w.cols))?;
        self.fused_linear(x, w, bias, Activation::None, Some(residual))
    }

    fn add(&self, x: &GpuMat, y: &GpuMat) -> Result<GpuMat, ComputeError> {
        check::same("add", x.shape(), y.shape())?;
        self.elementwise(&self.kernels.add, x, y, 0)
    }

    fn softmax(
        &self,
        x: &GpuMat,
        scale: f32,
        causal: Option<usize>,
    ) -> Result<GpuMat, ComputeError> {
        self.full(&[x])?;
        if causal == Some(0) {
            return Err(ComputeError::Shape("causal softmax period 0".into()));
        }
        let out = self.poisoned("softmax", x.rows * x.cols)?;
        if x.rows > 0 && x.cols > 0 {
            let params = [
                u32_of("rows", x.rows)?,
                u32_of("cols", x.cols)?,
                u32_of("period", causal.unwrap_or(0))?,
                scale.to_bits(),
            ];
            let groups = self.groups(x.rows)?;
            self.dispatch(&self.kernels.softmax, &params, &[&x.buf, &out], groups)?;
        }
        Ok(self.matrix(x.rows, x.cols, out))
    }

    fn layernorm(
        &self,
        x: &GpuMat,
        gamma: &GpuMat,
        beta: &GpuMat,
        eps: f32,
    ) -> Result<GpuMat, ComputeError> {
        self.full(&[x])?;
        check::row("layernorm gamma", gamma.shape(), x.cols)?;
        check::row("layernorm beta", beta.shape(), x.cols)?;
        let out = self.poisoned("layernorm", x.rows * x.cols)?;
        if x.rows > 0 && x.cols > 0 {
            let params = [
                u32_of("rows", x.rows)?,
                u32_of("cols", x.cols)?,
                eps.to_bits(),
            ];
            let bufs = [&x.buf, &gamma.buf, &beta.buf, &out];
            let groups = self.groups(x.rows)?;
            self.dispatch(&self.kernels.layernorm, &params, &bufs, groups)?;
        }
        Ok(self.matrix(x.rows, x.cols, out))
    }

    fn row_sum(&self, x: &GpuMat) -> Result<Vec<f32>, ComputeError> {
        self.read_f32(&self.per_row(&self.kernels.row_sum, x, &[])?)
    }

    fn row_max(&self, x: &GpuMat) -> Result<Vec<f32>, ComputeError> {
        self.read_f32(&self.per_row(&self.kernels.row_max, x, &[])?)
    }

    fn row_argmax(&self, x: &GpuMat) -> Result<Vec<u32>, ComputeError> {
        let out = self.per_row(&self.kernels.argmax, x, &[])?;
        let bytes = self.read(&[&out])?.pop().unwrap_or_default();
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn cosine(&self, a: &GpuMat, b: &GpuMat) -> Result<Vec<f32>, ComputeError> {
        self.full(&[a, b])?;
        check::same("cosine", a.shape(), b.shape())?;
        self.read_f32(&self.per_row(&self.kernels.cosine, a, &[&b.buf])?)
    }

    fn cross_entropy(&self, logits: &GpuMat, targets: &[u32]) -> Result<Vec<f32>, ComputeError> {
        if targets.len() != logits.rows {
            return Err(ComputeError::Shape(format!(
                "cross-entropy: {} targets for {} rows",
                targets.len(),
                logits.rows
            )));
        }
        if let Some(t) = targets.iter().find(|t| **t as usize >= logits.cols) {
            return Err(ComputeError::Shape(format!(
                "target class {t} but only {} classes",
                logits.cols
            )));
        }
        let t = self.upload_bytes("targets", bytemuck::cast_slice(targets))?;
        self.read_f32(&self.per_row(&self.kernels.cross_entropy, logits, &[&t])?)
    }
}

impl Gpu {
    fn elementwise(
        &self,
        k: &Kernel,
        x: &GpuMat,
        y: &GpuMat,
        act: u32,
    ) -> Result<GpuMat, ComputeError> {
        self.full(&[x, y])?;
        let n = x.rows * x.cols;
        let out = self.poisoned(k.name, n)?;
        if n > 0 {
            let params = [u32_of("elements", n)?, u32_of("cols", x.cols)?, act];
            let groups = self.groups(n.div_ceil(256))?;
            self.dispatch(k, &params, &[&x.buf, &y.buf, &out], groups)?;
        }
        Ok(self.matrix(x.rows, x.cols, out))
    }
}

pub mod coop;
#[cfg(test)]
pub(crate) mod tests;
pub mod tune;
