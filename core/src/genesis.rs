//! Genesis: the chain's parameters and initial balances, from a TOML or JSON file or the
//! built-in dev default (PROTOCOL §1, §6).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::amount::{MAX_SUPPLY_RAO, RAO_PER_TAO};
use crate::block::{Block, Header};
use crate::crypto::{AccountId, Hash, Keypair};
use crate::gov::GovParams;
use crate::state::{self, Account, Changes, EmptyState, LtHash, Overlay, StateError, Supply};
use crate::subnet::SubnetParams;

/// Smallest and largest accepted block time.
pub const MIN_BLOCK_TIME_MS: u64 = 100;
pub const MAX_BLOCK_TIME_MS: u64 = 600_000;

/// Chain id of the built-in dev genesis.
pub const DEV_CHAIN_ID: u64 = 0xA60;

fn default_base_fee() -> u64 {
    100_000
}
fn default_per_byte_fee() -> u64 {
    1_000
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisBalance {
    pub address: AccountId,
    pub balance_rao: u64,
}

/// The genesis file. Every field is a parameter, none is hard-coded in logic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: u64,
    pub block_time_ms: u64,
    #[serde(default = "default_base_fee")]
    pub base_fee_rao: u64,
    #[serde(default = "default_per_byte_fee")]
    pub per_byte_fee_rao: u64,
    pub authorities: Vec<AccountId>,
    /// Consensus voting power of each authority, in the same order. Empty: 1 each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authority_power: Vec<u64>,
    #[serde(default)]
    pub admin: Option<AccountId>,
    #[serde(default)]
    pub balances: Vec<GenesisBalance>,
    /// Subnet creation and registration parameters, and new subnets' hyperparameters.
    #[serde(default)]
    pub subnets: SubnetParams,
    /// Governance: voting power, the proposal lifecycle, the treasury share.
    #[serde(default)]
    pub gov: GovParams,
}

/// Why a genesis file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("genesis file {path} is not valid {format}: {reason}")]
    Parse {
        path: String,
        format: &'static str,
        reason: String,
    },
    #[error("genesis has no authorities: at least one is needed to produce blocks")]
    NoAuthorities,
    #[error("genesis lists authority {0} twice")]
    DuplicateAuthority(AccountId),
    #[error("genesis lists a balance for {0} twice")]
    DuplicateBalance(AccountId),
    #[error("genesis balances add up to more than the 21,000,000 TAO supply cap")]
    SupplyExceeded,
    #[error("block_time_ms {0} is outside {MIN_BLOCK_TIME_MS}..={MAX_BLOCK_TIME_MS}")]
    BlockTime(u64),
    #[error("genesis governance parameters: {0}")]
    Gov(String),
    #[error("authority_power has {got} entries for {authorities} authorities (give one power per authority, each at least 1, or none)")]
    AuthorityPower { got: usize, authorities: usize },
}

/// The parameters execution needs, taken from genesis. They are stored in state (key
/// [`state::keys::PARAMS`]), so the genesis hash and every state root commit to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, bincode::Encode, bincode::Decode)]
pub struct ChainParams {
    pub chain_id: u64,
    pub block_time_ms: u64,
    pub base_fee_rao: u64,
    pub per_byte_fee_rao: u64,
    pub authorities: Vec<AccountId>,
    pub authority_power: Vec<u64>,
    pub admin: Option<AccountId>,
    pub subnets: SubnetParams,
    pub gov: GovParams,
}

impl ChainParams {
    /// The consensus validator set: the genesis authorities with their `authority_power`
    /// (1 each when none is given). Fails only for lists genesis validation refuses.
    pub fn validator_set(
        &self,
    ) -> Result<crate::consensus::ValidatorSet, crate::consensus::ValidatorSetError> {
        if self.authority_power.is_empty() {
            return crate::consensus::ValidatorSet::equal(&self.authorities);
        }
        crate::consensus::ValidatorSet::new(
            self.authorities
                .iter()
                .zip(self.authority_power.iter().chain(std::iter::repeat(&0)))
                .map(|(&id, &power)| crate::consensus::Validator { id, power })
                .collect(),
        )
    }

    /// `base + per_byte * len`, saturating (a saturated fee is simply unaffordable).
    pub fn fee(&self, encoded_len: usize) -> u64 {
        let per_byte = self
            .per_byte_fee_rao
            .saturating_mul(u64::try_from(encoded_len).unwrap_or(u64::MAX));
        self.base_fee_rao.saturating_add(per_byte)
    }
}

/// Subtensor's defaults, with waits a local testnet can live with: one network
/// registration per block, a 100 TAO minimum lock, 30-block epochs, 10-minute subnet
/// immunity and take rate limit, and commit-reveal off.
fn dev_subnet_params() -> SubnetParams {
    let mut p = SubnetParams {
        network_rate_limit: 1,
        network_min_lock_rao: 100 * RAO_PER_TAO,
        network_immunity_period: 600,
        take_rate_limit: 600,
        ..SubnetParams::default()
    };
    p.defaults.tempo = 30;
    p.defaults.immunity_period = 300;
    p.defaults.weights_rate_limit = 5;
    p.defaults.serving_rate_limit = 5;
    // Plain set_weights on the dev chain; turn commit-reveal on per subnet with
    // `agora subnet set NETUID commit_reveal 1`.
    p.defaults.commit_reveal = false;
    p
}

/// Genesis state and block.
pub struct GenesisBuild {
    pub block: Block,
    pub changes: Changes,
    pub lthash: LtHash,
}

impl Genesis {
    /// Built-in dev chain: 1 s blocks, `alice` as the only authority and admin, and
    /// 1,000,000 TAO each for the dev accounts alice, bob, charlie, dave, eve and ferdie.
    pub fn dev() -> Self {
        let names = ["alice", "bob", "charlie", "dave", "eve", "ferdie"];
        Genesis {
            chain_id: DEV_CHAIN_ID,
            block_time_ms: 1_000,
            base_fee_rao: default_base_fee(),
            per_byte_fee_rao: default_per_byte_fee(),
            authorities: vec![Keypair::dev("alice").account()],
            authority_power: Vec::new(),
            admin: Some(Keypair::dev("alice").account()),
            balances: names
                .iter()
                .map(|n| GenesisBalance {
                    address: Keypair::dev(n).account(),
                    balance_rao: 1_000_000 * RAO_PER_TAO,
                })
                .collect(),
            subnets: dev_subnet_params(),
            gov: GovParams::dev(),
        }
    }

    /// Parse TOML, or JSON when the text starts with `{`.
    pub fn parse(text: &str, path: &str) -> Result<Self, GenesisError> {
        let genesis: Genesis = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| GenesisError::Parse {
                path: path.to_string(),
                format: "JSON",
                reason: e.to_string(),
            })?
        } else {
            toml::from_str(text).map_err(|e| GenesisError::Parse {
                path: path.to_string(),
                format: "TOML",
                reason: e.to_string(),
            })?
        };
        genesis.validate()?;
        Ok(genesis)
    }

    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.authorities.is_empty() {
            return Err(GenesisError::NoAuthorities);
        }
        if !(MIN_BLOCK_TIME_MS..=MAX_BLOCK_TIME_MS).contains(&self.block_time_ms) {
            return Err(GenesisError::BlockTime(self.block_time_ms));
        }
        let mut seen = BTreeSet::new();
        for a in &self.authorities {
            if !seen.insert(*a) {
                return Err(GenesisError::DuplicateAuthority(*a));
            }
        }
        if !self.authority_power.is_empty()
            && (self.authority_power.len() != self.authorities.len()
                || self.authority_power.contains(&0))
        {
            return Err(GenesisError::AuthorityPower {
                got: self.authority_power.len(),
                authorities: self.authorities.len(),
            });
        }
        self.gov.validate().map_err(GenesisError::Gov)?;
        let mut seen = BTreeSet::new();
        let mut total: u64 = 0;
        for b in &self.balances {
            if !seen.insert(b.address) {
                return Err(GenesisError::DuplicateBalance(b.address));
            }
            total = total
                .checked_add(b.balance_rao)
                .filter(|t| *t <= MAX_SUPPLY_RAO)
                .ok_or(GenesisError::SupplyExceeded)?;
        }
        Ok(())
    }

    pub fn params(&self) -> ChainParams {
        ChainParams {
            chain_id: self.chain_id,
            block_time_ms: self.block_time_ms,
            base_fee_rao: self.base_fee_rao,
            per_byte_fee_rao: self.per_byte_fee_rao,
            authorities: self.authorities.clone(),
            authority_power: self.authority_power.clone(),
            admin: self.admin,
            subnets: self.subnets.clone(),
            gov: self.gov.clone(),
        }
    }

    /// The genesis state (initial balances, issuance = their sum) and block 0.
    pub fn build(&self) -> Result<GenesisBuild, StateError> {
        let mut overlay = Overlay::new(&EmptyState);
        let mut supply = Supply::default();
        for b in &self.balances {
            state::put_account(
                &mut overlay,
                &b.address,
                &Account {
                    free: b.balance_rao,
                    nonce: 0,
                },
            );
            // validate() bounds the sum by the cap, so these cannot overflow.
            supply.issued = supply.issued.saturating_add(b.balance_rao);
            supply.free = supply.free.saturating_add(b.balance_rao);
        }
        state::put_supply(&mut overlay, &supply);
        overlay.put_value(state::keys::PARAMS.to_vec(), &self.params());
        if let Some(e) = overlay.take_refused() {
            return Err(StateError::Refused(e));
        }
        let changes = overlay.into_changes();
        let mut lthash = LtHash::default();
        lthash.apply(&EmptyState, &changes)?;
        let header = Header {
            chain_id: self.chain_id,
            height: 0,
            parent: Hash::ZERO,
            view: 0,
            timestamp_ms: 0,
            proposer: AccountId::default(),
            tx_root: crate::block::tx_root(&[]),
            state_root: lthash.root(),
            parent_cert: Hash::ZERO,
        };
        Ok(GenesisBuild {
            block: Block {
                header,
                txs: Vec::new(),
                parent_cert: None,
            },
            changes,
            lthash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_genesis_is_valid_and_deterministic() {
        let g = Genesis::dev();
        g.validate().unwrap();
        let a = g.build().unwrap();
        let b = g.build().unwrap();
        assert_eq!(a.block.hash(), b.block.hash());
        assert_eq!(a.block.header.state_root, a.lthash.root());
    }

    #[test]
    fn every_parameter_changes_the_genesis_hash() {
        let base = Genesis::dev().build().unwrap().block.hash();
        let mut g = Genesis::dev();
        g.block_time_ms = 250;
        assert_ne!(g.build().unwrap().block.hash(), base);
        let mut g = Genesis::dev();
        g.per_byte_fee_rao += 1;
        assert_ne!(g.build().unwrap().block.hash(), base);
        let mut g = Genesis::dev();
        g.admin = None;
        assert_ne!(g.build().unwrap().block.hash(), base);
    }

    #[test]
    fn toml_and_json_parse_and_bad_files_are_explained() {
        let alice = Keypair::dev("alice").account();
        let toml = format!(
            "chain_id = 5\nblock_time_ms = 250\nauthorities = [\"{alice}\"]\n[[balances]]\naddress = \"{alice}\"\nbalance_rao = 10\n"
        );
        let g = Genesis::parse(&toml, "g.toml").unwrap();
        assert_eq!(g.chain_id, 5);
        assert_eq!(g.base_fee_rao, 100_000);
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(Genesis::parse(&json, "g.json").unwrap(), g);

        let unknown = format!("{toml}color = 1\n");
        assert!(matches!(
            Genesis::parse(&unknown, "g.toml"),
            Err(GenesisError::Parse { .. })
        ));
        let no_auth = "chain_id = 5\nblock_time_ms = 250\nauthorities = []\n";
        assert_eq!(
            Genesis::parse(no_auth, "g"),
            Err(GenesisError::NoAuthorities)
        );
        let fast = format!("chain_id = 5\nblock_time_ms = 1\nauthorities = [\"{alice}\"]\n");
        assert_eq!(Genesis::parse(&fast, "g"), Err(GenesisError::BlockTime(1)));
        let mut rich = Genesis::dev();
        rich.balances[0].balance_rao = MAX_SUPPLY_RAO;
        assert_eq!(rich.validate(), Err(GenesisError::SupplyExceeded));
        let mut dup = Genesis::dev();
        dup.balances.push(dup.balances[0].clone());
        assert_eq!(dup.validate(), Err(GenesisError::DuplicateBalance(alice)));
    }
}
