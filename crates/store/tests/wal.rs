//! The background checkpointer: committed WAL frames reach the database
//! file while the writer goes on, not inside one of its commits.

use std::time::{Duration, Instant};

use warden_audit::{EventRecord, Record};
use warden_store::{DB_FILE, SqliteStore, Store, StoreConfig};

fn event(i: usize) -> Record {
    Record::Event(EventRecord {
        time_unix_nanos: 1,
        actor: "cli:test".into(),
        action: "test.wal".into(),
        subject: format!("entry {i}"),
        details: "{}".into(),
    })
}

#[test]
fn committed_frames_are_copied_into_the_database_file_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        dir.path(),
        StoreConfig {
            checkpoint_interval: None,
            ..StoreConfig::new("test.example/wal")
        },
    )
    .unwrap();
    let db = dir.path().join(DB_FILE);
    let before = std::fs::metadata(&db).unwrap().len();
    // Few enough commits that SQLite's own automatic checkpoint (at 1,000
    // WAL frames) does not run: only the background thread copies them.
    for i in 0..60 {
        store.append(event(i)).unwrap();
    }
    let started = Instant::now();
    let grown = loop {
        let now = std::fs::metadata(&db).unwrap().len();
        if now > before {
            break now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the database file stayed at {before} bytes: nothing was checkpointed"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(grown > before);
    // The log reads back whole, and closes cleanly.
    assert_eq!(store.log_size().unwrap(), 60);
    store.close().unwrap();
    let report = warden_store::verify(&store, &store.verifier(), None).unwrap();
    assert_eq!((report.problem, report.entries), (None, 60));
}
