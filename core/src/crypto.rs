//! Keys, addresses and signatures (PROTOCOL §2).
//!
//! Every key is ed25519. An [`AccountId`] is the 32-byte public key; it is shown as an
//! SS58 address with prefix 42 (Bittensor's) and parsed from SS58 or from `0x`-hex.

use std::fmt;
use std::str::FromStr;

use bincode::{Decode, Encode};
use blake2::{Blake2b512, Digest};
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// SS58 address-type prefix used by Agora (the same as Bittensor's).
pub const SS58_PREFIX: u8 = 42;
const SS58_CHECKSUM_PREIMAGE: &[u8] = b"SS58PRE";

/// A 32-byte blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0; 32]);

    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for Hash {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex32(s).map(Hash).ok_or(AddressError::BadHash)
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Domain-separated blake3: `blake3(domain || parts...)`.
pub fn hash_with_domain(domain: &[u8], parts: &[&[u8]]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(domain);
    for p in parts {
        h.update(p);
    }
    Hash(*h.finalize().as_bytes())
}

/// An account: an ed25519 public key (coldkey or hotkey).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode)]
pub struct AccountId(pub [u8; 32]);

/// Why an address or hash string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error(
        "not a valid address: expected an SS58 address (prefix 42) or 0x followed by 64 hex digits"
    )]
    Malformed,
    #[error("SS58 checksum mismatch: the address is mistyped")]
    BadChecksum,
    #[error("SS58 address has network prefix {0}, Agora uses {SS58_PREFIX}")]
    WrongPrefix(u16),
    #[error("not a valid hash: expected 0x followed by 64 hex digits")]
    BadHash,
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.len() != 64 {
        return None;
    }
    let bytes = hex::decode(digits).ok()?;
    bytes.try_into().ok()
}

fn ss58_checksum(body: &[u8]) -> [u8; 2] {
    let mut h = Blake2b512::new();
    h.update(SS58_CHECKSUM_PREIMAGE);
    h.update(body);
    match h.finalize().as_slice() {
        [a, b, ..] => [*a, *b],
        _ => [0, 0], // blake2b-512 always yields 64 bytes
    }
}

impl AccountId {
    /// SS58 with prefix 42: `base58(42 || key || blake2b512("SS58PRE" || 42 || key)[..2])`.
    pub fn to_ss58(&self) -> String {
        let mut body = Vec::with_capacity(35);
        body.push(SS58_PREFIX);
        body.extend_from_slice(&self.0);
        let checksum = ss58_checksum(&body);
        body.extend_from_slice(&checksum);
        bs58::encode(body).into_string()
    }

    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }

    fn from_ss58(s: &str) -> Result<Self, AddressError> {
        let raw = bs58::decode(s)
            .into_vec()
            .map_err(|_| AddressError::Malformed)?;
        // Simple (one-byte) prefixes only: 32-byte key, 2-byte checksum.
        let [prefix, rest @ ..] = raw.as_slice() else {
            return Err(AddressError::Malformed);
        };
        if rest.len() != 34 {
            return Err(AddressError::Malformed);
        }
        if *prefix >= 64 {
            return Err(AddressError::Malformed);
        }
        let (key, checksum) = rest.split_at(32);
        if ss58_checksum(raw.get(..33).ok_or(AddressError::Malformed)?) != checksum {
            return Err(AddressError::BadChecksum);
        }
        if *prefix != SS58_PREFIX {
            return Err(AddressError::WrongPrefix(u16::from(*prefix)));
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(key);
        Ok(AccountId(out))
    }

    /// Verify an ed25519 signature by this account over `message` under ZIP-215's rules
    /// (`ed25519-consensus`), the one rule of every path: single, batch, build, verify,
    /// sync. A batch accepts exactly what these single checks accept.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Ok(key) = ed25519_consensus::VerificationKey::try_from(self.0) else {
            return false;
        };
        key.verify(&ed25519_consensus::Signature::from(*signature), message)
            .is_ok()
    }
}

impl FromStr for AccountId {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with("0x") {
            return parse_hex32(s).map(AccountId).ok_or(AddressError::Malformed);
        }
        Self::from_ss58(s)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ss58())
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ss58())
    }
}

impl Serialize for AccountId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_ss58())
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An ed25519 key pair. The 32-byte secret seed is the whole secret.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Keypair {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// A fresh key from the given CSPRNG (callers pass `OsRng`; core never reaches for ambient randomness).
    pub fn generate<R: rand_core::CryptoRngCore + ?Sized>(rng: &mut R) -> Self {
        Keypair {
            signing: SigningKey::generate(rng),
        }
    }

    /// Well-known development key `name` (e.g. "alice"): seed `blake3("agora/dev-key/v1" || lowercase(name))`.
    /// Public knowledge: only for dev chains.
    pub fn dev(name: &str) -> Self {
        let seed = hash_with_domain(b"agora/dev-key/v1", &[name.to_lowercase().as_bytes()]);
        Self::from_seed(&seed.0)
    }

    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub fn account(&self) -> AccountId {
        AccountId(self.signing.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.account())
    }
}

/// Verify many `(account, message, signature)` triples at once. Returns `true` only if all
/// are valid. ZIP-215 batch verification (`ed25519-consensus`), which accepts exactly what
/// [`AccountId::verify`] accepts item by item, split across threads; callers fall back to
/// per-item checks to find the culprit when this fails. The batch's random coefficients
/// come from a ChaCha stream seeded with blake3 of the whole chunk: deterministic (core
/// draws no ambient randomness) and unpredictable to whoever chose the signatures.
pub fn verify_batch(items: &[(AccountId, Hash, [u8; 64])]) -> bool {
    use rand_core::SeedableRng;
    use rayon::prelude::*;
    const CHUNK: usize = 256;
    items.par_chunks(CHUNK).all(|chunk| {
        let mut seed = blake3::Hasher::new();
        seed.update(b"agora/batch-verify/v1");
        let mut batch = ed25519_consensus::batch::Verifier::new();
        for (acc, msg, sig) in chunk {
            seed.update(&acc.0).update(&msg.0).update(sig);
            let key = ed25519_consensus::VerificationKeyBytes::from(acc.0);
            batch.queue((key, ed25519_consensus::Signature::from(*sig), &msg.0));
        }
        let rng = rand_chacha::ChaCha20Rng::from_seed(*seed.finalize().as_bytes());
        batch.verify(rng).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss58_round_trips_and_matches_substrate_vector() {
        // Substrate's well-known //Alice sr25519 public key and its prefix-42 address: the
        // SS58 scheme does not depend on the key type, so it pins our encoder to the standard.
        let alice = hex::decode("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
            .unwrap();
        let id = AccountId(alice.try_into().unwrap());
        assert_eq!(
            id.to_ss58(),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        assert_eq!(id.to_ss58().parse::<AccountId>().unwrap(), id);
        assert_eq!(id.to_hex().parse::<AccountId>().unwrap(), id);
    }

    #[test]
    fn bad_addresses_are_refused_with_the_reason() {
        let good = Keypair::dev("alice").account().to_ss58();
        let mut typo = good.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(typo.parse::<AccountId>(), Err(AddressError::BadChecksum));
        assert_eq!("hello".parse::<AccountId>(), Err(AddressError::Malformed));
        assert_eq!("0x1234".parse::<AccountId>(), Err(AddressError::Malformed));
        // Polkadot (prefix 0) address of the same key.
        let mut body = vec![0u8];
        body.extend_from_slice(&Keypair::dev("alice").account().0);
        let cs = ss58_checksum(&body);
        body.extend_from_slice(&cs);
        let polkadot = bs58::encode(body).into_string();
        assert_eq!(
            polkadot.parse::<AccountId>(),
            Err(AddressError::WrongPrefix(0))
        );
    }

    #[test]
    fn signatures_verify_singly_and_in_batches() {
        let k = Keypair::dev("bob");
        let msg = hash_with_domain(b"t", &[b"hello"]);
        let sig = k.sign(&msg.0);
        assert!(k.account().verify(&msg.0, &sig));
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!k.account().verify(&msg.0, &bad));
        let items: Vec<_> = (0..600u32)
            .map(|i| {
                let m = hash_with_domain(b"t", &[&i.to_le_bytes()]);
                (k.account(), m, k.sign(&m.0))
            })
            .collect();
        assert!(verify_batch(&items));
        let mut broken = items.clone();
        broken[599].2 = bad;
        assert!(!verify_batch(&broken));
    }

    /// A signature with a non-canonical encoding of the identity as R, by a small-order
    /// public key: ZIP-215 accepts it, and it must be accepted the same way alone and in a
    /// batch (dalek's batch and single checks disagree on such inputs).
    #[test]
    fn single_and_batch_checks_agree_on_small_order_keys() {
        // The identity point (y = 1) as the key, R = identity, s = 0: valid under ZIP-215
        // for any message, since [s]B = R + [k]A holds with every term the identity.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let key = AccountId(identity);
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&identity);
        for i in 0..3u8 {
            let m = hash_with_domain(b"t", &[&[i]]);
            let single = key.verify(&m.0, &sig);
            let batch = verify_batch(&[(key, m, sig)]);
            assert_eq!(single, batch, "message {i}");
            assert!(single, "ZIP-215 accepts the identity key and R");
        }
    }
}
