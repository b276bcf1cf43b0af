//! How a neuron starts, miner or validator alike: reach its node (waiting for it up to a
//! minute), find its hotkey registered on the subnet and its model the subnet's, then join
//! the network with the hotkey as its identity, through the node's own p2p addresses
//! unless bootnodes are given.

use std::time::Duration;

use agora_core::{Hash, Keypair};
use agora_p2p::{Events, Libp2pNetwork, Multiaddr};
use anyhow::anyhow;

use super::view::{self, ChainIds, SubnetView};
use crate::client::RpcClient;

/// Who joins, and where: what a miner's and a validator's configurations share.
pub struct Joining {
    /// The node's JSON-RPC URL.
    pub rpc_url: String,
    pub netuid: u16,
    pub hotkey: Keypair,
    /// The hotkey's name in the wallet (for the "register first" hint).
    pub hotkey_name: String,
    /// The hash of the model file the task runs, if it runs one: it must be the subnet's.
    pub model: Option<Hash>,
    pub p2p_addr: Multiaddr,
    /// DHT bootnodes; empty: the node's own p2p addresses.
    pub bootnodes: Vec<Multiaddr>,
}

/// A neuron that joined: its node, the chain, the subnet as first seen, its uid, and its
/// network.
pub struct Joined {
    pub client: RpcClient,
    pub ids: ChainIds,
    pub first: SubnetView,
    pub uid: u16,
    pub net: Libp2pNetwork,
    pub events: Events,
    pub listen: Vec<Multiaddr>,
}

pub async fn join(j: &Joining) -> anyhow::Result<Joined> {
    let client = RpcClient::new(&j.rpc_url).with_timeout(Duration::from_secs(10));
    let ids = view::wait_for_chain(&client, Duration::from_secs(60)).await?;
    let first = view::subnet_view(&client, j.netuid).await?;
    let me = j.hotkey.account();
    let uid = first.neuron(&me).map(|n| n.uid).ok_or_else(|| {
        anyhow!(
            "hotkey {me} is not registered on subnet {}: register it first with `agora subnet register --netuid {} --hotkey {}`",
            j.netuid, j.netuid, j.hotkey_name
        )
    })?;
    view::check_model(&first, j.netuid, j.model)?;
    let bootnodes = if j.bootnodes.is_empty() {
        view::node_bootnodes(&client).await?
    } else {
        j.bootnodes.to_vec()
    };
    let (net, events, listen) = Libp2pNetwork::spawn(agora_p2p::NetConfig {
        chain_id: ids.chain_id,
        genesis_hash: ids.genesis_hash,
        key_seed: j.hotkey.seed(),
        listen: j.p2p_addr.clone(),
        bootnodes,
        mdns: false,
        local: crate::node::is_loopback(&j.p2p_addr),
    })?;
    Ok(Joined {
        client,
        ids,
        first,
        uid,
        net,
        events,
        listen,
    })
}
