//! The libp2p network: one task owns the `Swarm` (TCP + Noise + Yamux; gossipsub with
//! validation and peer scoring, request-response sync, identify, kademlia, optional mDNS,
//! a block list) and talks to the node through commands and events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use libp2p::futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{allow_block_list, identify, identity, kad, mdns, noise, tcp, yamux};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::protocol::{
    SyncRequest, SyncResponse, Topic, SYNC_REQUEST_MAX_BYTES, SYNC_RESPONSE_MAX_BYTES,
};
use crate::service::*;

/// Inbound requests awaiting the node's answer. Overflow policy: new ones are dropped
/// (the peer sees a failure and retries elsewhere).
pub const PENDING_REPLIES_MAX: usize = 256;
/// Outbound requests in flight. Overflow policy: new ones fail at once.
pub const PENDING_REQUESTS_MAX: usize = 256;
const SYNC_PROTOCOL: &str = "/agora/sync/1";
/// Concurrent query streams per connection.
const QUERY_STREAMS_MAX: usize = 64;
/// How long a sync request may take once its stream is open.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How often unreachable bootnodes are dialed again.
const REDIAL_EVERY: Duration = Duration::from_secs(3);
const KAD_PROTOCOL: &str = "/agora/kad/1";
/// How long a DHT lookup of a neuron may take.
const LOCATE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a node joins the network.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub chain_id: u64,
    pub genesis_hash: agora_core::Hash,
    /// The libp2p identity: the validator key's seed for a validator, a node key otherwise.
    pub key_seed: [u8; 32],
    pub listen: Multiaddr,
    /// Peers to dial at start (`/ip4/../tcp/../p2p/<peer id>`).
    pub bootnodes: Vec<Multiaddr>,
    /// mDNS discovery on the local network: off unless asked for.
    pub mdns: bool,
    /// All peers share one IP (a local testnet): turn off gossipsub's same-IP penalty.
    pub local: bool,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
    query: request_response::Behaviour<QueryCodec>,
    identify: identify::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
}

/// Length-prefixed (u32 LE) frames of the sync messages, bounded both ways.
#[derive(Debug, Clone, Default)]
struct SyncCodec;

/// Neuron queries: opaque signed bytes (`crate::query`), framed and bounded the same way;
/// the miner's guard decodes and checks them.
#[derive(Debug, Clone, Default)]
struct QueryCodec;

impl request_response::Codec for QueryCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: libp2p::futures::AsyncRead + Unpin + Send,
    {
        read_frame(io, crate::query::QUERY_FRAME_MAX_BYTES).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: libp2p::futures::AsyncRead + Unpin + Send,
    {
        read_frame(io, crate::query::RESPONSE_MAX_BYTES).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: libp2p::futures::AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: libp2p::futures::AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res).await
    }
}

async fn read_frame<T: libp2p::futures::AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes, limit {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: libp2p::futures::AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<SyncRequest>
    where
        T: libp2p::futures::AsyncRead + Unpin + Send,
    {
        SyncRequest::decode(&read_frame(io, SYNC_REQUEST_MAX_BYTES).await?).map_err(invalid)
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<SyncResponse>
    where
        T: libp2p::futures::AsyncRead + Unpin + Send,
    {
        SyncResponse::decode(&read_frame(io, SYNC_RESPONSE_MAX_BYTES).await?).map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> std::io::Result<()>
    where
        T: libp2p::futures::AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req.encode()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SyncResponse,
    ) -> std::io::Result<()>
    where
        T: libp2p::futures::AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.encode().map_err(invalid)?).await
    }
}

enum Command {
    Query(PeerId, Vec<u8>, oneshot::Sender<Result<Vec<u8>, NetError>>),
    Answer(ReplyId, Vec<u8>),
    Publish(Topic, Vec<u8>, oneshot::Sender<Result<(), NetError>>),
    Report(MessageId, PeerId, Verdict),
    Request(
        PeerId,
        SyncRequest,
        oneshot::Sender<Result<SyncResponse, NetError>>,
    ),
    Respond(ReplyId, SyncResponse),
    Ban(PeerId),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Locate(
        PeerId,
        bool,
        oneshot::Sender<Result<Vec<Multiaddr>, NetError>>,
    ),
}

/// The node's handle on the libp2p task.
#[derive(Clone)]
pub struct Libp2pNetwork {
    local: PeerId,
    commands: mpsc::Sender<Command>,
}

/// The libp2p identity of a 32-byte ed25519 seed (a validator's key seed gives the peer id
/// that validator is known by).
pub fn identity_from_seed(seed: [u8; 32]) -> Result<identity::Keypair, NetError> {
    let mut bytes = seed;
    identity::Keypair::ed25519_from_bytes(&mut bytes).map_err(|e| NetError::Start(e.to_string()))
}

pub fn peer_id_from_seed(seed: [u8; 32]) -> Result<PeerId, NetError> {
    Ok(identity_from_seed(seed)?.public().to_peer_id())
}

fn topic_score(weight: f64) -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: weight,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.5,
        first_message_deliveries_cap: 50.0,
        // Quiet chains deliver few messages: no penalty for a quiet mesh.
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // Each invalid (rejected) message costs 10 points squared, decaying by half.
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.5,
        ..Default::default()
    }
}

fn build_gossipsub(
    key: &identity::Keypair,
    cfg: &NetConfig,
) -> Result<gossipsub::Behaviour, NetError> {
    let mut builder = gossipsub::ConfigBuilder::default();
    builder
        .heartbeat_interval(Duration::from_millis(500))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        // Room for bursts (a proposal round of votes plus many transaction batches).
        .connection_handler_queue_len(20_000)
        // The global limit bounds every inbound frame: the largest topic's (a proposal
        // with its block). Each topic then has its own, smaller where it can be.
        .max_transmit_size(Topic::Consensus.max_bytes());
    let mut params = gossipsub::PeerScoreParams::default();
    for t in Topic::ALL {
        let hash = IdentTopic::new(t.name(cfg.chain_id, &cfg.genesis_hash)).hash();
        builder.max_transmit_size_for_topic(t.max_bytes(), hash.clone());
        params.topics.insert(hash, topic_score(1.0));
    }
    if cfg.local {
        // Every peer of a local testnet shares 127.0.0.1: the same-IP penalty would
        // throttle honest peers past 10 of them. Knowingly off.
        params.ip_colocation_factor_weight = 0.0;
    }
    let config = builder
        .build()
        .map_err(|e| NetError::Start(format!("gossipsub config: {e}")))?;
    let mut gs =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)
            .map_err(|e| NetError::Start(format!("gossipsub: {e}")))?;
    // A parameter with the wrong sign makes scoring refuse to start: check, never ignore.
    gs.with_peer_score(params, gossipsub::PeerScoreThresholds::default())
        .map_err(|e| NetError::Start(format!("gossipsub peer scoring: {e}")))?;
    for t in Topic::ALL {
        gs.subscribe(&IdentTopic::new(t.name(cfg.chain_id, &cfg.genesis_hash)))
            .map_err(|e| NetError::Start(format!("subscribing: {e}")))?;
    }
    Ok(gs)
}

impl Libp2pNetwork {
    /// Start the swarm task (on the current tokio runtime). Returns the handle, the events,
    /// and the address actually listened on (port 0 picks a free one).
    pub async fn start(cfg: NetConfig) -> Result<(Self, Events, Vec<Multiaddr>), NetError> {
        let key = identity_from_seed(cfg.key_seed)?;
        let local = key.public().to_peer_id();
        let gossipsub = build_gossipsub(&key, &cfg)?;
        let mdns = if cfg.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), local)
                    .map_err(|e| NetError::Start(format!("mdns: {e}")))?,
            )
        } else {
            None
        };
        let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        kad_config.set_query_timeout(LOCATE_TIMEOUT);
        let mut kad =
            kad::Behaviour::with_config(local, kad::store::MemoryStore::new(local), kad_config);
        // Serve the DHT even without a confirmed public address (local networks).
        kad.set_mode(Some(kad::Mode::Server));
        let behaviour = Behaviour {
            gossipsub,
            sync: request_response::Behaviour::new(
                [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT),
            ),
            query: request_response::Behaviour::new(
                [(
                    StreamProtocol::new(crate::query::QUERY_PROTOCOL),
                    ProtocolSupport::Full,
                )],
                request_response::Config::default()
                    .with_request_timeout(REQUEST_TIMEOUT)
                    .with_max_concurrent_streams(QUERY_STREAMS_MAX),
            ),
            identify: identify::Behaviour::new(identify::Config::new(
                "/agora/1".into(),
                key.public(),
            )),
            kad,
            mdns: Toggle::from(mdns),
            blocked: allow_block_list::Behaviour::default(),
        };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| NetError::Start(format!("transport: {e}")))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| NetError::Start(format!("behaviour: {e}")))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build();
        swarm
            .listen_on(cfg.listen.clone())
            .map_err(|e| NetError::Start(format!("listening on {}: {e}", cfg.listen)))?;
        // Wait for the listen address to be known (port 0 resolves here).
        let mut listening = Vec::new();
        while listening.is_empty() {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => listening.push(address),
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(NetError::Start(format!("listener: {error}")))
                }
                SwarmEvent::ListenerClosed { reason: Err(e), .. } => {
                    return Err(NetError::Start(format!("listener: {e}")))
                }
                _ => {}
            }
        }
        for addr in &cfg.bootnodes {
            if let Some(peer) = peer_of(addr) {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
            if let Err(e) = swarm.dial(addr.clone()) {
                warn!(%addr, "cannot dial bootnode: {e}");
            }
        }
        let (commands, command_rx) = mpsc::channel(NET_COMMANDS_MAX);
        let (events, event_rx) = mpsc::channel(NET_EVENTS_MAX);
        let topics = Topic::ALL
            .iter()
            .map(|t| {
                (
                    IdentTopic::new(t.name(cfg.chain_id, &cfg.genesis_hash)).hash(),
                    *t,
                )
            })
            .collect();
        let task = SwarmTask {
            swarm,
            topics,
            cfg,
            events,
            sync: Exchange::default(),
            query: Exchange::default(),
            next_reply: 0,
            banned: HashSet::new(),
            dropped_events: 0,
            connected: HashSet::new(),
            locating: HashMap::new(),
        };
        tokio::spawn(task.run(command_rx));
        info!(peer_id = %local, listen = ?listening, "p2p listening");
        Ok((Libp2pNetwork { local, commands }, event_rx, listening))
    }

    /// [`Self::start`] on a thread of its own with its own tokio runtime, so swarm work
    /// never shares a thread with the node's actors. The thread ends when the swarm task
    /// does (every handle dropped).
    pub fn spawn(cfg: NetConfig) -> Result<(Self, Events, Vec<Multiaddr>), NetError> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("p2p".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(NetError::Start(format!("runtime: {e}"))));
                        return;
                    }
                };
                rt.block_on(async move {
                    match Self::start(cfg).await {
                        Ok((net, events, addrs)) => {
                            let commands = net.commands.clone();
                            let _ = tx.send(Ok((net, events, addrs)));
                            // Until the swarm task drops its receiver.
                            commands.closed().await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| NetError::Start(format!("thread: {e}")))?;
        rx.recv().map_err(|_| NetError::Stopped)?
    }

    async fn send(&self, c: Command) -> Result<(), NetError> {
        self.commands.send(c).await.map_err(|_| NetError::Stopped)
    }

    /// Find `peer` (a neuron: its peer id is its hotkey) through the DHT and dial it.
    /// Returns the addresses dialed, empty when already connected. Loopback and private
    /// addresses are used only with `allow_private`.
    pub async fn locate(
        &self,
        peer: PeerId,
        allow_private: bool,
    ) -> Result<Vec<Multiaddr>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Locate(peer, allow_private, tx)).await?;
        match tokio::time::timeout(LOCATE_TIMEOUT + Duration::from_secs(5), rx).await {
            Ok(answer) => answer.map_err(|_| NetError::Stopped)?,
            Err(_) => Err(request_failed(&peer, "DHT lookup timed out")),
        }
    }
}

/// Whether an address may be dialed without the operator allowing private networks: not
/// loopback, private, link-local, shared (CGNAT) or unspecified.
pub fn is_public(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    addr.iter().all(|p| match p {
        Protocol::Ip4(ip) => {
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || (ip.octets()[0] == 100 && (ip.octets()[1] & 0xC0) == 64))
        }
        Protocol::Ip6(ip) => {
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xFE00) == 0xFC00
                || (first & 0xFFC0) == 0xFE80)
        }
        _ => true,
    })
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

#[async_trait::async_trait]
impl Network for Libp2pNetwork {
    fn local_peer_id(&self) -> PeerId {
        self.local
    }

    async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Publish(topic, data, tx)).await?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    fn report(&self, id: MessageId, from: PeerId, verdict: Verdict) {
        // Overflow: the verdict is lost and the message expires from the cache unforwarded.
        let _ = self.commands.try_send(Command::Report(id, from, verdict));
    }

    async fn request(&self, peer: PeerId, request: SyncRequest) -> Result<SyncResponse, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Request(peer, request, tx)).await?;
        // libp2p's own timeout starts once a stream is open; a request waiting for a
        // connection that never comes is bounded here.
        match tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(5), rx).await {
            Ok(answer) => answer.map_err(|_| NetError::Stopped)?,
            Err(_) => Err(NetError::Request {
                peer: peer.to_string(),
                reason: "timed out".into(),
            }),
        }
    }

    fn respond(&self, reply: ReplyId, response: SyncResponse) {
        let _ = self.commands.try_send(Command::Respond(reply, response));
    }

    fn ban(&self, peer: PeerId) {
        let _ = self.commands.try_send(Command::Ban(peer));
    }

    async fn query(&self, peer: PeerId, data: Vec<u8>) -> Result<Vec<u8>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Query(peer, data, tx)).await?;
        match tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(5), rx).await {
            Ok(answer) => answer.map_err(|_| NetError::Stopped)?,
            Err(_) => Err(NetError::Request {
                peer: peer.to_string(),
                reason: "timed out".into(),
            }),
        }
    }

    fn answer(&self, reply: ReplyId, data: Vec<u8>) {
        let _ = self.commands.try_send(Command::Answer(reply, data));
    }

    async fn peers(&self) -> Vec<PeerInfo> {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Peers(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

/// One request-response protocol's bookkeeping: inbound requests awaiting the node's
/// answer (at most [`PENDING_REPLIES_MAX`]) and outbound ones awaiting the peer's (at most
/// [`PENDING_REQUESTS_MAX`]).
struct Exchange<Resp> {
    replies: BTreeMap<u64, ResponseChannel<Resp>>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Resp, NetError>>>,
}

impl<Resp> Default for Exchange<Resp> {
    fn default() -> Self {
        Exchange {
            replies: BTreeMap::new(),
            pending: HashMap::new(),
        }
    }
}

fn request_failed(peer: &PeerId, reason: impl Into<String>) -> NetError {
    NetError::Request {
        peer: peer.to_string(),
        reason: reason.into(),
    }
}

impl<Resp> Exchange<Resp> {
    /// Settle outbound answers and failures; an inbound request comes back filed under a
    /// new reply id (or is dropped, failing the peer's request, when too many wait).
    fn event<Req>(
        &mut self,
        next_reply: &mut u64,
        event: request_response::Event<Req, Resp>,
    ) -> Option<(PeerId, Req, ReplyId)> {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if self.replies.len() >= PENDING_REPLIES_MAX {
                        return None;
                    }
                    let reply = *next_reply;
                    *next_reply += 1;
                    self.replies.insert(reply, channel);
                    Some((peer, request, ReplyId(reply)))
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(done) = self.pending.remove(&request_id) {
                        let _ = done.send(Ok(response));
                    }
                    None
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(done) = self.pending.remove(&request_id) {
                    let _ = done.send(Err(request_failed(&peer, error.to_string())));
                }
                None
            }
            _ => None,
        }
    }
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    topics: HashMap<TopicHash, Topic>,
    cfg: NetConfig,
    events: mpsc::Sender<NetEvent>,
    sync: Exchange<SyncResponse>,
    query: Exchange<Vec<u8>>,
    /// Reply ids for inbound requests of both protocols.
    next_reply: u64,
    /// Peers this node banned (bounded by how many it ever met; never shrinks).
    banned: HashSet<PeerId>,
    dropped_events: u64,
    connected: HashSet<PeerId>,
    /// DHT lookups of neurons in flight (at most [`PENDING_REQUESTS_MAX`]).
    locating: HashMap<kad::QueryId, Locating>,
}

struct Locating {
    peer: PeerId,
    allow_private: bool,
    done: oneshot::Sender<Result<Vec<Multiaddr>, NetError>>,
}

impl SwarmTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut redial = tokio::time::interval(REDIAL_EVERY);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(c) => self.command(c),
                    None => break, // the node dropped every handle: stop
                },
                event = self.swarm.select_next_some() => self.swarm_event(event),
                _ = redial.tick() => self.redial(),
            }
        }
        debug!("p2p task stopped");
    }

    /// Bootnodes we are not connected to are dialed again (they may have restarted), and
    /// the DHT looks for more peers.
    fn redial(&mut self) {
        for addr in self.cfg.bootnodes.clone() {
            let peer = peer_of(&addr);
            if peer
                .is_some_and(|p| !self.connected.contains(&p) && p != *self.swarm.local_peer_id())
            {
                let _ = self.swarm.dial(addr);
            }
        }
        let _ = self.swarm.behaviour_mut().kad.bootstrap();
    }

    fn topic_hash(&self, topic: Topic) -> TopicHash {
        IdentTopic::new(topic.name(self.cfg.chain_id, &self.cfg.genesis_hash)).hash()
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Publish(topic, data, done) => {
                let hash = self.topic_hash(topic);
                let result = match self.swarm.behaviour_mut().gossipsub.publish(hash, data) {
                    Ok(_) => Ok(()),
                    // Nobody to send to yet (the mesh is forming, or we are alone): not an
                    // error for the caller, who retransmits what matters.
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(()),
                    Err(gossipsub::PublishError::Duplicate) => Ok(()),
                    Err(e) => Err(NetError::Publish(e.to_string())),
                };
                let _ = done.send(result);
            }
            Command::Report(id, from, verdict) => {
                let acceptance = match verdict {
                    Verdict::Accept => MessageAcceptance::Accept,
                    Verdict::Ignore => MessageAcceptance::Ignore,
                    Verdict::Reject => MessageAcceptance::Reject,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(
                        &gossipsub::MessageId(id.0),
                        &from,
                        acceptance,
                    );
            }
            Command::Request(peer, request, done) => {
                if let Some(reason) = self.refuse_outbound(&peer, self.sync.pending.len()) {
                    let _ = done.send(Err(request_failed(&peer, reason)));
                    return;
                }
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.sync.pending.insert(id, done);
            }
            Command::Query(peer, data, done) => {
                if let Some(reason) = self.refuse_outbound(&peer, self.query.pending.len()) {
                    let _ = done.send(Err(request_failed(&peer, reason)));
                    return;
                }
                let id = self.swarm.behaviour_mut().query.send_request(&peer, data);
                self.query.pending.insert(id, done);
            }
            Command::Answer(reply, data) => {
                if let Some(channel) = self.query.replies.remove(&reply.0) {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .query
                        .send_response(channel, data);
                }
            }
            Command::Respond(reply, response) => {
                if let Some(channel) = self.sync.replies.remove(&reply.0) {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response);
                }
            }
            Command::Ban(peer) => {
                warn!(%peer, "banning peer");
                self.banned.insert(peer);
                self.swarm.behaviour_mut().blocked.block_peer(peer);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Locate(peer, allow_private, done) => {
                if self.connected.contains(&peer) {
                    let _ = done.send(Ok(Vec::new()));
                } else if let Some(reason) = self.refuse_outbound(&peer, self.locating.len()) {
                    let _ = done.send(Err(request_failed(&peer, reason)));
                } else {
                    let id = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                    self.locating.insert(
                        id,
                        Locating {
                            peer,
                            allow_private,
                            done,
                        },
                    );
                }
            }
            Command::Peers(done) => {
                let gs = &self.swarm.behaviour().gossipsub;
                let peers = self
                    .connected
                    .iter()
                    .map(|p| PeerInfo {
                        peer_id: p.to_string(),
                        addresses: Vec::new(),
                        score: gs.peer_score(p),
                    })
                    .collect();
                let _ = done.send(peers);
            }
        }
    }

    /// The end of a DHT lookup: dial the peer at the addresses found (those allowed).
    fn dial_located(
        &mut self,
        l: &Locating,
        found: Vec<kad::PeerInfo>,
    ) -> Result<Vec<Multiaddr>, NetError> {
        if self.connected.contains(&l.peer) {
            // The lookup itself reached it.
            return Ok(Vec::new());
        }
        let addrs: Vec<Multiaddr> = found
            .into_iter()
            .filter(|p| p.peer_id == l.peer)
            .flat_map(|p| p.addrs)
            .filter(|a| l.allow_private || is_public(a))
            .collect();
        if addrs.is_empty() {
            return Err(request_failed(
                &l.peer,
                if l.allow_private {
                    "not found in the DHT"
                } else {
                    "not found in the DHT at a public address (allow private addresses for a local network)"
                },
            ));
        }
        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(l.peer)
            .addresses(addrs.clone())
            .build();
        self.swarm
            .dial(opts)
            .map_err(|e| request_failed(&l.peer, e.to_string()))?;
        Ok(addrs)
    }

    /// Why an outbound request to `peer` cannot go out now (`in_flight` of its protocol).
    fn refuse_outbound(&self, peer: &PeerId, in_flight: usize) -> Option<&'static str> {
        if self.banned.contains(peer) {
            Some("banned")
        } else if in_flight >= PENDING_REQUESTS_MAX {
            Some("too many requests in flight")
        } else {
            None
        }
    }

    fn emit(&mut self, event: NetEvent) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(_) => {
                self.dropped_events += 1;
                if self.dropped_events.is_power_of_two() {
                    warn!(
                        dropped = self.dropped_events,
                        "node is not keeping up with the network: events dropped"
                    );
                }
                false
            }
        }
    }

    fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let Some(topic) = self.topics.get(&message.topic).copied() else {
                    return;
                };
                self.emit(NetEvent::Gossip {
                    topic,
                    from: propagation_source,
                    id: MessageId(message_id.0),
                    data: message.data,
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => {
                if let Some((peer, request, reply)) = self.sync.event(&mut self.next_reply, event) {
                    if !self.emit(NetEvent::Request {
                        peer,
                        request,
                        reply,
                    }) {
                        self.sync.replies.remove(&reply.0);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Query(event)) => {
                if let Some((peer, data, reply)) = self.query.event(&mut self.next_reply, event) {
                    if !self.emit(NetEvent::Query { peer, data, reply }) {
                        self.query.replies.remove(&reply.0);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetClosestPeers(result),
                step,
                ..
            })) if step.last => {
                if let Some(l) = self.locating.remove(&id) {
                    let peers = match result {
                        Ok(ok) => ok.peers,
                        Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                    };
                    let answer = self.dial_located(&l, peers);
                    let _ = l.done.send(answer);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    let _ = self.swarm.dial(addr);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if num_established.get() == 1 => {
                self.connected.insert(peer_id);
                self.emit(NetEvent::PeerConnected(peer_id));
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.connected.remove(&peer_id);
                self.emit(NetEvent::PeerDisconnected(peer_id));
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(?peer_id, "dial failed: {error}");
            }
            _ => {}
        }
    }
}
