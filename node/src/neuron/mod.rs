//! Neurons (issue 11, in progress): what miners and validators of a subnet do off chain.
//!
//! - [`task`]: subnet tasks as traits (validator: make a request, score an answer; miner:
//!   answer), and the deterministic conversion of scores into `u16` weights.
//! - [`compute_task`]: proof-of-compute: the miner multiplies two matrices generated from the
//!   validator's seed (GPU through wgpu, else the CPU twin); the validator checks the
//!   product with Freivalds' test without recomputing it.
//!
//! The query protocol itself (signed queries and answers, the miner's guard) is
//! `agora_p2p::query`; the runtimes (`agora miner run`, `agora validator run`) are not
//! written yet.

pub mod compute_task;
pub mod task;
