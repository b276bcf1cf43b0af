//! The network bridge: the only owner of the network handle (libp2p, or the in-process
//! hub in tests). It checks gossip before the network forwards it (decode with limits,
//! signatures, certificates), hands consensus messages to the consensus actor and
//! transactions to the mempool, answers peers' sync requests from the chain, publishes
//! for the other actors, and bans peers that keep sending invalid data.

mod actor;

pub use actor::{FromNetwork, NetworkActor, NetworkHandle, BAN_AFTER_STRIKES, STRIKES_TRACKED_MAX};
