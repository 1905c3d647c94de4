//! warden's state behind one [`Store`] trait, and its SQLite implementation.
//!
//! The store holds the audit log: an append-only RFC 6962 Merkle log of
//! decision and outcome records (`warden-audit`) with signed checkpoints.
//! [`Store::append`] returns only when the record is durable on disk, so the
//! gate can return a verdict only after its record is safe. Concurrent
//! appends are batched into one transaction by a single writer thread
//! (group commit). [`verify`] re-derives everything from the stored bytes.
//! The store also keeps the hash of every perfect subtree of the log, so
//! [`Store::inclusion_proof`] and [`Store::consistency_proof`] read
//! `O(log n)` hashes; `verify` checks those hashes too rather than trust
//! them. [`entries_from`] walks the entries for export and `tail -f`.
//!
//! Beside the log, the same database keeps warden's other durable state:
//! agents, token revocations and keyed state values (approvals, the kill
//! switch, session labels, the nonces of signed requests). Each is changed
//! only by [`Store::append_with`] or
//! [`Store::append_with_all`], in the transaction of the audit entry that
//! records the change.
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
pub use sqlite::{DB_FILE, GATHER_FROM, KEY_FILE, MAX_BATCH, SqliteStore, StoreConfig};
pub use verify::{
    ConsistencyProof, InclusionProof, Problem, ProblemKind, VerifyReport, consistency_proof,
    inclusion_proof, verify,
};

use std::ops::Range;

use warden_audit::{Hash, LogVerifier, Record, Subtree};

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

/// One stored perfect-subtree hash, as read back (see
/// [`Store::stored_subtrees`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSubtree {
    /// The last entry the subtree covers: the one whose append stored it.
    pub last_seq: u64,
    /// The subtree covers `2^height` entries, ending at `last_seq`.
    pub height: u32,
    /// The stored hash.
    pub hash: Hash,
}

impl StoredSubtree {
    /// The subtree this row claims to be, if `(last_seq, height)` names one.
    pub fn subtree(&self) -> Option<Subtree> {
        Subtree::ending_at(self.last_seq, self.height)
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

/// What [`Store::append_then`] calls with the result of the append.
pub type AppendDone = Box<dyn FnOnce(Result<Appended, StoreError>) + Send>;

/// Everything stateful warden keeps. One implementation per backend.
///
/// All methods may be called from many threads at once.
pub trait Store: Send + Sync {
    /// Append a record at the next sequence number and return once it is
    /// durable (committed and synced). Concurrent calls are batched.
    fn append(&self, record: Record) -> Result<Appended, StoreError> {
        // An empty Vec does not allocate.
        self.append_with_all(record, Vec::new())
    }

    /// [`Store::append`] an audit record together with the state change it
    /// records, in one transaction: both are durable, or neither is.
    fn append_with(&self, record: Record, change: StateChange) -> Result<Appended, StoreError> {
        self.append_with_all(record, vec![change])
    }

    /// [`Store::append`] an audit record together with the state changes it
    /// records, applied in order in one transaction: the record and every
    /// change are durable, or none is. A change over the limits
    /// ([`MAX_STATE_KEY_BYTES`], [`MAX_STATE_VALUE_BYTES`]) fails the call
    /// with [`StoreError::TooLarge`] and nothing is appended.
    fn append_with_all(
        &self,
        record: Record,
        changes: Vec<StateChange>,
    ) -> Result<Appended, StoreError>;

    /// [`Store::append_with_all`] without waiting: returns at once, and
    /// `done` receives the result once the record and the changes are
    /// durable (or failed). It is called exactly once, possibly on another
    /// thread (the store's writer), so it must be quick and must not call
    /// the store. For async callers, which must not block a thread on the
    /// sync. This default appends synchronously and then calls `done`.
    fn append_then(&self, record: Record, changes: Vec<StateChange>, done: AppendDone) {
        done(self.append_with_all(record, changes));
    }

    /// [`Store::append_then`] for a record that nobody waits on before
    /// acting, such as the outcome of a tool call: it is held back and
    /// committed in the same transaction as the next append (or checkpoint,
    /// probe or close), so it costs no sync of its own; if nothing else comes
    /// within [`StoreConfig::hold_at_most`](crate::StoreConfig::hold_at_most)
    /// it is committed alone. `done` is called once it is durable, as for
    /// [`Store::append_then`]. Never use it for a decision: a decision must
    /// be durable before its verdict is returned. This default is
    /// [`Store::append_then`].
    fn append_held(&self, record: Record, changes: Vec<StateChange>, done: AppendDone) {
        self.append_then(record, changes, done);
    }

    /// Check that an append could be committed now: for a `/readyz` probe.
    /// [`SqliteStore`] commits a small write through its writer thread and
    /// checks that its database file is still the one it opened; a
    /// read-only store answers [`StoreError::ReadOnly`]. This default
    /// answers `Ok`.
    fn check_writable(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// As [`Store::check_writable`], but the write needs `bytes` of new
    /// room, as an append does (a small write can succeed on a full disk
    /// by reusing free space): for telling that appends could succeed
    /// again after one failed. Nothing of it stays in the log. This
    /// default calls [`Store::check_writable`].
    fn check_room(&self, bytes: usize) -> Result<(), StoreError> {
        let _ = bytes;
        self.check_writable()
    }

    /// The agent with this DID, if one was stored.
    fn agent(&self, did: &str) -> Result<Option<StoredAgent>, StoreError>;

    /// Every stored agent, by DID.
    fn agents(&self) -> Result<Vec<StoredAgent>, StoreError>;

    /// Every revoked token, in the order revoked.
    fn revocations(&self) -> Result<Vec<Revocation>, StoreError>;

    /// The state value at `key` in `space`, if one is stored. A space or key
    /// longer than [`MAX_STATE_KEY_BYTES`] is refused with
    /// [`StoreError::TooLarge`].
    fn state(&self, space: &str, key: &str) -> Result<Option<StoredState>, StoreError>;

    /// Every state value in `space`, ordered by key (bytewise).
    fn states(&self, space: &str) -> Result<Vec<StoredState>, StoreError>;

    /// Up to `limit` entries with `seq >= from_seq`, in sequence order.
    fn entries(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError>;

    /// Up to `limit` stored leaf hashes with `seq >= from_seq`, in order,
    /// each with its sequence number.
    fn leaf_hashes(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, Hash)>, StoreError>;

    /// The log's size: one past the highest stored sequence number.
    fn log_size(&self) -> Result<u64, StoreError>;

    /// The hashes of these perfect subtrees, in the same order (height 0
    /// is a stored leaf hash). Every subtree must lie inside the log.
    ///
    /// Proofs are built from these. A backend that keeps the hash of every
    /// perfect subtree (as [`SqliteStore`] does) answers with one lookup
    /// each; this default derives each from its leaf hashes instead, which
    /// reads `O(size)` rows.
    fn subtree_hashes(&self, subtrees: &[Subtree]) -> Result<Vec<Hash>, StoreError> {
        verify::derive_subtree_hashes(self, subtrees)
    }

    /// The stored subtree hashes (height >= 1) whose last entry is in
    /// `last_seqs`, ordered by last entry, then height; `None` when this
    /// store keeps none. [`verify`] compares them with what it derives
    /// from the entries.
    fn stored_subtrees(
        &self,
        last_seqs: Range<u64>,
    ) -> Result<Option<Vec<StoredSubtree>>, StoreError> {
        let _ = last_seqs;
        Ok(None)
    }

    /// The inclusion proof of entry `seq` in the tree of `size` entries
    /// (e.g. the latest checkpoint's size), from `O(log size)` subtree
    /// hashes. Same as [`inclusion_proof`].
    fn inclusion_proof(&self, seq: u64, size: u64) -> Result<InclusionProof, StoreError> {
        verify::prove_inclusion(self, seq, size)
    }

    /// The consistency proof that the tree of `size1` entries is a prefix
    /// of the tree of `size2` entries, with both roots, from `O(log size2)`
    /// subtree hashes. [`consistency_proof`] returns only its hashes.
    fn consistency_proof(&self, size1: u64, size2: u64) -> Result<ConsistencyProof, StoreError> {
        verify::prove_consistency(self, size1, size2)
    }

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

/// Longest state space or key, in bytes.
pub const MAX_STATE_KEY_BYTES: usize = 512;
/// Longest state value, in bytes (1 MiB).
pub const MAX_STATE_VALUE_BYTES: usize = 1 << 20;

/// A change to warden's state, written by [`Store::append_with`] (or
/// [`Store::append_with_all`]) in the transaction of the audit entry that
/// records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// Store (or replace) the agent `did`; `record` is its JSON record, which
    /// the store keeps as given.
    PutAgent {
        /// The agent's DID.
        did: String,
        /// The agent record as JSON text.
        record: String,
    },
    /// Revoke a capability token by revocation id. Permanent; revoking again
    /// keeps the first revocation.
    Revoke {
        /// The revocation id, hex.
        id: String,
        /// Why, as given.
        reason: String,
    },
    /// Store (or replace) `value` at `key` in `space`: durable server state
    /// such as approvals or the kill switch. At most
    /// [`MAX_STATE_KEY_BYTES`] for `space` and `key`, and
    /// [`MAX_STATE_VALUE_BYTES`] for `value`.
    PutState {
        /// Which kind of state, e.g. `approvals`.
        space: String,
        /// The key inside the space.
        key: String,
        /// The value, as given (e.g. JSON text).
        value: String,
    },
    /// Remove `key` from `space`. Removing a key that is not stored is not
    /// an error (the audit entry is still appended).
    DeleteState {
        /// Which kind of state.
        space: String,
        /// The key inside the space.
        key: String,
    },
    /// Remove every key in `space` that sorts before `key` (bytewise, the
    /// order of [`Store::states`]), in one step however many there are: for
    /// state keyed so that it expires in key order, such as the nonces of
    /// signed requests (keyed by timestamp first). Removing none is not an
    /// error.
    DeleteStatesBefore {
        /// Which kind of state.
        space: String,
        /// Keys below this one are removed; this one is kept.
        key: String,
    },
}

impl StateChange {
    /// Refuse a change over the state limits before anything is written.
    pub(crate) fn check_limits(&self) -> Result<(), StoreError> {
        match self {
            Self::PutState { space, key, value } => {
                check_state_key(space, key)?;
                check_len("state value", value, MAX_STATE_VALUE_BYTES)
            }
            Self::DeleteState { space, key } | Self::DeleteStatesBefore { space, key } => {
                check_state_key(space, key)
            }
            Self::PutAgent { .. } | Self::Revoke { .. } => Ok(()),
        }
    }
}

/// Refuse a state space or key over [`MAX_STATE_KEY_BYTES`].
pub(crate) fn check_state_key(space: &str, key: &str) -> Result<(), StoreError> {
    check_len("state space", space, MAX_STATE_KEY_BYTES)?;
    check_len("state key", key, MAX_STATE_KEY_BYTES)
}

fn check_len(what: &'static str, text: &str, limit: usize) -> Result<(), StoreError> {
    if text.len() > limit {
        return Err(StoreError::TooLarge {
            what,
            len: text.len(),
            limit,
        });
    }
    Ok(())
}

/// A state value as stored (see [`StateChange::PutState`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    /// Which kind of state.
    pub space: String,
    /// The key inside the space.
    pub key: String,
    /// The value, as written.
    pub value: String,
    /// The audit entry that wrote this value.
    pub audit_seq: u64,
}

/// An agent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAgent {
    /// The agent's DID.
    pub did: String,
    /// Its record, JSON text as written.
    pub record: String,
    /// The audit entry that wrote this version.
    pub audit_seq: u64,
}

/// A revoked token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The revocation id, hex.
    pub id: String,
    /// Why it was revoked.
    pub reason: String,
    /// The audit entry that recorded it.
    pub audit_seq: u64,
}

/// Entries read per query by [`entries_from`].
const ENTRY_PAGE: usize = 1024;

/// The entries from `from_seq` on, in order, read a page at a time: what
/// `export --from SEQ` and `tail -f` walk. Memory stays at one page however
/// long the log is.
///
/// The iterator returns `None` at the end of the log as it is then; calling
/// `next` again later yields the entries appended since, so following a
/// growing log is a loop around it with a pause.
pub fn entries_from(store: &dyn Store, from_seq: u64) -> Entries<'_> {
    Entries {
        store,
        next_seq: from_seq,
        page: Vec::new().into_iter(),
    }
}

/// Iterator returned by [`entries_from`].
pub struct Entries<'a> {
    store: &'a dyn Store,
    next_seq: u64,
    page: std::vec::IntoIter<StoredEntry>,
}

impl Entries<'_> {
    /// The sequence number the next entry is read from: one past the last
    /// entry returned.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

impl std::fmt::Debug for Entries<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries")
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<StoredEntry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.len() == 0 {
            match self.store.entries(self.next_seq, ENTRY_PAGE) {
                Ok(page) => self.page = page.into_iter(),
                // The position is kept: calling again retries.
                Err(e) => return Some(Err(e)),
            }
        }
        let entry = self.page.next()?;
        self.next_seq = entry.seq.saturating_add(1);
        Some(Ok(entry))
    }
}
