//! `warden`: the command-line entry point. It only wires the library crates
//! together: parsing, evaluation and formatting of decisions live elsewhere.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Under `warden serve`, glibc's malloc took about a fifth of the server's
/// CPU: a decision's record is allocated on an async worker and freed on the
/// audit writer's thread. mimalloc raised the serve bench's capacity by
/// 20–35 % in interleaved runs (README, "Decision server").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod agent_cmd;
mod approvals_cmd;
mod audit_cmd;
mod check;
mod did_cmd;
mod input;
mod intent_cmd;
mod keys;
mod mcp_cmd;
mod mcp_http_cmd;
mod mcp_proxy_cmd;
mod mcp_scan_cmd;
mod policy_cmd;
mod registry;
mod serve_cmd;
mod state;
mod token_cmd;
mod trust_cmd;

/// Exit code for usage and input errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a command that could not do what was asked (unknown
/// agent, invalid transition, bad key file, malformed DID…).
pub const EXIT_FAILURE: u8 = 1;

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
    /// Run the decision server: the gate over HTTP (POST /v1/decide), with
    /// approvals, sessions, limits, the kill switch and metrics.
    ///
    /// Defaults: 127.0.0.1:7878, ./.warden (SQLite), the bundled example policy.
    Serve(serve_cmd::Args),
    /// Decide about one action and print the decision as JSON.
    ///
    /// Exit code: 0 allow / warn / transform, 1 deny, 3 require_approval, 2 usage or input error.
    Check(check::Args),
    /// Write, lint, test and explain policies.
    #[command(subcommand)]
    Policy(policy_cmd::Command),
    /// Classify a text (SQL, shell, URL, path) and print its intents and findings as JSON.
    Intent(intent_cmd::Args),
    /// Verify, export and prove the audit log in --data-dir.
    #[command(subcommand)]
    Audit(audit_cmd::Command),
    /// Create agents (did:key and sponsor), list them, move them through their lifecycle.
    ///
    /// Exit code: 0 done, 1 failed (unknown agent, invalid transition, bad key…), 2 usage.
    #[command(subcommand)]
    Agent(agent_cmd::Command),
    /// Issue, delegate, verify and revoke capability tokens.
    ///
    /// Exit code: 0 done (verify: valid), 1 failed (verify: invalid), 2 usage.
    #[command(subcommand)]
    Token(token_cmd::Command),
    /// Show an agent's trust score and rings.
    #[command(subcommand)]
    Trust(trust_cmd::Command),
    /// Show the DID document of a did:key.
    #[command(subcommand)]
    Did(did_cmd::Command),
    /// Govern MCP servers: a proxy that puts every tool call through the gate, and an offline scanner.
    #[command(subcommand)]
    Mcp(mcp_cmd::Command),
    /// List, approve and deny approvals on a running server (warden serve, warden mcp proxy).
    ///
    /// Exit code: 0 done, 1 failed (unknown id, not pending, 401/403, unreachable…), 2 usage.
    Approvals(approvals_cmd::Args),
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // Decisions keep exit code 1 for deny, so their errors are usage errors;
    // the identity commands fail with 1.
    let (result, error_code) = match cli.command {
        Command::Serve(args) => (serve_cmd::run(args), EXIT_FAILURE),
        Command::Check(args) => (check::run(args), EXIT_USAGE),
        Command::Policy(cmd) => (policy_cmd::run(cmd), EXIT_USAGE),
        Command::Intent(args) => (intent_cmd::run(args), EXIT_USAGE),
        Command::Audit(cmd) => (audit_cmd::run(cmd), EXIT_USAGE),
        Command::Agent(cmd) => (agent_cmd::run(cmd), EXIT_FAILURE),
        Command::Token(cmd) => (token_cmd::run(cmd), EXIT_FAILURE),
        Command::Trust(cmd) => (trust_cmd::run(cmd), EXIT_FAILURE),
        Command::Did(cmd) => (did_cmd::run(cmd), EXIT_FAILURE),
        Command::Mcp(cmd) => (mcp_cmd::run(cmd), EXIT_USAGE),
        Command::Approvals(args) => (approvals_cmd::run(args), EXIT_FAILURE),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Errors quote user input: keep them to one line with no terminal escapes.
            eprintln!("warden: {}", warden_policy::printable(&format!("{e:#}")));
            ExitCode::from(error_code)
        }
    }
}

/// `--help` and `--version` print as clap prints them; a usage error is one
/// line on stderr and exit code 2, like every other input error.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
        return ExitCode::from(code);
    }
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut first = lines.next().unwrap_or("invalid usage").to_string();
    // "the following required arguments were not provided:" names them on the next line.
    if first.ends_with(':')
        && let Some(next) = lines.next()
    {
        first = format!("{first} {next}");
    }
    let first = first.strip_prefix("error: ").unwrap_or(&first);
    eprintln!(
        "warden: {} (see 'warden --help')",
        warden_policy::printable(first)
    );
    ExitCode::from(EXIT_USAGE)
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`warden audit export
/// | head`) would panic. Like other Unix tools, warden instead ends quietly
/// when the reader goes away.
fn restore_sigpipe() {
    // SAFETY: called first thing in `main`, before any other thread exists;
    // setting a signal's disposition to the default has no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
