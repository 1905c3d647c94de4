//! Agents and revocations: written only together with the audit entry that
//! records them.

use std::path::Path;

use rusqlite::Connection;
use warden_audit::{EventRecord, Record};
use warden_store::{DB_FILE, Revocation, SqliteStore, StateChange, Store, StoreConfig, StoreError};

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
        .execute_batch("DROP TABLE agents; DROP TABLE revocations; PRAGMA user_version = 2;")
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
    assert_eq!(version, 3);
}
