use super::{Changes, StateError, StateRead};
use crate::crypto::{hash_with_domain, Hash};

const LANES: usize = 1024;
/// Serialized size of the accumulator.
pub const LTHASH_BYTES: usize = LANES * 2;
const ELEMENT_CONTEXT: &str = "agora lthash element v1";

/// Lattice (multiset) hash of the whole state: the lane-wise wrapping sum of
/// `blake3_xof(key, value)` over all entries (1024 x u16 lanes, as in LtHash16).
/// Adding or removing one entry costs one hash, so a block's state root costs O(keys it
/// changed), not O(state size). The state root is `blake3("agora/state/v1" || lanes LE)`.
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash(Box<[u16; LANES]>);

impl Default for LtHash {
    fn default() -> Self {
        LtHash(Box::new([0; LANES]))
    }
}

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({})", self.root())
    }
}

fn element(key: &[u8], value: &[u8]) -> [u16; LANES] {
    let mut h = blake3::Hasher::new_derive_key(ELEMENT_CONTEXT);
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(value);
    let mut bytes = [0u8; LTHASH_BYTES];
    h.finalize_xof().fill(&mut bytes);
    let mut lanes = [0u16; LANES];
    read_lanes(&mut lanes, &bytes);
    lanes
}

/// Little-endian u16 lanes from bytes (`bytes.len() == 2 * lanes.len()`).
fn read_lanes(lanes: &mut [u16; LANES], bytes: &[u8]) {
    for (lane, pair) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
        if let [lo, hi] = pair {
            *lane = u16::from_le_bytes([*lo, *hi]);
        }
    }
}

impl LtHash {
    pub fn insert(&mut self, key: &[u8], value: &[u8]) {
        for (a, b) in self.0.iter_mut().zip(element(key, value)) {
            *a = a.wrapping_add(b);
        }
    }

    pub fn remove(&mut self, key: &[u8], value: &[u8]) {
        for (a, b) in self.0.iter_mut().zip(element(key, value)) {
            *a = a.wrapping_sub(b);
        }
    }

    /// Fold `changes` (made on top of `base`) into the accumulator.
    pub fn apply(&mut self, base: &dyn StateRead, changes: &Changes) -> Result<(), StateError> {
        for (key, new) in changes {
            let old = base.get(key)?;
            if old.as_ref() == new.as_ref() {
                continue;
            }
            if let Some(old) = old {
                self.remove(key, &old);
            }
            if let Some(new) = new {
                self.insert(key, new);
            }
        }
        Ok(())
    }

    pub fn root(&self) -> Hash {
        hash_with_domain(b"agora/state/v1", &[&self.to_bytes()])
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|l| l.to_le_bytes()).collect()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != LTHASH_BYTES {
            return None;
        }
        let mut lanes = Box::new([0u16; LANES]);
        read_lanes(&mut lanes, bytes);
        Some(LtHash(lanes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Incremental updates give the same root as hashing the final state from scratch,
        /// in any order.
        #[test]
        fn incremental_equals_from_scratch(
            first in proptest::collection::btree_map(any::<u8>(), any::<u16>(), 0..30),
            second in proptest::collection::btree_map(any::<u8>(), proptest::option::of(any::<u16>()), 0..30),
        ) {
            let base: BTreeMap<Vec<u8>, Vec<u8>> =
                first.iter().map(|(k, v)| (vec![*k], v.to_le_bytes().to_vec())).collect();
            let mut acc = LtHash::default();
            for (k, v) in base.iter().rev() {
                acc.insert(k, v);
            }
            let changes: Changes = second
                .iter()
                .map(|(k, v)| (vec![*k], v.map(|v| v.to_le_bytes().to_vec())))
                .collect();
            acc.apply(&base, &changes).unwrap();
            let mut fin = base.clone();
            for (k, v) in &changes {
                match v { Some(v) => { fin.insert(k.clone(), v.clone()); } None => { fin.remove(k); } }
            }
            let mut scratch = LtHash::default();
            for (k, v) in &fin {
                scratch.insert(k, v);
            }
            prop_assert_eq!(acc.root(), scratch.root());
            prop_assert_eq!(LtHash::from_bytes(&acc.to_bytes()).unwrap(), acc);
        }
    }

    #[test]
    fn different_states_have_different_roots() {
        let mut a = LtHash::default();
        a.insert(b"k", b"1");
        let mut b = LtHash::default();
        b.insert(b"k", b"2");
        assert_ne!(a.root(), b.root());
        assert_ne!(a.root(), LtHash::default().root());
    }
}
