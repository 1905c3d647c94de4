//! `limits:` and `add_labels:` through the public API: compiled values,
//! every malformed case at its place, and how includes merge.

use std::time::Duration;
use warden_policy::{Limit, MemorySources, Rate, compile, limits, load, parse};

const HEAD: &str = "version: warden/v1\nname: t\ndefault: allow\n";

fn errors(text: &str) -> Vec<String> {
    match parse("p.yaml", text).and_then(compile) {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics.iter().map(|d| d.to_string()).collect(),
    }
}

fn rate(calls: u64, secs: u64) -> Option<Rate> {
    Some(Rate {
        calls,
        per: Duration::from_secs(secs),
    })
}

#[test]
fn limits_compile_to_their_values() {
    let text = format!(
        "{HEAD}limits:\n  agents: {{calls: 600, per: 1m, per_session: 2000}}\n  tools:\n    email.send: {{calls: 10, per: 1h, per_session: 20}}\n    \"db.*\": {{calls: 100, per: 30s}}\n    fs.write: {{per_session: 5}}\n"
    );
    let policy = parse("p.yaml", &text).and_then(compile).expect("compiles");
    let l = policy.limits();
    assert!(!l.is_empty());
    assert_eq!(
        l.agents,
        Some(Limit {
            rate: rate(600, 60),
            per_session: Some(2000)
        })
    );
    let tools: Vec<(&str, Limit)> = l.tools.iter().map(|t| (t.tool.as_str(), t.limit)).collect();
    assert_eq!(
        tools,
        [
            (
                "email.send",
                Limit {
                    rate: rate(10, 3600),
                    per_session: Some(20)
                }
            ),
            (
                "db.*",
                Limit {
                    rate: rate(100, 30),
                    per_session: None
                }
            ),
            (
                "fs.write",
                Limit {
                    rate: None,
                    per_session: Some(5)
                }
            ),
        ]
    );
}

#[test]
fn a_policy_without_limits_has_none() {
    let policy = parse("p.yaml", HEAD).and_then(compile).expect("compiles");
    assert!(policy.limits().is_empty());
    let policy = parse("p.yaml", &format!("{HEAD}limits:\n"))
        .and_then(compile)
        .expect("compiles");
    assert!(policy.limits().is_empty());
}

#[test]
fn for_tool_returns_every_matching_glob_in_written_order() {
    let text = format!(
        "{HEAD}limits:\n  tools:\n    \"db.*\": {{calls: 100, per: 1m}}\n    \"*\": {{per_session: 1000}}\n    db.query: {{calls: 5, per: 1s}}\n    \"admin.{{reset,delete}}_*\": {{calls: 1, per: 1d}}\n"
    );
    let policy = parse("p.yaml", &text).and_then(compile).expect("compiles");
    let l = policy.limits();
    let names = |tool: &str| l.for_tool(tool).map(|t| t.tool.clone()).collect::<Vec<_>>();
    assert_eq!(names("db.query"), ["db.*", "*", "db.query"]);
    assert_eq!(names("db.export"), ["db.*", "*"]);
    assert_eq!(names("dbx"), ["*"]);
    assert_eq!(
        names("admin.reset_password"),
        ["*", "admin.{reset,delete}_*"]
    );
    let db = &l.tools[0];
    assert!(db.matches("db.query") && db.matches("db.a/b"));
    assert!(!db.matches("dbx") && !db.matches("db") && !db.matches("xdb.query"));
    assert!(l.tools[2].matches("db.query") && !l.tools[2].matches("db.queryx"));
}

#[test]
fn malformed_limits_are_reported_at_their_place() {
    let lim = |body: &str| format!("{HEAD}limits:\n{body}");
    let cases = [
        (
            lim("  agents: {calls: 10}\n"),
            "p.yaml:5:11: 'limits.agents' has 'calls' but no 'per' ('calls' counts calls per window: add e.g. 'per: 1m')",
        ),
        (
            lim("  agents: {per: 1m}\n"),
            "p.yaml:5:11: 'limits.agents' has 'per' but no 'calls' (say how many calls each window allows: add e.g. 'calls: 100')",
        ),
        (
            lim("  agents: {calls: 10, per: 10x}\n"),
            "p.yaml:5:28: invalid per '10x' in 'limits.agents' (a window is a positive whole number and a unit: s, m, h or d (e.g. '30s', '1m', '24h'))",
        ),
        (
            lim("  agents: {calls: 10, per: 0s}\n"),
            "p.yaml:5:28: invalid per '0s' in 'limits.agents' (a window must be longer than zero)",
        ),
        (
            lim("  agents: {calls: 10, per: 8d}\n"),
            "p.yaml:5:28: invalid per '8d' in 'limits.agents' (the longest window is 7d)",
        ),
        (
            lim("  agents: {calls: 10, per: 60}\n"),
            "p.yaml:5:28: expected a string for 'per', found an integer",
        ),
        (
            lim("  agents: {calls: -1, per: 1m}\n"),
            "p.yaml:5:19: invalid calls '-1' in 'limits.agents' ('calls' is a whole number from 1 to 1000000000)",
        ),
        (
            lim("  agents: {calls: 0, per: 1m}\n"),
            "p.yaml:5:19: invalid calls '0' in 'limits.agents' ('calls' is a whole number from 1 to 1000000000)",
        ),
        (
            lim("  agents: {calls: 1000000001, per: 1m}\n"),
            "p.yaml:5:19: invalid calls '1000000001' in 'limits.agents' ('calls' is a whole number from 1 to 1000000000)",
        ),
        (
            lim("  agents: {calls: 1.5, per: 1m}\n"),
            "p.yaml:5:19: invalid calls '1.5' in 'limits.agents' ('calls' is a whole number from 1 to 1000000000)",
        ),
        (
            lim("  agents: {per_session: 0}\n"),
            "p.yaml:5:25: invalid per_session '0' in 'limits.agents' ('per_session' is a whole number from 1 to 1000000000)",
        ),
        (
            lim("  agents: {}\n"),
            "p.yaml:5:11: 'limits.agents' sets no limit (give 'calls' and 'per', 'per_session', or all three: e.g. '{calls: 100, per: 1m}', '{per_session: 500}' or both)",
        ),
        (
            lim("  agents: {per_session: 1, pre: 1m}\n"),
            "p.yaml:5:28: unknown field 'pre' in 'limits.agents' (did you mean 'per'?)",
        ),
        (
            lim("  agent: {calls: 10, per: 1m}\n"),
            "p.yaml:5:3: unknown field 'agent' in 'limits' (did you mean 'agents'?)",
        ),
        (
            format!("{HEAD}limits: [agents]\n"),
            "p.yaml:4:9: expected a mapping for 'limits', found a list",
        ),
        (
            lim("  tools: [db.query]\n"),
            "p.yaml:5:10: expected a mapping for 'limits.tools', found a list (write 'tools: {email.send: {calls: 10, per: 1h}}')",
        ),
        (
            lim("  tools:\n    \"db.[\": {calls: 1, per: 1s}\n"),
            "p.yaml:6:5: invalid tool pattern 'db.[' in 'limits.tools': unclosed character class; missing ']'",
        ),
        (
            lim("  tools:\n    \"\": {calls: 1, per: 1s}\n"),
            "p.yaml:6:5: empty tool pattern in 'limits.tools'",
        ),
        (
            lim("  tools:\n    email.send: {calls: 1}\n"),
            "p.yaml:6:17: the limit of tool 'email.send' has 'calls' but no 'per' ('calls' counts calls per window: add e.g. 'per: 1m')",
        ),
        (
            lim("  tools:\n    email.send:\n"),
            "p.yaml:6:15: the limit of tool 'email.send' sets no limit (give 'calls' and 'per', 'per_session', or all three: e.g. '{calls: 100, per: 1m}', '{per_session: 500}' or both)",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(errors(&text), [want], "{text}");
    }
}

#[test]
fn tool_limit_count_limit() {
    let tools: String = (0..=limits::MAX_TOOL_LIMITS)
        .map(|i| format!("    t{i}: {{per_session: 1}}\n"))
        .collect();
    let e = errors(&format!("{HEAD}limits:\n  tools:\n{tools}"));
    assert_eq!(
        e,
        [format!(
            "p.yaml:{}:5: 'limits.tools' names more than {} tool patterns",
            6 + limits::MAX_TOOL_LIMITS,
            limits::MAX_TOOL_LIMITS
        )]
    );
    let tools: String = (0..limits::MAX_TOOL_LIMITS)
        .map(|i| format!("    t{i}: {{per_session: 1}}\n"))
        .collect();
    assert_eq!(
        errors(&format!("{HEAD}limits:\n  tools:\n{tools}")),
        Vec::<String>::new()
    );
}

#[test]
fn included_limits_merge_towards_the_stricter() {
    let src = MemorySources(
        [
            (
                "p.yaml".to_string(),
                format!(
                    "{HEAD}include: [base.yaml]\nlimits:\n  agents: {{calls: 1000, per: 1h}}\n  tools:\n    email.send: {{calls: 5, per: 1m}}\n    fs.write: {{per_session: 3}}\n"
                ),
            ),
            (
                "base.yaml".to_string(),
                "version: warden/v1\nlimits:\n  agents: {calls: 600, per: 1m, per_session: 2000}\n  tools:\n    \"db.*\": {calls: 100, per: 1m}\n    email.send: {calls: 10, per: 1h, per_session: 20}\n".to_string(),
            ),
        ]
        .into(),
    );
    let policy = load("p.yaml", &src).and_then(compile).expect("compiles");
    let l = policy.limits();
    // Fewer calls over the longer window: never looser than either file.
    assert_eq!(
        l.agents,
        Some(Limit {
            rate: rate(600, 3600),
            per_session: Some(2000)
        })
    );
    let tools: Vec<(&str, Limit)> = l.tools.iter().map(|t| (t.tool.as_str(), t.limit)).collect();
    assert_eq!(
        tools,
        [
            (
                "db.*",
                Limit {
                    rate: rate(100, 60),
                    per_session: None
                }
            ),
            (
                "email.send",
                Limit {
                    rate: rate(5, 3600),
                    per_session: Some(20)
                }
            ),
            (
                "fs.write",
                Limit {
                    rate: None,
                    per_session: Some(3)
                }
            ),
        ]
    );
}

#[test]
fn limits_are_part_of_the_policy_hash() {
    let a = parse(
        "p.yaml",
        &format!("{HEAD}limits: {{agents: {{calls: 1, per: 1m}}}}\n"),
    )
    .and_then(compile)
    .expect("compiles");
    let b = parse(
        "p.yaml",
        &format!("{HEAD}limits: {{agents: {{calls: 2, per: 1m}}}}\n"),
    )
    .and_then(compile)
    .expect("compiles");
    assert_ne!(a.hash(), b.hash());
}

#[test]
fn add_labels_are_kept_on_the_rule() {
    let text = format!(
        "{HEAD}rules:\n  - id: a\n    verdict: allow\n    add_labels: [secret, pii, secret]\n  - id: b\n    verdict: require_approval\n    add_labels: pii\n  - id: c\n    verdict: warn\n"
    );
    let policy = parse("p.yaml", &text).and_then(compile).expect("compiles");
    let labels: Vec<Vec<String>> = policy.rules().map(|r| r.add_labels.clone()).collect();
    assert_eq!(
        labels,
        [
            vec!["secret".to_string(), "pii".into()],
            vec!["pii".into()],
            vec![]
        ]
    );
}

#[test]
fn add_labels_errors_point_at_the_value() {
    let r = |body: &str| format!("{HEAD}rules:\n  - id: r\n{body}");
    let cases = [
        (
            r("    verdict: deny\n    add_labels: [secret]\n"),
            "p.yaml:7:17: 'add_labels' in rule 'r' has no effect with verdict 'deny' (a denied action produces nothing to label: remove 'add_labels' or use another verdict)",
        ),
        (
            r("    verdict: allow\n    add_labels: []\n"),
            "p.yaml:7:17: 'add_labels' in rule 'r' is empty (name the labels, e.g. 'add_labels: [pii]', or remove 'add_labels')",
        ),
        (
            r("    verdict: allow\n    add_labels: [a, '']\n"),
            "p.yaml:7:21: empty label in 'add_labels' of rule 'r'",
        ),
        (
            r("    verdict: allow\n    add_labels: [a, 1]\n"),
            "p.yaml:7:21: expected a string for 'add_labels', found an integer",
        ),
        (
            r("    verdict: allow\n    add_label: [a]\n"),
            "p.yaml:7:5: unknown field 'add_label' in rule 'r' (did you mean 'add_labels'?)",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(errors(&text), [want], "{text}");
    }
}
