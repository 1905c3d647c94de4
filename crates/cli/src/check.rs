//! `warden check`: one action in, one decision out.

use crate::{input, state};
use anyhow::Result;
use std::sync::Arc;
use warden_gate::{Decision, Gate};
use warden_policy::Verdict;
use warden_store::Store;

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
    let gate = Gate::new(policy);
    let decision = if args.record {
        let store = Arc::new(args.data.open()?);
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
