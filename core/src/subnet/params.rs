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
    /// Weight of root (netuid 0) TAO stake in every subnet's stake weight, parts per
    /// million (R§7.7; mainnet 0.18).
    pub tao_weight_ppm: u64,
    /// Most root network members (R§4.4).
    pub root_max_uids: u16,
    /// Blocks after registration during which a subnet cannot be pruned for a new one.
    pub network_immunity_period: u64,
    /// Owner hyperparameter changes are refused this many blocks before an epoch (R§10).
    pub admin_freeze_window: u64,
    /// Tempos between two owner changes of the same hyperparameter (R§10).
    pub owner_hyperparam_rate_limit_tempos: u64,
    /// Blocks between delegate take increases (R§2).
    pub take_rate_limit: u64,
    /// Take bounds, u16 fractions of 65535 (R§2: 0 and 11796 = 18%).
    pub min_take: u16,
    pub max_take: u16,
    /// Price EMA coefficient, parts per billion (R§7.3: 3e-6 = 3000).
    pub ema_alpha_ppb: u64,
    /// Blocks for the EMA coefficient to ramp to half its value (R§7.3).
    pub ema_halving_blocks: u64,
    /// `dtao` (default): emission shares by pool prices. `root_weights`: the pre-dTAO
    /// regime where root members' weights over subnets decide emission (R§9).
    pub emission_mode: EmissionMode,
    /// Root epoch period in `root_weights` mode (R§9: 100).
    pub root_tempo: u64,
}

/// How the block emission is split across subnets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "snake_case")]
pub enum EmissionMode {
    #[default]
    Dtao,
    RootWeights,
}

impl Default for SubnetParams {
    fn default() -> Self {
        SubnetParams {
            subnet_limit: 128,
            network_rate_limit: 7_200,
            network_min_lock_rao: 1_000 * RAO_PER_TAO,
            lock_reduction_interval: 14 * 7_200,
            defaults: Hyperparams::default(),
            tao_weight_ppm: 180_000,
            root_max_uids: 64,
            network_immunity_period: 1_296_000,
            admin_freeze_window: 10,
            owner_hyperparam_rate_limit_tempos: 2,
            take_rate_limit: 216_000,
            min_take: 0,
            max_take: 11_796,
            ema_alpha_ppb: 3_000,
            ema_halving_blocks: 201_600,
            emission_mode: EmissionMode::Dtao,
            root_tempo: 100,
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
    /// Weights must be committed (hash) and revealed an epoch later (R§5.2).
    pub commit_reveal: bool,
    /// Reveal epoch = commit epoch + this (R§5.2).
    pub reveal_period_epochs: u64,
    /// Blocks between two `serve` updates of a hotkey (R§12).
    pub serving_rate_limit: u64,
    /// `transfer_stake` to another coldkey allowed (R§3.3 TransferToggle).
    pub transfer_allowed: bool,
    /// Lowest `version_key` accepted with weights (0: any).
    pub weights_version_key: u64,
    /// Liquid alpha bounds and steepness (R§6.6).
    pub alpha_low: u16,
    pub alpha_high: u16,
    pub alpha_sigmoid_steepness: i16,
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
            commit_reveal: true,
            reveal_period_epochs: 1,
            serving_rate_limit: 50,
            transfer_allowed: true,
            weights_version_key: 0,
            alpha_low: 45_875,
            alpha_high: 58_982,
            alpha_sigmoid_steepness: 1_000,
        }
    }
}

impl Hyperparams {
    pub fn activity_cutoff(&self) -> u64 {
        (self.activity_cutoff_factor_milli.saturating_mul(self.tempo) / 1_000).max(1)
    }
}
