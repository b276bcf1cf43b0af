//! `agora-testnet`: local multi-process testnets (`agora testnet up`), the seeded
//! simulation of N consensus machines over a simulated network, economic scenarios and
//! cross-implementation benchmarks.
//!
//! Nothing is implemented yet: this crate is a table of contents until its issues.
