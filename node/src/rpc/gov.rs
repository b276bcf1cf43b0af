//! Governance RPC: `gov_proposals`, `gov_proposal`, `gov_votes`, `gov_concentration`.
//! Each reads committed state at the head through the chain actor.

use agora_core::genesis::ChainParams;
use agora_core::gov::{self, concentration, power, Status};
use agora_core::ledger::params_in_force;
use agora_core::state::StateRead;
use serde_json::{json, Value};

use crate::NodeError;

fn internal(e: impl std::fmt::Display) -> NodeError {
    NodeError::Internal(e.to_string())
}

/// The newest `limit` proposals, newest first, and the ids still open or awaiting
/// enactment.
pub fn proposals(s: &dyn StateRead, limit: u64) -> Result<Value, NodeError> {
    let reg = gov::registry(s)?;
    let mut out = Vec::new();
    for id in (0..reg.next_id)
        .rev()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
    {
        if let Some(p) = gov::proposal(s, id)? {
            out.push(serde_json::to_value(&p).map_err(internal)?);
        }
    }
    Ok(json!({"proposals": out, "live": reg.live}))
}

/// One proposal; while it is open, `current_tally` weighs its votes with the state now (what
/// the tally would say if the vote closed at this block).
pub fn proposal(
    s: &dyn StateRead,
    genesis: &ChainParams,
    id: u64,
    head: u64,
) -> Result<Option<Value>, NodeError> {
    let Some(p) = gov::proposal(s, id)? else {
        return Ok(None);
    };
    let params = params_in_force(s, genesis)?;
    let mut v = serde_json::to_value(&p).map_err(internal)?;
    if p.status == Status::Voting {
        let t = gov::tally(s, &params, &p, head)?;
        let verdict = gov::verdict(&params.gov, &p, &t);
        v["current_tally"] = serde_json::to_value(&t).map_err(internal)?;
        v["verdict_if_closed_now"] = serde_json::to_value(&verdict).map_err(internal)?;
    }
    v["voting_power"] = json!(gov::mode_name(params.gov.voting_power));
    Ok(Some(v))
}

/// Every vote on a proposal with the voter's power read from the state now.
pub fn votes(
    s: &dyn StateRead,
    genesis: &ChainParams,
    id: u64,
) -> Result<Option<Value>, NodeError> {
    if gov::proposal(s, id)?.is_none() {
        return Ok(None);
    }
    let params = params_in_force(s, genesis)?;
    let votes = gov::votes(s, id)?;
    let voters: Vec<_> = votes.iter().map(|(v, _)| *v).collect();
    let w = power::weigh(s, &params, &voters)?;
    let rows: Vec<Value> = votes
        .iter()
        .map(|(voter, choice)| {
            let p = w.power.get(voter).copied().unwrap_or(0);
            json!({"voter": voter, "choice": choice, "power": u64::try_from(p).unwrap_or(u64::MAX)})
        })
        .collect();
    Ok(Some(json!({"proposal": id, "votes": rows})))
}

/// Concentration of governance power, root stake, each subnet's validator stake weight
/// and the consensus validator set.
pub fn concentration(s: &dyn StateRead, genesis: &ChainParams) -> Result<Value, NodeError> {
    let params = params_in_force(s, genesis)?;
    let mut v = serde_json::to_value(concentration::report(s, &params)?).map_err(internal)?;
    v["voting_power"] = json!(gov::mode_name(params.gov.voting_power));
    Ok(v)
}
