//! Per-subnet price, emission share and pool depth sampled at every head, kept in memory
//! for `subnet_history` (what the dashboard plots from the moment it opens). Lost on
//! restart: a node remembers only what it saw.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use agora_core::genesis::ChainParams;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::actors::chain::{ChainHandle, HeadInfo};

/// Samples kept per subnet. Overflow policy: the oldest is dropped.
pub const HISTORY_MAX: usize = 1024;

#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Sample {
    height: u64,
    price_rao: u64,
    emission_share: f64,
    pool_tao: u64,
}

/// Shared between the sampler task and the RPC.
#[derive(Clone, Default)]
pub struct SubnetHistory(Arc<Mutex<BTreeMap<u16, VecDeque<Sample>>>>);

impl SubnetHistory {
    /// Sample every subnet at each new head (heads missed while a sample was taken are
    /// skipped, not queued).
    pub fn spawn_sampler(
        &self,
        chain: ChainHandle,
        params: ChainParams,
        mut heads: broadcast::Receiver<HeadInfo>,
    ) {
        let me = self.clone();
        actix_rt::spawn(async move {
            loop {
                let head = match heads.recv().await {
                    Ok(h) => h,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let params = params.clone();
                let height = head.height;
                let Ok(Value::Array(list)) = chain
                    .read(move |s| super::subnets::list(s, &params, height))
                    .await
                    .map(|mut v| v["subnets"].take())
                else {
                    continue;
                };
                me.record(height, &list);
            }
        });
    }

    fn record(&self, height: u64, list: &[Value]) {
        let Ok(mut all) = self.0.lock() else {
            return;
        };
        for s in list {
            let Some(netuid) = s["netuid"].as_u64().and_then(|n| u16::try_from(n).ok()) else {
                continue;
            };
            let q = all.entry(netuid).or_default();
            q.push_back(Sample {
                height,
                price_rao: s["price_rao"].as_u64().unwrap_or(0),
                emission_share: s["emission_share"].as_f64().unwrap_or(0.0),
                pool_tao: s["pool_tao"].as_u64().unwrap_or(0),
            });
            while q.len() > HISTORY_MAX {
                q.pop_front();
            }
        }
    }

    /// The newest `limit` samples of `netuid`, oldest first.
    pub fn get(&self, netuid: u16, limit: usize) -> Value {
        let Ok(all) = self.0.lock() else {
            return json!([]);
        };
        let Some(q) = all.get(&netuid) else {
            return json!([]);
        };
        let skip = q.len().saturating_sub(limit);
        json!(q.iter().skip(skip).collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_and_newest_last() {
        let h = SubnetHistory::default();
        for height in 0..(HISTORY_MAX as u64 + 10) {
            h.record(
                height,
                &[json!({"netuid": 1, "price_rao": height, "emission_share": 0.5, "pool_tao": 7})],
            );
        }
        let all = h.get(1, usize::MAX);
        assert_eq!(all.as_array().unwrap().len(), HISTORY_MAX);
        let last3 = h.get(1, 3);
        assert_eq!(last3[2]["height"], HISTORY_MAX as u64 + 9);
        assert_eq!(last3[0]["price_rao"], HISTORY_MAX as u64 + 7);
        assert_eq!(h.get(2, 10), json!([]));
    }
}
