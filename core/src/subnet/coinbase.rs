//! The per-block subnet step (PROTOCOL §5; R§4.2, R§6.1, R§7.1-7.7, R§9).
//!
//! Every block: registration prices decay; the block's TAO emission is split across
//! started subnets by their EMA prices and enters their pools (injected at the current
//! price up to the root proportion of the alpha emission, the rest as a fee-free chain
//! buy); each subnet mints its alpha emission into pending buckets (18% owner cut, then
//! half miners, half validators, of which the root proportion goes to root stakers); price
//! EMAs move. At a subnet's epoch (every `tempo` blocks, at most two per block) Yuma runs
//! on the stored weights and stakes (alpha plus `tao_weight` x root stake) and the pending
//! alpha is paid out as stake. Root dividends are sold through the pool at once and the
//! TAO compounds on the hotkey's root stake.
//!
//! In `emission_mode = "root_weights"` (R§9) root members' weights decide each subnet's
//! TAO share at every root epoch; subnets accumulate TAO, and at their epoch pay 18% to the
//! owner as free TAO and the rest through Yuma as root (TAO) stake. No alpha is minted.
//!
//! Invariant (tested after every block): for each subnet, `alpha_out` equals the alpha
//! held by hotkeys plus the pending buckets plus the protocol-owned alpha.

use bincode::{Decode, Encode};
use fixed::types::{I32F32, I64F64};
use serde::Serialize;

use super::root::{put_root, root, root_stake, RootNet, ROOT};
use super::stake::{credit_alpha, distribute_to_nominators, hotkey_alpha, take_of};
use super::weights::{commit_live, commits};
use super::{
    hotkey_owner, keys, networks, neuron, put_neuron, put_subnet, subnet, EmissionMode, Netuid,
    Neuron, Subnet, SubnetParams,
};
use crate::amount::share_u16;
use crate::emission::block_emission;
use crate::epoch::math::exp_safe;
use crate::epoch::{run_epoch, EpochInput, EpochOutput};
use crate::pool::{Direction, PRICE_SCALE};
use crate::state::{self, Overlay, StateError};

/// Most epochs run in one block; later subnets wait for the next block (R§6.1).
pub const MAX_EPOCHS_PER_BLOCK: usize = 2;
/// Owner cut of each block's alpha emission: 11796/65535 = 18% (R§7.4).
pub const OWNER_CUT: u64 = 11_796;
pub use super::store::DEFAULT_TAKE;
/// Epoch records kept per subnet for `subnet_epochs`.
pub const EPOCH_HISTORY: u64 = 32;
/// Legacy root epoch sigmoid steepness (R§9; the midpoint kappa is 0.5).
const ROOT_RHO: u64 = 10;

/// What the subnet step did this block.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// TAO (rao) that went to subnets (pools, or pending TAO in `root_weights` mode); the
    /// rest of the block emission is not theirs.
    pub tao_to_subnets: u64,
    pub epochs: Vec<Netuid>,
}

/// One epoch's outputs, kept for the last `EPOCH_HISTORY` epochs of each subnet.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct EpochRecord {
    pub netuid: Netuid,
    pub epoch_index: u64,
    pub block: u64,
    /// Drained buckets, alpha rao (TAO rao in `root_weights` mode).
    pub server: u64,
    pub validator: u64,
    pub root: u64,
    pub owner: u64,
    /// Root dividends sold for TAO, rao, and alpha burned (owner incentive, unassigned).
    pub root_tao: u64,
    pub burned: u64,
    pub hotkeys: Vec<super::AccountId>,
    pub incentive: Vec<u16>,
    pub dividends: Vec<u16>,
    pub emission: Vec<u64>,
}

/// `floor(2^32 * 0.5^(1/half_life))`: the largest Q32 factor whose `half_life`-th power is
/// at most one half (R§4.2), by binary search over exact Q32 powers.
pub fn decay_factor_q32(half_life: u64) -> u64 {
    if half_life == 0 {
        return 0;
    }
    let pow = |f: u64| -> u64 {
        let (mut base, mut exp, mut acc) = (u128::from(f), half_life, 1u128 << 32);
        while exp > 0 {
            if exp & 1 == 1 {
                acc = acc.saturating_mul(base) >> 32;
            }
            base = base.saturating_mul(base) >> 32;
            exp >>= 1;
        }
        u64::try_from(acc).unwrap_or(u64::MAX)
    };
    let (mut lo, mut hi) = (0u64, (1u64 << 32) - 1);
    while lo < hi {
        let mid = lo.saturating_add(hi.saturating_sub(lo).div_ceil(2));
        if pow(mid) <= 1 << 31 {
            lo = mid;
        } else {
            hi = mid.saturating_sub(1);
        }
    }
    lo
}

fn update_ema(sn: &mut Subnet, params: &SubnetParams, now: u64) {
    let Some(first) = sn.first_emission_block else {
        return;
    };
    let b = now.saturating_sub(first.saturating_sub(1));
    let a = I64F64::from_num(params.ema_alpha_ppb)
        .saturating_div(I64F64::from_num(1_000_000_000u64))
        .saturating_mul(I64F64::from_num(b))
        .saturating_div(I64F64::from_num(
            b.saturating_add(params.ema_halving_blocks).max(1),
        ));
    let spot = I64F64::from_num(sn.pool.price_rao().min(PRICE_SCALE as u64));
    let ema = I64F64::from_num(sn.ema_price_rao);
    let next = a
        .saturating_mul(spot)
        .saturating_add(I64F64::ONE.saturating_sub(a).saturating_mul(ema));
    sn.ema_price_rao = next.round().saturating_to_num::<u64>();
}

/// `x * num / den` in u128, floored; 0 when `den` is 0.
fn mul_div(x: u64, num: u128, den: u128) -> u64 {
    u128::from(x)
        .saturating_mul(num)
        .checked_div(den)
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(0)
}

/// `tao_weight * root_stake` in stake units (R§6.2).
fn weighted_root(root_stake: u64, params: &SubnetParams) -> u64 {
    mul_div(root_stake, u128::from(params.tao_weight_ppm), 1_000_000)
}

fn emitting(sn: &Subnet, now: u64) -> bool {
    sn.first_emission_block.is_some_and(|f| f <= now) && sn.hyper.registration_allowed
}

/// Run the subnet part of a block at height `now` with `tao_emission` rao to hand out.
pub fn step(
    o: &mut Overlay<'_>,
    params: &SubnetParams,
    now: u64,
    tao_emission: u64,
) -> Result<StepOutcome, StateError> {
    let nets = networks(o)?;
    let mut subnets: Vec<Subnet> = Vec::with_capacity(nets.netuids.len());
    for n in &nets.netuids {
        if let Some(sn) = subnet(o, *n)? {
            subnets.push(sn);
        }
    }
    let mut outcome = StepOutcome::default();
    // Registration prices decay (R§4.2).
    for sn in subnets.iter_mut() {
        let f = decay_factor_q32(sn.hyper.burn_half_life);
        let decayed = u128::from(sn.burn).saturating_mul(u128::from(f)) >> 32;
        sn.burn = u64::try_from(decayed)
            .unwrap_or(u64::MAX)
            .clamp(sn.hyper.min_burn, sn.hyper.max_burn.max(sn.hyper.min_burn));
    }
    let mut rootnet = root(o)?;
    match params.emission_mode {
        EmissionMode::Dtao => emit_dtao(
            &mut subnets,
            params,
            &rootnet,
            now,
            tao_emission,
            &mut outcome,
        ),
        EmissionMode::RootWeights => {
            if params.root_tempo > 0 && now.is_multiple_of(params.root_tempo) {
                rootnet.emission_ppb = root_epoch(o, &rootnet, &subnets)?;
                rootnet.last_epoch_block = now;
                put_root(o, &rootnet);
            }
            for sn in subnets.iter_mut().filter(|s| emitting(s, now)) {
                let ppb = rootnet
                    .emission_ppb
                    .iter()
                    .find(|(n, _)| *n == sn.netuid)
                    .map_or(0, |(_, p)| *p);
                let tao = mul_div(tao_emission, u128::from(ppb), 1_000_000_000);
                sn.pending_tao = sn.pending_tao.saturating_add(tao);
                outcome.tao_to_subnets = outcome.tao_to_subnets.saturating_add(tao);
            }
        }
    }
    // Epochs (R§6.1), in netuid order, at most MAX_EPOCHS_PER_BLOCK.
    for sn in subnets.iter_mut() {
        let tempo = sn.hyper.tempo;
        if tempo == 0
            || now.saturating_sub(sn.last_epoch_block) < tempo
            || outcome.epochs.len() >= MAX_EPOCHS_PER_BLOCK
        {
            continue;
        }
        run_subnet_epoch(o, params, sn, now)?;
        outcome.epochs.push(sn.netuid);
    }
    for sn in &subnets {
        put_subnet(o, sn);
    }
    Ok(outcome)
}

/// dTAO emission (R§7.3-7.4): TAO by EMA-price share into pools, alpha into buckets.
fn emit_dtao(
    subnets: &mut [Subnet],
    params: &SubnetParams,
    rootnet: &RootNet,
    now: u64,
    tao_emission: u64,
    outcome: &mut StepOutcome,
) {
    let ema_total: u128 = subnets
        .iter()
        .filter(|s| emitting(s, now))
        .map(|s| u128::from(s.ema_price_rao))
        .fold(0, u128::saturating_add);
    // Root dividends are only paid while the subnets' prices sum above 1 TAO (R§7.4).
    let root_sell = ema_total > PRICE_SCALE;
    let root_weight =
        u128::from(rootnet.total_stake).saturating_mul(u128::from(params.tao_weight_ppm));
    for sn in subnets.iter_mut().filter(|s| emitting(s, now)) {
        let tao = mul_div(tao_emission, u128::from(sn.ema_price_rao), ema_total);
        let issued = sn.pool.alpha.saturating_add(sn.alpha_out);
        let alpha_emit = block_emission(issued);
        // Root proportion rp = tw*root / (tw*root + alpha issuance).
        let rp_den = root_weight.saturating_add(u128::from(issued).saturating_mul(1_000_000));
        // Injection at the current price, capped at rp * alpha emission (R§7.4).
        let (pool_tao, pool_alpha) = (u128::from(sn.pool.tao), u128::from(sn.pool.alpha));
        let mut alpha_in = mul_div(tao, pool_alpha, pool_tao);
        let mut tao_in = tao;
        let cap = mul_div(alpha_emit, root_weight, rp_den);
        if alpha_in > cap {
            alpha_in = cap;
            tao_in = mul_div(cap, pool_tao, pool_alpha).min(tao);
        }
        sn.pool.tao = sn.pool.tao.saturating_add(tao_in);
        sn.pool.alpha = sn.pool.alpha.saturating_add(alpha_in);
        outcome.tao_to_subnets = outcome.tao_to_subnets.saturating_add(tao_in);
        // The rest buys alpha for the protocol, fee-free.
        // tao_in <= tao: the cap above takes the smaller.
        let excess = tao.saturating_sub(tao_in);
        if excess > 0 {
            if let Ok(buy) = sn.pool.swap(Direction::Buy, excess, 0, None) {
                sn.pool = buy.after;
                sn.alpha_out = sn.alpha_out.saturating_add(buy.amount_out);
                sn.protocol_alpha = sn.protocol_alpha.saturating_add(buy.amount_out);
                outcome.tao_to_subnets = outcome.tao_to_subnets.saturating_add(buy.amount_in);
            }
        }
        // Participant alpha into the pending buckets.
        let owner_cut = share_u16(alpha_emit, OWNER_CUT);
        let rest = alpha_emit.saturating_sub(owner_cut);
        let server = rest / 2;
        let validator_half = rest.saturating_sub(server);
        let root_alpha = mul_div(validator_half, root_weight, rp_den);
        sn.pending_owner = sn.pending_owner.saturating_add(owner_cut);
        sn.pending_server = sn.pending_server.saturating_add(server);
        sn.pending_validator = sn
            .pending_validator
            .saturating_add(validator_half.saturating_sub(root_alpha));
        let minted = if root_sell {
            sn.pending_root = sn.pending_root.saturating_add(root_alpha);
            alpha_emit
        } else {
            alpha_emit.saturating_sub(root_alpha) // recycled: never minted
        };
        sn.alpha_out = sn.alpha_out.saturating_add(minted);
        update_ema(sn, params, now);
    }
}

/// Legacy root epoch (R§9): each subnet's share of the emission from root members'
/// stake-weighted weights, damped by a sigmoid of how much stake voted for it.
fn root_epoch(
    o: &Overlay<'_>,
    rootnet: &RootNet,
    subnets: &[Subnet],
) -> Result<Vec<(Netuid, u64)>, StateError> {
    let mut stake = Vec::with_capacity(rootnet.members.len());
    for m in &rootnet.members {
        stake.push(I64F64::from_num(root_stake(o, &m.hotkey)?));
    }
    crate::epoch::math::normalize_64(&mut stake);
    let netuids: Vec<Netuid> = subnets.iter().map(|s| s.netuid).collect();
    let mut ranks = vec![I64F64::ZERO; netuids.len()];
    let mut trust = vec![I64F64::ZERO; netuids.len()];
    for (m, s) in rootnet.members.iter().zip(&stake) {
        let row: Vec<(usize, u16)> = m
            .weights
            .iter()
            .filter_map(|(n, w)| netuids.iter().position(|x| x == n).map(|j| (j, *w)))
            .filter(|(_, w)| *w > 0)
            .collect();
        let total: u64 = row
            .iter()
            .map(|(_, w)| u64::from(*w))
            .fold(0, u64::saturating_add);
        if total == 0 {
            continue;
        }
        for (j, w) in row {
            let wn = I64F64::from_num(w).saturating_div(I64F64::from_num(total));
            if let Some(r) = ranks.get_mut(j) {
                *r = r.saturating_add(wn.saturating_mul(*s));
            }
            if let Some(t) = trust.get_mut(j) {
                *t = t.saturating_add(*s);
            }
        }
    }
    let rho = I32F32::from_num(ROOT_RHO);
    let half = I32F32::from_bits(1 << 31);
    let mut shares: Vec<I64F64> = ranks
        .iter()
        .zip(&trust)
        .map(|(r, t)| {
            let x = rho.saturating_mul(I32F32::saturating_from_num(*t).saturating_sub(half));
            let c = I32F32::ONE
                .saturating_div(I32F32::ONE.saturating_add(exp_safe(x.saturating_neg())));
            r.saturating_mul(I64F64::from_num(c))
        })
        .collect();
    crate::epoch::math::normalize_64(&mut shares);
    Ok(netuids
        .into_iter()
        .zip(shares)
        .map(|(n, s)| {
            let ppb = s
                .saturating_mul(I64F64::from_num(1_000_000_000u64))
                .saturating_to_num::<u64>();
            (n, ppb.min(1_000_000_000))
        })
        .filter(|(_, p)| *p > 0)
        .collect())
}

/// The epoch's inputs from stored state.
fn epoch_input(
    o: &Overlay<'_>,
    params: &SubnetParams,
    sn: &Subnet,
    neurons: &[Option<Neuron>],
    now: u64,
    emission_rao: u64,
) -> Result<EpochInput, StateError> {
    let n = neurons.len();
    let mut stake = Vec::with_capacity(n);
    for nr in neurons {
        let Some(nr) = nr else {
            stake.push(0);
            continue;
        };
        let root_part = root_stake(o, &nr.hotkey)?;
        stake.push(match params.emission_mode {
            EmissionMode::Dtao => hotkey_alpha(o, sn.netuid, &nr.hotkey)?
                .total_alpha
                .saturating_add(weighted_root(root_part, params)),
            EmissionMode::RootWeights => root_part,
        });
    }
    let mut weights: Vec<Vec<(u16, u16)>> = neurons
        .iter()
        .map(|nr| nr.as_ref().map(|x| x.weights.clone()).unwrap_or_default())
        .collect();
    if sn.hyper.commit_reveal {
        // R§5.4: a validator with a live commit cannot have scored neurons that
        // registered after its earliest such commit.
        let registered: Vec<u64> = neurons
            .iter()
            .map(|nr| nr.as_ref().map_or(0, |x| x.block_at_registration))
            .collect();
        for (row, nr) in weights.iter_mut().zip(neurons) {
            let Some(nr) = nr else { continue };
            let earliest = commits(o, sn.netuid, &nr.hotkey)?
                .iter()
                .filter(|c| commit_live(c, sn.hyper.reveal_period_epochs, sn.epoch_index))
                .map(|c| c.block)
                .min();
            if let Some(cb) = earliest {
                row.retain(|(j, _)| registered.get(usize::from(*j)).is_none_or(|bar| cb >= *bar));
            }
        }
    }
    let field = |f: &dyn Fn(&Neuron) -> u64| -> Vec<u64> {
        neurons.iter().map(|nr| nr.as_ref().map_or(0, f)).collect()
    };
    Ok(EpochInput {
        n,
        stake,
        validator_permit: neurons
            .iter()
            .map(|nr| nr.as_ref().is_some_and(|x| x.validator_permit))
            .collect(),
        max_allowed_validators: sn.hyper.max_allowed_validators,
        weights,
        bonds: neurons
            .iter()
            .map(|nr| nr.as_ref().map(|x| x.bonds.clone()).unwrap_or_default())
            .collect(),
        kappa: sn.hyper.kappa,
        bonds_moving_avg: sn.hyper.bonds_moving_avg,
        bonds_penalty: sn.hyper.bonds_penalty,
        stake_threshold: 0,
        emission_rao,
        current_block: now,
        activity_cutoff: sn.hyper.activity_cutoff(),
        last_update: field(&|x| x.last_update),
        block_at_registration: field(&|x| x.block_at_registration),
        last_tempo: sn.last_epoch_block.saturating_add(1),
        yuma3: sn.hyper.yuma3,
        liquid_alpha: sn.hyper.liquid_alpha,
        alpha_low: sn.hyper.alpha_low,
        alpha_high: sn.hyper.alpha_high,
        alpha_sigmoid_steepness: sn.hyper.alpha_sigmoid_steepness,
        owner_uid: neurons
            .iter()
            .position(|nr| nr.as_ref().is_some_and(|x| x.hotkey == sn.owner_hotkey))
            .and_then(|u| u16::try_from(u).ok()),
    })
}

/// Store each neuron's epoch results.
fn store_results(
    o: &mut Overlay<'_>,
    netuid: Netuid,
    neurons: &mut [Option<Neuron>],
    out: &EpochOutput,
) {
    for (uid, nr) in neurons.iter_mut().enumerate() {
        let Some(nr) = nr else { continue };
        let at = |v: &[u16]| v.get(uid).copied().unwrap_or(0);
        nr.consensus = at(&out.consensus);
        nr.incentive = at(&out.incentive);
        nr.dividends = at(&out.dividends);
        nr.validator_trust = at(&out.validator_trust);
        nr.stake_weight = at(&out.stake_weight);
        nr.emission = out.emission.get(uid).copied().unwrap_or(0);
        nr.validator_permit = out.validator_permit.get(uid).copied().unwrap_or(false);
        nr.active = out.active.get(uid).copied().unwrap_or(false);
        nr.bonds = out.bonds.get(uid).cloned().unwrap_or_default();
        if let Ok(uid) = u16::try_from(uid) {
            put_neuron(o, netuid, uid, nr);
        }
    }
}

/// Pay `amount` to validator `hotkey` on `netuid`: its take to the owner's own position,
/// the rest to its nominators pro rata (to the owner alone when it has none).
fn pay_dividend(
    o: &mut Overlay<'_>,
    netuid: Netuid,
    hotkey: &super::AccountId,
    cold: &super::AccountId,
    take: u16,
    amount: u64,
) -> Result<(), StateError> {
    let take = share_u16(amount, u64::from(take));
    credit_alpha(o, netuid, hotkey, cold, take)?;
    if hotkey_alpha(o, netuid, hotkey)?.total_shares == 0 {
        credit_alpha(o, netuid, hotkey, cold, amount.saturating_sub(take))
    } else {
        distribute_to_nominators(o, netuid, hotkey, amount.saturating_sub(take))
    }
}

/// Drain the pending buckets through one Yuma epoch and pay them out (R§7.5-7.6).
fn run_subnet_epoch(
    o: &mut Overlay<'_>,
    params: &SubnetParams,
    sn: &mut Subnet,
    now: u64,
) -> Result<(), StateError> {
    let mut neurons = Vec::with_capacity(usize::from(sn.n));
    for uid in 0..sn.n {
        neurons.push(neuron(o, sn.netuid, uid)?);
    }
    let mut record = match params.emission_mode {
        EmissionMode::Dtao => pay_dtao_epoch(o, params, sn, &mut neurons, now)?,
        EmissionMode::RootWeights => pay_legacy_epoch(o, params, sn, &mut neurons, now)?,
    };
    record.hotkeys = neurons
        .iter()
        .map(|nr| nr.as_ref().map_or(super::AccountId([0; 32]), |x| x.hotkey))
        .collect();
    record.incentive = neurons
        .iter()
        .map(|nr| nr.as_ref().map_or(0, |x| x.incentive))
        .collect();
    record.dividends = neurons
        .iter()
        .map(|nr| nr.as_ref().map_or(0, |x| x.dividends))
        .collect();
    record.emission = neurons
        .iter()
        .map(|nr| nr.as_ref().map_or(0, |x| x.emission))
        .collect();
    o.put_value(keys::epoch(sn.netuid, sn.epoch_index), &record);
    if let Some(old) = sn.epoch_index.checked_sub(EPOCH_HISTORY) {
        o.delete(keys::epoch(sn.netuid, old));
    }
    sn.last_epoch_block = now;
    sn.epoch_index = sn.epoch_index.saturating_add(1);
    Ok(())
}

fn empty_record(sn: &Subnet, now: u64) -> EpochRecord {
    EpochRecord {
        netuid: sn.netuid,
        epoch_index: sn.epoch_index,
        block: now,
        server: 0,
        validator: 0,
        root: 0,
        owner: 0,
        root_tao: 0,
        burned: 0,
        hotkeys: Vec::new(),
        incentive: Vec::new(),
        dividends: Vec::new(),
        emission: Vec::new(),
    }
}

/// dTAO payout: incentive and dividends as alpha stake, root dividends sold to root stake.
fn pay_dtao_epoch(
    o: &mut Overlay<'_>,
    params: &SubnetParams,
    sn: &mut Subnet,
    neurons: &mut [Option<Neuron>],
    now: u64,
) -> Result<EpochRecord, StateError> {
    let (server, validator, root_alpha, owner) = (
        sn.pending_server,
        sn.pending_validator,
        sn.pending_root,
        sn.pending_owner,
    );
    sn.pending_server = 0;
    sn.pending_validator = 0;
    sn.pending_root = 0;
    sn.pending_owner = 0;
    let total = server.saturating_add(validator).saturating_add(root_alpha);
    let input = epoch_input(o, params, sn, neurons, now, total)?;
    let out = run_epoch(&input);
    store_results(o, sn.netuid, neurons, &out);
    let mut record = empty_record(sn, now);
    (record.server, record.validator, record.root, record.owner) =
        (server, validator, root_alpha, owner);

    let mut paid: u64 = 0;
    // Miner incentive: staked to the miner's coldkey; the owner's own incentive is burned.
    for (nr, amount) in neurons.iter().zip(&out.server_emission) {
        let Some(nr) = nr else { continue };
        if *amount == 0 || nr.hotkey == sn.owner_hotkey {
            continue;
        }
        if let Some(cold) = hotkey_owner(o, &nr.hotkey)? {
            credit_alpha(o, sn.netuid, &nr.hotkey, &cold, *amount)?;
            paid = paid.saturating_add(*amount);
        }
    }
    // Validator dividends (R§7.5): the validator half (plus the miners' half when nobody
    // earned incentive), split into an alpha part and a root part by each hotkey's own
    // stakes, each rescaled to its bucket.
    let incentive_total: u64 = out
        .server_emission
        .iter()
        .copied()
        .fold(0, u64::saturating_add);
    let validator_alpha = if incentive_total > 0 {
        validator
    } else {
        validator.saturating_add(server)
    };
    let mut parts: Vec<(super::AccountId, u128, u128)> = Vec::new();
    for (nr, div) in neurons.iter().zip(&out.validator_emission) {
        let Some(nr) = nr else { continue };
        if *div == 0 {
            continue;
        }
        let alpha_stake = u128::from(hotkey_alpha(o, sn.netuid, &nr.hotkey)?.total_alpha);
        let root_w = u128::from(weighted_root(root_stake(o, &nr.hotkey)?, params));
        let d = u128::from(*div);
        let root_div = d
            .saturating_mul(root_w)
            .checked_div(alpha_stake.saturating_add(root_w))
            .unwrap_or(0);
        parts.push((nr.hotkey, d.saturating_sub(root_div), root_div));
    }
    let alpha_div_total: u128 = parts.iter().map(|p| p.1).fold(0, u128::saturating_add);
    let root_div_total: u128 = parts.iter().map(|p| p.2).fold(0, u128::saturating_add);
    let mut to_sell: Vec<(super::AccountId, u64)> = Vec::new();
    for (hotkey, alpha_div, root_div) in &parts {
        let Some(cold) = hotkey_owner(o, hotkey)? else {
            continue;
        };
        let take = take_of(o, hotkey)?;
        let a = mul_div(validator_alpha, *alpha_div, alpha_div_total);
        if a > 0 {
            pay_dividend(o, sn.netuid, hotkey, &cold, take, a)?;
            paid = paid.saturating_add(a);
        }
        let r = mul_div(root_alpha, *root_div, root_div_total);
        if r > 0 {
            // Take as subnet alpha to the hotkey's owner; the rest to root stakers.
            let t = share_u16(r, u64::from(take));
            credit_alpha(o, sn.netuid, hotkey, &cold, t)?;
            paid = paid.saturating_add(t);
            to_sell.push((*hotkey, r.saturating_sub(t)));
        }
    }
    let sell_total: u64 = to_sell.iter().map(|x| x.1).fold(0, u64::saturating_add);
    let mut sold: u64 = 0;
    if sell_total > 0 {
        if let Ok(sale) = sn.pool.swap(Direction::Sell, sell_total, 0, None) {
            sn.pool = sale.after;
            sn.alpha_out = sn.alpha_out.saturating_sub(sale.amount_in);
            let mut rootnet = root(o)?;
            let mut given: u64 = 0;
            for (hotkey, alpha) in &to_sell {
                let tao = mul_div(sale.amount_out, u128::from(*alpha), u128::from(sell_total));
                distribute_to_nominators(o, ROOT, hotkey, tao)?;
                given = given.saturating_add(tao);
            }
            rootnet.total_stake = rootnet.total_stake.saturating_add(given);
            put_root(o, &rootnet);
            // Rounding dust stays in the pool.
            sn.pool.tao = sn
                .pool
                .tao
                .saturating_add(sale.amount_out.saturating_sub(given));
            record.root_tao = given;
            sold = sale.amount_in;
        }
    }
    // Owner cut: staked to the owner's hotkey.
    credit_alpha(o, sn.netuid, &sn.owner_hotkey, &sn.owner_coldkey, owner)?;
    // Whatever was drained and neither credited nor sold into the pool is burned: the owner
    // hotkey's own incentive, dividends nobody earned, a sale the pool refused, rounding.
    let burned = total.saturating_sub(paid).saturating_sub(sold);
    sn.alpha_out = sn.alpha_out.saturating_sub(burned);
    record.burned = burned;
    Ok(record)
}

/// `root_weights` payout (R§9): 18% of the pending TAO to the owner as free TAO, the rest
/// through Yuma as root stake (incentive to miners' coldkeys, dividends with take).
fn pay_legacy_epoch(
    o: &mut Overlay<'_>,
    params: &SubnetParams,
    sn: &mut Subnet,
    neurons: &mut [Option<Neuron>],
    now: u64,
) -> Result<EpochRecord, StateError> {
    let pending = sn.pending_tao;
    sn.pending_tao = 0;
    let owner = share_u16(pending, OWNER_CUT);
    let total = pending.saturating_sub(owner);
    let input = epoch_input(o, params, sn, neurons, now, total)?;
    let out = run_epoch(&input);
    store_results(o, sn.netuid, neurons, &out);
    let mut record = empty_record(sn, now);
    (record.server, record.validator, record.owner) = (
        out.server_emission
            .iter()
            .copied()
            .fold(0, u64::saturating_add),
        out.validator_emission
            .iter()
            .copied()
            .fold(0, u64::saturating_add),
        owner,
    );
    let mut paid: u64 = 0;
    let mut burned: u64 = 0;
    for ((nr, inc), div) in neurons
        .iter()
        .zip(&out.server_emission)
        .zip(&out.validator_emission)
    {
        let Some(nr) = nr else { continue };
        let Some(cold) = hotkey_owner(o, &nr.hotkey)? else {
            continue;
        };
        if *inc > 0 {
            if nr.hotkey == sn.owner_hotkey {
                burned = burned.saturating_add(*inc);
            } else {
                credit_alpha(o, ROOT, &nr.hotkey, &cold, *inc)?;
                paid = paid.saturating_add(*inc);
            }
        }
        if *div > 0 {
            pay_dividend(o, ROOT, &nr.hotkey, &cold, take_of(o, &nr.hotkey)?, *div)?;
            paid = paid.saturating_add(*div);
        }
    }
    let mut rootnet = root(o)?;
    rootnet.total_stake = rootnet.total_stake.saturating_add(paid);
    put_root(o, &rootnet);
    let mut owner_acc = state::account(o, &sn.owner_coldkey)?;
    owner_acc.free = owner_acc.free.saturating_add(owner);
    state::put_account(o, &sn.owner_coldkey, &owner_acc);
    burned = burned.saturating_add(total.saturating_sub(paid).saturating_sub(burned));
    // Pending TAO was staked; the owner's part becomes free, the unpaid part is burned.
    let mut supply = state::supply(o)?;
    supply.staked = supply.staked.saturating_sub(owner.saturating_add(burned));
    supply.free = supply.free.saturating_add(owner);
    supply.burned = supply.burned.saturating_add(burned);
    state::put_supply(o, &supply);
    record.burned = burned;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_factor_halves_over_the_half_life() {
        for half_life in [1u64, 7, 360, 36_100] {
            let f = decay_factor_q32(half_life);
            let mut x: u128 = 1 << 40;
            for _ in 0..half_life {
                x = (x * u128::from(f)) >> 32;
            }
            let ratio = x as f64 / (1u64 << 40) as f64;
            assert!((0.4999..=0.5).contains(&ratio), "{half_life}: {ratio}");
        }
        assert_eq!(decay_factor_q32(0), 0);
    }

    /// `amount * take / 65_535` overflowed u64 for dividends over ~281,475 alpha (a panic
    /// with overflow checks, a wrong split without): now split in 128 bits.
    #[test]
    fn huge_dividends_split_exactly() {
        let state = crate::state::EmptyState;
        let mut o = Overlay::new(&state);
        let (hot, cold) = (
            crate::Keypair::dev("v").account(),
            crate::Keypair::dev("c").account(),
        );
        let amount = 10_000_000 * 1_000_000_000u64; // 10M alpha in rao
        pay_dividend(&mut o, 1, &hot, &cold, 65_535, amount).unwrap();
        let pool = hotkey_alpha(&o, 1, &hot).unwrap();
        assert_eq!(pool.total_alpha, amount, "everything paid, nothing lost");
        let half = share_u16(amount, 32_768);
        assert_eq!(half, 5_000_076_295_109_483, "{half}");
    }
}
