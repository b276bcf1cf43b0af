//! Voting power, read from the state at the tally (the state after the last block of the
//! vote, as Cosmos SDK governance does): stake moved during the vote counts where it is
//! when the vote closes.
//!
//! Stake power of a position is its TAO value: root stake 1:1, alpha stake at
//! `tao_weight` x alpha x the subnet's EMA price (the price that a single block cannot
//! move). A hotkey votes the stake of every position on it, except positions whose
//! coldkey votes itself: those count for the coldkey's vote (delegated voting with
//! override).

use std::collections::BTreeMap;

use super::params::{PowerMode, PPM};
use crate::crypto::AccountId;
use crate::genesis::ChainParams;
use crate::pool::{isqrt, PRICE_SCALE};
use crate::state::{self, StateError, StateRead};
use crate::subnet::root::{root, ROOT};
use crate::subnet::stake::{hotkey_alpha, positions, stake_of};
use crate::subnet::{networks, subnet, Netuid};

/// What stake is worth in power: the subnets' EMA prices and `tao_weight`.
pub struct Prices {
    tao_weight_ppm: u64,
    ema: BTreeMap<Netuid, u64>,
}

impl Prices {
    pub fn read(s: &dyn StateRead, params: &ChainParams) -> Result<Self, StateError> {
        let mut ema = BTreeMap::new();
        for n in networks(s)?.netuids {
            if let Some(sn) = subnet(s, n)? {
                ema.insert(n, sn.ema_price_rao);
            }
        }
        Ok(Prices {
            tao_weight_ppm: params.subnets.tao_weight_ppm,
            ema,
        })
    }

    /// The netuids stake can sit on: root, then every subnet.
    pub fn netuids(&self) -> impl Iterator<Item = Netuid> + '_ {
        std::iter::once(ROOT).chain(self.ema.keys().copied())
    }

    /// Power of `alpha` staked on `netuid`, rao.
    pub fn value(&self, netuid: Netuid, alpha: u64) -> u128 {
        if netuid == ROOT {
            return u128::from(alpha);
        }
        let price = u128::from(self.ema.get(&netuid).copied().unwrap_or(0));
        u128::from(alpha)
            .saturating_mul(price)
            .checked_div(PRICE_SCALE)
            .unwrap_or(0)
            .saturating_mul(u128::from(self.tao_weight_ppm))
            .checked_div(u128::from(PPM))
            .unwrap_or(0)
    }
}

/// Power of `coldkey`'s own positions, and of each, by hotkey.
fn own(
    s: &dyn StateRead,
    prices: &Prices,
    coldkey: &AccountId,
) -> Result<Vec<(AccountId, u128)>, StateError> {
    let mut out = Vec::new();
    for (netuid, hotkey) in positions(s, coldkey)? {
        if netuid != ROOT && !prices.ema.contains_key(&netuid) {
            continue; // a subnet being dissolved: its stake is being paid out
        }
        let alpha = stake_of(s, netuid, &hotkey, coldkey)?;
        out.push((hotkey, prices.value(netuid, alpha)));
    }
    Ok(out)
}

/// Power of all the stake on `hotkey`, whoever owns it.
pub fn delegated(
    s: &dyn StateRead,
    prices: &Prices,
    hotkey: &AccountId,
) -> Result<u128, StateError> {
    let mut total: u128 = 0;
    for n in prices.netuids() {
        let alpha = hotkey_alpha(s, n, hotkey)?.total_alpha;
        total = total.saturating_add(prices.value(n, alpha));
    }
    Ok(total)
}

/// Stake power of one account before anyone votes: its own positions plus the stake on it
/// as a hotkey (what the proposal threshold reads).
pub fn stake_power(
    s: &dyn StateRead,
    prices: &Prices,
    who: &AccountId,
) -> Result<u128, StateError> {
    let own: u128 = own(s, prices, who)?
        .iter()
        .fold(0, |a, (_, v)| a.saturating_add(*v));
    // A coldkey's stake on its own hotkey is both "own" and "delegated": count it once.
    let on_self: u128 = own_on(s, prices, who, who)?;
    Ok(own
        .saturating_add(delegated(s, prices, who)?)
        .saturating_sub(on_self))
}

fn own_on(
    s: &dyn StateRead,
    prices: &Prices,
    coldkey: &AccountId,
    hotkey: &AccountId,
) -> Result<u128, StateError> {
    Ok(own(s, prices, coldkey)?
        .iter()
        .filter(|(h, _)| h == hotkey)
        .fold(0, |a, (_, v)| a.saturating_add(*v)))
}

/// All stake power on chain: root stake plus the value of every subnet's staked alpha.
pub fn total_stake_power(s: &dyn StateRead, prices: &Prices) -> Result<u128, StateError> {
    let mut total = u128::from(root(s)?.total_stake);
    for n in networks(s)?.netuids {
        let Some(sn) = subnet(s, n)? else { continue };
        let pending = sn
            .pending_server
            .saturating_add(sn.pending_validator)
            .saturating_add(sn.pending_owner)
            .saturating_add(sn.pending_root);
        let held = sn
            .alpha_out
            .saturating_sub(pending)
            .saturating_sub(sn.protocol_alpha);
        total = total.saturating_add(prices.value(n, held));
    }
    Ok(total)
}

/// The root members, largest root stake first (ties: smaller hotkey first).
pub fn root_members_by_stake(s: &dyn StateRead) -> Result<Vec<(AccountId, u64)>, StateError> {
    let mut out = Vec::new();
    for m in root(s)?.members {
        out.push((m.hotkey, hotkey_alpha(s, ROOT, &m.hotkey)?.total_alpha));
    }
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// The accounts that may vote under `mode` with one vote each (validator and senate
/// modes); None: anyone with stake power (stake and quadratic).
pub fn seats(
    s: &dyn StateRead,
    mode: PowerMode,
    senate_size: u16,
) -> Result<Option<Vec<AccountId>>, StateError> {
    Ok(match mode {
        PowerMode::Stake | PowerMode::Quadratic => None,
        PowerMode::Validator => Some(root_members_by_stake(s)?.into_iter().map(|m| m.0).collect()),
        PowerMode::Senate => Some(
            root_members_by_stake(s)?
                .into_iter()
                .take(usize::from(senate_size))
                .map(|m| m.0)
                .collect(),
        ),
    })
}

/// Each voter's power at the tally, in the mode's units, and the turnout and total in
/// the units the quorum reads (stake power for stake and quadratic; seats otherwise).
pub struct Weighed {
    pub power: BTreeMap<AccountId, u128>,
    pub turnout: u128,
    pub total: u128,
}

/// Weigh `voters` (in any order) under `mode`.
pub fn weigh(
    s: &dyn StateRead,
    params: &ChainParams,
    voters: &[AccountId],
) -> Result<Weighed, StateError> {
    let mode = params.gov.voting_power;
    if let Some(seats) = seats(s, mode, params.gov.senate_size)? {
        let power: BTreeMap<AccountId, u128> = voters
            .iter()
            .map(|v| (*v, u128::from(seats.contains(v))))
            .collect();
        let turnout = power.values().sum::<u128>();
        return Ok(Weighed {
            power,
            turnout,
            total: u128::try_from(seats.len()).unwrap_or(u128::MAX),
        });
    }
    let prices = Prices::read(s, params)?;
    // Each voter's own positions, and what voting coldkeys take away from each hotkey.
    let mut owns: BTreeMap<AccountId, Vec<(AccountId, u128)>> = BTreeMap::new();
    let mut overridden: BTreeMap<AccountId, u128> = BTreeMap::new();
    for v in voters {
        let positions = own(s, &prices, v)?;
        for (hotkey, value) in &positions {
            let o = overridden.entry(*hotkey).or_default();
            *o = o.saturating_add(*value);
        }
        owns.insert(*v, positions);
    }
    let mut power = BTreeMap::new();
    let mut turnout: u128 = 0;
    for v in voters {
        let own: u128 = owns
            .get(v)
            .map_or(0, |p| p.iter().fold(0, |a, (_, x)| a.saturating_add(*x)));
        let votes_for_others =
            delegated(s, &prices, v)?.saturating_sub(overridden.get(v).copied().unwrap_or(0));
        let linear = own.saturating_add(votes_for_others);
        turnout = turnout.saturating_add(linear);
        let p = if mode == PowerMode::Quadratic {
            isqrt(linear)
        } else {
            linear
        };
        power.insert(*v, p);
    }
    Ok(Weighed {
        power,
        turnout,
        total: total_stake_power(s, &prices)?,
    })
}

/// Every hotkey holding stake and the stake power on it (what it votes when none of its
/// nominators votes itself), from the hotkey pools: one row per (subnet, hotkey).
pub fn hotkey_powers(
    s: &dyn StateRead,
    prices: &Prices,
) -> Result<BTreeMap<AccountId, u128>, StateError> {
    let mut out: BTreeMap<AccountId, u128> = BTreeMap::new();
    for n in prices.netuids() {
        let prefix = {
            let mut k = vec![crate::subnet::stake::keys::HOTKEY_ALPHA];
            k.extend_from_slice(&n.to_be_bytes());
            k
        };
        for (k, v) in s.scan_prefix(&prefix)? {
            let [hotkey] = state::key_accounts(&k, prefix.len(), "hotkey alpha")?;
            let pool: crate::subnet::store::HotkeyAlpha =
                state::decode_row(&k, &v, "hotkey alpha")?;
            let e = out.entry(hotkey).or_default();
            *e = e.saturating_add(prices.value(n, pool.total_alpha));
        }
    }
    Ok(out)
}

/// Governance power by holder as it stands when nobody overrides a hotkey: per hotkey in
/// stake and quadratic modes, one per seat in validator and senate modes.
pub fn holders(
    s: &dyn StateRead,
    params: &ChainParams,
) -> Result<Vec<(AccountId, u128)>, StateError> {
    let mode = params.gov.voting_power;
    if let Some(seats) = seats(s, mode, params.gov.senate_size)? {
        return Ok(seats.into_iter().map(|a| (a, 1)).collect());
    }
    let prices = Prices::read(s, params)?;
    Ok(hotkey_powers(s, &prices)?
        .into_iter()
        .map(|(a, p)| {
            (
                a,
                if mode == PowerMode::Quadratic {
                    isqrt(p)
                } else {
                    p
                },
            )
        })
        .collect())
}
