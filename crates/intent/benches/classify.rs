//! Classification latency for a 1 KB shell command and a 1 KB SQL batch.
//!
//! Besides criterion's report (with throughput), prints p50 / p99 from a
//! separate timed loop, and MB/s at the median, for `classify_with` and for
//! `classify_full` (the full parsers only, no fast paths) in the same run:
//! `cargo bench -p warden-intent --bench classify`.

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
    const RUNS: usize = 20_000;
    for _ in 0..1_000 {
        black_box(classify(config, kind, black_box(text)));
    }
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        black_box(classify(config, kind, black_box(text)));
        times.push(t.elapsed());
    }
    times.sort();
    (times[RUNS / 2], times[RUNS * 99 / 100])
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
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
