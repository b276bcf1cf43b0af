//! `agora-storage`: the chain on disk.
//!
//! ```text
//! Pipeline (propose / verify / commit / import: what consensus asks of the chain)
//!     └── ChainStore (typed: blocks, txs, certs, state, head, own-vote log)
//!     └── KvStore trait ── RocksStore (column families, synced WriteBatch)
//!                      └── MemStore   (tests, simulation)
//! ```
//!
//! One block is one atomic batch: the block, its index rows, its transactions' locations,
//! its state changes, the state accumulator and the head pointer (ARCHITECTURE.md rule 6).
//! A crash at any point leaves the last committed block intact, and [`ChainStore::open`]
//! resumes from it. Both backends pass the same conformance suite.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod chain;
mod kv;
pub mod pipeline;
pub mod tables;

#[cfg(test)]
mod conformance;

pub use chain::{ChainStore, StateCheck, TxLocation};
pub use kv::{KvStore, MemStore, RocksStore, WriteBatch};
pub use pipeline::{Built, Pipeline, PipelineError, EXECUTED_CACHE_MAX};

use agora_core::state::StateError;
use agora_core::Hash;

/// Storage failures. All are internal: the node stops on them.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open database at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("database is corrupt: {0} is missing or unreadable")]
    Corrupt(&'static str),
    #[error("database schema version {found}, this node needs {expected}: use a fresh --data-dir")]
    SchemaVersion { found: u32, expected: u32 },
    #[error("database was created from genesis {stored}, but the given genesis is {given}: use the same genesis file or a fresh --data-dir")]
    GenesisMismatch { stored: Hash, given: Hash },
    #[error("the database is closed (the node is shutting down)")]
    Closed,
    #[error("block {got} does not follow the committed head {head}")]
    NotNext { head: u64, got: u64 },
    #[error("building genesis state: {0}")]
    State(#[from] StateError),
    #[error("refused to store: {0}")]
    Codec(#[from] agora_core::codec::CodecError),
}
