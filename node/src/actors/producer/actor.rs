use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, AtomicResponse, Context, Handler, WrapFuture,
};
use agora_core::Keypair;
use tracing::error;

use super::Seal;
use crate::actors::chain::{ChainHandle, HeadInfo};
use crate::actors::mempool::{MempoolHandle, TxAdmitted};
use crate::NodeError;

/// Most transactions per block.
pub const MAX_BLOCK_TXS: usize = 10_000;
/// Most blocks one `ProduceBlocks` request may ask for.
pub const DEV_PRODUCE_MAX: u64 = 1_000;

pub struct ProducerActor {
    chain: ChainHandle,
    mempool: MempoolHandle,
    key: Keypair,
    seal: Seal,
    block_time: Duration,
    /// Told when production fails: the node shuts down with that reason.
    fatal: tokio::sync::mpsc::Sender<String>,
}

/// Build, finalize and commit one block from the mempool. With `skip_empty`, nothing is
/// produced when no transaction is ready (`Ok(None)`). Answers the new head and the block
/// time in force after it.
async fn seal_one(
    chain: ChainHandle,
    mempool: MempoolHandle,
    key: Keypair,
    skip_empty: bool,
) -> Result<Option<(HeadInfo, u64)>, NodeError> {
    let txs = mempool.take(MAX_BLOCK_TXS).await?;
    if skip_empty && txs.is_empty() {
        return Ok(None);
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let produced = chain.produce(txs, now_ms, key.clone()).await?;
    mempool
        .block_done(produced.included, produced.rejected, produced.nonces)
        .await?;
    // A dev node signs every block alone: once governance installs a set without its key,
    // it can certify nothing more. Say so rather than fail on the next certificate.
    if let Some((height, _)) = produced
        .validator_sets
        .iter()
        .find(|(_, set)| set.power(&key.account()).is_none())
    {
        return Err(NodeError::Internal(format!(
            "governance installed a validator set without this dev node's key {} from block {height}: a --dev node cannot certify blocks it does not sign alone; run the new validators as a network (`agora testnet init`)",
            key.account()
        )));
    }
    Ok(Some((produced.head, produced.block_time_ms)))
}

impl ProducerActor {
    pub fn new(
        chain: ChainHandle,
        mempool: MempoolHandle,
        key: Keypair,
        seal: Seal,
        block_time_ms: u64,
        fatal: tokio::sync::mpsc::Sender<String>,
    ) -> Self {
        ProducerActor {
            chain,
            mempool,
            key,
            seal,
            block_time: Duration::from_millis(block_time_ms),
            fatal,
        }
    }

    /// Storage or execution failed: a local invariant broke. Stop loudly.
    fn fail(&self, e: &NodeError, ctx: &mut Context<Self>) {
        error!("block production failed, stopping the node: {e}");
        let _ = self.fatal.try_send(e.to_string());
        ctx.stop();
    }

    /// Seal one block while holding the actor (`ctx.wait`): no other message, tick or
    /// request is handled until it is committed, so blocks never interleave.
    fn seal<F>(&mut self, ctx: &mut Context<Self>, skip_empty: bool, then: F)
    where
        F: FnOnce(&mut Self, &mut Context<Self>) + 'static,
    {
        let round = seal_one(
            self.chain.clone(),
            self.mempool.clone(),
            self.key.clone(),
            skip_empty,
        );
        ctx.wait(round.into_actor(self).map(|result, act, ctx| match result {
            Err(e) => act.fail(&e, ctx),
            Ok(sealed) => {
                if let Some((_, ms)) = sealed {
                    act.block_time = Duration::from_millis(ms.max(1));
                }
                then(act, ctx)
            }
        }));
    }

    /// Interval mode: seal, then schedule the next slot `block_time` after this one
    /// started (at once if sealing overran the slot: missed slots are skipped, never
    /// caught up in a burst).
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let started = Instant::now();
        self.seal(ctx, false, move |act, ctx| {
            let next = act.block_time.saturating_sub(started.elapsed());
            ctx.run_later(next, |act, ctx| act.tick(ctx));
        });
    }
}

impl Actor for ProducerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        match self.seal {
            Seal::Interval => {
                ctx.run_later(self.block_time, |act, ctx| act.tick(ctx));
            }
            Seal::Instant => {
                let me = ctx.address().recipient();
                let mempool = self.mempool.clone();
                ctx.wait(
                    async move { mempool.watch_admissions(me).await }
                        .into_actor(self)
                        .map(|result, act, ctx| {
                            if let Err(e) = result {
                                act.fail(&e, ctx);
                            }
                        }),
                );
            }
            Seal::Manual => {}
        }
    }
}

/// Instant mode: a transaction entered the mempool, so seal what is ready. Notices that
/// arrive while a block is being sealed find its transactions gone and seal nothing.
impl Handler<TxAdmitted> for ProducerActor {
    type Result = ();
    fn handle(&mut self, _: TxAdmitted, ctx: &mut Self::Context) {
        self.seal(ctx, true, |_, _| {});
    }
}

/// Seal `n` blocks now, one after another (empty ones when nothing is pending); answers
/// with the new head. No other production interleaves with them.
#[derive(actix::Message)]
#[rtype(result = "Result<HeadInfo, NodeError>")]
pub struct ProduceBlocks {
    pub n: u64,
}

impl Handler<ProduceBlocks> for ProducerActor {
    type Result = AtomicResponse<Self, Result<HeadInfo, NodeError>>;

    fn handle(&mut self, msg: ProduceBlocks, _: &mut Self::Context) -> Self::Result {
        let (chain, mempool, key) = (self.chain.clone(), self.mempool.clone(), self.key.clone());
        let work = async move {
            for _ in 0..msg.n {
                seal_one(chain.clone(), mempool.clone(), key.clone(), false).await?;
            }
            chain.head().await
        };
        AtomicResponse::new(Box::pin(work.into_actor(self).map(|result, act, ctx| {
            if let Err(e) = &result {
                act.fail(e, ctx);
            }
            result
        })))
    }
}

/// Stop producing: no new block is started after this is handled.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct StopProducing;

impl Handler<StopProducing> for ProducerActor {
    type Result = ();
    fn handle(&mut self, _: StopProducing, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
