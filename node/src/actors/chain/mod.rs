//! The chain actor: executes and commits finalized blocks, answers state queries, and
//! publishes new heads. It runs on its own thread (a `SyncArbiter` of one), so block
//! execution and RocksDB I/O never block the RPC or the other actors.

mod actor;
mod msg;
mod reader;

pub use actor::{ChainActor, HEAD_EVENTS_MAX};
pub use msg::*;
pub use reader::{ChainReader, CHAIN_READERS};

use actix::Addr;
use agora_core::block::{Block, FinalityCert};
use agora_core::{Account, AccountId, Hash, Keypair, SignedTransaction, Supply};

use crate::NodeError;

/// Typed access to the chain actor.
#[derive(Clone)]
pub struct ChainHandle {
    addr: Addr<ChainActor>,
    reader: Addr<ChainReader>,
}

impl ChainHandle {
    pub fn new(addr: Addr<ChainActor>, reader: Addr<ChainReader>) -> Self {
        ChainHandle { addr, reader }
    }

    async fn read_side<M>(&self, msg: M) -> Result<M::Result, NodeError>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        ChainReader: actix::Handler<M>,
    {
        self.reader
            .send(msg)
            .await
            .map_err(|_| NodeError::Stopped("chain reader"))
    }

    async fn ask<M>(&self, msg: M) -> Result<M::Result, NodeError>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        ChainActor: actix::Handler<M>,
    {
        self.addr
            .send(msg)
            .await
            .map_err(|_| NodeError::Stopped("chain"))
    }

    pub async fn produce(
        &self,
        txs: Vec<SignedTransaction>,
        timestamp_ms: u64,
        key: Keypair,
    ) -> Result<Produced, NodeError> {
        self.ask(Produce {
            txs,
            timestamp_ms,
            key,
        })
        .await?
    }

    pub async fn propose(
        &self,
        proposer: AccountId,
        timestamp_ms: u64,
        view: u64,
        txs: Vec<SignedTransaction>,
    ) -> Result<agora_storage::Built, NodeError> {
        self.ask(Propose {
            proposer,
            timestamp_ms,
            view,
            txs,
        })
        .await?
    }

    /// Ok(Err(reason)) when the block is invalid.
    pub async fn verify(&self, block: Block) -> Result<Result<(), String>, NodeError> {
        self.ask(Verify(block)).await?
    }

    pub async fn commit(&self, hash: Hash, cert: FinalityCert) -> Result<Produced, NodeError> {
        self.ask(Commit { hash, cert }).await?
    }

    /// Ok(Err(reason)) when the peer's block or certificate is invalid.
    pub async fn import(
        &self,
        block: Block,
        cert: FinalityCert,
    ) -> Result<Result<Produced, String>, NodeError> {
        self.ask(Import { block, cert }).await?
    }

    pub async fn record_own(&self, msg: agora_core::consensus::Message) -> Result<(), NodeError> {
        self.ask(RecordOwn(msg)).await?
    }

    pub async fn own_messages(
        &self,
        height: u64,
    ) -> Result<Vec<agora_core::consensus::Message>, NodeError> {
        self.ask(OwnMessages(height)).await?
    }

    pub async fn finalized(
        &self,
        from: u64,
        count: u32,
        max_bytes: usize,
    ) -> Result<Vec<(Block, FinalityCert)>, NodeError> {
        self.ask(Finalized {
            from,
            count,
            max_bytes,
        })
        .await?
    }

    pub async fn head(&self) -> Result<HeadInfo, NodeError> {
        self.read_side(GetHead).await?
    }

    pub async fn account(&self, id: AccountId) -> Result<Account, NodeError> {
        self.read_side(GetAccount(id)).await?
    }

    pub async fn supply(&self) -> Result<Supply, NodeError> {
        self.read_side(GetSupply).await?
    }

    pub async fn block(&self, at: BlockRef) -> Result<Option<BlockInfo>, NodeError> {
        self.read_side(GetBlock(at)).await?
    }

    pub async fn tx(&self, hash: Hash) -> Result<Option<TxInfo>, NodeError> {
        self.read_side(GetTx(hash)).await?
    }

    /// Run `query` against the committed state and the head height it is the state of;
    /// the answer gains a `height` field naming that head.
    pub async fn read_at_head<F>(&self, query: F) -> Result<serde_json::Value, NodeError>
    where
        F: FnOnce(&dyn agora_core::state::StateRead, u64) -> Result<serde_json::Value, NodeError>
            + Send
            + 'static,
    {
        let (height, mut v) = self.read_side(ReadAtHead(Box::new(query))).await??;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("height".into(), serde_json::json!(height));
        }
        Ok(v)
    }

    /// Run `query` against the committed state.
    pub async fn read<F>(&self, query: F) -> Result<serde_json::Value, NodeError>
    where
        F: FnOnce(&dyn agora_core::state::StateRead) -> Result<serde_json::Value, NodeError>
            + Send
            + 'static,
    {
        self.read_side(ReadState(Box::new(query))).await?
    }
}
