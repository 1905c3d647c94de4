//! The one decision point: [`Gate::decide`] turns an [`Action`] into a [`Decision`].
//!
//! Every entry point — the CLI, the HTTP server, the MCP proxy, embedding
//! Rust code — builds an `Action` and calls `decide`. No entry point has
//! rules of its own. In order, `decide`:
//!
//! 1. checks the action (`error:invalid_action`),
//! 2. reads what its arguments do with `warden-intent` (the policy's tool
//!    catalog pins argument kinds, everything else is classified as `auto`;
//!    the policy's `egress` allowlist judges hosts),
//! 3. with an identity context ([`Gate::with_identity`]), checks the
//!    action's capability token (`context.token`): the agent, its sponsor,
//!    its ring (from the agent record, never from the caller) and the tools
//!    the token grants ([`identity`] has the steps); a policy with
//!    `identity: required` denies actions without one,
//! 4. evaluates the policy over the action, its intents, its labels and the
//!    proven agent and ring; when the deciding rule says `identity: required`
//!    and the action proved no identity, the decision is `deny`,
//! 5. when the gate has an audit log ([`Gate::with_audit`]), appends the
//!    decision record, with the state the decision changes (approvals,
//!    session labels, a signed request's nonce) in the same transaction,
//!    and returns only once it is durable; if that fails the decision is
//!    `deny` with `error:audit_unavailable`.
//!
//! The gate fails closed: no policy, an invalid action, a condition that
//! errors, a panic during evaluation, or an audit log that cannot record all
//! yield `deny` with a reserved `error:<kind>` reason; every identity
//! failure yields `deny` with an `identity:<code>` reason.
//!
//! ```
//! use warden_gate::{Action, Gate};
//! use warden_policy::{compile, parse, Verdict};
//!
//! let policy = compile(parse("p.yaml", "version: warden/v1\nname: p\ndefault: deny\nrules:\n  - id: reads\n    match: {tool: db.query}\n    verdict: allow\n")?)?;
//! let gate = Gate::new(policy);
//! let action = Action::from_json(br#"{"point": "pre_tool_call", "tool": "db.query", "args": {"sql": "select 1"}}"#)?;
//! let decision = gate.decide(&action);
//! assert_eq!(decision.verdict, Verdict::Allow);
//! assert_eq!(decision.rule.as_deref(), Some("reads"));
//!
//! // No policy: everything is denied, and the decision says why.
//! assert_eq!(Gate::without_policy().decide(&action).reason, "error:no_policy");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub(crate) mod action;
pub mod agents;
mod audit;
pub mod canonical;
mod decision;
pub mod files;
pub mod identity;
pub mod outcome;
pub mod runtime;

pub use action::{Action, ActionError, DEFAULT_RING, MAX_ACTION_BYTES, MAX_NAME_BYTES, MAX_TAGS};
pub use audit::MAX_INLINE_ARGUMENTS_BYTES;
pub use decision::{ApprovalRef, Decision, IdentityInfo, PolicyRef, reason};
pub use identity::{IdentityContext, IdentityError};
pub use runtime::{Runtime, RuntimeConfig};

use serde_json::Value;
use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use warden_intent::{Classification, classify_arguments};
use warden_policy::{CompiledPolicy, Explanation, Input, Verdict, transform};
use warden_store::Store;

/// A decision evaluated by [`Gate::begin`] and not yet recorded.
#[derive(Debug)]
pub struct Evaluated {
    decision: Decision,
    effects: Effects,
}

/// What evaluating a decision leaves to be stored with its record.
#[derive(Debug, Default)]
struct Effects {
    /// Labels the deciding rule adds to the session.
    add_labels: Vec<String>,
    /// What the identity step stores: a signed request's nonce.
    identity: Vec<warden_store::StateChange>,
}

impl Evaluated {
    /// The decision as evaluated (no sequence number yet; the audit step
    /// may still turn it into a `deny`).
    pub fn decision(&self) -> &Decision {
        &self.decision
    }
}

fn staging_panicked(action_hash: String) -> Decision {
    Decision::error(
        reason::PANIC,
        "updating approvals or session labels panicked, so the action is denied".to_string(),
        action_hash,
    )
}

fn blocking_panicked(action_hash: String) -> Decision {
    Decision::error(
        reason::PANIC,
        "the decision's blocking work panicked or was cancelled, so the action is denied"
            .to_string(),
        action_hash,
    )
}

fn recording_panicked(action_hash: String) -> Decision {
    Decision::error(
        reason::AUDIT_UNAVAILABLE,
        "recording the decision in the audit log panicked, so the action is denied".to_string(),
        action_hash,
    )
}

/// The decision point. Cheap to clone and share between threads.
#[derive(Clone)]
pub struct Gate {
    policy: Option<Arc<CompiledPolicy>>,
    /// The policy's name and hash, as every decision names them (shared, so
    /// a decision does not copy them).
    policy_ref: Option<Arc<PolicyRef>>,
    audit: Option<Arc<dyn Store>>,
    identity: Option<Arc<IdentityContext>>,
    runtime: Option<Arc<Runtime>>,
    /// Whether a ring claimed in `context.ring` needs a capability token
    /// to be more privileged than [`DEFAULT_RING`].
    rings_need_proof: bool,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("policy", &self.policy)
            .field("audit", &self.audit.is_some())
            .field("identity", &self.identity)
            .field("runtime", &self.runtime.is_some())
            .field("rings_need_proof", &self.rings_need_proof)
            .finish()
    }
}

static EMPTY_OBJECT: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| Value::Object(Default::default()));

impl Gate {
    /// A gate that decides by `policy`.
    pub fn new(policy: CompiledPolicy) -> Gate {
        Gate {
            policy_ref: Some(Arc::new(PolicyRef {
                name: policy.name().to_string(),
                hash: policy.hash().to_string(),
            })),
            policy: Some(Arc::new(policy)),
            audit: None,
            identity: None,
            runtime: None,
            rings_need_proof: false,
        }
    }

    /// A gate with no policy: it denies everything with `error:no_policy`.
    pub fn without_policy() -> Gate {
        Gate {
            policy: None,
            policy_ref: None,
            audit: None,
            identity: None,
            runtime: None,
            rings_need_proof: false,
        }
    }

    /// This gate, recording every decision in `store`'s audit log before
    /// returning it.
    pub fn with_audit(self, store: Arc<dyn Store>) -> Gate {
        Gate {
            audit: Some(store),
            ..self
        }
    }

    /// This gate, checking capability tokens, agent records and signed
    /// requests through `identity` (built for this gate's policy with
    /// [`IdentityContext::new`]).
    pub fn with_identity(self, identity: Arc<IdentityContext>) -> Gate {
        Gate {
            identity: Some(identity),
            ..self
        }
    }

    /// This gate, with the kill switch, rate limits, session labels and
    /// approvals of `runtime`, recording every decision (and the state it
    /// changes, in the same transaction) in the runtime's store.
    pub fn with_runtime(self, runtime: Arc<Runtime>) -> Gate {
        Gate {
            audit: Some(runtime.store().clone()),
            runtime: Some(runtime),
            ..self
        }
    }

    /// This gate, for callers whose word is not proof (an HTTP client):
    /// an action that claims a ring more privileged than [`DEFAULT_RING`]
    /// in `context.ring` without a verified capability token is denied
    /// with `identity:ring_claim_refused`. Without this, as for code that
    /// embeds the gate or a policy's fixtures, a claimed ring is believed
    /// when no token says otherwise.
    pub fn refusing_unproven_rings(self) -> Gate {
        Gate {
            rings_need_proof: true,
            ..self
        }
    }

    /// The runtime, if any.
    pub fn runtime(&self) -> Option<&Runtime> {
        self.runtime.as_deref()
    }

    /// The identity context, if any (to refresh revocations, or revoke).
    pub fn identity(&self) -> Option<&IdentityContext> {
        self.identity.as_deref()
    }

    /// The loaded policy, if any.
    pub fn policy(&self) -> Option<&CompiledPolicy> {
        self.policy.as_deref()
    }

    /// Decides about `action`. Never panics and never allows on an error.
    ///
    /// With an audit log, the decision is returned only after its record is
    /// durable, and carries its sequence number in [`Decision::seq`].
    pub fn decide(&self, action: &Action) -> Decision {
        if self.audit.is_none() {
            // Nothing to record: `finish` would return the decision as it
            // is (a signed request's nonce stays in memory only).
            return self.decide_unrecorded(action, identity::Mode::Decide, &mut Effects::default());
        }
        self.finish(action, self.begin(action))
    }

    /// The first half of [`Gate::decide`]: the decision about `action`,
    /// evaluated but not yet recorded. Finish it with [`Gate::finish`] or
    /// [`Gate::finish_async`]; until then it is not a verdict.
    ///
    /// With an identity context and an action that carries a token, this
    /// may read and write the store (agent records, revocations, a
    /// demotion), so async callers run it on a blocking thread then.
    pub fn begin(&self, action: &Action) -> Evaluated {
        let mut effects = Effects::default();
        let decision = self.decide_unrecorded(action, identity::Mode::Decide, &mut effects);
        Evaluated { decision, effects }
    }

    /// Whether finishing `evaluated` blocks on more than its own audit
    /// append: a `require_approval` decision holds the approval book from
    /// before its append until after it (so an approval is used at most
    /// once), and a proven agent's rule violation stores its trust
    /// afterwards. [`Gate::finish_async`] finishes these on the calling
    /// thread, blocking it, so async callers finish them with
    /// [`Gate::finish`] on a blocking thread instead.
    pub fn finishes_blocking(&self, evaluated: &Evaluated) -> bool {
        let d = &evaluated.decision;
        self.audit.is_some()
            && ((self.runtime.is_some() && d.verdict == Verdict::RequireApproval)
                || self.penalises(d))
    }

    /// The second half of [`Gate::decide`]: records `evaluated` (the result
    /// of [`Gate::begin`] for this `action`) and returns the decision once
    /// its record, and the state it changes (approvals, session labels, a
    /// signed request's nonce), is durable. Blocks the calling thread on
    /// the append.
    pub fn finish(&self, action: &Action, evaluated: Evaluated) -> Decision {
        let Evaluated {
            mut decision,
            effects:
                Effects {
                    add_labels,
                    identity: identity_changes,
                },
        } = evaluated;
        let Some(store) = &self.audit else {
            return decision;
        };
        let action_hash = decision.action_hash.clone();
        let runtime = self.runtime.as_deref();
        let mut staged = runtime.and_then(|rt| {
            catch_unwind(AssertUnwindSafe(|| {
                rt.stage(self.policy(), action, &mut decision, add_labels)
            }))
            .ok()
        });
        if runtime.is_some() && staged.is_none() {
            return staging_panicked(action_hash);
        }
        let mut changes = staged
            .as_mut()
            .map(|s| s.take_changes())
            .unwrap_or_default();
        changes.extend(identity_changes);
        let decision = catch_unwind(AssertUnwindSafe(|| {
            audit::record(store.as_ref(), self.policy(), action, decision, changes)
        }))
        .unwrap_or_else(|_| recording_panicked(action_hash));
        if let (Some(rt), Some(staged), Some(seq)) = (runtime, staged, decision.seq) {
            rt.commit(staged, seq);
        }
        self.note_violation(&decision);
        decision
    }

    /// [`Gate::finish`] for async callers: the append is handed to the
    /// store's writer and awaited, so no thread waits for the sync. The
    /// session labels the decision adds are committed by the writer as soon
    /// as the record is durable, so dropping this future part-way loses
    /// nothing. A decision for which [`Gate::finishes_blocking`] holds is
    /// finished with [`Gate::finish`] on the calling thread.
    pub async fn finish_async(&self, action: &Action, evaluated: Evaluated) -> Decision {
        if self.finishes_blocking(&evaluated) {
            return self.finish(action, evaluated);
        }
        let Evaluated {
            mut decision,
            effects:
                Effects {
                    add_labels,
                    identity: identity_changes,
                },
        } = evaluated;
        let Some(store) = &self.audit else {
            return decision;
        };
        let action_hash = decision.action_hash.clone();
        let runtime = self.runtime.clone();
        let staged = match &runtime {
            Some(rt) => match catch_unwind(AssertUnwindSafe(|| {
                rt.stage_labels(self.policy(), action, &mut decision, add_labels)
            })) {
                Ok(staged) => staged,
                Err(_) => return staging_panicked(action_hash),
            },
            None => runtime::StagedLabels::default(),
        };
        let Ok(record) = catch_unwind(AssertUnwindSafe(|| {
            warden_audit::Record::Decision(audit::decision_record(self.policy(), action, &decision))
        })) else {
            return recording_panicked(action_hash);
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let fresh = staged.fresh;
        let mut changes = staged.changes;
        changes.extend(identity_changes);
        let done: warden_store::AppendDone = Box::new(move |appended| {
            if let (Ok(_), Some(rt)) = (&appended, runtime) {
                rt.commit_labels(fresh);
            }
            // The caller may have gone; the record and the labels stand.
            let _ = sender.send(appended);
        });
        if catch_unwind(AssertUnwindSafe(|| {
            store.append_then(record, changes, done)
        }))
        .is_err()
        {
            return recording_panicked(action_hash);
        }
        let appended = receiver
            .await
            .unwrap_or(Err(warden_store::StoreError::Closed));
        audit::settle(decision, appended)
    }

    /// Whether `decision` lowers a proven agent's trust once recorded: a
    /// rule denied the action of an agent the identity check established.
    /// A full approval queue (another agent may have filled it) and an
    /// approval nobody answered in time are not the agent's doing, so those
    /// denials cost nothing.
    fn penalises(&self, decision: &Decision) -> bool {
        self.identity.is_some()
            && self.policy.is_some()
            && decision.agent.is_some()
            && decision.identity.is_some()
            && decision.verdict == Verdict::Deny
            && decision.rule.is_some()
            && !matches!(
                decision.reason.as_str(),
                reason::APPROVAL_QUEUE_FULL | reason::APPROVAL_EXPIRED
            )
    }

    /// [`Gate::decide`] for callers on a tokio runtime: the decision is
    /// evaluated on the calling task and awaits its audit append
    /// ([`Gate::finish_async`]), so no thread waits for the sync. What may
    /// block on the store for longer runs on tokio's blocking pool: an
    /// action with a token (the identity check reads, and may write, agent
    /// records) and the decisions [`Gate::finishes_blocking`] names.
    /// Outside a tokio runtime it is [`Gate::decide`].
    pub async fn decide_async(self: Arc<Self>, action: Action) -> Decision {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.decide(&action);
        };
        if action.context.contains_key("token") {
            let hash = action.hash();
            return runtime
                .spawn_blocking(move || self.decide(&action))
                .await
                .unwrap_or_else(|_| blocking_panicked(hash));
        }
        let evaluated = self.begin(&action);
        if self.finishes_blocking(&evaluated) {
            let hash = evaluated.decision.action_hash.clone();
            return runtime
                .spawn_blocking(move || self.finish(&action, evaluated))
                .await
                .unwrap_or_else(|_| blocking_panicked(hash));
        }
        self.finish_async(&action, evaluated).await
    }

    /// A rule denied a proven agent's action: its trust pays for it. Only
    /// recorded decisions count, so the log holds the decision the event
    /// points to. A failure to store the change leaves the decision as it is.
    fn note_violation(&self, decision: &Decision) {
        let (Some(context), Some(policy), Some(agent), Some(_)) = (
            self.identity.as_deref(),
            self.policy(),
            decision.agent.as_deref(),
            decision.identity.as_ref(),
        ) else {
            return;
        };
        if !self.penalises(decision) {
            return;
        }
        let _ = catch_unwind(AssertUnwindSafe(|| {
            context.record_violation(policy, agent, &decision.intents, decision.seq)
        }));
    }

    /// The decision without the audit step (shared by `decide` and `explain`);
    /// what it leaves to store with the record goes to `effects`.
    fn decide_unrecorded(
        &self,
        action: &Action,
        mode: identity::Mode,
        effects: &mut Effects,
    ) -> Decision {
        let action_hash = action.hash();
        match catch_unwind(AssertUnwindSafe(|| self.evaluate(action, mode, effects))) {
            Ok(mut decision) => {
                decision.action_hash = action_hash;
                decision
            }
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                Decision::error(
                    reason::PANIC,
                    format!("evaluation panicked: {detail}"),
                    action_hash,
                )
            }
        }
    }

    /// Decides about `action` and traces every rule of the policy for it
    /// (`warden policy explain`). The trace is `None` when no policy is
    /// loaded or the action is invalid; the decision then says why. Nothing
    /// is recorded in the audit log: explaining is not deciding. The
    /// identity check runs as in `decide` (its result is on the decision:
    /// `agent`, `sponsor`, `identity`, or an `identity:` reason), except that
    /// a signed request's nonce is not used up, so a replay is not detected.
    /// The trace sees the agent and ring the identity check established.
    pub fn explain(&self, action: &Action) -> (Decision, Option<Explanation<'_>>) {
        let decision =
            self.decide_unrecorded(action, identity::Mode::Explain, &mut Effects::default());
        let trace = match (self.policy.as_deref(), action.facts()) {
            (Some(policy), Ok(mut facts)) => catch_unwind(AssertUnwindSafe(|| {
                let intents = intent_names(&decision.intents);
                if let Some(id) = &decision.identity {
                    facts.ring = id.ring;
                }
                let mut input = input(action, &facts, &intents);
                if decision.agent.is_some() {
                    input.agent = decision.agent.as_deref();
                }
                policy.explain(&input)
            }))
            .ok(),
            _ => None,
        };
        (decision, trace)
    }

    /// The decision about `action`, with an empty `action_hash` (the caller
    /// owns the hash, so a panic here cannot lose it).
    fn evaluate(&self, action: &Action, mode: identity::Mode, effects: &mut Effects) -> Decision {
        #[cfg(test)]
        if tests::PANIC_IN_EVALUATE.with(|p| p.get()) {
            panic!("injected by test");
        }
        let Some(policy) = self.policy.as_deref() else {
            return Decision::error(
                reason::NO_POLICY,
                "no policy is loaded, so every action is denied".to_string(),
                String::new(),
            );
        };
        let mut facts = match action.facts() {
            Ok(f) => f,
            Err(e) => {
                return Decision::error(reason::INVALID_ACTION, e.to_string(), String::new());
            }
        };
        let Classification { intents, findings } = classify(policy, action);
        let policy_ref = self.policy_ref.clone();
        let refuse =
            |reason: &str, message: String, intents, findings, who: Option<(String, String)>| {
                let (agent, sponsor) = who.unzip();
                Decision {
                    intents,
                    findings,
                    policy: policy_ref.clone(),
                    agent,
                    sponsor,
                    ..Decision::error(reason, message, String::new())
                }
            };
        let verified = match identity::check(
            self.identity.as_deref(),
            policy,
            action,
            mode,
            &mut effects.identity,
        ) {
            Ok(v) => v,
            Err(r) => return refuse(&r.reason, r.message, intents, findings, r.who),
        };
        let missing_reason = if self.identity.is_some() {
            reason::TOKEN_MISSING
        } else {
            reason::IDENTITY_UNAVAILABLE
        };
        if verified.is_none() && policy.identity().required {
            return refuse(
                missing_reason,
                "the policy requires identity: the action must carry a capability token in context.token".to_string(),
                intents,
                findings,
                None,
            );
        }
        if let Some(v) = &verified {
            facts.ring = v.ring;
        } else if self.rings_need_proof && facts.ring < DEFAULT_RING {
            let proof = if action.context.contains_key("token") {
                "its token cannot be verified here (no trusted issuer is configured)"
            } else {
                "it proves no identity"
            };
            return refuse(
                reason::RING_CLAIM_REFUSED,
                format!(
                    "the action claims ring {} in context.ring, but {proof}, so the claim is refused; only a verified capability token (context.token) can place an action below ring {DEFAULT_RING}",
                    facts.ring
                ),
                intents,
                findings,
                None,
            );
        }
        if let Some(rt) = self.runtime.as_deref() {
            let who = || {
                verified
                    .as_ref()
                    .map(|v| (v.agent.clone(), v.sponsor.clone()))
            };
            let proven = verified.as_ref().map(|v| v.agent.as_str());
            let killed = rt
                .killed(proven)
                .or_else(|| rt.killed(action.agent.as_deref()));
            if let Some((scope, entry)) = killed {
                let whom = if scope == runtime::KILL_ALL {
                    "every agent".to_string()
                } else {
                    format!("agent {scope}")
                };
                return refuse(
                    reason::KILLED,
                    format!(
                        "the kill switch is on for {whom} (by {}: {})",
                        entry.by, entry.reason
                    ),
                    intents,
                    findings,
                    who(),
                );
            }
            // A token's agent was checked against the store; an agent that
            // is only named is held to the status the runtime knows.
            if verified.is_none()
                && let Some(agent) = action.agent.as_deref()
                && let Some(stop) = rt.agent_stop(agent)
            {
                let (why, status) = match stop {
                    runtime::AgentStop::Status(s) => (
                        identity::inactive(s).unwrap_or(reason::AGENT_NOT_ACTIVE),
                        s.as_str(),
                    ),
                    runtime::AgentStop::Unreadable => (
                        reason::AGENT_RECORD_INVALID,
                        "of unknown status (its record cannot be read)",
                    ),
                };
                return refuse(
                    why,
                    format!("agent {agent} is {status}; only active agents may act"),
                    intents,
                    findings,
                    None,
                );
            }
            if mode == identity::Mode::Decide
                && let Err(limited) =
                    rt.take_budget(policy, action, proven.or(action.agent.as_deref()))
            {
                let mut d = refuse(
                    reason::RATE_LIMITED,
                    limited.message,
                    intents,
                    findings,
                    who(),
                );
                d.retry_after = limited.retry_after;
                return d;
            }
            if let Some(session) = action.session.as_deref() {
                match rt.session_labels(session) {
                    Ok(labels) => {
                        for l in labels.iter() {
                            if !facts.labels.contains(l) {
                                facts.labels.push(l.clone());
                            }
                        }
                    }
                    Err(e) => {
                        return refuse(
                            reason::SESSION_UNAVAILABLE,
                            format!(
                                "the session's labels cannot be read, so the action is denied: {e}"
                            ),
                            intents,
                            findings,
                            who(),
                        );
                    }
                }
            }
        }
        let intent_strings = intent_names(&intents);
        let mut input = input(action, &facts, &intent_strings);
        if let Some(v) = &verified {
            input.agent = Some(&v.agent);
        }
        let eval = policy.evaluate(&input);
        // One decision, filled in place (it is large: moving it costs).
        let mut decision = Decision {
            matched: eval.matched.iter().map(|r| r.id.clone()).collect(),
            intents,
            findings,
            policy: policy_ref,
            ..Decision::base(eval.verdict, String::new())
        };
        if let Some(err) = eval.error {
            decision.verdict = Verdict::Deny;
            decision.rule = Some(err.rule.id.clone());
            decision.reason = err.kind.reason().to_string();
            decision.message =
                format!("condition of rule '{}' failed: {}", err.rule.id, err.detail);
        } else if let Some(rule) = eval.rule
            && rule.identity_required
            && verified.is_none()
            && eval.verdict != Verdict::Deny
        {
            decision.verdict = Verdict::Deny;
            decision.rule = Some(rule.id.clone());
            decision.reason = missing_reason.to_string();
            decision.message = format!(
                "rule '{}' requires identity: the action must carry a capability token in context.token",
                rule.id
            );
        } else if let Some(rule) = eval.rule {
            decision.rule = Some(rule.id.clone());
            decision.reason = match &rule.reason {
                Some(why) => why.clone(),
                None => ["rule '", &rule.id, "'"].concat(),
            };
            decision.message = rule_message(eval.verdict, &rule.id, rule.reason.as_deref());
            // The winning verdict's obligations come from every matched rule with that verdict.
            let same = eval.matched.iter().filter(|r| r.verdict == eval.verdict);
            for r in same.clone() {
                effects.add_labels.extend(r.add_labels.iter().cloned());
            }
            match eval.verdict {
                Verdict::Transform => {
                    decision.transform = same.flat_map(|r| r.transform.iter().cloned()).collect();
                    let mut args = input.args.clone();
                    transform::apply(&decision.transform, &mut args);
                    decision.args = Some(args);
                }
                Verdict::RequireApproval => {
                    for r in same {
                        for a in &r.approvers {
                            if !decision.approvers.contains(a) {
                                decision.approvers.push(a.clone());
                            }
                        }
                    }
                }
                _ => {}
            }
        } else {
            decision.reason = reason::DEFAULT.to_string();
            decision.message = [
                "no rule matched; the policy's default is ",
                eval.verdict.as_str(),
            ]
            .concat();
        }
        if let Some(v) = verified {
            decision.agent = Some(v.agent);
            decision.sponsor = Some(v.sponsor);
            decision.identity = Some(v.info);
        }
        decision
    }
}

/// What the action's arguments do. The catalog pins argument kinds for its
/// tools (`text` arguments are data and are not read); every other string is
/// classified as `auto`. Absent arguments read as `{}`.
fn classify(policy: &CompiledPolicy, action: &Action) -> Classification {
    let args = action.args.as_ref().unwrap_or(&EMPTY_OBJECT);
    let kinds = action.tool.as_deref().and_then(|t| policy.tool_args(t));
    classify_arguments(policy.intent_config(), args, kinds)
}

/// The intents' names, as the policy reads them. A single intent (the usual
/// case, e.g. `read_only`) borrows a name made once, so most decisions
/// allocate nothing here.
fn intent_names(intents: &[warden_intent::Intent]) -> Cow<'static, [String]> {
    use warden_intent::Intent;
    static NAMES: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| Intent::ALL.iter().map(|i| i.as_str().to_string()).collect());
    if let [one] = intents
        && let Some(at) = Intent::ALL.iter().position(|i| i == one)
    {
        return Cow::Borrowed(std::slice::from_ref(&NAMES[at]));
    }
    Cow::Owned(intents.iter().map(|i| i.as_str().to_string()).collect())
}

/// What the policy sees of an action.
fn input<'a>(action: &'a Action, facts: &'a action::Facts, intents: &'a [String]) -> Input<'a> {
    Input {
        point: action.point,
        tool: action.tool.as_deref(),
        agent: action.agent.as_deref(),
        session: action.session.as_deref(),
        args: action.args.as_ref().unwrap_or(&EMPTY_OBJECT),
        context: &action.context,
        labels: &facts.labels,
        intents,
        ring: facts.ring,
    }
}

/// "{verdict} by rule '{id}'", then ": {why}" when the rule gives a reason.
/// Built in one allocation: every allowing decision pays for it.
fn rule_message(verdict: Verdict, id: &str, why: Option<&str>) -> String {
    let past = verdict_past(verdict);
    match why {
        Some(why) => [past, " by rule '", id, "': ", why].concat(),
        None => [past, " by rule '", id, "'"].concat(),
    }
}

fn verdict_past(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allowed",
        Verdict::Warn => "allowed with a warning",
        Verdict::Transform => "allowed with rewritten arguments",
        Verdict::RequireApproval => "needs approval",
        Verdict::Deny => "denied",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        pub(crate) static PANIC_IN_EVALUATE: Cell<bool> = const { Cell::new(false) };
    }

    #[test]
    fn a_panic_during_evaluation_becomes_a_deny() {
        let policy =
            warden_policy::parse("p.yaml", "version: warden/v1\nname: p\ndefault: allow\n")
                .and_then(warden_policy::compile)
                .unwrap();
        let gate = Gate::new(policy);
        let action = Action::from_json(br#"{"point": "input"}"#).unwrap();
        assert_eq!(gate.decide(&action).verdict, Verdict::Allow);
        PANIC_IN_EVALUATE.with(|p| p.set(true));
        let d = gate.decide(&action);
        PANIC_IN_EVALUATE.with(|p| p.set(false));
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.reason, reason::PANIC);
        assert_eq!(d.message, "evaluation panicked: injected by test");
        assert_eq!(d.action_hash, action.hash());
    }
}
