//! JSON-RPC 2.0 method dispatch, shared by HTTP and WebSocket. Methods are named
//! `area_verb`; see docs/rpc.md.

use agora_core::{AccountId, Hash};
use serde_json::{json, Value};

use super::views::*;
use super::AppState;
use crate::actors::chain::BlockRef;
use crate::actors::mempool::PoolStatus;
use crate::actors::producer::DEV_PRODUCE_MAX;
use crate::NodeError;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// The transaction was refused; `data.kind` names the rule, `data.reason` explains.
pub const TX_REJECTED: i64 = -32010;
/// The block or transaction asked for is not known.
pub const NOT_FOUND: i64 = -32004;
/// Too many requests from one address this second.
pub const RATE_LIMITED: i64 = -32005;

#[derive(Debug)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    pub fn to_json(&self) -> Value {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        e
    }
}

/// Clients see what failed as a stable `kind` and a human message, never the node's
/// internal error text (which goes to the node's log).
impl From<NodeError> for RpcError {
    fn from(e: NodeError) -> Self {
        let (code, message) = match &e {
            NodeError::NotFound(what) => (NOT_FOUND, what.clone()),
            NodeError::Stopped(_) => (INTERNAL_ERROR, "the node is shutting down".to_string()),
            _ => {
                tracing::error!("RPC request failed inside the node: {e}");
                (
                    INTERNAL_ERROR,
                    "internal error: the node could not answer (details in its log)".to_string(),
                )
            }
        };
        RpcError {
            code,
            message,
            data: Some(json!({"kind": e.kind()})),
        }
    }
}

/// Parameter `name` from an object, or position `index` from an array.
fn param<'a>(params: &'a Value, name: &str, index: usize) -> Option<&'a Value> {
    match params {
        Value::Object(m) => m.get(name),
        Value::Array(a) => a.get(index),
        _ => None,
    }
}

fn str_param<'a>(params: &'a Value, name: &str, index: usize) -> Result<&'a str, RpcError> {
    param(params, name, index)
        .ok_or_else(|| RpcError::params(format!("missing parameter `{name}`")))?
        .as_str()
        .ok_or_else(|| RpcError::params(format!("parameter `{name}` must be a string")))
}

fn u16_param(params: &Value, name: &str, index: usize) -> Result<u16, RpcError> {
    param(params, name, index)
        .and_then(Value::as_u64)
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(|| RpcError::params(format!("`{name}` must be an integer 0..=65535")))
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(|e| RpcError::new(INTERNAL_ERROR, e.to_string()))
}

/// JSON inside a state read.
fn json_of<T: serde::Serialize>(v: T) -> Result<Value, NodeError> {
    serde_json::to_value(v).map_err(|e| NodeError::Internal(e.to_string()))
}

pub async fn dispatch(state: &AppState, method: &str, params: &Value) -> Result<Value, RpcError> {
    match method {
        "chain_info" => {
            let (genesis, hash) = (state.params.clone(), state.genesis_hash);
            Ok(state
                .chain
                .read_at_head(move |s, _| {
                    let p = agora_core::ledger::params_in_force(s, &genesis)?;
                    json_of(ChainInfoView::of(&p, hash))
                })
                .await?)
        }
        "chain_head" => to_value(state.chain.head().await?),
        "chain_supply" => Ok(state
            .chain
            .read_at_head(|s, _| json_of(SupplyView::of(&agora_core::state::supply(s)?)))
            .await?),
        "account_info" => {
            let address: AccountId = str_param(params, "address", 0)?
                .parse()
                .map_err(|e| RpcError::params(format!("`address`: {e}")))?;
            let at = match param(params, "block", 1) {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    RpcError::params("`block` must be a block height (a non-negative integer)")
                })?),
            };
            let v = state
                .chain
                .read_at_head(move |s, _| {
                    let a = agora_core::state::account(s, &address)?;
                    json_of(AccountView {
                        address,
                        free: a.free,
                        nonce: a.nonce,
                    })
                })
                .await?;
            let height = v["height"].as_u64().unwrap_or(0);
            match at {
                Some(b) if b != height => Err(RpcError::params(format!(
                    "this node keeps no state history: only the head, block {height}, can be read (asked for block {b})"
                ))),
                _ => Ok(v),
            }
        }
        "chain_block" => {
            let at = match (param(params, "height", 0), param(params, "hash", 0)) {
                (Some(Value::Number(n)), _) => {
                    BlockRef::Height(n.as_u64().ok_or_else(|| {
                        RpcError::params("`height` must be a non-negative integer")
                    })?)
                }
                (_, Some(Value::String(s))) => BlockRef::Hash(
                    s.parse::<Hash>()
                        .map_err(|e| RpcError::params(format!("`hash`: {e}")))?,
                ),
                (None, None) if params.is_null() => BlockRef::Head,
                _ => {
                    return Err(RpcError::params(
                        "give `height` (integer) or `hash` (0x-hex string)",
                    ))
                }
            };
            match state.chain.block(at).await? {
                Some(info) => {
                    let genesis = state.params.clone();
                    let (block, cert) = (info.block.clone(), info.cert.clone());
                    // Checked against the set of the block's height (genesis, or installed
                    // by governance), from the committed state's history.
                    let valid = state
                        .chain
                        .read(move |s| {
                            let Some(cert) = cert else {
                                return Ok(Value::Null);
                            };
                            let height = block.header.height;
                            let ok = agora_core::gov::validator_set_at(s, &genesis, height)?
                                .is_ok_and(|set| {
                                    cert.verify_for(genesis.chain_id, &set, height, &block.hash())
                                        .is_ok()
                                });
                            Ok(json!(ok))
                        })
                        .await?;
                    to_value(BlockView::of(&info.block, info.cert, valid.as_bool()))
                }
                None => Err(RpcError::new(NOT_FOUND, "no such block")),
            }
        }
        "chain_tx" => {
            let hash: Hash = str_param(params, "hash", 0)?
                .parse()
                .map_err(|e| RpcError::params(format!("`hash`: {e}")))?;
            if let Some(info) = state.chain.tx(hash).await? {
                return Ok(json!({
                    "hash": hash,
                    "status": "finalized",
                    "block_height": info.header.height,
                    "block_hash": info.header.hash(),
                    "index": info.index,
                    "tx": TxView::of(&info.tx),
                }));
            }
            match state.mempool.status(hash).await? {
                Some(PoolStatus::Pending) => Ok(json!({"hash": hash, "status": "pending"})),
                Some(PoolStatus::Dropped { kind, reason }) => {
                    Ok(json!({"hash": hash, "status": "dropped", "kind": kind, "reason": reason}))
                }
                None => Err(RpcError::new(
                    NOT_FOUND,
                    "unknown transaction: not in a block, not pending, not recently dropped",
                )),
            }
        }
        "tx_submit" => {
            let text = str_param(params, "tx", 0)?;
            let digits = text.strip_prefix("0x").unwrap_or(text);
            let bytes = hex::decode(digits).map_err(|_| {
                RpcError::params("`tx` must be 0x-prefixed hex of the encoded transaction")
            })?;
            match state
                .mempool
                .submit(bytes, crate::actors::mempool::Origin::Local)
                .await?
            {
                Ok(hash) => Ok(json!({"hash": hash})),
                Err(e) => Err(RpcError {
                    code: TX_REJECTED,
                    message: format!("transaction rejected: {e}"),
                    data: Some(json!({"kind": e.kind(), "reason": e.to_string()})),
                }),
            }
        }
        "subnet_list" => {
            let params = state.params.clone();
            Ok(state
                .chain
                .read_at_head(move |s, head| super::subnets::list(s, &params, head))
                .await?)
        }
        "subnet_history" => {
            let netuid = u16_param(params, "netuid", 0)?;
            let limit = match param(params, "limit", 1) {
                None | Some(Value::Null) => 300,
                Some(v) => v
                    .as_u64()
                    .filter(|n| (1..=super::history::HISTORY_MAX as u64).contains(n))
                    .ok_or_else(|| {
                        RpcError::params(format!(
                            "`limit` must be an integer in 1..={}",
                            super::history::HISTORY_MAX
                        ))
                    })?,
            } as usize;
            Ok(state.history.get(netuid, limit))
        }
        "subnet_metagraph" => {
            let netuid = u16_param(params, "netuid", 0)?;
            let matrices = match param(params, "weights", 1) {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(RpcError::params("`weights` must be true or false")),
            };
            let params = state.params.clone();
            let v = state
                .chain
                .read_at_head(move |s, head| {
                    Ok(
                        super::subnets::metagraph(s, &params, netuid, head, matrices)?
                            .unwrap_or(Value::Null),
                    )
                })
                .await?;
            if v.is_null() {
                return Err(RpcError::new(NOT_FOUND, format!("no subnet {netuid}")));
            }
            Ok(v)
        }
        "subnet_lockCost" => {
            let params = state.params.clone();
            Ok(state
                .chain
                .read_at_head(move |s, head| super::subnets::lock_cost(s, &params, head))
                .await?)
        }
        "stake_list" => {
            let coldkey: AccountId = str_param(params, "coldkey", 0)?
                .parse()
                .map_err(|e| RpcError::params(format!("`coldkey`: {e}")))?;
            Ok(state
                .chain
                .read_at_head(move |s, _| super::subnets::stakes(s, &coldkey))
                .await?)
        }
        "subnet_epochs" => {
            let netuid = u16_param(params, "netuid", 0)?;
            let limit = match param(params, "limit", 1) {
                None | Some(Value::Null) => 8,
                Some(v) => v
                    .as_u64()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| RpcError::params("`limit` must be an integer in 1..=64"))?,
            } as usize;
            Ok(state
                .chain
                .read_at_head(move |s, _| super::subnets::epochs(s, netuid, limit))
                .await?)
        }
        "gov_proposals" => {
            let limit = match param(params, "limit", 0) {
                None | Some(Value::Null) => 32,
                Some(v) => v
                    .as_u64()
                    .filter(|n| (1..=1_000).contains(n))
                    .ok_or_else(|| RpcError::params("`limit` must be an integer in 1..=1000"))?,
            };
            Ok(state
                .chain
                .read_at_head(move |s, _| super::gov::proposals(s, limit))
                .await?)
        }
        "gov_proposal" | "gov_votes" => {
            let id = param(params, "id", 0)
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    RpcError::params("`id` must be a proposal id (a non-negative integer)")
                })?;
            let genesis = state.params.clone();
            let votes = method == "gov_votes";
            let v = state
                .chain
                .read_at_head(move |s, head| {
                    let v = if votes {
                        super::gov::votes(s, &genesis, id)?
                    } else {
                        super::gov::proposal(s, &genesis, id, head)?
                    };
                    Ok(v.unwrap_or(Value::Null))
                })
                .await?;
            if v.is_null() {
                return Err(RpcError::new(NOT_FOUND, format!("no proposal {id}")));
            }
            Ok(v)
        }
        "gov_concentration" => {
            let at = match param(params, "block", 0) {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    RpcError::params("`block` must be a block height (a non-negative integer)")
                })?),
            };
            let genesis = state.params.clone();
            let v = state
                .chain
                .read_at_head(move |s, _| super::gov::concentration(s, &genesis))
                .await?;
            let height = v["height"].as_u64().unwrap_or(0);
            match at {
                Some(b) if b != height => Err(RpcError::params(format!(
                    "this node keeps no state history: only the head, block {height}, can be read (asked for block {b}); `agora sim governance` computes the figures at every epoch of a simulated history"
                ))),
                _ => Ok(v),
            }
        }
        "root_info" => {
            let params = state.params.clone();
            Ok(state
                .chain
                .read_at_head(move |s, _| super::subnets::root_info(s, &params))
                .await?)
        }
        "hotkey_info" => {
            let hotkey: AccountId = str_param(params, "hotkey", 0)?
                .parse()
                .map_err(|e| RpcError::params(format!("`hotkey`: {e}")))?;
            Ok(state
                .chain
                .read_at_head(move |s, _| super::subnets::hotkey_info(s, &hotkey))
                .await?)
        }
        "sim_swap" => {
            let netuid = u16_param(params, "netuid", 0)?;
            let direction = match str_param(params, "direction", 1)? {
                "buy" | "stake" => agora_core::pool::Direction::Buy,
                "sell" | "unstake" => agora_core::pool::Direction::Sell,
                other => {
                    return Err(RpcError::params(format!(
                        "`direction` must be buy or sell, not {other:?}"
                    )))
                }
            };
            let amount = param(params, "amount", 2)
                .and_then(Value::as_u64)
                .ok_or_else(|| RpcError::params("`amount` must be a non-negative integer (rao)"))?;
            Ok(state
                .chain
                .read_at_head(move |s, _| super::subnets::sim_swap(s, netuid, direction, amount))
                .await?)
        }
        "net_info" => match &state.net_info {
            Some(info) => to_value(info),
            None => Err(RpcError::new(
                METHOD_NOT_FOUND,
                "net_info: this is a --dev node, it has no network",
            )),
        },
        "net_peers" => match &state.network {
            Some(net) => to_value(net.peers().await),
            None => Ok(json!([])),
        },
        "consensus_status" | "consensus_evidence" => {
            let Some(consensus) = &state.consensus else {
                return Err(RpcError::new(
                    METHOD_NOT_FOUND,
                    format!("{method}: this is a --dev node (one authority, no BFT consensus)"),
                ));
            };
            let mut status = consensus
                .status()
                .await
                .ok_or(NodeError::Stopped("consensus"))?;
            if method == "consensus_evidence" {
                return to_value(status.evidence);
            }
            status.evidence.truncate(16);
            to_value(status)
        }
        "dev_produceBlocks" => {
            let Some(producer) = &state.producer else {
                return Err(RpcError::new(
                    METHOD_NOT_FOUND,
                    "dev_produceBlocks needs a dev node (`agora node --dev`)",
                ));
            };
            let n = match param(params, "n", 0) {
                None | Some(Value::Null) => 1,
                Some(v) => v
                    .as_u64()
                    .filter(|n| (1..=DEV_PRODUCE_MAX).contains(n))
                    .ok_or_else(|| {
                        RpcError::params(format!("`n` must be an integer in 1..={DEV_PRODUCE_MAX}"))
                    })?,
            };
            to_value(producer.produce(n).await?)
        }
        "chain_subscribeHeads" | "chain_unsubscribeHeads" => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("{method} is only available over WebSocket (ws://.../ws)"),
        )),
        _ => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("unknown method `{method}`"),
        )),
    }
}

/// A validated request: (id, method, params). Errors carry the id when it was readable.
pub fn parse_request(v: &Value) -> Result<(Value, String, Value), (Value, RpcError)> {
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let Some(obj) = v.as_object() else {
        return Err((
            Value::Null,
            RpcError::new(INVALID_REQUEST, "a request must be a JSON object"),
        ));
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err((
            id,
            RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\""),
        ));
    }
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return Err((
            id,
            RpcError::new(INVALID_REQUEST, "`method` must be a string"),
        ));
    };
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    if !(params.is_null() || params.is_object() || params.is_array()) {
        return Err((
            id,
            RpcError::new(INVALID_REQUEST, "`params` must be an object or an array"),
        ));
    }
    Ok((id, method.to_string(), params))
}

pub fn response(id: Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e.to_json()}),
    }
}
