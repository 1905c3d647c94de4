//! Trust scores and the rings they earn.
//!
//! Pure functions over (state, event, now). A score is 0–1000 and starts at
//! [`TrustConfig::initial`] (500). Violations and denied approvals lower it;
//! successful outcomes and human endorsements raise it and restart the decay
//! clock. Without positive signals the score decays by
//! [`TrustConfig::decay_per_hour`] towards [`TrustConfig::floor`], never
//! below it (decay does not lift a score that violations pushed under the
//! floor). Fractions of a point carry over, so decaying in many small steps
//! gives the same score as one big step.
//!
//! Rings follow the score ([`RingThresholds`]): ring 3 by default, ring 2 at
//! ≥ 600, ring 1 at ≥ 900 *and* a human approval, ring 0 never automatically
//! (an operator may set it; it is kept while the score holds the ring-1
//! threshold). A score below the current ring's threshold demotes at once,
//! and the [`TrustUpdate`] says so; a demotion out of ring 1 or 0 also drops
//! the approval, so a new one is needed to return.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::agent::Ring;
use crate::time::unix_seconds;

/// The highest trust score.
pub const MAX_TRUST: u16 = 1000;
const SECONDS_PER_HOUR: u64 = 3600;

/// Score thresholds for automatic rings; the policy's `rings:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RingThresholds {
    /// Minimum score for ring 2 (default 600).
    pub ring2: u16,
    /// Minimum score for ring 1 (default 900); a human approval is needed too
    /// unless `ring1_requires_approval` is false.
    pub ring1: u16,
    /// Whether ring 1 needs a human approval on top of the score (default true).
    pub ring1_requires_approval: bool,
}

impl Default for RingThresholds {
    fn default() -> RingThresholds {
        RingThresholds {
            ring2: 600,
            ring1: 900,
            ring1_requires_approval: true,
        }
    }
}

/// A configuration value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trust configuration: {field} = {value} {problem}")]
pub struct TrustConfigError {
    /// The offending field.
    pub field: &'static str,
    /// Its value.
    pub value: u64,
    /// What is wrong.
    pub problem: &'static str,
}

impl RingThresholds {
    /// Checks `0 < ring2 <= ring1 <= 1000`.
    pub fn validate(&self) -> Result<(), TrustConfigError> {
        if self.ring1 > MAX_TRUST {
            return Err(TrustConfigError {
                field: "rings.ring1",
                value: self.ring1.into(),
                problem: "is above the maximum score 1000",
            });
        }
        if self.ring2 == 0 {
            return Err(TrustConfigError {
                field: "rings.ring2",
                value: 0,
                problem: "would put every agent in ring 2 (hint: ring 3 is the default ring)",
            });
        }
        if self.ring2 > self.ring1 {
            return Err(TrustConfigError {
                field: "rings.ring2",
                value: self.ring2.into(),
                problem: "is above rings.ring1 (ring 2 must be easier to reach than ring 1)",
            });
        }
        Ok(())
    }

    /// The most privileged ring a score (and an approval) qualifies for. Never ring 0.
    pub fn eligible_ring(&self, score: u16, ring1_approved: bool) -> Ring {
        if score >= self.ring1 && (ring1_approved || !self.ring1_requires_approval) {
            Ring::R1
        } else if score >= self.ring2 {
            Ring::R2
        } else {
            Ring::R3
        }
    }
}

/// How bad a policy violation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// E.g. a warned action.
    Low,
    /// E.g. a denied action.
    Medium,
    /// E.g. a denied destructive or exfiltrating action.
    High,
    /// E.g. an attempt to escalate privileges or tamper with governance.
    Critical,
}

/// Something that moves an agent's trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrustEvent {
    /// The agent broke a policy.
    PolicyViolation {
        /// How badly.
        severity: Severity,
    },
    /// A human refused an action the agent asked approval for.
    ApprovalDenied,
    /// An action completed successfully (positive signal).
    SuccessfulOutcome,
    /// A human vouched for the agent (positive signal).
    HumanEndorsement,
    /// A human approved ring 1 for the agent (granted once the score qualifies).
    Ring1Approval,
}

/// Point values for events, decay and the floor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Score of a new agent (default 500).
    pub initial: u16,
    /// Points lost per hour without a positive signal (default 2).
    pub decay_per_hour: u16,
    /// Decay stops here (default 100).
    pub floor: u16,
    /// Points lost for a low-severity violation (default 10).
    pub violation_low: u16,
    /// Points lost for a medium-severity violation (default 50).
    pub violation_medium: u16,
    /// Points lost for a high-severity violation (default 150).
    pub violation_high: u16,
    /// Points lost for a critical violation (default 400).
    pub violation_critical: u16,
    /// Points lost when a human denies an approval (default 25).
    pub approval_denied: u16,
    /// Points gained for a successful outcome (default 5).
    pub success: u16,
    /// Points gained for a human endorsement (default 50).
    pub endorsement: u16,
    /// Ring thresholds.
    pub rings: RingThresholds,
}

impl Default for TrustConfig {
    fn default() -> TrustConfig {
        TrustConfig {
            initial: 500,
            decay_per_hour: 2,
            floor: 100,
            violation_low: 10,
            violation_medium: 50,
            violation_high: 150,
            violation_critical: 400,
            approval_denied: 25,
            success: 5,
            endorsement: 50,
            rings: RingThresholds::default(),
        }
    }
}

impl TrustConfig {
    /// Checks ranges: scores within 0–1000, thresholds ordered.
    pub fn validate(&self) -> Result<(), TrustConfigError> {
        for (field, value) in [("initial", self.initial), ("floor", self.floor)] {
            if value > MAX_TRUST {
                return Err(TrustConfigError {
                    field,
                    value: value.into(),
                    problem: "is above the maximum score 1000",
                });
            }
        }
        self.rings.validate()
    }

    fn penalty(&self, severity: Severity) -> u16 {
        match severity {
            Severity::Low => self.violation_low,
            Severity::Medium => self.violation_medium,
            Severity::High => self.violation_high,
            Severity::Critical => self.violation_critical,
        }
    }
}

/// An agent's trust: score, ring, and the bookkeeping decay needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustState {
    score: u16,
    ring: Ring,
    ring1_approved: bool,
    /// Decay has been applied up to this time (seconds since the epoch).
    decayed_until_unix: u64,
    /// Fraction of a point of decay carried over, in point-seconds per hour.
    decay_carry: u64,
}

/// A ring move, for the caller to record (audit, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingChange {
    /// The ring before.
    pub from: Ring,
    /// The ring after.
    pub to: Ring,
    /// The score that caused it.
    pub score: u16,
}

impl RingChange {
    /// Whether this change lowers privilege.
    pub fn is_demotion(&self) -> bool {
        self.to.get() > self.from.get()
    }
}

/// The result of applying decay or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustUpdate {
    /// The new state.
    pub state: TrustState,
    /// The score before.
    pub previous_score: u16,
    /// Set when the ring changed (demotions are immediate).
    pub ring_change: Option<RingChange>,
}

impl TrustUpdate {
    /// The demotion, if this update demoted.
    pub fn demotion(&self) -> Option<RingChange> {
        self.ring_change.filter(RingChange::is_demotion)
    }
}

impl TrustState {
    /// A new agent's trust: the configured initial score, ring 3.
    pub fn new(config: &TrustConfig, now: SystemTime) -> TrustState {
        let score = config.initial.min(MAX_TRUST);
        let mut state = TrustState {
            score,
            ring: Ring::R3,
            ring1_approved: false,
            decayed_until_unix: unix_seconds(now),
            decay_carry: 0,
        };
        state.ring = config.rings.eligible_ring(score, false);
        state
    }

    /// Rebuilds a stored state; the score is clamped to 1000.
    pub fn restore(
        score: u16,
        ring: Ring,
        ring1_approved: bool,
        decayed_until_unix: u64,
    ) -> TrustState {
        TrustState {
            score: score.min(MAX_TRUST),
            ring,
            ring1_approved,
            decayed_until_unix,
            decay_carry: 0,
        }
    }

    /// The score, 0–1000.
    pub fn score(&self) -> u16 {
        self.score
    }
    /// The current ring.
    pub fn ring(&self) -> Ring {
        self.ring
    }
    /// Whether a human has approved ring 1 (cleared by a demotion out of it).
    pub fn ring1_approved(&self) -> bool {
        self.ring1_approved
    }
    /// Decay is applied up to this time (seconds since the epoch).
    pub fn decayed_until_unix(&self) -> u64 {
        self.decayed_until_unix
    }

    /// Sets the ring by hand (the only way to ring 0). Returns the change.
    /// The next update demotes at once if the score does not hold the ring.
    pub fn assign_ring(&mut self, ring: Ring) -> Option<RingChange> {
        let change = (ring != self.ring).then_some(RingChange {
            from: self.ring,
            to: ring,
            score: self.score,
        });
        self.ring = ring;
        change
    }

    /// The state after decay up to `now`.
    pub fn decay(&self, now: SystemTime, config: &TrustConfig) -> TrustUpdate {
        let mut next = self.clone();
        next.apply_decay(unix_seconds(now), config);
        next.finish(self, config)
    }

    /// The state after decay up to `now` and then `event`.
    pub fn apply(&self, event: TrustEvent, now: SystemTime, config: &TrustConfig) -> TrustUpdate {
        let now = unix_seconds(now);
        let mut next = self.clone();
        next.apply_decay(now, config);
        match event {
            TrustEvent::PolicyViolation { severity } => next.lower(config.penalty(severity)),
            TrustEvent::ApprovalDenied => next.lower(config.approval_denied),
            TrustEvent::SuccessfulOutcome => next.raise(config.success, now),
            TrustEvent::HumanEndorsement => next.raise(config.endorsement, now),
            TrustEvent::Ring1Approval => next.ring1_approved = true,
        }
        next.finish(self, config)
    }

    fn lower(&mut self, points: u16) {
        self.score = self.score.saturating_sub(points);
    }

    fn raise(&mut self, points: u16, now: u64) {
        self.score = self.score.saturating_add(points).min(MAX_TRUST);
        // A positive signal restarts the decay clock.
        self.decayed_until_unix = self.decayed_until_unix.max(now);
        self.decay_carry = 0;
    }

    fn apply_decay(&mut self, now: u64, config: &TrustConfig) {
        if now <= self.decayed_until_unix {
            return; // no time passed, or the clock went back: nothing to apply
        }
        let elapsed = now - self.decayed_until_unix;
        self.decayed_until_unix = now;
        if self.score <= config.floor || config.decay_per_hour == 0 {
            self.decay_carry = 0;
            return;
        }
        let owed = self
            .decay_carry
            .saturating_add(elapsed.saturating_mul(config.decay_per_hour.into()));
        let points = owed / SECONDS_PER_HOUR;
        self.decay_carry = owed % SECONDS_PER_HOUR;
        let room = u64::from(self.score - config.floor);
        if points >= room {
            self.score = config.floor;
            self.decay_carry = 0;
        } else {
            // points < room <= 1000, so it fits.
            self.score -= points as u16;
        }
    }

    /// Re-derives the ring: demote at once when the score no longer holds the
    /// current ring; promote to what the score (and approval) earns.
    fn finish(mut self, before: &TrustState, config: &TrustConfig) -> TrustUpdate {
        let eligible = config.rings.eligible_ring(self.score, self.ring1_approved);
        // Ring 0 is only ever assigned by hand, and kept while the score
        // holds the ring-1 threshold; every other ring follows the score.
        let holds_ring0 = self.ring == Ring::R0 && self.score >= config.rings.ring1;
        if !holds_ring0 {
            self.ring = eligible;
        }
        if self.ring.get() >= 2 && before.ring.get() <= 1 {
            self.ring1_approved = false;
            self.ring = config.rings.eligible_ring(self.score, false);
        }
        let ring_change = (self.ring != before.ring).then_some(RingChange {
            from: before.ring,
            to: self.ring,
            score: self.score,
        });
        TrustUpdate {
            previous_score: before.score,
            state: self,
            ring_change,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const T0: u64 = 1_800_000_000;

    #[test]
    fn new_agents_start_at_500_in_ring_3() {
        let s = TrustState::new(&TrustConfig::default(), at(T0));
        assert_eq!((s.score(), s.ring()), (500, Ring::R3));
    }

    #[test]
    fn decay_is_two_points_an_hour_to_the_floor_and_stepwise_equals_one_step() {
        let c = TrustConfig::default();
        let s = TrustState::new(&c, at(T0));
        assert_eq!(s.decay(at(T0 + 3600), &c).state.score(), 498);
        assert_eq!(s.decay(at(T0 + 1799), &c).state.score(), 500);
        // 100 steps of 18 minutes = 30 hours = 60 points.
        let mut step = s.clone();
        for i in 1..=100 {
            step = step.decay(at(T0 + i * 18 * 60), &c).state;
        }
        assert_eq!(step.score(), 440);
        assert_eq!(step, s.decay(at(T0 + 100 * 18 * 60), &c).state);
        // A year later: at the floor, not below.
        assert_eq!(s.decay(at(T0 + 365 * 86400), &c).state.score(), 100);
    }

    #[test]
    fn decay_never_lifts_a_score_below_the_floor_and_ignores_clock_going_back() {
        let c = TrustConfig::default();
        let s = TrustState::restore(40, Ring::R3, false, T0);
        assert_eq!(s.decay(at(T0 + 86400), &c).state.score(), 40);
        let s = TrustState::new(&c, at(T0));
        assert_eq!(s.decay(at(T0 - 86400), &c).state, s);
    }

    #[test]
    fn positive_signals_raise_and_restart_decay() {
        let c = TrustConfig::default();
        let s = TrustState::new(&c, at(T0));
        // Half an hour is 1 point of decay, applied before the +50.
        let u = s.apply(TrustEvent::HumanEndorsement, at(T0 + 1800), &c);
        assert_eq!(u.state.score(), 549);
        let u = s.apply(TrustEvent::HumanEndorsement, at(T0 + 3600), &c);
        assert_eq!(u.state.score(), 548);
        assert_eq!(u.state.decay(at(T0 + 3600 + 1799), &c).state.score(), 548);
    }

    #[test]
    fn violations_cost_by_severity_and_saturate_at_zero() {
        let c = TrustConfig::default();
        let s = TrustState::new(&c, at(T0));
        let cost = |sev| {
            500 - s
                .apply(TrustEvent::PolicyViolation { severity: sev }, at(T0), &c)
                .state
                .score()
        };
        assert_eq!(
            [
                cost(Severity::Low),
                cost(Severity::Medium),
                cost(Severity::High),
                cost(Severity::Critical)
            ],
            [10, 50, 150, 400]
        );
        let crit = TrustEvent::PolicyViolation {
            severity: Severity::Critical,
        };
        let s = s
            .apply(crit, at(T0), &c)
            .state
            .apply(crit, at(T0), &c)
            .state;
        assert_eq!(s.score(), 0);
        assert_eq!(
            s.apply(TrustEvent::ApprovalDenied, at(T0), &c)
                .state
                .score(),
            0
        );
    }

    #[test]
    fn ring_2_at_600_and_demotion_below_it_is_reported() {
        let c = TrustConfig::default();
        let s = TrustState::restore(595, Ring::R3, false, T0);
        let up = s.apply(TrustEvent::SuccessfulOutcome, at(T0), &c);
        assert_eq!(up.state.ring(), Ring::R2);
        assert_eq!(up.ring_change.map(|r| r.is_demotion()), Some(false));
        let down = up.state.apply(TrustEvent::ApprovalDenied, at(T0), &c);
        assert_eq!(down.state.ring(), Ring::R3);
        assert_eq!(
            down.demotion(),
            Some(RingChange {
                from: Ring::R2,
                to: Ring::R3,
                score: 575
            })
        );
        // Decay alone demotes too: 600 -> 599 after half an hour.
        let edge = TrustState::restore(600, Ring::R2, false, T0);
        let decayed = edge.decay(at(T0 + 1800), &c);
        assert_eq!(decayed.state.score(), 599);
        assert_eq!(decayed.demotion().map(|d| d.to), Some(Ring::R3));
    }

    #[test]
    fn ring_1_needs_900_and_a_human_approval_and_demotion_drops_the_approval() {
        let c = TrustConfig::default();
        let s = TrustState::restore(905, Ring::R2, false, T0);
        assert_eq!(s.decay(at(T0), &c).state.ring(), Ring::R2);
        let approved = s.apply(TrustEvent::Ring1Approval, at(T0), &c);
        assert_eq!(approved.state.ring(), Ring::R1);
        let low = approved.state.apply(
            TrustEvent::PolicyViolation {
                severity: Severity::Low,
            },
            at(T0),
            &c,
        );
        assert_eq!(low.state.ring(), Ring::R2);
        assert_eq!(
            low.demotion().map(|d| (d.from, d.to)),
            Some((Ring::R1, Ring::R2))
        );
        assert!(!low.state.ring1_approved());
        let back = low.state.apply(TrustEvent::HumanEndorsement, at(T0), &c);
        assert_eq!(back.state.score(), 945);
        assert_eq!(back.state.ring(), Ring::R2, "a fresh approval is needed");
    }

    #[test]
    fn ring_0_is_never_automatic_but_kept_while_the_score_holds_ring_1() {
        let c = TrustConfig::default();
        let s = TrustState::restore(1000, Ring::R3, true, T0);
        let u = s.apply(TrustEvent::HumanEndorsement, at(T0), &c);
        assert_eq!(u.state.ring(), Ring::R1);
        let mut manual = u.state.clone();
        manual.assign_ring(Ring::R0);
        let kept = manual.apply(TrustEvent::SuccessfulOutcome, at(T0), &c);
        assert_eq!(kept.state.ring(), Ring::R0);
        let dropped = manual.apply(
            TrustEvent::PolicyViolation {
                severity: Severity::High,
            },
            at(T0),
            &c,
        );
        assert_eq!(dropped.state.ring(), Ring::R2);
        assert!(dropped.demotion().is_some());
    }

    #[test]
    fn thresholds_are_configurable_and_validated() {
        let rings: RingThresholds = serde_json::from_str(
            r#"{"ring2": 700, "ring1": 800, "ring1_requires_approval": false}"#,
        )
        .unwrap();
        assert_eq!(rings.eligible_ring(799, false), Ring::R2);
        assert_eq!(rings.eligible_ring(800, false), Ring::R1);
        assert_eq!(rings.eligible_ring(699, true), Ring::R3);
        assert!(serde_json::from_str::<RingThresholds>(r#"{"ring3": 1}"#).is_err());
        let bad = RingThresholds {
            ring2: 950,
            ring1: 900,
            ring1_requires_approval: true,
        };
        assert!(bad.validate().is_err());
        assert!(
            RingThresholds {
                ring1: 1001,
                ..RingThresholds::default()
            }
            .validate()
            .is_err()
        );
        assert!(TrustConfig::default().validate().is_ok());
    }
}
