//! The neuron query protocol's messages and the miner's guard (issue 11, PROTOCOL §8).
//!
//! A validator's query is signed by its hotkey over (chain id, netuid, task, nonce, block
//! height, body hash); a miner's response is signed over the query's hash and its own body,
//! so any reply is evidence anyone can check later. The miner runs [`Guard::check`] on every
//! request before any task work, in this order: size, decoding, chain, subnet and task,
//! signature, sender (the Noise-authenticated peer must be the signing hotkey), freshness,
//! replay, admission, rate limit, queue. Each refusal is a typed [`Refusal`] the caller sees.
//!
//! Replays: a query is fresh only if its block is within `window_blocks` of the miner's head
//! and above the head the miner had when it started. The memory of seen (caller, nonce) pairs
//! covers exactly that window, so it is bounded, and a restart cannot reopen it: everything
//! signed before the restart is stale afterwards.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use agora_core::codec::{self, CodecError};
use agora_core::crypto::hash_with_domain;
use agora_core::{AccountId, Hash, Keypair};
use bincode::{Decode, Encode};
use libp2p::PeerId;

pub const QUERY_PROTOCOL: &str = "/agora/query/1";
pub const QUERY_DOMAIN: &[u8] = b"agora/query/v1";
pub const RESPONSE_DOMAIN: &[u8] = b"agora/query-response/v1";
/// Largest encoded query.
pub const QUERY_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Largest query frame the transport reads: a query up to 64 KiB over the limit reaches
/// the guard and is refused as [`Refusal::Oversize`] (a typed answer); a larger frame is
/// cut at the transport without being read (the caller sees its request fail).
pub const QUERY_FRAME_MAX_BYTES: usize = QUERY_MAX_BYTES + 64 * 1024;
/// Largest encoded response.
pub const RESPONSE_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Longest task name.
pub const TASK_NAME_MAX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct QueryHeader {
    pub chain_id: u64,
    pub netuid: u16,
    pub task: String,
    /// The validator's hotkey.
    pub caller: AccountId,
    pub nonce: u64,
    /// The chain height the validator saw when it signed.
    pub block: u64,
    pub body_hash: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SignedQuery {
    pub header: QueryHeader,
    pub body: Vec<u8>,
    pub signature: [u8; 64],
}

fn body_hash(body: &[u8]) -> Hash {
    Hash(*blake3::hash(body).as_bytes())
}

impl SignedQuery {
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        chain_id: u64,
        netuid: u16,
        task: &str,
        nonce: u64,
        block: u64,
        body: Vec<u8>,
        hotkey: &Keypair,
    ) -> Self {
        let header = QueryHeader {
            chain_id,
            netuid,
            task: task.to_string(),
            caller: hotkey.account(),
            nonce,
            block,
            body_hash: body_hash(&body),
        };
        let signature = hotkey.sign(&Self::hash_of(&header).0);
        SignedQuery {
            header,
            body,
            signature,
        }
    }

    /// `blake3("agora/query/v1" || encode(header))`: what the caller signs and the response
    /// answers.
    pub fn hash_of(header: &QueryHeader) -> Hash {
        hash_with_domain(QUERY_DOMAIN, &[&codec::canonical(header)])
    }

    pub fn hash(&self) -> Hash {
        Self::hash_of(&self.header)
    }

    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode::<_, QUERY_MAX_BYTES>(self, "query")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode::<_, QUERY_MAX_BYTES>(bytes, "query")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SignedResponse {
    pub query_hash: Hash,
    pub miner: AccountId,
    pub body: Vec<u8>,
    pub signature: [u8; 64],
}

impl SignedResponse {
    fn payload(query_hash: &Hash, body: &[u8]) -> Hash {
        hash_with_domain(RESPONSE_DOMAIN, &[&query_hash.0, &body_hash(body).0])
    }

    pub fn sign(query: &SignedQuery, body: Vec<u8>, hotkey: &Keypair) -> Self {
        let query_hash = query.hash();
        let signature = hotkey.sign(&Self::payload(&query_hash, &body).0);
        SignedResponse {
            query_hash,
            miner: hotkey.account(),
            body,
            signature,
        }
    }

    /// The response answers `query` and is signed by `miner`.
    pub fn verify(&self, query: &SignedQuery, miner: &AccountId) -> bool {
        self.query_hash == query.hash()
            && self.miner == *miner
            && miner.verify(
                &Self::payload(&self.query_hash, &self.body).0,
                &self.signature,
            )
    }

    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode::<_, RESPONSE_MAX_BYTES>(self, "query response")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode::<_, RESPONSE_MAX_BYTES>(bytes, "query response")
    }
}

/// Why a miner refused a query, before doing any work for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Encode, Decode)]
pub enum Refusal {
    #[error("query is {len} bytes, the limit is {max}")]
    Oversize { len: u64, max: u64 },
    #[error("query does not decode: {0}")]
    Malformed(String),
    #[error("query is for chain {got}, this miner serves chain {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("query is for {got}, this miner serves {expected}")]
    WrongTarget { expected: String, got: String },
    #[error("the body does not match its hash, or the signature is not the caller's")]
    BadSignature,
    #[error("the query came from peer {peer}, not from the hotkey that signed it")]
    NotFromCaller { peer: String },
    #[error("query signed at block {block}: fresh queries are above {floor} and within {window} blocks of the head {head}")]
    Stale {
        block: u64,
        head: u64,
        floor: u64,
        window: u64,
    },
    #[error("query (caller, nonce) already answered")]
    Replayed,
    #[error("caller not admitted: {0}")]
    NotAdmitted(String),
    #[error("rate limited: at most {per_second} queries per second per caller")]
    RateLimited { per_second: u32 },
    #[error("the miner's work queue is full ({max})")]
    Busy { max: u32 },
}

impl Refusal {
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Oversize { .. } => "oversize",
            Refusal::Malformed(_) => "malformed",
            Refusal::WrongChain { .. } => "wrong_chain",
            Refusal::WrongTarget { .. } => "wrong_target",
            Refusal::BadSignature => "bad_signature",
            Refusal::NotFromCaller { .. } => "not_from_caller",
            Refusal::Stale { .. } => "stale",
            Refusal::Replayed => "replayed",
            Refusal::NotAdmitted(_) => "not_admitted",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::Busy { .. } => "busy",
        }
    }
}

/// What a miner sends back: its signed answer, or why it refused.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum QueryAnswer {
    Answered(SignedResponse),
    Refused(Refusal),
}

impl QueryAnswer {
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode::<_, RESPONSE_MAX_BYTES>(self, "query answer")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode::<_, RESPONSE_MAX_BYTES>(bytes, "query answer")
    }
}

/// Who may query: the miner's view of chain state (validator permit, or stake above the
/// subnet's threshold).
pub trait Admission {
    fn admit(&self, netuid: u16, caller: &AccountId) -> Result<(), String>;
}

/// Admission by a fixed list of callers (benchmarks, tests, private deployments).
pub struct AllowList(pub Vec<AccountId>);

impl Admission for AllowList {
    fn admit(&self, _: u16, caller: &AccountId) -> Result<(), String> {
        if self.0.contains(caller) {
            Ok(())
        } else {
            Err(format!("{caller} is not on this miner's allow list"))
        }
    }
}

/// The libp2p peer id a hotkey speaks as (a neuron's identity key is its hotkey).
pub fn peer_of_hotkey(hotkey: &AccountId) -> Option<PeerId> {
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(&hotkey.0).ok()?;
    Some(libp2p::identity::PublicKey::from(key).to_peer_id())
}

#[derive(Debug, Clone, Copy)]
pub struct GuardConfig {
    pub chain_id: u64,
    /// The subnet and task this miner serves.
    pub netuid: u16,
    pub task: &'static str,
    /// How many blocks old a query may be.
    pub window_blocks: u64,
    /// Queries per caller per second.
    pub per_caller_per_second: u32,
    /// Admitted queries waiting for or in work.
    pub queue_max: u32,
    /// Callers tracked by the rate limiter. Overflow policy: the least recent is forgotten.
    pub callers_max: usize,
}

/// The miner's checks, in order, before any work.
pub struct Guard {
    cfg: GuardConfig,
    /// Queries at or below this block were signed before this miner started.
    floor: u64,
    /// (block, caller, nonce) seen, pruned below the freshness window.
    seen: BTreeSet<(u64, AccountId, u64)>,
    /// Per caller: admissions in the current second (second, count).
    rate: BTreeMap<AccountId, (u64, u32)>,
    rate_order: VecDeque<AccountId>,
    in_work: u32,
    /// How many queries passed every check (the work the task code saw).
    pub admitted: u64,
}

impl Guard {
    /// A guard for a miner whose chain head at start is `head_at_start`.
    pub fn new(cfg: GuardConfig, head_at_start: u64) -> Self {
        Guard {
            cfg,
            floor: head_at_start,
            seen: BTreeSet::new(),
            rate: BTreeMap::new(),
            rate_order: VecDeque::new(),
            in_work: 0,
            admitted: 0,
        }
    }

    /// Check `bytes`, received from the transport-authenticated peer `from` (`None` where
    /// there is no transport identity), at chain height `head` and time `now_ms`. On success
    /// the query holds a work slot until [`Guard::done`].
    pub fn check(
        &mut self,
        bytes: &[u8],
        from: Option<&PeerId>,
        head: u64,
        now_ms: u64,
        admission: &dyn Admission,
    ) -> Result<SignedQuery, Refusal> {
        if bytes.len() > QUERY_MAX_BYTES {
            return Err(Refusal::Oversize {
                len: bytes.len() as u64,
                max: QUERY_MAX_BYTES as u64,
            });
        }
        let q = SignedQuery::decode(bytes).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let h = &q.header;
        if h.task.len() > TASK_NAME_MAX {
            return Err(Refusal::Malformed(format!(
                "task name over {TASK_NAME_MAX} bytes"
            )));
        }
        if h.chain_id != self.cfg.chain_id {
            return Err(Refusal::WrongChain {
                expected: self.cfg.chain_id,
                got: h.chain_id,
            });
        }
        if h.netuid != self.cfg.netuid || h.task != self.cfg.task {
            return Err(Refusal::WrongTarget {
                expected: format!("subnet {} task {}", self.cfg.netuid, self.cfg.task),
                got: format!("subnet {} task {}", h.netuid, h.task),
            });
        }
        if body_hash(&q.body) != h.body_hash || !h.caller.verify(&q.hash().0, &q.signature) {
            return Err(Refusal::BadSignature);
        }
        if let Some(peer) = from {
            if peer_of_hotkey(&h.caller).as_ref() != Some(peer) {
                return Err(Refusal::NotFromCaller {
                    peer: peer.to_string(),
                });
            }
        }
        let oldest = head
            .saturating_sub(self.cfg.window_blocks)
            .max(self.floor.saturating_add(1));
        if h.block < oldest || h.block > head.saturating_add(1) {
            return Err(Refusal::Stale {
                block: h.block,
                head,
                floor: self.floor,
                window: self.cfg.window_blocks,
            });
        }
        // Forget what the window no longer covers: older queries are refused as stale.
        let keep = self.seen.split_off(&(oldest, AccountId([0; 32]), 0));
        self.seen = keep;
        if self.seen.contains(&(h.block, h.caller, h.nonce)) {
            return Err(Refusal::Replayed);
        }
        admission
            .admit(h.netuid, &h.caller)
            .map_err(Refusal::NotAdmitted)?;
        let second = now_ms / 1000;
        let entry = self.rate.entry(h.caller).or_insert((second, 0));
        if entry.0 != second {
            *entry = (second, 0);
        }
        if entry.1 >= self.cfg.per_caller_per_second {
            return Err(Refusal::RateLimited {
                per_second: self.cfg.per_caller_per_second,
            });
        }
        if self.in_work >= self.cfg.queue_max {
            return Err(Refusal::Busy {
                max: self.cfg.queue_max,
            });
        }
        entry.1 += 1;
        if !self.rate_order.contains(&h.caller) {
            self.rate_order.push_back(h.caller);
            while self.rate_order.len() > self.cfg.callers_max {
                if let Some(old) = self.rate_order.pop_front() {
                    self.rate.remove(&old);
                }
            }
        }
        self.seen.insert((h.block, h.caller, h.nonce));
        self.in_work += 1;
        self.admitted += 1;
        Ok(q)
    }

    /// A query's work finished: its slot is free.
    pub fn done(&mut self) {
        self.in_work = self.in_work.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GuardConfig {
        GuardConfig {
            chain_id: 7,
            netuid: 1,
            task: "compute",
            window_blocks: 10,
            per_caller_per_second: 3,
            queue_max: 4,
            callers_max: 2,
        }
    }

    #[test]
    fn responses_are_evidence_bound_to_their_query() {
        let (v, m) = (Keypair::dev("val"), Keypair::dev("miner"));
        let q = SignedQuery::sign(7, 1, "compute", 1, 50, b"seed".to_vec(), &v);
        let r = SignedResponse::sign(&q, b"product".to_vec(), &m);
        assert!(r.verify(&q, &m.account()));
        assert!(!r.verify(&q, &v.account()), "someone else's signature");
        let other = SignedQuery::sign(7, 1, "compute", 2, 50, b"seed".to_vec(), &v);
        assert!(!r.verify(&other, &m.account()), "another query");
        let mut tampered = r.clone();
        tampered.body[0] ^= 1;
        assert!(!tampered.verify(&q, &m.account()));
        let back = SignedResponse::decode(&r.encode().unwrap()).unwrap();
        assert_eq!(back, r);
    }

    /// Every refusal, each before any work (the admitted count does not move), in order.
    #[test]
    fn the_guard_refuses_each_bad_query_before_any_work() {
        let (v, stranger) = (Keypair::dev("val"), Keypair::dev("stranger"));
        let permits = AllowList(vec![v.account()]);
        let mut g = Guard::new(cfg(), 100);
        let q = |nonce, block, key: &Keypair| {
            SignedQuery::sign(7, 1, "compute", nonce, block, vec![1, 2, 3], key)
                .encode()
                .unwrap()
        };
        let refuse = |g: &mut Guard, bytes: &[u8], head| {
            g.check(bytes, None, head, 5_000, &permits)
                .unwrap_err()
                .kind()
        };

        assert_eq!(
            refuse(&mut g, &vec![0u8; QUERY_MAX_BYTES + 1], 105),
            "oversize"
        );
        assert_eq!(refuse(&mut g, &[1, 2, 3], 105), "malformed");
        let wrong_chain = SignedQuery::sign(8, 1, "compute", 1, 105, vec![], &v)
            .encode()
            .unwrap();
        assert_eq!(refuse(&mut g, &wrong_chain, 105), "wrong_chain");
        let wrong_subnet = SignedQuery::sign(7, 2, "compute", 1, 105, vec![], &v);
        assert_eq!(
            refuse(&mut g, &wrong_subnet.encode().unwrap(), 105),
            "wrong_target"
        );
        let wrong_task = SignedQuery::sign(7, 1, "echo", 1, 105, vec![], &v);
        assert_eq!(
            refuse(&mut g, &wrong_task.encode().unwrap(), 105),
            "wrong_target"
        );
        // Unsigned (zero signature) and forged signature.
        let mut unsigned = SignedQuery::sign(7, 1, "compute", 1, 105, vec![], &v);
        unsigned.signature = [0; 64];
        assert_eq!(
            refuse(&mut g, &unsigned.encode().unwrap(), 105),
            "bad_signature"
        );
        let mut forged = SignedQuery::sign(7, 1, "compute", 1, 105, vec![9], &v);
        forged.body = vec![8];
        assert_eq!(
            refuse(&mut g, &forged.encode().unwrap(), 105),
            "bad_signature"
        );
        // Signed by the validator but sent by another peer (a relay, or a stolen query).
        let relayed = g
            .check(
                &q(1, 105, &v),
                peer_of_hotkey(&stranger.account()).as_ref(),
                105,
                5_000,
                &permits,
            )
            .unwrap_err();
        assert_eq!(relayed.kind(), "not_from_caller");
        // Stale: older than the window, or signed before the miner started (block <= 100).
        assert_eq!(refuse(&mut g, &q(1, 90, &v), 110), "stale");
        assert_eq!(refuse(&mut g, &q(1, 100, &v), 105), "stale");
        assert_eq!(
            refuse(&mut g, &q(1, 107, &v), 105),
            "stale",
            "from the future"
        );
        assert_eq!(refuse(&mut g, &q(1, 105, &stranger), 105), "not_admitted");
        assert_eq!(g.admitted, 0, "no refused query reached the task");

        let good = q(1, 105, &v);
        g.check(
            &good,
            peer_of_hotkey(&v.account()).as_ref(),
            105,
            5_000,
            &permits,
        )
        .unwrap();
        assert_eq!(refuse(&mut g, &good, 106), "replayed");
        g.check(&q(2, 105, &v), None, 105, 5_100, &permits).unwrap();
        g.check(&q(3, 105, &v), None, 105, 5_200, &permits).unwrap();
        assert_eq!(refuse(&mut g, &q(4, 105, &v), 105), "rate_limited");
        // Next second: allowed again, until the work queue (4) is full.
        g.check(&q(5, 105, &v), None, 105, 6_000, &permits).unwrap();
        assert_eq!(refuse(&mut g, &q(6, 105, &v), 105), "busy");
        g.done();
        g.check(&q(6, 105, &v), None, 105, 6_100, &permits).unwrap();
        assert_eq!(g.admitted, 5);

        // A restarted miner (head 106 at start) refuses everything signed before it.
        let mut restarted = Guard::new(cfg(), 106);
        assert_eq!(refuse(&mut restarted, &good, 107), "stale");
        assert!(restarted
            .check(&q(1, 107, &v), None, 107, 7_000, &permits)
            .is_ok());
    }

    #[test]
    fn replay_memory_is_bounded_by_the_window() {
        let v = Keypair::dev("val");
        let permits = AllowList(vec![v.account()]);
        let mut g = Guard::new(
            GuardConfig {
                per_caller_per_second: u32::MAX,
                queue_max: u32::MAX,
                ..cfg()
            },
            0,
        );
        for block in 1..=1000u64 {
            let bytes = SignedQuery::sign(7, 1, "compute", block, block, vec![], &v)
                .encode()
                .unwrap();
            g.check(&bytes, None, block, block * 1000, &permits)
                .unwrap();
            g.done();
        }
        assert!(g.seen.len() <= 11, "{} remembered", g.seen.len());
    }
}
