use std::collections::BTreeMap;

use super::{StateError, StateRead};

/// Pending writes: `None` deletes the key.
pub type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A write's key and the entry it replaced in `changes` (None: there was none).
type JournalEntry = (Vec<u8>, Option<Option<Vec<u8>>>);

/// Uncommitted changes on top of a base state, with a journal so one transaction's writes
/// can be rolled back without touching the others in the block.
pub struct Overlay<'a> {
    base: &'a dyn StateRead,
    changes: Changes,
    /// (key, previous entry in `changes`) for every write since the last checkpoint.
    journal: Vec<JournalEntry>,
    /// The first value [`Overlay::put_value`] refused since [`Overlay::take_refused`]:
    /// whoever applies the writes (a transaction, the coinbase) must fail as a whole.
    refused: Option<crate::codec::CodecError>,
}

/// A point to roll back to.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint(usize);

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn StateRead) -> Self {
        Overlay {
            base,
            changes: Changes::new(),
            journal: Vec::new(),
            refused: None,
        }
    }

    pub fn base(&self) -> &'a dyn StateRead {
        self.base
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.write(key, Some(value));
    }

    /// Write `value` encoded, unless its encoding is over the state value limit: then
    /// nothing is written and the refusal is kept for [`Overlay::take_refused`].
    pub fn put_value<T: bincode::Encode>(&mut self, key: Vec<u8>, value: &T) {
        match crate::codec::encode_value(value) {
            Ok(bytes) => self.write(key, Some(bytes)),
            Err(e) => {
                if self.refused.is_none() {
                    self.refused = Some(e);
                }
            }
        }
    }

    /// The value refused since the last call, if any.
    pub fn take_refused(&mut self) -> Option<crate::codec::CodecError> {
        self.refused.take()
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.write(key, None);
    }

    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let previous = self.changes.insert(key.clone(), value);
        self.journal.push((key, previous));
    }

    pub fn checkpoint(&mut self) -> Checkpoint {
        Checkpoint(self.journal.len())
    }

    /// Undo every write made since `cp`.
    pub fn rollback(&mut self, cp: Checkpoint) {
        while self.journal.len() > cp.0 {
            let Some((key, previous)) = self.journal.pop() else {
                break;
            };
            match previous {
                Some(entry) => {
                    self.changes.insert(key, entry);
                }
                None => {
                    self.changes.remove(&key);
                }
            }
        }
    }

    /// Run `f`; when it fails, undo its writes, so a failed call leaves nothing behind
    /// even for callers that go on using this overlay.
    pub fn atomic<T, E>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, E>) -> Result<T, E> {
        let cp = self.checkpoint();
        let result = f(self);
        if result.is_err() {
            self.rollback(cp);
        }
        result
    }

    /// Keep everything written so far (drops the undo journal).
    pub fn keep(&mut self) {
        self.journal.clear();
    }

    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    pub fn into_changes(self) -> Changes {
        self.changes
    }
}

impl StateRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.changes.get(key) {
            Some(entry) => Ok(entry.clone()),
            None => self.base.get(key),
        }
    }

    /// The base's rows merged with this overlay's writes and deletes. The base is asked
    /// for `limit` rows plus one per key this overlay deleted under `prefix`, which is
    /// enough: each delete hides at most one base row.
    fn scan_prefix_limit(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<super::KeyValue>, StateError> {
        let mine = || {
            self.changes
                .range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(prefix))
        };
        let deleted = mine().filter(|(_, v)| v.is_none()).count();
        let mut rows: BTreeMap<Vec<u8>, Vec<u8>> = self
            .base
            .scan_prefix_limit(prefix, limit.saturating_add(deleted))?
            .into_iter()
            .collect();
        // At most `deleted` of the rows read are gone, so at least `limit` remain, and
        // any row this overlay adds past the last one read sorts after them.
        for (k, v) in mine() {
            match v {
                Some(v) => {
                    rows.insert(k.clone(), v.clone());
                }
                None => {
                    rows.remove(k);
                }
            }
        }
        Ok(rows.into_iter().take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_earlier_writes_only() {
        let mut base = BTreeMap::new();
        base.insert(b"k".to_vec(), b"base".to_vec());
        let mut o = Overlay::new(&base);
        o.put(b"a".to_vec(), b"1".to_vec());
        o.keep();
        let cp = o.checkpoint();
        o.put(b"a".to_vec(), b"2".to_vec());
        o.delete(b"k".to_vec());
        o.put(b"b".to_vec(), b"3".to_vec());
        assert_eq!(o.get(b"k").unwrap(), None);
        o.rollback(cp);
        assert_eq!(o.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(o.get(b"b").unwrap(), None);
        assert_eq!(o.get(b"k").unwrap(), Some(b"base".to_vec()));
        assert_eq!(o.changes().len(), 1);
    }

    #[test]
    fn prefix_scan_merges_writes_and_deletes_over_the_base() {
        let mut base = BTreeMap::new();
        for k in ["pa", "pb", "pc", "q"] {
            base.insert(k.as_bytes().to_vec(), b"base".to_vec());
        }
        let mut o = Overlay::new(&base);
        o.delete(b"pb".to_vec());
        o.put(b"pd".to_vec(), b"new".to_vec());
        o.put(b"pa".to_vec(), b"changed".to_vec());
        o.put(b"r".to_vec(), b"other".to_vec());
        let rows = o.scan_prefix(b"p").unwrap();
        let keys: Vec<&[u8]> = rows.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, vec![&b"pa"[..], b"pc", b"pd"]);
        assert_eq!(rows[0].1, b"changed");
        assert!(o.scan_prefix(b"z").unwrap().is_empty());
    }

    proptest::proptest! {
        /// A limited scan is exactly the first `limit` rows of the full scan, whatever the
        /// overlay wrote or deleted, over a base that was itself an overlay (a block on a
        /// block) or a plain map.
        #[test]
        fn a_limited_scan_is_the_head_of_the_full_scan(
            base_keys in proptest::collection::btree_set(0u8..40, 0..30),
            writes in proptest::collection::vec((0u8..40, proptest::bool::ANY), 0..30),
            lower in proptest::collection::vec((0u8..40, proptest::bool::ANY), 0..10),
            limit in 0usize..35,
        ) {
            let key = |b: u8| vec![b'p', b];
            let mut base: BTreeMap<Vec<u8>, Vec<u8>> =
                base_keys.iter().map(|b| (key(*b), b"base".to_vec())).collect();
            base.insert(b"q".to_vec(), b"other".to_vec());
            let mut under = Overlay::new(&base);
            for (b, put) in &lower {
                if *put { under.put(key(*b), b"under".to_vec()) } else { under.delete(key(*b)) }
            }
            let mut o = Overlay::new(&under);
            for (b, put) in &writes {
                if *put { o.put(key(*b), b"top".to_vec()) } else { o.delete(key(*b)) }
            }
            let full = o.scan_prefix(b"p").unwrap();
            let head: Vec<_> = full.iter().take(limit).cloned().collect();
            proptest::prop_assert_eq!(o.scan_prefix_limit(b"p", limit).unwrap(), head);
        }
    }
}
