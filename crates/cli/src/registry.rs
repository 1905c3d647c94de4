//! The store of a data directory, for the identity commands. Agents are
//! read and moved through their lifecycle by [`warden_gate::agents`];
//! token and trust events go through [`Registry::append`]. Either way every
//! change lands in the audit log as an event in the same transaction
//! (`Store::append_with`).

use crate::state::DataDir;
use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};
use warden_audit::{EventRecord, Record};
use warden_gate::agents::{self, Agents, AgentsError};
use warden_identity::{Agent, Did, RevocationId};
use warden_store::{DB_FILE, SqliteStore, StateChange, Store};

/// The store of one data directory, opened for the identity commands.
pub struct Registry {
    store: SqliteStore,
    actor: String,
}

impl Registry {
    /// Opens the store for writing (creating it on first use).
    pub fn open(data: &DataDir) -> Result<Registry> {
        Ok(Registry {
            store: data.open()?,
            actor: actor(),
        })
    }

    /// Opens an existing store read-only.
    pub fn open_existing(data: &DataDir) -> Result<Registry> {
        if !data.data_dir.join(DB_FILE).is_file() {
            bail!(
                "no agents in '{}': it has no warden.db (create one with 'warden agent create', or pass --data-dir / set WARDEN_DATA_DIR)",
                data.data_dir.display()
            );
        }
        Ok(Registry {
            store: SqliteStore::open_read_only(&data.data_dir)?,
            actor: actor(),
        })
    }

    /// The agents of this store, changed on behalf of this user.
    pub fn agents(&self) -> Agents<'_> {
        Agents::new(&self.store, self.actor.clone())
    }

    /// The agent `did`, or an error naming the data directory.
    pub fn agent(&self, did: &Did) -> Result<Agent> {
        match self.agents().get(did) {
            Ok(Some(agent)) => Ok(agent),
            Ok(None) => Err(self.not_found(did)),
            Err(e) => Err(e.into()),
        }
    }

    /// The agent `did`, if there is one.
    pub fn find(&self, did: &Did) -> Result<Option<Agent>> {
        Ok(self.agents().get(did)?)
    }

    /// Every revoked id.
    pub fn revoked(&self) -> Result<Vec<RevocationId>> {
        Ok(self.agents().revoked()?)
    }

    /// `e` as the CLI says it: an unknown agent is looked for in the data directory.
    pub fn explain(&self, e: AgentsError) -> anyhow::Error {
        match e {
            AgentsError::NotFound { did } => self.not_found(&did),
            other => other.into(),
        }
    }

    fn not_found(&self, did: &dyn std::fmt::Display) -> anyhow::Error {
        anyhow!(
            "no agent {did} in '{}' (hint: 'warden agent list' shows the agents; check --data-dir)",
            self.store.dir().display()
        )
    }

    /// Appends an event (`action` on `subject`, with `details`) and, in the
    /// same transaction, the state change if there is one. Returns the seq.
    pub fn append(
        &self,
        action: &str,
        subject: &str,
        details: &Value,
        change: Option<StateChange>,
    ) -> Result<u64> {
        let record = Record::Event(EventRecord {
            time_unix_nanos: unix_nanos(SystemTime::now()),
            actor: self.actor.clone(),
            action: action.to_string(),
            subject: subject.to_string(),
            details: details.to_string(),
        });
        let appended = match change {
            Some(change) => self.store.append_with(record, change),
            None => self.store.append(record),
        }
        .with_context(|| format!("cannot record {action} for {subject}"))?;
        Ok(appended.seq)
    }

    /// Stores `agent` with the event that explains the change.
    pub fn put_agent(&self, agent: &Agent, action: &str, details: &Value) -> Result<u64> {
        let change = StateChange::PutAgent {
            did: agent.did().to_string(),
            record: serde_json::to_string(agent)?,
        };
        self.append(action, agent.did().as_str(), details, Some(change))
    }

    /// Closes the store; a failure only costs the final checkpoint, so it
    /// is a warning (the changes are durable already).
    pub fn close(self) {
        if let Err(e) = self.store.close() {
            eprintln!(
                "warden: warning: the change is recorded, but no checkpoint was signed: {}",
                warden_policy::printable(&e.to_string())
            );
        }
    }
}

/// Parses a DID given on the command line.
pub fn parse_did(text: &str) -> Result<Did> {
    Ok(Did::parse(text.trim())?)
}

/// Checks a `--reason` ([`agents::check_reason`]) and returns it trimmed.
pub fn check_reason(reason: Option<&str>) -> Result<String> {
    agents::check_reason(reason).map_err(|e| anyhow!("--{e}"))
}

/// Who is acting, for the audit log: `cli:<$USER>` (or the uid).
pub(crate) fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let clean: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        .take(64)
        .collect();
    if clean.is_empty() || clean.len() != user.len() {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        format!("cli:uid:{uid}")
    } else {
        format!("cli:{clean}")
    }
}

/// Nanoseconds since the epoch (0 before it, saturating far after).
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
