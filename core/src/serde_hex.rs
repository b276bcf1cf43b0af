//! serde helpers that show byte arrays as `0x`-hex in JSON.

use serde::Serializer;

pub fn bytes64<S: Serializer>(bytes: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("0x{}", hex::encode(bytes)))
}
