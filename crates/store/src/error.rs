use std::path::PathBuf;

use warden_audit::{EncodeError, KeyError, ProofError};

/// Why a store operation failed.
///
/// Cloneable: one failed group commit answers every caller in the batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed an operation.
    #[error("database error while {doing}: {message}; hint: {hint}")]
    Database {
        /// What the store was doing.
        doing: String,
        /// The backend's message.
        message: String,
        /// What to try.
        hint: &'static str,
    },
    /// A file or directory could not be read or written.
    #[error("{path}: {message}; hint: {hint}", path = path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The system's message.
        message: String,
        /// What to try.
        hint: &'static str,
    },
    /// Another process is writing to this data directory.
    #[error("{path} is locked by another warden process; hint: stop it, or open the store read-only", path = path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The log key file is readable by other users.
    #[error("{path} has mode {mode:o}, readable by others; hint: chmod 600 {path}", path = path.display())]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The log key file does not hold a valid key.
    #[error("{path}: {source}", path = path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        source: KeyError,
    },
    /// The configured origin is not the one the log was created with.
    #[error("the log in {path} has origin {stored:?}, not {configured:?}; hint: a log keeps its origin for life: use {stored:?} or another data directory", path = path.display())]
    OriginMismatch {
        /// The data directory.
        path: PathBuf,
        /// The origin asked for.
        configured: String,
        /// The origin of the existing log.
        stored: String,
    },
    /// The log exists but its key file does not: a new key could not sign
    /// for it, so none is made.
    #[error("the audit log in {log} exists but its signing key {key} does not; hint: point at the key file the log was created with (warden serve --audit-key, WARDEN_AUDIT_KEY) or restore it from a backup", log = log.display(), key = key.display())]
    KeyMissing {
        /// The data directory.
        log: PathBuf,
        /// The key file looked for.
        key: PathBuf,
    },
    /// The key file holds another key than the one the log was created with.
    #[error("{path} holds key {found}, but this log was created with {stored}; hint: restore the original key file (a new key would make old checkpoints unverifiable with it)", path = path.display())]
    KeyMismatch {
        /// The key file.
        path: PathBuf,
        /// The verifier key recorded in the database.
        stored: String,
        /// The verifier key of the key file.
        found: String,
    },
    /// A record could not be encoded (too large, too many intents).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A proof could not be produced for these sizes.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// A stored value is not what the schema promises.
    #[error("stored {what} at seq {seq} is malformed: {detail}; hint: run `warden audit verify`")]
    Malformed {
        /// Which value.
        what: &'static str,
        /// Where.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// A state space, key or value is over its limit.
    #[error(
        "{what} is {len} bytes, more than the limit of {limit}; hint: use a shorter {what}, or keep large data elsewhere and store a reference to it"
    )]
    TooLarge {
        /// Which value.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The database file was deleted or replaced while the store had it
    /// open; the store no longer acknowledges records.
    #[error("the database file {path} was removed or replaced while open; refusing to acknowledge records; hint: stop warden; restore the data directory if it was moved, then start again (records acknowledged earlier are in the removed file, if it is still somewhere)", path = path.display())]
    FileReplaced {
        /// The database file's path.
        path: PathBuf,
    },
    /// The store's writer thread panicked (a bug). Appends that did not
    /// return `Ok` may or may not be in the log.
    #[error(
        "the store's writer thread panicked; appends that did not succeed may or may not be in the log; hint: this is a bug in warden, please report it; restart to reopen the store"
    )]
    WriterPanicked,
    /// The store was opened read-only.
    #[error("the store is open read-only; hint: open it for writing (only one process may write)")]
    ReadOnly,
    /// The store was closed, or its writer stopped.
    #[error("the store is closed; hint: open it again")]
    Closed,
}

impl StoreError {
    pub(crate) fn db(doing: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Self::Database {
            doing: doing.into(),
            message: err.to_string(),
            hint: "check disk space and permissions of the data directory, then retry",
        }
    }

    pub(crate) fn io(
        path: impl Into<PathBuf>,
        err: impl std::fmt::Display,
        hint: &'static str,
    ) -> Self {
        Self::Io {
            path: path.into(),
            message: err.to_string(),
            hint,
        }
    }
}
