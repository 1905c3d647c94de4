//! The streamable-HTTP transport (`warden mcp proxy`): MCP clients talk to
//! warden's `/mcp` endpoint, warden talks to the upstream server's, and
//! every message passes a [`Session`] on the way.
//!
//! What the endpoint speaks is MCP's streamable HTTP (the revision the
//! reference servers speak, 2025-03-26 and later):
//!
//! - `POST /mcp` carries one JSON-RPC message (or a batch). A message warden
//!   answers itself (a refused `tools/call`) is answered here; the rest is
//!   forwarded and the upstream's answer comes back as it came, JSON
//!   (`application/json`) or a stream of events (`text/event-stream`),
//!   each event governed in order. Notifications and responses alone get
//!   `202 Accepted`.
//! - `Mcp-Session-Id`: when the upstream issues one on `initialize`, warden
//!   issues its own to the client (random, 128 bits) and maps one to the
//!   other; later requests must carry it (`404` for one warden does not
//!   know, so the client initializes again). An upstream that issues none
//!   is stateless: so is warden's endpoint then, and every request is
//!   forwarded as it comes.
//! - `GET /mcp` opens the upstream's server-to-client event stream (with
//!   `Last-Event-ID` passed on, so a client can resume); `DELETE /mcp` ends
//!   the session on both sides.
//! - `MCP-Protocol-Version` is passed through both ways; event ids,
//!   event types and `retry` are kept.
//!
//! The gate's `session` for an MCP session is a name of its own
//! (`mcp-http-…`), not the `Mcp-Session-Id`: the id is a secret that lets
//! whoever holds it speak in the session, and the gate's session lands in
//! the audit log and the approvals list. Stateless traffic shares one gate
//! session per upstream.
//!
//! ```no_run
//! # fn run(governor: std::sync::Arc<warden_mcp::proxy::Governor>) -> Result<(), Box<dyn std::error::Error>> {
//! use warden_mcp::proxy::http::{HttpProxy, HttpUpstream};
//! let upstream = HttpUpstream::new("http://127.0.0.1:3001/mcp")?;
//! // POST/GET/DELETE /mcp; serve it with `axum::serve`.
//! let app: axum::Router = HttpProxy::new(governor, upstream).router();
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::jsonrpc::{self, Kind};
use super::{Governor, Orphans, Session};

/// Largest request body accepted from a client, in bytes (4 MiB; a
/// `tools/call` the gate can decide is at most 1 MiB of action).
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// Largest message accepted from the upstream (a JSON body or one event),
/// in bytes, as on stdio.
pub const MAX_UPSTREAM_MESSAGE_BYTES: usize = super::stdio::MAX_MESSAGE_BYTES;
/// Most MCP sessions open at once; beyond it `initialize` is refused
/// (`503`) until an idle one can be dropped.
pub const MAX_SESSIONS: usize = 1024;
/// A session nobody used for this long may be dropped for a new one.
pub const SESSION_IDLE: Duration = Duration::from_secs(60 * 60);
/// How often idle sessions are looked for.
pub const IDLE_SWEEP: Duration = Duration::from_secs(60);
/// How long connecting to the upstream may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Events buffered for a slow client, per stream.
pub(super) const STREAM_BUFFER: usize = 64;

/// The session header.
pub const SESSION_HEADER: &str = "mcp-session-id";
const LAST_EVENT_ID: &str = "last-event-id";
/// What the TypeScript SDK answers for a session it does not know.
pub(super) const SESSION_NOT_FOUND: i64 = -32001;

/// Why the upstream cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not an `http://` or `https://` URL.
    #[error(
        "'{0}' is not an MCP server URL: give http://HOST:PORT/PATH (e.g. http://127.0.0.1:3001/mcp)"
    )]
    BadUrl(String),
    /// `https://` needs TLS, which this build does not have.
    #[error(
        "'{0}': warden reaches upstreams over plain http:// only (no TLS in this build); give an http:// URL, e.g. of a TLS-terminating proxy on this machine"
    )]
    NoTls(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// An upstream MCP server reached over streamable HTTP.
#[derive(Debug, Clone)]
pub struct HttpUpstream {
    pub(super) url: reqwest::Url,
    pub(super) client: reqwest::Client,
}

impl HttpUpstream {
    /// The server at `url` (its MCP endpoint, e.g. `http://127.0.0.1:3001/mcp`).
    pub fn new(url: &str) -> Result<HttpUpstream, HttpError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| HttpError::BadUrl(url.to_string()))?;
        match parsed.scheme() {
            "http" => {}
            "https" => return Err(HttpError::NoTls(url.to_string())),
            _ => return Err(HttpError::BadUrl(url.to_string())),
        }
        if parsed.host_str().is_none() {
            return Err(HttpError::BadUrl(url.to_string()));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // A proxy that answers in the upstream's place would make its
            // answers ours; MCP servers are reached directly.
            .no_proxy()
            .build()
            .map_err(|e| HttpError::Client(e.to_string()))?;
        Ok(HttpUpstream {
            url: parsed,
            client,
        })
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }
}

/// The authenticated caller of a request to `/mcp`: the name of its bearer
/// token. The front end that authenticates puts it in the request's
/// extensions. A session belongs to the caller that opened it: another
/// caller naming its id is told there is no such session, and the audit
/// record of each of its decisions names that caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// Extracts the request's [`Caller`], if the front end put one there.
pub(super) struct CallerName(pub(super) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for CallerName {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(CallerName(
            parts.extensions.get::<Caller>().map(|c| c.0.clone()),
        ))
    }
}

/// One MCP session of a client: its [`Session`] and the upstream's id for it.
struct Client {
    session: Arc<Session>,
    /// The caller that opened it ([`Caller`]).
    owner: Option<String>,
    /// The upstream's `Mcp-Session-Id`; `None` for stateless traffic.
    upstream_id: Option<String>,
    last_used: Mutex<Instant>,
}

impl Client {
    fn touch(&self) {
        *super::lock(&self.last_used) = Instant::now();
    }

    fn idle(&self) -> Duration {
        super::lock(&self.last_used).elapsed()
    }
}

/// The `/mcp` endpoint in front of one upstream over HTTP.
pub struct HttpProxy {
    governor: Arc<Governor>,
    upstream: HttpUpstream,
    /// By the id warden gave the client.
    sessions: Mutex<HashMap<String, Arc<Client>>>,
}

impl std::fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProxy")
            .field("upstream", &self.upstream.url())
            .field("sessions", &super::lock(&self.sessions).len())
            .finish_non_exhaustive()
    }
}

impl HttpProxy {
    /// Governs the server at `upstream` with `governor`.
    pub fn new(governor: Arc<Governor>, upstream: HttpUpstream) -> Arc<HttpProxy> {
        Arc::new(HttpProxy {
            governor,
            upstream,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// The routes: `POST`, `GET` and `DELETE` on `/mcp`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                "/mcp",
                post(handle_post).get(handle_get).delete(handle_delete),
            )
            .with_state(self.clone())
    }

    /// How many MCP sessions are open.
    pub fn sessions(&self) -> usize {
        super::lock(&self.sessions).len()
    }

    /// Ends every session (the upstream's too) and settles what is in
    /// flight: calls still running get the outcome `unknown`.
    pub async fn close(&self) {
        let all: Vec<(String, Arc<Client>)> = super::lock(&self.sessions).drain().collect();
        for (_, client) in all {
            self.end_upstream(&client).await;
            client.session.close("warden stopped").await;
        }
    }

    /// Ends the sessions nobody used for [`SESSION_IDLE`] (call it now and
    /// then; [`IDLE_SWEEP`] is a good period).
    pub async fn drop_idle(&self) {
        let idle: Vec<Arc<Client>> = {
            let mut sessions = super::lock(&self.sessions);
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, c)| c.idle() >= SESSION_IDLE)
                .map(|(k, _)| k.clone())
                .collect();
            ids.iter().filter_map(|k| sessions.remove(k)).collect()
        };
        for c in idle {
            tracing::info!(session = %c.session.id(), "an idle MCP session was ended");
            self.end_upstream(&c).await;
            c.session.close("the session was idle for too long").await;
        }
    }

    fn session(&self, id: &str) -> Option<Arc<Client>> {
        let client = super::lock(&self.sessions).get(id).cloned()?;
        client.touch();
        Some(client)
    }

    /// Keeps `client` under a fresh id, making room if it must.
    fn register(self: &Arc<Self>, client: Arc<Client>) -> Option<String> {
        let id = random_hex();
        let mut evicted = Vec::new();
        {
            let mut sessions = super::lock(&self.sessions);
            if sessions.len() >= MAX_SESSIONS {
                let idle: Vec<String> = sessions
                    .iter()
                    .filter(|(_, c)| c.idle() >= SESSION_IDLE)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in idle {
                    evicted.extend(sessions.remove(&k));
                }
            }
            if sessions.len() >= MAX_SESSIONS {
                return None;
            }
            sessions.insert(id.clone(), client);
        }
        for c in evicted {
            let this = self.clone();
            tokio::spawn(async move {
                tracing::info!(session = %c.session.id(), "an idle MCP session was dropped");
                this.end_upstream(&c).await;
                c.session.close("the session was idle for too long").await;
            });
        }
        Some(id)
    }

    /// Best effort: tells the upstream the session is over.
    async fn end_upstream(&self, client: &Client) {
        let Some(uid) = &client.upstream_id else {
            return;
        };
        let sent = self
            .upstream
            .client
            .delete(self.upstream.url.clone())
            .header(SESSION_HEADER, uid)
            .timeout(CONNECT_TIMEOUT)
            .send()
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "the upstream session could not be ended");
        }
    }

    /// Traffic without a session: one gate session per upstream.
    fn stateless(&self, caller: Option<String>) -> Arc<Client> {
        self.client(format!("mcp-http:{}", self.governor.server()), caller)
    }

    /// A new client session, not yet known to the upstream.
    fn fresh(&self, caller: Option<String>) -> Arc<Client> {
        self.client(format!("mcp-http-{}", &random_hex()[..16]), caller)
    }

    fn client(&self, session_name: String, caller: Option<String>) -> Arc<Client> {
        Arc::new(Client {
            session: Arc::new(
                Session::new(self.governor.clone(), session_name).with_caller(caller.clone()),
            ),
            owner: caller,
            upstream_id: None,
            last_used: Mutex::new(Instant::now()),
        })
    }

    fn request(
        &self,
        method: reqwest::Method,
        headers: &HeaderMap,
        upstream_id: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .upstream
            .client
            .request(method, self.upstream.url.clone());
        for (name, v) in headers {
            if passed_on(name) {
                req = req.header(name.as_str(), v.as_bytes());
            }
        }
        if let Some(uid) = upstream_id {
            req = req.header(SESSION_HEADER, uid);
        }
        req
    }
}

/// Whether a header goes on to the other side as it is: `Accept`,
/// `Last-Event-ID` and MCP's own (`MCP-Protocol-Version`, and those of
/// later revisions such as `Mcp-Method`), but not `Mcp-Session-Id`, which
/// warden maps.
pub(super) fn passed_on(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == header::ACCEPT.as_str()
        || n == LAST_EVENT_ID
        || (n.starts_with("mcp-") && n != SESSION_HEADER)
}

// ---- handlers ----------------------------------------------------------------

/// The client's session, if it named one: `Err` is the response for a
/// session warden does not know or a header it cannot read.
fn named_session(
    p: &HttpProxy,
    headers: &HeaderMap,
    caller: Option<&str>,
) -> Result<Option<Arc<Client>>, Box<Response>> {
    let Some(v) = headers.get(SESSION_HEADER) else {
        return Ok(None);
    };
    let Ok(id) = v.to_str() else {
        return Err(Box::new(rpc_error_response(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "Bad Request: the Mcp-Session-Id header is not visible ASCII",
        )));
    };
    // Another caller's session reads as no session at all.
    match p.session(id).filter(|c| c.owner.as_deref() == caller) {
        Some(c) => Ok(Some(c)),
        None => Err(Box::new(rpc_error_response(
            StatusCode::NOT_FOUND,
            SESSION_NOT_FOUND,
            "Session not found: it ended or never existed; send 'initialize' without an Mcp-Session-Id to start a new one",
        ))),
    }
}

async fn handle_post(
    State(p): State<Arc<HttpProxy>>,
    CallerName(caller): CallerName,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let (bytes, msg) = match posted_message(&headers, body).await {
        Ok(posted) => posted,
        Err(r) => return *r,
    };
    let named = match named_session(&p, &headers, caller.as_deref()) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let initialize = matches!(
        jsonrpc::kind(&msg),
        Kind::Request {
            method: "initialize",
            ..
        }
    );
    let (client, fresh) = match named {
        Some(c) => (c, false),
        None if initialize => (p.fresh(caller), true),
        None => (p.stateless(caller), false),
    };
    let routed = client.session.from_client(msg).await;
    let answers = routed.answer.map(into_list).unwrap_or_default();
    let Some(forward) = routed.forward else {
        return json_messages(StatusCode::OK, answers, None);
    };
    let waiting = request_ids(&forward);
    // Until the answer is relayed: if the client goes away (the handler is
    // dropped), the requests are given up on, the calls `unknown`.
    let mut orphans = Orphans {
        session: client.session.clone(),
        ids: waiting.clone(),
    };
    let body = if routed.rewritten {
        match serde_json::to_vec(&forward) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                return rpc_error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    jsonrpc::INTERNAL_ERROR,
                    format!("cannot write the message: {e}"),
                );
            }
        }
    } else {
        bytes
    };
    let sent = p
        .request(
            reqwest::Method::POST,
            &headers,
            client.upstream_id.as_deref(),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let why = format!(
                "the MCP server at {} cannot be reached: {}",
                p.upstream.url(),
                error_chain(&e)
            );
            tracing::warn!(error = %why, "forwarding to the MCP server failed");
            return lost(&client, waiting, answers, &why).await;
        }
    };
    let status = resp.status();
    let mut issued = None;
    let mut client = client;
    if fresh
        && status.is_success()
        && let Some(uid) = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        let kept = Arc::new(Client {
            session: client.session.clone(),
            owner: client.owner.clone(),
            upstream_id: Some(uid.to_string()),
            last_used: Mutex::new(Instant::now()),
        });
        match p.register(kept.clone()) {
            Some(id) => {
                tracing::info!(session = %kept.session.id(), "an MCP session began");
                issued = Some(id);
                client = kept;
            }
            None => {
                p.end_upstream(&kept).await;
                return rpc_error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    jsonrpc::INTERNAL_ERROR,
                    format!(
                        "more than {MAX_SESSIONS} MCP sessions are open; end one (DELETE /mcp) or try again later"
                    ),
                );
            }
        }
    }
    if status == StatusCode::NOT_FOUND
        && let Some(uid) = &client.upstream_id
    {
        // The upstream forgot the session: so does warden, and the client
        // starts again.
        drop_session(&p, uid);
    }
    let mcp_headers = mcp_headers(resp.headers());
    if is_event_stream(&resp) {
        // The stream's own task settles them from here on.
        orphans.ids.clear();
    }
    let mut out = relay(&client, resp, waiting, answers).await;
    orphans.ids.clear();
    let h = out.headers_mut();
    h.extend(mcp_headers);
    if let Some(id) = issued
        && let Ok(v) = HeaderValue::from_str(&id)
    {
        h.insert(HeaderName::from_static(SESSION_HEADER), v);
    }
    out
}

async fn handle_get(
    State(p): State<Arc<HttpProxy>>,
    CallerName(caller): CallerName,
    headers: HeaderMap,
) -> Response {
    let client = match named_session(&p, &headers, caller.as_deref()) {
        Ok(Some(c)) => c,
        Ok(None) => p.stateless(caller),
        Err(r) => return *r,
    };
    let sent = p
        .request(
            reqwest::Method::GET,
            &headers,
            client.upstream_id.as_deref(),
        )
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let mcp_headers = mcp_headers(resp.headers());
            let mut out = relay(&client, resp, Vec::new(), Vec::new()).await;
            out.headers_mut().extend(mcp_headers);
            out
        }
        Err(e) => rpc_error_response(
            StatusCode::BAD_GATEWAY,
            jsonrpc::INTERNAL_ERROR,
            format!(
                "the MCP server at {} cannot be reached: {}",
                p.upstream.url(),
                error_chain(&e)
            ),
        ),
    }
}

async fn handle_delete(
    State(p): State<Arc<HttpProxy>>,
    CallerName(caller): CallerName,
    headers: HeaderMap,
) -> Response {
    let client = match named_session(&p, &headers, caller.as_deref()) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return rpc_error_response(
                StatusCode::BAD_REQUEST,
                jsonrpc::INVALID_REQUEST,
                "Bad Request: DELETE ends a session; name it with the Mcp-Session-Id header",
            );
        }
        Err(r) => return *r,
    };
    let sent = p
        .request(
            reqwest::Method::DELETE,
            &headers,
            client.upstream_id.as_deref(),
        )
        .send()
        .await;
    let status = match sent {
        Ok(r) => r.status(),
        // The upstream is gone; so is the session.
        Err(_) => StatusCode::OK,
    };
    if status.is_success() || status == StatusCode::NOT_FOUND {
        if let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
            super::lock(&p.sessions).remove(id);
        }
        client.session.close("the client ended the session").await;
        tracing::info!(session = %client.session.id(), "an MCP session ended");
        return StatusCode::OK.into_response();
    }
    // The upstream keeps the session (e.g. 405: it does not let clients
    // end sessions): so does warden.
    status.into_response()
}

/// The upstream response's MCP headers but its session id.
fn mcp_headers(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("mcp-") && n.as_str() != SESSION_HEADER)
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

fn drop_session(p: &HttpProxy, upstream_id: &str) {
    let mut sessions = super::lock(&p.sessions);
    sessions.retain(|_, c| c.upstream_id.as_deref() != Some(upstream_id));
}

/// Whether the upstream answered with an event stream.
fn is_event_stream(resp: &reqwest::Response) -> bool {
    resp.status().is_success()
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|s| s.to_ascii_lowercase().starts_with("text/event-stream"))
}

/// The upstream's response, governed, as the client's.
async fn relay(
    client: &Arc<Client>,
    resp: reqwest::Response,
    waiting: Vec<Value>,
    answers: Vec<Value>,
) -> Response {
    let status = resp.status();
    if is_event_stream(&resp) {
        return stream_events(client.clone(), resp, waiting, answers);
    }
    let upstream_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = match read_upstream(resp).await {
        Ok(b) => b,
        Err(why) => return lost(client, waiting, answers, &why).await,
    };
    if !status.is_success() {
        // Not an MCP answer (a refusal of the request itself): as it came,
        // after settling the requests it will not answer.
        settle(client, waiting, "the MCP server refused the request").await;
        let mut out = (status, bytes).into_response();
        if let Some(ct) = upstream_type {
            out.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        return out;
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if answers.is_empty() {
            return StatusCode::ACCEPTED.into_response();
        }
        return json_messages(StatusCode::OK, answers, None);
    }
    let msg: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let why = format!("the MCP server's answer is not JSON: {e}");
            return lost(client, waiting, answers, &why).await;
        }
    };
    let routed = client.session.from_upstream(msg).await;
    let Some(forward) = routed.forward else {
        return json_messages(status, answers, None);
    };
    if answers.is_empty() && !routed.rewritten {
        return json_bytes(status, bytes);
    }
    json_messages(status, answers, Some(forward))
}

/// Answers `waiting` (the requests forwarded) with errors, after `answers`:
/// the exchange broke, so the upstream will not answer them, and calls
/// among them get the outcome `unknown`.
async fn lost(
    client: &Arc<Client>,
    waiting: Vec<Value>,
    mut answers: Vec<Value>,
    why: &str,
) -> Response {
    let had_requests = !waiting.is_empty();
    answers.extend(client.session.abandon(&waiting, why).await);
    if answers.is_empty() && !had_requests {
        return rpc_error_response(StatusCode::BAD_GATEWAY, jsonrpc::INTERNAL_ERROR, why);
    }
    json_messages(StatusCode::OK, answers, None)
}

/// The error responses to `waiting`, passed through the session as the
/// upstream's answers, so it stops waiting for them: the upstream refused
/// the requests, so calls among them get the outcome `failed`.
async fn settle(client: &Arc<Client>, waiting: Vec<Value>, why: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for id in waiting {
        let error = jsonrpc::error(&id, jsonrpc::INTERNAL_ERROR, why.to_string());
        let routed = client.session.from_upstream(error).await;
        out.extend(routed.forward);
    }
    out
}

/// An upstream event stream, governed event by event, in order.
/// Once the client is gone, the stream is read on only until `waiting` is
/// answered. If it breaks off before the requests of `waiting` are answered,
/// they are abandoned (answered with errors, calls among them `unknown`);
/// a stream that ends cleanly leaves them waiting, since a resumable
/// server may answer on a later stream.
fn stream_events(
    client: Arc<Client>,
    resp: reqwest::Response,
    mut waiting: Vec<Value>,
    answers: Vec<Value>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
    tokio::spawn(async move {
        let mut open = true;
        for a in answers {
            open = send(&tx, open, event_bytes(None, None, &a)).await;
        }
        let mut resp = resp;
        let mut parser = SseParser::default();
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    let why = format!(
                        "the MCP server's event stream broke off: {}",
                        error_chain(&e)
                    );
                    tracing::info!(error = %why, "an upstream stream ended early");
                    for a in client.session.abandon(&waiting, &why).await {
                        open = send(&tx, open, event_bytes(None, None, &a)).await;
                    }
                    break;
                }
            };
            for item in parser.push(&chunk) {
                let bytes = match item {
                    SseItem::TooLong => {
                        tracing::warn!(
                            "the MCP server sent an event longer than {MAX_UPSTREAM_MESSAGE_BYTES} bytes; dropped"
                        );
                        continue;
                    }
                    SseItem::Event(ev) => govern_event(&client, ev, &mut waiting).await,
                };
                if let Some(b) = bytes {
                    open = send(&tx, open, b).await;
                }
            }
            // The client went away: read on only while calls of its own
            // are in flight, so they get their outcomes (a GET stream has
            // none and would never end).
            if !open && waiting.is_empty() {
                break;
            }
        }
    });
    let mut out = Response::new(Body::from_stream(Events(rx)));
    let h = out.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    out
}

/// Sends unless the client went away. The upstream's stream is still read
/// to its end then, so calls in flight get their outcomes.
async fn send(tx: &mpsc::Sender<Bytes>, open: bool, bytes: Bytes) -> bool {
    open && tx.send(bytes).await.is_ok()
}

/// One upstream event as the client gets it: its message governed, its
/// id, type and `retry` kept.
async fn govern_event(
    client: &Arc<Client>,
    ev: SseEvent,
    waiting: &mut Vec<Value>,
) -> Option<Bytes> {
    let is_message = matches!(ev.event.as_deref(), None | Some("message"));
    if !is_message || ev.data.is_empty() {
        return Some(ev.raw());
    }
    let msg: Value = match serde_json::from_str(&ev.data) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "the MCP server sent an event that is not JSON; dropped");
            return None;
        }
    };
    let answered = |m: &Value| match jsonrpc::kind(m) {
        Kind::Response { id } => Some(jsonrpc::id_key(id)),
        _ => None,
    };
    let keys: Vec<String> = match &msg {
        Value::Array(items) => items.iter().filter_map(answered).collect(),
        m => answered(m).into_iter().collect(),
    };
    waiting.retain(|id| !keys.contains(&jsonrpc::id_key(id)));
    let routed = client.session.from_upstream(msg).await;
    let forward = routed.forward?;
    if !routed.rewritten {
        return Some(ev.raw());
    }
    let mut out = String::new();
    if let Some(t) = &ev.event {
        out.push_str(&format!("event: {t}\n"));
    }
    if let Some(id) = &ev.id {
        out.push_str(&format!("id: {id}\n"));
    }
    if let Some(r) = &ev.retry {
        out.push_str(&format!("retry: {r}\n"));
    }
    out.push_str(&format!("data: {forward}\n\n"));
    Some(Bytes::from(out))
}

pub(super) fn event_bytes(event: Option<&str>, id: Option<&str>, msg: &Value) -> Bytes {
    let mut out = String::new();
    out.push_str(&format!("event: {}\n", event.unwrap_or("message")));
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    out.push_str(&format!("data: {msg}\n\n"));
    Bytes::from(out)
}

/// A response body fed by a channel.
pub(super) struct Events(pub(super) mpsc::Receiver<Bytes>);

impl futures_core::Stream for Events {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|b| b.map(Ok))
    }
}

// ---- server-sent events --------------------------------------------------------

/// One event of a `text/event-stream`.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct SseEvent {
    pub(super) event: Option<String>,
    pub(super) id: Option<String>,
    pub(super) retry: Option<String>,
    pub(super) data: String,
}

impl SseEvent {
    /// The event written out again (the data's lines as they came).
    pub(super) fn raw(&self) -> Bytes {
        let mut out = String::new();
        if let Some(t) = &self.event {
            out.push_str(&format!("event: {t}\n"));
        }
        if let Some(id) = &self.id {
            out.push_str(&format!("id: {id}\n"));
        }
        if let Some(r) = &self.retry {
            out.push_str(&format!("retry: {r}\n"));
        }
        if self.data.is_empty() && (self.id.is_some() || self.retry.is_some()) {
            // An event that only moves the last event id or the retry time.
            out.push('\n');
            return Bytes::from(out);
        }
        for line in self.data.split('\n') {
            out.push_str(&format!("data: {line}\n"));
        }
        out.push('\n');
        Bytes::from(out)
    }

    fn is_empty(&self) -> bool {
        self.event.is_none() && self.id.is_none() && self.retry.is_none() && self.data.is_empty()
    }
}

#[derive(Debug, PartialEq)]
pub(super) enum SseItem {
    Event(SseEvent),
    /// An event longer than [`MAX_UPSTREAM_MESSAGE_BYTES`] (skipped).
    TooLong,
}

/// Splits a `text/event-stream` into events as its bytes arrive (the
/// WHATWG rules: lines end in LF, CRLF or CR; a blank line ends an event;
/// `:` starts a comment).
#[derive(Debug, Default)]
pub(super) struct SseParser {
    line: Vec<u8>,
    /// The last byte was a CR (so a following LF ends nothing).
    after_cr: bool,
    current: SseEvent,
    /// A data line was seen in the current event (its first may be empty).
    has_data: bool,
    size: usize,
    too_long: bool,
}

impl SseParser {
    pub(super) fn push(&mut self, chunk: &[u8]) -> Vec<SseItem> {
        let mut out = Vec::new();
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(item) = self.end_line(&line) {
                        out.push(item);
                    }
                }
                _ => {
                    self.size += 1;
                    if self.size > MAX_UPSTREAM_MESSAGE_BYTES {
                        self.too_long = true;
                        self.line.clear();
                    } else {
                        self.line.push(b);
                    }
                }
            }
        }
        out
    }

    fn end_line(&mut self, line: &[u8]) -> Option<SseItem> {
        if line.is_empty() {
            let ev = std::mem::take(&mut self.current);
            let too_long = std::mem::take(&mut self.too_long);
            self.size = 0;
            self.has_data = false;
            if too_long {
                return Some(SseItem::TooLong);
            }
            return (!ev.is_empty()).then_some(SseItem::Event(ev));
        }
        if self.too_long || line.first() == Some(&b':') {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.current.id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.current.retry = Some(value.to_string())
            }
            _ => {}
        }
        None
    }
}

// ---- helpers -----------------------------------------------------------------

/// The JSON-RPC message of a POST, and the bytes it came as: refused unless
/// it is declared as JSON (415), fits [`MAX_BODY_BYTES`] (413) and parses
/// (400, a parse error).
pub(super) async fn posted_message(
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, Value), Box<Response>> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE)
        && !ct.to_str().is_ok_and(|s| {
            s.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
    {
        return Err(Box::new(rpc_error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            jsonrpc::INVALID_REQUEST,
            "Unsupported Media Type: POST a JSON-RPC message as Content-Type: application/json",
        )));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(Box::new(too_large()));
    }
    let bytes = read_body(body).await?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(msg) => Ok((bytes, msg)),
        Err(e) => Err(Box::new(rpc_error_response(
            StatusCode::BAD_REQUEST,
            jsonrpc::PARSE_ERROR,
            format!("Parse error: {e}"),
        ))),
    }
}

pub(super) fn too_large() -> Response {
    rpc_error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        jsonrpc::INVALID_REQUEST,
        format!("Payload Too Large: the body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// The body, at most [`MAX_BODY_BYTES`].
pub(super) async fn read_body(body: Body) -> Result<Bytes, Box<Response>> {
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => Ok(b),
        Err(e) => Err(Box::new({
            let limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if limit {
                too_large()
            } else {
                rpc_error_response(
                    StatusCode::BAD_REQUEST,
                    jsonrpc::PARSE_ERROR,
                    format!("cannot read the request body: {e}"),
                )
            }
        })),
    }
}

/// An upstream body, at most [`MAX_UPSTREAM_MESSAGE_BYTES`].
pub(super) async fn read_upstream(mut resp: reqwest::Response) -> Result<Bytes, String> {
    let mut buf = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if buf.len() + c.len() > MAX_UPSTREAM_MESSAGE_BYTES {
                    return Err(format!(
                        "the MCP server's answer is larger than {MAX_UPSTREAM_MESSAGE_BYTES} bytes"
                    ));
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => return Ok(Bytes::from(buf)),
            Err(e) => {
                return Err(format!(
                    "the MCP server's answer broke off: {}",
                    error_chain(&e)
                ));
            }
        }
    }
}

/// The ids of the requests in a message or batch.
fn request_ids(msg: &Value) -> Vec<Value> {
    let one = |m: &Value| match jsonrpc::kind(m) {
        Kind::Request { id, .. } => Some(id.clone()),
        _ => None,
    };
    match msg {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        m => one(m).into_iter().collect(),
    }
}

pub(super) fn into_list(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        v => vec![v],
    }
}

/// `answers` (warden's) and `forward` (the upstream's) as one JSON body:
/// a single message as itself, more as a batch.
pub(super) fn json_messages(
    status: StatusCode,
    mut answers: Vec<Value>,
    forward: Option<Value>,
) -> Response {
    if let Some(f) = forward {
        answers.extend(into_list(f));
    }
    let body = match answers.len() {
        0 => return StatusCode::ACCEPTED.into_response(),
        1 => answers.pop().unwrap_or(Value::Null),
        _ => Value::Array(answers),
    };
    json_bytes(status, Bytes::from(body.to_string()))
}

pub(super) fn json_bytes(status: StatusCode, bytes: Bytes) -> Response {
    let mut out = (status, bytes).into_response();
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out
}

/// A JSON-RPC error (id `null`) with an HTTP status.
pub(super) fn rpc_error_response(
    status: StatusCode,
    code: i64,
    message: impl Into<String>,
) -> Response {
    json_bytes(
        status,
        Bytes::from(jsonrpc::error(&Value::Null, code, message).to_string()),
    )
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// 128 random bits, hex.
pub(super) fn random_hex() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

// ---- DNS rebinding -------------------------------------------------------------

/// Middleware for an endpoint on a loopback address: requests whose `Host`
/// or `Origin` names another host are refused (`403`), so a web page a
/// browser loaded from elsewhere cannot reach it through DNS rebinding.
pub async fn local_origin_only(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host_ok = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|h| is_loopback_host(strip_port(h)));
    let origin_ok = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|o| {
            o == "null"
                || reqwest::Url::parse(o)
                    .ok()
                    .and_then(|u| u.host_str().map(is_loopback_host))
                    .unwrap_or(false)
        });
    if host_ok && origin_ok {
        return next.run(request).await;
    }
    rpc_error_response(
        StatusCode::FORBIDDEN,
        jsonrpc::INVALID_REQUEST,
        "Forbidden: this endpoint listens on a loopback address and takes requests for localhost only (the Host or Origin header names another host)",
    )
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().map_or(host, |h| h);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(input: &[&[u8]]) -> Vec<SseItem> {
        let mut p = SseParser::default();
        input.iter().flat_map(|c| p.push(c)).collect()
    }

    #[test]
    fn events_are_split_across_chunks_and_line_endings() {
        let got = events(&[
            b"event: message\r\nid: 7\r\nda",
            b"ta: {\"a\":1}\r\n\r",
            b"\n: a comment\n\ndata: x\rdata: y\r\r",
        ]);
        assert_eq!(
            got,
            [
                SseItem::Event(SseEvent {
                    event: Some("message".into()),
                    id: Some("7".into()),
                    retry: None,
                    data: "{\"a\":1}".into(),
                }),
                SseItem::Event(SseEvent {
                    data: "x\ny".into(),
                    ..SseEvent::default()
                }),
            ]
        );
    }

    #[test]
    fn an_event_longer_than_the_limit_is_refused_and_the_next_one_read() {
        let mut big = b"data: ".to_vec();
        big.resize(MAX_UPSTREAM_MESSAGE_BYTES + 10, b'x');
        big.extend_from_slice(b"\n\ndata: ok\n\n");
        let got = events(&[&big]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], SseItem::TooLong);
        assert!(matches!(&got[1], SseItem::Event(e) if e.data == "ok"));
    }

    #[test]
    fn raw_events_keep_their_fields() {
        let ev = SseEvent {
            event: Some("message".into()),
            id: Some("abc".into()),
            retry: Some("100".into()),
            data: "a\nb".into(),
        };
        assert_eq!(
            ev.raw(),
            Bytes::from("event: message\nid: abc\nretry: 100\ndata: a\ndata: b\n\n")
        );
    }

    #[test]
    fn only_loopback_hosts_pass_the_rebinding_check() {
        for ok in [
            "localhost:80",
            "127.0.0.1:3000",
            "[::1]:9",
            "LOCALHOST",
            "127.0.0.2",
        ] {
            assert!(is_loopback_host(strip_port(ok)), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "evil.example.com:80",
            "10.0.0.1:1",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback_host(strip_port(bad)), "{bad}");
        }
    }
}
