//! `agora-testnet`: offline economics and (later) local multi-process testnets.
//!
//! - [`scenario`]: seeded multi-epoch Yuma scenarios (honest validators, weight copiers,
//!   colluding groups, stake moves) behind `agora sim epochs`.
//!
//! - [`gov_sim`]: the seeded governance economy behind `agora sim governance`: power
//!   concentration per epoch under `root_weights` and dynamic TAO.
//!
//! - [`sim`]: the seeded deterministic consensus simulation behind `agora sim consensus`:
//!   real consensus machines and block pipelines over a simulated network with faults and
//!   byzantine nodes, judged by independent checkers.
//!
//! - [`bench`]: the ledger, epoch and market benchmarks behind `agora bench`,
//!   `agora sim bench` and `agora bench-market`.

pub mod bench;
pub mod gov_sim;
pub mod rng;
pub mod scenario;
pub mod sim;
