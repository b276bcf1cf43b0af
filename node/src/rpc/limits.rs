//! What one client may ask of the RPC: requests per second per IP address (a batch counts
//! each of its requests; each WebSocket message counts too), how long a request may take,
//! and how many connections the server holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connections held at once, per server worker. Overflow policy: new ones wait in the
/// listen backlog.
pub const RPC_MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send a request's headers.
pub const RPC_CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the node may take to answer one request before it answers with a timeout.
pub const RPC_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer sent. Overflow policy: an error naming the size is sent instead.
pub const RPC_MAX_RESPONSE: usize = 64 * 1024 * 1024;
/// Default requests per second per IP address.
pub const RPC_RATE_DEFAULT: u32 = 1000;
/// Addresses tracked. Overflow policy: the table is cleared (everyone starts a fresh second).
const TRACKED_MAX: usize = 10_000;

/// Per-IP request counting, by wall-clock second.
#[derive(Clone)]
pub struct RateLimiter {
    per_second: u32,
    /// Apply the limit to loopback clients too (by default they are local tools).
    loopback: bool,
    seen: Arc<Mutex<HashMap<IpAddr, (u64, u32)>>>,
}

impl RateLimiter {
    pub fn new(per_second: u32, loopback: bool) -> Self {
        RateLimiter {
            per_second: per_second.max(1),
            loopback,
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Count `n` requests from `ip` at `now_second`; false when over the limit (and then
    /// nothing is counted).
    pub fn allow(&self, ip: Option<IpAddr>, n: u32, now_second: u64) -> bool {
        let Some(ip) = ip else { return true };
        if ip.is_loopback() && !self.loopback {
            return true;
        }
        let Ok(mut seen) = self.seen.lock() else {
            return true;
        };
        if seen.len() >= TRACKED_MAX && !seen.contains_key(&ip) {
            seen.clear();
        }
        let entry = seen.entry(ip).or_insert((now_second, 0));
        if entry.0 != now_second {
            *entry = (now_second, 0);
        }
        if entry.1.saturating_add(n) > self.per_second {
            return false;
        }
        entry.1 = entry.1.saturating_add(n);
        true
    }
}

pub fn now_second() -> u64 {
    crate::neuron::status::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_own_budget_per_second() {
        let r = RateLimiter::new(5, false);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(r.allow(Some(a), 3, 100));
        assert!(!r.allow(Some(a), 3, 100), "a batch of 3 would make 6");
        assert!(r.allow(Some(a), 2, 100));
        assert!(!r.allow(Some(a), 1, 100));
        assert!(r.allow(Some(b), 5, 100), "another address");
        assert!(r.allow(Some(a), 5, 101), "a new second");
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(
            r.allow(Some(lo), 1_000, 100),
            "loopback is not limited by default"
        );
        assert!(!RateLimiter::new(5, true).allow(Some(lo), 6, 100));
    }
}
