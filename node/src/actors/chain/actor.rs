use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use actix::{Actor, Handler, SyncContext};
use agora_core::block::FinalityCert;
use agora_core::genesis::ChainParams;
use agora_core::ledger::ExecutedBlock;
use agora_core::state;
use agora_storage::{ChainStore, KvStore, Pipeline, PipelineError};
use tokio::sync::broadcast;
use tracing::info;

use super::msg::*;
use crate::metrics::NodeMetrics;
use crate::NodeError;

/// Capacity of the new-head broadcast. Overflow policy: a subscriber that falls this far
/// behind skips the heads it missed (it gets a `Lagged` notice and the newest head).
pub const HEAD_EVENTS_MAX: usize = 256;

pub struct ChainActor<S: KvStore = agora_storage::RocksStore> {
    store: ChainStore<S>,
    pipeline: Pipeline<S>,
    params: ChainParams,
    heads: broadcast::Sender<HeadInfo>,
    metrics: NodeMetrics,
    /// Execution time of blocks executed but not yet committed (a few at most: cleared at
    /// each commit), for the epoch-block histogram.
    executed_in: HashMap<agora_core::Hash, f64>,
}

/// Bound on `executed_in`. Overflow policy: cleared (an epoch block's time goes unrecorded).
const EXECUTED_TIMES_MAX: usize = 64;

impl<S: KvStore> ChainActor<S> {
    pub fn new(
        store: ChainStore<S>,
        params: ChainParams,
        heads: broadcast::Sender<HeadInfo>,
        metrics: NodeMetrics,
    ) -> Result<Self, NodeError> {
        Ok(ChainActor {
            pipeline: Pipeline::new(store.clone(), params.clone())?,
            store,
            params,
            heads,
            metrics,
            executed_in: HashMap::new(),
        })
    }

    /// Time `f`, executing a block of `kind` (propose, verify, import).
    fn timed<T>(&mut self, kind: &str, f: impl FnOnce(&mut Self) -> T) -> (T, f64) {
        let start = Instant::now();
        let out = f(self);
        let secs = start.elapsed().as_secs_f64();
        self.metrics
            .execute
            .get_or_create(&NodeMetrics::kind(kind))
            .observe(secs);
        (out, secs)
    }

    fn remember_execution(&mut self, hash: agora_core::Hash, secs: f64) {
        if self.executed_in.len() >= EXECUTED_TIMES_MAX {
            self.executed_in.clear();
        }
        self.executed_in.insert(hash, secs);
    }

    fn propose(
        &mut self,
        proposer: agora_core::AccountId,
        timestamp_ms: u64,
        view: u64,
        txs: Vec<agora_core::SignedTransaction>,
    ) -> Result<agora_storage::Built, NodeError> {
        let (built, secs) = self.timed("propose", |me| {
            me.pipeline.propose(proposer, timestamp_ms, view, txs)
        });
        let built = built.map_err(internal)?;
        self.remember_execution(built.block.hash(), secs);
        Ok(built)
    }

    fn produce(&mut self, msg: Produce) -> Result<Produced, NodeError> {
        let built = self.propose(msg.key.account(), msg.timestamp_ms, 0, msg.txs)?;
        let block_hash = built.block.hash();
        let cert = FinalityCert::sign_single(
            self.params.chain_id,
            built.block.header.height,
            block_hash,
            &msg.key,
        );
        let committed = self.committed(&block_hash, &cert)?;
        Ok(Produced {
            rejected: built.rejected,
            ..committed
        })
    }

    /// Commit an executed block and announce it: the new head, what it included and the
    /// next nonce of every sender (for the mempool).
    fn committed(
        &mut self,
        hash: &agora_core::Hash,
        cert: &FinalityCert,
    ) -> Result<Produced, NodeError> {
        let start = Instant::now();
        let executed = self.pipeline.commit(hash, cert).map_err(internal)?;
        self.metrics.commit.observe(start.elapsed().as_secs_f64());
        self.announce(&executed)
    }

    fn announce(&mut self, executed: &ExecutedBlock) -> Result<Produced, NodeError> {
        let senders: BTreeSet<_> = executed.block.txs.iter().map(|t| t.tx.signer).collect();
        let mut nonces = Vec::with_capacity(senders.len());
        for s in senders {
            nonces.push((s, state::account(&self.store, &s)?.nonce));
        }
        let info = HeadInfo::of(&executed.block);
        let epochs = agora_core::subnet::epochs_in(&executed.changes);
        let header = &executed.block.header;
        self.metrics.committed(
            header.height,
            executed.block.txs.len(),
            header.timestamp_ms,
            epochs,
        );
        let execution = self.executed_in.remove(&info.hash);
        if epochs > 0 {
            if let Some(secs) = execution {
                self.metrics.epoch_block.observe(secs);
            }
        }
        self.executed_in.clear();
        if !executed.block.txs.is_empty() || executed.block.header.height.is_multiple_of(30) {
            info!(height = info.height, hash = %info.hash, txs = info.tx_count, fees = executed.fees, minted = executed.minted, "finalized block");
        }
        let height = info.height;
        let mut validator_sets = Vec::with_capacity(2);
        for h in [height.saturating_add(1), height.saturating_add(2)] {
            validator_sets.push((
                h,
                self.pipeline
                    .validators_at(h)
                    .map_err(|e| internal(e.into()))?,
            ));
        }
        let block_time_ms =
            agora_core::ledger::params_in_force(&self.store, &self.params)?.block_time_ms;
        // No subscribers is fine: send only fails when nobody listens.
        let _ = self.heads.send(info.clone());
        Ok(Produced {
            head: info,
            included: executed.block.txs.iter().map(|t| t.hash()).collect(),
            rejected: Vec::new(),
            nonces,
            validator_sets,
            block_time_ms,
        })
    }
}

/// Bad data from elsewhere is the caller's to judge; here every failure of a block the
/// node itself built or decided is internal.
fn internal(e: PipelineError) -> NodeError {
    NodeError::Internal(e.to_string())
}

impl<S: KvStore> Actor for ChainActor<S> {
    type Context = SyncContext<Self>;
}

impl<S: KvStore> Handler<Produce> for ChainActor<S> {
    type Result = Result<Produced, NodeError>;
    fn handle(&mut self, msg: Produce, _: &mut Self::Context) -> Self::Result {
        self.produce(msg)
    }
}

impl<S: KvStore> Handler<Propose> for ChainActor<S> {
    type Result = Result<agora_storage::Built, NodeError>;
    fn handle(&mut self, msg: Propose, _: &mut Self::Context) -> Self::Result {
        self.propose(msg.proposer, msg.timestamp_ms, msg.view, msg.txs)
    }
}

/// Sort pipeline errors: the block's fault (Ok(Err(reason))) or ours (Err).
fn judged<T>(r: Result<T, PipelineError>) -> Result<Result<T, String>, NodeError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) if e.is_internal() => Err(internal(e)),
        Err(e) => Ok(Err(e.to_string())),
    }
}

impl<S: KvStore> Handler<Verify> for ChainActor<S> {
    type Result = Result<Result<(), String>, NodeError>;
    fn handle(&mut self, msg: Verify, _: &mut Self::Context) -> Self::Result {
        let hash = msg.0.hash();
        let (verdict, secs) = self.timed("verify", |me| judged(me.pipeline.verify(&msg.0)));
        if matches!(verdict, Ok(Ok(()))) {
            self.remember_execution(hash, secs);
        }
        verdict
    }
}

impl<S: KvStore> Handler<Commit> for ChainActor<S> {
    type Result = Result<Produced, NodeError>;
    fn handle(&mut self, msg: Commit, _: &mut Self::Context) -> Self::Result {
        self.committed(&msg.hash, &msg.cert)
    }
}

impl<S: KvStore> Handler<Import> for ChainActor<S> {
    type Result = Result<Result<Produced, String>, NodeError>;
    fn handle(&mut self, msg: Import, _: &mut Self::Context) -> Self::Result {
        let hash = msg.block.hash();
        let (imported, secs) = self.timed("import", |me| {
            judged(me.pipeline.import(msg.block, &msg.cert))
        });
        self.remember_execution(hash, secs);
        match imported? {
            Ok(executed) => Ok(Ok(self.announce(&executed)?)),
            Err(reason) => Ok(Err(reason)),
        }
    }
}

impl<S: KvStore> Handler<RecordOwn> for ChainActor<S> {
    type Result = Result<(), NodeError>;
    fn handle(&mut self, msg: RecordOwn, _: &mut Self::Context) -> Self::Result {
        Ok(self.store.record_own_message(&msg.0)?)
    }
}

impl<S: KvStore> Handler<OwnMessages> for ChainActor<S> {
    type Result = Result<Vec<agora_core::consensus::Message>, NodeError>;
    fn handle(&mut self, msg: OwnMessages, _: &mut Self::Context) -> Self::Result {
        Ok(self.store.own_messages(msg.0)?)
    }
}

impl<S: KvStore> Handler<Finalized> for ChainActor<S> {
    type Result = Result<Vec<(agora_core::Block, FinalityCert)>, NodeError>;
    fn handle(&mut self, msg: Finalized, _: &mut Self::Context) -> Self::Result {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for h in msg.from..msg.from.saturating_add(u64::from(msg.count)) {
            let (Some(block), Some(cert)) = (self.store.block_by_height(h)?, self.store.cert(h)?)
            else {
                break;
            };
            bytes = bytes
                .saturating_add(block.encoded_len())
                .saturating_add(64 * cert.votes.len() + 64);
            if !out.is_empty() && bytes > msg.max_bytes {
                break;
            }
            out.push((block, cert));
        }
        Ok(out)
    }
}
