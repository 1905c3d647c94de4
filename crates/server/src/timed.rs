//! The store as the gate sees it: every call passes through to the SQLite
//! store; appends are timed and counted for the metrics.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use warden_audit::{EventRecord, Hash, LogVerifier, Record, Subtree};
use warden_store::{
    AppendDone, Appended, ConsistencyProof, InclusionProof, Revocation, SqliteStore, StateChange,
    Store, StoreError, StoredAgent, StoredCheckpoint, StoredEntry, StoredState, StoredSubtree,
};

use crate::metrics::Metrics;

/// The room the readiness probe asks for after an append failed: about a
/// batch of decision records.
const RECOVERY_ROOM: usize = 64 * 1024;

pub(crate) struct TimedStore {
    inner: Arc<SqliteStore>,
    metrics: Metrics,
    /// The error of the latest append, if it failed: a probe can succeed
    /// where records do not fit (a full disk reuses the log's free pages
    /// for a small probe), so readiness also asks how the last real append
    /// went.
    last_failure: Arc<Mutex<Option<String>>>,
}

/// Whether `event` is the gate's record of an agent's ring changing: a
/// `trust.*` event by `warden` whose details have a top-level `ring_to`.
/// Only the details of such events are parsed, and text that people
/// wrote (a comment, a kill reason) cannot pass for one.
fn moves_a_ring(event: &EventRecord) -> bool {
    event.actor == "warden"
        && event.action.starts_with("trust.")
        && serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&event.details)
            .is_ok_and(|details| details.contains_key("ring_to"))
}

impl TimedStore {
    pub(crate) fn new(inner: Arc<SqliteStore>, metrics: Metrics) -> TimedStore {
        TimedStore {
            inner,
            metrics,
            last_failure: Arc::default(),
        }
    }

    fn timed(
        &self,
        record: Record,
        append: impl FnOnce(Record) -> Result<Appended, StoreError>,
    ) -> Result<Appended, StoreError> {
        let observe = self.observer(&record);
        let result = append(record);
        observe(&result);
        result
    }

    /// What to call with the result of an append of `record` that starts
    /// now: times it and remembers whether it failed.
    fn observer(&self, record: &Record) -> impl FnOnce(&Result<Appended, StoreError>) + use<> {
        let transition = match record {
            Record::Event(e) => moves_a_ring(e),
            _ => false,
        };
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let last_failure = self.last_failure.clone();
        move |result| {
            metrics.observe_append(started.elapsed(), result.as_ref().ok(), transition);
            let failure = result.as_ref().err().map(|e| e.to_string());
            *last_failure.lock().unwrap_or_else(|e| e.into_inner()) = failure;
        }
    }

    /// `done`, after the append's time and result are observed.
    fn observed(&self, record: &Record, done: AppendDone) -> AppendDone {
        let observe = self.observer(record);
        Box::new(move |result| {
            observe(&result);
            done(result);
        })
    }
}

impl Store for TimedStore {
    fn append(&self, record: Record) -> Result<Appended, StoreError> {
        self.timed(record, |r| self.inner.append(r))
    }

    fn append_with(&self, record: Record, change: StateChange) -> Result<Appended, StoreError> {
        self.timed(record, |r| self.inner.append_with(r, change))
    }

    fn append_with_all(
        &self,
        record: Record,
        changes: Vec<StateChange>,
    ) -> Result<Appended, StoreError> {
        self.timed(record, |r| self.inner.append_with_all(r, changes))
    }

    fn append_then(&self, record: Record, changes: Vec<StateChange>, done: AppendDone) {
        let done = self.observed(&record, done);
        self.inner.append_then(record, changes, done);
    }

    fn append_held(&self, record: Record, changes: Vec<StateChange>, done: AppendDone) {
        let done = self.observed(&record, done);
        self.inner.append_held(record, changes, done);
    }

    fn agent(&self, did: &str) -> Result<Option<StoredAgent>, StoreError> {
        self.inner.agent(did)
    }

    fn agents(&self) -> Result<Vec<StoredAgent>, StoreError> {
        self.inner.agents()
    }

    fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.inner.revocations()
    }

    fn state(&self, space: &str, key: &str) -> Result<Option<StoredState>, StoreError> {
        self.inner.state(space, key)
    }

    fn states(&self, space: &str) -> Result<Vec<StoredState>, StoreError> {
        self.inner.states(space)
    }

    /// The writer's probe; after a failed append, one that needs the room
    /// of a batch of appends ([`RECOVERY_ROOM`]), and that clears the
    /// failure when it succeeds. So readiness comes back with the room,
    /// without waiting for traffic that a failing readiness keeps away.
    fn check_writable(&self) -> Result<(), StoreError> {
        let last = self
            .last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(message) = last else {
            return self.inner.check_writable();
        };
        let unready = |message: String| StoreError::Database {
            doing: "the latest audit append".into(),
            message,
            hint: "ready again once there is room to append; check disk space and permissions of the data directory",
        };
        if let Err(e) = self.inner.check_room(RECOVERY_ROOM) {
            return Err(unready(format!("{message}; and now: {e}")));
        }
        let mut failure = self.last_failure.lock().unwrap_or_else(|e| e.into_inner());
        match failure.clone() {
            // An append that failed meanwhile says more than the probe.
            Some(latest) if latest != message => Err(unready(latest)),
            _ => {
                *failure = None;
                Ok(())
            }
        }
    }

    fn entries(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        self.inner.entries(from_seq, limit)
    }

    fn leaf_hashes(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, Hash)>, StoreError> {
        self.inner.leaf_hashes(from_seq, limit)
    }

    fn log_size(&self) -> Result<u64, StoreError> {
        self.inner.log_size()
    }

    fn subtree_hashes(&self, subtrees: &[Subtree]) -> Result<Vec<Hash>, StoreError> {
        self.inner.subtree_hashes(subtrees)
    }

    fn stored_subtrees(
        &self,
        last_seqs: Range<u64>,
    ) -> Result<Option<Vec<StoredSubtree>>, StoreError> {
        self.inner.stored_subtrees(last_seqs)
    }

    fn inclusion_proof(&self, seq: u64, size: u64) -> Result<InclusionProof, StoreError> {
        self.inner.inclusion_proof(seq, size)
    }

    fn consistency_proof(&self, size1: u64, size2: u64) -> Result<ConsistencyProof, StoreError> {
        self.inner.consistency_proof(size1, size2)
    }

    fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.inner.checkpoints()
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.latest_checkpoint()
    }

    fn checkpoint_now(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.checkpoint_now()
    }

    fn verifier(&self) -> LogVerifier {
        self.inner.verifier()
    }

    fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }
}
