//! `agora root register|list|weights`: the root network (netuid 0).

use agora_core::{format_tao, Call};
use anyhow::bail;
use clap::Subcommand;
use serde_json::{json, Value};

use super::output::text;
use super::subnet::SignOpts;
use super::{Out, RpcOpts};
use crate::client::RpcClient;
use crate::wallet::KeyRole;

#[derive(Subcommand, Debug)]
pub enum RootCmd {
    /// Join the root network with a hotkey (a full root admits you only with more root
    /// stake than its smallest member). Stake on root with `agora stake add --netuid 0`.
    Register {
        #[arg(long, default_value = "default")]
        hotkey: String,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// Root members, their root stake and weights, and the emission split.
    List(RpcOpts),
    /// Legacy `root_weights` mode: a root member's weights over subnets (signed by the hotkey).
    Weights {
        #[arg(long, default_value = "default")]
        hotkey: String,
        #[arg(long, value_delimiter = ',')]
        netuids: Vec<u16>,
        #[arg(long, value_delimiter = ',')]
        weights: Vec<u16>,
        #[command(flatten)]
        sign: SignOpts,
    },
}

pub async fn run(cmd: RootCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        RootCmd::Register { hotkey, sign } => {
            let hot = sign.hotkey_address(&hotkey)?;
            sign.submit(
                &KeyRole::Coldkey,
                Call::RootRegister { hotkey: hot },
                "root_register",
                json!({"hotkey": hot}),
                |s| format!("{}: {hot} joined the root network", s.human()),
                out,
            )
            .await?;
        }
        RootCmd::List(rpc) => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("root_info", Value::Null)
                .await?;
            out.print(&v, || {
                let mut t = format!(
                    "root: {} TAO staked, tao_weight {}, emission mode {}\n{:>4}  {:<48}  {:>16}  weights",
                    format_tao(v["total_stake"].as_u64().unwrap_or(0)),
                    v["tao_weight"],
                    text(&v["emission_mode"]),
                    "uid",
                    "hotkey",
                    "root stake TAO"
                );
                for m in v["members"].as_array().into_iter().flatten() {
                    t.push_str(&format!(
                        "\n{:>4}  {:<48}  {:>16}  {}",
                        m["uid"],
                        text(&m["hotkey"]),
                        format_tao(m["root_stake"].as_u64().unwrap_or(0)),
                        m["weights"]
                    ));
                }
                t
            });
        }
        RootCmd::Weights {
            hotkey,
            netuids,
            weights,
            sign,
        } => {
            if netuids.len() != weights.len() {
                bail!("{} netuids but {} weights", netuids.len(), weights.len());
            }
            let call = Call::SetWeights {
                netuid: 0,
                uids: netuids.clone(),
                values: weights.clone(),
                version_key: 0,
            };
            sign.submit(
                &KeyRole::Hotkey(hotkey),
                call,
                "set_root_weights",
                json!({"netuids": netuids, "weights": weights}),
                |s| s.human(),
                out,
            )
            .await?;
        }
    }
    Ok(())
}
