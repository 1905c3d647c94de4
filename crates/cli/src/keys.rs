//! Private key files in the data directory: `issuer.key` (the organisation's
//! token issuer) and `keys/<multibase>.key` (one per agent, named by the
//! `z6Mk…` part of its DID). PKCS#8 PEM, mode 0600 in a 0700 directory,
//! created once and never overwritten. Keys are never printed and never
//! written to the database.

use anyhow::{Context, Result, anyhow, bail};
use rand::SeedableRng;
use rand::rngs::{StdRng, SysRng};
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use warden_identity::{Did, IdentityKey, MAX_KEY_TEXT_BYTES};

/// The directory of agent keys, inside the data directory.
pub const KEYS_DIR: &str = "keys";
/// The organisation's issuer key, inside the data directory.
pub const ISSUER_KEY_FILE: &str = "issuer.key";

/// A cryptographically secure RNG seeded from the operating system.
pub fn os_rng() -> Result<StdRng> {
    StdRng::try_from_rng(&mut SysRng)
        .map_err(|e| anyhow!("no system randomness: {e} (the OS random source must work)"))
}

/// Where the key of agent `did` lives.
pub fn agent_key_path(data_dir: &Path, did: &Did) -> PathBuf {
    data_dir
        .join(KEYS_DIR)
        .join(format!("{}.key", did.multibase_key()))
}

/// Where the issuer key lives.
pub fn issuer_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ISSUER_KEY_FILE)
}

/// Reads a private key file (hex seed or PKCS#8 PEM), or stdin for `-`.
/// A file that other users can read is refused: its key may be known.
pub fn read_key(path: &Path) -> Result<IdentityKey> {
    let limit = MAX_KEY_TEXT_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("cannot read the key from stdin")?;
    } else {
        let shown = path.display();
        let meta = fs::metadata(path).with_context(|| format!("cannot read key file '{shown}'"))?;
        if !meta.is_file() {
            bail!("key file '{shown}' is not a regular file");
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "key file '{shown}' has mode {mode:o}, readable by other users; hint: chmod 600 '{shown}' (and consider the key exposed if others could read it)"
            );
        }
        fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read key file '{shown}'"))?;
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        anyhow!(
            "key '{}' is not text (hint: expected a 64-character hex seed or a PKCS#8 PEM)",
            path.display()
        )
    })?;
    IdentityKey::import(text).with_context(|| format!("key '{}'", path.display()))
}

/// Writes `key` to a new file at `path` (mode 0600), creating its directory
/// (mode 0700) when missing. An existing file is never overwritten.
pub fn write_new_key(path: &Path, key: &IdentityKey) -> Result<()> {
    let shown = path.display();
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("key path '{shown}' has no directory"))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create key directory '{}'", dir.display()))?;
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => bail!(
            "key file '{shown}' already exists; refusing to overwrite a private key (hint: this key is registered already, or move the file away)"
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot create key file '{shown}'")),
    };
    let pem = key.to_pkcs8_pem();
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write key file '{shown}' (check disk space)"))?;
    // Make the new directory entry durable too.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync key directory '{}'", dir.display()))?;
    Ok(())
}

/// The organisation's issuer key, created (mode 0600) on first use.
/// Returns the key and whether it was created now.
pub fn issuer_key(data_dir: &Path) -> Result<(IdentityKey, bool)> {
    let path = issuer_key_path(data_dir);
    match fs::symlink_metadata(&path) {
        Ok(_) => Ok((read_key(&path)?, false)),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let key = IdentityKey::generate(&mut os_rng()?);
            match write_new_key(&path, &key) {
                Ok(()) => Ok((key, true)),
                // Another process created it first: use that one.
                Err(_) if path.is_file() => Ok((read_key(&path)?, false)),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot read '{}'", path.display())),
    }
}

/// The issuer's DID if the issuer key exists (nothing is created).
pub fn existing_issuer(data_dir: &Path) -> Result<Option<Did>> {
    let path = issuer_key_path(data_dir);
    if fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    Ok(Some(read_key(&path)?.did().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_key_files_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let key = IdentityKey::from_seed(&[3u8; 32]);
        let path = agent_key_path(dir.path(), key.did());
        write_new_key(&path, &key).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode & 0o077, 0);
        assert_eq!(read_key(&path).unwrap().did(), key.did());
        let other = IdentityKey::from_seed(&[4u8; 32]);
        let err = write_new_key(&path, &other).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(read_key(&path).unwrap().did(), key.did());
    }

    #[test]
    fn key_files_readable_by_others_are_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        fs::write(
            &path,
            IdentityKey::from_seed(&[5u8; 32]).to_pkcs8_pem().as_str(),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = format!("{:#}", read_key(&path).unwrap_err());
        assert!(
            err.contains("mode 644") && err.contains("chmod 600"),
            "{err}"
        );
    }
}
