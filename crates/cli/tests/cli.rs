//! Behaviour tests for the `warden` binary: exit codes, the decision JSON on
//! stdout, and the one-line errors on stderr.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// The repository root (`crates/cli/../..`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn example() -> PathBuf {
    root().join("examples/database-agent")
}

fn example_policy() -> PathBuf {
    example().join("policy.yaml")
}

fn example_action(name: &str) -> PathBuf {
    example().join("actions").join(format!("{name}.json"))
}

/// The `warden` binary, with no `WARDEN_POLICY` leaking in from the caller.
fn warden() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.env_remove("WARDEN_POLICY");
    cmd
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// Parses the decision JSON a `check` printed.
fn decision(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout_of(out),
            stderr_of(out)
        )
    })
}

/// `warden check --policy <example> --action <file>`.
fn check_example(policy: Option<&Path>, action: &Path) -> std::process::Output {
    let mut cmd = warden();
    cmd.arg("check");
    if let Some(p) = policy {
        cmd.arg("--policy").arg(p);
    }
    cmd.arg("--action")
        .arg(action)
        .output()
        .expect("run warden")
}

/// Asserts an input error: exit 2, nothing on stdout, exactly one line on
/// stderr that starts with `warden:` and carries no control characters.
/// Returns that line.
fn assert_input_error(out: &std::process::Output) -> String {
    let stderr = stderr_of(out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code; stderr:\n{stderr}\nstdout:\n{}",
        stdout_of(out)
    );
    assert!(
        out.stdout.is_empty(),
        "stdout must be empty, got:\n{}",
        stdout_of(out)
    );
    assert!(
        stderr.ends_with('\n'),
        "stderr must end with a newline: {stderr:?}"
    );
    let line = &stderr[..stderr.len() - 1];
    assert!(
        !line.contains('\n'),
        "stderr must be exactly one line, got:\n{stderr}"
    );
    assert!(
        line.starts_with("warden: "),
        "stderr must start with 'warden: ', got: {line:?}"
    );
    assert!(
        !line.chars().any(char::is_control),
        "stderr must carry no control characters, got: {line:?}"
    );
    line.to_string()
}

/// `warden check --action <path>` run inside `dir` with the bundled policy.
fn check_in(dir: &Path, action: &str) -> std::process::Output {
    warden()
        .current_dir(dir)
        .args(["check", "--action", action])
        .output()
        .expect("run warden")
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, contents).expect("write test file");
    p
}

// ---------------------------------------------------------------------------
// check: the example actions
// ---------------------------------------------------------------------------

#[test]
fn check_select_is_allowed_with_exit_0() {
    let out = check_example(Some(&example_policy()), &example_action("select"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let d = decision(&out);
    assert_eq!(d["verdict"], "allow");
    assert_eq!(d["rule"], "allow-reads");
    assert_eq!(d["matched"], serde_json::json!(["allow-reads"]));
    assert_eq!(d["policy"]["name"], "database-agent");
    assert!(
        d["action_hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:") && h.len() == 7 + 64),
        "action_hash: {}",
        d["action_hash"]
    );
    assert!(out.stderr.is_empty(), "stderr: {}", stderr_of(&out));
}

#[test]
fn check_drop_table_is_denied_with_exit_1() {
    let out = check_example(Some(&example_policy()), &example_action("drop-table"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let d = decision(&out);
    assert_eq!(d["verdict"], "deny");
    assert_eq!(d["rule"], "block-destructive-sql");
    assert_eq!(
        d["reason"],
        "destructive or privilege-changing SQL is never run by an agent"
    );
    // deny overrides the require_approval rule that matched as well.
    assert_eq!(
        d["matched"],
        serde_json::json!(["block-destructive-sql", "writes-need-approval"])
    );
}

#[test]
fn check_external_email_requires_approval_with_exit_3() {
    let out = check_example(Some(&example_policy()), &example_action("external-email"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    let d = decision(&out);
    assert_eq!(d["verdict"], "require_approval");
    assert_eq!(d["rule"], "external-email-needs-approval");
    assert_eq!(d["approvers"], serde_json::json!(["security@example.com"]));
}

#[test]
fn check_ticket_with_password_is_transformed_with_exit_0_and_redacted() {
    let out = check_example(
        Some(&example_policy()),
        &example_action("ticket-with-password"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let d = decision(&out);
    assert_eq!(d["verdict"], "transform");
    assert_eq!(d["rule"], "redact-credentials");
    assert_eq!(d["args"]["password"], "[REDACTED]");
    // Everything else is left as it was.
    assert_eq!(d["args"]["title"], "Login broken");
    assert_eq!(d["args"]["body"], "Customer cannot log in");
    assert!(
        !stdout_of(&out).contains("hunter2"),
        "the secret must not be printed"
    );
}

#[test]
fn check_without_policy_uses_the_bundled_example_policy() {
    for (action, verdict, rule, code) in [
        ("select", "allow", "allow-reads", 0),
        ("drop-table", "deny", "block-destructive-sql", 1),
        (
            "external-email",
            "require_approval",
            "external-email-needs-approval",
            3,
        ),
        ("ticket-with-password", "transform", "redact-credentials", 0),
    ] {
        let bundled = check_example(None, &example_action(action));
        let file = check_example(Some(&example_policy()), &example_action(action));
        assert_eq!(bundled.status.code(), Some(code), "{action}");
        let (b, f) = (decision(&bundled), decision(&file));
        assert_eq!(b["verdict"], verdict, "{action}");
        assert_eq!(b["rule"], rule, "{action}");
        assert_eq!(b["policy"]["name"], "database-agent", "{action}");
        for field in [
            "verdict",
            "rule",
            "reason",
            "matched",
            "action_hash",
            "args",
        ] {
            assert_eq!(b[field], f[field], "{action}: field {field}");
        }
    }
}

#[test]
fn check_reads_the_action_from_stdin_with_dash() {
    let json = fs::read(example_action("external-email")).unwrap();
    let out = warden()
        .args(["check", "--action", "-"])
        .write_stdin(json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    let d = decision(&out);
    assert_eq!(d["verdict"], "require_approval");
    assert_eq!(d["rule"], "external-email-needs-approval");

    // The hash is over the action, not over where it came from.
    let from_file = decision(&check_example(None, &example_action("external-email")));
    assert_eq!(d["action_hash"], from_file["action_hash"]);
}

#[test]
fn check_honours_the_warden_policy_env_var() {
    let dir = TempDir::new().unwrap();
    let policy = write(
        dir.path(),
        "allow-all.yaml",
        "version: warden/v1\nname: env-policy\ndefault: allow\n",
    );
    // The bundled policy denies this tool by default; the env policy allows it.
    let action = write(
        dir.path(),
        "a.json",
        r#"{"point": "pre_tool_call", "tool": "shell.run", "args": {"command": "ls"}}"#,
    );

    let bundled = check_example(None, &action);
    assert_eq!(bundled.status.code(), Some(1));
    assert_eq!(decision(&bundled)["policy"]["name"], "database-agent");

    let out = warden()
        .env("WARDEN_POLICY", &policy)
        .args(["check", "--action"])
        .arg(&action)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let d = decision(&out);
    assert_eq!(d["verdict"], "allow");
    assert_eq!(d["reason"], "default");
    assert_eq!(d["rule"], Value::Null);
    assert_eq!(d["policy"]["name"], "env-policy");
}

#[test]
fn check_policy_flag_overrides_the_env_var() {
    let dir = TempDir::new().unwrap();
    let policy = write(
        dir.path(),
        "allow-all.yaml",
        "version: warden/v1\nname: env-policy\ndefault: allow\n",
    );
    let out = warden()
        .env("WARDEN_POLICY", &policy)
        .args(["check", "--policy"])
        .arg(example_policy())
        .arg("--action")
        .arg(example_action("drop-table"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(decision(&out)["policy"]["name"], "database-agent");
}

#[test]
fn check_env_var_naming_a_missing_policy_is_an_input_error() {
    let out = warden()
        .env("WARDEN_POLICY", "/nonexistent/warden/policy.yaml")
        .args(["check", "--action"])
        .arg(example_action("select"))
        .output()
        .unwrap();
    let line = assert_input_error(&out);
    assert!(line.contains("/nonexistent/warden/policy.yaml"), "{line}");
}

// ---------------------------------------------------------------------------
// check: input errors (exit 2, one line on stderr, nothing on stdout)
// ---------------------------------------------------------------------------

#[test]
fn check_rejects_malformed_json() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "bad.json",
        r#"{"point": "pre_tool_call", "tool": "#,
    );
    let line = assert_input_error(&check_in(dir.path(), "bad.json"));
    assert!(line.contains("bad.json"), "{line}");
    assert!(line.contains("invalid action JSON"), "{line}");
}

#[test]
fn check_rejects_empty_stdin() {
    let out = warden()
        .args(["check", "--action", "-"])
        .write_stdin("")
        .output()
        .unwrap();
    let line = assert_input_error(&out);
    assert!(line.contains("invalid action JSON"), "{line}");
}

#[test]
fn check_rejects_invalid_utf8_bytes() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "latin1.json",
        b"{\"point\": \"pre_tool_call\", \"tool\": \"db.query\", \"args\": {\"sql\": \"caf\xe9\"}}",
    );
    let line = assert_input_error(&check_in(dir.path(), "latin1.json"));
    assert!(line.contains("latin1.json"), "{line}");
}

#[test]
fn check_rejects_deeply_nested_args() {
    let dir = TempDir::new().unwrap();
    let depth = 10_000;
    let json = format!(
        r#"{{"point": "pre_tool_call", "tool": "db.query", "args": {{"x": {}{}}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    write(dir.path(), "deep.json", json);
    let line = assert_input_error(&check_in(dir.path(), "deep.json"));
    assert!(line.contains("recursion limit"), "{line}");
}

#[test]
fn check_rejects_an_action_file_over_one_mebibyte() {
    let dir = TempDir::new().unwrap();
    let json = format!(
        r#"{{"point": "pre_tool_call", "tool": "db.query", "args": {{"sql": "{}"}}}}"#,
        "a".repeat(1024 * 1024)
    );
    assert!(json.len() > 1024 * 1024);
    write(dir.path(), "big.json", &json);
    let line = assert_input_error(&check_in(dir.path(), "big.json"));
    assert!(line.contains("larger than 1048576 bytes"), "{line}");

    // The same document on stdin is refused the same way.
    let out = warden()
        .args(["check", "--action", "-"])
        .write_stdin(json)
        .output()
        .unwrap();
    let line = assert_input_error(&out);
    assert!(line.contains("larger than 1048576 bytes"), "{line}");
}

#[test]
fn check_accepts_an_action_just_under_the_size_limit() {
    let dir = TempDir::new().unwrap();
    let head = r#"{"point": "pre_tool_call", "tool": "db.query", "args": {"sql": ""#;
    let tail = r#""}}"#;
    let pad = 1024 * 1024 - head.len() - tail.len();
    let json = format!("{head}{}{tail}", "a".repeat(pad));
    assert_eq!(json.len(), 1024 * 1024);
    write(dir.path(), "limit.json", json);
    let out = check_in(dir.path(), "limit.json");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(decision(&out)["verdict"], "allow");
}

#[test]
fn check_rejects_an_unknown_top_level_field() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "extra.json",
        r#"{"point": "pre_tool_call", "tool": "db.query", "verdict": "allow"}"#,
    );
    let line = assert_input_error(&check_in(dir.path(), "extra.json"));
    assert!(line.contains("unknown field `verdict`"), "{line}");
}

#[test]
fn check_rejects_a_tool_name_with_a_zero_width_space() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "zwsp.json",
        "{\"point\": \"pre_tool_call\", \"tool\": \"db.\u{200B}execute\"}",
    );
    let line = assert_input_error(&check_in(dir.path(), "zwsp.json"));
    assert!(line.contains("tool"), "{line}");
    assert!(line.contains("U+200B"), "{line}");
}

#[test]
fn check_rejects_a_tool_name_with_a_bidi_override() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "rlo.json",
        "{\"point\": \"pre_tool_call\", \"tool\": \"db.\u{202E}yreuq\"}",
    );
    let line = assert_input_error(&check_in(dir.path(), "rlo.json"));
    assert!(line.contains("U+202E"), "{line}");

    // Written as a JSON escape it is the same character, and refused the same way.
    write(
        dir.path(),
        "rlo-escaped.json",
        r#"{"point": "pre_tool_call", "tool": "db.\u202Eyreuq"}"#,
    );
    let line = assert_input_error(&check_in(dir.path(), "rlo-escaped.json"));
    assert!(line.contains("U+202E"), "{line}");
}

#[test]
fn check_error_echoing_a_field_name_with_a_newline_stays_one_line() {
    // serde's message quotes the offending key verbatim; a key carrying "\n"
    // must not split the error over two lines.
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "nl.json",
        r#"{"point": "pre_tool_call", "tool": "db.query", "ex\ntra": 1}"#,
    );
    assert_input_error(&check_in(dir.path(), "nl.json"));
}

#[test]
fn check_error_echoing_a_point_with_an_escape_sequence_has_no_control_characters() {
    // An unknown point is quoted back; an ANSI escape in it must not reach the terminal.
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "esc.json",
        r#"{"point": "\u001b[2J\u001b[31mpre_tool_call", "tool": "db.query"}"#,
    );
    assert_input_error(&check_in(dir.path(), "esc.json"));
}

#[test]
fn check_policy_error_echoing_a_key_with_a_newline_stays_one_line() {
    // The diagnostic quotes the unknown key; a quoted YAML key may hold "\n".
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "keynl.yaml",
        "version: warden/v1\nname: x\ndefault: deny\nrules:\n  - id: a\n    verdict: allow\n    \"ver\\ndict\": deny\n",
    );
    let out = warden()
        .current_dir(dir.path())
        .args(["check", "--policy", "keynl.yaml", "--action"])
        .arg(example_action("select"))
        .output()
        .unwrap();
    let line = assert_input_error(&out);
    assert!(line.starts_with("warden: keynl.yaml:7:5: "), "{line}");
}

#[test]
fn check_rejects_a_missing_action_file() {
    let dir = TempDir::new().unwrap();
    let line = assert_input_error(&check_in(dir.path(), "no-such-action.json"));
    assert!(line.contains("no-such-action.json"), "{line}");
}

#[test]
fn check_rejects_a_policy_with_an_error_naming_file_line_col() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "typo.yaml",
        "version: warden/v1\nname: typo\ndefault: deny\nrules:\n  - id: block-drop\n    match: {tool: db.execute}\n    verdict: dney\n",
    );
    let out = warden()
        .current_dir(dir.path())
        .args(["check", "--policy", "typo.yaml", "--action"])
        .arg(example_action("drop-table"))
        .output()
        .unwrap();
    let line = assert_input_error(&out);
    assert!(
        line.starts_with("warden: typo.yaml:7:14: unknown verdict 'dney' in rule 'block-drop'"),
        "stderr must name file:line:col, got: {line}"
    );
    assert!(!line.contains("more problem"), "{line}");
}

#[test]
fn check_rejects_a_nonexistent_policy_path() {
    let dir = TempDir::new().unwrap();
    let out = warden()
        .current_dir(dir.path())
        .args(["check", "--policy", "missing.yaml", "--action"])
        .arg(example_action("select"))
        .output()
        .unwrap();
    let line = assert_input_error(&out);
    assert!(line.contains("missing.yaml"), "{line}");
}

#[test]
fn unknown_flag_is_a_usage_error_with_exit_2() {
    let out = warden().args(["check", "--bogus-flag"]).output().unwrap();
    let line = assert_input_error(&out);
    assert!(line.contains("--bogus-flag"), "{line}");
}

#[test]
fn missing_required_action_flag_is_a_usage_error_with_exit_2() {
    let out = warden().arg("check").output().unwrap();
    let line = assert_input_error(&out);
    assert!(line.contains("--action"), "{line}");
}

#[test]
fn unknown_subcommand_is_a_usage_error_with_exit_2() {
    let out = warden().arg("frobnicate").output().unwrap();
    let line = assert_input_error(&out);
    assert!(line.contains("frobnicate"), "{line}");
}

// ---------------------------------------------------------------------------
// check: fail closed
// ---------------------------------------------------------------------------

#[test]
fn check_fails_closed_when_a_condition_reads_a_missing_field() {
    let dir = TempDir::new().unwrap();
    // default allow, and the only rule would allow too: only failing closed denies.
    write(
        dir.path(),
        "policy.yaml",
        "version: warden/v1\nname: fail-closed\ndefault: allow\nrules:\n  - id: needs-x\n    match: {tool: t}\n    when: args.x == 1\n    verdict: allow\n",
    );
    write(
        dir.path(),
        "a.json",
        r#"{"point": "pre_tool_call", "tool": "t", "args": {}}"#,
    );
    let out = warden()
        .current_dir(dir.path())
        .args(["check", "--policy", "policy.yaml", "--action", "a.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let d = decision(&out);
    assert_eq!(d["verdict"], "deny");
    assert_eq!(d["reason"], "error:missing_field");
    assert!(
        d["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message carries the detail: {}",
        d["message"]
    );
}

// ---------------------------------------------------------------------------
// policy lint
// ---------------------------------------------------------------------------

#[test]
fn lint_passes_the_example_policy() {
    let out = warden()
        .args(["policy", "lint"])
        .arg(example_policy())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
    assert!(out.stdout.is_empty(), "stdout: {}", stdout_of(&out));
    assert!(
        stderr_of(&out).contains("ok (13 rules"),
        "{}",
        stderr_of(&out)
    );
}

/// Runs `warden policy lint FILES…` inside `dir`.
fn lint_in(dir: &Path, files: &[&str]) -> std::process::Output {
    warden()
        .current_dir(dir)
        .args(["policy", "lint"])
        .args(files)
        .output()
        .unwrap()
}

fn lines(out: &std::process::Output) -> Vec<String> {
    stdout_of(out).lines().map(str::to_string).collect()
}

const EXPECTED_ONE_OF: &str = "(expected one of: allow, warn, transform, require_approval, deny)";

#[test]
fn lint_reports_unknown_field_with_suggestion_and_missing_default() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "bad.yaml",
        "version: warden/v1\nname: bad\nrules:\n  - id: block-drop\n    match: {tool: db.execute}\n    verdcit: deny\n",
    );
    let out = lint_in(dir.path(), &["bad.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(
        lines(&out),
        [
            "bad.yaml:1:1: missing 'default' (a policy must say what happens when no rule matches: add 'default: deny' or 'default: allow')".to_string(),
            format!("bad.yaml:4:5: missing 'verdict' in rule 'block-drop' {EXPECTED_ONE_OF}"),
            "bad.yaml:6:5: unknown field 'verdcit' in rule 'block-drop' (did you mean 'verdict'?)".to_string(),
        ]
    );
    assert!(
        stderr_of(&out).contains("3 problem(s)"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn lint_reports_an_unknown_verdict() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "verdict.yaml",
        "version: warden/v1\nname: bad\ndefault: deny\nrules:\n  - id: r1\n    match: {tool: db.execute}\n    verdict: maybe\n",
    );
    let out = lint_in(dir.path(), &["verdict.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        lines(&out),
        [format!(
            "verdict.yaml:7:14: unknown verdict 'maybe' in rule 'r1' {EXPECTED_ONE_OF}"
        )]
    );
}

#[test]
fn lint_reports_a_cel_syntax_error_with_its_position() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "cel.yaml",
        "version: warden/v1\nname: bad\ndefault: deny\nrules:\n  - id: r1\n    match: {tool: db.execute}\n    when: 'args.x == '\n    verdict: deny\n",
    );
    let out = lint_in(dir.path(), &["cel.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(
            "cel.yaml:7:11: invalid CEL in 'when' of rule 'r1' at 1:11 of the expression: Syntax error:"
        ),
        "{}",
        got[0]
    );
}

#[test]
fn lint_checks_several_files_and_reports_each() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "one.yaml",
        "version: warden/v1\nname: one\ndefault: deny\nrules:\n  - id: r1\n    verdict: maybe\n",
    );
    write(
        dir.path(),
        "two.yaml",
        "version: warden/v1\nname: two\ndefault: deny\nrules:\n  - id: r2\n    verdict: deny\n    reson: typo\n",
    );
    write(
        dir.path(),
        "good.yaml",
        "version: warden/v1\nname: good\ndefault: allow\n",
    );
    let out = lint_in(dir.path(), &["one.yaml", "good.yaml", "two.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        lines(&out),
        [
            format!("one.yaml:6:14: unknown verdict 'maybe' in rule 'r1' {EXPECTED_ONE_OF}"),
            "two.yaml:7:5: unknown field 'reson' in rule 'r2' (did you mean 'reason'?)".to_string(),
        ]
    );
    let stderr = stderr_of(&out);
    assert!(stderr.contains("good.yaml: ok"), "{stderr}");
    assert!(stderr.contains("2 problem(s)"), "{stderr}");

    // All good files together pass.
    let out = lint_in(dir.path(), &["good.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    let out = warden()
        .args(["policy", "lint"])
        .arg(dir.path().join("good.yaml"))
        .arg(example_policy())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
}

#[test]
fn lint_prints_one_line_per_problem_even_when_a_key_holds_a_newline() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "keynl.yaml",
        "version: warden/v1\nname: x\ndefault: deny\nrules:\n  - id: a\n    verdict: allow\n    \"ver\\ndict\": deny\n",
    );
    let out = lint_in(dir.path(), &["keynl.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(got.len(), 1, "one problem, one line: {got:?}");
    assert!(
        got[0].starts_with("keynl.yaml:7:5: unknown field "),
        "{}",
        got[0]
    );
}

#[test]
fn lint_reports_a_nonexistent_file() {
    let dir = TempDir::new().unwrap();
    let out = lint_in(dir.path(), &["nope.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("nope.yaml"), "{}", got[0]);
    assert!(got[0].contains("no such file"), "{}", got[0]);
}

#[test]
fn lint_without_files_is_a_usage_error() {
    warden()
        .args(["policy", "lint"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty());
}

const PART: &str = "version: warden/v1\nname: part\nrules:\n  - id: extra\n    match: {tool: x}\n    verdict: allow\n";

#[cfg(unix)]
#[test]
fn lint_follows_a_symlinked_include_inside_the_directory() {
    // The control for the escape test below: a symlink that stays inside is fine.
    let dir = TempDir::new().unwrap();
    write(dir.path(), "part.yaml", PART);
    std::os::unix::fs::symlink("part.yaml", dir.path().join("link.yaml")).unwrap();
    write(
        dir.path(),
        "main.yaml",
        "version: warden/v1\nname: main\ndefault: deny\ninclude: [link.yaml]\n",
    );
    let out = lint_in(dir.path(), &["main.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
    assert!(
        stderr_of(&out).contains("main.yaml: ok (1 rules"),
        "{}",
        stderr_of(&out)
    );
}

#[cfg(unix)]
#[test]
fn lint_refuses_an_include_that_escapes_through_a_symlink() {
    let outside = TempDir::new().unwrap();
    let secret = write(outside.path(), "outside.yaml", PART);
    let dir = TempDir::new().unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("escape.yaml")).unwrap();
    write(
        dir.path(),
        "main.yaml",
        "version: warden/v1\nname: main\ndefault: deny\ninclude: [escape.yaml]\n",
    );
    let out = lint_in(dir.path(), &["main.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let got = lines(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("main.yaml:4:11: cannot read include 'escape.yaml': "),
        "{}",
        got[0]
    );
    assert!(
        got[0].ends_with("resolves outside the policy's directory"),
        "{}",
        got[0]
    );

    // check refuses to use it as well.
    let out = warden()
        .current_dir(dir.path())
        .args(["check", "--policy", "main.yaml", "--action"])
        .arg(example_action("select"))
        .output()
        .unwrap();
    let line = assert_input_error(&out);
    assert!(line.contains("outside the policy's directory"), "{line}");
}

#[test]
fn lint_refuses_an_include_that_escapes_with_dot_dot() {
    let dir = TempDir::new().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    write(dir.path(), "part.yaml", PART);
    write(
        &dir.path().join("sub"),
        "main.yaml",
        "version: warden/v1\nname: main\ndefault: deny\ninclude: [../part.yaml]\n",
    );
    let out = lint_in(dir.path(), &["sub/main.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("sub/main.yaml:4:"), "{}", got[0]);
    assert!(got[0].contains("outside the directory"), "{}", got[0]);
}

#[test]
fn lint_reports_an_include_that_is_not_utf8_by_name() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "latin1.yaml",
        b"rules:\n  - id: caf\xe9\n    verdict: allow\n",
    );
    write(
        dir.path(),
        "main.yaml",
        "version: warden/v1\nname: main\ndefault: deny\ninclude: [latin1.yaml]\n",
    );
    let out = lint_in(dir.path(), &["main.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        lines(&out),
        [
            "main.yaml:4:11: cannot read include 'latin1.yaml': not valid UTF-8 (first bad byte at offset 18)"
        ]
    );
}

// ---------------------------------------------------------------------------
// policy test
// ---------------------------------------------------------------------------

#[test]
fn policy_test_passes_the_example_fixtures() {
    let fixtures = fs::read_to_string(example().join("fixtures.yaml")).unwrap();
    let count = fixtures
        .lines()
        .filter(|l| l.starts_with("- name:"))
        .count();
    assert_eq!(count, 18, "the example has 18 fixtures");

    let out = warden()
        .args(["policy", "test"])
        .arg(example_policy())
        .arg(example().join("fixtures.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
    let stdout = stdout_of(&out);
    assert!(stdout.contains("18 passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let passing_rows = stdout
        .lines()
        .filter(|l| l.trim_end_matches(['│', ' ']).ends_with("pass"))
        .count();
    assert_eq!(passing_rows, 18, "{stdout}");
}

#[test]
fn policy_test_with_a_wrong_expectation_fails_with_exit_1() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "fixtures.yaml",
        r#"- name: select is allowed
  action: {point: pre_tool_call, tool: db.query, args: {sql: "SELECT 1"}}
  expect: allow
  rule: allow-reads
- name: wrongly expects drop to be allowed
  action: {point: pre_tool_call, tool: db.execute, args: {sql: "DROP TABLE x"}}
  expect: allow
"#,
    );
    let out = warden()
        .current_dir(dir.path())
        .args(["policy", "test"])
        .arg(example_policy())
        .arg("fixtures.yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");
    let failing = stdout
        .lines()
        .find(|l| l.contains("wrongly expects drop to be allowed"))
        .unwrap_or_else(|| panic!("no row for the failing fixture:\n{stdout}"));
    assert!(failing.contains("FAIL"), "{failing}");
    assert!(failing.contains("deny"), "{failing}");
    assert!(failing.contains("block-destructive-sql"), "{failing}");
    let passing = stdout
        .lines()
        .find(|l| l.contains("select is allowed"))
        .unwrap();
    assert!(
        passing.contains("pass") && !passing.contains("FAIL"),
        "{passing}"
    );
}

#[test]
fn policy_test_with_a_wrong_rule_fails_even_if_the_verdict_is_right() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "fixtures.yaml",
        "- name: right verdict, wrong rule\n  action: {point: pre_tool_call, tool: db.query, args: {sql: \"SELECT 1\"}}\n  expect: allow\n  rule: tickets\n",
    );
    let out = warden()
        .current_dir(dir.path())
        .args(["policy", "test"])
        .arg(example_policy())
        .arg("fixtures.yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout_of(&out).contains("0 passed, 1 failed"),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn policy_test_with_malformed_fixtures_yaml_is_an_input_error() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "fixtures.yaml",
        "- name: [unclosed\n  expect: allow\n",
    );
    let out = warden()
        .current_dir(dir.path())
        .args(["policy", "test"])
        .arg(example_policy())
        .arg("fixtures.yaml")
        .output()
        .unwrap();
    let line = assert_input_error(&out);
    assert!(line.starts_with("warden: fixtures.yaml"), "{line}");
}

#[test]
fn policy_test_with_an_invalid_fixture_action_is_an_input_error() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "fixtures.yaml",
        "- name: hidden character\n  action: {point: pre_tool_call, tool: \"db.\\u200bquery\"}\n  expect: allow\n",
    );
    let out = warden()
        .current_dir(dir.path())
        .args(["policy", "test"])
        .arg(example_policy())
        .arg("fixtures.yaml")
        .output()
        .unwrap();
    let line = assert_input_error(&out);
    assert!(line.contains("hidden character"), "{line}");
    assert!(line.contains("U+200B"), "{line}");
}

#[test]
fn policy_test_with_a_missing_fixtures_file_is_an_input_error() {
    let dir = TempDir::new().unwrap();
    let out = warden()
        .current_dir(dir.path())
        .args(["policy", "test"])
        .arg(example_policy())
        .arg("missing-fixtures.yaml")
        .output()
        .unwrap();
    let line = assert_input_error(&out);
    assert!(line.contains("missing-fixtures.yaml"), "{line}");
}

// ---------------------------------------------------------------------------
// policy explain
// ---------------------------------------------------------------------------

#[test]
fn explain_external_email_lists_every_rule_and_the_match() {
    let out = warden()
        .args(["policy", "explain"])
        .arg(example_policy())
        .arg("--action")
        .arg(example_action("external-email"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    for id in [
        "allow-reads",
        "block-destructive-sql",
        "writes-need-approval",
        "no-exfiltration-after-pii",
        "internal-email",
        "external-email-needs-approval",
        "tickets",
        "redact-credentials",
        "admin-tools-hidden",
        "admin-tools-privileged",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.split_whitespace().nth(1).is_some_and(|w| w == id)),
            "rule '{id}' is not listed:\n{stdout}"
        );
    }
    let matched = stdout
        .lines()
        .find(|l| l.contains("MATCH  external-email-needs-approval"))
        .unwrap_or_else(|| panic!("no MATCH line:\n{stdout}"));
    assert!(matched.contains("-> require_approval"), "{matched}");
    assert!(matched.contains("[condition ran natively]"), "{matched}");
    assert_eq!(
        stdout.matches("MATCH").count(),
        1,
        "only one rule matches:\n{stdout}"
    );
    // Rules that did not match say why.
    let internal = stdout
        .lines()
        .find(|l| l.contains("internal-email ("))
        .unwrap();
    assert!(internal.trim_start().starts_with("no "), "{internal}");
    assert!(internal.contains("'when' is false"), "{internal}");
    assert!(
        stdout.contains(
            "decision: require_approval (rule: external-email-needs-approval, reason: mail to outside domains is reviewed)"
        ),
        "{stdout}"
    );
}

#[test]
fn explain_reads_the_action_from_stdin() {
    let out = warden()
        .args(["policy", "explain"])
        .arg(example_policy())
        .args(["--action", "-"])
        .write_stdin(fs::read(example_action("drop-table")).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    assert!(stdout.contains("MATCH  block-destructive-sql"), "{stdout}");
    assert!(stdout.contains("MATCH  writes-need-approval"), "{stdout}");
    assert!(stdout.contains("decision: deny"), "{stdout}");
}

#[test]
fn explain_rejects_an_invalid_action() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "zwsp.json",
        "{\"point\": \"pre_tool_call\", \"tool\": \"email.\u{200B}send\"}",
    );
    let out = warden()
        .current_dir(dir.path())
        .args(["policy", "explain"])
        .arg(example_policy())
        .args(["--action", "zwsp.json"])
        .output()
        .unwrap();
    let line = assert_input_error(&out);
    assert!(line.contains("U+200B"), "{line}");
}
