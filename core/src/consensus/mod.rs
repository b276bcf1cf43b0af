//! BFT consensus (PROTOCOL §6; docs/consensus.md): a Tendermint-style protocol with
//! single-slot finality among validators with voting power, written as a pure state
//! machine. [`Machine::handle`] takes an [`Input`] (a message, a timeout that fired, a
//! verdict on a block) and returns [`Effect`]s (messages to send, timeouts to set, blocks
//! to build, verify or commit). No clock, no I/O, no randomness: the node and the
//! simulator drive the same code.
//!
//! ```text
//!  propose ──> prevote ──> precommit ──> decide (height + 1)
//!     │  timeout  │  timeout   │  timeout
//!     └─> nil ────┴─> nil ─────┴─> next round (next leader)
//! ```

mod machine;
mod types;

#[cfg(test)]
mod tests;

pub use machine::{
    Config, Effect, Input, Machine, Step, Timeout, Timeouts, FUTURE_MESSAGES_MAX, ROUND_WINDOW,
};
pub use types::{
    Evidence, Message, Proposal, Validator, ValidatorSet, ValidatorSetError, Vote, VoteKind,
    MAX_VOTE_BYTES,
};
