//! Staking on a subnet (R§8.4): TAO is swapped into the subnet's pool and the alpha held
//! for `(hotkey, coldkey)` in the hotkey's share pool, so dividends paid to the hotkey
//! raise every nominator's value pro rata.

use bincode::{Decode, Encode};
use serde::Serialize;

use super::store::{put_root, root, DEFAULT_TAKE, ROOT};
use super::{
    debit, existing_hotkey_owner, move_free_to_staked, put_subnet, subnet, Netuid, Subnet,
    SubnetError, SubnetParams, TxFailure,
};
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

pub use super::store::{hotkey_alpha, stake_keys as keys, HotkeyAlpha};

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

/// Store a position's shares and keep the coldkey's position index in step with it.
fn put_shares(
    o: &mut Overlay<'_>,
    netuid: Netuid,
    hotkey: &AccountId,
    coldkey: &AccountId,
    before: u128,
    shares: u128,
) {
    let key = keys::shares(netuid, hotkey, coldkey);
    let index = keys::position(coldkey, netuid, hotkey);
    if shares == 0 {
        o.delete(key);
        if before != 0 {
            o.delete(index);
        }
    } else {
        o.put_value(key, &shares);
        if before == 0 {
            o.put(index, Vec::new());
        }
    }
}

/// Every `(netuid, hotkey)` where `coldkey` holds stake, from the position index.
pub fn positions(
    s: &dyn StateRead,
    coldkey: &AccountId,
) -> Result<Vec<(Netuid, AccountId)>, StateError> {
    let prefix = keys::positions_of(coldkey);
    let mut out = Vec::new();
    for (k, _) in s.scan_prefix(&prefix)? {
        let rest = k.get(prefix.len()..).unwrap_or_default();
        let netuid = rest.get(..2).and_then(|n| <[u8; 2]>::try_from(n).ok());
        let hotkey = rest.get(2..).and_then(|h| <[u8; 32]>::try_from(h).ok());
        let (Some(netuid), Some(hotkey)) = (netuid, hotkey) else {
            return Err(StateError::Corrupt {
                key: hex::encode(&k),
                reason: "position index key has the wrong length".into(),
            });
        };
        out.push((u16::from_be_bytes(netuid), AccountId(hotkey)));
    }
    Ok(out)
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
        u128::from(alpha)
            .saturating_mul(pool.total_shares)
            .checked_div(u128::from(pool.total_alpha))
            .unwrap_or(0)
    };
    pool.total_alpha = pool.total_alpha.saturating_add(alpha);
    pool.total_shares = pool.total_shares.saturating_add(minted);
    let before = shares(o, netuid, hotkey, coldkey)?;
    put_shares(
        o,
        netuid,
        hotkey,
        coldkey,
        before,
        before.saturating_add(minted),
    );
    o.put_value(keys::hotkey_alpha(netuid, hotkey), &pool);
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
    o.put_value(keys::hotkey_alpha(netuid, hotkey), &pool);
    Ok(())
}

/// Take `alpha` from `(hotkey, coldkey)`; returns the alpha actually removed (all of it when
/// the request is within a share's rounding of the whole position).
pub(crate) fn debit_alpha(
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
    // burn <= mine (clamped above).
    put_shares(o, netuid, hotkey, coldkey, mine, mine.saturating_sub(burn));
    o.put_value(keys::hotkey_alpha(netuid, hotkey), &pool);
    Ok(alpha)
}

/// One leg of a stake trade: a swap on a subnet's pool, or 1:1 on root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Input actually used (TAO for a buy, alpha for a sell), fee included.
    pub used: u64,
    pub out: u64,
    /// Swap fee in TAO, for the proposer.
    pub fee: u64,
    pub partial: bool,
}

fn started_subnet(o: &Overlay<'_>, netuid: Netuid) -> Result<Subnet, TxFailure> {
    let sn = subnet(o, netuid)?.ok_or(SubnetError::NoSuchSubnet(netuid))?;
    if sn.first_emission_block.is_none() {
        return Err(SubnetError::NotStarted(netuid).into());
    }
    Ok(sn)
}

/// Check that `netuid` accepts stake: root always does, a subnet once started.
fn check_tradable(o: &Overlay<'_>, netuid: Netuid) -> Result<(), TxFailure> {
    if netuid != ROOT {
        started_subnet(o, netuid)?;
    }
    Ok(())
}

/// Swap on `netuid`'s pool (root: 1:1, no fee, no pool), charging `fee_rate` on the input
/// of a buy; a sale is fee-free and the caller takes its fee from the proceeds. Moves the
/// pool or the root total; positions and balances are the caller's.
fn trade(
    o: &mut Overlay<'_>,
    netuid: Netuid,
    direction: Direction,
    amount: u64,
    fee_rate: u16,
    price_limit: Option<u64>,
) -> Result<Fill, TxFailure> {
    let buying = direction == Direction::Buy;
    if netuid == ROOT {
        let mut r = root(o)?;
        r.total_stake = if buying {
            r.total_stake.saturating_add(amount)
        } else {
            r.total_stake.saturating_sub(amount)
        };
        put_root(o, &r);
        return Ok(Fill {
            used: amount,
            out: amount,
            fee: 0,
            partial: false,
        });
    }
    let mut sn = started_subnet(o, netuid)?;
    let fee_rate = if buying { fee_rate } else { 0 };
    let swap = sn.pool.swap(direction, amount, fee_rate, price_limit)?;
    sn.pool = swap.after;
    sn.alpha_out = if buying {
        sn.alpha_out.saturating_add(swap.amount_out)
    } else {
        sn.alpha_out.saturating_sub(swap.amount_in)
    };
    put_subnet(o, &sn);
    Ok(Fill {
        used: swap.amount_in,
        out: swap.amount_out,
        fee: swap.fee,
        partial: swap.partial,
    })
}

/// The proposer's cut of a subnet sale's TAO proceeds (the pool fee rate).
fn proceeds_fee(netuid: Netuid, tao: u64) -> u64 {
    if netuid == ROOT {
        return 0;
    }
    crate::amount::share_u16(tao, u64::from(DEFAULT_FEE_RATE))
}

fn check_partial(fill: &Fill, limit: Option<Limit>) -> Result<(), TxFailure> {
    if fill.partial && !limit.is_some_and(|l| l.allow_partial) {
        return Err(SubnetError::SlippageTooHigh.into());
    }
    Ok(())
}

fn check_position(
    o: &Overlay<'_>,
    netuid: Netuid,
    hotkey: &AccountId,
    coldkey: &AccountId,
    alpha: u64,
) -> Result<u64, TxFailure> {
    let value = stake_of(o, netuid, hotkey, coldkey)?;
    if alpha > value {
        return Err(SubnetError::NotEnoughStake {
            requested: alpha,
            available: value,
        }
        .into());
    }
    Ok(value)
}

/// Staked TAO leaves the stake: `amount` rao become free balance (somebody's).
fn move_staked_to_free(o: &mut Overlay<'_>, amount: u64) -> Result<(), StateError> {
    let mut s = state::supply(o)?;
    s.staked = s.staked.saturating_sub(amount);
    s.free = s.free.saturating_add(amount);
    state::put_supply(o, &s);
    Ok(())
}

/// `add_stake(hotkey, netuid, tao)` by `coldkey`: buy alpha with `tao` (fee to the proposer,
/// returned) and stake it on `hotkey`. On root the TAO is staked 1:1 without a fee.
pub fn add_stake(
    o: &mut Overlay<'_>,
    coldkey: &AccountId,
    hotkey: &AccountId,
    netuid: Netuid,
    tao: u64,
    limit: Option<Limit>,
) -> Result<(u64, u64), TxFailure> {
    o.atomic(|o| {
        check_tradable(o, netuid)?;
        existing_hotkey_owner(o, hotkey)?;
        let fill = trade(
            o,
            netuid,
            Direction::Buy,
            tao,
            DEFAULT_FEE_RATE,
            limit.map(|l| l.price_rao),
        )?;
        check_partial(&fill, limit)?;
        // The fee is part of what was used.
        if fill.used.saturating_sub(fill.fee) < MIN_STAKE_RAO {
            return Err(SubnetError::StakeTooSmall { min: MIN_STAKE_RAO }.into());
        }
        debit(o, coldkey, fill.used, "staking")?;
        credit_alpha(o, netuid, hotkey, coldkey, fill.out)?;
        move_free_to_staked(o, fill.used.saturating_sub(fill.fee))?;
        Ok((fill.out, fill.fee))
    })
}

/// `remove_stake(hotkey, netuid, alpha)` by `coldkey`: sell alpha for TAO. The fee is taken
/// from the TAO proceeds (the proposer's share, returned) rather than from the alpha input.
/// Returns (TAO to the coldkey, fee).
pub fn remove_stake(
    o: &mut Overlay<'_>,
    coldkey: &AccountId,
    hotkey: &AccountId,
    netuid: Netuid,
    alpha: u64,
    limit: Option<Limit>,
) -> Result<(u64, u64), TxFailure> {
    o.atomic(|o| {
        check_tradable(o, netuid)?;
        let value = check_position(o, netuid, hotkey, coldkey, alpha)?;
        let fill = trade(
            o,
            netuid,
            Direction::Sell,
            alpha,
            0,
            limit.map(|l| l.price_rao),
        )?;
        check_partial(&fill, limit)?;
        if fill.used != value && fill.out < MIN_STAKE_RAO {
            return Err(SubnetError::StakeTooSmall { min: MIN_STAKE_RAO }.into());
        }
        debit_alpha(o, netuid, hotkey, coldkey, fill.used)?;
        let fee = proceeds_fee(netuid, fill.out);
        let mut acc = state::account(o, coldkey)?;
        // fee <= out: a share of it.
        acc.free = acc.free.saturating_add(fill.out.saturating_sub(fee));
        state::put_account(o, coldkey, &acc);
        // All proceeds become free balance: the caller's part here, the fee at the proposer.
        move_staked_to_free(o, fill.out)?;
        Ok((fill.out.saturating_sub(fee), fee))
    })
}

/// A stake position: alpha of `netuid` on `hotkey` owned by `coldkey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub netuid: Netuid,
    pub hotkey: AccountId,
    pub coldkey: AccountId,
}

/// Move `alpha` from one position to another (R§8.4): within one subnet a share transfer
/// (no swap, no fee); across subnets a sell on the origin pool and a buy on the
/// destination's, with the swap fee charged once (on the sale's proceeds, or on the buy
/// when the origin is root). Returns (alpha credited, fee).
pub fn move_position(
    o: &mut Overlay<'_>,
    from: Position,
    to: Position,
    alpha: u64,
) -> Result<(u64, u64), TxFailure> {
    o.atomic(|o| {
        if from == to {
            return Err(SubnetError::SamePosition.into());
        }
        check_tradable(o, from.netuid)?;
        check_tradable(o, to.netuid)?;
        existing_hotkey_owner(o, &to.hotkey)?;
        check_position(o, from.netuid, &from.hotkey, &from.coldkey, alpha)?;
        if alpha == 0 {
            return Err(SubnetError::StakeTooSmall { min: 1 }.into());
        }
        if from.netuid == to.netuid {
            let moved = debit_alpha(o, from.netuid, &from.hotkey, &from.coldkey, alpha)?;
            credit_alpha(o, to.netuid, &to.hotkey, &to.coldkey, moved)?;
            return Ok((moved, 0));
        }
        let sold = trade(o, from.netuid, Direction::Sell, alpha, 0, None)?;
        let sell_fee = proceeds_fee(from.netuid, sold.out);
        let tao = sold.out.saturating_sub(sell_fee);
        if tao < MIN_STAKE_RAO {
            return Err(SubnetError::StakeTooSmall { min: MIN_STAKE_RAO }.into());
        }
        let buy_fee_rate = if from.netuid == ROOT {
            DEFAULT_FEE_RATE
        } else {
            0
        };
        let bought = trade(o, to.netuid, Direction::Buy, tao, buy_fee_rate, None)?;
        debit_alpha(o, from.netuid, &from.hotkey, &from.coldkey, sold.used)?;
        credit_alpha(o, to.netuid, &to.hotkey, &to.coldkey, bought.out)?;
        // The TAO stays staked, except the fee, which becomes the proposer's free balance.
        let fee = sell_fee.saturating_add(bought.fee);
        move_staked_to_free(o, fee)?;
        Ok((bought.out, fee))
    })
}

/// `transfer_stake`: give stake to another coldkey, on the same hotkey; both subnets must
/// allow transfers (R§3.3 TransferToggle).
pub fn transfer_stake(
    o: &mut Overlay<'_>,
    from: Position,
    dest_coldkey: &AccountId,
    dest_netuid: Netuid,
    alpha: u64,
) -> Result<(u64, u64), TxFailure> {
    for netuid in [from.netuid, dest_netuid] {
        if netuid == ROOT {
            continue;
        }
        if let Some(sn) = subnet(o, netuid)? {
            if !sn.hyper.transfer_allowed {
                return Err(SubnetError::TransferDisallowed(netuid).into());
            }
        }
    }
    let to = Position {
        netuid: dest_netuid,
        hotkey: from.hotkey,
        coldkey: *dest_coldkey,
    };
    move_position(o, from, to, alpha)
}

/// `unstake_all(hotkey)`: sell every position the coldkey holds on `hotkey`, root included.
/// Returns (TAO to the coldkey, fees).
pub fn unstake_all(
    o: &mut Overlay<'_>,
    coldkey: &AccountId,
    hotkey: &AccountId,
) -> Result<(u64, u64), TxFailure> {
    o.atomic(|o| {
        let mut got = (0u64, 0u64);
        let mut any = false;
        // Positions on a subnet being dissolved are paid out by the coinbase: skipped.
        let dissolving: Vec<Netuid> = super::dissolve::dissolving(o)?
            .iter()
            .map(|d| d.netuid)
            .collect();
        for (netuid, hk) in positions(o, coldkey)? {
            if hk != *hotkey || dissolving.contains(&netuid) {
                continue;
            }
            let value = stake_of(o, netuid, hotkey, coldkey)?;
            if value == 0 {
                continue;
            }
            any = true;
            let (tao, fee) = remove_stake(o, coldkey, hotkey, netuid, value, None)?;
            got = (got.0.saturating_add(tao), got.1.saturating_add(fee));
        }
        if !any {
            return Err(SubnetError::NoStakeOnHotkey(*hotkey).into());
        }
        Ok(got)
    })
}

/// A hotkey's delegate take, stored once its owner changes it (R§2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Delegate {
    pub take: u16,
    pub last_change: u64,
}

fn delegate_key(hotkey: &AccountId) -> Vec<u8> {
    let mut k = vec![b't'];
    k.extend_from_slice(&hotkey.0);
    k
}

/// The take `hotkey` charges on validator dividends (u16 fraction; default 18%).
pub fn take_of(s: &dyn StateRead, hotkey: &AccountId) -> Result<u16, StateError> {
    let d: Option<Delegate> = read(s, &delegate_key(hotkey), "delegate")?;
    Ok(d.map_or(DEFAULT_TAKE, |d| d.take))
}

/// `increase_take` / `decrease_take` by the hotkey's owner (R§2): strictly up to at most
/// `max_take` (rate limited), or strictly down to at least `min_take`.
pub fn change_take(
    o: &mut Overlay<'_>,
    params: &SubnetParams,
    now: u64,
    coldkey: &AccountId,
    hotkey: &AccountId,
    take: u16,
    increase: bool,
) -> Result<(), TxFailure> {
    if existing_hotkey_owner(o, hotkey)? != *coldkey {
        return Err(SubnetError::NotHotkeyOwner(*hotkey).into());
    }
    let stored: Option<Delegate> = read(o, &delegate_key(hotkey), "delegate")?;
    let current = stored.map_or(DEFAULT_TAKE, |d| d.take);
    let (min, max) = (params.min_take, params.max_take);
    if increase {
        if take <= current {
            return Err(SubnetError::TakeNotIncreasing { current }.into());
        }
        if take > max {
            return Err(SubnetError::TakeOutOfRange { min, max }.into());
        }
        if let Some(d) = stored {
            let next = d.last_change.saturating_add(params.take_rate_limit);
            if now < next {
                return Err(SubnetError::TakeRateLimited { next }.into());
            }
        }
    } else {
        if take >= current {
            return Err(SubnetError::TakeNotDecreasing { current }.into());
        }
        if take < min {
            return Err(SubnetError::TakeOutOfRange { min, max }.into());
        }
    }
    let d = Delegate {
        take,
        last_change: now,
    };
    o.put_value(delegate_key(hotkey), &d);
    Ok(())
}
