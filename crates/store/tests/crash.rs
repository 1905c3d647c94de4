//! Crash test: a child process appends under load and prints every
//! acknowledged sequence number; it is killed with SIGKILL at a random
//! moment. After each kill the log must hold every acknowledged record,
//! verify cleanly, and accept new appends.
//!
//! This file has its own `main` (harness = false): run without the
//! environment variable it is the parent; the parent re-runs this same
//! binary with `WARDEN_CRASH_CHILD_DIR` set to make it the child.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use warden_audit::{Outcome, OutcomeRecord, Record};
use warden_store::{SqliteStore, Store, StoreConfig, verify};

const CHILD_ENV: &str = "WARDEN_CRASH_CHILD_DIR";
const ORIGIN: &str = "crash.example/warden";
const ROUNDS: usize = 4;
const WRITERS: u64 = 16;

fn config() -> StoreConfig {
    StoreConfig {
        checkpoint_every_entries: 64,
        checkpoint_interval: Some(Duration::from_millis(30)),
        ..StoreConfig::new(ORIGIN)
    }
}

fn record(writer: u64, i: u64) -> Record {
    Record::Outcome(OutcomeRecord {
        time_unix_nanos: writer << 32 | i,
        decision_seq: i,
        outcome: Outcome::Succeeded,
        result_hash: Some([writer as u8; 32]),
        error: None,
    })
}

/// The child: append forever from several threads, printing
/// `ack <seq> <leaf hash hex>` after each acknowledged append.
fn child(dir: &Path) -> ! {
    let store = match SqliteStore::open(dir, config()) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            eprintln!("child: cannot open the store: {e}");
            std::process::exit(2);
        }
    };
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0.. {
                    match store.append(record(w, i)) {
                        Ok(a) => {
                            let mut out = std::io::stdout().lock();
                            // A line is only complete (and counted) once
                            // its newline is out.
                            let _ = writeln!(out, "ack {} {}", a.seq, hex::encode(a.leaf_hash));
                            let _ = out.flush();
                        }
                        Err(e) => {
                            eprintln!("child: append failed: {e}");
                            std::process::exit(3);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    std::process::exit(0);
}

fn random_below(n: u64) -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() % n
}

fn round(dir: &Path, round: usize) -> Result<(usize, u64), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning the child: {e}"))?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let reader = std::thread::spawn(move || {
        let mut acked = HashMap::new();
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let Ok(line) = String::from_utf8(line) else {
                continue;
            };
            let mut parts = line.split(' ');
            if let (Some("ack"), Some(seq), Some(hash), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
                && let Ok(seq) = seq.parse::<u64>()
                && hash.len() == 64
            {
                acked.insert(seq, hash.to_string());
            }
        }
        acked
    });
    // Let it run long enough to be mid-flight: 150..1150 ms.
    let delay = 150 + random_below(1000);
    std::thread::sleep(Duration::from_millis(delay));
    child.kill().map_err(|e| format!("SIGKILL: {e}"))?;
    let status = child.wait().map_err(|e| e.to_string())?;
    let acked = reader.join().map_err(|_| "reader thread panicked")?;
    if acked.is_empty() {
        return Err(format!(
            "round {round}: the child acknowledged nothing in {delay} ms (status {status})"
        ));
    }

    // Reopen for writing, as a restarted server would.
    let store = SqliteStore::open(dir, config()).map_err(|e| format!("reopen after kill: {e}"))?;
    let size = store.log_size().map_err(|e| e.to_string())?;
    let max_acked = acked.keys().copied().max().unwrap_or(0);
    if size <= max_acked {
        return Err(format!(
            "round {round}: log size {size} but seq {max_acked} was acknowledged"
        ));
    }
    let mut from = 0;
    let mut found = 0usize;
    while from < size {
        let page = store.entries(from, 10_000).map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for e in &page {
            if let Some(hash) = acked.get(&e.seq) {
                if *hash != hex::encode(e.leaf_hash) {
                    return Err(format!(
                        "round {round}: seq {} holds another record than acknowledged",
                        e.seq
                    ));
                }
                found += 1;
            }
        }
    }
    if found != acked.len() {
        return Err(format!(
            "round {round}: {} acknowledged records, only {found} found",
            acked.len()
        ));
    }
    let report = verify(&store, &store.verifier(), None).map_err(|e| e.to_string())?;
    if let Some(problem) = report.problem {
        return Err(format!("round {round}: verify after kill: {problem}"));
    }
    let next = store
        .append(record(99, 0))
        .map_err(|e| format!("round {round}: append after restart: {e}"))?;
    if next.seq != size {
        return Err(format!(
            "round {round}: append after restart got seq {} not {size}",
            next.seq
        ));
    }
    store.close().map_err(|e| e.to_string())?;
    Ok((acked.len(), size + 1))
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("crash test: no temp dir: {e}");
            std::process::exit(1);
        }
    };
    let mut failed = 0;
    for r in 0..ROUNDS {
        match round(dir.path(), r) {
            Ok((acked, size)) => println!(
                "crash round {r}: killed after {acked} acknowledged appends; log size {size}, all present, verify ok"
            ),
            Err(e) => {
                println!("crash round {r}: FAILED: {e}");
                failed += 1;
            }
        }
    }
    // Final check of the whole log, closed cleanly.
    match SqliteStore::open_read_only(dir.path()).and_then(|s| verify(&s, &s.verifier(), None)) {
        Ok(report) if report.problem.is_none() && report.unsigned_tail == 0 => {}
        Ok(report) => {
            println!("final verify: FAILED: {report:?}");
            failed += 1;
        }
        Err(e) => {
            println!("final verify: FAILED: {e}");
            failed += 1;
        }
    }
    println!("{} passed, {failed} failed", ROUNDS + 1 - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
