//! Classification latency for a 1 KB shell command and a 1 KB SQL batch.
//!
//! Besides criterion's report (with throughput), prints p50 / p99 from a
//! separate timed loop, and MB/s at the median, for `classify_with` and for
//! `classify_full` (the full parsers only, no fast paths) in the same run:
//! `cargo bench -p warden-intent --bench classify`. After each input it
//! times a pure computation of the same median the same way, so the host's
//! own tail is printed beside the classifier's.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warden_intent::{Classification, Config, Egress, Kind, classify_full, classify_with};

mod texts;
use texts::{shell_1kb, sql_1kb};

fn percentiles(
    classify: fn(&Config, Kind, &str) -> Classification,
    config: &Config,
    kind: Kind,
    text: &str,
) -> (Duration, Duration) {
    timed(|| {
        black_box(classify(config, kind, black_box(text)));
    })
}

/// p50 and p99 of `f`, each call timed on its own after a warm-up.
fn timed(mut f: impl FnMut()) -> (Duration, Duration) {
    const RUNS: usize = 20_000;
    for _ in 0..1_000 {
        f();
    }
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort();
    (times[RUNS / 2], times[RUNS * 99 / 100])
}

/// `n` steps of a computation that touches no memory (an LCG).
fn spin(n: u64) -> u64 {
    let mut x = 1u64;
    for i in 0..n {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
    }
    x
}

/// The host's own tail for a computation as long as `median`: a spin sized
/// to it, timed the same way in the same run. On a virtual machine,
/// interrupts and the hypervisor stretch a few percent of all calls, so the
/// p99 of any ~15 µs computation is well above its p50.
fn host_tail(median: Duration) -> (Duration, Duration) {
    const PROBE: u64 = 10_000;
    let t = Instant::now();
    for _ in 0..100 {
        black_box(spin(black_box(PROBE)));
    }
    let per_probe = t.elapsed().as_secs_f64() / 100.0;
    let n = (PROBE as f64 * median.as_secs_f64() / per_probe).max(1.0) as u64;
    timed(|| {
        black_box(spin(black_box(n)));
    })
}

fn bench(c: &mut Criterion) {
    let config = Config {
        egress: Some(Egress::new(["*.example.com"]).expect("valid egress")),
        ..Config::default()
    };
    let inputs = [
        ("shell_1kb", Kind::Shell, shell_1kb()),
        ("sql_1kb", Kind::Sql, sql_1kb()),
    ];
    let mut group = c.benchmark_group("classify");
    for (name, kind, text) in &inputs {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| classify_with(&config, *kind, black_box(text)))
        });
    }
    group.finish();
    for (name, kind, text) in &inputs {
        let (p50, p99) = percentiles(classify_with, &config, *kind, text);
        let (full50, full99) = percentiles(classify_full, &config, *kind, text);
        let mbps = text.len() as f64 / p50.as_secs_f64() / 1e6;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{name}: {} bytes, p50 {:.1} µs, p99 {:.1} µs, {mbps:.1} MB/s at p50 ({:?}); \
             full parsers: p50 {:.1} µs, p99 {:.1} µs ({:.1}x at p50)",
            text.len(),
            us(p50),
            us(p99),
            classify_with(&config, *kind, text).intents,
            us(full50),
            us(full99),
            full50.as_secs_f64() / p50.as_secs_f64(),
        );
        let (host50, host99) = host_tail(p50);
        println!(
            "  this host, same run: a pure computation as long (p50 {:.1} µs) has p99 {:.1} µs",
            us(host50),
            us(host99),
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
