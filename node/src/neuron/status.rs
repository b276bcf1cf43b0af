//! A running neuron's status: a JSON file it rewrites (atomically) every second, which
//! `agora miner status` / `agora validator status` read back, adding whether the process
//! is still alive and how old the file is.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{json, Value};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where a neuron keeps its status by default: `<wallet>/neurons/<role>-<netuid>-<hotkey>.json`.
pub fn default_path(wallet_dir: &Path, role: &str, netuid: u16, hotkey: &str) -> PathBuf {
    wallet_dir
        .join("neurons")
        .join(format!("{role}-{netuid}-{hotkey}.json"))
}

/// Write `status` (with the writer's pid and the time) to `path`, replacing it whole.
pub fn write(path: &Path, status: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut v = status.clone();
    v["pid"] = json!(std::process::id());
    v["updated_ms"] = json!(now_ms());
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&v)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Read a status back, with `running` (its pid is alive and the file is fresh) and `age_ms`.
pub fn read(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "no status at {}: is the neuron running (or started with another --status-file)?",
            path.display()
        )
    })?;
    let mut v: Value =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let age = now_ms().saturating_sub(v["updated_ms"].as_u64().unwrap_or(0));
    let alive = v["pid"]
        .as_u64()
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
    v["age_ms"] = json!(age);
    v["running"] = json!(alive && age < 10_000);
    Ok(v)
}
