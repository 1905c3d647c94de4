//! The routes. JSON in and out; every error is
//! `{"error": {"code", "message"}}` with its status. The OpenAPI 3.1
//! document at `/v1/openapi.json` describes exactly [`routes`], the list
//! the router is built from.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::time::SystemTime;
use warden_audit::Outcome;
use warden_gate::agents::{Agents, AgentsError, Transition, check_reason};
use warden_gate::outcome::{self, OutcomeError};
use warden_gate::runtime::{self, ApprovalError, ApprovalState, KILL_ALL};
use warden_gate::{Action, ActionError, Decision};
use warden_identity::approval::ApprovalSignatureError;
use warden_identity::{Did, Sponsor};

use crate::auth::{Principal, Role, require};
use crate::{ApiError, AppState};

/// Path parameters, refused as the API's JSON error (`invalid_path`, 400)
/// instead of axum's plain-text one, e.g. for `/v1/approvals/%FF`, which
/// does not decode to UTF-8.
struct PathParams<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for PathParams<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParams(value)),
            Err(e) => Err(ApiError::bad_request("invalid_path", e.body_text())),
        }
    }
}

/// The OpenAPI 3.1 document.
pub const OPENAPI: &str = include_str!("openapi.json");

/// A route of the API: method, path (axum syntax) and the role it needs
/// (`None`: open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path, with `{name}` parameters.
    pub path: &'static str,
    /// The role it needs; `None` for the open routes.
    pub role: Option<Role>,
}

/// Every route the router has: [`router`] is built from this list, so a
/// route cannot be served without being listed (and documented).
pub fn routes() -> Vec<Route> {
    endpoints().into_iter().map(|(route, _)| route).collect()
}

/// Each route with its handler: the one list the router and [`routes`]
/// come from.
fn endpoints() -> Vec<(Route, MethodRouter<Arc<AppState>>)> {
    use Role::{Admin, Agent, Approver};
    vec![
        endpoint(Method::GET, "/healthz", None, healthz),
        endpoint(Method::GET, "/readyz", None, readyz),
        endpoint(Method::GET, "/metrics", None, metrics),
        endpoint(Method::GET, "/v1/openapi.json", None, openapi),
        endpoint(Method::POST, "/v1/decide", Some(Agent), decide),
        endpoint(Method::POST, "/v1/decide/batch", Some(Agent), decide_batch),
        endpoint(Method::POST, "/v1/outcomes", Some(Agent), outcome),
        endpoint(Method::GET, "/v1/approvals", Some(Approver), list_approvals),
        endpoint(
            Method::GET,
            "/v1/approvals/{id}",
            Some(Approver),
            get_approval,
        ),
        endpoint(
            Method::POST,
            "/v1/approvals/{id}/approve",
            Some(Approver),
            approve,
        ),
        endpoint(
            Method::POST,
            "/v1/approvals/{id}/deny",
            Some(Approver),
            deny,
        ),
        endpoint(Method::GET, "/v1/agents", Some(Admin), list_agents),
        endpoint(Method::POST, "/v1/agents", Some(Admin), create_agent),
        endpoint(Method::GET, "/v1/agents/{did}", Some(Admin), get_agent),
        endpoint(
            Method::POST,
            "/v1/agents/{did}/{transition}",
            Some(Admin),
            move_agent,
        ),
        endpoint(Method::GET, "/v1/kill", Some(Admin), kill_status),
        endpoint(Method::POST, "/v1/kill", Some(Admin), kill),
        endpoint(Method::DELETE, "/v1/kill", Some(Admin), lift),
        endpoint(Method::GET, "/v1/policy", Some(Admin), policy),
        endpoint(Method::POST, "/v1/policy/reload", Some(Admin), reload),
        endpoint(Method::GET, "/v1/audit/checkpoint", Some(Admin), checkpoint),
        endpoint(Method::GET, "/v1/audit/proof/{seq}", Some(Admin), proof),
        endpoint(Method::GET, "/v1/audit/entries", Some(Admin), entries),
    ]
}

fn endpoint<H, T>(
    method: Method,
    path: &'static str,
    role: Option<Role>,
    handler: H,
) -> (Route, MethodRouter<Arc<AppState>>)
where
    H: Handler<T, Arc<AppState>>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("the routes use plain methods");
    (Route { method, path, role }, on(filter, handler))
}

/// Most actions in one batch.
pub const MAX_BATCH: usize = 1000;
/// Most entries in one `GET /v1/audit/entries` page.
pub const MAX_ENTRIES_PAGE: usize = 1000;

type ApiResult = Result<Response, ApiError>;

/// The router over `state`: every route of [`routes`], the role checks,
/// JSON answers for unknown routes and methods, and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    for (route, handler) in endpoints() {
        let handler = match route.role {
            Some(role) => handler.route_layer(from_fn_with_state((state.clone(), role), require)),
            None => handler,
        };
        router = router.route(route.path, handler);
    }
    router
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}

/// What `warden serve` runs: [`router`], except that `POST /v1/decide`,
/// nearly all of the traffic, goes straight to its handler. The router's
/// path match, the role middleware (which boxes and clones the route for
/// every request) and the body-limit layer cost about 8,000 instructions a
/// decision; this path does the same checks in the same order with the
/// same answers: the `agent` role (401 / 403), the body limit (413), then
/// the decision.
#[derive(Clone)]
pub struct Service {
    router: Router,
    state: Arc<AppState>,
}

/// [`Service`] over `state`.
pub fn service(state: Arc<AppState>) -> Service {
    Service {
        router: router(state.clone()),
        state,
    }
}

impl tower::Service<Request> for Service {
    type Response = Response;
    type Error = Infallible;
    type Future = futures_util::future::Either<
        Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>,
        <Router as tower::Service<Request>>::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        use futures_util::future::Either;
        if request.method() == Method::POST && request.uri().path() == "/v1/decide" {
            let state = self.state.clone();
            Either::Left(Box::pin(async move {
                Ok(decide_direct(state, request)
                    .await
                    .unwrap_or_else(IntoResponse::into_response))
            }))
        } else {
            Either::Right(self.router.call(request))
        }
    }
}

/// `POST /v1/decide` without the router: see [`Service`].
async fn decide_direct(state: Arc<AppState>, request: Request) -> ApiResult {
    let (parts, body) = request.into_parts();
    let principal = state
        .auth
        .authorize(&parts.headers, Role::Agent, &state.gate)?;
    let bytes = match Limited::new(body, state.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(body_too_large()),
        Err(e) => return Err(unreadable_body(e)),
    };
    decide_bytes(&state, &principal, &bytes).await
}

/// Room for a typical answer (a decision is about 500 bytes), so encoding
/// it does not grow the buffer: `axum::Json` starts at 128 bytes and
/// doubled it twice for every decision.
const ANSWER_CAPACITY: usize = 1024;

fn json(status: StatusCode, value: impl serde::Serialize) -> Response {
    let mut body = Vec::with_capacity(ANSWER_CAPACITY);
    match serde_json::to_writer(&mut body, &value) {
        Ok(()) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            ApiError::internal(format!("cannot encode the answer as JSON: {e}")).into_response()
        }
    }
}

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(json(StatusCode::OK, value))
}

async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such route (the API is described at /v1/openapi.json)",
    )
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method (see /v1/openapi.json)",
    )
}

/// Runs store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the request's work panicked: {e}")))?
}

/// The body, or the error for a body over the limit or cut off.
fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            body_too_large()
        } else {
            unreadable_body(e)
        }
    })
}

fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the request body is larger than the server's limit (--max-body)",
    )
}

fn unreadable_body(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_body", format!("cannot read the request body: {e}"))
}

/// Parses a JSON body into `T`: 400 `invalid_json` for what is not JSON,
/// 400 `invalid_request` for JSON of the wrong shape.
fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body is empty; send a JSON document",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let code = if e.is_data() {
            "invalid_request"
        } else {
            "invalid_json"
        };
        ApiError::bad_request(code, e.to_string())
    })
}

/// [`parse`], or `T::default()` for a body that is empty or blank.
fn parse_or_default<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(bytes)
    }
}

fn action_error(e: ActionError) -> ApiError {
    match e {
        ActionError::TooLarge(_) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            e.to_string(),
        ),
        ActionError::Json(m) => ApiError::bad_request("invalid_json", m),
        ActionError::Invalid { .. } => ApiError::bad_request("invalid_action", e.to_string()),
    }
}

// ---- health ------------------------------------------------------------------

async fn healthz() -> ApiResult {
    ok(json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<AppState>>) -> ApiResult {
    let gate = state.gate.load_full();
    let audit = state.audit.clone();
    let store = blocking(move || Ok(audit.check_writable())).await?;
    let policy = gate
        .policy()
        .map(|p| json!({"name": p.name(), "hash": p.hash()}));
    let ready = store.is_ok() && policy.is_some();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json(
        status,
        json!({
            "ready": ready,
            "policy": policy,
            "store": match &store {
                Ok(()) => json!({"writable": true}),
                Err(e) => json!({"writable": false, "error": e.to_string()}),
            },
        }),
    ))
}

async fn metrics(State(state): State<Arc<AppState>>) -> ApiResult {
    let registry = state.registry.clone();
    let text = blocking(move || Ok(crate::metrics::encode(&registry))).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

// ---- decisions ---------------------------------------------------------------

async fn decide_one(state: &Arc<AppState>, action: Action) -> Result<Decision, ApiError> {
    let gate = state.gate.load_full();
    let point = action.point;
    let started = Instant::now();
    let decision = gate.decide_async(action).await;
    state
        .metrics
        .observe_decision(point, &decision, started.elapsed());
    Ok(decision)
}

async fn decide(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    decide_bytes(&state, &principal, &body(raw)?).await
}

async fn decide_bytes(state: &Arc<AppState>, principal: &Principal, bytes: &[u8]) -> ApiResult {
    let mut action = Action::from_json(bytes).map_err(action_error)?;
    principal.bind(&mut action)?;
    ok(decide_one(state, action).await?)
}

async fn decide_batch(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        actions: Vec<Box<RawValue>>,
    }
    let bytes = body(raw)?;
    let batch: Batch = parse(&bytes)?;
    if batch.actions.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!(
                "a batch holds at most {MAX_BATCH} actions; this one has {}",
                batch.actions.len()
            ),
        ));
    }
    let mut actions = Vec::with_capacity(batch.actions.len());
    for (i, raw) in batch.actions.iter().enumerate() {
        // Each action as its own document: the same size limit and checks
        // as a single decide.
        let mut action = Action::from_json(raw.get().as_bytes()).map_err(|e| {
            let mut e = match e {
                ActionError::Json(m) => ApiError::bad_request("invalid_action", m),
                e => action_error(e),
            };
            e.message = format!("actions[{i}]: {}", e.message);
            e
        })?;
        principal.bind(&mut action).map_err(|mut e| {
            e.message = format!("actions[{i}]: {}", e.message);
            e
        })?;
        actions.push(action);
    }
    // Decided concurrently, so their audit appends share commits.
    let mut set = tokio::task::JoinSet::new();
    for (i, action) in actions.into_iter().enumerate() {
        let state = state.clone();
        set.spawn(async move { (i, decide_one(&state, action).await) });
    }
    let mut decisions: Vec<Option<Decision>> = Vec::new();
    decisions.resize_with(set.len(), || None);
    while let Some(joined) = set.join_next().await {
        let (i, decision) =
            joined.map_err(|e| ApiError::internal(format!("a decision panicked: {e}")))?;
        decisions[i] = Some(decision?);
    }
    ok(json!({"decisions": decisions}))
}

async fn outcome(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        decision_seq: u64,
        outcome: Outcome,
        #[serde(default)]
        result_hash: Option<String>,
        #[serde(default)]
        error: Option<String>,
    }
    let bytes = body(raw)?;
    let b: Body = parse(&bytes)?;
    let result_hash = match &b.result_hash {
        None => None,
        Some(h) => {
            let hex_part = h.strip_prefix("sha256:").unwrap_or(h);
            let bytes = hex::decode(hex_part)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_request",
                        "result_hash must be 64 hex digits (optionally prefixed 'sha256:')",
                    )
                })?;
            Some(bytes)
        }
    };
    let audit = state.audit.clone();
    let decision_seq = b.decision_seq;
    let report = outcome::Report {
        decision_seq,
        outcome: b.outcome,
        result_hash,
        error: b.error,
    };
    let seq = blocking(move || {
        outcome::record_as(
            audit.as_ref(),
            report,
            now_nanos(),
            principal.agent.as_deref(),
        )
        .map(|a| a.seq)
        .map_err(|e| match e {
            OutcomeError::NoEntry(_) => ApiError::not_found(e.to_string()),
            OutcomeError::OtherAgent { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "agent_mismatch", e.to_string())
            }
            OutcomeError::NotADecision(_) => {
                ApiError::new(StatusCode::CONFLICT, "not_a_decision", e.to_string())
            }
            OutcomeError::NotLetThrough { .. } | OutcomeError::Unrecorded => {
                ApiError::new(StatusCode::CONFLICT, "not_allowed", e.to_string())
            }
            OutcomeError::ErrorTooLong(_) => {
                ApiError::bad_request("invalid_request", e.to_string())
            }
            OutcomeError::Undecodable { .. } => ApiError::internal(e.to_string()),
            OutcomeError::Read(_) | OutcomeError::Append(_) => ApiError::unavailable(e.to_string()),
        })
    })
    .await?;
    ok(json!({"seq": seq, "decision_seq": decision_seq}))
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

// ---- approvals ---------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateQuery {
    state: Option<String>,
}

async fn list_approvals(
    State(state): State<Arc<AppState>>,
    query: Result<Query<StateQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let filter = match q.state.as_deref() {
        None | Some("all") => None,
        Some(s) => Some(ApprovalState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_request",
                format!(
                    "unknown state '{s}': expected pending, approved, denied, used, expired or all"
                ),
            )
        })?),
    };
    ok(json!({"approvals": state.runtime.approvals(filter)}))
}

async fn get_approval(
    State(state): State<Arc<AppState>>,
    PathParams(id): PathParams<String>,
) -> ApiResult {
    match state.runtime.approval(&id) {
        Some(a) => ok(a),
        None => Err(ApiError::not_found(format!(
            "no approval has the id '{id}'"
        ))),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Answer {
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    /// Who answers, when the server runs without authentication.
    #[serde(default)]
    approver: Option<String>,
}

async fn approve(
    state: State<Arc<AppState>>,
    principal: Extension<Principal>,
    id: PathParams<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    answer(state, principal, id, raw, true).await
}

async fn deny(
    state: State<Arc<AppState>>,
    principal: Extension<Principal>,
    id: PathParams<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    answer(state, principal, id, raw, false).await
}

async fn answer(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    PathParams(id): PathParams<String>,
    raw: Result<Bytes, BytesRejection>,
    approve: bool,
) -> ApiResult {
    let bytes = body(raw)?;
    let a: Answer = parse_or_default(&bytes)?;
    for (field, value) in [("comment", &a.comment), ("signature", &a.signature)] {
        if value.as_ref().is_some_and(|v| v.len() > 16 * 1024) {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("{field} is longer than 16 KiB"),
            ));
        }
    }
    let by = match (&a.approver, principal.authenticated()) {
        (Some(named), true) if *named != principal.name => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "'{}' cannot answer as '{named}': the approver is the token's holder",
                    principal.name
                ),
            ));
        }
        (Some(named), false) => named.clone(),
        _ => principal.name.clone(),
    };
    let runtime = state.runtime.clone();
    let answer = runtime::Answer {
        approve,
        by,
        key: principal.key.clone(),
        signature: a.signature,
        comment: a.comment,
    };
    let result = blocking(move || Ok(runtime.answer(&id, answer))).await?;
    match result {
        Ok(approval) => ok(approval),
        Err(e @ ApprovalError::NotFound(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ ApprovalError::NotPending { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "approval_not_pending",
            e.to_string(),
        )),
        Err(e @ ApprovalError::NotAnApprover { .. }) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_an_approver",
            e.to_string(),
        )),
        Err(e @ ApprovalError::SignatureRequired { .. }) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "signature_required",
            e.to_string(),
        )),
        Err(e @ ApprovalError::BadSignature(ApprovalSignatureError::Encoding(_))) => {
            Err(ApiError::bad_request("invalid_signature", e.to_string()))
        }
        Err(e @ ApprovalError::BadSignature(ApprovalSignatureError::Mismatch { .. })) => Err(
            ApiError::new(StatusCode::FORBIDDEN, "invalid_signature", e.to_string()),
        ),
        Err(e @ ApprovalError::ApproverKey { .. }) => {
            Err(ApiError::bad_request("invalid_approver", e.to_string()))
        }
        Err(e @ ApprovalError::Store(_)) => Err(ApiError::unavailable(e.to_string())),
    }
}

// ---- agents -----------------------------------------------------------------

fn agents_error(e: AgentsError) -> ApiError {
    let status = match e.code() {
        "agent_not_found" => StatusCode::NOT_FOUND,
        "agent_exists" | "invalid_transition" => StatusCode::CONFLICT,
        code @ ("store_unavailable" | "store_malformed") => {
            return ApiError::store(code, e.to_string());
        }
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.code(), e.to_string())
}

fn did(text: &str) -> Result<Did, ApiError> {
    Did::parse(text).map_err(|e| agents_error(AgentsError::from(e)))
}

fn actor(principal: &Principal) -> String {
    format!("api:{}", principal.name)
}

async fn list_agents(State(state): State<Arc<AppState>>) -> ApiResult {
    let audit = state.audit.clone();
    blocking(move || {
        let now = SystemTime::now();
        let agents = Agents::new(audit.as_ref(), "api")
            .list()
            .map_err(agents_error)?;
        let list: Vec<Value> = agents.iter().map(|a| Agents::summary(a, now)).collect();
        ok(json!({"agents": list}))
    })
    .await
}

async fn get_agent(
    State(state): State<Arc<AppState>>,
    PathParams(text): PathParams<String>,
) -> ApiResult {
    let did = did(&text)?;
    let audit = state.audit.clone();
    blocking(move || {
        match Agents::new(audit.as_ref(), "api")
            .get(&did)
            .map_err(agents_error)?
        {
            Some(agent) => ok(Agents::summary(&agent, SystemTime::now())),
            None => Err(agents_error(AgentsError::NotFound {
                did: did.to_string(),
            })),
        }
    })
    .await
}

async fn create_agent(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        did: String,
        name: String,
        sponsor: String,
        #[serde(default)]
        provisioned: bool,
    }
    let bytes = body(raw)?;
    let b: Body = parse(&bytes)?;
    let did = did(&b.did)?;
    let sponsor = Sponsor::parse(&b.sponsor).map_err(|e| agents_error(AgentsError::from(e)))?;
    let (audit, runtime) = (state.audit.clone(), state.runtime.clone());
    blocking(move || {
        let now = SystemTime::now();
        let agents = Agents::new(audit.as_ref(), actor(&principal)).noting(&runtime);
        let mut extra = Map::new();
        extra.insert("key".into(), json!("held by the agent"));
        let mut agent = agents
            .create(did.clone(), &b.name, sponsor, true, now, extra)
            .map_err(agents_error)?;
        if !b.provisioned {
            agent = agents
                .transition(&did, Transition::Activate, "created", now)
                .map_err(agents_error)?
                .agent;
        }
        Ok(json(StatusCode::CREATED, Agents::summary(&agent, now)))
    })
    .await
}

async fn move_agent(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    PathParams((text, transition)): PathParams<(String, String)>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        reason: Option<String>,
    }
    let Some(op) = Transition::parse(&transition) else {
        return Err(ApiError::not_found(format!(
            "no agent transition '{transition}': expected activate, suspend, resume or decommission"
        )));
    };
    let did = did(&text)?;
    let bytes = body(raw)?;
    let b: Body = parse_or_default(&bytes)?;
    let reason =
        check_reason(b.reason.as_deref()).map_err(|e| agents_error(AgentsError::Reason(e)))?;
    let (audit, runtime) = (state.audit.clone(), state.runtime.clone());
    let gate = state.gate.load_full();
    blocking(move || {
        let now = SystemTime::now();
        let moved = Agents::new(audit.as_ref(), actor(&principal))
            .noting(&runtime)
            .transition(&did, op, &reason, now)
            .map_err(agents_error)?;
        // Revocations count from the next decision, not the next refresh.
        if let Some(identity) = gate.identity() {
            for id in &moved.revoked {
                identity.revoke(id);
            }
        }
        ok(json!({
            "from": moved.from,
            "to": moved.to,
            "agent": Agents::summary(&moved.agent, now),
            "revoked": moved.revoked.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        }))
    })
    .await
}

// ---- kill switch -------------------------------------------------------------

async fn kill_status(State(state): State<Arc<AppState>>) -> ApiResult {
    ok(kill_json(&state))
}

fn kill_json(state: &AppState) -> Value {
    let s = state.runtime.kill_status();
    let agents: Map<String, Value> = s
        .agents
        .into_iter()
        .map(|(did, e)| (did, json!(e)))
        .collect();
    json!({"active": state.runtime.kill_active(), "global": s.global, "agents": agents})
}

async fn kill(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        agent: Option<String>,
        reason: String,
    }
    let bytes = body(raw)?;
    let b: Body = parse(&bytes)?;
    if b.reason.trim().is_empty() || b.reason.len() > 1024 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "reason must be 1 to 1024 bytes of text: say why, for the audit log",
        ));
    }
    let target = target(b.agent)?;
    let runtime = state.runtime.clone();
    let seq = blocking(move || {
        runtime
            .kill(&target, &principal.name, &b.reason)
            .map_err(|e| {
                ApiError::unavailable(format!("the kill switch could not be recorded: {e}"))
            })
    })
    .await?;
    let mut out = kill_json(&state);
    out["seq"] = json!(seq);
    ok(out)
}

fn target(agent: Option<String>) -> Result<String, ApiError> {
    match agent {
        None => Ok(KILL_ALL.to_string()),
        Some(a)
            if a == KILL_ALL
                || a.is_empty()
                || a.len() > 512
                || a.chars().any(char::is_control) =>
        {
            Err(ApiError::bad_request(
                "invalid_request",
                "agent must be an agent's DID; leave it out to stop every agent",
            ))
        }
        Some(a) => Ok(a),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentQuery {
    agent: Option<String>,
}

async fn lift(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<AgentQuery>, axum::extract::rejection::QueryRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    // Read as `{"agent": …}`, a body would be ignored and the global kill
    // switch lifted instead of the agent's: refuse it.
    if !body(raw)?.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "DELETE /v1/kill takes no body: name an agent in the query (?agent=…); without it the global kill switch is lifted",
        ));
    }
    let target = target(q.agent)?;
    let runtime = state.runtime.clone();
    let seq = blocking(move || {
        runtime.lift(&target, &principal.name).map_err(|e| {
            ApiError::unavailable(format!(
                "lifting the kill switch could not be recorded: {e}"
            ))
        })
    })
    .await?;
    let mut out = kill_json(&state);
    out["lifted"] = json!(seq.is_some());
    out["seq"] = json!(seq);
    ok(out)
}

// ---- policy ------------------------------------------------------------------

async fn policy(State(state): State<Arc<AppState>>) -> ApiResult {
    let gate = state.gate.load_full();
    let p = gate.policy();
    ok(json!({
        "source": state.policy.describe(),
        "name": p.map(|p| p.name()),
        "hash": p.map(|p| p.hash()),
        "rules": p.map_or(0, |p| p.rules().len()),
        "reload_errors": state.metrics.reload_errors(),
    }))
}

async fn reload(State(state): State<Arc<AppState>>) -> ApiResult {
    let s = state.clone();
    let result = blocking(move || Ok(s.policy.reload(&s))).await?;
    let e = match result {
        Ok(r) => return ok(r),
        Err(e) => e,
    };
    // The policy compiled, but the identities it needs could not be read
    // from the store: not the policy's fault.
    if let Some(store) = e.downcast_ref::<warden_gate::IdentityError>() {
        return Err(ApiError::store(
            store.code(),
            format!(
                "the new policy's identity step cannot read the store; the previous policy keeps deciding: {e:#}"
            ),
        ));
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "policy_invalid",
        format!("the new policy does not compile; the previous one keeps deciding: {e:#}"),
    ))
}

// ---- audit -------------------------------------------------------------------

async fn checkpoint(State(state): State<Arc<AppState>>) -> ApiResult {
    let audit = state.audit.clone();
    blocking(move || {
        let unavailable = |e: warden_store::StoreError| ApiError::unavailable(e.to_string());
        let size = audit.log_size().map_err(unavailable)?;
        let mut latest = audit.latest_checkpoint().map_err(unavailable)?;
        if latest.as_ref().is_none_or(|c| c.size < size) {
            latest = audit.checkpoint_now().map_err(unavailable)?.or(latest);
        }
        let Some(cp) = latest else {
            return Err(ApiError::not_found(
                "the log is empty: there is no checkpoint yet",
            ));
        };
        ok(json!({
            "size": cp.size,
            "root": hex::encode(cp.root),
            "note": cp.note,
            "created_unix_nanos": cp.created_unix_nanos,
            "verifier_key": audit.verifier().to_key_string(),
        }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeQuery {
    size: Option<u64>,
}

async fn proof(
    State(state): State<Arc<AppState>>,
    PathParams(seq): PathParams<String>,
    query: Result<Query<SizeQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let seq: u64 = seq.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_request",
            format!("'{seq}' is not a sequence number"),
        )
    })?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let audit = state.audit.clone();
    blocking(move || {
        let unavailable = |e: warden_store::StoreError| ApiError::unavailable(e.to_string());
        let log_size = audit.log_size().map_err(unavailable)?;
        let size = match q.size {
            Some(n) => n,
            None => match audit.latest_checkpoint().map_err(unavailable)? {
                Some(cp) if cp.size > seq => cp.size,
                _ => audit
                    .checkpoint_now()
                    .map_err(unavailable)?
                    .map_or(log_size, |cp| cp.size),
            },
        };
        if size > log_size {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("size {size} is larger than the log ({log_size} entries)"),
            ));
        }
        if seq >= size {
            return Err(ApiError::not_found(format!(
                "entry {seq} is not in a tree of {size} entries"
            )));
        }
        let p = audit.inclusion_proof(seq, size).map_err(unavailable)?;
        ok(json!({
            "seq": p.seq,
            "size": p.size,
            "leaf_hash": hex::encode(p.leaf_hash),
            "root": hex::encode(p.root),
            "hashes": p.hashes.iter().map(hex::encode).collect::<Vec<_>>(),
        }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn entries(
    State(state): State<Arc<AppState>>,
    query: Result<Query<EntriesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_ENTRIES_PAGE {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("limit must be 1 to {MAX_ENTRIES_PAGE}"),
        ));
    }
    let from = q.after.map_or(0, |a| a.saturating_add(1));
    let audit = state.audit.clone();
    blocking(move || {
        let page = audit
            .entries(from, limit)
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let mut out = Vec::with_capacity(page.len());
        for stored in &page {
            let entry = stored.entry().map_err(|e| {
                ApiError::internal(format!(
                    "entry {} does not decode ({e}): run 'warden audit verify'",
                    stored.seq
                ))
            })?;
            let mut line = Map::new();
            line.insert("seq".into(), json!(stored.seq));
            line.insert("leaf_hash".into(), json!(stored.leaf_hash_hex()));
            if let Ok(Value::Object(fields)) = serde_json::to_value(&entry.record) {
                line.extend(fields);
            }
            out.push(Value::Object(line));
        }
        let next = page.last().map(|e| e.seq);
        ok(json!({"entries": out, "last_seq": next}))
    })
    .await
}
