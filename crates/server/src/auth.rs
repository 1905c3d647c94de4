//! Who may call what.
//!
//! Three roles: `agent` (decide, outcomes), `approver` (approvals) and
//! `admin` (agents, kill switch, policy reload, audit reads; an admin may
//! do everything). Callers present `Authorization: Bearer <token>`; the
//! tokens come from a YAML file given with `--auth`:
//!
//! ```yaml
//! tokens:
//!   - {name: support-bot, role: agent, token: "a long random string"}
//!   - {name: dba-oncall@example.com, role: approver, token_sha256: "9f86d0…"}
//!   - {name: alice@example.com, role: admin, token_sha256: "…"}
//! ```
//!
//! `token_sha256` (hex SHA-256 of the token) keeps the secret out of the
//! file. An approver's `name` is what an approval's `approvers` list
//! names. An agent token may be bound to one agent (`agent: <DID or
//! name>`): its actions then act as that agent (an action naming none is
//! given it, one naming another is refused with 403 `agent_mismatch`), so
//! the agent's kill switch and limits (and its status, when bound by DID)
//! cannot be dodged by renaming it. An approver (or admin) may be given a key (`key: <did:key>`):
//! its answers to approvals must then carry its Ed25519 signature over the
//! exact answer (`warden approvals approve --key FILE` makes it; see
//! `warden_identity::approval`), so the audit log proves who approved what,
//! not only which token was used. Without `--auth` every caller has every
//! role, which the server only allows on a loopback address.
//!
//! With `--auth`, an agent may instead present its capability token as the
//! bearer token, when the policy names issuers that the server trusts: a
//! token that verifies (signature, expiry, revocation) calls with the
//! `agent` role, named and bound by its holder's DID, and the token goes
//! into `context.token` of an action that carries none, so the gate checks
//! its rights as well. A route that does not pass the token on to the
//! gate must refuse such a caller (`Principal::capability`), as the MCP
//! proxy's endpoint does.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use arc_swap::ArcSwap;
use warden_gate::Gate;
use warden_identity::{DID_KEY_PREFIX, Did};

use crate::{ApiError, AppState};

/// Shortest token accepted in the file.
pub const MIN_TOKEN_BYTES: usize = 16;

/// A role of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Decide and report outcomes.
    Agent,
    /// Answer approvals.
    Approver,
    /// Everything.
    Admin,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    fn grants(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The name in the tokens file, or `local` without authentication.
    pub name: String,
    /// The role; `None` without authentication (every role).
    pub role: Option<Role>,
    /// The one agent an agent token acts as, if its entry names one.
    pub agent: Option<String>,
    /// The key an approver's answers must be signed with, if its entry
    /// gives one.
    pub key: Option<Did>,
    /// The capability token the caller authenticated with, if it did.
    pub capability: Option<String>,
}

impl Principal {
    /// Whether this is an authenticated caller (not the local anyone).
    pub fn authenticated(&self) -> bool {
        self.role.is_some()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tokens: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    role: Role,
    token: Option<String>,
    token_sha256: Option<String>,
    agent: Option<String>,
    key: Option<String>,
}

/// The bearer tokens, by the SHA-256 of the token.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    tokens: Option<Arc<HashMap<[u8; 32], Principal>>>,
}

impl Auth {
    /// No authentication: every caller has every role.
    pub fn disabled() -> Auth {
        Auth { tokens: None }
    }

    /// Whether tokens are required.
    pub fn enabled(&self) -> bool {
        self.tokens.is_some()
    }

    /// Reads the tokens file.
    pub fn from_file(path: &Path) -> Result<Auth> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the auth file '{}'", path.display()))?;
        Auth::parse(&text).with_context(|| format!("auth file '{}'", path.display()))
    }

    /// Parses the tokens file's text.
    pub fn parse(text: &str) -> Result<Auth> {
        let mut options = serde_saphyr::Options::default();
        options.strict_booleans = true;
        let file: File = serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if file.tokens.is_empty() {
            bail!(
                "'tokens' is empty: give at least one token, or run without --auth on a loopback address"
            );
        }
        let mut tokens = HashMap::new();
        // The key of each name that may answer approvals: every such token
        // of a name must carry the same one, or a keyless twin could answer
        // for a keyed approver without signing.
        let mut approver_keys: HashMap<String, Option<Did>> = HashMap::new();
        for (i, e) in file.tokens.into_iter().enumerate() {
            let at = format!("tokens[{i}] ({})", e.name);
            if e.name.trim().is_empty() || e.name.chars().any(char::is_control) {
                bail!("{at}: 'name' must be printable text");
            }
            let hash: [u8; 32] = match (e.token, e.token_sha256) {
                (Some(t), None) => {
                    if t.len() < MIN_TOKEN_BYTES {
                        bail!("{at}: the token is shorter than {MIN_TOKEN_BYTES} bytes");
                    }
                    Sha256::digest(t.as_bytes()).into()
                }
                (None, Some(h)) => {
                    let bytes = hex::decode(h.trim())
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok());
                    match bytes {
                        Some(b) => b,
                        None => bail!("{at}: 'token_sha256' must be 64 hex digits"),
                    }
                }
                (Some(_), Some(_)) => bail!("{at}: give 'token' or 'token_sha256', not both"),
                (None, None) => bail!("{at}: give 'token' or 'token_sha256'"),
            };
            if let Some(agent) = &e.agent {
                if e.role != Role::Agent {
                    bail!(
                        "{at}: 'agent' binds an agent token; this one has the {} role",
                        e.role.as_str()
                    );
                }
                if agent.trim().is_empty() || agent.chars().any(char::is_control) {
                    bail!("{at}: 'agent' must be printable text");
                }
            }
            let key = match &e.key {
                None => None,
                Some(_) if !e.role.grants(Role::Approver) => bail!(
                    "{at}: 'key' signs answers to approvals; this entry has the {} role",
                    e.role.as_str()
                ),
                Some(text) => Some(
                    Did::parse(text.trim())
                        .map_err(|err| anyhow::anyhow!("{at}: 'key' is not a did:key: {err}"))?,
                ),
            };
            // A name that is a did:key is that key.
            let key = if e.name.starts_with(DID_KEY_PREFIX) {
                let named = Did::parse(&e.name).map_err(|err| {
                    anyhow::anyhow!("{at}: the name starts with did:key: but is not one: {err}")
                })?;
                if key.as_ref().is_some_and(|k| *k != named) {
                    bail!("{at}: 'key' must be the did:key the name is, or be left out");
                }
                Some(named)
            } else {
                key
            };
            if e.role.grants(Role::Approver) {
                match approver_keys.get(&e.name) {
                    Some(seen) if *seen != key => bail!(
                        "{at}: another token of '{}' has {}; every approver token of a name must carry the same key",
                        e.name,
                        seen.as_ref()
                            .map_or("no key".to_string(), |k| format!("key {k}"))
                    ),
                    Some(_) => {}
                    None => {
                        approver_keys.insert(e.name.clone(), key.clone());
                    }
                }
            }
            let principal = Principal {
                name: e.name,
                role: Some(e.role),
                agent: e.agent,
                key,
                capability: None,
            };
            if tokens.insert(hash, principal).is_some() {
                bail!("{at}: the same token is given twice");
            }
        }
        Ok(Auth {
            tokens: Some(Arc::new(tokens)),
        })
    }

    /// The caller behind an `Authorization` header value: a token of the
    /// file, or else a capability token that the identity context of the
    /// gate deciding now (if any) verifies.
    pub fn authenticate(
        &self,
        header: Option<&str>,
        gate: Option<&ArcSwap<Gate>>,
    ) -> Result<Principal, ApiError> {
        let Some(tokens) = &self.tokens else {
            return Ok(Principal {
                name: "local".into(),
                role: None,
                agent: None,
                key: None,
                capability: None,
            });
        };
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", m);
        let header = header
            .ok_or_else(|| unauthorized("this route needs 'Authorization: Bearer <token>'"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthorized("the Authorization header must be 'Bearer <token>'"))?;
        let hash: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        if let Some(principal) = tokens.get(&hash) {
            return Ok(principal.clone());
        }
        let gate = gate.map(ArcSwap::load);
        let Some(identity) = gate.as_ref().and_then(|g| g.identity()) else {
            return Err(unauthorized("the bearer token is not known"));
        };
        let verified = identity
            .verifier()
            .verify(token, SystemTime::now())
            .map_err(|e| {
                unauthorized(&format!(
                    "the bearer token is neither in the tokens file nor a capability token this server accepts ({})",
                    e.code()
                ))
            })?;
        let holder = verified.holder().to_string();
        Ok(Principal {
            name: holder.clone(),
            role: Some(Role::Agent),
            agent: Some(holder),
            key: None,
            capability: Some(token.trim().to_string()),
        })
    }

    /// The caller behind `headers`, if it holds `role`: 401 for no or an
    /// unknown token, 403 for a role that does not grant `role`.
    pub fn authorize(
        &self,
        headers: &axum::http::HeaderMap,
        role: Role,
        gate: &ArcSwap<Gate>,
    ) -> Result<Principal, ApiError> {
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let principal = self.authenticate(header, Some(gate))?;
        if let Some(has) = principal.role
            && !has.grants(role)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "'{}' has the {} role; this route needs {}",
                    principal.name,
                    has.as_str(),
                    role.as_str()
                ),
            ));
        }
        Ok(principal)
    }
}

impl Principal {
    /// Makes `action` this caller's: names the caller (an authenticated
    /// token's name) for the audit record, and makes the action act as the
    /// agent the token is bound to: fills in an action that names no
    /// agent, refuses one that names another (403 `agent_mismatch`).
    pub fn bind(&self, action: &mut warden_gate::Action) -> Result<(), ApiError> {
        if self.authenticated() {
            action.caller = Some(self.name.clone());
        }
        if let Some(token) = &self.capability
            && !action.context.contains_key("token")
        {
            action
                .context
                .insert("token".into(), serde_json::Value::String(token.clone()));
        }
        let Some(bound) = &self.agent else {
            return Ok(());
        };
        match &action.agent {
            None => {
                action.agent = Some(bound.clone());
                Ok(())
            }
            Some(named) if named == bound => Ok(()),
            Some(named) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "agent_mismatch",
                format!(
                    "the token of '{}' acts only as agent '{bound}', and this action names '{named}'",
                    self.name
                ),
            )),
        }
    }
}

/// Middleware: the caller must hold `role` ([`Auth::authorize`]); the
/// principal is put in the request's extensions.
pub async fn require(
    State((state, role)): State<(Arc<AppState>, Role)>,
    mut request: Request,
    next: Next,
) -> Response {
    match state.auth.authorize(request.headers(), role, &state.gate) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file_errors_name_the_entry() {
        for (text, needle) in [
            ("tokens: []", "'tokens' is empty"),
            (
                "tokens:\n  - {name: a, role: agent, token: short}",
                "shorter than",
            ),
            ("tokens:\n  - {name: a, role: agent}", "give 'token' or"),
            (
                "tokens:\n  - {name: a, role: root, token: 0123456789abcdef}",
                "root",
            ),
            (
                "tokens:\n  - {name: a, role: agent, token_sha256: xyz}",
                "64 hex",
            ),
            (
                "tokens:\n  - {name: a, role: agent, token: 0123456789abcdef}\n  - {name: b, role: admin, token: 0123456789abcdef}",
                "twice",
            ),
            (
                "tokens:\n  - {name: a, role: agent, token: 0123456789abcdef, extra: 1}",
                "extra",
            ),
            (
                "tokens:\n  - {name: a, role: approver, token: 0123456789abcdef, agent: x}",
                "'agent' binds an agent token",
            ),
            (
                "tokens:\n  - {name: a, role: agent, token: 0123456789abcdef, agent: ' '}",
                "'agent' must be printable",
            ),
            (
                "tokens:\n  - {name: a, role: agent, token: 0123456789abcdef, key: did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK}",
                "'key' signs answers to approvals; this entry has the agent role",
            ),
            (
                "tokens:\n  - {name: a, role: approver, token: 0123456789abcdef, key: did:key:z6Mk}",
                "tokens[0] (a): 'key' is not a did:key",
            ),
            (
                "tokens:\n  - {name: a, role: approver, token: 0123456789abcdef, key: did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK}\n  - {name: a, role: admin, token: 0123456789abcdeg}",
                "tokens[1] (a): another token of 'a' has key did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            ),
            (
                "tokens:\n  - {name: 'did:key:z6Mk', role: approver, token: 0123456789abcdef}",
                "the name starts with did:key: but is not one",
            ),
            (
                "tokens:\n  - {name: 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', role: approver, token: 0123456789abcdef, key: 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'}",
                "'key' must be the did:key the name is",
            ),
        ] {
            let err = format!("{:#}", Auth::parse(text).unwrap_err());
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn bearer_tokens_map_to_principals() {
        let hash = hex::encode(Sha256::digest(b"approver-token-123"));
        let auth = Auth::parse(&format!(
            "tokens:\n  - {{name: bot, role: agent, token: agent-token-12345}}\n  - {{name: dba@example.com, role: approver, token_sha256: {hash}}}"
        ))
        .unwrap();
        let bot = auth
            .authenticate(Some("Bearer agent-token-12345"), None)
            .unwrap();
        assert_eq!((bot.name.as_str(), bot.role), ("bot", Some(Role::Agent)));
        let dba = auth
            .authenticate(Some("Bearer approver-token-123"), None)
            .unwrap();
        assert_eq!(dba.role, Some(Role::Approver));
        assert_eq!(
            auth.authenticate(None, None).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            auth.authenticate(Some("Bearer nope-nope-nope-nope"), None)
                .unwrap_err()
                .code,
            "unauthenticated"
        );
        assert_eq!(
            auth.authenticate(Some("Basic abc"), None)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(dba.key, None);
        let did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
        let keyed = Auth::parse(&format!(
            "tokens:\n  - {{name: root, role: admin, token: admin-token-12345, key: '{did}'}}"
        ))
        .unwrap()
        .authenticate(Some("Bearer admin-token-12345"), None)
        .unwrap();
        assert_eq!(keyed.key.map(|k| k.to_string()).as_deref(), Some(did));
        assert!(Role::Admin.grants(Role::Approver));
        assert!(!Role::Agent.grants(Role::Approver));
    }
}
