//! Benchmarks (harness = false) of the SQLite store:
//!
//! * durable append with 32 concurrent writers: records/s, p50/p99 latency;
//! * `verify` of a 1,000,000-entry log read back from disk;
//! * store-level inclusion and consistency proofs on that log (a store
//!   opened read-only, as `warden audit prove` does): p50/p99;
//! * adding the subtree hashes to that log as if schema version 1 wrote it.
//!
//! Run: `cargo bench -p warden-store --bench append` (set
//! `WARDEN_BENCH_VERIFY_ENTRIES=0` to skip the verify part). The database
//! lives in a temporary directory on the default temp file system.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use warden_audit::{Arguments, DecisionRecord, Record};
use warden_audit::{verify_consistency, verify_inclusion};
use warden_store::{DB_FILE, SqliteStore, Store, StoreConfig, verify};

const WRITERS: usize = 32;
const PER_WRITER: usize = 4000;
const RUNS: usize = 3;
/// Proofs timed per kind.
const PROOFS: usize = 2000;

fn decision(n: u64) -> Record {
    Record::Decision(DecisionRecord {
        time_unix_nanos: 1_700_000_000_000_000_000 + n,
        agent: "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK".into(),
        session: format!("session-{}", n % 97),
        point: "pre_tool_call".into(),
        tool: "sql.query".into(),
        arguments: Arguments::Json(format!(
            r#"{{"query":"SELECT * FROM orders WHERE id = {n}"}}"#
        )),
        intents: vec!["read_only".into()],
        verdict: "allow".into(),
        rule: Some("allow-reads".into()),
        reason: "rule:allow-reads".into(),
        message: String::new(),
        action_hash: format!("{n:064x}"),
        policy_name: "prod".into(),
        policy_hash: "ab".repeat(32),
        sponsor: None,
        caller: None,
    })
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// p50 / p99 / max of `times`, in microseconds.
fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    format!(
        "p50 {:.1} us, p99 {:.1} us, max {:.1} us ({} proofs)",
        us(percentile(&times, 0.50)),
        us(percentile(&times, 0.99)),
        us(times[times.len() - 1]),
        times.len()
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// 32 threads append `per_writer` records each; returns (records/s, latencies).
fn run_writers(store: &Arc<SqliteStore>, per_writer: usize, base: u64) -> (f64, Vec<Duration>) {
    let barrier = Arc::new(Barrier::new(WRITERS + 1));
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(store);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(per_writer);
                barrier.wait();
                for i in 0..per_writer {
                    let record = decision(base + (w * per_writer + i) as u64);
                    let start = Instant::now();
                    store.append(record).expect("append");
                    lat.push(start.elapsed());
                }
                lat
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("writer"))
        .collect();
    let elapsed = start.elapsed();
    lat.sort();
    ((WRITERS * per_writer) as f64 / elapsed.as_secs_f64(), lat)
}

fn main() {
    let mut rates = Vec::new();
    let mut p99s = Vec::new();
    for run in 0..RUNS {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(
            SqliteStore::open(dir.path(), StoreConfig::new("bench.example/warden")).expect("open"),
        );
        run_writers(&store, 200, 0); // warm up: create the WAL, fill caches
        let (rate, lat) = run_writers(&store, PER_WRITER, 1_000_000);
        let (p50, p99, max) = (
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            lat[lat.len() - 1],
        );
        println!(
            "run {run}: {WRITERS} writers x {PER_WRITER} durable appends: {rate:.0} records/s, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
        rates.push(rate);
        p99s.push(p99);
        store.close().expect("close");
    }
    rates.sort_by(f64::total_cmp);
    p99s.sort();
    println!(
        "durable append, {WRITERS} concurrent writers: median {:.0} records/s, median p99 latency {:.2} ms",
        rates[RUNS / 2],
        p99s[RUNS / 2].as_secs_f64() * 1e3
    );

    let entries: usize = std::env::var("WARDEN_BENCH_VERIFY_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if entries == 0 {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        SqliteStore::open(dir.path(), StoreConfig::new("bench.example/warden")).expect("open"),
    );
    let start = Instant::now();
    run_writers(&store, entries.div_ceil(WRITERS), 0);
    store.close().expect("close");
    let size = store.log_size().expect("size");
    println!(
        "built a {size}-entry log in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    drop(store);
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let store = SqliteStore::open_read_only(dir.path()).expect("open read-only");
        let start = Instant::now();
        let report = verify(&store, &store.verifier(), None).expect("verify");
        times.push(start.elapsed());
        assert!(report.problem.is_none(), "{report:?}");
        assert_eq!(report.entries, size);
    }
    times.sort();
    println!(
        "verify of a {size}-entry log from disk (decode, leaf hashes, {} checkpoint roots, signatures, consistency): median {:.2} s (runs: {:?})",
        size / 1000,
        times[RUNS / 2].as_secs_f64(),
        times
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );

    // A fast deterministic sequence (xorshift).
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let store = SqliteStore::open_read_only(dir.path()).expect("open read-only");
    let start = Instant::now();
    let first = store.inclusion_proof(size / 3, size).expect("proof");
    let cold = start.elapsed();
    let (mut at_size, mut below) = (Vec::new(), Vec::new());
    for _ in 0..PROOFS {
        let seq = next() % size;
        let start = Instant::now();
        let proof = store.inclusion_proof(seq, size).expect("proof");
        at_size.push(start.elapsed());
        verify_inclusion(&proof.leaf_hash, seq, size, &proof.hashes, &proof.root).expect("valid");

        let smaller = 1 + next() % size;
        let seq = next() % smaller;
        let start = Instant::now();
        let proof = store.inclusion_proof(seq, smaller).expect("proof");
        below.push(start.elapsed());
        verify_inclusion(&proof.leaf_hash, seq, smaller, &proof.hashes, &proof.root)
            .expect("valid");
    }
    assert_eq!(
        first.root,
        store.inclusion_proof(0, size).expect("proof").root
    );
    println!(
        "store-level inclusion proof (with leaf hash and root), {size}-entry log opened read-only: first after open {:.1} us; at size {size}: {}; at random sizes below: {}",
        us(cold),
        summary(at_size),
        summary(below)
    );
    let mut consistency = Vec::new();
    for _ in 0..PROOFS {
        let size2 = 1 + next() % size;
        let size1 = 1 + next() % size2;
        let start = Instant::now();
        let proof = store.consistency_proof(size1, size2).expect("proof");
        consistency.push(start.elapsed());
        verify_consistency(size1, size2, &proof.hashes, &proof.root1, &proof.root2).expect("valid");
    }
    println!(
        "store-level consistency proof (with both roots) between random sizes <= {size}: {}",
        summary(consistency)
    );
    drop(store);

    // What opening a log written by schema version 1 costs: the subtree
    // hashes of every entry are added in one transaction.
    let db = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("open db");
    db.execute_batch("DROP TABLE audit_subtrees; PRAGMA user_version = 1;")
        .expect("downgrade");
    drop(db);
    let start = Instant::now();
    let store =
        SqliteStore::open(dir.path(), StoreConfig::new("bench.example/warden")).expect("migrate");
    println!(
        "opening a {size}-entry version-1 log for writing (backfills its subtree hashes): {:.2} s",
        start.elapsed().as_secs_f64()
    );
    store.close().expect("close");
}
