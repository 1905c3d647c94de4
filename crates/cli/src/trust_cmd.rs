//! `warden trust show`: an agent's trust score after decay, its ring, and
//! the ring the score earns; `trust endorse` and `trust approve-ring1`: the
//! human signals that raise it, each stored with its audit event.

use crate::registry::{Registry, check_reason, parse_did};
use crate::state::DataDir;
use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use std::time::SystemTime;
use warden_identity::trust::TrustEvent;
use warden_identity::{TrustConfig, format_rfc3339};

#[derive(Subcommand)]
pub enum Command {
    /// Show an agent's trust now (decayed; nothing is written), its ring, the
    /// ring its score earns, and the thresholds (the defaults: ring 2 at 600,
    /// ring 1 at 900 with a human approval, ring 0 only by assignment).
    Show {
        /// The agent's did:key.
        did: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Record that a human vouches for the agent (raises its score).
    Endorse {
        /// The agent's did:key.
        did: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Record a human's approval of ring 1 for the agent; it takes effect
    /// while the score is at or above the ring-1 threshold.
    ApproveRing1 {
        /// The agent's did:key.
        did: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        data: DataDir,
    },
}

pub fn run(cmd: Command) -> Result<u8> {
    let (did, json, data) = match cmd {
        Command::Show { did, json, data } => (did, json, data),
        Command::Endorse { did, reason, data } => {
            return signal(
                &data,
                &did,
                TrustEvent::HumanEndorsement,
                "trust.endorsed",
                reason,
            );
        }
        Command::ApproveRing1 { did, reason, data } => {
            return signal(
                &data,
                &did,
                TrustEvent::Ring1Approval,
                "trust.ring1_approved",
                reason,
            );
        }
    };
    let did = parse_did(&did)?;
    let agent = Registry::open_existing(&data)?.agent(&did)?;
    let config = TrustConfig::default();
    let recorded = agent.trust().clone();
    let now = recorded.decay(SystemTime::now(), &config).state;
    let rings = &config.rings;
    let eligible = rings.eligible_ring(now.score(), now.ring1_approved());
    let out = json!({
        "did": did,
        "score": now.score(),
        "recorded_score": recorded.score(),
        "decayed_from": format_rfc3339(recorded.decayed_until_unix()),
        "ring": now.ring().get(),
        "recorded_ring": recorded.ring().get(),
        "eligible_ring": eligible.get(),
        "ring1_approved": now.ring1_approved(),
        "thresholds": {
            "ring2": rings.ring2,
            "ring1": rings.ring1,
            "ring1_requires_approval": rings.ring1_requires_approval,
        },
        "decay_per_hour": config.decay_per_hour,
        "floor": config.floor,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    println!("agent          {did}");
    println!(
        "score          {} now ({} recorded, decaying {} points an hour from {} towards {})",
        now.score(),
        recorded.score(),
        config.decay_per_hour,
        format_rfc3339(recorded.decayed_until_unix()),
        config.floor
    );
    println!(
        "ring           {} now ({} recorded)",
        now.ring().get(),
        recorded.ring().get()
    );
    println!("eligible ring  {}", eligible.get());
    println!(
        "thresholds     ring 2 ≥ {}, ring 1 ≥ {}{}, ring 0 by assignment only",
        rings.ring2,
        rings.ring1,
        if rings.ring1_requires_approval {
            " with a human approval"
        } else {
            ""
        }
    );
    println!(
        "ring 1 approval {}",
        if now.ring1_approved() { "yes" } else { "no" }
    );
    Ok(0)
}

/// Applies a human's trust signal to the agent and stores the new record
/// with an event that says what moved (score and ring, before and after).
fn signal(
    data: &DataDir,
    did: &str,
    event: TrustEvent,
    action: &str,
    reason: Option<String>,
) -> Result<u8> {
    let did = parse_did(did)?;
    let reason = check_reason(reason.as_deref())?;
    let registry = Registry::open(data)?;
    let mut agent = registry.agent(&did)?;
    if agent.status() == warden_identity::Status::Decommissioned {
        anyhow::bail!("agent {did} is decommissioned; its trust no longer changes");
    }
    let config = TrustConfig::default();
    let ring_before = agent.ring().get();
    let update = agent.record(event, SystemTime::now(), &config);
    let details = json!({
        "score_from": update.previous_score,
        "score_to": update.state.score(),
        "ring_from": ring_before,
        "ring_to": update.state.ring().get(),
        "reason": reason,
    });
    registry.put_agent(&agent, action, &details)?;
    registry.close();
    println!(
        "{did}: trust {} -> {}, ring {} -> {}",
        update.previous_score,
        update.state.score(),
        ring_before,
        update.state.ring().get()
    );
    Ok(0)
}
