//! Blocks and headers (PROTOCOL §6).

use bincode::{Decode, Encode};
use serde::Serialize;

use crate::codec::{self, CodecError, MAX_BLOCK_BYTES};
use crate::crypto::{hash_with_domain, AccountId, Hash, Keypair};
use crate::tx::SignedTransaction;

pub const HEADER_DOMAIN: &[u8] = b"agora/header/v1";
pub const TX_ROOT_DOMAIN: &[u8] = b"agora/txroot/v1";
pub const CERT_DOMAIN: &[u8] = b"agora/cert/v1";

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
    /// [`FinalityCert::hash`] of the certificate the block carries for its parent (zero
    /// when it carries none: the first block). The block hash thereby fixes which votes
    /// the block carries, so one hash never names two different byte strings.
    pub parent_cert: Hash,
}

impl Header {
    /// `blake3("agora/header/v1" || encode(header))`: the block hash.
    pub fn hash(&self) -> Hash {
        hash_with_domain(HEADER_DOMAIN, &[&codec::canonical(self)])
    }
}

/// One validator's precommit signature inside a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct CertSignature {
    pub authority: AccountId,
    #[serde(serialize_with = "crate::serde_hex::bytes64")]
    pub signature: [u8; 64],
}

/// Proof that a block is final: precommits for it in one round from validators holding
/// more than 2/3 of the voting power, sorted by validator id (so a given set of votes has
/// exactly one encoding). Each signature is a precommit vote's: see
/// [`crate::consensus::Vote::signing_payload`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct FinalityCert {
    pub height: u64,
    pub round: u32,
    pub block_hash: Hash,
    pub votes: Vec<CertSignature>,
}

/// Why a certificate does not prove finality.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("signer {0} is not a validator")]
    UnknownSigner(AccountId),
    #[error("signatures are not sorted by signer, or a signer appears twice")]
    NotSorted,
    #[error("bad signature from {0}")]
    BadSignature(AccountId),
    #[error("signers hold {have} of {total} voting power, more than two thirds is needed")]
    NoQuorum { have: u128, total: u128 },
    #[error("certificate is for height {cert_height} block {cert_block}, expected height {height} block {block}")]
    WrongBlock {
        cert_height: u64,
        cert_block: Hash,
        height: u64,
        block: Hash,
    },
}

impl FinalityCert {
    /// What each validator signed: its precommit for `block_hash` at `(height, round)`.
    pub fn signing_payload(chain_id: u64, height: u64, round: u32, block_hash: &Hash) -> Hash {
        crate::consensus::Vote::signing_payload(
            chain_id,
            crate::consensus::VoteKind::Precommit,
            height,
            round,
            Some(block_hash),
        )
    }

    /// A certificate signed by one validator (a one-validator chain, `--dev`).
    pub fn sign_single(chain_id: u64, height: u64, block_hash: Hash, key: &Keypair) -> Self {
        let payload = Self::signing_payload(chain_id, height, 0, &block_hash);
        FinalityCert {
            height,
            round: 0,
            block_hash,
            votes: vec![CertSignature {
                authority: key.account(),
                signature: key.sign(&payload.0),
            }],
        }
    }

    /// `blake3("agora/cert/v1" || encode(cert))`: what a child header commits to.
    pub fn hash(&self) -> Hash {
        hash_with_domain(CERT_DOMAIN, &[&codec::canonical(self)])
    }

    /// Ok when the signers are distinct validators in ascending order, every signature
    /// is valid, and together they hold more than two thirds of the power.
    pub fn verify(
        &self,
        chain_id: u64,
        validators: &crate::consensus::ValidatorSet,
    ) -> Result<(), CertError> {
        let payload = Self::signing_payload(chain_id, self.height, self.round, &self.block_hash);
        let mut power: u128 = 0;
        let mut last: Option<AccountId> = None;
        for v in &self.votes {
            if last.is_some_and(|l| l >= v.authority) {
                return Err(CertError::NotSorted);
            }
            last = Some(v.authority);
            let p = validators
                .power(&v.authority)
                .ok_or(CertError::UnknownSigner(v.authority))?;
            if !v.authority.verify(&payload.0, &v.signature) {
                return Err(CertError::BadSignature(v.authority));
            }
            power = power.saturating_add(u128::from(p));
        }
        if !validators.is_quorum(power) {
            return Err(CertError::NoQuorum {
                have: power,
                total: validators.total_power(),
            });
        }
        Ok(())
    }

    /// [`Self::verify`], and the certificate is for `block_hash` at `height`.
    pub fn verify_for(
        &self,
        chain_id: u64,
        validators: &crate::consensus::ValidatorSet,
        height: u64,
        block_hash: &Hash,
    ) -> Result<(), CertError> {
        if self.height != height || self.block_hash != *block_hash {
            return Err(CertError::WrongBlock {
                cert_height: self.height,
                cert_block: self.block_hash,
                height,
                block: *block_hash,
            });
        }
        self.verify(chain_id, validators)
    }
}

/// The hash a header stores for an optional parent certificate.
pub fn parent_cert_hash(cert: Option<&FinalityCert>) -> Hash {
    cert.map_or(Hash::ZERO, FinalityCert::hash)
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

    /// The canonical bytes. Their size is bounded where blocks are made (a proposer stops
    /// short of [`MAX_BLOCK_BYTES`]) and checked where they arrive (decoding refuses more).
    pub fn encode(&self) -> Vec<u8> {
        codec::canonical(self)
    }

    pub fn encoded_len(&self) -> usize {
        self.encode().len()
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
    fn certificates_need_a_power_quorum_of_sorted_distinct_valid_votes() {
        use crate::consensus::{Validator, ValidatorSet};
        let mut keys: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| Keypair::dev(n))
            .collect();
        keys.sort_by_key(Keypair::account);
        let equal =
            ValidatorSet::equal(&keys.iter().map(Keypair::account).collect::<Vec<_>>()).unwrap();
        let h = Hash([9; 32]);
        let sig = |k: &Keypair| FinalityCert::sign_single(1, 5, h, k).votes.remove(0);
        let cert = |ks: &[&Keypair]| FinalityCert {
            height: 5,
            round: 0,
            block_hash: h,
            votes: ks.iter().map(|k| sig(k)).collect(),
        };
        assert!(matches!(
            cert(&[&keys[0], &keys[1]]).verify(1, &equal),
            Err(CertError::NoQuorum { have: 2, total: 4 })
        ));
        let three = cert(&[&keys[0], &keys[1], &keys[2]]);
        assert_eq!(three.verify(1, &equal), Ok(()));
        assert!(matches!(
            three.verify(2, &equal),
            Err(CertError::BadSignature(_))
        ));
        assert!(three.verify_for(1, &equal, 5, &Hash([8; 32])).is_err());
        let mut unsorted = three.clone();
        unsorted.votes.swap(0, 1);
        assert_eq!(unsorted.verify(1, &equal), Err(CertError::NotSorted));
        let mut dup = three.clone();
        dup.votes[2] = dup.votes[1].clone();
        assert_eq!(dup.verify(1, &equal), Err(CertError::NotSorted));
        // Unequal power: one validator with 7 of 10 is a quorum alone; three with 1 each are not.
        let weighted = ValidatorSet::new(
            keys.iter()
                .zip([7, 1, 1, 1])
                .map(|(k, power)| Validator {
                    id: k.account(),
                    power,
                })
                .collect(),
        )
        .unwrap();
        assert_eq!(cert(&[&keys[0]]).verify(1, &weighted), Ok(()));
        assert!(cert(&[&keys[1], &keys[2], &keys[3]])
            .verify(1, &weighted)
            .is_err());
        // The header commits to the exact certificate bytes.
        assert_ne!(three.hash(), cert(&[&keys[0], &keys[1], &keys[3]]).hash());
        assert_eq!(parent_cert_hash(None), Hash([0; 32]));
    }
}
