//! The runtime steps of the gate with a real SQLite store: an approval is
//! used at most once even under concurrency, state changes only with a
//! durable record, and the kill switch, labels and approvals survive a
//! reopen.

use std::sync::Arc;

use serde_json::json;
use warden_audit::Record;
use warden_gate::runtime::{Answer, ApprovalError, ApprovalState};
use warden_gate::{Action, Gate, Runtime, RuntimeConfig, reason};
use warden_identity::IdentityKey;
use warden_identity::approval::{ApprovalSignatureError, sign_answer, verify_answer};
use warden_policy::{Verdict, compile, parse};
use warden_store::{SqliteStore, Store, StoreConfig};

const POLICY: &str = "version: warden/v1\nname: rt\ndefault: deny\ntools:\n  db.query: {labels: [pii]}\nrules:\n  - id: mail\n    match: {tool: email.send}\n    verdict: require_approval\n  - id: results\n    on: [post_tool_call]\n    verdict: allow\n  - id: tagged\n    match: {tool: tag.me}\n    verdict: allow\n    add_labels: [secret]\n  - id: no-secret-mail\n    match: {tool: email.send, labels: [secret]}\n    verdict: deny\n";

fn gate(store: Arc<SqliteStore>) -> (Gate, Arc<Runtime>) {
    let runtime = Arc::new(Runtime::open(store, RuntimeConfig::default()).unwrap());
    let policy = compile(parse("p.yaml", POLICY).unwrap()).unwrap();
    (Gate::new(policy).with_runtime(runtime.clone()), runtime)
}

/// An unsigned approval by `by`.
fn approve_as(by: &str) -> Answer {
    Answer {
        approve: true,
        by: by.into(),
        ..Answer::default()
    }
}

/// An unsigned denial by `by`.
fn deny_as(by: &str) -> Answer {
    Answer {
        approve: false,
        ..approve_as(by)
    }
}

/// Defines, in a test, `clock()`: a clock of the test's own that starts at
/// 1,700,000,000,000 ms since the epoch, and `advance(ms)`, which moves it
/// on. Each test has its own (tests run in parallel).
macro_rules! test_clock {
    () => {
        static NOW_MS: std::sync::atomic::AtomicU64 =
            std::sync::atomic::AtomicU64::new(1_700_000_000_000);
        fn clock() -> std::time::SystemTime {
            std::time::UNIX_EPOCH
                + std::time::Duration::from_millis(NOW_MS.load(std::sync::atomic::Ordering::SeqCst))
        }
        fn advance(ms: u64) {
            NOW_MS.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
        }
    };
}

/// An agent key from a seeded RNG.
fn key(seed: u64) -> IdentityKey {
    use rand::SeedableRng;
    IdentityKey::generate(&mut rand::rngs::StdRng::seed_from_u64(seed))
}

fn open(dir: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(dir, StoreConfig::default()).unwrap())
}

/// A runtime over a store in `dir` with room for `max_counters`
/// rate-limit counters, reading the time from `clock`.
fn limits_runtime(
    dir: &std::path::Path,
    max_counters: usize,
    clock: fn() -> std::time::SystemTime,
) -> Arc<Runtime> {
    let config = RuntimeConfig {
        max_counters,
        ..RuntimeConfig::default()
    };
    Arc::new(Runtime::open(open(dir), config).unwrap().with_clock(clock))
}

/// A gate deciding by `policy` (YAML) with `runtime`.
fn gate_with(policy: &str, runtime: &Arc<Runtime>) -> Gate {
    Gate::new(compile(parse("p.yaml", policy).unwrap()).unwrap()).with_runtime(runtime.clone())
}

/// A gate deciding by `policy` (YAML) with a runtime of the default
/// counter table and the system clock, over a store in the directory
/// returned with it.
fn limits_gate(policy: &str) -> (tempfile::TempDir, Gate) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = limits_runtime(
        dir.path(),
        RuntimeConfig::default().max_counters,
        std::time::SystemTime::now,
    );
    let gate = gate_with(policy, &runtime);
    (dir, gate)
}

fn mail(session: &str) -> Action {
    serde_json::from_value(json!({"point": "pre_tool_call", "tool": "email.send", "session": session, "args": {"to": "x@example.com"}})).unwrap()
}

#[test]
fn an_approval_is_used_once_by_concurrent_identical_actions() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, runtime) = gate(open(dir.path()));
    let first = gate.decide(&mail("s"));
    assert_eq!(first.verdict, Verdict::RequireApproval);
    let id = first.approval.unwrap().id;
    runtime.answer(&id, approve_as("human")).unwrap();

    let gate = Arc::new(gate);
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let gate = gate.clone();
            std::thread::spawn(move || gate.decide(&mail("s")))
        })
        .collect();
    let verdicts: Vec<Verdict> = threads
        .into_iter()
        .map(|t| t.join().unwrap().verdict)
        .collect();
    let allowed = verdicts.iter().filter(|v| **v == Verdict::Allow).count();
    assert_eq!(allowed, 1, "{verdicts:?}");
    assert!(
        verdicts
            .iter()
            .all(|v| matches!(v, Verdict::Allow | Verdict::RequireApproval))
    );
    assert_eq!(runtime.approval(&id).unwrap().state, ApprovalState::Used);
}

/// An approval belongs to the API token that asked for it: another
/// token's identical action asks afresh and cannot use it, before or
/// after a reopen, while the token that asked uses it once.
#[test]
fn an_approval_is_used_only_by_the_token_that_asked() {
    let dir = tempfile::tempdir().unwrap();
    let as_caller = |caller: Option<&str>| {
        let mut a = mail("s");
        a.caller = caller.map(String::from);
        a
    };
    let (gate_a, runtime) = gate(open(dir.path()));
    let asked = gate_a.decide(&as_caller(Some("bot")));
    let id = asked.approval.unwrap().id;
    assert_eq!(
        runtime.approval(&id).unwrap().caller.as_deref(),
        Some("bot")
    );
    runtime.answer(&id, approve_as("human")).unwrap();
    drop((gate_a, runtime));

    let (gate, runtime) = gate(open(dir.path()));
    for other in [Some("mallory"), None] {
        let d = gate.decide(&as_caller(other));
        assert_eq!(d.verdict, Verdict::RequireApproval, "{other:?}: {d:?}");
        let theirs = d.approval.unwrap();
        assert_ne!(theirs.id, id, "{other:?}");
        assert_eq!(
            runtime.approval(&theirs.id).unwrap().caller.as_deref(),
            other
        );
    }
    assert_eq!(
        runtime.approval(&id).unwrap().state,
        ApprovalState::Approved
    );
    let used = gate.decide(&as_caller(Some("bot")));
    assert_eq!(
        (used.verdict, used.reason.as_str()),
        (Verdict::Allow, reason::APPROVED),
        "{used:?}"
    );
    assert_eq!(used.approval.unwrap().id, id);
    // Asking again while the other tokens' approvals are pending still
    // names each token's own.
    let again = gate.decide(&as_caller(Some("mallory")));
    assert_eq!(again.verdict, Verdict::RequireApproval);
    assert_eq!(
        runtime
            .approval(&again.approval.unwrap().id)
            .unwrap()
            .caller
            .as_deref(),
        Some("mallory")
    );

    // Nor does another token close a denied one: only the token that
    // asked is told it was denied.
    let refused = gate.decide(&as_caller(Some("bot"))).approval.unwrap().id;
    runtime.answer(&refused, deny_as("human")).unwrap();
    let theirs = gate.decide(&as_caller(Some("mallory")));
    assert_eq!(theirs.verdict, Verdict::RequireApproval, "{theirs:?}");
    assert_ne!(theirs.approval.unwrap().id, refused);
    assert!(
        !runtime.approval(&refused).unwrap().closed,
        "still open for the token that asked"
    );
    let told = gate.decide(&as_caller(Some("bot")));
    assert_eq!(
        (
            told.verdict,
            told.reason.as_str(),
            told.approval.unwrap().id
        ),
        (Verdict::Deny, reason::APPROVAL_DENIED, refused)
    );
}

/// An approval shows the approver the arguments as the log records them,
/// and nothing of them when the policy records arguments only by hash.
#[test]
fn an_approval_carries_the_arguments_the_log_records() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, runtime) = gate(open(dir.path()));
    let id = gate.decide(&mail("s")).approval.unwrap().id;
    assert_eq!(
        runtime.approval(&id).unwrap().arguments.as_deref(),
        Some(r#"{"to":"x@example.com"}"#)
    );

    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(Runtime::open(open(dir.path()), RuntimeConfig::default()).unwrap());
    let hashed = POLICY.replace(
        "default: deny\n",
        "default: deny\naudit: {arguments: hash}\n",
    );
    assert_ne!(hashed, POLICY);
    let id = gate_with(&hashed, &runtime)
        .decide(&mail("s"))
        .approval
        .unwrap()
        .id;
    let approval = runtime.approval(&id).unwrap();
    assert_eq!(approval.arguments, None);
    assert!(approval.action_hash.starts_with("sha256:"));
}

#[test]
fn a_decision_that_cannot_be_recorded_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (gate, runtime) = gate(store.clone());
    let id = gate.decide(&mail("s")).approval.unwrap().id;
    runtime.answer(&id, approve_as("human")).unwrap();
    store.close().unwrap();
    let d = gate.decide(&mail("s"));
    assert_eq!(d.reason, reason::AUDIT_UNAVAILABLE);
    assert_eq!(
        runtime.approval(&id).unwrap().state,
        ApprovalState::Approved,
        "an unrecorded decision does not use the approval"
    );
    let tag: Action =
        serde_json::from_value(json!({"point": "pre_tool_call", "tool": "tag.me", "session": "t"}))
            .unwrap();
    assert_eq!(gate.decide(&tag).reason, reason::AUDIT_UNAVAILABLE);
    assert!(runtime.session_labels("t").unwrap().is_empty());
}

#[test]
fn rule_labels_and_catalog_labels_enter_the_session_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (gate, runtime) = gate(open(dir.path()));
        let tag: Action = serde_json::from_value(
            json!({"point": "pre_tool_call", "tool": "tag.me", "session": "s"}),
        )
        .unwrap();
        let d = gate.decide(&tag);
        assert_eq!(d.labels_added, ["secret"]);
        assert_eq!(
            gate.decide(&tag).labels_added,
            Vec::<String>::new(),
            "only new labels are added"
        );
        let result: Action = serde_json::from_value(
            json!({"point": "post_tool_call", "tool": "db.query", "session": "s"}),
        )
        .unwrap();
        assert_eq!(gate.decide(&result).labels_added, ["pii"]);
        assert_eq!(*runtime.session_labels("s").unwrap(), ["pii", "secret"]);
        let d = gate.decide(&mail("s"));
        assert_eq!(
            (d.verdict, d.rule.as_deref()),
            (Verdict::Deny, Some("no-secret-mail"))
        );
        // A denied post_tool_call adds nothing.
        let unknown: Action = serde_json::from_value(json!({"point": "post_tool_call", "tool": "db.query", "session": "other", "context": {"ring": 9}})).unwrap();
        assert_eq!(gate.decide(&unknown).verdict, Verdict::Deny);
        assert!(runtime.session_labels("other").unwrap().is_empty());
        runtime.kill("*", "ops", "drill").unwrap();
    }
    let (gate, runtime) = gate(open(dir.path()));
    assert_eq!(*runtime.session_labels("s").unwrap(), ["pii", "secret"]);
    assert_eq!(gate.decide(&mail("s")).reason, reason::KILLED);
    assert!(runtime.kill_active());
    runtime.lift("*", "ops").unwrap();
    assert_eq!(
        gate.decide(&mail("s")).rule.as_deref(),
        Some("no-secret-mail")
    );
}

#[test]
fn explain_does_not_use_up_limits() {
    let policy =
        "version: warden/v1\nname: l\ndefault: allow\nlimits:\n  agents: {calls: 1, per: 1h}\n";
    let (_dir, gate) = limits_gate(policy);
    let a: Action =
        serde_json::from_value(json!({"point": "pre_tool_call", "tool": "t", "agent": "x"}))
            .unwrap();
    for _ in 0..3 {
        assert_eq!(gate.explain(&a).0.verdict, Verdict::Allow);
    }
    assert_eq!(gate.decide(&a).verdict, Verdict::Allow);
    let d = gate.decide(&a);
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Deny, reason::RATE_LIMITED)
    );
    assert!(d.retry_after.is_some_and(|s| s > 3500));
    // Points that start nothing are not counted.
    let out: Action = serde_json::from_value(json!({"point": "output", "agent": "x"})).unwrap();
    assert_eq!(gate.decide(&out).verdict, Verdict::Allow);
}

#[test]
fn a_full_counter_table_keeps_other_tools_live_windows() {
    let policy = "version: warden/v1\nname: l\ndefault: allow\nlimits:\n  tools:\n    a: {calls: 1, per: 1h}\n    b: {calls: 1, per: 1h}\n";
    let dir = tempfile::tempdir().unwrap();
    let runtime = limits_runtime(dir.path(), 2, std::time::SystemTime::now);
    let gate = gate_with(policy, &runtime);
    let call = |tool: &str, agent: &str| -> Action {
        serde_json::from_value(json!({"point": "pre_tool_call", "tool": tool, "agent": agent}))
            .unwrap()
    };
    assert_eq!(gate.decide(&call("a", "x")).verdict, Verdict::Allow);
    assert_eq!(gate.decide(&call("b", "y")).verdict, Verdict::Allow);
    // The table is full and both windows are live: a third agent gets no
    // counter, and is refused rather than counted nowhere.
    let full = gate.decide(&call("b", "z"));
    assert_eq!(
        (full.verdict, full.reason.as_str()),
        (Verdict::Deny, reason::RATE_LIMITED)
    );
    assert!(
        full.message.contains("counters are all in use"),
        "{}",
        full.message
    );
    // Making room for tool b did not drop tool a's live window: x has used
    // its one call an hour.
    let again = gate.decide(&call("a", "x"));
    assert_eq!(
        (again.verdict, again.reason.as_str()),
        (Verdict::Deny, reason::RATE_LIMITED)
    );
    assert!(
        again
            .message
            .starts_with("the limit on tool 'a' of 1 calls per 1h is used up; retry after "),
        "{}",
        again.message
    );
}

#[test]
fn a_full_table_drops_the_least_recently_counted_session_counts() {
    test_clock!();
    let policy = "version: warden/v1\nname: l\ndefault: allow\nlimits:\n  tools:\n    \"db.*\": {per_session: 2}\n";
    let dir = tempfile::tempdir().unwrap();
    let gate = gate_with(policy, &limits_runtime(dir.path(), 10, clock));
    let call = |session: usize| -> Action {
        serde_json::from_value(json!({"point": "pre_tool_call", "tool": "db.query", "agent": "x", "session": format!("s{session}")}))
            .unwrap()
    };
    let verdict = |session: usize| {
        advance(1_000);
        gate.decide(&call(session)).verdict
    };
    // Ten sessions, one call each, fill the table; s0 then counts again
    // and so is no longer the least recently counted.
    for s in 0..10 {
        assert_eq!(verdict(s), Verdict::Allow, "s{s}");
    }
    assert_eq!(verdict(0), Verdict::Allow);
    // A new session is not locked out: s1's count goes (s0's stays).
    assert_eq!(verdict(10), Verdict::Allow);
    let d = gate.decide(&call(0));
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Deny, reason::RATE_LIMITED),
        "s0 keeps its count of 2: {}",
        d.message
    );
    // s1 starts counting afresh (as a new session would), which drops s2.
    assert_eq!(verdict(1), Verdict::Allow);
    assert_eq!(verdict(1), Verdict::Allow);
    assert_eq!(verdict(1), Verdict::Deny);
    // The sessions counted since keep their counts: one call left each.
    for s in 3..11 {
        assert_eq!(verdict(s), Verdict::Allow, "s{s}");
        assert_eq!(verdict(s), Verdict::Deny, "s{s}");
    }
}

#[test]
fn a_full_counter_table_is_purged_again_once_a_window_can_have_ended() {
    test_clock!();
    let limits_a = "version: warden/v1\nname: a\ndefault: allow\nlimits:\n  tools:\n    a: {calls: 1, per: 1m}\n";
    let limits_b = "version: warden/v1\nname: b\ndefault: allow\nlimits:\n  tools:\n    b: {calls: 1, per: 1m}\n";
    let dir = tempfile::tempdir().unwrap();
    let runtime = limits_runtime(dir.path(), 2, clock);
    let gate_for = |policy: &str| gate_with(policy, &runtime);
    let call = |tool: &str, agent: &str| -> Action {
        serde_json::from_value(json!({"point": "pre_tool_call", "tool": tool, "agent": agent}))
            .unwrap()
    };
    let full = |d: &warden_gate::Decision| {
        d.verdict == Verdict::Deny && d.message.contains("counters are all in use")
    };
    let gate = gate_for(limits_a);
    assert_eq!(gate.decide(&call("a", "x")).verdict, Verdict::Allow);
    advance(10_000);
    assert_eq!(gate.decide(&call("a", "y")).verdict, Verdict::Allow);
    // Full of live windows: refused, and refused again without a change,
    // with the time until x's window ends (60 s after its call).
    for _ in 0..2 {
        let d = gate.decide(&call("a", "z"));
        assert!(full(&d), "{}", d.message);
        assert_eq!(d.retry_after, Some(50));
    }
    // The table has room again then, not before.
    advance(49_000);
    let d = gate.decide(&call("a", "z"));
    assert!(full(&d), "{}", d.message);
    assert_eq!(d.retry_after, Some(1));
    advance(1_000);
    assert_eq!(gate.decide(&call("a", "z")).verdict, Verdict::Allow);
    // Full again (y and z). A policy that no longer limits tool a frees
    // those counters at once, windows or not.
    assert!(full(&gate.decide(&call("a", "w"))));
    let gate = gate_for(limits_b);
    assert_eq!(gate.decide(&call("b", "w")).verdict, Verdict::Allow);
    assert_eq!(gate.decide(&call("b", "v")).verdict, Verdict::Allow);
}

#[test]
fn a_tool_named_agents_has_its_own_counter() {
    let policy = "version: warden/v1\nname: l\ndefault: allow\nlimits:\n  agents: {calls: 5, per: 1h}\n  tools:\n    agents: {calls: 1, per: 1h}\n";
    let (_dir, gate) = limits_gate(policy);
    let call = |tool: &str| -> Action {
        serde_json::from_value(json!({"point": "pre_tool_call", "tool": tool, "agent": "x"}))
            .unwrap()
    };
    // A call to another tool counts against the agent's limit only, not
    // against the one call an hour of the tool named `agents`.
    assert_eq!(gate.decide(&call("other")).verdict, Verdict::Allow);
    assert_eq!(gate.decide(&call("agents")).verdict, Verdict::Allow);
    let d = gate.decide(&call("agents"));
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Deny, reason::RATE_LIMITED)
    );
    assert!(
        d.message
            .starts_with("the limit on tool 'agents' of 1 calls per 1h is used up; retry after "),
        "{}",
        d.message
    );
    // The agent-wide limit (5 an hour: two used) reads differently.
    for _ in 0..3 {
        assert_eq!(gate.decide(&call("other")).verdict, Verdict::Allow);
    }
    let d = gate.decide(&call("other"));
    assert_eq!(d.reason, reason::RATE_LIMITED);
    assert!(
        d.message
            .starts_with("the per-agent limit of 5 calls per 1h is used up; retry after "),
        "{}",
        d.message
    );
    assert!(
        d.retry_after.is_some_and(|s| s > 3500),
        "{:?}",
        d.retry_after
    );
}

#[test]
fn a_used_up_session_limit_says_it_lasts_for_the_session() {
    let policy = "version: warden/v1\nname: l\ndefault: allow\nlimits:\n  tools:\n    \"db.*\": {per_session: 1}\n";
    let (_dir, gate) = limits_gate(policy);
    let call = |session: &str| -> Action {
        serde_json::from_value(
            json!({"point": "pre_tool_call", "tool": "db.query", "agent": "x", "session": session}),
        )
        .unwrap()
    };
    assert_eq!(gate.decide(&call("s1")).verdict, Verdict::Allow);
    let d = gate.decide(&call("s1"));
    assert_eq!(
        (d.verdict, d.reason.as_str(), d.retry_after),
        (Verdict::Deny, reason::RATE_LIMITED, None)
    );
    assert_eq!(
        d.message,
        "the limit on tool 'db.*' of 1 calls per session is used up for the rest of the session"
    );
    assert_eq!(gate.decide(&call("s2")).verdict, Verdict::Allow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_async_records_like_decide_and_its_labels_enter_even_if_the_caller_goes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (gate, runtime) = gate(store.clone());
    let action = |v: serde_json::Value| -> Action { serde_json::from_value(v).unwrap() };
    let tag = action(json!({"point": "pre_tool_call", "tool": "tag.me", "session": "a"}));
    let evaluated = gate.begin(&tag);
    assert!(!gate.finishes_blocking(&evaluated));
    let d = gate.finish_async(&tag, evaluated).await;
    assert_eq!((d.verdict, d.seq), (Verdict::Allow, Some(0)));
    assert_eq!(d.labels_added, ["secret"]);
    assert_eq!(*runtime.session_labels("a").unwrap(), ["secret"]);
    // An approval holds the book across its append: that one blocks.
    let evaluated = gate.begin(&mail("b"));
    assert_eq!(evaluated.decision().verdict, Verdict::RequireApproval);
    assert!(gate.finishes_blocking(&evaluated));

    // The caller gives up after the record was handed to the writer: the
    // record is written and its labels enter the session all the same.
    let result = action(json!({"point": "post_tool_call", "tool": "db.query", "session": "c"}));
    let evaluated = gate.begin(&result);
    let mut pending = Box::pin(gate.finish_async(&result, evaluated));
    let _ = tokio::time::timeout(std::time::Duration::ZERO, &mut pending).await;
    drop(pending);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while runtime.session_labels("c").unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the labels never entered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(*runtime.session_labels("c").unwrap(), ["pii"]);
    assert_eq!(store.log_size().unwrap(), 2);

    // A log that cannot record: denied, and the session is unchanged.
    store.close().unwrap();
    let tag = action(json!({"point": "pre_tool_call", "tool": "tag.me", "session": "d"}));
    let d = gate.finish_async(&tag, gate.begin(&tag)).await;
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Deny, reason::AUDIT_UNAVAILABLE)
    );
    assert!(runtime.session_labels("d").unwrap().is_empty());
}

/// The details of the last `approval.*` event in `store`.
fn last_answer_event(store: &SqliteStore) -> (String, serde_json::Value) {
    store
        .entries(0, 1000)
        .unwrap()
        .into_iter()
        .rev()
        .find_map(|e| match e.entry().unwrap().record {
            Record::Event(ev) if ev.action.starts_with("approval.") => {
                Some((ev.action, serde_json::from_str(&ev.details).unwrap()))
            }
            _ => None,
        })
        .expect("an approval event")
}

#[test]
fn an_approver_with_a_key_must_sign_this_exact_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (gate, runtime) = gate(store.clone());
    let key = IdentityKey::from_seed(&[5; 32]);
    let id = gate.decide(&mail("s")).approval.unwrap().id;
    let hash = runtime.approval(&id).unwrap().action_hash;
    let answer = |approve: bool, signature: Option<String>| Answer {
        approve,
        by: "dba@example.com".into(),
        key: Some(key.did().clone()),
        signature,
        comment: None,
    };

    let refused = [
        (answer(true, None), "signature_required"),
        // Signed to deny, sent to approve.
        (
            answer(true, Some(sign_answer(&key, &id, false, &hash))),
            "mismatch",
        ),
        // Signed for another action.
        (
            answer(true, Some(sign_answer(&key, &id, true, "sha256:00"))),
            "mismatch",
        ),
        // By another key.
        (
            answer(
                true,
                Some(sign_answer(
                    &IdentityKey::from_seed(&[6; 32]),
                    &id,
                    true,
                    &hash,
                )),
            ),
            "mismatch",
        ),
        (answer(true, Some("not base64".into())), "encoding"),
    ];
    for (a, want) in refused {
        let got = match runtime.answer(&id, a) {
            Err(ApprovalError::SignatureRequired { .. }) => "signature_required",
            Err(ApprovalError::BadSignature(ApprovalSignatureError::Mismatch { .. })) => "mismatch",
            Err(ApprovalError::BadSignature(ApprovalSignatureError::Encoding(_))) => "encoding",
            other => panic!("expected {want}, got {other:?}"),
        };
        assert_eq!(got, want);
        assert_eq!(runtime.approval(&id).unwrap().state, ApprovalState::Pending);
    }
    // Nothing was recorded for a refused answer.
    assert!(
        store
            .entries(0, 1000)
            .unwrap()
            .iter()
            .all(|e| !matches!(e.entry().unwrap().record, Record::Event(_)))
    );

    let signature = sign_answer(&key, &id, true, &hash);
    let approved = runtime
        .answer(&id, answer(true, Some(signature.clone())))
        .unwrap();
    assert_eq!(approved.state, ApprovalState::Approved);
    assert_eq!(approved.signed_by.as_deref(), Some(key.did().as_str()));
    let (action, details) = last_answer_event(&store);
    assert_eq!(action, "approval.approved");
    assert_eq!(details["signature"], signature.as_str());
    assert_eq!(details["signed_by"], key.did().as_str());
    assert_eq!(details["action_hash"], hash.as_str());
    // Anyone holding the log can check it again.
    verify_answer(
        key.did(),
        &id,
        true,
        &hash,
        details["signature"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(gate.decide(&mail("s")).verdict, Verdict::Allow);
}

#[test]
fn an_approver_named_by_a_did_key_signs_and_one_without_a_key_is_recorded_unchecked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (gate, runtime) = gate(store.clone());
    let key = IdentityKey::from_seed(&[7; 32]);
    let by_did = |signature: Option<String>| Answer {
        approve: false,
        by: key.did().to_string(),
        signature,
        ..Answer::default()
    };

    let id = gate.decide(&mail("a")).approval.unwrap().id;
    let hash = runtime.approval(&id).unwrap().action_hash;
    assert!(matches!(
        runtime.answer(&id, by_did(None)),
        Err(ApprovalError::SignatureRequired { .. })
    ));
    let denied = runtime
        .answer(&id, by_did(Some(sign_answer(&key, &id, false, &hash))))
        .unwrap();
    assert_eq!(
        (denied.state, denied.signed_by.as_deref()),
        (ApprovalState::Denied, Some(key.did().as_str()))
    );

    let broken = Answer {
        by: "did:key:z6Mknot-a-key".into(),
        ..approve_as("")
    };
    let id = gate.decide(&mail("b")).approval.unwrap().id;
    assert!(matches!(
        runtime.answer(&id, broken),
        Err(ApprovalError::ApproverKey { .. })
    ));

    let unchecked = Answer {
        signature: Some("anything".into()),
        ..approve_as("human")
    };
    let approved = runtime.answer(&id, unchecked).unwrap();
    assert_eq!(approved.signed_by, None);
    let (_, details) = last_answer_event(&store);
    assert_eq!(details["signature"], "anything");
    assert_eq!(details["signed_by"], serde_json::Value::Null);
}

#[test]
fn the_approval_queue_is_bounded_and_settled_approvals_are_forgotten() {
    test_clock!();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // A runtime over the store with room for `max` approvals.
    let runtime_of = |max: usize| {
        let config = RuntimeConfig {
            max_approvals: max,
            approval_retention: std::time::Duration::from_secs(3600),
            ..RuntimeConfig::default()
        };
        Arc::new(
            Runtime::open(store.clone(), config)
                .unwrap()
                .with_clock(clock),
        )
    };
    let runtime = runtime_of(3);
    let gate = gate_with(POLICY, &runtime);
    let stored = || -> Vec<String> {
        let mut ids: Vec<String> = store
            .states(warden_gate::runtime::APPROVAL_SPACE)
            .unwrap()
            .into_iter()
            .map(|s| s.key)
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    let ask = |session: &str| {
        advance(10);
        let d = gate.decide(&mail(session));
        (d.verdict, d.reason.clone(), d.approval.map(|a| a.id))
    };

    // Three live approvals fill the queue: a fourth action is denied, and
    // no approval is made for it.
    let ids: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|s| ask(s).2.expect("an approval"))
        .collect();
    let (verdict, why, approval) = ask("d");
    assert_eq!(
        (verdict, why.as_str(), approval),
        (Verdict::Deny, reason::APPROVAL_QUEUE_FULL, None)
    );
    let full = gate.decide(&mail("d")).message;
    assert!(
        full.contains("the queue holds 3 approvals, and its limit is 3"),
        "{full}"
    );
    assert_eq!(stored(), sorted(ids.clone()));
    // Still pending ones keep answering as before.
    assert_eq!(ask("a").2.as_deref(), Some(ids[0].as_str()));

    // One settles (denied): the next new approval pushes it out, in memory
    // and in the store.
    runtime.answer(&ids[0], deny_as("human")).unwrap();
    let (verdict, _, d) = ask("d");
    assert_eq!(verdict, Verdict::RequireApproval);
    let d = d.unwrap();
    assert!(runtime.approval(&ids[0]).is_none());
    assert_eq!(
        stored(),
        sorted(vec![ids[1].clone(), ids[2].clone(), d.clone()])
    );

    // Past its retention, a settled approval is forgotten even when the
    // queue has room: b is approved and used, then an hour and its
    // expiry pass.
    runtime.answer(&ids[1], approve_as("human")).unwrap();
    assert_eq!(ask("b").0, Verdict::Allow);
    runtime.answer(&ids[2], deny_as("human")).unwrap();
    advance(16 * 60 * 1000 + 3600 * 1000);
    // d expired unanswered, b was used, c denied: all settled, all past
    // their retention, so all three go when e is created.
    let e = ask("e").2.unwrap();
    assert_eq!(stored(), std::slice::from_ref(&e));
    assert_eq!(
        runtime
            .approvals(None)
            .into_iter()
            .map(|a| a.id)
            .collect::<Vec<_>>(),
        std::slice::from_ref(&e)
    );
    // The forgetting is durable: a new runtime over the store agrees.
    let again = Runtime::open(store.clone(), RuntimeConfig::default()).unwrap();
    assert_eq!(again.approvals(None).len(), 1);

    // Reopened with a lower limit over more approvals than it allows, a
    // new one forgets the settled e, and the denial counts what is kept.
    let f = ask("f").2.unwrap();
    ask("g").2.unwrap();
    runtime.answer(&e, deny_as("human")).unwrap();
    let lowered = runtime_of(1);
    let decision = gate_with(POLICY, &lowered).decide(&mail("h"));
    assert_eq!(decision.reason, reason::APPROVAL_QUEUE_FULL);
    assert!(
        decision
            .message
            .contains("the queue holds 2 approvals, and its limit is 1"),
        "{}",
        decision.message
    );
    assert!(lowered.approval(&e).is_none());
    assert!(lowered.approval(&f).is_some());
}

/// An action that names a registered agent without a token is held to the
/// agent's status as the runtime knows it: from the next decision after a
/// move made through `Agents::noting`, and across a reopen.
#[test]
fn a_named_agent_that_may_not_act_is_denied_without_a_token() {
    use warden_gate::agents::{Agents, Transition};
    use warden_identity::{Sponsor, Status};

    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (gate, runtime) = gate(store.clone());
    let key = key(1);
    let did = key.did().clone();
    let agents = || Agents::new(store.as_ref(), "api:admin").noting(&runtime);
    let now = std::time::SystemTime::now();
    let result = |action: serde_json::Value| {
        let d = gate.decide(&serde_json::from_value::<Action>(action).unwrap());
        (d.verdict, d.reason, d.message)
    };
    let named = json!({"point": "pre_tool_call", "tool": "tag.me", "agent": did.as_str()});

    agents()
        .create(
            did.clone(),
            "worker",
            Sponsor::parse("alice@example.com").unwrap(),
            true,
            now,
            Default::default(),
        )
        .unwrap();
    let (verdict, why, message) = result(named.clone());
    assert_eq!(
        (verdict, why.as_str()),
        (Verdict::Deny, reason::AGENT_NOT_ACTIVE)
    );
    assert!(message.contains("is provisioned"), "{message}");

    agents()
        .transition(&did, Transition::Activate, "", now)
        .unwrap();
    assert_eq!(result(named.clone()).0, Verdict::Allow);
    agents()
        .transition(&did, Transition::Suspend, "looks odd", now)
        .unwrap();
    assert_eq!(result(named.clone()).1, reason::AGENT_SUSPENDED);
    // Another agent, and an action naming none, are not held up.
    let other = json!({"point": "pre_tool_call", "tool": "tag.me", "agent": "someone-else"});
    assert_eq!(result(other).0, Verdict::Allow);
    let nobody = json!({"point": "pre_tool_call", "tool": "tag.me"});
    assert_eq!(result(nobody).0, Verdict::Allow);

    // A runtime opened over the store reads the status back.
    let (again, _) = self::gate(store.clone());
    let action: Action = serde_json::from_value(named.clone()).unwrap();
    assert_eq!(again.decide(&action).reason, reason::AGENT_SUSPENDED);

    agents()
        .transition(&did, Transition::Resume, "", now)
        .unwrap();
    assert_eq!(result(named.clone()).0, Verdict::Allow);
    agents()
        .transition(&did, Transition::Decommission, "retired", now)
        .unwrap();
    assert_eq!(result(named).1, reason::AGENT_DECOMMISSIONED);
    let agent = Agents::new(store.as_ref(), "x").get(&did).unwrap().unwrap();
    assert_eq!(agent.status(), Status::Decommissioned);
}

/// A record that cannot be read stops the agent it is stored under.
#[test]
fn an_agent_whose_record_cannot_be_read_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let did = key(2).did().to_string();
    let event = warden_audit::EventRecord {
        time_unix_nanos: 1,
        actor: "test".into(),
        action: "agent.created".into(),
        subject: did.clone(),
        details: "{}".into(),
    };
    store
        .append_with(
            Record::Event(event),
            warden_store::StateChange::PutAgent {
                did: did.clone(),
                record: "{not json".into(),
            },
        )
        .unwrap();
    let (gate, _) = gate(store);
    let action: Action =
        serde_json::from_value(json!({"point": "pre_tool_call", "tool": "tag.me", "agent": did}))
            .unwrap();
    let d = gate.decide(&action);
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Deny, reason::AGENT_RECORD_INVALID)
    );
    assert!(d.message.contains("cannot be read"), "{}", d.message);
}

/// A gate for HTTP callers believes no ring claim below 3 without a token;
/// a gate for code that embeds it (and a policy's fixtures) does.
#[test]
fn a_gate_refusing_unproven_rings_denies_a_claimed_ring() {
    let policy = "version: warden/v1\nname: r\ndefault: deny\nrules:\n  - id: admins\n    match: {tool: admin.reset, ring: {max: 1}}\n    verdict: allow\n";
    let compiled = || compile(parse("p.yaml", policy).unwrap()).unwrap();
    let claim = |ring: u8| -> Action {
        serde_json::from_value(
            json!({"point": "pre_tool_call", "tool": "admin.reset", "context": {"ring": ring}}),
        )
        .unwrap()
    };
    let believing = Gate::new(compiled());
    assert_eq!(believing.decide(&claim(1)).verdict, Verdict::Allow);

    let strict = Gate::new(compiled()).refusing_unproven_rings();
    for ring in [0, 1, 2] {
        let d = strict.decide(&claim(ring));
        assert_eq!(
            (d.verdict, d.reason.as_str()),
            (Verdict::Deny, reason::RING_CLAIM_REFUSED),
            "ring {ring}"
        );
        assert!(
            d.message.contains(&format!("claims ring {ring}")),
            "{}",
            d.message
        );
    }
    // Claiming the least privilege is no claim at all: the policy decides.
    let d = strict.decide(&claim(3));
    assert_eq!((d.verdict, d.rule), (Verdict::Deny, None));
}
