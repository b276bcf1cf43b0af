//! The dev block producer: stands in for BFT consensus on a one-node dev chain. It has the
//! chain actor build, finalize (single-authority certificate) and commit blocks from the
//! mempool's transactions, and tells the mempool what was included. When it seals is the
//! [`Seal`] mode: on a fixed interval, as soon as transactions arrive, or only on request
//! (`dev_produceBlocks`), so tests and scripts can drive the chain block by block.

mod actor;

pub use actor::{ProduceBlocks, ProducerActor, StopProducing, DEV_PRODUCE_MAX, MAX_BLOCK_TXS};

use actix::Addr;

use crate::actors::chain::HeadInfo;
use crate::NodeError;

/// When the dev producer seals a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Seal {
    /// One block every `block_time_ms`, empty or not.
    Interval,
    /// A block as soon as transactions are pending (never an empty one).
    Instant,
    /// Only when asked: `dev_produceBlocks(n)` over RPC (`agora chain produce N`).
    Manual,
}

/// Typed access to the producer.
#[derive(Clone)]
pub struct ProducerHandle {
    addr: Addr<ProducerActor>,
}

impl ProducerHandle {
    pub fn new(addr: Addr<ProducerActor>) -> Self {
        ProducerHandle { addr }
    }

    /// Produce `n` blocks now (empty ones if the mempool is empty); returns the new head.
    /// Blocks are sealed one after another, never interleaved with other production.
    pub async fn produce(&self, n: u64) -> Result<HeadInfo, NodeError> {
        self.addr
            .send(ProduceBlocks { n })
            .await
            .map_err(|_| NodeError::Stopped("producer"))?
    }

    pub async fn stop(&self) {
        let _ = self.addr.send(StopProducing).await;
    }
}
