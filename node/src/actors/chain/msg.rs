use actix::Message;
use agora_core::block::{Block, FinalityCert, Header};
use agora_core::ledger::TxError;
use agora_core::{Account, AccountId, Hash, Keypair, SignedTransaction, Supply};
use serde::Serialize;

use crate::NodeError;

/// Build, finalize and commit the next block from `txs` (dev mode: this node is the only
/// authority and `key` signs the finality certificate).
#[derive(Message)]
#[rtype(result = "Result<Produced, NodeError>")]
pub struct Produce {
    pub txs: Vec<SignedTransaction>,
    pub timestamp_ms: u64,
    pub key: Keypair,
}

/// What producing a block did.
#[derive(Debug, Clone)]
pub struct Produced {
    pub head: HeadInfo,
    pub included: Vec<Hash>,
    pub rejected: Vec<(Hash, TxError)>,
    /// Next nonce of every account that sent a transaction in the block.
    pub nonces: Vec<(AccountId, u64)>,
    /// The validators that certify the next two heights, from the new head's state
    /// (governance may schedule a new set two blocks after enacting it).
    pub validator_sets: Vec<(u64, agora_core::consensus::ValidatorSet)>,
    /// The block time in force after this block.
    pub block_time_ms: u64,
}

/// The finalized head, as the RPC shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HeadInfo {
    pub height: u64,
    pub hash: Hash,
    pub parent: Hash,
    pub state_root: Hash,
    pub timestamp_ms: u64,
    pub tx_count: usize,
    pub finalized: bool,
}

impl HeadInfo {
    pub fn of(block: &Block) -> Self {
        HeadInfo {
            height: block.header.height,
            hash: block.hash(),
            parent: block.header.parent,
            state_root: block.header.state_root,
            timestamp_ms: block.header.timestamp_ms,
            tx_count: block.txs.len(),
            finalized: true,
        }
    }
}

#[derive(Message)]
#[rtype(result = "Result<HeadInfo, NodeError>")]
pub struct GetHead;

#[derive(Message)]
#[rtype(result = "Result<Account, NodeError>")]
pub struct GetAccount(pub AccountId);

#[derive(Message)]
#[rtype(result = "Result<Supply, NodeError>")]
pub struct GetSupply;

#[derive(Debug, Clone, Copy)]
pub enum BlockRef {
    Height(u64),
    Hash(Hash),
    Head,
}

#[derive(Debug, Clone)]
pub struct BlockInfo {
    pub block: Block,
    pub cert: Option<FinalityCert>,
}

#[derive(Message)]
#[rtype(result = "Result<Option<BlockInfo>, NodeError>")]
pub struct GetBlock(pub BlockRef);

#[derive(Debug, Clone)]
pub struct TxInfo {
    pub tx: SignedTransaction,
    pub header: Header,
    pub index: u32,
}

#[derive(Message)]
#[rtype(result = "Result<Option<TxInfo>, NodeError>")]
pub struct GetTx(pub Hash);

/// A read-only query over the committed state, run on the chain actor's thread (so it
/// never sees a half-committed block). Returns JSON for the RPC layer.
pub type StateQuery = Box<
    dyn FnOnce(&dyn agora_core::state::StateRead) -> Result<serde_json::Value, NodeError> + Send,
>;

#[derive(Message)]
#[rtype(result = "Result<serde_json::Value, NodeError>")]
pub struct ReadState(pub StateQuery);

/// A read-only query that also gets the height of the committed head it reads (both from
/// one consistent view); answers with that height and the query's JSON.
pub type HeadQuery = Box<
    dyn FnOnce(&dyn agora_core::state::StateRead, u64) -> Result<serde_json::Value, NodeError>
        + Send,
>;

#[derive(Message)]
#[rtype(result = "Result<(u64, serde_json::Value), NodeError>")]
pub struct ReadAtHead(pub HeadQuery);

/// Build a block on the committed head (this validator proposes it in round `view`).
#[derive(Message)]
#[rtype(result = "Result<agora_storage::Built, NodeError>")]
pub struct Propose {
    pub proposer: AccountId,
    pub timestamp_ms: u64,
    pub view: u64,
    pub txs: Vec<SignedTransaction>,
}

/// Execute a received block on the committed head without committing. The inner error
/// is the block's fault (its reason); the outer one an internal failure.
#[derive(Message)]
#[rtype(result = "Result<Result<(), String>, NodeError>")]
pub struct Verify(pub Block);

/// Commit a block decided by consensus (executed earlier by `Propose` or `Verify`).
#[derive(Message)]
#[rtype(result = "Result<Produced, NodeError>")]
pub struct Commit {
    pub hash: Hash,
    pub cert: FinalityCert,
}

/// A finalized block from a peer (sync): certificate checked, executed, committed. The
/// inner error means the peer sent something invalid.
#[derive(Message)]
#[rtype(result = "Result<Result<Produced, String>, NodeError>")]
pub struct Import {
    pub block: Block,
    pub cert: FinalityCert,
}

/// Durably log one of this validator's own consensus messages before it is sent.
#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
pub struct RecordOwn(pub agora_core::consensus::Message);

/// This validator's logged own messages for `0` (a height).
#[derive(Message)]
#[rtype(result = "Result<Vec<agora_core::consensus::Message>, NodeError>")]
pub struct OwnMessages(pub u64);

/// Finalized blocks with certificates from `from`, at most `count`, at most `max_bytes`
/// encoded (at least one block when any exists).
#[derive(Message)]
#[rtype(result = "Result<Vec<(Block, FinalityCert)>, NodeError>")]
pub struct Finalized {
    pub from: u64,
    pub count: u32,
    pub max_bytes: usize,
}
