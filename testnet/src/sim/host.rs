//! One simulated node: the consensus machine, the block pipeline over an in-memory store
//! that survives crashes (with the own-vote log in it), a mempool, and the host duties the
//! machine leaves to its surroundings: persisting own messages before sending them,
//! executing blocks, answering stragglers with finalized blocks, and syncing when behind.
//! Byzantine behaviours wrap the same host and corrupt what it sends.

use std::collections::BTreeMap;
use std::sync::Arc;

use agora_core::block::{Block, FinalityCert};
use agora_core::consensus::{Config, Effect, Evidence, Input, Machine, Message, Vote, VoteKind};
use agora_core::{Genesis, Hash, Keypair, SignedTransaction};
use agora_storage::{ChainStore, MemStore, Pipeline, PipelineError};

use super::net::{Event, Net, Packet};
use crate::rng::Rng;

/// How a byzantine node misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    Honest,
    /// Sends nothing at all.
    Silent,
    /// Signs a vote for its block and a conflicting one for every slot and sends both to
    /// everyone.
    DoubleVoter,
    /// As leader proposes two different blocks to the two halves of the network, and (with
    /// the other equivocators) votes for whichever block each half was shown: the coalition
    /// that forks the chain once it holds a third of the power.
    Equivocator,
    /// Re-sends old messages it has seen to random peers.
    Replayer,
    /// Sends malformed and truncated messages.
    Garbage,
}

/// Blocks a straggler may be sent per sync request.
const SYNC_BATCH: u64 = 16;

/// Things a node decided, for the checkers.
#[derive(Debug, Clone)]
pub struct Decision {
    pub height: u64,
    pub hash: Hash,
    pub at_ms: u64,
}

pub struct Host {
    pub id: usize,
    pub key: Keypair,
    pub behaviour: Behaviour,
    genesis: Genesis,
    cfg: Config,
    kv: Arc<MemStore>,
    pipeline: Pipeline<MemStore>,
    machine: Machine,
    pub up: bool,
    pub generation: u64,
    pub mempool: Vec<SignedTransaction>,
    pub decisions: Vec<Decision>,
    pub evidence: Vec<Evidence>,
    pub bad_packets: u64,
    /// When each own proposal was first broadcast (for latency in units of delay).
    pub proposed_at: BTreeMap<Hash, u64>,
    /// Messages seen (a replayer's material). Bounded: the newest 512.
    seen: Vec<Vec<u8>>,
    /// Per peer: the last height answered and when, so stragglers are not flooded.
    answered: BTreeMap<(usize, u64), u64>,
    sync_asked: BTreeMap<usize, u64>,
    /// The other equivocators (an equivocating leader shows them both blocks).
    pub coalition: Vec<usize>,
}

fn open(kv: &Arc<MemStore>, genesis: &Genesis) -> Pipeline<MemStore> {
    let store = ChainStore::open(kv.clone(), genesis).expect("genesis opens");
    Pipeline::new(store, genesis.params()).expect("validator set")
}

impl Host {
    pub fn new(
        id: usize,
        key: Keypair,
        behaviour: Behaviour,
        genesis: &Genesis,
        cfg: Config,
    ) -> Self {
        let kv = Arc::new(MemStore::new());
        let pipeline = open(&kv, genesis);
        let set = pipeline
            .validators_at(1)
            .expect("the genesis validator set");
        let machine = Machine::new(cfg, set, Some(key.clone()), 1);
        Host {
            id,
            key,
            behaviour,
            genesis: genesis.clone(),
            cfg,
            kv,
            pipeline,
            machine,
            up: true,
            generation: 0,
            mempool: Vec::new(),
            decisions: Vec::new(),
            evidence: Vec::new(),
            bad_packets: 0,
            proposed_at: BTreeMap::new(),
            seen: Vec::new(),
            answered: BTreeMap::new(),
            sync_asked: BTreeMap::new(),
            coalition: Vec::new(),
        }
    }

    pub fn store(&self) -> &ChainStore<MemStore> {
        self.pipeline.store()
    }

    pub fn height(&self) -> u64 {
        self.store().head_height().expect("head")
    }

    pub fn round(&self) -> u32 {
        self.machine.round()
    }

    pub fn machine_height(&self) -> u64 {
        self.machine.height()
    }

    pub fn step(&self) -> agora_core::consensus::Step {
        self.machine.step()
    }

    /// The leader's block time came: build on the committed head from the mempool.
    pub fn on_build(
        &mut self,
        generation: u64,
        height: u64,
        round: u32,
        net: &mut Net,
        rng: &mut Rng,
        peers: usize,
    ) {
        if !self.up || generation != self.generation || self.machine.height() != height {
            return;
        }
        let built = self
            .pipeline
            .propose(
                self.key.account(),
                net.now_ms,
                u64::from(round),
                self.mempool.clone(),
            )
            .expect("building on the committed head");
        let rejected: std::collections::BTreeSet<_> =
            built.rejected.iter().map(|(h, _)| *h).collect();
        self.mempool.retain(|t| !rejected.contains(&t.hash()));
        self.feed(
            Input::Built {
                height,
                round,
                block: built.block,
            },
            net,
            rng,
            peers,
        );
    }

    /// Crash: everything not in the store is gone.
    pub fn crash(&mut self) {
        self.up = false;
        self.generation += 1;
        self.mempool.clear();
    }

    /// Restart from the store: the machine resumes at the first undecided height with the
    /// own messages it had logged there.
    pub fn restart(&mut self, net: &mut Net, rng: &mut Rng, peers: usize) {
        self.up = true;
        self.generation += 1;
        self.pipeline = open(&self.kv, &self.genesis);
        let next = self.height() + 1;
        self.machine = Machine::new(
            self.cfg,
            self.pipeline
                .validators_at(next)
                .expect("the validator set"),
            Some(self.key.clone()),
            next,
        );
        let own = self.store().own_messages(next).expect("own log");
        self.machine.restore(own);
        self.start(net, rng, peers);
    }

    pub fn start(&mut self, net: &mut Net, rng: &mut Rng, peers: usize) {
        if self.behaviour == Behaviour::Silent {
            return;
        }
        self.feed(Input::Start, net, rng, peers);
    }

    pub fn on_timer(
        &mut self,
        generation: u64,
        timeout: agora_core::consensus::Timeout,
        net: &mut Net,
        rng: &mut Rng,
        peers: usize,
    ) {
        if !self.up || generation != self.generation || self.behaviour == Behaviour::Silent {
            return;
        }
        self.feed(Input::Timeout(timeout), net, rng, peers);
    }

    pub fn on_packet(
        &mut self,
        from: usize,
        packet: Packet,
        net: &mut Net,
        rng: &mut Rng,
        peers: usize,
    ) {
        if !self.up || self.behaviour == Behaviour::Silent {
            return;
        }
        match packet {
            Packet::SyncRequest { from: start } => self.serve_sync(from, start, net),
            Packet::Consensus(bytes) => {
                let msg = match Message::decode(&bytes) {
                    Ok(m) => m,
                    Err(_) => {
                        self.bad_packets += 1;
                        return;
                    }
                };
                if self.behaviour == Behaviour::Replayer {
                    if self.seen.len() >= 512 {
                        self.seen.remove(0);
                    }
                    self.seen.push(bytes);
                }
                let here = self.machine.height();
                let h = msg.height();
                if h < here {
                    self.answer_straggler(from, h, net);
                    return;
                }
                if h > here + 1 {
                    self.ask_sync(from, here, net);
                }
                if let (Behaviour::Equivocator, Message::Proposal(p)) = (self.behaviour, &msg) {
                    self.coalition_votes(&p.clone(), net, rng, peers);
                }
                self.feed(Input::Message(msg), net, rng, peers);
            }
        }
    }

    fn answer_straggler(&mut self, peer: usize, height: u64, net: &mut Net) {
        let last = self.answered.get(&(peer, height)).copied();
        if last.is_some_and(|t| net.now_ms < t + self.cfg.timeouts.retransmit_ms) {
            return;
        }
        self.answered.insert((peer, height), net.now_ms);
        if self.answered.len() > 4096 {
            self.answered.clear();
        }
        if let Some(m) = self.decided(height) {
            net.send_reliable(
                self.id,
                peer,
                Packet::Consensus(m.encode().expect("encodes")),
            );
        }
    }

    fn ask_sync(&mut self, peer: usize, from: u64, net: &mut Net) {
        let last = self.sync_asked.get(&peer).copied();
        if last.is_some_and(|t| net.now_ms < t + self.cfg.timeouts.retransmit_ms) {
            return;
        }
        self.sync_asked.insert(peer, net.now_ms);
        net.send_reliable(self.id, peer, Packet::SyncRequest { from });
    }

    fn serve_sync(&mut self, peer: usize, from: u64, net: &mut Net) {
        let head = self.height();
        for h in from..=head.min(from.saturating_add(SYNC_BATCH - 1)) {
            if let Some(m) = self.decided(h) {
                net.send_reliable(
                    self.id,
                    peer,
                    Packet::Consensus(m.encode().expect("encodes")),
                );
            }
        }
    }

    fn decided(&self, height: u64) -> Option<Message> {
        let block = self.store().block_by_height(height).ok()??;
        let cert = self.store().cert(height).ok()??;
        (height > 0).then_some(Message::Decided(block, cert))
    }

    fn broadcast(&mut self, msg: &Message, net: &mut Net, rng: &mut Rng, peers: usize) {
        let bytes = msg.encode().expect("own messages fit");
        for to in (0..peers).filter(|&p| p != self.id) {
            net.send(rng, self.id, to, Packet::Consensus(bytes.clone()));
        }
    }

    /// Run an input and everything it leads to.
    pub fn feed(&mut self, input: Input, net: &mut Net, rng: &mut Rng, peers: usize) {
        let mut work = vec![input];
        while let Some(input) = work.pop() {
            for effect in self.machine.handle(input) {
                if let Some(next) = self.carry_out(effect, net, rng, peers) {
                    work.push(next);
                }
            }
        }
    }

    fn carry_out(
        &mut self,
        effect: Effect,
        net: &mut Net,
        rng: &mut Rng,
        peers: usize,
    ) -> Option<Input> {
        match effect {
            Effect::Broadcast(msg) => {
                // Write-ahead: an own message is durable before anyone can see it.
                self.store()
                    .record_own_message(&msg)
                    .expect("log own message");
                self.send_own(msg, net, rng, peers);
                None
            }
            Effect::Relay(msg) => {
                if self.behaviour != Behaviour::Equivocator {
                    self.broadcast(&msg, net, rng, peers);
                }
                None
            }
            Effect::Schedule { timeout, after_ms } => {
                net.after(
                    after_ms,
                    Event::Timer {
                        node: self.id,
                        generation: self.generation,
                        timeout,
                    },
                );
                None
            }
            Effect::Build { height, round } => {
                // Blocks are paced: a leader builds one block time after its parent.
                let parent_ms = self.store().head_header().map_or(0, |h| h.timestamp_ms);
                let at = net
                    .now_ms
                    .max(parent_ms.saturating_add(self.genesis.block_time_ms));
                net.at(
                    at,
                    Event::Build {
                        node: self.id,
                        generation: self.generation,
                        height,
                        round,
                    },
                );
                None
            }
            Effect::Verify(block) => {
                let hash = block.hash();
                let valid = match self.pipeline.verify(&block) {
                    Ok(()) => true,
                    Err(e) if e.is_internal() => panic!("node {}: {e}", self.id),
                    Err(_) => false,
                };
                Some(Input::Verified { block: hash, valid })
            }
            Effect::Decide { block, cert } => {
                self.commit(block, &cert, net.now_ms);
                None
            }
            Effect::Evidence(e) => {
                self.evidence.push(e);
                None
            }
        }
    }

    fn commit(&mut self, block: Block, cert: &FinalityCert, now_ms: u64) {
        let hash = block.hash();
        let result = match self.pipeline.commit(&hash, cert) {
            Err(PipelineError::NotExecuted(_)) => self.pipeline.import(block, cert),
            other => other,
        };
        let executed = result
            .unwrap_or_else(|e| panic!("node {} cannot commit a decided block: {e}", self.id));
        let included: std::collections::BTreeSet<_> = executed
            .block
            .txs
            .iter()
            .map(SignedTransaction::hash)
            .collect();
        self.mempool.retain(|t| !included.contains(&t.hash()));
        self.decisions.push(Decision {
            height: executed.block.header.height,
            hash,
            at_ms: now_ms,
        });
    }

    /// Send an own message, as this node's behaviour dictates.
    fn send_own(&mut self, msg: Message, net: &mut Net, rng: &mut Rng, peers: usize) {
        if let Message::Proposal(p) = &msg {
            self.proposed_at.entry(p.block_hash()).or_insert(net.now_ms);
        }
        match (self.behaviour, &msg) {
            (Behaviour::DoubleVoter, Message::Vote(v)) => {
                self.broadcast(&msg, net, rng, peers);
                let other = match v.block {
                    Some(_) => None,
                    None => Some(Hash([0xEE; 32])),
                };
                let twin = Vote::sign(
                    self.cfg.chain_id,
                    v.kind,
                    v.height,
                    v.round,
                    other,
                    &self.key,
                );
                self.broadcast(&Message::Vote(twin), net, rng, peers);
            }
            (Behaviour::Equivocator, Message::Proposal(p)) => {
                // A second, different block for the same slot, one millisecond later: each
                // block goes to the nodes whose index has its timestamp's parity, both go
                // to the coalition, and the coalition votes for each towards its half.
                let ts = p.block.header.timestamp_ms;
                let twin = self
                    .pipeline
                    .propose(self.key.account(), ts + 1, u64::from(p.round), vec![])
                    .ok()
                    .filter(|b| b.block.header.timestamp_ms == ts + 1)
                    .map(|b| {
                        agora_core::consensus::Proposal::sign(
                            self.cfg.chain_id,
                            p.round,
                            p.valid_round,
                            b.block,
                            &self.key,
                        )
                    });
                let mut variants = vec![p.clone()];
                variants.extend(twin);
                for v in &variants {
                    let bytes = Message::Proposal(v.clone()).encode().expect("encodes");
                    let parity = v.block.header.timestamp_ms % 2;
                    for to in (0..peers).filter(|&x| x != self.id) {
                        if self.coalition.contains(&to) || to as u64 % 2 == parity {
                            net.send(rng, self.id, to, Packet::Consensus(bytes.clone()));
                        }
                    }
                    self.coalition_votes(v, net, rng, peers);
                }
            }
            (Behaviour::Equivocator, Message::Vote(v)) => {
                // Votes for blocks come from `coalition_votes`, per half; nil votes go to
                // everyone so rounds still move.
                if v.block.is_none() {
                    self.broadcast(&msg, net, rng, peers);
                }
            }
            _ => self.broadcast(&msg, net, rng, peers),
        }
    }

    /// Equivocator coalition: for every proposal it sees, vote for that block towards the
    /// half of the network it was shown to (node index parity = block timestamp parity),
    /// whatever else it voted: once the coalition holds a third of the power, each half
    /// sees a quorum for its own block.
    fn coalition_votes(
        &mut self,
        p: &agora_core::consensus::Proposal,
        net: &mut Net,
        rng: &mut Rng,
        peers: usize,
    ) {
        let h = p.block_hash();
        let parity = p.block.header.timestamp_ms % 2;
        for kind in [VoteKind::Prevote, VoteKind::Precommit] {
            let v = Message::Vote(Vote::sign(
                self.cfg.chain_id,
                kind,
                p.height,
                p.round,
                Some(h),
                &self.key,
            ));
            let bytes = v.encode().expect("encodes");
            for to in (0..peers).filter(|&x| x != self.id && x as u64 % 2 == parity) {
                net.send(rng, self.id, to, Packet::Consensus(bytes.clone()));
            }
        }
    }

    /// A byzantine node's own clock: replay or garbage.
    pub fn tick(&mut self, net: &mut Net, rng: &mut Rng, peers: usize) {
        if !self.up {
            return;
        }
        let to = (rng.next_u64() as usize) % peers;
        if to == self.id {
            return;
        }
        match self.behaviour {
            Behaviour::Replayer if !self.seen.is_empty() => {
                let pick = (rng.next_u64() as usize) % self.seen.len();
                net.send(rng, self.id, to, Packet::Consensus(self.seen[pick].clone()));
            }
            Behaviour::Garbage => {
                let bytes = match rng.next_u64() % 3 {
                    0 => (0..(rng.next_u64() % 300))
                        .map(|_| rng.next_u64() as u8)
                        .collect(),
                    1 => {
                        // A real vote, truncated.
                        let v = Message::Vote(Vote::sign(
                            self.cfg.chain_id,
                            VoteKind::Prevote,
                            self.machine.height(),
                            0,
                            None,
                            &self.key,
                        ));
                        let mut b = v.encode().expect("encodes");
                        b.truncate((rng.next_u64() as usize) % b.len());
                        b
                    }
                    _ => {
                        // A real vote with one byte flipped (bad signature or bad field).
                        let v = Message::Vote(Vote::sign(
                            self.cfg.chain_id,
                            VoteKind::Precommit,
                            self.machine.height(),
                            0,
                            None,
                            &self.key,
                        ));
                        let mut b = v.encode().expect("encodes");
                        let i = (rng.next_u64() as usize) % b.len();
                        b[i] ^= 0x40;
                        b
                    }
                };
                net.send(rng, self.id, to, Packet::Consensus(bytes));
            }
            _ => {}
        }
    }
}
