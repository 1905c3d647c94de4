//! Recovery after the operating system fails the store's writes.
//!
//! A file-size limit of 0 (`RLIMIT_FSIZE`) makes every `write(2)` to a
//! regular file fail with `EFBIG`: a real failure from the kernel, as a
//! failing disk's `EIO` would be, and one that root cannot bypass (unlike
//! `chmod`, which does not affect a file that is already open anyway).
//! The limit is per process, so this file holds one test, and nothing may
//! be printed while the limit is in force.

use std::sync::Arc;
use std::thread;

use warden_audit::{EventRecord, Record};
use warden_store::{SqliteStore, StateChange, Store, StoreConfig, StoreError, verify};

fn event(n: u64) -> Record {
    Record::Event(EventRecord {
        time_unix_nanos: 1_700_000_000_000_000_000 + n,
        actor: "test".into(),
        action: "test.event".into(),
        subject: format!("subject-{n}"),
        details: "{}".into(),
    })
}

/// Writes to regular files fail while this lives.
struct NoFileWrites {
    saved: libc::rlimit,
}

impl NoFileWrites {
    fn start() -> Self {
        // SAFETY: plain libc calls on a valid, owned struct; ignoring
        // SIGXFSZ makes over-limit writes return EFBIG instead of killing
        // the process.
        unsafe {
            let mut saved = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut saved), 0);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: saved.rlim_max,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &none), 0);
            Self { saved }
        }
    }
}

impl Drop for NoFileWrites {
    fn drop(&mut self) {
        // SAFETY: as above; restores the limit read at start.
        unsafe {
            libc::setrlimit(libc::RLIMIT_FSIZE, &self.saved);
        }
    }
}

#[test]
fn appends_fail_while_writes_fail_and_resume_without_a_gap_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        checkpoint_interval: None,
        checkpoint_every_entries: 7,
        ..StoreConfig::new("test.example/write-errors")
    };
    let store = Arc::new(SqliteStore::open(dir.path(), config).unwrap());
    let mut acknowledged = Vec::new();
    for n in 0..10 {
        acknowledged.push((n, store.append(event(n)).unwrap()));
    }

    let failures = {
        let _guard = NoFileWrites::start();
        // Concurrent appends, batched or not, all fail; so do a state
        // change, the probe and a checkpoint.
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(&store);
                thread::spawn(move || store.append(event(100 + i)))
            })
            .collect();
        let mut results: Vec<Result<_, StoreError>> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        results.push(store.append_with(
            event(200),
            StateChange::PutState {
                space: "approvals".into(),
                key: "req-1".into(),
                value: "granted".into(),
            },
        ));
        let probe = store.check_writable();
        let checkpoint = store.checkpoint_now().map(|_| ());
        (results, probe, checkpoint)
    };
    let (results, probe, checkpoint) = failures;
    for result in &results {
        assert!(
            matches!(result, Err(StoreError::Database { .. })),
            "{result:?}"
        );
    }
    assert!(probe.is_err(), "{probe:?}");
    assert!(checkpoint.is_err(), "{checkpoint:?}");
    assert_eq!(store.state("approvals", "req-1").unwrap(), None);

    // Writes work again: the writer is still there, and the log goes on at
    // the next sequence number.
    store.check_writable().unwrap();
    for n in 10..30 {
        let appended = store.append(event(n)).unwrap();
        assert_eq!(appended.seq, n);
        acknowledged.push((n, appended));
    }
    let seq = store
        .append_with(
            event(30),
            StateChange::PutState {
                space: "approvals".into(),
                key: "req-1".into(),
                value: "granted".into(),
            },
        )
        .unwrap()
        .seq;
    assert_eq!(
        store
            .state("approvals", "req-1")
            .unwrap()
            .unwrap()
            .audit_seq,
        seq
    );
    store.close().unwrap();

    let ro = SqliteStore::open_read_only(dir.path()).unwrap();
    let stored = ro.entries(0, usize::MAX).unwrap();
    assert_eq!(stored.len(), 31);
    for (n, appended) in &acknowledged {
        let entry = &stored[*n as usize];
        assert_eq!(
            (entry.seq, entry.leaf_hash),
            (appended.seq, appended.leaf_hash)
        );
        let subject = match entry.entry().unwrap().record {
            Record::Event(e) => e.subject,
            other => panic!("{other:?}"),
        };
        assert_eq!(subject, format!("subject-{n}"));
    }
    let report = verify(&ro, &ro.verifier(), None).unwrap();
    assert_eq!((report.problem, report.entries), (None, 31));
}
