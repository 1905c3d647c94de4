//! Where warden keeps its state: `--data-dir D` (default `./.warden`, or
//! `WARDEN_DATA_DIR`), shared by every command that reads or writes it.

use anyhow::{Result, bail};
use std::path::PathBuf;
use warden_store::{DB_FILE, SqliteStore, StoreConfig};

/// The `--data-dir` option.
#[derive(clap::Args, Debug, Clone)]
pub struct DataDir {
    /// Directory holding the audit log (warden.db) and its key (audit.key).
    #[arg(
        long,
        env = "WARDEN_DATA_DIR",
        default_value = ".warden",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// The audit log's signing key, created (mode 0600) on first use if
    /// missing (default: audit.key in the data directory).
    #[arg(long, env = "WARDEN_AUDIT_KEY", value_name = "FILE")]
    pub audit_key: Option<PathBuf>,
}

impl DataDir {
    /// Opens the store for writing, creating the directory, database and log
    /// key on first use.
    pub fn open(&self) -> Result<SqliteStore> {
        Ok(SqliteStore::open(&self.data_dir, self.store_config())?)
    }

    /// The store's defaults, with the key file from `--audit-key`.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            key_file: self.audit_key.clone(),
            ..StoreConfig::default()
        }
    }

    /// Opens an existing store read-only (it may be in use by a writer).
    pub fn open_existing(&self) -> Result<SqliteStore> {
        if !self.data_dir.join(DB_FILE).is_file() {
            bail!(
                "no audit log in '{}' (record one with 'warden check --record', or pass --data-dir / set WARDEN_DATA_DIR)",
                self.data_dir.display()
            );
        }
        Ok(SqliteStore::open_read_only(&self.data_dir)?)
    }
}
