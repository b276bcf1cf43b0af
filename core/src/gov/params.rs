//! Governance parameters (genesis `[gov]`), and which chain parameters a proposal may
//! change, with their ranges.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use super::GovError;
use crate::amount::RAO_PER_TAO;
use crate::genesis::{ChainParams, MAX_BLOCK_TIME_MS, MIN_BLOCK_TIME_MS};
use crate::subnet::EmissionMode;

/// Parts per million.
pub const PPM: u64 = 1_000_000;

/// How a vote is weighed (chosen in genesis, so a research fork can compare).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "snake_case")]
pub enum PowerMode {
    /// Root stake (TAO, 1:1) plus `tao_weight` x the TAO value of alpha stake (alpha at the
    /// subnet's EMA price); a hotkey votes its nominators' stake unless they vote.
    #[default]
    Stake,
    /// One vote per root network member (Bittensor's registered validators).
    Validator,
    /// The square root of each voter's stake power (delegation as in `stake`).
    Quadratic,
    /// The legacy Senate: the top `senate_size` root members by root stake, one vote each;
    /// a proposal passes with more than half of the seats.
    Senate,
}

/// The rules of the proposal lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(deny_unknown_fields, default)]
pub struct GovParams {
    pub voting_power: PowerMode,
    /// Stake power (rao) a proposer needs, own plus delegated.
    pub proposal_min_stake_rao: u64,
    /// Held from the proposer until the tally; burned if the proposal is vetoed.
    pub deposit_rao: u64,
    /// Blocks a proposal is open for votes.
    pub voting_period: u64,
    /// Turnout needed, of all voting power (ppm).
    pub quorum_ppm: u64,
    /// Yes needed, of yes + no + veto (ppm, strictly more than).
    pub approval_ppm: u64,
    /// Veto that rejects and burns the deposit, of all votes cast (ppm, strictly more).
    pub veto_ppm: u64,
    /// Blocks from the end of the vote to enactment.
    pub enactment_delay: u64,
    /// The emergency track: shorter, with a higher bar.
    pub emergency_voting_period: u64,
    pub emergency_approval_ppm: u64,
    pub emergency_enactment_delay: u64,
    /// Seats of the legacy Senate (`voting_power = "senate"`).
    pub senate_size: u16,
    /// Share of each block's TAO emission paid to the treasury (ppm; 0 = none).
    pub treasury_ppm: u64,
}

impl Default for GovParams {
    /// A week's vote at 12 s blocks, a day's enactment delay, a one-third quorum and veto,
    /// a simple majority; the emergency track: two hours and two thirds.
    fn default() -> Self {
        GovParams {
            voting_power: PowerMode::Stake,
            proposal_min_stake_rao: 1_000 * RAO_PER_TAO,
            deposit_rao: 100 * RAO_PER_TAO,
            voting_period: 50_400,
            quorum_ppm: 334_000,
            approval_ppm: 500_000,
            veto_ppm: 334_000,
            enactment_delay: 7_200,
            emergency_voting_period: 600,
            emergency_approval_ppm: 667_000,
            emergency_enactment_delay: 10,
            senate_size: 12,
            treasury_ppm: 0,
        }
    }
}

impl GovParams {
    /// The dev chain's: a 20-block vote, enactment 5 blocks later, 1 TAO of stake and a
    /// 10 TAO deposit to propose; the emergency track votes for 5 blocks.
    pub fn dev() -> Self {
        GovParams {
            proposal_min_stake_rao: RAO_PER_TAO,
            deposit_rao: 10 * RAO_PER_TAO,
            voting_period: 20,
            enactment_delay: 5,
            emergency_voting_period: 5,
            emergency_enactment_delay: 1,
            ..GovParams::default()
        }
    }

    /// (voting period, approval ppm, enactment delay) of a track.
    pub fn track(&self, emergency: bool) -> (u64, u64, u64) {
        if emergency {
            (
                self.emergency_voting_period,
                self.emergency_approval_ppm,
                self.emergency_enactment_delay,
            )
        } else {
            (self.voting_period, self.approval_ppm, self.enactment_delay)
        }
    }

    /// Genesis validation: fractions within one, periods and delays at least one block.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("quorum_ppm", self.quorum_ppm),
            ("approval_ppm", self.approval_ppm),
            ("veto_ppm", self.veto_ppm),
            ("emergency_approval_ppm", self.emergency_approval_ppm),
            ("treasury_ppm", self.treasury_ppm),
        ] {
            if v > PPM {
                return Err(format!("gov.{name} = {v} is over 1,000,000 (100%)"));
            }
        }
        for (name, v) in [
            ("voting_period", self.voting_period),
            ("enactment_delay", self.enactment_delay),
            ("emergency_voting_period", self.emergency_voting_period),
            ("emergency_enactment_delay", self.emergency_enactment_delay),
        ] {
            if v == 0 {
                return Err(format!("gov.{name} must be at least 1 block"));
            }
        }
        if self.senate_size == 0 {
            return Err("gov.senate_size must be at least 1".into());
        }
        Ok(())
    }
}

/// The chain parameters a proposal may change, with their accepted ranges.
pub const CHAIN_PARAMS: &[(&str, &str)] = &[
    ("base_fee_rao", "0..=1000000000000"),
    ("per_byte_fee_rao", "0..=1000000000"),
    ("block_time_ms", "100..=600000"),
    ("subnet_limit", "1..=4096"),
    ("network_rate_limit", "any"),
    ("network_min_lock_rao", "any"),
    ("network_immunity_period", "any"),
    ("tao_weight_ppm", "0..=1000000"),
    ("emission_mode", "0 (dtao) or 1 (root_weights)"),
    ("root_tempo", "1..=1000000"),
    ("treasury_ppm", "0..=1000000"),
    ("quorum_ppm", "0..=1000000"),
    ("approval_ppm", "0..=1000000"),
    ("voting_period", "1..=10000000"),
    ("enactment_delay", "1..=10000000"),
];

/// Set chain parameter `name` to `value` on `p`, or say why not.
pub fn set_chain_param(p: &mut ChainParams, name: &str, value: u64) -> Result<(), GovError> {
    let Some(&(canonical, range)) = CHAIN_PARAMS.iter().find(|(n, _)| *n == name) else {
        return Err(GovError::UnknownParameter(name.to_string()));
    };
    let check = |lo: u64, hi: u64| {
        if (lo..=hi).contains(&value) {
            Ok(value)
        } else {
            Err(GovError::ParameterOutOfRange {
                name: canonical,
                value,
                range,
            })
        }
    };
    match canonical {
        "base_fee_rao" => p.base_fee_rao = check(0, 1_000_000_000_000)?,
        "per_byte_fee_rao" => p.per_byte_fee_rao = check(0, 1_000_000_000)?,
        "block_time_ms" => p.block_time_ms = check(MIN_BLOCK_TIME_MS, MAX_BLOCK_TIME_MS)?,
        "subnet_limit" => p.subnets.subnet_limit = check(1, 4_096)? as u16,
        "network_rate_limit" => p.subnets.network_rate_limit = value,
        "network_min_lock_rao" => p.subnets.network_min_lock_rao = value,
        "network_immunity_period" => p.subnets.network_immunity_period = value,
        "tao_weight_ppm" => p.subnets.tao_weight_ppm = check(0, PPM)?,
        "emission_mode" => {
            p.subnets.emission_mode = if check(0, 1)? == 0 {
                EmissionMode::Dtao
            } else {
                EmissionMode::RootWeights
            }
        }
        "root_tempo" => p.subnets.root_tempo = check(1, 1_000_000)?,
        "treasury_ppm" => p.gov.treasury_ppm = check(0, PPM)?,
        "quorum_ppm" => p.gov.quorum_ppm = check(0, PPM)?,
        "approval_ppm" => p.gov.approval_ppm = check(0, PPM)?,
        "voting_period" => p.gov.voting_period = check(1, 10_000_000)?,
        "enactment_delay" => p.gov.enactment_delay = check(1, 10_000_000)?,
        _ => return Err(GovError::UnknownParameter(name.to_string())),
    }
    Ok(())
}
