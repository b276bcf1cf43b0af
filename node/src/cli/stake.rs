//! `agora stake ...`: add, remove, move, transfer, swap, unstake-all, list, take.

use agora_core::{format_tao, parse_tao, AccountId, Call};
use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;

use super::output::text;
use super::subnet::SignOpts;
use super::tx::send;
use super::wallet::WalletOpts;
use super::{Out, RpcOpts};
use crate::client::RpcClient;
use crate::wallet::KeyRole;

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
    /// Move stake to another hotkey and/or subnet (netuid 0 is root). Across subnets it is
    /// sold and bought back, paying the swap fee once.
    Move {
        #[arg(long)]
        origin_netuid: u16,
        #[arg(long)]
        origin_hotkey: String,
        #[arg(long)]
        dest_netuid: u16,
        #[arg(long)]
        dest_hotkey: String,
        /// Alpha to move (of the origin subnet).
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// Give stake on a hotkey to another coldkey (optionally into another subnet).
    Transfer {
        /// The receiving coldkey's address.
        #[arg(long)]
        dest: String,
        #[arg(long)]
        hotkey: String,
        #[arg(long)]
        origin_netuid: u16,
        /// Default: the origin netuid.
        #[arg(long)]
        dest_netuid: Option<u16>,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// Move stake on a hotkey from one subnet to another.
    Swap {
        #[arg(long)]
        hotkey: String,
        #[arg(long)]
        origin_netuid: u16,
        #[arg(long)]
        dest_netuid: u16,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// Unstake everything the wallet's coldkey holds on a hotkey, on every subnet and root.
    UnstakeAll {
        #[arg(long)]
        hotkey: String,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// Set the take a hotkey you own charges nominators (percent; default 18, the maximum).
    /// Raising it is rate limited; lowering it is not.
    Take {
        #[arg(long, default_value = "default")]
        hotkey: String,
        /// New take in percent, e.g. 9 or 4.5.
        #[arg(long)]
        percent: f64,
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

pub async fn run(cmd: StakeCmd, out: Out) -> anyhow::Result<()> {
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
        StakeCmd::Move {
            origin_netuid,
            origin_hotkey,
            dest_netuid,
            dest_hotkey,
            amount,
            sign,
        } => {
            let amount = parse_tao(&amount)?;
            let (from, to) = (
                sign.hotkey_address(&origin_hotkey)?,
                sign.hotkey_address(&dest_hotkey)?,
            );
            let call = Call::MoveStake {
                origin_hotkey: from,
                dest_hotkey: to,
                origin_netuid,
                dest_netuid,
                amount,
            };
            let extra = json!({"origin_netuid": origin_netuid, "origin_hotkey": from, "dest_netuid": dest_netuid, "dest_hotkey": to, "amount": amount});
            sign.submit(
                &KeyRole::Coldkey,
                call,
                "move_stake",
                extra,
                |s| s.human(),
                out,
            )
            .await?;
        }
        StakeCmd::Transfer {
            dest,
            hotkey,
            origin_netuid,
            dest_netuid,
            amount,
            sign,
        } => {
            let amount = parse_tao(&amount)?;
            let dest: AccountId = dest.parse()?;
            let hotkey = sign.hotkey_address(&hotkey)?;
            let dest_netuid = dest_netuid.unwrap_or(origin_netuid);
            let call = Call::TransferStake {
                dest_coldkey: dest,
                hotkey,
                origin_netuid,
                dest_netuid,
                amount,
            };
            let extra = json!({"dest_coldkey": dest, "hotkey": hotkey, "origin_netuid": origin_netuid, "dest_netuid": dest_netuid, "amount": amount});
            sign.submit(
                &KeyRole::Coldkey,
                call,
                "transfer_stake",
                extra,
                |s| s.human(),
                out,
            )
            .await?;
        }
        StakeCmd::Swap {
            hotkey,
            origin_netuid,
            dest_netuid,
            amount,
            sign,
        } => {
            let amount = parse_tao(&amount)?;
            let hotkey = sign.hotkey_address(&hotkey)?;
            let call = Call::SwapStake {
                hotkey,
                origin_netuid,
                dest_netuid,
                amount,
            };
            let extra = json!({"hotkey": hotkey, "origin_netuid": origin_netuid, "dest_netuid": dest_netuid, "amount": amount});
            sign.submit(
                &KeyRole::Coldkey,
                call,
                "swap_stake",
                extra,
                |s| s.human(),
                out,
            )
            .await?;
        }
        StakeCmd::UnstakeAll { hotkey, sign } => {
            let hotkey = sign.hotkey_address(&hotkey)?;
            let extra = json!({"hotkey": hotkey});
            sign.submit(
                &KeyRole::Coldkey,
                Call::UnstakeAll { hotkey },
                "unstake_all",
                extra,
                |s| s.human(),
                out,
            )
            .await?;
        }
        StakeCmd::Take {
            hotkey,
            percent,
            sign,
        } => {
            if !(0.0..=100.0).contains(&percent) {
                bail!("--percent must be between 0 and 100");
            }
            let take = (percent / 100.0 * 65_535.0).round() as u16;
            let hotkey = sign.hotkey_address(&hotkey)?;
            let info = sign
                .client()
                .call("hotkey_info", json!({"hotkey": hotkey}))
                .await?;
            let current = info["take"].as_u64().unwrap_or(0);
            let call = match u64::from(take).cmp(&current) {
                std::cmp::Ordering::Greater => Call::IncreaseTake { hotkey, take },
                std::cmp::Ordering::Less => Call::DecreaseTake { hotkey, take },
                std::cmp::Ordering::Equal => bail!("the take of {hotkey} is already {percent}%"),
            };
            let what = call.name();
            let extra = json!({"hotkey": hotkey, "take": take, "previous": current});
            sign.submit(
                &KeyRole::Coldkey,
                call,
                what,
                extra,
                |s| format!("{}: take is now {percent}%", s.human()),
                out,
            )
            .await?;
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
                .call_list("stake_list", json!({"coldkey": coldkey}), "positions")
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
