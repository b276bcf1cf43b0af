use std::time::Instant;

use actix::{Actor, ActorFutureExt, Context, Handler, ResponseActFuture, WrapFuture};
use agora_core::genesis::ChainParams;
use agora_core::SignedTransaction;
use tracing::debug;

use super::msg::*;
use super::pool::Pool;
use crate::actors::chain::ChainHandle;

pub struct MempoolActor {
    pool: Pool,
    chain: ChainHandle,
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
            pool: Pool::new(params),
            chain,
            watcher: None,
            gossip: None,
        }
    }
}

impl Actor for MempoolActor {
    type Context = Context<Self>;
}

impl Handler<Submit> for MempoolActor {
    type Result = ResponseActFuture<Self, Result<agora_core::Hash, SubmitError>>;

    fn handle(&mut self, msg: Submit, _: &mut Self::Context) -> Self::Result {
        let checked = self.pool.precheck(&msg.bytes);
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
                let signer = stx.tx.signer;
                let nonce = stx.tx.nonce;
                let hash = act.pool.admit(stx, len, &account, Instant::now())?;
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
        self.pool.take(msg.max)
    }
}

impl Handler<BlockDone> for MempoolActor {
    type Result = ();

    fn handle(&mut self, msg: BlockDone, _: &mut Self::Context) {
        let dropped =
            self.pool
                .block_done(&msg.included, &msg.rejected, &msg.nonces, Instant::now());
        if dropped > 0 {
            debug!(dropped, "mempool dropped transactions");
        }
    }
}

impl Handler<Status> for MempoolActor {
    type Result = Option<PoolStatus>;

    fn handle(&mut self, msg: Status, _: &mut Self::Context) -> Self::Result {
        self.pool.status(&msg.0)
    }
}

impl Handler<Size> for MempoolActor {
    type Result = usize;

    fn handle(&mut self, _: Size, _: &mut Self::Context) -> usize {
        self.pool.len()
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
