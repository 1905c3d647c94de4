//! Several upstream MCP servers behind one streamable-HTTP endpoint
//! (`warden mcp proxy --config FILE`): each MCP session of a client opens a
//! session to every upstream (a process of its own for a stdio server),
//! and warden answers as one server.
//!
//! With more than one upstream, tool and prompt names are prefixed with
//! the upstream's name and [`SEPARATOR`] (`fs__read_file`); a call is
//! routed by its prefix, which is stripped on the way up, so the policy
//! and the upstream see the tool's own name and each upstream's listing
//! is vetted by its own [`Governor`]. By method:
//!
//! | method | routed |
//! |---|---|
//! | `initialize` | to every upstream; capabilities merged, the server named `warden` |
//! | `tools/list`, `prompts/list` | to every upstream; names prefixed, every page merged into one answer |
//! | `resources/list`, `resources/templates/list` | to every upstream; every page merged, each URI remembered with its upstream |
//! | `tools/call`, `prompts/get`, `completion/complete` (prompt refs) | by prefix |
//! | `resources/read`, `…/subscribe`, `…/unsubscribe`, `completion/complete` (resource refs) | to the upstream that listed the URI, else each in turn until one answers without an error |
//! | `ping` | answered by warden |
//! | `logging/setLevel`, notifications | to every upstream |
//! | anything else | to the first upstream |
//!
//! Responses are JSON (no event stream per request); what upstreams send
//! besides the response (progress, log messages, list changes), and what
//! their own server-to-client streams carry, goes to the client's
//! `GET /mcp` stream if one is open. Requests of an upstream to
//! the client (sampling, elicitation, roots) are answered with "method not
//! found": with several servers behind one session, warden cannot tell the
//! client whose they are. With one upstream, names are not prefixed and
//! everything but those requests passes as it is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use super::http::{
    CallerName, Events, HttpUpstream, MAX_SESSIONS, SESSION_HEADER, SESSION_IDLE,
    SESSION_NOT_FOUND, STREAM_BUFFER, SseItem, SseParser, error_chain, event_bytes, json_bytes,
    posted_message, random_hex, read_upstream, rpc_error_response,
};
use super::jsonrpc::{self, Kind};
use super::{Governor, Orphans, Session, lock, stdio};

/// Between an upstream's name and a tool's or prompt's: `fs__read_file`.
pub const SEPARATOR: &str = "__";
/// Longest upstream name.
pub const MAX_NAME: usize = 64;
/// Most pages of one upstream's listing merged into one answer.
pub const MAX_PAGES: usize = 100;
/// JSON-RPC's "Method not found".
const METHOD_NOT_FOUND: i64 = -32601;

/// How warden reaches one upstream.
#[derive(Debug, Clone)]
pub enum Transport {
    /// A program speaking MCP on stdin and stdout (one process per session).
    Stdio {
        /// The program and its arguments.
        command: Vec<String>,
    },
    /// A streamable-HTTP endpoint.
    Http(HttpUpstream),
}

/// One upstream server behind the endpoint.
#[derive(Debug)]
pub struct Upstream {
    /// Its name: the prefix of its tools and prompts.
    pub name: String,
    /// How it is reached.
    pub transport: Transport,
    /// Its governor (its pins, findings and blocked tools).
    pub governor: Arc<Governor>,
}

/// Why an upstream name is refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "upstream name '{0}' cannot prefix tool names: use 1 to {MAX_NAME} of A-Z a-z 0-9 . - (and '_' but not '{SEPARATOR}')"
)]
pub struct BadName(pub String);

/// Checks that `name` can prefix tool names (MCP allows `[A-Za-z0-9_.-]`
/// in them) and never hides the separator.
pub fn check_name(name: &str) -> Result<(), BadName> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !name.contains(SEPARATOR)
        && !name.ends_with('_');
    if ok {
        Ok(())
    } else {
        Err(BadName(name.to_string()))
    }
}

/// The `/mcp` endpoint in front of several upstreams.
pub struct MuxProxy {
    upstreams: Vec<Upstream>,
    sessions: Mutex<HashMap<String, Arc<MuxSession>>>,
}

impl std::fmt::Debug for MuxProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxProxy")
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

/// One client session: a leg per upstream.
struct MuxSession {
    legs: Vec<Leg>,
    /// The caller that opened it ([`Caller`](super::http::Caller)).
    owner: Option<String>,
    /// The client's `GET /mcp` stream, when open.
    events: Mutex<Option<mpsc::Sender<Bytes>>>,
    /// Which upstream listed a resource URI.
    uris: Mutex<HashMap<String, usize>>,
    last_used: Mutex<Instant>,
}

impl MuxSession {
    fn push_event(&self, msg: &Value) {
        if let Some(tx) = lock(&self.events).as_ref() {
            // A slow or gone client loses notifications, not the session.
            let _ = tx.try_send(event_bytes(None, None, msg));
        }
    }
}

struct Leg {
    name: String,
    link: Link,
}

enum Link {
    Http {
        upstream: HttpUpstream,
        session: Arc<Session>,
        id: Mutex<Option<String>>,
    },
    Stdio {
        lines: mpsc::Sender<Vec<u8>>,
        waiters: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    },
}

impl MuxProxy {
    /// Governs `upstreams` (at least one) behind one endpoint.
    pub fn new(upstreams: Vec<Upstream>) -> Arc<MuxProxy> {
        Arc::new(MuxProxy {
            upstreams,
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

    /// Ends every session; stdio servers are stopped.
    pub async fn close(&self) {
        let all: Vec<Arc<MuxSession>> = lock(&self.sessions).drain().map(|(_, s)| s).collect();
        for s in all {
            end(&s).await;
        }
    }

    /// Ends the sessions nobody used for [`SESSION_IDLE`] (their stdio
    /// servers stop); call it now and then.
    pub async fn drop_idle(&self) {
        let idle: Vec<Arc<MuxSession>> = {
            let mut sessions = lock(&self.sessions);
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, s)| lock(&s.last_used).elapsed() >= SESSION_IDLE)
                .map(|(k, _)| k.clone())
                .collect();
            ids.iter().filter_map(|k| sessions.remove(k)).collect()
        };
        for s in idle {
            tracing::info!("an idle MCP session was ended");
            end(&s).await;
        }
    }

    fn prefixed(&self) -> bool {
        self.upstreams.len() > 1
    }

    fn open(&self, session_name: &str, caller: Option<String>) -> Arc<MuxSession> {
        let mut legs = Vec::with_capacity(self.upstreams.len());
        let events: Mutex<Option<mpsc::Sender<Bytes>>> = Mutex::new(None);
        Arc::new_cyclic(|weak: &std::sync::Weak<MuxSession>| {
            for u in &self.upstreams {
                let session = Arc::new(
                    Session::new(u.governor.clone(), session_name).with_caller(caller.clone()),
                );
                let link = match &u.transport {
                    Transport::Http(h) => Link::Http {
                        upstream: h.clone(),
                        session,
                        id: Mutex::new(None),
                    },
                    Transport::Stdio { command } => {
                        start_stdio(u.name.clone(), session, command.clone(), weak.clone())
                    }
                };
                legs.push(Leg {
                    name: u.name.clone(),
                    link,
                });
            }
            MuxSession {
                legs,
                owner: caller,
                events,
                uris: Mutex::new(HashMap::new()),
                last_used: Mutex::new(Instant::now()),
            }
        })
    }
}

/// Starts a stdio upstream for one session: [`stdio::run`] over an
/// in-process pipe, whose far end this leg writes requests to and reads
/// governed messages from.
fn start_stdio(
    name: String,
    session: Arc<Session>,
    command: Vec<String>,
    mux: std::sync::Weak<MuxSession>,
) -> Link {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let (their_read, their_write) = tokio::io::split(theirs);
    let run_name = name.clone();
    tokio::spawn(async move {
        match stdio::run(session, &command, their_read, their_write).await {
            Ok(ended) => tracing::info!(upstream = %run_name, ?ended, "a stdio upstream ended"),
            Err(e) => tracing::error!(upstream = %run_name, error = %e, "a stdio upstream failed"),
        }
    });
    let (our_read, mut our_write) = tokio::io::split(ours);
    let (lines, mut rx) = mpsc::channel::<Vec<u8>>(STREAM_BUFFER);
    tokio::spawn(async move {
        while let Some(mut line) = rx.recv().await {
            line.push(b'\n');
            if our_write.write_all(&line).await.is_err() {
                break;
            }
        }
        // Closing our end tells the stdio transport the client is gone.
        let _ = our_write.shutdown().await;
    });
    let waiters: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>> = Arc::default();
    let w = waiters.clone();
    // Weak: the session's end (its senders dropped) must close the pipe.
    let answer = lines.downgrade();
    tokio::spawn(async move {
        let mut reader = BufReader::new(our_read).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            match jsonrpc::kind(&msg) {
                Kind::Response { id } => {
                    if let Some(tx) = lock(&w).remove(&jsonrpc::id_key(id)) {
                        let _ = tx.send(msg);
                    }
                }
                Kind::Request { id, .. } => {
                    let refusal = server_request_refusal(id);
                    if let Some(tx) = answer.upgrade() {
                        let _ = tx.send(refusal.to_string().into_bytes()).await;
                    }
                }
                _ => {
                    if let Some(m) = mux.upgrade() {
                        m.push_event(&msg);
                    }
                }
            }
        }
        // The server is gone: whoever still waits hears so.
        lock(&w).clear();
        tracing::debug!(upstream = %name, "a stdio upstream's output closed");
    });
    Link::Stdio { lines, waiters }
}

fn server_request_refusal(id: &Value) -> Value {
    jsonrpc::error(
        id,
        METHOD_NOT_FOUND,
        "warden proxies several MCP servers in this session and does not pass their requests to the client",
    )
}

impl Leg {
    /// Sends a request; its governed response.
    async fn request(
        &self,
        mux: &MuxSession,
        msg: Value,
        headers: &HeaderMap,
    ) -> Result<Value, String> {
        let id = match jsonrpc::kind(&msg) {
            Kind::Request { id, .. } => id.clone(),
            _ => return Err("not a request".into()),
        };
        match &self.link {
            Link::Stdio { lines, waiters } => {
                let (tx, rx) = oneshot::channel();
                lock(waiters).insert(jsonrpc::id_key(&id), tx);
                if lines.send(msg.to_string().into_bytes()).await.is_err() {
                    return Err(format!("the MCP server '{}' is not running", self.name));
                }
                rx.await
                    .map_err(|_| format!("the MCP server '{}' exited", self.name))
            }
            Link::Http {
                upstream,
                session,
                id: upstream_id,
            } => {
                let routed = session.from_client(msg).await;
                if let Some(a) = routed.answer {
                    return Ok(a);
                }
                let Some(forward) = routed.forward else {
                    return Err("nothing to send".into());
                };
                let key = jsonrpc::id_key(&id);
                let mut found = None;
                // Given up if the client goes away during the exchange.
                let mut orphans = Orphans {
                    session: session.clone(),
                    ids: vec![id.clone()],
                };
                let result = self
                    .post(upstream, upstream_id, headers, &forward, |m| {
                        if matches!(jsonrpc::kind(&m), Kind::Response { id } if jsonrpc::id_key(id) == key)
                        {
                            found = Some(m);
                        } else {
                            mux.push_event(&m);
                        }
                    }, session)
                    .await;
                orphans.ids.clear();
                match (found, result) {
                    (Some(m), _) => Ok(m),
                    (None, result) => {
                        // The session stops waiting; a call's outcome is
                        // unknown (it may have run).
                        let why = result.err().unwrap_or_else(|| {
                            format!("the MCP server '{}' did not answer", self.name)
                        });
                        session.abandon(std::slice::from_ref(&id), &why).await;
                        Err(why)
                    }
                }
            }
        }
    }

    /// Sends a notification.
    async fn notify(&self, mux: &MuxSession, msg: Value, headers: &HeaderMap) {
        match &self.link {
            Link::Stdio { lines, .. } => {
                let _ = lines.send(msg.to_string().into_bytes()).await;
            }
            Link::Http {
                upstream,
                session,
                id,
            } => {
                let routed = session.from_client(msg).await;
                if let Some(f) = routed.forward {
                    let sent = self
                        .post(upstream, id, headers, &f, |m| mux.push_event(&m), session)
                        .await;
                    if let Err(e) = sent {
                        tracing::debug!(upstream = %self.name, error = %e, "a notification was not delivered");
                    }
                }
            }
        }
    }

    /// POSTs `msg` to an HTTP upstream; every message of its answer,
    /// governed, goes to `each` in order (requests of the server are
    /// refused here).
    async fn post(
        &self,
        upstream: &HttpUpstream,
        upstream_id: &Mutex<Option<String>>,
        headers: &HeaderMap,
        msg: &Value,
        mut each: impl FnMut(Value),
        session: &Arc<Session>,
    ) -> Result<(), String> {
        let sid = lock(upstream_id).clone();
        let mut req = upstream
            .client
            .post(upstream.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .body(msg.to_string());
        for (n, v) in headers {
            if n.as_str().starts_with("mcp-") && n.as_str() != SESSION_HEADER {
                req = req.header(n.as_str(), v.as_bytes());
            }
        }
        if let Some(s) = &sid {
            req = req.header(SESSION_HEADER, s);
        }
        let resp = req.send().await.map_err(|e| {
            format!(
                "the MCP server '{}' at {} cannot be reached: {}",
                self.name,
                upstream.url(),
                error_chain(&e)
            )
        })?;
        if sid.is_none()
            && let Some(v) = resp
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
        {
            *lock(upstream_id) = Some(v.to_string());
        }
        self.consume(upstream, upstream_id, resp, &mut each, session)
            .await
    }

    /// Opens the upstream's server-to-client stream (`GET`) and passes its
    /// messages, governed, to the client's stream until either ends.
    async fn relay_stream(&self, mux: &MuxSession) {
        let Link::Http {
            upstream,
            session,
            id,
        } = &self.link
        else {
            return;
        };
        let sid = lock(id).clone();
        let mut req = upstream
            .client
            .get(upstream.url.clone())
            .header(header::ACCEPT, "text/event-stream");
        if let Some(s) = sid {
            req = req.header(SESSION_HEADER, s);
        }
        let Ok(resp) = req.send().await else {
            return;
        };
        if !resp.status().is_success() {
            // 405: the server offers no such stream.
            return;
        }
        let done = self
            .consume(upstream, id, resp, &mut |m| mux.push_event(&m), session)
            .await;
        if let Err(e) = done {
            tracing::debug!(upstream = %self.name, error = %e, "an upstream's stream ended");
        }
    }

    /// Every message of an upstream's answer (JSON or an event stream),
    /// governed, to `each` in order; requests of the server are refused.
    async fn consume(
        &self,
        upstream: &HttpUpstream,
        upstream_id: &Mutex<Option<String>>,
        resp: reqwest::Response,
        each: &mut impl FnMut(Value),
        session: &Arc<Session>,
    ) -> Result<(), String> {
        let status = resp.status();
        let is_stream = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/event-stream"));
        if !status.is_success() {
            let body = read_upstream(resp).await.unwrap_or_default();
            return Err(format!(
                "the MCP server '{}' answered {}: {}",
                self.name,
                status,
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(512)
                    .collect::<String>()
            ));
        }
        if !is_stream {
            let body = read_upstream(resp).await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            let m: Value = serde_json::from_slice(&body).map_err(|e| {
                format!("the MCP server '{}' answered with no JSON: {e}", self.name)
            })?;
            for item in into_items(m) {
                if let Some(f) = session.from_upstream(item).await.forward {
                    each(f);
                }
            }
            return Ok(());
        }
        let mut resp = resp;
        let mut parser = SseParser::default();
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => return Ok(()),
                Err(e) => {
                    return Err(format!(
                        "the MCP server's stream broke off: {}",
                        error_chain(&e)
                    ));
                }
            };
            for item in parser.push(&chunk) {
                let SseItem::Event(ev) = item else { continue };
                if !matches!(ev.event.as_deref(), None | Some("message")) || ev.data.is_empty() {
                    continue;
                }
                let Ok(m) = serde_json::from_str::<Value>(&ev.data) else {
                    continue;
                };
                for item in into_items(m) {
                    let Some(f) = session.from_upstream(item).await.forward else {
                        continue;
                    };
                    if let Kind::Request { id, .. } = jsonrpc::kind(&f) {
                        let refusal = server_request_refusal(id);
                        let mut r = upstream
                            .client
                            .post(upstream.url.clone())
                            .header(header::CONTENT_TYPE, "application/json")
                            .header(header::ACCEPT, "application/json, text/event-stream")
                            .body(refusal.to_string());
                        let sid = lock(upstream_id).clone();
                        if let Some(s) = sid {
                            r = r.header(SESSION_HEADER, s);
                        }
                        let _ = r.send().await;
                        continue;
                    }
                    each(f);
                }
            }
        }
    }
}

fn into_items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        v => vec![v],
    }
}

/// Ends a session on every upstream.
async fn end(mux: &MuxSession) {
    for leg in &mux.legs {
        if let Link::Http {
            upstream,
            session,
            id,
        } = &leg.link
        {
            let uid = lock(id).clone();
            if let Some(uid) = uid {
                let _ = upstream
                    .client
                    .delete(upstream.url.clone())
                    .header(SESSION_HEADER, uid)
                    .send()
                    .await;
            }
            session.close("the session ended").await;
        }
    }
    // Stdio legs end when their line senders drop with the session.
}

// ---- handlers ----------------------------------------------------------------

fn find(
    p: &MuxProxy,
    headers: &HeaderMap,
    caller: Option<&str>,
) -> Result<Option<(String, Arc<MuxSession>)>, Box<Response>> {
    let Some(v) = headers.get(SESSION_HEADER) else {
        return Ok(None);
    };
    let id = v.to_str().unwrap_or_default().to_string();
    // Another caller's session reads as no session at all.
    let found = lock(&p.sessions)
        .get(&id)
        .filter(|s| s.owner.as_deref() == caller)
        .cloned();
    match found {
        Some(s) => {
            *lock(&s.last_used) = Instant::now();
            Ok(Some((id, s)))
        }
        None => Err(Box::new(rpc_error_response(
            StatusCode::NOT_FOUND,
            SESSION_NOT_FOUND,
            "Session not found: it ended or never existed; send 'initialize' without an Mcp-Session-Id to start a new one",
        ))),
    }
}

async fn handle_post(
    State(p): State<Arc<MuxProxy>>,
    CallerName(caller): CallerName,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let msg = match posted_message(&headers, body).await {
        Ok((_, msg)) => msg,
        Err(r) => return *r,
    };
    if msg.is_array() {
        return rpc_error_response(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "Invalid Request: batches are not taken by a proxy of several MCP servers; send one message per request",
        );
    }
    let found = match find(&p, &headers, caller.as_deref()) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let kind = jsonrpc::kind(&msg);
    let Some((sid, mux)) = found else {
        if matches!(
            kind,
            Kind::Request {
                method: "initialize",
                ..
            }
        ) {
            return initialize(&p, msg, &headers, caller).await;
        }
        return rpc_error_response(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "Bad Request: no Mcp-Session-Id; send 'initialize' first",
        );
    };
    let _ = sid;
    match kind {
        Kind::Request { id, method } => {
            let id = id.clone();
            let method = method.to_string();
            let answer = route(&p, &mux, msg, &id, &method, &headers).await;
            json_bytes(StatusCode::OK, Bytes::from(answer.to_string()))
        }
        Kind::Notification { .. } => {
            for leg in &mux.legs {
                leg.notify(&mux, msg.clone(), &headers).await;
            }
            StatusCode::ACCEPTED.into_response()
        }
        // Answers to upstream requests: warden refused those itself.
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

async fn initialize(
    p: &Arc<MuxProxy>,
    msg: Value,
    headers: &HeaderMap,
    caller: Option<String>,
) -> Response {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let name = format!("mcp-http-{}", &random_hex()[..16]);
    let mux = p.open(&name, caller);
    let mut results = Vec::new();
    for leg in &mux.legs {
        match leg.request(&mux, msg.clone(), headers).await {
            Ok(r) if r.get("result").is_some() => {
                results.push((leg.name.clone(), r["result"].clone()))
            }
            Ok(r) => {
                end(&mux).await;
                let why = r
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("an error")
                    .to_string();
                return json_bytes(
                    StatusCode::OK,
                    Bytes::from(
                        jsonrpc::error(
                            &id,
                            jsonrpc::INTERNAL_ERROR,
                            format!("the MCP server '{}' refused to initialize: {why}", leg.name),
                        )
                        .to_string(),
                    ),
                );
            }
            Err(e) => {
                end(&mux).await;
                return json_bytes(
                    StatusCode::OK,
                    Bytes::from(jsonrpc::error(&id, jsonrpc::INTERNAL_ERROR, e).to_string()),
                );
            }
        }
    }
    let result = if p.prefixed() {
        merge_initialize(&results)
    } else {
        results.pop().map(|(_, r)| r).unwrap_or_default()
    };
    let sid = random_hex();
    if !keep(p, sid.clone(), mux.clone()) {
        end(&mux).await;
        return rpc_error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::INTERNAL_ERROR,
            format!("more than {MAX_SESSIONS} MCP sessions are open; try again later"),
        );
    }
    tracing::info!(session = %name, upstreams = p.upstreams.len(), "an MCP session began");
    let mut out = json_bytes(
        StatusCode::OK,
        Bytes::from(jsonrpc::result(&id, result).to_string()),
    );
    if let Ok(v) = HeaderValue::from_str(&sid) {
        out.headers_mut()
            .insert(HeaderName::from_static(SESSION_HEADER), v);
    }
    out
}

/// Keeps a new session, dropping idle ones if there are too many; `false`
/// when there is no room.
fn keep(p: &MuxProxy, sid: String, mux: Arc<MuxSession>) -> bool {
    let mut sessions = lock(&p.sessions);
    if sessions.len() >= MAX_SESSIONS {
        sessions.retain(|_, s| lock(&s.last_used).elapsed() < SESSION_IDLE);
    }
    if sessions.len() >= MAX_SESSIONS {
        return false;
    }
    sessions.insert(sid, mux);
    true
}

/// One server's worth of `initialize` result from several.
fn merge_initialize(results: &[(String, Value)]) -> Value {
    let mut capabilities = Map::new();
    let mut instructions = Vec::new();
    let mut version = None;
    for (name, r) in results {
        version = version.or_else(|| r.get("protocolVersion").cloned());
        if let Some(caps) = r.get("capabilities").and_then(Value::as_object) {
            for (k, v) in caps {
                match (capabilities.get_mut(k), v) {
                    (Some(Value::Object(have)), Value::Object(more)) => {
                        for (kk, vv) in more {
                            // A feature one server offers is offered.
                            if vv == &Value::Bool(true) || !have.contains_key(kk) {
                                have.insert(kk.clone(), vv.clone());
                            }
                        }
                    }
                    (None, v) => {
                        capabilities.insert(k.clone(), v.clone());
                    }
                    _ => {}
                }
            }
        }
        if let Some(i) = r.get("instructions").and_then(Value::as_str) {
            instructions.push(format!(
                "[{name}] (tools and prompts prefixed '{name}{SEPARATOR}')\n{i}"
            ));
        }
    }
    let mut out = json!({
        "protocolVersion": version.unwrap_or(Value::String("2025-06-18".into())),
        "capabilities": capabilities,
        "serverInfo": {"name": "warden", "version": env!("CARGO_PKG_VERSION")},
    });
    if !instructions.is_empty() {
        out["instructions"] = Value::String(instructions.join("\n\n"));
    }
    out
}

/// A request of the client, routed; the response to send back.
async fn route(
    p: &MuxProxy,
    mux: &MuxSession,
    msg: Value,
    id: &Value,
    method: &str,
    headers: &HeaderMap,
) -> Value {
    let prefixed = p.prefixed();
    match method {
        "ping" => jsonrpc::result(id, json!({})),
        "tools/list" | "prompts/list" if prefixed => {
            let key = if method == "tools/list" {
                "tools"
            } else {
                "prompts"
            };
            let mut merged = Vec::new();
            for leg in &mux.legs {
                for mut item in list_all(leg, mux, &msg, key, headers).await {
                    if let Some(n) = item.get("name").and_then(Value::as_str) {
                        item["name"] = Value::String(format!("{}{SEPARATOR}{n}", leg.name));
                    }
                    merged.push(item);
                }
            }
            jsonrpc::result(id, json!({ key: merged }))
        }
        "resources/list" | "resources/templates/list" if prefixed => {
            let key = if method == "resources/list" {
                "resources"
            } else {
                "resourceTemplates"
            };
            let mut merged = Vec::new();
            for (i, leg) in mux.legs.iter().enumerate() {
                let items = list_all(leg, mux, &msg, key, headers).await;
                let mut uris = lock(&mux.uris);
                for item in items {
                    if let Some(u) = item.get("uri").and_then(Value::as_str) {
                        uris.insert(u.to_string(), i);
                    }
                    merged.push(item);
                }
            }
            jsonrpc::result(id, json!({ key: merged }))
        }
        "logging/setLevel" if prefixed => {
            for leg in &mux.legs {
                let _ = leg.request(mux, msg.clone(), headers).await;
            }
            jsonrpc::result(id, json!({}))
        }
        "tools/call" | "prompts/get" if prefixed => {
            match by_prefix(mux, msg.pointer("/params/name")) {
                Some((leg, rest)) => {
                    let mut msg = msg;
                    msg["params"]["name"] = Value::String(rest);
                    answer(leg.request(mux, msg, headers).await, id)
                }
                None => unknown_name(method, msg.pointer("/params/name"), id),
            }
        }
        "completion/complete"
            if prefixed
                && msg.pointer("/params/ref/type").and_then(Value::as_str)
                    == Some("ref/prompt") =>
        {
            match by_prefix(mux, msg.pointer("/params/ref/name")) {
                Some((leg, rest)) => {
                    let mut msg = msg;
                    msg["params"]["ref"]["name"] = Value::String(rest);
                    answer(leg.request(mux, msg, headers).await, id)
                }
                None => unknown_name(method, msg.pointer("/params/ref/name"), id),
            }
        }
        "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe"
        | "completion/complete"
            if prefixed =>
        {
            let uri = msg
                .pointer("/params/uri")
                .or_else(|| msg.pointer("/params/ref/uri"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let known = lock(&mux.uris).get(uri).copied();
            if let Some(i) = known {
                return answer(mux.legs[i].request(mux, msg, headers).await, id);
            }
            let mut last = None;
            for leg in &mux.legs {
                match leg.request(mux, msg.clone(), headers).await {
                    Ok(r) if r.get("result").is_some() => return r,
                    other => last = Some(other),
                }
            }
            answer(last.unwrap_or_else(|| Err("no MCP server".into())), id)
        }
        _ => answer(mux.legs[0].request(mux, msg, headers).await, id),
    }
}

/// Every page of a leg's listing (`key`: `tools`, `prompts`, …), at most
/// [`MAX_PAGES`]; a leg that fails lists nothing (logged).
async fn list_all(
    leg: &Leg,
    mux: &MuxSession,
    msg: &Value,
    key: &str,
    headers: &HeaderMap,
) -> Vec<Value> {
    let mut req = msg.clone();
    if let Some(params) = req.get_mut("params").and_then(Value::as_object_mut) {
        params.remove("cursor");
    }
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let r = match leg.request(mux, req.clone(), headers).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(upstream = %leg.name, error = %e, "a listing failed; its items are left out");
                break;
            }
        };
        if let Some(items) = r
            .pointer(&format!("/result/{key}"))
            .and_then(Value::as_array)
        {
            out.extend(items.iter().cloned());
        }
        match r.pointer("/result/nextCursor").and_then(Value::as_str) {
            Some(cursor) if !cursor.is_empty() => {
                req["params"]["cursor"] = Value::String(cursor.to_string());
            }
            _ => break,
        }
    }
    out
}

/// The leg a prefixed name belongs to, and the name without its prefix.
fn by_prefix<'a>(mux: &'a MuxSession, name: Option<&Value>) -> Option<(&'a Leg, String)> {
    let name = name?.as_str()?;
    let (prefix, rest) = name.split_once(SEPARATOR)?;
    mux.legs
        .iter()
        .find(|l| l.name == prefix)
        .map(|l| (l, rest.to_string()))
}

fn unknown_name(method: &str, name: Option<&Value>, id: &Value) -> Value {
    let name = name.and_then(Value::as_str).unwrap_or_default();
    if method == "tools/call" {
        // As a server answers for a tool it does not have.
        return jsonrpc::result(
            id,
            jsonrpc::tool_error(format!("MCP error -32602: Tool {name} not found")),
        );
    }
    jsonrpc::error(
        id,
        jsonrpc::INVALID_PARAMS,
        format!("'{name}' names no server here: names are SERVER{SEPARATOR}NAME"),
    )
}

fn answer(r: Result<Value, String>, id: &Value) -> Value {
    match r {
        Ok(v) => v,
        Err(e) => jsonrpc::error(id, jsonrpc::INTERNAL_ERROR, e),
    }
}

async fn handle_get(
    State(p): State<Arc<MuxProxy>>,
    CallerName(caller): CallerName,
    headers: HeaderMap,
) -> Response {
    let mux = match find(&p, &headers, caller.as_deref()) {
        Ok(Some((_, m))) => m,
        Ok(None) => {
            return rpc_error_response(
                StatusCode::BAD_REQUEST,
                jsonrpc::INVALID_REQUEST,
                "Bad Request: GET /mcp needs the Mcp-Session-Id of an initialized session",
            );
        }
        Err(r) => return *r,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
    *lock(&mux.events) = Some(tx.clone());
    for i in 0..mux.legs.len() {
        let (mux, tx) = (mux.clone(), tx.clone());
        tokio::spawn(async move {
            // Ends with the upstream's stream or the client's, whichever first.
            tokio::select! {
                _ = mux.legs[i].relay_stream(&mux) => {}
                _ = tx.closed() => {}
            }
        });
    }
    drop(tx);
    let mut out = Response::new(Body::from_stream(Events(rx)));
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    out.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    out
}

async fn handle_delete(
    State(p): State<Arc<MuxProxy>>,
    CallerName(caller): CallerName,
    headers: HeaderMap,
) -> Response {
    match find(&p, &headers, caller.as_deref()) {
        Ok(Some((sid, mux))) => {
            lock(&p.sessions).remove(&sid);
            end(&mux).await;
            StatusCode::OK.into_response()
        }
        Ok(None) => rpc_error_response(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "Bad Request: DELETE ends a session; name it with the Mcp-Session-Id header",
        ),
        Err(r) => *r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_hide_the_separator_are_refused() {
        for ok in ["fs", "every-thing", "a.b", "x_1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a__b",
            "fs_",
            "with space",
            "ünï",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capabilities_are_merged_and_the_server_is_warden() {
        let merged = merge_initialize(&[
            (
                "a".into(),
                json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": false}}, "instructions": "use a"}),
            ),
            (
                "b".into(),
                json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": true}, "prompts": {}}}),
            ),
        ]);
        assert_eq!(merged["capabilities"]["tools"]["listChanged"], true);
        assert!(merged["capabilities"]["prompts"].is_object());
        assert_eq!(merged["serverInfo"]["name"], "warden");
        assert!(merged["instructions"].as_str().unwrap().contains("a__"));
    }
}
