//! `warden check`: one action in, one decision out.

use crate::{input, keys, state};
use anyhow::Result;
use std::sync::Arc;
use warden_gate::{Decision, Gate, IdentityContext};
use warden_policy::{CompiledPolicy, Verdict};
use warden_store::{SqliteStore, Store};

#[derive(clap::Args)]
pub struct Args {
    /// Policy file (default: the bundled example policy).
    #[arg(long, short, env = "WARDEN_POLICY")]
    policy: Option<String>,
    /// Action JSON file, or '-' for stdin.
    #[arg(long, short)]
    action: String,
    /// Also append the decision to the audit log in --data-dir (before it is printed).
    #[arg(long)]
    record: bool,
    #[command(flatten)]
    data: state::DataDir,
}

/// The exit code for a verdict: 0 go ahead, 1 deny, 3 needs approval.
pub fn exit_code(d: &Decision) -> u8 {
    match d.verdict {
        Verdict::Allow | Verdict::Warn | Verdict::Transform => 0,
        Verdict::Deny => 1,
        Verdict::RequireApproval => 3,
    }
}

pub fn run(args: Args) -> Result<u8> {
    let policy = input::policy(args.policy.as_deref())?;
    let action = input::action(&args.action)?;
    let identity_in_play = policy.uses_identity() || action.context.contains_key("token");
    let store: Option<Arc<SqliteStore>> = if args.record {
        Some(Arc::new(args.data.open()?))
    } else if identity_in_play {
        // Agents and revocations are read from the data directory; without
        // one, the gate has no identities and denies what needs one.
        args.data.open_existing().ok().map(Arc::new)
    } else {
        None
    };
    let context = match &store {
        Some(store) if identity_in_play => match identity(&policy, store.clone(), &args.data) {
            Ok(context) => Some(Arc::new(context)),
            Err(e) => {
                eprintln!(
                    "warden: warning: identities cannot be checked ({}); actions that need one are denied",
                    warden_policy::printable(&e.to_string())
                );
                None
            }
        },
        _ => None,
    };
    let mut gate = Gate::new(policy);
    if let Some(context) = context {
        gate = gate.with_identity(context);
    }
    let decision = if let Some(store) = store.filter(|_| args.record) {
        let decision = gate.with_audit(store.clone()).decide(&action);
        // The record is durable already; a clean close also signs a
        // checkpoint over it. Failing that does not change the verdict.
        if let Err(e) = store.close() {
            eprintln!(
                "warden: warning: the decision is recorded, but no checkpoint was signed: {}",
                warden_policy::printable(&e.to_string())
            );
        }
        decision
    } else {
        gate.decide(&action)
    };
    println!("{}", serde_json::to_string_pretty(&decision)?);
    Ok(exit_code(&decision))
}

/// The gate's identity context: agents and revocations from the store, and
/// the policy's issuers plus this data directory's own issuer key.
fn identity(
    policy: &CompiledPolicy,
    store: Arc<SqliteStore>,
    data: &state::DataDir,
) -> Result<IdentityContext> {
    let own = keys::existing_issuer(&data.data_dir)?;
    Ok(IdentityContext::new(policy, store, own)?)
}
