//! The node's actors (ARCHITECTURE.md rule 2): each owns its state and I/O; rules live in
//! `agora-core`. One folder per actor: `msg.rs` (its message enum), `actor.rs`, and a
//! typed handle in `mod.rs` that callers use instead of raw messages.

pub mod chain;
pub mod consensus;
pub mod mempool;
pub mod network;
pub mod producer;
