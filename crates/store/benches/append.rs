//! Benchmarks (harness = false) of the SQLite store:
//!
//! * durable append with 32 concurrent writers: records/s, p50/p99 latency;
//! * `verify` of a 1,000,000-entry log read back from disk.
//!
//! Run: `cargo bench -p warden-store --bench append` (set
//! `WARDEN_BENCH_VERIFY_ENTRIES=0` to skip the verify part). The database
//! lives in a temporary directory on the default temp file system.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use warden_audit::{Arguments, DecisionRecord, Record};
use warden_store::{SqliteStore, Store, StoreConfig, inclusion_proof, verify};

const WRITERS: usize = 32;
const PER_WRITER: usize = 4000;
const RUNS: usize = 3;

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
    })
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

    let store = SqliteStore::open_read_only(dir.path()).expect("open read-only");
    let mut times = Vec::new();
    for i in 0..RUNS as u64 {
        let start = Instant::now();
        let proof = inclusion_proof(&store, (i * 7919 * 104_729) % size, size).expect("proof");
        times.push(start.elapsed());
        assert!(!proof.hashes.is_empty());
    }
    times.sort();
    println!(
        "store-level inclusion proof at size {size} (reads every stored leaf hash, then proves): median {:.3} s",
        times[RUNS / 2].as_secs_f64()
    );
}
