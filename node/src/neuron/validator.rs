//! `agora validator run`: every `interval_blocks` blocks, query every other neuron of the
//! subnet (found by hotkey through the DHT), verify each signed answer, score it with the
//! task, and send the scores as weights: `set_weights`, or commit now and reveal in the
//! reveal epoch where the subnet has commit-reveal on. Wrong answers that are validly
//! signed are kept as evidence (the query and the response, both signed).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_core::Call;
use agora_p2p::query::{peer_of_hotkey, QueryAnswer, SignedQuery};
use agora_p2p::{Libp2pNetwork, NetEvent, Network, Verdict};
use anyhow::{anyhow, Context};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::{info, warn};

use super::status;
use super::task::{weights, ValidatorTask};
use super::view::{ChainIds, NeuronInfo, SubnetView};
use crate::cli::Out;
use crate::client::RpcClient;
use crate::metrics::NeuronMetrics;

pub struct ValidatorConfig {
    /// Who the neuron is and where it joins.
    pub join: super::join::Joining,
    pub task: Arc<dyn ValidatorTask>,
    pub interval_blocks: u64,
    pub query_timeout: Duration,
    /// Queries in flight at once.
    pub concurrency: usize,
    /// Dial loopback and private addresses found in the DHT (local networks).
    pub allow_private: bool,
    pub status_file: PathBuf,
    pub evidence_dir: PathBuf,
    /// Stop after this many rounds (tests, one-shot scoring); run forever without.
    pub rounds: Option<u64>,
    /// Serve Prometheus metrics at `/metrics` here.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// One neuron's result in a round.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub uid: u16,
    pub hotkey: agora_core::AccountId,
    /// ok, wrong, refused:<kind>, bad_signature, timeout, unreachable, garbled
    pub verdict: String,
    pub latency_ms: Option<u64>,
    pub score: f32,
    /// Where the signed evidence of a wrong answer was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<PathBuf>,
}

/// A commit whose weights wait for their reveal epoch.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PendingCommit {
    /// The subnet's epoch index when the commit was sent.
    epoch: u64,
    uids: Vec<u16>,
    values: Vec<u16>,
    salt: Vec<u16>,
}

struct Ctx {
    cfg: ValidatorConfig,
    ids: ChainIds,
    client: RpcClient,
    net: Libp2pNetwork,
    round: u64,
    pending: Vec<PendingCommit>,
    last_round: Value,
    metrics: NeuronMetrics,
    metrics_at: Option<std::net::SocketAddr>,
}

/// Run until Ctrl-C, SIGTERM or the asked number of rounds.
pub async fn run(cfg: ValidatorConfig) -> anyhow::Result<()> {
    if cfg.interval_blocks == 0 || cfg.concurrency == 0 {
        anyhow::bail!("--interval-blocks and --concurrency must be at least 1");
    }
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
    info!(netuid = cfg.join.netuid, uid, hotkey = %me, peer_id = %net.local_peer_id(), listen = ?listen, task = cfg.task.name(), "validator started");
    // Gossip that reaches the validator's swarm is not for it; queries are not answered.
    let drain_net = net.clone();
    let drain = actix_rt::spawn(async move {
        while let Some(e) = events.recv().await {
            if let NetEvent::Gossip { id, from, .. } = e {
                drain_net.report(id, from, Verdict::Ignore);
            }
        }
    });
    let (view_tx, mut view_rx) = watch::channel(first);
    let refresher = super::miner::spawn_refresher(
        RpcClient::new(&cfg.join.rpc_url).with_timeout(Duration::from_secs(10)),
        cfg.join.netuid,
        ids.block_time_ms,
        view_tx,
    );
    let pending = load_pending(&cfg.status_file);
    let metrics = NeuronMetrics::new();
    let metrics_at = match cfg.metrics_addr {
        Some(a) => Some(metrics.serve(a)?),
        None => None,
    };
    let mut ctx = Ctx {
        metrics,
        metrics_at,
        cfg,
        ids,
        client,
        net,
        round: 0,
        pending,
        last_round: Value::Null,
    };
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut next_at = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            changed = view_rx.changed() => {
                if changed.is_err() {
                    break Err(anyhow!("the chain reader stopped"));
                }
                let v = view_rx.borrow_and_update().clone();
                if v.head < next_at {
                    continue;
                }
                next_at = v.head + ctx.cfg.interval_blocks;
                if let Err(e) = ctx.round(&v).await {
                    warn!("round {}: {e:#}", ctx.round);
                }
                ctx.write_status(&v);
                if ctx.cfg.rounds.is_some_and(|r| ctx.round >= r) {
                    break Ok(());
                }
            }
            _ = tick.tick() => ctx.write_status(&view_rx.borrow().clone()),
            _ = tokio::signal::ctrl_c() => { info!("Ctrl-C: validator stopping"); break Ok(()) }
            _ = sigterm.recv() => { info!("SIGTERM: validator stopping"); break Ok(()) }
        }
    };
    refresher.abort();
    drain.abort();
    outcome
}

fn commits_path(status_file: &std::path::Path) -> PathBuf {
    status_file.with_extension("commits.json")
}

/// Commits not yet revealed survive a restart (their salt is nowhere else).
fn load_pending(status_file: &std::path::Path) -> Vec<PendingCommit> {
    std::fs::read_to_string(commits_path(status_file))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

impl Ctx {
    async fn round(&mut self, v: &SubnetView) -> anyhow::Result<()> {
        self.round += 1;
        let me = self.cfg.join.hotkey.account();
        let targets: Vec<NeuronInfo> = v
            .neurons
            .iter()
            .filter(|n| n.hotkey != me)
            .cloned()
            .collect();
        let started = Instant::now();
        let base_seed: u64 = rand::random();
        let mut outcomes: Vec<Outcome> = futures_util::stream::iter(targets)
            .map(|n| self.query_one(n, v.head, base_seed))
            .buffer_unordered(self.cfg.concurrency)
            .collect()
            .await;
        outcomes.sort_by_key(|o| o.uid);
        self.metrics.rounds.inc();
        for o in &outcomes {
            self.metrics
                .verdicts
                .get_or_create(&NeuronMetrics::kind(&o.verdict))
                .inc();
            if let Some(ms) = o.latency_ms {
                self.metrics.query_latency.observe(ms as f64 / 1000.0);
            }
        }
        let scores: Vec<f32> = outcomes.iter().map(|o| o.score).collect();
        let uids: Vec<u16> = outcomes.iter().map(|o| o.uid).collect();
        let values = weights(&scores);
        // Reveals are due whatever this round scored (a missed reveal epoch loses them).
        let revealed = if v.commit_reveal {
            self.reveal_due(v).await
        } else {
            Vec::new()
        };
        let sent = if values.iter().all(|w| *w == 0) {
            Ok("no correct answer: no weights sent".to_string())
        } else {
            self.send_weights(v, uids.clone(), values.clone()).await
        };
        let sent = sent.map(|s| {
            revealed
                .into_iter()
                .chain(std::iter::once(s))
                .collect::<Vec<_>>()
                .join("; ")
        });
        let summary: Vec<String> = outcomes
            .iter()
            .map(|o| match o.latency_ms {
                Some(ms) => format!("uid {} {} {:.2} ({ms} ms)", o.uid, o.verdict, o.score),
                None => format!("uid {} {}", o.uid, o.verdict),
            })
            .collect();
        let sent_line = match &sent {
            Ok(s) => s.clone(),
            Err(e) => format!("weights not sent: {e:#}"),
        };
        info!(
            "round {} at block {} ({} ms): {} -> {}",
            self.round,
            v.head,
            started.elapsed().as_millis(),
            summary.join(", "),
            sent_line
        );
        self.last_round = json!({
            "round": self.round,
            "block": v.head,
            "epoch": v.epoch_index,
            "outcomes": outcomes,
            "uids": uids,
            "weights": values,
            "weights_sent": sent_line,
        });
        Ok(())
    }

    async fn query_one(&self, n: NeuronInfo, head: u64, base_seed: u64) -> Outcome {
        let mut out = Outcome {
            uid: n.uid,
            hotkey: n.hotkey,
            verdict: String::new(),
            latency_ms: None,
            score: 0.0,
            evidence: None,
        };
        let Some(peer) = peer_of_hotkey(&n.hotkey) else {
            out.verdict = "unreachable".into();
            return out;
        };
        if let Err(e) = self.net.locate(peer, self.cfg.allow_private).await {
            tracing::debug!(uid = n.uid, "not found: {e}");
            out.verdict = "unreachable".into();
            return out;
        }
        let seed = base_seed ^ u64::from(n.uid).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let body = self.cfg.task.request(seed);
        let query = SignedQuery::sign(
            self.ids.chain_id,
            self.cfg.join.netuid,
            self.cfg.task.name(),
            rand::random(),
            head,
            body,
            &self.cfg.join.hotkey,
        );
        let Ok(bytes) = query.encode() else {
            out.verdict = "garbled".into();
            return out;
        };
        let sent = Instant::now();
        let reply = tokio::time::timeout(self.cfg.query_timeout, self.net.query(peer, bytes)).await;
        let latency = u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX);
        let bytes = match reply {
            Err(_) => {
                out.verdict = "timeout".into();
                return out;
            }
            Ok(Err(e)) => {
                tracing::debug!(uid = n.uid, "query failed: {e}");
                out.verdict = "unreachable".into();
                return out;
            }
            Ok(Ok(b)) => b,
        };
        let response = match QueryAnswer::decode(&bytes) {
            Ok(QueryAnswer::Answered(r)) => r,
            Ok(QueryAnswer::Refused(r)) => {
                out.verdict = format!("refused:{}", r.kind());
                return out;
            }
            Err(_) => {
                out.verdict = "garbled".into();
                return out;
            }
        };
        if !response.verify(&query, &n.hotkey) {
            out.verdict = "bad_signature".into();
            return out;
        }
        out.latency_ms = Some(latency);
        // Scoring is CPU work: off this thread, so other queries' latencies stay honest.
        let task = self.cfg.task.clone();
        let (req, body) = (query.body.clone(), response.body.clone());
        let score = tokio::task::spawn_blocking(move || task.score(&req, &body, latency))
            .await
            .unwrap_or(0.0);
        out.score = score;
        if score > 0.0 {
            out.verdict = "ok".into();
        } else {
            out.verdict = "wrong".into();
            out.evidence = self.keep_evidence(&query, &response, n.uid);
        }
        out
    }

    fn keep_evidence(
        &self,
        query: &SignedQuery,
        response: &agora_p2p::query::SignedResponse,
        uid: u16,
    ) -> Option<PathBuf> {
        let path = self.cfg.evidence_dir.join(format!(
            "round{}-uid{uid}-{}.json",
            self.round,
            query.hash().to_hex()
        ));
        let doc = json!({
            "netuid": self.cfg.join.netuid,
            "uid": uid,
            "miner": response.miner,
            "query_hash": query.hash(),
            "query": hex::encode(query.encode().ok()?),
            "response": hex::encode(response.encode().ok()?),
        });
        let written = std::fs::create_dir_all(&self.cfg.evidence_dir)
            .and_then(|()| std::fs::write(&path, doc.to_string()));
        match written {
            Ok(()) => Some(path),
            Err(e) => {
                warn!("keeping evidence in {}: {e}", path.display());
                None
            }
        }
    }

    /// `set_weights`, or on commit-reveal subnets: reveal what is due, then commit.
    async fn send_weights(
        &mut self,
        v: &SubnetView,
        uids: Vec<u16>,
        values: Vec<u16>,
    ) -> anyhow::Result<String> {
        let netuid = self.cfg.join.netuid;
        let me = self.cfg.join.hotkey.account();
        let mut said = Vec::new();
        let last = v.neuron(&me).map_or(0, |n| n.last_update);
        // The transaction lands in the next block at the earliest.
        if last != 0 && v.head + 1 < last + v.weights_rate_limit {
            said.push(format!(
                "rate limited until block {}",
                last + v.weights_rate_limit
            ));
            return Ok(said.join("; "));
        }
        if v.commit_reveal {
            let salt: Vec<u16> = (0..8).map(|_| rand::random::<u16>()).collect();
            let hash =
                agora_core::subnet::weights::commit_hash(&me, netuid, &uids, &values, &salt, 0);
            self.pending.push(PendingCommit {
                epoch: v.epoch_index,
                uids,
                values,
                salt,
            });
            self.save_pending();
            let block = self.submit(Call::CommitWeights { netuid, hash }).await;
            match block {
                Ok(b) => said.push(format!("committed in block {b}")),
                Err(e) => {
                    self.pending.pop();
                    self.save_pending();
                    return Err(e);
                }
            }
        } else {
            let b = self
                .submit(Call::SetWeights {
                    netuid,
                    uids,
                    values,
                    version_key: 0,
                })
                .await?;
            said.push(format!("set_weights in block {b}"));
        }
        Ok(said.join("; "))
    }

    /// Reveal the commits whose reveal epoch has come; drop those too old to reveal.
    async fn reveal_due(&mut self, v: &SubnetView) -> Vec<String> {
        let mut said = Vec::new();
        let mut keep = Vec::new();
        for c in std::mem::take(&mut self.pending) {
            if v.epoch_index < c.epoch + v.reveal_period_epochs {
                keep.push(c);
                continue;
            }
            let call = Call::RevealWeights {
                netuid: self.cfg.join.netuid,
                uids: c.uids.clone(),
                values: c.values.clone(),
                salt: c.salt.clone(),
                version_key: 0,
            };
            match self.submit(call).await {
                Ok(b) => said.push(format!("revealed epoch {}'s weights in block {b}", c.epoch)),
                // The commit may have landed an epoch later than recorded: try again then.
                Err(e) if format!("{e:#}").contains("reveal_too_early") => keep.push(c),
                Err(e) => said.push(format!("reveal of epoch {} failed: {e:#}", c.epoch)),
            }
        }
        self.pending = keep;
        self.save_pending();
        said
    }

    fn save_pending(&self) {
        let path = commits_path(&self.cfg.status_file);
        let written = serde_json::to_vec(&self.pending)
            .map_err(std::io::Error::other)
            .and_then(|b| {
                if let Some(d) = path.parent() {
                    std::fs::create_dir_all(d)?;
                }
                std::fs::write(&path, b)
            });
        if let Err(e) = written {
            warn!("saving pending commits to {}: {e}", path.display());
        }
    }

    /// Sign with the hotkey, submit, wait for finalization; the block it landed in.
    async fn submit(&self, call: Call) -> anyhow::Result<u64> {
        let what = call_name(&call);
        let kind = what.trim_end_matches("_weights");
        let sent = crate::cli::tx_send(
            &self.client,
            &self.cfg.join.hotkey,
            call,
            0,
            Some(Duration::from_secs(30)),
            what,
            Out { json: true },
        )
        .await?;
        self.metrics
            .weights_sent
            .get_or_create(&NeuronMetrics::kind(kind))
            .inc();
        sent.finalized
            .as_ref()
            .and_then(|f| f["block_height"].as_u64())
            .context("no block height in the finalized transaction")
    }

    fn write_status(&self, v: &SubnetView) {
        let me = self.cfg.join.hotkey.account();
        self.metrics
            .head
            .set(i64::try_from(v.head).unwrap_or(i64::MAX));
        let s = json!({
            "metrics": self.metrics_at.map(|a| format!("http://{a}/metrics")),
            "role": "validator",
            "netuid": self.cfg.join.netuid,
            "uid": v.neuron(&me).map(|n| n.uid),
            "hotkey": me,
            "peer_id": self.net.local_peer_id().to_string(),
            "task": self.cfg.task.name(),
            "head": v.head,
            "epoch": v.epoch_index,
            "validator_permit": v.neuron(&me).map(|n| n.validator_permit),
            "rounds": self.round,
            "pending_commits": self.pending.len(),
            "last_round": self.last_round,
        });
        if let Err(e) = status::write(&self.cfg.status_file, &s) {
            warn!("status: {e:#}");
        }
    }
}

fn call_name(call: &Call) -> &'static str {
    match call {
        Call::CommitWeights { .. } => "commit_weights",
        Call::RevealWeights { .. } => "reveal_weights",
        _ => "set_weights",
    }
}
