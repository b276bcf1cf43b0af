//! The chain's read side: a pool of threads answering RPC reads from the committed
//! state, so read load never queues behind block execution on the chain actor's thread.
//! Each answer is read under the store's consistency gate: from one committed state.

use actix::{Actor, Handler, SyncContext};
use agora_core::state;
use agora_storage::{ChainStore, KvStore};

use super::msg::*;
use crate::NodeError;

/// Reader threads. Overflow policy: requests queue in the readers' shared mailbox.
pub const CHAIN_READERS: usize = 2;

pub struct ChainReader<S: KvStore = agora_storage::RocksStore> {
    store: ChainStore<S>,
}

impl<S: KvStore> ChainReader<S> {
    pub fn new(store: ChainStore<S>) -> Self {
        ChainReader { store }
    }
}

impl<S: KvStore> Actor for ChainReader<S> {
    type Context = SyncContext<Self>;
}

impl<S: KvStore> Handler<GetHead> for ChainReader<S> {
    type Result = Result<HeadInfo, NodeError>;
    fn handle(&mut self, _: GetHead, _: &mut Self::Context) -> Self::Result {
        let _view = self.store.consistent();
        Ok(HeadInfo::of(&self.store.head()?))
    }
}

impl<S: KvStore> Handler<GetAccount> for ChainReader<S> {
    type Result = Result<agora_core::Account, NodeError>;
    fn handle(&mut self, msg: GetAccount, _: &mut Self::Context) -> Self::Result {
        let _view = self.store.consistent();
        Ok(state::account(&self.store, &msg.0)?)
    }
}

impl<S: KvStore> Handler<GetSupply> for ChainReader<S> {
    type Result = Result<agora_core::Supply, NodeError>;
    fn handle(&mut self, _: GetSupply, _: &mut Self::Context) -> Self::Result {
        let _view = self.store.consistent();
        Ok(state::supply(&self.store)?)
    }
}

impl<S: KvStore> Handler<GetBlock> for ChainReader<S> {
    type Result = Result<Option<BlockInfo>, NodeError>;
    fn handle(&mut self, msg: GetBlock, _: &mut Self::Context) -> Self::Result {
        let _view = self.store.consistent();
        let block = match msg.0 {
            BlockRef::Height(h) => self.store.block_by_height(h)?,
            BlockRef::Hash(h) => self.store.block_by_hash(&h)?,
            BlockRef::Head => Some(self.store.head()?),
        };
        let Some(block) = block else { return Ok(None) };
        let cert = self.store.cert(block.header.height)?;
        Ok(Some(BlockInfo { block, cert }))
    }
}

impl<S: KvStore> Handler<GetTx> for ChainReader<S> {
    type Result = Result<Option<TxInfo>, NodeError>;
    fn handle(&mut self, msg: GetTx, _: &mut Self::Context) -> Self::Result {
        let _view = self.store.consistent();
        let Some((tx, loc, _)) = self.store.tx(&msg.0)? else {
            return Ok(None);
        };
        let header = self
            .store
            .block_by_height(loc.height)?
            .ok_or(agora_storage::StorageError::Corrupt("tx block"))?
            .header;
        Ok(Some(TxInfo {
            tx,
            header,
            index: loc.index,
        }))
    }
}

impl<S: KvStore> Handler<ReadAtHead> for ChainReader<S> {
    type Result = Result<(u64, serde_json::Value), NodeError>;
    fn handle(&mut self, msg: ReadAtHead, _: &mut Self::Context) -> Self::Result {
        let _view = self.store.consistent();
        let height = self.store.head_height()?;
        Ok((height, (msg.0)(&self.store, height)?))
    }
}

impl<S: KvStore> Handler<ReadState> for ChainReader<S> {
    type Result = Result<serde_json::Value, NodeError>;
    fn handle(&mut self, msg: ReadState, _: &mut Self::Context) -> Self::Result {
        let _view = self.store.consistent();
        (msg.0)(&self.store)
    }
}
