//! `agora subnet|stake|weights ...`: btcli's verbs for the subnet market.

use std::time::Duration;

use agora_core::{format_tao, AccountId, Call};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::output::{tao, text};
use super::tx::{send, Sent};
use super::wallet::WalletOpts;
use super::{Out, RpcOpts};
use crate::client::RpcClient;
use crate::wallet::KeyRole;

/// Options of every command that signs: wallet, node, waiting.
#[derive(Args, Debug, Clone)]
pub struct SignOpts {
    /// Wallet whose coldkey signs (and pays).
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub wallet: WalletOpts,
    #[command(flatten)]
    pub rpc: RpcOpts,
    /// Return after submitting instead of waiting for finalization.
    #[arg(long)]
    pub no_wait: bool,
    /// Seconds to wait for finalization.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

impl SignOpts {
    /// Unlock one of the wallet's keys.
    pub fn key(&self, role: &KeyRole) -> anyhow::Result<agora_core::Keypair> {
        self.wallet
            .dir()?
            .load(&self.name, role, &self.wallet.password(false)?)
    }
    pub fn wait(&self) -> Option<Duration> {
        (!self.no_wait).then(|| Duration::from_secs(self.timeout))
    }
    pub fn client(&self) -> RpcClient {
        RpcClient::new(&self.rpc.rpc_url)
    }
    /// Sign `call` with one of the wallet's keys, send it (waiting unless `--no-wait`) and
    /// print the outcome: `extra` merged into the JSON, `done` as the text line.
    pub async fn submit(
        &self,
        role: &KeyRole,
        call: Call,
        what: &str,
        extra: Value,
        done: impl FnOnce(&Sent) -> String,
        out: Out,
    ) -> anyhow::Result<Sent> {
        let key = self.key(role)?;
        let sent = send(&self.client(), &key, call, 0, self.wait(), what, out).await?;
        out.print(&sent.to_json(extra), || done(&sent));
        Ok(sent)
    }

    pub fn hotkey_address(&self, hotkey: &str) -> anyhow::Result<AccountId> {
        if let Ok(a) = hotkey.parse::<AccountId>() {
            return Ok(a);
        }
        self.wallet
            .dir()?
            .address(&self.name, &KeyRole::Hotkey(hotkey.to_string()))
    }
}

#[derive(Subcommand, Debug)]
pub enum SubnetCmd {
    /// Create a subnet owned by the wallet's coldkey; its hotkey becomes uid 0.
    Create {
        #[command(flatten)]
        sign: SignOpts,
        #[arg(long, default_value = "default")]
        hotkey: String,
    },
    /// All subnets: price, emission share, pool, tempo, next epoch.
    List(RpcOpts),
    /// A subnet's metagraph: one row per uid.
    Show {
        netuid: u16,
        #[command(flatten)]
        rpc: RpcOpts,
    },
    /// A subnet's hyperparameters.
    Hyperparams {
        netuid: u16,
        #[command(flatten)]
        rpc: RpcOpts,
    },
    /// Start emissions and trading on a subnet you own.
    Start {
        #[arg(long)]
        netuid: u16,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// Register a hotkey (wallet hotkey name or address) by burning the current price.
    Register {
        #[arg(long)]
        netuid: u16,
        #[arg(long, default_value = "default")]
        hotkey: String,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// The current neuron registration price of a subnet.
    BurnCost {
        #[arg(long)]
        netuid: u16,
        #[command(flatten)]
        rpc: RpcOpts,
    },
    /// The current price to create a subnet.
    LockCost(RpcOpts),
    /// Set a hyperparameter (the owner: owner-settable ones, outside the freeze window;
    /// the chain admin: any). Booleans take true/false.
    Set {
        netuid: u16,
        /// Name, as `agora subnet hyperparams` prints it (e.g. tempo, commit_reveal).
        param: String,
        /// Integer (rao for burns, per-million for bonds_moving_avg) or true/false.
        value: String,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// Dissolve a subnet (chain admin): stakers are paid out of its pool.
    Dissolve {
        netuid: u16,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// The last epochs of a subnet: buckets drained and per-uid results.
    Epochs {
        netuid: u16,
        /// How many (newest first, at most 64).
        #[arg(long, default_value_t = 4)]
        limit: u16,
        #[command(flatten)]
        rpc: RpcOpts,
    },
    /// Publish where a registered hotkey serves (libp2p multiaddrs; signed by the hotkey).
    Serve {
        #[arg(long)]
        netuid: u16,
        #[arg(long, default_value = "default")]
        hotkey: String,
        /// A multiaddr, e.g. /ip4/203.0.113.7/tcp/30333 (repeat for up to 4).
        #[arg(long = "addr", required = true)]
        addrs: Vec<String>,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// Name the subnet's inference model: the owner hotkey serves the blake3 hash of the
    /// safetensors file (`/agora-model/blake3/<hex>`); miners and validators of
    /// `--task inference` refuse to run any other file.
    SetModel {
        #[arg(long)]
        netuid: u16,
        /// The subnet owner's hotkey.
        #[arg(long, default_value = "default")]
        hotkey: String,
        /// The safetensors file.
        #[arg(long)]
        model: std::path::PathBuf,
        #[command(flatten)]
        sign: SignOpts,
    },
}

/// A hyperparameter value from the command line: an integer, or a boolean as 1/0.
fn hyper_value(text: &str) -> anyhow::Result<u64> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" => Ok(1),
        "false" | "off" | "no" => Ok(0),
        t => t
            .replace('_', "")
            .parse()
            .with_context(|| format!("value {text:?} is not an integer or true/false")),
    }
}

fn row(n: &Value) -> String {
    let share = |v: &Value| format!("{:.4}", v.as_u64().unwrap_or(0) as f64 / 65_535.0);
    format!(
        "{:>4}  {:<48}  {:>16}  {:>7}  {:>7}  {:>14}  {:>7}  {:>6}  {:>6}",
        n["uid"],
        text(&n["hotkey"]),
        format_tao(n["stake"].as_u64().unwrap_or(0)),
        share(&n["incentive"]),
        share(&n["dividends"]),
        format_tao(n["emission"].as_u64().unwrap_or(0)),
        share(&n["validator_trust"]),
        n["validator_permit"],
        n["active"]
    )
}

pub async fn run_subnet(cmd: SubnetCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        SubnetCmd::Create { sign, hotkey } => {
            let key = sign.key(&KeyRole::Coldkey)?;
            let hot = sign.hotkey_address(&hotkey)?;
            let client = sign.client();
            let cost = client.call("subnet_lockCost", Value::Null).await?;
            out.progress(&format!(
                "creating a subnet: lock {} (owner hotkey {hot})",
                tao(&cost["lock_cost"])
            ));
            let sent = send(
                &client,
                &key,
                Call::RegisterNetwork { hotkey: hot },
                0,
                sign.wait(),
                "register_network",
                out,
            )
            .await?;
            let mut netuid = Value::Null;
            if sent.finalized.is_some() {
                let list = client
                    .call_list("subnet_list", Value::Null, "subnets")
                    .await?;
                netuid = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["owner_hotkey"] == json!(hot))
                    .max_by_key(|s| s["registered_at"].as_u64())
                    .map(|s| s["netuid"].clone())
                    .unwrap_or(Value::Null);
            }
            let v = sent.to_json(json!({"netuid": netuid, "owner_hotkey": hot}));
            out.print(&v, || format!("{}: subnet {netuid} created; start it with `agora subnet start --netuid {netuid}`", sent.human()));
        }
        SubnetCmd::List(rpc) => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call_list("subnet_list", Value::Null, "subnets")
                .await?;
            out.print(&v, || {
                let mut t = format!(
                    "{:>6}  {:>7}  {:>14}  {:>8}  {:>16}  {:>5}  {:>6}  {:>10}",
                    "netuid",
                    "started",
                    "price TAO/α",
                    "share",
                    "pool TAO",
                    "n",
                    "tempo",
                    "next epoch"
                );
                for s in v.as_array().into_iter().flatten() {
                    t.push_str(&format!(
                        "\n{:>6}  {:>7}  {:>14}  {:>8.4}  {:>16}  {:>5}  {:>6}  {:>10}",
                        s["netuid"],
                        s["started"],
                        format_tao(s["price_rao"].as_u64().unwrap_or(0)),
                        s["emission_share"].as_f64().unwrap_or(0.0),
                        format_tao(s["pool_tao"].as_u64().unwrap_or(0)),
                        s["n"],
                        s["tempo"],
                        s["blocks_to_next_epoch"]
                    ));
                }
                t
            });
        }
        SubnetCmd::Show { netuid, rpc } => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("subnet_metagraph", json!({"netuid": netuid}))
                .await?;
            out.print(&v, || {
                let mut t = format!(
                    "subnet {netuid}: price {} TAO/α, pool {} TAO / {} α, epoch {} (next in {} blocks), {} neurons\n{:>4}  {:<48}  {:>16}  {:>7}  {:>7}  {:>14}  {:>7}  {:>6}  {:>6}",
                    format_tao(v["price_rao"].as_u64().unwrap_or(0)), tao(&v["pool_tao"]), format_tao(v["pool_alpha"].as_u64().unwrap_or(0)),
                    v["epoch_index"], v["blocks_to_next_epoch"], v["n"],
                    "uid", "hotkey", "stake α", "incent.", "divid.", "emission α", "vtrust", "permit", "active"
                );
                for n in v["neurons"].as_array().into_iter().flatten() {
                    t.push('\n');
                    t.push_str(&row(n));
                }
                t
            });
        }
        SubnetCmd::Hyperparams { netuid, rpc } => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("subnet_metagraph", json!({"netuid": netuid}))
                .await?;
            let h = v["hyperparams"].clone();
            out.print(&h, || {
                h.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, val)| format!("{k:<32} {val}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        SubnetCmd::Start { netuid, sign } => {
            let key = sign.key(&KeyRole::Coldkey)?;
            let sent = send(
                &sign.client(),
                &key,
                Call::StartCall { netuid },
                0,
                sign.wait(),
                "start_call",
                out,
            )
            .await?;
            out.print(&sent.to_json(json!({"netuid": netuid})), || {
                format!("{}: subnet {netuid} started", sent.human())
            });
        }
        SubnetCmd::Register {
            netuid,
            hotkey,
            sign,
        } => {
            let key = sign.key(&KeyRole::Coldkey)?;
            let hot = sign.hotkey_address(&hotkey)?;
            let client = sign.client();
            let list = client
                .call_list("subnet_list", Value::Null, "subnets")
                .await?;
            if let Some(s) = list
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["netuid"] == json!(netuid))
            {
                out.progress(&format!(
                    "registering {hot} on subnet {netuid} for {}",
                    tao(&s["burn"])
                ));
            }
            let sent = send(
                &client,
                &key,
                Call::BurnedRegister {
                    netuid,
                    hotkey: hot,
                },
                0,
                sign.wait(),
                "burned_register",
                out,
            )
            .await?;
            let mut uid = Value::Null;
            if sent.finalized.is_some() {
                let m = client
                    .call("subnet_metagraph", json!({"netuid": netuid}))
                    .await?;
                uid = m["neurons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|n| n["hotkey"] == json!(hot))
                    .map(|n| n["uid"].clone())
                    .unwrap_or(Value::Null);
            }
            out.print(
                &sent.to_json(json!({"netuid": netuid, "hotkey": hot, "uid": uid})),
                || format!("{}: registered as uid {uid}", sent.human()),
            );
        }
        SubnetCmd::BurnCost { netuid, rpc } => {
            let list = RpcClient::new(&rpc.rpc_url)
                .call_list("subnet_list", Value::Null, "subnets")
                .await?;
            let s = list
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["netuid"] == json!(netuid))
                .cloned()
                .with_context(|| format!("no subnet {netuid}"))?;
            let v = json!({"netuid": netuid, "burn": s["burn"]});
            out.print(&v, || {
                format!("registration on subnet {netuid} costs {}", tao(&s["burn"]))
            });
        }
        SubnetCmd::Set {
            netuid,
            param,
            value,
            sign,
        } => {
            let v = hyper_value(&value)?;
            if !agora_core::subnet::admin::SETTABLE
                .iter()
                .any(|(n, _)| *n == param)
            {
                let names: Vec<&str> = agora_core::subnet::admin::SETTABLE
                    .iter()
                    .map(|(n, _)| *n)
                    .collect();
                bail!(
                    "unknown hyperparameter {param:?}; settable: {}",
                    names.join(", ")
                );
            }
            let call = Call::SetHyperparameter {
                netuid,
                name: param.clone(),
                value: v,
            };
            let extra = json!({"netuid": netuid, "param": param, "value": v});
            sign.submit(
                &KeyRole::Coldkey,
                call,
                "set_hyperparameter",
                extra,
                |s| format!("{}: {param} = {v} on subnet {netuid}", s.human()),
                out,
            )
            .await?;
        }
        SubnetCmd::Dissolve { netuid, sign } => {
            let extra = json!({"netuid": netuid});
            sign.submit(
                &KeyRole::Coldkey,
                Call::DissolveNetwork { netuid },
                "dissolve_network",
                extra,
                |s| format!("{}: subnet {netuid} dissolved; its stakers are paid over the next blocks (`agora stake list` shows what each position will get)", s.human()),
                out,
            )
            .await?;
        }
        SubnetCmd::Epochs { netuid, limit, rpc } => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call_list(
                    "subnet_epochs",
                    json!({"netuid": netuid, "limit": limit}),
                    "epochs",
                )
                .await?;
            out.print(&v, || {
                let mut t = String::new();
                for e in v.as_array().into_iter().flatten() {
                    t.push_str(&format!(
                        "epoch {} at block {}: miners {} α, validators {} α, root {} α (sold for {} TAO), owner {} α, burned {} α\n",
                        e["epoch_index"], e["block"],
                        format_tao(e["server"].as_u64().unwrap_or(0)),
                        format_tao(e["validator"].as_u64().unwrap_or(0)),
                        format_tao(e["root"].as_u64().unwrap_or(0)),
                        format_tao(e["root_tao"].as_u64().unwrap_or(0)),
                        format_tao(e["owner"].as_u64().unwrap_or(0)),
                        format_tao(e["burned"].as_u64().unwrap_or(0)),
                    ));
                    let zipped = e["incentive"].as_array().into_iter().flatten().zip(e["dividends"].as_array().into_iter().flatten()).zip(e["emission"].as_array().into_iter().flatten());
                    for (uid, ((i, d), em)) in zipped.enumerate() {
                        if em.as_u64().unwrap_or(0) > 0 {
                            t.push_str(&format!(
                                "  uid {uid:>3}: incentive {:.4}  dividends {:.4}  emission {} α\n",
                                i.as_u64().unwrap_or(0) as f64 / 65_535.0,
                                d.as_u64().unwrap_or(0) as f64 / 65_535.0,
                                format_tao(em.as_u64().unwrap_or(0))
                            ));
                        }
                    }
                }
                if t.is_empty() {
                    t = format!("subnet {netuid} has not run an epoch yet");
                }
                t.trim_end().to_string()
            });
        }
        SubnetCmd::Serve {
            netuid,
            hotkey,
            addrs,
            sign,
        } => {
            for a in &addrs {
                agora_core::subnet::serve::check_addr(a).map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let call = Call::Serve {
                netuid,
                addrs: addrs.clone(),
            };
            let extra = json!({"netuid": netuid, "addrs": addrs});
            sign.submit(
                &KeyRole::Hotkey(hotkey),
                call,
                "serve",
                extra,
                |s| format!("{}: serving info published", s.human()),
                out,
            )
            .await?;
        }
        SubnetCmd::SetModel {
            netuid,
            hotkey,
            model,
            sign,
        } => {
            let bytes = std::fs::read(&model)
                .with_context(|| format!("reading model {}", model.display()))?;
            agora_compute::model::Model::from_bytes(&bytes)
                .with_context(|| format!("{} is not a model Agora runs", model.display()))?;
            let hash = crate::neuron::inference_task::model_hash(&bytes);
            let entry = crate::neuron::inference_task::model_entry(&hash);
            let extra = json!({"netuid": netuid, "model": model, "hash": hash, "entry": entry});
            sign.submit(
                &KeyRole::Hotkey(hotkey),
                Call::Serve {
                    netuid,
                    addrs: vec![entry],
                },
                "set_model",
                extra,
                |s| format!("{}: subnet {netuid} runs model {hash}", s.human()),
                out,
            )
            .await?;
        }
        SubnetCmd::LockCost(rpc) => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("subnet_lockCost", Value::Null)
                .await?;
            out.print(&v, || {
                format!("creating a subnet locks {}", tao(&v["lock_cost"]))
            });
        }
    }
    Ok(())
}
