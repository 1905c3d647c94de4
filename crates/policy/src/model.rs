//! The policy as written: the `warden/v1` document model, before compilation.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every spelling, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The spelling used in policies and JSON.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(()) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// Where in an agent's loop an action is intercepted.
    Point {
        /// The agent starts.
        AgentStartup = "agent_startup",
        /// Input reaches the agent.
        Input = "input",
        /// Before a model call.
        PreModelCall = "pre_model_call",
        /// After a model call.
        PostModelCall = "post_model_call",
        /// Before a tool call.
        PreToolCall = "pre_tool_call",
        /// After a tool call, over its result.
        PostToolCall = "post_tool_call",
        /// Output leaves the agent.
        Output = "output",
        /// The agent stops.
        AgentShutdown = "agent_shutdown",
        /// A message to another agent.
        Message = "message",
        /// A delegation to another agent.
        Delegation = "delegation",
    }
}

impl Point {
    /// Points at which an action names a tool.
    pub fn is_tool_point(self) -> bool {
        matches!(self, Point::PreToolCall | Point::PostToolCall)
    }
}

string_enum! {
    /// What the gate says about an action. Ordered by precedence: a later
    /// variant overrides an earlier one (deny-overrides).
    Verdict {
        /// Go ahead.
        Allow = "allow",
        /// Go ahead, but flag it.
        Warn = "warn",
        /// Go ahead with rewritten (e.g. redacted) arguments.
        Transform = "transform",
        /// A human must approve first.
        RequireApproval = "require_approval",
        /// Refused.
        Deny = "deny",
    }
}

/// The verdict a policy gives when no rule matches. Must be written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultVerdict {
    /// Allow what no rule matched.
    Allow,
    /// Deny what no rule matched.
    Deny,
}

impl DefaultVerdict {
    /// The default as a verdict.
    pub fn verdict(self) -> Verdict {
        match self {
            DefaultVerdict::Allow => Verdict::Allow,
            DefaultVerdict::Deny => Verdict::Deny,
        }
    }
}

/// A whole policy: the root file with its includes merged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The `name:` of the root file.
    pub name: String,
    /// The verdict when no rule matches.
    pub default: DefaultVerdict,
    /// Every rule, includes first (depth-first, in `include:` order), then the file's own.
    pub rules: Vec<Rule>,
    /// The tool catalog: metadata per tool name.
    pub tools: BTreeMap<String, ToolSpec>,
    /// `egress:` — hosts URL arguments may name (`api.example.com`,
    /// `*.example.com`), merged from every file. `None` when no file sets it:
    /// hosts are then not judged by name.
    pub egress: Option<Vec<String>>,
    /// `audit:` — what the audit log keeps of each decision.
    pub audit: AuditSettings,
    /// `identity:` — whether actions must prove who sends them, and whose
    /// tokens are trusted.
    pub identity: IdentitySettings,
    /// `rings:` — the trust scores that earn rings 2 and 1.
    pub rings: warden_identity::RingThresholds,
    /// `limits:` — call limits per agent and per tool, merged from every file.
    pub limits: crate::Limits,
    /// Every source that went into this policy, in load order: (path, text).
    pub sources: Vec<(String, String)>,
}

/// Where a rule was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub file: String,
    /// 1-based line of the rule's first key.
    pub line: u64,
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique id; names the decision when this rule wins.
    pub id: Arc<str>,
    /// Free text for humans.
    pub description: Option<String>,
    /// Intervention points the rule applies to (default `[pre_tool_call]`).
    pub on: Vec<Point>,
    /// Structural matchers; every one given must hold.
    pub matcher: Matcher,
    /// Optional CEL condition, evaluated only when the matchers hold.
    pub when: Option<Spanned<String>>,
    /// What the rule says when it matches.
    pub verdict: Verdict,
    /// Short reason, copied to the decision.
    pub reason: Option<String>,
    /// Who may approve (for `require_approval`).
    pub approvers: Vec<String>,
    /// Argument rewrites (for `transform`).
    pub transform: Vec<TransformOp>,
    /// `visibility: hidden` — the tools this rule names are not listed to agents.
    pub hidden: bool,
    /// `identity: required` — when this rule decides, the action must carry
    /// a valid capability token; without one the decision is `deny`.
    pub identity_required: bool,
    /// `add_labels:` — labels that enter the action's session when this rule
    /// decides. Never set on a `deny` rule.
    pub add_labels: Vec<String>,
    /// Where the rule was written.
    pub origin: Origin,
}

/// A value with the position it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// The file it was written in.
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

/// The structural part of a rule's `match:`.
#[derive(Debug, Clone, PartialEq, core::default::Default)]
pub struct Matcher {
    /// Tool-name globs; empty means any tool (or none).
    pub tools: Vec<String>,
    /// Agent DID or glob.
    pub agent: Option<String>,
    /// Lowest ring number the agent may have (ring 0 is most privileged).
    pub ring_min: Option<u8>,
    /// Highest ring number the agent may have.
    pub ring_max: Option<u8>,
    /// Session labels that must be present.
    pub labels: SetMatch,
    /// Intents that must be present.
    pub intents: SetMatch,
}

/// A set condition: `[a, b]` (all present), `{all: [...]}` or `{any: [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, core::default::Default)]
pub enum SetMatch {
    /// No condition.
    #[default]
    Unset,
    /// Every item must be present.
    All(Vec<String>),
    /// At least one item must be present.
    Any(Vec<String>),
}

impl SetMatch {
    /// Whether `present` satisfies the condition.
    pub fn holds(&self, present: &[String]) -> bool {
        match self {
            SetMatch::Unset => true,
            SetMatch::All(want) => want.iter().all(|w| present.contains(w)),
            SetMatch::Any(want) => want.iter().any(|w| present.contains(w)),
        }
    }
}

/// One rewrite of the arguments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransformOp {
    /// Dotted path into `args`; `*` matches every key or index, a number indexes a list.
    pub path: String,
    /// What to put there.
    #[serde(flatten)]
    pub action: TransformAction,
}

/// What a transform does at its path.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransformAction {
    /// Replace the value with the redaction marker.
    Redact(bool),
    /// Replace the value with this one.
    Replace(serde_json::Value),
}

/// Catalog entry for one tool.
#[derive(Debug, Clone, PartialEq, core::default::Default)]
pub struct ToolSpec {
    /// Free text for humans.
    pub description: Option<String>,
    /// Labels the tool's results add to the session.
    pub labels: Vec<String>,
    /// Argument name to kind (`sql`, `shell`, `url`, `path`, `text`, `auto`).
    pub args: BTreeMap<String, String>,
    /// `findings: allow` — the MCP proxy lists this tool even when the
    /// scanner finds something of high severity in its definition
    /// (`findings: hide`, the default, keeps such a tool from the agent).
    pub findings_allowed: bool,
}

/// What the audit log keeps of a decision (`audit:` in a policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditSettings {
    /// How the action's arguments are recorded.
    pub arguments: AuditArguments,
}

/// How a decision record holds the action's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditArguments {
    /// The arguments' canonical JSON (the default).
    #[default]
    Full,
    /// Only the SHA-256 of the arguments' canonical JSON.
    Hash,
}

impl AuditArguments {
    /// The spelling used in policies: `full` or `hash`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditArguments::Full => "full",
            AuditArguments::Hash => "hash",
        }
    }
}

/// Who may act (`identity:` in a policy).
///
/// ```yaml
/// identity:
///   required: true                 # every action must carry a valid token
///   issuers: [did:key:z6Mk…]       # trusted token issuers (besides the caller's own)
///   signed_requests: required      # actions with a token must also be signed
/// ```
///
/// `identity: required` is short for `identity: {required: true}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentitySettings {
    /// Every action must carry a valid capability token (`context.token`).
    pub required: bool,
    /// Issuers whose tokens are trusted, merged from every file.
    pub issuers: Vec<warden_identity::Did>,
    /// Whether an action that carries a token must also carry a signed request.
    pub signed_requests: SignedRequests,
}

/// Whether signed requests are needed (`identity.signed_requests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignedRequests {
    /// A signature is checked when present (the default).
    #[default]
    Optional,
    /// Every action that carries a token must carry a signature too.
    Required,
}

impl SignedRequests {
    /// The spelling used in policies: `optional` or `required`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignedRequests::Optional => "optional",
            SignedRequests::Required => "required",
        }
    }
}

/// Argument kinds a catalog may pin: the names of `warden_intent::Kind`
/// (`text` is data, never read).
pub const ARG_KINDS: &[&str] = &["sql", "shell", "url", "path", "text", "auto"];
