//! The SQLite store: one file in the data directory, one writer thread.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::ops::Range;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use warden_audit::{
    Checkpoint, CompactRange, Entry, Hash, LogSigner, LogVerifier, Record, Subtree, leaf_hash,
};

use crate::{
    AppendDone, Appended, Revocation, StateChange, Store, StoreError, StoredAgent,
    StoredCheckpoint, StoredEntry, StoredState, StoredSubtree, check_state_key, keyfile,
    verify::derive_subtree_hashes,
};

/// The database file inside the data directory.
pub const DB_FILE: &str = "warden.db";
/// The log's signing key inside the data directory (mode 0600).
pub const KEY_FILE: &str = "audit.key";
/// Held (flock) by the one process that writes.
const LOCK_FILE: &str = "warden.lock";

/// Most appends committed in one transaction.
pub const MAX_BATCH: usize = 4096;

/// Schema version, kept in `PRAGMA user_version`. Version 1 had no
/// `audit_subtrees`; opening it for writing adds and fills the table.
/// Version 2 had no `agents` and `revocations`, and version 3 no `state`;
/// opening them for writing adds those tables (empty).
const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_entries (
    seq       INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL,
    data      BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    size               INTEGER PRIMARY KEY,
    root               BLOB NOT NULL,
    note               TEXT NOT NULL,
    peaks              BLOB NOT NULL,
    created_unix_nanos INTEGER NOT NULL
);
-- The hash of every perfect subtree of height >= 1: the 2^height entries
-- ending at last_seq, with id = last_seq * 64 + height (an integer key is
-- the fastest lookup, and rows sort by the entry that completed them).
-- Written in the transaction that appends last_seq. Derived data: proofs
-- read O(log n) rows of it; verify recomputes every one.
CREATE TABLE IF NOT EXISTS audit_subtrees (
    id   INTEGER PRIMARY KEY,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Agents, each as the identity layer's JSON record. Written only together
-- with the audit entry (audit_seq) that records the change.
CREATE TABLE IF NOT EXISTS agents (
    did       TEXT PRIMARY KEY,
    record    TEXT NOT NULL,
    audit_seq INTEGER NOT NULL
);
-- Revoked capability tokens, by revocation id (hex). Permanent.
CREATE TABLE IF NOT EXISTS revocations (
    id        TEXT PRIMARY KEY,
    reason    TEXT NOT NULL,
    audit_seq INTEGER NOT NULL
);
-- Other durable state (approvals, the kill switch), by space and key.
-- Written only together with the audit entry (audit_seq) that records it.
CREATE TABLE IF NOT EXISTS state (
    space     TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    audit_seq INTEGER NOT NULL,
    PRIMARY KEY (space, key)
);
";

/// Every state value of a space, in key order.
const STATES_SQL: &str =
    "SELECT space, key, value, audit_seq FROM state WHERE space = ?1 ORDER BY key";

/// How a [`SqliteStore`] is opened.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The log's origin (and key name). `None`: take it from the existing
    /// key, or make up `warden/<8 hex>` for a new log.
    pub origin: Option<String>,
    /// Sign a checkpoint whenever the log size reaches a multiple of this.
    /// 0 disables size-based checkpoints.
    pub checkpoint_every_entries: u64,
    /// Sign a checkpoint when entries have waited this long without one.
    /// `None` disables time-based checkpoints.
    pub checkpoint_interval: Option<Duration>,
    /// Most pages (4 KiB each) the database may grow to, applied with
    /// `PRAGMA max_page_count` to the writer's connection once the schema
    /// is in place: a quota, and a way for tests to fill the "disk". An
    /// append that would grow the database past it fails with "database
    /// or disk is full", as on a full disk; earlier entries stay intact.
    /// It cannot be lowered below the database's current size. `None`:
    /// SQLite's default (no practical limit).
    pub max_page_count: Option<u32>,
    /// Longest a record queued with [`Store::append_held`] waits for another
    /// append to share its transaction before it is committed alone.
    pub hold_at_most: Duration,
    /// Group commit under load: when the previous commit carried at least
    /// [`GATHER_FROM`] appends, the next one starts no sooner than this
    /// after the previous one started, taking every append that came
    /// meanwhile, so that one sync covers more records. It adds at most
    /// this much to an append's wait, and only while the writer is busy: a
    /// lone caller never waits for it. It suits appends that keep arriving
    /// (a server's many agents); callers that each wait for their own
    /// append before sending the next are held to one round per interval
    /// (32 such callers: at most 32 appends a millisecond). Zero, the
    /// default, turns it off.
    pub gather: Duration,
    /// The log's signing key file, created (mode 0600) if absent. `None`:
    /// [`KEY_FILE`] in the data directory. Kept elsewhere, a copy of the
    /// data directory alone cannot sign checkpoints.
    pub key_file: Option<PathBuf>,
}

impl StoreConfig {
    /// Defaults for the log `origin`: a checkpoint every 1,000 entries or
    /// 10 seconds, and on close.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: Some(origin.into()),
            ..Self::default()
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            origin: None,
            checkpoint_every_entries: 1000,
            checkpoint_interval: Some(Duration::from_secs(10)),
            max_page_count: None,
            hold_at_most: Duration::from_millis(10),
            gather: Duration::ZERO,
            key_file: None,
        }
    }
}

/// The one answer to a caller of the writer: a thread blocked on the
/// reply, or a callback ([`Store::append_then`]). Dropped unanswered while
/// the writer panics, it answers [`StoreError::WriterPanicked`]: a panic
/// must never read as success, nor as an orderly close. A callback dropped
/// unanswered otherwise (the writer stopped with the request queued) is
/// answered [`StoreError::Closed`], so that it is always called once.
struct Reply<T>(Option<ReplyTo<T>>);

enum ReplyTo<T> {
    Wait(SyncSender<Result<T, StoreError>>),
    Call(Box<dyn FnOnce(Result<T, StoreError>) + Send>),
}

impl<T> Reply<T> {
    fn send(mut self, result: Result<T, StoreError>) {
        match self.0.take() {
            // The caller may have given up waiting; nothing to do then.
            Some(ReplyTo::Wait(sender)) => {
                let _ = sender.send(result);
            }
            Some(ReplyTo::Call(done)) => done(result),
            None => {}
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        let error = if std::thread::panicking() {
            StoreError::WriterPanicked
        } else {
            StoreError::Closed
        };
        match self.0.take() {
            Some(ReplyTo::Wait(sender)) if std::thread::panicking() => {
                let _ = sender.send(Err(error));
            }
            Some(ReplyTo::Call(done)) => done(Err(error)),
            _ => {}
        }
    }
}

// Appends dominate; boxing the record would add an allocation to each.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// The changes commit with the record; a plain append carries an empty
    /// (unallocated) Vec.
    Append(Record, Vec<StateChange>, Reply<Appended>),
    /// [`Store::append_held`]: an append that waits for the next command.
    Held(Record, Vec<StateChange>, Reply<Appended>),
    Checkpoint(Reply<Option<StoredCheckpoint>>),
    /// [`Store::check_writable`] (0) and [`Store::check_room`] (the room
    /// asked for, in bytes): commit a write.
    Probe(usize, Reply<()>),
    Shutdown(Reply<()>),
    /// Make the next append batch panic before it commits.
    #[cfg(test)]
    PanicOnNextCommit,
}

/// The SQLite implementation of [`Store`]: `warden.db` (and its `-wal`
/// file) plus the log key `audit.key` in the data directory.
///
/// # Durability
///
/// * `journal_mode=WAL`: a commit appends the transaction's pages to the
///   write-ahead log; readers keep reading a consistent snapshot meanwhile.
/// * `synchronous=FULL`: in WAL mode SQLite syncs the WAL file at **every**
///   commit before `COMMIT` returns, so a committed transaction survives an
///   operating-system crash or power loss, not only a process crash.
///   (`NORMAL` would sync only at WAL checkpoints: the last commits could be
///   lost on power loss, which breaks "durable before the verdict".)
/// * The WAL is copied into the main file by SQLite's automatic checkpoints
///   (`wal_autocheckpoint`), which also sync; a crash during one is recovered
///   from the WAL on the next open.
///
/// # Group commit
///
/// [`Store::append`] hands its record to the writer thread over a channel
/// and blocks on a one-shot reply. The writer takes every request waiting in
/// the channel (up to [`MAX_BATCH`]), assigns sequence numbers, encodes and
/// hashes each record, inserts them in **one** transaction (with the hashes
/// of the perfect subtrees they complete, and any checkpoint that falls
/// due), commits, and only then answers each caller.
/// While it syncs, new requests queue up and form the next batch, so one
/// sync is shared by many appends. If the commit fails, every caller in the
/// batch gets the error and the in-memory tree state is rolled back.
///
/// A record queued with [`Store::append_held`] (an outcome, which nobody
/// waits on) does not start a commit: the writer holds it until another
/// command comes and commits it first in that one's transaction, or commits
/// it alone after [`StoreConfig::hold_at_most`].
///
/// # A removed or replaced database file
///
/// On Unix, a database file that is deleted (`rm -rf` of the data
/// directory) or replaced while open stays writable through the open
/// connection: commits would "succeed" into a file nobody will read again.
/// So before every commit the writer checks that `warden.db` in the data
/// directory is still the file it opened (same device and inode, one `stat`
/// per batch); if not, the batch fails with [`StoreError::FileReplaced`],
/// and so does every later one.
pub struct SqliteStore {
    dir: PathBuf,
    verifier: LogVerifier,
    reader: Mutex<Connection>,
    /// False for a version-1 database opened read-only: proofs then
    /// derive subtree hashes from the leaf hashes.
    has_subtrees: bool,
    /// False for a database older than version 3 opened read-only: it has
    /// no agents and no revocations.
    has_identity: bool,
    /// False for a database older than version 4 opened read-only: it has
    /// no state values.
    has_state: bool,
    /// Hashes of stored subtrees of height >= [`CACHED_MIN_HEIGHT`], by id.
    /// Every proof of a large log needs a few of the same upper subtrees,
    /// and a stored subtree never changes, so they are kept once read.
    upper_subtrees: RwLock<HashMap<i64, Hash>>,
    /// `None` when read-only.
    writer: Option<Writer>,
}

/// Lowest subtree height kept in memory: one in 2^10 entries completes such
/// a subtree, so the cache holds at most about `log size / 512` hashes
/// (2,000 for a million entries), while a proof finds half its hashes there.
const CACHED_MIN_HEIGHT: u32 = 10;

struct Writer {
    sender: Mutex<Option<Sender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The background checkpointer: dropping the sender stops it.
    checkpointer: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
    /// Set once the writer thread has panicked: later calls say so rather
    /// than "closed".
    panicked: Arc<AtomicBool>,
    _lock: File,
}

/// Sets the flag when dropped by a panicking thread.
struct PanicFlag(Arc<AtomicBool>);

impl Drop for PanicFlag {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("dir", &self.dir)
            .field("origin", &self.verifier.name())
            .field("read_only", &self.writer.is_none())
            .finish()
    }
}

/// How many appends the previous commit must have carried for the next
/// to wait for [`StoreConfig::gather`]: at fewer, the writer is not busy
/// enough for a sync to be worth saving.
pub const GATHER_FROM: usize = 8;

/// How often the background checkpointer looks for new WAL frames.
const CHECKPOINT_TICK: Duration = Duration::from_millis(20);

/// Move what is queued for the writer into `batch`, up to [`MAX_BATCH`].
fn take_queued(receiver: &Receiver<Command>, batch: &mut Vec<Command>) {
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(cmd) => batch.push(cmd),
            Err(_) => break,
        }
    }
}

/// Copies committed WAL frames into the database file in the background
/// (`PRAGMA wal_checkpoint(PASSIVE)` on its own connection, which never
/// waits for the writer), whenever commits came since it last looked.
///
/// The writer keeps SQLite's automatic checkpoint, the one that restarts the
/// WAL; done inline, it copied about 1,000 frames and synced the database
/// file inside a commit every few hundred commits, holding up every caller
/// of that batch for milliseconds. With this thread ahead of it, it finds
/// almost everything copied. Stops when `stop` is dropped.
fn checkpointer(conn: Connection, commits: Arc<AtomicU64>, stop: Receiver<()>) {
    let mut seen = commits.load(Ordering::Relaxed);
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_TICK) {
        let now = commits.load(Ordering::Relaxed);
        if now == seen {
            continue;
        }
        seen = now;
        // Busy (the writer's own checkpoint runs) or failing: the writer's
        // automatic checkpoint still does the work.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::db(format!("opening {}", path.display()), e))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| StoreError::db("setting busy_timeout", e))?;
    // Plans that do not change with the values bound. Without this (SQLite
    // is built with STAT4), binding a new value to `space = ?1` expired the
    // cached statement, and every read of a session's labels parsed and
    // planned its SQL again: about 55,000 instructions each. Every query
    // here has one plan whatever the values.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(|e| StoreError::db("enabling the query planner stability guarantee", e))?;
    Ok(conn)
}

/// The connection that answers reads: room for the statements of proofs
/// of every shape (their SQL depends on how many hashes they need), and a
/// page cache that holds the subtree hashes proofs seek in.
fn open_reader(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let conn = open_connection(path, read_only)?;
    conn.set_prepared_statement_cache_capacity(256);
    // 64 MiB of page cache (filled only as pages are read): the subtree
    // hashes of a million entries take about 45 MiB, and proofs seek there.
    pragma(&conn, "cache_size", "-65536")?;
    Ok(conn)
}

fn pragma(conn: &Connection, name: &str, value: &str) -> Result<(), StoreError> {
    conn.pragma_update(None, name, value)
        .map_err(|e| StoreError::db(format!("setting PRAGMA {name}={value}"), e))
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn to_i64(v: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Malformed {
        what,
        seq: v,
        detail: "does not fit SQLite's 64-bit signed integer".into(),
    })
}

fn to_hash(bytes: Vec<u8>, what: &'static str, seq: u64) -> Result<Hash, StoreError> {
    let len = bytes.len();
    bytes.try_into().map_err(|_| StoreError::Malformed {
        what,
        seq,
        detail: format!("{len} bytes, expected 32"),
    })
}

fn schema_version(conn: &Connection, db_path: &Path) -> Result<i64, StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| StoreError::db("reading the schema version", e))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Database {
            doing: format!("opening {}", db_path.display()),
            message: format!(
                "schema version {version} is newer than this warden's {SCHEMA_VERSION}"
            ),
            hint: "upgrade warden",
        });
    }
    Ok(version)
}

/// Create the schema, or bring an older one up to date, in one transaction:
/// a crash leaves either the old version or the new one.
fn migrate(conn: &mut Connection, db_path: &Path) -> Result<(), StoreError> {
    let version = schema_version(conn, db_path)?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| StoreError::db("starting the schema migration", e))?;
    tx.execute_batch(SCHEMA)
        .map_err(|e| StoreError::db("creating the schema", e))?;
    if version == 1 {
        backfill_subtrees(&tx)?;
    }
    // user_version lives in the database header: it commits with the rest.
    pragma(&tx, "user_version", &SCHEMA_VERSION.to_string())?;
    tx.commit()
        .map_err(|e| StoreError::db("committing the schema migration", e))
}

/// Fill `audit_subtrees` from the stored leaf hashes of a version-1 log
/// (about 1 s per million entries).
fn backfill_subtrees(conn: &Connection) -> Result<(), StoreError> {
    let doing = "adding subtree hashes to a version-1 log";
    let mut range = CompactRange::new();
    let mut insert = conn
        .prepare("INSERT INTO audit_subtrees(id, hash) VALUES (?1, ?2)")
        .map_err(|e| StoreError::db(doing, e))?;
    let mut select = conn
        .prepare("SELECT seq, leaf_hash FROM audit_entries ORDER BY seq")
        .map_err(|e| StoreError::db(doing, e))?;
    let mut rows = select.query([]).map_err(|e| StoreError::db(doing, e))?;
    let mut completed = Vec::with_capacity(64);
    while let Some(row) = rows.next().map_err(|e| StoreError::db(doing, e))? {
        let seq: i64 = row.get(0).map_err(|e| StoreError::db(doing, e))?;
        let hash: Vec<u8> = row.get(1).map_err(|e| StoreError::db(doing, e))?;
        let seq = seq as u64;
        if seq != range.size() {
            return Err(missing_entry(range.size(), seq));
        }
        range.push_reporting(to_hash(hash, "leaf hash", seq)?, |s, h| {
            completed.push((s, *h))
        });
        for (subtree, hash) in completed.drain(..) {
            insert_subtree(&mut insert, subtree, &hash)?;
        }
    }
    Ok(())
}

/// The `audit_subtrees` key of the subtree of `height` ending at `last`.
fn subtree_id(last: u64, height: u32) -> Result<i64, StoreError> {
    last.checked_mul(64)
        .and_then(|v| i64::try_from(v + u64::from(height)).ok())
        .ok_or(StoreError::Malformed {
            what: "seq",
            seq: last,
            detail: "too large to key a subtree hash (the limit is 2^57)".into(),
        })
}

/// Writes a state change in the transaction that appends its audit entry
/// `seq`.
fn apply_change(conn: &Connection, change: StateChange, seq: u64) -> Result<(), StoreError> {
    let seq = to_i64(seq, "seq")?;
    match change {
        StateChange::PutAgent { did, record } => conn
            .prepare_cached(
                "INSERT INTO agents(did, record, audit_seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT(did) DO UPDATE SET record = excluded.record, audit_seq = excluded.audit_seq",
            )
            .and_then(|mut stmt| stmt.execute(params![did, record, seq]))
            .map_err(|e| StoreError::db("writing an agent", e))?,
        // Revoking twice keeps the first revocation.
        StateChange::Revoke { id, reason } => conn
            .prepare_cached(
                "INSERT INTO revocations(id, reason, audit_seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO NOTHING",
            )
            .and_then(|mut stmt| stmt.execute(params![id, reason, seq]))
            .map_err(|e| StoreError::db("writing a revocation", e))?,
        StateChange::PutState { space, key, value } => conn
            .prepare_cached(
                "INSERT INTO state(space, key, value, audit_seq) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(space, key) DO UPDATE SET value = excluded.value, audit_seq = excluded.audit_seq",
            )
            .and_then(|mut stmt| stmt.execute(params![space, key, value, seq]))
            .map_err(|e| StoreError::db("writing a state value", e))?,
        StateChange::DeleteState { space, key } => conn
            .prepare_cached("DELETE FROM state WHERE space = ?1 AND key = ?2")
            .and_then(|mut stmt| stmt.execute(params![space, key]))
            .map_err(|e| StoreError::db("deleting a state value", e))?,
        // TEXT compares with memcmp (the BINARY collation), so `<` is the
        // bytewise order `states` reads in; the primary key makes it a range.
        StateChange::DeleteStatesBefore { space, key } => conn
            .prepare_cached("DELETE FROM state WHERE space = ?1 AND key < ?2")
            .and_then(|mut stmt| stmt.execute(params![space, key]))
            .map_err(|e| StoreError::db("deleting state values", e))?,
    };
    Ok(())
}

/// A write transaction (`BEGIN IMMEDIATE`) on the writer's connection whose
/// `BEGIN` and `COMMIT` come from the statement cache. rusqlite's
/// `Transaction` runs them through `execute_batch`, which parses the SQL
/// anew every time: about 20,000 instructions per commit, a tenth of what
/// a commit of ten appends costs. Dropped uncommitted (or after a failed
/// `COMMIT` that left the transaction open), it rolls back.
struct WriteTransaction<'c> {
    conn: &'c Connection,
}

impl<'c> WriteTransaction<'c> {
    fn begin(conn: &'c Connection, what: &str) -> Result<Self, StoreError> {
        conn.prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(|e| StoreError::db(format!("starting {what}"), e))?;
        Ok(Self { conn })
    }

    fn commit(self, what: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(|e| StoreError::db(format!("committing {what}"), e))
    }
}

impl std::ops::Deref for WriteTransaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for WriteTransaction<'_> {
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            // A failed rollback leaves nothing to do: SQLite rolls back
            // what it cannot commit, and the next BEGIN reports the state.
            let _ = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
        }
    }
}

fn missing_entry(expected: u64, next: u64) -> StoreError {
    StoreError::Malformed {
        what: "audit log",
        seq: expected,
        detail: format!("entry {expected} is missing (next stored entry is {next})"),
    }
}

fn insert_subtree(
    insert: &mut rusqlite::Statement<'_>,
    subtree: Subtree,
    hash: &Hash,
) -> Result<(), StoreError> {
    let last = subtree.last();
    insert
        .execute(params![subtree_id(last, subtree.height)?, &hash[..]])
        .map(|_| ())
        .map_err(|e| {
            StoreError::db(
                format!(
                    "storing the subtree hash of entries {}..={last}",
                    subtree.first()
                ),
                e,
            )
        })
}

/// Most subtrees looked up by one statement (a proof at size 2^40 needs
/// about 80).
const MAX_LOOKUP: usize = 64;

/// Append the hashes of `subtrees` to `out`, in order, with one statement:
/// per-statement overhead, not the B-tree seeks, dominates a proof's cost.
fn lookup_subtrees(
    conn: &Connection,
    subtrees: &[Subtree],
    out: &mut Vec<Hash>,
) -> Result<(), StoreError> {
    let doing = "reading subtree hashes";
    let (leaves, nodes): (Vec<&Subtree>, Vec<&Subtree>) =
        subtrees.iter().partition(|s| s.height == 0);
    // The SQL depends only on the two counts, so few statements are cached.
    let mut sql = String::with_capacity(128 + 8 * subtrees.len());
    let mut params: Vec<i64> = Vec::with_capacity(2 * subtrees.len());
    if !nodes.is_empty() {
        sql.push_str("SELECT id, hash FROM audit_subtrees WHERE id IN (");
        for (i, s) in nodes.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ",?" });
            params.push(subtree_id(s.last(), s.height)?);
        }
        sql.push(')');
    }
    if !leaves.is_empty() {
        if !nodes.is_empty() {
            sql.push_str(" UNION ALL ");
        }
        // Leaves answer as height 0: id = seq * 64.
        sql.push_str("SELECT seq * 64, leaf_hash FROM audit_entries WHERE seq IN (");
        for (i, s) in leaves.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ",?" });
            params.push(to_i64(s.last(), "seq")?);
        }
        sql.push(')');
    }
    if params.is_empty() {
        return Ok(());
    }
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(|e| StoreError::db(doing, e))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .map_err(|e| StoreError::db(doing, e))?;
    let mut found: Vec<(i64, Vec<u8>)> = Vec::with_capacity(subtrees.len());
    for row in rows {
        found.push(row.map_err(|e| StoreError::db(doing, e))?);
    }
    for s in subtrees {
        let last = s.last();
        let id = subtree_id(last, s.height)?;
        let Some(i) = found.iter().position(|(key, _)| *key == id) else {
            return Err(StoreError::Malformed {
                what: "subtree hash",
                seq: last,
                detail: format!(
                    "no stored hash for entries {}..={last} (height {})",
                    s.first(),
                    s.height
                ),
            });
        };
        out.push(to_hash(
            std::mem::take(&mut found[i].1),
            "subtree hash",
            last,
        )?);
    }
    Ok(())
}

impl SqliteStore {
    /// Open (creating when needed) the store in `dir` for reading and
    /// writing. Creates the directory (mode 0700), the database and the log
    /// key (mode 0600) on first use, and starts the writer thread. Only one
    /// process may hold a store open for writing.
    pub fn open(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| {
                StoreError::io(
                    &dir,
                    e,
                    "check that the parent directory exists and is writable",
                )
            })?;

        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                StoreError::io(&lock_path, e, "check that the data directory is writable")
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked { path: lock_path });
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(StoreError::io(
                    &lock_path,
                    e,
                    "the file system must support file locks",
                ));
            }
        }

        let key_path = config
            .key_file
            .clone()
            .unwrap_or_else(|| dir.join(KEY_FILE));
        let db_path = dir.join(DB_FILE);
        if fs::symlink_metadata(&db_path).is_ok()
            && matches!(fs::symlink_metadata(&key_path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        {
            return Err(StoreError::KeyMissing {
                log: dir,
                key: key_path,
            });
        }
        let signer = keyfile::load_or_create(&key_path, config.origin.as_deref())?;
        if let Some(origin) = &config.origin
            && origin != signer.name()
        {
            return Err(StoreError::OriginMismatch {
                path: dir,
                configured: origin.clone(),
                stored: signer.name().into(),
            });
        }

        let mut conn = open_connection(&db_path, false)?;
        pragma(&conn, "journal_mode", "WAL")?;
        pragma(&conn, "synchronous", "FULL")?;
        migrate(&mut conn, &db_path)?;
        if let Some(pages) = config.max_page_count {
            pragma(&conn, "max_page_count", &pages.to_string())?;
        }
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('origin', ?1), ('verifier_key', ?2)
             ON CONFLICT(key) DO NOTHING",
            params![signer.name(), signer.verifier().to_key_string()],
        )
        .map_err(|e| StoreError::db("recording the log origin", e))?;
        let meta = |key: &str| -> Result<String, StoreError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .map_err(|e| StoreError::db(format!("reading the log's {key}"), e))
        };
        let stored_origin = meta("origin")?;
        if stored_origin != signer.name() {
            return Err(StoreError::OriginMismatch {
                path: dir,
                configured: signer.name().into(),
                stored: stored_origin,
            });
        }
        let stored_key = meta("verifier_key")?;
        let key = signer.verifier().to_key_string();
        if stored_key != key {
            return Err(StoreError::KeyMismatch {
                path: key_path,
                stored: stored_key,
                found: key,
            });
        }

        let state = LogState::load(&conn)?;
        let db = DbFile::identify(db_path.clone())?;
        let verifier = signer.verifier();
        let reader = open_reader(&db_path, false)?;
        let commits = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = mpsc::channel();
        let background = open_connection(&db_path, false)?;
        let counted = commits.clone();
        let checkpoints = std::thread::Builder::new()
            .name("warden-store-checkpointer".into())
            .spawn(move || checkpointer(background, counted, stopped))
            .map_err(|e| StoreError::io(&dir, e, "the system is out of threads"))?;
        let (sender, receiver) = mpsc::channel();
        let panicked = Arc::new(AtomicBool::new(false));
        let flag = PanicFlag(panicked.clone());
        let mut worker = WriterThread {
            conn,
            db,
            log: Log {
                signer,
                config,
                state,
                last_checkpoint_at: Instant::now(),
            },
            held: Vec::new(),
            held_since: None,
            last_commit: None,
            commits,
            #[cfg(test)]
            panic_on_next_commit: false,
        };
        let thread = std::thread::Builder::new()
            .name("warden-store-writer".into())
            .spawn(move || {
                // Dropped in reverse order: a panic sets the flag before the
                // channel closes, so a caller that finds it closed also
                // finds the flag.
                let receiver = receiver;
                let _flag = flag;
                worker.run(&receiver);
            })
            .map_err(|e| StoreError::io(&dir, e, "the system is out of threads"))?;
        Ok(Self {
            dir,
            verifier,
            reader: Mutex::new(reader),
            has_subtrees: true,
            has_identity: true,
            has_state: true,
            upper_subtrees: RwLock::default(),
            writer: Some(Writer {
                sender: Mutex::new(Some(sender)),
                thread: Mutex::new(Some(thread)),
                checkpointer: Mutex::new(Some((stop, checkpoints))),
                panicked,
                _lock: lock,
            }),
        })
    }

    /// Open an existing store read-only, e.g. to verify or export a log that
    /// a running server is writing. Appends fail with
    /// [`StoreError::ReadOnly`]. Its [`Store::verifier`] is the key recorded
    /// in the database: an auditor should verify with the log's published
    /// key instead, or compare the two.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let db_path = dir.join(DB_FILE);
        if !db_path.is_file() {
            return Err(StoreError::io(
                &db_path,
                "no database",
                "check --data-dir; a log is created by the first command that writes",
            ));
        }
        let reader = open_reader(&db_path, true)?;
        let version = schema_version(&reader, &db_path)?;
        let key: String = reader
            .query_row(
                "SELECT value FROM meta WHERE key = 'verifier_key'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| StoreError::db("reading the log's verifier key", e))?;
        let verifier = LogVerifier::from_key_string(&key).map_err(|source| StoreError::Key {
            path: db_path.clone(),
            source,
        })?;
        Ok(Self {
            dir,
            verifier,
            reader: Mutex::new(reader),
            has_subtrees: version >= 2,
            has_identity: version >= 3,
            has_state: version >= 4,
            upper_subtrees: RwLock::default(),
            writer: None,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the reader cannot leave the connection in a
        // state worse than an aborted query.
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let writer = self.writer.as_ref().ok_or(StoreError::ReadOnly)?;
        let (reply, answer) = mpsc::sync_channel(1);
        {
            let sender = writer.sender.lock().unwrap_or_else(|p| p.into_inner());
            let sender = sender.as_ref().ok_or_else(|| writer.stopped())?;
            sender
                .send(make(Reply(Some(ReplyTo::Wait(reply)))))
                .map_err(|_| writer.stopped())?;
        }
        answer.recv().map_err(|_| writer.stopped())?
    }

    /// Hand an append to the writer without waiting; `done` gets its result.
    fn queue(&self, record: Record, changes: Vec<StateChange>, done: AppendDone, held: bool) {
        if let Some(e) = changes.iter().find_map(|c| c.check_limits().err()) {
            return done(Err(e));
        }
        let Some(writer) = self.writer.as_ref() else {
            return done(Err(StoreError::ReadOnly));
        };
        let sender = writer.sender.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sender) = sender.as_ref() else {
            return done(Err(writer.stopped()));
        };
        let reply = Reply(Some(ReplyTo::Call(done)));
        let command = if held {
            Command::Held(record, changes, reply)
        } else {
            Command::Append(record, changes, reply)
        };
        if let Err(mpsc::SendError(
            Command::Append(_, _, mut reply) | Command::Held(_, _, mut reply),
        )) = sender.send(command)
            && let Some(ReplyTo::Call(done)) = reply.0.take()
        {
            done(Err(writer.stopped()));
        }
    }
}

impl Writer {
    /// Why the writer no longer takes requests.
    fn stopped(&self) -> StoreError {
        if self.panicked.load(Ordering::SeqCst) {
            StoreError::WriterPanicked
        } else {
            StoreError::Closed
        }
    }
}

fn read_agent(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAgent> {
    Ok(StoredAgent {
        did: r.get(0)?,
        record: r.get(1)?,
        audit_seq: r.get::<_, i64>(2)? as u64,
    })
}

fn read_state(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredState> {
    Ok(StoredState {
        space: r.get(0)?,
        key: r.get(1)?,
        value: r.get(2)?,
        audit_seq: r.get::<_, i64>(3)? as u64,
    })
}

fn read_checkpoint(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Vec<u8>, String, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn to_checkpoint(
    (size, root, note, created): (i64, Vec<u8>, String, i64),
) -> Result<StoredCheckpoint, StoreError> {
    let size = size as u64;
    Ok(StoredCheckpoint {
        size,
        root: to_hash(root, "checkpoint root", size)?,
        note,
        created_unix_nanos: created as u64,
    })
}

impl Store for SqliteStore {
    fn append_with_all(
        &self,
        record: Record,
        changes: Vec<StateChange>,
    ) -> Result<Appended, StoreError> {
        for change in &changes {
            change.check_limits()?;
        }
        self.send(|reply| Command::Append(record, changes, reply))
    }

    fn append_then(&self, record: Record, changes: Vec<StateChange>, done: AppendDone) {
        self.queue(record, changes, done, false);
    }

    fn append_held(&self, record: Record, changes: Vec<StateChange>, done: AppendDone) {
        self.queue(record, changes, done, true);
    }

    fn agent(&self, did: &str) -> Result<Option<StoredAgent>, StoreError> {
        if !self.has_identity {
            return Ok(None);
        }
        let conn = self.reader();
        conn.query_row(
            "SELECT did, record, audit_seq FROM agents WHERE did = ?1",
            [did],
            read_agent,
        )
        .optional()
        .map_err(|e| StoreError::db("reading an agent", e))
    }

    fn agents(&self) -> Result<Vec<StoredAgent>, StoreError> {
        if !self.has_identity {
            return Ok(Vec::new());
        }
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached("SELECT did, record, audit_seq FROM agents ORDER BY did")
            .map_err(|e| StoreError::db("reading agents", e))?;
        let rows = stmt
            .query_map([], read_agent)
            .map_err(|e| StoreError::db("reading agents", e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| StoreError::db("reading agents", e))
    }

    fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        if !self.has_identity {
            return Ok(Vec::new());
        }
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached("SELECT id, reason, audit_seq FROM revocations ORDER BY audit_seq")
            .map_err(|e| StoreError::db("reading revocations", e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Revocation {
                    id: r.get(0)?,
                    reason: r.get(1)?,
                    audit_seq: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(|e| StoreError::db("reading revocations", e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| StoreError::db("reading revocations", e))
    }

    fn state(&self, space: &str, key: &str) -> Result<Option<StoredState>, StoreError> {
        check_state_key(space, key)?;
        if !self.has_state {
            return Ok(None);
        }
        let conn = self.reader();
        conn.prepare_cached(
            "SELECT space, key, value, audit_seq FROM state WHERE space = ?1 AND key = ?2",
        )
        .and_then(|mut stmt| stmt.query_row([space, key], read_state).optional())
        .map_err(|e| StoreError::db("reading a state value", e))
    }

    fn states(&self, space: &str) -> Result<Vec<StoredState>, StoreError> {
        check_state_key(space, "")?;
        if !self.has_state {
            return Ok(Vec::new());
        }
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(STATES_SQL)
            .map_err(|e| StoreError::db("reading state values", e))?;
        let rows = stmt
            .query_map([space], read_state)
            .map_err(|e| StoreError::db("reading state values", e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| StoreError::db("reading state values", e))
    }

    fn entries(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        // No entry is numbered past SQLite's integers: asking is not an error.
        let Ok(from) = i64::try_from(from_seq) else {
            return Ok(Vec::new());
        };
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached("SELECT seq, leaf_hash, data FROM audit_entries WHERE seq >= ?1 ORDER BY seq LIMIT ?2")
            .map_err(|e| StoreError::db("reading entries", e))?;
        let rows = stmt
            .query_map(params![from, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(|e| StoreError::db("reading entries", e))?;
        let mut out = Vec::with_capacity(limit.min(16_384));
        for row in rows {
            let (seq, hash, data) = row.map_err(|e| StoreError::db("reading entries", e))?;
            let seq = seq as u64;
            out.push(StoredEntry {
                seq,
                leaf_hash: to_hash(hash, "leaf hash", seq)?,
                data,
            });
        }
        Ok(out)
    }

    fn leaf_hashes(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, Hash)>, StoreError> {
        let Ok(from) = i64::try_from(from_seq) else {
            return Ok(Vec::new());
        };
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, leaf_hash FROM audit_entries WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(|e| StoreError::db("reading leaf hashes", e))?;
        let rows = stmt
            .query_map(params![from, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(|e| StoreError::db("reading leaf hashes", e))?;
        let mut out = Vec::with_capacity(limit.min(65_536));
        for row in rows {
            let (seq, hash) = row.map_err(|e| StoreError::db("reading leaf hashes", e))?;
            out.push((seq as u64, to_hash(hash, "leaf hash", seq as u64)?));
        }
        Ok(out)
    }

    fn subtree_hashes(&self, subtrees: &[Subtree]) -> Result<Vec<Hash>, StoreError> {
        if !self.has_subtrees {
            return derive_subtree_hashes(self, subtrees);
        }
        // Upper subtrees from memory; the rest (and upper ones not seen
        // yet) from the database in as few statements as possible.
        let mut out: Vec<Option<Hash>> = {
            let cache = self
                .upper_subtrees
                .read()
                .unwrap_or_else(|e| e.into_inner());
            subtrees
                .iter()
                .map(|s| {
                    (s.height >= CACHED_MIN_HEIGHT)
                        .then(|| subtree_id(s.last(), s.height).ok())
                        .flatten()
                        .and_then(|id| cache.get(&id).copied())
                })
                .collect()
        };
        let missing: Vec<Subtree> = subtrees
            .iter()
            .zip(&out)
            .filter(|(_, h)| h.is_none())
            .map(|(s, _)| *s)
            .collect();
        if missing.is_empty() {
            return Ok(out.into_iter().flatten().collect());
        }
        // `lookup_subtrees` answers every subtree asked, in order, or fails.
        let mut fetched = Vec::with_capacity(missing.len());
        {
            let conn = self.reader();
            for chunk in missing.chunks(MAX_LOOKUP) {
                lookup_subtrees(&conn, chunk, &mut fetched)?;
            }
        }
        let mut cache = self
            .upper_subtrees
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let mut fetched = missing.iter().zip(fetched);
        for slot in out.iter_mut().filter(|h| h.is_none()) {
            let Some((s, hash)) = fetched.next() else {
                break;
            };
            if s.height >= CACHED_MIN_HEIGHT {
                cache.insert(subtree_id(s.last(), s.height)?, hash);
            }
            *slot = Some(hash);
        }
        out.into_iter()
            .zip(subtrees)
            .map(|(hash, s)| {
                hash.ok_or_else(|| StoreError::Malformed {
                    what: "subtree hash",
                    seq: s.last(),
                    detail: "the database answered fewer subtree hashes than asked".into(),
                })
            })
            .collect()
    }

    fn stored_subtrees(
        &self,
        last_seqs: Range<u64>,
    ) -> Result<Option<Vec<StoredSubtree>>, StoreError> {
        if !self.has_subtrees {
            return Ok(None);
        }
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, hash FROM audit_subtrees WHERE id >= ?1 AND id < ?2 ORDER BY id",
            )
            .map_err(|e| StoreError::db("reading subtree hashes", e))?;
        // Clamp an open-ended range to the keys SQLite can hold.
        let key = |seq: u64| i64::try_from(seq.saturating_mul(64)).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![key(last_seqs.start), key(last_seqs.end)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(|e| StoreError::db("reading subtree hashes", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, hash) = row.map_err(|e| StoreError::db("reading subtree hashes", e))?;
            // The range starts at >= 0, so id is not negative.
            let last = id as u64 >> 6;
            out.push(StoredSubtree {
                last_seq: last,
                height: (id & 63) as u32,
                hash: to_hash(hash, "subtree hash", last)?,
            });
        }
        Ok(Some(out))
    }

    fn log_size(&self) -> Result<u64, StoreError> {
        let conn = self.reader();
        let max: Option<i64> = conn
            .query_row("SELECT MAX(seq) FROM audit_entries", [], |r| r.get(0))
            .map_err(|e| StoreError::db("counting entries", e))?;
        Ok(max.map_or(0, |m| m as u64 + 1))
    }

    fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(
                "SELECT size, root, note, created_unix_nanos FROM audit_checkpoints ORDER BY size",
            )
            .map_err(|e| StoreError::db("reading checkpoints", e))?;
        let rows = stmt
            .query_map([], read_checkpoint)
            .map_err(|e| StoreError::db("reading checkpoints", e))?;
        rows.map(|row| to_checkpoint(row.map_err(|e| StoreError::db("reading checkpoints", e))?))
            .collect()
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let conn = self.reader();
        conn.query_row(
            "SELECT size, root, note, created_unix_nanos FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
            [],
            read_checkpoint,
        )
        .optional()
        .map_err(|e| StoreError::db("reading the latest checkpoint", e))?
        .map(to_checkpoint)
        .transpose()
    }

    fn checkpoint_now(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.send(Command::Checkpoint)
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.send(|reply| Command::Probe(0, reply))
    }

    fn check_room(&self, bytes: usize) -> Result<(), StoreError> {
        self.send(|reply| Command::Probe(bytes, reply))
    }

    fn verifier(&self) -> LogVerifier {
        self.verifier.clone()
    }

    fn close(&self) -> Result<(), StoreError> {
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        // The checkpointer first: the writer's final checkpoint should not
        // find it busy.
        let background = writer
            .checkpointer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((stop, thread)) = background {
            drop(stop);
            let _ = thread.join();
        }
        let mut result = match self.send(Command::Shutdown) {
            Err(StoreError::Closed) => Ok(()),
            other => other,
        };
        // Dropping the sender makes later appends fail with Closed.
        writer
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(thread) = writer
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            // A panic there already failed the callers it was serving;
            // closing must not report success either.
            if thread.join().is_err() {
                result = Err(StoreError::WriterPanicked);
            }
        }
        result
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Best effort: the final checkpoint. Errors have nowhere to go.
        let _ = self.close();
    }
}

/// The writer's view of the log: next sequence number and running root.
#[derive(Clone)]
struct LogState {
    range: CompactRange,
    last_checkpoint_size: Option<u64>,
}

impl LogState {
    /// Rebuild from the database: start from the latest checkpoint's stored
    /// peaks when they match its root, then add the leaves after it.
    fn load(conn: &Connection) -> Result<Self, StoreError> {
        let latest: Option<(i64, Vec<u8>, Vec<u8>)> = conn
            .query_row(
                "SELECT size, root, peaks FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| StoreError::db("reading the latest checkpoint", e))?;
        let mut range = CompactRange::new();
        let mut last_checkpoint_size = None;
        if let Some((size, root, peaks)) = latest {
            let size = size as u64;
            last_checkpoint_size = Some(size);
            let peaks: Vec<Hash> = peaks
                .chunks_exact(32)
                .filter_map(|c| c.try_into().ok())
                .collect();
            if let Some(restored) = CompactRange::from_parts(size, peaks)
                && restored.root().as_slice() == root.as_slice()
            {
                range = restored;
            }
            // Otherwise start from scratch: `verify` will report the damage.
        }
        let mut stmt = conn
            .prepare("SELECT seq, leaf_hash FROM audit_entries WHERE seq >= ?1 ORDER BY seq")
            .map_err(|e| StoreError::db("reading leaf hashes", e))?;
        let mut rows = stmt
            .query(params![to_i64(range.size(), "seq")?])
            .map_err(|e| StoreError::db("reading leaf hashes", e))?;
        while let Some(row) = rows
            .next()
            .map_err(|e| StoreError::db("reading leaf hashes", e))?
        {
            let seq: i64 = row
                .get(0)
                .map_err(|e| StoreError::db("reading leaf hashes", e))?;
            let hash: Vec<u8> = row
                .get(1)
                .map_err(|e| StoreError::db("reading leaf hashes", e))?;
            let seq = seq as u64;
            if seq != range.size() {
                // A gap: appending would hide it. Refuse to write to a
                // damaged log (the gate then fails closed).
                return Err(missing_entry(range.size(), seq));
            }
            range.push(to_hash(hash, "leaf hash", seq)?);
        }
        Ok(Self {
            range,
            last_checkpoint_size,
        })
    }
}

struct WriterThread {
    conn: Connection,
    db: DbFile,
    log: Log,
    /// Appends from [`Store::append_held`] waiting for the next command,
    /// in the order they came, and when the first of them came.
    held: Vec<(Record, Vec<StateChange>, Reply<Appended>)>,
    held_since: Option<Instant>,
    /// When the latest commit of appends started, and how many it carried.
    last_commit: Option<(Instant, usize)>,
    /// Commits so far, for the background checkpointer.
    commits: Arc<AtomicU64>,
    #[cfg(test)]
    panic_on_next_commit: bool,
}

/// The database file the writer opened: its path and identity.
struct DbFile {
    path: PathBuf,
    /// (device, inode) at open.
    id: (u64, u64),
}

impl DbFile {
    fn identify(path: PathBuf) -> Result<Self, StoreError> {
        let meta = fs::metadata(&path)
            .map_err(|e| StoreError::io(&path, e, "check the data directory"))?;
        Ok(Self {
            id: (meta.dev(), meta.ino()),
            path,
        })
    }

    /// Fail unless the path still names the file opened: otherwise a commit
    /// would be acknowledged into a file that is gone.
    fn check(&self) -> Result<(), StoreError> {
        match fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.id => Ok(()),
            Ok(_) => Err(StoreError::FileReplaced {
                path: self.path.clone(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::FileReplaced {
                path: self.path.clone(),
            }),
            Err(e) => Err(StoreError::io(
                &self.path,
                e,
                "the database file cannot be checked before a commit; check the data directory's permissions",
            )),
        }
    }
}

/// The writer's in-memory state, apart from its connection.
struct Log {
    signer: LogSigner,
    config: StoreConfig,
    state: LogState,
    last_checkpoint_at: Instant,
}

impl WriterThread {
    fn run(&mut self, receiver: &Receiver<Command>) {
        let mut batch = Vec::with_capacity(64);
        loop {
            let wait = match (self.log.time_to_checkpoint(), self.time_to_release()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let first = match wait {
                Some(wait) => match receiver.recv_timeout(wait) {
                    Ok(cmd) => cmd,
                    Err(RecvTimeoutError::Timeout) => {
                        if self.time_to_release() == Some(Duration::ZERO) {
                            self.release_held();
                        }
                        // Nobody is waiting on it; a failure is retried on the
                        // next tick and shows in `verify` as an unsigned tail.
                        if self.log.time_to_checkpoint() == Some(Duration::ZERO) {
                            let _ = self.checkpoint_in_own_transaction();
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match receiver.recv() {
                    Ok(cmd) => cmd,
                    Err(_) => break,
                },
            };
            batch.push(first);
            take_queued(receiver, &mut batch);
            if let Some(rest) = self.gather_for(&batch) {
                // Senders do not wake a writer that sleeps: what comes
                // meanwhile costs them no more than a queue push.
                std::thread::sleep(rest);
                take_queued(receiver, &mut batch);
            }
            if self.process(&mut batch) {
                return;
            }
        }
        // All handles dropped without close(): still commit what is held
        // and sign the tail.
        self.release_held();
        let _ = self.checkpoint_in_own_transaction();
    }

    /// How much longer `batch` should wait for company before it commits:
    /// the rest of [`StoreConfig::gather`] since the previous commit
    /// started, if that one carried [`GATHER_FROM`] appends or more and the
    /// batch holds nothing but appends.
    fn gather_for(&self, batch: &[Command]) -> Option<Duration> {
        let (started, carried) = self.last_commit?;
        if carried < GATHER_FROM || !batch.iter().all(|c| matches!(c, Command::Append(..))) {
            return None;
        }
        self.log
            .config
            .gather
            .checked_sub(started.elapsed())
            .filter(|d| !d.is_zero())
    }

    /// How long the oldest held append may still wait, if one is held.
    fn time_to_release(&self) -> Option<Duration> {
        let since = self.held_since?;
        Some(self.log.config.hold_at_most.saturating_sub(since.elapsed()))
    }

    /// Commit the held appends on their own.
    fn release_held(&mut self) {
        self.held_since = None;
        let held = std::mem::take(&mut self.held);
        if !held.is_empty() {
            self.commit_appends(held);
        }
    }

    /// Handle one batch; returns true when asked to shut down.
    fn process(&mut self, batch: &mut Vec<Command>) -> bool {
        // Held appends wait for anything else; once it comes, they commit
        // first, in the order they came, in its transaction.
        if batch.iter().all(|cmd| matches!(cmd, Command::Held(..))) {
            for cmd in batch.drain(..) {
                if let Command::Held(record, changes, reply) = cmd {
                    self.held.push((record, changes, reply));
                }
            }
            self.held_since.get_or_insert_with(Instant::now);
            return false;
        }
        self.held_since = None;
        let mut appends = std::mem::take(&mut self.held);
        appends.reserve(batch.len());
        let mut others = Vec::new();
        for cmd in batch.drain(..) {
            match cmd {
                Command::Append(record, change, reply) | Command::Held(record, change, reply) => {
                    appends.push((record, change, reply))
                }
                other => others.push(other),
            }
        }
        if !appends.is_empty() {
            self.last_commit = Some((Instant::now(), appends.len()));
            self.commit_appends(appends);
        }
        if self.log.time_to_checkpoint() == Some(Duration::ZERO) {
            let _ = self.checkpoint_in_own_transaction();
        }
        let mut shutdown = false;
        for cmd in others {
            match cmd {
                Command::Checkpoint(reply) => {
                    reply.send(self.checkpoint_in_own_transaction());
                }
                Command::Probe(room, reply) => {
                    reply.send(self.probe(room));
                }
                Command::Shutdown(reply) => {
                    reply.send(self.checkpoint_in_own_transaction().map(|_| ()));
                    shutdown = true;
                }
                Command::Append(..) | Command::Held(..) => {}
                #[cfg(test)]
                Command::PanicOnNextCommit => self.panic_on_next_commit = true,
            }
        }
        shutdown
    }

    fn commit_appends(&mut self, appends: Vec<(Record, Vec<StateChange>, Reply<Appended>)>) {
        let before = self.log.state.clone();
        // The replies stay out here, so that however the transaction fails,
        // every caller is answered.
        let (work, replies): (Vec<_>, Vec<_>) = appends
            .into_iter()
            .map(|(record, changes, reply)| ((record, changes), reply))
            .unzip();
        let mut outcomes: Vec<Result<Appended, StoreError>> = Vec::with_capacity(replies.len());
        let result = (|| -> Result<(), StoreError> {
            let tx = WriteTransaction::begin(&self.conn, "the append transaction")?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO audit_entries(seq, leaf_hash, data) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(|e| StoreError::db("preparing the append", e))?;
                let mut insert_node = tx
                    .prepare_cached("INSERT INTO audit_subtrees(id, hash) VALUES (?1, ?2)")
                    .map_err(|e| StoreError::db("preparing the append", e))?;
                let mut completed = Vec::with_capacity(64);
                for (record, changes) in work {
                    let seq = self.log.state.range.size();
                    let data = match (Entry { seq, record }).encode() {
                        Ok(data) => data,
                        Err(e) => {
                            // Only this caller's record is bad; the batch goes on.
                            outcomes.push(Err(e.into()));
                            continue;
                        }
                    };
                    let leaf = leaf_hash(&data);
                    insert
                        .execute(params![to_i64(seq, "seq")?, &leaf[..], data])
                        .map_err(|e| StoreError::db(format!("appending entry {seq}"), e))?;
                    self.log
                        .state
                        .range
                        .push_reporting(leaf, |s, h| completed.push((s, *h)));
                    for (subtree, hash) in completed.drain(..) {
                        insert_subtree(&mut insert_node, subtree, &hash)?;
                    }
                    for change in changes {
                        apply_change(&tx, change, seq)?;
                    }
                    outcomes.push(Ok(Appended {
                        seq,
                        leaf_hash: leaf,
                    }));
                    let every = self.log.config.checkpoint_every_entries;
                    if every > 0 && self.log.state.range.size().is_multiple_of(every) {
                        self.log.insert_checkpoint(&tx)?;
                    }
                }
            }
            self.db.check()?;
            #[cfg(test)]
            if std::mem::take(&mut self.panic_on_next_commit) {
                panic!("test: the writer panics before committing");
            }
            tx.commit("appended entries")
        })();
        let failure = result.err();
        self.commits.fetch_add(1, Ordering::Relaxed);
        if failure.is_some() {
            // The transaction rolled back on drop: forget what it added.
            self.log.state = before;
        }
        let mut outcomes = outcomes.into_iter();
        for reply in replies {
            reply.send(match (outcomes.next(), &failure) {
                // A record refused on its own keeps its own error.
                (Some(Err(own)), _) => Err(own),
                (Some(Ok(appended)), None) => Ok(appended),
                // Not committed: the batch's error, for the caller whose
                // write failed and those after it too.
                (_, Some(e)) => Err(e.clone()),
                // A committed batch has an outcome for every caller.
                (None, None) => Err(StoreError::db(
                    "answering an append",
                    "the batch committed without an outcome for it",
                )),
            });
        }
    }

    /// Commit a small write (the time, in `meta`), as an append would: the
    /// write lock, a synced WAL write, and the database file's identity.
    /// Commits a small write; with `room` > 0, also a blob of that many
    /// bytes, deleted in the same transaction: its pages are new (the
    /// database grows, or a full disk refuses) and then free for appends.
    fn probe(&mut self, room: usize) -> Result<(), StoreError> {
        let tx = WriteTransaction::begin(&self.conn, "the write probe")?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('write_probe_unix_nanos', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [now_unix_nanos().to_string()],
        )
        .map_err(|e| StoreError::db("writing the write probe", e))?;
        if room > 0 {
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('write_probe_room', zeroblob(?1))
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [i64::try_from(room).unwrap_or(i64::MAX)],
            )
            .and_then(|_| tx.execute("DELETE FROM meta WHERE key = 'write_probe_room'", []))
            .map_err(|e| StoreError::db("writing the write probe's room", e))?;
        }
        self.db.check()?;
        tx.commit("the write probe")
    }

    /// Sign the current log unless the latest checkpoint covers it; return
    /// the latest checkpoint.
    fn checkpoint_in_own_transaction(&mut self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let size = self.log.state.range.size();
        if size == 0 || self.log.state.last_checkpoint_size == Some(size) {
            self.log.last_checkpoint_at = Instant::now();
            return self
                .conn
                .query_row(
                    "SELECT size, root, note, created_unix_nanos FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
                    [],
                    read_checkpoint,
                )
                .optional()
                .map_err(|e| StoreError::db("reading the latest checkpoint", e))?
                .map(to_checkpoint)
                .transpose();
        }
        let before = self.log.state.clone();
        let result = (|| {
            let tx = WriteTransaction::begin(&self.conn, "the checkpoint transaction")?;
            let stored = self.log.insert_checkpoint(&tx)?;
            self.db.check()?;
            tx.commit("a checkpoint")?;
            Ok(Some(stored))
        })();
        if result.is_err() {
            self.log.state = before;
            // Retry after an interval, not in a tight loop.
            self.log.last_checkpoint_at = Instant::now();
        }
        result
    }
}

impl Log {
    /// How long until a time-based checkpoint is due, if one will be.
    fn time_to_checkpoint(&self) -> Option<Duration> {
        let interval = self.config.checkpoint_interval?;
        if self.unsigned() == 0 {
            return None;
        }
        Some(interval.saturating_sub(self.last_checkpoint_at.elapsed()))
    }

    fn unsigned(&self) -> u64 {
        self.state
            .range
            .size()
            .saturating_sub(self.state.last_checkpoint_size.unwrap_or(0))
    }

    fn insert_checkpoint(&mut self, conn: &Connection) -> Result<StoredCheckpoint, StoreError> {
        let range = &self.state.range;
        let checkpoint = Checkpoint {
            origin: self.signer.name().into(),
            size: range.size(),
            root: range.root(),
        };
        let note = self
            .signer
            .sign_checkpoint(&checkpoint)
            .map_err(|e| StoreError::db("signing a checkpoint", e))?;
        let peaks: Vec<u8> = range.peaks().concat();
        let created = now_unix_nanos();
        let size_param = to_i64(checkpoint.size, "checkpoint size")?;
        let created_param = to_i64(created, "checkpoint time")?;
        conn.prepare_cached(
            "INSERT OR IGNORE INTO audit_checkpoints(size, root, note, peaks, created_unix_nanos)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                size_param,
                &checkpoint.root[..],
                note,
                peaks,
                created_param
            ])
        })
        .map_err(|e| {
            StoreError::db(
                format!("storing the checkpoint of size {}", checkpoint.size),
                e,
            )
        })?;
        self.state.last_checkpoint_size = Some(checkpoint.size);
        self.last_checkpoint_at = Instant::now();
        Ok(StoredCheckpoint {
            size: checkpoint.size,
            root: checkpoint.root,
            note,
            created_unix_nanos: created,
        })
    }
}

#[cfg(test)]
mod tests {
    use warden_audit::EventRecord;

    use super::*;

    #[test]
    fn reading_state_does_not_prepare_its_statement_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), StoreConfig::default()).unwrap();
        for i in 0..5u64 {
            store
                .append_with(
                    Record::Event(EventRecord {
                        time_unix_nanos: i,
                        actor: "test".into(),
                        action: "test.label".into(),
                        subject: format!("s{i}"),
                        details: "{}".into(),
                    }),
                    StateChange::PutState {
                        space: format!("labels:s{i}"),
                        key: "pii".into(),
                        value: "1".into(),
                    },
                )
                .unwrap();
            assert_eq!(store.states(&format!("labels:s{i}")).unwrap().len(), 1);
            assert!(store.states(&format!("labels:x{i}")).unwrap().is_empty());
        }
        // The cached statement those reads ran: binding each new space
        // must not have expired it (SQLite counts every re-preparation).
        let reader = store.reader();
        let statement = reader.prepare_cached(STATES_SQL).unwrap();
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::RePrepare),
            0
        );
    }

    fn event() -> Record {
        Record::Event(EventRecord {
            time_unix_nanos: 1,
            actor: "test".into(),
            action: "test.event".into(),
            subject: "s".into(),
            details: "{}".into(),
        })
    }

    #[test]
    fn a_panicking_writer_fails_its_callers_every_later_call_and_close() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), StoreConfig::new("test.example/panic")).unwrap();
        assert_eq!(store.append(event()).unwrap().seq, 0);
        let writer = store.writer.as_ref().unwrap();
        writer
            .sender
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .send(Command::PanicOnNextCommit)
            .unwrap();
        // Answered after the flag is set: the next batch panics.
        store.checkpoint_now().unwrap();

        assert_eq!(store.append(event()), Err(StoreError::WriterPanicked));
        assert_eq!(store.append(event()), Err(StoreError::WriterPanicked));
        assert_eq!(store.check_writable(), Err(StoreError::WriterPanicked));
        assert_eq!(store.close(), Err(StoreError::WriterPanicked));
        assert_eq!(store.close(), Err(StoreError::WriterPanicked));
        // What was acknowledged before is intact; the panicked batch is not
        // in the log.
        assert_eq!(store.log_size().unwrap(), 1);
    }
}
