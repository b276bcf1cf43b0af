//! Chain state as ordered key/value pairs, read through [`StateRead`] and changed through an
//! [`Overlay`]; [`LtHash`] commits to all of it (PROTOCOL §6).

mod lthash;
mod overlay;

use bincode::{Decode, Encode};
use serde::Serialize;

pub use lthash::{LtHash, LTHASH_BYTES};
pub use overlay::{Changes, Overlay};

use crate::codec::decode_value;
use crate::crypto::AccountId;

/// Failure to read state: an internal failure (storage broken or corrupt), never a user error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state read failed: {0}")]
    Read(String),
    #[error("state value {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    /// A write that could not be read back (over the value limit): refused, not stored.
    #[error("state write refused: {0}")]
    Refused(crate::codec::CodecError),
}

/// A state key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Read access to committed state.
pub trait StateRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Every `(key, value)` whose key starts with `prefix`, in ascending key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StateError> {
        self.scan_prefix_limit(prefix, usize::MAX)
    }
    /// The first `limit` rows [`StateRead::scan_prefix`] would give, reading no further:
    /// what work bounded per block (a dissolve spread over blocks) scans with.
    fn scan_prefix_limit(&self, prefix: &[u8], limit: usize) -> Result<Vec<KeyValue>, StateError>;
}

/// An empty state (genesis is built on top of it).
pub struct EmptyState;

impl StateRead for EmptyState {
    fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(None)
    }

    fn scan_prefix_limit(
        &self,
        _prefix: &[u8],
        _limit: usize,
    ) -> Result<Vec<KeyValue>, StateError> {
        Ok(Vec::new())
    }
}

impl StateRead for std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(std::collections::BTreeMap::get(self, key).cloned())
    }

    fn scan_prefix_limit(&self, prefix: &[u8], limit: usize) -> Result<Vec<KeyValue>, StateError> {
        Ok(self
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// State keys. One byte of kind, then the big-endian or fixed-size id.
pub mod keys {
    use crate::crypto::AccountId;

    pub const ACCOUNT: u8 = b'a';
    pub const SUPPLY: &[u8] = b"s";
    /// The chain parameters from genesis (encoded `ChainParams`).
    pub const PARAMS: &[u8] = b"p";

    pub fn account(id: &AccountId) -> Vec<u8> {
        let mut k = Vec::with_capacity(33);
        k.push(ACCOUNT);
        k.extend_from_slice(&id.0);
        k
    }
}

/// An account's ledger entry. Accounts are never reaped, so a nonce is never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode, Serialize)]
pub struct Account {
    pub free: u64,
    pub nonce: u64,
}

/// Where every issued rao is: `free + staked + burned == issued` after every block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode, Serialize)]
pub struct Supply {
    pub issued: u64,
    pub free: u64,
    pub staked: u64,
    pub burned: u64,
}

impl Supply {
    pub fn is_conserved(&self) -> bool {
        u128::from(self.free)
            .saturating_add(u128::from(self.staked))
            .saturating_add(u128::from(self.burned))
            == u128::from(self.issued)
    }
}

pub(crate) fn read<T: Decode<()>>(
    state: &dyn StateRead,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>, StateError> {
    match state.get(key)? {
        None => Ok(None),
        Some(bytes) => decode_row(key, &bytes, what).map(Some),
    }
}

/// Decode a stored value; one that does not decode is corruption, named by its key.
pub(crate) fn decode_row<T: Decode<()>>(
    key: &[u8],
    value: &[u8],
    what: &'static str,
) -> Result<T, StateError> {
    decode_value(value, what).map_err(|e| StateError::Corrupt {
        key: hex::encode(key),
        reason: e.to_string(),
    })
}

/// The `N` accounts a key ends with after its first `prefix_len` bytes (a vote's voter, a
/// hotkey pool's hotkey, a share row's hotkey and coldkey); any other length is corruption.
pub(crate) fn key_accounts<const N: usize>(
    key: &[u8],
    prefix_len: usize,
    what: &'static str,
) -> Result<[AccountId; N], StateError> {
    let corrupt = || StateError::Corrupt {
        key: hex::encode(key),
        reason: format!("{what} key has the wrong length"),
    };
    let rest = key.get(prefix_len..).ok_or_else(corrupt)?;
    if rest.len() != N.saturating_mul(32) {
        return Err(corrupt());
    }
    let mut out = [AccountId::default(); N];
    for (slot, chunk) in out.iter_mut().zip(rest.chunks_exact(32)) {
        *slot = AccountId(<[u8; 32]>::try_from(chunk).map_err(|_| corrupt())?);
    }
    Ok(out)
}

pub fn account(state: &dyn StateRead, id: &AccountId) -> Result<Account, StateError> {
    Ok(read(state, &keys::account(id), "account")?.unwrap_or_default())
}

pub fn supply(state: &dyn StateRead) -> Result<Supply, StateError> {
    Ok(read(state, keys::SUPPLY, "supply")?.unwrap_or_default())
}

pub fn put_account(overlay: &mut Overlay<'_>, id: &AccountId, account: &Account) {
    overlay.put_value(keys::account(id), account);
}

pub fn put_supply(overlay: &mut Overlay<'_>, supply: &Supply) {
    overlay.put_value(keys::SUPPLY.to_vec(), supply);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accounts at the end of a key: exactly N x 32 bytes after the prefix, else a named
    /// corruption; a value that does not decode is one too.
    #[test]
    fn key_accounts_and_rows_name_their_corruption() {
        let (a, b) = (AccountId([1; 32]), AccountId([2; 32]));
        let mut key = b"Px".to_vec();
        key.extend_from_slice(&a.0);
        key.extend_from_slice(&b.0);
        assert_eq!(key_accounts::<2>(&key, 2, "share").unwrap(), [a, b]);
        let one = key_accounts::<1>(&key, 2, "vote").unwrap_err();
        assert!(
            matches!(one, StateError::Corrupt { reason, .. } if reason == "vote key has the wrong length")
        );
        assert!(key_accounts::<1>(&key[..10], 40, "vote").is_err());
        assert!(decode_row::<u64>(b"k", &[1, 2], "a number").is_err());
        assert_eq!(
            decode_row::<u64>(b"k", &7u64.to_le_bytes(), "a number").unwrap(),
            7
        );
    }
}
