//! Behaviour of the SQLite store through the public API.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, params};
use warden_audit::{
    Arguments, CompactRange, DecisionRecord, Entry, LogSigner, LogVerifier, Outcome, OutcomeRecord,
    Record, leaf_hash, verify_consistency, verify_inclusion,
};
use warden_store::{
    DB_FILE, KEY_FILE, ProblemKind, SqliteStore, Store, StoreConfig, StoreError, consistency_proof,
    entries_from, inclusion_proof, verify,
};

const ORIGIN: &str = "test.example/warden";

fn decision(n: u64) -> Record {
    Record::Decision(DecisionRecord {
        time_unix_nanos: 1_700_000_000_000_000_000 + n,
        agent: "did:key:z6MkAgent".into(),
        session: format!("session-{}", n % 7),
        point: "pre_tool_call".into(),
        tool: "sql.query".into(),
        arguments: Arguments::Json(format!(r#"{{"query":"SELECT {n}"}}"#)),
        intents: vec!["read_only".into()],
        verdict: "allow".into(),
        rule: Some("allow-reads".into()),
        reason: "rule:allow-reads".into(),
        message: String::new(),
        action_hash: format!("{n:064x}"),
        policy_name: "test".into(),
        policy_hash: "ab".repeat(32),
        sponsor: None,
        caller: None,
    })
}

fn config(every: u64) -> StoreConfig {
    StoreConfig {
        checkpoint_every_entries: every,
        checkpoint_interval: None,
        ..StoreConfig::new(ORIGIN)
    }
}

/// A closed log of `n` decisions with a checkpoint every `every` entries.
fn log_of(dir: &Path, n: u64, every: u64) -> LogVerifier {
    let store = SqliteStore::open(dir, config(every)).expect("open");
    for i in 0..n {
        assert_eq!(store.append(decision(i)).expect("append").seq, i);
    }
    store.close().expect("close");
    store.verifier()
}

fn raw(dir: &Path) -> Connection {
    Connection::open(dir.join(DB_FILE)).expect("open the database directly")
}

/// Recompute every stored subtree hash from the stored leaf hashes, as a
/// forger who altered entries would.
fn rewrite_subtrees(db: &Connection) {
    let leaves: Vec<Vec<u8>> = db
        .prepare("SELECT leaf_hash FROM audit_entries ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut range = CompactRange::new();
    for leaf in leaves {
        let mut completed = Vec::new();
        range.push_reporting(leaf.try_into().unwrap(), |s, h| completed.push((s, *h)));
        for (s, h) in completed {
            db.execute(
                "UPDATE audit_subtrees SET hash = ?1 WHERE id = ?2",
                params![&h[..], (s.last() * 64 + u64::from(s.height)) as i64],
            )
            .unwrap();
        }
    }
}

fn check(dir: &Path, verifier: &LogVerifier) -> warden_store::VerifyReport {
    let store = SqliteStore::open_read_only(dir).expect("open read-only");
    verify(&store, verifier, None).expect("verify runs")
}

#[test]
fn append_returns_consecutive_seqs_and_the_leaf_hash_of_the_stored_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config(0)).unwrap();
    let a = store.append(decision(0)).unwrap();
    let b = store
        .append(Record::Outcome(OutcomeRecord {
            time_unix_nanos: 1,
            decision_seq: 0,
            outcome: Outcome::Succeeded,
            result_hash: Some([3; 32]),
            error: None,
        }))
        .unwrap();
    assert_eq!((a.seq, b.seq), (0, 1));
    let entries = store.entries(0, 10).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].leaf_hash, b.leaf_hash);
    assert_eq!(leaf_hash(&entries[0].data), a.leaf_hash);
    let decoded = entries[1].entry().unwrap();
    assert_eq!(decoded, Entry::decode(&entries[1].data).unwrap());
    assert_eq!(entries[1].leaf_hash_hex(), hex::encode(b.leaf_hash));
    assert!(matches!(
        decoded.record,
        Record::Outcome(OutcomeRecord {
            decision_seq: 0,
            ..
        })
    ));
    assert_eq!(store.log_size().unwrap(), 2);
    assert_eq!(store.entries(1, 10).unwrap().len(), 1);
}

#[test]
fn checkpoints_are_signed_every_n_entries_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let verifier = log_of(dir.path(), 25, 10);
    let store = SqliteStore::open_read_only(dir.path()).unwrap();
    let sizes: Vec<u64> = store
        .checkpoints()
        .unwrap()
        .iter()
        .map(|c| c.size)
        .collect();
    assert_eq!(sizes, vec![10, 20, 25]);
    let latest = store.latest_checkpoint().unwrap().unwrap();
    let signed = verifier.verify_checkpoint(&latest.note).unwrap();
    assert_eq!(
        (signed.origin.as_str(), signed.size, signed.root),
        (ORIGIN, 25, latest.root)
    );
}

#[test]
fn checkpoints_are_signed_after_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        dir.path(),
        StoreConfig {
            checkpoint_every_entries: 0,
            checkpoint_interval: Some(Duration::from_millis(50)),
            ..StoreConfig::new(ORIGIN)
        },
    )
    .unwrap();
    store.append(decision(0)).unwrap();
    store.append(decision(1)).unwrap();
    let mut waited = Duration::ZERO;
    while store.latest_checkpoint().unwrap().is_none() && waited < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
        waited += Duration::from_millis(10);
    }
    assert_eq!(store.latest_checkpoint().unwrap().map(|c| c.size), Some(2));
}

#[test]
fn reopening_continues_the_log_and_its_tree() {
    let dir = tempfile::tempdir().unwrap();
    let verifier = log_of(dir.path(), 13, 5);
    let store = SqliteStore::open(dir.path(), config(5)).unwrap();
    assert_eq!(
        store.verifier(),
        verifier,
        "the key is loaded, not replaced"
    );
    assert_eq!(store.append(decision(13)).unwrap().seq, 13);
    store.close().unwrap();
    let report = check(dir.path(), &verifier);
    assert_eq!(report.problem, None);
    assert_eq!((report.entries, report.unsigned_tail), (14, 0));
    assert_eq!(report.checkpoints, 4); // 5, 10, 13 (close), 14 (close)
}

#[test]
fn concurrent_appends_get_unique_contiguous_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), config(100)).unwrap());
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| store.append(decision(t * 1000 + i)).unwrap().seq)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..800).collect::<Vec<_>>());
    store.close().unwrap();
    assert_verifies(&store);
}

/// `verify` finds no problem in `store`'s log.
fn assert_verifies(store: &SqliteStore) {
    assert_eq!(
        verify(store, &store.verifier(), None).unwrap().problem,
        None
    );
}

/// A store without checkpoints that gathers commits for `gather`.
fn gathering(dir: &Path, gather: Duration) -> Arc<SqliteStore> {
    let config = StoreConfig {
        gather,
        ..config(0)
    };
    Arc::new(SqliteStore::open(dir, config).unwrap())
}

/// Appends from `threads` threads, each waiting for its own before sending
/// the next, for `run`: how many were committed.
fn appends_in(store: &Arc<SqliteStore>, threads: u64, run: Duration) -> u64 {
    let until = std::time::Instant::now() + run;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = Arc::clone(store);
            std::thread::spawn(move || {
                let mut done = 0;
                while std::time::Instant::now() < until {
                    store.append(decision(t * 1_000_000 + done)).unwrap();
                    done += 1;
                }
                done
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

#[test]
fn a_busy_writer_gathers_appends_for_the_gather_interval() {
    // 16 callers keep every commit above GATHER_FROM appends, so commits
    // start at most every 250 ms: about 5 in 1.2 s, each carrying the 16
    // (the first ones, before the writer is busy, carry fewer). Without
    // gathering this disk commits hundreds of batches in that time.
    let dir = tempfile::tempdir().unwrap();
    let store = gathering(dir.path(), Duration::from_millis(250));
    let appended = appends_in(&store, 16, Duration::from_millis(1200));
    assert!(appended >= 16, "{appended} appends: the writer must go on");
    assert!(
        appended <= 16 * 12,
        "{appended} appends in 1.2 s: commits did not wait for the gather interval"
    );
    store.close().unwrap();
    assert_verifies(&store);
}

#[test]
fn a_lone_caller_never_waits_for_the_gather_interval() {
    // One caller at a time is never a busy writer: with a 10 s gather
    // interval, 20 appends in a row still take well under one interval.
    let dir = tempfile::tempdir().unwrap();
    let store = gathering(dir.path(), Duration::from_secs(10));
    let started = std::time::Instant::now();
    for i in 0..20 {
        assert_eq!(store.append(decision(i)).unwrap().seq, i);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "20 lone appends took {:?}",
        started.elapsed()
    );
    // Seven callers (fewer than GATHER_FROM) are not busy enough either.
    let appended = appends_in(
        &store,
        warden_store::GATHER_FROM as u64 - 1,
        Duration::from_secs(1),
    );
    assert!(
        appended > 7 * 2,
        "{appended} appends from 7 callers in 1 s: they waited for the gather interval"
    );
}

#[test]
fn an_oversized_record_fails_alone_and_the_batch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config(0)).unwrap();
    let Record::Decision(mut big) = decision(0) else {
        unreachable!()
    };
    big.arguments = Arguments::Json("x".repeat(warden_audit::record::MAX_ENTRY_BYTES));
    let err = store.append(Record::Decision(big)).unwrap_err();
    assert!(matches!(err, StoreError::Encode(_)), "{err}");
    assert!(err.to_string().contains("hint"), "{err}");
    assert_eq!(
        store.append(decision(1)).unwrap().seq,
        0,
        "the failed record used no seq"
    );
}

#[test]
fn proofs_from_the_store_verify_against_the_signed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let verifier = log_of(dir.path(), 37, 16);
    let store = SqliteStore::open_read_only(dir.path()).unwrap();
    let checkpoints = store.checkpoints().unwrap();
    let latest = verifier
        .verify_checkpoint(&checkpoints.last().unwrap().note)
        .unwrap();
    for seq in [0, 15, 16, 36] {
        let proof = inclusion_proof(&store, seq, latest.size).unwrap();
        assert_eq!(proof.root, latest.root);
        verify_inclusion(
            &proof.leaf_hash,
            seq,
            latest.size,
            &proof.hashes,
            &latest.root,
        )
        .unwrap();
    }
    let first = verifier.verify_checkpoint(&checkpoints[0].note).unwrap();
    let proof = consistency_proof(&store, first.size, latest.size).unwrap();
    verify_consistency(first.size, latest.size, &proof, &first.root, &latest.root).unwrap();
    assert!(inclusion_proof(&store, 37, 37).is_err());
    assert!(inclusion_proof(&store, 0, 38).is_err());
}

#[test]
fn key_file_is_created_with_mode_0600_and_refused_when_others_can_read_it() {
    let dir = tempfile::tempdir().unwrap();
    log_of(dir.path(), 1, 0);
    let key = dir.path().join(KEY_FILE);
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(LogSigner::from_key_string(text.trim_end()).is_ok());

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SqliteStore::open(dir.path(), config(0)).unwrap_err();
    assert!(
        matches!(err, StoreError::KeyPermissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn a_replaced_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    log_of(dir.path(), 1, 0);
    let key = dir.path().join(KEY_FILE);
    std::fs::write(
        &key,
        LogSigner::from_seed(ORIGIN, [5; 32])
            .unwrap()
            .to_key_string(),
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = SqliteStore::open(dir.path(), config(0)).unwrap_err();
    assert!(matches!(err, StoreError::KeyMismatch { .. }), "{err}");
}

#[test]
fn a_log_whose_key_file_is_missing_is_refused_without_making_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    log_of(dir.path(), 1, 0);
    let key = dir.path().join(KEY_FILE);
    std::fs::remove_file(&key).unwrap();
    let err = SqliteStore::open(dir.path(), config(0)).unwrap_err();
    assert!(matches!(err, StoreError::KeyMissing { .. }), "{err}");
    assert!(err.to_string().contains("--audit-key"), "{err}");
    assert!(!key.exists(), "a new key was made");
    // Another key file named for an existing log: the same.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = elsewhere.path().join("log.key");
    let err = SqliteStore::open(
        dir.path(),
        StoreConfig {
            key_file: Some(other.clone()),
            ..config(0)
        },
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::KeyMissing { .. }), "{err}");
    assert!(!other.exists());
}

#[test]
fn the_key_file_can_live_outside_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("log.key");
    let with_key = || StoreConfig {
        key_file: Some(key.clone()),
        ..config(0)
    };
    let store = SqliteStore::open(dir.path(), with_key()).unwrap();
    let verifier = store.verifier().to_key_string();
    store.close().unwrap();
    drop(store);
    assert!(!dir.path().join(KEY_FILE).exists());
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Reopened with it: the same log and key. Without it: refused.
    let store = SqliteStore::open(dir.path(), with_key()).unwrap();
    assert_eq!(store.verifier().to_key_string(), verifier);
    drop(store);
    let err = SqliteStore::open(dir.path(), config(0)).unwrap_err();
    assert!(matches!(err, StoreError::KeyMissing { .. }), "{err}");
}

#[test]
fn a_log_keeps_its_origin() {
    let dir = tempfile::tempdir().unwrap();
    log_of(dir.path(), 1, 0);
    let err = SqliteStore::open(dir.path(), StoreConfig::new("other.example/log")).unwrap_err();
    assert!(matches!(err, StoreError::OriginMismatch { .. }), "{err}");
    // No origin given: the existing one is used.
    let store = SqliteStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(store.verifier().name(), ORIGIN);
}

#[test]
fn only_one_writer_per_data_dir_and_read_only_stores_refuse_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config(0)).unwrap();
    store.append(decision(0)).unwrap();
    assert!(matches!(
        SqliteStore::open(dir.path(), config(0)),
        Err(StoreError::Locked { .. })
    ));
    let reader = SqliteStore::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.log_size().unwrap(), 1);
    assert_eq!(reader.append(decision(1)), Err(StoreError::ReadOnly));
    store.close().unwrap();
    assert_eq!(store.append(decision(1)), Err(StoreError::Closed));
}

#[test]
fn verify_passes_on_an_intact_log_and_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(SqliteStore::open(dir.path(), config(1000)).unwrap());
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || {
                for i in 0..9_000 / 16 + 1 {
                    if writer.append(decision(t * 10_000 + i)).unwrap().seq == 8_999 {
                        break;
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    writer.close().unwrap();
    let verifier = writer.verifier();
    let size = writer.log_size().unwrap();
    assert!(size >= 9_000, "{size}");
    let store = SqliteStore::open_read_only(dir.path()).unwrap();
    let mut calls = Vec::new();
    let mut progress = |done: u64, total: u64| calls.push((done, total));
    let report = verify(&store, &verifier, Some(&mut progress)).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(
        (report.entries, report.checkpoints, report.unsigned_tail),
        (size, size.div_ceil(1000), 0)
    );
    assert!(calls.len() >= 2, "{calls:?}");
    assert_eq!(calls.last(), Some(&(size, size)));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[test]
fn verify_with_another_key_fails_at_the_first_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    log_of(dir.path(), 12, 5);
    let impostor = LogSigner::from_seed(ORIGIN, [9; 32]).unwrap().verifier();
    let problem = check(dir.path(), &impostor).problem.expect("detected");
    assert_eq!(problem.seq, 0);
    assert!(
        matches!(problem.kind, ProblemKind::BadSignature { size: 5, .. }),
        "{problem}"
    );
}

// --- tampering -----------------------------------------------------------

#[test]
fn changing_one_byte_of_a_stored_record_is_detected_at_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let verifier = log_of(dir.path(), 50, 10);
    let db = raw(dir.path());
    let mut data: Vec<u8> = db
        .query_row("SELECT data FROM audit_entries WHERE seq = 23", [], |r| {
            r.get(0)
        })
        .unwrap();
    let at = data.len() - 3; // inside the policy hash text: stays valid UTF-8
    data[at] = if data[at] == b'a' { b'b' } else { b'a' };
    db.execute(
        "UPDATE audit_entries SET data = ?1 WHERE seq = 23",
        params![data],
    )
    .unwrap();
    let problem = check(dir.path(), &verifier).problem.expect("detected");
    assert_eq!(problem.seq, 23, "{problem}");
    assert!(
        matches!(problem.kind, ProblemKind::LeafHashMismatch { .. }),
        "{problem}"
    );
}

#[test]
fn changing_a_record_and_its_stored_hash_is_caught_by_the_signed_root() {
    let dir = tempfile::tempdir().unwrap();
    let verifier = log_of(dir.path(), 50, 10);
    let db = raw(dir.path());
    let mut data: Vec<u8> = db
        .query_row("SELECT data FROM audit_entries WHERE seq = 23", [], |r| {
            r.get(0)
        })
        .unwrap();
    let at = data.len() - 3;
    data[at] = if data[at] == b'a' { b'b' } else { b'a' };
    db.execute(
        "UPDATE audit_entries SET data = ?1, leaf_hash = ?2 WHERE seq = 23",
        params![data, &leaf_hash(&data)[..]],
    )
    .unwrap();
    // Left alone, the subtree hashes stored at append time give it away.
    let problem = check(dir.path(), &verifier).problem.expect("detected");
    assert_eq!(problem.seq, 23, "{problem}");
    assert!(
        matches!(
            problem.kind,
            ProblemKind::SubtreeMismatch {
                first: 22,
                last: 23,
                height: 1,
                ..
            }
        ),
        "{problem}"
    );
    // A careful forger recomputes them too: the signed root still holds.
    rewrite_subtrees(&db);
    let problem = check(dir.path(), &verifier).problem.expect("detected");
    // Entries from 20 (the last good checkpoint) on are no longer attested.
    assert_eq!(problem.seq, 20, "{problem}");
    assert!(
        matches!(problem.kind, ProblemKind::RootMismatch { size: 30, .. }),
        "{problem}"
    );
}

#[test]
fn deleting_a_row_is_detected_at_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let verifier = log_of(dir.path(), 50, 10);
    raw(dir.path())
        .execute("DELETE FROM audit_entries WHERE seq = 17", [])
        .unwrap();
    let problem = check(dir.path(), &verifier).problem.expect("detected");
    assert_eq!(problem.seq, 17, "{problem}");
    assert_eq!(
        problem.kind,
        ProblemKind::Missing {
            next_stored: Some(18)
        }
    );
}

#[test]
fn deleting_the_tail_is_detected_by_the_checkpoint_beyond_it() {
    let dir = tempfile::tempdir().unwrap();
    let verifier = log_of(dir.path(), 50, 10);
    raw(dir.path())
        .execute("DELETE FROM audit_entries WHERE seq >= 45", [])
        .unwrap();
    let problem = check(dir.path(), &verifier).problem.expect("detected");
    assert_eq!(problem.seq, 45, "{problem}");
    assert!(
        matches!(
            problem.kind,
            ProblemKind::CheckpointBeyondLog {
                size: 50,
                log_size: 45
            }
        ),
        "{problem}"
    );
}

#[test]
fn swapping_two_rows_is_detected_at_the_first_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let verifier = log_of(dir.path(), 50, 10);
    let db = raw(dir.path());
    // Swap everything but the seq column: data and stored leaf hash.
    db.execute_batch(
        "UPDATE audit_entries SET seq = -1 WHERE seq = 12;
         UPDATE audit_entries SET seq = 12 WHERE seq = 31;
         UPDATE audit_entries SET seq = 31 WHERE seq = -1;",
    )
    .unwrap();
    let problem = check(dir.path(), &verifier).problem.expect("detected");
    assert_eq!(problem.seq, 12, "{problem}");
    assert_eq!(problem.kind, ProblemKind::MovedRecord { inside: 31 });
}

#[test]
fn replacing_a_checkpoint_signature_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let verifier = log_of(dir.path(), 50, 10);
    let db = raw(dir.path());
    let note: String = db
        .query_row(
            "SELECT note FROM audit_checkpoints WHERE size = 30",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Same text, signed by another key that claims the same name.
    let text = &note[..note.find("\n\n").unwrap() + 1];
    let forged = LogSigner::from_seed(ORIGIN, [1; 32])
        .unwrap()
        .sign_note(text)
        .unwrap();
    db.execute(
        "UPDATE audit_checkpoints SET note = ?1 WHERE size = 30",
        params![forged],
    )
    .unwrap();
    let problem = check(dir.path(), &verifier).problem.expect("detected");
    assert_eq!(problem.seq, 20, "{problem}");
    assert!(
        matches!(problem.kind, ProblemKind::BadSignature { size: 30, .. }),
        "{problem}"
    );

    // A flipped bit in the original signature is caught the same way.
    let sig_at = note.rfind(' ').unwrap() + 5;
    let mut bytes = note.into_bytes();
    bytes[sig_at] = if bytes[sig_at] == b'A' { b'B' } else { b'A' };
    db.execute(
        "UPDATE audit_checkpoints SET note = ?1 WHERE size = 30",
        params![String::from_utf8(bytes).unwrap()],
    )
    .unwrap();
    let problem = check(dir.path(), &verifier).problem.expect("detected");
    assert_eq!(problem.seq, 20, "{problem}");
    assert!(
        matches!(problem.kind, ProblemKind::BadSignature { size: 30, .. }),
        "{problem}"
    );
}

#[test]
fn entries_from_pages_through_the_log_and_picks_up_later_appends() {
    let dir = tempfile::tempdir().unwrap();
    log_of(dir.path(), 2500, 0);
    let store = SqliteStore::open(dir.path(), config(0)).unwrap();
    let mut entries = entries_from(&store, 1000);
    let seqs: Vec<u64> = entries.by_ref().map(|e| e.unwrap().seq).collect();
    assert_eq!(seqs, (1000..2500).collect::<Vec<_>>());
    assert_eq!(entries.next_seq(), 2500);
    assert!(entries.next().is_none(), "at the end of the log");
    store.append(decision(2500)).unwrap();
    store.append(decision(2501)).unwrap();
    let more: Vec<u64> = entries.by_ref().map(|e| e.unwrap().seq).collect();
    assert_eq!(more, vec![2500, 2501], "what was appended since");
    assert_eq!(entries_from(&store, 9999).count(), 0);
    // Past the numbers SQLite can hold there is nothing, not an error.
    for from in [i64::MAX as u64 + 1, u64::MAX] {
        assert!(store.entries(from, 10).unwrap().is_empty());
        assert!(store.leaf_hashes(from, 10).unwrap().is_empty());
    }
}

/// A small probe can reuse free pages of a full database; the probe for
/// room needs new ones, as appends do, and leaves nothing in the log.
#[test]
fn check_room_fails_when_appends_do_and_adds_nothing_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        dir.path(),
        StoreConfig {
            max_page_count: Some(60),
            ..config(0)
        },
    )
    .unwrap();
    store.check_room(64 * 1024).unwrap();
    assert_eq!(store.log_size().unwrap(), 0);
    let mut i = 0;
    while store.append(decision(i)).is_ok() {
        i += 1;
        assert!(i < 10_000, "the quota never filled");
    }
    assert!(i > 0);
    let err = store.check_room(64 * 1024).unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(store.log_size().unwrap(), i);
}
