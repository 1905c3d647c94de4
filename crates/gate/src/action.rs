//! The action an agent wants to take, as it arrives from any entry point.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use warden_policy::Point;

/// Largest action document accepted, in bytes.
pub const MAX_ACTION_BYTES: usize = 1024 * 1024;
/// Longest tool name, agent, session id or label.
pub const MAX_NAME_BYTES: usize = 512;
/// Most labels in `context`.
pub const MAX_TAGS: usize = 256;

/// What an agent wants to do.
///
/// JSON: `{"agent": "did:key:…", "session": "s-1", "point": "pre_tool_call",
/// "tool": "db.query", "args": {…}, "context": {"labels": […], "ring": 2}}`.
/// Only `point` (and `tool` at tool points) is required; unknown top-level
/// fields are an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The agent's DID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The session the action belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The intervention point.
    pub point: Point,
    /// The tool, at tool points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Tool arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Free-form context. `labels` (a list of strings), `ring` (0–3),
    /// `token` (a capability token) and `signature` (a signed request) have
    /// meaning to the gate. `intents` is refused: the gate reads intents from
    /// the arguments itself, and an agent must not be able to claim them.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
    /// Who relayed the action: the decision server sets the name of the
    /// caller's bearer token, and the audit record keeps it. Never read
    /// from the action's JSON (a `caller` field there is refused) and not
    /// part of the action's hash.
    #[serde(skip)]
    pub caller: Option<String>,
}

/// Why an action was refused before evaluation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The document is larger than [`MAX_ACTION_BYTES`].
    #[error("action is {0} bytes; the limit is {MAX_ACTION_BYTES}")]
    TooLarge(usize),
    /// The document is not valid JSON for an action.
    #[error("invalid action JSON: {0}")]
    Json(String),
    /// A field has a value the gate will not evaluate.
    #[error("invalid action: {field}: {problem}")]
    Invalid {
        /// The field, e.g. `tool` or `context.ring`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ActionError {
    ActionError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// Characters that render as nothing or reorder text: a name containing one
/// could look like an allowed name while matching none of the rules.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
            | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{E0000}'..='\u{E0FFF}')
}

fn check_name(field: &'static str, value: &str) -> Result<(), ActionError> {
    if value.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(invalid(
            field,
            format!("is longer than {MAX_NAME_BYTES} bytes"),
        ));
    }
    // Printable ASCII is never invisible; only other names need the char walk.
    if value.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    if let Some(c) = value.chars().find(|c| is_invisible(*c)) {
        return Err(invalid(
            field,
            format!(
                "contains the invisible or control character U+{:04X}",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// The parts of `context` the gate reads, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Facts {
    pub labels: Vec<String>,
    pub ring: u8,
}

/// The ring of an agent that did not say otherwise: the least privileged.
pub const DEFAULT_RING: u8 = 3;

fn tags(v: Option<&Value>, key: &'static str) -> Result<Vec<String>, ActionError> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = v else {
        return Err(invalid(key, "must be a list of strings"));
    };
    if items.len() > MAX_TAGS {
        return Err(invalid(key, format!("has more than {MAX_TAGS} items")));
    }
    items
        .iter()
        .map(|i| match i {
            Value::String(s) => check_name(key, s).map(|()| s.clone()),
            _ => Err(invalid(key, "must be a list of strings")),
        })
        .collect()
}

impl Action {
    /// Parses and checks an action document.
    pub fn from_json(bytes: &[u8]) -> Result<Action, ActionError> {
        if bytes.len() > MAX_ACTION_BYTES {
            return Err(ActionError::TooLarge(bytes.len()));
        }
        let action: Action =
            serde_json::from_slice(bytes).map_err(|e| ActionError::Json(e.to_string()))?;
        action.check()?;
        Ok(action)
    }

    /// Checks an action built in code or parsed elsewhere.
    pub fn check(&self) -> Result<(), ActionError> {
        self.facts().map(|_| ())
    }

    pub(crate) fn facts(&self) -> Result<Facts, ActionError> {
        match (&self.tool, self.point.is_tool_point()) {
            (Some(t), _) => check_name("tool", t)?,
            (None, true) => {
                return Err(invalid("tool", format!("is required at {}", self.point)));
            }
            (None, false) => {}
        }
        if let Some(a) = &self.agent {
            check_name("agent", a)?;
        }
        if let Some(s) = &self.session {
            check_name("session", s)?;
        }
        // One pass over the context for the keys the gate reads (cheaper
        // than hashing each key into it); checked in the order below.
        let (mut labels, mut intents, mut ring) = (None, false, None);
        for (k, v) in &self.context {
            match k.as_str() {
                "labels" => labels = Some(v),
                "intents" => intents = true,
                "ring" => ring = Some(v),
                _ => {}
            }
        }
        let labels = tags(labels, "labels")?;
        if intents {
            return Err(invalid(
                "context.intents",
                "intents are read from the arguments by the gate and cannot be declared by the caller; remove 'intents' from 'context'",
            ));
        }
        let ring = match ring {
            None => DEFAULT_RING,
            Some(v) => match v.as_u64() {
                Some(r @ 0..=3) => r as u8,
                _ => return Err(invalid("ring", "must be an integer from 0 to 3")),
            },
        };
        Ok(Facts { labels, ring })
    }

    /// `sha256:` + hex of SHA-256 over the action's canonical JSON.
    pub fn hash(&self) -> String {
        crate::canonical::action_hash(self)
    }

    /// What a signed request (`context.signature`) signs: the action hash of
    /// this action without `context.signature` (a signature cannot cover
    /// itself). Everything else, the token included, is covered.
    pub fn hash_for_signing(&self) -> String {
        if !self.context.contains_key("signature") {
            return self.hash();
        }
        let mut unsigned = self.clone();
        unsigned.context.remove("signature");
        unsigned.hash()
    }
}
