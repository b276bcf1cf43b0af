use clap::Subcommand;
use serde_json::{json, Value};

use super::output::{tao, text as s};
use super::{Out, RpcOpts};
use crate::client::RpcClient;

#[derive(Subcommand, Debug)]
pub enum ChainCmd {
    /// The finalized head.
    Head(RpcOpts),
    /// The chain parameters in force (genesis values, then enacted governance changes):
    /// chain id, block time, fees, validators, governance rules, treasury.
    Info(RpcOpts),
    /// A block by height or hash.
    Block {
        /// Height (number) or hash (0x...).
        at: String,
        #[command(flatten)]
        rpc: RpcOpts,
    },
    /// A transaction by hash: finalized (with its block), pending, or dropped (with the reason).
    Tx {
        hash: String,
        #[command(flatten)]
        rpc: RpcOpts,
    },
    /// Issued, free, staked and burned TAO.
    Supply(RpcOpts),
    /// Offline (the node stopped): recompute the head's state root from every stored state
    /// row and check it, the stored accumulator and supply conservation. Exits 1 on a
    /// mismatch.
    Check {
        #[arg(long, env = "AGORA_DATA_DIR", default_value = "./agora-data")]
        data_dir: std::path::PathBuf,
        /// The genesis the database was made from (default: the built-in dev genesis).
        #[arg(long, env = "AGORA_GENESIS")]
        genesis: Option<std::path::PathBuf>,
    },
    /// Dev nodes only: seal N blocks now (what `--seal manual` waits for); prints the new head.
    Produce {
        /// How many blocks (1..=1000).
        #[arg(default_value_t = 1)]
        n: u64,
        #[command(flatten)]
        rpc: RpcOpts,
    },
}

pub async fn run(cmd: ChainCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        ChainCmd::Head(rpc) => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("chain_head", Value::Null)
                .await?;
            print_head(out, &v);
        }
        ChainCmd::Info(rpc) => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("chain_info", Value::Null)
                .await?;
            out.print(&v, || {
                format!(
                    "chain {} at block {}: {} ms blocks, fee {} rao + {} rao/byte, {} validators, {} voting, treasury {} ({} ppm of emission)",
                    v["chain_id"],
                    v["height"],
                    v["block_time_ms"],
                    v["base_fee_rao"],
                    v["per_byte_fee_rao"],
                    v["authorities"].as_array().map_or(0, Vec::len),
                    s(&v["gov"]["voting_power"]),
                    s(&v["treasury"]),
                    v["gov"]["treasury_ppm"],
                )
            });
        }
        ChainCmd::Check { data_dir, genesis } => {
            let genesis = super::load_genesis(genesis.as_ref())?;
            let kv = std::sync::Arc::new(agora_storage::RocksStore::open(&data_dir.join("db"))?);
            let report = agora_storage::ChainStore::open(kv.clone(), &genesis)
                .and_then(|store| store.check_state());
            kv.close();
            let report = report?;
            let v = json!({"ok": report.ok(), "check": report});
            out.print(&v, || {
                format!(
                    "height {}: state root {} ({} rows), recomputed {}, accumulator {}; supply issued {} = free {} + staked {} + burned {}; accounts hold {}: {}",
                    report.height,
                    report.state_root,
                    report.rows,
                    report.recomputed_root,
                    if report.stored_accumulator_matches { "matches" } else { "DIFFERS" },
                    report.issued,
                    report.free,
                    report.staked,
                    report.burned,
                    report.free_in_accounts,
                    if report.ok() { "ok" } else { "MISMATCH" }
                )
            });
            if !report.ok() {
                anyhow::bail!("the stored state does not check out");
            }
        }
        ChainCmd::Produce { n, rpc } => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("dev_produceBlocks", json!({"n": n}))
                .await?;
            print_head(out, &v);
        }
        ChainCmd::Block { at, rpc } => {
            let params = match at.parse::<u64>() {
                Ok(h) => json!({"height": h}),
                Err(_) => json!({"hash": at}),
            };
            let v = RpcClient::new(&rpc.rpc_url)
                .call("chain_block", params)
                .await?;
            out.print(&v, || {
                let h = &v["header"];
                let mut text = format!(
                    "block {}  hash {}\n  parent {}\n  proposer {}\n  timestamp_ms {}\n  state_root {}\n  txs {}",
                    h["height"], s(&v["hash"]), s(&h["parent"]), s(&h["proposer"]), h["timestamp_ms"], s(&h["state_root"]),
                    v["txs"].as_array().map_or(0, Vec::len)
                );
                for t in v["txs"].as_array().into_iter().flatten() {
                    text.push_str(&format!("\n    {} {} nonce {} {}", s(&t["hash"]), s(&t["signer"]), t["nonce"], t["call"]));
                }
                text
            });
        }
        ChainCmd::Tx { hash, rpc } => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("chain_tx", json!({"hash": hash}))
                .await?;
            out.print(&v, || match v["status"].as_str() {
                Some("finalized") => format!(
                    "finalized in block {} ({}) at index {}\n  {}",
                    v["block_height"],
                    s(&v["block_hash"]),
                    v["index"],
                    v["tx"]
                ),
                Some("dropped") => format!("dropped: {}", s(&v["reason"])),
                _ => "pending".to_string(),
            });
        }
        ChainCmd::Supply(rpc) => {
            let v = RpcClient::new(&rpc.rpc_url)
                .call("chain_supply", Value::Null)
                .await?;
            out.print(&v, || {
                format!(
                    "issued {}\nfree   {}\nstaked {}\nburned {}",
                    tao(&v["issued"]),
                    tao(&v["free"]),
                    tao(&v["staked"]),
                    tao(&v["burned"])
                )
            });
        }
    }
    Ok(())
}

fn print_head(out: Out, v: &Value) {
    out.print(v, || {
        format!(
            "height {}  hash {}  state_root {}  txs {}",
            v["height"],
            s(&v["hash"]),
            s(&v["state_root"]),
            v["tx_count"]
        )
    });
}
