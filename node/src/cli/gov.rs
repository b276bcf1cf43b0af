//! `agora gov propose|vote|list|show|votes|concentration`: on-chain governance.

use agora_core::gov::{Action, Choice};
use agora_core::{format_tao, AccountId, Call};
use anyhow::{anyhow, bail};
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::output::{tao, text};
use super::subnet::SignOpts;
use super::tx::send;
use super::{Out, RpcOpts};
use crate::client::RpcClient;
use crate::wallet::KeyRole;

#[derive(Subcommand, Debug)]
pub enum GovCmd {
    /// Open a proposal (holds the deposit until the tally). Signed by the coldkey, or by a
    /// hotkey with `--hotkey` (a validator proposing with its delegated stake).
    Propose {
        #[command(subcommand)]
        action: ProposeAction,
    },
    /// Vote on an open proposal: yes, no, veto (no with veto) or abstain. A hotkey votes its
    /// nominators' stake (`--hotkey NAME`); a coldkey's own vote overrides its hotkeys'.
    Vote {
        id: u64,
        choice: VoteChoice,
        /// Vote with this hotkey of the wallet instead of the coldkey.
        #[arg(long)]
        hotkey: Option<String>,
        #[command(flatten)]
        sign: SignOpts,
    },
    /// Proposals, newest first.
    List {
        #[arg(long, default_value_t = 32)]
        limit: u64,
        #[command(flatten)]
        rpc: RpcOpts,
    },
    /// One proposal: its action, schedule, status, and the tally so far.
    Show {
        id: u64,
        #[command(flatten)]
        rpc: RpcOpts,
    },
    /// The votes on a proposal with each voter's power now.
    Votes {
        id: u64,
        #[command(flatten)]
        rpc: RpcOpts,
    },
    /// How concentrated power is: Nakamoto coefficients, top-5 share, Gini and HHI of
    /// governance power, root stake, each subnet's validators and the consensus set.
    Concentration(RpcOpts),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum VoteChoice {
    Yes,
    No,
    Veto,
    Abstain,
}

#[derive(clap::Args, Debug)]
pub struct ProposeOpts {
    /// The emergency track: a shorter vote with a higher approval bar.
    #[arg(long)]
    emergency: bool,
    /// Propose with this hotkey of the wallet (its delegated stake) instead of the coldkey.
    #[arg(long)]
    hotkey: Option<String>,
    #[command(flatten)]
    sign: SignOpts,
}

#[derive(Subcommand, Debug)]
pub enum ProposeAction {
    /// Change a chain parameter (base_fee_rao, per_byte_fee_rao, block_time_ms,
    /// subnet_limit, tao_weight_ppm, emission_mode, treasury_ppm, quorum_ppm, ...).
    Param {
        #[arg(value_name = "NAME")]
        param: String,
        value: u64,
        #[command(flatten)]
        opts: ProposeOpts,
    },
    /// Change a subnet hyperparameter with the admin's ranges.
    Hyperparameter {
        netuid: u16,
        #[arg(value_name = "NAME")]
        param: String,
        value: u64,
        #[command(flatten)]
        opts: ProposeOpts,
    },
    /// Pay TAO from the treasury.
    Spend {
        #[arg(long)]
        dest: AccountId,
        /// TAO (decimal).
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        opts: ProposeOpts,
    },
    /// Replace the consensus validator set: ADDRESS[:POWER],... (power 1 by default).
    Validators {
        #[arg(long, value_delimiter = ',', required = true)]
        set: Vec<String>,
        #[command(flatten)]
        opts: ProposeOpts,
    },
    /// A text signal.
    Text {
        text: String,
        #[command(flatten)]
        opts: ProposeOpts,
    },
}

fn role(hotkey: &Option<String>) -> KeyRole {
    match hotkey {
        Some(h) => KeyRole::Hotkey(h.clone()),
        None => KeyRole::Coldkey,
    }
}

fn validator(entry: &str) -> anyhow::Result<(AccountId, u64)> {
    let (addr, power) = match entry.rsplit_once(':') {
        Some((a, p)) => (
            a,
            p.parse::<u64>()
                .map_err(|e| anyhow!("power in {entry:?}: {e}"))?,
        ),
        None => (entry, 1),
    };
    Ok((
        addr.parse()
            .map_err(|e| anyhow!("address in {entry:?}: {e}"))?,
        power,
    ))
}

pub async fn run(cmd: GovCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        GovCmd::Propose { action } => propose(action, out).await,
        GovCmd::Vote {
            id,
            choice,
            hotkey,
            sign,
        } => {
            let choice = match choice {
                VoteChoice::Yes => Choice::Yes,
                VoteChoice::No => Choice::No,
                VoteChoice::Veto => Choice::NoWithVeto,
                VoteChoice::Abstain => Choice::Abstain,
            };
            sign.submit(
                &role(&hotkey),
                Call::Vote {
                    proposal: id,
                    choice,
                },
                "vote",
                json!({"proposal": id, "choice": choice}),
                |s| {
                    format!(
                        "{}: voted {} on proposal {id}",
                        s.human(),
                        json!(choice).as_str().unwrap_or("?")
                    )
                },
                out,
            )
            .await?;
            Ok(())
        }
        GovCmd::List { limit, rpc } => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("gov_proposals", json!({"limit": limit}))
                .await?;
            out.print(&v, || {
                let mut t = format!(
                    "{:>4}  {:<10}  {:<9}  {:>8}  {:>8}  action",
                    "id", "status", "track", "votes to", "enact at"
                );
                for p in v["proposals"].as_array().into_iter().flatten() {
                    t.push_str(&format!(
                        "\n{:>4}  {:<10}  {:<9}  {:>8}  {:>8}  {}",
                        text(&p["id"]),
                        text(&p["status"]["status"]),
                        if p["emergency"] == true {
                            "emergency"
                        } else {
                            "normal"
                        },
                        text(&p["voting_ends"]),
                        text(&p["enact_at"]),
                        describe(&p["action"])
                    ));
                }
                t
            });
            Ok(())
        }
        GovCmd::Show { id, rpc } => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("gov_proposal", json!({"id": id}))
                .await?;
            out.print(&v, || {
                let mut t = format!(
                    "proposal {id}: {}\n  proposer {}, {} track, deposit {} TAO\n  submitted at block {}, votes until block {}, enacted at block {} if it passes\n  status: {}",
                    describe(&v["action"]),
                    text(&v["proposer"]),
                    if v["emergency"] == true { "emergency" } else { "normal" },
                    format_tao(v["deposit"].as_u64().unwrap_or(0)),
                    v["submitted_at"], v["voting_ends"], v["enact_at"],
                    status_line(&v["status"]),
                );
                let tally = if v["tally"].is_null() { &v["current_tally"] } else { &v["tally"] };
                if !tally.is_null() {
                    // Stake power is in rao: shown in TAO; seats and square roots as they are.
                    let stake = v["voting_power"] == "stake";
                    let p = |x: &Value| if stake { tao(x) } else { text(x) };
                    let lin = |x: &Value| if v["voting_power"] == "quadratic" || stake { tao(x) } else { text(x) };
                    t.push_str(&format!(
                        "\n  tally ({} voting, at block {}): yes {}, no {}, veto {}, abstain {}; turnout {} of {}",
                        text(&v["voting_power"]), tally["block"],
                        p(&tally["yes"]), p(&tally["no"]), p(&tally["no_with_veto"]), p(&tally["abstain"]),
                        lin(&tally["turnout"]), lin(&tally["total"])
                    ));
                }
                if !v["verdict_if_closed_now"].is_null() {
                    t.push_str(&format!(
                        "\n  if the vote closed now: {}",
                        status_line(&v["verdict_if_closed_now"])
                    ));
                }
                t
            });
            Ok(())
        }
        GovCmd::Votes { id, rpc } => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("gov_votes", json!({"id": id}))
                .await?;
            out.print(&v, || {
                let mut t = format!(
                    "votes on proposal {id}\n{:<48}  {:<14}  {:>20}",
                    "voter", "choice", "power now"
                );
                for r in v["votes"].as_array().into_iter().flatten() {
                    t.push_str(&format!(
                        "\n{:<48}  {:<14}  {:>20}",
                        text(&r["voter"]),
                        text(&r["choice"]),
                        r["power"]
                    ));
                }
                t
            });
            Ok(())
        }
        GovCmd::Concentration(rpc) => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("gov_concentration", Value::Null)
                .await?;
            out.print(&v, || {
                let mut t = format!(
                    "concentration at block {} ({} voting)\n{:<22}  {:>7}  {:>9}  {:>9}  {:>6}  {:>6}  {:>6}",
                    v["height"], text(&v["voting_power"]),
                    "what", "holders", "N(>1/3)", "N(>1/2)", "top-5", "gini", "hhi"
                );
                let mut row = |name: String, c: &Value| {
                    t.push_str(&format!(
                        "\n{:<22}  {:>7}  {:>9}  {:>9}  {:>5.1}%  {:>6.3}  {:>6.3}",
                        name,
                        text(&c["holders"]),
                        text(&c["nakamoto_third"]),
                        text(&c["nakamoto_half"]),
                        c["top5_share"].as_f64().unwrap_or(0.0) * 100.0,
                        c["gini"].as_f64().unwrap_or(0.0),
                        c["hhi"].as_f64().unwrap_or(0.0),
                    ));
                };
                row("governance power".into(), &v["governance"]);
                row("root stake".into(), &v["root_stake"]);
                for s in v["subnets"].as_array().into_iter().flatten() {
                    row(format!("subnet {} validators", s["netuid"]), s);
                }
                row("consensus validators".into(), &v["validator_set"]);
                t
            });
            Ok(())
        }
    }
}

fn status_line(s: &Value) -> String {
    match s["status"].as_str() {
        Some("rejected") => format!("rejected ({})", text(&s["reason"])),
        Some("enacted") => format!("enacted in block {}", s["block"]),
        Some("failed") => format!("failed in block {} ({})", s["block"], text(&s["reason"])),
        Some(other) => other.replace('_', " "),
        None => s.to_string(),
    }
}

fn describe(a: &Value) -> String {
    match a["kind"].as_str() {
        Some("set_chain_param") => format!("set {} = {}", text(&a["name"]), a["value"]),
        Some("set_hyperparameter") => format!(
            "set subnet {} {} = {}",
            a["netuid"],
            text(&a["name"]),
            a["value"]
        ),
        Some("treasury_spend") => format!(
            "pay {} TAO from the treasury to {}",
            format_tao(a["amount"].as_u64().unwrap_or(0)),
            text(&a["dest"])
        ),
        Some("set_validators") => format!(
            "validator set of {}",
            a["validators"].as_array().map_or(0, Vec::len)
        ),
        Some("text") => format!("signal: {}", text(&a["text"])),
        _ => a.to_string(),
    }
}

async fn propose(action: ProposeAction, out: Out) -> anyhow::Result<()> {
    let (action, opts) = match action {
        ProposeAction::Param {
            param: name,
            value,
            opts,
        } => (Action::SetChainParam { name, value }, opts),
        ProposeAction::Hyperparameter {
            netuid,
            param: name,
            value,
            opts,
        } => (
            Action::SetHyperparameter {
                netuid,
                name,
                value,
            },
            opts,
        ),
        ProposeAction::Spend { dest, amount, opts } => (
            Action::TreasurySpend {
                dest,
                amount: agora_core::parse_tao(&amount)?,
            },
            opts,
        ),
        ProposeAction::Validators { set, opts } => (
            Action::SetValidators {
                validators: set
                    .iter()
                    .map(|e| validator(e))
                    .collect::<anyhow::Result<_>>()?,
            },
            opts,
        ),
        ProposeAction::Text { text, opts } => (Action::Text { text }, opts),
    };
    let sign = &opts.sign;
    let key = sign.key(&role(&opts.hotkey))?;
    let client = sign.client();
    let sent = send(
        &client,
        &key,
        Call::Propose {
            action: action.clone(),
            emergency: opts.emergency,
        },
        0,
        sign.wait(),
        "propose",
        out,
    )
    .await?;
    let mut id = Value::Null;
    let mut schedule = Value::Null;
    if let Some(f) = &sent.finalized {
        // The newest proposal this key made in that block.
        let list = client.call("gov_proposals", json!({"limit": 64})).await?;
        if let Some(p) = list["proposals"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                p["proposer"] == json!(key.account()) && p["submitted_at"] == f["block_height"]
            })
        {
            id = p["id"].clone();
            schedule = json!({"voting_ends": p["voting_ends"], "enact_at": p["enact_at"]});
        } else {
            bail!(
                "proposal included in block {} but not found by gov_proposals",
                f["block_height"]
            );
        }
    }
    let v = sent.to_json(json!({"id": id, "schedule": schedule, "action": action}));
    out.print(&v, || {
        format!(
            "{}: proposal {id}; votes until block {}, enacted at block {} if it passes",
            sent.human(),
            schedule["voting_ends"],
            schedule["enact_at"]
        )
    });
    Ok(())
}
