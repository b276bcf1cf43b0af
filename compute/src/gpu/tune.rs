//! Gemm tilings, and the autotune that picks one per adapter: the first time an adapter
//! (by name, backend, driver and driver version) is opened, every tiling that fits its
//! workgroup memory is timed on one square product, and the fastest is cached on disk
//! (`$AGORA_CACHE_DIR` or `~/.cache/agora`, file `gemm-tune.json`), so later opens compile
//! only that one. `AGORA_GEMM_VARIANT=NAME` forces a tiling; `AGORA_GEMM_TUNE=0` skips the
//! tune and uses the default. Every tiling sums each output over k in the same order, so
//! the choice changes speed, never results.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{coop, AdapterReport, Gpu, Kernel};
use crate::{ComputeError, Gemm, Mat, Ops};

/// One tiling of `gemm.wgsl`: `wgx x wgy` invocations, each computing `rm x rn` outputs,
/// K in steps of `tk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GemmVariant {
    pub name: &'static str,
    pub wgx: u32,
    pub wgy: u32,
    pub rm: u32,
    pub rn: u32,
    pub tk: u32,
}

impl GemmVariant {
    pub fn tile_m(&self) -> u32 {
        self.wgy * self.rm
    }

    pub fn tile_n(&self) -> u32 {
        self.wgx * self.rn
    }

    /// The workgroup's tile of C, rows x columns.
    pub fn tile(&self) -> (usize, usize) {
        (self.tile_m() as usize, self.tile_n() as usize)
    }

    /// Workgroup memory: two buffers of a `tk x (tile + 1)` tile each of A and B, f32.
    pub fn shared_bytes(&self) -> u32 {
        4 * 2 * self.tk * (self.tile_m() + 1 + self.tile_n() + 1)
    }

    /// The kernel source for elements of type `elem` (`f32` or `f16`) in A and B.
    pub fn source(&self, elem: &str) -> String {
        self.source_mixed(elem, elem)
    }

    /// The kernel source with A of type `a` and B of type `b`.
    pub fn source_mixed(&self, a: &str, b: &str) -> String {
        self.build(a, b, false)
    }

    /// The f32 kernel for aligned shapes: vec4 loads of A and B.
    pub fn source_vec4(&self) -> String {
        self.build("f32", "f32", true)
    }

    fn build(&self, a: &str, b: &str, vec4: bool) -> String {
        let (ty_a, ty_b, load) = if vec4 {
            (
                "vec4<f32>".to_string(),
                "vec4<f32>".to_string(),
                include_str!("gemm_load_vec4.wgsl"),
            )
        } else {
            (a.to_string(), b.to_string(), include_str!("gemm_load.wgsl"))
        };
        let src = with_epilogues(include_str!("gemm.wgsl"))
            .replace("// COMMON:", &format!("{GEMM_COMMON}\n// (common above)"))
            .replace("// LOAD:", &format!("{load}\n// (loads above)"))
            .replace("ATYPE", &ty_a)
            .replace("BTYPE", &ty_b)
            .replace("AELEM", a)
            .replace("BELEM", b)
            .replace("WGXu", &format!("{}u", self.wgx))
            .replace("WGYu", &format!("{}u", self.wgy))
            .replace("RMu", &format!("{}u", self.rm))
            .replace("RNu", &format!("{}u", self.rn))
            .replace("TKu", &format!("{}u", self.tk));
        if a == "f16" || b == "f16" {
            format!("enable f16;\n{src}")
        } else {
            src
        }
    }
}

/// What every gemm source shares: parameters, bindings, the bias epilogue.
pub(super) const GEMM_COMMON: &str = include_str!("gemm_common.wgsl");

/// `src` with the part between `// BEGIN EPILOGUE` and `// END EPILOGUE` written out once
/// per entry point (`main`, `main_bias`, `main_bias_res`): `EPILOGUE` replaced by the
/// name's suffix, `STORE` by what the output gets from its accumulated value `v`. Every
/// gemm source (gemm.wgsl, gemm_coop.wgsl) has its entry point in that form.
pub(super) fn with_epilogues(src: &str) -> String {
    let (head, rest) = src.split_once("// BEGIN EPILOGUE").unwrap_or((src, ""));
    let (body, tail) = rest.split_once("// END EPILOGUE").unwrap_or(("", rest));
    let mut out = head.to_string();
    for (name, store) in [
        ("", "p.alpha * v"),
        ("_bias", "biased(v, col)"),
        ("_bias_res", "residual[at] + biased(v, col)"),
    ] {
        out.push_str(&body.replace("EPILOGUE", name).replace("STORE", store));
    }
    out.push_str(tail);
    out
}

/// The tilings, the default (it fits the 16 KiB every adapter offers) first.
pub const GEMM_VARIANTS: &[GemmVariant] = &[
    GemmVariant {
        name: "64x64-r4-k8",
        wgx: 16,
        wgy: 16,
        rm: 4,
        rn: 4,
        tk: 8,
    },
    GemmVariant {
        name: "64x64-r4-k16",
        wgx: 16,
        wgy: 16,
        rm: 4,
        rn: 4,
        tk: 16,
    },
    GemmVariant {
        name: "128x64-r8x4-k16",
        wgx: 16,
        wgy: 16,
        rm: 8,
        rn: 4,
        tk: 16,
    },
    GemmVariant {
        name: "128x128-r8-k8",
        wgx: 16,
        wgy: 16,
        rm: 8,
        rn: 8,
        tk: 8,
    },
    GemmVariant {
        name: "128x128-r8-k16",
        wgx: 16,
        wgy: 16,
        rm: 8,
        rn: 8,
        tk: 16,
    },
];

/// The tilings an adapter can run.
pub fn fitting(info: &AdapterReport) -> Vec<GemmVariant> {
    GEMM_VARIANTS
        .iter()
        .copied()
        .filter(|v| {
            v.shared_bytes() <= info.max_compute_workgroup_storage_size
                && v.wgx * v.wgy <= info.max_compute_invocations_per_workgroup
        })
        .collect()
}

pub fn by_name(name: &str) -> Result<GemmVariant, ComputeError> {
    GEMM_VARIANTS
        .iter()
        .copied()
        .find(|v| v.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = GEMM_VARIANTS.iter().map(|v| v.name).collect();
            ComputeError::Unsupported(format!(
                "no gemm variant {name:?} (there are {})",
                names.join(", ")
            ))
        })
}

/// What one tune measured and chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneRecord {
    pub variant: String,
    /// The square size timed.
    pub size: usize,
    /// GFLOP/s of each variant timed (best of 3 runs after a warm-up).
    pub gflops: BTreeMap<String, f64>,
    /// The cooperative-matrix tiling chosen, where the adapter has them.
    #[serde(default)]
    pub coop: Option<String>,
    /// GFLOP/s of each cooperative tiling timed (f16 inputs), same size.
    #[serde(default)]
    pub coop_gflops: BTreeMap<String, f64>,
}

/// How the gemm tiling in use was chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Chosen {
    /// `AGORA_GEMM_TUNE=0`, or no other fits.
    Default,
    /// `AGORA_GEMM_VARIANT`.
    Forced,
    /// From the cache file.
    Cached,
    /// Timed now.
    Tuned(TuneRecord),
}

/// The cache key of an adapter: what changes the answer.
pub fn adapter_key(info: &AdapterReport) -> String {
    format!(
        "{} | {} | {} | {}",
        info.name, info.backend, info.driver, info.driver_info
    )
}

pub fn cache_file() -> Option<PathBuf> {
    let dir = match std::env::var_os("AGORA_CACHE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/agora"),
    };
    Some(dir.join("gemm-tune.json"))
}

pub fn read_cache(path: &Path) -> BTreeMap<String, TuneRecord> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Add `record` for `key`, written to a temporary file and renamed over the cache, so
/// concurrent processes never see half a file.
pub fn write_cache(path: &Path, key: &str, record: &TuneRecord) -> std::io::Result<()> {
    let mut all = read_cache(path);
    all.insert(key.to_string(), record.clone());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&all).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

impl Gpu {
    /// Time every tiling that fits on a `size`-square product and return the fastest, with
    /// the figures. The Gpu keeps its current tiling.
    pub fn tune_gemm(&self, size: usize) -> Result<TuneRecord, ComputeError> {
        let a = self.upload(&Mat::random(size, size, 1))?;
        let b = self.upload(&Mat::random(size, size, 2))?;
        let mut c = self.alloc(size, size)?;
        let g = Gemm::dense(size, size, size);
        let flop = 2.0 * (size as f64).powi(3);
        let mut gflops = BTreeMap::new();
        let mut best: Option<(f64, GemmVariant)> = None;
        for v in fitting(&self.info) {
            // The square product is aligned: what it runs in use is the vec4-load kernel.
            let k = Kernel::gemm(&self.device, v.name, &v.source_vec4(), "main");
            let rate = best_rate(self, flop, || {
                self.gemm_with(&k, v.tile(), 4, &a.buf, &b.buf, &mut c, &g)
            })?;
            gflops.insert(v.name.to_string(), rate);
            if best.is_none_or(|(r, _)| rate > r) {
                best = Some((rate, v));
            }
        }
        let variant = best.map_or(GEMM_VARIANTS[0].name, |(_, v)| v.name);
        let (coop, coop_gflops) = match self.tune_coop(size)? {
            Some((v, rates)) => (Some(v.name.to_string()), rates),
            None => (None, BTreeMap::new()),
        };
        Ok(TuneRecord {
            variant: variant.to_string(),
            size,
            gflops,
            coop,
            coop_gflops,
        })
    }

    /// Use tiling `v` from now on (recompiles the gemm kernels).
    pub fn set_gemm_variant(&mut self, v: GemmVariant) -> Result<(), ComputeError> {
        if !fitting(&self.info).contains(&v) {
            return Err(ComputeError::Unsupported(format!(
                "gemm variant {} needs {} bytes of workgroup memory; {} offers {}",
                v.name,
                v.shared_bytes(),
                self.info.name,
                self.info.max_compute_workgroup_storage_size
            )));
        }
        self.kernels.set_gemm(&self.device, v);
        Ok(())
    }

    /// The tiling in use and how it was chosen.
    pub fn gemm_variant(&self) -> (GemmVariant, &Chosen) {
        (self.kernels.gemm_variant, &self.gemm_chosen)
    }

    /// Pick the tilings at open: forced, cached, tuned (and cached), or the default.
    pub(super) fn choose_gemm(&mut self) -> Result<(), ComputeError> {
        let forced_coop = std::env::var("AGORA_COOP_VARIANT").ok();
        if let (Some(name), true) = (&forced_coop, self.has_coop()) {
            self.set_coop_variant(coop::by_name(name)?)?;
        }
        if let Ok(name) = std::env::var("AGORA_GEMM_VARIANT") {
            self.set_gemm_variant(by_name(&name)?)?;
            self.gemm_chosen = Chosen::Forced;
            return Ok(());
        }
        if std::env::var("AGORA_GEMM_TUNE").is_ok_and(|v| v == "0") {
            return Ok(());
        }
        let key = adapter_key(&self.info);
        let path = cache_file();
        if let Some(record) = path
            .as_deref()
            .map(read_cache)
            .and_then(|c| c.get(&key).cloned())
        {
            let coop_ok = match (&record.coop, self.has_coop(), &forced_coop) {
                (_, false, _) | (_, true, Some(_)) => true,
                (Some(name), true, None) => coop::by_name(name)
                    .and_then(|v| self.set_coop_variant(v))
                    .is_ok(),
                (None, true, None) => false,
            };
            if let Ok(v) = by_name(&record.variant) {
                if coop_ok && self.set_gemm_variant(v).is_ok() {
                    self.gemm_chosen = Chosen::Cached;
                    return Ok(());
                }
            }
        }
        // A CPU adapter (lavapipe) tunes on a small product: it is slow, and only its
        // correctness matters.
        let size = if self.info.device_type == "Cpu" {
            192
        } else {
            1024
        };
        let record = self.tune_gemm(size)?;
        self.set_gemm_variant(by_name(&record.variant)?)?;
        if let (Some(name), None) = (&record.coop, &forced_coop) {
            self.set_coop_variant(coop::by_name(name)?)?;
        }
        if let Some(path) = path {
            // A cache that cannot be written only means tuning again next time.
            let _ = write_cache(&path, &key, &record);
        }
        self.gemm_chosen = Chosen::Tuned(record);
        Ok(())
    }
}

/// GFLOP/s of `run` (recording `flop` of work): one warm-up, then the best of 3, each
/// waited for.
pub(super) fn best_rate(
    gpu: &Gpu,
    flop: f64,
    mut run: impl FnMut() -> Result<(), ComputeError>,
) -> Result<f64, ComputeError> {
    run()?;
    gpu.sync()?;
    let mut fastest = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        run()?;
        gpu.sync()?;
        fastest = fastest.min(t.elapsed().as_secs_f64());
    }
    Ok(flop / fastest / 1e9)
}
