//! `warden agent`: create agents, list and show them, and move them through
//! their lifecycle (provisioned → active ⇄ suspended → decommissioned).

use crate::keys;
use crate::registry::{Registry, check_reason, parse_did};
use crate::state::DataDir;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use warden_audit::Record;
use warden_identity::{
    Agent, Did, IdentityKey, RevocationId, Sponsor, Status, TrustConfig, format_rfc3339,
    validate_agent_name,
};
use warden_store::{StateChange, entries_from};

#[derive(Subcommand)]
pub enum Command {
    /// Create an agent: a new did:key (or an imported key), its sponsor, and
    /// an active record in ring 3 with trust 500.
    ///
    /// The private key is written to <data-dir>/keys/<z6Mk…>.key (mode 0600)
    /// and never printed. Prints the DID, then the key file's path.
    Create {
        /// Display name (printable text, at most 128 bytes).
        #[arg(long)]
        name: String,
        /// Email address of the human accountable for the agent.
        #[arg(long)]
        sponsor: String,
        /// Bring an existing key: a file holding a 32-byte seed as 64 hex
        /// characters or a PKCS#8 PEM (mode 0600), or '-' for stdin.
        #[arg(long, value_name = "FILE")]
        import_key: Option<PathBuf>,
        /// Leave the agent provisioned (not yet allowed to act) until 'warden agent activate'.
        #[arg(long)]
        provisioned: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// List the agents: DID, name, sponsor, status, ring and trust now.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Show one agent.
    Show {
        /// The agent's did:key.
        did: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Allow a provisioned agent to act.
    Activate(Transition),
    /// Stop an active agent for now (tokens for it are not issued; 'resume' undoes it).
    Suspend(Transition),
    /// Let a suspended agent act again.
    Resume(Transition),
    /// Retire an agent for good: every token recorded as issued or delegated
    /// to it is revoked; its records are kept.
    Decommission(Transition),
}

#[derive(clap::Args)]
pub struct Transition {
    /// The agent's did:key.
    did: String,
    /// Why, for the audit log.
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    data: DataDir,
}

pub fn run(cmd: Command) -> Result<u8> {
    match cmd {
        Command::Create {
            name,
            sponsor,
            import_key,
            provisioned,
            data,
        } => create(&name, &sponsor, import_key.as_deref(), provisioned, &data),
        Command::List { json, data } => list(json, &data),
        Command::Show { did, json, data } => show(&did, json, &data),
        Command::Activate(t) => transition(t, Status::Active, Some(Status::Provisioned)),
        Command::Suspend(t) => transition(t, Status::Suspended, None),
        Command::Resume(t) => transition(t, Status::Active, Some(Status::Suspended)),
        Command::Decommission(t) => transition(t, Status::Decommissioned, None),
    }
}

fn create(
    name: &str,
    sponsor: &str,
    import: Option<&Path>,
    provisioned: bool,
    data: &DataDir,
) -> Result<u8> {
    // Check everything the user typed before any file is written.
    validate_agent_name(name)?;
    let sponsor = Sponsor::parse(sponsor)?;
    let key = match import {
        Some(path) => keys::read_key(path)?,
        None => IdentityKey::generate(&mut keys::os_rng()?),
    };
    let did = key.did().clone();
    let now = SystemTime::now();
    let mut agent = Agent::new(did.clone(), name, sponsor, now, &TrustConfig::default())?;

    let registry = Registry::open(data)?;
    if let Some(existing) = registry.find(&did)? {
        bail!(
            "agent {did} exists already ({:?}, {}); a key makes one agent (hint: 'warden agent show {did}')",
            existing.name(),
            existing.status()
        );
    }
    let key_path = keys::agent_key_path(&data.data_dir, &did);
    keys::write_new_key(&key_path, &key)?;
    let details = json!({
        "name": agent.name(),
        "sponsor": agent.sponsor().as_str(),
        "status": agent.status().as_str(),
        "ring": agent.ring().get(),
        "trust": agent.trust_score(),
        "key": if import.is_some() { "imported" } else { "generated" },
        "key_file": key_path.display().to_string(),
    });
    if let Err(e) = registry.put_agent(&agent, "agent.created", &details) {
        // Nothing refers to the key: remove it so a retry can write it again.
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    if !provisioned {
        change_status(&registry, &mut agent, Status::Active, "created", json!({}))?;
    }
    registry.close();
    println!("{did}");
    println!("{}", key_path.display());
    eprintln!(
        "warden: agent {:?} is {} (sponsor {}, {}, trust {})",
        agent.name(),
        agent.status(),
        agent.sponsor(),
        agent.ring(),
        agent.trust_score()
    );
    Ok(0)
}

/// What `list` and `show` print about an agent, with trust decayed to now
/// (read only: nothing is written back).
fn summary(agent: &Agent, data_dir: &Path, now: SystemTime) -> Value {
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
        "key_file": keys::agent_key_path(data_dir, agent.did()).is_file(),
    })
}

fn list(json: bool, data: &DataDir) -> Result<u8> {
    let registry = Registry::open_existing(data)?;
    let now = SystemTime::now();
    let rows: Vec<Value> = registry
        .agents()?
        .iter()
        .map(|a| summary(a, &data.data_dir, now))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no agents (create one with 'warden agent create')");
        return Ok(0);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "did", "name", "sponsor", "status", "ring", "trust", "created",
    ]);
    for r in &rows {
        table.add_row(
            [
                "did", "name", "sponsor", "status", "ring", "trust", "created",
            ]
            .map(|k| text(&r[k])),
        );
    }
    println!("{table}");
    Ok(0)
}

fn show(did: &str, json: bool, data: &DataDir) -> Result<u8> {
    let did = parse_did(did)?;
    let registry = Registry::open_existing(data)?;
    let agent = registry.agent(&did)?;
    let mut s = summary(&agent, &data.data_dir, SystemTime::now());
    let key_path = keys::agent_key_path(&data.data_dir, &did);
    if json {
        s["key_file"] = if key_path.is_file() {
            json!(key_path.display().to_string())
        } else {
            Value::Null
        };
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(0);
    }
    for k in [
        "did", "name", "sponsor", "status", "ring", "trust", "created",
    ] {
        println!("{k:<9}{}", text(&s[k]));
    }
    if key_path.is_file() {
        println!("key file {}", key_path.display());
    } else {
        println!("key file none here (the key is held elsewhere)");
    }
    Ok(0)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn transition(t: Transition, to: Status, expected: Option<Status>) -> Result<u8> {
    let did = parse_did(&t.did)?;
    let reason = check_reason(t.reason.as_deref())?;
    let registry = Registry::open(&t.data)?;
    let mut agent = registry.agent(&did)?;
    let from = agent.status();
    // 'activate' and 'resume' both lead to active, each from one state only.
    if let Some(expected) = expected
        && from != expected
    {
        let hint = match from {
            Status::Suspended => "'warden agent resume' lets a suspended agent act again",
            Status::Provisioned => "'warden agent activate' lets a provisioned agent act",
            Status::Active => "it is active already",
            Status::Decommissioned => "decommissioned is final; create a new agent",
        };
        bail!(
            "agent {did} is {from}, not {expected}: cannot go from {from} to {to} this way ({hint})"
        );
    }
    agent.status().transition(to)?;
    let mut extra = json!({});
    if to == Status::Decommissioned {
        let revoked = revoke_credentials(&registry, &did, &reason)?;
        extra = json!({"credentials_revoked": revoked});
        println!("revoked {} token revocation id(s) of {did}", revoked.len());
    }
    change_status(&registry, &mut agent, to, &reason, extra)?;
    registry.close();
    println!("{did}: {from} → {to}");
    Ok(0)
}

/// Moves `agent` to `to` and stores it with an `agent.status` event.
fn change_status(
    registry: &Registry,
    agent: &mut Agent,
    to: Status,
    reason: &str,
    extra: Value,
) -> Result<()> {
    let from = agent.status();
    agent.set_status(to)?;
    let mut details = json!({"from": from, "to": to, "reason": reason});
    if let (Value::Object(d), Value::Object(e)) = (&mut details, extra) {
        d.extend(e);
    }
    registry.put_agent(agent, "agent.status", &details)?;
    Ok(())
}

/// Revokes every token the log records as issued to `did` (the agent link's
/// id, which revokes all delegations made from it too) or delegated to it
/// (that delegation's id). Returns the ids revoked now.
///
/// The log is the index: it is read once from the start, which is rare
/// work (one decommission) against a table kept for it on every issue.
/// Tokens delegated to the agent outside this CLI are not in the log; the
/// gate refuses a decommissioned agent whatever token it shows.
fn revoke_credentials(registry: &Registry, did: &Did, reason: &str) -> Result<Vec<String>> {
    let already: BTreeSet<RevocationId> = registry.revoked()?.into_iter().collect();
    let mut ids: Vec<String> = Vec::new();
    for stored in entries_from(registry.store(), 0) {
        let stored = stored?;
        let entry = stored.entry().with_context(|| {
            format!(
                "entry {} does not decode (hint: run 'warden audit verify')",
                stored.seq
            )
        })?;
        let Record::Event(event) = entry.record else {
            continue;
        };
        if event.subject != did.as_str() {
            continue;
        }
        let details: Value = serde_json::from_str(&event.details).unwrap_or(Value::Null);
        let id = match event.action.as_str() {
            "token.issued" => details["revocation_ids"][0].as_str().map(str::to_string),
            "token.attenuated" => details["revocation_id"].as_str().map(str::to_string),
            _ => None,
        };
        if let Some(id) = id.and_then(|id| RevocationId::parse(&id).ok())
            && !already.contains(&id)
            && !ids.contains(&id.to_string())
        {
            ids.push(id.to_string());
        }
    }
    let why = if reason.is_empty() {
        "agent decommissioned".to_string()
    } else {
        format!("agent decommissioned: {reason}")
    };
    for id in &ids {
        registry.append(
            "token.revoked",
            id,
            &json!({"agent": did, "reason": why}),
            Some(StateChange::Revoke {
                id: id.clone(),
                reason: why.clone(),
            }),
        )?;
    }
    Ok(ids)
}
