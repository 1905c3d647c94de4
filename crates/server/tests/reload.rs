//! Policy hot reload: a changed file swaps the gate; a broken one keeps
//! the old policy deciding and is counted.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{POLICY, SignedAgent, TestServer};

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
    // The watcher's failure and the forced one are both counted (a write
    // can make the watcher reload more than once).
    let families = support::parse(&server.text("/metrics").await);
    let errors = support::sample(
        &families,
        "warden_policy_reload_errors",
        "warden_policy_reload_errors_total",
        serde_json::Value::Null,
    );
    assert!(errors >= 2.0, "{errors}");

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
    let mut agent = SignedAgent::new(7);
    let server = TestServer::start(&agent.policy()).await;
    agent.register(&server);

    let used = agent.signed_query();
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
    assert_eq!(
        server.decide(agent.signed_query()).await["verdict"],
        "allow"
    );
}

/// A reload whose identity step cannot read the store is the store's
/// fault, not the policy's: it answers `store_malformed` (500), is
/// counted, and the previous policy stays in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_over_a_store_it_cannot_read_keeps_the_old_policy_and_blames_the_store() {
    let agent = SignedAgent::new(9);
    let server = TestServer::start(&agent.policy()).await;
    let (_, before) = server.get("/v1/policy").await;

    // A revocation id warden did not write: every new context reads all
    // revocations, so the reload's does.
    server.store_change(
        "revocations",
        warden_store::StateChange::Revoke {
            id: "not a revocation id".into(),
            reason: "test".into(),
        },
    );
    let (status, body) = server.post("/v1/policy/reload", &json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("store_malformed")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stored revocation id \"not a revocation id\" is invalid"),
        "{body}"
    );
    let (_, after) = server.get("/v1/policy").await;
    assert_eq!(after["reload_errors"], 1, "{after}");
    assert_eq!(after["hash"], before["hash"]);
}

/// Decisions sent while the policy is reloaded again and again all get an
/// answer from one of the two versions; none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_sent_during_reloads_all_get_answers() {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const RELOADS: usize = 10;
    let server = TestServer::start(POLICY).await;
    let versions = [
        POLICY.to_string(),
        POLICY.replace("name: test", "name: test-2"),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let deciders: Vec<_> = (0..8)
        .map(|w| {
            let (client, url) = (server.client.clone(), format!("{}/v1/decide", server.url));
            let (stop, answered) = (stop.clone(), answered.clone());
            tokio::spawn(async move {
                let mut hashes = BTreeSet::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let action = json!({"point": "pre_tool_call", "tool": "db.query", "session": format!("w{w}"), "args": {"sql": format!("SELECT {i}")}});
                    i += 1;
                    let response = client.post(&url).json(&action).send().await.unwrap();
                    let status = response.status().as_u16();
                    let d: serde_json::Value = response.json().await.unwrap();
                    assert_eq!(status, 200, "{d}");
                    assert_eq!(
                        (d["verdict"].as_str(), d["rule"].as_str()),
                        (Some("allow"), Some("reads")),
                        "{d}"
                    );
                    assert!(d["seq"].is_u64(), "recorded in the audit log: {d}");
                    hashes.insert(d["policy"]["hash"].as_str().unwrap().to_string());
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                hashes
            })
        })
        .collect();

    // Until the deciders have answered `n` more (a decider that fails stops).
    let more = |n: usize| {
        let before = answered.load(Ordering::Relaxed);
        let deciders = &deciders;
        let answered = &answered;
        async move {
            while answered.load(Ordering::Relaxed) < before + n {
                assert!(
                    deciders.iter().all(|d| !d.is_finished()),
                    "a decider failed"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    let mut reloaded = BTreeSet::new();
    for n in 0..RELOADS {
        // Decisions are in flight on the old policy before each swap.
        more(16).await;
        std::fs::write(server.policy_path(), &versions[(n + 1) % 2]).unwrap();
        let (status, body) = server.post("/v1/policy/reload", &json!({})).await;
        assert_eq!((status, &body["changed"]), (200, &json!(true)), "{body}");
        reloaded.insert(body["hash"].as_str().unwrap().to_string());
    }
    more(16).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = BTreeSet::new();
    for d in deciders {
        seen.extend(d.await.expect("every decision got its answer"));
    }
    assert_eq!(reloaded.len(), 2);
    assert_eq!(
        seen, reloaded,
        "decisions came from both versions, and only those"
    );
}

/// The verdict on a call of `tool`.
async fn verdict_on(server: &TestServer, tool: &str) -> String {
    let d = server
        .decide(json!({"point": "pre_tool_call", "tool": tool, "args": {}}))
        .await;
    d["verdict"].as_str().unwrap().to_string()
}

fn extra_rules(verdict: &str) -> String {
    format!(
        "version: warden/v1\nrules:\n  - {{id: extra, match: {{tool: extra.tool}}, verdict: {verdict}}}\n"
    )
}

/// An include below the policy's directory is watched as soon as a load
/// reads it, and a change to it alone reloads the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_include_in_a_subdirectory_is_reloaded() {
    let server = TestServer::start_with(POLICY, |c| c.watch = true).await;
    let (_, p) = server.get("/v1/policy").await;
    let first = p["hash"].as_str().unwrap().to_string();
    let rules = server.policy_path().parent().unwrap().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("extra.yaml"), extra_rules("allow")).unwrap();
    std::fs::write(
        server.policy_path(),
        format!("{POLICY}include: [rules/extra.yaml]\n"),
    )
    .unwrap();
    let second = wait_for_hash_change(&server, &first).await;
    assert_eq!(verdict_on(&server, "extra.tool").await, "allow");

    std::fs::write(rules.join("extra.yaml"), extra_rules("deny")).unwrap();
    wait_for_hash_change(&server, &second).await;
    assert_eq!(verdict_on(&server, "extra.tool").await, "deny");
}

/// A Kubernetes ConfigMap volume: `policy.yaml` links to
/// `..data/policy.yaml`, and an update swaps the `..data` link to a new
/// directory, so no YAML file itself is written in the watched directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_style_symlink_swap_is_reloaded() {
    let volume = tempfile::tempdir().unwrap();
    let v = volume.path();
    let version = |name: &str, text: &str| {
        std::fs::create_dir(v.join(name)).unwrap();
        std::fs::write(v.join(name).join("policy.yaml"), text).unwrap();
    };
    version("..2026_12_07_1", POLICY);
    std::os::unix::fs::symlink("..2026_12_07_1", v.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/policy.yaml", v.join("policy.yaml")).unwrap();
    let policy = v.join("policy.yaml");
    let server = TestServer::start_with(POLICY, |c| {
        c.watch = true;
        c.policy = Some(policy);
    })
    .await;
    let (_, p) = server.get("/v1/policy").await;
    let first = p["hash"].as_str().unwrap().to_string();
    assert_eq!(verdict_on(&server, "db.query").await, "allow");

    // As the kubelet updates it: a new directory, a new link, renamed over.
    version(
        "..2026_12_07_2",
        &POLICY.replace(
            "match: {tool: [db.query, web.fetch, limited.tool, session.tool]}",
            "match: {tool: [web.fetch]}",
        ),
    );
    std::os::unix::fs::symlink("..2026_12_07_2", v.join("..data_tmp")).unwrap();
    std::fs::rename(v.join("..data_tmp"), v.join("..data")).unwrap();
    wait_for_hash_change(&server, &first).await;
    assert_eq!(verdict_on(&server, "db.query").await, "deny");
}
