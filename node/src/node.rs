//! `agora node`: open the database, start the actors and the RPC server, run until Ctrl-C
//! or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, SyncArbiter};
use agora_core::{Genesis, Keypair};
use agora_storage::{ChainStore, RocksStore};
use anyhow::{bail, Context as _};
use tokio::sync::{broadcast, mpsc};
use tracing::info;

use crate::actors::chain::{ChainActor, ChainHandle, ChainReader, CHAIN_READERS, HEAD_EVENTS_MAX};
use crate::actors::consensus::{ConsensusActor, ConsensusHandle};
use crate::actors::mempool::{MempoolActor, MempoolHandle};
use crate::actors::network::{NetworkActor, NetworkHandle};
use crate::actors::producer::{ProducerActor, ProducerHandle, Seal};
use crate::rpc::{self, AppState};

pub struct NodeConfig {
    /// `Some(seal)`: a one-node dev chain sealing blocks in that mode, no network;
    /// `None`: a networked node (validator with `network.validator_key`, else full node).
    pub dev: Option<Seal>,
    pub data_dir: PathBuf,
    pub rpc_addr: SocketAddr,
    pub genesis: Genesis,
    pub network: NetworkConfig,
    /// JSON-RPC requests per second per client address, and whether loopback clients
    /// count too.
    pub rpc_rate: (u32, bool),
}

/// How a networked node joins its peers.
pub struct NetworkConfig {
    pub validator_key: Option<PathBuf>,
    /// Where to listen. A networked node always listens (default `/ip4/0.0.0.0/tcp/30333`);
    /// a dev node only when given one, and then only serves the DHT that neurons use to
    /// find each other (no consensus: it is the one authority).
    pub p2p_addr: Option<agora_p2p::Multiaddr>,
    pub bootnodes: Vec<agora_p2p::Multiaddr>,
    pub mdns: bool,
}

/// What a networked node runs besides the chain: the consensus actor and the bridge.
struct Networked {
    consensus: ConsensusHandle,
    network: NetworkHandle,
    info: NetInfo,
}

/// The node's network identity, as `net_info` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NetInfo {
    pub peer_id: String,
    pub listen: Vec<String>,
    pub validator: Option<agora_core::AccountId>,
}

/// Whether a listen address is on loopback (a local network: every peer shares one IP).
pub fn is_loopback(addr: &agora_p2p::Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        agora_p2p::multiaddr::Protocol::Ip4(ip) => ip.is_loopback(),
        agora_p2p::multiaddr::Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

/// The default libp2p listen address of a networked node.
pub const DEFAULT_P2P_ADDR: &str = "/ip4/0.0.0.0/tcp/30333";

/// A dev node's network: only the DHT and identify, so miners and validators started
/// against it find each other. Gossip is ignored, sync requests and queries go unanswered.
fn start_dev_discovery(
    cfg: &NetworkConfig,
    listen: &agora_p2p::Multiaddr,
    data_dir: &std::path::Path,
    params: &agora_core::ChainParams,
    genesis_hash: agora_core::Hash,
) -> anyhow::Result<NetInfo> {
    let (net, mut events, addrs) = agora_p2p::Libp2pNetwork::spawn(agora_p2p::NetConfig {
        chain_id: params.chain_id,
        genesis_hash,
        key_seed: crate::validator_key::node_key(data_dir)?.seed(),
        listen: listen.clone(),
        bootnodes: cfg.bootnodes.clone(),
        mdns: cfg.mdns,
        local: is_loopback(listen),
    })?;
    let local = agora_p2p::Network::local_peer_id(&net);
    actix_rt::spawn(async move {
        // The handle lives as long as this task: dropping it would stop the swarm.
        let net = net;
        while let Some(event) = events.recv().await {
            if let agora_p2p::NetEvent::Gossip { id, from, .. } = event {
                agora_p2p::Network::report(&net, id, from, agora_p2p::Verdict::Ignore);
            }
        }
    });
    let info = NetInfo {
        peer_id: local.to_string(),
        listen: addrs.iter().map(|a| format!("{a}/p2p/{local}")).collect(),
        validator: None,
    };
    info!(peer_id = %local, listen = ?info.listen, "dev node: serving the DHT for neurons");
    Ok(info)
}

/// The chain actor (one thread: it alone writes) and its readers.
pub fn start_chain(
    store: ChainStore<RocksStore>,
    params: &agora_core::ChainParams,
    heads: broadcast::Sender<crate::actors::chain::HeadInfo>,
    metrics: crate::metrics::NodeMetrics,
) -> anyhow::Result<ChainHandle> {
    let reader_store = store.clone();
    let reader = SyncArbiter::start(CHAIN_READERS, move || {
        ChainReader::new(reader_store.clone())
    });
    let actor = ChainActor::new(store, params.clone(), heads, metrics)?;
    let slot = std::sync::Mutex::new(Some(actor));
    let writer = SyncArbiter::start(1, move || {
        // A SyncArbiter of one thread calls its factory exactly once.
        slot.lock()
            .ok()
            .and_then(|mut s| s.take())
            .unwrap_or_else(|| unreachable!("the chain actor is started once"))
    });
    Ok(ChainHandle::new(writer, reader))
}

/// The validators of the two heights after `head_height`, from the committed state
/// (the parameters in force, or a set governance scheduled).
pub fn validators_ahead(
    state: &dyn agora_core::state::StateRead,
    params: &agora_core::ChainParams,
    head_height: u64,
) -> anyhow::Result<crate::actors::consensus::Validators> {
    let at = |h: u64| -> anyhow::Result<agora_core::consensus::ValidatorSet> {
        agora_core::gov::validator_set_at(state, params, h)?
            .with_context(|| format!("the validator set for block {h}"))
    };
    let (next, after) = (head_height.saturating_add(1), head_height.saturating_add(2));
    Ok(crate::actors::consensus::Validators {
        current: at(next)?,
        ahead: vec![(after, at(after)?)],
    })
}

/// The network bridge over `net` and the consensus actor behind it, wired together, for a
/// node whose committed head is `head` (validating with `key`, following without one),
/// with the validators and the block time in force there.
#[allow(clippy::too_many_arguments)]
pub fn start_consensus(
    net: std::sync::Arc<dyn agora_p2p::Network>,
    events: agora_p2p::Events,
    chain: &ChainHandle,
    mempool: &MempoolHandle,
    params: &agora_core::ChainParams,
    validators: crate::actors::consensus::Validators,
    genesis_hash: agora_core::Hash,
    key: Option<agora_core::Keypair>,
    head: &agora_core::Header,
    fatal: mpsc::Sender<String>,
) -> anyhow::Result<(NetworkHandle, ConsensusHandle)> {
    let mut sets = vec![(head.height.saturating_add(1), validators.current.clone())];
    sets.extend(validators.ahead.iter().cloned());
    let local = net.local_peer_id();
    let network = NetworkHandle::new(
        NetworkActor::new(
            net,
            events,
            chain.clone(),
            mempool.clone(),
            params.chain_id,
            genesis_hash,
            sets,
        )
        .start(),
        local,
    );
    let consensus = ConsensusHandle::new(
        ConsensusActor::new(
            agora_core::consensus::Config {
                chain_id: params.chain_id,
                timeouts: agora_core::consensus::Timeouts::for_block_time(params.block_time_ms),
            },
            validators,
            key,
            head.height,
            head.timestamp_ms,
            params.block_time_ms,
            chain.clone(),
            mempool.clone(),
            network.clone(),
            fatal,
        )
        .start(),
    );
    network.set_consensus(consensus.recipient());
    Ok((network, consensus))
}

#[allow(clippy::too_many_arguments)]
fn start_network(
    cfg: &NetworkConfig,
    data_dir: &std::path::Path,
    params: &agora_core::ChainParams,
    validators: crate::actors::consensus::Validators,
    genesis_hash: agora_core::Hash,
    head: &agora_core::Header,
    chain: &ChainHandle,
    mempool: &MempoolHandle,
    fatal: mpsc::Sender<String>,
) -> anyhow::Result<Networked> {
    let key = match &cfg.validator_key {
        Some(path) => {
            let key = crate::validator_key::read(path)?;
            let me = key.account();
            if validators.current.power(&me).is_none()
                && validators
                    .ahead
                    .iter()
                    .all(|(_, set)| set.power(&me).is_none())
            {
                bail!(
                    "validator key {} is for {me}, which is not in the validator set in force (the genesis authorities, or the set governance installed)",
                    path.display(),
                );
            }
            Some(key)
        }
        None => None,
    };
    let identity = match &key {
        Some(k) => k.seed(),
        None => crate::validator_key::node_key(data_dir)?.seed(),
    };
    let p2p_addr = match &cfg.p2p_addr {
        Some(a) => a.clone(),
        None => DEFAULT_P2P_ADDR
            .parse()
            .context("the default p2p address")?,
    };
    let (net, events, listen) = agora_p2p::Libp2pNetwork::spawn(agora_p2p::NetConfig {
        chain_id: params.chain_id,
        genesis_hash,
        key_seed: identity,
        listen: p2p_addr.clone(),
        bootnodes: cfg.bootnodes.clone(),
        mdns: cfg.mdns,
        local: is_loopback(&p2p_addr),
    })?;
    let local = agora_p2p::Network::local_peer_id(&net);
    let (network, consensus) = start_consensus(
        std::sync::Arc::new(net),
        events,
        chain,
        mempool,
        params,
        validators,
        genesis_hash,
        key.clone(),
        head,
        fatal,
    )?;
    let info = NetInfo {
        peer_id: local.to_string(),
        listen: listen.iter().map(|a| format!("{a}/p2p/{local}")).collect(),
        validator: key.as_ref().map(agora_core::Keypair::account),
    };
    match &info.validator {
        Some(v) => info!(validator = %v, peer_id = %local, listen = ?info.listen, "validating"),
        None => {
            info!(peer_id = %local, listen = ?info.listen, "full node: following and verifying")
        }
    }
    Ok(Networked {
        consensus,
        network,
        info,
    })
}

pub async fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    let genesis = cfg.genesis;
    let params = genesis.params();
    let genesis_hash = genesis.build().context("building genesis")?.block.hash();
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let kv = Arc::new(RocksStore::open(&cfg.data_dir.join("db"))?);
    let store = ChainStore::open(kv.clone(), &genesis)?;
    let head = store.head_header()?;
    let validators = validators_ahead(&store, &params, head.height)?;
    // What governance changed since genesis (block time, ...).
    let in_force = agora_core::ledger::params_in_force(&store, &params)?;
    info!(chain_id = params.chain_id, genesis = %genesis_hash, height = head.height, head = %head.hash(), data_dir = %cfg.data_dir.display(), "opened chain");

    let (heads, _) = broadcast::channel(HEAD_EVENTS_MAX);
    let metrics = crate::metrics::NodeMetrics::new();
    let chain = start_chain(store, &params, heads.clone(), metrics.clone())?;
    let mempool = MempoolHandle::new(MempoolActor::new(params.clone(), chain.clone()).start());
    let (fatal_tx, mut fatal_rx) = mpsc::channel::<String>(1);

    let mut producer = None;
    let mut networked = None;
    let mut dev_net_info = None;
    if let Some(seal) = cfg.dev {
        let key = Keypair::dev("alice");
        if validators.current.power(&key.account()).is_none() {
            bail!(
                "--dev produces blocks with the dev authority key {} but the validator set in force does not include it (the genesis `authorities`, or a set governance installed)",
                key.account()
            );
        }
        producer = Some(ProducerHandle::new(
            ProducerActor::new(
                chain.clone(),
                mempool.clone(),
                key,
                seal,
                in_force.block_time_ms,
                fatal_tx,
            )
            .start(),
        ));
        info!(
            block_time_ms = in_force.block_time_ms,
            seal = ?seal,
            "dev mode: producing and finalizing blocks alone"
        );
        if let Some(listen) = &cfg.network.p2p_addr {
            dev_net_info = Some(start_dev_discovery(
                &cfg.network,
                listen,
                &cfg.data_dir,
                &params,
                genesis_hash,
            )?);
        }
    } else {
        networked = Some(start_network(
            &cfg.network,
            &cfg.data_dir,
            &in_force,
            validators,
            genesis_hash,
            &head,
            &chain,
            &mempool,
            fatal_tx,
        )?);
    }

    let history = crate::rpc::history::SubnetHistory::default();
    history.spawn_sampler(chain.clone(), params.clone(), heads.subscribe());
    let state = AppState {
        chain: chain.clone(),
        mempool,
        params,
        genesis_hash,
        heads,
        producer: producer.clone(),
        consensus: networked.as_ref().map(|n| n.consensus.clone()),
        network: networked.as_ref().map(|n| n.network.clone()),
        net_info: networked.as_ref().map(|n| n.info.clone()).or(dev_net_info),
        metrics,
        history,
        limiter: crate::rpc::limits::RateLimiter::new(cfg.rpc_rate.0, cfg.rpc_rate.1),
    };
    let (server, bound) = rpc::serve(state, cfg.rpc_addr)
        .with_context(|| format!("binding RPC on {}", cfg.rpc_addr))?;
    info!(rpc = %format!("http://{bound}"), ws = %format!("ws://{bound}/ws"), "JSON-RPC listening");
    let server_handle = server.handle();
    let mut server_task = actix_rt::spawn(server);

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let outcome = tokio::select! {
        _ = tokio::signal::ctrl_c() => { info!("Ctrl-C: shutting down"); Ok(()) }
        _ = sigterm.recv() => { info!("SIGTERM: shutting down"); Ok(()) }
        reason = fatal_rx.recv() => Err(anyhow::anyhow!("block production or consensus failed: {}", reason.unwrap_or_default())),
        r = &mut server_task => Err(anyhow::anyhow!("RPC server stopped: {r:?}")),
    };
    server_handle.stop(true).await;
    if let Some(p) = producer {
        p.stop().await;
    }
    if let Some(n) = &networked {
        n.consensus.stop().await;
    }
    // Messages are handled in order: once this answers, any block in progress is committed.
    if let Ok(head) = chain.head().await {
        info!(height = head.height, head = %head.hash, "stopped");
    }
    // Release RocksDB here, not in exit-time destructors racing the chain actor's thread.
    kv.close();
    outcome
}
