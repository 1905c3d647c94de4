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

/// A record of about 2 KiB, so a few hundred fill a small quota.
fn bulky(n: u64) -> Record {
    Record::Event(EventRecord {
        time_unix_nanos: 1_700_000_000_000_000_000 + n,
        actor: "test".into(),
        action: "test.bulky".into(),
        subject: format!("subject-{n}"),
        details: format!(r#"{{"pad":"{}"}}"#, "p".repeat(2000)),
    })
}

#[test]
fn a_full_database_refuses_appends_keeps_what_it_acknowledged_and_resumes_with_room() {
    let dir = tempfile::tempdir().unwrap();
    let quota = StoreConfig {
        max_page_count: Some(64),
        checkpoint_every_entries: 50,
        ..config()
    };
    let store = SqliteStore::open(dir.path(), quota.clone()).unwrap();
    let mut acknowledged = Vec::new();
    let err = loop {
        let n = acknowledged.len() as u64;
        assert!(n < 10_000, "the quota never filled");
        match store.append(bulky(n)) {
            Ok(appended) => {
                assert_eq!(appended.seq, n);
                acknowledged.push(appended);
            }
            Err(err) => break err,
        }
    };
    assert!(
        matches!(err, StoreError::Database { ref message, .. } if message.contains("database or disk is full")),
        "{err}"
    );
    let full_at = acknowledged.len() as u64;
    assert!(full_at > 10, "only {full_at} entries fit");

    // Still full: later appends fail too and take no sequence number, and a
    // state change whose entry does not fit is not applied.
    assert!(store.append(bulky(full_at)).is_err());
    let err = store
        .append_with(
            bulky(full_at),
            warden_store::StateChange::PutState {
                space: "kill_switch".into(),
                key: "global".into(),
                value: "on".into(),
            },
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err}");
    assert_eq!(store.state("kill_switch", "global").unwrap(), None);
    assert_eq!(store.log_size().unwrap(), full_at);

    // Everything acknowledged is there and verifies.
    let stored = store.entries(0, usize::MAX).unwrap();
    assert_eq!(stored.len() as u64, full_at);
    for (entry, appended) in stored.iter().zip(&acknowledged) {
        assert_eq!(
            (entry.seq, entry.leaf_hash),
            (appended.seq, appended.leaf_hash)
        );
    }
    let report = verify(&store, &store.verifier(), None).unwrap();
    assert_eq!((report.problem, report.entries), (None, full_at));
    // The final checkpoint may not fit either; close reports that.
    let _ = store.close();
    drop(store);

    // With room again, the log continues where it stopped.
    let roomy = StoreConfig {
        max_page_count: None,
        ..quota
    };
    let store = SqliteStore::open(dir.path(), roomy).unwrap();
    for n in full_at..full_at + 20 {
        assert_eq!(store.append(bulky(n)).unwrap().seq, n);
    }
    store.check_writable().unwrap();
    store.close().unwrap();
    let report = verify(&store, &store.verifier(), None).unwrap();
    assert_eq!((report.problem, report.entries), (None, full_at + 20));
}
