//! Typed access to the chain: blocks, transactions, state and the finalized head.

use std::sync::Arc;

use agora_core::block::{Block, FinalityCert, Header};
use agora_core::codec::{self, MAX_BLOCK_BYTES};
use agora_core::consensus::{Message, VoteKind};
use agora_core::genesis::Genesis;
use agora_core::ledger::ExecutedBlock;
use agora_core::state::{LtHash, StateError, StateRead};
use agora_core::{Hash, SignedTransaction};

use crate::kv::{KvStore, WriteBatch};
use crate::tables::{self, meta, Table, SCHEMA_VERSION};
use crate::StorageError;

/// Where a transaction was included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
}

/// The chain over a [`KvStore`]. Cheap to clone; the node's chain actor is its only writer.
pub struct ChainStore<S: KvStore> {
    kv: Arc<S>,
    /// Commits take it exclusively; readers that need several rows from one block's state
    /// hold it shared ([`ChainStore::consistent`]), so they never see half of a commit's
    /// effect spread across their reads.
    gate: Arc<parking_lot::RwLock<()>>,
}

impl<S: KvStore> Clone for ChainStore<S> {
    fn clone(&self) -> Self {
        ChainStore {
            kv: self.kv.clone(),
            gate: self.gate.clone(),
        }
    }
}

fn be_u64(bytes: &[u8], what: &'static str) -> Result<u64, StorageError> {
    let arr: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(StorageError::Corrupt(what))?;
    Ok(u64::from_be_bytes(arr))
}

impl<S: KvStore> ChainStore<S> {
    /// Open the chain in `kv`, writing `genesis` first if the store is empty. Refuses a
    /// store with another schema version or written from another genesis.
    pub fn open(kv: Arc<S>, genesis: &Genesis) -> Result<Self, StorageError> {
        let store = ChainStore {
            kv,
            gate: Arc::new(parking_lot::RwLock::new(())),
        };
        let built = genesis.build()?;
        let genesis_hash = built.block.hash();
        match store.kv.get(Table::Meta, meta::SCHEMA_VERSION)? {
            Some(v) => {
                let found = u32::from_be_bytes(
                    v.as_slice()
                        .try_into()
                        .map_err(|_| StorageError::Corrupt("schema version"))?,
                );
                if found != SCHEMA_VERSION {
                    return Err(StorageError::SchemaVersion {
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
                let stored = store
                    .kv
                    .get(Table::Meta, meta::GENESIS_HASH)?
                    .ok_or(StorageError::Corrupt("genesis hash"))?;
                if stored != genesis_hash.0 {
                    return Err(StorageError::GenesisMismatch {
                        stored: Hash(
                            stored
                                .try_into()
                                .map_err(|_| StorageError::Corrupt("genesis hash"))?,
                        ),
                        given: genesis_hash,
                    });
                }
            }
            None => {
                let mut batch = WriteBatch::default();
                batch.put(
                    Table::Meta,
                    meta::SCHEMA_VERSION,
                    SCHEMA_VERSION.to_be_bytes(),
                );
                batch.put(Table::Meta, meta::GENESIS_HASH, genesis_hash.0);
                store.stage_block(&mut batch, &built.block, &built.changes, &built.lthash);
                store.kv.write(batch)?;
            }
        }
        Ok(store)
    }

    fn stage_block(
        &self,
        batch: &mut WriteBatch,
        block: &Block,
        changes: &agora_core::state::Changes,
        lthash: &LtHash,
    ) {
        let height = block.header.height;
        let hash = block.hash();
        batch.put(Table::Blocks, tables::height_key(height), block.encode());
        batch.put(Table::BlockIndex, hash.0, tables::height_key(height));
        for (i, tx) in block.txs.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            batch.put(Table::Txs, tx.hash().0, tables::tx_location(height, index));
        }
        for (k, v) in changes {
            match v {
                Some(v) => batch.put(Table::State, k.clone(), v.clone()),
                None => batch.delete(Table::State, k.clone()),
            }
        }
        batch.put(Table::Meta, meta::STATE_LTHASH, lthash.to_bytes());
        batch.put(Table::Meta, meta::HEAD, tables::height_key(height));
    }

    /// Commit an executed, finalized block and its certificate in one atomic write.
    pub fn commit(
        &self,
        executed: &ExecutedBlock,
        cert: &FinalityCert,
    ) -> Result<(), StorageError> {
        let head = self.head_height()?;
        let height = executed.block.header.height;
        if height != head.saturating_add(1) {
            return Err(StorageError::NotNext { head, got: height });
        }
        let mut batch = WriteBatch::default();
        self.stage_block(
            &mut batch,
            &executed.block,
            &executed.changes,
            &executed.lthash,
        );
        batch.put(
            Table::Certs,
            tables::height_key(height),
            codec::encode::<_, MAX_BLOCK_BYTES>(cert, "finality certificate")?,
        );
        // The decided height's votes can never be needed again.
        for (key, _) in self
            .kv
            .scan_prefix(Table::ConsensusWal, &tables::height_key(height))?
        {
            batch.delete(Table::ConsensusWal, key);
        }
        let _exclusive = self.gate.write();
        self.kv.write(batch)
    }

    /// Hold this while reading several rows that must come from one committed state (a
    /// metagraph, a block and its certificate): commits wait until it is dropped.
    pub fn consistent(&self) -> parking_lot::RwLockReadGuard<'_, ()> {
        self.gate.read()
    }

    /// Durably record one of this validator's own signed consensus messages before it is
    /// sent (synced write): a restart reloads them and never signs a conflicting one.
    pub fn record_own_message(&self, msg: &Message) -> Result<(), StorageError> {
        let (round, slot) = match msg {
            Message::Proposal(p) => (p.round, 0u8),
            Message::Vote(v) => (
                v.round,
                match v.kind {
                    VoteKind::Prevote => 1,
                    VoteKind::Precommit => 2,
                },
            ),
            Message::Decided(..) => return Ok(()),
        };
        let mut key = Vec::with_capacity(13);
        key.extend_from_slice(&tables::height_key(msg.height()));
        key.extend_from_slice(&round.to_be_bytes());
        key.push(slot);
        let bytes = msg
            .encode()
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        let mut batch = WriteBatch::default();
        batch.put(Table::ConsensusWal, key, bytes);
        self.kv.write(batch)
    }

    /// This validator's own messages recorded for `height`, in (round, slot) order.
    pub fn own_messages(&self, height: u64) -> Result<Vec<Message>, StorageError> {
        self.kv
            .scan_prefix(Table::ConsensusWal, &tables::height_key(height))?
            .into_iter()
            .map(|(_, v)| Message::decode(&v).map_err(|_| StorageError::Corrupt("consensus log")))
            .collect()
    }

    pub fn head_height(&self) -> Result<u64, StorageError> {
        let v = self
            .kv
            .get(Table::Meta, meta::HEAD)?
            .ok_or(StorageError::Corrupt("head"))?;
        be_u64(&v, "head")
    }

    pub fn head(&self) -> Result<Block, StorageError> {
        let h = self.head_height()?;
        self.block_by_height(h)?
            .ok_or(StorageError::Corrupt("head block"))
    }

    pub fn head_header(&self) -> Result<Header, StorageError> {
        Ok(self.head()?.header)
    }

    pub fn lthash(&self) -> Result<LtHash, StorageError> {
        let v = self
            .kv
            .get(Table::Meta, meta::STATE_LTHASH)?
            .ok_or(StorageError::Corrupt("state accumulator"))?;
        LtHash::from_bytes(&v).ok_or(StorageError::Corrupt("state accumulator"))
    }

    pub fn block_by_height(&self, height: u64) -> Result<Option<Block>, StorageError> {
        match self.kv.get(Table::Blocks, &tables::height_key(height))? {
            None => Ok(None),
            Some(bytes) => Block::decode(&bytes)
                .map(Some)
                .map_err(|_| StorageError::Corrupt("block")),
        }
    }

    pub fn height_of(&self, hash: &Hash) -> Result<Option<u64>, StorageError> {
        match self.kv.get(Table::BlockIndex, &hash.0)? {
            None => Ok(None),
            Some(v) => be_u64(&v, "block index").map(Some),
        }
    }

    pub fn block_by_hash(&self, hash: &Hash) -> Result<Option<Block>, StorageError> {
        match self.height_of(hash)? {
            None => Ok(None),
            Some(h) => self.block_by_height(h),
        }
    }

    pub fn cert(&self, height: u64) -> Result<Option<FinalityCert>, StorageError> {
        match self.kv.get(Table::Certs, &tables::height_key(height))? {
            None => Ok(None),
            Some(bytes) => codec::decode::<_, MAX_BLOCK_BYTES>(&bytes, "certificate")
                .map(Some)
                .map_err(|_| StorageError::Corrupt("certificate")),
        }
    }

    pub fn tx_location(&self, hash: &Hash) -> Result<Option<TxLocation>, StorageError> {
        match self.kv.get(Table::Txs, &hash.0)? {
            None => Ok(None),
            Some(v) => {
                let height = be_u64(&v, "tx index")?;
                let index: [u8; 4] = v
                    .get(8..12)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(StorageError::Corrupt("tx index"))?;
                Ok(Some(TxLocation {
                    height,
                    index: u32::from_be_bytes(index),
                }))
            }
        }
    }

    /// A transaction, where it was included, and its block's hash.
    pub fn tx(
        &self,
        hash: &Hash,
    ) -> Result<Option<(SignedTransaction, TxLocation, Hash)>, StorageError> {
        let Some(loc) = self.tx_location(hash)? else {
            return Ok(None);
        };
        let block = self
            .block_by_height(loc.height)?
            .ok_or(StorageError::Corrupt("tx block"))?;
        let tx = block
            .txs
            .get(loc.index as usize)
            .cloned()
            .ok_or(StorageError::Corrupt("tx position"))?;
        Ok(Some((tx, loc, block.hash())))
    }
}

/// What `ChainStore::check_state` found: the head's state root against one recomputed
/// from every stored state row, the stored accumulator, and supply conservation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StateCheck {
    pub height: u64,
    pub state_root: Hash,
    pub recomputed_root: Hash,
    pub stored_accumulator_matches: bool,
    pub rows: usize,
    pub issued: u64,
    pub free: u64,
    pub staked: u64,
    pub burned: u64,
    /// The sum of every account's free balance (must equal `free`).
    pub free_in_accounts: u64,
}

impl StateCheck {
    pub fn ok(&self) -> bool {
        self.recomputed_root == self.state_root
            && self.stored_accumulator_matches
            && self
                .free
                .checked_add(self.staked)
                .and_then(|x| x.checked_add(self.burned))
                == Some(self.issued)
            && self.free_in_accounts == self.free
    }
}

impl<S: KvStore> ChainStore<S> {
    /// Recompute the state root from the stored rows (not from the stored accumulator) and
    /// check it against the head, and that supply is conserved. Reads everything: for
    /// offline checks (`agora chain check`) and crash tests.
    pub fn check_state(&self) -> Result<StateCheck, StorageError> {
        let _consistent = self.consistent();
        let head = self.head_header()?;
        let rows = StateRead::scan_prefix(self, &[])?;
        let mut lthash = LtHash::default();
        let mut free_in_accounts: u64 = 0;
        for (k, v) in &rows {
            lthash.insert(k, v);
            if k.len() == 33 && k.first() == Some(&agora_core::state::keys::ACCOUNT) {
                let a: agora_core::state::Account = codec::decode_value(v, "account")
                    .map_err(|_| StorageError::Corrupt("an account"))?;
                free_in_accounts = free_in_accounts.saturating_add(a.free);
            }
        }
        let supply = agora_core::state::supply(self)?;
        Ok(StateCheck {
            height: head.height,
            state_root: head.state_root,
            recomputed_root: lthash.root(),
            stored_accumulator_matches: self.lthash()?.to_bytes() == lthash.to_bytes(),
            rows: rows.len(),
            issued: supply.issued,
            free: supply.free,
            staked: supply.staked,
            burned: supply.burned,
            free_in_accounts,
        })
    }
}

impl<S: KvStore> StateRead for ChainStore<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.kv
            .get(Table::State, key)
            .map_err(|e| StateError::Read(e.to_string()))
    }

    fn scan_prefix_limit(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<agora_core::state::KeyValue>, StateError> {
        self.kv
            .scan_prefix_limit(Table::State, prefix, limit)
            .map_err(|e| StateError::Read(e.to_string()))
    }
}

#[cfg(test)]
mod check_tests {
    use super::*;
    use crate::kv::MemStore;

    /// The check passes on a fresh chain and fails on a state row changed behind its back,
    /// and on supply that does not add up.
    #[test]
    fn check_state_catches_a_tampered_row() {
        let kv = Arc::new(MemStore::new());
        let store = ChainStore::open(kv.clone(), &Genesis::dev()).unwrap();
        assert!(store.check_state().unwrap().ok());
        let alice = agora_core::Keypair::dev("alice").account();
        let forged = agora_core::state::Account { free: 1, nonce: 0 };
        let mut batch = WriteBatch::default();
        batch.put(
            Table::State,
            agora_core::state::keys::account(&alice),
            codec::encode_value(&forged).unwrap(),
        );
        kv.write(batch).unwrap();
        let report = store.check_state().unwrap();
        assert!(!report.ok());
        assert_ne!(report.recomputed_root, report.state_root);
        assert_ne!(report.free_in_accounts, report.free);
    }
}
