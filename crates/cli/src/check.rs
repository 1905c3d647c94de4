//! `warden check`: one action in, one decision out.

use crate::input;
use anyhow::Result;
use warden_gate::{Decision, Gate};
use warden_policy::Verdict;

#[derive(clap::Args)]
pub struct Args {
    /// Policy file (default: the bundled example policy).
    #[arg(long, short, env = "WARDEN_POLICY")]
    policy: Option<String>,
    /// Action JSON file, or '-' for stdin.
    #[arg(long, short)]
    action: String,
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
    let decision = Gate::new(policy).decide(&action);
    println!("{}", serde_json::to_string_pretty(&decision)?);
    Ok(exit_code(&decision))
}
