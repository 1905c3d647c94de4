//! warden's state behind one [`Store`] trait, and its SQLite implementation.
//!
//! Today the store holds the audit log: an append-only RFC 6962 Merkle log of
//! decision and outcome records (`warden-audit`) with signed checkpoints.
//! [`Store::append`] returns only when the record is durable on disk, so the
//! gate can return a verdict only after its record is safe. Concurrent
//! appends are batched into one transaction by a single writer thread
//! (group commit). [`verify`] re-derives everything from the stored bytes.
//!
//! The trait is synchronous (the gate is) and says nothing about SQL, so a
//! PostgreSQL implementation can follow without changing callers.
//!
//! # Example
//!
//! ```
//! use warden_audit::{Outcome, OutcomeRecord, Record};
//! use warden_store::{SqliteStore, Store, StoreConfig, verify};
//!
//! let dir = tempfile::tempdir()?;
//! let store = SqliteStore::open(dir.path(), StoreConfig::new("example.com/warden"))?;
//! let appended = store.append(Record::Outcome(OutcomeRecord {
//!     time_unix_nanos: 1_700_000_000_000_000_000,
//!     decision_seq: 0,
//!     outcome: Outcome::Unknown,
//!     result_hash: None,
//!     error: None,
//! }))?;
//! assert_eq!(appended.seq, 0);
//! store.checkpoint_now()?;
//!
//! let report = verify(&store, &store.verifier(), None)?;
//! assert!(report.problem.is_none());
//! assert_eq!(report.entries, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod error;
mod keyfile;
mod sqlite;
mod verify;

pub use error::StoreError;
pub use sqlite::{DB_FILE, KEY_FILE, MAX_BATCH, SqliteStore, StoreConfig};
pub use verify::{
    InclusionProof, Problem, ProblemKind, VerifyReport, consistency_proof, inclusion_proof, verify,
};

use warden_audit::{Hash, LogVerifier, Record};

/// What [`Store::append`] returns once the record is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The entry's sequence number (its leaf index).
    pub seq: u64,
    /// Its RFC 6962 leaf hash.
    pub leaf_hash: Hash,
}

/// One stored log entry, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Sequence number, as stored alongside the data.
    pub seq: u64,
    /// The leaf hash stored when the entry was appended.
    pub leaf_hash: Hash,
    /// The canonical leaf data (`warden_audit::Entry::encode`).
    pub data: Vec<u8>,
}

impl StoredEntry {
    /// Decode the stored record (for export and display; [`verify`] also
    /// checks it against its position and leaf hash).
    pub fn entry(&self) -> Result<warden_audit::Entry, warden_audit::DecodeError> {
        warden_audit::Entry::decode(&self.data)
    }

    /// The stored leaf hash as lowercase hex.
    pub fn leaf_hash_hex(&self) -> String {
        hex::encode(self.leaf_hash)
    }
}

/// One stored signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size the checkpoint commits to.
    pub size: u64,
    /// Root hash it commits to.
    pub root: Hash,
    /// The signed note (C2SP checkpoint), ready to print.
    pub note: String,
    /// When it was made, in nanoseconds since the Unix epoch.
    pub created_unix_nanos: u64,
}

/// Everything stateful warden keeps. One implementation per backend.
///
/// All methods may be called from many threads at once.
pub trait Store: Send + Sync {
    /// Append a record at the next sequence number and return once it is
    /// durable (committed and synced). Concurrent calls are batched.
    fn append(&self, record: Record) -> Result<Appended, StoreError>;

    /// Up to `limit` entries with `seq >= from_seq`, in sequence order.
    fn entries(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError>;

    /// Up to `limit` stored leaf hashes with `seq >= from_seq`, in order,
    /// each with its sequence number.
    fn leaf_hashes(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, Hash)>, StoreError>;

    /// The log's size: one past the highest stored sequence number.
    fn log_size(&self) -> Result<u64, StoreError>;

    /// All signed checkpoints, by increasing tree size.
    fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError>;

    /// The checkpoint with the largest tree size, if any.
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Sign and store a checkpoint of the current log now, unless the
    /// latest checkpoint already covers every entry. Returns the latest
    /// checkpoint either way (`None` for an empty log).
    fn checkpoint_now(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// The log's public key (what `warden audit key` prints).
    fn verifier(&self) -> LogVerifier;

    /// Write a final checkpoint and stop writing. Later appends fail with
    /// [`StoreError::Closed`]. Calling it twice is harmless.
    fn close(&self) -> Result<(), StoreError>;
}
