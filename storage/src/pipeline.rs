//! The block pipeline over a [`ChainStore`]: what consensus asks of the chain. `propose`
//! builds a block on the committed head, `verify` re-executes a received one (no commit),
//! both keep the executed result by hash; `commit` writes a decided block with its
//! certificate; `import` checks a certificate, executes and commits in one go (sync).
//! The node's chain actor and the consensus simulator both drive the chain through this.

use std::collections::{BTreeMap, VecDeque};

use agora_core::block::{Block, CertError, FinalityCert};
use agora_core::consensus::ValidatorSet;
use agora_core::genesis::ChainParams;
use agora_core::ledger::{self, BlockError, ExecutedBlock, Proposal, TxError};
use agora_core::{AccountId, Hash, SignedTransaction};

use crate::chain::ChainStore;
use crate::kv::KvStore;
use crate::StorageError;

/// Executed, uncommitted blocks kept at once (proposals of several rounds). Overflow
/// policy: the oldest is forgotten (re-executed if it is needed after all).
pub const EXECUTED_CACHE_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The block breaks a rule: the peer that sent it is at fault.
    #[error("invalid block: {0}")]
    Invalid(BlockError),
    /// The certificate does not prove finality of the block.
    #[error("invalid certificate: {0}")]
    Certificate(#[from] CertError),
    #[error("block {0} has not been executed on the current head")]
    NotExecuted(Hash),
    /// Internal: the node stops.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl PipelineError {
    /// Internal failures stop the node; the others are someone else's bad data.
    pub fn is_internal(&self) -> bool {
        match self {
            PipelineError::Storage(_) => true,
            PipelineError::Invalid(e) => matches!(e, BlockError::State(_)),
            PipelineError::Certificate(_) | PipelineError::NotExecuted(_) => false,
        }
    }
}

impl From<BlockError> for PipelineError {
    fn from(e: BlockError) -> Self {
        PipelineError::Invalid(e)
    }
}

/// A block this node built, and the candidates it left out with the reason.
#[derive(Debug, Clone)]
pub struct Built {
    pub block: Block,
    pub rejected: Vec<(Hash, TxError)>,
}

pub struct Pipeline<S: KvStore> {
    store: ChainStore<S>,
    params: ChainParams,
    executed: BTreeMap<Hash, ExecutedBlock>,
    order: VecDeque<Hash>,
}

impl<S: KvStore> Pipeline<S> {
    pub fn new(store: ChainStore<S>, params: ChainParams) -> Result<Self, StorageError> {
        params
            .validator_set()
            .map_err(|e| StorageError::Backend(format!("genesis validator set: {e}")))?;
        Ok(Pipeline {
            store,
            params,
            executed: BTreeMap::new(),
            order: VecDeque::new(),
        })
    }

    pub fn store(&self) -> &ChainStore<S> {
        &self.store
    }

    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The validators that certify block `height`, read from the committed head's state
    /// (valid for the head's next two heights: governance schedules a new set two blocks
    /// after its enactment).
    pub fn validators_at(&self, height: u64) -> Result<ValidatorSet, StorageError> {
        agora_core::gov::validator_set_at(&self.store, &self.params, height)?
            .map_err(|e| StorageError::Backend(format!("validator set for block {height}: {e}")))
    }

    fn keep(&mut self, executed: ExecutedBlock) {
        let hash = executed.block.hash();
        if self.executed.insert(hash, executed).is_none() {
            self.order.push_back(hash);
        }
        while self.order.len() > EXECUTED_CACHE_MAX {
            if let Some(old) = self.order.pop_front() {
                self.executed.remove(&old);
            }
        }
    }

    /// Build the next block on the committed head from `txs` (in order), as `proposer`
    /// in consensus round `view`, carrying the head's stored certificate.
    pub fn propose(
        &mut self,
        proposer: AccountId,
        timestamp_ms: u64,
        view: u64,
        txs: Vec<SignedTransaction>,
    ) -> Result<Built, PipelineError> {
        let head = self.store.head_header()?;
        let lthash = self.store.lthash()?;
        let proposal = Proposal {
            proposer,
            timestamp_ms,
            view,
            parent_cert: self.store.cert(head.height)?,
        };
        let built = ledger::build_block(&self.store, &lthash, &self.params, &head, proposal, txs)?;
        let block = built.executed.block.clone();
        self.keep(built.executed);
        Ok(Built {
            block,
            rejected: built.rejected,
        })
    }

    /// Re-execute `block` on the committed head without committing; Ok when it rebuilds
    /// its own header exactly. Already-executed blocks answer at once.
    pub fn verify(&mut self, block: &Block) -> Result<(), PipelineError> {
        if self.executed.contains_key(&block.hash()) {
            return Ok(());
        }
        let head = self.store.head_header()?;
        let lthash = self.store.lthash()?;
        let executed =
            ledger::execute_block(&self.store, &lthash, &self.params, &head, block.clone())?;
        self.keep(executed);
        Ok(())
    }

    /// Commit the executed block `hash` with `cert` (checked against the validator set)
    /// in one atomic write. Forgets every other executed block: they built on the old head.
    pub fn commit(
        &mut self,
        hash: &Hash,
        cert: &FinalityCert,
    ) -> Result<ExecutedBlock, PipelineError> {
        let executed = self
            .executed
            .get(hash)
            .ok_or(PipelineError::NotExecuted(*hash))?;
        let height = executed.block.header.height;
        cert.verify_for(
            self.params.chain_id,
            &self.validators_at(height)?,
            height,
            hash,
        )?;
        self.store.commit(executed, cert)?;
        let executed = self
            .executed
            .remove(hash)
            .ok_or(PipelineError::NotExecuted(*hash))?;
        self.executed.clear();
        self.order.clear();
        Ok(executed)
    }

    /// A finalized block from a peer (sync): the certificate is checked first (cheap,
    /// and never trusting the peer), then the block is executed and committed.
    pub fn import(
        &mut self,
        block: Block,
        cert: &FinalityCert,
    ) -> Result<ExecutedBlock, PipelineError> {
        let hash = block.hash();
        let height = block.header.height;
        cert.verify_for(
            self.params.chain_id,
            &self.validators_at(height)?,
            height,
            &hash,
        )?;
        self.verify(&block)?;
        self.commit(&hash, cert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemStore;
    use agora_core::{Genesis, Keypair};
    use std::sync::Arc;

    fn chain(genesis: &Genesis) -> Pipeline<MemStore> {
        let store = ChainStore::open(Arc::new(MemStore::new()), genesis).unwrap();
        Pipeline::new(store, genesis.params()).unwrap()
    }

    #[test]
    fn propose_verify_commit_and_import_agree_and_refuse_bad_certificates() {
        let mut g = Genesis::dev();
        let keys: Vec<_> = ["alice", "bob", "charlie", "dave"]
            .iter()
            .map(|n| Keypair::dev(n))
            .collect();
        g.authorities = keys.iter().map(Keypair::account).collect();
        let (mut a, mut b) = (chain(&g), chain(&g));
        let cert_for = |block: &Block, signers: &[Keypair]| {
            let mut signers: Vec<_> = signers.to_vec();
            signers.sort_by_key(Keypair::account);
            let mut cert = FinalityCert::sign_single(
                g.chain_id,
                block.header.height,
                block.hash(),
                &signers[0],
            );
            for k in &signers[1..] {
                cert.votes.extend(
                    FinalityCert::sign_single(g.chain_id, block.header.height, block.hash(), k)
                        .votes,
                );
            }
            cert
        };
        for height in 1..=3u64 {
            let built = a
                .propose(keys[0].account(), 1000 * height, 0, vec![])
                .unwrap();
            let h = built.block.hash();
            b.verify(&built.block).unwrap();
            // Two of four signatures prove nothing.
            let weak = cert_for(&built.block, &keys[..2]);
            assert!(matches!(
                a.commit(&h, &weak),
                Err(PipelineError::Certificate(CertError::NoQuorum { .. }))
            ));
            let cert = cert_for(&built.block, &keys[..3]);
            a.commit(&h, &cert).unwrap();
            if height == 2 {
                // b imports instead of committing what it verified.
                let block = a.store().block_by_height(2).unwrap().unwrap();
                b.import(block, &cert).unwrap();
            } else {
                b.commit(&h, &cert).unwrap();
            }
            assert_eq!(
                a.store().head_header().unwrap(),
                b.store().head_header().unwrap()
            );
        }
        // Committing something never executed on this head is refused, not guessed at.
        let cert = a.store().cert(3).unwrap().unwrap();
        assert!(matches!(
            a.commit(&Hash([5; 32]), &cert),
            Err(PipelineError::NotExecuted(_))
        ));
        // A tampered block is invalid, and the error is the peer's fault, not internal.
        let mut bad = a
            .propose(keys[1].account(), 9_000, 0, vec![])
            .unwrap()
            .block;
        bad.header.state_root = Hash([1; 32]);
        let err = b.verify(&bad).unwrap_err();
        assert!(!err.is_internal(), "{err}");
    }
}
