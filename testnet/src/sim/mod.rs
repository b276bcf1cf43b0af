//! Seeded deterministic simulation of the consensus network (`agora sim consensus`).
//!
//! N nodes, each the real consensus machine and block pipeline over an in-memory store,
//! talk through a simulated network with per-link latency and jitter, loss, duplication,
//! reordering, partitions that heal, and crashes that restart from storage. Byzantine
//! nodes equivocate, double vote, stay silent, replay stale messages or send malformed
//! bytes. Independent checkers ([`check`]) then judge agreement, validity, supply and
//! liveness after every heal. Everything follows from the seed: the same seed gives the
//! same trace hash, and a failure prints the one command that replays it.

pub mod check;
pub mod host;
pub mod net;

use std::time::Instant;

use agora_core::consensus::{Config, Timeouts};
use agora_core::genesis::GenesisBalance;
use agora_core::{Call, Genesis, Hash, Keypair, Transaction};
use serde::Serialize;

use crate::rng::Rng;
pub use host::Behaviour;
use host::Host;
use net::{Event, LinkModel, Net};

/// One simulation's settings (all but the seed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimConfig {
    pub nodes: usize,
    /// The last `byzantine` nodes misbehave.
    pub byzantine: usize,
    /// Every byzantine node behaves so; `None`: each draws a behaviour from the seed.
    pub behaviour: Option<Behaviour>,
    /// Run until every honest node has finalized this many blocks after the last fault.
    pub heights: u64,
    /// One-way network delay d.
    pub delay_ms: u64,
    /// Turn on seeded faults: links slower by up to d/2 each, jitter up to d, loss and
    /// duplication up to 5%, partitions that heal, and crashes that restart.
    pub faults: bool,
    /// Consensus timeouts follow this block time.
    pub block_time_ms: u64,
    /// Simulated time limit.
    pub max_time_ms: u64,
    /// Allow byzantine power at or above a third (to show the checkers catch a fork).
    pub allow_unsafe: bool,
    /// Clients submit transfers so blocks carry transactions.
    pub transactions: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 4,
            byzantine: 1,
            behaviour: None,
            heights: 10,
            delay_ms: 50,
            faults: true,
            block_time_ms: 500,
            max_time_ms: 300_000,
            allow_unsafe: false,
            transactions: true,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    #[error("--nodes must be at least 1 and at most 64")]
    Nodes,
    #[error("{byzantine} byzantine of {nodes} nodes is at or above a third of the power: BFT promises nothing there; pass --allow-unsafe to run it anyway")]
    Unsafe { byzantine: usize, nodes: usize },
    #[error("--byzantine {byzantine} is more than --nodes {nodes}")]
    TooManyByzantine { byzantine: usize, nodes: usize },
}

/// What one seed did.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    pub seed: u64,
    pub behaviours: Vec<Behaviour>,
    /// Lowest finalized height over honest nodes at the end.
    pub finalized: u64,
    pub highest_round: u32,
    pub sim_time_ms: u64,
    pub messages_sent: u64,
    pub messages_lost: u64,
    pub evidence: usize,
    pub malformed_dropped: u64,
    pub partitions: u32,
    pub crashes: u32,
    /// Proposal-to-finality delay at each honest node, in units of the one-way delay d
    /// (the median and the largest).
    pub latency_p50_d: f64,
    pub latency_max_d: f64,
    pub violations: Vec<String>,
    pub trace_hash: Hash,
    pub wall_ms: u64,
}

impl SimReport {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

fn validator_key(i: usize) -> Keypair {
    Keypair::dev(&format!("sim-validator-{i}"))
}

fn user_key(i: usize) -> Keypair {
    Keypair::dev(&format!("sim-user-{i}"))
}

pub fn genesis(cfg: &SimConfig) -> Genesis {
    let mut g = Genesis::dev();
    g.chain_id = 77;
    g.block_time_ms = cfg.block_time_ms.clamp(100, 600_000);
    g.authorities = (0..cfg.nodes).map(|i| validator_key(i).account()).collect();
    g.balances = (0..cfg.nodes)
        .map(|i| GenesisBalance {
            address: user_key(i).account(),
            balance_rao: 1_000_000 * agora_core::RAO_PER_TAO,
        })
        .collect();
    g
}

pub fn check_config(cfg: &SimConfig) -> Result<(), SimError> {
    if cfg.nodes == 0 || cfg.nodes > 64 {
        return Err(SimError::Nodes);
    }
    if cfg.byzantine > cfg.nodes {
        return Err(SimError::TooManyByzantine {
            byzantine: cfg.byzantine,
            nodes: cfg.nodes,
        });
    }
    if cfg.byzantine * 3 >= cfg.nodes && cfg.byzantine > 0 && !cfg.allow_unsafe {
        return Err(SimError::Unsafe {
            byzantine: cfg.byzantine,
            nodes: cfg.nodes,
        });
    }
    Ok(())
}

const MISBEHAVIOURS: [Behaviour; 5] = [
    Behaviour::Silent,
    Behaviour::DoubleVoter,
    Behaviour::Equivocator,
    Behaviour::Replayer,
    Behaviour::Garbage,
];

/// Run one seed. The configuration must pass [`check_config`].
pub fn run(cfg: &SimConfig, seed: u64) -> SimReport {
    let wall = Instant::now();
    let mut rng = Rng::new(seed);
    let genesis = genesis(cfg);
    let n = cfg.nodes;
    let d = cfg.delay_ms.max(1);
    let link = if cfg.faults {
        LinkModel {
            delay_ms: d,
            jitter_ms: rng.next_u64() % (d + 1),
            loss: rng.unit() * 0.05,
            duplicate: rng.unit() * 0.05,
        }
    } else {
        LinkModel {
            delay_ms: d,
            jitter_ms: 0,
            loss: 0.0,
            duplicate: 0.0,
        }
    };
    let mut net = Net::new(n, link);
    if cfg.faults {
        net.vary_links(&mut rng, d / 2);
    }
    let consensus = Config {
        chain_id: genesis.chain_id,
        timeouts: Timeouts::for_block_time(genesis.block_time_ms),
    };
    let behaviours: Vec<Behaviour> = (0..n)
        .map(|i| {
            if i < n - cfg.byzantine {
                Behaviour::Honest
            } else {
                cfg.behaviour.unwrap_or_else(|| {
                    MISBEHAVIOURS[(rng.next_u64() % MISBEHAVIOURS.len() as u64) as usize]
                })
            }
        })
        .collect();
    let coalition: Vec<usize> = (0..n)
        .filter(|&i| behaviours[i] == Behaviour::Equivocator)
        .collect();
    let mut hosts: Vec<Host> = (0..n)
        .map(|i| {
            let mut h = Host::new(i, validator_key(i), behaviours[i], &genesis, consensus);
            h.coalition = coalition.clone();
            h
        })
        .collect();
    let honest: Vec<usize> = (0..n)
        .filter(|&i| behaviours[i] == Behaviour::Honest)
        .collect();

    // The fault plan, drawn up front from the seed.
    let (mut partitions, mut crashes) = (0u32, 0u32);
    let mut last_fault_ms = 0u64;
    if cfg.faults {
        let horizon = 20 * cfg.block_time_ms;
        for _ in 0..(rng.next_u64() % 3) {
            let start = 1_000 + rng.next_u64() % horizon;
            let len = 500 + rng.next_u64() % (8 * cfg.block_time_ms);
            let groups: Vec<u8> = (0..n).map(|_| (rng.next_u64() % 2) as u8).collect();
            net.at(start, Event::Partition { groups });
            net.at(start + len, Event::Heal);
            last_fault_ms = last_fault_ms.max(start + len);
            partitions += 1;
        }
        for _ in 0..(rng.next_u64() % 3) {
            if honest.is_empty() {
                break;
            }
            let node = honest[(rng.next_u64() % honest.len() as u64) as usize];
            let start = 500 + rng.next_u64() % horizon;
            let len = 200 + rng.next_u64() % (6 * cfg.block_time_ms);
            net.at(start, Event::Crash { node });
            net.at(start + len, Event::Restart { node });
            last_fault_ms = last_fault_ms.max(start + len);
            crashes += 1;
        }
    }
    if cfg.transactions {
        for i in 0..n {
            net.at(100 + 37 * i as u64, Event::Submit { node: i });
        }
    }
    for (i, b) in behaviours.iter().enumerate() {
        if matches!(b, Behaviour::Replayer | Behaviour::Garbage) {
            net.at(50 + i as u64, Event::Tick { node: i });
        }
    }
    for h in &mut hosts {
        h.start(&mut net, &mut rng, n);
    }

    let mut trace = blake3::Hasher::new();
    let mut baseline: Option<u64> = None;
    let min_honest = |hosts: &[Host]| honest.iter().map(|&i| hosts[i].height()).min().unwrap_or(0);
    while let Some((now, event)) = net.pop() {
        if now > cfg.max_time_ms {
            break;
        }
        if now >= last_fault_ms && baseline.is_none() {
            baseline = Some(honest.iter().map(|&i| hosts[i].height()).max().unwrap_or(0));
        }
        match event {
            Event::Deliver { to, from, packet } => {
                hosts[to].on_packet(from, packet, &mut net, &mut rng, n);
            }
            Event::Timer {
                node,
                generation,
                timeout,
            } => hosts[node].on_timer(generation, timeout, &mut net, &mut rng, n),
            Event::Build {
                node,
                generation,
                height,
                round,
            } => hosts[node].on_build(generation, height, round, &mut net, &mut rng, n),
            Event::Tick { node } => {
                hosts[node].tick(&mut net, &mut rng, n);
                net.after(cfg.block_time_ms / 4 + 1, Event::Tick { node });
            }
            Event::Crash { node } => {
                hosts[node].crash();
                trace.update(&[0xC0, node as u8]);
            }
            Event::Restart { node } => {
                hosts[node].restart(&mut net, &mut rng, n);
                trace.update(&[0xC1, node as u8]);
            }
            Event::Partition { groups } => net.partition(groups),
            Event::Heal => net.heal(),
            Event::Submit { node } => {
                submit(&mut hosts[node], &genesis);
                net.after(cfg.block_time_ms, Event::Submit { node });
            }
        }
        if baseline.is_some() && min_honest(&hosts) >= baseline.unwrap_or(0) + cfg.heights {
            break;
        }
    }

    if std::env::var("AGORA_SIM_DEBUG").is_ok() {
        for h in &hosts {
            eprintln!(
                "node {} {:?} up {} height {} machine h{} r{} step {:?}",
                h.id,
                h.behaviour,
                h.up,
                h.height(),
                h.machine_height(),
                h.round(),
                h.step()
            );
        }
    }
    // Checkers.
    let mut violations = Vec::new();
    let chains: Vec<_> = honest.iter().map(|&i| (i, hosts[i].store())).collect();
    violations.extend(check::agreement(&chains));
    for &(i, store) in &chains {
        violations.extend(check::validity(&genesis, i, store));
        violations.extend(check::supply(&genesis, i, store));
    }
    let finalized = min_honest(&hosts);
    let target = baseline.unwrap_or(0) + cfg.heights;
    let live = behaviours
        .iter()
        .filter(|b| **b == Behaviour::Honest)
        .count()
        * 3
        > 2 * n;
    if live && finalized < target {
        violations.push(format!(
            "liveness: after the last fault (at {last_fault_ms} ms, height {}) honest nodes reached only height {finalized} of {target} by {} ms",
            baseline.unwrap_or(0),
            net.now_ms
        ));
    }

    // Trace: every honest decision in node order, then the final heights.
    let mut latencies = Vec::new();
    for &i in &honest {
        for dec in &hosts[i].decisions {
            trace.update(&(i as u64).to_le_bytes());
            trace.update(&dec.height.to_le_bytes());
            trace.update(&dec.hash.0);
            trace.update(&dec.at_ms.to_le_bytes());
            if let Some(t) = hosts.iter().find_map(|h| h.proposed_at.get(&dec.hash)) {
                latencies.push(dec.at_ms.saturating_sub(*t) as f64 / d as f64);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round().max(0.0) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    SimReport {
        seed,
        behaviours,
        finalized,
        highest_round: hosts.iter().map(Host::round).max().unwrap_or(0),
        sim_time_ms: net.now_ms,
        messages_sent: net.sent,
        messages_lost: net.lost,
        evidence: honest.iter().map(|&i| hosts[i].evidence.len()).sum(),
        malformed_dropped: honest.iter().map(|&i| hosts[i].bad_packets).sum(),
        partitions,
        crashes,
        latency_p50_d: pick(0.5),
        latency_max_d: pick(1.0),
        violations,
        trace_hash: Hash(*trace.finalize().as_bytes()),
        wall_ms: wall.elapsed().as_millis() as u64,
    }
}

/// A client's transfer into `host`'s mempool: from the user account paired with the node,
/// at the next nonce the node has not seen used.
fn submit(host: &mut Host, genesis: &Genesis) {
    if !host.up || host.mempool.len() >= 64 {
        return;
    }
    let user = user_key(host.id);
    let committed = agora_core::state::account(host.store(), &user.account())
        .map(|a| a.nonce)
        .unwrap_or(0);
    let nonce = committed + host.mempool.len() as u64;
    let tx = Transaction {
        chain_id: genesis.chain_id,
        signer: user.account(),
        nonce,
        call: Call::Transfer {
            dest: user_key(host.id + 1).account(),
            amount: 1_000 + nonce,
        },
        tip: 0,
    }
    .sign(&user);
    host.mempool.push(tx);
}

#[cfg(test)]
mod tests;
