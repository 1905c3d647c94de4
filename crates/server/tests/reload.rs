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
