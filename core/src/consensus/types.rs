//! Consensus messages, the validator set and quorum arithmetic (docs/consensus.md).

use bincode::{Decode, Encode};
use serde::Serialize;

use crate::block::Block;
use crate::codec::{self, CodecError, MAX_BLOCK_BYTES};
use crate::crypto::{hash_with_domain, AccountId, Hash, Keypair};

pub const VOTE_DOMAIN: &[u8] = b"agora/vote/v1";
pub const PROPOSAL_DOMAIN: &[u8] = b"agora/proposal/v1";
/// Largest encoded vote (fixed size in practice: 1 + 8 + 4 + 33 + 32 + 64 + framing).
pub const MAX_VOTE_BYTES: usize = 256;

/// One validator and its voting power.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Validator {
    pub id: AccountId,
    pub power: u64,
}

/// The validators of a chain, in a fixed order (the leader rotation follows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total: u128,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorSetError {
    #[error("a validator set needs at least one validator")]
    Empty,
    #[error("validator {0} has zero voting power")]
    ZeroPower(AccountId),
    #[error("validator {0} is listed twice")]
    Duplicate(AccountId),
}

impl ValidatorSet {
    pub fn new(validators: Vec<Validator>) -> Result<Self, ValidatorSetError> {
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut total: u128 = 0;
        for v in &validators {
            if v.power == 0 {
                return Err(ValidatorSetError::ZeroPower(v.id));
            }
            if !seen.insert(v.id) {
                return Err(ValidatorSetError::Duplicate(v.id));
            }
            total = total.saturating_add(u128::from(v.power));
        }
        Ok(ValidatorSet { validators, total })
    }

    /// Every authority with power 1 (the genesis `authorities` list).
    pub fn equal(ids: &[AccountId]) -> Result<Self, ValidatorSetError> {
        Self::new(ids.iter().map(|&id| Validator { id, power: 1 }).collect())
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn total_power(&self) -> u128 {
        self.total
    }

    pub fn power(&self, id: &AccountId) -> Option<u64> {
        self.validators
            .iter()
            .find(|v| v.id == *id)
            .map(|v| v.power)
    }

    /// More than two thirds of the total power: a quorum (2f+1 of the papers).
    pub fn is_quorum(&self, power: u128) -> bool {
        power.saturating_mul(3) > self.total.saturating_mul(2)
    }

    /// More than one third: at least one honest validator is among them (f+1).
    pub fn is_one_third(&self, power: u128) -> bool {
        power.saturating_mul(3) > self.total
    }

    /// The proposer of `round` at `height`: round robin over the set, starting one further
    /// at each height, so consecutive rounds (and heights) always have different leaders.
    pub fn proposer(&self, height: u64, round: u32) -> AccountId {
        let n = self.validators.len() as u128;
        let index = u128::from(height)
            .saturating_add(u128::from(round))
            .checked_rem(n.max(1))
            .unwrap_or(0);
        self.validators
            .get(usize::try_from(index).unwrap_or(0))
            .map_or(AccountId([0; 32]), |v| v.id)
    }
}

/// Which of the two votes of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Encode, Decode, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteKind {
    Prevote,
    Precommit,
}

/// A signed prevote or precommit. `block: None` is a vote for nil.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Vote {
    pub kind: VoteKind,
    pub height: u64,
    pub round: u32,
    pub block: Option<Hash>,
    pub voter: AccountId,
    #[serde(serialize_with = "crate::serde_hex::bytes64")]
    pub signature: [u8; 64],
}

impl Vote {
    /// What a validator signs: `blake3("agora/vote/v1" || chain_id || kind || height ||
    /// round || 0 | 1 || block hash?)`, integers little-endian, kind 0 prevote 1 precommit.
    pub fn signing_payload(
        chain_id: u64,
        kind: VoteKind,
        height: u64,
        round: u32,
        block: Option<&Hash>,
    ) -> Hash {
        let kind_byte = [match kind {
            VoteKind::Prevote => 0u8,
            VoteKind::Precommit => 1,
        }];
        let (flag, hash) = match block {
            Some(h) => ([1u8], h.0),
            None => ([0u8], [0u8; 32]),
        };
        hash_with_domain(
            VOTE_DOMAIN,
            &[
                &chain_id.to_le_bytes(),
                &kind_byte,
                &height.to_le_bytes(),
                &round.to_le_bytes(),
                &flag,
                &hash,
            ],
        )
    }

    pub fn sign(
        chain_id: u64,
        kind: VoteKind,
        height: u64,
        round: u32,
        block: Option<Hash>,
        key: &Keypair,
    ) -> Self {
        let payload = Self::signing_payload(chain_id, kind, height, round, block.as_ref());
        Vote {
            kind,
            height,
            round,
            block,
            voter: key.account(),
            signature: key.sign(&payload.0),
        }
    }

    pub fn verify(&self, chain_id: u64) -> bool {
        let payload = Self::signing_payload(
            chain_id,
            self.kind,
            self.height,
            self.round,
            self.block.as_ref(),
        );
        self.voter.verify(&payload.0, &self.signature)
    }
}

/// A leader's proposal: the block for `(height, round)`, and the round in which it was
/// already backed by a prevote quorum (`valid_round`, when re-proposing a locked value).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Proposal {
    pub height: u64,
    pub round: u32,
    pub valid_round: Option<u32>,
    pub block: Block,
    pub proposer: AccountId,
    pub signature: [u8; 64],
}

impl Proposal {
    /// `blake3("agora/proposal/v1" || chain_id || height || round || 0 | 1 || valid_round?
    /// || block hash)`.
    pub fn signing_payload(
        chain_id: u64,
        height: u64,
        round: u32,
        valid_round: Option<u32>,
        block: &Hash,
    ) -> Hash {
        let (flag, vr) = match valid_round {
            Some(r) => ([1u8], r),
            None => ([0u8], 0),
        };
        hash_with_domain(
            PROPOSAL_DOMAIN,
            &[
                &chain_id.to_le_bytes(),
                &height.to_le_bytes(),
                &round.to_le_bytes(),
                &flag,
                &vr.to_le_bytes(),
                &block.0,
            ],
        )
    }

    pub fn sign(
        chain_id: u64,
        round: u32,
        valid_round: Option<u32>,
        block: Block,
        key: &Keypair,
    ) -> Self {
        let height = block.header.height;
        let payload = Self::signing_payload(chain_id, height, round, valid_round, &block.hash());
        Proposal {
            height,
            round,
            valid_round,
            block,
            proposer: key.account(),
            signature: key.sign(&payload.0),
        }
    }

    pub fn block_hash(&self) -> Hash {
        self.block.hash()
    }

    /// Signature valid, and the block is for this height: a fresh block (no valid round)
    /// was made in this round by this proposer; a re-proposed one in an earlier round.
    pub fn verify(&self, chain_id: u64) -> bool {
        let payload = Self::signing_payload(
            chain_id,
            self.height,
            self.round,
            self.valid_round,
            &self.block_hash(),
        );
        let made_here = match self.valid_round {
            None => {
                self.block.header.view == u64::from(self.round)
                    && self.block.header.proposer == self.proposer
            }
            Some(_) => self.block.header.view < u64::from(self.round),
        };
        self.block.header.height == self.height
            && made_here
            && self.proposer.verify(&payload.0, &self.signature)
    }
}

/// Everything validators send each other about consensus.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Message {
    Proposal(Proposal),
    Vote(Vote),
    /// A finalized block with its certificate: answers a peer that is still voting on a
    /// height this node has finalized, and is how a node catches up.
    Decided(Block, crate::block::FinalityCert),
}

impl Message {
    pub fn height(&self) -> u64 {
        match self {
            Message::Proposal(p) => p.height,
            Message::Vote(v) => v.height,
            Message::Decided(b, _) => b.header.height,
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode::<_, MAX_BLOCK_BYTES>(self, "consensus message")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode::<_, MAX_BLOCK_BYTES>(bytes, "consensus message")
    }
}

/// Two signed messages from one validator for one slot: proof it equivocated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    DoubleVote {
        first: Vote,
        second: Vote,
    },
    DoubleProposal {
        proposer: AccountId,
        height: u64,
        round: u32,
        first: Hash,
        second: Hash,
    },
}

impl Evidence {
    pub fn offender(&self) -> AccountId {
        match self {
            Evidence::DoubleVote { first, .. } => first.voter,
            Evidence::DoubleProposal { proposer, .. } => *proposer,
        }
    }
}
