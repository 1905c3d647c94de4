//! Makes N `Gate::decide` calls of the decide bench's target row, for counting
//! instructions with callgrind (the machine's load does not change them):
//!
//! ```text
//! cargo build --release -p warden-bench --example decide_calls
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*run_calls*' \
//!     target/release/examples/decide_calls catalog 10000
//! ```
//!
//! `catalog` (the default) is the target row (string arguments declared
//! `text`, nothing to read); `auto` reads the two short strings as `auto`.
//! Divide the collected instructions by N.
//!
//! `compile N` instead loads and compiles the 1,000-rule policy N times (the
//! decide bench's compile row): `--toggle-collect='*run_compiles*'`.
use std::hint::black_box;
use warden_bench::*;
use warden_gate::{Action, Gate};

#[inline(never)]
fn run_calls(gate: &Gate, acts: &[Action], n: usize) {
    for i in 0..n {
        black_box(gate.decide(black_box(&acts[i % acts.len()])));
    }
}

#[inline(never)]
fn run_compiles(text: &str, n: usize) {
    for _ in 0..n {
        let policy = warden_policy::parse("bench.yaml", black_box(text))
            .and_then(warden_policy::compile)
            .expect("the bench policy compiles");
        black_box(policy);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let variant = args.next();
    let text = match variant.as_deref() {
        None | Some("catalog") => warden_policy_with_catalog(),
        Some("compile") => warden_policy(),
        Some("auto") => warden_policy(),
        Some(other) => panic!("unknown variant {other:?}: catalog, auto or compile"),
    };
    let calls: usize = args
        .next()
        .map(|s| s.parse().expect("N is a number of calls"))
        .unwrap_or(10_000);
    if variant.as_deref() == Some("compile") {
        run_compiles(&text, calls);
        return;
    }
    let policy = warden_policy::parse("bench.yaml", &text)
        .and_then(warden_policy::compile)
        .expect("the bench policy compiles");
    let gate = Gate::new(policy);
    let acts = bench_actions(None);
    // Warm-up: every action once, so lazily built state is not counted.
    for a in &acts {
        black_box(gate.decide(a));
    }
    run_calls(&gate, &acts, calls);
}
