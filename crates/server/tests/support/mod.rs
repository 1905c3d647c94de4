//! A real server on a loopback port, over a real SQLite data directory.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use warden_identity::trust::TrustState;
use warden_identity::{
    Agent, Grant, IdentityKey, Ring, SignedRequest, Sponsor, Status, Token, ToolPattern, issue,
};
use warden_server::{AppState, Config, Server};
use warden_store::StateChange;

pub struct TestServer {
    pub url: String,
    pub dir: TempDir,
    pub state: Arc<AppState>,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub const POLICY: &str = r#"version: warden/v1
name: test
default: deny
tools:
  db.query: {labels: [pii], args: {sql: sql}}
  web.fetch: {labels: [untrusted], args: {url: url}}
  http.post: {args: {url: url, body: text}}
  email.send: {args: {to: text, body: text}}
egress: [example.com]
limits:
  tools:
    limited.tool: {calls: 2, per: 1h}
    session.tool: {per_session: 1}
rules:
  - id: reads
    match: {tool: [db.query, web.fetch, limited.tool, session.tool]}
    verdict: allow
  - id: no-destructive
    match: {intents: [destructive]}
    verdict: deny
  - id: results
    on: [post_tool_call]
    verdict: allow
  - id: no-exfiltration-after-pii
    on: [pre_tool_call]
    match: {labels: [pii], intents: [exfiltration]}
    verdict: deny
  - id: posts
    match: {tool: http.post}
    verdict: allow
  - id: mail-needs-approval
    match: {tool: email.send}
    verdict: require_approval
    approvers: [dba@example.com]
  - id: untrusted-side-effects
    match: {labels: [untrusted], tool: http.post}
    verdict: require_approval
"#;

impl TestServer {
    pub async fn start(policy: &str) -> TestServer {
        TestServer::start_with(policy, |_| {}).await
    }

    pub async fn start_with(policy: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let policy_dir = dir.path().join("policy");
        std::fs::create_dir(&policy_dir).unwrap();
        let policy_path = policy_dir.join("policy.yaml");
        std::fs::write(&policy_path, policy).unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            policy: Some(policy_path),
            watch: false,
            ..Config::default()
        };
        tweak(&mut config);
        TestServer::start_config(dir, config).await
    }

    pub async fn start_config(dir: TempDir, config: Config) -> TestServer {
        let server = Server::bind(config).await.expect("the server starts");
        let url = format!("http://{}", server.local_addr());
        let state = server.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestServer {
            url,
            dir,
            state,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy/policy.yaml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes `change` to the server's store behind a test event entry
    /// about `subject`, as an API call or a decision would.
    pub fn store_change(&self, subject: &str, change: StateChange) {
        self.state
            .audit
            .append_with(
                warden_audit::Record::Event(warden_audit::EventRecord {
                    time_unix_nanos: 1,
                    actor: "test".into(),
                    action: "test.state".into(),
                    subject: subject.into(),
                    details: "{}".into(),
                }),
                change,
            )
            .unwrap();
    }

    /// Stops the server the graceful way and waits for it.
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().expect("the server stops cleanly");
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// Stops the server when it cannot stop cleanly (its store failed);
    /// the final checkpoint may not be written.
    pub async fn stop_unclean(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await.unwrap();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// Stops the server (cleanly) and starts a new one on the same data
    /// directory and policy.
    pub async fn restart(self) -> TestServer {
        TestServer::start_again(self.stop().await).await
    }

    /// [`TestServer::restart`] after a store failure.
    pub async fn restart_unclean(self) -> TestServer {
        TestServer::start_again(self.stop_unclean().await).await
    }

    async fn start_again(dir: TempDir) -> TestServer {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            policy: Some(dir.path().join("policy/policy.yaml")),
            watch: false,
            ..Config::default()
        };
        TestServer::start_config(dir, config).await
    }

    /// The body of `GET path` as text (for `/metrics`).
    pub async fn text(&self, path: &str) -> String {
        let url = format!("{}{path}", self.url);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.client.post(format!("{}{path}", self.url)).json(body))
            .await
    }

    /// [`TestServer::post`] with bearer `token`.
    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.client
                .post(format!("{}{path}", self.url))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    /// [`TestServer::get`] with bearer `token`.
    pub async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        self.send(
            self.client
                .get(format!("{}{path}", self.url))
                .bearer_auth(token),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(format!("{}{path}", self.url)))
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.client.delete(format!("{}{path}", self.url)))
            .await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        (status, value)
    }

    pub async fn decide(&self, action: Value) -> Value {
        let (status, body) = self.post("/v1/decide", &action).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An agent that signs its requests, with a capability token for `db.*`
/// from an organisation key that [`SignedAgent::policy`] trusts.
pub struct SignedAgent {
    org: IdentityKey,
    key: IdentityKey,
    token: Token,
    rng: StdRng,
}

impl SignedAgent {
    pub fn new(seed: u64) -> SignedAgent {
        let mut rng = StdRng::seed_from_u64(seed);
        let org = IdentityKey::generate(&mut rng);
        let key = IdentityKey::generate(&mut rng);
        let grant = Grant {
            agent: key.did().clone(),
            sponsor: Sponsor::parse("alice@example.com").unwrap(),
            tools: vec![ToolPattern::parse("db.*").unwrap()],
            ring_ceiling: Ring::R0,
            ttl: Duration::from_secs(3600),
        };
        let token = issue(&org, &grant, SystemTime::now(), &mut rng).unwrap();
        SignedAgent {
            org,
            key,
            token,
            rng,
        }
    }

    /// [`POLICY`], requiring signed requests under tokens the agent's
    /// organisation issues.
    pub fn policy(&self) -> String {
        POLICY.replace(
            "rules:\n",
            &format!(
                "identity: {{required: true, signed_requests: required, issuers: [{}]}}\nrules:\n",
                self.org.did()
            ),
        )
    }

    /// [`POLICY`], trusting tokens the agent's organisation issues, with
    /// neither identity nor signed requests required.
    pub fn trusting_policy(&self) -> String {
        POLICY.replace(
            "rules:\n",
            &format!("identity: {{issuers: [{}]}}\nrules:\n", self.org.did()),
        )
    }

    /// The agent's capability token.
    pub fn token(&self) -> &str {
        self.token.as_str()
    }

    /// Another token of the same grant, issued at `at` for an hour.
    pub fn token_issued_at(&mut self, at: SystemTime) -> Token {
        let grant = Grant {
            agent: self.key.did().clone(),
            sponsor: Sponsor::parse("alice@example.com").unwrap(),
            tools: vec![ToolPattern::parse("db.*").unwrap()],
            ring_ceiling: Ring::R0,
            ttl: Duration::from_secs(3600),
        };
        issue(&self.org, &grant, at, &mut self.rng).unwrap()
    }

    /// Stores the agent, active at ring 3, in the server's store.
    pub fn register(&self, server: &TestServer) {
        self.register_at(server, 500, Ring::R3);
    }

    /// Stores the agent, active with `score` at `ring`, last decayed now.
    pub fn register_at(&self, server: &TestServer, score: u16, ring: Ring) {
        let record = Agent::restore(
            self.key.did().clone(),
            "worker",
            Sponsor::parse("alice@example.com").unwrap(),
            1_700_000_000,
            Status::Active,
            TrustState::restore(
                score,
                ring,
                false,
                warden_identity::unix_seconds(SystemTime::now()),
            ),
        )
        .unwrap();
        server.store_change(
            self.key.did().as_str(),
            StateChange::PutAgent {
                did: self.key.did().to_string(),
                record: serde_json::to_string(&record).unwrap(),
            },
        );
    }

    /// The agent's did.
    pub fn did(&self) -> &str {
        self.key.did().as_str()
    }

    /// A `db.query` with the agent's token, signed now with a fresh nonce.
    pub fn signed_query(&mut self) -> Value {
        self.signed_sql("SELECT 1")
    }

    /// A `db.query` of `sql` with the agent's token, signed now with a
    /// fresh nonce.
    pub fn signed_sql(&mut self, sql: &str) -> Value {
        let mut action = json!({"point": "pre_tool_call", "tool": "db.query",
            "args": {"sql": sql}, "context": {"token": self.token.as_str()}});
        let parsed: warden_gate::Action = serde_json::from_value(action.clone()).unwrap();
        let request = SignedRequest::sign_with_rng(
            &self.key,
            &parsed.hash_for_signing(),
            SystemTime::now(),
            &mut self.rng,
        )
        .unwrap();
        action["context"]["signature"] = serde_json::to_value(&request).unwrap();
        action
    }
}

/// The reference OpenMetrics parser, the Prometheus project's Python
/// client (`prometheus_client.openmetrics.parser`, installed by
/// `scripts/test`), printing each family as JSON.
const PARSER: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {
        "type": family.type,
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    }
print(json.dumps(out))
"#;

/// The families of an OpenMetrics exposition, parsed by the reference parser.
pub fn parse(text: &str) -> BTreeMap<String, Value> {
    let mut child = Command::new("python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required (scripts/test checks for it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the exposition (is the Python package prometheus-client installed? scripts/test installs it):\n{}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn sample(families: &BTreeMap<String, Value>, family: &str, name: &str, labels: Value) -> f64 {
    let f = families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}: {:?}", families.keys()));
    f["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0] == name && (labels.is_null() || s[1] == labels))
        .unwrap_or_else(|| panic!("no sample {name} {labels} in {f}"))[2]
        .as_f64()
        .unwrap()
}
