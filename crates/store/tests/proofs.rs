//! Proofs served from the store's subtree hashes: equal to the in-memory
//! tree's, kept across a schema migration, and not trusted by `verify`.

use std::path::Path;

use rusqlite::Connection;
use warden_audit::{
    Outcome, OutcomeRecord, ProofError, Record, Tree, verify_consistency, verify_inclusion,
};
use warden_store::{
    DB_FILE, ProblemKind, SqliteStore, Store, StoreConfig, StoreError, consistency_proof,
    inclusion_proof, verify,
};

const ORIGIN: &str = "proofs.example/warden";

fn record(n: u64) -> Record {
    Record::Outcome(OutcomeRecord {
        time_unix_nanos: n,
        decision_seq: n,
        outcome: Outcome::Succeeded,
        result_hash: Some([n as u8; 32]),
        error: None,
    })
}

fn config() -> StoreConfig {
    StoreConfig {
        checkpoint_every_entries: 100,
        checkpoint_interval: None,
        ..StoreConfig::new(ORIGIN)
    }
}

/// Append `n` records to the store in `dir` (creating it), close it.
fn append(dir: &Path, n: u64) {
    let store = SqliteStore::open(dir, config()).unwrap();
    for i in 0..n {
        store.append(record(i)).unwrap();
    }
    store.close().unwrap();
}

/// The in-memory tree of every stored leaf hash.
fn tree_of(store: &dyn Store) -> Tree {
    let size = store.log_size().unwrap();
    Tree::from_leaves(
        store
            .leaf_hashes(0, size as usize)
            .unwrap()
            .into_iter()
            .map(|(_, h)| h),
    )
}

fn raw(dir: &Path) -> Connection {
    Connection::open(dir.join(DB_FILE)).unwrap()
}

/// The (seq, size) pairs checked: every pair up to size 40, then sizes
/// around powers of two and odd sizes up to the log size, with seqs at the
/// edges and spread between.
fn pairs(log_size: u64) -> Vec<(u64, u64)> {
    let mut sizes: Vec<u64> = (1..=40).collect();
    for p in [64u64, 128, 256] {
        sizes.extend([p - 1, p, p + 1]);
    }
    sizes.extend([97, 200, 299, log_size]);
    sizes.retain(|&s| s <= log_size);
    sizes.sort_unstable();
    sizes.dedup();
    let mut out = Vec::new();
    for size in sizes {
        if size <= 40 {
            out.extend((0..size).map(|seq| (seq, size)));
        } else {
            let mut seqs = vec![0, 1, size / 2, size - 2, size - 1];
            seqs.extend((0..size).step_by(13));
            out.extend(seqs.into_iter().map(|seq| (seq, size)));
        }
    }
    out
}

fn assert_proofs_match_the_tree(store: &dyn Store) {
    let tree = tree_of(store);
    let log_size = tree.size();
    for (seq, size) in pairs(log_size) {
        let proof = store.inclusion_proof(seq, size).unwrap();
        assert_eq!(
            proof.hashes,
            tree.inclusion_proof(seq, size).unwrap(),
            "inclusion of {seq} in {size}"
        );
        assert_eq!(proof.root, tree.root_at(size).unwrap(), "root at {size}");
        assert_eq!(&proof.leaf_hash, tree.leaf(seq).unwrap());
        verify_inclusion(&proof.leaf_hash, seq, size, &proof.hashes, &proof.root).unwrap();
        assert_eq!(inclusion_proof(store, seq, size).unwrap(), proof);
    }
    let sizes: Vec<u64> = (0..=40)
        .chain([63, 64, 65, 100, 127, 128, 129, 200, log_size])
        .filter(|&s| s <= log_size)
        .collect();
    for &size1 in &sizes {
        for &size2 in sizes.iter().filter(|&&s| s >= size1) {
            let proof = store.consistency_proof(size1, size2).unwrap();
            let want = tree.consistency_proof(size1, size2).unwrap();
            assert_eq!(proof.hashes, want, "consistency {size1} -> {size2}");
            assert_eq!(proof.root1, tree.root_at(size1).unwrap());
            assert_eq!(proof.root2, tree.root_at(size2).unwrap());
            verify_consistency(size1, size2, &proof.hashes, &proof.root1, &proof.root2).unwrap();
            assert_eq!(consistency_proof(store, size1, size2).unwrap(), want);
        }
    }
}

#[test]
fn store_proofs_equal_the_in_memory_trees_for_every_size_up_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 300);
    assert_proofs_match_the_tree(&SqliteStore::open_read_only(dir.path()).unwrap());
    // A store open for writing answers the same, and sees its own appends.
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    store.append(record(300)).unwrap();
    assert_proofs_match_the_tree(&store);
}

#[test]
fn proofs_beyond_the_log_or_the_size_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 10);
    let store = SqliteStore::open_read_only(dir.path()).unwrap();
    let err = store.inclusion_proof(3, 11).unwrap_err();
    assert_eq!(
        err,
        StoreError::Proof(ProofError::SizeTooLarge {
            size: 11,
            available: 10
        })
    );
    let err = store.inclusion_proof(10, 10).unwrap_err();
    assert!(
        matches!(err, StoreError::Proof(ProofError::IndexOutOfRange { .. })),
        "{err}"
    );
    let err = store.consistency_proof(5, 11).unwrap_err();
    assert!(
        matches!(err, StoreError::Proof(ProofError::SizeTooLarge { .. })),
        "{err}"
    );
    let err = store.consistency_proof(6, 5).unwrap_err();
    assert!(
        matches!(err, StoreError::Proof(ProofError::SizesReversed { .. })),
        "{err}"
    );
    let empty = store.consistency_proof(0, 0).unwrap();
    assert_eq!(empty.root1, warden_audit::empty_root());
}

/// Turn the database into what schema version 1 wrote: no subtree table.
fn downgrade_to_version_1(dir: &Path) {
    raw(dir)
        .execute_batch(
            "DROP TABLE audit_subtrees; DROP TABLE agents; DROP TABLE revocations;
             DROP TABLE state; PRAGMA user_version = 1;",
        )
        .unwrap();
}

#[test]
fn a_version_1_log_is_served_read_only_and_backfilled_when_opened_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 150);
    downgrade_to_version_1(dir.path());

    // Read-only cannot migrate: proofs come from the leaf hashes instead.
    let store = SqliteStore::open_read_only(dir.path()).unwrap();
    assert_proofs_match_the_tree(&store);
    let report = verify(&store, &store.verifier(), None).unwrap();
    assert_eq!((report.problem, report.entries), (None, 150));
    drop(store);

    // Opening for writing adds the subtree hashes of the existing entries.
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let rows: i64 = raw(dir.path())
        .query_row("SELECT COUNT(*) FROM audit_subtrees", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows as u64, 150 - 150u64.count_ones() as u64);
    let version: i64 = raw(dir.path())
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
    for i in 150..170 {
        assert_eq!(store.append(record(i)).unwrap().seq, i);
    }
    assert_proofs_match_the_tree(&store);
    store.close().unwrap();
    let store = SqliteStore::open_read_only(dir.path()).unwrap();
    let report = verify(&store, &store.verifier(), None).unwrap();
    assert_eq!((report.problem, report.entries), (None, 170));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 1);
    raw(dir.path())
        .execute_batch("PRAGMA user_version = 99;")
        .unwrap();
    let err = SqliteStore::open(dir.path(), config()).unwrap_err();
    assert!(err.to_string().contains("upgrade warden"), "{err}");
    let err = SqliteStore::open_read_only(dir.path()).unwrap_err();
    assert!(err.to_string().contains("upgrade warden"), "{err}");
}

fn problem_after(dir: &Path, tamper: &str) -> warden_store::Problem {
    raw(dir).execute_batch(tamper).unwrap();
    let store = SqliteStore::open_read_only(dir).unwrap();
    verify(&store, &store.verifier(), None)
        .unwrap()
        .problem
        .expect("tampering detected")
}

#[test]
fn an_altered_subtree_hash_is_detected_at_its_last_entry_and_breaks_proofs() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 200);
    // The subtree of entries 64..=127 (height 6).
    let problem = problem_after(
        dir.path(),
        "UPDATE audit_subtrees SET hash = zeroblob(32) WHERE id = 127 * 64 + 6",
    );
    assert_eq!(problem.seq, 127, "{problem}");
    assert!(
        matches!(
            problem.kind,
            ProblemKind::SubtreeMismatch {
                first: 64,
                last: 127,
                height: 6,
                ..
            }
        ),
        "{problem}"
    );
    // Why verify does not trust the table: a proof built from it fails
    // against the signed checkpoint.
    let store = SqliteStore::open_read_only(dir.path()).unwrap();
    let signed = store
        .verifier()
        .verify_checkpoint(&store.latest_checkpoint().unwrap().unwrap().note)
        .unwrap();
    let proof = store.inclusion_proof(3, signed.size).unwrap();
    assert!(
        verify_inclusion(
            &proof.leaf_hash,
            3,
            signed.size,
            &proof.hashes,
            &signed.root
        )
        .is_err()
    );
}

#[test]
fn a_deleted_subtree_hash_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 50);
    let problem = problem_after(
        dir.path(),
        "DELETE FROM audit_subtrees WHERE id = 31 * 64 + 2",
    );
    assert_eq!(problem.seq, 31, "{problem}");
    assert_eq!(
        problem.kind,
        ProblemKind::SubtreeMissing {
            first: 28,
            last: 31,
            height: 2
        }
    );
}

#[test]
fn an_extra_subtree_row_is_detected_inside_and_beyond_the_log() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 50);
    // Entry 10 completes no subtree (10 is even).
    let problem = problem_after(
        dir.path(),
        "INSERT INTO audit_subtrees VALUES (10 * 64 + 1, zeroblob(32))",
    );
    assert_eq!(problem.seq, 10, "{problem}");
    assert_eq!(
        problem.kind,
        ProblemKind::UnexpectedSubtree {
            last_seq: 10,
            height: 1
        }
    );

    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 50);
    let problem = problem_after(
        dir.path(),
        "INSERT INTO audit_subtrees VALUES (63 * 64 + 6, zeroblob(32))",
    );
    assert_eq!(problem.seq, 63, "{problem}");
    assert_eq!(
        problem.kind,
        ProblemKind::UnexpectedSubtree {
            last_seq: 63,
            height: 6
        }
    );
}

#[test]
fn proofs_and_subtrees_survive_reopening_between_appends() {
    let dir = tempfile::tempdir().unwrap();
    // Reopen at sizes that leave the right edge in different shapes.
    let mut total = 0;
    for n in [1, 2, 5, 8, 13, 64, 7] {
        let store = SqliteStore::open(dir.path(), config()).unwrap();
        for _ in 0..n {
            store.append(record(total)).unwrap();
            total += 1;
        }
        store.close().unwrap();
    }
    let store = SqliteStore::open_read_only(dir.path()).unwrap();
    assert_eq!(store.log_size().unwrap(), total);
    assert_proofs_match_the_tree(&store);
    assert_eq!(
        verify(&store, &store.verifier(), None).unwrap().problem,
        None
    );
}

#[test]
fn proofs_that_reach_the_cached_upper_subtrees_match_the_tree_cold_and_warm() {
    // 5,000 entries: subtrees up to height 12, above the in-memory cache's
    // lowest height (10), appended by many writers so it stays quick.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    std::thread::scope(|s| {
        for w in 0..50u64 {
            let store = &store;
            s.spawn(move || {
                for i in 0..100 {
                    store.append(record(w * 100 + i)).unwrap();
                }
            });
        }
    });
    assert_eq!(store.log_size().unwrap(), 5000);
    let tree = tree_of(&store);
    let pairs: Vec<(u64, u64)> = [1024u64, 1025, 2047, 2048, 3000, 4096, 4999, 5000]
        .into_iter()
        .flat_map(|size| [0, 1, 511, 1023, 1024, size / 2, size - 1].map(move |seq| (seq, size)))
        .filter(|&(seq, size)| seq < size)
        .collect();
    // The first round fills the cache; the second is served from it.
    for round in 0..2 {
        for &(seq, size) in &pairs {
            let proof = store.inclusion_proof(seq, size).unwrap();
            assert_eq!(
                proof.hashes,
                tree.inclusion_proof(seq, size).unwrap(),
                "round {round}: inclusion of {seq} in {size}"
            );
            assert_eq!(proof.root, tree.root_at(size).unwrap(), "round {round}");
        }
        for (size1, size2) in [(1024, 5000), (1000, 4096), (2048, 2049), (3, 5000)] {
            let proof = store.consistency_proof(size1, size2).unwrap();
            assert_eq!(
                proof.hashes,
                tree.consistency_proof(size1, size2).unwrap(),
                "round {round}: consistency {size1} -> {size2}"
            );
        }
    }
}
