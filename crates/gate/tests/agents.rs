//! Agent records and their lifecycle through `warden_gate::agents`, with a
//! real SQLite store: what each move stores, what it refuses, and what a
//! decommission revokes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};
use tempfile::TempDir;
use warden_audit::{EventRecord, Record};
use warden_gate::agents::{Agents, AgentsError, Transition};
use warden_identity::{
    Agent, Attenuation, Did, Grant, IdentityKey, RevocationId, Ring, Sponsor, Status, Token,
    TokenVerifier, ToolPattern, issue, revocation_ids,
};
use warden_store::{SqliteStore, StateChange, Store, StoreConfig, entries_from};

const ACTOR: &str = "api:admin";
const SPONSOR: &str = "alice@example.com";

/// A fixed "now", so trust and expiry do not depend on the test machine's clock.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A fresh RNG per call, so no two keys or tokens share randomness.
fn rng() -> StdRng {
    static SEED: AtomicU64 = AtomicU64::new(1);
    StdRng::seed_from_u64(SEED.fetch_add(1, Ordering::Relaxed))
}

struct World {
    _dir: TempDir,
    store: SqliteStore,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), StoreConfig::default()).unwrap();
        World { _dir: dir, store }
    }

    fn agents(&self) -> Agents<'_> {
        Agents::new(&self.store, ACTOR)
    }

    /// Registers a new agent named `name` and returns its key.
    fn create(&self, name: &str, provisioned: bool) -> IdentityKey {
        let key = IdentityKey::generate(&mut rng());
        self.agents()
            .create(
                key.did().clone(),
                name,
                sponsor(),
                provisioned,
                now(),
                Map::new(),
            )
            .unwrap();
        key
    }

    /// An agent brought to `status` along the lifecycle.
    fn agent_in(&self, status: Status) -> Did {
        let did = self.create("worker", true).did().clone();
        let moves: &[Transition] = match status {
            Status::Provisioned => &[],
            Status::Active => &[Transition::Activate],
            Status::Suspended => &[Transition::Activate, Transition::Suspend],
            Status::Decommissioned => &[Transition::Decommission],
        };
        for &op in moves {
            self.agents().transition(&did, op, "", now()).unwrap();
        }
        did
    }

    fn status(&self, did: &Did) -> Status {
        self.agents().get(did).unwrap().unwrap().status()
    }

    fn log_size(&self) -> u64 {
        self.store.log_size().unwrap()
    }

    /// Every event in the log, in order.
    fn events(&self) -> Vec<EventRecord> {
        entries_from(&self.store, 0)
            .filter_map(|stored| match stored.unwrap().entry().unwrap().record {
                Record::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// The events with this action, their details parsed.
    fn events_of(&self, action: &str) -> Vec<(EventRecord, Value)> {
        self.events()
            .into_iter()
            .filter(|e| e.action == action)
            .map(|e| {
                let details = serde_json::from_str(&e.details).unwrap();
                (e, details)
            })
            .collect()
    }

    /// Records a token as `warden token issue` does: a `token.issued` event
    /// on the agent, naming the agent link's revocation id.
    fn record_issued(&self, agent: &Did, token: &Token, org: &IdentityKey) {
        let verified = verifier(org, Vec::new())
            .verify_uncached(token.as_str(), now())
            .unwrap();
        let link = &verified.links()[0];
        let details = json!({
            "tools": link.rights.tools,
            "ring_ceiling": link.rights.ring_ceiling.get(),
            "expires_unix": link.rights.expires_unix,
            "issuer": org.did(),
            "sponsor": verified.sponsor(),
            "token_hash": token.hash(),
            "revocation_ids": [link.revocation_id],
        });
        self.append("token.issued", agent.as_str(), &details, None);
    }

    /// Records a delegation as `warden token attenuate` does: a
    /// `token.attenuated` event on the delegate, naming the last link's id.
    fn record_attenuated(&self, delegate: &Did, token: &Token, org: &IdentityKey) {
        let verified = verifier(org, Vec::new())
            .verify_uncached(token.as_str(), now())
            .unwrap();
        let link = verified.links().last().unwrap();
        let details = json!({
            "from": verified.links()[0].did,
            "issuer": org.did(),
            "sponsor": verified.sponsor(),
            "depth": verified.depth(),
            "token_hash": token.hash(),
            "revocation_id": link.revocation_id,
        });
        self.append("token.attenuated", delegate.as_str(), &details, None);
    }

    fn append(&self, action: &str, subject: &str, details: &Value, change: Option<StateChange>) {
        let record = Record::Event(EventRecord {
            time_unix_nanos: 1,
            actor: "cli:tester".into(),
            action: action.into(),
            subject: subject.into(),
            details: details.to_string(),
        });
        match change {
            Some(change) => self.store.append_with(record, change),
            None => self.store.append(record),
        }
        .unwrap();
    }
}

fn sponsor() -> Sponsor {
    Sponsor::parse(SPONSOR).unwrap()
}

/// Trusts `org`, with `revoked` revoked.
fn verifier(org: &IdentityKey, revoked: Vec<RevocationId>) -> TokenVerifier {
    TokenVerifier::new([org.did().clone()])
        .unwrap()
        .with_revoked(revoked)
}

fn grant(agent: &Did) -> Grant {
    Grant {
        agent: agent.clone(),
        sponsor: sponsor(),
        tools: vec![ToolPattern::parse("db.*").unwrap()],
        ring_ceiling: Ring::R3,
        ttl: Duration::from_secs(3600),
    }
}

#[test]
fn create_registers_an_active_agent_with_a_created_and_a_status_event() {
    let w = World::new();
    let key = IdentityKey::generate(&mut rng());
    let mut extra = Map::new();
    extra.insert("key".into(), json!("generated"));
    let agent = w
        .agents()
        .create(
            key.did().clone(),
            "reporter",
            sponsor(),
            false,
            now(),
            extra,
        )
        .unwrap();
    assert_eq!(agent.status(), Status::Active);
    assert_eq!(agent.name(), "reporter");
    assert_eq!(agent.ring(), Ring::R3);
    assert_eq!(agent.trust_score(), 500);
    assert_eq!(w.agents().get(key.did()).unwrap(), Some(agent.clone()));
    assert_eq!(w.agents().list().unwrap(), vec![agent]);

    let events = w.events();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.actor, ACTOR);
        assert_eq!(e.subject, key.did().as_str());
        assert_eq!(e.time_unix_nanos, 1_800_000_000 * 1_000_000_000);
    }
    let (_, created) = &w.events_of("agent.created")[0];
    assert_eq!(
        *created,
        json!({
            "name": "reporter",
            "sponsor": SPONSOR,
            "status": "provisioned",
            "ring": 3,
            "trust": 500,
            "key": "generated",
        })
    );
    let (_, status) = &w.events_of("agent.status")[0];
    assert_eq!(
        *status,
        json!({"from": "provisioned", "to": "active", "reason": "created"})
    );
}

#[test]
fn create_provisioned_stores_one_event_and_leaves_the_agent_provisioned() {
    let w = World::new();
    let key = w.create("p", true);
    assert_eq!(w.status(key.did()), Status::Provisioned);
    assert_eq!(w.events().len(), 1);
    assert!(w.events_of("agent.status").is_empty());
}

#[test]
fn create_refuses_a_did_that_is_registered_and_writes_nothing() {
    let w = World::new();
    let key = w.create("first", false);
    let size = w.log_size();
    let err = w
        .agents()
        .create(
            key.did().clone(),
            "second",
            sponsor(),
            true,
            now(),
            Map::new(),
        )
        .unwrap_err();
    assert_eq!(err.code(), "agent_exists");
    assert!(
        matches!(&err, AgentsError::Exists { name, status: Status::Active, .. } if name == "first"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("exists already") && message.contains(key.did().as_str()),
        "{message}"
    );
    assert_eq!(w.log_size(), size);
    assert_eq!(w.agents().get(key.did()).unwrap().unwrap().name(), "first");
}

#[test]
fn create_refuses_a_bad_name_and_writes_nothing() {
    let w = World::new();
    for bad in ["", " padded", "a\u{202e}b", &"x".repeat(129)] {
        let key = IdentityKey::generate(&mut rng());
        let err = w
            .agents()
            .create(key.did().clone(), bad, sponsor(), false, now(), Map::new())
            .unwrap_err();
        assert_eq!(err.code(), "invalid_name", "{bad:?}: {err}");
    }
    assert_eq!(w.log_size(), 0);
}

#[test]
fn every_move_along_the_lifecycle_is_stored_with_its_event() {
    let w = World::new();
    let did = w.create("worker", true).did().clone();
    let moves = [
        (Transition::Activate, Status::Provisioned, Status::Active),
        (Transition::Suspend, Status::Active, Status::Suspended),
        (Transition::Resume, Status::Suspended, Status::Active),
        (
            Transition::Decommission,
            Status::Active,
            Status::Decommissioned,
        ),
    ];
    for (op, from, to) in moves {
        let why = format!("  because {op}  ");
        let moved = w.agents().transition(&did, op, &why, now()).unwrap();
        assert_eq!((moved.from, moved.to), (from, to), "{op}");
        assert_eq!(moved.agent.status(), to);
        assert!(moved.revoked.is_empty());
        assert_eq!(w.status(&did), to, "{op}");
    }
    let recorded: Vec<Value> = w
        .events_of("agent.status")
        .into_iter()
        .map(|(e, details)| {
            assert_eq!(e.actor, ACTOR);
            assert_eq!(e.subject, did.as_str());
            details
        })
        .collect();
    let mut want: Vec<Value> = moves
        .iter()
        .map(|(op, from, to)| json!({"from": from, "to": to, "reason": format!("because {op}")}))
        .collect();
    // The decommission also lists what it revoked: nothing here.
    want[3]["credentials_revoked"] = json!([]);
    assert_eq!(recorded, want);
}

#[test]
fn moves_the_lifecycle_forbids_are_refused_and_write_nothing() {
    use Status::*;
    use Transition::*;
    // Every (status, move) pair that is not an edge of the lifecycle.
    let refused = [
        (Provisioned, Suspend),
        (Provisioned, Resume),
        (Active, Activate),
        (Active, Resume),
        (Suspended, Activate),
        (Suspended, Suspend),
        (Decommissioned, Activate),
        (Decommissioned, Suspend),
        (Decommissioned, Resume),
        (Decommissioned, Decommission),
    ];
    let w = World::new();
    for (status, op) in refused {
        let did = w.agent_in(status);
        let size = w.log_size();
        let err = w.agents().transition(&did, op, "", now()).unwrap_err();
        assert_eq!(err.code(), "invalid_transition", "{status} {op}: {err}");
        assert!(
            err.to_string().contains(status.as_str()),
            "{status} {op}: {err}"
        );
        assert_eq!(w.log_size(), size, "{status} {op}");
        assert_eq!(w.status(&did), status, "{status} {op}");
    }
}

#[test]
fn activate_and_resume_each_start_from_one_status_and_say_which_move_fits() {
    let w = World::new();
    let suspended = w.agent_in(Status::Suspended);
    let err = w
        .agents()
        .transition(&suspended, Transition::Activate, "", now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            AgentsError::WrongStatus {
                from: Status::Suspended,
                expected: Status::Provisioned,
                to: Status::Active,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("resume"), "{err}");

    let provisioned = w.agent_in(Status::Provisioned);
    let err = w
        .agents()
        .transition(&provisioned, Transition::Resume, "", now())
        .unwrap_err();
    assert!(err.to_string().contains("activate"), "{err}");

    // Suspending a suspended agent is the lifecycle's refusal, not a wrong start.
    let err = w
        .agents()
        .transition(&suspended, Transition::Suspend, "", now())
        .unwrap_err();
    assert!(matches!(err, AgentsError::Lifecycle(_)), "{err:?}");
    assert!(
        err.to_string().contains("from suspended to suspended"),
        "{err}"
    );
}

#[test]
fn an_unknown_agent_is_not_found() {
    let w = World::new();
    let did = IdentityKey::generate(&mut rng()).did().clone();
    assert_eq!(w.agents().get(&did).unwrap(), None);
    let err = w
        .agents()
        .transition(&did, Transition::Suspend, "", now())
        .unwrap_err();
    assert_eq!(err.code(), "agent_not_found");
    assert!(err.to_string().contains(did.as_str()), "{err}");
    assert_eq!(w.log_size(), 0);
}

#[test]
fn a_reason_with_invisible_characters_is_refused_before_the_agent_is_read() {
    let w = World::new();
    let did = w.agent_in(Status::Active);
    let size = w.log_size();
    for bad in ["a\u{202e}b".to_string(), "x".repeat(1025)] {
        let err = w
            .agents()
            .transition(&did, Transition::Suspend, &bad, now())
            .unwrap_err();
        assert_eq!(err.code(), "invalid_reason", "{err}");
    }
    // Unknown agent, bad reason: the reason is what is wrong first.
    let stranger = IdentityKey::generate(&mut rng()).did().clone();
    let err = w
        .agents()
        .transition(&stranger, Transition::Suspend, "a\nb", now())
        .unwrap_err();
    assert_eq!(err.code(), "invalid_reason", "{err}");
    assert_eq!(w.log_size(), size);
    assert_eq!(w.status(&did), Status::Active);
}

#[test]
fn decommission_revokes_the_tokens_the_log_records_as_issued_or_delegated_to_the_agent() {
    let w = World::new();
    let org = IdentityKey::generate(&mut rng());
    let lead = w.create("lead", false);
    let helper = w.create("helper", false);
    let other = w.create("other", false);

    // The lead's own token, and one it delegates to the helper.
    let lead_token = issue(&org, &grant(lead.did()), now(), &mut rng()).unwrap();
    w.record_issued(lead.did(), &lead_token, &org);
    let delegated = verifier(&org, Vec::new())
        .verify_uncached(lead_token.as_str(), now())
        .unwrap()
        .attenuate(
            &lead,
            &Attenuation {
                delegate: helper.did().clone(),
                tools: vec![ToolPattern::parse("db.query").unwrap()],
                ring_ceiling: None,
                ttl: None,
            },
            now(),
            &mut rng(),
        )
        .unwrap();
    w.record_attenuated(helper.did(), &delegated, &org);
    // The helper's own token, recorded twice, and one revoked already.
    let helpers_own = issue(&org, &grant(helper.did()), now(), &mut rng()).unwrap();
    w.record_issued(helper.did(), &helpers_own, &org);
    w.record_issued(helper.did(), &helpers_own, &org);
    let revoked_before = issue(&org, &grant(helper.did()), now(), &mut rng()).unwrap();
    w.record_issued(helper.did(), &revoked_before, &org);
    let old_id = revocation_ids(revoked_before.as_str()).unwrap()[0].clone();
    w.append(
        "token.revoked",
        old_id.as_str(),
        &json!({}),
        Some(StateChange::Revoke {
            id: old_id.to_string(),
            reason: "leaked".into(),
        }),
    );
    // Someone else's token.
    let others = issue(&org, &grant(other.did()), now(), &mut rng()).unwrap();
    w.record_issued(other.did(), &others, &org);

    let moved = w
        .agents()
        .transition(helper.did(), Transition::Decommission, "retired", now())
        .unwrap();
    let delegation_id = revocation_ids(delegated.as_str()).unwrap().pop().unwrap();
    let own_id = revocation_ids(helpers_own.as_str()).unwrap()[0].clone();
    assert_eq!(moved.revoked, vec![delegation_id.clone(), own_id.clone()]);
    assert_eq!(moved.to, Status::Decommissioned);

    // The store now refuses exactly those tokens.
    let check = verifier(&org, w.agents().revoked().unwrap());
    for t in [&delegated, &helpers_own, &revoked_before] {
        let err = check.verify_uncached(t.as_str(), now()).unwrap_err();
        assert_eq!(err.code(), "token_revoked");
    }
    for t in [&lead_token, &others] {
        check.verify_uncached(t.as_str(), now()).unwrap();
    }

    // One token.revoked event each, by the actor, then the status event listing them.
    let revocations: Vec<(String, Value)> = w
        .events_of("token.revoked")
        .into_iter()
        .filter(|(e, _)| e.actor == ACTOR)
        .map(|(e, d)| (e.subject, d))
        .collect();
    let why = json!({"agent": helper.did(), "reason": "agent decommissioned: retired"});
    assert_eq!(
        revocations,
        vec![
            (delegation_id.to_string(), why.clone()),
            (own_id.to_string(), why)
        ]
    );
    let (last, details) = w.events_of("agent.status").pop().unwrap();
    assert_eq!(last.subject, helper.did().as_str());
    assert_eq!(last.actor, ACTOR);
    assert_eq!(
        details,
        json!({
            "from": "active",
            "to": "decommissioned",
            "reason": "retired",
            "credentials_revoked": [delegation_id, own_id],
        })
    );
    let verify = warden_store::verify(&w.store, &w.store.verifier(), None).unwrap();
    assert!(verify.problem.is_none(), "{:?}", verify.problem);
}

#[test]
fn decommission_without_a_reason_says_only_that_the_agent_was_decommissioned() {
    let w = World::new();
    let org = IdentityKey::generate(&mut rng());
    let key = w.create("worker", false);
    let token = issue(&org, &grant(key.did()), now(), &mut rng()).unwrap();
    w.record_issued(key.did(), &token, &org);
    let moved = w
        .agents()
        .transition(key.did(), Transition::Decommission, "", now())
        .unwrap();
    assert_eq!(moved.revoked.len(), 1);
    let (_, details) = w.events_of("token.revoked").pop().unwrap();
    assert_eq!(details["reason"], "agent decommissioned");
    assert_eq!(
        w.store.revocations().unwrap()[0].reason,
        "agent decommissioned"
    );
}

#[test]
fn summary_shows_trust_decayed_to_now_and_changes_nothing() {
    let w = World::new();
    let key = w.create("reporter", false);
    let agent = w.agents().get(key.did()).unwrap().unwrap();
    let later = now() + Duration::from_secs(10 * 3600);
    let summary = Agents::summary(&agent, later);
    assert_eq!(
        summary,
        json!({
            "did": key.did(),
            "name": "reporter",
            "sponsor": SPONSOR,
            "status": "active",
            "ring": 3,
            "trust": 480,
            "created": "2027-01-15T08:00:00Z",
        })
    );
    assert_eq!(
        w.agents().get(key.did()).unwrap().unwrap().trust_score(),
        500
    );
}

#[test]
fn stored_records_that_do_not_read_back_are_reported() {
    let w = World::new();
    let key = IdentityKey::generate(&mut rng());
    let put = |did: &Did, record: String| {
        w.append(
            "agent.created",
            did.as_str(),
            &json!({}),
            Some(StateChange::PutAgent {
                did: did.to_string(),
                record,
            }),
        )
    };
    put(key.did(), "{not json".into());
    let err = w.agents().get(key.did()).unwrap_err();
    assert_eq!(err.code(), "store_malformed");
    assert!(err.to_string().contains("audit verify"), "{err}");
    assert_eq!(w.agents().list().unwrap_err().code(), "store_malformed");

    // A valid record stored under another agent's DID.
    let other = IdentityKey::generate(&mut rng());
    let agent = Agent::new(
        other.did().clone(),
        "x",
        sponsor(),
        now(),
        &Default::default(),
    )
    .unwrap();
    let third = IdentityKey::generate(&mut rng());
    put(third.did(), serde_json::to_string(&agent).unwrap());
    let err = w.agents().get(third.did()).unwrap_err();
    assert!(err.to_string().contains("names another DID"), "{err}");
}

#[test]
fn a_store_that_cannot_record_fails_the_change_with_the_event_named() {
    let w = World::new();
    let did = w.agent_in(Status::Active);
    w.store.close().unwrap();
    let err = w
        .agents()
        .transition(&did, Transition::Suspend, "", now())
        .unwrap_err();
    assert_eq!(err.code(), "store_unavailable");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot record agent.status for {did}: ")),
        "{err}"
    );
}
