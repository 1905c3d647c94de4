//! `warden agent|token|trust|did` through the binary, on a real data
//! directory: agent keys on disk, the lifecycle, tokens issued, delegated,
//! verified and revoked, and every change in the audit log.
//!
//! The import test needs the `openssl` command; it fails (never skips) without it.

use assert_cmd::Command;
use base64::Engine as _;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use tempfile::TempDir;

fn warden(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.env_remove("WARDEN_POLICY")
        .env("WARDEN_DATA_DIR", data)
        .env("USER", "tester");
    cmd
}

fn run(data: &Path, args: &[&str]) -> Output {
    warden(data).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Runs a command that must succeed; returns its stdout.
fn ok(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs a command that must fail with `code`; returns its one-line stderr.
fn fails(data: &Path, args: &[&str], code: i32) -> String {
    let out = run(data, args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}{err}",
        stdout(&out)
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("warden: "), "{err}");
    err
}

/// Creates an agent; returns its DID and key file.
fn create(data: &Path, name: &str, sponsor: &str) -> (String, PathBuf) {
    let out = ok(
        data,
        &["agent", "create", "--name", name, "--sponsor", sponsor],
    );
    let mut lines = out.lines();
    let did = lines.next().unwrap().to_string();
    let key = PathBuf::from(lines.next().unwrap());
    assert!(did.starts_with("did:key:z6Mk"), "{out}");
    (did, key)
}

fn export(data: &Path) -> Vec<Value> {
    ok(data, &["audit", "export"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn events<'a>(entries: &'a [Value], action: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|e| e["kind"] == "event" && e["action"] == action)
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The 32-byte seed in a PKCS#8 v1 Ed25519 PEM (the DER's last 32 bytes).
fn seed_of_pem(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    der[der.len() - 32..].to_vec()
}

/// base58btc written out, independent of the `bs58` crate warden uses.
fn base58btc(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u8> = Vec::new(); // base 58, least significant first
    for &byte in data {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    let mut out = "1".repeat(zeros);
    out.extend(digits.iter().rev().map(|&d| ALPHABET[d as usize] as char));
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn create_list_show_and_the_key_stays_out_of_the_database() {
    let dir = TempDir::new().unwrap();
    let data = dir.path();
    let (did, key) = create(data, "db-agent", "Alice@Example.COM");
    let (other, _) = create(data, "ピーター", "bob@example.com");
    assert_eq!(
        key,
        data.join("keys")
            .join(format!("{}.key", &did["did:key:".len()..]))
    );
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&data.join("keys")), 0o700);

    let list: Value = serde_json::from_str(&ok(data, &["agent", "list", "--json"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let mine = list.iter().find(|a| a["did"] == did.as_str()).unwrap();
    assert_eq!(mine["name"], "db-agent");
    assert_eq!(mine["sponsor"], "Alice@example.com", "domain lower-cased");
    assert_eq!(mine["status"], "active");
    assert_eq!(mine["ring"], 3);
    assert_eq!(mine["trust"], 500);
    assert!(
        list.iter()
            .any(|a| a["did"] == other.as_str() && a["name"] == "ピーター")
    );
    let table = ok(data, &["agent", "list"]);
    assert!(
        table.contains(&did) && table.contains("ピーター"),
        "{table}"
    );

    let show = ok(data, &["agent", "show", &did]);
    for want in [
        "db-agent",
        "Alice@example.com",
        "active",
        "created",
        "trust    500",
    ] {
        assert!(show.contains(want), "{want}: {show}");
    }
    let shown: Value = serde_json::from_str(&ok(data, &["agent", "show", &did, "--json"])).unwrap();
    assert_eq!(shown["key_file"], key.display().to_string());

    // The private key is on disk in the key file only: never printed, never in the database.
    let pem = fs::read_to_string(&key).unwrap();
    let seed = seed_of_pem(&pem);
    let seed_hex = hex::encode(&seed);
    for f in fs::read_dir(data).unwrap() {
        let path = f.unwrap().path();
        if path.is_file() && path.file_name().unwrap() != "audit.key" {
            let bytes = fs::read(&path).unwrap();
            assert!(
                !contains(&bytes, seed_hex.as_bytes()),
                "{path:?} holds the seed as hex"
            );
            assert!(!contains(&bytes, &seed), "{path:?} holds the seed");
            assert!(
                !contains(&bytes, pem.lines().nth(1).unwrap().as_bytes()),
                "{path:?} holds the PEM"
            );
        }
    }
    let export = ok(data, &["audit", "export"]);
    assert!(!export.contains(&seed_hex) && !export.contains(pem.lines().nth(1).unwrap()));

    // The same key cannot make a second agent; the file is not overwritten.
    let err = fails(
        data,
        &[
            "agent",
            "create",
            "--name",
            "again",
            "--sponsor",
            "a@example.com",
            "--import-key",
        ],
        2,
    );
    assert!(err.contains("--import-key"), "{err}");
    let copy = dir.path().join("copy.pem");
    fs::write(&copy, &pem).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o600)).unwrap();
    let err = fails(
        data,
        &[
            "agent",
            "create",
            "--name",
            "again",
            "--sponsor",
            "a@example.com",
            "--import-key",
            copy.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("exists already"), "{err}");
    assert_eq!(fs::read_to_string(&key).unwrap(), pem);
}

#[test]
fn imported_openssl_key_gets_the_did_of_its_public_key() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("state");
    let pem_path = dir.path().join("agent.pem");
    let status = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&pem_path)
        .status()
        .expect("the `openssl` command is needed for this test");
    assert!(status.success());
    let der = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&pem_path)
        .output()
        .expect("the `openssl` command is needed for this test");
    assert!(der.status.success());
    // SubjectPublicKeyInfo for Ed25519: a 12-byte header, then the 32-byte key.
    assert_eq!(der.stdout.len(), 44);
    let mut multicodec = vec![0xed, 0x01];
    multicodec.extend_from_slice(&der.stdout[12..]);
    let independent = format!("did:key:z{}", base58btc(&multicodec));

    // A key file others can read is refused, with the fix.
    fs::set_permissions(&pem_path, fs::Permissions::from_mode(0o644)).unwrap();
    let pem_arg = pem_path.to_str().unwrap();
    let args = [
        "agent",
        "create",
        "--name",
        "imported",
        "--sponsor",
        "ops@example.com",
        "--import-key",
        pem_arg,
    ];
    let err = fails(&data, &args, 1);
    assert!(
        err.contains("mode 644") && err.contains("chmod 600"),
        "{err}"
    );
    fs::set_permissions(&pem_path, fs::Permissions::from_mode(0o600)).unwrap();

    let out = ok(&data, &args);
    let did = out.lines().next().unwrap();
    assert_eq!(did, independent);
    let doc: Value = serde_json::from_str(&ok(&data, &["did", "show", did])).unwrap();
    assert_eq!(doc["id"], independent);
    assert_eq!(
        doc["verificationMethod"][0]["publicKeyMultibase"],
        &independent["did:key:".len()..]
    );
    assert_eq!(
        doc["verificationMethod"][0]["type"],
        "Ed25519VerificationKey2020"
    );

    // A hex seed from stdin: the W3C did:key test vector for seed 0.
    let out = warden(&data)
        .args([
            "agent",
            "create",
            "--name",
            "seed0",
            "--sponsor",
            "ops@example.com",
            "--import-key",
            "-",
        ])
        .write_stdin("00".repeat(32) + "\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().next(),
        Some("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp")
    );

    let bad = dir.path().join("bad.key");
    fs::write(&bad, "not a key").unwrap();
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).unwrap();
    let err = fails(
        &data,
        &[
            "agent",
            "create",
            "--name",
            "x",
            "--sponsor",
            "ops@example.com",
            "--import-key",
            bad.to_str().unwrap(),
        ],
        1,
    );
    assert!(
        err.contains("bad.key") && !err.contains("not a key"),
        "{err}"
    );
}

#[test]
fn lifecycle_moves_only_along_its_edges_and_every_change_is_an_event() {
    let dir = TempDir::new().unwrap();
    let data = dir.path();
    let out = ok(
        data,
        &[
            "agent",
            "create",
            "--name",
            "p",
            "--sponsor",
            "a@example.com",
            "--provisioned",
        ],
    );
    let did = out.lines().next().unwrap().to_string();
    let status = |data: &Path| -> String {
        let v: Value = serde_json::from_str(&ok(data, &["agent", "show", &did, "--json"])).unwrap();
        v["status"].as_str().unwrap().to_string()
    };
    assert_eq!(status(data), "provisioned");
    let err = fails(data, &["agent", "suspend", &did], 1);
    assert!(
        err.contains("provisioned") && err.contains("suspended"),
        "{err}"
    );
    let err = fails(data, &["agent", "resume", &did], 1);
    assert!(
        err.contains("provisioned") && err.contains("activate"),
        "{err}"
    );
    let err = fails(
        data,
        &[
            "token", "issue", "--agent", &did, "--tools", "x", "--ttl", "1h",
        ],
        1,
    );
    assert!(err.contains("provisioned"), "{err}");

    ok(data, &["agent", "activate", &did]);
    let err = fails(data, &["agent", "activate", &did], 1);
    assert!(err.contains("active"), "{err}");
    ok(
        data,
        &["agent", "suspend", &did, "--reason", "investigating"],
    );
    assert_eq!(status(data), "suspended");
    let err = fails(data, &["agent", "suspend", &did], 1);
    assert!(err.contains("from suspended to suspended"), "{err}");
    let err = fails(data, &["agent", "activate", &did], 1);
    assert!(err.contains("resume"), "{err}");
    ok(data, &["agent", "resume", &did]);
    assert_eq!(status(data), "active");
    ok(
        data,
        &["agent", "decommission", &did, "--reason", "retired"],
    );
    assert_eq!(status(data), "decommissioned");
    for cmd in ["activate", "suspend", "resume", "decommission"] {
        let err = fails(data, &["agent", cmd, &did], 1);
        assert!(err.contains("decommissioned"), "{cmd}: {err}");
    }
    let err = fails(
        data,
        &["agent", "suspend", &did, "--reason", "a\u{202e}b"],
        1,
    );
    assert!(err.contains("\\u{202e}"), "escaped, not raw: {err}");

    let entries = export(data);
    assert_eq!(events(&entries, "agent.created").len(), 1);
    let moves: Vec<(String, String)> = events(&entries, "agent.status")
        .iter()
        .map(|e| {
            assert_eq!(e["subject"], did.as_str());
            assert_eq!(e["actor"], "cli:tester");
            let d: Value = serde_json::from_str(e["details"].as_str().unwrap()).unwrap();
            (
                d["from"].as_str().unwrap().into(),
                d["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("provisioned", "active"),
        ("active", "suspended"),
        ("suspended", "active"),
        ("active", "decommissioned"),
    ];
    assert_eq!(
        moves,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
    let out = ok(data, &["audit", "verify"]);
    assert!(out.starts_with("ok: 5 entries"), "{out}");
}

#[test]
fn issue_verify_attenuate_revoke() {
    let dir = TempDir::new().unwrap();
    let data = dir.path();
    let (agent, _) = create(data, "db-agent", "alice@example.com");
    let (helper, helper_key) = create(data, "helper", "bob@example.com");
    let issuer = ok(data, &["token", "issuer"]).trim().to_string();
    assert!(issuer.starts_with("did:key:z6Mk"));
    assert_eq!(mode(&data.join("issuer.key")), 0o600);
    assert_eq!(
        ok(data, &["token", "issuer"]).trim(),
        issuer,
        "created once"
    );

    let token = ok(
        data,
        &[
            "token", "issue", "--agent", &agent, "--tools", "db.*", "read_*", "--ttl", "1h",
        ],
    );
    let token = token.trim();
    let chain = ok(data, &["token", "verify", token]);
    assert!(chain.starts_with(&format!("issuer    {issuer}")), "{chain}");
    assert!(chain.contains(&format!("└─ agent {agent}")), "{chain}");
    assert!(chain.contains("sponsor  alice@example.com"), "{chain}");
    assert!(chain.contains("tools    [db.*, read_*]"), "{chain}");
    assert!(chain.contains("valid: "), "{chain}");

    // Delegation only narrows.
    for (args, why) in [
        (vec!["--tools", "shell.*", "--ttl", "10m"], "tool pattern"),
        (vec!["--tools", "db.*", "--ttl", "2h"], "expiry"),
        (vec!["--tools", "db.*", "--ring", "2"], "ring ceiling"),
    ] {
        let mut cmd = vec!["token", "attenuate", token, "--to", &helper];
        cmd.extend(args);
        let err = fails(data, &cmd, 1);
        assert!(
            err.contains("token_widened_rights") && err.contains(why),
            "{err}"
        );
    }
    // Only the holder's key signs a delegation.
    let err = fails(
        data,
        &[
            "token",
            "attenuate",
            token,
            "--to",
            &helper,
            "--tools",
            "db.query",
            "--key",
            helper_key.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("only the holder"), "{err}");

    let delegated = ok(
        data,
        &[
            "token",
            "attenuate",
            token,
            "--to",
            &helper,
            "--tools",
            "db.query",
            "--ttl",
            "10m",
        ],
    );
    let delegated = delegated.trim();
    let out: Value =
        serde_json::from_str(&ok(data, &["token", "verify", delegated, "--json"])).unwrap();
    assert_eq!(out["valid"], true);
    assert_eq!(out["issuer"], issuer.as_str());
    assert_eq!(out["holder"], helper.as_str());
    assert_eq!(
        out["sponsor"], "alice@example.com",
        "the sponsor carries through"
    );
    let links = out["links"].as_array().unwrap();
    assert_eq!(links.len(), 2, "agent and delegate under the issuer: {out}");
    assert_eq!(links[0]["did"], agent.as_str());
    assert_eq!(links[1]["did"], helper.as_str());
    assert_eq!(links[1]["tools"], serde_json::json!(["db.query"]));
    assert!(links[1]["expires_unix"].as_u64() < links[0]["expires_unix"].as_u64());
    let text = ok(data, &["token", "verify", delegated]);
    assert!(text.contains(&format!("└─ delegate {helper}")), "{text}");
    assert_eq!(text.matches("└─").count(), 2, "{text}");

    // Revoking the delegation alone leaves the agent's token valid.
    let out = warden(data)
        .args([
            "token",
            "revoke",
            "-",
            "--last-link",
            "--reason",
            "helper done",
        ])
        .write_stdin(delegated)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(data, &["token", "verify", delegated]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("invalid: token_revoked: "),
        "{}",
        stdout(&out)
    );
    ok(data, &["token", "verify", token]);
    // Revoking a token revokes every link: the parent too.
    ok(data, &["token", "revoke", token]);
    let out = run(data, &["token", "verify", token]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("token_revoked"), "{}", stdout(&out));

    let entries = export(data);
    let issued = events(&entries, "token.issued");
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["subject"], agent.as_str());
    let details: Value = serde_json::from_str(issued[0]["details"].as_str().unwrap()).unwrap();
    assert_eq!(details["tools"], serde_json::json!(["db.*", "read_*"]));
    assert_eq!(details["ring_ceiling"], 3);
    assert_eq!(details["revocation_ids"].as_array().unwrap().len(), 1);
    assert_eq!(events(&entries, "token.attenuated").len(), 1);
    assert_eq!(events(&entries, "token.revoked").len(), 2);
    let all = ok(data, &["audit", "export"]);
    assert!(
        !all.contains(token) && !all.contains(delegated),
        "tokens are never logged"
    );
    assert!(ok(data, &["audit", "verify"]).starts_with("ok: "));
}

#[test]
fn expired_token_fails_with_the_expiry_and_can_still_be_revoked() {
    let dir = TempDir::new().unwrap();
    let data = dir.path();
    let (agent, _) = create(data, "short", "alice@example.com");
    let token = ok(
        data,
        &[
            "token", "issue", "--agent", &agent, "--tools", "x", "--ttl", "1s",
        ],
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let out = run(data, &["token", "verify", token.trim()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("invalid: token_expired: token expired at "),
        "{}",
        stdout(&out)
    );
    let out = ok(data, &["token", "revoke", token.trim()]);
    assert!(out.contains("revoked 1 of 1"), "{out}");
}

#[test]
fn decommission_revokes_the_tokens_issued_and_delegated_to_the_agent() {
    let dir = TempDir::new().unwrap();
    let data = dir.path();
    let (agent, _) = create(data, "a", "alice@example.com");
    let (helper, _) = create(data, "h", "alice@example.com");
    let root = ok(
        data,
        &[
            "token", "issue", "--agent", &agent, "--tools", "db.*", "--ttl", "1h",
        ],
    );
    let delegated = ok(
        data,
        &[
            "token",
            "attenuate",
            root.trim(),
            "--to",
            &helper,
            "--tools",
            "db.query",
        ],
    );
    let helpers_own = ok(
        data,
        &[
            "token", "issue", "--agent", &helper, "--tools", "x", "--ttl", "1h",
        ],
    );
    let out = ok(data, &["agent", "decommission", &helper]);
    assert!(out.contains("revoked 2 token revocation id(s)"), "{out}");
    for t in [&delegated, &helpers_own] {
        let out = run(data, &["token", "verify", t.trim()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stdout(&out).contains("token_revoked"), "{}", stdout(&out));
    }
    ok(data, &["token", "verify", root.trim()]);
    let err = fails(
        data,
        &[
            "token", "issue", "--agent", &helper, "--tools", "x", "--ttl", "1h",
        ],
        1,
    );
    assert!(err.contains("decommissioned"), "{err}");
    let err = fails(
        data,
        &[
            "token",
            "attenuate",
            root.trim(),
            "--to",
            &helper,
            "--tools",
            "db.query",
        ],
        1,
    );
    assert!(err.contains("decommissioned"), "{err}");

    let entries = export(data);
    let status = events(&entries, "agent.status");
    let last: Value =
        serde_json::from_str(status.last().unwrap()["details"].as_str().unwrap()).unwrap();
    assert_eq!(last["to"], "decommissioned");
    assert_eq!(last["credentials_revoked"].as_array().unwrap().len(), 2);
    assert!(ok(data, &["audit", "verify"]).starts_with("ok: "));
}

#[test]
fn bad_input_is_one_line_with_exit_1_or_2() {
    let dir = TempDir::new().unwrap();
    let data = dir.path();
    let (agent, _) = create(data, "a", "alice@example.com");
    let unknown = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
    for args in [
        vec!["did", "show", "did:key:z6Mk0OIl"],
        vec!["did", "show", "did:web:example.com"],
        vec!["agent", "show", "not a did"],
        vec!["agent", "show", unknown],
        vec!["trust", "show", unknown],
        vec!["agent", "suspend", unknown],
        vec![
            "token", "issue", "--agent", unknown, "--tools", "x", "--ttl", "1h",
        ],
        vec![
            "token", "issue", "--agent", &agent, "--tools", "x", "--ttl", "1h", "--ring", "1",
        ],
        vec!["token", "revoke", "garbage"],
        vec![
            "agent",
            "create",
            "--name",
            "a\u{202e}b",
            "--sponsor",
            "a@example.com",
        ],
        vec![
            "agent",
            "create",
            "--name",
            "zero\u{200b}width",
            "--sponsor",
            "a@example.com",
        ],
        vec![
            "agent",
            "create",
            "--name",
            "n",
            "--sponsor",
            "ａｌｉｃｅ@example.com",
        ],
        vec!["agent", "create", "--name", "n", "--sponsor", "alice"],
        vec![
            "agent",
            "create",
            "--name",
            "",
            "--sponsor",
            "a@example.com",
        ],
    ] {
        let err = fails(data, &args, 1);
        assert!(
            !err.contains('\u{202e}') && !err.contains('\u{200b}'),
            "{err}"
        );
    }
    let err = fails(data, &["agent", "show", unknown], 1);
    assert!(
        err.contains("no agent") && err.contains("agent list"),
        "{err}"
    );
    for args in [
        vec!["did", "show"],
        vec!["agent", "create", "--name", "x"],
        vec![
            "token", "issue", "--agent", &agent, "--tools", "x", "--ttl", "1 hour",
        ],
        vec![
            "token", "issue", "--agent", &agent, "--tools", "x;y", "--ttl", "1h",
        ],
        vec![
            "token", "issue", "--agent", &agent, "--tools", "x", "--ttl", "1h", "--ring", "4",
        ],
        vec!["agent", "frobnicate"],
    ] {
        fails(data, &args, 2);
    }
    let err = fails(data, &["token", "verify", "garbage"], 1);
    assert!(err.contains("no trusted issuer"), "{err}");
    ok(data, &["token", "issuer"]);
    let out = run(data, &["token", "verify", "garbage"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("invalid: token_malformed: "),
        "{}",
        stdout(&out)
    );
    // A token issued by another organisation is not trusted here.
    let other = TempDir::new().unwrap();
    let (stranger, _) = create(other.path(), "s", "eve@example.com");
    let foreign = ok(
        other.path(),
        &[
            "token", "issue", "--agent", &stranger, "--tools", "x", "--ttl", "1h",
        ],
    );
    let out = run(data, &["token", "verify", foreign.trim()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("token_unknown_issuer"),
        "{}",
        stdout(&out)
    );
    let their_issuer = ok(other.path(), &["token", "issuer"]);
    ok(
        data,
        &[
            "token",
            "verify",
            foreign.trim(),
            "--issuer",
            their_issuer.trim(),
        ],
    );
    // No data directory: a clear error, not an empty answer.
    let err = fails(&dir.path().join("missing"), &["agent", "list"], 1);
    assert!(err.contains("no agents in"), "{err}");
}

#[test]
fn trust_show_reports_score_ring_and_thresholds() {
    let dir = TempDir::new().unwrap();
    let data = dir.path();
    let (agent, _) = create(data, "a", "alice@example.com");
    let v: Value = serde_json::from_str(&ok(data, &["trust", "show", &agent, "--json"])).unwrap();
    assert_eq!(v["score"], 500);
    assert_eq!(v["ring"], 3);
    assert_eq!(v["eligible_ring"], 3);
    assert_eq!(v["thresholds"]["ring2"], 600);
    assert_eq!(v["thresholds"]["ring1"], 900);
    let text = ok(data, &["trust", "show", &agent]);
    assert!(text.contains("score          500 now"), "{text}");
    assert!(text.contains("ring 2 ≥ 600"), "{text}");
}

/// `warden check` on a policy that requires identity: the token from
/// `token issue` lets the agent's calls through, the sponsor lands on the
/// decision and in the audit log, and each refusal has its own reason.
#[test]
fn check_requires_a_token_from_this_data_dir_and_records_the_sponsor() {
    let dir = TempDir::new().unwrap();
    let data = dir.path();
    let policy = data.join("policy.yaml");
    fs::write(
        &policy,
        "version: warden/v1\nname: id-check\ndefault: deny\nidentity: required\nrules:\n  - id: reads\n    match: {tool: \"db.read*\"}\n    verdict: allow\n",
    )
    .unwrap();
    let (did, _) = create(data, "reader", "alice@example.com");
    let token = ok(
        data,
        &[
            "token", "issue", "--agent", &did, "--tools", "db.*", "--ttl", "1h",
        ],
    );
    let token = token.trim();
    let check = |name: &str, action: Value| {
        let path = data.join(name);
        fs::write(&path, action.to_string()).unwrap();
        let out = run(
            data,
            &[
                "check",
                "--record",
                "--policy",
                policy.to_str().unwrap(),
                "--action",
                path.to_str().unwrap(),
            ],
        );
        let decision: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", stderr(&out)));
        (out.status.code(), decision)
    };

    let (code, d) = check(
        "ok.json",
        serde_json::json!({"point": "pre_tool_call", "tool": "db.read", "args": {},
                           "context": {"token": token}}),
    );
    assert_eq!(code, Some(0), "{d}");
    assert_eq!(d["verdict"], "allow");
    assert_eq!(d["agent"], did.as_str());
    assert_eq!(d["sponsor"], "alice@example.com");

    let (code, d) = check(
        "missing.json",
        serde_json::json!({"point": "pre_tool_call", "tool": "db.read", "args": {}}),
    );
    assert_eq!(
        (code, d["reason"].as_str()),
        (Some(1), Some("identity:token_missing")),
        "{d}"
    );

    let (code, d) = check(
        "forged.json",
        serde_json::json!({"point": "pre_tool_call", "tool": "db.read", "args": {},
                           "context": {"token": format!("{token}x")}}),
    );
    assert_eq!(code, Some(1), "{d}");
    assert!(
        d["reason"].as_str().unwrap().starts_with("identity:"),
        "{d}"
    );

    ok(data, &["agent", "suspend", &did, "--reason", "test"]);
    let (code, d) = check(
        "suspended.json",
        serde_json::json!({"point": "pre_tool_call", "tool": "db.read", "args": {},
                           "context": {"token": token}}),
    );
    assert_eq!(code, Some(1), "{d}");
    assert!(d["reason"].as_str().unwrap().contains("suspended"), "{d}");

    // The allowed decision is in the log with its sponsor.
    let decisions: Vec<Value> = export(data)
        .into_iter()
        .filter(|e| e["kind"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 4);
    assert_eq!(decisions[0]["sponsor"], "alice@example.com");
    assert_eq!(decisions[0]["agent"], did.as_str());
    ok(data, &["audit", "verify"]);
}

#[test]
fn endorsements_raise_trust_and_are_audited() {
    let dir = TempDir::new().unwrap();
    let data = dir.path();
    let (did, _) = create(data, "helper", "bob@example.com");
    let score = |data: &Path| -> u64 {
        let v: Value = serde_json::from_str(&ok(data, &["trust", "show", &did, "--json"])).unwrap();
        v["recorded_score"].as_u64().unwrap()
    };
    let before = score(data);
    let line = ok(
        data,
        &["trust", "endorse", &did, "--reason", "reviewed its work"],
    );
    assert!(line.contains("trust"), "{line}");
    let after = score(data);
    assert!(after > before, "{before} -> {after}");
    ok(data, &["trust", "approve-ring1", &did]);
    let v: Value = serde_json::from_str(&ok(data, &["trust", "show", &did, "--json"])).unwrap();
    assert_eq!(v["ring1_approved"], true, "{v}");
    // A score of about 500 earns ring 3 whatever the approval.
    assert_eq!(v["ring"], 3, "{v}");
    let entries = export(data);
    let endorsed = events(&entries, "trust.endorsed");
    assert_eq!(endorsed.len(), 1);
    assert_eq!(endorsed[0]["subject"], did.as_str());
    assert_eq!(events(&entries, "trust.ring1_approved").len(), 1);
    ok(data, &["agent", "decommission", &did]);
    fails(data, &["trust", "endorse", &did], 1);
    ok(data, &["audit", "verify"]);
}
