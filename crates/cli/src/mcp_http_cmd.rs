//! `warden mcp proxy`: MCP's streamable HTTP on `--listen`, governing an
//! upstream MCP server, with the decision server's `/v1` API (approvals
//! above all) on the same listener, since the proxy holds the data
//! directory.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use clap::Args;
use warden_mcp::proxy::Governor;
use warden_mcp::proxy::http::{self, HttpProxy, HttpUpstream};
use warden_mcp::proxy::mux::{MuxProxy, Transport, Upstream, check_name};
use warden_server::auth::{Auth, Principal, Role};
use warden_server::{ApiError, AppState};
use warden_store::Store;

use crate::mcp_proxy_cmd::{Governed, governed};
use crate::state;

/// How long open connections may keep warden from stopping.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Args)]
pub struct ProxyArgs {
    /// Address to serve streamable HTTP on (POST/GET/DELETE /mcp, and the
    /// decision API under /v1). A non-loopback address needs --auth.
    #[arg(long, default_value = "127.0.0.1:7879")]
    pub listen: SocketAddr,
    /// The upstream MCP server's streamable-HTTP endpoint, e.g. http://127.0.0.1:3001/mcp.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub upstream: Option<String>,
    /// Several upstreams, stdio or HTTP, in an MCP client configuration
    /// file ({"mcpServers": {NAME: {"command", "args", "env"} | {"url"}}}):
    /// their tools and prompts are named NAME__TOOL.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Policy file (default: the bundled example policy).
    #[arg(long, short, env = "WARDEN_POLICY")]
    pub policy: Option<PathBuf>,
    /// The agent's DID: every tool call is decided as this agent's.
    #[arg(long, value_name = "DID")]
    pub agent: Option<String>,
    /// The server's name for tool pins and findings (what 'warden mcp
    /// approve-tool SERVER TOOL' takes) for --upstream; default: its
    /// host:port. With --config, each server's name is its key there.
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
    /// Bearer tokens per role (agent, approver, admin), YAML, as for 'warden
    /// serve': /mcp then needs an agent token, /v1 the route's role.
    #[arg(long, env = "WARDEN_AUTH", value_name = "FILE")]
    pub auth: Option<PathBuf>,
    #[command(flatten)]
    pub data: state::DataDir,
}

/// The server name pins are kept under by default: the URL's host and port.
fn server_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

pub fn proxy(args: ProxyArgs) -> Result<u8> {
    warden_server::init_logging(warden_server::LogFormat::Text);
    let auth = match &args.auth {
        Some(path) => Auth::from_file(path)?,
        None => Auth::disabled(),
    };
    // warden serve's rule: without tokens, only this machine may call.
    if !args.listen.ip().is_loopback() && !auth.enabled() {
        bail!(
            "refusing to listen on {} without authentication: pass --auth FILE (bearer tokens per role) or listen on a loopback address",
            args.listen
        );
    }
    let upstreams = match (&args.upstream, &args.config) {
        (Some(url), _) => vec![Declared::Http {
            name: args.server.clone().unwrap_or_else(|| server_name(url)),
            upstream: HttpUpstream::new(url)?,
        }],
        (None, Some(path)) => declared(path)?,
        (None, None) => bail!("give --upstream URL or --config FILE"),
    };
    let Governed {
        store,
        audit,
        runtime,
        gate,
        source,
    } = governed(args.policy.clone(), args.agent.as_deref(), &args.data)?;
    let metrics = warden_server::metrics::Metrics::new();
    metrics.set_policy(gate.policy());
    let registry = Arc::new(metrics.registry(runtime.clone(), audit.clone()));
    let names: Vec<String> = upstreams.iter().map(|u| u.name().to_string()).collect();
    // Each server's tools are checked against the others' as they list them.
    let neighbours = warden_mcp::proxy::vet::Neighbours::new(names.clone());
    let governor = |name: &str| {
        let counted = metrics.clone();
        Arc::new(
            Governor::new(gate.clone(), name, args.agent.clone(), audit.clone())
                .with_neighbours(neighbours.clone())
                .with_observer(Arc::new(move |point, decision, took| {
                    counted.observe_decision(point, decision, took)
                })),
        )
    };
    let endpoint = match upstreams.as_slice() {
        // One HTTP upstream: passed through as it is.
        [Declared::Http { name, upstream }] => {
            Endpoint::One(HttpProxy::new(governor(name), upstream.clone()))
        }
        _ => Endpoint::Many(MuxProxy::new(
            upstreams
                .into_iter()
                .map(|u| {
                    let name = u.name().to_string();
                    let transport = match u {
                        Declared::Http { upstream, .. } => Transport::Http(upstream),
                        Declared::Stdio { command, .. } => Transport::Stdio { command },
                    };
                    Upstream {
                        governor: governor(&name),
                        name,
                        transport,
                    }
                })
                .collect(),
        )),
    };
    let state = Arc::new(AppState {
        gate: ArcSwap::new(gate),
        runtime,
        store: store.clone(),
        audit,
        metrics,
        registry,
        auth: auth.clone(),
        policy: source,
        max_body_bytes: warden_server::DEFAULT_MAX_BODY_BYTES,
    });
    let mut mcp = match &endpoint {
        Endpoint::One(p) => p.router(),
        Endpoint::Many(p) => p.router(),
    };
    if auth.enabled() {
        // The outer layer runs first: the token is checked, then its name
        // is handed to the endpoint.
        mcp = mcp
            .route_layer(from_fn(name_the_caller))
            .route_layer(from_fn_with_state(
                (state.clone(), Role::Agent),
                warden_server::auth::require,
            ));
    }
    let mut app: Router = mcp
        .merge(warden_server::api::router(state.clone()))
        .layer(from_fn(no_policy_reload));
    if args.listen.ip().is_loopback() {
        app = app.layer(from_fn(http::local_origin_only));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(256)
        .build()
        .context("cannot start the async runtime")?;
    let served = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener
            .local_addr()
            .context("the listener has no address")?;
        tracing::info!(
            listen = %addr,
            upstreams = ?names,
            policy = %state.policy.describe(),
            auth = auth.enabled(),
            "governing the MCP server over streamable HTTP"
        );
        // Before saying it serves: a signal from then on stops it gracefully.
        let shutdown = warden_server::shutdown_signal();
        eprintln!("warden: serving MCP on http://{addr}/mcp (decision API on http://{addr}/v1)");
        let sweeper = {
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(http::IDLE_SWEEP);
                loop {
                    tick.tick().await;
                    endpoint.drop_idle().await;
                }
            })
        };
        let (stopping, stop) = tokio::sync::oneshot::channel::<()>();
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stopping.send(());
            })
            .into_future();
        tokio::pin!(serve);
        // Event streams stay open as long as clients keep them: once asked
        // to stop, warden ends the sessions and waits SHUTDOWN_GRACE for
        // the connections, then stops anyway.
        let served = tokio::select! {
            served = &mut serve => served.context("the HTTP server failed"),
            _ = async {
                if stop.await.is_ok() {
                    endpoint.close().await;
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!("clients kept connections open {SHUTDOWN_GRACE:?} after the stop; stopping anyway");
                Ok(())
            }
        };
        sweeper.abort();
        endpoint.close().await;
        served
    });
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    let closed = store.close();
    served?;
    closed.context("closing the audit log (final checkpoint)")?;
    Ok(0)
}

#[derive(Clone)]
enum Endpoint {
    One(Arc<HttpProxy>),
    Many(Arc<MuxProxy>),
}

/// An upstream as the command line or the configuration declares it.
enum Declared {
    Http {
        name: String,
        upstream: HttpUpstream,
    },
    Stdio {
        name: String,
        command: Vec<String>,
    },
}

impl Endpoint {
    async fn close(&self) {
        match self {
            Endpoint::One(p) => p.close().await,
            Endpoint::Many(p) => p.close().await,
        }
    }

    async fn drop_idle(&self) {
        match self {
            Endpoint::One(p) => p.drop_idle().await,
            Endpoint::Many(p) => p.drop_idle().await,
        }
    }
}

impl Declared {
    fn name(&self) -> &str {
        match self {
            Declared::Http { name, .. } | Declared::Stdio { name, .. } => name,
        }
    }
}

/// The upstreams of an MCP client configuration file.
fn declared(path: &std::path::Path) -> Result<Vec<Declared>> {
    let servers = warden_mcp::config::read_client_config(path)?;
    if servers.is_empty() {
        bail!(
            "'{}' declares no MCP server: give {{\"mcpServers\": {{NAME: {{\"command\": …}} | {{\"url\": …}}}}}}",
            path.display()
        );
    }
    let mut out: Vec<Declared> = Vec::with_capacity(servers.len());
    for s in servers {
        check_name(&s.name).with_context(|| format!("'{}'", path.display()))?;
        if out.iter().any(|d| d.name() == s.name) {
            bail!(
                "'{}': the server '{}' is declared twice",
                path.display(),
                s.name
            );
        }
        out.push(match (s.command, s.url) {
            (Some(command), _) => {
                // The variables go through env(1), which stdio::run starts.
                let mut full = Vec::new();
                if !s.env.is_empty() {
                    full.push("env".to_string());
                    full.extend(s.env.iter().map(|(k, v)| format!("{k}={v}")));
                }
                full.push(command);
                full.extend(s.args);
                Declared::Stdio {
                    name: s.name,
                    command: full,
                }
            }
            (None, Some(url)) => Declared::Http {
                upstream: HttpUpstream::new(&url)
                    .with_context(|| format!("'{}': server '{}'", path.display(), s.name))?,
                name: s.name,
            },
            (None, None) => bail!(
                "'{}': server '{}' has neither \"command\" nor \"url\"",
                path.display(),
                s.name
            ),
        });
    }
    Ok(out)
}

/// Hands the authenticated token's name to the MCP endpoint
/// ([`http::Caller`]): a session belongs to the token that opened it, and
/// its decisions' audit records name it. A capability token is refused
/// here: the endpoint's tool calls act as the proxy's agent and carry no
/// token, so the token's rights would not reach them.
async fn name_the_caller(mut request: Request, next: Next) -> Response {
    let principal = request
        .extensions()
        .get::<Principal>()
        .filter(|p| p.authenticated());
    if principal.is_some_and(|p| p.capability.is_some()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the MCP endpoint takes agent tokens from the tokens file; a capability token is accepted by /v1/decide, where its rights apply",
        )
        .into_response();
    }
    if let Some(name) = principal.map(|p| p.name.clone()) {
        request.extensions_mut().insert(http::Caller(name));
    }
    next.run(request).await
}

/// The proxy's gate is built once: a reload through the API would change
/// the decision server's gate and not the proxy's, so it is refused.
async fn no_policy_reload(request: Request, next: Next) -> Response {
    if request.uri().path() == "/v1/policy/reload" {
        return ApiError::new(
            StatusCode::CONFLICT,
            "reload_unsupported",
            "warden mcp proxy reads its policy when it starts: restart it to load a changed policy",
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_named_after_the_upstream_host() {
        assert_eq!(server_name("http://127.0.0.1:3001/mcp"), "127.0.0.1:3001");
        assert_eq!(server_name("http://tools.internal/mcp"), "tools.internal");
    }
}
