//! A small JSON-RPC client over HTTP, used by the CLI.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

/// An RPC error returned by the node: code, message and the structured data.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

pub struct RpcClient {
    url: String,
    http: awc::Client,
}

impl RpcClient {
    pub fn new(url: &str) -> Self {
        let http = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        RpcClient {
            url: url.trim_end_matches('/').to_string(),
            http,
        }
    }

    /// The same client with another request timeout (status polls use short ones).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = awc::Client::builder().timeout(timeout).finish();
        self
    }

    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut resp = self
            .http
            .post(&self.url)
            .send_json(&req)
            .await
            .map_err(|e| anyhow!("cannot reach the node at {}: {e} (is `agora node --dev` running? use --rpc-url)", self.url))?;
        let body: Value = resp
            .json()
            .limit(64 * 1024 * 1024)
            .await
            .with_context(|| format!("reading the answer from {}", self.url))?;
        if let Some(err) = body.get("error") {
            return Err(RemoteError {
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
                    .to_string(),
                data: err.get("data").cloned(),
            }
            .into());
        }
        body.get("result")
            .cloned()
            .ok_or_else(|| anyhow!("node answered without a result"))
    }

    /// A method that answers `{height, <field>: [...]}`: the list alone.
    pub async fn call_list(
        &self,
        method: &str,
        params: Value,
        field: &str,
    ) -> anyhow::Result<Value> {
        let mut v = self.call(method, params).await?;
        match v.get_mut(field).map(Value::take) {
            Some(list @ Value::Array(_)) => Ok(list),
            _ => Err(anyhow!("{method} answered without a `{field}` list: {v}")),
        }
    }

    /// One JSON-RPC batch: the answers in request order, each a result or an error object.
    pub async fn batch(
        &self,
        calls: &[(&str, Value)],
    ) -> anyhow::Result<Vec<Result<Value, Value>>> {
        let req: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (m, p))| json!({"jsonrpc": "2.0", "id": i, "method": m, "params": p}))
            .collect();
        let mut resp = self
            .http
            .post(&self.url)
            .send_json(&req)
            .await
            .map_err(|e| anyhow!("cannot reach the node at {}: {e}", self.url))?;
        let body: Value = resp.json().limit(64 * 1024 * 1024).await?;
        let mut out: Vec<(u64, Result<Value, Value>)> = body
            .as_array()
            .ok_or_else(|| anyhow!("batch answered with {body}"))?
            .iter()
            .map(|r| {
                let id = r["id"].as_u64().unwrap_or(u64::MAX);
                match r.get("error") {
                    Some(e) => (id, Err(e.clone())),
                    None => (id, Ok(r["result"].clone())),
                }
            })
            .collect();
        out.sort_by_key(|(id, _)| *id);
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }

    /// Poll `chain_tx` until the transaction is finalized or dropped, or `timeout` passes.
    pub async fn wait_for_tx(&self, hash: &str, timeout: Duration) -> anyhow::Result<Value> {
        let start = Instant::now();
        loop {
            match self.call("chain_tx", json!({"hash": hash})).await {
                Ok(v) if v["status"] == "finalized" || v["status"] == "dropped" => return Ok(v),
                Ok(_) => {}
                Err(e)
                    if e.downcast_ref::<RemoteError>()
                        .is_some_and(|r| r.code == -32004) => {}
                Err(e) => return Err(e),
            }
            if start.elapsed() > timeout {
                bail!("transaction {hash} not finalized after {}s: it may still be pending (check with `agora chain tx {hash}`)", timeout.as_secs());
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
