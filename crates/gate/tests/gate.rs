//! The gate through its public API: fail-closed paths, decisions, hashes.

use proptest::prelude::*;
use serde_json::{Value, json};
use warden_gate::{Action, ActionError, Gate, reason};
use warden_policy::{Verdict, compile, parse};

fn gate(rules: &str) -> Gate {
    let text = format!("version: warden/v1\nname: t\ndefault: allow\nrules:\n{rules}");
    Gate::new(compile(parse("t.yaml", &text).unwrap()).unwrap())
}

fn action(v: Value) -> Action {
    serde_json::from_value(v).unwrap()
}

fn call(tool: &str, args: Value) -> Action {
    action(json!({"point": "pre_tool_call", "tool": tool, "args": args}))
}

#[test]
fn no_policy_denies_everything_and_says_why() {
    let d = Gate::without_policy().decide(&call("db.query", json!({})));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, reason::NO_POLICY);
    assert_eq!(d.rule, None);
    assert!(d.policy.is_none());
}

#[test]
fn missing_field_in_a_condition_denies_even_for_an_allow_rule() {
    let g = gate("  - id: ok-if-small\n    when: args.limit < 10\n    verdict: allow\n");
    let d = g.decide(&call("db.query", json!({"sql": "select 1"})));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, "error:missing_field");
    assert_eq!(d.rule.as_deref(), Some("ok-if-small"));
    assert!(d.message.contains("No such key: limit"), "{}", d.message);
}

#[test]
fn type_error_in_a_condition_denies() {
    let g = gate("  - id: r\n    when: args.limit < 'ten'\n    verdict: allow\n");
    let d = g.decide(&call("db.query", json!({"limit": 3})));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, "error:type_error", "{}", d.message);
}

#[test]
fn a_condition_that_is_not_boolean_denies() {
    let g = gate("  - id: r\n    when: args.limit\n    verdict: allow\n");
    let d = g.decide(&call("db.query", json!({"limit": 3})));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, "error:type_error");
    assert!(d.message.contains("must be a boolean"), "{}", d.message);
}

#[test]
fn a_runtime_error_in_cel_denies() {
    let g = gate("  - id: r\n    when: args.a / args.b > 1\n    verdict: allow\n");
    let d = g.decide(&call("t", json!({"a": 1, "b": 0})));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, "error:condition", "{}", d.message);
}

#[test]
fn invalid_actions_built_in_code_are_denied() {
    let g = gate("");
    for (a, field) in [
        (json!({"point": "pre_tool_call"}), "tool"),
        (
            json!({"point": "pre_tool_call", "tool": "db.\u{200b}drop"}),
            "tool",
        ),
        (
            json!({"point": "pre_tool_call", "tool": "db.drop\u{202e}"}),
            "tool",
        ),
        (json!({"point": "pre_tool_call", "tool": ""}), "tool"),
        (json!({"point": "input", "agent": "a\nb"}), "agent"),
        (json!({"point": "input", "context": {"ring": 9}}), "ring"),
        (json!({"point": "input", "context": {"ring": "0"}}), "ring"),
        (
            json!({"point": "input", "context": {"labels": "pii"}}),
            "labels",
        ),
        (
            json!({"point": "input", "context": {"intents": ["read_only"]}}),
            "cannot be declared by the caller",
        ),
    ] {
        let act = action(a.clone());
        let d = g.decide(&act);
        assert_eq!(d.verdict, Verdict::Deny, "{a}");
        assert_eq!(d.reason, reason::INVALID_ACTION, "{a}");
        assert!(d.message.contains(field), "{a}: {}", d.message);
        assert!(
            matches!(act.check(), Err(ActionError::Invalid { .. })),
            "{a}"
        );
    }
}

#[test]
fn from_json_refuses_bad_documents_without_panicking() {
    let deep = format!(
        "{{\"point\":\"input\",\"args\":{}{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{".to_vec(), "invalid action JSON"),
        (b"\xff\xfe{}".to_vec(), "invalid action JSON"),
        (
            b"{\"point\": \"input\", \"extra\": 1}".to_vec(),
            "unknown field `extra`",
        ),
        (
            b"{\"point\": \"nowhere\"}".to_vec(),
            "unknown variant `nowhere`",
        ),
        (deep.into_bytes(), "recursion limit exceeded"),
        (
            vec![b' '; warden_gate::MAX_ACTION_BYTES + 1],
            "the limit is",
        ),
    ];
    for (bytes, expect) in cases {
        let e = Action::from_json(&bytes).unwrap_err().to_string();
        assert!(e.contains(expect), "{e}");
    }
}

#[test]
fn action_hash_is_canonical() {
    let a = Action::from_json(
        br#"{"tool": "t", "point": "pre_tool_call", "args": {"b": 1, "a": [1, 2]}}"#,
    )
    .unwrap();
    let b = Action::from_json(br#"{"point":"pre_tool_call","args":{"a":[1,2],"b":1},"tool":"t"}"#)
        .unwrap();
    let c = Action::from_json(br#"{"point":"pre_tool_call","args":{"a":[2,1],"b":1},"tool":"t"}"#)
        .unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_ne!(a.hash(), c.hash());
    assert!(a.hash().starts_with("sha256:") && a.hash().len() == 7 + 64);
    let g = gate("");
    assert_eq!(g.decide(&a).action_hash, a.hash());
}

#[test]
fn transform_returns_rewritten_args_and_all_matched_obligations() {
    let g = gate(
        "  - id: a\n    verdict: transform\n    transform: [{path: password, redact: true}]\n  - id: b\n    verdict: transform\n    transform: [{path: to, replace: 'ops@example.com'}]\n",
    );
    let d = g.decide(&call(
        "mail",
        json!({"password": "p", "to": "x@evil.io", "body": "hi"}),
    ));
    assert_eq!(d.verdict, Verdict::Transform);
    assert_eq!(d.rule.as_deref(), Some("a"));
    assert_eq!(d.transform.len(), 2);
    assert_eq!(
        d.args,
        Some(json!({"password": "[REDACTED]", "to": "ops@example.com", "body": "hi"}))
    );
}

#[test]
fn require_approval_collects_approvers_and_deny_still_wins() {
    let g = gate(
        "  - id: a\n    verdict: require_approval\n    approvers: [x@example.com]\n  - id: b\n    verdict: require_approval\n    approvers: [y@example.com, x@example.com]\n",
    );
    let d = g.decide(&call("t", json!({})));
    assert_eq!(d.verdict, Verdict::RequireApproval);
    assert_eq!(d.approvers, ["x@example.com", "y@example.com"]);
    let g = gate(
        "  - id: a\n    verdict: require_approval\n    approvers: [x@example.com]\n  - id: b\n    verdict: deny\n",
    );
    let d = g.decide(&call("t", json!({})));
    assert_eq!((d.verdict, d.rule.as_deref()), (Verdict::Deny, Some("b")));
    assert_eq!(
        d.matched,
        [std::sync::Arc::from("a"), std::sync::Arc::from("b")]
    );
    assert!(d.approvers.is_empty());
}

#[test]
fn decisions_carry_the_policy_name_and_hash() {
    let g = gate("");
    let d = g.decide(&call("t", json!({})));
    let p = d.policy.unwrap();
    assert_eq!(p.name, "t");
    assert_eq!(p.hash, g.policy().unwrap().hash());
    assert_eq!(d.reason, reason::DEFAULT);
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".*".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(".*", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Any JSON in args and context gets a decision, never a panic; errors deny.
    #[test]
    fn decide_never_panics_on_arbitrary_actions(
        args in json_value(),
        ctx in prop::collection::btree_map(".*", json_value(), 0..4),
        tool in "[a-z.]{1,12}",
    ) {
        let g = gate(concat!(
            "  - id: big\n    match: {tool: 'db.*'}\n    when: args.limit > 100\n    verdict: deny\n",
            "  - id: mail\n    when: has(args.to) && args.to.endsWith('@example.com')\n    verdict: warn\n",
            "  - id: prod\n    when: context.env == 'prod'\n    verdict: require_approval\n",
        ));
        let mut act = call(&tool, args);
        act.context = ctx.into_iter().collect();
        let d = g.decide(&act);
        prop_assert_ne!(d.reason.as_str(), reason::PANIC);
        if d.reason.starts_with("error:") {
            prop_assert_eq!(d.verdict, Verdict::Deny);
        }
        prop_assert_eq!(d.action_hash, act.hash());
    }
}
