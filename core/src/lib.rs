//! `agora-core`: the pure, deterministic heart of an Agora node.
//!
//! No async, no I/O, no wall clock, no ambient randomness: every function here is a
//! function of its arguments, so every node computes the same bytes (ARCHITECTURE.md,
//! rule 1). The node wraps it in actors; storage persists what it returns.
//!
//! ```text
//!  tx bytes ──decode──> SignedTransaction ──┐
//!                                          ├─> ledger::build_block / execute_block
//!  state (StateRead) ──> Overlay ──────────┘        │
//!                                                   └─> Changes + LtHash (state root) + Block
//! ```
//!
//! Protocol modules cite `../shared/PROTOCOL.md` (§n) and the subtensor reference (R§n).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod amount;
pub mod block;
pub mod codec;
pub mod consensus;
pub mod crypto;
pub mod emission;
pub mod epoch;
pub mod genesis;
pub mod gov;
pub mod ledger;
pub mod pool;
mod serde_hex;
pub mod state;
pub mod subnet;
pub mod tx;

pub use amount::{format_tao, parse_tao, MAX_SUPPLY_RAO, RAO_PER_TAO};
pub use block::{Block, FinalityCert, Header};
pub use crypto::{AccountId, Hash, Keypair};
pub use genesis::{ChainParams, Genesis};
pub use ledger::{BlockError, TxError};
pub use state::{Account, Supply};
pub use tx::{Call, SignedTransaction, Transaction};
