//! What the gate answers.

use serde::Serialize;
use serde_json::Value;
use warden_intent::{Finding, Intent};
use warden_policy::{TransformOp, Verdict};

/// The gate's answer about one action.
///
/// JSON: `{"verdict": "deny", "rule": "block-destructive", "reason": "…",
/// "message": "…", "action_hash": "sha256:…", "matched": ["…"],
/// "intents": ["destructive"], "findings": […], "seq": 41, "transform": […]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// The rule that decided; `null` when the policy default applied or no policy ran.
    pub rule: Option<String>,
    /// Why, in short: the rule's `reason`, `default`, or a reserved `error:<kind>`.
    pub reason: String,
    /// A sentence for humans (and for the agent, when it is refused).
    pub message: String,
    /// `sha256:` + hex over the action's canonical JSON.
    pub action_hash: String,
    /// Every rule that matched, in rule order.
    pub matched: Vec<String>,
    /// What the arguments do, as the classifier read them (what
    /// `match.intents` and CEL's `intents` saw). Empty when the action was
    /// refused before classification.
    pub intents: Vec<Intent>,
    /// The evidence for each intent: what was found, where, by which parser.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// The decision's sequence number in the audit log, once it is recorded
    /// there (outcomes refer to it). `None` when the gate has no audit log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Rewrites applied to the arguments (when the verdict is `transform`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transform: Vec<TransformOp>,
    /// The arguments after the rewrites (when the verdict is `transform`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Who may approve (when the verdict is `require_approval`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// The policy that decided: its name and hash; `null` when none was loaded.
    pub policy: Option<PolicyRef>,
}

/// Which policy made a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    /// The policy's `name:`.
    pub name: String,
    /// `sha256:` over the policy's sources.
    pub hash: String,
}

/// The reserved reasons of decisions the gate makes without a rule.
pub mod reason {
    /// No policy is loaded: everything is denied.
    pub const NO_POLICY: &str = "error:no_policy";
    /// The action failed validation.
    pub const INVALID_ACTION: &str = "error:invalid_action";
    /// Evaluation panicked; the panic was caught at the gate.
    pub const PANIC: &str = "error:panic";
    /// The decision could not be recorded in the audit log, so it is a deny.
    pub const AUDIT_UNAVAILABLE: &str = "error:audit_unavailable";
    /// No rule matched; the policy's default applied.
    pub const DEFAULT: &str = "default";
}

impl Decision {
    /// A `deny` with a reserved reason and no rule.
    pub(crate) fn error(reason: &str, message: String, action_hash: String) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            rule: None,
            reason: reason.to_string(),
            message,
            action_hash,
            matched: Vec::new(),
            intents: Vec::new(),
            findings: Vec::new(),
            seq: None,
            transform: Vec::new(),
            args: None,
            approvers: Vec::new(),
            policy: None,
        }
    }
}
