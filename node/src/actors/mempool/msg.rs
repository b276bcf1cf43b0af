use actix::Message;
use agora_core::ledger::TxError;
use agora_core::{AccountId, Hash, SignedTransaction};

/// Why the mempool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Invalid(#[from] TxError),
    #[error("the mempool is full ({max} transactions): try again in a few blocks")]
    Full { max: usize },
    #[error("this account already has {max} pending transactions: wait for some to be included")]
    SenderFull { max: usize },
    #[error("this transaction is already pending")]
    AlreadyPending,
    #[error("another pending transaction from this account already uses nonce {nonce}")]
    NonceTaken { nonce: u64 },
    #[error("the node is shutting down")]
    Stopping,
}

impl SubmitError {
    pub fn kind(&self) -> &'static str {
        match self {
            SubmitError::Invalid(e) => e.kind(),
            SubmitError::Full { .. } => "mempool_full",
            SubmitError::SenderFull { .. } => "sender_queue_full",
            SubmitError::AlreadyPending => "already_pending",
            SubmitError::NonceTaken { .. } => "nonce_taken",
            SubmitError::Stopping => "stopping",
        }
    }
}

/// Where a submitted transaction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This node's RPC: admitted transactions are gossiped.
    Local,
    /// Gossip from a peer: the network already forwards it.
    Peer,
}

/// Admit encoded transaction bytes; returns the transaction hash.
#[derive(Message)]
#[rtype(result = "Result<Hash, SubmitError>")]
pub struct Submit {
    pub bytes: Vec<u8>,
    pub origin: Origin,
}

/// An admitted local transaction's bytes, for the network to gossip.
#[derive(Message)]
#[rtype(result = "()")]
pub struct GossipTx(pub Vec<u8>);

/// Send every admitted local transaction to `0` for gossip.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetGossip(pub actix::Recipient<GossipTx>);

/// Up to `max` transactions for the next block: per sender, a run of consecutive nonces.
#[derive(Message)]
#[rtype(result = "Vec<SignedTransaction>")]
pub struct Take {
    pub max: usize,
}

/// A block was committed: forget included and rejected transactions and stale nonces.
#[derive(Message)]
#[rtype(result = "()")]
pub struct BlockDone {
    pub included: Vec<Hash>,
    pub rejected: Vec<(Hash, TxError)>,
    pub nonces: Vec<(AccountId, u64)>,
}

/// What the mempool knows of a transaction it does not hold in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolStatus {
    Pending,
    Dropped { kind: &'static str, reason: String },
}

#[derive(Message)]
#[rtype(result = "Option<PoolStatus>")]
pub struct Status(pub Hash);

/// How many transactions wait in the pool.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Size;

/// Sent to the admission watcher (the instant-seal producer) after each admitted
/// transaction.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TxAdmitted;

/// Tell `0` of every admitted transaction from now on (replaces any earlier watcher).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchAdmissions(pub actix::Recipient<TxAdmitted>);
