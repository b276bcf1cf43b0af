//! Neurons: what miners and validators of a subnet do off chain.
//!
//! - [`task`]: subnet tasks as traits (validator: make a request, score an answer; miner:
//!   answer), and the deterministic conversion of scores into `u16` weights.
//! - [`compute_task`]: proof-of-compute: the miner multiplies two matrices generated from the
//!   validator's seed (GPU through wgpu, else the CPU twin); the validator checks the
//!   product with Freivalds' test without recomputing it.
//!
//! - [`miner`], [`validator`]: the runtimes behind `agora miner run` and
//!   `agora validator run`; [`view`]: what they read of the chain over RPC; [`status`]:
//!   the status files `agora miner status` / `agora validator status` read.
//! - [`bench`]: `agora bench-query`, the query protocol measured against Python's
//!   axon/dendrite pattern.
//!
//! The query protocol itself (signed queries and answers, the miner's guard) is
//! `agora_p2p::query`.

pub mod bench;
pub mod compute_task;
pub mod inference_task;
pub mod join;
pub mod miner;
pub mod status;
pub mod task;
pub mod validator;
pub mod view;
