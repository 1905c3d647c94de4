//! `warden serve`: the decision server on embedded defaults.

use crate::{keys, state};
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use warden_server::{Config, LogFormat, Server};
use warden_store::StoreConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on. A non-loopback address needs --auth.
    #[arg(long, env = "WARDEN_LISTEN", default_value = warden_server::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Policy file (default: the bundled example policy). Its directory is
    /// watched and the policy reloaded on change.
    #[arg(long, short, env = "WARDEN_POLICY")]
    policy: Option<PathBuf>,
    /// Bearer tokens per role (agent, approver, admin), YAML: see the README.
    #[arg(long, env = "WARDEN_AUTH", value_name = "FILE")]
    auth: Option<PathBuf>,
    /// Largest request body in bytes.
    #[arg(long, env = "WARDEN_MAX_BODY", default_value_t = warden_server::DEFAULT_MAX_BODY_BYTES)]
    max_body: usize,
    /// How long an approval waits for a human, in seconds.
    #[arg(
        long,
        env = "WARDEN_APPROVAL_TTL",
        default_value_t = 900,
        value_name = "SECONDS"
    )]
    approval_ttl: u64,
    /// Most approvals held. Settled ones (used, denied, expired) make room,
    /// oldest first; when all are pending or approved and unused, an action
    /// that needs a new approval is denied (approval:queue_full).
    #[arg(
        long,
        env = "WARDEN_MAX_APPROVALS",
        default_value_t = warden_server::Config::default().max_approvals,
        value_name = "N"
    )]
    max_approvals: usize,
    /// How long a settled approval (used, denied, expired) stays listed
    /// after its expiry, in seconds; then a later new approval forgets it.
    /// The audit log keeps its whole history either way.
    #[arg(
        long,
        env = "WARDEN_APPROVAL_RETENTION",
        default_value_t = warden_gate::runtime::DEFAULT_APPROVAL_RETENTION.as_secs(),
        value_name = "SECONDS"
    )]
    approval_retention: u64,
    /// Under load, start an audit commit no sooner than this many
    /// milliseconds after the previous one, so that one sync covers more
    /// decisions. It applies only while the previous commit carried 8
    /// decisions or more; 0 commits as soon as the previous one is done.
    #[arg(
        long,
        env = "WARDEN_COMMIT_GATHER",
        default_value_t = warden_server::DEFAULT_COMMIT_GATHER.as_secs_f64() * 1000.0,
        value_name = "MS"
    )]
    commit_gather: f64,
    /// Do not watch the policy file (reload with POST /v1/policy/reload).
    /// In the environment: 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "WARDEN_NO_WATCH", value_parser = clap::builder::BoolishValueParser::new())]
    no_watch: bool,
    /// Log format on stderr.
    #[arg(long, env = "WARDEN_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(flatten)]
    data: state::DataDir,
}

pub fn run(args: Args) -> Result<u8> {
    let format = if args.log_format == "json" {
        LogFormat::Json
    } else {
        LogFormat::Text
    };
    warden_server::init_logging(format);
    match serve(args, format) {
        Ok(()) => Ok(0),
        // With JSON logs every line on stderr is a JSON object, the last one too.
        Err(e) if format == LogFormat::Json => {
            tracing::error!(error = format!("{e:#}"), "warden serve failed");
            Ok(crate::EXIT_FAILURE)
        }
        Err(e) => Err(e),
    }
}

fn serve(args: Args, format: LogFormat) -> Result<()> {
    if args.approval_ttl == 0 {
        bail!("--approval-ttl must be at least 1 second");
    }
    if args.max_approvals == 0 {
        bail!("--max-approvals must be at least 1");
    }
    if args.max_body < 1024 {
        bail!("--max-body must be at least 1024 bytes");
    }
    if !(0.0..=100.0).contains(&args.commit_gather) {
        bail!(
            "--commit-gather must be between 0 and 100 milliseconds, not {}",
            args.commit_gather
        );
    }
    // Tokens minted by this data directory's issuer are trusted, as by 'check'.
    let issuers = keys::existing_issuer(&args.data.data_dir)?
        .into_iter()
        .collect();
    let config = Config {
        listen: args.listen,
        data_dir: args.data.data_dir.clone(),
        policy: args.policy,
        auth_file: args.auth,
        max_body_bytes: args.max_body,
        approval_ttl: Duration::from_secs(args.approval_ttl),
        max_approvals: args.max_approvals,
        approval_retention: Duration::from_secs(args.approval_retention),
        issuers,
        watch: !args.no_watch,
        store: StoreConfig {
            gather: Duration::from_secs_f64(args.commit_gather / 1000.0),
            ..args.data.store_config()
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(256)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        // Before saying it serves: a signal from then on stops it gracefully.
        let shutdown = warden_server::shutdown_signal();
        // JSON logs say it in their "warden is serving" line (`listen`).
        if format == LogFormat::Text {
            eprintln!("warden: serving on http://{}", server.local_addr());
        }
        server.run(shutdown).await
    })
}
