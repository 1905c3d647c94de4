//! Prints the classification of a text: `cargo run -p warden-intent --example classify -- shell 'rm -rf /'`.
use warden_intent::{Config, Egress, Kind, classify_with};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let kind: Kind = args
        .next()
        .ok_or("usage: classify KIND TEXT [EGRESS...]")?
        .parse()?;
    let text = args.next().ok_or("usage: classify KIND TEXT [EGRESS...]")?;
    let egress: Vec<String> = args.collect();
    let config = Config {
        egress: if egress.is_empty() {
            None
        } else {
            Some(Egress::new(&egress)?)
        },
        ..Config::default()
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&classify_with(&config, kind, &text))?
    );
    Ok(())
}
