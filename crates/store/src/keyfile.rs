//! The log's Ed25519 key, kept in the data directory unless the
//! store's configuration names another file.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use warden_audit::LogSigner;

use crate::StoreError;

/// Largest key file read, in bytes (a key string is under 200).
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Load the signer key from `path`, or create it (mode 0600) when absent.
/// A new key is named `origin`, or `warden/<8 random hex>` when none is given.
pub(crate) fn load_or_create(path: &Path, origin: Option<&str>) -> Result<LogSigner, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(StoreError::KeyPermissions {
                    path: path.into(),
                    mode,
                });
            }
            if !meta.is_file() || meta.len() > MAX_KEY_FILE_BYTES {
                return Err(StoreError::io(
                    path,
                    "not a regular key file",
                    "remove it; a new key is created on next open (old checkpoints stay verifiable with the old public key)",
                ));
            }
            let text = fs::read_to_string(path).map_err(|e| {
                StoreError::io(path, e, "check that this user can read the key file")
            })?;
            LogSigner::from_key_string(text.trim_end()).map_err(|source| StoreError::Key {
                path: path.into(),
                source,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path, origin),
        Err(e) => Err(StoreError::io(
            path,
            e,
            "check the data directory's permissions",
        )),
    }
}

fn create(path: &Path, origin: Option<&str>) -> Result<LogSigner, StoreError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| {
        StoreError::io(
            path,
            format!("no system randomness: {e}"),
            "the OS random source must work to create a key",
        )
    })?;
    let name = match origin {
        Some(o) => o.to_string(),
        None => {
            let mut tag = [0u8; 4];
            getrandom::fill(&mut tag).map_err(|e| {
                StoreError::io(
                    path,
                    format!("no system randomness: {e}"),
                    "the OS random source must work to create a key",
                )
            })?;
            format!("warden/{}", hex::encode(tag))
        }
    };
    let signer = LogSigner::from_seed(&name, seed).map_err(|source| StoreError::Key {
        path: path.into(),
        source,
    })?;
    // create_new: never overwrite a key another process just wrote.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            StoreError::io(
                path,
                e,
                "check that the key file's directory exists and is writable",
            )
        })?;
    let write = |file: &mut fs::File| -> std::io::Result<()> {
        file.write_all(signer.to_key_string().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    };
    write(&mut file).map_err(|e| StoreError::io(path, e, "check disk space"))?;
    // Make the new directory entry durable too. A bare file name's parent
    // is "", which is the current directory.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e, "check the key file's directory"))?;
    Ok(signer)
}
