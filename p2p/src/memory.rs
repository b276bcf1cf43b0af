//! The in-process network: every joined node reaches every other one directly, with no
//! sockets. Gossip goes to all other members (verdicts are accepted and ignored: nothing
//! is forwarded further), requests go to the named peer. Links can be cut and mended to
//! test partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

use crate::protocol::{SyncRequest, SyncResponse, Topic};
use crate::service::*;

#[derive(Default)]
struct Hub {
    members: BTreeMap<PeerId, mpsc::Sender<NetEvent>>,
    cut: BTreeSet<(PeerId, PeerId)>,
    replies: BTreeMap<u64, oneshot::Sender<SyncResponse>>,
    query_replies: BTreeMap<u64, oneshot::Sender<Vec<u8>>>,
    next_reply: u64,
    banned: BTreeSet<(PeerId, PeerId)>,
}

impl Hub {
    fn linked(&self, a: PeerId, b: PeerId) -> bool {
        !self.cut.contains(&(a, b))
            && !self.cut.contains(&(b, a))
            && !self.banned.contains(&(a, b))
            && !self.banned.contains(&(b, a))
    }
}

/// Shared by all members of one in-process network.
#[derive(Clone, Default)]
pub struct MemoryHub(Arc<Mutex<Hub>>);

impl MemoryHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Join as `peer`; returns the member's handle and its events.
    pub fn join(&self, peer: PeerId) -> (MemoryNetwork, Events) {
        let (tx, rx) = mpsc::channel(NET_EVENTS_MAX);
        let mut hub = self.lock();
        for (&other, sender) in &hub.members {
            let _ = sender.try_send(NetEvent::PeerConnected(peer));
            let _ = tx.try_send(NetEvent::PeerConnected(other));
        }
        hub.members.insert(peer, tx);
        (
            MemoryNetwork {
                hub: self.clone(),
                me: peer,
            },
            rx,
        )
    }

    /// Cut (or with `false` mend) the link between `a` and `b`.
    pub fn set_link(&self, a: PeerId, b: PeerId, up: bool) {
        let mut hub = self.lock();
        if up {
            hub.cut.remove(&(a, b));
            hub.cut.remove(&(b, a));
        } else {
            hub.cut.insert((a, b));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hub> {
        // A panic while holding the lock poisons it; the hub's data stays consistent
        // (every operation is a single insert or lookup), so carry on.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone)]
pub struct MemoryNetwork {
    hub: MemoryHub,
    me: PeerId,
}

impl MemoryNetwork {
    /// Deliver a request (`event`, filed under a fresh reply id in `slot`) to `peer` and
    /// wait for its answer, at most 20 s.
    async fn ask<R>(
        &self,
        peer: PeerId,
        slot: fn(&mut Hub) -> &mut BTreeMap<u64, oneshot::Sender<R>>,
        event: impl FnOnce(PeerId, ReplyId) -> NetEvent,
    ) -> Result<R, NetError> {
        let fail = |reason: &str| NetError::Request {
            peer: peer.to_string(),
            reason: reason.to_string(),
        };
        let rx = {
            let mut hub = self.hub.lock();
            if !hub.linked(self.me, peer) {
                return Err(fail("unreachable"));
            }
            let Some(sender) = hub.members.get(&peer).cloned() else {
                return Err(fail("unknown peer"));
            };
            hub.next_reply += 1;
            let reply = ReplyId(hub.next_reply);
            let (tx, rx) = oneshot::channel();
            slot(&mut hub).insert(reply.0, tx);
            if sender.try_send(event(self.me, reply)).is_err() {
                slot(&mut hub).remove(&reply.0);
                return Err(fail("peer is overloaded"));
            }
            rx
        };
        match tokio::time::timeout(std::time::Duration::from_secs(20), rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(fail("no answer")),
            Err(_) => Err(fail("timed out")),
        }
    }
}

#[async_trait::async_trait]
impl Network for MemoryNetwork {
    fn local_peer_id(&self) -> PeerId {
        self.me
    }

    async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), NetError> {
        if data.len() > topic.max_bytes() {
            return Err(NetError::Publish(format!(
                "{} bytes, the topic allows {}",
                data.len(),
                topic.max_bytes()
            )));
        }
        let mut hub = self.hub.lock();
        hub.next_reply += 1;
        let id = MessageId(hub.next_reply.to_le_bytes().to_vec());
        for (&peer, sender) in &hub.members {
            if peer != self.me && hub.linked(self.me, peer) {
                let _ = sender.try_send(NetEvent::Gossip {
                    topic,
                    from: self.me,
                    id: id.clone(),
                    data: data.clone(),
                });
            }
        }
        Ok(())
    }

    fn report(&self, _: MessageId, _: PeerId, _: Verdict) {}

    async fn request(&self, peer: PeerId, request: SyncRequest) -> Result<SyncResponse, NetError> {
        self.ask(
            peer,
            |hub| &mut hub.replies,
            |me, reply| NetEvent::Request {
                peer: me,
                request,
                reply,
            },
        )
        .await
    }

    fn respond(&self, reply: ReplyId, response: SyncResponse) {
        if let Some(tx) = self.hub.lock().replies.remove(&reply.0) {
            let _ = tx.send(response);
        }
    }

    fn ban(&self, peer: PeerId) {
        self.hub.lock().banned.insert((self.me, peer));
    }

    async fn query(&self, peer: PeerId, data: Vec<u8>) -> Result<Vec<u8>, NetError> {
        self.ask(
            peer,
            |hub| &mut hub.query_replies,
            |me, reply| NetEvent::Query {
                peer: me,
                data,
                reply,
            },
        )
        .await
    }

    fn answer(&self, reply: ReplyId, data: Vec<u8>) {
        if let Some(tx) = self.hub.lock().query_replies.remove(&reply.0) {
            let _ = tx.send(data);
        }
    }

    async fn peers(&self) -> Vec<PeerInfo> {
        let hub = self.hub.lock();
        hub.members
            .keys()
            .filter(|&&p| p != self.me && hub.linked(self.me, p))
            .map(|p| PeerInfo {
                peer_id: p.to_string(),
                addresses: Vec::new(),
                score: None,
            })
            .collect()
    }
}
