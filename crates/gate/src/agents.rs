//! Agent records in the store and their lifecycle: register an agent, list
//! and look agents up, and move them along
//! `provisioned → active ⇄ suspended → decommissioned`.
//!
//! This is the one implementation behind `warden agent` and the HTTP API.
//! Every change is an audit event written in the same transaction as the
//! record it explains ([`Store::append_with`]): `agent.created` when an agent
//! is registered, `agent.status` for each move, and `token.revoked` for each
//! credential a decommission revokes. Each event names the caller's actor
//! (`cli:alice`, `api:admin`).
//!
//! The module keeps no keys and touches no files: an agent is registered
//! from its DID, and whoever holds its private key keeps it. Time is an
//! argument.
//!
//! ```
//! use std::time::SystemTime;
//! use rand::SeedableRng;
//! use warden_gate::agents::{Agents, Transition};
//! use warden_identity::{IdentityKey, Sponsor, Status};
//! use warden_store::{SqliteStore, StoreConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let store = SqliteStore::open(dir.path(), StoreConfig::default())?;
//! let agents = Agents::new(&store, "api:admin");
//! let key = IdentityKey::generate(&mut rand::rngs::StdRng::seed_from_u64(7));
//! let now = SystemTime::now();
//!
//! let sponsor = Sponsor::parse("alice@example.com")?;
//! let agent = agents.create(key.did().clone(), "reporter", sponsor, false, now, Default::default())?;
//! assert_eq!(agent.status(), Status::Active);
//!
//! let moved = agents.transition(key.did(), Transition::Suspend, "investigating", now)?;
//! assert_eq!((moved.from, moved.to), (Status::Active, Status::Suspended));
//!
//! // Resume leads back to active, but only from suspended.
//! let refused = agents.transition(key.did(), Transition::Activate, "", now).unwrap_err();
//! assert_eq!(refused.code(), "invalid_transition");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use warden_audit::{DecodeError, EventRecord, Record};
use warden_identity::{
    Agent, AgentError, Did, DidError, LifecycleError, RevocationId, Sponsor, SponsorError, Status,
    TokenError, TrustConfig, format_rfc3339, validate_agent_name,
};
use warden_store::{StateChange, Store, StoreError, entries_from};

use crate::runtime::Runtime;

/// Longest reason accepted for a lifecycle move or a revocation, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// The agents of one store, changed on behalf of one actor.
pub struct Agents<'s> {
    store: &'s dyn Store,
    actor: String,
    /// Told of every agent record written, so that a status change
    /// stops (or frees) actions that name the agent at once.
    runtime: Option<&'s Runtime>,
}

impl std::fmt::Debug for Agents<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents")
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// One move along the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// provisioned → active: allow a provisioned agent to act.
    Activate,
    /// active → suspended: stop an agent for now.
    Suspend,
    /// suspended → active: let a suspended agent act again.
    Resume,
    /// any → decommissioned, for good: its recorded credentials are revoked.
    Decommission,
}

impl Transition {
    /// Every move, in lifecycle order.
    pub const ALL: [Transition; 4] = [
        Transition::Activate,
        Transition::Suspend,
        Transition::Resume,
        Transition::Decommission,
    ];

    /// The move's name, as the CLI command and the API path say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Activate => "activate",
            Transition::Suspend => "suspend",
            Transition::Resume => "resume",
            Transition::Decommission => "decommission",
        }
    }

    /// The move named `name` (`activate`, `suspend`, `resume`, `decommission`).
    pub fn parse(name: &str) -> Option<Transition> {
        Transition::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The status the agent ends in.
    pub fn target(self) -> Status {
        match self {
            Transition::Activate | Transition::Resume => Status::Active,
            Transition::Suspend => Status::Suspended,
            Transition::Decommission => Status::Decommissioned,
        }
    }

    /// The one status this move starts from, when the lifecycle alone
    /// would allow more: `activate` and `resume` both lead to active, each
    /// from one state only.
    pub fn requires(self) -> Option<Status> {
        match self {
            Transition::Activate => Some(Status::Provisioned),
            Transition::Resume => Some(Status::Suspended),
            Transition::Suspend | Transition::Decommission => None,
        }
    }
}

impl std::fmt::Display for Transition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`Agents::transition`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionResult {
    /// The status before.
    pub from: Status,
    /// The status now.
    pub to: Status,
    /// The agent as stored now.
    pub agent: Agent,
    /// The token revocation ids revoked by this move (a decommission's),
    /// in the order the log recorded the tokens; empty for other moves.
    pub revoked: Vec<RevocationId>,
}

/// Why an agent operation failed. [`AgentsError::code`] names the kind for
/// APIs; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum AgentsError {
    /// No agent has this DID.
    #[error("no agent {did} is registered (hint: list the agents to find its DID)")]
    NotFound {
        /// The DID asked for.
        did: String,
    },
    /// An agent with this DID is registered already.
    #[error(
        "agent {did} exists already ({name:?}, {status}); a key makes one agent (hint: 'warden agent show {did}')"
    )]
    Exists {
        /// The DID.
        did: String,
        /// The existing agent's name.
        name: String,
        /// The existing agent's status.
        status: Status,
    },
    /// The move does not start from the agent's status (`activate` only
    /// moves a provisioned agent, `resume` only a suspended one).
    #[error(
        "agent {did} is {from}, not {expected}: cannot go from {from} to {to} this way ({})",
        wrong_status_hint(*from)
    )]
    WrongStatus {
        /// The agent's DID.
        did: String,
        /// Its status.
        from: Status,
        /// The status the move starts from.
        expected: Status,
        /// The status asked for.
        to: Status,
    },
    /// The lifecycle does not allow the move (e.g. out of decommissioned).
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The agent record cannot be built (a bad name).
    #[error(transparent)]
    Identity(#[from] AgentError),
    /// A sponsor text that is not an email address (for callers parsing input).
    #[error(transparent)]
    Sponsor(#[from] SponsorError),
    /// A text that is not a did:key (for callers parsing input).
    #[error(transparent)]
    Did(#[from] DidError),
    /// The reason is too long or has invisible characters.
    #[error(transparent)]
    Reason(#[from] ReasonError),
    /// The store could not be read.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// The store could not record a change; nothing of that change is stored.
    #[error("cannot record {action} for {subject}: {error}")]
    Append {
        /// The event, e.g. `agent.status`.
        action: String,
        /// Its subject: an agent DID or a revocation id.
        subject: String,
        /// What the store said.
        error: Box<StoreError>,
    },
    /// Stored data (an agent record, a revocation, a log entry) does not
    /// read back as what was written.
    #[error("{message}")]
    Malformed {
        /// What is wrong, where, and the hint to verify the log.
        message: String,
    },
}

impl AgentsError {
    /// A stable name for the kind of error, for API responses:
    /// `agent_not_found`, `agent_exists`, `invalid_transition`,
    /// `invalid_name`, `invalid_sponsor`, `invalid_did`, `invalid_reason`,
    /// `store_unavailable` or `store_malformed`.
    pub fn code(&self) -> &'static str {
        match self {
            AgentsError::NotFound { .. } => "agent_not_found",
            AgentsError::Exists { .. } => "agent_exists",
            AgentsError::WrongStatus { .. }
            | AgentsError::Lifecycle(_)
            | AgentsError::Identity(AgentError::Lifecycle(_)) => "invalid_transition",
            AgentsError::Identity(AgentError::Name { .. }) => "invalid_name",
            AgentsError::Identity(AgentError::UnknownStatus { .. }) => "invalid_status",
            AgentsError::Sponsor(_) => "invalid_sponsor",
            AgentsError::Did(_) => "invalid_did",
            AgentsError::Reason(_) => "invalid_reason",
            AgentsError::Store(_) | AgentsError::Append { .. } => "store_unavailable",
            AgentsError::Malformed { .. } => "store_malformed",
        }
    }

    /// The error for `agent` being registered already.
    fn exists(agent: &Agent) -> AgentsError {
        AgentsError::Exists {
            did: agent.did().to_string(),
            name: agent.name().to_string(),
            status: agent.status(),
        }
    }
}

impl From<StoreError> for AgentsError {
    fn from(e: StoreError) -> AgentsError {
        AgentsError::Store(Box::new(e))
    }
}

fn wrong_status_hint(from: Status) -> &'static str {
    match from {
        Status::Suspended => "'warden agent resume' lets a suspended agent act again",
        Status::Provisioned => "'warden agent activate' lets a provisioned agent act",
        Status::Active => "it is active already",
        Status::Decommissioned => "decommissioned is final; create a new agent",
    }
}

/// Why a reason text is refused ([`check_reason`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    /// Longer than [`MAX_REASON_BYTES`].
    #[error("reason is {len} bytes; at most {MAX_REASON_BYTES} are accepted")]
    TooLong {
        /// Its length in bytes (after trimming).
        len: usize,
    },
    /// A control, bidi, zero-width or other invisible character.
    #[error("reason has the invisible or control character {found:?} (hint: plain text only)")]
    Invisible {
        /// The first such character.
        found: char,
    },
}

/// Checks a reason given for a change and returns it trimmed: at most
/// [`MAX_REASON_BYTES`], every character printable (no control, bidi or
/// zero-width characters), so the audit log shows what was meant. `None`
/// is the empty reason.
pub fn check_reason(reason: Option<&str>) -> Result<String, ReasonError> {
    let reason = reason.unwrap_or("").trim();
    if reason.len() > MAX_REASON_BYTES {
        return Err(ReasonError::TooLong { len: reason.len() });
    }
    if let Some(found) = reason.chars().find(|&c| !is_printable(c)) {
        return Err(ReasonError::Invisible { found });
    }
    Ok(reason.to_string())
}

/// Whether a character shows as itself: Rust's `Debug` escapes control,
/// format (bidi, zero-width) and unassigned characters.
fn is_printable(c: char) -> bool {
    matches!(c, '"' | '\'' | '\\') || c.escape_debug().count() == 1
}

impl<'s> Agents<'s> {
    /// The agents of `store`; changes are recorded as made by `actor`
    /// (e.g. `cli:alice`, `api:admin`).
    pub fn new(store: &'s dyn Store, actor: impl Into<String>) -> Agents<'s> {
        Agents {
            store,
            actor: actor.into(),
            runtime: None,
        }
    }

    /// These agents, telling `runtime` of every record written (its
    /// store must be this one): the process deciding then applies a
    /// status from the next decision on ([`Runtime::agent_stop`]).
    pub fn noting(self, runtime: &'s Runtime) -> Agents<'s> {
        Agents {
            runtime: Some(runtime),
            ..self
        }
    }

    /// The agent `did`, if one is registered.
    pub fn get(&self, did: &Did) -> Result<Option<Agent>, AgentsError> {
        self.store
            .agent(did.as_str())?
            .map(|stored| parse_agent(&stored.did, &stored.record))
            .transpose()
    }

    /// Every agent, in the store's order.
    pub fn list(&self) -> Result<Vec<Agent>, AgentsError> {
        self.store
            .agents()?
            .iter()
            .map(|stored| parse_agent(&stored.did, &stored.record))
            .collect()
    }

    /// Registers a new agent with default trust (ring 3), stored with an
    /// `agent.created` event whose details are the record's fields plus
    /// `details_extra` (e.g. where the caller keeps the key). The agent is
    /// active unless `provisioned`: activating is the
    /// [`Transition::Activate`] move with the reason `created`, its own
    /// `agent.status` event. A DID registered already is
    /// [`AgentsError::Exists`], and nothing is written.
    pub fn create(
        &self,
        did: Did,
        name: &str,
        sponsor: Sponsor,
        provisioned: bool,
        now: SystemTime,
        details_extra: Map<String, Value>,
    ) -> Result<Agent, AgentsError> {
        let agent = Agent::new(did, name, sponsor, now, &TrustConfig::default())?;
        let one_writer = record_writes();
        if let Some(existing) = self.get(agent.did())? {
            return Err(AgentsError::exists(&existing));
        }
        let mut details = json!({
            "name": agent.name(),
            "sponsor": agent.sponsor().as_str(),
            "status": agent.status().as_str(),
            "ring": agent.ring().get(),
            "trust": agent.trust_score(),
        });
        if let Value::Object(d) = &mut details {
            d.extend(details_extra);
        }
        self.put(&agent, "agent.created", &details, now)?;
        drop(one_writer);
        if provisioned {
            return Ok(agent);
        }
        Ok(self
            .transition(agent.did(), Transition::Activate, "created", now)?
            .agent)
    }

    /// Makes one lifecycle move with `reason` (checked by [`check_reason`]),
    /// stored with an `agent.status` event giving `from`, `to` and the
    /// reason. A decommission first revokes every token the log records as
    /// issued or delegated to the agent, each with a `token.revoked` event,
    /// and lists them in the status event as `credentials_revoked`.
    ///
    /// Refused with [`AgentsError::WrongStatus`] when the move starts from
    /// another status ([`Transition::requires`]) and
    /// [`AgentsError::Lifecycle`] when the lifecycle forbids it.
    pub fn transition(
        &self,
        did: &Did,
        op: Transition,
        reason: &str,
        now: SystemTime,
    ) -> Result<TransitionResult, AgentsError> {
        let reason = check_reason(Some(reason))?;
        let _one_writer = record_writes();
        let mut agent = self.get(did)?.ok_or_else(|| AgentsError::NotFound {
            did: did.to_string(),
        })?;
        let from = agent.status();
        let to = op.target();
        if let Some(expected) = op.requires()
            && from != expected
        {
            return Err(AgentsError::WrongStatus {
                did: did.to_string(),
                from,
                expected,
                to,
            });
        }
        agent.set_status(to)?;
        let mut details = json!({"from": from, "to": to, "reason": reason});
        let mut revoked = Vec::new();
        if to == Status::Decommissioned {
            revoked = self.revoke_credentials(did, &reason, now)?;
            details["credentials_revoked"] = json!(revoked);
        }
        self.put(&agent, "agent.status", &details, now)?;
        Ok(TransitionResult {
            from,
            to,
            agent,
            revoked,
        })
    }

    /// What to show about an agent: DID, name, sponsor, status, created
    /// (RFC 3339), and ring and trust decayed to `now` under the default
    /// trust settings (read only: nothing is written back).
    pub fn summary(agent: &Agent, now: SystemTime) -> Value {
        let mut current = agent.clone();
        current.trust_at(now, &TrustConfig::default());
        json!({
            "did": agent.did(),
            "name": agent.name(),
            "sponsor": agent.sponsor(),
            "status": agent.status(),
            "ring": current.ring().get(),
            "trust": current.trust_score(),
            "created": format_rfc3339(agent.created_unix()),
        })
    }

    /// Every revoked token id in the store, in the order revoked.
    pub fn revoked(&self) -> Result<Vec<RevocationId>, AgentsError> {
        self.store
            .revocations()?
            .iter()
            .map(|r| {
                RevocationId::parse(&r.id).map_err(|e: TokenError| AgentsError::Malformed {
                    message: format!(
                        "stored revocation at seq {} is malformed (hint: run 'warden audit verify'): {e}",
                        r.audit_seq
                    ),
                })
            })
            .collect()
    }

    /// Revokes every token the log records as issued to `did` (the agent
    /// link's id, which revokes all delegations made from it too) or
    /// delegated to it (that delegation's id). Returns the ids revoked now.
    ///
    /// The log is the index: it is read once from the start, which is rare
    /// work (one decommission) against a table kept for it on every issue.
    /// Tokens delegated to the agent elsewhere are not in the log; the gate
    /// refuses a decommissioned agent whatever token it shows.
    fn revoke_credentials(
        &self,
        did: &Did,
        reason: &str,
        now: SystemTime,
    ) -> Result<Vec<RevocationId>, AgentsError> {
        let already: BTreeSet<RevocationId> = self.revoked()?.into_iter().collect();
        let mut ids: Vec<RevocationId> = Vec::new();
        for stored in entries_from(self.store, 0) {
            let stored = stored?;
            let entry = stored
                .entry()
                .map_err(|e: DecodeError| AgentsError::Malformed {
                    message: format!(
                        "entry {} does not decode (hint: run 'warden audit verify'): {e}",
                        stored.seq
                    ),
                })?;
            let Record::Event(event) = entry.record else {
                continue;
            };
            if event.subject != did.as_str() {
                continue;
            }
            let details: Value = serde_json::from_str(&event.details).unwrap_or(Value::Null);
            let id = match event.action.as_str() {
                "token.issued" => details["revocation_ids"][0].as_str(),
                "token.attenuated" => details["revocation_id"].as_str(),
                _ => None,
            };
            if let Some(id) = id.and_then(|id| RevocationId::parse(id).ok())
                && !already.contains(&id)
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        let why = if reason.is_empty() {
            "agent decommissioned".to_string()
        } else {
            format!("agent decommissioned: {reason}")
        };
        for id in &ids {
            let change = StateChange::Revoke {
                id: id.to_string(),
                reason: why.clone(),
            };
            let details = json!({"agent": did, "reason": why});
            self.append("token.revoked", id.as_str(), &details, change, now)?;
        }
        Ok(ids)
    }

    /// Stores `agent` with the event (`action`, `details`) that explains it.
    fn put(
        &self,
        agent: &Agent,
        action: &str,
        details: &Value,
        now: SystemTime,
    ) -> Result<(), AgentsError> {
        let record = serde_json::to_string(agent).map_err(|e| AgentsError::Malformed {
            message: format!("the record of agent {} cannot be written: {e}", agent.did()),
        })?;
        let change = StateChange::PutAgent {
            did: agent.did().to_string(),
            record,
        };
        self.append(action, agent.did().as_str(), details, change, now)?;
        if let Some(runtime) = self.runtime {
            runtime.note_agent(agent);
        }
        Ok(())
    }

    /// Appends the event and, in its transaction, the change.
    fn append(
        &self,
        action: &str,
        subject: &str,
        details: &Value,
        change: StateChange,
        now: SystemTime,
    ) -> Result<(), AgentsError> {
        let record = Record::Event(EventRecord {
            time_unix_nanos: unix_nanos(now),
            actor: self.actor.clone(),
            action: action.to_string(),
            subject: subject.to_string(),
            details: details.to_string(),
        });
        self.store
            .append_with(record, change)
            .map(|_| ())
            .map_err(|error| AgentsError::Append {
                action: action.to_string(),
                subject: subject.to_string(),
                error: Box::new(error),
            })
    }
}

/// Reads a stored record back, checking it is the agent it is stored under.
pub(crate) fn parse_agent(did: &str, record: &str) -> Result<Agent, AgentsError> {
    let agent: Agent = serde_json::from_str(record).map_err(|e| AgentsError::Malformed {
        message: format!(
            "stored record of agent {did:?} is malformed (hint: run 'warden audit verify'): {e}"
        ),
    })?;
    // The name is checked at creation; check it again so output never
    // carries invisible or control characters from a tampered database.
    validate_agent_name(agent.name()).map_err(|e| AgentsError::Malformed {
        message: format!("stored record of agent {did:?}: {e}"),
    })?;
    if agent.did().as_str() != did {
        return Err(AgentsError::Malformed {
            message: format!(
                "stored record of agent {did:?} names another DID, {}",
                agent.did()
            ),
        });
    }
    Ok(agent)
}

/// Nanoseconds since the epoch (0 before it, saturating far after).
fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Serialises read-modify-write of agent records in this process: a
/// lifecycle move and a trust change (the gate's decay and violations)
/// each read the record, change it and store it whole, so without this a
/// trust change racing a suspension could store the agent active again.
/// (Only one process writes a store.)
static RECORD_WRITES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the agent-record write lock (see [`RECORD_WRITES`]).
pub(crate) fn record_writes() -> std::sync::MutexGuard<'static, ()> {
    RECORD_WRITES.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_refuse_invisible_characters_and_long_text() {
        assert_eq!(check_reason(Some(" key leaked ")).unwrap(), "key leaked");
        assert_eq!(check_reason(None).unwrap(), "");
        assert!(check_reason(Some("Ölfass \"quoted\" it's")).is_ok());
        for bad in ["a\u{202e}b", "a\u{200b}b", "a\nb", "a\u{1b}[31m"] {
            assert!(
                matches!(check_reason(Some(bad)), Err(ReasonError::Invisible { .. })),
                "{bad:?}"
            );
        }
        let limit = "x".repeat(MAX_REASON_BYTES);
        assert_eq!(check_reason(Some(&limit)).unwrap(), limit);
        assert_eq!(
            check_reason(Some(&format!("{limit}x"))),
            Err(ReasonError::TooLong {
                len: MAX_REASON_BYTES + 1
            })
        );
    }

    #[test]
    fn transitions_are_named_as_the_commands_say() {
        for t in Transition::ALL {
            assert_eq!(Transition::parse(t.as_str()), Some(t));
        }
        assert_eq!(Transition::parse("delete"), None);
        assert_eq!(Transition::Resume.target(), Status::Active);
        assert_eq!(Transition::Resume.requires(), Some(Status::Suspended));
        assert_eq!(Transition::Decommission.requires(), None);
    }
}
