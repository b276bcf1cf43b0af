//! Blocks and headers (PROTOCOL §6).

use bincode::{Decode, Encode};
use serde::Serialize;

use crate::codec::{self, CodecError, MAX_BLOCK_BYTES};
use crate::crypto::{hash_with_domain, AccountId, Hash, Keypair};
use crate::tx::SignedTransaction;

pub const HEADER_DOMAIN: &[u8] = b"agora/header/v1";
pub const TX_ROOT_DOMAIN: &[u8] = b"agora/txroot/v1";
pub const FINALIZE_DOMAIN: &[u8] = b"agora/finalize/v1";

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Header {
    pub chain_id: u64,
    pub height: u64,
    pub parent: Hash,
    /// Consensus view (round) in which the block was proposed; 0 in dev mode.
    pub view: u64,
    pub timestamp_ms: u64,
    pub proposer: AccountId,
    pub tx_root: Hash,
    pub state_root: Hash,
}

impl Header {
    /// `blake3("agora/header/v1" || encode(header))`: the block hash.
    pub fn hash(&self) -> Hash {
        hash_with_domain(HEADER_DOMAIN, &[&codec::encode::<_, MAX_BLOCK_BYTES>(self)])
    }
}

/// One authority's finalize vote.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Vote {
    pub authority: AccountId,
    #[serde(serialize_with = "crate::serde_hex::bytes64")]
    pub signature: [u8; 64],
}

/// Proof that a block is final: finalize votes from authorities holding more than 2/3 of
/// the voting power (in dev mode: the single authority's vote).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct FinalityCert {
    pub height: u64,
    pub block_hash: Hash,
    pub votes: Vec<Vote>,
}

impl FinalityCert {
    /// What an authority signs to finalize `block_hash` at `height` on `chain_id`.
    pub fn signing_payload(chain_id: u64, height: u64, block_hash: &Hash) -> Hash {
        hash_with_domain(
            FINALIZE_DOMAIN,
            &[
                &chain_id.to_le_bytes(),
                &height.to_le_bytes(),
                &block_hash.0,
            ],
        )
    }

    /// A certificate signed by one authority (dev mode).
    pub fn sign_single(chain_id: u64, height: u64, block_hash: Hash, key: &Keypair) -> Self {
        let payload = Self::signing_payload(chain_id, height, &block_hash);
        FinalityCert {
            height,
            block_hash,
            votes: vec![Vote {
                authority: key.account(),
                signature: key.sign(&payload.0),
            }],
        }
    }

    /// True when every vote is valid, votes are from distinct authorities, and they cover
    /// more than two thirds of `authorities` (equal voting power until PoS arrives).
    pub fn verify(&self, chain_id: u64, authorities: &[AccountId]) -> bool {
        let payload = Self::signing_payload(chain_id, self.height, &self.block_hash);
        let mut seen = std::collections::BTreeSet::new();
        for v in &self.votes {
            if !authorities.contains(&v.authority)
                || !seen.insert(v.authority)
                || !v.authority.verify(&payload.0, &v.signature)
            {
                return false;
            }
        }
        seen.len() * 3 > authorities.len() * 2
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Block {
    pub header: Header,
    pub txs: Vec<SignedTransaction>,
    /// Finality certificate of the parent block (None for genesis and its child).
    pub parent_cert: Option<FinalityCert>,
}

impl Block {
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode::<_, MAX_BLOCK_BYTES>(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode::<_, MAX_BLOCK_BYTES>(bytes, "block")
    }
}

/// `blake3("agora/txroot/v1" || count:u64 LE || tx_hash_0 || tx_hash_1 || ...)`.
pub fn tx_root(txs: &[SignedTransaction]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(TX_ROOT_DOMAIN);
    h.update(&(txs.len() as u64).to_le_bytes());
    for tx in txs {
        h.update(&tx.hash().0);
    }
    Hash(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_need_a_supermajority_of_distinct_valid_votes() {
        let keys: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| Keypair::dev(n))
            .collect();
        let auths: Vec<_> = keys.iter().map(Keypair::account).collect();
        let h = Hash([9; 32]);
        let mut cert = FinalityCert::sign_single(1, 5, h, &keys[0]);
        assert!(!cert.verify(1, &auths));
        for k in &keys[1..3] {
            cert.votes
                .extend(FinalityCert::sign_single(1, 5, h, k).votes);
        }
        assert!(cert.verify(1, &auths));
        assert!(!cert.verify(2, &auths), "other chain");
        let mut dup = cert.clone();
        dup.votes[2] = dup.votes[1].clone();
        assert!(!dup.verify(1, &auths));
        let single = FinalityCert::sign_single(1, 5, h, &keys[0]);
        assert!(single.verify(1, &auths[..1]));
    }
}
