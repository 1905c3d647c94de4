//! The identity step through the public API, with a real SQLite store and
//! real tokens: what a token proves, what it grants, and every way it is
//! refused.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use warden_audit::{EventRecord, Record};
use warden_gate::identity::{NONCE_FLOOR_SPACE, NONCE_SPACE};
use warden_gate::{Action, Gate, IdentityContext, IdentityError, reason};
use warden_identity::trust::TrustState;
use warden_identity::{
    Agent, Attenuation, Grant, IdentityKey, Ring, SignedRequest, Sponsor, Status, Token,
    ToolPattern, issue, revocation_ids,
};
use warden_policy::{Verdict, compile, parse};
use warden_store::{SqliteStore, StateChange, Store, StoreConfig};

const SPONSOR: &str = "alice@example.com";

/// A fresh RNG per call, so no two keys or tokens share randomness.
fn rng() -> StdRng {
    static SEED: AtomicU64 = AtomicU64::new(1);
    StdRng::seed_from_u64(SEED.fetch_add(1, Ordering::Relaxed))
}

fn policy(text: &str) -> warden_policy::CompiledPolicy {
    let head = "version: warden/v1\nname: identity\ndefault: deny\n";
    compile(parse("p.yaml", &format!("{head}{text}")).unwrap()).unwrap()
}

/// Reads need identity; writes are allowed; drops are denied; admin needs ring 1.
const REQUIRED: &str = r#"identity: required
rules:
  - id: reads
    match: {tool: "db.read*"}
    verdict: allow
  - id: writes
    match: {tool: db.write}
    verdict: allow
  - id: no-drop
    match: {tool: db.drop}
    verdict: deny
    reason: never drop
  - id: admin
    match: {tool: admin.reset, ring: {max: 1}}
    verdict: allow
"#;

struct World {
    dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    org: IdentityKey,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(dir.path(), StoreConfig::new("test.example/warden")).unwrap(),
        );
        World {
            dir,
            store,
            org: IdentityKey::generate(&mut rng()),
        }
    }

    /// Closes the store and opens its data directory again, as a restarted
    /// process would (drop the gates over the old store first: it holds the
    /// directory's lock until the last of them goes).
    fn reopen(self) -> World {
        let World { dir, store, org } = self;
        store.close().unwrap();
        assert_eq!(Arc::strong_count(&store), 1, "a gate still holds the store");
        drop(store);
        let store = Arc::new(
            SqliteStore::open(dir.path(), StoreConfig::new("test.example/warden")).unwrap(),
        );
        World { dir, store, org }
    }

    /// Stores an agent with this status, trust score and ring.
    fn put_agent(&self, key: &IdentityKey, status: Status, score: u16, ring: Ring, approved: bool) {
        let agent = Agent::restore(
            key.did().clone(),
            "worker",
            Sponsor::parse(SPONSOR).unwrap(),
            1_700_000_000,
            status,
            TrustState::restore(score, ring, approved, unix_now()),
        )
        .unwrap();
        self.store_agent(&agent);
    }

    fn store_agent(&self, agent: &Agent) {
        self.store
            .append_with(
                event("agent.created", agent.did().as_str()),
                StateChange::PutAgent {
                    did: agent.did().to_string(),
                    record: serde_json::to_string(agent).unwrap(),
                },
            )
            .unwrap();
    }

    /// An active ring-3 agent with a fresh key.
    fn active_agent(&self) -> IdentityKey {
        let key = IdentityKey::generate(&mut rng());
        self.put_agent(&key, Status::Active, 500, Ring::R3, false);
        key
    }

    fn revoke(&self, token: &Token) {
        let id = revocation_ids(token.as_str()).unwrap().remove(0);
        self.store
            .append_with(
                event("token.revoked", id.as_str()),
                StateChange::Revoke {
                    id: id.to_string(),
                    reason: "test".into(),
                },
            )
            .unwrap();
    }

    /// Stores the nonce key `not a nonce`, which no context can read.
    fn store_bad_nonce_key(&self) {
        self.store_key(NONCE_SPACE, "not a nonce");
    }

    /// Stores `key` in state `space`, with an empty value.
    fn store_key(&self, space: &str, key: &str) {
        self.store
            .append_with(
                event("test", space),
                StateChange::PutState {
                    space: space.into(),
                    key: key.into(),
                    value: String::new(),
                },
            )
            .unwrap();
    }

    fn context(&self, policy: &warden_policy::CompiledPolicy) -> IdentityContext {
        IdentityContext::new(policy, self.store.clone(), [self.org.did().clone()]).unwrap()
    }

    fn gate(&self, text: &str) -> Gate {
        let p = policy(text);
        let ctx = Arc::new(self.context(&p));
        Gate::new(p).with_identity(ctx)
    }

    /// A gate over `text` reading the time from `clock` and recording to
    /// the world's store.
    fn recording_gate_at(&self, text: &str, clock: fn() -> SystemTime) -> Gate {
        let p = policy(text);
        let ctx = Arc::new(self.context(&p).with_clock(clock));
        Gate::new(p)
            .with_identity(ctx)
            .with_audit(self.store.clone())
    }
}

fn unix_now() -> u64 {
    warden_identity::unix_seconds(SystemTime::now())
}

fn event(action: &str, subject: &str) -> Record {
    Record::Event(EventRecord {
        time_unix_nanos: 1,
        actor: "test".into(),
        action: action.into(),
        subject: subject.into(),
        details: "{}".into(),
    })
}

fn pats(list: &[&str]) -> Vec<ToolPattern> {
    list.iter()
        .map(|p| ToolPattern::parse(p).unwrap())
        .collect()
}

fn token_at(
    issuer: &IdentityKey,
    agent: &IdentityKey,
    tools: &[&str],
    ring: Ring,
    at: SystemTime,
) -> Token {
    let grant = Grant {
        agent: agent.did().clone(),
        sponsor: Sponsor::parse(SPONSOR).unwrap(),
        tools: pats(tools),
        ring_ceiling: ring,
        ttl: Duration::from_secs(3600),
    };
    issue(issuer, &grant, at, &mut rng()).unwrap()
}

fn token(issuer: &IdentityKey, agent: &IdentityKey, tools: &[&str]) -> Token {
    token_at(issuer, agent, tools, Ring::R0, SystemTime::now())
}

/// A tool call carrying `token`, with extra context fields.
fn call(tool: &str, token: Option<&Token>, extra: Value) -> Action {
    let mut context = extra.as_object().cloned().unwrap_or_default();
    if let Some(t) = token {
        context.insert("token".into(), t.as_str().into());
    }
    serde_json::from_value(json!({
        "point": "pre_tool_call",
        "tool": tool,
        "args": {"n": 1},
        "context": context,
    }))
    .unwrap()
}

#[test]
fn a_valid_token_allows_and_names_the_agent_and_sponsor() {
    let w = World::new();
    let agent = w.active_agent();
    let gate = w.gate(REQUIRED);
    let t = token(&w.org, &agent, &["db.*"]);
    let d = gate.decide(&call("db.read", Some(&t), json!({})));
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    assert_eq!(d.rule.as_deref(), Some("reads"));
    assert_eq!(d.agent.as_deref(), Some(agent.did().as_str()));
    assert_eq!(d.sponsor.as_deref(), Some(SPONSOR));
    let id = d.identity.unwrap();
    assert_eq!(id.issuer, w.org.did().as_str());
    assert_eq!(id.depth, 0);
    assert_eq!(id.ring, 3);
    assert!(!id.signed);
    assert!(id.token.starts_with("sha256:"));

    // The agent may also be named, as long as it is the token's.
    let mut named = call("db.read", Some(&t), json!({}));
    named.agent = Some(agent.did().to_string());
    assert_eq!(gate.decide(&named).verdict, Verdict::Allow);
    // Verified once, then from the cache.
    assert_eq!(gate.identity().unwrap().verifier().cached(), 1);
}

#[test]
fn every_refusal_has_its_own_reason() {
    let w = World::new();
    let gate = w.gate(REQUIRED);
    let agent = w.active_agent();
    let good = token(&w.org, &agent, &["db.read"]);
    let mut reasons = Vec::new();
    let mut refuse = |what: &str, action: Action, expected: &str| {
        let d = gate.decide(&action);
        assert_eq!(d.verdict, Verdict::Deny, "{what}: {d:?}");
        assert_eq!(d.reason, expected, "{what}: {}", d.message);
        reasons.push(d.reason);
    };

    refuse(
        "no token",
        call("db.read", None, json!({})),
        reason::TOKEN_MISSING,
    );
    refuse(
        "token not a string",
        call("db.read", None, json!({"token": 7})),
        reason::TOKEN_NOT_A_STRING,
    );
    refuse(
        "garbage token",
        call("db.read", None, json!({"token": "not-a-token"})),
        "identity:token_malformed",
    );
    let hour_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    refuse(
        "expired",
        call(
            "db.read",
            Some(&token_at(&w.org, &agent, &["db.read"], Ring::R0, hour_ago)),
            json!({}),
        ),
        "identity:token_expired",
    );
    let stranger = IdentityKey::generate(&mut rng());
    refuse(
        "foreign issuer",
        call(
            "db.read",
            Some(&token(&stranger, &agent, &["db.read"])),
            json!({}),
        ),
        "identity:token_unknown_issuer",
    );
    let mut other = call("db.read", Some(&good), json!({}));
    other.agent = Some(stranger.did().to_string());
    refuse("agent mismatch", other, reason::AGENT_MISMATCH);
    let unregistered = IdentityKey::generate(&mut rng());
    refuse(
        "unknown agent",
        call(
            "db.read",
            Some(&token(&w.org, &unregistered, &["db.read"])),
            json!({}),
        ),
        reason::AGENT_UNKNOWN,
    );
    for (status, expected) in [
        (Status::Suspended, reason::AGENT_SUSPENDED),
        (Status::Decommissioned, reason::AGENT_DECOMMISSIONED),
        (Status::Provisioned, reason::AGENT_NOT_ACTIVE),
    ] {
        let key = IdentityKey::generate(&mut rng());
        w.put_agent(&key, status, 500, Ring::R3, false);
        refuse(
            status.as_str(),
            call(
                "db.read",
                Some(&token(&w.org, &key, &["db.read"])),
                json!({}),
            ),
            expected,
        );
    }
    refuse(
        "tool not granted",
        call("db.write", Some(&good), json!({})),
        reason::TOOL_NOT_GRANTED,
    );
    refuse(
        "ring claim",
        call("db.read", Some(&good), json!({"ring": 0})),
        reason::RING_CLAIM_REFUSED,
    );

    let distinct: BTreeSet<&String> = reasons.iter().collect();
    assert_eq!(distinct.len(), reasons.len(), "{reasons:?}");
    assert!(reasons.iter().all(|r| r.starts_with("identity:")));
}

#[test]
fn a_refusal_after_the_token_verified_still_names_the_agent() {
    let w = World::new();
    let gate = w.gate(REQUIRED);
    let key = IdentityKey::generate(&mut rng());
    w.put_agent(&key, Status::Suspended, 500, Ring::R3, false);
    let d = gate.decide(&call(
        "db.read",
        Some(&token(&w.org, &key, &["db.read"])),
        json!({}),
    ));
    assert_eq!(d.reason, reason::AGENT_SUSPENDED);
    assert_eq!(d.agent.as_deref(), Some(key.did().as_str()));
    assert_eq!(d.sponsor.as_deref(), Some(SPONSOR));
    assert_eq!(d.identity, None);
}

#[test]
fn the_result_is_the_intersection_of_token_and_policy() {
    let w = World::new();
    let gate = w.gate(REQUIRED);
    let agent = w.active_agent();
    // The policy allows db.write; the token does not grant it.
    let reads = token(&w.org, &agent, &["db.read*"]);
    let d = gate.decide(&call("db.write", Some(&reads), json!({})));
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Deny, reason::TOOL_NOT_GRANTED)
    );
    // The token grants db.drop; the policy denies it.
    let all = token(&w.org, &agent, &["db.*"]);
    let d = gate.decide(&call("db.drop", Some(&all), json!({})));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.rule.as_deref(), Some("no-drop"));
    assert_eq!(d.reason, "never drop");
    // Both allow.
    assert_eq!(
        gate.decide(&call("db.write", Some(&all), json!({})))
            .verdict,
        Verdict::Allow
    );
}

#[test]
fn a_suspended_agent_is_denied_at_once() {
    let w = World::new();
    let gate = w.gate(REQUIRED);
    let key = IdentityKey::generate(&mut rng());
    w.put_agent(&key, Status::Active, 500, Ring::R3, false);
    let t = token(&w.org, &key, &["db.read"]);
    assert_eq!(
        gate.decide(&call("db.read", Some(&t), json!({}))).verdict,
        Verdict::Allow
    );
    w.put_agent(&key, Status::Suspended, 500, Ring::R3, false);
    let d = gate.decide(&call("db.read", Some(&t), json!({})));
    assert_eq!(d.reason, reason::AGENT_SUSPENDED);
    w.put_agent(&key, Status::Active, 500, Ring::R3, false);
    assert_eq!(
        gate.decide(&call("db.read", Some(&t), json!({}))).verdict,
        Verdict::Allow
    );
}

#[test]
fn a_revoked_token_is_denied_once_revocations_are_loaded() {
    let w = World::new();
    let agent = w.active_agent();
    let t = token(&w.org, &agent, &["db.read"]);
    let p = policy(REQUIRED);
    let ctx = Arc::new(
        w.context(&p)
            .with_revocation_refresh(Duration::from_secs(3600)),
    );
    let gate = Gate::new(p).with_identity(ctx);
    assert_eq!(
        gate.decide(&call("db.read", Some(&t), json!({}))).verdict,
        Verdict::Allow
    );

    w.revoke(&t);
    assert_eq!(gate.identity().unwrap().refresh_revocations().unwrap(), 1);
    let d = gate.decide(&call("db.read", Some(&t), json!({})));
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Deny, "identity:token_revoked")
    );
    assert_eq!(gate.identity().unwrap().refresh_revocations().unwrap(), 0);

    // A context built later loads it at construction.
    assert_eq!(
        w.gate(REQUIRED)
            .decide(&call("db.read", Some(&t), json!({})))
            .reason,
        "identity:token_revoked"
    );

    // With refresh on every decision, a revocation written meanwhile applies at once.
    let other = token(&w.org, &agent, &["db.read"]);
    let p = policy(REQUIRED);
    let ctx = Arc::new(w.context(&p).with_revocation_refresh(Duration::ZERO));
    let gate = Gate::new(p).with_identity(ctx);
    assert_eq!(
        gate.decide(&call("db.read", Some(&other), json!({})))
            .verdict,
        Verdict::Allow
    );
    w.revoke(&other);
    assert_eq!(
        gate.decide(&call("db.read", Some(&other), json!({})))
            .reason,
        "identity:token_revoked"
    );
}

#[test]
fn the_ring_comes_from_the_record_not_from_the_caller() {
    let w = World::new();
    let gate = w.gate(REQUIRED);
    let ring1 = IdentityKey::generate(&mut rng());
    w.put_agent(&ring1, Status::Active, 950, Ring::R1, true);
    let ring3 = w.active_agent();
    let t1 = token(&w.org, &ring1, &["admin.*", "db.*"]);
    let t3 = token(&w.org, &ring3, &["admin.*", "db.*"]);

    let d = gate.decide(&call("admin.reset", Some(&t1), json!({})));
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    assert_eq!(d.identity.unwrap().ring, 1);
    // A ring-3 agent claiming ring 1 is refused, not believed.
    let d = gate.decide(&call("admin.reset", Some(&t3), json!({"ring": 1})));
    assert_eq!(d.reason, reason::RING_CLAIM_REFUSED);
    // Without a claim it is at ring 3, where the admin rule does not match.
    let d = gate.decide(&call("admin.reset", Some(&t3), json!({})));
    assert_eq!((d.verdict, d.rule), (Verdict::Deny, None));
    // Claiming its own ring, or dropping privilege, is fine.
    let d = gate.decide(&call("admin.reset", Some(&t1), json!({"ring": 1})));
    assert_eq!(d.verdict, Verdict::Allow);
    let d = gate.decide(&call("admin.reset", Some(&t1), json!({"ring": 2})));
    assert_eq!((d.verdict, d.identity.unwrap().ring), (Verdict::Deny, 2));

    // The token's ring ceiling caps the record's ring.
    let capped = token_at(&w.org, &ring1, &["admin.*"], Ring::R2, SystemTime::now());
    let d = gate.decide(&call("admin.reset", Some(&capped), json!({})));
    assert_eq!((d.verdict, d.identity.unwrap().ring), (Verdict::Deny, 2));

    // The policy's `rings:` thresholds demote a record whose score no longer holds its ring.
    let strict = w.gate(&format!("rings: {{ring1: 990}}\n{REQUIRED}"));
    let d = strict.decide(&call("admin.reset", Some(&t1), json!({})));
    assert_eq!((d.verdict, d.identity.unwrap().ring), (Verdict::Deny, 2));
}

#[test]
fn the_sponsor_lands_on_the_decision_and_in_the_audit_record() {
    let w = World::new();
    let agent = w.active_agent();
    let gate = w.gate(REQUIRED).with_audit(w.store.clone());
    let t = token(&w.org, &agent, &["db.read"]);
    let d = gate.decide(&call("db.read", Some(&t), json!({})));
    assert_eq!(d.verdict, Verdict::Allow);
    let seq = d.seq.unwrap();
    let entry = w.store.entries(seq, 1).unwrap().remove(0).entry().unwrap();
    let Record::Decision(r) = entry.record else {
        panic!("expected a decision record, got {:?}", entry.record);
    };
    assert_eq!(r.sponsor.as_deref(), Some(SPONSOR));
    // The action named no agent: the record names the one the token proved.
    assert_eq!(r.agent, agent.did().as_str());
    assert_eq!(r.verdict, "allow");

    // A decision without a verified token has no sponsor.
    let d = gate.decide(&call("db.read", None, json!({})));
    let entry = w
        .store
        .entries(d.seq.unwrap(), 1)
        .unwrap()
        .remove(0)
        .entry()
        .unwrap();
    let Record::Decision(r) = entry.record else {
        panic!("expected a decision record");
    };
    assert_eq!(
        (r.sponsor, r.reason.as_str()),
        (None, reason::TOKEN_MISSING)
    );
}

#[test]
fn a_delegated_token_authorizes_only_its_narrower_tools() {
    let w = World::new();
    let gate = w.gate(REQUIRED);
    let parent = w.active_agent();
    let child = w.active_agent();
    let t = token(&w.org, &parent, &["db.*"]);
    let verified = gate
        .identity()
        .unwrap()
        .verifier()
        .verify(t.as_str(), SystemTime::now())
        .unwrap();
    let delegated = verified
        .attenuate(
            &parent,
            &Attenuation {
                delegate: child.did().clone(),
                tools: pats(&["db.read"]),
                ring_ceiling: None,
                ttl: Some(Duration::from_secs(600)),
            },
            SystemTime::now(),
            &mut rng(),
        )
        .unwrap();

    let d = gate.decide(&call("db.read", Some(&delegated), json!({})));
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    assert_eq!(d.agent.as_deref(), Some(child.did().as_str()));
    assert_eq!(d.sponsor.as_deref(), Some(SPONSOR));
    assert_eq!(d.identity.unwrap().depth, 1);
    // The parent may write; the delegate may not.
    assert_eq!(
        gate.decide(&call("db.write", Some(&t), json!({}))).verdict,
        Verdict::Allow
    );
    let d = gate.decide(&call("db.write", Some(&delegated), json!({})));
    assert_eq!(d.reason, reason::TOOL_NOT_GRANTED);
    // The parent cannot use the child's token.
    let mut as_parent = call("db.read", Some(&delegated), json!({}));
    as_parent.agent = Some(parent.did().to_string());
    assert_eq!(gate.decide(&as_parent).reason, reason::AGENT_MISMATCH);
}

#[test]
fn a_rule_can_require_identity_on_its_own() {
    let w = World::new();
    let gate = w.gate(
        "rules:\n  - id: reads\n    match: {tool: db.read}\n    verdict: allow\n  - id: writes\n    match: {tool: db.write}\n    identity: required\n    verdict: allow\n",
    );
    let agent = w.active_agent();
    let t = token(&w.org, &agent, &["db.*"]);
    assert_eq!(
        gate.decide(&call("db.read", None, json!({}))).verdict,
        Verdict::Allow
    );
    let d = gate.decide(&call("db.write", None, json!({})));
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Deny, reason::TOKEN_MISSING)
    );
    assert_eq!(d.rule.as_deref(), Some("writes"));
    assert_eq!(
        gate.decide(&call("db.write", Some(&t), json!({}))).verdict,
        Verdict::Allow
    );
    // A token presented where none is required is still checked in full.
    let stranger = IdentityKey::generate(&mut rng());
    let d = gate.decide(&call(
        "db.read",
        Some(&token(&stranger, &agent, &["db.*"])),
        json!({}),
    ));
    assert_eq!(d.reason, "identity:token_unknown_issuer");
}

#[test]
fn without_an_identity_context_a_policy_that_requires_identity_denies_everything() {
    let w = World::new();
    let agent = w.active_agent();
    let gate = Gate::new(policy(REQUIRED));
    let d = gate.decide(&call(
        "db.read",
        Some(&token(&w.org, &agent, &["db.*"])),
        json!({}),
    ));
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Deny, reason::IDENTITY_UNAVAILABLE)
    );
}

#[test]
fn the_policy_can_name_trusted_issuers() {
    let w = World::new();
    let agent = w.active_agent();
    let partner = IdentityKey::generate(&mut rng());
    let text = format!(
        "identity: {{required: true, issuers: [{}]}}\n{}",
        partner.did(),
        &REQUIRED["identity: required\n".len()..]
    );
    let gate = w.gate(&text);
    let d = gate.decide(&call(
        "db.read",
        Some(&token(&partner, &agent, &["db.*"])),
        json!({}),
    ));
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    assert_eq!(d.identity.unwrap().issuer, partner.did().as_str());
    // The caller's issuer is still trusted.
    assert_eq!(
        gate.decide(&call(
            "db.read",
            Some(&token(&w.org, &agent, &["db.*"])),
            json!({})
        ))
        .verdict,
        Verdict::Allow
    );
}

fn signed(action: &Action, key: &IdentityKey) -> Action {
    signed_at(action, key, SystemTime::now())
}

fn signed_at(action: &Action, key: &IdentityKey, at: SystemTime) -> Action {
    let request =
        SignedRequest::sign_with_rng(key, &action.hash_for_signing(), at, &mut rng()).unwrap();
    let mut a = action.clone();
    a.context
        .insert("signature".into(), serde_json::to_value(&request).unwrap());
    a
}

#[test]
fn signed_requests_are_verified_and_can_be_required() {
    let w = World::new();
    let gate = w.gate(&REQUIRED.replace(
        "identity: required",
        "identity: {required: true, signed_requests: required}",
    ));
    let agent = w.active_agent();
    let t = token(&w.org, &agent, &["db.*"]);
    let plain = call("db.read", Some(&t), json!({}));
    assert_eq!(gate.decide(&plain).reason, reason::SIGNATURE_MISSING);

    let ok = signed(&plain, &agent);
    // Explaining does not use up the nonce.
    let (explained, trace) = gate.explain(&ok);
    assert_eq!(explained.verdict, Verdict::Allow, "{explained:?}");
    assert!(explained.identity.as_ref().unwrap().signed);
    assert!(trace.is_some());
    let d = gate.decide(&ok);
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    assert!(d.identity.unwrap().signed);
    assert_eq!(gate.decide(&ok).reason, reason::SIGNATURE_REPLAYED);

    let stranger = IdentityKey::generate(&mut rng());
    assert_eq!(
        gate.decide(&signed(&plain, &stranger)).reason,
        reason::SIGNATURE_WRONG_SIGNER
    );

    // Signed for one action, presented with another.
    let mut moved = signed(&plain, &agent);
    moved.tool = Some("db.read_all".into());
    assert_eq!(
        gate.decide(&moved).reason,
        reason::SIGNATURE_ACTION_MISMATCH
    );

    // A signature passed as JSON text is read too.
    let mut as_text = signed(&plain, &agent);
    let text = as_text.context["signature"].to_string();
    as_text.context.insert("signature".into(), text.into());
    // The text form changes the action, not what was signed (the signature is left out).
    assert_eq!(gate.decide(&as_text).verdict, Verdict::Allow);

    let mut garbage = plain.clone();
    garbage
        .context
        .insert("signature".into(), json!({"did": 1}));
    assert_eq!(gate.decide(&garbage).reason, reason::SIGNATURE_MALFORMED);

    let mut no_token = signed(&plain, &agent);
    no_token.context.remove("token");
    assert_eq!(
        gate.decide(&no_token).reason,
        reason::SIGNATURE_WITHOUT_TOKEN
    );
}

#[test]
fn a_request_used_before_a_policy_reload_is_still_a_replay_after_it() {
    let w = World::new();
    let text = REQUIRED.replace(
        "identity: required",
        "identity: {required: true, signed_requests: required}",
    );
    let old = w.gate(&text);
    let agent = w.active_agent();
    let t = token(&w.org, &agent, &["db.*"]);
    let used = signed(&call("db.read", Some(&t), json!({})), &agent);
    assert_eq!(old.decide(&used).verdict, Verdict::Allow);

    // The reloaded policy's context shares the old one's nonces.
    let p = policy(&text);
    let ctx = w.context(&p).sharing_nonces_with(old.identity().unwrap());
    let reloaded = Gate::new(p).with_identity(Arc::new(ctx));
    assert_eq!(reloaded.decide(&used).reason, reason::SIGNATURE_REPLAYED);
    // A nonce first used after the reload is remembered by both.
    let fresh = signed(&call("db.read", Some(&t), json!({})), &agent);
    assert_eq!(reloaded.decide(&fresh).verdict, Verdict::Allow);
    assert_eq!(old.decide(&fresh).reason, reason::SIGNATURE_REPLAYED);

    // What the sharing prevents: a context of its own accepts the replay.
    let alone = w.gate(&text);
    assert_eq!(alone.decide(&used).verdict, Verdict::Allow);
}

/// The keys stored in the nonce space.
fn stored_nonces(store: &SqliteStore) -> Vec<String> {
    store
        .states(NONCE_SPACE)
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect()
}

const SIGNED_REQUIRED: &str = "identity: {required: true, signed_requests: required}";

/// A policy requiring signed requests, a gate over it recording to the
/// world's store, an active agent with a token for `db.*`, and one signed
/// `db.read` of that agent.
struct SignedRead {
    text: String,
    gate: Gate,
    agent: IdentityKey,
    token: Token,
    used: Action,
}

impl SignedRead {
    fn new(w: &World) -> SignedRead {
        let text = REQUIRED.replace("identity: required", SIGNED_REQUIRED);
        let gate = w.gate(&text).with_audit(w.store.clone());
        let agent = w.active_agent();
        let token = token(&w.org, &agent, &["db.*"]);
        let used = signed(&call("db.read", Some(&token), json!({})), &agent);
        SignedRead {
            text,
            gate,
            agent,
            token,
            used,
        }
    }
}

#[test]
fn a_request_accepted_before_a_restart_is_still_a_replay_after_it() {
    let w = World::new();
    let SignedRead {
        text,
        gate,
        agent,
        token: t,
        used,
    } = SignedRead::new(&w);
    // Explaining stores nothing.
    assert_eq!(gate.explain(&used).0.verdict, Verdict::Allow);
    assert_eq!(stored_nonces(&w.store), Vec::<String>::new());
    let d = gate.decide(&used);
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    // The nonce is stored by the decision's own audit entry.
    let nonces = w.store.states(NONCE_SPACE).unwrap();
    assert_eq!(nonces.len(), 1);
    assert_eq!(Some(nonces[0].audit_seq), d.seq);

    drop(gate);
    let w = w.reopen();
    let gate = Gate::new(policy(&text))
        .with_identity(Arc::new(w.context(&policy(&text))))
        .with_audit(w.store.clone());
    let d = gate.decide(&used);
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Deny, reason::SIGNATURE_REPLAYED),
        "{d:?}"
    );
    assert_eq!(gate.identity().unwrap().remembered_nonces(), 1);
    // A fresh nonce is accepted, and stored beside the first.
    let fresh = signed(&call("db.read", Some(&t), json!({})), &agent);
    assert_eq!(gate.decide(&fresh).verdict, Verdict::Allow);
    assert_eq!(stored_nonces(&w.store).len(), 2);
}

#[tokio::test]
async fn finish_async_stores_the_nonce_with_the_record_too() {
    let w = World::new();
    let SignedRead { gate, used, .. } = SignedRead::new(&w);
    let evaluated = gate.begin(&used);
    assert!(!gate.finishes_blocking(&evaluated));
    let d = gate.finish_async(&used, evaluated).await;
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    let nonces = w.store.states(NONCE_SPACE).unwrap();
    assert_eq!(nonces.len(), 1);
    assert_eq!(Some(nonces[0].audit_seq), d.seq);
}

/// Ten minutes ago: the nonces of requests signed then have expired.
fn ten_minutes_ago() -> SystemTime {
    SystemTime::now() - Duration::from_secs(600)
}

#[test]
fn expired_nonces_are_not_loaded_and_the_next_signed_decision_deletes_them() {
    let w = World::new();
    let text = REQUIRED.replace("identity: required", SIGNED_REQUIRED);
    let agent = w.active_agent();
    let t = token_at(&w.org, &agent, &["db.*"], Ring::R0, ten_minutes_ago());
    let then = w.recording_gate_at(&text, ten_minutes_ago);
    let old = signed_at(
        &call("db.read", Some(&t), json!({})),
        &agent,
        ten_minutes_ago(),
    );
    assert_eq!(then.decide(&old).verdict, Verdict::Allow);
    let old_key = stored_nonces(&w.store);
    assert_eq!(old_key.len(), 1);

    drop(then);
    let w = w.reopen();
    let ctx = w.context(&policy(&text));
    assert_eq!(ctx.remembered_nonces(), 0, "an expired nonce is not loaded");
    // Loading wrote nothing: the stale key is still there.
    assert_eq!(stored_nonces(&w.store), old_key);
    let now = Gate::new(policy(&text))
        .with_identity(Arc::new(ctx))
        .with_audit(w.store.clone());
    assert_eq!(now.decide(&old).reason, reason::SIGNATURE_SKEW);
    assert_eq!(stored_nonces(&w.store), old_key, "a refusal stores nothing");
    let fresh = signed(&call("db.read", Some(&t), json!({})), &agent);
    assert_eq!(now.decide(&fresh).verdict, Verdict::Allow);
    let keys = stored_nonces(&w.store);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_ne!(keys, old_key, "the expired nonce is deleted");
}

/// 400 s ago: 200 s after [`ten_minutes_ago`], so a signed decision then
/// deletes the nonces of requests signed ten minutes ago.
fn four_hundred_seconds_ago() -> SystemTime {
    SystemTime::now() - Duration::from_secs(400)
}

/// 10 s after [`ten_minutes_ago`]: a clock set back to when a request
/// signed ten minutes ago was still inside the skew window.
fn five_hundred_ninety_seconds_ago() -> SystemTime {
    SystemTime::now() - Duration::from_secs(590)
}

#[test]
fn a_clock_set_back_across_a_restart_does_not_readmit_a_deleted_nonce() {
    let w = World::new();
    let text = REQUIRED.replace("identity: required", SIGNED_REQUIRED);
    let agent = w.active_agent();
    let t = token_at(&w.org, &agent, &["db.*"], Ring::R0, ten_minutes_ago());
    let first = signed_at(
        &call("db.read", Some(&t), json!({})),
        &agent,
        ten_minutes_ago(),
    );
    assert_eq!(
        w.recording_gate_at(&text, ten_minutes_ago)
            .decide(&first)
            .verdict,
        Verdict::Allow
    );
    // 200 s later the next signed decision deletes the first one's nonce.
    let later = signed_at(
        &call("db.read", Some(&t), json!({})),
        &agent,
        four_hundred_seconds_ago(),
    );
    let d = w
        .recording_gate_at(&text, four_hundred_seconds_ago)
        .decide(&later);
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    assert_eq!(
        stored_nonces(&w.store).len(),
        1,
        "the first nonce is deleted"
    );

    // Restarted with the clock set back to 10 s after the first request:
    // the skew check alone would let its replay in.
    let w = w.reopen();
    let d = w
        .recording_gate_at(&text, five_hundred_ninety_seconds_ago)
        .decide(&first);
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Deny, reason::SIGNATURE_SKEW),
        "{d:?}"
    );
    assert!(d.message.contains("clock went back"), "{}", d.message);
    // Once the clock is right again, new requests are accepted.
    let fresh = signed(&call("db.read", Some(&t), json!({})), &agent);
    assert_eq!(
        w.recording_gate_at(&text, SystemTime::now)
            .decide(&fresh)
            .verdict,
        Verdict::Allow
    );
}

#[test]
fn a_context_refuses_to_start_over_an_unreadable_nonce_floor() {
    let w = World::new();
    w.store_key(NONCE_FLOOR_SPACE, "yesterday");
    let err = IdentityContext::new(&policy(REQUIRED), w.store.clone(), [w.org.did().clone()])
        .unwrap_err();
    assert!(
        matches!(err, IdentityError::NonceFloorKey { ref key } if key == "yesterday"),
        "{err}"
    );
    assert_eq!(err.code(), "store_malformed");
}

#[test]
fn a_context_refuses_to_start_over_an_unreadable_nonce() {
    let w = World::new();
    w.store_bad_nonce_key();
    let err = IdentityContext::new(&policy(REQUIRED), w.store.clone(), [w.org.did().clone()])
        .unwrap_err();
    assert!(
        matches!(err, IdentityError::NonceKey { ref key } if key == "not a nonce"),
        "{err}"
    );
}

/// A reload's context takes the running context's nonces (those stored
/// and those accepted since) instead of reading the store's again: it is
/// built over a nonce the store cannot give back, and knows the ones its
/// predecessor accepted.
#[test]
fn a_replacing_context_shares_its_predecessors_nonces_without_reading_them_again() {
    let w = World::new();
    let SignedRead {
        text, gate, used, ..
    } = SignedRead::new(&w);
    assert_eq!(gate.decide(&used).verdict, Verdict::Allow);
    w.store_bad_nonce_key();
    let issuers = || [w.org.did().clone()];
    assert!(IdentityContext::new(&policy(&text), w.store.clone(), issuers()).is_err());
    let previous = gate.identity().unwrap();
    let ctx =
        IdentityContext::replacing(&policy(&text), w.store.clone(), issuers(), previous).unwrap();
    assert_eq!(ctx.remembered_nonces(), 1);
    let reloaded = Gate::new(policy(&text))
        .with_identity(Arc::new(ctx))
        .with_audit(w.store.clone());
    let d = reloaded.decide(&used);
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Deny, reason::SIGNATURE_REPLAYED),
        "{d:?}"
    );
}

#[test]
fn explain_shows_the_identity_and_records_nothing() {
    let w = World::new();
    let ring1 = IdentityKey::generate(&mut rng());
    w.put_agent(&ring1, Status::Active, 950, Ring::R1, true);
    let gate = w.gate(REQUIRED).with_audit(w.store.clone());
    let size = w.store.log_size().unwrap();
    let t = token(&w.org, &ring1, &["admin.*"]);
    let (d, trace) = gate.explain(&call("admin.reset", Some(&t), json!({})));
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(d.agent.as_deref(), Some(ring1.did().as_str()));
    assert_eq!(d.identity.as_ref().unwrap().ring, 1);
    // The trace saw ring 1, so the admin rule matched there.
    let trace = trace.unwrap();
    let admin = trace
        .traces
        .iter()
        .find(|t| &*t.rule.id == "admin")
        .unwrap();
    assert!(
        matches!(admin.outcome, warden_policy::Outcome::Matched),
        "{admin:?}"
    );
    let (d, _) = gate.explain(&call("admin.reset", None, json!({})));
    assert_eq!(d.reason, reason::TOKEN_MISSING);
    assert_eq!(w.store.log_size().unwrap(), size);
}

/// The events `warden` recorded about `did`, as (action, details).
fn trust_events(store: &SqliteStore, did: &str) -> Vec<(String, Value)> {
    store
        .entries(0, 1000)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.entry().unwrap().record {
            Record::Event(ev) if ev.actor == "warden" && ev.subject == did => {
                Some((ev.action, serde_json::from_str(&ev.details).unwrap()))
            }
            _ => None,
        })
        .collect()
}

fn stored_agent(store: &SqliteStore, did: &str) -> Agent {
    serde_json::from_str(&store.agent(did).unwrap().unwrap().record).unwrap()
}

#[test]
fn a_rule_denial_costs_trust_and_can_demote_at_once() {
    let w = World::new();
    let key = IdentityKey::generate(&mut rng());
    w.put_agent(&key, Status::Active, 610, Ring::R2, false);
    let gate = w.gate(REQUIRED).with_audit(w.store.clone());
    let t = token(&w.org, &key, &["db.*"]);
    let d = gate.decide(&call("db.drop", Some(&t), json!({})));
    assert_eq!(
        (d.verdict, d.rule.as_deref()),
        (Verdict::Deny, Some("no-drop")),
        "{d:?}"
    );
    let did = key.did().as_str();
    let after = stored_agent(&w.store, did);
    assert!(after.trust_score() < 610, "{}", after.trust_score());
    let events = trust_events(&w.store, did);
    assert_eq!(events.len(), 1, "{events:?}");
    let (action, details) = &events[0];
    assert_eq!(action, "trust.violation");
    assert_eq!(details["decision_seq"], d.seq.unwrap());
    assert_eq!(details["score_from"], 610);
    if after.trust_score() < 600 {
        assert_eq!(
            (details["ring_from"].clone(), details["ring_to"].clone()),
            (json!(2), json!(3))
        );
        assert_eq!(after.ring(), Ring::R3);
    }
    // The next decision runs at the ring the record now holds.
    let d = gate.decide(&call("db.read", Some(&t), json!({})));
    assert_eq!(d.identity.unwrap().ring, after.ring().get());

    // Refusals that are not a rule's (a missing token) cost nothing.
    let before = stored_agent(&w.store, did).trust_score();
    let d = gate.decide(&call("db.drop", None, json!({"agent": did})));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(stored_agent(&w.store, did).trust_score(), before);
}

/// The runtime clock of `a_full_approval_queue_or_an_unanswered_approval_costs_no_trust`, in ms.
static APPROVAL_CLOCK_MS: AtomicU64 = AtomicU64::new(0);

/// A full approval queue denies, and so does an approval nobody answered
/// in time, but the agent is not to blame (another may have filled the
/// queue): those denials cost no trust.
#[test]
fn a_full_approval_queue_or_an_unanswered_approval_costs_no_trust() {
    fn clock() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(APPROVAL_CLOCK_MS.load(Ordering::SeqCst))
    }
    APPROVAL_CLOCK_MS.store(unix_now() * 1000, Ordering::SeqCst);
    let w = World::new();
    let key = IdentityKey::generate(&mut rng());
    w.put_agent(&key, Status::Active, 610, Ring::R2, false);
    let runtime = Arc::new(
        warden_gate::Runtime::open(
            w.store.clone(),
            warden_gate::RuntimeConfig {
                max_approvals: 1,
                ..warden_gate::RuntimeConfig::default()
            },
        )
        .unwrap()
        .with_clock(clock),
    );
    let gate = w
        .gate("identity: required\nrules:\n  - id: ask\n    match: {tool: db.write}\n    verdict: require_approval\n")
        .with_audit(w.store.clone())
        .with_runtime(runtime);
    let t = token(&w.org, &key, &["db.*"]);
    let write = |n: u64| call("db.write", Some(&t), json!({"n": n}));
    let first = gate.decide(&write(1));
    assert_eq!(first.verdict, Verdict::RequireApproval, "{first:?}");
    let full = gate.decide(&write(2));
    assert_eq!(
        (full.verdict, full.reason.as_str()),
        (Verdict::Deny, reason::APPROVAL_QUEUE_FULL),
        "{full:?}"
    );
    // Nobody answers the first: past its time-to-live it is denied.
    APPROVAL_CLOCK_MS.fetch_add(16 * 60 * 1000, Ordering::SeqCst);
    let expired = gate.decide(&write(1));
    assert_eq!(
        (expired.verdict, expired.reason.as_str()),
        (Verdict::Deny, reason::APPROVAL_EXPIRED),
        "{expired:?}"
    );
    let did = key.did().as_str();
    assert_eq!(stored_agent(&w.store, did).trust_score(), 610);
    assert!(trust_events(&w.store, did).is_empty());
}

#[test]
fn decay_below_a_threshold_demotes_at_the_next_decision_and_is_recorded() {
    let w = World::new();
    let key = IdentityKey::generate(&mut rng());
    // 605 points, last decayed ten hours ago: 20 points are owed, so 585 < 600.
    let agent = Agent::restore(
        key.did().clone(),
        "worker",
        Sponsor::parse(SPONSOR).unwrap(),
        1_700_000_000,
        Status::Active,
        TrustState::restore(605, Ring::R2, false, unix_now() - 10 * 3600),
    )
    .unwrap();
    w.store_agent(&agent);
    let gate = w.gate(REQUIRED);
    let t = token(&w.org, &key, &["db.*"]);

    // Explaining sees the lower ring but records nothing.
    let e = gate.explain(&call("db.read", Some(&t), json!({})));
    assert_eq!(e.0.identity.as_ref().unwrap().ring, 3);
    assert!(trust_events(&w.store, key.did().as_str()).is_empty());

    let d = gate.decide(&call("db.read", Some(&t), json!({})));
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    assert_eq!(d.identity.unwrap().ring, 3);
    let events = trust_events(&w.store, key.did().as_str());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "trust.demoted");
    assert_eq!(events[0].1["ring_to"], 3);
    let after = stored_agent(&w.store, key.did().as_str());
    assert_eq!((after.ring(), after.trust_score()), (Ring::R3, 585));
}

#[test]
fn concurrent_violations_and_a_suspension_lose_no_update() {
    let w = World::new();
    let key = IdentityKey::generate(&mut rng());
    w.put_agent(&key, Status::Active, 900, Ring::R2, false);
    let gate = Arc::new(w.gate(REQUIRED).with_audit(w.store.clone()));
    let t = token(&w.org, &key, &["db.*"]);
    let did = key.did().clone();
    let mut threads = Vec::new();
    let done = Arc::new(AtomicU64::new(0));
    for _ in 0..8 {
        let (gate, t, done) = (gate.clone(), t.clone(), done.clone());
        threads.push(std::thread::spawn(move || {
            for _ in 0..4 {
                let d = gate.decide(&call("db.drop", Some(&t), json!({})));
                // Denied by the rule, or refused once the suspension landed.
                assert!(
                    d.rule.as_deref() == Some("no-drop") || d.reason == reason::AGENT_SUSPENDED,
                    "{d:?}"
                );
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let store = w.store.clone();
    let suspend = std::thread::spawn(move || {
        // In the middle of the violations.
        while done.load(Ordering::SeqCst) < 8 {
            std::thread::yield_now();
        }
        warden_gate::agents::Agents::new(store.as_ref(), "test")
            .transition(
                &did,
                warden_gate::agents::Transition::Suspend,
                "race",
                SystemTime::now(),
            )
            .unwrap();
    });
    for t in threads {
        t.join().unwrap();
    }
    suspend.join().unwrap();
    let after = stored_agent(&w.store, key.did().as_str());
    assert_eq!(
        after.status(),
        Status::Suspended,
        "a trust change must not undo the suspension"
    );
    // Every violation that was recorded moved the score it says it moved:
    // each event starts where the previous one ended.
    let events = trust_events(&w.store, key.did().as_str());
    let violations: Vec<&Value> = events
        .iter()
        .filter(|(a, _)| a == "trust.violation")
        .map(|(_, d)| d)
        .collect();
    assert!(!violations.is_empty());
    for pair in violations.windows(2) {
        assert_eq!(pair[0]["score_to"], pair[1]["score_from"], "{violations:?}");
    }
    assert_eq!(violations.last().unwrap()["score_to"], after.trust_score());
}
