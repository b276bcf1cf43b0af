use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture,
};
use agora_core::block::FinalityCert;
use agora_core::consensus::{
    Config, Effect, Evidence, Input, Machine, Message as ConsensusMessage, Step,
};
use agora_core::{AccountId, Hash, Keypair};
use agora_p2p::{Announcement, PeerId, SyncRequest, SyncResponse, Topic, SYNC_BLOCKS_MAX};
use serde::Serialize;
use tracing::{debug, error, info, warn};

use crate::actors::chain::{ChainHandle, Produced};
use crate::actors::mempool::MempoolHandle;
use crate::actors::network::{FromNetwork, NetworkHandle};
use crate::actors::producer::MAX_BLOCK_TXS;
use crate::NodeError;

/// Evidence kept for the RPC. Overflow policy: the oldest is dropped (the count goes on).
pub const EVIDENCE_MAX: usize = 1024;
/// Heights whose straggler answers are remembered. Overflow policy: forgotten all at once.
const ANSWERED_MAX: usize = 1024;

/// What the consensus actor reports over RPC.
#[derive(Debug, Clone, Serialize)]
pub struct ConsensusStatus {
    pub height: u64,
    pub round: u32,
    pub step: Step,
    pub leader: AccountId,
    /// This node's validator account, if it is one.
    pub validator: Option<AccountId>,
    pub validators: Vec<agora_core::consensus::Validator>,
    pub last_certificate: Option<CertSummary>,
    pub evidence_count: u64,
    pub evidence: Vec<Evidence>,
    pub syncing: bool,
    pub peer_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertSummary {
    pub height: u64,
    pub round: u32,
    pub block_hash: Hash,
    pub signers: Vec<AccountId>,
}

enum Done {
    Nothing,
    Input(Box<Input>),
    Committed(Box<Produced>, u64),
    Synced {
        produced: Vec<(Produced, u64)>,
        more: bool,
        /// The peer failed us (invalid data, refusal, no answer): try another.
        failed: bool,
    },
}

/// The validators of the next height, and the sets scheduled for later ones.
pub struct Validators {
    pub current: agora_core::consensus::ValidatorSet,
    pub ahead: Vec<(u64, agora_core::consensus::ValidatorSet)>,
}

pub struct ConsensusActor {
    machine: Machine,
    chain: ChainHandle,
    mempool: MempoolHandle,
    net: NetworkHandle,
    key: Option<Keypair>,
    block_time: Duration,
    parent_timestamp_ms: u64,
    queue: VecDeque<Effect>,
    busy: bool,
    evidence: VecDeque<Evidence>,
    evidence_count: u64,
    last_cert: Option<FinalityCert>,
    answered: HashMap<u64, Instant>,
    syncing: bool,
    last_sync_peer: Option<PeerId>,
    /// Peers known to have finalized at least the height given (from status answers,
    /// announcements, messages of later heights): where to sync from.
    ahead: std::collections::BTreeMap<PeerId, u64>,
    fatal: tokio::sync::mpsc::Sender<String>,
}

/// How far ahead of this node's clock a proposal's timestamp may be before it gets a nil
/// prevote: two block times, and at least 5 s of clock skew.
fn max_clock_skew_ms(block_time: Duration) -> u64 {
    (2 * block_time.as_millis() as u64).max(5_000)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl ConsensusActor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: Config,
        validators: Validators,
        key: Option<Keypair>,
        head_height: u64,
        head_timestamp_ms: u64,
        block_time_ms: u64,
        chain: ChainHandle,
        mempool: MempoolHandle,
        net: NetworkHandle,
        fatal: tokio::sync::mpsc::Sender<String>,
    ) -> Self {
        let mut machine = Machine::new(
            cfg,
            validators.current,
            key.clone(),
            head_height.saturating_add(1),
        );
        for (height, set) in validators.ahead {
            machine.schedule_validators(height, set);
        }
        ConsensusActor {
            machine,
            chain,
            mempool,
            net,
            key,
            block_time: Duration::from_millis(block_time_ms),
            parent_timestamp_ms: head_timestamp_ms,
            queue: VecDeque::new(),
            busy: false,
            evidence: VecDeque::new(),
            evidence_count: 0,
            last_cert: None,
            answered: HashMap::new(),
            syncing: false,
            last_sync_peer: None,
            ahead: std::collections::BTreeMap::new(),
            fatal,
        }
    }

    fn fail(&mut self, e: &NodeError, ctx: &mut Context<Self>) {
        error!("consensus cannot go on, stopping the node: {e}");
        let _ = self.fatal.try_send(e.to_string());
        ctx.stop();
    }

    fn input(&mut self, input: Input, ctx: &mut Context<Self>) {
        let effects = self.machine.handle(input);
        self.queue.extend(effects);
        self.drain(ctx);
    }

    /// Carry out queued effects in order; the asynchronous ones hold the actor
    /// (`ctx.wait`) so nothing interleaves with them.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        while !self.busy {
            let Some(effect) = self.queue.pop_front() else {
                return;
            };
            match effect {
                Effect::Schedule { timeout, after_ms } => {
                    ctx.run_later(Duration::from_millis(after_ms), move |act, ctx| {
                        act.input(Input::Timeout(timeout), ctx);
                    });
                }
                Effect::Evidence(e) => {
                    warn!(offender = %e.offender(), "equivocation evidence");
                    if self.evidence.len() >= EVIDENCE_MAX {
                        self.evidence.pop_front();
                    }
                    self.evidence.push_back(e);
                    self.evidence_count += 1;
                }
                Effect::Relay(msg) => self.publish(msg, ctx),
                Effect::Build { height, round } => {
                    // Blocks are paced: one block time after the parent.
                    let due = self
                        .parent_timestamp_ms
                        .saturating_add(self.block_time.as_millis() as u64);
                    // Never more than one block time, whatever the parent claims (a parent
                    // stamped in the future must not stall every later leader).
                    let wait =
                        Duration::from_millis(due.saturating_sub(now_ms())).min(self.block_time);
                    ctx.run_later(wait, move |act, ctx| act.build(height, round, ctx));
                }
                Effect::Broadcast(msg) => {
                    let (chain, net) = (self.chain.clone(), self.net.clone());
                    self.wait(ctx, async move {
                        // Write-ahead: durable before anyone can see it.
                        chain.record_own(msg.clone()).await?;
                        let bytes = msg
                            .encode()
                            .map_err(|e| NodeError::Internal(e.to_string()))?;
                        if let Err(e) = net.publish(Topic::Consensus, bytes).await {
                            debug!("publishing a consensus message: {e}");
                        }
                        Ok(Done::Nothing)
                    });
                }
                Effect::Verify(block) => {
                    let chain = self.chain.clone();
                    let latest_ok = now_ms().saturating_add(max_clock_skew_ms(self.block_time));
                    self.wait(ctx, async move {
                        let hash = block.hash();
                        if block.header.timestamp_ms > latest_ok {
                            // Not a rule of block validity (sync accepts it once final):
                            // this validator just will not vote for a block from the future.
                            warn!(block = %hash, timestamp_ms = block.header.timestamp_ms, "proposed block is stamped too far in the future: prevoting nil");
                            return Ok(Done::Input(Box::new(Input::Verified { block: hash, valid: false })));
                        }
                        let valid = match chain.verify(block).await? {
                            Ok(()) => true,
                            Err(reason) => {
                                warn!(block = %hash, "proposed block is invalid: {reason}");
                                false
                            }
                        };
                        Ok(Done::Input(Box::new(Input::Verified {
                            block: hash,
                            valid,
                        })))
                    });
                }
                Effect::Decide { block, cert } => {
                    let (chain, mempool, net) =
                        (self.chain.clone(), self.mempool.clone(), self.net.clone());
                    self.last_cert = Some(cert.clone());
                    self.wait(ctx, async move {
                        let hash = block.hash();
                        let produced = match chain.commit(hash, cert.clone()).await {
                            Ok(p) => p,
                            // Executed long ago and evicted from the cache: execute again.
                            Err(_) => chain.import(block, cert).await?.map_err(|e| {
                                NodeError::Internal(format!("decided block does not execute: {e}"))
                            })?,
                        };
                        let height = produced.head.height;
                        let ts = produced.head.timestamp_ms;
                        mempool
                            .block_done(
                                produced.included.clone(),
                                Vec::new(),
                                produced.nonces.clone(),
                            )
                            .await?;
                        let _ = net
                            .publish(Topic::Blocks, Announcement { height, hash }.encode())
                            .await;
                        Ok(Done::Committed(Box::new(produced), ts))
                    });
                }
            }
        }
    }

    /// Run `work` holding the actor, then continue with what it produced.
    fn wait<F>(&mut self, ctx: &mut Context<Self>, work: F)
    where
        F: std::future::Future<Output = Result<Done, NodeError>> + 'static,
    {
        self.busy = true;
        ctx.wait(work.into_actor(self).map(|result, act, ctx| {
            act.busy = false;
            match result {
                Err(e) => act.fail(&e, ctx),
                Ok(done) => {
                    act.done(done, ctx);
                    act.drain(ctx);
                }
            }
        }));
    }

    fn done(&mut self, done: Done, ctx: &mut Context<Self>) {
        match done {
            Done::Nothing => {}
            Done::Input(input) => {
                let effects = self.machine.handle(*input);
                self.queue.extend(effects);
            }
            Done::Committed(produced, ts) => {
                self.parent_timestamp_ms = ts;
                self.follow(&produced);
                if produced.head.tx_count > 0 || produced.head.height.is_multiple_of(30) {
                    info!(height = produced.head.height, hash = %produced.head.hash, txs = produced.head.tx_count, "finalized block");
                }
            }
            Done::Synced {
                produced,
                more,
                failed,
            } => {
                self.syncing = false;
                if failed {
                    if let Some(peer) = self.last_sync_peer {
                        self.ahead.remove(&peer);
                    }
                }
                if let Some((last, ts)) = produced.last() {
                    self.parent_timestamp_ms = *ts;
                    // Before the machine jumps ahead: the sets of the heights it lands on.
                    self.follow(last);
                    info!(height = last.head.height, "synced from peers");
                    let effects = self.machine.handle(Input::Committed {
                        height: last.head.height,
                    });
                    self.queue.extend(effects);
                }
                let here = self.machine.height();
                self.ahead.retain(|_, h| *h >= here);
                if more {
                    ctx.notify(SyncMore);
                } else if failed {
                    // Keep syncing from others that are ahead.
                    if let Some((&next, _)) = self.ahead.iter().next() {
                        ctx.notify(SyncFrom(next));
                    }
                }
            }
        }
    }

    /// Take from a committed block what governance may have changed for the heights
    /// ahead: their validator sets (to the machine and the gossip filter) and the block
    /// time (pacing and timeouts).
    fn follow(&mut self, produced: &Produced) {
        for (height, set) in &produced.validator_sets {
            self.machine.schedule_validators(*height, set.clone());
        }
        self.net.set_validators(produced.validator_sets.clone());
        let block_time = Duration::from_millis(produced.block_time_ms);
        if block_time != self.block_time && produced.block_time_ms > 0 {
            info!(
                block_time_ms = produced.block_time_ms,
                "block time changed by governance"
            );
            self.block_time = block_time;
            self.machine
                .set_timeouts(agora_core::consensus::Timeouts::for_block_time(
                    produced.block_time_ms,
                ));
        }
    }

    /// Remember that `peer` finalized at least `height`. Bounded: past the limit the
    /// peer with the lowest height is forgotten.
    fn note_ahead(&mut self, peer: PeerId, height: u64) {
        let known = self.ahead.entry(peer).or_insert(height);
        *known = (*known).max(height);
        if self.ahead.len() > AHEAD_MAX {
            if let Some((&low, _)) = self.ahead.iter().min_by_key(|(_, h)| **h) {
                self.ahead.remove(&low);
            }
        }
    }

    fn publish(&self, msg: ConsensusMessage, ctx: &mut Context<Self>) {
        let net = self.net.clone();
        ctx.spawn(
            async move {
                if let Ok(bytes) = msg.encode() {
                    let _ = net.publish(Topic::Consensus, bytes).await;
                }
            }
            .into_actor(self),
        );
    }

    fn build(&mut self, height: u64, round: u32, ctx: &mut Context<Self>) {
        if self.machine.height() != height || self.machine.round() != round {
            return; // the round moved on while waiting for the block time
        }
        let Some(key) = self.key.clone() else { return };
        let (chain, mempool) = (self.chain.clone(), self.mempool.clone());
        self.wait(ctx, async move {
            let txs = mempool.take(MAX_BLOCK_TXS).await?;
            let built = chain
                .propose(key.account(), now_ms(), u64::from(round), txs)
                .await?;
            if !built.rejected.is_empty() {
                mempool
                    .block_done(Vec::new(), built.rejected, Vec::new())
                    .await?;
            }
            Ok(Done::Input(Box::new(Input::Built {
                height,
                round,
                block: built.block,
            })))
        });
    }

    /// A peer still votes on a height this node finalized: hand it the block and
    /// certificate (at most once per height per two block times).
    fn answer_straggler(&mut self, height: u64, ctx: &mut Context<Self>) {
        if self
            .answered
            .get(&height)
            .is_some_and(|t| t.elapsed() < 2 * self.block_time)
        {
            return;
        }
        if self.answered.len() >= ANSWERED_MAX {
            self.answered.clear();
        }
        self.answered.insert(height, Instant::now());
        let (chain, net) = (self.chain.clone(), self.net.clone());
        ctx.spawn(
            async move {
                if let Ok(mut found) = chain.finalized(height, 1, usize::MAX).await {
                    if let Some((block, cert)) = found.pop() {
                        if let Ok(bytes) = ConsensusMessage::Decided(block, cert).encode() {
                            let _ = net.publish(Topic::Consensus, bytes).await;
                        }
                    }
                }
            }
            .into_actor(self),
        );
    }

    /// Fetch finalized blocks from `peer` from our next height on, import them (each
    /// certificate checked), and move consensus past them. One sync at a time.
    fn sync_from(&mut self, peer: PeerId, ctx: &mut Context<Self>) {
        if self.syncing {
            return;
        }
        self.syncing = true;
        let (chain, mempool, net) = (self.chain.clone(), self.mempool.clone(), self.net.clone());
        let from = self.machine.height();
        self.wait(ctx, async move {
            let answer = net
                .fetch(
                    peer,
                    SyncRequest::Blocks {
                        from,
                        count: SYNC_BLOCKS_MAX,
                    },
                )
                .await;
            let blocks = match answer {
                Ok(SyncResponse::Blocks(b)) => b,
                Ok(other) => {
                    debug!(%peer, "sync refused: {other:?}");
                    return Ok(Done::Synced {
                        produced: Vec::new(),
                        more: false,
                        failed: true,
                    });
                }
                Err(e) => {
                    debug!(%peer, "sync request failed: {e}");
                    return Ok(Done::Synced {
                        produced: Vec::new(),
                        more: false,
                        failed: true,
                    });
                }
            };
            let full = blocks.len() == SYNC_BLOCKS_MAX as usize;
            let mut produced = Vec::new();
            for (block, cert) in blocks {
                let ts = block.header.timestamp_ms;
                match chain.import(block, cert).await? {
                    Ok(p) => {
                        mempool
                            .block_done(p.included.clone(), Vec::new(), p.nonces.clone())
                            .await?;
                        produced.push((p, ts));
                    }
                    Err(reason) => {
                        warn!(%peer, "peer served an invalid block or certificate: {reason}");
                        net.penalize(peer, reason);
                        return Ok(Done::Synced {
                            produced,
                            more: false,
                            failed: true,
                        });
                    }
                }
            }
            let more = full && !produced.is_empty();
            let failed = produced.is_empty();
            Ok(Done::Synced {
                produced,
                more,
                failed,
            })
        });
        self.last_sync_peer = Some(peer);
    }
}

impl Actor for ConsensusActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Consensus messages wait here while a block executes; past this many the
        // bridge drops them (their senders retransmit).
        ctx.set_mailbox_capacity(CONSENSUS_MAILBOX_MAX);
        let chain = self.chain.clone();
        let height = self.machine.height();
        self.busy = true;
        ctx.wait(
            async move { chain.own_messages(height).await }
                .into_actor(self)
                .map(move |own, act, ctx| {
                    act.busy = false;
                    match own {
                        Ok(own) => {
                            if !own.is_empty() {
                                info!(
                                    height,
                                    messages = own.len(),
                                    "resuming with this validator's logged votes"
                                );
                            }
                            act.machine.restore(own);
                            act.input(Input::Start, ctx);
                        }
                        Err(e) => act.fail(&e, ctx),
                    }
                }),
        );
    }
}

/// Consensus messages waiting for the actor. Overflow policy: the bridge drops new ones.
pub const CONSENSUS_MAILBOX_MAX: usize = 4096;

impl Handler<FromNetwork> for ConsensusActor {
    type Result = ();

    fn handle(&mut self, msg: FromNetwork, ctx: &mut Self::Context) {
        let here = self.machine.height();
        match msg {
            FromNetwork::Consensus { from, msg } => {
                let msg = *msg;
                let h = msg.height();
                if h < here {
                    if !matches!(msg, ConsensusMessage::Decided(..)) {
                        self.answer_straggler(h, ctx);
                    }
                } else if h > here.saturating_add(1) {
                    self.note_ahead(from, h.saturating_sub(1));
                    self.sync_from(from, ctx);
                } else {
                    self.input(Input::Message(msg), ctx);
                }
            }
            FromNetwork::Announced { from, height } => {
                if height >= here {
                    self.note_ahead(from, height);
                    self.sync_from(from, ctx);
                }
            }
            FromNetwork::PeerConnected(peer) => {
                let net = self.net.clone();
                ctx.spawn(
                    async move { net.fetch(peer, SyncRequest::Status).await }
                        .into_actor(self)
                        .map(move |answer, act, ctx| {
                            if let Ok(SyncResponse::Status { height, .. }) = answer {
                                if height >= act.machine.height() {
                                    act.note_ahead(peer, height);
                                    act.sync_from(peer, ctx);
                                }
                            }
                        }),
                );
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct SyncMore;

#[derive(Message)]
#[rtype(result = "()")]
struct SyncFrom(PeerId);

impl Handler<SyncFrom> for ConsensusActor {
    type Result = ();
    fn handle(&mut self, msg: SyncFrom, ctx: &mut Self::Context) {
        self.sync_from(msg.0, ctx);
    }
}

/// Peers remembered as being ahead. Overflow policy: the lowest is forgotten.
const AHEAD_MAX: usize = 256;

impl Handler<SyncMore> for ConsensusActor {
    type Result = ();
    fn handle(&mut self, _: SyncMore, ctx: &mut Self::Context) {
        if let Some(peer) = self.last_sync_peer {
            self.sync_from(peer, ctx);
        }
    }
}

/// The consensus state for the RPC.
#[derive(Message)]
#[rtype(result = "ConsensusStatus")]
pub struct GetStatus;

impl Handler<GetStatus> for ConsensusActor {
    type Result = actix::MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(ConsensusStatus {
            height: self.machine.height(),
            round: self.machine.round(),
            step: self.machine.step(),
            leader: self.machine.leader(),
            validator: self.key.as_ref().map(Keypair::account),
            validators: self.machine.validators().validators().to_vec(),
            last_certificate: self.last_cert.as_ref().map(|c| CertSummary {
                height: c.height,
                round: c.round,
                block_hash: c.block_hash,
                signers: c.votes.iter().map(|v| v.authority).collect(),
            }),
            evidence_count: self.evidence_count,
            evidence: self.evidence.iter().rev().cloned().collect(),
            syncing: self.syncing,
            peer_id: self.net.local_peer_id().to_string(),
        })
    }
}

/// Stop: no new effect is started after this.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopConsensus;

impl Handler<StopConsensus> for ConsensusActor {
    type Result = ();
    fn handle(&mut self, _: StopConsensus, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
