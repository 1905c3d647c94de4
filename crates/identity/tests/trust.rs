//! Trust through the public API: invariants over arbitrary event sequences.

use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use warden_identity::{
    Agent, IdentityKey, Ring, Severity, Sponsor, Status, TrustConfig, TrustEvent, TrustState,
};

const T0: u64 = 1_800_000_000;

fn event() -> impl Strategy<Value = TrustEvent> {
    prop_oneof![
        prop_oneof![
            Just(Severity::Low),
            Just(Severity::Medium),
            Just(Severity::High),
            Just(Severity::Critical)
        ]
        .prop_map(|severity| TrustEvent::PolicyViolation { severity }),
        Just(TrustEvent::ApprovalDenied),
        Just(TrustEvent::SuccessfulOutcome),
        Just(TrustEvent::HumanEndorsement),
        Just(TrustEvent::Ring1Approval),
    ]
}

proptest! {
    #[test]
    fn score_stays_in_range_and_ring_follows_it(events in proptest::collection::vec((event(), 0u64..20_000), 0..60)) {
        let config = TrustConfig::default();
        let mut state = TrustState::new(&config, UNIX_EPOCH + Duration::from_secs(T0));
        let mut now = T0;
        for (event, gap) in events {
            now += gap;
            let update = state.apply(event, UNIX_EPOCH + Duration::from_secs(now), &config);
            let s = &update.state;
            prop_assert!(s.score() <= 1000);
            prop_assert_ne!(s.ring(), Ring::R0, "ring 0 is never automatic");
            prop_assert_eq!(s.ring(), config.rings.eligible_ring(s.score(), s.ring1_approved()));
            if s.ring() == Ring::R1 {
                prop_assert!(s.score() >= 900 && s.ring1_approved());
            }
            if s.ring() == Ring::R2 {
                prop_assert!(s.score() >= 600);
            }
            // A change is reported exactly when the ring moved.
            prop_assert_eq!(update.ring_change.is_some(), s.ring() != state.ring());
            if let TrustEvent::PolicyViolation { .. } | TrustEvent::ApprovalDenied = event {
                prop_assert!(s.score() <= state.score());
            }
            state = update.state;
        }
    }

    #[test]
    fn decay_alone_never_raises_and_stops_at_the_floor(score in 0u16..=1000, hours in 0u64..2000) {
        let config = TrustConfig::default();
        let state = TrustState::restore(score, Ring::R3, false, T0);
        let later = state.decay(UNIX_EPOCH + Duration::from_secs(T0 + hours * 3600), &config).state;
        prop_assert!(later.score() <= score);
        if score >= config.floor {
            prop_assert_eq!(later.score(), score.saturating_sub((2 * hours).min(u64::from(score)) as u16).max(config.floor));
        } else {
            prop_assert_eq!(later.score(), score);
        }
    }
}

#[test]
fn agent_record_round_trips_through_json_and_enforces_its_lifecycle() {
    let config = TrustConfig::default();
    let key = IdentityKey::from_seed(&[3; 32]);
    let mut agent = Agent::new(
        key.did().clone(),
        "db-agent",
        Sponsor::parse("alice@example.com").unwrap(),
        UNIX_EPOCH + Duration::from_secs(T0),
        &config,
    )
    .unwrap();
    assert_eq!(agent.status(), Status::Provisioned);
    assert!(!agent.may_act());
    assert!(agent.set_status(Status::Suspended).is_err());
    agent.set_status(Status::Active).unwrap();
    agent.set_status(Status::Suspended).unwrap();
    agent.set_status(Status::Active).unwrap();
    let update = agent.record(
        TrustEvent::HumanEndorsement,
        UNIX_EPOCH + Duration::from_secs(T0 + 60),
        &config,
    );
    assert_eq!(update.state.score(), 550);
    let json = serde_json::to_string(&agent).unwrap();
    let back: Agent = serde_json::from_str(&json).unwrap();
    assert_eq!(back, agent);
    agent.set_status(Status::Decommissioned).unwrap();
    let err = agent.set_status(Status::Active).unwrap_err();
    assert!(err.to_string().contains("decommissioned") && err.to_string().contains("active"));
    // Stored records are validated when read back.
    let bad = json.replace("alice@example.com", "not-an-email");
    assert!(serde_json::from_str::<Agent>(&bad).is_err());
    let bad = json.replace("\"active\"", "\"retired\"");
    assert!(serde_json::from_str::<Agent>(&bad).is_err());
}
