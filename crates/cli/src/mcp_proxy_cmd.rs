//! `warden mcp wrap` (the stdio proxy; `warden mcp proxy` is mcp_http_cmd.rs).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;
use warden_gate::{Runtime, RuntimeConfig};
use warden_identity::Did;
use warden_mcp::proxy::stdio::{self, Ended};
use warden_mcp::proxy::{Governor, Session};
use warden_server::reload::PolicySource;
use warden_store::Store;

use crate::{keys, state};

#[derive(Args)]
pub struct WrapArgs {
    /// Policy file (default: the bundled example policy).
    #[arg(long, short, env = "WARDEN_POLICY")]
    pub policy: Option<PathBuf>,
    /// The agent's DID: every tool call is decided as this agent's.
    #[arg(long, value_name = "DID")]
    pub agent: Option<String>,
    /// The session the gate sees (labels, per-session limits); default: a fresh one per run.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// The server's name for tool pins and findings (what 'warden mcp
    /// approve-tool SERVER TOOL' takes); default: the command's name, or
    /// the package or script a launcher (npx, uvx, node, python…) runs.
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
    /// Seconds a tool call may wait for the server's answer; then the client
    /// gets a "Request timed out" error, the server a cancellation, and the
    /// call's outcome is 'unknown'. 0: wait as long as it takes.
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0, value_parser = call_timeout)]
    pub call_timeout: f64,
    #[command(flatten)]
    pub data: state::DataDir,
    /// The MCP server command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Programs that run another: the server is named after what they run.
const LAUNCHERS: &[&str] = &[
    "npx", "bunx", "pnpx", "node", "bun", "deno", "uvx", "uv", "pipx", "python", "python3", "env",
    "sh", "bash", "docker", "podman",
];
/// Words launchers take before the thing they run.
const LAUNCHER_WORDS: &[&str] = &["run", "exec", "x", "tool", "dlx"];

/// The name pins and findings are kept under when `--server` is not given.
fn server_name(command: &[String]) -> String {
    let file = |s: &str| {
        Path::new(s)
            .file_name()
            .map_or_else(|| s.to_string(), |f| f.to_string_lossy().into_owned())
    };
    let Some((program, args)) = command.split_first() else {
        return "mcp".into();
    };
    let program = file(program);
    if !LAUNCHERS.contains(&program.as_str()) {
        return program;
    }
    args.iter()
        .find(|a| !a.starts_with('-') && !LAUNCHER_WORDS.contains(&a.as_str()) && !a.contains('='))
        .map(|a| {
            if a.starts_with('@') {
                a.clone()
            } else {
                file(a)
            }
        })
        .unwrap_or(program)
}

fn fresh_session() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("mcp-{nanos:x}-{:x}", std::process::id())
}

/// The exit code for a child's status: its code, or 128 + its signal.
fn status_code(status: std::process::ExitStatus) -> u8 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return u8::try_from(128 + sig).unwrap_or(u8::MAX);
        }
    }
    status
        .code()
        .map_or(1, |c| u8::try_from(c).unwrap_or(u8::MAX))
}

/// What a governed MCP proxy runs on (`wrap` and `proxy` alike): the data
/// directory's store, the runtime (approvals, kill switch, session labels)
/// and the gate over the policy.
pub(crate) struct Governed {
    pub store: Arc<warden_store::SqliteStore>,
    pub audit: Arc<dyn Store>,
    pub runtime: Arc<Runtime>,
    pub gate: Arc<warden_gate::Gate>,
    pub source: PolicySource,
}

/// Checks `agent`, opens the data directory and builds the gate.
pub(crate) fn governed(
    policy: Option<PathBuf>,
    agent: Option<&str>,
    data: &state::DataDir,
) -> Result<Governed> {
    if let Some(agent) = agent {
        Did::parse(agent).with_context(|| format!("--agent '{agent}' is not a DID"))?;
    }
    let store = Arc::new(data.open().with_context(|| {
        format!(
            "cannot open the data directory '{}' (one warden process per data directory: pass --data-dir)",
            data.data_dir.display()
        )
    })?);
    let audit: Arc<dyn Store> = store.clone();
    let runtime = Arc::new(
        Runtime::open(audit.clone(), RuntimeConfig::default())
            .context("cannot read the kill switch, agents and approvals from the store")?,
    );
    let issuers = keys::existing_issuer(&data.data_dir)?.into_iter().collect();
    let source = PolicySource::new(policy, issuers);
    let gate = Arc::new(source.build(runtime.clone(), audit.clone(), None)?);
    Ok(Governed {
        store,
        audit,
        runtime,
        gate,
        source,
    })
}

pub fn wrap(args: WrapArgs) -> Result<u8> {
    warden_server::init_logging(warden_server::LogFormat::Text);
    let Governed {
        store,
        audit,
        gate,
        source,
        ..
    } = governed(args.policy.clone(), args.agent.as_deref(), &args.data)?;
    let server = args
        .server
        .clone()
        .unwrap_or_else(|| server_name(&args.command));
    let session_id = args.session.clone().unwrap_or_else(fresh_session);
    tracing::info!(server = %server, session = %session_id, policy = %source.describe(), "governing the MCP server");
    let governor = Arc::new(Governor::new(gate, server, args.agent.clone(), audit));
    let limit = (args.call_timeout > 0.0).then(|| Duration::from_secs_f64(args.call_timeout));
    let session = Arc::new(Session::new(governor, session_id).with_call_timeout(limit));
    // One thread: a call's messages, decisions and answers hand over
    // between tasks there, not between threads (about a third less added
    // latency per call than a multi-thread runtime, `cargo bench --bench
    // mcp`). The store's writer has its own thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let ended = rt.block_on(async {
        let (input, output) = stdio::process_stdio();
        stdio::run(session, &args.command, input, output).await
    });
    // Reading stdin holds a blocking thread that cannot be interrupted.
    rt.shutdown_timeout(Duration::from_millis(200));
    let closed = store.close();
    let ended = ended?;
    closed.context("closing the audit log (final checkpoint)")?;
    Ok(match ended {
        Ended::ClientClosed(status) => status_code(status),
        Ended::ServerExited(status) | Ended::Stopped(status) => {
            tracing::error!(%status, "the MCP server is gone");
            status_code(status).max(1)
        }
    })
}

/// `--call-timeout`: a number of seconds, 0 or more, at most a year.
fn call_timeout(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.0..=31_536_000.0).contains(&s) => Ok(s),
        Ok(_) => Err("must be between 0 and 31536000 seconds".into()),
        Err(_) => Err(format!("'{text}' is not a number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(cmd: &[&str]) -> String {
        server_name(&cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn servers_are_named_after_what_launchers_run() {
        assert_eq!(
            name(&["/usr/bin/mcp-server-filesystem", "/tmp"]),
            "mcp-server-filesystem"
        );
        assert_eq!(
            name(&[
                "npx",
                "-y",
                "@modelcontextprotocol/server-filesystem",
                "/tmp"
            ]),
            "@modelcontextprotocol/server-filesystem"
        );
        assert_eq!(
            name(&["python3", "-u", "/srv/tools/server.py"]),
            "server.py"
        );
        assert_eq!(name(&["uv", "run", "weather"]), "weather");
        assert_eq!(name(&["node"]), "node");
    }
}
