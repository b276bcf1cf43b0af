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
use tracing::{info, warn};

use crate::actors::chain::{ChainActor, ChainHandle, HEAD_EVENTS_MAX};
use crate::actors::mempool::{MempoolActor, MempoolHandle};
use crate::actors::producer::{ProducerActor, ProducerHandle, Seal};
use crate::rpc::{self, AppState};

pub struct NodeConfig {
    /// `Some(seal)`: a one-node dev chain sealing blocks in that mode; `None`: read-only.
    pub dev: Option<Seal>,
    pub data_dir: PathBuf,
    pub rpc_addr: SocketAddr,
    pub genesis: Genesis,
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
    info!(chain_id = params.chain_id, genesis = %genesis_hash, height = head.height, head = %head.hash(), data_dir = %cfg.data_dir.display(), "opened chain");

    let (heads, _) = broadcast::channel(HEAD_EVENTS_MAX);
    let chain = {
        let actor = ChainActor::new(store, params.clone(), heads.clone())?;
        let slot = std::sync::Mutex::new(Some(actor));
        ChainHandle::new(SyncArbiter::start(1, move || {
            // A SyncArbiter of one thread calls its factory exactly once.
            slot.lock()
                .ok()
                .and_then(|mut s| s.take())
                .unwrap_or_else(|| unreachable!("the chain actor is started once"))
        }))
    };
    let mempool = MempoolHandle::new(MempoolActor::new(params.clone(), chain.clone()).start());
    let (fatal_tx, mut fatal_rx) = mpsc::channel::<String>(1);

    let mut producer = None;
    if let Some(seal) = cfg.dev {
        let key = Keypair::dev("alice");
        if !params.authorities.contains(&key.account()) {
            bail!(
                "--dev produces blocks with the dev authority key {} but the genesis does not list it under `authorities`",
                key.account()
            );
        }
        producer = Some(ProducerHandle::new(
            ProducerActor::new(
                chain.clone(),
                mempool.clone(),
                key,
                seal,
                params.block_time_ms,
                fatal_tx,
            )
            .start(),
        ));
        info!(
            block_time_ms = params.block_time_ms,
            seal = ?seal,
            "dev mode: producing and finalizing blocks alone"
        );
    } else {
        warn!("not in --dev mode: serving the stored chain read-only (networked consensus arrives with the p2p issue)");
    }

    let state = AppState {
        chain: chain.clone(),
        mempool,
        params,
        genesis_hash,
        heads,
        producer: producer.clone(),
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
        reason = fatal_rx.recv() => Err(anyhow::anyhow!("block production failed: {}", reason.unwrap_or_default())),
        r = &mut server_task => Err(anyhow::anyhow!("RPC server stopped: {r:?}")),
    };
    server_handle.stop(true).await;
    if let Some(p) = producer {
        p.stop().await;
    }
    // Messages are handled in order: once this answers, any block in progress is committed.
    if let Ok(head) = chain.head().await {
        info!(height = head.height, head = %head.hash, "stopped");
    }
    // Release RocksDB here, not in exit-time destructors racing the chain actor's thread.
    kv.close();
    outcome
}
