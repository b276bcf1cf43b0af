use std::collections::{BTreeMap, HashMap, VecDeque};

use actix::{Actor, ActorFutureExt, Context, Handler, ResponseActFuture, WrapFuture};
use agora_core::genesis::ChainParams;
use agora_core::ledger::{self, TxError};
use agora_core::{AccountId, Hash, SignedTransaction};
use tracing::{debug, warn};

use super::msg::*;
use crate::actors::chain::ChainHandle;

/// Most transactions held at once. Overflow policy: new submissions are refused.
pub const MEMPOOL_MAX_TXS: usize = 20_000;
/// Most pending transactions per sender. Overflow policy: refused.
pub const SENDER_MAX_TXS: usize = 256;
/// How far ahead of the account's next nonce a pending transaction may be.
pub const MAX_NONCE_GAP: u64 = 256;
/// How many dropped transactions' reasons are remembered. Overflow policy: oldest forgotten.
pub const DROPPED_MAX: usize = 10_000;

struct Entry {
    tx: SignedTransaction,
    hash: Hash,
}

pub struct MempoolActor {
    params: ChainParams,
    chain: ChainHandle,
    by_sender: BTreeMap<AccountId, BTreeMap<u64, Entry>>,
    by_hash: HashMap<Hash, (AccountId, u64)>,
    dropped: HashMap<Hash, PoolStatus>,
    dropped_order: VecDeque<Hash>,
    /// Told of each admission (instant sealing). Notices go through the watcher's mailbox;
    /// a stopped watcher is dropped.
    watcher: Option<actix::Recipient<TxAdmitted>>,
    /// Told the bytes of each admitted local transaction (the network bridge gossips
    /// them). Goes through its mailbox.
    gossip: Option<actix::Recipient<GossipTx>>,
}

impl MempoolActor {
    pub fn new(params: ChainParams, chain: ChainHandle) -> Self {
        MempoolActor {
            params,
            chain,
            by_sender: BTreeMap::new(),
            by_hash: HashMap::new(),
            dropped: HashMap::new(),
            dropped_order: VecDeque::new(),
            watcher: None,
            gossip: None,
        }
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

    fn record_drop(&mut self, hash: Hash, error: &TxError) {
        if self.dropped.len() >= DROPPED_MAX {
            if let Some(old) = self.dropped_order.pop_front() {
                self.dropped.remove(&old);
            }
        }
        self.dropped.insert(
            hash,
            PoolStatus::Dropped {
                kind: error.kind(),
                reason: error.to_string(),
            },
        );
        self.dropped_order.push_back(hash);
    }

    /// Checks that need no state, in the ledger's order: size/format, chain id, signature.
    fn precheck(&self, bytes: &[u8]) -> Result<(SignedTransaction, usize), SubmitError> {
        let stx = SignedTransaction::decode(bytes).map_err(TxError::from)?;
        ledger::check_stateless(&self.params, &stx, bytes.len())?;
        if !stx.verify_signature() {
            return Err(TxError::BadSignature.into());
        }
        Ok((stx, bytes.len()))
    }
}

impl Actor for MempoolActor {
    type Context = Context<Self>;
}

impl Handler<Submit> for MempoolActor {
    type Result = ResponseActFuture<Self, Result<Hash, SubmitError>>;

    fn handle(&mut self, msg: Submit, _: &mut Self::Context) -> Self::Result {
        let checked = self.precheck(&msg.bytes);
        let gossip = (msg.origin == Origin::Local).then_some(msg.bytes);
        let chain = self.chain.clone();
        let signer = checked.as_ref().map(|(s, _)| s.tx.signer).ok();
        Box::pin(
            async move {
                match signer {
                    Some(s) => Some(chain.account(s).await),
                    None => None,
                }
            }
            .into_actor(self)
            .map(move |account, act, _| {
                let (stx, len) = checked?;
                let account = match account {
                    Some(Ok(a)) => a,
                    // The chain actor is gone or failed: the node is stopping.
                    _ => return Err(SubmitError::Stopping),
                };
                let hash = stx.hash();
                if act.by_hash.contains_key(&hash) {
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
                let (total, _) = ledger::total_cost(&act.params, &stx, len)?;
                if total > account.free {
                    return Err(TxError::InsufficientFunds {
                        needed: total,
                        available: account.free,
                    }
                    .into());
                }
                if act.by_hash.len() >= MEMPOOL_MAX_TXS {
                    return Err(SubmitError::Full {
                        max: MEMPOOL_MAX_TXS,
                    });
                }
                let queue = act.by_sender.entry(stx.tx.signer).or_default();
                if queue.contains_key(&nonce) {
                    return Err(SubmitError::NonceTaken { nonce });
                }
                if queue.len() >= SENDER_MAX_TXS {
                    return Err(SubmitError::SenderFull {
                        max: SENDER_MAX_TXS,
                    });
                }
                let signer = stx.tx.signer;
                queue.insert(nonce, Entry { tx: stx, hash });
                act.by_hash.insert(hash, (signer, nonce));
                act.dropped.remove(&hash);
                debug!(%hash, %signer, nonce, "transaction admitted");
                if let (Some(g), Some(bytes)) = (&act.gossip, gossip) {
                    g.do_send(GossipTx(bytes));
                }
                if let Some(w) = &act.watcher {
                    if w.connected() {
                        w.do_send(TxAdmitted);
                    } else {
                        act.watcher = None;
                    }
                }
                Ok(hash)
            }),
        )
    }
}

impl Handler<Take> for MempoolActor {
    type Result = Vec<SignedTransaction>;

    fn handle(&mut self, msg: Take, _: &mut Self::Context) -> Self::Result {
        let mut out = Vec::new();
        'senders: for queue in self.by_sender.values() {
            let mut expected = None;
            for (nonce, entry) in queue {
                if out.len() >= msg.max {
                    break 'senders;
                }
                if expected.is_some_and(|e| e != *nonce) {
                    break; // a gap: later nonces wait for the missing one
                }
                out.push(entry.tx.clone());
                expected = Some(nonce.saturating_add(1));
            }
        }
        out
    }
}

impl Handler<BlockDone> for MempoolActor {
    type Result = ();

    fn handle(&mut self, msg: BlockDone, _: &mut Self::Context) {
        for h in &msg.included {
            self.remove(h);
        }
        for (h, e) in &msg.rejected {
            // A future nonce may become valid once the gap fills; everything else is final.
            if matches!(e, TxError::FutureNonce { .. }) {
                continue;
            }
            if self.remove(h) {
                warn!(hash = %h, reason = %e, "dropped transaction");
            }
            self.record_drop(*h, e);
        }
        for (sender, next) in msg.nonces {
            let stale: Vec<(u64, Hash)> = self
                .by_sender
                .get(&sender)
                .map(|q| q.range(..next).map(|(n, e)| (*n, e.hash)).collect())
                .unwrap_or_default();
            for (nonce, h) in stale {
                self.remove(&h);
                self.record_drop(
                    h,
                    &TxError::StaleNonce {
                        expected: next,
                        got: nonce,
                    },
                );
            }
        }
    }
}

impl Handler<Status> for MempoolActor {
    type Result = Option<PoolStatus>;

    fn handle(&mut self, msg: Status, _: &mut Self::Context) -> Self::Result {
        if self.by_hash.contains_key(&msg.0) {
            return Some(PoolStatus::Pending);
        }
        self.dropped.get(&msg.0).cloned()
    }
}

impl Handler<Size> for MempoolActor {
    type Result = usize;

    fn handle(&mut self, _: Size, _: &mut Self::Context) -> usize {
        self.by_hash.len()
    }
}

impl Handler<WatchAdmissions> for MempoolActor {
    type Result = ();

    fn handle(&mut self, msg: WatchAdmissions, _: &mut Self::Context) {
        self.watcher = Some(msg.0);
    }
}

impl Handler<SetGossip> for MempoolActor {
    type Result = ();

    fn handle(&mut self, msg: SetGossip, _: &mut Self::Context) {
        self.gossip = Some(msg.0);
    }
}
