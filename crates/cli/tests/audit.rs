//! `warden check --record` and `warden audit …` through the binary, on a real
//! SQLite log in a temporary data directory.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn example_action(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/database-agent/actions")
        .join(format!("{name}.json"))
}

/// `warden` with the data directory given through the environment, as a
/// deployment would set it.
fn warden(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.env_remove("WARDEN_POLICY").env("WARDEN_DATA_DIR", data);
    cmd
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Records the four example actions; returns the data directory.
fn recorded_log() -> TempDir {
    let dir = TempDir::new().unwrap();
    for (name, code) in [
        ("drop-table", 1),
        ("select", 0),
        ("external-email", 3),
        ("ticket-with-password", 0),
    ] {
        let out = warden(dir.path())
            .args(["check", "--record", "--action"])
            .arg(example_action(name))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{name}: {}", stderr(&out));
        let d: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            d["seq"].is_u64(),
            "{name}: the decision names its log entry: {d}"
        );
    }
    dir
}

fn export(dir: &Path) -> Vec<Value> {
    let out = warden(dir).args(["audit", "export"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn recorded_decisions_export_verify_and_prove() {
    let dir = recorded_log();
    let entries = export(dir.path());
    assert_eq!(entries.len(), 4);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], i as u64);
        assert_eq!(e["leaf_hash"].as_str().unwrap().len(), 64);
        assert_eq!(e["kind"], "decision");
    }
    assert_eq!(entries[0]["verdict"], "deny");
    assert_eq!(entries[0]["intents"], serde_json::json!(["destructive"]));
    assert_eq!(entries[0]["rule"], "block-destructive-sql");
    // The redaction happened before the record was written.
    let ticket = entries[3]["arguments"]["json"].as_str().unwrap();
    assert!(!ticket.contains("hunter2"), "{ticket}");

    let out = warden(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("ok: 4 entries"),
        "{}",
        stdout(&out)
    );

    let out = warden(dir.path())
        .args(["audit", "checkpoint"])
        .output()
        .unwrap();
    let note = stdout(&out);
    let lines: Vec<&str> = note.lines().collect();
    assert_eq!(lines[1], "4", "{note}");
    assert_eq!(lines[3], "", "{note}");
    assert!(lines[4].starts_with("— "), "{note}");

    let out = warden(dir.path())
        .args(["audit", "prove", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let proof: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(proof["size"], 4);
    assert_eq!(proof["leaf_hash"], entries[1]["leaf_hash"]);
    assert_eq!(proof["hashes"].as_array().unwrap().len(), 2);

    // The proof is checked against the root in the signed checkpoint.
    let root_b64 = lines[2];
    let root_hex = proof["root"].as_str().unwrap();
    assert_eq!(b64_to_hex(root_b64), root_hex);
    let leaf: [u8; 32] = hex::decode(proof["leaf_hash"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let hashes: Vec<[u8; 32]> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            hex::decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    let root: [u8; 32] = hex::decode(root_hex).unwrap().try_into().unwrap();
    warden_audit::verify_inclusion(&leaf, 1, 4, &hashes, &root).unwrap();

    let out = warden(dir.path()).args(["audit", "key"]).output().unwrap();
    let key = stdout(&out);
    let verifier = warden_audit::LogVerifier::from_key_string(key.trim()).unwrap();
    assert_eq!(verifier.name(), lines[0]);
    // The printed key verifies the printed checkpoint.
    let checkpoint = verifier.verify_checkpoint(&note).unwrap();
    assert_eq!(checkpoint.size, 4);
}

fn b64_to_hex(b64: &str) -> String {
    use base64::Engine;
    hex::encode(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
}

#[test]
fn export_from_a_sequence_number_and_cef() {
    let dir = recorded_log();
    let out = warden(dir.path())
        .args(["audit", "export", "--from", "2", "--format", "cef"])
        .output()
        .unwrap();
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("CEF:0|warden|warden|"), "{}", lines[0]);
    assert!(
        lines[0].contains("|decision:require_approval|"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(" cn1=2 "), "{}", lines[0]);
    assert!(lines[1].contains(" cn1=3 "), "{}", lines[1]);
}

#[test]
fn tail_prints_the_last_entries() {
    let dir = recorded_log();
    let out = warden(dir.path())
        .args(["audit", "tail", "-n", "2"])
        .output()
        .unwrap();
    let seqs: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [2, 3]);
}

#[test]
fn tail_follow_prints_entries_recorded_later() {
    let dir = recorded_log();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .env("WARDEN_DATA_DIR", dir.path())
        .args(["audit", "tail", "-f", "-n", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = warden(dir.path())
        .args(["check", "--record", "--action"])
        .arg(example_action("select"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["seq"], 4);
    assert_eq!(v["tool"], "db.query");
}

#[test]
fn verify_names_the_altered_entry() {
    let dir = recorded_log();
    let db = dir.path().join(warden_store::DB_FILE);
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        // Flip one byte in the middle of entry 2's stored record.
        let data: Vec<u8> = conn
            .query_row("SELECT data FROM audit_entries WHERE seq = 2", [], |r| {
                r.get(0)
            })
            .unwrap();
        let mut altered = data.clone();
        let mid = altered.len() / 2;
        altered[mid] ^= 0x01;
        conn.execute(
            "UPDATE audit_entries SET data = ?1 WHERE seq = 2",
            [&altered],
        )
        .unwrap();
    }
    let out = warden(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("FAILED at seq 2: "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_data_dir_flag_overrides_the_environment() {
    let dir = recorded_log();
    let empty = TempDir::new().unwrap();
    let out = warden(empty.path())
        .args(["audit", "verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn reading_a_missing_log_is_a_one_line_error() {
    let empty = TempDir::new().unwrap();
    for cmd in [
        &["audit", "verify"][..],
        &["audit", "export"],
        &["audit", "checkpoint"],
        &["audit", "prove", "0"],
        &["audit", "tail"],
    ] {
        let out = warden(empty.path()).args(cmd).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{cmd:?}: {err}");
        assert!(err.contains("no audit log in"), "{cmd:?}: {err}");
    }
}

#[test]
fn prove_refuses_entries_outside_the_tree() {
    let dir = recorded_log();
    for (args, expect) in [
        (&["audit", "prove", "4"][..], "not in a tree of 4 entries"),
        (
            &["audit", "prove", "0", "--size", "9"],
            "larger than the log",
        ),
        (&["audit", "prove", "x"], "invalid value 'x'"),
    ] {
        let out = warden(dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn check_without_record_writes_nothing() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("state");
    let out = warden(&data)
        .args(["check", "--action"])
        .arg(example_action("select"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(d.get("seq").is_none(), "{d}");
    assert!(!data.exists());
}

#[test]
fn a_log_held_by_another_writer_is_a_clear_error() {
    let dir = TempDir::new().unwrap();
    let _writer =
        warden_store::SqliteStore::open(dir.path(), warden_store::StoreConfig::default()).unwrap();
    let out = warden(dir.path())
        .args(["check", "--record", "--action"])
        .arg(example_action("select"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "no decision is printed without its record"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_listing_without_a_panic() {
    let dir = recorded_log();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .env("WARDEN_DATA_DIR", dir.path())
        .args(["audit", "tail", "-f"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe: the next write must end the process.
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    drop(reader);
    let out = warden(dir.path())
        .args(["check", "--record", "--action"])
        .arg(example_action("select"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc_sigpipe()), "{status:?}");
}

/// SIGPIPE's number on Linux.
fn libc_sigpipe() -> i32 {
    13
}
