//! `warden`: the command-line entry point. It only wires the library crates
//! together: parsing, evaluation and formatting of decisions live elsewhere.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod check;
mod input;
mod policy_cmd;

/// Exit code for usage and input errors.
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "Runtime governance for AI agents: one deterministic decision point for every action."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decide about one action and print the decision as JSON.
    ///
    /// Exit code: 0 allow / warn / transform, 1 deny, 3 require_approval, 2 usage or input error.
    Check(check::Args),
    /// Write, lint, test and explain policies.
    #[command(subcommand)]
    Policy(policy_cmd::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Policy(cmd) => policy_cmd::run(cmd),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Errors quote user input: keep them to one line with no terminal escapes.
            eprintln!("warden: {}", warden_policy::printable(&format!("{e:#}")));
            ExitCode::from(EXIT_USAGE)
        }
    }
}
