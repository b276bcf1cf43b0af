//! Encrypted key files: argon2id (password -> 32-byte key) + XChaCha20-Poly1305.
//!
//! ```json
//! {"version":1,"address":"5...","kdf":"argon2id","m_cost_kib":19456,"t_cost":2,"p_cost":1,
//!  "salt":"<16 bytes hex>","cipher":"xchacha20poly1305","nonce":"<24 bytes hex>","ciphertext":"<hex>"}
//! ```
//! The plaintext is JSON `{"seed":"<32 bytes hex>","mnemonic":"..."|null}`. The address is
//! bound into the AEAD as associated data, so swapping it in the file fails decryption.

use agora_core::{AccountId, Keypair};
use anyhow::{bail, Context};
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// argon2id cost: 19 MiB, 2 passes, 1 lane (OWASP's recommended minimum).
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub version: u32,
    pub address: AccountId,
    pub kdf: String,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub salt: String,
    pub cipher: String,
    pub nonce: String,
    pub ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Plain {
    seed: String,
    mnemonic: Option<String>,
}

fn derive(password: &str, salt: &[u8], m: u32, t: u32, p: u32) -> anyhow::Result<[u8; 32]> {
    let params = Params::new(m, t, p, Some(32))
        .map_err(|e| anyhow::anyhow!("bad argon2 parameters: {e}"))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), salt, &mut key)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(key)
}

pub fn encrypt(key: &Keypair, mnemonic: Option<&str>, password: &str) -> anyhow::Result<KeyFile> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut k = derive(password, &salt, M_COST_KIB, T_COST, P_COST)?;
    let cipher = XChaCha20Poly1305::new((&k).into());
    k.zeroize();
    let mut plain = serde_json::to_vec(&Plain {
        seed: hex::encode(key.seed()),
        mnemonic: mnemonic.map(str::to_string),
    })?;
    let address = key.account();
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &address.0,
            },
        )
        .map_err(|_| anyhow::anyhow!("encryption failed"))?;
    plain.zeroize();
    Ok(KeyFile {
        version: 1,
        address,
        kdf: "argon2id".into(),
        m_cost_kib: M_COST_KIB,
        t_cost: T_COST,
        p_cost: P_COST,
        salt: hex::encode(salt),
        cipher: "xchacha20poly1305".into(),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ct),
    })
}

pub fn decrypt(file: &KeyFile, password: &str) -> anyhow::Result<Keypair> {
    if file.version != 1 || file.kdf != "argon2id" || file.cipher != "xchacha20poly1305" {
        bail!(
            "unsupported key file (version {}, {}, {})",
            file.version,
            file.kdf,
            file.cipher
        );
    }
    let salt = hex::decode(&file.salt).context("salt is not hex")?;
    let nonce = hex::decode(&file.nonce).context("nonce is not hex")?;
    if nonce.len() != 24 {
        bail!("nonce must be 24 bytes");
    }
    let ct = hex::decode(&file.ciphertext).context("ciphertext is not hex")?;
    let mut k = derive(password, &salt, file.m_cost_kib, file.t_cost, file.p_cost)?;
    let cipher = XChaCha20Poly1305::new((&k).into());
    k.zeroize();
    let mut plain = cipher
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ct,
                aad: &file.address.0,
            },
        )
        .map_err(|_| anyhow::anyhow!("wrong password (or the key file was modified)"))?;
    let parsed: Plain = serde_json::from_slice(&plain).context("decrypted key is malformed")?;
    plain.zeroize();
    let mut seed = hex::decode(&parsed.seed).context("seed is not hex")?;
    let arr: [u8; 32] = seed
        .as_slice()
        .try_into()
        .context("seed must be 32 bytes")?;
    seed.zeroize();
    let key = Keypair::from_seed(&arr);
    if key.account() != file.address {
        bail!("key file address does not match its key");
    }
    Ok(key)
}
