//! `GET /metrics`: OpenMetrics text (prometheus-client), one `warden_`
//! naming scheme.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `warden_decisions_total` | counter | `verdict`, `point` |
//! | `warden_decision_duration_seconds` | histogram | |
//! | `warden_audit_entries` | gauge | |
//! | `warden_audit_append_duration_seconds` | histogram | |
//! | `warden_approvals_pending` | gauge | |
//! | `warden_trust_score` | histogram (agents now) | |
//! | `warden_ring_transitions_total` | counter | |
//! | `warden_kill_switch_active` | gauge (1 when any kill switch is on) | |
//! | `warden_rate_limited_total` | counter | |
//! | `warden_policy_rules` | gauge | |
//! | `warden_policy_reload_errors_total` | counter | |
//! | `warden_build_info` | gauge (1) | `version` |

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use warden_gate::{Decision, Runtime};
use warden_policy::{CompiledPolicy, Point};
use warden_store::{Appended, Store};

/// The `verdict` and `point` labels of a decision.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allow`, `deny`, …
    pub verdict: &'static str,
    /// The intervention point.
    pub point: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// The instruments the server updates as it works. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    decisions: Family<DecisionLabels, Counter>,
    decision_duration: Histogram,
    append_duration: Histogram,
    audit_entries: Gauge,
    ring_transitions: Counter,
    reload_errors: Counter,
    policy_rules: Gauge,
    last_seq: Arc<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh instruments.
    pub fn new() -> Metrics {
        Metrics {
            decisions: Family::default(),
            // 10 µs … ~5 s
            decision_duration: Histogram::new(exponential_buckets(1e-5, 2.5, 15)),
            append_duration: Histogram::new(exponential_buckets(1e-5, 2.5, 15)),
            audit_entries: Gauge::default(),
            ring_transitions: Counter::default(),
            reload_errors: Counter::default(),
            policy_rules: Gauge::default(),
            last_seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// One decision answered, after `took`.
    pub fn observe_decision(&self, point: Point, decision: &Decision, took: Duration) {
        self.decisions
            .get_or_create(&DecisionLabels {
                verdict: decision.verdict.as_str(),
                point: point.as_str(),
            })
            .inc();
        self.decision_duration.observe(took.as_secs_f64());
    }

    pub(crate) fn observe_append(
        &self,
        took: Duration,
        appended: Option<&Appended>,
        transition: bool,
    ) {
        self.append_duration.observe(took.as_secs_f64());
        if let Some(a) = appended {
            let size = a.seq + 1;
            let before = self.last_seq.fetch_max(size, Ordering::Relaxed);
            if size > before {
                self.audit_entries
                    .set(i64::try_from(size).unwrap_or(i64::MAX));
            }
            if transition {
                self.ring_transitions.inc();
            }
        }
    }

    /// The log's size at start.
    pub fn set_audit_entries(&self, size: u64) {
        self.last_seq.fetch_max(size, Ordering::Relaxed);
        self.audit_entries
            .set(i64::try_from(size).unwrap_or(i64::MAX));
    }

    /// A policy reload failed.
    pub fn reload_failed(&self) {
        self.reload_errors.inc();
    }

    /// How many reloads failed so far.
    pub fn reload_errors(&self) -> u64 {
        self.reload_errors.get()
    }

    /// The policy now deciding.
    pub fn set_policy(&self, policy: Option<&CompiledPolicy>) {
        self.policy_rules
            .set(policy.map_or(0, |p| i64::try_from(p.rules().len()).unwrap_or(i64::MAX)));
    }

    /// The registry to expose: these instruments plus what is read from the
    /// runtime and the store at each scrape.
    pub fn registry(&self, runtime: Arc<Runtime>, store: Arc<dyn Store>) -> Registry {
        let mut r = Registry::default();
        r.register(
            "warden_decisions",
            "Decisions answered, by verdict and intervention point",
            self.decisions.clone(),
        );
        r.register_with_unit(
            "warden_decision_duration",
            "Time to answer a decision, audit append included",
            Unit::Seconds,
            self.decision_duration.clone(),
        );
        r.register(
            "warden_audit_entries",
            "Entries in the audit log",
            self.audit_entries.clone(),
        );
        r.register_with_unit(
            "warden_audit_append_duration",
            "Time for an audit append to become durable",
            Unit::Seconds,
            self.append_duration.clone(),
        );
        r.register(
            "warden_ring_transitions",
            "Privilege ring changes of agents recorded by this server",
            self.ring_transitions.clone(),
        );
        r.register(
            "warden_policy_rules",
            "Rules in the policy now deciding",
            self.policy_rules.clone(),
        );
        r.register(
            "warden_policy_reload_errors",
            "Policy reloads that failed (the previous policy kept deciding)",
            self.reload_errors.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register("warden_build_info", "The warden build", build);
        r.register_collector(Box::new(StateCollector { runtime, store }));
        r
    }
}

/// What is read at scrape time.
struct StateCollector {
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCollector").finish_non_exhaustive()
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pending = self.runtime.pending_approvals();
        ConstGauge::new(i64::try_from(pending).unwrap_or(i64::MAX)).encode(
            encoder.encode_descriptor(
                "warden_approvals_pending",
                "Approvals waiting for a human",
                None,
                MetricType::Gauge,
            )?,
        )?;
        ConstGauge::new(i64::from(self.runtime.kill_active())).encode(
            encoder.encode_descriptor(
                "warden_kill_switch_active",
                "1 while a kill switch (global or for an agent) is on",
                None,
                MetricType::Gauge,
            )?,
        )?;
        ConstCounter::new(self.runtime.rate_limited_total()).encode(encoder.encode_descriptor(
            "warden_rate_limited",
            "Actions refused because a limit was used up",
            None,
            MetricType::Counter,
        )?)?;
        let trust = Histogram::new([
            100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0,
        ]);
        let now = std::time::SystemTime::now();
        if let Ok(agents) = self.store.agents() {
            for stored in agents {
                if let Ok(mut agent) =
                    serde_json::from_str::<warden_identity::Agent>(&stored.record)
                {
                    agent.trust_at(now, &warden_identity::TrustConfig::default());
                    trust.observe(f64::from(agent.trust_score()));
                }
            }
        }
        trust.encode(encoder.encode_descriptor(
            "warden_trust_score",
            "Trust scores (0-1000) of the registered agents now",
            None,
            MetricType::Histogram,
        )?)?;
        Ok(())
    }
}

/// The registry in OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}
