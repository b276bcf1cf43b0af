use std::path::PathBuf;
use std::time::Duration;

use agora_core::{parse_tao, AccountId, Call, Keypair};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{tao, text as s};
use super::tx::send;
use super::{Out, RpcOpts};
use crate::client::RpcClient;
use crate::wallet::{generate_mnemonic, key_from_mnemonic, KeyRole, Secret, WalletDir};

/// Env var holding a wallet password for unattended use.
pub const PASSWORD_ENV: &str = "AGORA_PASSWORD";

#[derive(Args, Debug, Clone)]
pub struct WalletOpts {
    /// Directory holding wallets.
    #[arg(long, env = "AGORA_WALLET_DIR")]
    pub wallet_dir: Option<PathBuf>,
    /// Read the password from this file (first line). Else $AGORA_PASSWORD, else a prompt.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

impl WalletOpts {
    pub(crate) fn dir(&self) -> anyhow::Result<WalletDir> {
        let root = match &self.wallet_dir {
            Some(d) => d.clone(),
            None => {
                let home =
                    std::env::var_os("HOME").context("HOME is not set: pass --wallet-dir")?;
                PathBuf::from(home).join(".agora").join("wallets")
            }
        };
        Ok(WalletDir::new(root))
    }

    pub(crate) fn password(&self, confirm: bool) -> anyhow::Result<String> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading password file {}", path.display()))?;
            return Ok(text.lines().next().unwrap_or("").to_string());
        }
        if let Ok(p) = std::env::var(PASSWORD_ENV) {
            return Ok(p);
        }
        let p = rpassword::prompt_password("wallet password: ").context(
            "no password: give --password-file or set AGORA_PASSWORD when there is no terminal",
        )?;
        if confirm && rpassword::prompt_password("repeat password: ")? != p {
            bail!("the passwords do not match");
        }
        Ok(p)
    }
}

#[derive(Subcommand, Debug)]
pub enum WalletCmd {
    /// Create a wallet (coldkey) and a hotkey; prints each new mnemonic once.
    Create {
        #[arg(long)]
        name: String,
        /// Hotkey to create (added to an existing wallet if the coldkey exists).
        #[arg(long, default_value = "default")]
        hotkey: String,
        #[arg(long, default_value_t = 12)]
        words: usize,
        #[command(flatten)]
        opts: WalletOpts,
    },
    /// List wallets and their hotkeys.
    List {
        #[command(flatten)]
        opts: WalletOpts,
    },
    /// Show one wallet's addresses.
    Show {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        opts: WalletOpts,
    },
    /// A key's address and public key for other tools; with --secret also its 32-byte
    /// ed25519 seed (asks for the password; anyone holding the seed controls the key).
    Export {
        #[arg(long)]
        name: String,
        /// Export this hotkey instead of the coldkey.
        #[arg(long)]
        hotkey: Option<String>,
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        opts: WalletOpts,
    },
    /// Recreate a key from its mnemonic (or a raw seed, or a dev key name).
    Regen {
        #[arg(long)]
        name: String,
        /// Regenerate this hotkey instead of the coldkey.
        #[arg(long)]
        hotkey: Option<String>,
        #[arg(long, conflicts_with_all = ["seed", "dev"])]
        mnemonic: Option<String>,
        /// 32-byte secret seed as 0x-hex.
        #[arg(long, conflicts_with = "dev")]
        seed: Option<String>,
        /// A well-known dev key (alice, bob, ...): public, for dev chains only.
        #[arg(long)]
        dev: Option<String>,
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        opts: WalletOpts,
    },
    /// Free balance and nonce of a wallet's coldkey (or any address).
    Balance {
        #[arg(long, required_unless_present = "address")]
        name: Option<String>,
        #[arg(long)]
        address: Option<String>,
        #[command(flatten)]
        opts: WalletOpts,
        #[command(flatten)]
        rpc: RpcOpts,
    },
    /// Send TAO from a wallet's coldkey; waits until the transfer is finalized.
    Transfer {
        #[arg(long)]
        name: String,
        /// Destination address (SS58 or 0x-hex).
        #[arg(long)]
        dest: String,
        /// Amount in TAO (up to 9 decimals).
        #[arg(long)]
        amount: String,
        /// Optional tip to the block proposer, in TAO.
        #[arg(long, default_value = "0")]
        tip: String,
        /// Return after submitting instead of waiting for finalization.
        #[arg(long)]
        no_wait: bool,
        /// Seconds to wait for finalization.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[command(flatten)]
        opts: WalletOpts,
        #[command(flatten)]
        rpc: RpcOpts,
    },
}

pub async fn run(cmd: WalletCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        WalletCmd::Create {
            name,
            hotkey,
            words,
            opts,
        } => {
            let dir = opts.dir()?;
            let hot_role = KeyRole::Hotkey(hotkey.clone());
            if dir.exists(&name, &hot_role)? {
                bail!("wallet {name:?} already has a hotkey {hotkey:?}: pick another --hotkey");
            }
            let new_cold = !dir.exists(&name, &KeyRole::Coldkey)?;
            let password = opts.password(new_cold)?;
            let mut result = json!({"wallet": name});
            if new_cold {
                let (key, phrase, _) = new_key(&dir, &name, &KeyRole::Coldkey, words, &password)?;
                result["coldkey"] =
                    json!({"address": key.account(), "mnemonic": phrase, "created": true});
            } else {
                // Check the password against the existing coldkey so both keys share it.
                let key = dir.load(&name, &KeyRole::Coldkey, &password)?;
                result["coldkey"] =
                    json!({"address": key.account(), "mnemonic": null, "created": false});
            }
            let (key, phrase, path) = new_key(&dir, &name, &hot_role, words, &password)?;
            result["hotkey"] =
                json!({"name": hotkey, "address": key.account(), "mnemonic": phrase});
            result["path"] = json!(path.parent().and_then(|p| p.parent()).unwrap_or(&path));
            out.print(&result, || {
                let mut t = String::new();
                if new_cold {
                    t.push_str(&format!(
                        "coldkey {}\n  mnemonic (write it down now, it is not shown again):\n  {}\n",
                        s(&result["coldkey"]["address"]),
                        s(&result["coldkey"]["mnemonic"])
                    ));
                }
                t.push_str(&format!(
                    "hotkey {} {}\n  mnemonic (write it down now, it is not shown again):\n  {}",
                    hotkey,
                    s(&result["hotkey"]["address"]),
                    s(&result["hotkey"]["mnemonic"])
                ));
                t
            });
        }
        WalletCmd::List { opts } => {
            let list = opts.dir()?.list()?;
            let v = serde_json::to_value(&list)?;
            out.print(&v, || {
                if list.is_empty() {
                    return "no wallets: create one with `agora wallet create --name NAME`".into();
                }
                list.iter()
                    .map(|w| {
                        let mut t = format!(
                            "{}  coldkey {}",
                            w.name,
                            w.coldkey
                                .map(|c| c.to_string())
                                .unwrap_or_else(|| "-".into())
                        );
                        for h in &w.hotkeys {
                            t.push_str(&format!("\n  hotkey {}  {}", h.name, h.address));
                        }
                        t
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        WalletCmd::Show { name, opts } => {
            let info = opts.dir()?.info(&name)?;
            let v = serde_json::to_value(&info)?;
            out.print(&v, || {
                let mut t = format!(
                    "wallet {}  ({})\ncoldkey {}",
                    info.name,
                    info.path.display(),
                    info.coldkey
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into())
                );
                for h in &info.hotkeys {
                    t.push_str(&format!("\nhotkey {}  {}", h.name, h.address));
                }
                t
            });
        }
        WalletCmd::Export {
            name,
            hotkey,
            secret,
            opts,
        } => {
            let role = match &hotkey {
                Some(h) => KeyRole::Hotkey(h.clone()),
                None => KeyRole::Coldkey,
            };
            let dir = opts.dir()?;
            let address = dir.address(&name, &role)?;
            let mut v = json!({
                "name": name,
                "role": hotkey.as_ref().map_or("coldkey".to_string(), |h| format!("hotkey {h}")),
                "address": address.to_string(),
                "public_key": format!("0x{}", hex::encode(address.0)),
            });
            if secret {
                let key = dir.load(&name, &role, &opts.password(false)?)?;
                v["seed"] = json!(format!("0x{}", hex::encode(key.seed())));
            }
            out.print(&v, || {
                let mut t = format!(
                    "address    {}
public key {}",
                    v["address"].as_str().unwrap_or(""),
                    v["public_key"].as_str().unwrap_or("")
                );
                if let Some(seed) = v["seed"].as_str() {
                    t.push_str(&format!(
                        "
seed       {seed}  (secret: whoever has it controls the key)"
                    ));
                }
                t
            });
        }
        WalletCmd::Regen {
            name,
            hotkey,
            mnemonic,
            seed,
            dev,
            overwrite,
            opts,
        } => {
            let secret = match (mnemonic, seed, dev) {
                (Some(m), _, _) => Secret {
                    key: key_from_mnemonic(&m)?,
                    mnemonic: Some(m.trim().to_string()),
                },
                (_, Some(s), _) => {
                    let bytes = hex::decode(s.trim().trim_start_matches("0x"))
                        .context("--seed must be hex")?;
                    let arr: [u8; 32] = bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| anyhow::anyhow!("--seed must be 32 bytes"))?;
                    Secret {
                        key: Keypair::from_seed(&arr),
                        mnemonic: None,
                    }
                }
                (_, _, Some(d)) => Secret {
                    key: Keypair::dev(&d),
                    mnemonic: None,
                },
                _ => bail!("give --mnemonic, --seed or --dev"),
            };
            let role = match &hotkey {
                Some(h) => KeyRole::Hotkey(h.clone()),
                None => KeyRole::Coldkey,
            };
            let dir = opts.dir()?;
            let password = opts.password(true)?;
            let path = dir.store(&name, &role, &secret, &password, overwrite)?;
            let v = json!({"wallet": name, "key": hotkey.as_deref().unwrap_or("coldkey"), "address": secret.key.account(), "path": path});
            out.print(&v, || {
                format!(
                    "restored {} of wallet {}: {}",
                    hotkey.as_deref().unwrap_or("coldkey"),
                    name,
                    secret.key.account()
                )
            });
        }
        WalletCmd::Balance {
            name,
            address,
            opts,
            rpc,
        } => {
            let address: AccountId = match (address, name) {
                (Some(a), _) => a.parse()?,
                (None, Some(n)) => opts.dir()?.address(&n, &KeyRole::Coldkey)?,
                (None, None) => bail!("give --name or --address"),
            };
            let v = RpcClient::new(&rpc.rpc_url)
                .call("account_info", json!({"address": address}))
                .await?;
            out.print(&v, || {
                format!(
                    "{}  free {}  nonce {}",
                    address,
                    tao(&v["free"]),
                    v["nonce"]
                )
            });
        }
        WalletCmd::Transfer {
            name,
            dest,
            amount,
            tip,
            no_wait,
            timeout,
            opts,
            rpc,
        } => {
            transfer(
                &name, &dest, &amount, &tip, no_wait, timeout, &opts, &rpc, out,
            )
            .await?;
        }
    }
    Ok(())
}

/// A fresh key from a new mnemonic, stored encrypted; returns it, its phrase and its path.
fn new_key(
    dir: &WalletDir,
    wallet: &str,
    role: &KeyRole,
    words: usize,
    password: &str,
) -> anyhow::Result<(Keypair, String, PathBuf)> {
    let phrase = generate_mnemonic(words)?;
    let key = key_from_mnemonic(&phrase)?;
    let secret = Secret {
        key: key.clone(),
        mnemonic: Some(phrase.clone()),
    };
    let path = dir.store(wallet, role, &secret, password, false)?;
    Ok((key, phrase, path))
}

#[allow(clippy::too_many_arguments)]
async fn transfer(
    name: &str,
    dest: &str,
    amount: &str,
    tip: &str,
    no_wait: bool,
    timeout: u64,
    opts: &WalletOpts,
    rpc: &RpcOpts,
    out: Out,
) -> anyhow::Result<()> {
    let dest: AccountId = dest.parse().with_context(|| format!("--dest {dest:?}"))?;
    let amount = parse_tao(amount)?;
    let tip = parse_tao(tip)?;
    let key = opts
        .dir()?
        .load(name, &KeyRole::Coldkey, &opts.password(false)?)?;
    let client = RpcClient::new(&rpc.rpc_url);
    out.progress(&format!(
        "sending {} TAO from {} to {dest}",
        agora_core::format_tao(amount),
        key.account()
    ));
    let wait = (!no_wait).then(|| Duration::from_secs(timeout));
    let sent = send(
        &client,
        &key,
        Call::Transfer { dest, amount },
        tip,
        wait,
        "transfer",
        out,
    )
    .await?;
    let v =
        sent.to_json(json!({"from": key.account(), "dest": dest, "amount": amount, "tip": tip}));
    out.print(&v, || sent.human());
    Ok(())
}
