//! The network seam: what the node asks of a network ([`Network`]) and what it hears from
//! it ([`NetEvent`]). Two implementations: libp2p ([`crate::Libp2pNetwork`]) and an
//! in-process hub ([`crate::MemoryHub`]) for tests and simulations.

use libp2p::PeerId;
use tokio::sync::mpsc;

use crate::protocol::{SyncRequest, SyncResponse, Topic};

/// Events queued from the network to the node. Overflow policy: gossip that finds the
/// queue full is dropped (and counted); inbound requests are refused (the peer retries).
pub const NET_EVENTS_MAX: usize = 4096;
/// Commands queued from the node to the network. Overflow policy: callers wait.
pub const NET_COMMANDS_MAX: usize = 1024;

/// Identifies a received gossip message for the validation verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(pub Vec<u8>);

/// Identifies an inbound request awaiting its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyId(pub u64);

#[derive(Debug)]
pub enum NetEvent {
    /// A gossip message; answer with [`Network::report`] so the network forwards it
    /// (Accept), drops it (Ignore) or drops it and penalises the sender (Reject).
    Gossip {
        topic: Topic,
        from: PeerId,
        id: MessageId,
        data: Vec<u8>,
    },
    /// A peer asks something; answer with [`Network::respond`].
    Request {
        peer: PeerId,
        request: SyncRequest,
        reply: ReplyId,
    },
    /// A neuron query (signed bytes, `crate::query`); answer with [`Network::answer`], or
    /// drop it (the caller's query fails).
    Query {
        peer: PeerId,
        data: Vec<u8>,
        reply: ReplyId,
    },
    PeerConnected(PeerId),
    PeerDisconnected(PeerId),
}

/// A gossip message's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Ignore,
    Reject,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub addresses: Vec<String>,
    pub score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("the network task has stopped")]
    Stopped,
    #[error("publishing: {0}")]
    Publish(String),
    #[error("request to {peer} failed: {reason}")]
    Request { peer: String, reason: String },
    #[error("cannot start the network: {0}")]
    Start(String),
}

/// What the node asks of the network. Cheap to clone (a command sender).
#[async_trait::async_trait]
pub trait Network: Send + Sync + 'static {
    fn local_peer_id(&self) -> PeerId;
    /// Gossip `data` on `topic`. Succeeds with no peers too (nothing to send to).
    async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), NetError>;
    /// The verdict on a gossip message from [`NetEvent::Gossip`].
    fn report(&self, id: MessageId, from: PeerId, verdict: Verdict);
    /// Ask `peer`; times out by itself.
    async fn request(&self, peer: PeerId, request: SyncRequest) -> Result<SyncResponse, NetError>;
    /// Answer an inbound request.
    fn respond(&self, reply: ReplyId, response: SyncResponse);
    /// Disconnect `peer` and refuse it from now on.
    fn ban(&self, peer: PeerId);
    /// Send a neuron query to `peer`; its answer's bytes.
    async fn query(&self, peer: PeerId, data: Vec<u8>) -> Result<Vec<u8>, NetError>;
    /// Answer an inbound query.
    fn answer(&self, reply: ReplyId, data: Vec<u8>);
    async fn peers(&self) -> Vec<PeerInfo>;
}

/// Events from a network, and the receiver of them.
pub type Events = mpsc::Receiver<NetEvent>;
