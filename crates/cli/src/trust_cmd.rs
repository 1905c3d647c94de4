//! `warden trust show`: an agent's trust score after decay, its ring, and
//! the ring the score earns.

use crate::registry::{Registry, parse_did};
use crate::state::DataDir;
use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use std::time::SystemTime;
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
}

pub fn run(cmd: Command) -> Result<u8> {
    let Command::Show { did, json, data } = cmd;
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
