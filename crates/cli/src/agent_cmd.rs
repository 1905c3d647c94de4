//! `warden agent`: create agents, list and show them, and move them through
//! their lifecycle (provisioned → active ⇄ suspended → decommissioned).

use crate::keys;
use crate::registry::{Registry, check_reason, parse_did};
use crate::state::DataDir;
use anyhow::Result;
use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use warden_gate::agents::{Agents, AgentsError, Transition};
use warden_identity::{Agent, IdentityKey, Sponsor, validate_agent_name};

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
    Activate(TransitionArgs),
    /// Stop an active agent for now (tokens for it are not issued; 'resume' undoes it).
    Suspend(TransitionArgs),
    /// Let a suspended agent act again.
    Resume(TransitionArgs),
    /// Retire an agent for good: every token recorded as issued or delegated
    /// to it is revoked; its records are kept.
    Decommission(TransitionArgs),
}

#[derive(clap::Args)]
pub struct TransitionArgs {
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
        Command::Activate(t) => transition(t, Transition::Activate),
        Command::Suspend(t) => transition(t, Transition::Suspend),
        Command::Resume(t) => transition(t, Transition::Resume),
        Command::Decommission(t) => transition(t, Transition::Decommission),
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

    let registry = Registry::open(data)?;
    let agents = registry.agents();
    // Refused before the key is written, so a key file always has its agent.
    if let Some(existing) = agents.get(&did)? {
        return Err(AgentsError::Exists {
            did: did.to_string(),
            name: existing.name().to_string(),
            status: existing.status(),
        }
        .into());
    }
    let key_path = keys::agent_key_path(&data.data_dir, &did);
    keys::write_new_key(&key_path, &key)?;
    let mut extra = Map::new();
    extra.insert(
        "key".into(),
        json!(if import.is_some() {
            "imported"
        } else {
            "generated"
        }),
    );
    extra.insert("key_file".into(), json!(key_path.display().to_string()));
    // Registered provisioned, then activated: if registering fails, nothing
    // refers to the key, and it is removed so a retry can write it again.
    let mut agent = match agents.create(did.clone(), name, sponsor, true, now, extra) {
        Ok(agent) => agent,
        Err(e) => {
            let _ = std::fs::remove_file(&key_path);
            return Err(e.into());
        }
    };
    if !provisioned {
        agent = agents
            .transition(&did, Transition::Activate, "created", now)?
            .agent;
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
/// (read only: nothing is written back), and whether its key is here.
fn summary(agent: &Agent, data_dir: &Path, now: SystemTime) -> Value {
    let mut s = Agents::summary(agent, now);
    s["key_file"] = json!(keys::agent_key_path(data_dir, agent.did()).is_file());
    s
}

fn list(json: bool, data: &DataDir) -> Result<u8> {
    let registry = Registry::open_existing(data)?;
    let now = SystemTime::now();
    let rows: Vec<Value> = registry
        .agents()
        .list()?
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

fn transition(t: TransitionArgs, op: Transition) -> Result<u8> {
    let did = parse_did(&t.did)?;
    let reason = check_reason(t.reason.as_deref())?;
    let registry = Registry::open(&t.data)?;
    let moved = registry
        .agents()
        .transition(&did, op, &reason, SystemTime::now())
        .map_err(|e| registry.explain(e))?;
    registry.close();
    if op == Transition::Decommission {
        println!(
            "revoked {} token revocation id(s) of {did}",
            moved.revoked.len()
        );
    }
    println!("{did}: {} → {}", moved.from, moved.to);
    Ok(0)
}
