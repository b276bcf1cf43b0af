//! `agora-testnet`: offline economics and (later) local multi-process testnets.
//!
//! - [`scenario`]: seeded multi-epoch Yuma scenarios (honest validators, weight copiers,
//!   colluding groups, stake moves) behind `agora sim epochs`.
//!
//! Planned: `agora testnet up` (local networks), the seeded consensus simulation over a
//! simulated network, cross-implementation benchmarks.

pub mod rng;
pub mod scenario;
