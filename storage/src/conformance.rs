//! One suite, run against both backends: whatever passes here on memory passes on RocksDB.

use std::sync::Arc;

use agora_core::block::FinalityCert;
use agora_core::genesis::Genesis;
use agora_core::ledger::{build_block, Proposal};
use agora_core::state::{account, supply};
use agora_core::{Call, Keypair, Transaction};

use crate::kv::{KvStore, MemStore, RocksStore, WriteBatch};
use crate::tables::Table;
use crate::{ChainStore, StorageError};

fn kv_basics(kv: &dyn KvStore) {
    let mut b = WriteBatch::default();
    b.put(Table::State, b"k".to_vec(), b"v1".to_vec());
    b.put(Table::Blocks, b"k".to_vec(), b"other".to_vec());
    b.put(Table::State, b"gone".to_vec(), b"x".to_vec());
    b.delete(Table::State, b"gone".to_vec());
    kv.write(b).unwrap();
    assert_eq!(kv.get(Table::State, b"k").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(
        kv.get(Table::Blocks, b"k").unwrap(),
        Some(b"other".to_vec()),
        "tables are separate"
    );
    assert_eq!(kv.get(Table::Txs, b"k").unwrap(), None);
    assert_eq!(
        kv.get(Table::State, b"gone").unwrap(),
        None,
        "later op in a batch wins"
    );
    let mut b = WriteBatch::default();
    b.delete(Table::State, b"k".to_vec());
    kv.write(b).unwrap();
    assert_eq!(kv.get(Table::State, b"k").unwrap(), None);

    let mut b = WriteBatch::default();
    for k in ["p\x01b", "p\x01a", "p\x02", "p", "q\x01"] {
        b.put(Table::State, k.as_bytes().to_vec(), k.as_bytes().to_vec());
    }
    b.put(Table::Blocks, b"p\x01c".to_vec(), b"other table".to_vec());
    kv.write(b).unwrap();
    let rows = kv.scan_prefix(Table::State, b"p\x01").unwrap();
    let keys: Vec<&[u8]> = rows.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(
        keys,
        vec![&b"p\x01a"[..], b"p\x01b"],
        "prefix rows, in key order"
    );
    assert_eq!(kv.scan_prefix(Table::State, b"p").unwrap().len(), 4);
    assert!(kv.scan_prefix(Table::Txs, b"p").unwrap().is_empty());
    // A limited scan: the first rows, in order, never past the prefix.
    let first = |limit| kv.scan_prefix_limit(Table::State, b"p", limit).unwrap();
    let all = kv.scan_prefix(Table::State, b"p").unwrap();
    for limit in 0..6 {
        assert_eq!(
            first(limit),
            all.iter().take(limit).cloned().collect::<Vec<_>>()
        );
    }
}

/// Commits `blocks` transfer blocks and returns the head hash and state root.
fn grow<S: KvStore>(
    chain: &ChainStore<S>,
    genesis: &Genesis,
    blocks: u64,
) -> (agora_core::Hash, agora_core::Hash) {
    let params = genesis.params();
    let alice = Keypair::dev("alice");
    let bob = Keypair::dev("bob");
    for _ in 0..blocks {
        let head = chain.head_header().unwrap();
        let nonce = account(chain, &bob.account()).unwrap().nonce;
        let tx = Transaction {
            chain_id: params.chain_id,
            signer: bob.account(),
            nonce,
            call: Call::Transfer {
                dest: Keypair::dev("zed").account(),
                amount: 1_000,
            },
            tip: 0,
        }
        .sign(&bob);
        let proposal = Proposal {
            proposer: alice.account(),
            timestamp_ms: head.timestamp_ms + 1_000,
            view: 0,
            parent_cert: chain.cert(head.height).unwrap(),
        };
        let built = build_block(
            chain,
            &chain.lthash().unwrap(),
            &params,
            &head,
            proposal,
            vec![tx],
        )
        .unwrap();
        assert!(built.rejected.is_empty());
        let b = &built.executed.block;
        let cert = FinalityCert::sign_single(params.chain_id, b.header.height, b.hash(), &alice);
        chain.commit(&built.executed, &cert).unwrap();
    }
    let head = chain.head_header().unwrap();
    (head.hash(), head.state_root)
}

fn chain_round_trip<S: KvStore>(kv: Arc<S>, reopen: impl Fn() -> Arc<S>) {
    let genesis = Genesis::dev();
    let chain = ChainStore::open(kv, &genesis).unwrap();
    assert_eq!(chain.head_height().unwrap(), 0);
    let (head_hash, root) = grow(&chain, &genesis, 5);
    assert_eq!(chain.head_height().unwrap(), 5);
    assert_eq!(chain.lthash().unwrap().root(), root);

    let b3 = chain.block_by_height(3).unwrap().unwrap();
    assert_eq!(chain.block_by_hash(&b3.hash()).unwrap().unwrap(), b3);
    let tx = &b3.txs[0];
    let (found, loc, block_hash) = chain.tx(&tx.hash()).unwrap().unwrap();
    assert_eq!(
        (&found, loc.height, loc.index, block_hash),
        (tx, 3, 0, b3.hash())
    );
    assert!(chain.block_by_height(6).unwrap().is_none());
    assert!(chain.tx(&agora_core::Hash([7; 32])).unwrap().is_none());
    assert_eq!(
        account(&chain, &Keypair::dev("zed").account())
            .unwrap()
            .free,
        5_000
    );
    assert!(supply(&chain).unwrap().is_conserved());

    // A commit that does not follow the head is refused and changes nothing.
    let stale = {
        let head = chain.block_by_height(4).unwrap().unwrap().header;
        let p = Proposal {
            proposer: Keypair::dev("alice").account(),
            timestamp_ms: 1,
            view: 0,
            parent_cert: None,
        };
        build_block(
            &chain,
            &chain.lthash().unwrap(),
            &genesis.params(),
            &head,
            p,
            vec![],
        )
        .unwrap()
    };
    let cert = FinalityCert::sign_single(
        genesis.chain_id,
        5,
        stale.executed.block.hash(),
        &Keypair::dev("alice"),
    );
    assert!(matches!(
        chain.commit(&stale.executed, &cert),
        Err(StorageError::NotNext { head: 5, got: 5 })
    ));
    drop(chain);

    // Reopen: same head, same state root, same balances.
    let chain = ChainStore::open(reopen(), &genesis).unwrap();
    assert_eq!(chain.head_header().unwrap().hash(), head_hash);
    assert_eq!(chain.lthash().unwrap().root(), root);
    assert_eq!(
        account(&chain, &Keypair::dev("zed").account())
            .unwrap()
            .free,
        5_000
    );
    // ... and it keeps growing from there.
    grow(&chain, &genesis, 1);
    assert_eq!(chain.head_height().unwrap(), 6);
    drop(chain);

    let mut other = Genesis::dev();
    other.chain_id += 1;
    assert!(matches!(
        ChainStore::open(reopen(), &other),
        Err(StorageError::GenesisMismatch { .. })
    ));
}

/// Own consensus messages survive a reopen, come back in (round, slot) order, and are
/// deleted by the commit of their height (and only theirs).
fn own_vote_log<S: KvStore>(kv: Arc<S>, reopen: impl Fn() -> Arc<S>) {
    use agora_core::consensus::{Message, Vote, VoteKind};
    let genesis = Genesis::dev();
    let chain = ChainStore::open(kv, &genesis).unwrap();
    let alice = Keypair::dev("alice");
    let vote = |height, round, kind| {
        Message::Vote(Vote::sign(
            genesis.chain_id,
            kind,
            height,
            round,
            None,
            &alice,
        ))
    };
    for m in [
        vote(1, 1, VoteKind::Precommit),
        vote(1, 0, VoteKind::Prevote),
        vote(1, 1, VoteKind::Prevote),
        vote(2, 0, VoteKind::Prevote),
    ] {
        chain.record_own_message(&m).unwrap();
    }
    drop(chain);
    let chain = ChainStore::open(reopen(), &genesis).unwrap();
    let own = chain.own_messages(1).unwrap();
    assert_eq!(
        own,
        vec![
            vote(1, 0, VoteKind::Prevote),
            vote(1, 1, VoteKind::Prevote),
            vote(1, 1, VoteKind::Precommit)
        ]
    );
    grow(&chain, &genesis, 1);
    assert!(
        chain.own_messages(1).unwrap().is_empty(),
        "height 1 decided"
    );
    assert_eq!(chain.own_messages(2).unwrap().len(), 1);
}

fn schema_version_is_checked<S: KvStore>(kv: Arc<S>) {
    let mut b = WriteBatch::default();
    b.put(
        Table::Meta,
        crate::tables::meta::SCHEMA_VERSION.to_vec(),
        99u32.to_be_bytes().to_vec(),
    );
    kv.write(b).unwrap();
    assert!(matches!(
        ChainStore::open(kv, &Genesis::dev()),
        Err(StorageError::SchemaVersion { found: 99, .. })
    ));
}

mod memory {
    use super::*;

    #[test]
    fn kv_basics() {
        super::kv_basics(&MemStore::new());
    }

    #[test]
    fn chain_round_trip() {
        let kv = Arc::new(MemStore::new());
        let again = kv.clone();
        super::chain_round_trip(kv, move || again.clone());
    }

    #[test]
    fn schema_version_is_checked() {
        super::schema_version_is_checked(Arc::new(MemStore::new()));
    }

    /// A reader holding the consistency gate sees no commit until it lets go.
    #[test]
    fn commits_wait_for_consistent_readers() {
        let genesis = Genesis::dev();
        let chain = ChainStore::open(Arc::new(MemStore::new()), &genesis).unwrap();
        let view = chain.consistent();
        let writer = {
            let (chain, genesis) = (chain.clone(), genesis.clone());
            std::thread::spawn(move || grow(&chain, &genesis, 1))
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(chain.head_height().unwrap(), 0, "committed under a reader");
        drop(view);
        writer.join().unwrap();
        assert_eq!(chain.head_height().unwrap(), 1);
    }

    #[test]
    fn own_vote_log() {
        let kv = Arc::new(MemStore::new());
        let again = kv.clone();
        super::own_vote_log(kv, move || again.clone());
    }
}

mod rocksdb {
    use super::*;

    #[test]
    fn kv_basics() {
        let dir = tempfile::tempdir().unwrap();
        super::kv_basics(&RocksStore::open(dir.path()).unwrap());
    }

    #[test]
    fn chain_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        super::chain_round_trip(Arc::new(RocksStore::open(&path).unwrap()), move || {
            Arc::new(RocksStore::open(&path).unwrap())
        });
    }

    #[test]
    fn schema_version_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        super::schema_version_is_checked(Arc::new(RocksStore::open(dir.path()).unwrap()));
    }

    #[test]
    fn own_vote_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        super::own_vote_log(Arc::new(RocksStore::open(&path).unwrap()), move || {
            Arc::new(RocksStore::open(&path).unwrap())
        });
    }

    #[test]
    fn closed_store_refuses_access_instead_of_crashing() {
        let dir = tempfile::tempdir().unwrap();
        let kv = RocksStore::open(dir.path()).unwrap();
        kv.close();
        assert!(matches!(
            kv.get(Table::State, b"k"),
            Err(StorageError::Closed)
        ));
        assert!(matches!(
            kv.write(WriteBatch::default()),
            Err(StorageError::Closed)
        ));
        // Closing released the lock: the directory opens again.
        drop(RocksStore::open(dir.path()).unwrap());
    }

    #[test]
    fn open_failure_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = RocksStore::open(&file).err().unwrap();
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}
