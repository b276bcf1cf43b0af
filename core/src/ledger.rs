//! The state transition function: transactions, the coinbase, and whole blocks
//! (PROTOCOL §1, §2, §6).
//!
//! A block is applied as: coinbase (mint the halving block emission to the proposer), then
//! each transaction in order. A transaction either applies completely or not at all: the
//! producer leaves out transactions that fail and reports why; a block from elsewhere that
//! contains one is invalid.
//!
//! The block emission goes to started subnets' pools (`subnet::coinbase`); while no subnet
//! is started it is paid to the block proposer as free balance, so issuance grows and is
//! accounted for either way.

use std::collections::BTreeMap;

use crate::block::{parent_cert_hash, tx_root, Block, FinalityCert, Header};
use crate::codec::MAX_BLOCK_BYTES;
use crate::codec::{CodecError, MAX_TX_BYTES};
use crate::crypto::{verify_batch, AccountId, Hash};
use crate::emission::block_emission;
use crate::genesis::ChainParams;
use crate::state::{self, Changes, LtHash, Overlay, StateError, StateRead};
use crate::subnet::{self, SubnetError, TxFailure};
use crate::tx::{Call, SignedTransaction};

/// A transaction broke a rule. Each variant is one rule; messages are for users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("wrong chain id: the transaction is for chain {got}, this chain is {expected}")]
    WrongChainId { expected: u64, got: u64 },
    #[error("bad signature: the signature does not match the signer and the transaction bytes")]
    BadSignature,
    #[error("nonce {got} was already used by this account (its next nonce is {expected}): a replayed or stale transaction")]
    StaleNonce { expected: u64, got: u64 },
    #[error("nonce {got} is ahead of the account's next nonce {expected}: send the missing transactions first")]
    FutureNonce { expected: u64, got: u64 },
    #[error("insufficient funds: needs {needed} rao (amount + fee + tip), the account has {available} rao")]
    InsufficientFunds { needed: u64, available: u64 },
    #[error("a transfer of 0 rao does nothing")]
    ZeroAmount,
    #[error("amount plus fee overflows a u64")]
    AmountOverflow,
    #[error("receiving account balance would overflow")]
    BalanceOverflow,
    #[error(transparent)]
    Subnet(#[from] SubnetError),
    #[error(transparent)]
    Gov(#[from] crate::gov::GovError),
    #[error("internal: {0}")]
    State(#[from] StateError),
}

impl From<TxFailure> for TxError {
    fn from(f: TxFailure) -> Self {
        match f {
            TxFailure::Rule(e) => TxError::Subnet(e),
            TxFailure::State(e) => TxError::State(e),
        }
    }
}

impl From<crate::gov::GovFailure> for TxError {
    fn from(f: crate::gov::GovFailure) -> Self {
        match f {
            crate::gov::GovFailure::Rule(e) => TxError::Gov(e),
            crate::gov::GovFailure::State(e) => TxError::State(e),
        }
    }
}

impl TxError {
    /// Short stable name for JSON output and RPC error data.
    pub fn kind(&self) -> &'static str {
        match self {
            TxError::Codec(CodecError::TooLarge { .. }) => "oversize",
            TxError::Codec(_) => "malformed",
            TxError::WrongChainId { .. } => "wrong_chain_id",
            TxError::BadSignature => "bad_signature",
            TxError::StaleNonce { .. } => "stale_nonce",
            TxError::FutureNonce { .. } => "future_nonce",
            TxError::InsufficientFunds { .. } => "insufficient_funds",
            TxError::ZeroAmount => "zero_amount",
            TxError::AmountOverflow => "amount_overflow",
            TxError::BalanceOverflow => "balance_overflow",
            TxError::Subnet(e) => e.kind(),
            TxError::Gov(e) => e.kind(),
            TxError::State(_) => "internal",
        }
    }

    /// Internal failures stop the node; everything else is the sender's fault.
    pub fn is_internal(&self) -> bool {
        matches!(self, TxError::State(_))
    }
}

/// A block broke a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block is for chain {got}, this chain is {expected}")]
    WrongChainId { expected: u64, got: u64 },
    #[error("block height {got} does not follow parent height {parent}")]
    WrongHeight { parent: u64, got: u64 },
    #[error("block's parent {got} is not the current head {expected}")]
    WrongParent { expected: Hash, got: Hash },
    #[error("block timestamp {got} ms is not after its parent's {parent} ms")]
    TimestampNotIncreasing { parent: u64, got: u64 },
    #[error("block proposer {0} is not an authority")]
    NotAnAuthority(AccountId),
    #[error("the parent's finality certificate is missing or invalid: {0}")]
    BadParentCertificate(String),
    #[error("the header commits to parent certificate {claimed}, the block carries {carried}")]
    ParentCertMismatch { claimed: Hash, carried: Hash },
    #[error("block is {len} bytes, the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("the chain's validator set is invalid: {0}")]
    BadValidatorSet(String),
    #[error("transaction root mismatch: header says {claimed}, transactions give {computed}")]
    TxRootMismatch { claimed: Hash, computed: Hash },
    #[error("state root mismatch: header says {claimed}, execution gives {computed}")]
    StateRootMismatch { claimed: Hash, computed: Hash },
    #[error("transaction {index} ({hash}) is invalid: {error}")]
    InvalidTx {
        index: usize,
        hash: Hash,
        error: TxError,
    },
    #[error("internal: {0}")]
    State(#[from] StateError),
}

/// The block a transaction executes in.
#[derive(Debug, Clone, Copy)]
pub struct BlockCtx {
    pub height: u64,
    pub proposer: AccountId,
}

/// What applying one transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    pub fee: u64,
    pub tip: u64,
}

/// Checks that need no state: chain id and size.
pub fn check_stateless(
    params: &ChainParams,
    stx: &SignedTransaction,
    encoded_len: usize,
) -> Result<(), TxError> {
    if encoded_len > MAX_TX_BYTES {
        return Err(CodecError::TooLarge {
            what: "transaction",
            len: encoded_len,
            max: MAX_TX_BYTES,
        }
        .into());
    }
    if stx.tx.chain_id != params.chain_id {
        return Err(TxError::WrongChainId {
            expected: params.chain_id,
            got: stx.tx.chain_id,
        });
    }
    // Refused at submission, as the wire format says, not admitted and dropped later.
    if matches!(stx.tx.call, Call::Transfer { amount: 0, .. }) {
        return Err(TxError::ZeroAmount);
    }
    Ok(())
}

/// What a transaction costs its signer in total, and the fee part.
pub fn total_cost(
    params: &ChainParams,
    stx: &SignedTransaction,
    encoded_len: usize,
) -> Result<(u64, u64), TxError> {
    let fee = if stx.tx.call.is_fee_free() {
        0
    } else {
        params.fee(encoded_len)
    };
    let spend = spend_of(&stx.tx.call);
    let total = spend
        .checked_add(fee)
        .and_then(|t| t.checked_add(stx.tx.tip))
        .ok_or(TxError::AmountOverflow)?;
    Ok((total, fee))
}

/// TAO a call spends besides fee and tip, when known before execution. Locks and burns
/// depend on state and are checked during dispatch.
fn spend_of(call: &Call) -> u64 {
    match call {
        Call::Transfer { amount, .. }
        | Call::AddStake { amount, .. }
        | Call::AddStakeLimit { amount, .. } => *amount,
        _ => 0,
    }
}

/// Apply one transaction whose signature was already checked. On error nothing changes.
pub fn apply_tx(
    overlay: &mut Overlay<'_>,
    params: &ChainParams,
    block: &BlockCtx,
    stx: &SignedTransaction,
    encoded_len: usize,
) -> Result<TxOutcome, TxError> {
    let cp = overlay.checkpoint();
    let mut result = apply_tx_inner(overlay, params, block, stx, encoded_len);
    // A write the transaction made that could not be read back fails it as a whole.
    if let Some(e) = overlay.take_refused() {
        if result.is_ok() {
            result = Err(TxError::Codec(e));
        }
    }
    match result {
        Ok(_) => overlay.keep(),
        Err(_) => overlay.rollback(cp),
    }
    result
}

fn apply_tx_inner(
    overlay: &mut Overlay<'_>,
    params: &ChainParams,
    block: &BlockCtx,
    stx: &SignedTransaction,
    encoded_len: usize,
) -> Result<TxOutcome, TxError> {
    check_stateless(params, stx, encoded_len)?;
    let tx = &stx.tx;
    let mut sender = state::account(overlay, &tx.signer)?;
    if tx.nonce < sender.nonce {
        return Err(TxError::StaleNonce {
            expected: sender.nonce,
            got: tx.nonce,
        });
    }
    if tx.nonce > sender.nonce {
        return Err(TxError::FutureNonce {
            expected: sender.nonce,
            got: tx.nonce,
        });
    }
    let (total, fee) = total_cost(params, stx, encoded_len)?;
    if sender.free < total {
        return Err(TxError::InsufficientFunds {
            needed: total,
            available: sender.free,
        });
    }
    // Charged here: the fee, the tip and a transfer's amount. Other calls move their own
    // funds during dispatch (the stake amount, a lock, a burn); `total` only checks that the
    // signer could afford them.
    let upfront = match &tx.call {
        Call::Transfer { .. } => total,
        // total includes what the call spends.
        _ => total.saturating_sub(spend_of(&tx.call)),
    };
    // Checked above: free >= total >= upfront.
    sender.free = sender.free.saturating_sub(upfront);
    sender.nonce = sender.nonce.saturating_add(1);
    state::put_account(overlay, &tx.signer, &sender);

    let signer = &tx.signer;
    let now = block.height;
    // Swap fees inside calls go to the proposer too.
    let mut call_fee: u64 = 0;
    match &tx.call {
        Call::Transfer { dest, amount } => {
            if *amount == 0 {
                return Err(TxError::ZeroAmount);
            }
            credit(overlay, dest, *amount)?;
        }
        Call::RegisterNetwork { hotkey } => {
            let emission = block_emission(state::supply(overlay)?.issued);
            subnet::register_network(overlay, &params.subnets, now, emission, signer, hotkey)?;
        }
        Call::StartCall { netuid } => subnet::start_call(overlay, now, signer, *netuid)?,
        Call::BurnedRegister { netuid, hotkey } => {
            call_fee = subnet::burned_register(overlay, now, signer, *netuid, hotkey, None)?.1;
        }
        Call::AddStake {
            hotkey,
            netuid,
            amount,
        } => {
            call_fee = subnet::stake::add_stake(overlay, signer, hotkey, *netuid, *amount, None)?.1;
        }
        Call::RemoveStake {
            hotkey,
            netuid,
            amount,
        } => {
            call_fee =
                subnet::stake::remove_stake(overlay, signer, hotkey, *netuid, *amount, None)?.1;
        }
        Call::SetWeights {
            netuid: 0,
            uids,
            values,
            ..
        } => {
            if params.subnets.emission_mode != subnet::EmissionMode::RootWeights {
                return Err(SubnetError::RootWeightsDisabled.into());
            }
            let limit = params.subnets.root_tempo;
            subnet::root::set_root_weights(overlay, now, signer, uids, values, limit)?;
        }
        Call::SetWeights {
            netuid,
            uids,
            values,
            version_key,
        } => {
            subnet::weights::set_weights(
                overlay,
                now,
                signer,
                *netuid,
                uids,
                values,
                *version_key,
            )?;
        }
        Call::AddStakeLimit {
            hotkey,
            netuid,
            amount,
            limit_price,
            allow_partial,
        } => {
            let limit = subnet::stake::Limit {
                price_rao: *limit_price,
                allow_partial: *allow_partial,
            };
            call_fee =
                subnet::stake::add_stake(overlay, signer, hotkey, *netuid, *amount, Some(limit))?.1;
        }
        Call::RemoveStakeLimit {
            hotkey,
            netuid,
            amount,
            limit_price,
            allow_partial,
        } => {
            let limit = subnet::stake::Limit {
                price_rao: *limit_price,
                allow_partial: *allow_partial,
            };
            call_fee = subnet::stake::remove_stake(
                overlay,
                signer,
                hotkey,
                *netuid,
                *amount,
                Some(limit),
            )?
            .1;
        }
        Call::RootRegister { hotkey } => {
            subnet::root::root_register(overlay, &params.subnets, now, signer, hotkey)?;
        }
        Call::MoveStake {
            origin_hotkey,
            dest_hotkey,
            origin_netuid,
            dest_netuid,
            amount,
        } => {
            let from = subnet::stake::Position {
                netuid: *origin_netuid,
                hotkey: *origin_hotkey,
                coldkey: *signer,
            };
            let to = subnet::stake::Position {
                netuid: *dest_netuid,
                hotkey: *dest_hotkey,
                coldkey: *signer,
            };
            call_fee = subnet::stake::move_position(overlay, from, to, *amount)?.1;
        }
        Call::TransferStake {
            dest_coldkey,
            hotkey,
            origin_netuid,
            dest_netuid,
            amount,
        } => {
            let from = subnet::stake::Position {
                netuid: *origin_netuid,
                hotkey: *hotkey,
                coldkey: *signer,
            };
            call_fee =
                subnet::stake::transfer_stake(overlay, from, dest_coldkey, *dest_netuid, *amount)?
                    .1;
        }
        Call::SwapStake {
            hotkey,
            origin_netuid,
            dest_netuid,
            amount,
        } => {
            let from = subnet::stake::Position {
                netuid: *origin_netuid,
                hotkey: *hotkey,
                coldkey: *signer,
            };
            let to = subnet::stake::Position {
                netuid: *dest_netuid,
                ..from
            };
            call_fee = subnet::stake::move_position(overlay, from, to, *amount)?.1;
        }
        Call::UnstakeAll { hotkey } => {
            call_fee = subnet::stake::unstake_all(overlay, signer, hotkey)?.1;
        }
        Call::IncreaseTake { hotkey, take } | Call::DecreaseTake { hotkey, take } => {
            let increase = matches!(tx.call, Call::IncreaseTake { .. });
            subnet::stake::change_take(
                overlay,
                &params.subnets,
                now,
                signer,
                hotkey,
                *take,
                increase,
            )?;
        }
        Call::CommitWeights { netuid, hash } => {
            subnet::weights::commit_weights(overlay, now, signer, *netuid, *hash)?;
        }
        Call::RevealWeights {
            netuid,
            uids,
            values,
            salt,
            version_key,
        } => {
            subnet::weights::reveal_weights(
                overlay,
                now,
                signer,
                *netuid,
                uids,
                values,
                salt,
                *version_key,
            )?;
        }
        Call::Serve { netuid, addrs } => {
            subnet::serve::serve(overlay, now, signer, *netuid, addrs)?;
        }
        Call::SetHyperparameter {
            netuid,
            name,
            value,
        } => {
            subnet::admin::set_hyperparameter(overlay, params, now, signer, *netuid, name, *value)?;
        }
        Call::DissolveNetwork { netuid } => {
            if params.admin.as_ref() != Some(signer) {
                return Err(SubnetError::NotAdmin.into());
            }
            subnet::dissolve::dissolve(overlay, *netuid, now)?;
        }
        Call::Propose { action, emergency } => {
            crate::gov::propose(overlay, params, now, signer, action.clone(), *emergency)?;
        }
        Call::Vote { proposal, choice } => {
            crate::gov::vote(overlay, params, now, signer, *proposal, *choice)?;
        }
    }
    let to_proposer = fee.saturating_add(tx.tip).saturating_add(call_fee);
    credit(overlay, &block.proposer, to_proposer)?;
    Ok(TxOutcome {
        fee: fee.saturating_add(call_fee),
        tip: tx.tip,
    })
}

fn credit(overlay: &mut Overlay<'_>, who: &AccountId, amount: u64) -> Result<(), TxError> {
    let mut acc = state::account(overlay, who)?;
    acc.free = acc
        .free
        .checked_add(amount)
        .ok_or(TxError::BalanceOverflow)?;
    state::put_account(overlay, who, &acc);
    Ok(())
}

/// The chain parameters in force for a block on `base`: the stored ones (genesis, then
/// every change governance enacted), or `genesis` for a state that has none.
pub fn params_in_force(
    base: &dyn StateRead,
    genesis: &ChainParams,
) -> Result<ChainParams, StateError> {
    Ok(crate::gov::chain_params(base)?.unwrap_or_else(|| genesis.clone()))
}

/// Governance first (tallies, then enactments due at this height), then queued dissolves,
/// then mint this block's emission and run the subnet step: the treasury takes
/// `treasury_ppm` of the emission; the TAO emission enters started subnets' pools;
/// whatever no subnet takes (no subnet started yet) goes to the proposer. Returns the rao
/// minted. The parameters are read from the state after governance ran, so an enacted
/// change applies to this block's emission and transactions.
pub fn apply_coinbase(
    overlay: &mut Overlay<'_>,
    params: &ChainParams,
    height: u64,
    proposer: &AccountId,
) -> Result<u64, StateError> {
    let before = params_in_force(overlay, params)?;
    crate::gov::step(overlay, &before, height)?;
    let params = &params_in_force(overlay, params)?;
    // Queued dissolves: what they recycle lowers issuance before this block's emission is
    // computed from it.
    subnet::dissolve::step(overlay)?;
    let minted = block_emission(state::supply(overlay)?.issued);
    let to_treasury = crate::amount::mul_div(minted, params.gov.treasury_ppm, 1_000_000);
    let to_network = minted.saturating_sub(to_treasury);
    let step = subnet::coinbase::step(overlay, &params.subnets, height, to_network)?;
    let to_pools = step.tao_to_subnets.min(to_network);
    let to_proposer = to_network.saturating_sub(to_pools);
    let mut supply = state::supply(overlay)?;
    supply.issued = supply.issued.saturating_add(minted);
    supply.staked = supply.staked.saturating_add(to_pools);
    supply.free = supply
        .free
        .saturating_add(to_proposer)
        .saturating_add(to_treasury);
    state::put_supply(overlay, &supply);
    for (who, amount) in [
        (*proposer, to_proposer),
        (crate::gov::treasury_account(), to_treasury),
    ] {
        if amount > 0 {
            let mut acc = state::account(overlay, &who)?;
            // Balances are bounded by issuance, which the cap keeps far below u64::MAX.
            acc.free = acc.free.saturating_add(amount);
            state::put_account(overlay, &who, &acc);
        }
    }
    Ok(minted)
}

/// Signature validity of each transaction: one parallel batch check, and a per-item pass
/// only when the batch fails.
pub fn check_signatures(txs: &[SignedTransaction]) -> Vec<bool> {
    let items: Vec<_> = txs
        .iter()
        .map(|t| (t.tx.signer, t.tx.signing_payload(), t.signature))
        .collect();
    if verify_batch(&items) {
        return vec![true; txs.len()];
    }
    use rayon::prelude::*;
    items
        .par_iter()
        .map(|(acc, msg, sig)| acc.verify(&msg.0, sig))
        .collect()
}

/// Everything the chain needs to commit a block.
#[derive(Debug)]
pub struct ExecutedBlock {
    pub block: Block,
    pub changes: Changes,
    pub lthash: LtHash,
    pub minted: u64,
    pub fees: u64,
}

/// A block the producer built, plus the candidates it left out and why.
#[derive(Debug)]
pub struct BuiltBlock {
    pub executed: ExecutedBlock,
    pub rejected: Vec<(Hash, TxError)>,
}

/// Inputs the proposer chooses.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub proposer: AccountId,
    pub timestamp_ms: u64,
    pub view: u64,
    pub parent_cert: Option<FinalityCert>,
}

/// How [`execute`] treats a transaction that fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Building a block: leave it out (and report why); stop adding once the block's
    /// encoded size would pass [`MAX_BLOCK_BYTES`].
    Build,
    /// Verifying someone's block: the whole block is invalid.
    Verify,
}

/// Room kept in a block for everything but its transactions: the header (~200 bytes)
/// and the parent certificate (~100 bytes per validator), with a margin.
pub const BLOCK_OVERHEAD_BYTES: usize = 256 * 1024;

/// The one execution path of a block on top of `parent` (the state `base` and its
/// `lthash`): the coinbase, then `txs` in order under `mode`. Returns the executed block
/// whose header carries the roots this execution produced, and (building) the left-out
/// transactions. Header fields that are inputs (proposer, view, timestamp, parent
/// certificate) come from `proposal`; [`execute_block`] checks a received header against
/// the one this rebuilds.
pub fn execute(
    base: &dyn StateRead,
    lthash: &LtHash,
    params: &ChainParams,
    parent: &Header,
    proposal: Proposal,
    txs: Vec<SignedTransaction>,
    mode: Mode,
) -> Result<BuiltBlock, BlockError> {
    let sig_ok = check_signatures(&txs);
    let ctx = BlockCtx {
        height: parent.height.saturating_add(1),
        proposer: proposal.proposer,
    };
    let mut overlay = Overlay::new(base);
    let minted = apply_coinbase(&mut overlay, params, ctx.height, &proposal.proposer)?;
    // Transactions run under the parameters in force after the coinbase's enactments.
    let params = &params_in_force(&overlay, params)?;
    // The coinbase and epochs write state of the chain's own making: a value over the limit
    // there is a defect no block can be built around.
    if let Some(e) = overlay.take_refused() {
        return Err(StateError::Refused(e).into());
    }
    let mut included = Vec::with_capacity(txs.len());
    let mut rejected = Vec::new();
    let mut fees: u64 = 0;
    let mut bytes: usize = BLOCK_OVERHEAD_BYTES;
    for (index, (stx, ok)) in txs.into_iter().zip(sig_ok).enumerate() {
        let len = stx.encoded_len();
        if mode == Mode::Build && bytes.saturating_add(len) > MAX_BLOCK_BYTES {
            break; // full: the rest stay in the mempool for the next block
        }
        let result = if ok {
            apply_tx(&mut overlay, params, &ctx, &stx, len)
        } else {
            Err(TxError::BadSignature)
        };
        match result {
            Ok(out) => {
                fees = fees.saturating_add(out.fee).saturating_add(out.tip);
                bytes = bytes.saturating_add(len);
                included.push(stx);
            }
            Err(TxError::State(e)) => return Err(e.into()),
            Err(error) if mode == Mode::Verify => {
                return Err(BlockError::InvalidTx {
                    index,
                    hash: stx.hash(),
                    error,
                })
            }
            Err(e) => rejected.push((stx.hash(), e)),
        }
    }
    let changes = overlay.into_changes();
    let mut lthash = lthash.clone();
    lthash.apply(base, &changes)?;
    let header = Header {
        chain_id: params.chain_id,
        height: ctx.height,
        parent: parent.hash(),
        view: proposal.view,
        timestamp_ms: match mode {
            Mode::Build => proposal
                .timestamp_ms
                .max(parent.timestamp_ms.saturating_add(1)),
            Mode::Verify => proposal.timestamp_ms,
        },
        proposer: proposal.proposer,
        tx_root: tx_root(&included),
        state_root: lthash.root(),
        parent_cert: parent_cert_hash(proposal.parent_cert.as_ref()),
    };
    Ok(BuiltBlock {
        executed: ExecutedBlock {
            block: Block {
                header,
                txs: included,
                parent_cert: proposal.parent_cert,
            },
            changes,
            lthash,
            minted,
            fees,
        },
        rejected,
    })
}

/// Build the next block on `parent` from `candidates` (in order), leaving out the ones
/// that fail and stopping at the block size limit.
pub fn build_block(
    base: &dyn StateRead,
    lthash: &LtHash,
    params: &ChainParams,
    parent: &Header,
    proposal: Proposal,
    candidates: Vec<SignedTransaction>,
) -> Result<BuiltBlock, BlockError> {
    execute(
        base,
        lthash,
        params,
        parent,
        proposal,
        candidates,
        Mode::Build,
    )
}

/// Check a block received from elsewhere against `parent` (the committed head) and
/// execute it. Valid only if re-executing its transactions rebuilds its header exactly.
pub fn execute_block(
    base: &dyn StateRead,
    lthash: &LtHash,
    params: &ChainParams,
    parent: &Header,
    block: Block,
) -> Result<ExecutedBlock, BlockError> {
    let h = &block.header;
    if h.chain_id != params.chain_id {
        return Err(BlockError::WrongChainId {
            expected: params.chain_id,
            got: h.chain_id,
        });
    }
    if h.height != parent.height.saturating_add(1) {
        return Err(BlockError::WrongHeight {
            parent: parent.height,
            got: h.height,
        });
    }
    if h.parent != parent.hash() {
        return Err(BlockError::WrongParent {
            expected: parent.hash(),
            got: h.parent,
        });
    }
    if h.timestamp_ms <= parent.timestamp_ms {
        return Err(BlockError::TimestampNotIncreasing {
            parent: parent.timestamp_ms,
            got: h.timestamp_ms,
        });
    }
    // The set of this block's height, and of its parent's: the genesis set, or one
    // governance installed (both known from the parent's state).
    let set_at = |height: u64| {
        crate::gov::validator_set_at(base, params, height)?
            .map_err(|e| BlockError::BadValidatorSet(e.to_string()))
    };
    if set_at(h.height)?.power(&h.proposer).is_none() {
        return Err(BlockError::NotAnAuthority(h.proposer));
    }
    let carried = parent_cert_hash(block.parent_cert.as_ref());
    if carried != h.parent_cert {
        return Err(BlockError::ParentCertMismatch {
            claimed: h.parent_cert,
            carried,
        });
    }
    if parent.height > 0 {
        let validators = set_at(parent.height)?;
        match &block.parent_cert {
            None => return Err(BlockError::BadParentCertificate("missing".into())),
            Some(c) => c
                .verify_for(params.chain_id, &validators, parent.height, &h.parent)
                .map_err(|e| BlockError::BadParentCertificate(e.to_string()))?,
        }
    }
    let len = block.encoded_len();
    if len > MAX_BLOCK_BYTES {
        return Err(BlockError::TooLarge {
            len,
            max: MAX_BLOCK_BYTES,
        });
    }
    let claimed = block.header.clone();
    let computed = tx_root(&block.txs);
    if computed != claimed.tx_root {
        return Err(BlockError::TxRootMismatch {
            claimed: claimed.tx_root,
            computed,
        });
    }
    let proposal = Proposal {
        proposer: claimed.proposer,
        timestamp_ms: claimed.timestamp_ms,
        view: claimed.view,
        parent_cert: block.parent_cert,
    };
    let built = execute(
        base,
        lthash,
        params,
        parent,
        proposal,
        block.txs,
        Mode::Verify,
    )?;
    let executed = built.executed;
    if executed.block.header.state_root != claimed.state_root {
        return Err(BlockError::StateRootMismatch {
            claimed: claimed.state_root,
            computed: executed.block.header.state_root,
        });
    }
    // Every other field was copied from the claimed header or checked above.
    debug_assert_eq!(executed.block.header, claimed);
    Ok(executed)
}

/// Apply `changes` to an in-memory state map (tests, simulations).
pub fn apply_changes(state: &mut BTreeMap<Vec<u8>, Vec<u8>>, changes: &Changes) {
    for (k, v) in changes {
        match v {
            Some(v) => {
                state.insert(k.clone(), v.clone());
            }
            None => {
                state.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests;
