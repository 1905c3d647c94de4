//! `warden serve`: the gate over HTTP.
//!
//! One process holds the data directory (SQLite audit log, agent records,
//! approvals, kill switch) and answers `POST /v1/decide` with the same
//! [`Gate`] every other entry point uses. The routes are in [`api`], the
//! roles and bearer tokens in [`auth`], the metrics in [`metrics`], and
//! policy loading and hot reload in [`reload`].
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let server = warden_server::Server::bind(warden_server::Config::default()).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(warden_server::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod auth;
mod error;
pub mod metrics;
pub mod reload;
mod timed;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use warden_gate::{Gate, Runtime, RuntimeConfig};
use warden_identity::Did;
use warden_store::{SqliteStore, Store, StoreConfig};

pub use error::ApiError;

/// The address `warden serve` listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The largest request body accepted by default (1 MiB, the gate's action limit).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a busy audit writer gathers decisions into one commit by
/// default ([`StoreConfig::gather`]): 1 ms.
pub const DEFAULT_COMMIT_GATHER: Duration = Duration::from_millis(1);

/// How `warden serve` runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen ([`DEFAULT_LISTEN`]).
    pub listen: SocketAddr,
    /// The data directory (`./.warden`).
    pub data_dir: PathBuf,
    /// The policy file; `None` serves the bundled example policy.
    pub policy: Option<PathBuf>,
    /// Bearer tokens and their roles ([`auth`]); `None` means no
    /// authentication, which is refused on a non-loopback address.
    pub auth_file: Option<PathBuf>,
    /// The largest request body accepted ([`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
    /// How long an approval waits for a human (15 minutes).
    pub approval_ttl: Duration,
    /// Most approvals held (`RuntimeConfig::max_approvals`, 100,000).
    pub max_approvals: usize,
    /// How long a settled approval stays listed after its expiry
    /// (`RuntimeConfig::approval_retention`, a day).
    pub approval_retention: Duration,
    /// Issuers trusted for capability tokens besides the policy's own.
    pub issuers: Vec<Did>,
    /// Watch the policy's directory and reload on change.
    pub watch: bool,
    /// Audit log settings: checkpoint cadence, and the commit gathering
    /// ([`DEFAULT_COMMIT_GATHER`]).
    pub store: StoreConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            data_dir: PathBuf::from(".warden"),
            policy: None,
            auth_file: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            approval_ttl: warden_gate::runtime::DEFAULT_APPROVAL_TTL,
            max_approvals: RuntimeConfig::default().max_approvals,
            approval_retention: warden_gate::runtime::DEFAULT_APPROVAL_RETENTION,
            issuers: Vec::new(),
            watch: true,
            store: StoreConfig {
                gather: DEFAULT_COMMIT_GATHER,
                ..StoreConfig::default()
            },
        }
    }
}

/// Everything a request handler reaches.
pub struct AppState {
    /// The gate deciding now; replaced whole on a policy reload, so a
    /// decision in flight finishes on the gate it started with.
    pub gate: ArcSwap<Gate>,
    /// Kill switch, limits, session labels, approvals (survives reloads).
    pub runtime: Arc<Runtime>,
    /// The store as opened, for closing and readiness.
    pub store: Arc<SqliteStore>,
    /// The store as the gate sees it (timed for the metrics).
    pub audit: Arc<dyn Store>,
    /// The instruments.
    pub metrics: metrics::Metrics,
    /// What `/metrics` exposes.
    pub registry: Arc<prometheus_client::registry::Registry>,
    /// Who may call what.
    pub auth: auth::Auth,
    /// Where the policy comes from, and how to rebuild the gate.
    pub policy: reload::PolicySource,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
}

/// A bound, ready server.
pub struct Server {
    state: Arc<AppState>,
    listener: TcpListener,
    watch: bool,
    /// The store's commit gathering, as it was opened with it (logged).
    commit_gather: Duration,
}

impl Server {
    /// Opens the data directory (creating it and the audit log key on
    /// first start), loads the policy, reads the auth file and binds.
    pub async fn bind(config: Config) -> Result<Server> {
        let auth = match &config.auth_file {
            Some(path) => auth::Auth::from_file(path)?,
            None => auth::Auth::disabled(),
        };
        if !config.listen.ip().is_loopback() && !auth.enabled() {
            bail!(
                "refusing to listen on {} without authentication: pass --auth FILE (bearer tokens per role) or listen on a loopback address",
                config.listen
            );
        }
        let store = Arc::new(
            SqliteStore::open(&config.data_dir, config.store.clone()).with_context(|| {
                format!(
                    "cannot open the data directory '{}'",
                    config.data_dir.display()
                )
            })?,
        );
        let metrics = metrics::Metrics::new();
        let audit: Arc<dyn Store> =
            Arc::new(timed::TimedStore::new(store.clone(), metrics.clone()));
        let runtime = Arc::new(
            Runtime::open(
                audit.clone(),
                RuntimeConfig {
                    approval_ttl: config.approval_ttl,
                    max_approvals: config.max_approvals,
                    approval_retention: config.approval_retention,
                    ..RuntimeConfig::default()
                },
            )
            .context("cannot read the kill switch, agents and approvals from the store")?,
        );
        let policy = reload::PolicySource::new(config.policy.clone(), config.issuers.clone());
        let gate = policy.build(runtime.clone(), audit.clone(), None)?;
        metrics.set_policy(gate.policy());
        metrics.set_audit_entries(
            store
                .log_size()
                .context("cannot read the audit log's size")?,
        );
        let registry = Arc::new(metrics.registry(runtime.clone(), audit.clone()));
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let state = Arc::new(AppState {
            gate: ArcSwap::from_pointee(gate),
            runtime,
            store,
            audit,
            metrics,
            registry,
            auth,
            policy,
            max_body_bytes: config.max_body_bytes,
        });
        Ok(Server {
            state,
            listener,
            watch: config.watch,
            commit_gather: config.store.gather,
        })
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, lets the
    /// requests in flight finish, and closes the store (which signs a
    /// final checkpoint).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let watching = self.watch && reload::watch(self.state.clone());
        // The watcher's task holds the state: ending it, however this
        // returns (or is dropped), lets the state and its store go.
        let _unwatch = StopWatching(self.state.clone());
        let app = api::service(self.state.clone());
        let approvals = self.state.runtime.config();
        tracing::info!(
            listen = %self.local_addr(),
            policy = %self.state.policy.describe(),
            watching,
            auth = self.state.auth.enabled(),
            approval_ttl_s = approvals.approval_ttl.as_secs(),
            max_approvals = approvals.max_approvals,
            approval_retention_s = approvals.approval_retention.as_secs(),
            commit_gather_ms = self.commit_gather.as_secs_f64() * 1000.0,
            "warden is serving"
        );
        axum::serve(self.listener, axum::ServiceExt::into_make_service(app))
            .with_graceful_shutdown(shutdown)
            .await
            .context("the HTTP server failed")?;
        tracing::info!("shutting down: requests finished; writing a final checkpoint");
        let store = self.state.store.clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .context("closing the store panicked")?
            .context("closing the store (final checkpoint)")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Stops the policy watcher when dropped.
struct StopWatching(Arc<AppState>);

impl Drop for StopWatching {
    fn drop(&mut self) {
        self.0.policy.stop_watching();
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM. On Unix the handlers are
/// installed when this is called, not when the future is first polled, so
/// a signal arriving between "serving" and the first poll still shuts the
/// server down gracefully instead of killing it. Call it inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        async fn received(s: std::io::Result<Signal>) {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                // Without the handler the signal keeps its default action.
                Err(_) => std::future::pending::<()>().await,
            }
        }
        let interrupt = received(signal(SignalKind::interrupt()));
        let terminate = received(signal(SignalKind::terminate()));
        async move {
            tokio::select! {
                _ = interrupt => {},
                _ = terminate => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the tracing subscriber on stderr (`RUST_LOG` filters; default
/// `info`). Text is coloured only on a terminal, so a log file holds no
/// escape codes.
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
