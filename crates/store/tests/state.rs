//! Agents, revocations and state values: written only together with the
//! audit entry that records them.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use warden_audit::{EventRecord, Record};
use warden_store::{
    DB_FILE, MAX_STATE_KEY_BYTES, MAX_STATE_VALUE_BYTES, Revocation, SqliteStore, StateChange,
    Store, StoreConfig, StoreError, StoredState,
};

fn config() -> StoreConfig {
    StoreConfig {
        checkpoint_interval: None,
        ..StoreConfig::new("test.example/state")
    }
}

fn event(action: &str, subject: &str, details: &str) -> Record {
    Record::Event(EventRecord {
        time_unix_nanos: 1,
        actor: "cli:test".into(),
        action: action.into(),
        subject: subject.into(),
        details: details.into(),
    })
}

fn put(store: &SqliteStore, did: &str, record: &str) -> u64 {
    store
        .append_with(
            event("agent.created", did, record),
            StateChange::PutAgent {
                did: did.into(),
                record: record.into(),
            },
        )
        .expect("append with agent")
        .seq
}

fn raw(dir: &Path) -> Connection {
    Connection::open(dir.join(DB_FILE)).expect("open the database directly")
}

#[test]
fn an_agent_is_stored_with_the_audit_entry_that_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let seq = put(&store, "did:key:z6MkB", r#"{"name":"b"}"#);
    let agent = store.agent("did:key:z6MkB").unwrap().expect("stored");
    assert_eq!(agent.record, r#"{"name":"b"}"#);
    assert_eq!(agent.audit_seq, seq);
    let entry = store.entries(seq, 1).unwrap()[0].entry().unwrap();
    assert!(matches!(entry.record, Record::Event(ref e) if e.subject == "did:key:z6MkB"));

    // A new version replaces the old one, and names its own entry.
    put(&store, "did:key:z6MkA", r#"{"name":"a"}"#);
    let seq2 = put(&store, "did:key:z6MkB", r#"{"name":"b2"}"#);
    let all = store.agents().unwrap();
    let dids: Vec<&str> = all.iter().map(|a| a.did.as_str()).collect();
    assert_eq!(dids, ["did:key:z6MkA", "did:key:z6MkB"]);
    assert_eq!(all[1].record, r#"{"name":"b2"}"#);
    assert_eq!(all[1].audit_seq, seq2);
    assert_eq!(store.agent("did:key:z6MkC").unwrap(), None);
    store.close().unwrap();

    // A reader in another process sees them.
    let ro = SqliteStore::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.agents().unwrap(), all);
}

#[test]
fn a_revocation_is_permanent_and_the_first_one_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let revoke = |reason: &str| {
        store
            .append_with(
                event("token.revoked", "ab12", reason),
                StateChange::Revoke {
                    id: "ab12".into(),
                    reason: reason.into(),
                },
            )
            .unwrap()
            .seq
    };
    let first = revoke("leaked");
    let second = revoke("again");
    assert_eq!(
        store.revocations().unwrap(),
        [Revocation {
            id: "ab12".into(),
            reason: "leaked".into(),
            audit_seq: first,
        }]
    );
    // Both attempts are in the log.
    assert_eq!(store.log_size().unwrap(), second + 1);
}

#[test]
fn a_change_whose_record_cannot_be_logged_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let huge = "x".repeat(1 << 20);
    let err = store
        .append_with(
            event("agent.created", "did:key:z6MkH", &huge),
            StateChange::PutAgent {
                did: "did:key:z6MkH".into(),
                record: "{}".into(),
            },
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Encode(_)), "{err}");
    assert_eq!(store.agent("did:key:z6MkH").unwrap(), None);
    assert_eq!(store.log_size().unwrap(), 0);
    // Read-only stores refuse changes like appends.
    store.close().unwrap();
    let ro = SqliteStore::open_read_only(dir.path()).unwrap();
    assert!(matches!(
        ro.append_with(
            event("agent.created", "d", "{}"),
            StateChange::PutAgent {
                did: "d".into(),
                record: "{}".into()
            }
        ),
        Err(StoreError::ReadOnly)
    ));
}

#[test]
fn a_version_2_database_has_no_agents_until_opened_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    store.append(event("x", "y", "{}")).unwrap();
    store.close().unwrap();
    drop(store);
    raw(dir.path())
        .execute_batch(
            "DROP TABLE agents; DROP TABLE revocations; DROP TABLE state;
             PRAGMA user_version = 2;",
        )
        .unwrap();

    let ro = SqliteStore::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.agents().unwrap(), []);
    assert_eq!(ro.revocations().unwrap(), []);
    assert_eq!(ro.agent("d").unwrap(), None);
    drop(ro);

    let store = SqliteStore::open(dir.path(), config()).unwrap();
    put(&store, "did:key:z6MkM", "{}");
    assert_eq!(store.agents().unwrap().len(), 1);
    let version: i64 = raw(dir.path())
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
}

fn put_state(space: &str, key: &str, value: &str) -> StateChange {
    StateChange::PutState {
        space: space.into(),
        key: key.into(),
        value: value.into(),
    }
}

fn delete_state(space: &str, key: &str) -> StateChange {
    StateChange::DeleteState {
        space: space.into(),
        key: key.into(),
    }
}

fn stored(space: &str, key: &str, value: &str, audit_seq: u64) -> StoredState {
    StoredState {
        space: space.into(),
        key: key.into(),
        value: value.into(),
        audit_seq,
    }
}

#[test]
fn a_state_value_is_put_overwritten_and_deleted_with_its_audit_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let set = |change: StateChange| {
        store
            .append_with(event("state.changed", "x", "{}"), change)
            .unwrap()
            .seq
    };
    let a = set(put_state("approvals", "b", "pending"));
    set(put_state("approvals", "a", "granted"));
    set(put_state("kill_switch", "b", "on"));
    assert_eq!(
        store.state("approvals", "b").unwrap(),
        Some(stored("approvals", "b", "pending", a))
    );
    // Spaces are separate; listing is ordered by key.
    let keys: Vec<String> = store
        .states("approvals")
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(store.states("kill_switch").unwrap().len(), 1);
    assert_eq!(store.states("nothing").unwrap(), []);

    let b = set(put_state("approvals", "b", "granted"));
    assert_eq!(
        store.state("approvals", "b").unwrap(),
        Some(stored("approvals", "b", "granted", b))
    );
    set(delete_state("approvals", "b"));
    assert_eq!(store.state("approvals", "b").unwrap(), None);
    assert_eq!(
        store.state("kill_switch", "b").unwrap(),
        Some(stored("kill_switch", "b", "on", 2))
    );
    // Deleting a missing key is not an error, and is still logged.
    let c = set(delete_state("approvals", "never"));
    assert_eq!(store.log_size().unwrap(), c + 1);
}

#[test]
fn several_changes_commit_in_order_with_one_audit_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let seq = store
        .append_with_all(
            event("approval.granted", "req-1", "{}"),
            vec![
                put_state("approvals", "req-1", "granted"),
                put_state("approvals", "req-2", "pending"),
                delete_state("approvals", "req-2"),
                StateChange::PutAgent {
                    did: "did:key:z6MkS".into(),
                    record: "{}".into(),
                },
            ],
        )
        .unwrap()
        .seq;
    assert_eq!(
        store.states("approvals").unwrap(),
        [stored("approvals", "req-1", "granted", seq)]
    );
    assert_eq!(
        store.agent("did:key:z6MkS").unwrap().unwrap().audit_seq,
        seq
    );
    assert_eq!(store.log_size().unwrap(), 1);
    // No changes at all is a plain append.
    assert_eq!(
        store
            .append_with_all(event("x", "y", "{}"), Vec::new())
            .unwrap()
            .seq,
        1
    );
}

#[test]
fn keys_before_a_key_are_deleted_in_one_change_and_only_in_their_space() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let before = |space: &str, key: &str| StateChange::DeleteStatesBefore {
        space: space.into(),
        key: key.into(),
    };
    let first = store
        .append_with_all(
            event("state.changed", "x", "{}"),
            ["0010/a", "0019/b", "0020", "0020/c", "0030/d"]
                .into_iter()
                .map(|k| put_state("nonces", k, ""))
                .chain([put_state("other", "0001", "")])
                .collect(),
        )
        .unwrap()
        .seq;
    store
        .append_with(event("state.changed", "x", "{}"), before("nonces", "0020"))
        .unwrap();
    // Bytewise: "0020" itself and the longer "0020/c" sort after the bound.
    assert_eq!(
        store.states("nonces").unwrap(),
        [
            stored("nonces", "0020", "", first),
            stored("nonces", "0020/c", "", first),
            stored("nonces", "0030/d", "", first),
        ]
    );
    assert_eq!(store.states("other").unwrap().len(), 1);
    // Deleting none is not an error, and is still logged.
    let seq = store
        .append_with(event("state.changed", "x", "{}"), before("nonces", ""))
        .unwrap()
        .seq;
    assert_eq!(store.log_size().unwrap(), seq + 1);
    assert_eq!(store.states("nonces").unwrap().len(), 3);
}

#[test]
fn state_changes_whose_record_cannot_be_logged_are_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let before = store
        .append_with(
            event("kill_switch.off", "global", "{}"),
            put_state("kill_switch", "global", "off"),
        )
        .unwrap()
        .seq;
    let huge = "x".repeat(1 << 20);
    let err = store
        .append_with_all(
            event("kill_switch.on", "global", &huge),
            vec![
                put_state("kill_switch", "global", "on"),
                put_state("approvals", "req-1", "granted"),
            ],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Encode(_)), "{err}");
    assert_eq!(
        store.state("kill_switch", "global").unwrap(),
        Some(stored("kill_switch", "global", "off", before))
    );
    assert_eq!(store.state("approvals", "req-1").unwrap(), None);
    assert_eq!(store.log_size().unwrap(), 1);
}

#[test]
fn state_space_key_and_value_limits_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let at_limit = "k".repeat(MAX_STATE_KEY_BYTES);
    let over = "k".repeat(MAX_STATE_KEY_BYTES + 1);
    let big_value = "v".repeat(MAX_STATE_VALUE_BYTES);
    // At the limits: stored and read back.
    let seq = store
        .append_with(
            event("state.changed", "big", "{}"),
            put_state(&at_limit, &at_limit, &big_value),
        )
        .unwrap()
        .seq;
    assert_eq!(
        store.state(&at_limit, &at_limit).unwrap(),
        Some(stored(&at_limit, &at_limit, &big_value, seq))
    );

    let too_large = |change: StateChange| {
        let err = store
            .append_with_all(
                event("state.changed", "x", "{}"),
                vec![put_state("s", "fine", "v"), change],
            )
            .unwrap_err();
        let StoreError::TooLarge { what, len, limit } = err else {
            panic!("expected TooLarge, got {err}");
        };
        assert!(err.to_string().contains("more than the limit"), "{err}");
        (what, len, limit)
    };
    assert_eq!(
        too_large(put_state(&over, "k", "v")),
        ("state space", MAX_STATE_KEY_BYTES + 1, MAX_STATE_KEY_BYTES)
    );
    assert_eq!(
        too_large(delete_state("s", &over)),
        ("state key", MAX_STATE_KEY_BYTES + 1, MAX_STATE_KEY_BYTES)
    );
    assert_eq!(
        too_large(StateChange::DeleteStatesBefore {
            space: "s".into(),
            key: over.clone(),
        }),
        ("state key", MAX_STATE_KEY_BYTES + 1, MAX_STATE_KEY_BYTES)
    );
    let over_value = "v".repeat(MAX_STATE_VALUE_BYTES + 1);
    assert_eq!(
        too_large(put_state("s", "k", &over_value)),
        (
            "state value",
            MAX_STATE_VALUE_BYTES + 1,
            MAX_STATE_VALUE_BYTES
        )
    );
    // Nothing of the refused calls was written.
    assert_eq!(store.log_size().unwrap(), 1);
    assert_eq!(store.state("s", "fine").unwrap(), None);
    // Reads refuse names that could never be stored.
    assert!(matches!(
        store.state("s", &over),
        Err(StoreError::TooLarge { .. })
    ));
    assert!(matches!(
        store.states(&over),
        Err(StoreError::TooLarge { .. })
    ));
}

#[test]
fn state_survives_reopening_and_is_read_by_a_read_only_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let seq = store
        .append_with(
            event("approval.granted", "req-9", "{}"),
            put_state("approvals", "req-9", r#"{"by":"alice"}"#),
        )
        .unwrap()
        .seq;
    store.close().unwrap();
    drop(store);
    let want = stored("approvals", "req-9", r#"{"by":"alice"}"#, seq);

    let ro = SqliteStore::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.state("approvals", "req-9").unwrap(), Some(want.clone()));
    assert_eq!(ro.states("approvals").unwrap(), std::slice::from_ref(&want));
    assert!(matches!(
        ro.append_with(event("x", "y", "{}"), delete_state("approvals", "req-9")),
        Err(StoreError::ReadOnly)
    ));
    drop(ro);

    let store = SqliteStore::open(dir.path(), config()).unwrap();
    assert_eq!(store.state("approvals", "req-9").unwrap(), Some(want));
    store
        .append_with(
            event("approval.revoked", "req-9", "{}"),
            delete_state("approvals", "req-9"),
        )
        .unwrap();
    store.close().unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    assert_eq!(store.states("approvals").unwrap(), []);
}

#[test]
fn a_version_3_database_has_no_state_until_opened_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    put(&store, "did:key:z6MkV", "{}");
    store.close().unwrap();
    drop(store);
    // What schema version 3 wrote: everything but the state table.
    raw(dir.path())
        .execute_batch("DROP TABLE state; PRAGMA user_version = 3;")
        .unwrap();

    let ro = SqliteStore::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.state("approvals", "req-1").unwrap(), None);
    assert_eq!(ro.states("approvals").unwrap(), []);
    assert_eq!(ro.agents().unwrap().len(), 1);
    drop(ro);

    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let version: i64 = raw(dir.path())
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
    let seq = store
        .append_with(
            event("approval.granted", "req-1", "{}"),
            put_state("approvals", "req-1", "granted"),
        )
        .unwrap()
        .seq;
    assert_eq!(seq, 1);
    assert_eq!(
        store.states("approvals").unwrap(),
        [stored("approvals", "req-1", "granted", 1)]
    );
    assert_eq!(store.agents().unwrap().len(), 1);
    store.close().unwrap();
    let report = warden_store::verify(&store, &store.verifier(), None).unwrap();
    assert_eq!((report.problem, report.entries), (None, 2));
}

/// Waits for what `append_then` hands its callback.
fn appended_then(
    store: &SqliteStore,
    record: Record,
    changes: Vec<StateChange>,
) -> mpsc::Receiver<Result<u64, StoreError>> {
    let (tx, rx) = mpsc::channel();
    store.append_then(
        record,
        changes,
        Box::new(move |r| tx.send(r.map(|a| a.seq)).expect("the test waits")),
    );
    rx
}

#[test]
fn append_then_answers_each_callback_once_its_record_and_changes_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    // Many at once: they share commits, and each gets its own sequence number.
    let waits: Vec<_> = (0..200)
        .map(|i| {
            appended_then(
                &store,
                event("label.added", &format!("s{i}"), "{}"),
                vec![put_state("labels/test", &format!("k{i}"), "")],
            )
        })
        .collect();
    let mut seqs: Vec<u64> = waits
        .iter()
        .map(|rx| rx.recv().expect("answered").expect("appended"))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..200).collect::<Vec<u64>>());
    // A change over the limits fails that call alone, and nothing is written.
    let big = "x".repeat(MAX_STATE_VALUE_BYTES + 1);
    let refused = appended_then(
        &store,
        event("x", "y", "{}"),
        vec![put_state("s", "k", &big)],
    );
    assert!(matches!(
        refused.recv().unwrap(),
        Err(StoreError::TooLarge { .. })
    ));
    store.close().unwrap();
    drop(store);

    let store = SqliteStore::open(dir.path(), config()).unwrap();
    assert_eq!(store.log_size().unwrap(), 200);
    assert_eq!(store.states("labels/test").unwrap().len(), 200);
    // After close, and on a read-only store, the callback hears why.
    store.close().unwrap();
    let closed = appended_then(&store, event("x", "y", "{}"), Vec::new());
    assert_eq!(closed.recv().unwrap(), Err(StoreError::Closed));
    drop(store);
    let read_only = SqliteStore::open_read_only(dir.path()).unwrap();
    let refused = appended_then(&read_only, event("x", "y", "{}"), Vec::new());
    assert_eq!(refused.recv().unwrap(), Err(StoreError::ReadOnly));
}

/// Waits for what `append_held` hands its callback.
fn appended_held(store: &SqliteStore, record: Record) -> mpsc::Receiver<Result<u64, StoreError>> {
    let (tx, rx) = mpsc::channel();
    store.append_held(
        record,
        Vec::new(),
        Box::new(move |r| tx.send(r.map(|a| a.seq)).expect("the test waits")),
    );
    rx
}

#[test]
fn a_held_append_commits_with_the_next_command_or_alone_once_it_has_waited_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let patient = StoreConfig {
        hold_at_most: Duration::from_secs(600),
        ..config()
    };
    let store = SqliteStore::open(dir.path(), patient.clone()).unwrap();
    let held = appended_held(&store, event("tool.outcome", "a", "{}"));
    assert!(
        held.recv_timeout(Duration::from_millis(300)).is_err(),
        "a held append waits for the next command"
    );
    assert_eq!(
        store.log_size().unwrap(),
        0,
        "and is not committed meanwhile"
    );
    // The next append commits it first, in its transaction: its callback
    // has run by the time the append returns.
    let seq = store.append(event("decision", "b", "{}")).unwrap().seq;
    assert_eq!((held.try_recv(), seq), (Ok(Ok(0)), 1));
    // A checkpoint and a close take it along too.
    let held = appended_held(&store, event("tool.outcome", "c", "{}"));
    let checkpoint = store.checkpoint_now().unwrap().expect("a checkpoint");
    assert_eq!((held.try_recv(), checkpoint.size), (Ok(Ok(2)), 3));
    let held = appended_held(&store, event("tool.outcome", "d", "{}"));
    store.close().unwrap();
    assert_eq!(held.try_recv(), Ok(Ok(3)));
    drop(store);

    // With nothing else coming, it commits alone after `hold_at_most`.
    let brief = StoreConfig {
        hold_at_most: Duration::from_millis(50),
        ..patient
    };
    let store = SqliteStore::open(dir.path(), brief).unwrap();
    let started = Instant::now();
    let held = appended_held(&store, event("tool.outcome", "e", "{}"));
    let answer = held.recv_timeout(Duration::from_secs(10));
    assert_eq!(answer, Ok(Ok(4)));
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(store.log_size().unwrap(), 5);
    // After close, it fails at once like any append.
    store.close().unwrap();
    let closed = appended_held(&store, event("x", "y", "{}"));
    assert_eq!(closed.recv().unwrap(), Err(StoreError::Closed));
    let report = warden_store::verify(&store, &store.verifier(), None).unwrap();
    assert_eq!((report.problem, report.entries), (None, 5));
}
