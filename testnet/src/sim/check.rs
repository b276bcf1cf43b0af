//! Independent checkers: each recomputes its verdict from the nodes' stored blocks and
//! state with its own code (a fresh re-execution, its own quorum count), never by asking
//! the code under test whether it did well.

use std::collections::BTreeMap;
use std::sync::Arc;

use agora_core::block::FinalityCert;
use agora_core::consensus::{Vote, VoteKind};
use agora_core::ledger;
use agora_core::state::{self, keys, StateRead};
use agora_core::{Account, Genesis, Hash};
use agora_storage::{ChainStore, MemStore};

/// Agreement: no two honest nodes hold different blocks at one height.
pub fn agreement(chains: &[(usize, &ChainStore<MemStore>)]) -> Vec<String> {
    let mut first: BTreeMap<u64, (usize, Hash)> = BTreeMap::new();
    let mut out = Vec::new();
    for (node, store) in chains {
        let head = store.head_height().unwrap_or(0);
        for h in 1..=head {
            let Ok(Some(block)) = store.block_by_height(h) else {
                out.push(format!(
                    "node {node}: block {h} missing below its head {head}"
                ));
                continue;
            };
            let hash = block.hash();
            match first.get(&h) {
                Some((other, seen)) if *seen != hash => out.push(format!(
                    "agreement: height {h}: node {other} finalized {seen}, node {node} finalized {hash}"
                )),
                Some(_) => {}
                None => {
                    first.insert(h, (*node, hash));
                }
            }
        }
    }
    out
}

/// More than two thirds of the power, from distinct validators with valid precommit
/// signatures, counted here rather than by `FinalityCert::verify`.
fn cert_has_quorum(genesis: &Genesis, cert: &FinalityCert) -> bool {
    let powers: BTreeMap<_, u128> = genesis
        .authorities
        .iter()
        .enumerate()
        .map(|(i, a)| {
            (
                *a,
                u128::from(genesis.authority_power.get(i).copied().unwrap_or(1)),
            )
        })
        .collect();
    let total: u128 = powers.values().sum();
    let payload = Vote::signing_payload(
        genesis.chain_id,
        VoteKind::Precommit,
        cert.height,
        cert.round,
        Some(&cert.block_hash),
    );
    let mut signed = std::collections::BTreeSet::new();
    let mut power = 0u128;
    for v in &cert.votes {
        if let Some(p) = powers.get(&v.authority) {
            if v.authority.verify(&payload.0, &v.signature) && signed.insert(v.authority) {
                power += p;
            }
        }
    }
    power * 3 > total * 2
}

/// Validity: the node's chain re-executes from genesis in a fresh store to the same state
/// roots, every block carries its parent's certificate, and every stored certificate
/// holds a quorum for its block.
pub fn validity(genesis: &Genesis, node: usize, store: &ChainStore<MemStore>) -> Vec<String> {
    let mut out = Vec::new();
    let replay = ChainStore::open(Arc::new(MemStore::new()), genesis).expect("genesis opens");
    let params = genesis.params();
    let head = store.head_height().unwrap_or(0);
    for h in 1..=head {
        let (Ok(Some(block)), Ok(Some(cert))) = (store.block_by_height(h), store.cert(h)) else {
            out.push(format!(
                "validity: node {node}: block or certificate {h} missing"
            ));
            return out;
        };
        if cert.block_hash != block.hash() || cert.height != h || !cert_has_quorum(genesis, &cert) {
            out.push(format!(
                "validity: node {node}: certificate of block {h} is not a quorum for it"
            ));
        }
        let parent = replay.head_header().expect("replay head");
        let lthash = replay.lthash().expect("replay lthash");
        match ledger::execute_block(&replay, &lthash, &params, &parent, block.clone()) {
            Ok(executed) => {
                if executed.block.header.state_root != block.header.state_root {
                    out.push(format!(
                        "validity: node {node}: block {h} state root differs on re-execution"
                    ));
                }
                replay.commit(&executed, &cert).expect("replay commit");
            }
            Err(e) => {
                out.push(format!(
                    "validity: node {node}: block {h} does not re-execute: {e}"
                ));
                return out;
            }
        }
    }
    out
}

/// Supply: the sum of every account's free balance is the supply's free total, and
/// free + staked + burned is what genesis issued plus one TAO per block (the emission
/// before the first halving; no subnet is started in the simulation).
pub fn supply(genesis: &Genesis, node: usize, store: &ChainStore<MemStore>) -> Vec<String> {
    let mut out = Vec::new();
    let s = state::supply(store).expect("supply");
    let mut balances: u128 = 0;
    for (_, v) in store.scan_prefix(&[keys::ACCOUNT]).expect("accounts") {
        let a: Account = agora_core::codec::decode_value(&v, "account").expect("account decodes");
        balances += u128::from(a.free);
    }
    let genesis_total: u128 = genesis
        .balances
        .iter()
        .map(|b| u128::from(b.balance_rao))
        .sum();
    let height = u128::from(store.head_height().unwrap_or(0));
    let expected = genesis_total + height * u128::from(agora_core::RAO_PER_TAO);
    if balances != u128::from(s.free) {
        out.push(format!(
            "supply: node {node}: balances sum to {balances}, supply says {} free",
            s.free
        ));
    }
    let held = u128::from(s.free) + u128::from(s.staked) + u128::from(s.burned);
    if held != expected || u128::from(s.issued) != expected {
        out.push(format!(
            "supply: node {node}: issued {} and held {held}, expected {expected} at height {height}",
            s.issued
        ));
    }
    out
}
