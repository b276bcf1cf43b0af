//! `agora weights set|commit|reveal`: a validator hotkey's weights, signed by the hotkey.

use agora_core::Call;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::json;

use super::subnet::SignOpts;
use super::Out;
use crate::wallet::KeyRole;

/// The weights a `set` or a `commit` carries, and who signs them.
#[derive(Args, Debug)]
pub struct WeightsArgs {
    #[arg(long)]
    netuid: u16,
    #[arg(long, default_value = "default")]
    hotkey: String,
    /// Target uids, comma separated.
    #[arg(long, value_delimiter = ',')]
    uids: Vec<u16>,
    /// Relative weights, comma separated (scaled so the largest is 65535).
    #[arg(long, value_delimiter = ',')]
    weights: Vec<f64>,
    #[command(flatten)]
    sign: SignOpts,
}

#[derive(Subcommand, Debug)]
pub enum WeightsCmd {
    /// Set weights from a hotkey of the wallet (signed by the hotkey, fee-free).
    Set(WeightsArgs),
    /// Commit to weights by hash (subnets with commit-reveal on); the weights and a random
    /// salt are kept in the wallet until `weights reveal`.
    Commit(WeightsArgs),
    /// Reveal the oldest weights committed from this wallet for the hotkey and subnet
    /// (in the epoch after the commit).
    Reveal {
        #[arg(long)]
        netuid: u16,
        #[arg(long, default_value = "default")]
        hotkey: String,
        #[command(flatten)]
        sign: SignOpts,
    },
}

/// Weights scaled so the largest is 65535 (what the chain stores after max-upscale).
fn scale(uids: &[u16], weights: &[f64]) -> anyhow::Result<Vec<u16>> {
    if uids.len() != weights.len() {
        bail!("{} uids but {} weights", uids.len(), weights.len());
    }
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        bail!("weights must be non-negative numbers");
    }
    let max = weights.iter().copied().fold(0.0, f64::max);
    Ok(weights
        .iter()
        .map(|w| {
            if max == 0.0 {
                0
            } else {
                (w / max * 65_535.0).round() as u16
            }
        })
        .collect())
}

/// A commit this wallet made and has not revealed yet.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct PendingCommit {
    netuid: u16,
    hotkey: agora_core::AccountId,
    uids: Vec<u16>,
    values: Vec<u16>,
    salt: Vec<u16>,
    version_key: u64,
    hash: agora_core::Hash,
}

fn commits_file(sign: &SignOpts, netuid: u16, hotkey: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = sign.wallet.dir()?.wallet_path(&sign.name)?.join("commits");
    Ok(dir.join(format!("{netuid}-{hotkey}.json")))
}

fn load_commits(path: &std::path::Path) -> anyhow::Result<Vec<PendingCommit>> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save_commits(path: &std::path::Path, c: &[PendingCommit]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(c)?)
        .with_context(|| format!("writing {}", path.display()))
}

pub async fn run(cmd: WeightsCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        WeightsCmd::Set(a) => set(&a, out).await,
        WeightsCmd::Commit(a) => commit(&a, out).await,
        WeightsCmd::Reveal {
            netuid,
            hotkey,
            sign,
        } => reveal(netuid, &hotkey, &sign, out).await,
    }
}

async fn set(a: &WeightsArgs, out: Out) -> anyhow::Result<()> {
    let values = scale(&a.uids, &a.weights)?;
    let hot = a.sign.hotkey_address(&a.hotkey)?;
    let call = Call::SetWeights {
        netuid: a.netuid,
        uids: a.uids.clone(),
        values: values.clone(),
        version_key: 0,
    };
    let extra = json!({"netuid": a.netuid, "hotkey": hot, "uids": a.uids, "values": values});
    a.sign
        .submit(
            &KeyRole::Hotkey(a.hotkey.clone()),
            call,
            "set_weights",
            extra,
            |s| s.human(),
            out,
        )
        .await?;
    Ok(())
}

async fn commit(a: &WeightsArgs, out: Out) -> anyhow::Result<()> {
    let (netuid, hotkey, uids, sign) = (a.netuid, a.hotkey.as_str(), a.uids.as_slice(), &a.sign);
    let values = scale(uids, &a.weights)?;
    let hot = sign.hotkey_address(hotkey)?;
    let salt: Vec<u16> = (0..8).map(|_| rand::random::<u16>()).collect();
    let hash = agora_core::subnet::weights::commit_hash(&hot, netuid, uids, &values, &salt, 0);
    let pending = PendingCommit {
        netuid,
        hotkey: hot,
        uids: uids.to_vec(),
        values,
        salt,
        version_key: 0,
        hash,
    };
    // Saved before sending: a commit on chain whose salt is lost could never be revealed.
    let path = commits_file(sign, netuid, hotkey)?;
    let mut all = load_commits(&path)?;
    all.push(pending);
    save_commits(&path, &all)?;
    let extra = json!({"netuid": netuid, "hotkey": hot, "hash": hash, "saved": path});
    let r = sign
        .submit(
            &KeyRole::Hotkey(hotkey.to_string()),
            Call::CommitWeights { netuid, hash },
            "commit_weights",
            extra,
            |s| format!("{}: committed {hash}; reveal it next epoch with `agora weights reveal --netuid {netuid}`", s.human()),
            out,
        )
        .await;
    if r.is_err() {
        all.retain(|c| c.hash != hash);
        save_commits(&path, &all)?;
    }
    r.map(|_| ())
}

async fn reveal(netuid: u16, hotkey: &str, sign: &SignOpts, out: Out) -> anyhow::Result<()> {
    let path = commits_file(sign, netuid, hotkey)?;
    let mut all = load_commits(&path)?;
    let Some(c) = all.first().cloned() else {
        bail!(
            "no unrevealed commit for hotkey {hotkey} on subnet {netuid} in {}",
            path.display()
        );
    };
    let call = Call::RevealWeights {
        netuid,
        uids: c.uids.clone(),
        values: c.values.clone(),
        salt: c.salt.clone(),
        version_key: c.version_key,
    };
    let extra = json!({"netuid": netuid, "hotkey": c.hotkey, "hash": c.hash, "uids": c.uids, "values": c.values});
    sign.submit(
        &KeyRole::Hotkey(hotkey.to_string()),
        call,
        "reveal_weights",
        extra,
        |s| format!("{}: weights revealed", s.human()),
        out,
    )
    .await?;
    all.remove(0);
    save_commits(&path, &all)
}
