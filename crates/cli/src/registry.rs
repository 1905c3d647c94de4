//! Agents and revocations in the store, for the identity commands. Every
//! change goes through [`Registry::append`] and so lands in the audit log as
//! an event in the same transaction (`Store::append_with`).

use crate::state::DataDir;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};
use warden_audit::{EventRecord, Record};
use warden_identity::{Agent, Did, RevocationId, validate_agent_name};
use warden_store::{DB_FILE, SqliteStore, StateChange, Store};

/// Longest `--reason` accepted, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

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

    /// The underlying store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// The agent `did`, or an error naming the data directory.
    pub fn agent(&self, did: &Did) -> Result<Agent> {
        match self.find(did)? {
            Some(agent) => Ok(agent),
            None => bail!(
                "no agent {did} in '{}' (hint: 'warden agent list' shows the agents; check --data-dir)",
                self.store.dir().display()
            ),
        }
    }

    /// The agent `did`, if there is one.
    pub fn find(&self, did: &Did) -> Result<Option<Agent>> {
        self.store
            .agent(did.as_str())?
            .map(|stored| parse_agent(&stored.did, &stored.record))
            .transpose()
    }

    /// Every agent, in the store's order.
    pub fn agents(&self) -> Result<Vec<Agent>> {
        self.store
            .agents()?
            .iter()
            .map(|stored| parse_agent(&stored.did, &stored.record))
            .collect()
    }

    /// Every revoked id.
    pub fn revoked(&self) -> Result<Vec<RevocationId>> {
        self.store
            .revocations()?
            .iter()
            .map(|r| {
                RevocationId::parse(&r.id).with_context(|| {
                    format!(
                        "stored revocation at seq {} is malformed (hint: run 'warden audit verify')",
                        r.audit_seq
                    )
                })
            })
            .collect()
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

fn parse_agent(did: &str, record: &str) -> Result<Agent> {
    let agent: Agent = serde_json::from_str(record).with_context(|| {
        format!("stored record of agent {did:?} is malformed (hint: run 'warden audit verify')")
    })?;
    // The name is checked at creation; check it again so output never
    // carries invisible or control characters from a tampered database.
    validate_agent_name(agent.name()).with_context(|| format!("stored record of agent {did:?}"))?;
    if agent.did().as_str() != did {
        bail!(
            "stored record of agent {did:?} names another DID, {}",
            agent.did()
        );
    }
    Ok(agent)
}

/// Parses a DID given on the command line.
pub fn parse_did(text: &str) -> Result<Did> {
    Ok(Did::parse(text.trim())?)
}

/// Checks a `--reason`: at most [`MAX_REASON_BYTES`], every character printable
/// (no control, bidi or zero-width characters).
pub fn check_reason(reason: Option<&str>) -> Result<String> {
    let reason = reason.unwrap_or("").trim();
    if reason.len() > MAX_REASON_BYTES {
        bail!(
            "--reason is {} bytes; at most {MAX_REASON_BYTES} are accepted",
            reason.len()
        );
    }
    if let Some(c) = reason.chars().find(|&c| !is_printable(c)) {
        bail!(
            "--reason has the invisible or control character {:?} (hint: plain text only)",
            c
        );
    }
    Ok(reason.to_string())
}

/// Whether a character shows as itself: Rust's `Debug` escapes control,
/// format (bidi, zero-width) and unassigned characters.
fn is_printable(c: char) -> bool {
    matches!(c, '"' | '\'' | '\\') || c.escape_debug().count() == 1
}

/// Who is acting, for the audit log: `cli:<$USER>` (or the uid).
fn actor() -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_refuse_invisible_characters_and_long_text() {
        assert_eq!(check_reason(Some(" key leaked ")).unwrap(), "key leaked");
        assert_eq!(check_reason(None).unwrap(), "");
        assert!(check_reason(Some("Ölfass \"quoted\" it's")).is_ok());
        for bad in ["a\u{202e}b", "a\u{200b}b", "a\nb", "a\u{1b}[31m"] {
            assert!(check_reason(Some(bad)).is_err(), "{bad:?}");
        }
        assert!(check_reason(Some(&"x".repeat(MAX_REASON_BYTES + 1))).is_err());
    }
}
