//! Prometheus metrics (`GET /metrics`, text exposition through `prometheus-client`), for
//! the node and for neurons. `docs/metrics.md` lists every series.
//!
//! Counters and histograms are updated where things happen (the chain actor times block
//! execution and commits, a neuron counts its queries); gauges that mirror state (height,
//! peers, mempool size, subnet prices) are set when a scrape arrives, from the same handles
//! the RPC reads.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The content type of the exposition (OpenMetrics text, which Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NetuidLabel {
    pub netuid: u16,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn render(registry: &Registry) -> String {
    let mut s = String::new();
    // Writing into a String does not fail.
    let _ = encode(&mut s, registry);
    s
}

fn seconds_histogram() -> Histogram {
    // 0.1 ms .. ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The node's metrics. Cheap to clone (every metric is shared).
#[derive(Clone)]
pub struct NodeMetrics {
    registry: Arc<Registry>,
    pub height: Gauge,
    pub finalized_height: Gauge,
    pub blocks: Counter,
    pub transactions: Counter,
    pub finality_latency: Histogram,
    pub execute: Family<KindLabel, Histogram>,
    pub commit: Histogram,
    pub epochs: Counter,
    pub epoch_block: Histogram,
    pub peers: Gauge,
    pub mempool: Gauge,
    pub subnet_price: Family<NetuidLabel, FloatGauge>,
    pub subnet_emission_share: Family<NetuidLabel, FloatGauge>,
    pub subnet_pool_tao: Family<NetuidLabel, FloatGauge>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeMetrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("agora");
        let m = NodeMetrics {
            registry: Arc::new(Registry::default()),
            height: Gauge::default(),
            finalized_height: Gauge::default(),
            blocks: Counter::default(),
            transactions: Counter::default(),
            finality_latency: seconds_histogram(),
            execute: Family::new_with_constructor(seconds_histogram),
            commit: seconds_histogram(),
            epochs: Counter::default(),
            epoch_block: seconds_histogram(),
            peers: Gauge::default(),
            mempool: Gauge::default(),
            subnet_price: Family::default(),
            subnet_emission_share: Family::default(),
            subnet_pool_tao: Family::default(),
        };
        r.register("height", "Height of the node's head", m.height.clone());
        r.register(
            "finalized_height",
            "Height of the last finalized block (every committed block is final)",
            m.finalized_height.clone(),
        );
        r.register("blocks", "Blocks committed", m.blocks.clone());
        r.register(
            "transactions",
            "Transactions in committed blocks (rate() gives transactions per second)",
            m.transactions.clone(),
        );
        r.register(
            "finality_latency_seconds",
            "From a block's header timestamp (taken when its proposer built it) to its commit here",
            m.finality_latency.clone(),
        );
        r.register(
            "block_execution_seconds",
            "Executing a block: kind=propose (building one), verify (a proposal), import (a synced block)",
            m.execute.clone(),
        );
        r.register(
            "block_commit_seconds",
            "Writing a finalized block and its state to RocksDB",
            m.commit.clone(),
        );
        r.register(
            "epochs",
            "Subnet epochs run in committed blocks",
            m.epochs.clone(),
        );
        r.register(
            "epoch_block_execution_seconds",
            "Execution time of blocks that ran at least one subnet epoch",
            m.epoch_block.clone(),
        );
        r.register("peers", "Connected libp2p peers", m.peers.clone());
        r.register(
            "mempool_transactions",
            "Transactions waiting in the mempool",
            m.mempool.clone(),
        );
        r.register(
            "subnet_price_tao",
            "A subnet's alpha price in TAO at the head",
            m.subnet_price.clone(),
        );
        r.register(
            "subnet_emission_share",
            "A subnet's share of the block emission at the head",
            m.subnet_emission_share.clone(),
        );
        r.register(
            "subnet_pool_tao",
            "TAO in a subnet's pool at the head",
            m.subnet_pool_tao.clone(),
        );
        NodeMetrics {
            registry: Arc::new(r),
            ..m
        }
    }

    pub fn kind(kind: &str) -> KindLabel {
        KindLabel { kind: kind.into() }
    }

    /// Record a committed block: its height, transactions, finality latency and epochs.
    pub fn committed(&self, height: u64, txs: usize, timestamp_ms: u64, epochs: usize) {
        let h = i64::try_from(height).unwrap_or(i64::MAX);
        self.height.set(h);
        self.finalized_height.set(h);
        self.blocks.inc();
        self.transactions.inc_by(txs as u64);
        self.epochs.inc_by(epochs as u64);
        let now = crate::neuron::status::now_ms();
        self.finality_latency
            .observe(now.saturating_sub(timestamp_ms) as f64 / 1000.0);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// A neuron's metrics (miner or validator).
#[derive(Clone)]
pub struct NeuronMetrics {
    registry: Arc<Registry>,
    /// Miner: queries received, by outcome (answered, refused, failed, silenced).
    pub queries: Family<KindLabel, Counter>,
    /// Miner: refusals by reason (the guard's kinds).
    pub refusals: Family<KindLabel, Counter>,
    /// Miner: time in the task code per answered query.
    pub task_seconds: Histogram,
    /// Validator: queries sent, by verdict (ok, wrong, refused:<kind>, timeout, ...).
    pub verdicts: Family<KindLabel, Counter>,
    /// Validator: latency of verified answers.
    pub query_latency: Histogram,
    pub rounds: Counter,
    /// Validator: weight transactions landed (set, commit, reveal).
    pub weights_sent: Family<KindLabel, Counter>,
    pub head: Gauge,
}

impl Default for NeuronMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl NeuronMetrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("agora_neuron");
        let m = NeuronMetrics {
            registry: Arc::new(Registry::default()),
            queries: Family::default(),
            refusals: Family::default(),
            task_seconds: seconds_histogram(),
            verdicts: Family::default(),
            query_latency: seconds_histogram(),
            rounds: Counter::default(),
            weights_sent: Family::default(),
            head: Gauge::default(),
        };
        r.register(
            "queries",
            "Miner: queries received, by outcome (answered, refused, failed, silenced)",
            m.queries.clone(),
        );
        r.register(
            "refusals",
            "Miner: queries refused by the guard, by reason",
            m.refusals.clone(),
        );
        r.register(
            "task_seconds",
            "Miner: time in the task code per query",
            m.task_seconds.clone(),
        );
        r.register(
            "verdicts",
            "Validator: queries sent, by verdict (ok, wrong, refused:<kind>, timeout, unreachable, ...)",
            m.verdicts.clone(),
        );
        r.register(
            "query_latency_seconds",
            "Validator: from sending a query to its verified answer",
            m.query_latency.clone(),
        );
        r.register("rounds", "Validator: scoring rounds run", m.rounds.clone());
        r.register(
            "weights_sent",
            "Validator: weight transactions finalized, by kind (set, commit, reveal)",
            m.weights_sent.clone(),
        );
        r.register("head", "Chain height the neuron last read", m.head.clone());
        NeuronMetrics {
            registry: Arc::new(r),
            ..m
        }
    }

    pub fn kind(kind: &str) -> KindLabel {
        KindLabel { kind: kind.into() }
    }

    pub fn render(&self) -> String {
        render(&self.registry)
    }

    /// Serve `GET /metrics` on `addr` (on the current actix system); the bound address.
    pub fn serve(&self, addr: std::net::SocketAddr) -> anyhow::Result<std::net::SocketAddr> {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let me = self.clone();
        let server = HttpServer::new(move || {
            let me = me.clone();
            App::new().route(
                "/metrics",
                web::get().to(move || {
                    let body = me.render();
                    async move { HttpResponse::Ok().content_type(CONTENT_TYPE).body(body) }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .bind(addr)
        .map_err(|e| anyhow::anyhow!("binding metrics on {addr}: {e}"))?;
        let bound = server.addrs().first().copied().unwrap_or(addr);
        actix_rt::spawn(server.run());
        Ok(bound)
    }
}
