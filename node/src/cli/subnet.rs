//! `agora subnet|stake|weights ...`: btcli's verbs for the subnet market.

use std::time::Duration;

use agora_core::{format_tao, parse_tao, AccountId, Call};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::output::{tao, text};
use super::tx::send;
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
    fn key(&self, role: &KeyRole) -> anyhow::Result<agora_core::Keypair> {
        self.wallet
            .dir()?
            .load(&self.name, role, &self.wallet.password(false)?)
    }
    fn wait(&self) -> Option<Duration> {
        (!self.no_wait).then(|| Duration::from_secs(self.timeout))
    }
    fn client(&self) -> RpcClient {
        RpcClient::new(&self.rpc.rpc_url)
    }
    fn hotkey_address(&self, hotkey: &str) -> anyhow::Result<AccountId> {
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
}

/// Price protection for stake commands.
#[derive(Args, Debug, Clone)]
pub struct LimitOpts {
    /// Never trade past this price (TAO per alpha): a ceiling when staking, a floor when unstaking.
    #[arg(long, conflicts_with = "tolerance")]
    pub limit_price: Option<String>,
    /// Slippage tolerance as a fraction of the current price (0.05 = 5%).
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// With a limit: trade what fits under it instead of failing.
    #[arg(long)]
    pub partial: bool,
}

impl LimitOpts {
    /// The limit in rao per alpha, from `--limit-price` or `--tolerance` around `price_rao`.
    fn limit_rao(&self, price_rao: u64, buying: bool) -> anyhow::Result<Option<u64>> {
        if let Some(p) = &self.limit_price {
            return Ok(Some(parse_tao(p)?));
        }
        match self.tolerance {
            None => Ok(None),
            Some(t) if !(0.0..10.0).contains(&t) => {
                bail!("--tolerance must be a fraction like 0.05")
            }
            Some(t) => {
                let factor = if buying { 1.0 + t } else { 1.0 - t };
                Ok(Some((price_rao as f64 * factor) as u64))
            }
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum StakeCmd {
    /// Stake TAO on a hotkey in a subnet (shows a quote first).
    Add {
        #[arg(long)]
        netuid: u16,
        /// Hotkey name in the wallet, or any hotkey address.
        #[arg(long)]
        hotkey: String,
        /// TAO to stake.
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        limit: LimitOpts,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// Unstake alpha from a hotkey in a subnet (shows a quote first).
    Remove {
        #[arg(long)]
        netuid: u16,
        #[arg(long)]
        hotkey: String,
        /// Alpha to unstake (9 decimals).
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        limit: LimitOpts,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// A coldkey's stakes across subnets.
    List {
        #[arg(long, required_unless_present = "address")]
        name: Option<String>,
        #[arg(long)]
        address: Option<String>,
        #[command(flatten)]
        wallet: WalletOpts,
        #[command(flatten)]
        rpc: RpcOpts,
    },
}

#[derive(Subcommand, Debug)]
pub enum WeightsCmd {
    /// Set weights from a hotkey of the wallet (signed by the hotkey, fee-free).
    Set {
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
    },
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
                let list = client.call("subnet_list", Value::Null).await?;
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
                .call("subnet_list", Value::Null)
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
            let list = client.call("subnet_list", Value::Null).await?;
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
                .call("subnet_list", Value::Null)
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

pub async fn run_stake(cmd: StakeCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        StakeCmd::Add {
            netuid,
            hotkey,
            amount,
            limit,
            sign,
        } => {
            stake_trade(true, netuid, &hotkey, &amount, &limit, &sign, out).await?;
        }
        StakeCmd::Remove {
            netuid,
            hotkey,
            amount,
            limit,
            sign,
        } => {
            stake_trade(false, netuid, &hotkey, &amount, &limit, &sign, out).await?;
        }
        StakeCmd::List {
            name,
            address,
            wallet,
            rpc,
        } => {
            let coldkey: AccountId = match (address, name) {
                (Some(a), _) => a.parse()?,
                (None, Some(n)) => wallet.dir()?.address(&n, &KeyRole::Coldkey)?,
                _ => bail!("give --name or --address"),
            };
            let v = RpcClient::new(&rpc.rpc_url)
                .call("stake_list", json!({"coldkey": coldkey}))
                .await?;
            out.print(&v, || {
                let mut t = format!(
                    "stakes of {coldkey}\n{:>6}  {:>4}  {:<48}  {:>16}  {:>16}",
                    "netuid", "uid", "hotkey", "alpha", "TAO value"
                );
                for s in v.as_array().into_iter().flatten() {
                    t.push_str(&format!(
                        "\n{:>6}  {:>4}  {:<48}  {:>16}  {:>16}",
                        s["netuid"],
                        s["uid"],
                        text(&s["hotkey"]),
                        format_tao(s["alpha"].as_u64().unwrap_or(0)),
                        format_tao(s["tao_value"].as_u64().unwrap_or(0))
                    ));
                }
                t
            });
        }
    }
    Ok(())
}

/// Stake (`buying`) or unstake: quote first, then the plain or limit call.
async fn stake_trade(
    buying: bool,
    netuid: u16,
    hotkey: &str,
    amount: &str,
    limit: &LimitOpts,
    sign: &SignOpts,
    out: Out,
) -> anyhow::Result<()> {
    let amount = parse_tao(amount)?;
    let hotkey = sign.hotkey_address(hotkey)?;
    let key = sign.key(&KeyRole::Coldkey)?;
    let client = sign.client();
    let direction = if buying { "buy" } else { "sell" };
    let q = client
        .call(
            "sim_swap",
            json!({"netuid": netuid, "direction": direction, "amount": amount}),
        )
        .await?;
    if let Some(e) = q.get("error") {
        bail!(
            "cannot {} on subnet {netuid}: {}",
            if buying { "stake" } else { "unstake" },
            text(e)
        );
    }
    let rao = |k: &str| format_tao(q[k].as_u64().unwrap_or(0));
    out.progress(&if buying {
        format!(
            "quote: {} TAO buys {} α (fee {} TAO), price {} -> {} TAO/α",
            format_tao(amount),
            rao("amount_out"),
            rao("fee"),
            rao("price_before_rao"),
            rao("price_after_rao")
        )
    } else {
        format!(
            "quote: {} α sells for about {} TAO, price {} -> {} TAO/α",
            format_tao(amount),
            rao("amount_out"),
            rao("price_before_rao"),
            rao("price_after_rao")
        )
    });
    let price = q["price_before_rao"].as_u64().unwrap_or(0);
    let call = match (limit.limit_rao(price, buying)?, buying) {
        (None, true) => Call::AddStake {
            hotkey,
            netuid,
            amount,
        },
        (None, false) => Call::RemoveStake {
            hotkey,
            netuid,
            amount,
        },
        (Some(limit_price), true) => Call::AddStakeLimit {
            hotkey,
            netuid,
            amount,
            limit_price,
            allow_partial: limit.partial,
        },
        (Some(limit_price), false) => Call::RemoveStakeLimit {
            hotkey,
            netuid,
            amount,
            limit_price,
            allow_partial: limit.partial,
        },
    };
    let what = if buying { "add_stake" } else { "remove_stake" };
    let sent = send(&client, &key, call, 0, sign.wait(), what, out).await?;
    out.print(
        &sent.to_json(json!({"netuid": netuid, "hotkey": hotkey, "amount": amount, "quote": q})),
        || sent.human(),
    );
    Ok(())
}

pub async fn run_weights(cmd: WeightsCmd, out: Out) -> anyhow::Result<()> {
    let WeightsCmd::Set {
        netuid,
        hotkey,
        uids,
        weights,
        sign,
    } = cmd;
    if uids.len() != weights.len() {
        bail!("{} uids but {} weights", uids.len(), weights.len());
    }
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        bail!("weights must be non-negative numbers");
    }
    let max = weights.iter().copied().fold(0.0, f64::max);
    let values: Vec<u16> = weights
        .iter()
        .map(|w| {
            if max == 0.0 {
                0
            } else {
                (w / max * 65_535.0).round() as u16
            }
        })
        .collect();
    let key = sign.key(&KeyRole::Hotkey(hotkey.clone()))?;
    let call = Call::SetWeights {
        netuid,
        uids: uids.clone(),
        values: values.clone(),
        version_key: 0,
    };
    let sent = send(
        &sign.client(),
        &key,
        call,
        0,
        sign.wait(),
        "set_weights",
        out,
    )
    .await?;
    out.print(
        &sent.to_json(
            json!({"netuid": netuid, "hotkey": key.account(), "uids": uids, "values": values}),
        ),
        || sent.human(),
    );
    Ok(())
}
