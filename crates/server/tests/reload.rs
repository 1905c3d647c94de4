//! Policy hot reload: a changed file swaps the gate; a broken one keeps
//! the old policy deciding and is counted.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{POLICY, TestServer};

async fn wait_for_hash_change(server: &TestServer, old: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, p) = server.get("/v1/policy").await;
        let hash = p["hash"].as_str().unwrap().to_string();
        if hash != old {
            return hash;
        }
        assert!(
            Instant::now() < deadline,
            "the policy was not reloaded within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_policy_file_is_swapped_in_and_a_broken_one_is_refused() {
    let server = TestServer::start_with(POLICY, |c| c.watch = true).await;
    let (_, before) = server.get("/v1/policy").await;
    let old = before["hash"].as_str().unwrap().to_string();
    let q = json!({"point": "pre_tool_call", "tool": "db.query", "args": {"sql": "SELECT 1"}});
    assert_eq!(server.decide(q.clone()).await["verdict"], "allow");

    // Reads are no longer allowed in the new version.
    let stricter = POLICY.replace(
        "match: {tool: [db.query, web.fetch, limited.tool, session.tool]}",
        "match: {tool: [web.fetch]}",
    );
    std::fs::write(server.policy_path(), &stricter).unwrap();
    let new = wait_for_hash_change(&server, &old).await;
    let d = server.decide(q.clone()).await;
    assert_eq!(d["verdict"], "deny");
    assert_eq!(
        d["policy"]["hash"],
        new.as_str(),
        "the record carries the hash that decided"
    );

    // A broken file: the new policy keeps deciding, the error is counted.
    std::fs::write(
        server.policy_path(),
        "version: warden/v1\nname: broken\nrules: [\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, p) = server.get("/v1/policy").await;
        if p["reload_errors"].as_u64().unwrap() >= 1 {
            assert_eq!(p["hash"], new.as_str());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broken policy was not noticed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server.decide(q.clone()).await["policy"]["hash"],
        new.as_str()
    );
    let (status, body) = server.post("/v1/policy/reload", &json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("policy_invalid")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("policy.yaml"),
        "{body}"
    );
    let metrics = server.text("/metrics").await;
    assert!(!metrics.contains("warden_policy_reload_errors_total 0"));

    // Fixed again; a forced reload reports it.
    std::fs::write(server.policy_path(), POLICY).unwrap();
    let back = wait_for_hash_change(&server, &new).await;
    assert_eq!(back, old);
    let (status, body) = server.post("/v1/policy/reload", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], false);
    assert_eq!(server.decide(q).await["verdict"], "allow");
}

/// A signed request accepted before a reload is refused as a replay after
/// it: the reloaded gate keeps the nonces already used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_cannot_be_replayed_after_a_reload() {
    use rand::SeedableRng;
    use std::time::SystemTime;
    use warden_identity::trust::TrustState;
    use warden_identity::{
        Agent, Grant, IdentityKey, Ring, SignedRequest, Sponsor, Status, ToolPattern, issue,
    };
    use warden_store::StateChange;

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let org = IdentityKey::generate(&mut rng);
    let agent = IdentityKey::generate(&mut rng);
    let policy = POLICY.replace(
        "rules:\n",
        &format!(
            "identity: {{required: true, signed_requests: required, issuers: [{}]}}\nrules:\n",
            org.did()
        ),
    );
    let server = TestServer::start(&policy).await;
    let sponsor = Sponsor::parse("alice@example.com").unwrap();
    let record = Agent::restore(
        agent.did().clone(),
        "worker",
        sponsor.clone(),
        1_700_000_000,
        Status::Active,
        TrustState::restore(
            500,
            Ring::R3,
            false,
            warden_identity::unix_seconds(SystemTime::now()),
        ),
    )
    .unwrap();
    server
        .state
        .audit
        .append_with(
            warden_audit::Record::Event(warden_audit::EventRecord {
                time_unix_nanos: 1,
                actor: "test".into(),
                action: "agent.created".into(),
                subject: agent.did().to_string(),
                details: "{}".into(),
            }),
            StateChange::PutAgent {
                did: agent.did().to_string(),
                record: serde_json::to_string(&record).unwrap(),
            },
        )
        .unwrap();
    let grant = Grant {
        agent: agent.did().clone(),
        sponsor,
        tools: vec![ToolPattern::parse("db.*").unwrap()],
        ring_ceiling: Ring::R0,
        ttl: Duration::from_secs(3600),
    };
    let token = issue(&org, &grant, SystemTime::now(), &mut rng).unwrap();
    let signed = |rng: &mut rand::rngs::StdRng| {
        let mut action = json!({"point": "pre_tool_call", "tool": "db.query",
            "args": {"sql": "SELECT 1"}, "context": {"token": token.as_str()}});
        let parsed: warden_gate::Action = serde_json::from_value(action.clone()).unwrap();
        let request = SignedRequest::sign_with_rng(
            &agent,
            &parsed.hash_for_signing(),
            SystemTime::now(),
            rng,
        )
        .unwrap();
        action["context"]["signature"] = serde_json::to_value(&request).unwrap();
        action
    };

    let used = signed(&mut rng);
    let d = server.decide(used.clone()).await;
    assert_eq!(d["verdict"], "allow", "{d}");
    assert_eq!(
        server.decide(used.clone()).await["reason"],
        "identity:signature_replayed"
    );

    let (status, body) = server.post("/v1/policy/reload", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let d = server.decide(used).await;
    assert_eq!(
        (d["verdict"].as_str(), d["reason"].as_str()),
        (Some("deny"), Some("identity:signature_replayed")),
        "a reload must not forget the nonces already used: {d}"
    );
    assert_eq!(server.decide(signed(&mut rng)).await["verdict"], "allow");
}
