//! The mempool actor: admits signed transactions after checking them against the ledger's
//! rules and the current state, keeps them per sender in nonce order, hands the block
//! producer the best-paying ready ones first, evicts and expires under pressure, and
//! remembers why recent transactions were dropped. The bookkeeping is [`pool`].

mod actor;
mod msg;
pub mod pool;

pub use actor::MempoolActor;
pub use msg::*;
pub use pool::{
    DROPPED_MAX, FEE_FREE_PER_SENDER, MAX_NONCE_GAP, MEMPOOL_MAX_TXS, SENDER_MAX_TXS, TX_TTL,
};

use actix::Addr;
use agora_core::ledger::TxError;
use agora_core::{AccountId, Hash, SignedTransaction};

use crate::NodeError;

#[derive(Clone)]
pub struct MempoolHandle {
    addr: Addr<MempoolActor>,
}

impl MempoolHandle {
    pub fn new(addr: Addr<MempoolActor>) -> Self {
        MempoolHandle { addr }
    }

    pub async fn submit(
        &self,
        bytes: Vec<u8>,
        origin: Origin,
    ) -> Result<Result<Hash, SubmitError>, NodeError> {
        self.addr
            .send(Submit { bytes, origin })
            .await
            .map_err(|_| NodeError::Stopped("mempool"))
    }

    pub async fn take(&self, max: usize) -> Result<Vec<SignedTransaction>, NodeError> {
        self.addr
            .send(Take { max })
            .await
            .map_err(|_| NodeError::Stopped("mempool"))
    }

    pub async fn block_done(
        &self,
        included: Vec<Hash>,
        rejected: Vec<(Hash, TxError)>,
        nonces: Vec<(AccountId, u64)>,
    ) -> Result<(), NodeError> {
        self.addr
            .send(BlockDone {
                included,
                rejected,
                nonces,
            })
            .await
            .map_err(|_| NodeError::Stopped("mempool"))
    }

    /// Have `gossip` sent the bytes of every admitted local transaction.
    pub fn set_gossip(&self, gossip: actix::Recipient<GossipTx>) {
        self.addr.do_send(SetGossip(gossip));
    }

    /// Have `watcher` told of every admitted transaction (instant sealing).
    pub async fn watch_admissions(
        &self,
        watcher: actix::Recipient<TxAdmitted>,
    ) -> Result<(), NodeError> {
        self.addr
            .send(WatchAdmissions(watcher))
            .await
            .map_err(|_| NodeError::Stopped("mempool"))
    }

    pub async fn status(&self, hash: Hash) -> Result<Option<PoolStatus>, NodeError> {
        self.addr
            .send(Status(hash))
            .await
            .map_err(|_| NodeError::Stopped("mempool"))
    }

    pub async fn size(&self) -> Result<usize, NodeError> {
        self.addr
            .send(Size)
            .await
            .map_err(|_| NodeError::Stopped("mempool"))
    }
}
