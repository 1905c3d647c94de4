//! `/metrics` read by a real OpenMetrics parser: the Prometheus project's
//! Python client (`prometheus_client.openmetrics.parser`), installed by
//! `scripts/test`. No string matching on the exposition.

mod support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use support::{POLICY, SignedAgent, TestServer, parse, sample};
use warden_identity::Ring;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_with_the_reference_parser_and_count_what_happened() {
    let server = TestServer::start(POLICY).await;
    let q = json!({"point": "pre_tool_call", "tool": "db.query", "args": {"sql": "SELECT 1"}});
    for _ in 0..3 {
        server.decide(q.clone()).await;
    }
    server
        .decide(
            json!({"point": "pre_tool_call", "tool": "db.query", "args": {"sql": "DROP TABLE t"}}),
        )
        .await;
    server
        .decide(json!({"point": "pre_tool_call", "tool": "email.send", "args": {"to": "a@b.c", "body": ""}}))
        .await;
    for _ in 0..3 {
        server
            .decide(json!({"point": "pre_tool_call", "tool": "limited.tool"}))
            .await;
    }
    server
        .post("/v1/kill", &json!({"agent": "a", "reason": "test"}))
        .await;

    let response = server
        .client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let families = parse(&response.text().await.unwrap());

    let types: BTreeMap<&str, &str> = families
        .iter()
        .map(|(k, v)| (k.as_str(), v["type"].as_str().unwrap()))
        .collect();
    for (name, kind) in [
        ("warden_decisions", "counter"),
        ("warden_decision_duration_seconds", "histogram"),
        ("warden_audit_entries", "gauge"),
        ("warden_audit_append_duration_seconds", "histogram"),
        ("warden_approvals_pending", "gauge"),
        ("warden_trust_score", "histogram"),
        ("warden_ring_transitions", "counter"),
        ("warden_kill_switch_active", "gauge"),
        ("warden_rate_limited", "counter"),
        ("warden_policy_rules", "gauge"),
        ("warden_policy_reload_errors", "counter"),
        ("warden_build_info", "gauge"),
    ] {
        assert_eq!(types.get(name).copied(), Some(kind), "{name}: {types:?}");
    }
    let allow = json!({"verdict": "allow", "point": "pre_tool_call"});
    let deny = json!({"verdict": "deny", "point": "pre_tool_call"});
    assert_eq!(
        sample(
            &families,
            "warden_decisions",
            "warden_decisions_total",
            allow
        ),
        5.0
    );
    assert_eq!(
        sample(
            &families,
            "warden_decisions",
            "warden_decisions_total",
            deny
        ),
        2.0
    );
    assert_eq!(
        sample(
            &families,
            "warden_decisions",
            "warden_decisions_total",
            json!({"verdict": "require_approval", "point": "pre_tool_call"})
        ),
        1.0
    );
    assert_eq!(
        sample(
            &families,
            "warden_decision_duration_seconds",
            "warden_decision_duration_seconds_count",
            Value::Null
        ),
        8.0
    );
    // 8 decisions and one kill-switch event.
    assert_eq!(
        sample(
            &families,
            "warden_audit_entries",
            "warden_audit_entries",
            Value::Null
        ),
        9.0
    );
    assert_eq!(
        sample(
            &families,
            "warden_audit_append_duration_seconds",
            "warden_audit_append_duration_seconds_count",
            Value::Null
        ),
        9.0
    );
    assert_eq!(
        sample(
            &families,
            "warden_approvals_pending",
            "warden_approvals_pending",
            Value::Null
        ),
        1.0
    );
    assert_eq!(
        sample(
            &families,
            "warden_kill_switch_active",
            "warden_kill_switch_active",
            Value::Null
        ),
        1.0
    );
    assert_eq!(
        sample(
            &families,
            "warden_rate_limited",
            "warden_rate_limited_total",
            Value::Null
        ),
        1.0
    );
    assert_eq!(
        sample(
            &families,
            "warden_policy_rules",
            "warden_policy_rules",
            Value::Null
        ),
        7.0
    );
    assert_eq!(
        sample(
            &families,
            "warden_policy_reload_errors",
            "warden_policy_reload_errors_total",
            Value::Null
        ),
        0.0
    );
    assert_eq!(
        sample(
            &families,
            "warden_build_info",
            "warden_build_info",
            json!({"version": env!("CARGO_PKG_VERSION")})
        ),
        1.0
    );
    assert_eq!(
        sample(
            &families,
            "warden_trust_score",
            "warden_trust_score_count",
            Value::Null
        ),
        0.0
    );
}

/// A rule's denial costs the signing agent trust; falling under ring 2's
/// threshold demotes it, which `warden_ring_transitions_total` counts, and
/// `warden_trust_score` holds the agent's score as the store has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demotion_is_counted_and_the_trust_histogram_holds_the_stored_score() {
    let mut agent = SignedAgent::new(21);
    let server = TestServer::start(&agent.policy()).await;
    agent.register_at(&server, 605, Ring::R2);
    let trust = |families: &BTreeMap<String, Value>, name: &str, labels: Value| {
        sample(families, "warden_trust_score", name, labels)
    };
    let transitions = |families: &BTreeMap<String, Value>| {
        sample(
            families,
            "warden_ring_transitions",
            "warden_ring_transitions_total",
            Value::Null,
        )
    };

    let before = parse(&server.text("/metrics").await);
    assert_eq!(transitions(&before), 0.0);
    assert_eq!(trust(&before, "warden_trust_score_count", Value::Null), 1.0);
    assert_eq!(trust(&before, "warden_trust_score_sum", Value::Null), 605.0);

    let d = server.decide(agent.signed_sql("DROP TABLE t")).await;
    assert_eq!(
        (d["verdict"].as_str(), d["rule"].as_str()),
        (Some("deny"), Some("no-destructive")),
        "{d}"
    );
    let (status, stored) = server.get(&format!("/v1/agents/{}", agent.did())).await;
    assert_eq!(status, 200, "{stored}");
    let score = stored["trust"].as_f64().unwrap();
    assert!(score < 600.0, "a violation must cost points: {stored}");
    assert_eq!(stored["ring"], 3, "{stored}");

    let after = parse(&server.text("/metrics").await);
    assert_eq!(transitions(&after), 1.0);
    assert_eq!(trust(&after, "warden_trust_score_count", Value::Null), 1.0);
    assert_eq!(trust(&after, "warden_trust_score_sum", Value::Null), score);
    // The score sits in the first bucket at or above it, and in none below.
    let bucket = |le: f64| {
        trust(
            &after,
            "warden_trust_score_bucket",
            json!({"le": format!("{le:.1}")}),
        )
    };
    let upper = (score / 100.0).ceil() * 100.0;
    assert_eq!(bucket(upper), 1.0, "score {score}");
    assert_eq!(bucket(upper - 100.0), 0.0, "score {score}");

    // A signed read at the lower ring changes nothing further, nor does
    // an audited event whose text a person wrote to look like one.
    let d = server.decide(agent.signed_query()).await;
    assert_eq!(d["verdict"], "allow", "{d}");
    let (status, body) = server
        .post(
            "/v1/kill",
            &json!({"agent": "someone-else", "reason": "x\"ring_to"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let again = parse(&server.text("/metrics").await);
    assert_eq!(transitions(&again), 1.0);
}
