//! The rows several subnet modules share, at the bottom of the subnet layer: the root
//! network's record, a hotkey's alpha pool and the stake keys, and the default take. It
//! imports no other subnet module, so `stake`, `root` and `coinbase` depend on it and
//! not on each other in a circle.

use bincode::{Decode, Encode};
use serde::Serialize;

use super::Netuid;
use crate::crypto::AccountId;
use crate::state::{read, Overlay, StateError, StateRead};

/// Delegate take on validator dividends until the owner changes it: 18% (R§2 default).
pub const DEFAULT_TAKE: u16 = 11_796;

pub const ROOT: Netuid = 0;

/// One root member: its hotkey and, in `root_weights` mode, its weights over netuids.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct RootMember {
    pub hotkey: AccountId,
    pub weights: Vec<(Netuid, u16)>,
    pub last_update: u64,
}

/// The root network's record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize)]
pub struct RootNet {
    pub members: Vec<RootMember>,
    /// TAO staked on root, rao (equals the sum of every hotkey's root alpha).
    pub total_stake: u64,
    pub last_registration_block: Option<u64>,
    /// `root_weights` mode: each subnet's share of the block emission, parts per billion,
    /// from the last root epoch.
    pub emission_ppb: Vec<(Netuid, u64)>,
    pub last_epoch_block: u64,
}

pub const ROOT_KEY: &[u8] = b"r";

pub fn root(s: &dyn StateRead) -> Result<RootNet, StateError> {
    Ok(read(s, ROOT_KEY, "root network")?.unwrap_or_default())
}

pub fn put_root(o: &mut Overlay<'_>, r: &RootNet) {
    o.put_value(ROOT_KEY.to_vec(), r);
}

/// A hotkey's alpha on one subnet and the shares it is divided into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode, Serialize)]
pub struct HotkeyAlpha {
    pub total_alpha: u64,
    pub total_shares: u128,
}

impl HotkeyAlpha {
    pub fn value_of(&self, shares: u128) -> u64 {
        if self.total_shares == 0 {
            return 0;
        }
        shares
            .saturating_mul(u128::from(self.total_alpha))
            .checked_div(self.total_shares)
            .map_or(0, |v| u64::try_from(v).unwrap_or(u64::MAX))
    }
}

pub mod stake_keys {
    use super::Netuid;
    use crate::crypto::AccountId;

    pub const HOTKEY_ALPHA: u8 = b'k';
    pub const SHARES: u8 = b'x';

    pub fn hotkey_alpha(netuid: Netuid, hotkey: &AccountId) -> Vec<u8> {
        let mut k = vec![HOTKEY_ALPHA];
        k.extend_from_slice(&netuid.to_be_bytes());
        k.extend_from_slice(&hotkey.0);
        k
    }

    pub const POSITION: u8 = b'i';

    /// Index entry: `coldkey` holds stake on `hotkey` in `netuid`.
    pub fn position(coldkey: &AccountId, netuid: Netuid, hotkey: &AccountId) -> Vec<u8> {
        let mut k = positions_of(coldkey);
        k.extend_from_slice(&netuid.to_be_bytes());
        k.extend_from_slice(&hotkey.0);
        k
    }

    pub fn positions_of(coldkey: &AccountId) -> Vec<u8> {
        let mut k = vec![POSITION];
        k.extend_from_slice(&coldkey.0);
        k
    }

    pub fn shares(netuid: Netuid, hotkey: &AccountId, coldkey: &AccountId) -> Vec<u8> {
        let mut k = vec![SHARES];
        k.extend_from_slice(&netuid.to_be_bytes());
        k.extend_from_slice(&hotkey.0);
        k.extend_from_slice(&coldkey.0);
        k
    }
}

pub fn hotkey_alpha(
    s: &dyn StateRead,
    netuid: Netuid,
    hotkey: &AccountId,
) -> Result<HotkeyAlpha, StateError> {
    Ok(read(s, &stake_keys::hotkey_alpha(netuid, hotkey), "hotkey alpha")?.unwrap_or_default())
}
