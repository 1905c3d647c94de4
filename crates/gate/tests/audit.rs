//! Decisions land in the audit log before they are returned, with every
//! decision field in the record; a log that cannot record turns the decision
//! into a deny.

use std::sync::Arc;

use serde_json::json;
use warden_audit::{Arguments, Record};
use warden_gate::{Action, Gate, reason};
use warden_policy::{Verdict, compile, parse};
use warden_store::{SqliteStore, Store, StoreConfig, verify};

fn policy(extra: &str) -> warden_policy::CompiledPolicy {
    let text = format!(
        "version: warden/v1\nname: audited\ndefault: allow\n{extra}tools:\n  db.query: {{args: {{sql: sql}}}}\nrules:\n  - id: no-drop\n    match: {{intents: [destructive]}}\n    verdict: deny\n    reason: destructive SQL\n"
    );
    compile(parse("p.yaml", &text).unwrap()).unwrap()
}

fn open(dir: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(dir, StoreConfig::new("test.example/warden")).unwrap())
}

fn action() -> Action {
    serde_json::from_value(json!({
        "agent": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        "session": "s-1",
        "point": "pre_tool_call",
        "tool": "db.query",
        "args": {"sql": "DROP TABLE users", "limit": 5},
    }))
    .unwrap()
}

fn only_decision(store: &SqliteStore) -> warden_audit::DecisionRecord {
    let entries = store.entries(0, 10).unwrap();
    assert_eq!(entries.len(), 1);
    match entries[0].entry().unwrap().record {
        Record::Decision(d) => d,
        other => panic!("expected a decision, found {other:?}"),
    }
}

#[test]
fn every_decision_field_is_in_the_durable_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gate = Gate::new(policy("")).with_audit(store.clone());
    let a = action();
    let d = gate.decide(&a);
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.seq, Some(0));

    let r = only_decision(&store);
    assert_eq!(r.agent, a.agent.clone().unwrap());
    assert_eq!(r.session, "s-1");
    assert_eq!(r.point, "pre_tool_call");
    assert_eq!(r.tool, "db.query");
    assert_eq!(
        r.arguments,
        Arguments::Json(r#"{"limit":5,"sql":"DROP TABLE users"}"#.into())
    );
    assert_eq!(r.intents, ["destructive"]);
    assert_eq!(r.verdict, "deny");
    assert_eq!(r.rule.as_deref(), Some("no-drop"));
    assert_eq!(r.reason, "destructive SQL");
    assert_eq!(r.message, d.message);
    assert_eq!(r.action_hash, a.hash());
    let p = gate.policy().unwrap();
    assert_eq!(r.policy_name, "audited");
    assert_eq!(r.policy_hash, p.hash());
    assert!(r.time_unix_nanos > 1_700_000_000_000_000_000);

    // The log the gate wrote verifies offline.
    store.checkpoint_now().unwrap();
    let report = verify(store.as_ref(), &store.verifier(), None).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.entries, 1);
}

#[test]
fn the_policy_can_keep_only_the_arguments_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gate = Gate::new(policy("audit: {arguments: hash}\n")).with_audit(store.clone());
    gate.decide(&action());
    let r = only_decision(&store);
    assert_eq!(
        r.arguments,
        Arguments::hashed(r#"{"limit":5,"sql":"DROP TABLE users"}"#)
    );
}

#[test]
fn oversized_arguments_are_recorded_by_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gate = Gate::new(policy("")).with_audit(store.clone());
    let big = "x".repeat(warden_gate::MAX_INLINE_ARGUMENTS_BYTES);
    let a: Action =
        serde_json::from_value(json!({"point": "input", "args": {"text": big}})).unwrap();
    let d = gate.decide(&a);
    assert_eq!(d.seq, Some(0), "{d:?}");
    assert!(matches!(
        only_decision(&store).arguments,
        Arguments::Sha256(_)
    ));
}

#[test]
fn sequence_numbers_follow_the_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gate = Gate::new(policy("")).with_audit(store.clone());
    let seqs: Vec<Option<u64>> = (0..5).map(|_| gate.decide(&action()).seq).collect();
    assert_eq!(seqs, [Some(0), Some(1), Some(2), Some(3), Some(4)]);
    assert_eq!(store.log_size().unwrap(), 5);
}

#[test]
fn refusals_are_recorded_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gate = Gate::without_policy().with_audit(store.clone());
    let d = gate.decide(&action());
    assert_eq!(d.reason, reason::NO_POLICY);
    let r = only_decision(&store);
    assert_eq!(r.reason, reason::NO_POLICY);
    assert_eq!(r.verdict, "deny");
    assert_eq!(r.policy_name, "");
}

#[test]
fn an_allow_becomes_a_deny_when_the_log_cannot_record_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gate = Gate::new(policy("")).with_audit(store.clone());
    let select: Action = serde_json::from_value(
        json!({"point": "pre_tool_call", "tool": "db.query", "args": {"sql": "SELECT 1"}}),
    )
    .unwrap();
    assert_eq!(gate.decide(&select).verdict, Verdict::Allow);
    // A closed store refuses appends, as a store whose disk went away would.
    store.close().unwrap();
    let d = gate.decide(&select);
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, reason::AUDIT_UNAVAILABLE);
    assert_eq!(d.seq, None);
    assert!(d.message.contains("could not be recorded"), "{}", d.message);
}

#[test]
fn a_read_only_log_denies_everything() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).close().unwrap();
    let ro: Arc<dyn Store> = Arc::new(SqliteStore::open_read_only(dir.path()).unwrap());
    let gate = Gate::new(policy("")).with_audit(ro);
    let d = gate.decide(&action());
    assert_eq!(d.reason, reason::AUDIT_UNAVAILABLE);
}

#[test]
fn explaining_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gate = Gate::new(policy("")).with_audit(store.clone());
    let (d, _) = gate.explain(&action());
    assert_eq!(d.seq, None);
    assert_eq!(store.log_size().unwrap(), 0);
}

#[test]
fn redacted_arguments_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let text = "version: warden/v1\nname: r\ndefault: allow\nrules:\n  - id: redact\n    match: {tool: ticket.create}\n    verdict: transform\n    transform: [{path: password, redact: true}]\n";
    let gate =
        Gate::new(compile(parse("p.yaml", text).unwrap()).unwrap()).with_audit(store.clone());
    let a: Action = serde_json::from_value(json!({
        "point": "pre_tool_call", "tool": "ticket.create",
        "args": {"title": "login", "password": "hunter2"}
    }))
    .unwrap();
    let d = gate.decide(&a);
    assert_eq!(d.verdict, Verdict::Transform);
    let Arguments::Json(recorded) = only_decision(&store).arguments else {
        panic!("expected the arguments in full");
    };
    assert!(!recorded.contains("hunter2"), "{recorded}");
    assert!(recorded.contains("[REDACTED]"), "{recorded}");
    assert_eq!(only_decision(&store).action_hash, a.hash());
}
