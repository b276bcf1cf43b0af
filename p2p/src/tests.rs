//! One conformance suite for both networks: gossip reaches the others (and is forwarded
//! once accepted), requests get answers, bans cut a peer off.

use std::time::Duration;

use agora_core::Hash;
use tokio::time::{timeout, Instant};

use crate::*;

/// Wait for a gossip event on `topic` with `data`, answering requests for status and
/// accepting gossip (so it is forwarded) on the way.
async fn expect_gossip(
    net: &dyn Network,
    events: &mut Events,
    topic: Topic,
    data: &[u8],
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, events.recv()).await {
            Ok(Some(NetEvent::Gossip {
                topic: t,
                from,
                id,
                data: d,
            })) => {
                net.report(id, from, Verdict::Accept);
                if t == topic && d == data {
                    return true;
                }
            }
            Ok(Some(NetEvent::Request { reply, .. })) => net.respond(reply, status(1)),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return false,
        }
    }
}

fn status(height: u64) -> SyncResponse {
    SyncResponse::Status {
        height,
        head: Hash([height as u8; 32]),
        genesis: Hash([9; 32]),
    }
}

/// Keep publishing until `receiver` hears it (a fresh mesh loses early messages).
async fn publish_until_heard(
    sender: &dyn Network,
    receiver: &dyn Network,
    events: &mut Events,
    topic: Topic,
    data: &[u8],
) -> bool {
    for _ in 0..50 {
        sender.publish(topic, data.to_vec()).await.unwrap();
        if expect_gossip(receiver, events, topic, data, Duration::from_millis(300)).await {
            return true;
        }
    }
    false
}

/// Answer requests on `events` with `status(height)` until the task is dropped.
fn serve_status(
    net: impl Network + Clone,
    mut events: Events,
    height: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            match e {
                NetEvent::Request { reply, .. } => net.respond(reply, status(height)),
                NetEvent::Gossip { id, from, .. } => net.report(id, from, Verdict::Accept),
                _ => {}
            }
        }
    })
}

fn seed(i: u8) -> [u8; 32] {
    [i; 32]
}

async fn libp2p_node(i: u8, bootnodes: Vec<Multiaddr>) -> (Libp2pNetwork, Events, Multiaddr) {
    let cfg = NetConfig {
        chain_id: 5,
        genesis_hash: Hash([9; 32]),
        key_seed: seed(i),
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        bootnodes,
        mdns: false,
        local: true,
    };
    let (net, events, addrs) = Libp2pNetwork::start(cfg).await.unwrap();
    let addr = addrs[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(net.local_peer_id()));
    (net, events, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libp2p_gossip_forwarding_requests_and_bans() {
    let (a, mut a_events, a_addr) = libp2p_node(1, vec![]).await;
    let (b, b_events, _) = libp2p_node(2, vec![a_addr.clone()]).await;
    assert_eq!(
        b.local_peer_id(),
        peer_id_from_seed(seed(2)).unwrap(),
        "identity is the seed's"
    );
    // b -> a directly.
    assert!(publish_until_heard(&b, &a, &mut a_events, Topic::Consensus, b"vote from b").await);
    // A third node that knows only a: b's gossip reaches it once a accepts and forwards
    // it (or once c meets b through identify and kademlia).
    let (c, mut c_events, _) = libp2p_node(3, vec![a_addr]).await;
    let a_task = serve_status(a.clone(), a_events, 7);
    assert!(publish_until_heard(&b, &c, &mut c_events, Topic::Transactions, b"tx from b").await);
    // Request-response: c asks a for its status.
    let answer = c
        .request(a.local_peer_id(), SyncRequest::Status)
        .await
        .unwrap();
    assert_eq!(answer, status(7));
    // A large consensus message (a proposal carrying a block) passes the topic's limit.
    let big = vec![7u8; 300 * 1024];
    assert!(publish_until_heard(&b, &c, &mut c_events, Topic::Consensus, &big).await);
    // Ban: c cuts a off; requests to it fail from then on.
    c.ban(a.local_peer_id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c
        .request(a.local_peer_id(), SyncRequest::Status)
        .await
        .is_err());
    let peers = c.peers().await;
    assert!(
        peers
            .iter()
            .all(|p| p.peer_id != a.local_peer_id().to_string()),
        "{peers:?}"
    );
    a_task.abort();
    drop(b_events);
}

#[tokio::test]
async fn memory_gossip_requests_partitions_and_bans() {
    let hub = MemoryHub::new();
    let ids: Vec<PeerId> = (1..=3)
        .map(|i| peer_id_from_seed(seed(i)).unwrap())
        .collect();
    let (a, a_events) = hub.join(ids[0]);
    let (b, mut b_events) = hub.join(ids[1]);
    let (c, mut c_events) = hub.join(ids[2]);
    let _a_task = serve_status(a.clone(), a_events, 3);
    assert!(publish_until_heard(&a, &b, &mut b_events, Topic::Blocks, b"head").await);
    assert_eq!(
        b.request(ids[0], SyncRequest::Status).await.unwrap(),
        status(3)
    );
    // A message over the topic's limit is refused at publish.
    assert!(a
        .publish(Topic::Blocks, vec![0; Topic::Blocks.max_bytes() + 1])
        .await
        .is_err());
    // Partition a from c: c hears nothing from a, then everything once mended.
    hub.set_link(ids[0], ids[2], false);
    a.publish(Topic::Consensus, b"cut".to_vec()).await.unwrap();
    assert!(
        !expect_gossip(
            &c,
            &mut c_events,
            Topic::Consensus,
            b"cut",
            Duration::from_millis(200)
        )
        .await
    );
    assert!(c.request(ids[0], SyncRequest::Status).await.is_err());
    hub.set_link(ids[0], ids[2], true);
    assert!(publish_until_heard(&a, &c, &mut c_events, Topic::Consensus, b"mended").await);
    c.ban(ids[0]);
    assert!(c.request(ids[0], SyncRequest::Status).await.is_err());
    assert_eq!(c.peers().await.len(), 1);
}

/// A miner on `net`: every query goes through the guard; admitted ones are answered with
/// the body reversed, signed by the miner's key.
fn serve_queries(
    net: impl Network + Clone,
    mut events: Events,
    miner: agora_core::Keypair,
    validator: agora_core::AccountId,
) -> tokio::task::JoinHandle<()> {
    use crate::query::*;
    tokio::spawn(async move {
        let cfg = GuardConfig {
            chain_id: 5,
            netuid: 1,
            task: "echo",
            window_blocks: 10,
            per_caller_per_second: 100,
            queue_max: 8,
            callers_max: 64,
        };
        let mut guard = Guard::new(cfg, 0);
        let admission = AllowList(vec![validator]);
        while let Some(e) = events.recv().await {
            match e {
                NetEvent::Query { peer, data, reply } => {
                    let answer = match guard.check(&data, Some(&peer), 3, 1_000, &admission) {
                        Ok(q) => {
                            let body: Vec<u8> = q.body.iter().rev().copied().collect();
                            guard.done();
                            QueryAnswer::Answered(SignedResponse::sign(&q, body, &miner))
                        }
                        Err(refusal) => QueryAnswer::Refused(refusal),
                    };
                    net.answer(reply, answer.encode().unwrap());
                }
                NetEvent::Gossip { id, from, .. } => net.report(id, from, Verdict::Accept),
                _ => {}
            }
        }
    })
}

/// One validator queries one miner: an answer it can verify, and typed refusals.
async fn query_round_trip(
    validator_net: &dyn Network,
    miner_peer: PeerId,
    miner: &agora_core::Keypair,
    validator: &agora_core::Keypair,
) {
    use crate::query::*;
    let q = SignedQuery::sign(5, 1, "echo", 1, 3, b"ping".to_vec(), validator);
    let answer = QueryAnswer::decode(
        &validator_net
            .query(miner_peer, q.encode().unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    match answer {
        QueryAnswer::Answered(r) => {
            assert!(r.verify(&q, &miner.account()));
            assert_eq!(r.body, b"gnip");
        }
        other => panic!("{other:?}"),
    }
    // The same query again is a replay; one signed by a stranger but sent from this peer
    // is refused as not the caller's.
    let again = QueryAnswer::decode(
        &validator_net
            .query(miner_peer, q.encode().unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        matches!(again, QueryAnswer::Refused(Refusal::Replayed)),
        "{again:?}"
    );
    let stranger = SignedQuery::sign(
        5,
        1,
        "echo",
        2,
        3,
        b"x".to_vec(),
        &agora_core::Keypair::dev("stranger"),
    );
    let refused = QueryAnswer::decode(
        &validator_net
            .query(miner_peer, stranger.encode().unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        matches!(refused, QueryAnswer::Refused(Refusal::NotFromCaller { .. })),
        "{refused:?}"
    );
}

fn miner_cfg_template() -> NetConfig {
    NetConfig {
        chain_id: 5,
        genesis_hash: Hash([9; 32]),
        key_seed: [0; 32],
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        bootnodes: vec![],
        mdns: false,
        local: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neuron_queries_over_libp2p_and_memory() {
    use crate::query::*;
    let (v, m) = (
        agora_core::Keypair::dev("validator-hotkey"),
        agora_core::Keypair::dev("miner-hotkey"),
    );
    // libp2p: the miner's identity is its hotkey.
    let miner_cfg = NetConfig {
        key_seed: m.seed(),
        ..miner_cfg_template()
    };
    let (miner_net, miner_events, addrs) = Libp2pNetwork::start(miner_cfg).await.unwrap();
    let miner_peer = miner_net.local_peer_id();
    assert_eq!(miner_peer, peer_id_from_seed(m.seed()).unwrap());
    let task = serve_queries(miner_net.clone(), miner_events, m.clone(), v.account());
    let boot = addrs[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(miner_peer));
    let (val_net, _val_events, _) = libp2p_node(42, vec![boot.clone()]).await;
    // A peer that is not the signing hotkey is refused before anything else is looked at.
    let q = SignedQuery::sign(5, 1, "echo", 9, 3, b"x".to_vec(), &v);
    let relayed = QueryAnswer::decode(
        &val_net
            .query(miner_peer, q.encode().unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        matches!(relayed, QueryAnswer::Refused(Refusal::NotFromCaller { .. })),
        "{relayed:?}"
    );
    let val_cfg = NetConfig {
        key_seed: v.seed(),
        bootnodes: vec![boot],
        ..miner_cfg_template()
    };
    let (val_net, _val_events, _) = Libp2pNetwork::start(val_cfg).await.unwrap();
    query_round_trip(&val_net, miner_peer, &m, &v).await;
    task.abort();

    let hub = MemoryHub::new();
    let (mem_miner, mem_events) = hub.join(miner_peer);
    let (mem_val, _e) = hub.join(peer_id_from_seed(v.seed()).unwrap());
    let task = serve_queries(mem_miner, mem_events, m.clone(), v.account());
    query_round_trip(&mem_val, miner_peer, &m, &v).await;
    task.abort();
}

#[test]
fn only_public_addresses_pass_without_the_operators_leave() {
    let public = |s: &str| is_public(&s.parse::<Multiaddr>().unwrap());
    for private in [
        "/ip4/127.0.0.1/tcp/1",
        "/ip4/10.1.2.3/tcp/1",
        "/ip4/192.168.1.9/tcp/1",
        "/ip4/172.20.0.1/tcp/1",
        "/ip4/100.64.0.1/tcp/1",
        "/ip4/169.254.1.1/tcp/1",
        "/ip4/0.0.0.0/tcp/1",
        "/ip6/::1/tcp/1",
        "/ip6/fd00::1/tcp/1",
        "/ip6/fe80::1/tcp/1",
    ] {
        assert!(!public(private), "{private}");
    }
    for ok in [
        "/ip4/8.8.8.8/tcp/1",
        "/ip4/100.128.0.1/tcp/1",
        "/ip6/2001:db8::1/tcp/1",
        "/dns4/example.org/tcp/1",
    ] {
        assert!(public(ok), "{ok}");
    }
}
