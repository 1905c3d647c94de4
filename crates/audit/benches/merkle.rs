//! Benchmarks (harness = false): inclusion proof generation on a
//! 1,000,000-leaf tree, and re-deriving a 1,000,000-entry log (decode each
//! record, hash it, fold the root). Prints medians of several runs.
//!
//! Run: `cargo bench -p warden-audit --bench merkle`

use std::hint::black_box;
use std::time::{Duration, Instant};

use warden_audit::{
    Arguments, CompactRange, DecisionRecord, Entry, Record, Tree, leaf_hash, verify_inclusion,
};

const LEAVES: u64 = 1_000_000;
const RUNS: usize = 5;

fn decision(n: u64) -> Entry {
    Entry {
        seq: n,
        record: Record::Decision(DecisionRecord {
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
        }),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // A fast deterministic index sequence (xorshift).
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };

    let records: Vec<Vec<u8>> = (0..LEAVES)
        .map(|n| decision(n).encode().expect("encodes"))
        .collect();
    let avg = records.iter().map(Vec::len).sum::<usize>() as u64 / LEAVES;
    println!("leaf data: {LEAVES} decision records, {avg} bytes on average");

    // Re-derive the log: decode, check the position, hash, fold the root.
    let mut verify_runs = Vec::new();
    let mut root = [0u8; 32];
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut range = CompactRange::new();
        for (i, data) in records.iter().enumerate() {
            let entry = Entry::decode(data).expect("decodes");
            assert_eq!(entry.seq, i as u64);
            range.push(leaf_hash(data));
        }
        root = range.root();
        verify_runs.push(start.elapsed());
    }
    println!(
        "verify {LEAVES} entries (decode + leaf hash + root): median {:.3} s (runs: {:?})",
        median(verify_runs.clone()).as_secs_f64(),
        verify_runs
            .iter()
            .map(|d| format!("{:.3}", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );

    let start = Instant::now();
    let tree = Tree::from_leaves(records.iter().map(|d| leaf_hash(d)));
    println!(
        "build a {LEAVES}-leaf tree with all levels: {:.3} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(tree.root(), root);

    // Inclusion proofs at the full size and at random earlier sizes.
    const PROOFS: usize = 100_000;
    let mut per_proof = Vec::new();
    let mut verify_times = Vec::new();
    for _ in 0..RUNS {
        let queries: Vec<(u64, u64)> = (0..PROOFS)
            .map(|_| {
                let size = if next() % 2 == 0 {
                    LEAVES
                } else {
                    1 + next() % LEAVES
                };
                (next() % size, size)
            })
            .collect();
        let start = Instant::now();
        let mut proofs = Vec::with_capacity(PROOFS);
        for &(index, size) in &queries {
            proofs.push(black_box(
                tree.inclusion_proof(index, size).expect("in range"),
            ));
        }
        per_proof.push(start.elapsed() / PROOFS as u32);
        let start = Instant::now();
        for (&(index, size), proof) in queries.iter().zip(&proofs).take(10_000) {
            let leaf = tree.leaf(index).expect("leaf");
            let root = tree.root_at(size).expect("size");
            verify_inclusion(leaf, index, size, proof, &root).expect("verifies");
        }
        verify_times.push(start.elapsed() / 10_000);
    }
    println!(
        "inclusion proof generation ({LEAVES}-leaf tree, random index and size): median {:.2} µs per proof",
        median(per_proof).as_secs_f64() * 1e6
    );
    println!(
        "inclusion proof root_at + verification: median {:.2} µs per proof",
        median(verify_times).as_secs_f64() * 1e6
    );
}
