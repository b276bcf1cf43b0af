//! On-chain governance (PROTOCOL §7): proposals, votes with delegation, tally and
//! enactment in the coinbase, and a treasury.
//!
//! A proposal names one [`Action`] and a track (normal or emergency). Proposing needs
//! `proposal_min_stake_rao` of stake power and holds `deposit_rao` in escrow. Votes (yes,
//! no, no-with-veto, abstain; a later vote replaces an earlier one) are open for the
//! track's voting period. The coinbase of the first block after it tallies, with power
//! read from the state then ([`power`]): below quorum, rejected; veto above `veto_ppm` of
//! the votes, vetoed and the deposit burned; yes above the track's approval share of yes +
//! no + veto, passed; otherwise rejected. The deposit is returned unless vetoed. A passed
//! proposal is enacted atomically in the coinbase of its announced block (`enact_at`,
//! fixed when it is proposed); an action that fails then (a treasury too poor, a subnet
//! gone) is recorded as failed with the reason, and changes nothing.
//!
//! In `senate` mode only the senators' votes count and a proposal passes with more than
//! half of all seats (no quorum or veto, as Bittensor's Senate had).

pub mod concentration;
pub mod params;
pub mod power;
#[cfg(test)]
mod tests;

use bincode::{Decode, Encode};
use serde::Serialize;

pub use params::{GovParams, PowerMode};

use crate::crypto::{hash_with_domain, AccountId};
use crate::genesis::ChainParams;
use crate::state::{self, read, Overlay, StateError, StateRead};
use crate::subnet::{self, Netuid, TxFailure};

/// Most proposals open or waiting for enactment at once.
pub const MAX_LIVE_PROPOSALS: usize = 16;
/// Most accounts voting on one proposal (bounds the tally's work in one coinbase).
pub const MAX_VOTERS: usize = 1_024;
/// Longest text of a signal proposal, bytes.
pub const MAX_TEXT_BYTES: usize = 1_024;
/// Most validators a set-validators proposal names.
pub const MAX_VALIDATORS: usize = 128;

/// What a proposal does when enacted.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Set a chain parameter ([`params::CHAIN_PARAMS`]).
    SetChainParam { name: String, value: u64 },
    /// Set a subnet hyperparameter, with the chain admin's ranges.
    SetHyperparameter {
        netuid: Netuid,
        name: String,
        value: u64,
    },
    /// Pay `amount` rao from the treasury to `dest`.
    TreasurySpend { dest: AccountId, amount: u64 },
    /// Replace the consensus validator set (with voting powers): it certifies blocks from
    /// two after the enactment block ([`VALIDATOR_SET_LEAD`]).
    SetValidators { validators: Vec<(AccountId, u64)> },
    /// A signal: recorded, changes nothing.
    Text { text: String },
}

/// A vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    Yes,
    No,
    NoWithVeto,
    Abstain,
}

/// Where a proposal stands.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Voting,
    /// Passed; enacted at `enact_at`.
    Passed,
    Rejected {
        reason: String,
    },
    Vetoed,
    Enacted {
        block: u64,
    },
    Failed {
        block: u64,
        reason: String,
    },
}

/// A tally: power per choice in the mode's units, and turnout and total in the quorum's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Tally {
    pub yes: u64,
    pub no: u64,
    pub no_with_veto: u64,
    pub abstain: u64,
    pub turnout: u64,
    pub total: u64,
    pub voters: u32,
    pub block: u64,
}

/// One proposal.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Proposal {
    pub id: u64,
    pub proposer: AccountId,
    pub action: Action,
    pub emergency: bool,
    pub submitted_at: u64,
    /// Last block in which votes are accepted.
    pub voting_ends: u64,
    /// Block whose coinbase enacts it, if it passes.
    pub enact_at: u64,
    pub deposit: u64,
    pub status: Status,
    pub tally: Option<Tally>,
    /// Votes cast (a changed vote counts once).
    pub voters: u32,
}

/// The registry: the next id and the proposals not yet finished.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Registry {
    pub next_id: u64,
    pub live: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GovError {
    #[error("no chain parameter named {0:?} can be changed by a proposal")]
    UnknownParameter(String),
    #[error("{name} = {value} is outside {range}")]
    ParameterOutOfRange {
        name: &'static str,
        value: u64,
        range: &'static str,
    },
    #[error("proposing needs {needed} rao of stake power (own stake plus stake on the account as a hotkey); it has {has}")]
    NotEnoughStake { needed: u64, has: u64 },
    #[error("{MAX_LIVE_PROPOSALS} proposals are already open or awaiting enactment")]
    TooManyProposals,
    #[error("no proposal {0}")]
    NoSuchProposal(u64),
    #[error("proposal {id} is not open for votes (voting ended at block {ended})")]
    VotingClosed { id: u64, ended: u64 },
    #[error("this account has no voting power under `{0}` voting")]
    NoVotingPower(&'static str),
    #[error("proposal {0} already has {MAX_VOTERS} voters")]
    TooManyVoters(u64),
    #[error("the action is invalid: {0}")]
    InvalidAction(String),
    #[error("the treasury holds {has} rao, the spend is {amount}")]
    TreasuryTooPoor { has: u64, amount: u64 },
}

impl GovError {
    pub fn kind(&self) -> &'static str {
        match self {
            GovError::UnknownParameter(_) => "unknown_parameter",
            GovError::ParameterOutOfRange { .. } => "parameter_out_of_range",
            GovError::NotEnoughStake { .. } => "not_enough_stake_to_propose",
            GovError::TooManyProposals => "too_many_proposals",
            GovError::NoSuchProposal(_) => "no_such_proposal",
            GovError::VotingClosed { .. } => "voting_closed",
            GovError::NoVotingPower(_) => "no_voting_power",
            GovError::TooManyVoters(_) => "too_many_voters",
            GovError::InvalidAction(_) => "invalid_action",
            GovError::TreasuryTooPoor { .. } => "treasury_too_poor",
        }
    }
}

/// A governance call failed: a rule, or the state.
#[derive(Debug, thiserror::Error)]
pub enum GovFailure {
    #[error(transparent)]
    Rule(#[from] GovError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<TxFailure> for GovFailure {
    fn from(f: TxFailure) -> Self {
        match f {
            TxFailure::Rule(e) => GovFailure::Rule(GovError::InvalidAction(e.to_string())),
            TxFailure::State(e) => GovFailure::State(e),
        }
    }
}

/// State keys.
pub mod keys {
    pub const REGISTRY: &[u8] = b"G";
    /// Validator sets governance installed, with their first heights.
    pub const VALIDATOR_HISTORY: &[u8] = b"W";
    pub const PROPOSAL: u8 = b'P';
    pub const VOTE: u8 = b'V';

    pub fn proposal(id: u64) -> Vec<u8> {
        let mut k = vec![PROPOSAL];
        k.extend_from_slice(&id.to_be_bytes());
        k
    }

    pub fn votes(id: u64) -> Vec<u8> {
        let mut k = vec![VOTE];
        k.extend_from_slice(&id.to_be_bytes());
        k
    }

    pub fn vote(id: u64, voter: &crate::crypto::AccountId) -> Vec<u8> {
        let mut k = votes(id);
        k.extend_from_slice(&voter.0);
        k
    }
}

/// The treasury: an account no key controls (its id is a hash), paid `treasury_ppm` of
/// each block's emission and spent only by proposals.
pub fn treasury_account() -> AccountId {
    AccountId(hash_with_domain(b"agora/treasury/v1", &[]).0)
}

/// Where proposal deposits wait for the tally; no key controls it either.
pub fn deposit_account() -> AccountId {
    AccountId(hash_with_domain(b"agora/gov-deposits/v1", &[]).0)
}

pub fn registry(s: &dyn StateRead) -> Result<Registry, StateError> {
    Ok(read(s, keys::REGISTRY, "governance registry")?.unwrap_or_default())
}

pub fn proposal(s: &dyn StateRead, id: u64) -> Result<Option<Proposal>, StateError> {
    read(s, &keys::proposal(id), "proposal")
}

/// Every vote on proposal `id`, by voter.
pub fn votes(s: &dyn StateRead, id: u64) -> Result<Vec<(AccountId, Choice)>, StateError> {
    let prefix = keys::votes(id);
    let mut out = Vec::new();
    for (k, v) in s.scan_prefix(&prefix)? {
        let [voter] = state::key_accounts(&k, prefix.len(), "vote")?;
        out.push((voter, state::decode_row(&k, &v, "vote")?));
    }
    Ok(out)
}

/// The chain parameters in force: the stored ones (genesis, then every enacted change).
pub fn chain_params(s: &dyn StateRead) -> Result<Option<ChainParams>, StateError> {
    read(s, state::keys::PARAMS, "chain parameters")
}

fn put_params(o: &mut Overlay<'_>, p: &ChainParams) {
    o.put_value(state::keys::PARAMS.to_vec(), p);
}

/// A validator set an enacted proposal installs from `from_height` on.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct ScheduledSet {
    pub from_height: u64,
    pub validators: Vec<(AccountId, u64)>,
}

/// A set enacted in block `E` certifies blocks from `E + 2`: by then every node has
/// committed `E` and knows the set before it starts the height (consensus moves to the
/// next height as soon as it decides one, before committing it).
pub const VALIDATOR_SET_LEAD: u64 = 2;

/// Installed sets kept in the history (older ones are forgotten: only certificates of
/// blocks before them are then checked against the wrong set, by `chain_block`).
pub const VALIDATOR_HISTORY_MAX: usize = 64;

/// Every validator set governance installed (or scheduled), oldest first.
pub fn validator_history(s: &dyn StateRead) -> Result<Vec<ScheduledSet>, StateError> {
    Ok(read(s, keys::VALIDATOR_HISTORY, "validator history")?.unwrap_or_default())
}

/// The validators that certify block `height`: the genesis set, or the latest set
/// governance installed from a height at or before it. Answered correctly by any state
/// at height `height - 2` or later (a new set is written two blocks before its first).
pub fn validator_set_at(
    s: &dyn StateRead,
    genesis: &ChainParams,
    height: u64,
) -> Result<Result<crate::consensus::ValidatorSet, crate::consensus::ValidatorSetError>, StateError>
{
    let mut params = genesis.clone();
    if let Some(set) = validator_history(s)?
        .into_iter()
        .rfind(|x| x.from_height <= height)
    {
        install(&mut params, &set.validators);
    }
    Ok(params.validator_set())
}

fn install(p: &mut ChainParams, validators: &[(AccountId, u64)]) {
    p.authorities = validators.iter().map(|(a, _)| *a).collect();
    p.authority_power = validators.iter().map(|(_, w)| *w).collect();
}

/// At height `now`: a set whose first height it is becomes the parameters' authorities
/// (what `chain_info` shows). Once, at that height: every later block leaves them be.
fn install_due_sets(o: &mut Overlay<'_>, params: &ChainParams, now: u64) -> Result<(), StateError> {
    let Some(set) = validator_history(o)?
        .into_iter()
        .rfind(|x| x.from_height == now)
    else {
        return Ok(());
    };
    let mut p = chain_params(o)?.unwrap_or_else(|| params.clone());
    install(&mut p, &set.validators);
    put_params(o, &p);
    Ok(())
}

fn move_free(
    o: &mut Overlay<'_>,
    from: &AccountId,
    to: &AccountId,
    amount: u64,
) -> Result<(), StateError> {
    let mut a = state::account(o, from)?;
    a.free = a.free.saturating_sub(amount);
    state::put_account(o, from, &a);
    let mut b = state::account(o, to)?;
    b.free = b.free.saturating_add(amount);
    state::put_account(o, to, &b);
    Ok(())
}

/// Check an action can be enacted on the current state (at submission and again at
/// enactment).
fn validate(o: &Overlay<'_>, params: &ChainParams, action: &Action) -> Result<(), GovFailure> {
    match action {
        Action::SetChainParam { name, value } => {
            params::set_chain_param(&mut params.clone(), name, *value)?;
        }
        Action::SetHyperparameter {
            netuid,
            name,
            value,
        } => {
            let sn = subnet::named_subnet(o, *netuid)?;
            subnet::admin::assign(&mut sn.hyper.clone(), sn.n, name, *value, true)
                .map_err(|e| GovError::InvalidAction(e.to_string()))?;
        }
        Action::TreasurySpend { amount, .. } => {
            if *amount == 0 {
                return Err(GovError::InvalidAction("a spend of 0 rao".into()).into());
            }
        }
        Action::SetValidators { validators } => {
            let mut ids: Vec<&AccountId> = validators.iter().map(|(a, _)| a).collect();
            ids.sort_unstable();
            ids.dedup();
            if validators.is_empty()
                || validators.len() > MAX_VALIDATORS
                || ids.len() != validators.len()
                || validators.iter().any(|(_, p)| *p == 0)
            {
                return Err(GovError::InvalidAction(format!(
                    "a validator set needs 1..={MAX_VALIDATORS} distinct validators, each with power at least 1"
                ))
                .into());
            }
        }
        Action::Text { text } => {
            if text.len() > MAX_TEXT_BYTES {
                return Err(GovError::InvalidAction(format!(
                    "a text of {} bytes (at most {MAX_TEXT_BYTES})",
                    text.len()
                ))
                .into());
            }
        }
    }
    Ok(())
}

/// `propose(action, emergency)` signed by `proposer` at block `now`. Returns the id.
pub fn propose(
    o: &mut Overlay<'_>,
    params: &ChainParams,
    now: u64,
    proposer: &AccountId,
    action: Action,
    emergency: bool,
) -> Result<u64, GovFailure> {
    let gov = &params.gov;
    validate(o, params, &action)?;
    let prices = power::Prices::read(o, params)?;
    let has = power::stake_power(o, &prices, proposer)?;
    if has < u128::from(gov.proposal_min_stake_rao) {
        return Err(GovError::NotEnoughStake {
            needed: gov.proposal_min_stake_rao,
            has: u64::try_from(has).unwrap_or(u64::MAX),
        }
        .into());
    }
    let mut reg = registry(o)?;
    if reg.live.len() >= MAX_LIVE_PROPOSALS {
        return Err(GovError::TooManyProposals.into());
    }
    let acc = state::account(o, proposer)?;
    if acc.free < gov.deposit_rao {
        return Err(GovError::InvalidAction(format!(
            "the deposit is {} rao, the proposer has {} free",
            gov.deposit_rao, acc.free
        ))
        .into());
    }
    move_free(o, proposer, &deposit_account(), gov.deposit_rao)?;
    let (period, _, delay) = gov.track(emergency);
    let voting_ends = now.saturating_add(period);
    let id = reg.next_id;
    let p = Proposal {
        id,
        proposer: *proposer,
        action,
        emergency,
        submitted_at: now,
        voting_ends,
        enact_at: voting_ends.saturating_add(delay),
        deposit: gov.deposit_rao,
        status: Status::Voting,
        tally: None,
        voters: 0,
    };
    o.put_value(keys::proposal(id), &p);
    reg.next_id = id.saturating_add(1);
    reg.live.push(id);
    o.put_value(keys::REGISTRY.to_vec(), &reg);
    Ok(id)
}

/// `vote(id, choice)` signed by `voter` at block `now`.
pub fn vote(
    o: &mut Overlay<'_>,
    params: &ChainParams,
    now: u64,
    voter: &AccountId,
    id: u64,
    choice: Choice,
) -> Result<(), GovFailure> {
    let mut p = proposal(o, id)?.ok_or(GovError::NoSuchProposal(id))?;
    if p.status != Status::Voting || now > p.voting_ends {
        return Err(GovError::VotingClosed {
            id,
            ended: p.voting_ends,
        }
        .into());
    }
    let mode = params.gov.voting_power;
    let eligible = match power::seats(o, mode, params.gov.senate_size)? {
        Some(seats) => seats.contains(voter),
        None => {
            let prices = power::Prices::read(o, params)?;
            power::stake_power(o, &prices, voter)? > 0
        }
    };
    if !eligible {
        return Err(GovError::NoVotingPower(mode_name(mode)).into());
    }
    let key = keys::vote(id, voter);
    if o.get(&key)?.is_none() {
        if usize::try_from(p.voters).unwrap_or(usize::MAX) >= MAX_VOTERS {
            return Err(GovError::TooManyVoters(id).into());
        }
        p.voters = p.voters.saturating_add(1);
        o.put_value(keys::proposal(id), &p);
    }
    o.put_value(key, &choice);
    Ok(())
}

pub fn mode_name(mode: PowerMode) -> &'static str {
    match mode {
        PowerMode::Stake => "stake",
        PowerMode::Validator => "validator",
        PowerMode::Quadratic => "quadratic",
        PowerMode::Senate => "senate",
    }
}

/// Weigh the votes on `p` with the state now.
pub fn tally(
    s: &dyn StateRead,
    params: &ChainParams,
    p: &Proposal,
    now: u64,
) -> Result<Tally, StateError> {
    let votes = votes(s, p.id)?;
    let voters: Vec<AccountId> = votes.iter().map(|(v, _)| *v).collect();
    let w = power::weigh(s, params, &voters)?;
    let mut t = Tally {
        turnout: u64::try_from(w.turnout).unwrap_or(u64::MAX),
        total: u64::try_from(w.total).unwrap_or(u64::MAX),
        voters: u32::try_from(votes.len()).unwrap_or(u32::MAX),
        block: now,
        ..Tally::default()
    };
    for (voter, choice) in &votes {
        let power = u64::try_from(w.power.get(voter).copied().unwrap_or(0)).unwrap_or(u64::MAX);
        let slot = match choice {
            Choice::Yes => &mut t.yes,
            Choice::No => &mut t.no,
            Choice::NoWithVeto => &mut t.no_with_veto,
            Choice::Abstain => &mut t.abstain,
        };
        *slot = slot.saturating_add(power);
    }
    Ok(t)
}

/// `a * 1e6 > ppm * b`, exactly.
fn over(a: u64, ppm: u64, b: u64) -> bool {
    u128::from(a).saturating_mul(u128::from(params::PPM))
        > u128::from(ppm).saturating_mul(u128::from(b))
}

/// The verdict of a tally under the proposal's track.
pub fn verdict(gov: &GovParams, p: &Proposal, t: &Tally) -> Status {
    let (_, approval, _) = gov.track(p.emergency);
    if gov.voting_power == PowerMode::Senate {
        // More than half of all seats (R§10), whoever else voted.
        return if t.yes.saturating_mul(2) > t.total {
            Status::Passed
        } else {
            Status::Rejected {
                reason: format!(
                    "{} of {} senators voted yes (more than half needed)",
                    t.yes, t.total
                ),
            }
        };
    }
    let quorum_met = u128::from(t.turnout).saturating_mul(u128::from(params::PPM))
        >= u128::from(gov.quorum_ppm).saturating_mul(u128::from(t.total));
    if !quorum_met || t.total == 0 {
        return Status::Rejected {
            reason: format!(
                "no quorum: turnout {} of {} ({} ppm needed)",
                t.turnout, t.total, gov.quorum_ppm
            ),
        };
    }
    let cast = t
        .yes
        .saturating_add(t.no)
        .saturating_add(t.no_with_veto)
        .saturating_add(t.abstain);
    if over(t.no_with_veto, gov.veto_ppm, cast) {
        return Status::Vetoed;
    }
    let deciding = t.yes.saturating_add(t.no).saturating_add(t.no_with_veto);
    if deciding > 0 && over(t.yes, approval, deciding) {
        Status::Passed
    } else {
        Status::Rejected {
            reason: format!(
                "yes {} of {} deciding votes ({} ppm needed)",
                t.yes, deciding, approval
            ),
        }
    }
}

/// What the coinbase did for governance in one block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepOutcome {
    pub tallied: Vec<(u64, Status)>,
    pub enacted: Vec<(u64, Status)>,
}

/// The governance part of a block's coinbase at height `now`: tally every proposal whose
/// vote ended in the previous block, then enact every passed one due now, in id order.
pub fn step(
    o: &mut Overlay<'_>,
    params: &ChainParams,
    now: u64,
) -> Result<StepOutcome, StateError> {
    install_due_sets(o, params, now)?;
    let mut reg = registry(o)?;
    let mut out = StepOutcome::default();
    if reg.live.is_empty() {
        return Ok(out);
    }
    let mut still = Vec::with_capacity(reg.live.len());
    for id in reg.live.clone() {
        let Some(mut p) = proposal(o, id)? else {
            continue;
        };
        if p.status == Status::Voting && now > p.voting_ends {
            let t = tally(o, params, &p, now)?;
            let status = verdict(&params.gov, &p, &t);
            settle_deposit(o, &p, &status)?;
            p.status = status.clone();
            p.tally = Some(t);
            out.tallied.push((id, status));
        }
        if p.status == Status::Passed && now >= p.enact_at {
            // Read the parameters again: an earlier enactment in this block may have
            // changed them.
            let current = chain_params(o)?.unwrap_or_else(|| params.clone());
            let cp = o.checkpoint();
            p.status = match enact(o, &current, now, &p.action) {
                Ok(()) => Status::Enacted { block: now },
                Err(GovFailure::Rule(e)) => {
                    o.rollback(cp);
                    Status::Failed {
                        block: now,
                        reason: e.to_string(),
                    }
                }
                Err(GovFailure::State(e)) => return Err(e),
            };
            if let Some(e) = o.take_refused() {
                return Err(StateError::Refused(e));
            }
            out.enacted.push((id, p.status.clone()));
        }
        let done = !matches!(p.status, Status::Voting | Status::Passed);
        o.put_value(keys::proposal(id), &p);
        if !done {
            still.push(id);
        }
    }
    reg.live = still;
    o.put_value(keys::REGISTRY.to_vec(), &reg);
    Ok(out)
}

/// Return the deposit, or burn it when vetoed.
fn settle_deposit(o: &mut Overlay<'_>, p: &Proposal, status: &Status) -> Result<(), StateError> {
    if *status == Status::Vetoed {
        let mut escrow = state::account(o, &deposit_account())?;
        escrow.free = escrow.free.saturating_sub(p.deposit);
        state::put_account(o, &deposit_account(), &escrow);
        let mut supply = state::supply(o)?;
        supply.free = supply.free.saturating_sub(p.deposit);
        supply.burned = supply.burned.saturating_add(p.deposit);
        state::put_supply(o, &supply);
        return Ok(());
    }
    move_free(o, &deposit_account(), &p.proposer, p.deposit)
}

fn enact(
    o: &mut Overlay<'_>,
    params: &ChainParams,
    now: u64,
    action: &Action,
) -> Result<(), GovFailure> {
    validate(o, params, action)?;
    match action {
        Action::SetChainParam { name, value } => {
            let mut p = params.clone();
            params::set_chain_param(&mut p, name, *value)?;
            put_params(o, &p);
        }
        Action::SetHyperparameter {
            netuid,
            name,
            value,
        } => subnet::admin::set_by_governance(o, now, *netuid, name, *value)?,
        Action::TreasurySpend { dest, amount } => {
            let has = state::account(o, &treasury_account())?.free;
            if has < *amount {
                return Err(GovError::TreasuryTooPoor {
                    has,
                    amount: *amount,
                }
                .into());
            }
            move_free(o, &treasury_account(), dest, *amount)?;
        }
        Action::SetValidators { validators } => {
            let mut history = validator_history(o)?;
            history.push(ScheduledSet {
                from_height: now.saturating_add(VALIDATOR_SET_LEAD),
                validators: validators.clone(),
            });
            if history.len() > VALIDATOR_HISTORY_MAX {
                history.remove(0);
            }
            o.put_value(keys::VALIDATOR_HISTORY.to_vec(), &history);
        }
        Action::Text { .. } => {}
    }
    Ok(())
}
