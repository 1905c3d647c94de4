//! `warden audit`: verify, export, prove and read the audit log.

use crate::state::DataDir;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::time::Duration;
use warden_audit::{Entry, Outcome, Record};
use warden_store::{SqliteStore, Store, StoredEntry, verify};

/// Entries read per query by export and tail.
const PAGE: usize = 4096;
/// How often `tail -f` looks for new entries.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

#[derive(Subcommand)]
pub enum Command {
    /// Re-derive every leaf hash, every checkpoint's root and signature, and
    /// the consistency between consecutive checkpoints.
    ///
    /// Exit code: 0 when everything holds, 1 naming the first bad sequence number.
    Verify {
        #[command(flatten)]
        data: DataDir,
    },
    /// Print every entry, one line each, with its `seq` and hex `leaf_hash`.
    Export {
        /// Line format: jsonl (one JSON object per line) or cef (ArcSight Common Event Format).
        #[arg(long, default_value = "jsonl")]
        format: Format,
        /// First sequence number to print.
        #[arg(long, default_value_t = 0, value_name = "SEQ")]
        from: u64,
        #[command(flatten)]
        data: DataDir,
    },
    /// Print the latest signed checkpoint (a C2SP signed note).
    Checkpoint {
        #[command(flatten)]
        data: DataDir,
    },
    /// Print the inclusion proof of entry SEQ as JSON (hex hashes).
    Prove {
        /// The entry's sequence number.
        seq: u64,
        /// Tree size to prove against (default: the latest checkpoint's size).
        #[arg(long, value_name = "N")]
        size: Option<u64>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Print the last entries as JSON lines; with -f, keep printing new ones.
    Tail {
        /// Keep waiting for new entries (Ctrl-C to stop).
        #[arg(long, short)]
        follow: bool,
        /// How many of the last entries to print first.
        #[arg(long, short = 'n', default_value_t = 10)]
        lines: u64,
        #[command(flatten)]
        data: DataDir,
    },
    /// Print the log's verifier key in note format (name+keyid+base64 key).
    Key {
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Cef,
}

pub fn run(cmd: Command) -> Result<u8> {
    match cmd {
        Command::Verify { data } => verify_log(&data.open_existing()?),
        Command::Export { format, from, data } => {
            let store = data.open_existing()?;
            let mut out = std::io::stdout().lock();
            print_from(&store, from, u64::MAX, format, &mut out)?;
            Ok(0)
        }
        Command::Checkpoint { data } => {
            let store = data.open_existing()?;
            match store.latest_checkpoint()? {
                Some(cp) => {
                    print!("{}", cp.note);
                    Ok(0)
                }
                None => bail!(
                    "the log in '{}' has no checkpoint yet (one is signed every 1,000 entries, every 10 seconds and on a clean shutdown)",
                    data.data_dir.display()
                ),
            }
        }
        Command::Prove { seq, size, data } => prove(&data.open_existing()?, seq, size),
        Command::Tail {
            follow,
            lines,
            data,
        } => tail(&data.open_existing()?, follow, lines),
        Command::Key { data } => {
            // The key is created with the log; a fresh directory gets both.
            let store = match data.open_existing() {
                Ok(s) => s,
                Err(_) => {
                    let s = data.open()?;
                    s.close()?;
                    s
                }
            };
            println!("{}", store.verifier().to_key_string());
            Ok(0)
        }
    }
}

fn verify_log(store: &SqliteStore) -> Result<u8> {
    let total = store.log_size()?;
    // indicatif draws on stderr and hides itself when it is not a terminal.
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "verifying {bar:40} {pos}/{len} entries ({per_sec}, {eta} left)",
        )
        .context("progress bar template")?,
    );
    let mut progress = |done: u64, _total: u64| bar.set_position(done);
    let report = verify(store, &store.verifier(), Some(&mut progress))?;
    bar.finish_and_clear();
    match report.problem {
        None => {
            println!(
                "ok: {} entries, {} checkpoints verified; {} entries after the last checkpoint are hashed but not yet signed",
                report.entries, report.checkpoints, report.unsigned_tail
            );
            Ok(0)
        }
        Some(problem) => {
            println!(
                "FAILED at seq {}: {}",
                problem.seq,
                warden_policy::printable(&problem.kind.to_string())
            );
            println!(
                "{} entries and {} checkpoints before it verified",
                report.entries, report.checkpoints
            );
            Ok(1)
        }
    }
}

fn prove(store: &SqliteStore, seq: u64, size: Option<u64>) -> Result<u8> {
    let size = match size {
        Some(n) => n,
        None => match store.latest_checkpoint()? {
            Some(cp) => cp.size,
            None => bail!("the log has no checkpoint yet: give the tree size with --size N"),
        },
    };
    let log_size = store.log_size()?;
    if size > log_size {
        bail!("--size {size} is larger than the log ({log_size} entries)");
    }
    if seq >= size {
        bail!("entry {seq} is not in a tree of {size} entries");
    }
    let proof = warden_store::inclusion_proof(store, seq, size)?;
    let out = json!({
        "seq": proof.seq,
        "size": proof.size,
        "leaf_hash": hex::encode(proof.leaf_hash),
        "root": hex::encode(proof.root),
        "hashes": proof.hashes.iter().map(hex::encode).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

fn tail(store: &SqliteStore, follow: bool, lines: u64) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    let mut next = store.log_size()?.saturating_sub(lines);
    loop {
        next = print_from(store, next, u64::MAX, Format::Jsonl, &mut out)?;
        if !follow {
            return Ok(0);
        }
        out.flush()?;
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Prints entries from `from` (up to `limit` of them); returns the next seq.
fn print_from(
    store: &SqliteStore,
    mut from: u64,
    mut limit: u64,
    format: Format,
    out: &mut impl Write,
) -> Result<u64> {
    while limit > 0 {
        let page = store.entries(from, PAGE.min(limit as usize))?;
        let Some(last) = page.last().map(|e| e.seq) else {
            break;
        };
        for stored in &page {
            let line = match format {
                Format::Jsonl => jsonl(stored)?,
                Format::Cef => cef(stored)?,
            };
            writeln!(out, "{line}")?;
        }
        limit = limit.saturating_sub(page.len() as u64);
        from = last + 1;
    }
    Ok(from)
}

fn decode(stored: &StoredEntry) -> Result<Entry> {
    stored.entry().with_context(|| {
        format!(
            "entry {} does not decode: run 'warden audit verify'",
            stored.seq
        )
    })
}

/// `{"seq": N, "leaf_hash": "…", "kind": "decision" | "outcome", …fields}`.
fn jsonl(stored: &StoredEntry) -> Result<String> {
    let entry = decode(stored)?;
    let mut line = Map::new();
    line.insert("seq".into(), json!(stored.seq));
    line.insert("leaf_hash".into(), json!(stored.leaf_hash_hex()));
    if let Value::Object(fields) = serde_json::to_value(&entry.record)? {
        line.extend(fields);
    }
    Ok(Value::Object(line).to_string())
}

/// One CEF line: `CEF:0|warden|warden|VERSION|signature|name|severity|extension`.
fn cef(stored: &StoredEntry) -> Result<String> {
    let entry = decode(stored)?;
    let mut ext: Vec<(&str, String)> = vec![
        ("cn1Label", "seq".into()),
        ("cn1", stored.seq.to_string()),
        ("cs1Label", "leafHash".into()),
        ("cs1", stored.leaf_hash_hex()),
    ];
    let (signature, name, severity) = match &entry.record {
        Record::Decision(d) => {
            ext.push(("rt", (d.time_unix_nanos / 1_000_000).to_string()));
            ext.push(("suser", d.agent.clone()));
            ext.push(("act", d.verdict.clone()));
            ext.push(("reason", d.reason.clone()));
            ext.push(("msg", d.message.clone()));
            ext.push(("cs2Label", "actionHash".into()));
            ext.push(("cs2", d.action_hash.clone()));
            ext.push(("cs3Label", "session".into()));
            ext.push(("cs3", d.session.clone()));
            ext.push(("cs4Label", "rule".into()));
            ext.push(("cs4", d.rule.clone().unwrap_or_default()));
            ext.push(("cs5Label", "policy".into()));
            ext.push(("cs5", format!("{} {}", d.policy_name, d.policy_hash)));
            ext.push(("cs6Label", "intents".into()));
            ext.push(("cs6", d.intents.join(",")));
            if let Some(sponsor) = &d.sponsor {
                ext.push(("duser", sponsor.clone()));
            }
            if let Some(caller) = &d.caller {
                ext.push(("suid", caller.clone()));
            }
            let severity = match d.verdict.as_str() {
                "deny" => 7,
                "require_approval" => 5,
                "warn" => 4,
                "transform" => 3,
                _ => 1,
            };
            (
                format!("decision:{}", d.verdict),
                format!("{} {} {}", d.verdict, d.point, d.tool),
                severity,
            )
        }
        Record::Outcome(o) => {
            ext.push(("rt", (o.time_unix_nanos / 1_000_000).to_string()));
            ext.push(("cn2Label", "decisionSeq".into()));
            ext.push(("cn2", o.decision_seq.to_string()));
            if let Some(e) = &o.error {
                ext.push(("msg", e.clone()));
            }
            let (word, severity) = match o.outcome {
                Outcome::Succeeded => ("succeeded", 1),
                Outcome::Failed => ("failed", 5),
                Outcome::Unknown => ("unknown", 4),
            };
            (
                format!("outcome:{word}"),
                format!("outcome {word} of decision {}", o.decision_seq),
                severity,
            )
        }
        Record::Event(e) => {
            ext.push(("rt", (e.time_unix_nanos / 1_000_000).to_string()));
            ext.push(("suser", e.actor.clone()));
            ext.push(("act", e.action.clone()));
            ext.push(("duser", e.subject.clone()));
            ext.push(("msg", e.details.clone()));
            (
                format!("event:{}", e.action),
                format!("{} {}", e.action, e.subject),
                3,
            )
        }
    };
    let extension: Vec<String> = ext
        .iter()
        .map(|(k, v)| format!("{k}={}", cef_value(v)))
        .collect();
    Ok(format!(
        "CEF:0|warden|warden|{}|{}|{}|{severity}|{}",
        env!("CARGO_PKG_VERSION"),
        cef_header(&signature),
        cef_header(&name),
        extension.join(" ")
    ))
}

/// CEF header fields escape `\` and `|`; line breaks become spaces.
fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

/// CEF extension values escape `\` and `=`, and line breaks as `\n` / `\r`.
fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cef_escapes_what_would_break_a_field() {
        assert_eq!(cef_header(r"a|b\c"), r"a\|b\\c");
        assert_eq!(cef_value("k=v\nx\\"), r"k\=v\nx\\");
    }
}
