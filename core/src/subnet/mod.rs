//! Subnets and neuron registration (PROTOCOL §3; R§3.1, R§4.1-4.3).
//!
//! A subnet is created by locking TAO (the lock seeds its pool), owned by a coldkey whose
//! hotkey is uid 0, and started with `start_call`. Neurons register by burning TAO: the
//! payment is swapped into the pool and the bought alpha destroyed, so the TAO stays in the
//! pool and raises its price; each registration multiplies the price by 1.26.

pub mod admin;
pub mod coinbase;
pub mod dissolve;
mod params;
pub mod root;
pub mod serve;
pub mod stake;
pub mod store;
pub mod weights;

use bincode::{Decode, Encode};
use serde::Serialize;

pub use params::{EmissionMode, Hyperparams, SubnetParams};

use crate::crypto::AccountId;
use crate::pool::{Direction, Pool, SwapError, DEFAULT_FEE_RATE, PRICE_SCALE};
use crate::state::read;
use crate::state::{self, Overlay, StateError, StateRead};

pub type Netuid = u16;
pub type Uid = u16;

/// Chain-wide subnet registry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize)]
pub struct Networks {
    /// Netuids in use, ascending.
    pub netuids: Vec<Netuid>,
    pub last_lock_rao: u64,
    pub last_lock_block: u64,
    pub last_registration_block: Option<u64>,
}

/// One subnet's state.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Subnet {
    pub netuid: Netuid,
    pub owner_coldkey: AccountId,
    pub owner_hotkey: AccountId,
    pub registered_at: u64,
    pub lock_rao: u64,
    /// Block of the first emission (set by `start_call`); None until started.
    pub first_emission_block: Option<u64>,
    pub n: u16,
    /// Current neuron registration price, rao.
    pub burn: u64,
    pub pool: Pool,
    /// Alpha held by stakers (outside the pool).
    pub alpha_out: u64,
    pub hyper: Hyperparams,
    pub last_epoch_block: u64,
    pub epoch_index: u64,
    pub pending_server: u64,
    pub pending_validator: u64,
    pub pending_owner: u64,
    /// Alpha owed to root stakers at the next epoch (R§7.4).
    pub pending_root: u64,
    /// `root_weights` mode: TAO emission waiting for the next epoch.
    pub pending_tao: u64,
    /// Alpha bought by the chain with emission it could not inject (R§7.4); counted in
    /// `alpha_out`, owned by nobody.
    pub protocol_alpha: u64,
    /// EMA of the pool price, rao per alpha (for emission shares).
    pub ema_price_rao: u64,
}

/// One registered neuron and its last epoch's results.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Neuron {
    pub hotkey: AccountId,
    pub block_at_registration: u64,
    pub last_update: u64,
    pub weights: Vec<(Uid, u16)>,
    pub bonds: Vec<(Uid, u16)>,
    pub consensus: u16,
    pub incentive: u16,
    pub dividends: u16,
    pub validator_trust: u16,
    pub stake_weight: u16,
    pub emission: u64,
    pub validator_permit: bool,
    pub active: bool,
}

impl SubnetError {
    /// Short stable name for JSON output and RPC error data.
    pub fn kind(&self) -> &'static str {
        match self {
            SubnetError::NoSuchSubnet(_) => "no_such_subnet",
            SubnetError::RootNetuid => "root_netuid",
            SubnetError::NetworkRateLimited { .. } => "network_rate_limited",
            SubnetError::SubnetLimitReached(_) => "subnet_limit_reached",
            SubnetError::HotkeyOwnedByOther(_) => "hotkey_owned_by_other",
            SubnetError::CannotAfford { .. } => "insufficient_funds",
            SubnetError::NotSubnetOwner => "not_subnet_owner",
            SubnetError::AlreadyStarted(_) => "already_started",
            SubnetError::RegistrationDisabled(_) => "registration_disabled",
            SubnetError::AlreadyRegistered(_) => "already_registered",
            SubnetError::NoPruneCandidate => "no_prune_candidate",
            SubnetError::BurnAboveLimit { .. } => "burn_above_limit",
            SubnetError::NotStarted(_) => "subnet_not_started",
            SubnetError::HotkeyNotFound(_) => "hotkey_not_found",
            SubnetError::NotEnoughStake { .. } => "not_enough_stake",
            SubnetError::StakeTooSmall { .. } => "stake_too_small",
            SubnetError::NotRegistered(_) => "not_registered",
            SubnetError::WeightsLengthMismatch { .. } => "weights_length_mismatch",
            SubnetError::TooManyWeights { .. } => "too_many_weights",
            SubnetError::WeightsRateLimited { .. } => "weights_rate_limited",
            SubnetError::NoValidatorPermit => "no_validator_permit",
            SubnetError::DuplicateUids => "duplicate_uids",
            SubnetError::UnknownUid(_) => "unknown_uid",
            SubnetError::TooFewWeights { .. } => "too_few_weights",
            SubnetError::SlippageTooHigh => "slippage_too_high",
            SubnetError::RootRegistrationsPerBlock => "root_registration_rate_limited",
            SubnetError::RootFull { .. } => "root_full",
            SubnetError::RootWeightsDisabled => "root_weights_disabled",
            SubnetError::NotAdmin => "not_admin",
            SubnetError::NotHotkeyOwner(_) => "not_hotkey_owner",
            SubnetError::SamePosition => "same_position",
            SubnetError::TransferDisallowed(_) => "transfer_disallowed",
            SubnetError::NoStakeOnHotkey(_) => "no_stake",
            SubnetError::TakeNotIncreasing { .. } => "take_not_increasing",
            SubnetError::TakeNotDecreasing { .. } => "take_not_decreasing",
            SubnetError::TakeOutOfRange { .. } => "take_out_of_range",
            SubnetError::TakeRateLimited { .. } => "take_rate_limited",
            SubnetError::CommitRevealEnabled => "commit_reveal_enabled",
            SubnetError::CommitRevealDisabled => "commit_reveal_disabled",
            SubnetError::TooManyCommits => "too_many_commits",
            SubnetError::NoMatchingCommit => "no_matching_commit",
            SubnetError::RevealTooEarly { .. } => "reveal_too_early",
            SubnetError::RevealExpired { .. } => "reveal_expired",
            SubnetError::IncorrectVersionKey { .. } => "incorrect_version_key",
            SubnetError::ServeRateLimited { .. } => "serve_rate_limited",
            SubnetError::BadServeAddress(_) => "bad_serve_address",
            SubnetError::UnknownHyperparameter(_) => "unknown_hyperparameter",
            SubnetError::HyperparameterOutOfRange { .. } => "hyperparameter_out_of_range",
            SubnetError::AdminOnlyHyperparameter(_) => "admin_only_hyperparameter",
            SubnetError::AdminFreezeWindow { .. } => "admin_freeze_window",
            SubnetError::HyperparameterRateLimited { .. } => "hyperparameter_rate_limited",
            SubnetError::NoSubnetToPrune => "no_subnet_to_prune",
            SubnetError::Swap(crate::pool::SwapError::InputTooLarge { .. }) => {
                "swap_input_too_large"
            }
            SubnetError::Swap(crate::pool::SwapError::ReservesTooLow { .. }) => "reserves_too_low",
            SubnetError::Swap(crate::pool::SwapError::PriceLimitExceeded { .. }) => {
                "price_limit_exceeded"
            }
            SubnetError::Swap(crate::pool::SwapError::ZeroOutput) => "zero_output",
        }
    }
}

/// A subnet rule was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    #[error("netuid {0} does not exist")]
    NoSuchSubnet(Netuid),
    #[error("netuid 0 is the root network: use root_register")]
    RootNetuid,
    #[error("network registration is rate limited: the next one is allowed at block {next}")]
    NetworkRateLimited { next: u64 },
    #[error("the subnet limit of {0} is reached")]
    SubnetLimitReached(u16),
    #[error("hotkey {0} belongs to another coldkey")]
    HotkeyOwnedByOther(AccountId),
    #[error("insufficient funds: {what} costs {needed} rao, the account has {available} rao")]
    CannotAfford {
        what: &'static str,
        needed: u64,
        available: u64,
    },
    #[error("only the subnet owner may do this")]
    NotSubnetOwner,
    #[error("subnet {0} is already started")]
    AlreadyStarted(Netuid),
    #[error("registration is disabled on subnet {0}")]
    RegistrationDisabled(Netuid),
    #[error("hotkey {0} is already registered on this subnet")]
    AlreadyRegistered(AccountId),
    #[error("subnet is full and every neuron is immune or the owner: nobody can be replaced")]
    NoPruneCandidate,
    #[error("registration price {price} rao is above your limit {limit} rao")]
    BurnAboveLimit { price: u64, limit: u64 },
    #[error("subnet {0} is not started: its owner must send start_call first")]
    NotStarted(Netuid),
    #[error("hotkey {0} is unknown: register it on a subnet first")]
    HotkeyNotFound(AccountId),
    #[error("not enough stake: asked for {requested} alpha rao, the position holds {available}")]
    NotEnoughStake { requested: u64, available: u64 },
    #[error("stake operations must move at least {min} rao")]
    StakeTooSmall { min: u64 },
    #[error("hotkey {0} is not registered on this subnet")]
    NotRegistered(AccountId),
    #[error("{uids} uids but {values} values")]
    WeightsLengthMismatch { uids: usize, values: usize },
    #[error("{given} weights for a subnet of {n} neurons")]
    TooManyWeights { given: usize, n: u16 },
    #[error("weights are rate limited: next allowed at block {next}")]
    WeightsRateLimited { next: u64 },
    #[error("this neuron has no validator permit: only a self-weight is allowed")]
    NoValidatorPermit,
    #[error("the same uid appears twice")]
    DuplicateUids,
    #[error("uid {0} does not exist on this subnet")]
    UnknownUid(Uid),
    #[error("{given} weights, the subnet requires at least {min}")]
    TooFewWeights { given: usize, min: usize },
    #[error("slippage too high: the whole amount would move the price past your limit (allow partial fills or raise the limit)")]
    SlippageTooHigh,
    #[error("one root registration per block: try again next block")]
    RootRegistrationsPerBlock,
    #[error("the root network is full: a newcomer needs more than {needed} rao of root stake")]
    RootFull { needed: u64 },
    #[error("root weights only count in emission_mode = \"root_weights\"")]
    RootWeightsDisabled,
    #[error("only the chain admin may do this")]
    NotAdmin,
    #[error("hotkey {0} is not owned by the signing coldkey")]
    NotHotkeyOwner(AccountId),
    #[error("origin and destination are the same stake position")]
    SamePosition,
    #[error("subnet {0} does not allow stake transfers")]
    TransferDisallowed(Netuid),
    #[error("the signing coldkey has no stake on hotkey {0}")]
    NoStakeOnHotkey(AccountId),
    #[error("increase_take must raise the take above the current {current}")]
    TakeNotIncreasing { current: u16 },
    #[error("decrease_take must lower the take below the current {current}")]
    TakeNotDecreasing { current: u16 },
    #[error("take must be between {min} and {max} (of 65535)")]
    TakeOutOfRange { min: u16, max: u16 },
    #[error("take increases are rate limited: next allowed at block {next}")]
    TakeRateLimited { next: u64 },
    #[error("commit-reveal is on for this subnet: use commit_weights, then reveal_weights")]
    CommitRevealEnabled,
    #[error("commit-reveal is off for this subnet: use set_weights")]
    CommitRevealDisabled,
    #[error("at most 10 unrevealed commits per hotkey")]
    TooManyCommits,
    #[error("no pending commit matches these weights, salt and version key")]
    NoMatchingCommit,
    #[error(
        "too early to reveal: this commit reveals in epoch {epoch}, the subnet is in epoch {now}"
    )]
    RevealTooEarly { epoch: u64, now: u64 },
    #[error("the commit expired: it had to be revealed in epoch {epoch}")]
    RevealExpired { epoch: u64 },
    #[error("version_key {got} is below the subnet's weights_version_key {min}")]
    IncorrectVersionKey { got: u64, min: u64 },
    #[error("serving info is rate limited: next update allowed at block {next}")]
    ServeRateLimited { next: u64 },
    #[error("bad serving address: {0}")]
    BadServeAddress(String),
    #[error("unknown hyperparameter {0:?} (see `agora subnet hyperparams`)")]
    UnknownHyperparameter(String),
    #[error("{name} = {value} is out of range: {rule}")]
    HyperparameterOutOfRange {
        name: &'static str,
        value: u64,
        rule: &'static str,
    },
    #[error("{0} can only be set by the chain admin")]
    AdminOnlyHyperparameter(&'static str),
    #[error("hyperparameters are frozen in the last blocks before an epoch: the next epoch is at block {epoch}")]
    AdminFreezeWindow { epoch: u64 },
    #[error("{name} was changed recently: next change allowed at block {next}")]
    HyperparameterRateLimited { name: &'static str, next: u64 },
    #[error("the subnet limit is reached and every subnet is still immune: nothing can be pruned")]
    NoSubnetToPrune,
    #[error("pool: {0}")]
    Swap(#[from] SwapError),
}

/// How many subnet epochs a block ran: the epoch records its changes write.
pub fn epochs_in(changes: &crate::state::Changes) -> usize {
    changes
        .iter()
        .filter(|(k, v)| v.is_some() && keys::is_epoch_record(k))
        .count()
}

pub mod keys {
    use super::{Netuid, Uid};
    use crate::crypto::AccountId;

    pub const NETWORKS: &[u8] = b"g";
    pub const SUBNET: u8 = b'n';
    pub const NEURON: u8 = b'u';
    pub const UID: u8 = b'h';
    pub const HOTKEY_OWNER: u8 = b'o';
    pub const COMMITS: u8 = b'c';
    pub const SERVE: u8 = b'v';
    pub const EPOCH: u8 = b'e';
    pub const HYPER_SET: u8 = b'y';

    fn prefixed(kind: u8, netuid: Netuid, rest: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(rest.len().saturating_add(3));
        k.push(kind);
        k.extend_from_slice(&netuid.to_be_bytes());
        k.extend_from_slice(rest);
        k
    }

    pub fn subnet(netuid: Netuid) -> Vec<u8> {
        prefixed(SUBNET, netuid, &[])
    }

    pub fn neuron(netuid: Netuid, uid: Uid) -> Vec<u8> {
        prefixed(NEURON, netuid, &uid.to_be_bytes())
    }

    pub fn uid(netuid: Netuid, hotkey: &AccountId) -> Vec<u8> {
        prefixed(UID, netuid, &hotkey.0)
    }

    pub fn commits(netuid: Netuid, hotkey: &AccountId) -> Vec<u8> {
        prefixed(COMMITS, netuid, &hotkey.0)
    }

    pub fn serve(netuid: Netuid, hotkey: &AccountId) -> Vec<u8> {
        prefixed(SERVE, netuid, &hotkey.0)
    }

    pub fn epoch(netuid: Netuid, index: u64) -> Vec<u8> {
        prefixed(EPOCH, netuid, &index.to_be_bytes())
    }

    pub fn epochs(netuid: Netuid) -> Vec<u8> {
        prefixed(EPOCH, netuid, &[])
    }

    /// Whether `key` is an epoch record's (tag, netuid, index).
    pub fn is_epoch_record(key: &[u8]) -> bool {
        key.len() == 11 && key.first() == Some(&EPOCH)
    }

    pub fn hyper_set(netuid: Netuid, name: &str) -> Vec<u8> {
        prefixed(HYPER_SET, netuid, name.as_bytes())
    }

    pub fn hotkey_owner(hotkey: &AccountId) -> Vec<u8> {
        let mut k = vec![HOTKEY_OWNER];
        k.extend_from_slice(&hotkey.0);
        k
    }
}

pub fn networks(s: &dyn StateRead) -> Result<Networks, StateError> {
    Ok(read(s, keys::NETWORKS, "networks")?.unwrap_or_default())
}

pub fn subnet(s: &dyn StateRead, netuid: Netuid) -> Result<Option<Subnet>, StateError> {
    read(s, &keys::subnet(netuid), "subnet")
}

pub fn neuron(s: &dyn StateRead, netuid: Netuid, uid: Uid) -> Result<Option<Neuron>, StateError> {
    read(s, &keys::neuron(netuid, uid), "neuron")
}

pub fn uid_of(
    s: &dyn StateRead,
    netuid: Netuid,
    hotkey: &AccountId,
) -> Result<Option<Uid>, StateError> {
    read(s, &keys::uid(netuid, hotkey), "uid")
}

pub fn hotkey_owner(
    s: &dyn StateRead,
    hotkey: &AccountId,
) -> Result<Option<AccountId>, StateError> {
    read(s, &keys::hotkey_owner(hotkey), "hotkey owner")
}

pub fn put_subnet(o: &mut Overlay<'_>, sn: &Subnet) {
    o.put_value(keys::subnet(sn.netuid), sn);
}

pub fn put_neuron(o: &mut Overlay<'_>, netuid: Netuid, uid: Uid, n: &Neuron) {
    o.put_value(keys::neuron(netuid, uid), n);
}

/// Bind `hotkey` to `coldkey` on first use; refuse a hotkey owned by someone else.
pub fn bind_hotkey(
    o: &mut Overlay<'_>,
    hotkey: &AccountId,
    coldkey: &AccountId,
) -> Result<(), TxFailure> {
    match hotkey_owner(o, hotkey)? {
        Some(owner) if owner != *coldkey => Err(SubnetError::HotkeyOwnedByOther(*hotkey).into()),
        Some(_) => Ok(()),
        None => {
            o.put_value(keys::hotkey_owner(hotkey), coldkey);
            Ok(())
        }
    }
}

/// The owner of a hotkey that has been bound (registered somewhere); an error otherwise.
pub fn existing_hotkey_owner(o: &Overlay<'_>, hotkey: &AccountId) -> Result<AccountId, TxFailure> {
    hotkey_owner(o, hotkey)?.ok_or_else(|| SubnetError::HotkeyNotFound(*hotkey).into())
}

/// A subnet call failed: a broken rule, or a state read failure (internal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxFailure {
    #[error(transparent)]
    Rule(#[from] SubnetError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<SwapError> for TxFailure {
    fn from(e: SwapError) -> Self {
        TxFailure::Rule(e.into())
    }
}

/// Lock cost now (R§3.1): the last lock doubled, decaying linearly back to the minimum.
pub fn lock_cost(nets: &Networks, params: &SubnetParams, now: u64, block_emission: u64) -> u64 {
    let mult: u64 = if nets.last_lock_block != 0 { 2 } else { 1 };
    let interval = params
        .lock_reduction_interval
        .saturating_mul(block_emission)
        / crate::amount::RAO_PER_TAO;
    let decay = match nets.last_lock_rao.checked_div(interval) {
        Some(per_block) => per_block.saturating_mul(now.saturating_sub(nets.last_lock_block)),
        None => u64::MAX, // no emission left: the lock decays at once
    };
    nets.last_lock_rao
        .saturating_mul(mult)
        .saturating_sub(decay)
        .max(params.network_min_lock_rao)
}

pub(crate) fn debit(
    o: &mut Overlay<'_>,
    who: &AccountId,
    amount: u64,
    what: &'static str,
) -> Result<(), TxFailure> {
    let mut acc = state::account(o, who)?;
    if acc.free < amount {
        return Err(SubnetError::CannotAfford {
            what,
            needed: amount,
            available: acc.free,
        }
        .into());
    }
    // Checked above: amount <= free.
    acc.free = acc.free.saturating_sub(amount);
    state::put_account(o, who, &acc);
    Ok(())
}

pub(crate) fn move_free_to_staked(o: &mut Overlay<'_>, amount: u64) -> Result<(), StateError> {
    let mut s = state::supply(o)?;
    s.free = s.free.saturating_sub(amount);
    s.staked = s.staked.saturating_add(amount);
    state::put_supply(o, &s);
    Ok(())
}

/// Median spot price (rao per alpha) of existing subnets with a positive price; 1 TAO if none.
fn median_price(o: &Overlay<'_>, nets: &Networks) -> Result<u64, StateError> {
    let mut prices = Vec::new();
    for n in &nets.netuids {
        if let Some(sn) = subnet(o, *n)? {
            let p = sn.pool.price_rao();
            if p > 0 {
                prices.push(p);
            }
        }
    }
    prices.sort_unstable();
    Ok(match prices.len() {
        0 => PRICE_SCALE as u64,
        len if len % 2 == 1 => prices.get(len / 2).copied().unwrap_or(0),
        len => {
            let (a, b) = (
                prices
                    .get((len / 2).saturating_sub(1))
                    .copied()
                    .unwrap_or(0),
                prices.get(len / 2).copied().unwrap_or(0),
            );
            // The mean of two u64s without overflow.
            (a / 2)
                .saturating_add(b / 2)
                .saturating_add(((a % 2).saturating_add(b % 2)) / 2)
        }
    })
}

/// `register_network(hotkey)` signed by `coldkey` at block `now` (R§3.1).
pub fn register_network(
    o: &mut Overlay<'_>,
    params: &SubnetParams,
    now: u64,
    block_emission: u64,
    coldkey: &AccountId,
    hotkey: &AccountId,
) -> Result<Netuid, TxFailure> {
    let mut nets = networks(o)?;
    if let Some(last) = nets.last_registration_block {
        let next = last.saturating_add(params.network_rate_limit);
        if now < next {
            return Err(SubnetError::NetworkRateLimited { next }.into());
        }
    }
    if nets.netuids.len() >= usize::from(params.subnet_limit) {
        // Full: the lowest-priced subnet past its immunity makes room (R§3.1).
        let victim =
            dissolve::subnet_to_prune(o, params, now)?.ok_or(SubnetError::NoSubnetToPrune)?;
        dissolve::dissolve(o, victim, now)?;
        nets = networks(o)?;
    }
    bind_hotkey(o, hotkey, coldkey)?;
    let lock = lock_cost(&nets, params, now, block_emission);
    debit(o, coldkey, lock, "the subnet lock")?;
    move_free_to_staked(o, lock)?;
    // A netuid still being dissolved keeps its rows until the payout ends: not reused.
    let reserved: Vec<Netuid> = dissolve::dissolving(o)?.iter().map(|d| d.netuid).collect();
    let netuid = (1..=u16::MAX)
        .find(|n| !nets.netuids.contains(n) && !reserved.contains(n))
        .ok_or(SubnetError::SubnetLimitReached(params.subnet_limit))?;
    let price = median_price(o, &nets)?;
    let alpha_in = u128::from(lock)
        .saturating_mul(PRICE_SCALE)
        .checked_div(u128::from(price.max(1)))
        .map_or(0, |v| u64::try_from(v).unwrap_or(u64::MAX));
    let hyper = params.defaults.clone();
    let tempo = hyper.tempo.max(1);
    let sn = Subnet {
        netuid,
        owner_coldkey: *coldkey,
        owner_hotkey: *hotkey,
        registered_at: now,
        lock_rao: lock,
        first_emission_block: None,
        n: 1,
        burn: hyper.burn,
        pool: Pool {
            tao: lock,
            alpha: alpha_in,
        },
        alpha_out: 0,
        last_epoch_block: now.saturating_sub(u64::from(netuid).checked_rem(tempo).unwrap_or(0)),
        epoch_index: 0,
        pending_server: 0,
        pending_validator: 0,
        pending_owner: 0,
        pending_root: 0,
        pending_tao: 0,
        protocol_alpha: 0,
        ema_price_rao: price,
        hyper,
    };
    put_subnet(o, &sn);
    let owner = new_neuron(*hotkey, now);
    put_neuron(o, netuid, 0, &owner);
    o.put_value(keys::uid(netuid, hotkey), &0u16);
    nets.netuids.push(netuid);
    nets.netuids.sort_unstable();
    nets.last_lock_rao = lock;
    nets.last_lock_block = now;
    nets.last_registration_block = Some(now);
    o.put_value(keys::NETWORKS.to_vec(), &nets);
    Ok(netuid)
}

/// A freshly registered neuron: no weights, bonds or results yet.
pub fn new_neuron(hotkey: AccountId, now: u64) -> Neuron {
    Neuron {
        hotkey,
        block_at_registration: now,
        last_update: now,
        weights: Vec::new(),
        bonds: Vec::new(),
        consensus: 0,
        incentive: 0,
        dividends: 0,
        validator_trust: 0,
        stake_weight: 0,
        emission: 0,
        validator_permit: false,
        active: true,
    }
}

/// A subnet a call names: not root (netuid 0), and existing.
pub(crate) fn named_subnet(o: &Overlay<'_>, netuid: Netuid) -> Result<Subnet, TxFailure> {
    if netuid == 0 {
        return Err(SubnetError::RootNetuid.into());
    }
    Ok(subnet(o, netuid)?.ok_or(SubnetError::NoSuchSubnet(netuid))?)
}

fn owned_subnet(o: &Overlay<'_>, netuid: Netuid, coldkey: &AccountId) -> Result<Subnet, TxFailure> {
    let sn = named_subnet(o, netuid)?;
    if sn.owner_coldkey != *coldkey {
        return Err(SubnetError::NotSubnetOwner.into());
    }
    Ok(sn)
}

/// `start_call(netuid)`: the owner starts emissions and trading (R§3.1).
pub fn start_call(
    o: &mut Overlay<'_>,
    now: u64,
    coldkey: &AccountId,
    netuid: Netuid,
) -> Result<(), TxFailure> {
    let mut sn = owned_subnet(o, netuid, coldkey)?;
    if sn.first_emission_block.is_some() {
        return Err(SubnetError::AlreadyStarted(netuid).into());
    }
    sn.first_emission_block = Some(now.saturating_add(1));
    put_subnet(o, &sn);
    Ok(())
}

/// The uid a full subnet gives up for a newcomer (R§4.3): the lowest last-epoch emission
/// among non-immune neurons (ties: earlier registration, then lower uid), never the owner;
/// from the immune ones only when too few are not immune.
fn prune_candidate(o: &Overlay<'_>, sn: &Subnet, now: u64) -> Result<Option<Uid>, StateError> {
    let mut immune = Vec::new();
    let mut open = Vec::new();
    for uid in 0..sn.n {
        let Some(nr) = neuron(o, sn.netuid, uid)? else {
            continue;
        };
        if nr.hotkey == sn.owner_hotkey {
            continue;
        }
        let key = (nr.emission, nr.block_at_registration, uid);
        if now.saturating_sub(nr.block_at_registration) < sn.hyper.immunity_period {
            immune.push(key);
        } else {
            open.push(key);
        }
    }
    let pool = if open.len() > usize::from(sn.hyper.min_non_immune_uids) {
        open
    } else {
        immune.into_iter().chain(open).collect()
    };
    Ok(pool.into_iter().min().map(|(_, _, uid)| uid))
}

/// `burned_register(netuid, hotkey)` signed by `coldkey` (R§4.1). Returns the uid and the
/// swap fee (paid to the proposer by the caller).
pub fn burned_register(
    o: &mut Overlay<'_>,
    now: u64,
    coldkey: &AccountId,
    netuid: Netuid,
    hotkey: &AccountId,
    limit_rao: Option<u64>,
) -> Result<(Uid, u64), TxFailure> {
    let mut sn = named_subnet(o, netuid)?;
    if !sn.hyper.registration_allowed {
        return Err(SubnetError::RegistrationDisabled(netuid).into());
    }
    if uid_of(o, netuid, hotkey)?.is_some() {
        return Err(SubnetError::AlreadyRegistered(*hotkey).into());
    }
    let price = sn.burn;
    if let Some(limit) = limit_rao.filter(|l| price > *l) {
        return Err(SubnetError::BurnAboveLimit { price, limit }.into());
    }
    bind_hotkey(o, hotkey, coldkey)?;
    let uid = if sn.n < sn.hyper.max_allowed_uids {
        sn.n
    } else {
        prune_candidate(o, &sn, now)?.ok_or(SubnetError::NoPruneCandidate)?
    };
    debit(o, coldkey, price, "registration")?;
    // The burn buys alpha that is destroyed: TAO stays in the pool, alpha leaves it.
    let swap = sn
        .pool
        .swap(Direction::Buy, price, DEFAULT_FEE_RATE, None)?;
    sn.pool = swap.after;
    // The fee is part of the price paid.
    move_free_to_staked(o, price.saturating_sub(swap.fee))?;
    if uid == sn.n {
        sn.n = sn.n.saturating_add(1);
    } else if let Some(old) = neuron(o, netuid, uid)? {
        o.delete(keys::uid(netuid, &old.hotkey));
        o.delete(keys::serve(netuid, &old.hotkey));
        o.delete(keys::commits(netuid, &old.hotkey));
        // Other validators' weights and bonds toward the replaced uid go with it.
        for other in 0..sn.n {
            if let Some(mut nr) = neuron(o, netuid, other)? {
                let before = (nr.weights.len(), nr.bonds.len());
                nr.weights.retain(|(j, _)| *j != uid);
                nr.bonds.retain(|(j, _)| *j != uid);
                if before != (nr.weights.len(), nr.bonds.len()) {
                    put_neuron(o, netuid, other, &nr);
                }
            }
        }
    }
    put_neuron(o, netuid, uid, &new_neuron(*hotkey, now));
    o.put_value(keys::uid(netuid, hotkey), &uid);
    let bumped =
        u128::from(sn.burn).saturating_mul(u128::from(sn.hyper.burn_increase_ppm)) / 1_000_000;
    sn.burn = u64::try_from(bumped)
        .unwrap_or(u64::MAX)
        .clamp(sn.hyper.min_burn, sn.hyper.max_burn.max(sn.hyper.min_burn));
    put_subnet(o, &sn);
    Ok((uid, swap.fee))
}

#[cfg(test)]
mod ops_tests;
#[cfg(test)]
mod stake_tests;
#[cfg(test)]
mod tests;
