//! Sign, submit and (optionally) wait: shared by every CLI verb that sends a transaction.

use std::time::Duration;

use agora_core::{Call, Keypair, Transaction};
use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::output::text;
use super::Out;
use crate::client::{RemoteError, RpcClient};

/// A transaction that was accepted (and, when waited for, finalized).
pub struct Sent {
    pub hash: String,
    pub fee: u64,
    pub nonce: u64,
    /// `chain_tx`'s answer once finalized; None with `--no-wait`.
    pub finalized: Option<Value>,
}

impl Sent {
    /// JSON for `--json`: hash, status, block, fee, nonce, plus `extra`.
    pub fn to_json(&self, extra: Value) -> Value {
        let mut v = json!({"hash": self.hash, "fee": self.fee, "nonce": self.nonce});
        match &self.finalized {
            Some(f) => {
                v["status"] = json!("finalized");
                v["block_height"] = f["block_height"].clone();
                v["block_hash"] = f["block_hash"].clone();
            }
            None => v["status"] = json!("pending"),
        }
        if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
            obj.extend(more);
        }
        v
    }

    pub fn human(&self) -> String {
        match &self.finalized {
            Some(f) => format!(
                "finalized in block {} ({})",
                f["block_height"],
                text(&f["block_hash"])
            ),
            None => format!("submitted {}", self.hash),
        }
    }
}

/// Sign `call` with `key`, submit it, and wait up to `wait` for finalization. `what` names
/// the action in messages ("transfer", "stake"...). Refusals say which rule was broken.
pub async fn send(
    client: &RpcClient,
    key: &Keypair,
    call: Call,
    tip: u64,
    wait: Option<Duration>,
    what: &str,
    out: Out,
) -> anyhow::Result<Sent> {
    let info = client.call("chain_info", Value::Null).await?;
    let chain_id = info["chain_id"].as_u64().context("node sent no chain_id")?;
    let acct = client
        .call("account_info", json!({"address": key.account()}))
        .await?;
    let nonce = acct["nonce"].as_u64().context("node sent no nonce")?;
    let fee_free = call.is_fee_free();
    let stx = Transaction {
        chain_id,
        signer: key.account(),
        nonce,
        call,
        tip,
    }
    .sign(key);
    let bytes = stx.encode();
    let fee = if fee_free {
        0
    } else {
        info["base_fee_rao"].as_u64().unwrap_or(0)
            + info["per_byte_fee_rao"].as_u64().unwrap_or(0) * bytes.len() as u64
    };
    out.progress(&format!(
        "{what}: signed by {} (nonce {nonce}, fee {} TAO)",
        key.account(),
        agora_core::format_tao(fee)
    ));
    let hash = match client
        .call(
            "tx_submit",
            json!({"tx": format!("0x{}", hex::encode(&bytes))}),
        )
        .await
    {
        Ok(v) => v["hash"].as_str().unwrap_or_default().to_string(),
        Err(e) => {
            if let Some(r) = e.downcast_ref::<RemoteError>() {
                let kind = r
                    .data
                    .as_ref()
                    .and_then(|d| d["kind"].as_str())
                    .unwrap_or("rejected");
                bail!(
                    "{what} refused ({kind}): {}",
                    r.message.trim_start_matches("transaction rejected: ")
                );
            }
            return Err(e);
        }
    };
    let Some(timeout) = wait else {
        return Ok(Sent {
            hash,
            fee,
            nonce,
            finalized: None,
        });
    };
    out.progress(&format!("submitted {hash}, waiting for finalization..."));
    let v = client.wait_for_tx(&hash, timeout).await?;
    if v["status"] == "dropped" {
        bail!(
            "{what} {hash} was dropped ({}): {}",
            text(&v["kind"]),
            text(&v["reason"])
        );
    }
    Ok(Sent {
        hash,
        fee,
        nonce,
        finalized: Some(v),
    })
}
