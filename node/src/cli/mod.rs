//! The `agora` command line: btcli-like verbs, every command with `--json`.

mod chain;
mod compute;
mod gov;
mod neuron;
mod output;
mod root;
mod sim;
mod sim_consensus;
mod stake;
mod subnet;
mod testnet;
mod testnet_bench;
mod testnet_compose;
mod testnet_subnets;
mod tx;
mod wallet;
mod weights;

use std::net::SocketAddr;
use std::path::PathBuf;

use agora_core::Genesis;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

pub use output::Out;
pub use tx::send as tx_send;

#[derive(Parser, Debug)]
#[command(
    name = "agora",
    version,
    about = "Agora: a Bittensor-style decentralized AI network node"
)]
pub struct Cli {
    /// Print machine-readable JSON (stable schema) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log filter for the node (e.g. info, debug, agora_node=debug).
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node.
    Node(NodeArgs),
    /// Wallets: coldkeys and hotkeys, balances, transfers.
    #[command(subcommand)]
    Wallet(wallet::WalletCmd),
    /// Query the chain over RPC.
    #[command(subcommand)]
    Chain(chain::ChainCmd),
    /// Subnets: create, list, show (metagraph), start, register, set, serve, epochs, prices.
    #[command(subcommand)]
    Subnet(subnet::SubnetCmd),
    /// Stake TAO on hotkeys in subnets (alpha) or root, move it, list it, set takes.
    #[command(subcommand)]
    Stake(stake::StakeCmd),
    /// Set, commit or reveal weights from a validator hotkey.
    #[command(subcommand)]
    Weights(weights::WeightsCmd),
    /// The root network (netuid 0): register, list, legacy root weights.
    #[command(subcommand)]
    Root(root::RootCmd),
    /// Governance: propose, vote, list, show, votes, concentration of power.
    #[command(subcommand)]
    Gov(gov::GovCmd),
    /// Mine a subnet: serve its task to validators over libp2p (run), or show a miner's status.
    #[command(subcommand)]
    Miner(neuron::MinerCmd),
    /// Validate a subnet: query its miners, score them, send weights (run), or show status.
    #[command(subcommand)]
    Validator(neuron::ValidatorCmd),
    /// GPU compute: adapters wgpu finds, and kernel benchmarks (GPU vs CPU).
    #[command(subcommand)]
    Compute(compute::ComputeCmd),
    /// The economics offline: one Yuma epoch, multi-epoch scenarios, benchmarks.
    #[command(subcommand)]
    Sim(sim::SimCmd),
    /// Local multi-process networks: init, up (with live progress), status.
    #[command(subcommand)]
    Testnet(testnet::TestnetCmd),
    /// Print the built-in dev genesis as TOML (a starting point for your own).
    Genesis,
    /// Measure the ledger: signed transfers applied and committed per second vs raw ed25519.
    Bench(agora_testnet::bench::ledger::BenchArgs),
    /// Measure the subnet market: blocks with epochs over 128 subnets, add_stake and set_weights per second.
    BenchMarket(agora_testnet::bench::market::MarketBenchArgs),
    /// Measure neuron queries: one validator and 16 miners on loopback, requests/s and
    /// p50/p99, against Python's axon/dendrite pattern with --python.
    BenchQuery(crate::neuron::bench::QueryBenchArgs),
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Produce and finalize blocks alone with the dev authority key (`alice`).
    #[arg(long)]
    pub dev: bool,
    /// With --dev: when to seal blocks. `interval`: every block_time_ms; `instant`: as soon
    /// as transactions are pending; `manual`: only on `dev_produceBlocks` / `agora chain produce`.
    #[arg(long, value_enum, requires = "dev", default_value = "interval")]
    pub seal: crate::actors::producer::Seal,
    /// Where the database lives.
    #[arg(long, env = "AGORA_DATA_DIR", default_value = "./agora-data")]
    pub data_dir: PathBuf,
    /// JSON-RPC listen address (HTTP at /, WebSocket at /ws).
    #[arg(long, env = "AGORA_RPC_ADDR", default_value = "127.0.0.1:9944")]
    pub rpc_addr: SocketAddr,
    /// JSON-RPC requests per second per client address (a batch counts each request).
    #[arg(long, default_value_t = crate::rpc::limits::RPC_RATE_DEFAULT)]
    pub rpc_rate_limit: u32,
    /// Apply --rpc-rate-limit to loopback clients too (by default local tools are not limited).
    #[arg(long)]
    pub rpc_limit_loopback: bool,
    /// Genesis file (TOML or JSON). Default: the built-in dev genesis.
    #[arg(long, env = "AGORA_GENESIS")]
    pub genesis: Option<PathBuf>,
    /// Validate with this key file (as `agora testnet init` writes them, mode 0600). Without
    /// it a networked node is a full node: it follows, verifies certificates, serves RPC.
    #[arg(long, env = "AGORA_VALIDATOR_KEY", conflicts_with = "dev")]
    pub validator_key: Option<PathBuf>,
    /// libp2p listen address (`/tcp/0` picks a free port; `net_info` shows it). Default for
    /// a networked node: /ip4/0.0.0.0/tcp/30333. A --dev node listens only when given one,
    /// and then serves the DHT through which miners and validators find each other.
    #[arg(long, env = "AGORA_P2P_ADDR")]
    pub p2p_addr: Option<agora_p2p::Multiaddr>,
    /// Peers to join, comma separated: `/ip4/127.0.0.1/tcp/30333/p2p/12D3Koo...`.
    #[arg(long, env = "AGORA_BOOTNODES", value_delimiter = ',')]
    pub bootnodes: Vec<agora_p2p::Multiaddr>,
    /// Discover peers on the local network with mDNS (off by default).
    #[arg(long)]
    pub mdns: bool,
}

/// Options shared by the commands that talk to a node.
#[derive(Args, Debug, Clone)]
pub struct RpcOpts {
    /// The node's JSON-RPC URL.
    #[arg(long, env = "AGORA_RPC_URL", default_value = "http://127.0.0.1:9944")]
    pub rpc_url: String,
}

pub fn load_genesis(path: Option<&PathBuf>) -> anyhow::Result<Genesis> {
    match path {
        None => Ok(Genesis::dev()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading genesis file {}", p.display()))?;
            Ok(Genesis::parse(&text, &p.display().to_string())?)
        }
    }
}

pub fn init_logs(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Run one command. Errors are printed by the caller.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Out { json: cli.json };
    match cli.command {
        Command::Node(args) => {
            init_logs(&cli.log);
            let genesis = load_genesis(args.genesis.as_ref())?;
            crate::node::run(crate::node::NodeConfig {
                dev: args.dev.then_some(args.seal),
                data_dir: args.data_dir,
                rpc_addr: args.rpc_addr,
                genesis,
                network: crate::node::NetworkConfig {
                    validator_key: args.validator_key,
                    p2p_addr: args.p2p_addr,
                    bootnodes: args.bootnodes,
                    mdns: args.mdns,
                },
                rpc_rate: (args.rpc_rate_limit, args.rpc_limit_loopback),
            })
            .await
        }
        Command::Wallet(cmd) => wallet::run(cmd, out).await,
        Command::Chain(cmd) => chain::run(cmd, out).await,
        Command::Sim(cmd) => sim::run(cmd, out),
        Command::Compute(cmd) => {
            init_logs(&cli.log);
            compute::run(cmd, out)
        }
        Command::Subnet(cmd) => subnet::run_subnet(cmd, out).await,
        Command::Stake(cmd) => stake::run(cmd, out).await,
        Command::Weights(cmd) => weights::run(cmd, out).await,
        Command::Root(cmd) => root::run(cmd, out).await,
        Command::Gov(cmd) => gov::run(cmd, out).await,
        Command::Testnet(cmd) => testnet::run(cmd, out).await,
        Command::Miner(cmd) => neuron::run_miner(cmd, out, &cli.log).await,
        Command::Validator(cmd) => neuron::run_validator(cmd, out, &cli.log).await,
        Command::Genesis => {
            let g = Genesis::dev();
            if out.json {
                out.print(&serde_json::to_value(&g)?, String::new);
            } else {
                print!("{}", toml::to_string(&g).context("rendering genesis")?);
            }
            Ok(())
        }
        Command::Bench(args) => agora_testnet::bench::ledger::run(args, &out),
        Command::BenchMarket(args) => agora_testnet::bench::market::run(args, &out),
        Command::BenchQuery(args) => {
            init_logs(&cli.log);
            crate::neuron::bench::run(args, out)
        }
    }
}
