//! `warden mcp proxy`: MCP's streamable HTTP on `--listen`, governing an
//! upstream MCP server, with the decision server's `/v1` API (approvals
//! above all) on the same listener, since the proxy holds the data
//! directory.

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
use warden_server::auth::{Auth, Role};
use warden_server::{ApiError, AppState};
use warden_store::Store;

use crate::mcp_proxy_cmd::{Governed, governed};
use crate::state;

#[derive(Args)]
pub struct ProxyArgs {
    /// Address to serve streamable HTTP on (POST/GET/DELETE /mcp, and the
    /// decision API under /v1). A non-loopback address needs --auth.
    #[arg(long, default_value = "127.0.0.1:7879")]
    pub listen: SocketAddr,
    /// The upstream MCP server's streamable-HTTP endpoint, e.g. http://127.0.0.1:3001/mcp.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// Policy file (default: the bundled example policy).
    #[arg(long, short, env = "WARDEN_POLICY")]
    pub policy: Option<PathBuf>,
    /// The agent's DID: every tool call is decided as this agent's.
    #[arg(long, value_name = "DID")]
    pub agent: Option<String>,
    /// The server's name for tool pins and findings (what 'warden mcp
    /// approve-tool SERVER TOOL' takes); default: the upstream's host:port.
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
    let upstream = HttpUpstream::new(&args.upstream)?;
    let Governed {
        store,
        audit,
        runtime,
        gate,
        source,
    } = governed(args.policy.clone(), args.agent.as_deref(), &args.data)?;
    let server = args
        .server
        .clone()
        .unwrap_or_else(|| server_name(&args.upstream));
    let metrics = warden_server::metrics::Metrics::new();
    metrics.set_policy(gate.policy());
    let registry = Arc::new(metrics.registry(runtime.clone(), audit.clone()));
    let governor = Arc::new(Governor::new(
        gate.clone(),
        server.clone(),
        args.agent.clone(),
        audit.clone(),
    ));
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
    let proxy = HttpProxy::new(governor, upstream);
    let mut mcp = proxy.router();
    if auth.enabled() {
        mcp = mcp.route_layer(from_fn_with_state(
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
            upstream = %args.upstream,
            server = %server,
            policy = %state.policy.describe(),
            auth = auth.enabled(),
            "governing the MCP server over streamable HTTP"
        );
        eprintln!("warden: serving MCP on http://{addr}/mcp (decision API on http://{addr}/v1)");
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(warden_server::shutdown_signal())
            .await
            .context("the HTTP server failed");
        proxy.close().await;
        served
    });
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    let closed = store.close();
    served?;
    closed.context("closing the audit log (final checkpoint)")?;
    Ok(0)
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
