use std::collections::HashMap;
use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient,
    ResponseFuture, StreamHandler, WrapFuture,
};
use agora_core::consensus::{Message as ConsensusMessage, ValidatorSet};
use agora_core::Hash;
use agora_p2p::{
    Announcement, NetError, NetEvent, Network, PeerId, PeerInfo, SyncRequest, SyncResponse, Topic,
    TxBatch, Verdict, SYNC_BLOCKS_MAX, TX_BATCH_MAX, TX_BATCH_MAX_BYTES,
};
use tracing::{debug, warn};

use crate::actors::chain::ChainHandle;
use crate::actors::mempool::{GossipTx, MempoolHandle, Origin, SubmitError};

/// Invalid messages from one peer before it is banned.
pub const BAN_AFTER_STRIKES: u32 = 20;
/// Peers whose strikes are remembered. Overflow policy: all strikes are forgotten.
pub const STRIKES_TRACKED_MAX: usize = 4096;
/// Bytes of blocks one sync answer carries at most (below the protocol's frame limit).
const SYNC_ANSWER_BYTES: usize = agora_p2p::protocol::SYNC_RESPONSE_MAX_BYTES - 1024 * 1024;

/// What the bridge hands the consensus actor: checked messages and peer news.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum FromNetwork {
    Consensus {
        from: PeerId,
        msg: Box<ConsensusMessage>,
    },
    Announced {
        from: PeerId,
        height: u64,
    },
    PeerConnected(PeerId),
}

/// Why a consensus message is ignored rather than rejected: its height is outside the
/// validator sets known here and the nearest one does not accept it.
const OUTSIDE_KNOWN_SETS: &str =
    "a consensus message for a height outside the known validator sets";

pub struct NetworkActor {
    net: Arc<dyn Network>,
    events: Option<agora_p2p::Events>,
    chain: ChainHandle,
    mempool: MempoolHandle,
    chain_id: u64,
    genesis_hash: Hash,
    /// The validators of the heights ahead, by first height (governance changes them):
    /// a consensus message passes when its signer is in the set of its height.
    validators: std::collections::BTreeMap<u64, ValidatorSet>,
    consensus: Option<Recipient<FromNetwork>>,
    strikes: HashMap<PeerId, u32>,
    /// Local transactions waiting to go out in one gossip batch.
    outgoing: Vec<Vec<u8>>,
    outgoing_bytes: usize,
    flush_scheduled: bool,
}

impl NetworkActor {
    pub fn new(
        net: Arc<dyn Network>,
        events: agora_p2p::Events,
        chain: ChainHandle,
        mempool: MempoolHandle,
        chain_id: u64,
        genesis_hash: Hash,
        validators: Vec<(u64, ValidatorSet)>,
    ) -> Self {
        NetworkActor {
            net,
            events: Some(events),
            chain,
            mempool,
            chain_id,
            genesis_hash,
            validators: validators.into_iter().collect(),
            consensus: None,
            strikes: HashMap::new(),
            outgoing: Vec::new(),
            outgoing_bytes: 0,
            flush_scheduled: false,
        }
    }

    /// Count an invalid message against `peer`; ban it past the limit.
    fn strike(&mut self, peer: PeerId, why: &str) {
        if self.strikes.len() >= STRIKES_TRACKED_MAX {
            self.strikes.clear();
        }
        let n = self.strikes.entry(peer).or_default();
        *n += 1;
        debug!(%peer, strikes = *n, "invalid message: {why}");
        if *n >= BAN_AFTER_STRIKES {
            warn!(%peer, "banning peer after {BAN_AFTER_STRIKES} invalid messages (last: {why})");
            self.net.ban(peer);
            self.strikes.remove(&peer);
        }
    }

    /// Checks a consensus message can pass without state: it decodes, and its signatures
    /// (or certificate) are by validators. Rounds and heights are the machine's business.
    fn check_consensus(&self, msg: &ConsensusMessage) -> Result<(), &'static str> {
        let height = match msg {
            ConsensusMessage::Vote(v) => v.height,
            ConsensusMessage::Proposal(p) => p.height,
            ConsensusMessage::Decided(block, _) => block.header.height,
        };
        // The set of the message's height, where this node knows it (the heights it is
        // deciding). Outside them (a straggler's old height, or a height far ahead while
        // this node syncs) the nearest known set is used, and a message it does not
        // accept is ignored rather than held against the sender: the set may have changed
        // in between (sync checks every certificate against its own height's set).
        let (Some((&first, _)), Some((&last, _))) = (
            self.validators.iter().next(),
            self.validators.iter().next_back(),
        ) else {
            return Err(OUTSIDE_KNOWN_SETS);
        };
        let known = (first..=last).contains(&height);
        let Some(validators) = self
            .validators
            .range(..=height.max(first))
            .next_back()
            .map(|(_, set)| set)
        else {
            return Err(OUTSIDE_KNOWN_SETS);
        };
        let check = self.check_with(msg, validators);
        match check {
            Err(_) if !known => Err(OUTSIDE_KNOWN_SETS),
            other => other,
        }
    }

    fn check_with(
        &self,
        msg: &ConsensusMessage,
        validators: &ValidatorSet,
    ) -> Result<(), &'static str> {
        match msg {
            ConsensusMessage::Vote(v) => {
                if validators.power(&v.voter).is_none() {
                    return Err("vote by a non-validator");
                }
                if !v.verify(self.chain_id) {
                    return Err("bad vote signature");
                }
            }
            ConsensusMessage::Proposal(p) => {
                if validators.power(&p.proposer).is_none() {
                    return Err("proposal by a non-validator");
                }
                if !p.verify(self.chain_id) {
                    return Err("bad proposal signature or fields");
                }
            }
            ConsensusMessage::Decided(block, cert) => {
                if cert
                    .verify_for(
                        self.chain_id,
                        validators,
                        block.header.height,
                        &block.hash(),
                    )
                    .is_err()
                {
                    return Err("decided block without a valid certificate");
                }
            }
        }
        Ok(())
    }

    fn gossip(
        &mut self,
        topic: Topic,
        from: PeerId,
        id: agora_p2p::MessageId,
        data: Vec<u8>,
        ctx: &mut Context<Self>,
    ) {
        match topic {
            Topic::Consensus => {
                let checked = ConsensusMessage::decode(&data)
                    .map_err(|_| "undecodable consensus message")
                    .and_then(|m| self.check_consensus(&m).map(|()| m));
                match checked {
                    Ok(msg) => {
                        self.net.report(id, from, Verdict::Accept);
                        if let Some(c) = &self.consensus {
                            // Full mailbox: dropped; the sender retransmits.
                            let _ = c.try_send(FromNetwork::Consensus {
                                from,
                                msg: Box::new(msg),
                            });
                        }
                    }
                    Err(OUTSIDE_KNOWN_SETS) => self.net.report(id, from, Verdict::Ignore),
                    Err(why) => {
                        self.net.report(id, from, Verdict::Reject);
                        self.strike(from, why);
                    }
                }
            }
            Topic::Transactions => {
                let batch = match TxBatch::decode(&data) {
                    Ok(b) => b,
                    Err(_) => {
                        self.net.report(id, from, Verdict::Reject);
                        self.strike(from, "undecodable transaction batch");
                        return;
                    }
                };
                let mempool = self.mempool.clone();
                ctx.spawn(
                    async move {
                        let mut forged = None;
                        let mut admitted = 0usize;
                        for tx in batch.0 {
                            match mempool.submit(tx, Origin::Peer).await {
                                Ok(Ok(_)) => admitted += 1,
                                // Malformed, forged, oversize or for another chain: the
                                // sender is at fault. Stale or unaffordable: honest races.
                                Ok(Err(SubmitError::Invalid(e))) if is_forgery(e.kind()) => {
                                    forged = Some(e.kind());
                                }
                                _ => {}
                            }
                        }
                        (forged, admitted)
                    }
                    .into_actor(self)
                    .map(move |(forged, admitted), act, _| {
                        let verdict = match forged {
                            Some(kind) => {
                                act.strike(from, kind);
                                Verdict::Reject
                            }
                            None if admitted > 0 => Verdict::Accept,
                            None => Verdict::Ignore,
                        };
                        act.net.report(id, from, verdict);
                    }),
                );
            }
            Topic::Blocks => match Announcement::decode(&data) {
                Ok(a) => {
                    self.net.report(id, from, Verdict::Accept);
                    if let Some(c) = &self.consensus {
                        c.do_send(FromNetwork::Announced {
                            from,
                            height: a.height,
                        });
                    }
                }
                Err(_) => {
                    self.net.report(id, from, Verdict::Reject);
                    self.strike(from, "undecodable announcement");
                }
            },
        }
    }

    fn request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        reply: agora_p2p::ReplyId,
        ctx: &mut Context<Self>,
    ) {
        let (chain, net, genesis) = (self.chain.clone(), self.net.clone(), self.genesis_hash);
        ctx.spawn(
            async move {
                let answer = match request {
                    SyncRequest::Status => match chain.head().await {
                        Ok(h) => SyncResponse::Status {
                            height: h.height,
                            head: h.hash,
                            genesis,
                        },
                        Err(e) => SyncResponse::Refused(e.to_string()),
                    },
                    SyncRequest::Blocks { from, count } => {
                        let count = count.min(SYNC_BLOCKS_MAX);
                        match chain.finalized(from.max(1), count, SYNC_ANSWER_BYTES).await {
                            Ok(blocks) => SyncResponse::Blocks(blocks),
                            Err(e) => SyncResponse::Refused(e.to_string()),
                        }
                    }
                };
                debug!(%peer, "answered a sync request");
                net.respond(reply, answer);
            }
            .into_actor(self),
        );
    }
}

/// Transaction refusals that mean the sender forwarded junk, not merely a stale or
/// unaffordable transaction (which can be honest races).
fn is_forgery(kind: &str) -> bool {
    matches!(
        kind,
        "malformed" | "bad_signature" | "wrong_chain_id" | "oversize"
    )
}

impl Actor for NetworkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(events) = self.events.take() {
            ctx.add_stream(futures_util::stream::unfold(events, |mut rx| async move {
                rx.recv().await.map(|e| (e, rx))
            }));
        }
        self.mempool.set_gossip(ctx.address().recipient());
    }
}

impl StreamHandler<NetEvent> for NetworkActor {
    fn handle(&mut self, event: NetEvent, ctx: &mut Self::Context) {
        match event {
            NetEvent::Gossip {
                topic,
                from,
                id,
                data,
            } => self.gossip(topic, from, id, data, ctx),
            NetEvent::Request {
                peer,
                request,
                reply,
            } => self.request(peer, request, reply, ctx),
            NetEvent::PeerConnected(peer) => {
                debug!(%peer, "peer connected");
                if let Some(c) = &self.consensus {
                    c.do_send(FromNetwork::PeerConnected(peer));
                }
            }
            NetEvent::PeerDisconnected(peer) => debug!(%peer, "peer disconnected"),
            // A node serves no neuron queries: dropping the reply fails the caller's query.
            NetEvent::Query { peer, .. } => debug!(%peer, "neuron query to a node: refused"),
        }
    }
}

/// How long a local transaction may wait for others to share its gossip message.
const TX_BATCH_DELAY: std::time::Duration = std::time::Duration::from_millis(10);

impl NetworkActor {
    fn flush_transactions(&mut self, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        if self.outgoing.is_empty() {
            return;
        }
        let batch = TxBatch(std::mem::take(&mut self.outgoing));
        self.outgoing_bytes = 0;
        let net = self.net.clone();
        ctx.spawn(
            async move {
                match batch.encode() {
                    Ok(bytes) => {
                        if let Err(e) = net.publish(Topic::Transactions, bytes).await {
                            debug!("gossiping transactions: {e}");
                        }
                    }
                    Err(e) => warn!("transaction batch: {e}"),
                }
            }
            .into_actor(self),
        );
    }
}

impl Handler<GossipTx> for NetworkActor {
    type Result = ();
    fn handle(&mut self, msg: GossipTx, ctx: &mut Self::Context) {
        // Batches stay under the topic's limits: flush before one would overflow.
        if self.outgoing.len() >= TX_BATCH_MAX
            || self.outgoing_bytes + msg.0.len() + 16 > TX_BATCH_MAX_BYTES
        {
            self.flush_transactions(ctx);
        }
        self.outgoing_bytes += msg.0.len() + 16;
        self.outgoing.push(msg.0);
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(TX_BATCH_DELAY, |act, ctx| act.flush_transactions(ctx));
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct SetConsensus(Recipient<FromNetwork>);

impl Handler<SetConsensus> for NetworkActor {
    type Result = ();
    fn handle(&mut self, msg: SetConsensus, _: &mut Self::Context) {
        self.consensus = Some(msg.0);
    }
}

/// The validator sets of the coming heights, from the newest committed state.
#[derive(Message)]
#[rtype(result = "()")]
struct SetValidators(Vec<(u64, ValidatorSet)>);

impl Handler<SetValidators> for NetworkActor {
    type Result = ();
    fn handle(&mut self, msg: SetValidators, _: &mut Self::Context) {
        let first = msg.0.iter().map(|(h, _)| *h).min().unwrap_or(0);
        // Keep the set just before the new ones (messages of the height being decided).
        let keep_from = self
            .validators
            .range(..first)
            .next_back()
            .map_or(first, |(h, _)| *h);
        self.validators.retain(|h, _| *h >= keep_from);
        self.validators.extend(msg.0);
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), NetError>")]
struct Publish(Topic, Vec<u8>);

impl Handler<Publish> for NetworkActor {
    type Result = ResponseFuture<Result<(), NetError>>;
    fn handle(&mut self, msg: Publish, _: &mut Self::Context) -> Self::Result {
        let net = self.net.clone();
        Box::pin(async move { net.publish(msg.0, msg.1).await })
    }
}

#[derive(Message)]
#[rtype(result = "Result<SyncResponse, NetError>")]
struct Fetch(PeerId, SyncRequest);

impl Handler<Fetch> for NetworkActor {
    type Result = ResponseFuture<Result<SyncResponse, NetError>>;
    fn handle(&mut self, msg: Fetch, _: &mut Self::Context) -> Self::Result {
        let net = self.net.clone();
        Box::pin(async move { net.request(msg.0, msg.1).await })
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Penalize(PeerId, String);

impl Handler<Penalize> for NetworkActor {
    type Result = ();
    fn handle(&mut self, msg: Penalize, _: &mut Self::Context) {
        // Serving a block or certificate that does not check is never an honest mistake
        // (certificates prove themselves): banned at once.
        warn!(peer = %msg.0, "banning peer: {}", msg.1);
        self.net.ban(msg.0);
        self.strikes.remove(&msg.0);
    }
}

#[derive(Message)]
#[rtype(result = "Vec<PeerInfo>")]
struct Peers;

impl Handler<Peers> for NetworkActor {
    type Result = ResponseFuture<Vec<PeerInfo>>;
    fn handle(&mut self, _: Peers, _: &mut Self::Context) -> Self::Result {
        let net = self.net.clone();
        Box::pin(async move { net.peers().await })
    }
}

/// Typed access to the bridge.
#[derive(Clone)]
pub struct NetworkHandle {
    addr: Addr<NetworkActor>,
    local: PeerId,
}

impl NetworkHandle {
    pub fn new(addr: Addr<NetworkActor>, local: PeerId) -> Self {
        NetworkHandle { addr, local }
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    pub fn set_consensus(&self, to: Recipient<FromNetwork>) {
        self.addr.do_send(SetConsensus(to));
    }

    pub fn set_validators(&self, sets: Vec<(u64, ValidatorSet)>) {
        self.addr.do_send(SetValidators(sets));
    }

    pub async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), NetError> {
        self.addr
            .send(Publish(topic, data))
            .await
            .map_err(|_| NetError::Stopped)?
    }

    pub async fn fetch(
        &self,
        peer: PeerId,
        request: SyncRequest,
    ) -> Result<SyncResponse, NetError> {
        self.addr
            .send(Fetch(peer, request))
            .await
            .map_err(|_| NetError::Stopped)?
    }

    pub fn penalize(&self, peer: PeerId, why: String) {
        self.addr.do_send(Penalize(peer, why));
    }

    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.addr.send(Peers).await.unwrap_or_default()
    }
}
