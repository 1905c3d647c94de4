//! Counts the heap allocations of one `Gate::decide` of the decide bench's
//! target row (catalog policy, no string to read), grouped by call site:
//!
//! ```text
//! cargo build --release -p warden-bench --example alloc_sites
//! target/release/examples/alloc_sites
//! ```
//!
//! Prints the mean allocations per decision over the 1,000 bench actions,
//! then each site (size and the first frames of its backtrace) with how
//! often per decision it allocated. Frames are what the symbol table names:
//! inlined callers do not appear.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Mutex;
use warden_bench::*;
use warden_gate::Gate;

thread_local! {
    /// Whether this thread's allocations are being recorded now.
    static RECORDING: Cell<bool> = const { Cell::new(false) };
}
static SITES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Recording;

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Recording allocates too: it is switched off while it runs.
        if RECORDING.with(|r| r.replace(false)) {
            let trace = std::backtrace::Backtrace::force_capture().to_string();
            let frames: Vec<&str> = trace
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("at "))
                .map(|l| l.split_once(": ").map_or(l, |(_, name)| name))
                .filter(|f| !f.contains("alloc_sites::") && !f.contains("backtrace"))
                .take(6)
                .collect();
            let site = format!("{:>5} B  {}", layout.size(), frames.join(" < "));
            SITES.lock().unwrap_or_else(|e| e.into_inner()).push(site);
            RECORDING.with(|r| r.set(true));
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

fn main() {
    let policy = warden_policy::parse("bench.yaml", &warden_policy_with_catalog())
        .and_then(warden_policy::compile)
        .expect("the bench policy compiles");
    let gate = Gate::new(policy);
    let acts = bench_actions(None);
    // Warm-up: lazily built state is not counted.
    for a in &acts {
        gate.decide(a);
    }
    for a in &acts {
        RECORDING.with(|r| r.set(true));
        let decision = gate.decide(a);
        RECORDING.with(|r| r.set(false));
        drop(decision);
    }
    let sites = std::mem::take(&mut *SITES.lock().unwrap_or_else(|e| e.into_inner()));
    let decisions = acts.len() as f64;
    println!(
        "allocations per decision: {:.2} (mean over {} decisions)",
        sites.len() as f64 / decisions,
        acts.len()
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for site in sites {
        *counts.entry(site).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    for (site, n) in counts {
        println!("{:6.2}  {site}", n as f64 / decisions);
    }
}
