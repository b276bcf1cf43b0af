//! `agora miner run`: a miner process. Its libp2p identity is its hotkey; it joins the DHT
//! through the node (or given bootnodes) so validators find it by hotkey; every query goes
//! through the guard (`agora_p2p::query::Guard`) before one worker thread runs the task on
//! it, in arrival order, at most `queue_max` waiting.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_core::Keypair;
use agora_p2p::query::{Admission, Guard, GuardConfig, QueryAnswer, SignedQuery, SignedResponse};
use agora_p2p::{Libp2pNetwork, NetEvent, Network, ReplyId, Verdict};
use anyhow::{anyhow, bail, Context};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::status;
use super::task::MinerTask;
use super::view::{self, SubnetView};
use crate::client::RpcClient;
use crate::metrics::NeuronMetrics;

/// Misbehaviour on purpose, for tests and demos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// Answer with a corrupted result (the task builds it; e.g. one wrong product element).
    Wrong,
    /// Answer correctly but `slow_ms` late.
    Slow,
    /// Pass the guard and never answer.
    Silent,
}

pub struct MinerConfig {
    /// Who the neuron is and where it joins.
    pub join: super::join::Joining,
    pub task: Arc<dyn MinerTask>,
    pub fault: Option<Fault>,
    pub slow_ms: u64,
    /// Callers without a validator permit need at least this much alpha staked (rao).
    pub admit_stake: u64,
    pub window_blocks: u64,
    pub per_caller_per_second: u32,
    pub queue_max: u32,
    pub status_file: PathBuf,
    /// Serve Prometheus metrics at `/metrics` here.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Who may query: registered hotkeys with a validator permit, or with `min_stake` alpha.
struct Admit<'a> {
    view: &'a SubnetView,
    min_stake: u64,
}

impl Admission for Admit<'_> {
    fn admit(&self, netuid: u16, caller: &agora_core::AccountId) -> Result<(), String> {
        match self.view.neuron(caller) {
            None => Err(format!("{caller} is not registered on subnet {netuid}")),
            Some(n) if n.validator_permit || n.stake >= self.min_stake => Ok(()),
            Some(n) => Err(format!(
                "uid {} has no validator permit and {} alpha staked, below the {} this miner asks",
                n.uid,
                agora_core::format_tao(n.stake),
                agora_core::format_tao(self.min_stake)
            )),
        }
    }
}

/// A task's answer on its way back to the network.
pub struct Done {
    query: SignedQuery,
    reply: ReplyId,
    answer: Result<Vec<u8>, String>,
    /// Time in the task code.
    secs: f64,
}

/// Counters the status shows.
#[derive(Default)]
pub struct Counters {
    pub received: u64,
    pub answered: u64,
    pub failed: u64,
    pub silenced: u64,
    pub refused: BTreeMap<&'static str, u64>,
    /// Calls into the task code: what no refused query may reach.
    pub task_calls: u64,
    pub last_work_ms: u64,
}

/// The serving core of a miner (what `agora miner run` runs, and what `agora bench-query`
/// measures): every query through the guard, then the task, inline when it is light, else
/// on one worker thread in arrival order; answers signed with the hotkey.
pub struct Server {
    guard: Guard,
    task: Arc<dyn MinerTask>,
    key: Keypair,
    fault: Option<Fault>,
    slow_ms: u64,
    work: std::sync::mpsc::Sender<(SignedQuery, ReplyId)>,
    pub counts: Counters,
    pub metrics: NeuronMetrics,
}

impl Server {
    /// The server and the receiver of its worker's answers (feed them to [`Server::done`]).
    pub fn new(
        guard: Guard,
        task: Arc<dyn MinerTask>,
        key: Keypair,
        fault: Option<Fault>,
        slow_ms: u64,
    ) -> anyhow::Result<(Self, mpsc::UnboundedReceiver<Done>)> {
        let (work, work_rx) = std::sync::mpsc::channel::<(SignedQuery, ReplyId)>();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Done>();
        let worker_task = task.clone();
        std::thread::Builder::new()
            .name("miner-task".into())
            .spawn(move || {
                while let Ok((query, reply)) = work_rx.recv() {
                    let start = Instant::now();
                    let answer = worker_task.answer(&query.body);
                    let done = Done {
                        query,
                        reply,
                        answer,
                        secs: start.elapsed().as_secs_f64(),
                    };
                    if done_tx.send(done).is_err() {
                        break;
                    }
                }
            })
            .context("starting the task thread")?;
        let server = Server {
            guard,
            task,
            key,
            fault,
            slow_ms,
            work,
            counts: Counters::default(),
            metrics: NeuronMetrics::new(),
        };
        Ok((server, done_rx))
    }

    /// An inbound query from `peer`, at chain height `head`.
    pub fn query(
        &mut self,
        net: &Libp2pNetwork,
        peer: &agora_p2p::PeerId,
        data: &[u8],
        reply: ReplyId,
        head: u64,
        admission: &dyn Admission,
    ) -> anyhow::Result<()> {
        self.counts.received += 1;
        match self
            .guard
            .check(data, Some(peer), head, status::now_ms(), admission)
        {
            Err(refusal) => {
                *self.counts.refused.entry(refusal.kind()).or_default() += 1;
                self.count("refused");
                self.metrics
                    .refusals
                    .get_or_create(&NeuronMetrics::kind(refusal.kind()))
                    .inc();
                if let Ok(bytes) = QueryAnswer::Refused(refusal).encode() {
                    net.answer(reply, bytes);
                }
            }
            Ok(_) if self.fault == Some(Fault::Silent) => {
                self.counts.silenced += 1;
                self.count("silenced");
                self.guard.done();
            }
            Ok(query) if self.task.light() => {
                self.counts.task_calls += 1;
                let start = Instant::now();
                let answer = self.task.answer(&query.body);
                let secs = start.elapsed().as_secs_f64();
                self.done(
                    net,
                    Done {
                        query,
                        reply,
                        answer,
                        secs,
                    },
                );
            }
            Ok(query) => {
                self.counts.task_calls += 1;
                if self.work.send((query, reply)).is_err() {
                    bail!("the task thread stopped");
                }
            }
        }
        Ok(())
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .queries
            .get_or_create(&NeuronMetrics::kind(outcome))
            .inc();
    }

    /// A task's answer: sign it and send it (late, with `--fault slow`).
    pub fn done(&mut self, net: &Libp2pNetwork, done: Done) {
        self.guard.done();
        self.counts.last_work_ms = status::now_ms();
        self.metrics.task_seconds.observe(done.secs);
        let answer = match done.answer {
            Ok(body) => {
                self.counts.answered += 1;
                self.count("answered");
                QueryAnswer::Answered(SignedResponse::sign(&done.query, body, &self.key))
            }
            Err(e) => {
                self.counts.failed += 1;
                self.count("failed");
                QueryAnswer::Refused(agora_p2p::query::Refusal::Malformed(e))
            }
        };
        match answer.encode() {
            Ok(bytes) if self.fault == Some(Fault::Slow) => {
                let net = net.clone();
                let delay = Duration::from_millis(self.slow_ms);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    net.answer(done.reply, bytes);
                });
            }
            Ok(bytes) => net.answer(done.reply, bytes),
            Err(e) => warn!("answer too large to send: {e}"),
        }
    }
}

/// Run until Ctrl-C or SIGTERM.
pub async fn run(cfg: MinerConfig) -> anyhow::Result<()> {
    let super::join::Joined {
        client,
        ids,
        first,
        uid,
        net,
        mut events,
        listen,
    } = super::join::join(&cfg.join).await?;
    let me = cfg.join.hotkey.account();
    let peer_id = net.local_peer_id();
    info!(netuid = cfg.join.netuid, uid, hotkey = %me, %peer_id, listen = ?listen, task = cfg.task.name(), fault = ?cfg.fault, "miner serving");

    let guard = Guard::new(
        GuardConfig {
            chain_id: ids.chain_id,
            netuid: cfg.join.netuid,
            task: cfg.task.name(),
            window_blocks: cfg.window_blocks,
            per_caller_per_second: cfg.per_caller_per_second,
            queue_max: cfg.queue_max,
            callers_max: 4096,
        },
        first.head,
    );
    let (view_tx, view_rx) = watch::channel(first);
    let refresher = spawn_refresher(client, cfg.join.netuid, ids.block_time_ms, view_tx);
    let (mut server, mut done_rx) = Server::new(
        guard,
        cfg.task.clone(),
        cfg.join.hotkey.clone(),
        cfg.fault,
        cfg.slow_ms,
    )?;

    let metrics_at = match cfg.metrics_addr {
        Some(a) => Some(server.metrics.serve(a)?),
        None => None,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_logged = (0, 0);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let started = status::now_ms();
    let outcome = loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(NetEvent::Query { peer, data, reply }) => {
                    // Borrowed, not cloned, for the length of the synchronous check.
                    let v = view_rx.borrow();
                    let admit = Admit { view: &v, min_stake: cfg.admit_stake };
                    if let Err(e) = server.query(&net, &peer, &data, reply, v.head, &admit) {
                        break Err(e);
                    }
                }
                Some(NetEvent::Gossip { id, from, .. }) => net.report(id, from, Verdict::Ignore),
                Some(_) => {}
                None => break Err(anyhow!("the p2p network stopped")),
            },
            done = done_rx.recv() => match done {
                Some(done) => server.done(&net, done),
                None => break Err(anyhow!("the task thread stopped")),
            },
            _ = tick.tick() => {
                let v = view_rx.borrow().clone();
                let counts = &server.counts;
                let refused: u64 = counts.refused.values().sum();
                if (counts.answered, refused) != last_logged {
                    info!(
                        head = v.head,
                        answered = counts.answered,
                        refused = ?counts.refused,
                        silenced = counts.silenced,
                        "miner uid {uid}: {} answered, {refused} refused since start",
                        counts.answered
                    );
                    last_logged = (counts.answered, refused);
                }
                server.metrics.head.set(i64::try_from(v.head).unwrap_or(i64::MAX));
                let s = json!({
                    "metrics": metrics_at.map(|a| format!("http://{a}/metrics")),
                    "role": "miner",
                    "netuid": cfg.join.netuid,
                    "uid": v.neuron(&me).map(|n| n.uid),
                    "hotkey": me,
                    "peer_id": peer_id.to_string(),
                    "listen": listen.iter().map(|a| format!("{a}/p2p/{peer_id}")).collect::<Vec<_>>(),
                    "task": cfg.task.name(),
                    "fault": cfg.fault,
                    "head": v.head,
                    "started_ms": started,
                    "queries": {
                        "received": counts.received,
                        "answered": counts.answered,
                        "failed": counts.failed,
                        "silenced": counts.silenced,
                        "refused": counts.refused,
                        "task_calls": counts.task_calls,
                    },
                    "last_work_ms": counts.last_work_ms,
                    "incentive": v.neuron(&me).map(|n| n.incentive),
                });
                if let Err(e) = status::write(&cfg.status_file, &s) {
                    warn!("status: {e:#}");
                }
            }
            _ = tokio::signal::ctrl_c() => { info!("Ctrl-C: miner stopping"); break Ok(()) }
            _ = sigterm.recv() => { info!("SIGTERM: miner stopping"); break Ok(()) }
        }
    };
    refresher.abort();
    outcome
}

/// Keep the subnet view current: every block time, from the node. A node that stops
/// answering leaves the last view in place (and is logged).
pub fn spawn_refresher(
    client: RpcClient,
    netuid: u16,
    block_time_ms: u64,
    tx: watch::Sender<SubnetView>,
) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(block_time_ms.max(100)));
        let mut failing_since: Option<Instant> = None;
        loop {
            every.tick().await;
            match view::subnet_view(&client, netuid).await {
                Ok(v) => {
                    if failing_since.take().is_some() {
                        info!("node reachable again");
                    }
                    let _ = tx.send(v);
                }
                Err(e) => {
                    if failing_since.is_none() {
                        warn!("cannot read the chain: {e:#}");
                        failing_since = Some(Instant::now());
                    }
                }
            }
        }
    })
}

/// Refuse a configuration that cannot work, before starting anything.
pub fn check(cfg: &MinerConfig) -> anyhow::Result<()> {
    if cfg.queue_max == 0 || cfg.per_caller_per_second == 0 {
        bail!("--queue-max and --rate-limit must be at least 1");
    }
    if cfg.window_blocks == 0 {
        bail!("--window-blocks must be at least 1");
    }
    Ok(())
}
