//! The dev block producer: stands in for BFT consensus until the consensus issue. Every
//! `block_time_ms` it takes transactions from the mempool, has the chain actor build,
//! finalize (single-authority certificate) and commit a block, then tells the mempool.

mod actor;

pub use actor::{ProducerActor, StopProducing, MAX_BLOCK_TXS};
