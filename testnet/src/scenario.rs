//! Seeded multi-epoch scenarios for `agora sim epochs`: who profits under Yuma?
//!
//! Miners have a hidden quality that drifts every epoch. Validators follow a strategy:
//! - `honest`: weights = quality x (1 + noise x N(0,1)), as a validator scoring real work;
//! - `copier`: submits the previous epoch's public consensus (no work done);
//! - `colluder`: puts all weight on the cartel's miners;
//! - `idle`: sets no weights (loses its permit's value after the activity cutoff).
//!
//! Bonds, permits and stakes carry over between epochs exactly as on chain. Floats only
//! drive the simulated scores; the epoch itself runs in `agora-core`'s fixed point.

use agora_core::epoch::{run_epoch, EpochInput, EpochOutput};
use agora_core::RAO_PER_TAO;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Honest,
    Copier,
    Colluder,
    Idle,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSpec {
    pub name: String,
    pub stake_tao: u64,
    pub strategy: Strategy,
    /// Relative scoring noise of an honest validator.
    #[serde(default = "default_noise")]
    pub noise: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StakeMove {
    pub epoch: u64,
    pub validator: String,
    /// The validator's new stake from this epoch on.
    pub stake_tao: u64,
}

fn default_noise() -> f64 {
    0.05
}
fn default_drift() -> f64 {
    0.1
}
fn default_tempo() -> u64 {
    360
}
fn default_emission() -> u64 {
    // One tempo of 1 alpha per block, after the 18% owner cut.
    360 * RAO_PER_TAO * 82 / 100
}
fn default_kappa() -> u16 {
    32_767
}
fn default_bma() -> u64 {
    900_000
}
fn default_cartel() -> Vec<usize> {
    vec![0, 1]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub seed: u64,
    pub epochs: u64,
    pub miners: usize,
    pub validators: Vec<ValidatorSpec>,
    #[serde(default)]
    pub stake_moves: Vec<StakeMove>,
    /// Miner indices (0-based among miners) the colluders back.
    #[serde(default = "default_cartel")]
    pub cartel: Vec<usize>,
    /// Standard deviation of each miner's quality change per epoch.
    #[serde(default = "default_drift")]
    pub quality_drift: f64,
    #[serde(default)]
    pub yuma3: bool,
    #[serde(default)]
    pub liquid_alpha: bool,
    #[serde(default = "default_kappa")]
    pub kappa: u16,
    #[serde(default = "default_bma")]
    pub bonds_moving_avg: u64,
    #[serde(default = "default_tempo")]
    pub tempo: u64,
    /// Alpha (rao) distributed per epoch.
    #[serde(default = "default_emission")]
    pub emission_rao: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario is not valid {format}: {reason}")]
    Parse {
        format: &'static str,
        reason: String,
    },
    #[error("scenario: {0}")]
    Invalid(String),
}

/// One epoch's result for one validator.
#[derive(Debug, Clone, Serialize)]
pub struct ValidatorEpoch {
    pub name: String,
    pub strategy: Strategy,
    pub stake_tao: u64,
    pub dividends_u16: u16,
    pub validator_emission_rao: u64,
    pub validator_trust_u16: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    pub epoch: u64,
    pub validators: Vec<ValidatorEpoch>,
    pub miner_emission_rao: u64,
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| ScenarioError::Parse {
                format: "JSON",
                reason: e.to_string(),
            })?
        } else {
            toml::from_str(text).map_err(|e| ScenarioError::Parse {
                format: "TOML",
                reason: e.to_string(),
            })?
        };
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        if self.validators.is_empty() {
            return bad("needs at least one validator".into());
        }
        if self.miners == 0 {
            return bad("needs at least one miner".into());
        }
        if self.validators.len() + self.miners > 4096 {
            return bad("at most 4096 neurons".into());
        }
        if self.epochs == 0 || self.epochs > 100_000 {
            return bad("epochs must be 1..=100000".into());
        }
        if self.tempo == 0 {
            return bad("tempo must be at least 1".into());
        }
        if let Some(c) = self.cartel.iter().find(|c| **c >= self.miners) {
            return bad(format!(
                "cartel miner {c} does not exist (miners are 0..{})",
                self.miners
            ));
        }
        if self.bonds_moving_avg > 1_000_000 {
            return bad("bonds_moving_avg is per million (0..=1000000)".into());
        }
        for m in &self.stake_moves {
            if !self.validators.iter().any(|v| v.name == m.validator) {
                return bad(format!(
                    "stake move names unknown validator {:?}",
                    m.validator
                ));
            }
        }
        Ok(())
    }

    /// Run every epoch; `on_epoch` sees each record as it is produced (progress output).
    pub fn run(&self, mut on_epoch: impl FnMut(&EpochRecord)) -> Vec<EpochRecord> {
        let v = self.validators.len();
        let n = v + self.miners;
        let mut rng = Rng::new(self.seed);
        let mut quality: Vec<f64> = (0..self.miners).map(|_| 0.2 + 0.8 * rng.unit()).collect();
        let mut stake_tao: Vec<u64> = self.validators.iter().map(|s| s.stake_tao).collect();
        let mut x = EpochInput {
            n,
            stake: vec![0; n],
            validator_permit: vec![false; n],
            max_allowed_validators: 64,
            weights: vec![Vec::new(); n],
            bonds: vec![Vec::new(); n],
            kappa: self.kappa,
            bonds_moving_avg: self.bonds_moving_avg,
            bonds_penalty: u16::MAX,
            stake_threshold: 0,
            emission_rao: self.emission_rao,
            current_block: 0,
            activity_cutoff: self.tempo.saturating_mul(13_889) / 1_000,
            last_update: vec![0; n],
            block_at_registration: vec![0; n],
            last_tempo: 0,
            yuma3: self.yuma3,
            liquid_alpha: self.liquid_alpha,
            alpha_low: 45_875,
            alpha_high: 58_982,
            alpha_sigmoid_steepness: 1_000,
            owner_uid: None,
        };
        let mut prev: Option<EpochOutput> = None;
        let mut records = Vec::with_capacity(self.epochs as usize);
        for epoch in 0..self.epochs {
            for m in self.stake_moves.iter().filter(|m| m.epoch == epoch) {
                if let Some(i) = self.validators.iter().position(|s| s.name == m.validator) {
                    stake_tao[i] = m.stake_tao;
                }
            }
            x.current_block = (epoch + 1) * self.tempo;
            x.last_tempo = x.current_block.saturating_sub(self.tempo) + 1;
            for (i, s) in stake_tao.iter().enumerate() {
                x.stake[i] = s.saturating_mul(RAO_PER_TAO);
            }
            for q in quality.iter_mut() {
                *q = (*q + self.quality_drift * rng.normal()).clamp(0.01, 1.0);
            }
            for (i, spec) in self.validators.iter().enumerate() {
                let row: Vec<(u16, u16)> = match spec.strategy {
                    Strategy::Honest => (0..self.miners)
                        .map(|j| {
                            let score =
                                (quality[j] * (1.0 + spec.noise * rng.normal())).clamp(0.0, 1.0);
                            ((v + j) as u16, (score * 65_535.0) as u16)
                        })
                        .collect(),
                    Strategy::Copier => match &prev {
                        Some(out) => out
                            .consensus
                            .iter()
                            .enumerate()
                            .map(|(j, c)| (j as u16, *c))
                            .collect(),
                        None => (0..self.miners).map(|j| ((v + j) as u16, 1)).collect(),
                    },
                    Strategy::Colluder => self
                        .cartel
                        .iter()
                        .map(|j| ((v + j) as u16, u16::MAX))
                        .collect(),
                    Strategy::Idle => Vec::new(),
                };
                let row: Vec<(u16, u16)> = row.into_iter().filter(|(_, w)| *w > 0).collect();
                if !row.is_empty() {
                    x.last_update[i] = x.current_block - 1;
                }
                x.weights[i] = row;
            }
            let out = run_epoch(&x);
            x.bonds = out.bonds.clone();
            x.validator_permit = out.validator_permit.clone();
            let record = EpochRecord {
                epoch,
                validators: self
                    .validators
                    .iter()
                    .enumerate()
                    .map(|(i, s)| ValidatorEpoch {
                        name: s.name.clone(),
                        strategy: s.strategy,
                        stake_tao: stake_tao[i],
                        dividends_u16: out.dividends[i],
                        validator_emission_rao: out.validator_emission[i],
                        validator_trust_u16: out.validator_trust[i],
                    })
                    .collect(),
                miner_emission_rao: out.server_emission.iter().sum(),
            };
            on_epoch(&record);
            records.push(record);
            prev = Some(out);
        }
        records
    }
}

/// CSV: one row per epoch and validator.
pub fn to_csv(records: &[EpochRecord]) -> String {
    let mut s = String::from("epoch,validator,strategy,stake_tao,dividends_u16,validator_emission_rao,validator_trust_u16\n");
    for r in records {
        for v in &r.validators {
            s.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                r.epoch,
                v.name,
                serde_json::to_value(v.strategy)
                    .ok()
                    .and_then(|x| x.as_str().map(str::to_string))
                    .unwrap_or_default(),
                v.stake_tao,
                v.dividends_u16,
                v.validator_emission_rao,
                v.validator_trust_u16
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../scenarios/copier-vs-honest.toml");

    #[test]
    fn example_scenario_runs_deterministically_and_honest_beats_copier_and_cartel() {
        let s = Scenario::parse(EXAMPLE).unwrap();
        let a = s.run(|_| {});
        let b = s.run(|_| {});
        assert_eq!(to_csv(&a), to_csv(&b), "same seed, same result");
        let total = |name: &str| -> u128 {
            a.iter()
                .skip(10)
                .flat_map(|r| r.validators.iter().filter(|v| v.name == name))
                .map(|v| {
                    u128::from(v.validator_emission_rao) * 1_000 / u128::from(v.stake_tao.max(1))
                })
                .sum()
        };
        let honest = total("honest-1");
        assert!(
            total("copier") < honest,
            "copier {} vs honest {honest}",
            total("copier")
        );
        assert!(
            total("cartel-1") < honest,
            "cartel {} vs honest {honest}",
            total("cartel-1")
        );
        assert_eq!(total("idle"), 0);
    }

    #[test]
    fn bad_scenarios_are_explained() {
        assert!(matches!(
            Scenario::parse("seed = 1"),
            Err(ScenarioError::Parse { .. })
        ));
        let mut s = Scenario::parse(EXAMPLE).unwrap();
        s.cartel = vec![999];
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("cartel miner 999"));
    }
}
