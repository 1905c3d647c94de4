//! The governed MCP proxy: raw JSON-RPC between an MCP client and an
//! upstream server, with every `tools/call` decided by the gate.
//!
//! The core is transport-independent: a [`Session`] takes each message
//! (a `serde_json::Value`, never a typed model, so no field is dropped) as
//! it arrives from either side and says where it goes ([`Routed`]).
//! [`stdio`] is the transport of `warden mcp wrap`; a streamable-HTTP
//! transport drives the same `Session` per MCP session.
//!
//! What a session does, by message:
//!
//! | from | message | what happens |
//! |---|---|---|
//! | client | `tools/call` | an [`Action`] at `pre_tool_call` goes through [`Gate::decide`]: `deny` and `require_approval` are answered here with a tool result `isError: true` whose text says why (and the approval id); `transform` forwards the rewritten arguments; `allow` and `warn` forward the call unchanged. A tool the policy hides, or that [`vet`] blocked, is answered as the server answers an unknown tool |
//! | upstream | its response | decided at `post_tool_call` over the result (a `transform` rewrites it, a refusal withholds it), and an outcome linked to the decision is appended: `succeeded`, `failed` (`isError`, or a JSON-RPC error) |
//! | upstream | `tools/list` response | tools with `visibility: hidden` are removed; the rest are pinned and scanned ([`vet`]): a changed definition, or a high-severity finding the policy does not allow, removes the tool too |
//! | client | `notifications/cancelled` of a forwarded call | forwarded; the call gets the outcome `unknown`, and a late answer is dropped (a call cancelled while it is being decided is not forwarded) |
//! | either | anything else | forwarded unchanged, ids and unknown fields as they are |
//!
//! Requests are matched to responses by id, per direction: a response from
//! the upstream answers a request of the client. When the upstream goes
//! away, every request still waiting is answered with a JSON-RPC error and
//! every call still running gets the outcome `unknown` ([`Session::close`]);
//! so does a call given up on ([`Session::expire`]), whose answer, if it
//! comes, was never decided at `post_tool_call` and is dropped.
//!
//! Fail closed: a gate that cannot decide or record denies (the gate's own
//! rule); a pin that cannot be checked blocks its tool; a `tools/call`
//! warden cannot read is refused, not forwarded.

pub mod http;
mod jsonrpc;
pub mod mux;
pub mod stdio;
pub mod vet;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use warden_audit::Outcome;
use warden_gate::{Action, Decision, Gate, outcome};
use warden_policy::{Point, Verdict};

use jsonrpc::Kind;
use vet::{Block, Vetting};

/// Most client requests waiting for the upstream at once, per session;
/// beyond it a request is answered with an error instead of forwarded.
pub const MAX_PENDING: usize = 4096;
/// Most messages in one JSON-RPC batch.
pub const MAX_BATCH: usize = 1024;
/// Longest error text kept in an outcome record; longer texts are cut.
pub const MAX_OUTCOME_ERROR: usize = 4096;
/// Most calls given up on (timed out, cancelled) whose late answers are
/// still watched for, per session; beyond it the oldest are forgotten.
const MAX_GIVEN_UP: usize = 4096;

/// Told of every decision the proxy takes (its point, the decision, how long
/// it took), e.g. to count it in the decision server's metrics.
pub type DecisionObserver = Arc<dyn Fn(Point, &Decision, std::time::Duration) + Send + Sync>;

/// What the proxy knows about one upstream server, shared by every session
/// to it: the gate, who the agent is, and the server's tools as vetted.
pub struct Governor {
    gate: Arc<Gate>,
    agent: Option<String>,
    vetting: Vetting,
    /// Tools of the latest listing that are kept from the client.
    blocked: Mutex<HashMap<String, Block>>,
    observer: Option<DecisionObserver>,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("server", &self.vetting.server())
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl Governor {
    /// Governs the server named `server` (the name pins and findings are
    /// kept under, and that `warden mcp approve-tool SERVER TOOL` takes)
    /// with `gate`, acting for `agent` (a DID). The gate must keep an audit
    /// log ([`Gate::with_runtime`] or [`Gate::with_audit`]): pins, findings
    /// and outcomes are written to it.
    pub fn new(
        gate: Arc<Gate>,
        server: impl Into<String>,
        agent: Option<String>,
        store: Arc<dyn warden_store::Store>,
    ) -> Governor {
        Governor {
            gate,
            agent,
            vetting: Vetting::new(server.into(), store.clone()),
            blocked: Mutex::new(HashMap::new()),
            observer: None,
        }
    }

    /// Tells `observer` of every decision taken for this server.
    pub fn with_observer(mut self, observer: DecisionObserver) -> Governor {
        self.observer = Some(observer);
        self
    }

    /// Checks this server's tools against the other servers of `neighbours`
    /// too (typosquatting, shadowing between servers behind one endpoint).
    pub fn with_neighbours(mut self, neighbours: Arc<vet::Neighbours>) -> Governor {
        self.vetting.set_neighbours(neighbours);
        self
    }

    /// The server's name.
    pub fn server(&self) -> &str {
        self.vetting.server()
    }

    /// Why `tool` is kept from the client, if it is: the policy hides it
    /// ([`None`] in the block: it is answered as unknown), or the latest
    /// listing blocked it.
    fn refusal(&self, tool: &str) -> Option<Option<Block>> {
        if self.gate.policy().is_some_and(|p| p.is_hidden(tool)) {
            return Some(None);
        }
        lock(&self.blocked).get(tool).cloned().map(Some)
    }

    async fn decide(&self, action: Action) -> Result<Decision, String> {
        let started = std::time::Instant::now();
        let point = action.point;
        let decision = self.gate.clone().decide_async(action).await;
        if let Some(observe) = &self.observer {
            observe(point, &decision, started.elapsed());
        }
        Ok(decision)
    }

    fn action(&self, session: &Session, point: Point, tool: &str, args: Value) -> Action {
        Action {
            agent: self.agent.clone(),
            session: Some(session.id.clone()),
            point,
            tool: Some(tool.to_string()),
            args: Some(args),
            context: Map::new(),
            caller: session.caller.clone(),
        }
    }

    /// Removes hidden and blocked tools from a `tools/list` result.
    async fn filter_listing(self: &Arc<Self>, mut msg: Value) -> Value {
        let Some(tools) = msg
            .get_mut("result")
            .and_then(|r| r.get_mut("tools"))
            .and_then(Value::as_array_mut)
        else {
            return msg;
        };
        let policy_hidden = |t: &Value| {
            let name = t.get("name").and_then(Value::as_str);
            match (name, self.gate.policy()) {
                // A tool without a name cannot be governed or called.
                (None, _) => true,
                (Some(n), Some(p)) => p.is_hidden(n),
                (Some(_), None) => false,
            }
        };
        let listed: Vec<Value> = std::mem::take(tools)
            .into_iter()
            .filter(|t| !policy_hidden(t))
            .collect();
        let this = self.clone();
        let vetted = tokio::task::spawn_blocking(move || {
            let blocks = this.vetting.vet(this.gate.policy(), &listed);
            (listed, blocks)
        })
        .await;
        let (listed, blocks) = match vetted {
            Ok(v) => v,
            Err(e) => {
                // Fail closed: nothing vetted, nothing listed.
                tracing::error!(error = %e, "vetting the tool list panicked; no tool is listed");
                (Vec::new(), HashMap::new())
            }
        };
        let mut kept = Vec::with_capacity(listed.len());
        {
            let mut blocked = lock(&self.blocked);
            for tool in listed {
                let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
                match blocks.get(name) {
                    Some(block) => {
                        log_block(self.server(), name, block);
                        blocked.insert(name.to_string(), block.clone());
                    }
                    None => {
                        blocked.remove(name);
                        kept.push(tool);
                    }
                }
            }
        }
        if let Some(tools) = msg
            .get_mut("result")
            .and_then(|r| r.get_mut("tools"))
            .and_then(Value::as_array_mut)
        {
            *tools = kept;
        }
        msg
    }
}

fn log_block(server: &str, tool: &str, block: &Block) {
    match block {
        Block::Changed { pinned, seen } => tracing::warn!(
            server, tool, %pinned, %seen,
            "the tool's definition changed since it was pinned; it is blocked until 'warden mcp approve-tool {server} {tool}'"
        ),
        Block::Flagged { kinds } => tracing::warn!(
            server, tool, kinds = ?kinds,
            "the tool is hidden: high-severity scanner findings (the policy's catalog can allow them with 'findings: allow')"
        ),
        Block::Unchecked(e) => tracing::error!(
            server, tool, error = %e,
            "the tool's pin could not be checked; it is blocked"
        ),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a message goes.
#[derive(Debug, Default, PartialEq)]
pub struct Routed {
    /// Onwards: to the upstream server (for a client's message) or to the
    /// client (for the upstream's).
    pub forward: Option<Value>,
    /// Back to the side it came from: warden answered it itself.
    pub answer: Option<Value>,
    /// Whether `forward` differs from the message as it came. When it does
    /// not, a transport may send the original bytes instead.
    pub rewritten: bool,
}

impl Routed {
    fn pass(msg: Value) -> Routed {
        Routed {
            forward: Some(msg),
            answer: None,
            rewritten: false,
        }
    }

    fn rewritten(msg: Value) -> Routed {
        Routed {
            forward: Some(msg),
            answer: None,
            rewritten: true,
        }
    }

    fn answer(msg: Value) -> Routed {
        Routed {
            forward: None,
            answer: Some(msg),
            rewritten: true,
        }
    }

    /// The routes of a batch's messages, as one batch each way.
    fn batch(parts: Vec<Routed>) -> Routed {
        let rewritten = parts.iter().any(|r| r.rewritten);
        let mut forward = Vec::new();
        let mut answer = Vec::new();
        for r in parts {
            forward.extend(r.forward);
            answer.extend(r.answer);
        }
        Routed {
            forward: (!forward.is_empty()).then_some(Value::Array(forward)),
            answer: (!answer.is_empty()).then_some(Value::Array(answer)),
            rewritten,
        }
    }
}

/// A client request waiting for the upstream's response.
#[derive(Debug)]
enum Pending {
    /// Being decided; the id is taken.
    Deciding,
    /// Cancelled by the client while being decided: it is not forwarded.
    Cancelled,
    ToolsList {
        id: Value,
    },
    ToolsCall(Box<Call>),
    Other {
        id: Value,
    },
}

impl Pending {
    fn id(&self) -> Option<&Value> {
        match self {
            Pending::Deciding | Pending::Cancelled => None,
            Pending::ToolsList { id } | Pending::Other { id } => Some(id),
            Pending::ToolsCall(c) => Some(&c.id),
        }
    }
}

/// A forwarded `tools/call`.
#[derive(Debug)]
struct Call {
    id: Value,
    tool: String,
    /// The decision that let it through (its outcome refers to it).
    decision: Decision,
}

/// One connection between an MCP client and the upstream: the session the
/// gate sees (labels, limits, approvals) and the requests in flight.
pub struct Session {
    governor: Arc<Governor>,
    id: String,
    pending: Mutex<HashMap<String, Pending>>,
    /// Calls given up on while the upstream may still answer them (by id
    /// key, in the order they were given up): a late answer was never
    /// decided at `post_tool_call`, so it is dropped, not forwarded.
    given_up: Mutex<std::collections::VecDeque<String>>,
    /// How long a forwarded call may wait for its answer (see
    /// [`Session::with_call_timeout`]).
    call_timeout: Option<std::time::Duration>,
    /// Who opened the session over an authenticated endpoint (the bearer
    /// token's name); its decisions' audit records name it.
    caller: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("pending", &lock(&self.pending).len())
            .finish()
    }
}

/// Requests forwarded for a client that may go away before they are
/// answered: dropped with ids left, it gives them up
/// ([`Session::abandon`]: the calls among them get the outcome `unknown`).
/// Ids already answered are no longer pending, so giving them up is a
/// no-op.
pub(crate) struct Orphans {
    pub(crate) session: Arc<Session>,
    pub(crate) ids: Vec<Value>,
}

impl Drop for Orphans {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let session = self.session.clone();
        let ids = std::mem::take(&mut self.ids);
        runtime.spawn(async move {
            session
                .abandon(&ids, "the client went away before the MCP server answered")
                .await;
        });
    }
}

/// How the text a refused call shows the model begins.
const REFUSED: &str = "warden refused this tool call";

impl Session {
    /// A session `id` (the gate's `session`: labels and per-session limits
    /// are kept under it) over `governor`.
    pub fn new(governor: Arc<Governor>, id: impl Into<String>) -> Session {
        Session {
            governor,
            id: id.into(),
            pending: Mutex::new(HashMap::new()),
            given_up: Mutex::default(),
            call_timeout: None,
            caller: None,
        }
    }

    /// The session of `caller` (an authenticated token's name), which the
    /// audit record of each of its decisions names.
    pub fn with_caller(mut self, caller: Option<String>) -> Session {
        self.caller = caller;
        self
    }

    /// Give up on a forwarded `tools/call` that has not been answered after
    /// `limit` ([`Session::expire`]); the stdio transport keeps the time.
    pub fn with_call_timeout(mut self, limit: Option<std::time::Duration>) -> Session {
        self.call_timeout = limit;
        self
    }

    /// How long a forwarded call may wait for its answer, if limited.
    pub fn call_timeout(&self) -> Option<std::time::Duration> {
        self.call_timeout
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How many client requests wait for the upstream.
    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Whether the client request `id` still waits for the upstream.
    pub(crate) fn waits_for(&self, id: &Value) -> bool {
        lock(&self.pending).contains_key(&jsonrpc::id_key(id))
    }

    /// A message from the client: forwarded to the upstream (possibly
    /// rewritten), or answered here.
    pub async fn from_client(self: &Arc<Self>, msg: Value) -> Routed {
        let Value::Array(items) = msg else {
            return self.client_one(msg).await;
        };
        if items.is_empty() || items.len() > MAX_BATCH {
            return Routed::answer(jsonrpc::error(
                &Value::Null,
                jsonrpc::INVALID_REQUEST,
                format!("a batch holds 1 to {MAX_BATCH} messages"),
            ));
        }
        let mut parts = Vec::with_capacity(items.len());
        for item in items {
            parts.push(self.client_one(item).await);
        }
        Routed::batch(parts)
    }

    /// A message from the upstream: forwarded to the client (possibly
    /// rewritten). Nothing is answered to the upstream here.
    pub async fn from_upstream(self: &Arc<Self>, msg: Value) -> Routed {
        let Value::Array(items) = msg else {
            return self.upstream_one(msg).await;
        };
        let mut parts = Vec::with_capacity(items.len());
        for item in items {
            parts.push(self.upstream_one(item).await);
        }
        Routed::batch(parts)
    }

    /// A line from the client that is not JSON: the answer (a JSON-RPC
    /// parse error). Nothing warden cannot read is forwarded.
    pub fn unreadable(&self, error: &str) -> Value {
        jsonrpc::error(
            &Value::Null,
            jsonrpc::PARSE_ERROR,
            format!("Parse error: {error}"),
        )
    }

    /// The upstream is gone (`why`): an error response for every request
    /// still waiting, to send to the client, and the outcome `unknown` for
    /// every call still running. Also what to call when the client goes
    /// away (the answers are then dropped).
    pub async fn close(self: &Arc<Self>, why: &str) -> Vec<Value> {
        let drained: Vec<Pending> = lock(&self.pending).drain().map(|(_, p)| p).collect();
        self.give_up(drained, why).await
    }

    /// What [`Session::close`] does, for the requests `ids` alone: the
    /// connection that carried them broke (an HTTP transport's request
    /// failed), so the upstream will not answer them, and a call among
    /// them may or may not have run (`unknown`).
    pub async fn abandon(self: &Arc<Self>, ids: &[Value], why: &str) -> Vec<Value> {
        let drained: Vec<Pending> = {
            let mut pending = lock(&self.pending);
            ids.iter()
                .filter_map(|id| pending.remove(&jsonrpc::id_key(id)))
                .collect()
        };
        self.give_up(drained, why).await
    }

    /// The call `id` took too long (`why`): when it is still waiting, it is
    /// given up on, with the outcome `unknown`, and the answer for the
    /// client is a JSON-RPC "Request timed out" error. A late answer from
    /// the upstream is then dropped. `None` when it is no longer waiting.
    pub fn expire(self: &Arc<Self>, id: &Value, why: &str) -> Option<Value> {
        self.forget_call(id, why)?;
        Some(jsonrpc::error(
            id,
            jsonrpc::REQUEST_TIMEOUT,
            why.to_string(),
        ))
    }

    /// Stops waiting for the call `id`, if it is one that waits: its outcome
    /// is queued as `unknown`, and its late answer will be dropped.
    fn forget_call(self: &Arc<Self>, id: &Value, why: &str) -> Option<()> {
        let key = jsonrpc::id_key(id);
        let call = {
            let mut pending = lock(&self.pending);
            match pending.remove(&key)? {
                Pending::ToolsCall(call) => call,
                Pending::Deciding => {
                    pending.insert(key, Pending::Cancelled);
                    return None;
                }
                other => {
                    pending.insert(key, other);
                    return None;
                }
            }
        };
        {
            let mut given_up = lock(&self.given_up);
            if given_up.len() >= MAX_GIVEN_UP {
                given_up.pop_front();
            }
            given_up.push_back(key);
        }
        tokio::spawn(self.record_outcome(&call, Outcome::Unknown, None, Some(why.into())));
        Some(())
    }

    /// Whether `key` is a call given up on; it is forgotten if so (its one
    /// late answer has come).
    fn was_given_up(&self, key: &str) -> bool {
        let mut given_up = lock(&self.given_up);
        match given_up.iter().position(|k| k == key) {
            Some(i) => {
                given_up.remove(i);
                true
            }
            None => false,
        }
    }

    async fn give_up(self: &Arc<Self>, drained: Vec<Pending>, why: &str) -> Vec<Value> {
        let mut answers = Vec::new();
        let mut outcomes = Vec::new();
        for p in drained {
            if let Some(id) = p.id() {
                answers.push(jsonrpc::error(id, jsonrpc::INTERNAL_ERROR, why.to_string()));
            }
            if let Pending::ToolsCall(call) = p {
                outcomes.push(self.record_outcome(&call, Outcome::Unknown, None, Some(why.into())));
            }
        }
        for o in outcomes {
            o.await;
        }
        answers
    }

    async fn client_one(self: &Arc<Self>, msg: Value) -> Routed {
        let (key, id, method) = match jsonrpc::kind(&msg) {
            Kind::Request { id, method } => (jsonrpc::id_key(id), id.clone(), method.to_string()),
            Kind::Notification {
                method: "notifications/cancelled",
            } => {
                // The client stopped waiting for a call: it may or may not
                // have run. The server is told too (the notification
                // passes), and should not answer.
                if let Some(id) = msg.pointer("/params/requestId") {
                    self.forget_call(id, "the client cancelled the call");
                }
                return Routed::pass(msg);
            }
            _ => return Routed::pass(msg),
        };
        {
            let mut pending = lock(&self.pending);
            if pending.contains_key(&key) {
                return Routed::answer(jsonrpc::error(
                    &id,
                    jsonrpc::INVALID_REQUEST,
                    "a request with this id is still waiting for its response",
                ));
            }
            if pending.len() >= MAX_PENDING {
                return Routed::answer(jsonrpc::error(
                    &id,
                    jsonrpc::INTERNAL_ERROR,
                    format!("more than {MAX_PENDING} requests are waiting for the server"),
                ));
            }
            let entry = match method.as_str() {
                "tools/list" => Pending::ToolsList { id: id.clone() },
                "tools/call" => Pending::Deciding,
                _ => Pending::Other { id: id.clone() },
            };
            pending.insert(key.clone(), entry);
        }
        if method != "tools/call" {
            return Routed::pass(msg);
        }
        let routed = self.call(msg, &id, &key).await;
        if routed.forward.is_none() {
            lock(&self.pending).remove(&key);
        }
        routed
    }

    /// A `tools/call` from the client: decided, then forwarded or answered.
    /// The pending entry for `key` is filled in when it is forwarded.
    async fn call(self: &Arc<Self>, mut msg: Value, id: &Value, key: &str) -> Routed {
        let params = msg.get("params").and_then(Value::as_object);
        let Some(tool) = params
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Routed::answer(jsonrpc::error(
                id,
                jsonrpc::INVALID_PARAMS,
                "Invalid params: tools/call needs 'params.name', a string",
            ));
        };
        let args = match params.and_then(|p| p.get("arguments")) {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(a @ Value::Object(_)) => a.clone(),
            Some(_) => {
                return Routed::answer(jsonrpc::error(
                    id,
                    jsonrpc::INVALID_PARAMS,
                    "Invalid params: tools/call 'params.arguments' must be an object",
                ));
            }
        };
        let g = &self.governor;
        match g.refusal(&tool) {
            None => {}
            Some(None | Some(Block::Flagged { .. })) => {
                return Routed::answer(jsonrpc::result(id, unknown_tool(&tool)));
            }
            Some(Some(Block::Changed { .. })) => {
                let text = format!(
                    "{REFUSED}: the definition of tool '{tool}' changed since it was approved, so it is blocked. An administrator must review it and run 'warden mcp approve-tool {} {tool}'.",
                    g.server()
                );
                return Routed::answer(jsonrpc::result(id, jsonrpc::tool_error(text)));
            }
            Some(Some(Block::Unchecked(e))) => {
                let text = format!(
                    "{REFUSED}: tool '{tool}' could not be checked against its pinned definition ({e})"
                );
                return Routed::answer(jsonrpc::result(id, jsonrpc::tool_error(text)));
            }
        }
        let action = g.action(self, Point::PreToolCall, &tool, args);
        let decision = match g.decide(action).await {
            Ok(d) => d,
            Err(e) => {
                return Routed::answer(jsonrpc::result(
                    id,
                    jsonrpc::tool_error(format!("{REFUSED}: {e}")),
                ));
            }
        };
        let mut rewritten = false;
        match decision.verdict {
            Verdict::Deny => {
                return Routed::answer(jsonrpc::result(
                    id,
                    jsonrpc::tool_error(refusal_text(&decision)),
                ));
            }
            Verdict::RequireApproval => {
                return Routed::answer(jsonrpc::result(
                    id,
                    jsonrpc::tool_error(approval_text(&decision)),
                ));
            }
            Verdict::Transform => match (&decision.args, msg.get_mut("params")) {
                (Some(args), Some(Value::Object(params))) => {
                    params.insert("arguments".into(), args.clone());
                    rewritten = true;
                }
                _ => {
                    return Routed::answer(jsonrpc::result(
                        id,
                        jsonrpc::tool_error(format!(
                            "{REFUSED}: the policy rewrote the arguments but the rewrite is missing"
                        )),
                    ));
                }
            },
            Verdict::Allow | Verdict::Warn => {}
        }
        if decision.seq.is_none() {
            // Unrecorded: the gate keeps no log, so nothing can be let through.
            return Routed::answer(jsonrpc::result(
                id,
                jsonrpc::tool_error(format!("{REFUSED}: the decision was not recorded")),
            ));
        }
        {
            let mut pending = lock(&self.pending);
            if matches!(pending.get(key), Some(Pending::Cancelled)) {
                tracing::info!(tool = %tool, "the client cancelled the call before it was forwarded");
                return Routed::default();
            }
            pending.insert(
                key.to_string(),
                Pending::ToolsCall(Box::new(Call {
                    id: id.clone(),
                    tool,
                    decision,
                })),
            );
        }
        if rewritten {
            Routed::rewritten(msg)
        } else {
            Routed::pass(msg)
        }
    }

    async fn upstream_one(self: &Arc<Self>, msg: Value) -> Routed {
        let Kind::Response { id } = jsonrpc::kind(&msg) else {
            return Routed::pass(msg);
        };
        let key = jsonrpc::id_key(id);
        let pending = {
            let mut pending = lock(&self.pending);
            match pending.get(&key) {
                // Not forwarded yet, so this cannot be its answer.
                Some(Pending::Deciding | Pending::Cancelled) => None,
                None => {
                    drop(pending);
                    if self.was_given_up(&key) {
                        tracing::info!(id = %id, "dropped the late answer to a call given up on");
                        return Routed::default();
                    }
                    None
                }
                Some(_) => pending.remove(&key),
            }
        };
        match pending {
            Some(Pending::ToolsList { .. }) => {
                Routed::rewritten(self.governor.filter_listing(msg).await)
            }
            Some(Pending::ToolsCall(call)) => self.call_result(*call, msg).await,
            _ => Routed::pass(msg),
        }
    }

    /// The upstream's answer to a forwarded `tools/call`: decided at
    /// `post_tool_call`, with its outcome appended alongside.
    async fn call_result(self: &Arc<Self>, call: Call, mut msg: Value) -> Routed {
        let Some(result) = msg.get("result").filter(|r| r.is_object()).cloned() else {
            let error = msg
                .get("error")
                .map(|e| {
                    e.get("message")
                        .and_then(Value::as_str)
                        .map_or_else(|| e.to_string(), str::to_string)
                })
                .unwrap_or_else(|| "the response has no result".to_string());
            tokio::spawn(self.record_outcome(&call, Outcome::Failed, None, Some(error)));
            return Routed::pass(msg);
        };
        let failed = result.get("isError").and_then(Value::as_bool) == Some(true);
        let (outcome, error) = if failed {
            (Outcome::Failed, Some(error_text(&result)))
        } else {
            (Outcome::Succeeded, None)
        };
        let hash: [u8; 32] =
            Sha256::digest(warden_gate::canonical::to_string(&result).as_bytes()).into();
        let g = &self.governor;
        let action = g.action(self, Point::PostToolCall, &call.tool, result);
        // The outcome is a report about the call, not a verdict: it is held
        // by the store and committed in the decision's transaction, so it
        // costs no sync of its own, and nothing waits for it but a task
        // that logs a failure (the store's close commits it too).
        let written = self.record_outcome(&call, outcome, Some(hash), error);
        let decided = g.decide(action).await;
        tokio::spawn(written);
        let replacement = match decided {
            Ok(d) => match d.verdict {
                Verdict::Allow | Verdict::Warn => None,
                Verdict::Transform => Some(d.args.filter(Value::is_object).unwrap_or_else(|| {
                    jsonrpc::tool_error(
                        "warden withheld the tool's result: the policy's rewrite of it is missing",
                    )
                })),
                Verdict::Deny | Verdict::RequireApproval => Some(jsonrpc::tool_error(format!(
                    "warden withheld the tool's result: {}",
                    reason_of(&d)
                ))),
            },
            Err(e) => Some(jsonrpc::tool_error(format!(
                "warden withheld the tool's result: {e}"
            ))),
        };
        match (replacement, msg.as_object_mut()) {
            (Some(r), Some(obj)) => {
                obj.insert("result".into(), r);
                Routed::rewritten(msg)
            }
            _ => Routed::pass(msg),
        }
    }

    /// Queues the outcome of `call`, held for the store's next append
    /// (nothing waits for the sync but the returned future). A failure is logged: the result still goes to
    /// the client, and the decision's record stands.
    fn record_outcome(
        &self,
        call: &Call,
        outcome: Outcome,
        result_hash: Option<[u8; 32]>,
        error: Option<String>,
    ) -> impl Future<Output = ()> + use<> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let error = error.map(|e| cut(e, MAX_OUTCOME_ERROR));
        let store = self.governor.vetting.store();
        let queued = outcome::record_held(
            store.as_ref(),
            &call.decision,
            outcome,
            result_hash,
            error,
            unix_nanos(),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        let tool = call.tool.clone();
        let seq = call.decision.seq;
        async move {
            let result = match queued {
                Err(e) => Err(e.to_string()),
                Ok(()) => match rx.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("the store went away".to_string()),
                },
            };
            if let Err(e) = result {
                tracing::error!(tool = %tool, decision_seq = ?seq, error = %e, "the outcome could not be recorded");
            }
        }
    }
}

/// What `server-filesystem` (the TypeScript SDK) answers for a tool it
/// does not have; a hidden tool looks the same.
fn unknown_tool(tool: &str) -> Value {
    jsonrpc::tool_error(format!("MCP error -32602: Tool {tool} not found"))
}

/// Why the gate decided as it did, for the model: the decision's message
/// (it names the rule and its reason), else the reason and the rule.
fn reason_of(d: &Decision) -> String {
    if !d.message.is_empty() {
        return d.message.clone();
    }
    match &d.rule {
        Some(rule) => format!("{} (rule '{rule}')", d.reason),
        None => d.reason.clone(),
    }
}

fn refusal_text(d: &Decision) -> String {
    let mut s = format!("{REFUSED}: {}", reason_of(d));
    if let Some(retry) = d.retry_after {
        s.push_str(&format!(" Try again in {retry} s."));
    }
    s
}

fn approval_text(d: &Decision) -> String {
    let mut s = format!(
        "{REFUSED} for now: it needs a person's approval: {}",
        reason_of(d)
    );
    if let Some(a) = &d.approval {
        s.push_str(&format!(
            ". Approval {} is {}; once an approver approves it ('warden approvals approve {}'), call the tool again with the same arguments.",
            a.id,
            a.state.as_str(),
            a.id
        ));
    }
    s
}

/// The text of a failed tool result, for its outcome.
fn error_text(result: &Value) -> String {
    let texts: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|i| i.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if texts.is_empty() {
        "the tool reported an error".into()
    } else {
        texts.join("\n")
    }
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use warden_store::{SqliteStore, Store, StoreConfig};

    const POLICY: &str = "version: warden/v1\nname: t\ndefault: deny\nrules:\n  - id: reads\n    match: {tool: read}\n    verdict: allow\n  - id: results\n    on: [post_tool_call]\n    verdict: allow\n";

    fn session(dir: &std::path::Path) -> (Arc<Session>, Arc<SqliteStore>) {
        let store = Arc::new(SqliteStore::open(dir, StoreConfig::default()).unwrap());
        let policy =
            warden_policy::compile(warden_policy::parse("p.yaml", POLICY).unwrap()).unwrap();
        let gate = Arc::new(Gate::new(policy).with_audit(store.clone()));
        let governor = Arc::new(Governor::new(gate, "srv", None, store.clone()));
        (Arc::new(Session::new(governor, "s-1")), store)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn calls_are_matched_to_their_responses_by_id_and_the_rest_passes() {
        let dir = tempfile::tempdir().unwrap();
        let (s, store) = session(dir.path());
        let ping = json!({"jsonrpc": "2.0", "id": "p", "method": "ping", "x-extra": [1]});
        assert_eq!(s.from_client(ping.clone()).await, Routed::pass(ping));

        let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "read", "arguments": {"path": "a"}}});
        assert_eq!(
            s.from_client(call.clone()).await,
            Routed::pass(call.clone())
        );
        // The same id again while the first waits is refused.
        let again = s.from_client(call).await;
        assert_eq!(
            again.answer.unwrap()["error"]["code"],
            jsonrpc::INVALID_REQUEST
        );

        // A response matches by value (7.0 is 7) and is decided at post_tool_call.
        let answer = json!({"jsonrpc": "2.0", "id": 7.0, "result": {"content": []}});
        let routed = s.from_upstream(answer.clone()).await;
        assert_eq!(routed, Routed::pass(answer));
        assert_eq!(s.pending(), 1, "only the ping waits");

        let denied = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
            "params": {"name": "write", "arguments": {}}});
        let routed = s.from_client(denied).await;
        assert!(routed.forward.is_none());
        let result = &routed.answer.unwrap()["result"];
        assert_eq!(result["isError"], true);
        assert!(
            result["content"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with(REFUSED)
        );

        // A batch: the allowed call is forwarded, the refused one answered.
        let batch = json!([
            {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "read"}},
            {"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "write"}},
        ]);
        let routed = s.from_client(batch).await;
        assert_eq!(routed.forward.unwrap().as_array().unwrap().len(), 1);
        assert_eq!(routed.answer.unwrap()[0]["id"], 10);

        // The upstream goes away: the ping and call 9 get errors.
        let mut ids: Vec<Value> = s
            .close("gone")
            .await
            .into_iter()
            .map(|m| m["id"].clone())
            .collect();
        ids.sort_by_key(|v| v.to_string());
        assert_eq!(ids, [json!("p"), json!(9)]);
        let outcomes: Vec<String> = warden_store::entries_from(store.as_ref(), 0)
            .filter_map(|e| match e.unwrap().entry().unwrap().record {
                warden_audit::Record::Outcome(o) => Some(format!("{:?}", o.outcome)),
                _ => None,
            })
            .collect();
        assert_eq!(outcomes, ["Succeeded", "Unknown"]);
        store.close().unwrap();
    }
}
