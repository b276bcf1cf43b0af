//! The node's actors over the in-process network: a full node syncs from peers, bans one
//! that serves a forged certificate, and finishes from an honest one.

use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use agora_core::block::FinalityCert;
use agora_core::{Block, Genesis, Keypair};
use agora_p2p::{MemoryHub, NetEvent, Network, SyncRequest, SyncResponse};
use agora_storage::{ChainStore, MemStore, Pipeline, RocksStore};

use crate::actors::mempool::{MempoolActor, MempoolHandle};

/// Three blocks certified by the dev authority, built on a chain of their own.
fn certified_chain(genesis: &Genesis) -> Vec<(Block, FinalityCert)> {
    let store = ChainStore::open(Arc::new(MemStore::new()), genesis).unwrap();
    let mut p = Pipeline::new(store.clone(), genesis.params()).unwrap();
    let alice = Keypair::dev("alice");
    for t in 1..=3u64 {
        let b = p
            .propose(alice.account(), t * 1000, 0, vec![])
            .unwrap()
            .block;
        let cert = FinalityCert::sign_single(genesis.chain_id, t, b.hash(), &alice);
        p.commit(&b.hash(), &cert).unwrap();
    }
    (1..=3)
        .map(|h| {
            (
                store.block_by_height(h).unwrap().unwrap(),
                store.cert(h).unwrap().unwrap(),
            )
        })
        .collect()
}

/// A peer on the hub that says it is at height 3 and serves `blocks` when asked.
fn serve(
    hub: &MemoryHub,
    seed: u8,
    blocks: Vec<(Block, FinalityCert)>,
    genesis_hash: agora_core::Hash,
) -> agora_p2p::PeerId {
    let id = agora_p2p::peer_id_from_seed([seed; 32]).unwrap();
    let (net, mut events) = hub.join(id);
    actix_rt::spawn(async move {
        while let Some(e) = events.recv().await {
            if let NetEvent::Request { request, reply, .. } = e {
                let answer = match request {
                    SyncRequest::Status => SyncResponse::Status {
                        height: 3,
                        head: blocks[2].0.hash(),
                        genesis: genesis_hash,
                    },
                    SyncRequest::Blocks { from, .. } => SyncResponse::Blocks(
                        blocks
                            .iter()
                            .filter(|(b, _)| b.header.height >= from)
                            .cloned()
                            .collect(),
                    ),
                };
                net.respond(reply, answer);
            }
        }
    });
    id
}

#[actix_rt::test]
async fn sync_bans_a_peer_serving_forged_certificates_and_finishes_from_an_honest_one() {
    let genesis = Genesis::dev();
    let params = genesis.params();
    let genesis_hash = genesis.build().unwrap().block.hash();
    let honest = certified_chain(&genesis);
    // The same blocks, "certified" by a key that is not a validator.
    let mallory = Keypair::dev("mallory");
    let forged: Vec<_> = honest
        .iter()
        .map(|(b, _)| {
            (
                b.clone(),
                FinalityCert::sign_single(genesis.chain_id, b.header.height, b.hash(), &mallory),
            )
        })
        .collect();

    // The node under test: a full node on RocksDB, on the in-process network.
    let dir = tempfile::tempdir().unwrap();
    let rocks = Arc::new(RocksStore::open(&dir.path().join("db")).unwrap());
    let store = ChainStore::open(rocks.clone(), &genesis).unwrap();
    let validators = crate::node::validators_ahead(&store, &params, 0).unwrap();
    let (heads, _) = tokio::sync::broadcast::channel(16);
    let chain = crate::node::start_chain(store, &params, heads, Default::default()).unwrap();
    let mempool = MempoolHandle::new(MempoolActor::new(params.clone(), chain.clone()).start());
    let hub = MemoryHub::new();
    let me = agora_p2p::peer_id_from_seed([1; 32]).unwrap();
    let (net, events) = hub.join(me);
    let net = Arc::new(net);
    let (fatal, _fatal_rx) = tokio::sync::mpsc::channel(1);
    let genesis_header = genesis.build().unwrap().block.header;
    crate::node::start_consensus(
        net.clone(),
        events,
        &chain,
        &mempool,
        &params,
        validators,
        genesis_hash,
        None,
        &genesis_header,
        fatal,
    )
    .unwrap();
    actix_rt::time::sleep(Duration::from_millis(50)).await;

    // The forger connects first and is asked first.
    let bad = serve(&hub, 2, forged, genesis_hash);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        chain.head().await.unwrap().height,
        0,
        "nothing forged was imported"
    );
    let good = serve(&hub, 3, honest.clone(), genesis_hash);
    let start = std::time::Instant::now();
    while chain.head().await.unwrap().height < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "did not sync from the honest peer"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(chain.head().await.unwrap().hash, honest[2].0.hash());
    let peers: Vec<String> = net.peers().await.into_iter().map(|p| p.peer_id).collect();
    assert!(
        !peers.contains(&bad.to_string()),
        "the forger was not banned: {peers:?}"
    );
    assert!(peers.contains(&good.to_string()), "{peers:?}");
    // Release RocksDB now, not in exit-time destructors racing the actors' threads
    // (which aborts the process, as the node's own shutdown explains).
    rocks.close();
}
