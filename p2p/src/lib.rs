//! `agora-p2p`: the node's network over libp2p.
//!
//! Planned (ARCHITECTURE.md): gossipsub for blocks, votes and transactions;
//! request-response for sync and miner queries (Noise-encrypted, hotkey identities);
//! identify, kademlia and mDNS (loopback only in tests). A simulated network implements
//! the same trait for seeded consensus tests. Nothing is implemented yet: this crate is a
//! table of contents until the p2p issue.
