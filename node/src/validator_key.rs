//! Validator key files: the plain ed25519 seed a validator signs votes with (and whose
//! libp2p identity it uses), as `agora testnet init` writes them.
//!
//! ```json
//! {"kind":"agora-validator-key","version":1,"account":"5F...","seed":"0x<32 bytes hex>"}
//! ```
//! The file must be private (mode 0600 or stricter): a node refuses a key that group or
//! others can read, as ssh does. Encrypted wallets are for coldkeys; a validator key has
//! to be usable by a node that restarts unattended.

use std::path::Path;

use agora_core::{AccountId, Keypair};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

const KIND: &str = "agora-validator-key";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    kind: String,
    version: u32,
    account: AccountId,
    seed: String,
}

/// Write `key` to `path` with mode 0600 (refusing to overwrite).
pub fn write(path: &Path, key: &Keypair) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let file = File {
        kind: KIND.into(),
        version: 1,
        account: key.account(),
        seed: format!("0x{}", hex::encode(key.seed())),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(serde_json::to_string_pretty(&file)?.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}

/// Read a validator key file, checking its permissions and that the seed gives the
/// account it names.
pub fn read(path: &Path) -> anyhow::Result<Keypair> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("reading validator key {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "validator key {} is readable by others (mode {mode:o}): run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading validator key {}", path.display()))?;
    let file: File = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a validator key file", path.display()))?;
    if file.kind != KIND || file.version != 1 {
        bail!("{} is not a version 1 {KIND} file", path.display());
    }
    let hex_seed = file.seed.strip_prefix("0x").unwrap_or(&file.seed);
    let seed: [u8; 32] = hex::decode(hex_seed)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{}: `seed` must be 32 bytes of hex", path.display()))?;
    let key = Keypair::from_seed(&seed);
    if key.account() != file.account {
        bail!(
            "{}: the seed belongs to {}, not to the account {} the file names",
            path.display(),
            key.account(),
            file.account
        );
    }
    Ok(key)
}

/// This node's network key (a full node's libp2p identity): `<data dir>/node-key`,
/// created on first start.
pub fn node_key(data_dir: &Path) -> anyhow::Result<Keypair> {
    let path = data_dir.join("node-key");
    if !path.exists() {
        let key = Keypair::generate(&mut rand::rngs::OsRng);
        write(&path, &key)?;
        return Ok(key);
    }
    read(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_loose_or_forged_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.key");
        let key = Keypair::dev("v0");
        write(&path, &key).unwrap();
        assert_eq!(read(&path).unwrap().account(), key.account());
        assert!(write(&path, &key).is_err(), "never overwrites");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let other = Keypair::dev("v1").account().to_string();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(&key.account().to_string(), &other);
        std::fs::write(&path, text).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("not to the account"), "{err}");
        let nk = node_key(dir.path()).unwrap();
        assert_eq!(
            node_key(dir.path()).unwrap().account(),
            nk.account(),
            "stable across starts"
        );
    }
}
