//! Network-wide subnet parameters (genesis) and per-subnet hyperparameters (R§3.3).
//! Defaults are subtensor's code defaults; the dev genesis shortens the waits.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::amount::RAO_PER_TAO;

/// Genesis parameters for subnet creation and registration (R§3.1, R§3.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(deny_unknown_fields, default)]
pub struct SubnetParams {
    /// Most non-root subnets.
    pub subnet_limit: u16,
    /// Blocks between two network registrations (chain-wide).
    pub network_rate_limit: u64,
    /// Floor of the subnet lock cost, rao.
    pub network_min_lock_rao: u64,
    /// Blocks for a doubled lock cost to decay back (at 1 TAO block emission).
    pub lock_reduction_interval: u64,
    /// Hyperparameters a new subnet starts with.
    pub defaults: Hyperparams,
}

impl Default for SubnetParams {
    fn default() -> Self {
        SubnetParams {
            subnet_limit: 128,
            network_rate_limit: 7_200,
            network_min_lock_rao: 1_000 * RAO_PER_TAO,
            lock_reduction_interval: 14 * 7_200,
            defaults: Hyperparams::default(),
        }
    }
}

/// Per-subnet hyperparameters, new-subnet values of `init_new_network` (R§3.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(deny_unknown_fields, default)]
pub struct Hyperparams {
    pub tempo: u64,
    pub max_allowed_uids: u16,
    pub max_allowed_validators: u16,
    pub immunity_period: u64,
    pub min_non_immune_uids: u16,
    pub min_allowed_weights: u16,
    pub kappa: u16,
    /// Per million.
    pub bonds_moving_avg: u64,
    pub bonds_penalty: u16,
    pub yuma3: bool,
    pub liquid_alpha: bool,
    pub weights_rate_limit: u64,
    /// Activity cutoff = factor * tempo / 1000 blocks (min 1).
    pub activity_cutoff_factor_milli: u64,
    pub registration_allowed: bool,
    /// Initial neuron registration price, rao.
    pub burn: u64,
    pub min_burn: u64,
    pub max_burn: u64,
    pub burn_half_life: u64,
    /// Registration price multiplier per registration, in parts per million (1.26 = 1_260_000).
    pub burn_increase_ppm: u64,
}

impl Default for Hyperparams {
    fn default() -> Self {
        Hyperparams {
            tempo: 360,
            max_allowed_uids: 256,
            max_allowed_validators: 64,
            immunity_period: 5_000,
            min_non_immune_uids: 10,
            min_allowed_weights: 1,
            kappa: 32_767,
            bonds_moving_avg: 900_000,
            bonds_penalty: u16::MAX,
            yuma3: true,
            liquid_alpha: false,
            weights_rate_limit: 100,
            activity_cutoff_factor_milli: 13_889,
            registration_allowed: true,
            burn: RAO_PER_TAO,
            min_burn: 500_000,
            max_burn: 100 * RAO_PER_TAO,
            burn_half_life: 360,
            burn_increase_ppm: 1_260_000,
        }
    }
}

impl Hyperparams {
    pub fn activity_cutoff(&self) -> u64 {
        (self.activity_cutoff_factor_milli.saturating_mul(self.tempo) / 1_000).max(1)
    }
}
