//! The JSON shapes the RPC returns. They are the stable schema documented in docs/rpc.md;
//! the CLI's `--json` output reuses them. Amounts are integers in rao.

use agora_core::block::{Block, FinalityCert};
use agora_core::genesis::ChainParams;
use agora_core::{AccountId, Call, Hash, SignedTransaction, Supply};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct TxView {
    pub hash: Hash,
    pub chain_id: u64,
    pub signer: AccountId,
    pub nonce: u64,
    pub tip: u64,
    pub call: Call,
    pub signature: String,
    pub encoded_len: usize,
}

impl TxView {
    pub fn of(stx: &SignedTransaction) -> Self {
        TxView {
            hash: stx.hash(),
            chain_id: stx.tx.chain_id,
            signer: stx.tx.signer,
            nonce: stx.tx.nonce,
            tip: stx.tx.tip,
            call: stx.tx.call.clone(),
            signature: format!("0x{}", hex::encode(stx.signature)),
            encoded_len: stx.encoded_len(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BlockView {
    pub hash: Hash,
    pub header: agora_core::Header,
    pub txs: Vec<TxView>,
    pub parent_cert: Option<FinalityCert>,
    /// This block's own finality certificate.
    pub cert: Option<FinalityCert>,
    /// The certificate checked now against the validator set of its height (the genesis
    /// set, or one governance installed): a quorum of valid precommit signatures for this
    /// block (null for genesis, which has none).
    pub cert_valid: Option<bool>,
}

impl BlockView {
    pub fn of(block: &Block, cert: Option<FinalityCert>, cert_valid: Option<bool>) -> Self {
        BlockView {
            hash: block.hash(),
            header: block.header.clone(),
            txs: block.txs.iter().map(TxView::of).collect(),
            parent_cert: block.parent_cert.clone(),
            cert,
            cert_valid,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AccountView {
    pub address: AccountId,
    pub free: u64,
    pub nonce: u64,
}

#[derive(Debug, Serialize)]
pub struct SupplyView {
    pub issued: u64,
    pub free: u64,
    pub staked: u64,
    pub burned: u64,
    pub max_supply: u64,
}

impl SupplyView {
    pub fn of(s: &Supply) -> Self {
        SupplyView {
            issued: s.issued,
            free: s.free,
            staked: s.staked,
            burned: s.burned,
            max_supply: agora_core::MAX_SUPPLY_RAO,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ChainInfoView {
    pub chain_id: u64,
    pub genesis_hash: Hash,
    pub block_time_ms: u64,
    pub base_fee_rao: u64,
    pub per_byte_fee_rao: u64,
    pub authorities: Vec<AccountId>,
    pub authority_power: Vec<u64>,
    /// Governance rules in force, and the treasury's account.
    pub gov: agora_core::gov::GovParams,
    pub treasury: AccountId,
    pub ss58_prefix: u8,
    pub token: &'static str,
    pub decimals: u8,
}

impl ChainInfoView {
    pub fn of(p: &ChainParams, genesis_hash: Hash) -> Self {
        ChainInfoView {
            chain_id: p.chain_id,
            genesis_hash,
            block_time_ms: p.block_time_ms,
            base_fee_rao: p.base_fee_rao,
            per_byte_fee_rao: p.per_byte_fee_rao,
            authorities: p.authorities.clone(),
            authority_power: p.authority_power.clone(),
            gov: p.gov.clone(),
            treasury: agora_core::gov::treasury_account(),
            ss58_prefix: agora_core::crypto::SS58_PREFIX,
            token: "TAO",
            decimals: 9,
        }
    }
}
