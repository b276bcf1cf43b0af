//! `agora-node`: the actors around `agora-core`, the JSON-RPC/WebSocket API and the
//! `agora` command line.
//!
//! ```text
//!  RPC (actix-web) ──tx_submit──> mempool actor ──take──> producer (dev) ──Produce──> chain actor
//!        ^                                                                    │ (own thread)
//!        └────────────── chain_subscribeHeads <── broadcast of new heads <────┘──> RocksDB
//! ```

pub mod actors;
pub mod cli;
pub mod client;
pub mod metrics;
pub mod neuron;
pub mod node;
pub mod rpc;
pub mod validator_key;
pub mod wallet;

/// Failures inside the node. Everything here is "internal": user mistakes are
/// `TxError`/`SubmitError` values and RPC errors, never a `NodeError`.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] agora_storage::StorageError),
    #[error("block: {0}")]
    Block(#[from] agora_storage::PipelineError),
    #[error("state: {0}")]
    State(#[from] agora_core::state::StateError),
    #[error("the {0} actor has stopped")]
    Stopped(&'static str),
    #[error("internal: {0}")]
    Internal(String),
    /// What a read asked for does not exist (a subnet, a block): the caller's to know.
    #[error("{0}")]
    NotFound(String),
}

impl NodeError {
    /// A stable name for clients: what failed, without the details.
    pub fn kind(&self) -> &'static str {
        match self {
            NodeError::Storage(_) => "storage",
            NodeError::Block(_) => "block",
            NodeError::State(_) => "state",
            NodeError::Stopped(_) => "stopping",
            NodeError::Internal(_) => "internal",
            NodeError::NotFound(_) => "not_found",
        }
    }
}
