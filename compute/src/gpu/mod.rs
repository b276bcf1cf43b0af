//! The GPU backend over wgpu: adapters on every backend (Vulkan, Metal, DX12, GL), one
//! device, compiled kernels, and buffers reused across calls.
//!
//! Choosing a device: `AGORA_DEVICE` (or the CLI's `--device`) is `cpu`, `gpu`, an adapter
//! index from `agora compute info`, or a case-insensitive part of the adapter's name or
//! backend (`vulkan`, `llvmpipe`, `nvidia`...). Without a preference the first hardware
//! adapter wins, then any adapter; with none at all [`crate::Backend::auto`] falls back to
//! the CPU and logs why.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use wgpu::util::DeviceExt;

use crate::{ComputeError, Mat};

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
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = wgpu::Backends::all();
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
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
    }
}

/// Every adapter on every enabled backend, in wgpu's order.
pub fn enumerate() -> Vec<AdapterReport> {
    let adapters = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
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

/// A GPU device with its compiled kernels and a pool of reusable buffers.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pub info: AdapterReport,
    matmul: Kernel,
    pool: Mutex<HashMap<(u32, u64), Vec<wgpu::Buffer>>>,
}

/// A compute pipeline and the layout of its bindings.
struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl Kernel {
    fn new(device: &wgpu::Device, name: &str, source: &str) -> Kernel {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        Kernel { pipeline, layout }
    }
}

/// Bytes of an f32 buffer holding `n` values (at least 4: wgpu refuses empty bindings).
fn f32_bytes(n: usize) -> u64 {
    (n.max(1) * 4) as u64
}

impl Gpu {
    /// Open the adapter `pref` chooses (see the module docs).
    pub fn open(pref: Option<&str>) -> Result<Gpu, ComputeError> {
        let inst = instance();
        let adapters = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
        let adapter = choose(adapters, pref)?;
        let info = report(0, &adapter);
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("agora-compute"),
            required_features: wgpu::Features::empty(),
            required_limits: limits,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| ComputeError::Gpu(format!("request_device on {}: {e}", info.name)))?;
        let matmul = Kernel::new(&device, "matmul", include_str!("matmul.wgsl"));
        Ok(Gpu {
            device,
            queue,
            info,
            matmul,
            pool: Mutex::new(HashMap::new()),
        })
    }

    /// A storage buffer of at least `bytes` (rounded up to a power of two), reused when a
    /// previous call returned one of that class.
    fn take(&self, usage: wgpu::BufferUsages, bytes: u64) -> wgpu::Buffer {
        let size = bytes.next_power_of_two().max(16);
        let key = (usage.bits(), size);
        if let Some(b) = self
            .pool
            .lock()
            .ok()
            .and_then(|mut p| p.get_mut(&key)?.pop())
        {
            return b;
        }
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage,
            mapped_at_creation: false,
        })
    }

    fn give_back(&self, buffers: impl IntoIterator<Item = wgpu::Buffer>) {
        if let Ok(mut p) = self.pool.lock() {
            for b in buffers {
                p.entry((b.usage().bits(), b.size())).or_default().push(b);
            }
        }
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

    /// `C = A · B` on the GPU.
    pub fn matmul(&self, a: &Mat, b: &Mat) -> Result<Mat, ComputeError> {
        if a.cols != b.rows {
            return Err(ComputeError::Shape(format!(
                "matmul: A is {}x{}, B is {}x{}",
                a.rows, a.cols, b.rows, b.cols
            )));
        }
        let (m, k, n) = (a.rows, a.cols, b.cols);
        for (what, len) in [("A", m * k), ("B", k * n), ("C", m * n)] {
            self.check_size(what, f32_bytes(len))?;
        }
        let tiles = |x: usize| x.div_ceil(16) as u32;
        let max_groups = self.info.max_compute_workgroups_per_dimension;
        if tiles(m) > max_groups || tiles(n) > max_groups {
            return Err(ComputeError::Shape(format!(
                "matmul: {m}x{n} needs more than {max_groups} workgroups per dimension"
            )));
        }
        if m == 0 || n == 0 {
            return Mat::new(m, n, Vec::new());
        }
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let out_usage = storage | wgpu::BufferUsages::COPY_SRC;
        let buf_a = self.take(storage, f32_bytes(m * k));
        let buf_b = self.take(storage, f32_bytes(k * n));
        let buf_c = self.take(out_usage, f32_bytes(m * n));
        let read = self.take(
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            f32_bytes(m * n),
        );
        self.queue
            .write_buffer(&buf_a, 0, bytemuck::cast_slice(&a.data));
        self.queue
            .write_buffer(&buf_b, 0, bytemuck::cast_slice(&b.data));
        // Poison the output so an element the kernel fails to write reads back as NaN.
        let poison = vec![f32::NAN; m * n];
        self.queue
            .write_buffer(&buf_c, 0, bytemuck::cast_slice(&poison));
        let dims = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("dims"),
                contents: bytemuck::cast_slice(&[m as u32, k as u32, n as u32, 0u32]),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("matmul"),
            layout: &self.matmul.layout,
            entries: &[
                entry(0, &buf_a, f32_bytes(m * k)),
                entry(1, &buf_b, f32_bytes(k * n)),
                entry(2, &buf_c, f32_bytes(m * n)),
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: dims.as_entire_binding(),
                },
            ],
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("matmul"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.matmul.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(tiles(n), tiles(m), 1);
        }
        let bytes = (m * n * 4) as u64;
        enc.copy_buffer_to_buffer(&buf_c, 0, &read, 0, bytes);
        self.queue.submit([enc.finish()]);
        let data = self.read_back(&read, bytes)?;
        self.give_back([buf_a, buf_b, buf_c, read]);
        Mat::new(m, n, data)
    }

    /// Map `buf` and copy out its first `bytes` as f32s.
    fn read_back(&self, buf: &wgpu::Buffer, bytes: u64) -> Result<Vec<f32>, ComputeError> {
        let slice = buf.slice(..bytes);
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
        let data = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
        drop(view);
        buf.unmap();
        Ok(data)
    }
}

fn entry(binding: u32, buf: &wgpu::Buffer, bytes: u64) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: buf,
            offset: 0,
            size: wgpu::BufferSize::new(bytes),
        }),
    }
}

#[cfg(test)]
mod tests;
