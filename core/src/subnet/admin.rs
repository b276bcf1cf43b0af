//! Hyperparameter setters (R§3.3, R§10): the subnet owner sets the owner-settable ones,
//! outside the freeze window before an epoch and at most once per
//! `owner_hyperparam_rate_limit_tempos` tempos per parameter; the chain admin sets any of
//! them at any time. One function validates and assigns, so the rules live in one place.

use super::{
    keys, named_subnet, put_subnet, Hyperparams, Netuid, SubnetError, SubnetParams, TxFailure,
};
use crate::amount::RAO_PER_TAO;
use crate::crypto::AccountId;
use crate::genesis::ChainParams;
use crate::state::{read, Overlay};

/// Every settable hyperparameter: (name, owner may set it).
pub const SETTABLE: &[(&str, bool)] = &[
    ("tempo", true),
    ("activity_cutoff_factor_milli", true),
    ("max_allowed_uids", true),
    ("immunity_period", true),
    ("min_allowed_weights", true),
    ("bonds_moving_avg", true),
    ("bonds_penalty", true),
    ("yuma3", true),
    ("liquid_alpha", true),
    ("alpha_low", true),
    ("alpha_high", true),
    ("alpha_sigmoid_steepness", true),
    ("weights_version_key", true),
    ("commit_reveal", true),
    ("reveal_period_epochs", true),
    ("min_burn", true),
    ("max_burn", true),
    ("burn_half_life", true),
    ("burn_increase_ppm", true),
    ("serving_rate_limit", true),
    ("transfer_allowed", true),
    ("max_allowed_validators", false),
    ("min_non_immune_uids", false),
    ("kappa", false),
    ("weights_rate_limit", false),
    ("registration_allowed", false),
];

fn within(
    name: &'static str,
    v: u64,
    lo: u64,
    hi: u64,
    rule: &'static str,
) -> Result<u64, SubnetError> {
    if v < lo || v > hi {
        return Err(SubnetError::HyperparameterOutOfRange {
            name,
            value: v,
            rule,
        });
    }
    Ok(v)
}

fn flag(name: &'static str, v: u64) -> Result<bool, SubnetError> {
    Ok(within(name, v, 0, 1, "0 (off) or 1 (on)")? == 1)
}

fn word(name: &'static str, v: u64) -> Result<u16, SubnetError> {
    Ok(within(name, v, 0, 65_535, "0..=65535")? as u16)
}

/// Validate `value` for `name` and assign it; returns the canonical name. `n` is the
/// subnet's neuron count; `admin` widens the owner's ranges where R§3.3 has owner limits.
pub fn assign(
    h: &mut Hyperparams,
    n: u16,
    name: &str,
    v: u64,
    admin: bool,
) -> Result<&'static str, SubnetError> {
    let Some(&(name, _)) = SETTABLE.iter().find(|(s, _)| *s == name) else {
        return Err(SubnetError::UnknownHyperparameter(name.to_string()));
    };
    match name {
        "tempo" => {
            h.tempo = if admin {
                within(name, v, 1, 50_400, "1..=50400")?
            } else {
                within(name, v, 360, 50_400, "owners may set 360..=50400")?
            }
        }
        "activity_cutoff_factor_milli" => {
            h.activity_cutoff_factor_milli = within(name, v, 1_000, 50_000, "1000..=50000")?
        }
        "max_allowed_uids" => {
            h.max_allowed_uids = within(
                name,
                v,
                u64::from(n.max(1)),
                256,
                "from the current n up to 256",
            )? as u16
        }
        "immunity_period" => h.immunity_period = v,
        "min_allowed_weights" => h.min_allowed_weights = word(name, v)?,
        "bonds_moving_avg" => {
            h.bonds_moving_avg = if admin {
                within(name, v, 0, 1_000_000, "0..=1000000 (per million)")?
            } else {
                within(name, v, 0, 975_000, "owners may set 0..=975000")?
            }
        }
        "bonds_penalty" => h.bonds_penalty = word(name, v)?,
        "yuma3" => h.yuma3 = flag(name, v)?,
        "liquid_alpha" => h.liquid_alpha = flag(name, v)?,
        "alpha_low" => {
            let hi = u64::from(h.alpha_high);
            h.alpha_low = within(name, v, 1_638, hi, "1638..=alpha_high")? as u16
        }
        "alpha_high" => {
            let lo = u64::from(h.alpha_low).max(1_638);
            h.alpha_high = within(name, v, lo, 65_535, "alpha_low..=65535")? as u16
        }
        "alpha_sigmoid_steepness" => {
            h.alpha_sigmoid_steepness = within(name, v, 0, 32_767, "0..=32767")? as i16
        }
        "weights_version_key" => h.weights_version_key = v,
        "commit_reveal" => h.commit_reveal = flag(name, v)?,
        "reveal_period_epochs" => h.reveal_period_epochs = within(name, v, 1, 100, "1..=100")?,
        "min_burn" => {
            let hi = (RAO_PER_TAO - 1).min(h.max_burn.saturating_sub(1));
            h.min_burn = within(name, v, 0, hi, "below 1 TAO and below max_burn")?
        }
        "max_burn" => {
            let lo = (RAO_PER_TAO / 10 + 1).max(h.min_burn.saturating_add(1));
            h.max_burn = within(name, v, lo, u64::MAX, "above 0.1 TAO and above min_burn")?
        }
        "burn_half_life" => h.burn_half_life = within(name, v, 1, 36_100, "1..=36100")?,
        "burn_increase_ppm" => {
            h.burn_increase_ppm = within(
                name,
                v,
                1_000_000,
                10_000_000,
                "1000000..=10000000 (x1 to x10)",
            )?
        }
        "serving_rate_limit" => h.serving_rate_limit = v,
        "transfer_allowed" => h.transfer_allowed = flag(name, v)?,
        "max_allowed_validators" => {
            h.max_allowed_validators = within(name, v, 1, 256, "1..=256")? as u16
        }
        "min_non_immune_uids" => h.min_non_immune_uids = word(name, v)?,
        "kappa" => h.kappa = word(name, v)?,
        "weights_rate_limit" => h.weights_rate_limit = v,
        "registration_allowed" => h.registration_allowed = flag(name, v)?,
        _ => return Err(SubnetError::UnknownHyperparameter(name.to_string())),
    }
    Ok(name)
}

/// `set_hyperparameter(netuid, name, value)` signed by the subnet owner or the chain admin.
pub fn set_hyperparameter(
    o: &mut Overlay<'_>,
    chain: &ChainParams,
    now: u64,
    signer: &AccountId,
    netuid: Netuid,
    name: &str,
    value: u64,
) -> Result<(), TxFailure> {
    let sn = named_subnet(o, netuid)?;
    let admin = chain.admin.as_ref() == Some(signer);
    if !admin && sn.owner_coldkey != *signer {
        return Err(SubnetError::NotSubnetOwner.into());
    }
    set(o, &chain.subnets, now, netuid, name, value, admin)
}

/// An enacted governance proposal sets a hyperparameter with the admin's powers.
pub fn set_by_governance(
    o: &mut Overlay<'_>,
    now: u64,
    netuid: Netuid,
    name: &str,
    value: u64,
) -> Result<(), TxFailure> {
    // The admin path reads no subnet parameter (no freeze window, no rate limit).
    set(o, &SubnetParams::default(), now, netuid, name, value, true)
}

fn set(
    o: &mut Overlay<'_>,
    params: &SubnetParams,
    now: u64,
    netuid: Netuid,
    name: &str,
    value: u64,
    admin: bool,
) -> Result<(), TxFailure> {
    let mut sn = named_subnet(o, netuid)?;
    let tempo = sn.hyper.tempo;
    let owner_may = SETTABLE.iter().any(|(s, owner)| *s == name && *owner);
    let canonical = assign(&mut sn.hyper, sn.n, name, value, admin)?;
    if !admin {
        if !owner_may {
            return Err(SubnetError::AdminOnlyHyperparameter(canonical).into());
        }
        let epoch = sn.last_epoch_block.saturating_add(tempo);
        if epoch.saturating_sub(now) < params.admin_freeze_window {
            return Err(SubnetError::AdminFreezeWindow { epoch }.into());
        }
        let tempos = if canonical == "weights_version_key" {
            5
        } else {
            params.owner_hyperparam_rate_limit_tempos
        };
        let last: Option<u64> = read(o, &keys::hyper_set(netuid, canonical), "hyperparameter")?;
        if let Some(last) = last {
            let next = last.saturating_add(tempos.saturating_mul(tempo));
            if now < next {
                return Err(SubnetError::HyperparameterRateLimited {
                    name: canonical,
                    next,
                }
                .into());
            }
        }
    }
    if canonical == "tempo" {
        // A new tempo restarts the epoch cycle (R§6.1).
        sn.last_epoch_block = now;
    }
    o.put_value(keys::hyper_set(netuid, canonical), &now);
    put_subnet(o, &sn);
    Ok(())
}
