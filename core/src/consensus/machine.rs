//! The consensus state machine for one validator (or a full node, without a key): the
//! rules of Buchman, Kwon and Milosevic, "The latest gossip on BFT consensus" (2018),
//! Algorithm 1, over blocks identified by hash, plus retransmission (so lost messages
//! cannot stall a round forever) and finalized-block hand-over for stragglers.
//! docs/consensus.md explains the rules and why they are safe and live.

use std::collections::{BTreeMap, BTreeSet};

use super::types::{Evidence, Message, Proposal, ValidatorSet, Vote, VoteKind};
use crate::block::{Block, CertSignature, FinalityCert};
use crate::crypto::{AccountId, Hash, Keypair};

/// How far past the current round a message may be and still be kept. Overflow policy:
/// later rounds are dropped (a validator that far ahead resends when it retransmits).
pub const ROUND_WINDOW: u32 = 64;
/// Messages kept for the next height while this one is undecided. Overflow policy: the
/// newest are dropped (their senders retransmit).
pub const FUTURE_MESSAGES_MAX: usize = 1024;
/// Own votes (the latest ones, two per round) resent on each retransmit timer.
const RETRANSMIT_VOTES_MAX: usize = 16;
/// Rounds after which timeouts stop growing.
const TIMEOUT_GROWTH_ROUNDS: u32 = 32;

/// Timeout lengths. Round `r` waits `base + r * delta` (growth stops after 32 rounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub propose_ms: u64,
    pub prevote_ms: u64,
    pub precommit_ms: u64,
    pub delta_ms: u64,
    /// How often a validator resends its current-round messages while the round lasts.
    pub retransmit_ms: u64,
}

impl Timeouts {
    /// Timeouts for a chain with this block time: the leader gets one block time to
    /// propose; votes half of one each.
    pub fn for_block_time(block_time_ms: u64) -> Self {
        let bt = block_time_ms.max(1);
        Timeouts {
            propose_ms: bt.saturating_mul(2),
            prevote_ms: bt,
            precommit_ms: bt,
            delta_ms: bt / 2,
            retransmit_ms: bt.saturating_mul(2),
        }
    }

    fn after(&self, step: Step, round: u32) -> u64 {
        let base = match step {
            Step::Propose => self.propose_ms,
            Step::Prevote => self.prevote_ms,
            Step::Precommit => self.precommit_ms,
        };
        let growth = u64::from(round.min(TIMEOUT_GROWTH_ROUNDS));
        base.saturating_add(self.delta_ms.saturating_mul(growth))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub chain_id: u64,
    pub timeouts: Timeouts,
}

/// Where a round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Propose,
    Prevote,
    Precommit,
}

/// A timer the host set on the machine's behalf. `step: None` is the retransmit timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timeout {
    pub height: u64,
    pub round: u32,
    pub step: Option<Step>,
}

#[derive(Debug, Clone)]
pub enum Input {
    /// Begin (or resume) at the machine's height.
    Start,
    /// A message from the network, not yet checked.
    Message(Message),
    /// A timer set by [`Effect::Schedule`] fired.
    Timeout(Timeout),
    /// The host built the block this validator proposes (answer to [`Effect::Build`]).
    Built {
        height: u64,
        round: u32,
        block: Block,
    },
    /// The host executed a block on the committed parent (answer to [`Effect::Verify`]).
    Verified { block: Hash, valid: bool },
    /// The host committed `height` through sync: move past it.
    Committed { height: u64 },
}

#[derive(Debug, Clone)]
pub enum Effect {
    /// Send to every peer. For this validator's own votes and proposals, the host must
    /// persist the message before sending it (so a restart never signs a conflicting one)
    /// and hand it back through [`Machine::restore`].
    Broadcast(Message),
    /// Send to every peer a message already persisted or not this validator's own (a
    /// retransmission, or someone else's signed message passed on). Not logged again.
    Relay(Message),
    /// Fire `timeout` after `after_ms`.
    Schedule { timeout: Timeout, after_ms: u64 },
    /// Build a block for `(height, round)` on the committed head; answer with [`Input::Built`].
    Build { height: u64, round: u32 },
    /// Execute `block` on the committed head (no commit); answer with [`Input::Verified`].
    Verify(Block),
    /// `block` is final: commit it with `cert`. The machine has moved to the next height.
    Decide { block: Block, cert: FinalityCert },
    /// A validator signed two different messages for one slot.
    Evidence(Evidence),
}

/// Different votes kept per validator and slot: its first, plus conflicting ones that
/// count for their own values (as Tendermint counts every message it received: an
/// equivocator's vote reaches a quorum that its twin does not spoil). Overflow policy:
/// further conflicting votes are dropped.
pub const VOTES_PER_VOTER_MAX: usize = 4;

/// The votes of one kind in one round. `power` counts each voter once per value;
/// `total` once per voter.
#[derive(Debug, Default)]
struct VoteSet {
    by_voter: BTreeMap<AccountId, Vec<Vote>>,
    power: BTreeMap<Option<Hash>, u128>,
    total: u128,
}

/// "For the first time" guards of the rules that fire once per round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Once {
    PrevoteTimeout,
    PrecommitTimeout,
    Lock,
}

pub struct Machine {
    cfg: Config,
    validators: ValidatorSet,
    key: Option<Keypair>,
    height: u64,
    round: u32,
    step: Step,
    started: bool,
    locked: Option<(u32, Hash)>,
    valid: Option<(u32, Hash)>,
    proposals: BTreeMap<u32, Proposal>,
    verdicts: BTreeMap<Hash, bool>,
    verifying: BTreeSet<Hash>,
    votes: BTreeMap<(u32, VoteKind), VoteSet>,
    once: BTreeSet<(u32, Once)>,
    /// A finalized block for this height handed over by a peer, with its certificate.
    handed: Option<(Block, FinalityCert)>,
    future: Vec<Message>,
    own_votes: BTreeMap<(u32, VoteKind), Vote>,
    own_proposals: BTreeMap<u32, Proposal>,
    reported: BTreeSet<(AccountId, u32, Option<VoteKind>)>,
    /// Validator sets the host announced for later heights (governance changes them).
    scheduled: BTreeMap<u64, ValidatorSet>,
}

impl Machine {
    /// A machine at `height` (the first undecided one). `key` is this node's validator key
    /// (None: a full node that follows without voting).
    pub fn new(cfg: Config, validators: ValidatorSet, key: Option<Keypair>, height: u64) -> Self {
        Machine {
            cfg,
            validators,
            key,
            height,
            round: 0,
            step: Step::Propose,
            started: false,
            locked: None,
            valid: None,
            proposals: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            verifying: BTreeSet::new(),
            votes: BTreeMap::new(),
            once: BTreeSet::new(),
            handed: None,
            future: Vec::new(),
            own_votes: BTreeMap::new(),
            own_proposals: BTreeMap::new(),
            reported: BTreeSet::new(),
            scheduled: BTreeMap::new(),
        }
    }

    /// The validators that decide `height` and later heights, until another set is
    /// scheduled: taken when the machine reaches that height. The host announces each set
    /// from the committed state before the machine can get there (PROTOCOL §6: a set
    /// enacted in block E decides heights from E + 2). Heights already reached are ignored.
    /// New timeouts (a block time changed by governance), from the next round on.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.cfg.timeouts = timeouts;
    }

    pub fn schedule_validators(&mut self, height: u64, set: ValidatorSet) {
        if height > self.height {
            self.scheduled.insert(height, set);
        }
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    pub fn round(&self) -> u32 {
        self.round
    }

    pub fn step(&self) -> Step {
        self.step
    }

    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    /// The proposer of the current round.
    pub fn leader(&self) -> AccountId {
        self.validators.proposer(self.height, self.round)
    }

    fn me(&self) -> Option<AccountId> {
        self.key.as_ref().map(Keypair::account)
    }

    /// Reload this validator's own signed messages for the current height (from the
    /// host's write-ahead log) before [`Input::Start`]: it resumes in the latest round it
    /// voted in, keeps its lock, and never signs a second message for a slot it signed.
    pub fn restore(&mut self, own: Vec<Message>) {
        for m in own {
            if m.height() != self.height {
                continue;
            }
            match m {
                Message::Vote(v) => {
                    self.round = self.round.max(v.round);
                    if v.kind == VoteKind::Precommit {
                        if let Some(h) = v.block {
                            if self.locked.is_none_or(|(r, _)| r < v.round) {
                                self.locked = Some((v.round, h));
                                self.valid = Some((v.round, h));
                            }
                        }
                    }
                    self.own_votes.insert((v.round, v.kind), v.clone());
                    self.add_vote(v, &mut Vec::new());
                }
                Message::Proposal(p) => {
                    self.round = self.round.max(p.round);
                    self.verdicts.insert(p.block_hash(), true);
                    self.own_proposals.insert(p.round, p.clone());
                    self.proposals.insert(p.round, p);
                }
                Message::Decided(..) => {}
            }
        }
    }

    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                if !self.started {
                    self.started = true;
                    let round = self.round;
                    self.start_round(round, &mut out);
                }
            }
            Input::Message(m) => self.on_message(m, &mut out),
            Input::Timeout(t) => self.on_timeout(t, &mut out),
            Input::Built {
                height,
                round,
                block,
            } => self.on_built(height, round, block, &mut out),
            Input::Verified { block, valid } => {
                if self.verifying.remove(&block) {
                    self.verdicts.insert(block, valid);
                }
            }
            Input::Committed { height } => {
                if height >= self.height {
                    self.next_height(height.saturating_add(1), &mut out);
                }
                return out;
            }
        }
        if self.started {
            self.evaluate(&mut out);
        }
        out
    }

    fn on_message(&mut self, m: Message, out: &mut Vec<Effect>) {
        let h = m.height();
        if h == self.height.saturating_add(1) {
            if self.future.len() < FUTURE_MESSAGES_MAX {
                self.future.push(m);
            }
            return;
        }
        if h != self.height {
            return; // the host answers stragglers and syncs when behind
        }
        match m {
            Message::Vote(v) => {
                if v.round <= self.round.saturating_add(ROUND_WINDOW)
                    && self.validators.power(&v.voter).is_some()
                    && v.verify(self.cfg.chain_id)
                {
                    self.add_vote(v, out);
                }
            }
            Message::Proposal(p) => self.add_proposal(p, out),
            Message::Decided(block, cert) => {
                if self.handed.is_none()
                    && cert
                        .verify_for(self.cfg.chain_id, &self.validators, h, &block.hash())
                        .is_ok()
                {
                    self.request_verdict(&block, out);
                    self.handed = Some((block, cert));
                }
            }
        }
    }

    fn add_vote(&mut self, v: Vote, out: &mut Vec<Effect>) {
        let power = u128::from(self.validators.power(&v.voter).unwrap_or(0));
        let set = self.votes.entry((v.round, v.kind)).or_default();
        let mine = set.by_voter.entry(v.voter).or_default();
        if mine.iter().any(|seen| seen.block == v.block) || mine.len() >= VOTES_PER_VOTER_MAX {
            return;
        }
        if mine.is_empty() {
            set.total = set.total.saturating_add(power);
        } else if self.reported.insert((v.voter, v.round, Some(v.kind))) {
            if let Some(first) = mine.first() {
                out.push(Effect::Evidence(Evidence::DoubleVote {
                    first: first.clone(),
                    second: v.clone(),
                }));
            }
        }
        let slot = set.power.entry(v.block).or_default();
        *slot = slot.saturating_add(power);
        mine.push(v);
    }

    fn add_proposal(&mut self, p: Proposal, out: &mut Vec<Effect>) {
        if p.round > self.round.saturating_add(ROUND_WINDOW)
            || p.proposer != self.validators.proposer(self.height, p.round)
            || !p.verify(self.cfg.chain_id)
        {
            return;
        }
        if let Some(first) = self.proposals.get(&p.round) {
            let (a, b) = (first.block_hash(), p.block_hash());
            if a != b && self.reported.insert((p.proposer, p.round, None)) {
                out.push(Effect::Evidence(Evidence::DoubleProposal {
                    proposer: p.proposer,
                    height: p.height,
                    round: p.round,
                    first: a,
                    second: b,
                }));
            }
            return;
        }
        self.request_verdict(&p.block, out);
        self.proposals.insert(p.round, p);
    }

    fn request_verdict(&mut self, block: &Block, out: &mut Vec<Effect>) {
        let h = block.hash();
        if !self.verdicts.contains_key(&h) && self.verifying.insert(h) {
            out.push(Effect::Verify(block.clone()));
        }
    }

    fn on_built(&mut self, height: u64, round: u32, block: Block, out: &mut Vec<Effect>) {
        let Some(key) = self.key.clone() else { return };
        if height != self.height
            || round != self.round
            || self.step != Step::Propose
            || self.own_proposals.contains_key(&round)
            || self.validators.proposer(height, round) != key.account()
            || block.header.height != height
            || block.header.view != u64::from(round)
        {
            return;
        }
        let p = Proposal::sign(self.cfg.chain_id, round, None, block, &key);
        self.verdicts.insert(p.block_hash(), true);
        self.send_proposal(p, out);
    }

    fn send_proposal(&mut self, p: Proposal, out: &mut Vec<Effect>) {
        self.own_proposals.insert(p.round, p.clone());
        self.proposals.insert(p.round, p.clone());
        out.push(Effect::Broadcast(Message::Proposal(p)));
    }

    /// Sign and send this validator's vote for the slot, unless it already signed one.
    fn vote(&mut self, kind: VoteKind, block: Option<Hash>, out: &mut Vec<Effect>) {
        let Some(key) = self.key.clone() else { return };
        let round = self.round;
        if self.own_votes.contains_key(&(round, kind))
            || self.validators.power(&key.account()).is_none()
        {
            return;
        }
        let v = Vote::sign(self.cfg.chain_id, kind, self.height, round, block, &key);
        self.own_votes.insert((round, kind), v.clone());
        self.add_vote(v.clone(), out);
        out.push(Effect::Broadcast(Message::Vote(v)));
    }

    fn schedule(&self, step: Option<Step>, out: &mut Vec<Effect>) {
        let after_ms = match step {
            Some(s) => self.cfg.timeouts.after(s, self.round),
            None => self.cfg.timeouts.retransmit_ms,
        };
        out.push(Effect::Schedule {
            timeout: Timeout {
                height: self.height,
                round: self.round,
                step,
            },
            after_ms,
        });
    }

    fn start_round(&mut self, round: u32, out: &mut Vec<Effect>) {
        self.round = round;
        self.step = Step::Propose;
        // Rounds far behind can no longer matter except the locked and valid ones.
        let keep_from = round.saturating_sub(ROUND_WINDOW);
        let (locked, valid) = (self.locked.map(|l| l.0), self.valid.map(|v| v.0));
        let keep = |r: u32| r >= keep_from || Some(r) == locked || Some(r) == valid;
        self.votes.retain(|(r, _), _| keep(*r));
        self.proposals.retain(|r, _| keep(*r));
        if self.me() == Some(self.validators.proposer(self.height, round)) {
            let valid_block = self
                .valid
                .and_then(|(vr, vh)| self.block(&vh).map(|b| (vr, b)));
            if let Some(p) = self.own_proposals.get(&round).cloned() {
                out.push(Effect::Relay(Message::Proposal(p)));
            } else if let (Some((vr, block)), Some(key)) = (valid_block, self.key.clone()) {
                // Re-propose the block that had a prevote quorum, with that quorum, so
                // validators locked on it (or on an older round) can prevote it.
                let p = Proposal::sign(self.cfg.chain_id, round, Some(vr), block, &key);
                self.send_proposal(p, out);
                self.relay_proof_of_lock(out);
            } else {
                // No valid value, or its block was lost in a restart: a fresh block.
                out.push(Effect::Build {
                    height: self.height,
                    round,
                });
            }
        }
        self.schedule(Some(Step::Propose), out);
        self.schedule(None, out);
    }

    /// Relay the valid value's proposal and the prevote quorum that made it valid (signed
    /// by their authors: anyone may forward them). This is the gossip Tendermint's
    /// liveness argument assumes: every honest validator eventually sees the polka.
    fn relay_proof_of_lock(&self, out: &mut Vec<Effect>) {
        let Some((vr, vh)) = self.valid else { return };
        if let Some(p) = self.proposals.get(&vr).filter(|p| p.block_hash() == vh) {
            out.push(Effect::Relay(Message::Proposal(p.clone())));
        }
        if let Some(set) = self.votes.get(&(vr, VoteKind::Prevote)) {
            for v in set
                .by_voter
                .values()
                .flatten()
                .filter(|v| v.block == Some(vh))
            {
                out.push(Effect::Relay(Message::Vote(v.clone())));
            }
        }
    }

    fn block(&self, hash: &Hash) -> Option<Block> {
        self.proposals
            .values()
            .find(|p| p.block_hash() == *hash)
            .map(|p| p.block.clone())
            .or_else(|| {
                self.handed
                    .as_ref()
                    .filter(|(b, _)| b.hash() == *hash)
                    .map(|(b, _)| b.clone())
            })
    }

    fn on_timeout(&mut self, t: Timeout, out: &mut Vec<Effect>) {
        if t.height != self.height || t.round != self.round || !self.started {
            return;
        }
        match t.step {
            Some(Step::Propose) if self.step == Step::Propose => {
                self.vote(VoteKind::Prevote, None, out);
                self.step = Step::Prevote;
            }
            Some(Step::Prevote) if self.step == Step::Prevote => {
                self.vote(VoteKind::Precommit, None, out);
                self.step = Step::Precommit;
            }
            Some(Step::Precommit) => {
                let next = self.round.saturating_add(1);
                self.start_round(next, out);
            }
            None => {
                // Retransmit this round's own messages, so lost ones cannot stall the
                // round, and the proof of the valid value, so a leader that missed it
                // can learn it and re-propose.
                let r = self.round;
                if let Some(p) = self.own_proposals.get(&r) {
                    out.push(Effect::Relay(Message::Proposal(p.clone())));
                }
                // Own votes of earlier rounds too: a validator still in round r-1 may
                // need this one's vote there to reach the quorum that moves it on.
                for v in self.own_votes.values().rev().take(RETRANSMIT_VOTES_MAX) {
                    out.push(Effect::Relay(Message::Vote(v.clone())));
                }
                // And what justifies being in this round: the previous round's precommits
                // (the quorum whose timeout moved this validator on) and this round's
                // votes (the third that pulls laggards forward). This is the gossip the
                // protocol's liveness assumes: every honest validator eventually sees
                // what any honest validator saw, byzantine votes included.
                let mut justification = vec![(r, VoteKind::Prevote), (r, VoteKind::Precommit)];
                if let Some(prev) = r.checked_sub(1) {
                    justification.push((prev, VoteKind::Precommit));
                }
                let me = self.me();
                for slot in justification {
                    if let Some(set) = self.votes.get(&slot) {
                        for v in set
                            .by_voter
                            .values()
                            .flatten()
                            .filter(|v| Some(v.voter) != me)
                        {
                            out.push(Effect::Relay(Message::Vote(v.clone())));
                        }
                    }
                }
                self.relay_proof_of_lock(out);
                self.schedule(None, out);
            }
            _ => {}
        }
    }

    fn power(&self, round: u32, kind: VoteKind, block: Option<&Hash>) -> u128 {
        self.votes
            .get(&(round, kind))
            .and_then(|s| s.power.get(&block.copied()))
            .copied()
            .unwrap_or(0)
    }

    fn total(&self, round: u32, kind: VoteKind) -> u128 {
        self.votes.get(&(round, kind)).map_or(0, |s| s.total)
    }

    fn first(&mut self, round: u32, rule: Once) -> bool {
        self.once.insert((round, rule))
    }

    /// Fire every rule whose condition holds, until none does.
    fn evaluate(&mut self, out: &mut Vec<Effect>) {
        loop {
            if self.try_decide(out) {
                continue;
            }
            if self.try_skip_round(out) {
                continue;
            }
            if !self.try_round_rules(out) {
                return;
            }
        }
    }

    /// Rules of the current round; true when one fired.
    fn try_round_rules(&mut self, out: &mut Vec<Effect>) -> bool {
        let r = self.round;
        let proposal = self
            .proposals
            .get(&r)
            .map(|p| (p.block_hash(), p.valid_round));
        // Prevote on the round's proposal (lines 22-33 of Algorithm 1).
        if self.step == Step::Propose {
            if let Some((h, vr)) = proposal {
                let verdict = self.verdicts.get(&h).copied();
                let choice = match (vr, verdict) {
                    (_, None) => None, // still executing it
                    (None, Some(valid)) => Some(valid && self.locked.is_none_or(|(_, lh)| lh == h)),
                    (Some(vr), Some(valid)) if vr < r => {
                        let pol =
                            self.validators
                                .is_quorum(self.power(vr, VoteKind::Prevote, Some(&h)));
                        pol.then(|| valid && self.locked.is_none_or(|(lr, lh)| lr <= vr || lh == h))
                    }
                    (Some(_), Some(_)) => Some(false), // a valid round not before this one
                };
                if let Some(for_block) = choice {
                    self.vote(VoteKind::Prevote, for_block.then_some(h), out);
                    self.step = Step::Prevote;
                    return true;
                }
            }
        }
        // Any prevote quorum: start the prevote timer (line 34).
        if self.step == Step::Prevote
            && self.validators.is_quorum(self.total(r, VoteKind::Prevote))
            && self.first(r, Once::PrevoteTimeout)
        {
            self.schedule(Some(Step::Prevote), out);
            return true;
        }
        // A prevote quorum for the proposal: lock and precommit (line 36).
        if let Some((h, _)) = proposal {
            if self.step >= Step::Prevote
                && self.verdicts.get(&h) == Some(&true)
                && self
                    .validators
                    .is_quorum(self.power(r, VoteKind::Prevote, Some(&h)))
                && self.first(r, Once::Lock)
            {
                if self.step == Step::Prevote {
                    self.locked = Some((r, h));
                    self.vote(VoteKind::Precommit, Some(h), out);
                    self.step = Step::Precommit;
                }
                self.valid = Some((r, h));
                return true;
            }
        }
        // A prevote quorum for nil: precommit nil (line 44).
        if self.step == Step::Prevote
            && self
                .validators
                .is_quorum(self.power(r, VoteKind::Prevote, None))
        {
            self.vote(VoteKind::Precommit, None, out);
            self.step = Step::Precommit;
            return true;
        }
        // Any precommit quorum: start the precommit timer (line 47).
        if self
            .validators
            .is_quorum(self.total(r, VoteKind::Precommit))
            && self.first(r, Once::PrecommitTimeout)
        {
            self.schedule(Some(Step::Precommit), out);
            return true;
        }
        false
    }

    /// f+1 messages from a later round: jump to it (line 55).
    fn try_skip_round(&mut self, out: &mut Vec<Effect>) -> bool {
        let mut senders: BTreeMap<u32, BTreeSet<AccountId>> = BTreeMap::new();
        for ((round, _), set) in self
            .votes
            .range((self.round.saturating_add(1), VoteKind::Prevote)..)
        {
            senders
                .entry(*round)
                .or_default()
                .extend(set.by_voter.keys().copied());
        }
        for (round, p) in self.proposals.range(self.round.saturating_add(1)..) {
            senders.entry(*round).or_default().insert(p.proposer);
        }
        let later = senders.into_iter().find(|(_, who)| {
            let power = who
                .iter()
                .map(|id| u128::from(self.validators.power(id).unwrap_or(0)))
                .fold(0, u128::saturating_add);
            self.validators.is_one_third(power)
        });
        match later {
            Some((round, _)) => {
                self.start_round(round, out);
                true
            }
            None => false,
        }
    }

    /// A precommit quorum for a block this node holds and found valid, in any round, or a
    /// valid handed-over finalized block: decide (line 49).
    fn try_decide(&mut self, out: &mut Vec<Effect>) -> bool {
        let mut found: Option<(u32, Hash)> = None;
        for ((round, kind), set) in &self.votes {
            if *kind != VoteKind::Precommit {
                continue;
            }
            for (block, power) in &set.power {
                if let Some(h) = block {
                    if self.validators.is_quorum(*power) && self.verdicts.get(h) == Some(&true) {
                        found = Some((*round, *h));
                    }
                }
            }
        }
        let decision = match found {
            Some((round, h)) => self.block(&h).map(|block| {
                let votes = self
                    .votes
                    .get(&(round, VoteKind::Precommit))
                    .map(|s| {
                        s.by_voter
                            .values()
                            .flatten()
                            .filter(|v| v.block == Some(h))
                            .map(|v| CertSignature {
                                authority: v.voter,
                                signature: v.signature,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let cert = FinalityCert {
                    height: self.height,
                    round,
                    block_hash: h,
                    votes,
                };
                (block, cert)
            }),
            None => None,
        };
        let decision = decision.or_else(|| {
            self.handed
                .as_ref()
                .filter(|(b, _)| self.verdicts.get(&b.hash()) == Some(&true))
                .cloned()
        });
        let Some((block, cert)) = decision else {
            return false;
        };
        out.push(Effect::Decide { block, cert });
        let next = self.height.saturating_add(1);
        self.next_height(next, out);
        true
    }

    fn next_height(&mut self, height: u64, out: &mut Vec<Effect>) {
        let future = std::mem::take(&mut self.future);
        let started = self.started;
        let mut scheduled = std::mem::take(&mut self.scheduled);
        let validators = scheduled
            .range(..=height)
            .next_back()
            .map_or_else(|| self.validators.clone(), |(_, set)| set.clone());
        scheduled.retain(|h, _| *h > height);
        *self = Machine::new(self.cfg, validators, self.key.clone(), height);
        self.scheduled = scheduled;
        self.started = started;
        if started {
            self.start_round(0, out);
        }
        for m in future {
            self.on_message(m, out);
        }
    }
}
