//! `warden intent`: what a piece of text does, as the gate would read it.

use anyhow::{Context, Result, bail};
use std::io::Read;
use warden_intent::{Config, Egress, Kind, classify_with};

/// Largest text read from stdin or an argument. The classifier reads the
/// first `warden_intent::MAX_INPUT_BYTES` of it and reports the rest as cut.
const MAX_TEXT_BYTES: usize = 1024 * 1024;

#[derive(clap::Args)]
pub struct Args {
    /// How to read the text: sql, shell, url, path, or auto (every kind it parses as).
    #[arg(long, short, default_value = "auto", value_parser = parse_kind)]
    kind: Kind,
    /// Hosts URLs may name (`api.example.com`, `*.example.com`); repeat for more.
    /// Without it, hosts are not judged by name.
    #[arg(long, value_name = "DOMAIN")]
    egress: Vec<String>,
    /// The text, or '-' to read it from stdin.
    text: String,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse()
        .map_err(|e: warden_intent::IntentError| e.to_string())
}

pub fn run(args: Args) -> Result<u8> {
    let text = if args.text == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_TEXT_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .context("cannot read the text from stdin")?;
        if bytes.len() > MAX_TEXT_BYTES {
            bail!("the text on stdin is larger than {MAX_TEXT_BYTES} bytes");
        }
        String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "the text on stdin is not valid UTF-8 (at byte {})",
                e.utf8_error().valid_up_to()
            )
        })?
    } else {
        if args.text.len() > MAX_TEXT_BYTES {
            bail!("the text is larger than {MAX_TEXT_BYTES} bytes");
        }
        args.text
    };
    let egress = if args.egress.is_empty() {
        None
    } else {
        Some(Egress::new(&args.egress)?)
    };
    let config = Config {
        egress,
        ..Config::default()
    };
    let c = classify_with(&config, args.kind, &text);
    println!("{}", serde_json::to_string_pretty(&c)?);
    Ok(0)
}
