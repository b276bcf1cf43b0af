//! What Agora nodes say to each other: the gossip topics and the sync request-response
//! protocol, with their byte limits.

use agora_core::block::{Block, FinalityCert};
use agora_core::codec::{self, CodecError};
use agora_core::Hash;
use bincode::{Decode, Encode};

/// The gossip topics. Names are scoped by chain id and genesis hash, so two chains on
/// one network never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    /// Signed transactions, batched ([`TxBatch`]): one message per burst, not per
    /// transaction, so a burst of thousands does not overflow peers' send queues.
    Transactions,
    /// Consensus messages (`agora_core::consensus::Message` encoding): proposals carry a
    /// whole block, so this topic's size limit is the block limit.
    Consensus,
    /// Finalized-block announcements ([`Announcement`]).
    Blocks,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Transactions, Topic::Consensus, Topic::Blocks];

    pub fn name(self, chain_id: u64, genesis: &Hash) -> String {
        let kind = match self {
            Topic::Transactions => "txs",
            Topic::Consensus => "consensus",
            Topic::Blocks => "blocks",
        };
        format!("/agora/{chain_id}/{}/{kind}/1", &genesis.to_hex()[2..18])
    }

    /// Largest message accepted on the topic.
    pub fn max_bytes(self) -> usize {
        match self {
            Topic::Transactions => TX_BATCH_MAX_BYTES + 1024,
            Topic::Consensus => codec::MAX_BLOCK_BYTES + 64 * 1024,
            Topic::Blocks => 4 * 1024,
        }
    }
}

/// Most transactions in one gossip batch.
pub const TX_BATCH_MAX: usize = 512;
/// Largest encoded gossip batch of transactions.
pub const TX_BATCH_MAX_BYTES: usize = 1024 * 1024;

/// Encoded transactions gossiped together.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct TxBatch(pub Vec<Vec<u8>>);

impl TxBatch {
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode::<_, TX_BATCH_MAX_BYTES>(self, "transaction batch")
    }

    /// Decode, refusing more than [`TX_BATCH_MAX`] transactions or any over the
    /// transaction size limit.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let batch: TxBatch = codec::decode::<_, TX_BATCH_MAX_BYTES>(bytes, "transaction batch")?;
        if batch.0.len() > TX_BATCH_MAX || batch.0.iter().any(|t| t.len() > codec::MAX_TX_BYTES) {
            return Err(CodecError::Malformed {
                what: "transaction batch",
                reason: format!(
                    "more than {TX_BATCH_MAX} transactions or one over {} bytes",
                    codec::MAX_TX_BYTES
                ),
            });
        }
        Ok(batch)
    }
}

/// A finalized head, announced after each commit (small: peers fetch blocks by sync).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Announcement {
    pub height: u64,
    pub hash: Hash,
}

impl Announcement {
    pub fn encode(&self) -> Vec<u8> {
        codec::canonical(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode::<_, 256>(bytes, "announcement")
    }
}

/// Most blocks one sync request may ask for.
pub const SYNC_BLOCKS_MAX: u32 = 64;
/// Largest encoded sync request.
pub const SYNC_REQUEST_MAX_BYTES: usize = 1024;
/// Largest encoded sync response: the responder stops adding blocks before this.
pub const SYNC_RESPONSE_MAX_BYTES: usize = 40 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum SyncRequest {
    /// The peer's finalized head.
    Status,
    /// Finalized blocks with their certificates, from `from` on, at most `count`.
    Blocks { from: u64, count: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum SyncResponse {
    Status {
        height: u64,
        head: Hash,
        genesis: Hash,
    },
    Blocks(Vec<(Block, FinalityCert)>),
    /// The request was refused (too many blocks, unknown range): the reason.
    Refused(String),
}

impl SyncRequest {
    pub fn encode(&self) -> Vec<u8> {
        codec::canonical(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode::<_, SYNC_REQUEST_MAX_BYTES>(bytes, "sync request")
    }
}

impl SyncResponse {
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode::<_, SYNC_RESPONSE_MAX_BYTES>(self, "sync response")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode::<_, SYNC_RESPONSE_MAX_BYTES>(bytes, "sync response")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_scoped_by_chain_and_genesis() {
        let g = Hash([0xAB; 32]);
        assert_eq!(
            Topic::Consensus.name(5, &g),
            "/agora/5/abababababababab/consensus/1"
        );
        assert_ne!(Topic::Consensus.name(5, &g), Topic::Consensus.name(6, &g));
        assert_ne!(
            Topic::Consensus.name(5, &g),
            Topic::Consensus.name(5, &Hash([1; 32]))
        );
    }

    /// Decoders of every network message never panic on random or truncated bytes.
    #[test]
    fn decoders_survive_random_and_truncated_bytes() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let valid = [
            SyncRequest::Blocks { from: 3, count: 9 }.encode(),
            SyncResponse::Status {
                height: 1,
                head: Hash([2; 32]),
                genesis: Hash([3; 32]),
            }
            .encode()
            .unwrap(),
            Announcement {
                height: 4,
                hash: Hash([5; 32]),
            }
            .encode(),
        ];
        for _ in 0..20_000 {
            let len = (next() % 200) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = SyncRequest::decode(&bytes);
            let _ = SyncResponse::decode(&bytes);
            let _ = Announcement::decode(&bytes);
            let _ = TxBatch::decode(&bytes);
            let _ = agora_core::consensus::Message::decode(&bytes);
            let _ = agora_core::SignedTransaction::decode(&bytes);
        }
        for v in &valid {
            for cut in 0..v.len() {
                let _ = SyncRequest::decode(&v[..cut]);
                let _ = SyncResponse::decode(&v[..cut]);
                let _ = Announcement::decode(&v[..cut]);
            }
        }
        // Every proper prefix of a request is refused (no silent partial values).
        let req = &valid[0];
        assert!((0..req.len()).all(|cut| SyncRequest::decode(&req[..cut]).is_err()));
        assert!(SyncRequest::decode(req).is_ok());
        // A length prefix claiming 2^40 blocks is refused without allocating.
        let mut evil = vec![1u8, 0, 0, 0];
        evil.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(SyncResponse::decode(&evil).is_err());
    }
}
