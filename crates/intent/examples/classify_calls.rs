//! Classifies the classification benchmark's 1 KB shell command (or SQL
//! batch) N times, for instruction counts under callgrind:
//!
//! ```text
//! cargo build --release -p warden-intent --example classify_calls
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*run_calls*' \
//!     target/release/examples/classify_calls shell 10000
//! ```
use std::hint::black_box;

use warden_intent::{Config, Egress, Kind, classify_with};

#[path = "../benches/texts/mod.rs"]
mod texts;

#[inline(never)]
fn run_calls(config: &Config, kind: Kind, text: &str, n: usize) -> usize {
    let mut found = 0;
    for _ in 0..n {
        found += black_box(classify_with(config, kind, black_box(text)))
            .findings
            .len();
    }
    found
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: classify_calls shell|sql N";
    let which = args.next().ok_or(usage)?;
    let n: usize = args.next().ok_or(usage)?.parse()?;
    let (kind, text) = match which.as_str() {
        "shell" => (Kind::Shell, texts::shell_1kb()),
        "sql" => (Kind::Sql, texts::sql_1kb()),
        _ => return Err(usage.into()),
    };
    let config = Config {
        egress: Some(Egress::new(["*.example.com"])?),
        ..Config::default()
    };
    println!("{} findings", run_calls(&config, kind, &text, n));
    Ok(())
}
