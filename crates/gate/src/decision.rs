//! What the gate answers.

use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
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
    /// Shared with the compiled policy's rule (no copy per decision).
    pub rule: Option<Arc<str>>,
    /// Why, in short: the rule's `reason`, `default`, or a reserved `error:<kind>`.
    pub reason: String,
    /// A sentence for humans (and for the agent, when it is refused).
    pub message: String,
    /// `sha256:` + hex over the action's canonical JSON.
    pub action_hash: String,
    /// Every rule that matched, in rule order (shared with the compiled policy).
    pub matched: Vec<Arc<str>>,
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
    pub policy: Option<Arc<PolicyRef>>,
    /// The agent the action's capability token proved (its holder's DID);
    /// absent without a verified token. Set on refusals too once the token
    /// itself verified (e.g. a suspended agent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The accountable human the token names; absent without a verified token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sponsor: Option<String>,
    /// The rest of a verified identity: issuer, delegation depth, ring,
    /// token hash, whether the request was signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityInfo>,
    /// Seconds until the action would be counted again, when it was
    /// refused as `rate_limited` by a limit with a window (a per-session
    /// limit has none), or, with the gate's counter table full of live
    /// windows, until the first of them ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The approval this decision created, waits for, used or closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRef>,
    /// Labels this decision added to its session.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels_added: Vec<String>,
}

/// The approval a decision refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRef {
    /// Its id (`apr_…`).
    pub id: String,
    /// Its state after this decision.
    pub state: crate::runtime::ApprovalState,
    /// Until when it counts (ms since the Unix epoch).
    pub expires_unix_ms: u64,
}

/// What the gate established about an action's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityInfo {
    /// The issuer that minted the token chain.
    pub issuer: String,
    /// Delegations between the issuer's agent and the holder.
    pub depth: usize,
    /// The ring the action ran at (what `match.ring` saw): the agent
    /// record's, capped by the token's ceiling and any lower `context.ring`.
    pub ring: u8,
    /// `sha256:` of the token text.
    pub token: String,
    /// Whether a signed request was verified with it.
    pub signed: bool,
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
    /// The kill switch is on for everyone or for this agent.
    pub const KILLED: &str = "lifecycle:killed";
    /// A limit of the policy's `limits:` is used up.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The session's labels could not be read, so flow rules cannot be
    /// evaluated.
    pub const SESSION_UNAVAILABLE: &str = "error:session_unavailable";
    /// Allowed once by a human's approval of this exact action.
    pub const APPROVED: &str = "approval:approved";
    /// A human refused this exact action.
    pub const APPROVAL_DENIED: &str = "approval:denied";
    /// Nobody answered in time, or the approval was not used in time.
    pub const APPROVAL_EXPIRED: &str = "approval:expired";
    /// The action needs approval and the approval queue is full of live
    /// approvals (pending, or approved and not yet used), so none is
    /// created: denied until approvers answer or approvals expire.
    pub const APPROVAL_QUEUE_FULL: &str = "approval:queue_full";

    // Identity. A token that does not verify is `identity:` + the
    // `warden_identity::TokenError::code()`, e.g. `identity:token_expired`,
    // `identity:token_revoked`, `identity:token_unknown_issuer`,
    // `identity:token_too_deep`, `identity:token_bad_signature`.

    /// Identity is required (by the policy, or by the rule that decided)
    /// and the action carries no token in `context.token`.
    pub const TOKEN_MISSING: &str = "identity:token_missing";
    /// `context.token` is not a string.
    pub const TOKEN_NOT_A_STRING: &str = "identity:token_not_a_string";
    /// The policy requires identity and the gate has no identity context.
    pub const IDENTITY_UNAVAILABLE: &str = "identity:unavailable";
    /// `action.agent` is not the token's holder.
    pub const AGENT_MISMATCH: &str = "identity:agent_mismatch";
    /// The token's holder has no agent record.
    pub const AGENT_UNKNOWN: &str = "identity:agent_unknown";
    /// The agent is suspended.
    pub const AGENT_SUSPENDED: &str = "identity:agent_suspended";
    /// The agent is decommissioned.
    pub const AGENT_DECOMMISSIONED: &str = "identity:agent_decommissioned";
    /// The agent is provisioned but not yet active.
    pub const AGENT_NOT_ACTIVE: &str = "identity:agent_not_active";
    /// The stored agent record does not parse, or is another agent's.
    pub const AGENT_RECORD_INVALID: &str = "identity:agent_record_invalid";
    /// Agent records or revocations could not be read.
    pub const STORE_UNAVAILABLE: &str = "identity:store_unavailable";
    /// The token does not grant the tool (whatever the policy says).
    pub const TOOL_NOT_GRANTED: &str = "identity:tool_not_granted";
    /// `context.ring` claims a more privileged ring than the agent's record.
    pub const RING_CLAIM_REFUSED: &str = "identity:ring_claim_refused";
    /// The policy requires signed requests and `context.signature` is absent.
    pub const SIGNATURE_MISSING: &str = "identity:signature_missing";
    /// `context.signature` without `context.token`.
    pub const SIGNATURE_WITHOUT_TOKEN: &str = "identity:signature_without_token";
    /// `context.signature` is not a signed request.
    pub const SIGNATURE_MALFORMED: &str = "identity:signature_malformed";
    /// The request is signed by someone other than the token's holder.
    pub const SIGNATURE_WRONG_SIGNER: &str = "identity:signature_wrong_signer";
    /// The request was signed for another action.
    pub const SIGNATURE_ACTION_MISMATCH: &str = "identity:signature_action_mismatch";
    /// The signature's timestamp is outside the allowed skew.
    pub const SIGNATURE_SKEW: &str = "identity:signature_skew";
    /// The signature does not verify under the signer's key.
    pub const SIGNATURE_INVALID: &str = "identity:signature_invalid";
    /// The nonce was used before.
    pub const SIGNATURE_REPLAYED: &str = "identity:signature_replayed";
    /// The replay cache is full; refused rather than forgetting a nonce.
    pub const SIGNATURE_REPLAY_CACHE_FULL: &str = "identity:signature_replay_cache_full";
}

impl Decision {
    /// A `deny` with a reserved reason and no rule.
    pub(crate) fn error(reason: &str, message: String, action_hash: String) -> Decision {
        Decision {
            reason: reason.to_string(),
            message,
            ..Decision::base(Verdict::Deny, action_hash)
        }
    }

    /// `verdict` about the action hashing to `action_hash`, every other field empty.
    pub(crate) fn base(verdict: Verdict, action_hash: String) -> Decision {
        Decision {
            verdict,
            rule: None,
            reason: String::new(),
            message: String::new(),
            action_hash,
            matched: Vec::new(),
            intents: Vec::new(),
            findings: Vec::new(),
            seq: None,
            transform: Vec::new(),
            args: None,
            approvers: Vec::new(),
            policy: None,
            agent: None,
            sponsor: None,
            identity: None,
            retry_after: None,
            approval: None,
            labels_added: Vec::new(),
        }
    }
}
