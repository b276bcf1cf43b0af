//! Staking on a subnet (R§8.4): TAO is swapped into the subnet's pool and the alpha held
//! for `(hotkey, coldkey)` in the hotkey's share pool, so dividends paid to the hotkey
//! raise every nominator's value pro rata.

use bincode::{Decode, Encode};
use serde::Serialize;

use super::{
    debit, existing_hotkey_owner, move_free_to_staked, put_subnet, subnet, Netuid, SubnetError,
    TxFailure,
};
use crate::codec::encode_value;
use crate::crypto::AccountId;
use crate::pool::{Direction, DEFAULT_FEE_RATE};
use crate::state::{self, read, Overlay, StateError, StateRead};

/// Smallest stake operation: 0.002 TAO (R§3.3 `DefaultMinStake`).
pub const MIN_STAKE_RAO: u64 = 2_000_000;

/// A price limit on a stake operation (R§8.4 `*_limit` calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// rao per alpha: the highest price a buy may reach, the lowest a sell may reach.
    pub price_rao: u64,
    /// Execute the part that fits under the limit instead of failing.
    pub allow_partial: bool,
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
        u64::try_from(shares.saturating_mul(u128::from(self.total_alpha)) / self.total_shares)
            .unwrap_or(u64::MAX)
    }
}

pub mod keys {
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
    Ok(read(s, &keys::hotkey_alpha(netuid, hotkey), "hotkey alpha")?.unwrap_or_default())
}

pub fn shares(
    s: &dyn StateRead,
    netuid: Netuid,
    hotkey: &AccountId,
    coldkey: &AccountId,
) -> Result<u128, StateError> {
    Ok(read(s, &keys::shares(netuid, hotkey, coldkey), "stake shares")?.unwrap_or(0))
}

/// Alpha value of `coldkey`'s stake on `hotkey` in `netuid`.
pub fn stake_of(
    s: &dyn StateRead,
    netuid: Netuid,
    hotkey: &AccountId,
    coldkey: &AccountId,
) -> Result<u64, StateError> {
    Ok(hotkey_alpha(s, netuid, hotkey)?.value_of(shares(s, netuid, hotkey, coldkey)?))
}

fn put_shares(
    o: &mut Overlay<'_>,
    netuid: Netuid,
    hotkey: &AccountId,
    coldkey: &AccountId,
    shares: u128,
) {
    let key = keys::shares(netuid, hotkey, coldkey);
    if shares == 0 {
        o.delete(key);
    } else {
        o.put(key, encode_value(&shares));
    }
}

/// Credit `alpha` to `(hotkey, coldkey)`: mint shares at the current share price.
pub fn credit_alpha(
    o: &mut Overlay<'_>,
    netuid: Netuid,
    hotkey: &AccountId,
    coldkey: &AccountId,
    alpha: u64,
) -> Result<(), StateError> {
    if alpha == 0 {
        return Ok(());
    }
    let mut pool = hotkey_alpha(o, netuid, hotkey)?;
    let minted = if pool.total_shares == 0 || pool.total_alpha == 0 {
        u128::from(alpha)
    } else {
        u128::from(alpha).saturating_mul(pool.total_shares) / u128::from(pool.total_alpha)
    };
    pool.total_alpha = pool.total_alpha.saturating_add(alpha);
    pool.total_shares = pool.total_shares.saturating_add(minted);
    let mine = shares(o, netuid, hotkey, coldkey)?.saturating_add(minted);
    put_shares(o, netuid, hotkey, coldkey, mine);
    o.put(keys::hotkey_alpha(netuid, hotkey), encode_value(&pool));
    Ok(())
}

/// Raise a hotkey's alpha without minting shares: every nominator's value grows pro rata.
pub fn distribute_to_nominators(
    o: &mut Overlay<'_>,
    netuid: Netuid,
    hotkey: &AccountId,
    alpha: u64,
) -> Result<(), StateError> {
    let mut pool = hotkey_alpha(o, netuid, hotkey)?;
    pool.total_alpha = pool.total_alpha.saturating_add(alpha);
    o.put(keys::hotkey_alpha(netuid, hotkey), encode_value(&pool));
    Ok(())
}

/// Take `alpha` from `(hotkey, coldkey)`; returns the alpha actually removed (all of it when
/// the request is within a share's rounding of the whole position).
fn debit_alpha(
    o: &mut Overlay<'_>,
    netuid: Netuid,
    hotkey: &AccountId,
    coldkey: &AccountId,
    alpha: u64,
) -> Result<u64, TxFailure> {
    let mut pool = hotkey_alpha(o, netuid, hotkey)?;
    let mine = shares(o, netuid, hotkey, coldkey)?;
    let value = pool.value_of(mine);
    if alpha > value {
        return Err(SubnetError::NotEnoughStake {
            requested: alpha,
            available: value,
        }
        .into());
    }
    // Shares to burn, rounded up so a position is never worth more after a removal.
    let burn = if alpha == value {
        mine
    } else {
        let num = u128::from(alpha).saturating_mul(pool.total_shares);
        num.div_ceil(u128::from(pool.total_alpha.max(1))).min(mine)
    };
    pool.total_alpha = pool.total_alpha.saturating_sub(alpha);
    pool.total_shares = pool.total_shares.saturating_sub(burn);
    put_shares(o, netuid, hotkey, coldkey, mine - burn);
    o.put(keys::hotkey_alpha(netuid, hotkey), encode_value(&pool));
    Ok(alpha)
}

/// `add_stake(hotkey, netuid, tao)` by `coldkey`: buy alpha with `tao` (fee to the proposer,
/// returned) and stake it on `hotkey`.
pub fn add_stake(
    o: &mut Overlay<'_>,
    coldkey: &AccountId,
    hotkey: &AccountId,
    netuid: Netuid,
    tao: u64,
    limit: Option<Limit>,
) -> Result<(u64, u64), TxFailure> {
    let mut sn = subnet(o, netuid)?.ok_or(SubnetError::NoSuchSubnet(netuid))?;
    if netuid == 0 {
        return Err(SubnetError::RootNetuid.into());
    }
    if sn.first_emission_block.is_none() {
        return Err(SubnetError::NotStarted(netuid).into());
    }
    existing_hotkey_owner(o, hotkey)?;
    let swap = sn.pool.swap(
        Direction::Buy,
        tao,
        DEFAULT_FEE_RATE,
        limit.map(|l| l.price_rao),
    )?;
    if swap.partial && !limit.is_some_and(|l| l.allow_partial) {
        return Err(SubnetError::SlippageTooHigh.into());
    }
    if swap.amount_in - swap.fee < MIN_STAKE_RAO {
        return Err(SubnetError::StakeTooSmall { min: MIN_STAKE_RAO }.into());
    }
    debit(o, coldkey, swap.amount_in, "staking")?;
    sn.pool = swap.after;
    sn.alpha_out = sn.alpha_out.saturating_add(swap.amount_out);
    put_subnet(o, &sn);
    credit_alpha(o, netuid, hotkey, coldkey, swap.amount_out)?;
    move_free_to_staked(o, swap.amount_in - swap.fee)?;
    Ok((swap.amount_out, swap.fee))
}

/// `remove_stake(hotkey, netuid, alpha)` by `coldkey`: sell alpha for TAO. The fee is taken
/// from the TAO proceeds (the proposer's share, returned) rather than from the alpha input.
pub fn remove_stake(
    o: &mut Overlay<'_>,
    coldkey: &AccountId,
    hotkey: &AccountId,
    netuid: Netuid,
    alpha: u64,
    limit: Option<Limit>,
) -> Result<(u64, u64), TxFailure> {
    let mut sn = subnet(o, netuid)?.ok_or(SubnetError::NoSuchSubnet(netuid))?;
    if sn.first_emission_block.is_none() {
        return Err(SubnetError::NotStarted(netuid).into());
    }
    let value = stake_of(o, netuid, hotkey, coldkey)?;
    if alpha > value {
        return Err(SubnetError::NotEnoughStake {
            requested: alpha,
            available: value,
        }
        .into());
    }
    let swap = sn
        .pool
        .swap(Direction::Sell, alpha, 0, limit.map(|l| l.price_rao))?;
    if swap.partial && !limit.is_some_and(|l| l.allow_partial) {
        return Err(SubnetError::SlippageTooHigh.into());
    }
    let used = swap.amount_in;
    if used != value && swap.amount_out < MIN_STAKE_RAO {
        return Err(SubnetError::StakeTooSmall { min: MIN_STAKE_RAO }.into());
    }
    debit_alpha(o, netuid, hotkey, coldkey, used)?;
    let fee = u64::try_from(u128::from(swap.amount_out) * u128::from(DEFAULT_FEE_RATE) / 65_535)
        .unwrap_or(0);
    sn.pool = swap.after;
    sn.alpha_out = sn.alpha_out.saturating_sub(used);
    put_subnet(o, &sn);
    let mut acc = state::account(o, coldkey)?;
    acc.free = acc.free.saturating_add(swap.amount_out - fee);
    state::put_account(o, coldkey, &acc);
    // All proceeds become free balance: the caller's part here, the fee at the proposer.
    let mut s = state::supply(o)?;
    s.staked = s.staked.saturating_sub(swap.amount_out);
    s.free = s.free.saturating_add(swap.amount_out);
    state::put_supply(o, &s);
    Ok((swap.amount_out - fee, fee))
}
