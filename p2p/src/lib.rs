//! `agora-p2p`: the node's network.
//!
//! ```text
//!  node (network bridge actor) ──Network trait──┬── Libp2pNetwork: one task owns the Swarm
//!        ^                                     │     TCP + Noise + Yamux, gossipsub (txs,
//!        └──────────── NetEvent ───────────────┤     consensus, blocks) with validation and
//!                                              │     peer scoring, request-response sync,
//!                                              │     identify, kademlia, mDNS (opt-in), bans
//!                                              └── MemoryHub: in-process, for tests
//! ```
//!
//! Topics are scoped by chain id and genesis hash ([`Topic::name`]). Every queue is
//! bounded ([`NET_EVENTS_MAX`], [`NET_COMMANDS_MAX`], [`PENDING_REPLIES_MAX`],
//! [`PENDING_REQUESTS_MAX`]) with its overflow policy written beside it.

mod memory;
pub mod protocol;
pub mod query;
mod service;
mod swarm;

#[cfg(test)]
mod tests;

pub use libp2p::{multiaddr, Multiaddr, PeerId};
pub use memory::{MemoryHub, MemoryNetwork};
pub use protocol::{
    Announcement, SyncRequest, SyncResponse, Topic, TxBatch, SYNC_BLOCKS_MAX, TX_BATCH_MAX,
    TX_BATCH_MAX_BYTES,
};
pub use service::{
    Events, MessageId, NetError, NetEvent, Network, PeerInfo, ReplyId, Verdict, NET_COMMANDS_MAX,
    NET_EVENTS_MAX,
};
pub use swarm::{
    identity_from_seed, is_public, peer_id_from_seed, Libp2pNetwork, NetConfig,
    PENDING_REPLIES_MAX, PENDING_REQUESTS_MAX,
};
