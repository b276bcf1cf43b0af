//! What a neuron needs of the chain, read from a node's JSON-RPC: the chain's identity, the
//! subnet's metagraph at the head, and the node's p2p addresses (bootnodes for the DHT).

use agora_core::{AccountId, Hash};
use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use crate::client::RpcClient;

/// The chain a neuron works on.
#[derive(Debug, Clone)]
pub struct ChainIds {
    pub chain_id: u64,
    pub genesis_hash: Hash,
    pub block_time_ms: u64,
}

/// One neuron of the metagraph, as a miner or validator uses it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NeuronInfo {
    pub uid: u16,
    pub hotkey: AccountId,
    /// Alpha staked on the hotkey in this subnet (rao).
    pub stake: u64,
    pub validator_permit: bool,
    pub incentive: u64,
    pub last_update: u64,
}

/// The subnet at the node's head.
#[derive(Debug, Clone, Default)]
pub struct SubnetView {
    pub head: u64,
    pub epoch_index: u64,
    pub commit_reveal: bool,
    pub reveal_period_epochs: u64,
    pub weights_rate_limit: u64,
    pub neurons: Vec<NeuronInfo>,
    /// The inference model the subnet names (its owner hotkey's served model entry).
    pub model: Option<Hash>,
}

impl SubnetView {
    pub fn neuron(&self, hotkey: &AccountId) -> Option<&NeuronInfo> {
        self.neurons.iter().find(|n| n.hotkey == *hotkey)
    }
}

fn field<T: serde::de::DeserializeOwned>(v: &Value, name: &str) -> anyhow::Result<T> {
    serde_json::from_value(v[name].clone())
        .with_context(|| format!("the node's answer has no valid `{name}`"))
}

/// [`chain_ids`], retrying for up to `patience` while the node is not up yet (a neuron
/// started together with its node).
pub async fn wait_for_chain(
    client: &RpcClient,
    patience: std::time::Duration,
) -> anyhow::Result<ChainIds> {
    let start = std::time::Instant::now();
    let mut said = false;
    loop {
        match chain_ids(client).await {
            Ok(ids) => return Ok(ids),
            Err(e) if start.elapsed() < patience => {
                if !said {
                    tracing::warn!("{e:#}; retrying for up to {} s", patience.as_secs());
                    said = true;
                }
                actix_rt::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

pub async fn chain_ids(client: &RpcClient) -> anyhow::Result<ChainIds> {
    let info = client.call("chain_info", Value::Null).await?;
    Ok(ChainIds {
        chain_id: field(&info, "chain_id")?,
        genesis_hash: field(&info, "genesis_hash")?,
        block_time_ms: field(&info, "block_time_ms")?,
    })
}

pub async fn subnet_view(client: &RpcClient, netuid: u16) -> anyhow::Result<SubnetView> {
    let head: u64 = field(&client.call("chain_head", Value::Null).await?, "height")?;
    // Without the weight and bond matrices: a neuron polls this every block.
    let m = client
        .call(
            "subnet_metagraph",
            json!({ "netuid": netuid, "weights": false }),
        )
        .await?;
    if m.is_null() {
        bail!("subnet {netuid} does not exist (`agora subnet list` shows the subnets)");
    }
    if m["owner_hotkey"].is_null() {
        return Err(anyhow!(
            "the metagraph of subnet {netuid} names no owner hotkey"
        ));
    }
    let hyper = &m["hyperparams"];
    let neurons = m["neurons"]
        .as_array()
        .ok_or_else(|| anyhow!("the metagraph of subnet {netuid} has no neurons list"))?
        .iter()
        .map(|n| {
            Ok(NeuronInfo {
                uid: field(n, "uid")?,
                hotkey: field(n, "hotkey")?,
                stake: field(n, "stake")?,
                validator_permit: field(n, "validator_permit")?,
                incentive: field(n, "incentive")?,
                last_update: field(n, "last_update")?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let owner: Option<AccountId> = serde_json::from_value(m["owner_hotkey"].clone()).ok();
    let model = m["neurons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| serde_json::from_value::<AccountId>(n["hotkey"].clone()).ok() == owner)
        .flat_map(|n| n["axon"]["addrs"].as_array().cloned().unwrap_or_default())
        .find_map(|a| {
            a.as_str()
                .and_then(super::inference_task::parse_model_entry)
        });
    Ok(SubnetView {
        head,
        model,
        epoch_index: field(&m, "epoch_index")?,
        commit_reveal: field(hyper, "commit_reveal")?,
        reveal_period_epochs: field(hyper, "reveal_period_epochs")?,
        weights_rate_limit: field(hyper, "weights_rate_limit")?,
        neurons,
    })
}

/// The node's own p2p addresses, to join the DHT through it when no bootnodes are given.
pub async fn node_bootnodes(client: &RpcClient) -> anyhow::Result<Vec<agora_p2p::Multiaddr>> {
    let info = client.call("net_info", Value::Null).await.map_err(|e| {
        anyhow!("{e}: start the node with --p2p-addr (a --dev node then serves the DHT neurons find each other through), or pass --bootnodes")
    })?;
    let listen: Vec<String> = field(&info, "listen")?;
    listen
        .iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("the node's p2p address {a}"))
        })
        .collect()
}

/// A neuron running a model (`model`: its file's hash) must run the one the subnet names.
pub fn check_model(view: &SubnetView, netuid: u16, model: Option<Hash>) -> anyhow::Result<()> {
    match (model, view.model) {
        (None, _) => Ok(()),
        (Some(_), None) => bail!(
            "subnet {netuid} names no model: its owner sets one with `agora subnet set-model --netuid {netuid} --model FILE`"
        ),
        (Some(mine), Some(named)) if mine != named => bail!(
            "the --model file hashes to {mine}, but subnet {netuid} runs {named}"
        ),
        _ => Ok(()),
    }
}
