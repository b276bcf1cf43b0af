use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, WrapFuture};
use agora_core::Keypair;
use tracing::error;

use crate::actors::chain::ChainHandle;
use crate::actors::mempool::MempoolHandle;

/// Most transactions per block.
pub const MAX_BLOCK_TXS: usize = 10_000;

pub struct ProducerActor {
    chain: ChainHandle,
    mempool: MempoolHandle,
    key: Keypair,
    block_time: Duration,
    busy: bool,
    /// Told when production fails: the node shuts down with that reason.
    fatal: tokio::sync::mpsc::Sender<String>,
}

impl ProducerActor {
    pub fn new(
        chain: ChainHandle,
        mempool: MempoolHandle,
        key: Keypair,
        block_time_ms: u64,
        fatal: tokio::sync::mpsc::Sender<String>,
    ) -> Self {
        ProducerActor {
            chain,
            mempool,
            key,
            block_time: Duration::from_millis(block_time_ms),
            busy: false,
            fatal,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return; // the previous block is still being built: skip this slot
        }
        self.busy = true;
        let (chain, mempool, key) = (self.chain.clone(), self.mempool.clone(), self.key.clone());
        let round = async move {
            let txs = mempool.take(MAX_BLOCK_TXS).await?;
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0);
            let produced = chain.produce(txs, now_ms, key).await?;
            mempool
                .block_done(produced.included, produced.rejected, produced.nonces)
                .await
        };
        ctx.spawn(round.into_actor(self).map(|result, act, ctx| {
            act.busy = false;
            if let Err(e) = result {
                // Storage or execution failed: a local invariant broke. Stop loudly.
                error!("block production failed, stopping the node: {e}");
                let _ = act.fatal.try_send(e.to_string());
                ctx.stop();
            }
        }));
    }
}

impl Actor for ProducerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.block_time, |act, ctx| act.tick(ctx));
    }
}

/// Stop producing: no new block is started after this is handled.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct StopProducing;

impl actix::Handler<StopProducing> for ProducerActor {
    type Result = ();
    fn handle(&mut self, _: StopProducing, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
