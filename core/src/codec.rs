//! Canonical binary encoding (PROTOCOL §2).
//!
//! bincode 2 with fixed-width little-endian integers: `u64` is 8 bytes LE, a `Vec` is a
//! `u64` LE length then its items, an enum is a `u32` LE variant index then its fields, an
//! `Option` is one byte (0 or 1) then the value, fixed arrays are their bytes. Decoding
//! untrusted bytes is bounded by a limit given per type (the decoder refuses any length
//! prefix that would allocate beyond it) and rejects trailing bytes, so every value has
//! exactly one encoding.

use bincode::config::{self, Configuration, Fixint, Limit, LittleEndian};
use bincode::{Decode, Encode};

/// Largest accepted encoded transaction, in bytes.
pub const MAX_TX_BYTES: usize = 16 * 1024;
/// Largest accepted encoded block, in bytes.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;
/// Largest accepted encoded state value (accounts, records).
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

type Config<const N: usize> = Configuration<LittleEndian, Fixint, Limit<N>>;

const fn config<const N: usize>() -> Config<N> {
    config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<N>()
}

/// Why bytes could not be decoded. Always "invalid input", never an internal failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{what} is {len} bytes, the limit is {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("malformed {what}: {extra} trailing bytes after the value")]
    TrailingBytes { what: &'static str, extra: usize },
}

fn unlimited() -> Configuration<LittleEndian, Fixint> {
    config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
}

/// Encode a value canonically, refusing one larger than `N` bytes: a value that peers
/// would refuse to decode must never be sent, stored, hashed or signed.
pub fn encode<T: Encode, const N: usize>(
    value: &T,
    what: &'static str,
) -> Result<Vec<u8>, CodecError> {
    // The limit is checked on the result: limits in the config protect decoders.
    let bytes = bincode::encode_to_vec(value, unlimited()).map_err(|e| CodecError::Malformed {
        what,
        reason: e.to_string(),
    })?;
    if bytes.len() > N {
        return Err(CodecError::TooLarge {
            what,
            len: bytes.len(),
            max: N,
        });
    }
    Ok(bytes)
}

/// The canonical bytes of a value that is hashed, not sent: a header, a certificate, a
/// transaction's signed part. Their `Encode` is derived over integers, byte arrays,
/// `Vec`s, `Option`s and strings written into a `Vec`, which cannot fail; bincode failing
/// anyway would be a bug there, and stops the node rather than hash anything else.
#[allow(clippy::panic)]
pub fn canonical<T: Encode>(value: &T) -> Vec<u8> {
    match bincode::encode_to_vec(value, unlimited()) {
        Ok(bytes) => bytes,
        Err(e) => panic!(
            "bincode failed to encode a {}: {e}",
            std::any::type_name::<T>()
        ),
    }
}

/// Decode untrusted bytes of at most `N` bytes as exactly one `T`.
pub fn decode<T: Decode<()>, const N: usize>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, CodecError> {
    if bytes.len() > N {
        return Err(CodecError::TooLarge {
            what,
            len: bytes.len(),
            max: N,
        });
    }
    let (value, used) =
        bincode::decode_from_slice(bytes, config::<N>()).map_err(|e| CodecError::Malformed {
            what,
            reason: e.to_string(),
        })?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes {
            what,
            extra: bytes.len().saturating_sub(used),
        });
    }
    Ok(value)
}

/// Encode a state value, refusing one over [`MAX_VALUE_BYTES`] (what decoding accepts):
/// state that could not be read back is never written.
pub fn encode_value<T: Encode>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode::<T, MAX_VALUE_BYTES>(value, "state value")
}

/// Decode a state value.
pub fn decode_value<T: Decode<()>>(bytes: &[u8], what: &'static str) -> Result<T, CodecError> {
    decode::<T, MAX_VALUE_BYTES>(bytes, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Encode, Decode)]
    struct Sample {
        a: u64,
        b: Vec<u8>,
        c: Option<u16>,
    }

    #[test]
    fn layout_is_fixed_width_little_endian() {
        let bytes = encode_value(&Sample {
            a: 1,
            b: vec![7, 8],
            c: Some(3),
        })
        .unwrap();
        assert_eq!(
            bytes,
            vec![1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7, 8, 1, 3, 0]
        );
    }

    #[test]
    fn trailing_bytes_oversize_and_huge_length_prefixes_are_refused() {
        let mut bytes = encode_value(&Sample {
            a: 1,
            b: vec![],
            c: None,
        })
        .unwrap();
        bytes.push(0);
        assert!(matches!(
            decode_value::<Sample>(&bytes, "sample"),
            Err(CodecError::TrailingBytes { extra: 1, .. })
        ));
        assert!(matches!(
            decode::<Sample, 8>(&[0; 9], "sample"),
            Err(CodecError::TooLarge { len: 9, max: 8, .. })
        ));
        // A length prefix claiming 2^60 bytes must not allocate: it is refused by the limit.
        let mut evil = vec![0u8; 8];
        evil.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(matches!(
            decode_value::<Sample>(&evil, "sample"),
            Err(CodecError::Malformed { .. })
        ));
    }

    /// A value over the decode cap is refused when written, not found corrupt when read.
    #[test]
    fn values_that_could_not_be_read_back_are_refused_when_encoded() {
        let big = Sample {
            a: 0,
            b: vec![0; MAX_VALUE_BYTES],
            c: None,
        };
        assert!(matches!(
            encode_value(&big),
            Err(CodecError::TooLarge {
                what: "state value",
                max: MAX_VALUE_BYTES,
                ..
            })
        ));
        let fits = Sample {
            a: 0,
            b: vec![0; MAX_VALUE_BYTES - 64],
            c: None,
        };
        let bytes = encode_value(&fits).unwrap();
        assert_eq!(decode_value::<Sample>(&bytes, "sample").unwrap(), fits);
        assert!(encode::<_, 8>(&fits, "sample").is_err());
        assert_eq!(canonical(&fits), bytes);
    }
}
