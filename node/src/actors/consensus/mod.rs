//! The consensus actor: feeds the pure consensus machine (`agora_core::consensus`) with
//! messages from the network bridge, timeouts and the chain's verdicts, and carries out
//! its effects in order: log own votes before sending them, build and verify blocks on
//! the chain actor, commit decided blocks, publish, sync from peers when behind, and
//! hand finalized blocks to validators still voting on them.

mod actor;

pub use actor::{
    CertSummary, ConsensusActor, ConsensusStatus, GetStatus, StopConsensus, Validators,
    CONSENSUS_MAILBOX_MAX, EVIDENCE_MAX,
};

use actix::Addr;

/// Typed access to the consensus actor.
#[derive(Clone)]
pub struct ConsensusHandle {
    addr: Addr<ConsensusActor>,
}

impl ConsensusHandle {
    pub fn new(addr: Addr<ConsensusActor>) -> Self {
        ConsensusHandle { addr }
    }

    pub async fn status(&self) -> Option<ConsensusStatus> {
        self.addr.send(GetStatus).await.ok()
    }

    pub async fn stop(&self) {
        let _ = self.addr.send(StopConsensus).await;
    }

    pub fn recipient(&self) -> actix::Recipient<crate::actors::network::FromNetwork> {
        self.addr.clone().recipient()
    }
}

#[cfg(test)]
mod tests;
