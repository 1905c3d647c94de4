//! The store under failures: a removed or replaced database file, and the
//! write probe behind a server's `/readyz`.

use std::fs;

use warden_audit::{EventRecord, Record};
use warden_store::{DB_FILE, SqliteStore, Store, StoreConfig, StoreError, verify};

fn config() -> StoreConfig {
    StoreConfig {
        checkpoint_interval: None,
        ..StoreConfig::new("test.example/failures")
    }
}

fn event(n: u64) -> Record {
    Record::Event(EventRecord {
        time_unix_nanos: 1_700_000_000_000_000_000 + n,
        actor: "test".into(),
        action: "test.event".into(),
        subject: format!("subject-{n}"),
        details: "{}".into(),
    })
}

fn is_file_replaced<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    match result {
        Err(err @ StoreError::FileReplaced { .. }) => {
            let text = err.to_string();
            assert!(text.contains(DB_FILE), "{text}");
            assert!(text.contains("refusing to acknowledge records"), "{text}");
            true
        }
        other => panic!("expected FileReplaced, got {other:?}"),
    }
}

#[test]
fn check_writable_commits_a_probe_and_read_only_stores_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    store.check_writable().unwrap();
    store.append(event(0)).unwrap();
    store.check_writable().unwrap();
    // The probe is not a log entry.
    assert_eq!(store.log_size().unwrap(), 1);
    store.close().unwrap();
    assert!(matches!(store.check_writable(), Err(StoreError::Closed)));
    drop(store);

    let ro = SqliteStore::open_read_only(dir.path()).unwrap();
    assert!(matches!(ro.check_writable(), Err(StoreError::ReadOnly)));
    let report = verify(&ro, &ro.verifier(), None).unwrap();
    assert_eq!((report.problem, report.entries), (None, 1));
}

#[test]
fn appends_fail_and_keep_failing_once_the_data_directory_is_removed() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join(".warden");
    let store = SqliteStore::open(&dir, config()).unwrap();
    assert_eq!(store.append(event(0)).unwrap().seq, 0);
    fs::remove_dir_all(&dir).unwrap();

    assert!(is_file_replaced(store.append(event(1))));
    assert!(is_file_replaced(store.append(event(2))));
    assert!(is_file_replaced(store.check_writable()));
    assert!(is_file_replaced(store.checkpoint_now()));

    // A new store in the same place is another log; the old one still
    // refuses, and the new one starts at 0.
    let fresh = SqliteStore::open(&dir, config()).unwrap();
    assert_eq!(fresh.append(event(3)).unwrap().seq, 0);
    assert!(is_file_replaced(store.append(event(4))));
    assert!(is_file_replaced(store.close()));
    fresh.close().unwrap();
    let report = verify(&fresh, &fresh.verifier(), None).unwrap();
    assert_eq!((report.problem, report.entries), (None, 1));
}

#[test]
fn appends_fail_once_the_database_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    store.append(event(0)).unwrap();
    store.checkpoint_now().unwrap();
    // A copy renamed over it: same name and content, another file.
    let db = dir.path().join(DB_FILE);
    let copy = dir.path().join("copy.db");
    fs::copy(&db, &copy).unwrap();
    fs::rename(&copy, &db).unwrap();

    assert!(is_file_replaced(store.append(event(1))));
    assert!(is_file_replaced(store.check_writable()));
    assert_eq!(store.log_size().unwrap(), 1);
}
