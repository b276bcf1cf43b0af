//! The storage seam: a tiny key/value API with two implementations, RocksDB and memory.

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::RwLock;

use crate::tables::Table;
use crate::StorageError;

/// Writes that land together or not at all.
#[derive(Debug, Default)]
pub struct WriteBatch {
    ops: Vec<(Table, Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    pub fn put(&mut self, table: Table, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((table, key.into(), Some(value.into())));
    }

    pub fn delete(&mut self, table: Table, key: impl Into<Vec<u8>>) {
        self.ops.push((table, key.into(), None));
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key/value store with tables and atomic batches.
pub trait KvStore: Send + Sync + 'static {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Every row of `table` whose key starts with `prefix`, in ascending key order.
    fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Result<Vec<KeyValue>, StorageError> {
        self.scan_prefix_limit(table, prefix, usize::MAX)
    }
    /// The first `limit` rows [`KvStore::scan_prefix`] would give, reading no further.
    fn scan_prefix_limit(
        &self,
        table: Table,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError>;
    /// Apply the whole batch atomically (and durably, for disk stores).
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError>;
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Rows of every table, keyed by (table, key).
type Rows = BTreeMap<(Table, Vec<u8>), Vec<u8>>;

/// In-memory store for tests and simulations.
#[derive(Default)]
pub struct MemStore {
    tables: RwLock<Rows>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl KvStore for MemStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.tables.read().get(&(table, key.to_vec())).cloned())
    }

    fn scan_prefix_limit(
        &self,
        table: Table,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        let tables = self.tables.read();
        Ok(tables
            .range((table, prefix.to_vec())..)
            .take_while(|((t, k), _)| *t == table && k.starts_with(prefix))
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut tables = self.tables.write();
        for (table, key, value) in batch.ops {
            match value {
                Some(v) => {
                    tables.insert((table, key), v);
                }
                None => {
                    tables.remove(&(table, key));
                }
            }
        }
        Ok(())
    }
}

/// RocksDB with one column family per [`Table`]. Every batch is written with `sync` so a
/// committed block survives a crash or power loss. [`RocksStore::close`] shuts the database
/// down while other threads may still hold the store; they get [`StorageError::Closed`].
pub struct RocksStore {
    db: RwLock<Option<rocksdb::DB>>,
}

impl RocksStore {
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = Table::ALL
            .map(|t| rocksdb::ColumnFamilyDescriptor::new(t.name(), rocksdb::Options::default()));
        let db =
            rocksdb::DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| StorageError::Open {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(RocksStore {
            db: RwLock::new(Some(db)),
        })
    }

    /// Close the database now: waits for reads and writes in progress, then releases it.
    pub fn close(&self) {
        drop(self.db.write().take());
    }
}

fn cf(db: &rocksdb::DB, table: Table) -> Result<&rocksdb::ColumnFamily, StorageError> {
    db.cf_handle(table.name())
        .ok_or_else(|| StorageError::Backend(format!("column family {} missing", table.name())))
}

impl KvStore for RocksStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let guard = self.db.read();
        let db = guard.as_ref().ok_or(StorageError::Closed)?;
        db.get_cf(cf(db, table)?, key)
            .map_err(|e| StorageError::Backend(e.to_string()))
    }

    fn scan_prefix_limit(
        &self,
        table: Table,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        let guard = self.db.read();
        let db = guard.as_ref().ok_or(StorageError::Closed)?;
        let mode = rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in db.iterator_cf(cf(db, table)?, mode).take(limit) {
            let (k, v) = item.map_err(|e| StorageError::Backend(e.to_string()))?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let guard = self.db.read();
        let db = guard.as_ref().ok_or(StorageError::Closed)?;
        let mut wb = rocksdb::WriteBatch::default();
        for (table, key, value) in batch.ops {
            let cf = cf(db, table)?;
            match value {
                Some(v) => wb.put_cf(cf, key, v),
                None => wb.delete_cf(cf, key),
            }
        }
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(wb, &opts)
            .map_err(|e| StorageError::Backend(e.to_string()))
    }
}
