//! The mempool's bookkeeping, without actors: what is admitted, in which order blocks take
//! it, what is evicted and when it expires.
//!
//! - **Priority** is what a transaction pays the proposer (fee plus tip, rao); blocks take
//!   the best-paying ready transaction first (ties: first admitted), each sender's in
//!   nonce order, stopping at a gap.
//! - **Caps**: at most [`SENDER_MAX_TXS`] pending per sender, of which at most
//!   [`FEE_FREE_PER_SENDER`] fee-free (weights, serve: they cost nothing, so a key with no
//!   balance may send them); nonces at most [`MAX_NONCE_GAP`] ahead.
//! - **Full pool**: a newcomer that pays more than the cheapest pending transaction evicts
//!   it (the cheapest sender's last nonce, so no gap opens; among equals the oldest), else
//!   it is refused.
//! - **Age**: a transaction pending longer than [`TX_TTL`] is dropped as `expired`.
//! - **Gaps**: a transaction a block rejected as a future nonce is parked: blocks skip
//!   its sender until a lower nonce of that sender is admitted (so a run of nonces that
//!   can never start costs no block any work until it expires).

use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use agora_core::genesis::ChainParams;
use agora_core::ledger::{self, TxError};
use agora_core::state::Account;
use agora_core::{AccountId, Hash, SignedTransaction};

use super::msg::{PoolStatus, SubmitError};

/// Most transactions held at once. Overflow policy: the cheapest is evicted for a better
/// paying newcomer, else the newcomer is refused.
pub const MEMPOOL_MAX_TXS: usize = 20_000;
/// Most pending transactions per sender. Overflow policy: refused.
pub const SENDER_MAX_TXS: usize = 256;
/// Most pending fee-free transactions per sender. Overflow policy: refused.
pub const FEE_FREE_PER_SENDER: usize = 4;
/// How far ahead of the account's next nonce a pending transaction may be.
pub const MAX_NONCE_GAP: u64 = 256;
/// How long a transaction may wait. Overflow policy: dropped as `expired`.
pub const TX_TTL: Duration = Duration::from_secs(600);
/// How many dropped transactions' reasons are remembered. Overflow policy: oldest forgotten.
pub const DROPPED_MAX: usize = 10_000;

struct Entry {
    tx: SignedTransaction,
    hash: Hash,
    /// Fee plus tip, rao.
    priority: u64,
    fee_free: bool,
    admitted: Instant,
    /// Admission order (ties in priority).
    seq: u64,
    /// A block found its nonce in the future: skipped until the gap may have filled.
    parked: bool,
}

pub struct Pool {
    params: ChainParams,
    max_txs: usize,
    by_sender: BTreeMap<AccountId, BTreeMap<u64, Entry>>,
    by_hash: HashMap<Hash, (AccountId, u64)>,
    dropped: HashMap<Hash, PoolStatus>,
    dropped_order: VecDeque<Hash>,
    next_seq: u64,
}

impl Pool {
    pub fn new(params: ChainParams) -> Self {
        Self::with_capacity(params, MEMPOOL_MAX_TXS)
    }

    pub fn with_capacity(params: ChainParams, max_txs: usize) -> Self {
        Pool {
            params,
            max_txs,
            by_sender: BTreeMap::new(),
            by_hash: HashMap::new(),
            dropped: HashMap::new(),
            dropped_order: VecDeque::new(),
            next_seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn status(&self, hash: &Hash) -> Option<PoolStatus> {
        if self.by_hash.contains_key(hash) {
            return Some(PoolStatus::Pending);
        }
        self.dropped.get(hash).cloned()
    }

    /// Checks that need no state, in the ledger's order: size/format, chain id, amount,
    /// signature.
    pub fn precheck(&self, bytes: &[u8]) -> Result<(SignedTransaction, usize), SubmitError> {
        let stx = SignedTransaction::decode(bytes).map_err(TxError::from)?;
        ledger::check_stateless(&self.params, &stx, bytes.len())?;
        if !stx.verify_signature() {
            return Err(TxError::BadSignature.into());
        }
        Ok((stx, bytes.len()))
    }

    /// Admit a prechecked transaction given its sender's committed `account`.
    pub fn admit(
        &mut self,
        stx: SignedTransaction,
        len: usize,
        account: &Account,
        now: Instant,
    ) -> Result<Hash, SubmitError> {
        let hash = stx.hash();
        if self.by_hash.contains_key(&hash) {
            return Err(SubmitError::AlreadyPending);
        }
        let nonce = stx.tx.nonce;
        if nonce < account.nonce {
            return Err(TxError::StaleNonce {
                expected: account.nonce,
                got: nonce,
            }
            .into());
        }
        if nonce > account.nonce.saturating_add(MAX_NONCE_GAP) {
            return Err(TxError::FutureNonce {
                expected: account.nonce,
                got: nonce,
            }
            .into());
        }
        let (total, fee) = ledger::total_cost(&self.params, &stx, len)?;
        if total > account.free {
            return Err(TxError::InsufficientFunds {
                needed: total,
                available: account.free,
            }
            .into());
        }
        let signer = stx.tx.signer;
        let fee_free = stx.tx.call.is_fee_free();
        if let Some(queue) = self.by_sender.get(&signer) {
            if queue.contains_key(&nonce) {
                return Err(SubmitError::NonceTaken { nonce });
            }
            if queue.len() >= SENDER_MAX_TXS {
                return Err(SubmitError::SenderFull {
                    max: SENDER_MAX_TXS,
                });
            }
            if fee_free && queue.values().filter(|e| e.fee_free).count() >= FEE_FREE_PER_SENDER {
                return Err(SubmitError::SenderFull {
                    max: FEE_FREE_PER_SENDER,
                });
            }
        }
        let priority = fee.saturating_add(stx.tx.tip);
        if self.by_hash.len() >= self.max_txs {
            match self.cheapest() {
                Some((victim, p)) if p < priority => {
                    self.remove(&victim);
                    self.record(
                        victim,
                        "evicted",
                        "evicted from a full mempool by a better-paying transaction".into(),
                    );
                }
                _ => return Err(SubmitError::Full { max: self.max_txs }),
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_sender.entry(signer).or_default().insert(
            nonce,
            Entry {
                tx: stx,
                hash,
                priority,
                fee_free,
                admitted: now,
                seq,
                parked: false,
            },
        );
        // A lower nonce may fill the gap its sender's parked transactions wait on.
        if let Some(q) = self.by_sender.get_mut(&signer) {
            for e in q.range_mut(nonce..).map(|(_, e)| e) {
                e.parked = false;
            }
        }
        self.by_hash.insert(hash, (signer, nonce));
        self.dropped.remove(&hash);
        Ok(hash)
    }

    /// The eviction candidate: among each sender's last pending nonce, the lowest paying,
    /// the oldest among equals.
    fn cheapest(&self) -> Option<(Hash, u64)> {
        self.by_sender
            .values()
            .filter_map(|q| q.values().next_back())
            .min_by_key(|e| (e.priority, e.seq))
            .map(|e| (e.hash, e.priority))
    }

    /// Up to `max` ready transactions, best paying first, each sender's in nonce order
    /// from its lowest pending nonce up to the first gap.
    pub fn take(&self, max: usize) -> Vec<SignedTransaction> {
        // (priority, earlier first, sender, nonce) of each sender's next candidate.
        let mut heap: BinaryHeap<(u64, std::cmp::Reverse<u64>, AccountId, u64)> = self
            .by_sender
            .iter()
            .filter_map(|(s, q)| {
                q.iter()
                    .next()
                    .filter(|(_, e)| !e.parked)
                    .map(|(n, e)| (e.priority, std::cmp::Reverse(e.seq), *s, *n))
            })
            .collect();
        let mut out = Vec::new();
        while out.len() < max {
            let Some((_, _, sender, nonce)) = heap.pop() else {
                break;
            };
            let Some(queue) = self.by_sender.get(&sender) else {
                continue;
            };
            if let Some(e) = queue.get(&nonce) {
                out.push(e.tx.clone());
            }
            let next = nonce.saturating_add(1);
            if let Some(e) = queue.get(&next) {
                heap.push((e.priority, std::cmp::Reverse(e.seq), sender, next));
            }
        }
        out
    }

    /// A block was committed: forget what it included, drop what it rejected (a future
    /// nonce may still become valid), what its nonces made stale, and what expired.
    pub fn block_done(
        &mut self,
        included: &[Hash],
        rejected: &[(Hash, TxError)],
        nonces: &[(AccountId, u64)],
        now: Instant,
    ) -> usize {
        for h in included {
            self.remove(h);
        }
        let mut dropped = 0;
        for (h, e) in rejected {
            if matches!(e, TxError::FutureNonce { .. }) {
                if let Some((sender, nonce)) = self.by_hash.get(h) {
                    if let Some(entry) = self
                        .by_sender
                        .get_mut(sender)
                        .and_then(|q| q.get_mut(nonce))
                    {
                        entry.parked = true;
                    }
                }
                continue;
            }
            if self.remove(h) {
                dropped += 1;
            }
            self.record(*h, e.kind(), e.to_string());
        }
        for (sender, next) in nonces {
            // The sender's nonce moved (another proposer may have included the missing
            // transaction): what was parked behind the gap may be ready now.
            if let Some(q) = self.by_sender.get_mut(sender) {
                for e in q.values_mut() {
                    e.parked = false;
                }
            }
            let stale: Vec<(u64, Hash)> = self
                .by_sender
                .get(sender)
                .map(|q| q.range(..*next).map(|(n, e)| (*n, e.hash)).collect())
                .unwrap_or_default();
            for (nonce, h) in stale {
                self.remove(&h);
                let e = TxError::StaleNonce {
                    expected: *next,
                    got: nonce,
                };
                self.record(h, e.kind(), e.to_string());
            }
        }
        let expired: Vec<Hash> = self
            .by_sender
            .values()
            .flat_map(|q| q.values())
            .filter(|e| now.saturating_duration_since(e.admitted) > TX_TTL)
            .map(|e| e.hash)
            .collect();
        for h in expired {
            self.remove(&h);
            self.record(
                h,
                "expired",
                format!("pending for more than {} s", TX_TTL.as_secs()),
            );
            dropped += 1;
        }
        dropped
    }

    fn remove(&mut self, hash: &Hash) -> bool {
        let Some((sender, nonce)) = self.by_hash.remove(hash) else {
            return false;
        };
        if let Some(q) = self.by_sender.get_mut(&sender) {
            q.remove(&nonce);
            if q.is_empty() {
                self.by_sender.remove(&sender);
            }
        }
        true
    }

    fn record(&mut self, hash: Hash, kind: &'static str, reason: String) {
        if self.dropped.len() >= DROPPED_MAX {
            if let Some(old) = self.dropped_order.pop_front() {
                self.dropped.remove(&old);
            }
        }
        self.dropped
            .insert(hash, PoolStatus::Dropped { kind, reason });
        self.dropped_order.push_back(hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_core::{Call, Genesis, Keypair, Transaction};

    fn params() -> ChainParams {
        Genesis::dev().params()
    }

    fn tx(key: &Keypair, nonce: u64, call: Call, tip: u64) -> (SignedTransaction, usize) {
        let stx = Transaction {
            chain_id: params().chain_id,
            signer: key.account(),
            nonce,
            call,
            tip,
        }
        .sign(key);
        let len = stx.encoded_len();
        (stx, len)
    }

    fn transfer(key: &Keypair, nonce: u64, tip: u64) -> (SignedTransaction, usize) {
        let dest = Keypair::dev("dest").account();
        tx(key, nonce, Call::Transfer { dest, amount: 1 }, tip)
    }

    fn weights(key: &Keypair, nonce: u64) -> (SignedTransaction, usize) {
        let call = Call::SetWeights {
            netuid: 1,
            uids: vec![0],
            values: vec![1],
            version_key: 0,
        };
        tx(key, nonce, call, 0)
    }

    fn rich() -> Account {
        Account {
            free: 1_000_000_000_000,
            nonce: 0,
        }
    }

    #[test]
    fn blocks_take_the_best_paying_first_in_nonce_order() {
        let mut p = Pool::new(params());
        let now = Instant::now();
        let (a, b) = (Keypair::dev("a"), Keypair::dev("b"));
        for n in 0..3 {
            let (t, l) = transfer(&a, n, 0);
            p.admit(t, l, &rich(), now).unwrap();
        }
        let (t, l) = transfer(&b, 0, 1_000_000);
        p.admit(t, l, &rich(), now).unwrap();
        let taken = p.take(10);
        assert_eq!(taken[0].tx.signer, b.account(), "the tip goes first");
        let a_nonces: Vec<u64> = taken
            .iter()
            .filter(|t| t.tx.signer == a.account())
            .map(|t| t.tx.nonce)
            .collect();
        assert_eq!(a_nonces, [0, 1, 2]);
        assert_eq!(p.take(2).len(), 2);
    }

    #[test]
    fn fee_free_spam_is_capped_and_evicted_by_paying_transactions() {
        let mut p = Pool::with_capacity(params(), 8);
        let now = Instant::now();
        let broke = Account { free: 0, nonce: 0 };
        let spammer = Keypair::dev("spammer");
        for n in 0..FEE_FREE_PER_SENDER as u64 {
            let (t, l) = weights(&spammer, n);
            p.admit(t, l, &broke, now).unwrap();
        }
        let (t, l) = weights(&spammer, 4);
        assert!(matches!(
            p.admit(t, l, &broke, now),
            Err(SubmitError::SenderFull { .. })
        ));
        // Fill the pool with other broke keys' fee-free calls.
        for i in 0..4 {
            let (t, l) = weights(&Keypair::dev(&format!("s{i}")), 0);
            p.admit(t, l, &broke, now).unwrap();
        }
        assert_eq!(p.len(), 8);
        // Another free one is refused; a paying transfer evicts the oldest cheapest.
        let (t, l) = weights(&Keypair::dev("late"), 0);
        assert!(matches!(
            p.admit(t, l, &broke, now),
            Err(SubmitError::Full { .. })
        ));
        let honest = Keypair::dev("honest");
        let (t, l) = transfer(&honest, 0, 0);
        let h = p.admit(t, l, &rich(), now).unwrap();
        assert_eq!(p.len(), 8);
        assert_eq!(p.take(1)[0].hash(), h, "the paying transfer goes first");
        let evicted: Vec<_> = p
            .dropped
            .values()
            .filter(|s| {
                matches!(
                    s,
                    PoolStatus::Dropped {
                        kind: "evicted",
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(evicted.len(), 1);
    }

    #[test]
    fn a_run_that_cannot_start_is_parked_until_its_gap_fills() {
        let mut p = Pool::new(params());
        let now = Instant::now();
        let a = Keypair::dev("a");
        let (t1, l1) = transfer(&a, 1, 0);
        let h1 = p.admit(t1, l1, &rich(), now).unwrap();
        assert_eq!(p.take(10).len(), 1, "not known yet to be blocked");
        let gap = TxError::FutureNonce {
            expected: 0,
            got: 1,
        };
        p.block_done(&[], &[(h1, gap)], &[], now);
        assert!(p.take(10).is_empty(), "parked: no block works on it");
        let (t0, l0) = transfer(&a, 0, 0);
        p.admit(t0, l0, &rich(), now).unwrap();
        let nonces: Vec<u64> = p.take(10).iter().map(|t| t.tx.nonce).collect();
        assert_eq!(nonces, [0, 1], "the gap filled: both go");

        // The gap can also fill by another proposer including the missing nonce: the
        // committed block moves the sender's nonce and the parked run is ready again.
        let b = Keypair::dev("b");
        let (t2, l2) = transfer(&b, 1, 0);
        let h2 = p.admit(t2, l2, &rich(), now).unwrap();
        p.block_done(
            &[],
            &[(
                h2,
                TxError::FutureNonce {
                    expected: 0,
                    got: 1,
                },
            )],
            &[],
            now,
        );
        assert!(p.take(10).iter().all(|t| t.tx.signer != b.account()));
        p.block_done(&[], &[], &[(b.account(), 1)], now);
        assert!(
            p.take(10).iter().any(|t| t.hash() == h2),
            "ready after b's nonce moved"
        );
    }

    #[test]
    fn transactions_expire() {
        let mut p = Pool::new(params());
        let then = Instant::now();
        let (t, l) = transfer(&Keypair::dev("a"), 5, 0);
        let h = p.admit(t, l, &rich(), then).unwrap();
        assert_eq!(p.block_done(&[], &[], &[], then + TX_TTL / 2), 0);
        assert_eq!(p.status(&h), Some(PoolStatus::Pending));
        assert_eq!(p.block_done(&[], &[], &[], then + TX_TTL * 2), 1);
        assert!(matches!(
            p.status(&h),
            Some(PoolStatus::Dropped {
                kind: "expired",
                ..
            })
        ));
        assert!(p.is_empty());
    }
}
