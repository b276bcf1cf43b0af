//! `serve` (R§12): a registered hotkey publishes the libp2p multiaddrs where it answers
//! queries, rate limited per (netuid, hotkey) and cleared when its uid is replaced.
//!
//! The chain checks the shape (1 to 4 addresses, each an ASCII `/proto/value/...` path of
//! at most 128 bytes); the node parses them as libp2p multiaddrs before sending. Unlike
//! R§12, loopback addresses are allowed: local testnets live on 127.0.0.1.

use bincode::{Decode, Encode};
use serde::Serialize;

use super::{keys, subnet, uid_of, Netuid, SubnetError, TxFailure};
use crate::crypto::AccountId;
use crate::state::{read, Overlay, StateError, StateRead};

pub const MAX_ADDRS: usize = 4;
pub const MAX_ADDR_BYTES: usize = 128;

/// Where a hotkey serves on a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct ServeInfo {
    pub block: u64,
    pub addrs: Vec<String>,
}

pub fn serve_info(
    s: &dyn StateRead,
    netuid: Netuid,
    hotkey: &AccountId,
) -> Result<Option<ServeInfo>, StateError> {
    read(s, &keys::serve(netuid, hotkey), "serve info")
}

/// Shape check of one address: `/proto/value[/proto/value...]`, printable ASCII.
pub fn check_addr(addr: &str) -> Result<(), SubnetError> {
    let bad = |why: &str| SubnetError::BadServeAddress(format!("{addr:?}: {why}"));
    if addr.len() > MAX_ADDR_BYTES {
        return Err(bad("longer than 128 bytes"));
    }
    if !addr.starts_with('/') || addr.len() < 2 {
        return Err(bad(
            "a multiaddr starts with '/', e.g. /ip4/1.2.3.4/tcp/30333",
        ));
    }
    if !addr.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("only printable ASCII without spaces"));
    }
    if addr.split('/').skip(1).any(str::is_empty) {
        return Err(bad("empty path segment"));
    }
    Ok(())
}

/// `serve(netuid, addrs)` signed by `hotkey` at block `now`.
pub fn serve(
    o: &mut Overlay<'_>,
    now: u64,
    hotkey: &AccountId,
    netuid: Netuid,
    addrs: &[String],
) -> Result<(), TxFailure> {
    let sn = subnet(o, netuid)?.ok_or(SubnetError::NoSuchSubnet(netuid))?;
    if uid_of(o, netuid, hotkey)?.is_none() {
        return Err(SubnetError::NotRegistered(*hotkey).into());
    }
    if addrs.is_empty() || addrs.len() > MAX_ADDRS {
        return Err(SubnetError::BadServeAddress(format!(
            "give 1 to {MAX_ADDRS} addresses, got {}",
            addrs.len()
        ))
        .into());
    }
    for a in addrs {
        check_addr(a)?;
    }
    if let Some(prev) = serve_info(o, netuid, hotkey)? {
        let next = prev.block.saturating_add(sn.hyper.serving_rate_limit);
        if now < next {
            return Err(SubnetError::ServeRateLimited { next }.into());
        }
    }
    let info = ServeInfo {
        block: now,
        addrs: addrs.to_vec(),
    };
    o.put_value(keys::serve(netuid, hotkey), &info);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_shapes() {
        assert!(check_addr("/ip4/127.0.0.1/tcp/30333").is_ok());
        assert!(check_addr("/dns4/miner.example.org/tcp/4001/p2p/12D3KooW").is_ok());
        for bad in [
            "",
            "/",
            "ip4/1.2.3.4",
            "/ip4//tcp/1",
            "/ip4/1.2.3.4 /tcp/1",
            "/é",
        ] {
            assert!(
                matches!(check_addr(bad), Err(SubnetError::BadServeAddress(_))),
                "{bad:?}"
            );
        }
        assert!(check_addr(&format!("/dns4/{}", "a".repeat(130))).is_err());
    }
}
