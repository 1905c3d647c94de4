//! The identity step of a decision: who sends the action, who answers for
//! it, at which ring it runs, and which tools its capability token grants.
//!
//! With an [`IdentityContext`] ([`crate::Gate::with_identity`]), an action
//! that carries a token in `context.token` is checked in full, whether or not
//! the policy asks for identity:
//!
//! 1. the token verifies (cached) against the trusted issuers — the policy's
//!    `identity.issuers` plus the caller's — and the revocations in the store;
//! 2. `action.agent`, when given, is the token's holder (when absent, the
//!    holder becomes the agent);
//! 3. a signed request in `context.signature`, when present (required under
//!    `identity: {signed_requests: required}`), is by the holder and over
//!    [`Action::hash_for_signing`], and its nonce is new;
//! 4. the holder's agent record exists and is `active`;
//! 5. the ring is the record's (capped by what its trust score earns under
//!    the policy's `rings:`), never the caller's: a `context.ring` more
//!    privileged than that is refused; one less privileged is honoured
//!    (an agent may drop privilege). The token's ring ceiling caps it too;
//! 6. the tool is within the token's rights at that ring.
//!
//! Any failure is a `deny` with an `identity:<code>` reason. Nothing in this
//! path allows on an error.
//!
//! # Nonces outlive the process
//!
//! A signed request's nonce is remembered in memory until its timestamp
//! leaves the skew window, and, when the gate records its decisions, in the
//! store's `state` table (space [`NONCE_SPACE`]): [`crate::Gate::decide`]
//! writes it in the transaction of the decision's audit record, so a
//! decision that was returned implies a nonce that is durable. The same
//! write deletes the nonces that have left the window (their keys start
//! with the timestamp, so that is one range delete), which keeps the table
//! at about one skew window's worth of nonces without an audit entry of
//! its own. The bound they were deleted below is stored beside them (space
//! [`NONCE_FLOOR_SPACE`]). [`IdentityContext::new`] loads the unexpired
//! nonces and the highest bound, and fails if it cannot: a request accepted
//! before a restart is refused after it, and so is one from before the
//! bound, even when the clock was set back across the restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use warden_audit::{EventRecord, Record};
use warden_identity::trust::{Severity, TrustEvent, TrustState, TrustUpdate};
use warden_identity::{
    AcceptedNonce, Agent, Did, RequestVerifier, RevocationId, Ring, RingThresholds, SignedRequest,
    SignedRequestError, Status, TokenError, TokenVerifier, TrustConfig,
};
use warden_policy::{CompiledPolicy, SignedRequests};
use warden_store::{StateChange, Store, StoreError};

use crate::decision::reason;
use crate::{Action, IdentityInfo};

/// How often [`crate::Gate::decide`] re-reads the store's revocations by
/// default, so a token revoked by another process stops working within this
/// long. [`IdentityContext::refresh_revocations`] does it at once.
pub const DEFAULT_REVOCATION_REFRESH: Duration = Duration::from_secs(5);

/// Parsed agent records kept, keyed by DID and checked against the stored
/// text on every decision (the store is read every time; only the parsing
/// is saved).
const AGENT_CACHE_CAPACITY: usize = 4096;

/// Longest `context.signature` accepted, as JSON text.
const MAX_SIGNATURE_BYTES: usize = 4096;

/// The store space of the nonces of accepted signed requests. A key is
/// `<timestamp, 20 decimal digits>.<replay id, 64 hex digits>` (the
/// timestamp first and zero-padded, so keys sort by time and the expired
/// ones are a prefix); the value is empty.
pub const NONCE_SPACE: &str = "nonces";

/// The store space of the bound the stored nonces were last deleted below
/// (see [`NONCE_SPACE`]): a key is that timestamp, 20 decimal digits; the
/// value is empty. Each signed decision stores its bound and deletes the
/// lower ones, so the highest survives even when two decisions commit in
/// the other order than they computed their bounds; the highest is what
/// [`IdentityContext::new`] takes as the verifier's floor.
pub const NONCE_FLOOR_SPACE: &str = "nonce_floor";

/// A timestamp as the key it has in [`NONCE_SPACE`] and [`NONCE_FLOOR_SPACE`].
fn timestamp_key(timestamp: u64) -> String {
    format!("{timestamp:020}")
}

/// The timestamp `key` names, if [`timestamp_key`] wrote it.
fn parse_timestamp_key(key: &str) -> Option<u64> {
    if key.len() != 20 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse().ok()
}

/// The key of `nonce` in [`NONCE_SPACE`].
fn nonce_key(nonce: &AcceptedNonce) -> String {
    format!(
        "{}.{}",
        timestamp_key(nonce.timestamp),
        hex::encode(nonce.replay_id)
    )
}

/// The nonce a key of [`NONCE_SPACE`] names, if it is one [`nonce_key`] wrote.
fn parse_nonce_key(key: &str) -> Option<AcceptedNonce> {
    let (timestamp, id) = key.split_once('.')?;
    let timestamp = parse_timestamp_key(timestamp)?;
    let mut replay_id = [0u8; 32];
    hex::decode_to_slice(id, &mut replay_id).ok()?;
    Some(AcceptedNonce {
        replay_id,
        timestamp,
    })
}

/// Why an [`IdentityContext`] could not be built or refreshed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No trusted issuer, or the issuers clash.
    #[error("cannot verify tokens: {0}")]
    Issuers(#[source] TokenError),
    /// The store could not be read.
    #[error("cannot read identities from the store: {0}")]
    Store(#[source] warden_store::StoreError),
    /// A stored revocation id does not parse.
    #[error("stored revocation id {id:?} is invalid: {source}")]
    Revocation {
        /// The id as stored.
        id: String,
        /// What is wrong with it.
        #[source]
        source: TokenError,
    },
    /// The nonces of signed requests accepted earlier could not be read:
    /// without them a request accepted before a restart could be replayed.
    #[error(
        "cannot read the nonces of signed requests already accepted from the store, so a captured request could be replayed: {0} (hint: check that the data directory is readable)"
    )]
    Nonces(#[source] warden_store::StoreError),
    /// A key in the nonce space is not one warden wrote.
    #[error(
        "the store holds an unreadable nonce key {key:?} in space '{NONCE_SPACE}' (hint: it was not written by warden; remove it from the data directory's state table)"
    )]
    NonceKey {
        /// The key as stored.
        key: String,
    },
    /// A key in the nonce floor space is not one warden wrote.
    #[error(
        "the store holds an unreadable key {key:?} in space '{NONCE_FLOOR_SPACE}' (hint: it was not written by warden; remove it from the data directory's state table)"
    )]
    NonceFloorKey {
        /// The key as stored.
        key: String,
    },
}

impl IdentityError {
    /// A short machine-readable code: `issuers_invalid` (no trusted issuer,
    /// or they clash), `store_unavailable` (the store could not be read) or
    /// `store_malformed` (it holds a revocation or nonce warden cannot read).
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::Issuers(_) => "issuers_invalid",
            IdentityError::Store(_) | IdentityError::Nonces(_) => "store_unavailable",
            IdentityError::Revocation { .. }
            | IdentityError::NonceKey { .. }
            | IdentityError::NonceFloorKey { .. } => "store_malformed",
        }
    }
}

/// What the gate needs to check identities: the token verifier (trusted
/// issuers, revocations, cache), the replay cache for signed requests, and
/// the store that holds agent records, revocations and the nonces of
/// accepted signed requests. Build one per policy (the policy's issuers are
/// part of it) and share it between gates; give a gate that records its
/// decisions the context of the store it records to, so that the nonces it
/// stores are the ones loaded after a restart.
pub struct IdentityContext {
    tokens: TokenVerifier,
    /// Shared with the context of the policy this one replaced, so that a
    /// reload does not forget the nonces already used; loaded from the
    /// store, so that a restart does not either.
    requests: Arc<RequestVerifier>,
    store: Arc<dyn Store>,
    clock: fn() -> SystemTime,
    refresh_every: Duration,
    started: Instant,
    /// Milliseconds after `started` of the last revocation refresh.
    refreshed_ms: AtomicU64,
    /// Revocations already loaded (the store lists them in the order revoked,
    /// and a revocation is permanent).
    loaded: Mutex<usize>,
    agents: Mutex<HashMap<String, (String, Arc<Agent>)>>,
}

impl std::fmt::Debug for IdentityContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityContext")
            .field(
                "issuers",
                &self.tokens.trusted_issuers().collect::<Vec<_>>(),
            )
            .field("refresh_every", &self.refresh_every)
            .finish_non_exhaustive()
    }
}

impl IdentityContext {
    /// Trusts the policy's `identity.issuers` and `issuers` (e.g. the data
    /// directory's own issuer), reads agents from `store`, and loads the
    /// store's revocations and the nonces of signed requests accepted
    /// within the skew window (so a request accepted before a restart is
    /// still a replay). Fails if either cannot be read.
    pub fn new<I: IntoIterator<Item = Did>>(
        policy: &CompiledPolicy,
        store: Arc<dyn Store>,
        issuers: I,
    ) -> Result<IdentityContext, IdentityError> {
        let context = IdentityContext::without_nonces(policy, store, issuers)?;
        context.load_nonces()?;
        Ok(context)
    }

    /// The context of `policy` replacing `previous` after a reload: as
    /// [`IdentityContext::new`], but sharing `previous`'s nonces (see
    /// [`IdentityContext::sharing_nonces_with`]) instead of reading the
    /// stored ones again, which `previous` already holds together with the
    /// ones accepted since.
    pub fn replacing<I: IntoIterator<Item = Did>>(
        policy: &CompiledPolicy,
        store: Arc<dyn Store>,
        issuers: I,
        previous: &IdentityContext,
    ) -> Result<IdentityContext, IdentityError> {
        Ok(IdentityContext::without_nonces(policy, store, issuers)?.sharing_nonces_with(previous))
    }

    /// Everything of [`IdentityContext::new`] but the stored nonces.
    fn without_nonces<I: IntoIterator<Item = Did>>(
        policy: &CompiledPolicy,
        store: Arc<dyn Store>,
        issuers: I,
    ) -> Result<IdentityContext, IdentityError> {
        let mut trusted: Vec<Did> = policy.identity().issuers.clone();
        for did in issuers {
            if !trusted.contains(&did) {
                trusted.push(did);
            }
        }
        let tokens = TokenVerifier::new(trusted).map_err(IdentityError::Issuers)?;
        let context = IdentityContext {
            tokens,
            requests: Arc::new(RequestVerifier::default()),
            store,
            clock: SystemTime::now,
            refresh_every: DEFAULT_REVOCATION_REFRESH,
            started: Instant::now(),
            refreshed_ms: AtomicU64::new(0),
            loaded: Mutex::new(0),
            agents: Mutex::new(HashMap::new()),
        };
        context.refresh_revocations()?;
        Ok(context)
    }

    /// Raises the verifier's floor to the highest bound stored in
    /// [`NONCE_FLOOR_SPACE`], then remembers the unexpired nonces stored in
    /// [`NONCE_SPACE`]. Expired ones are left for the next recorded signed
    /// decision to delete, so that starting writes nothing.
    fn load_nonces(&self) -> Result<(), IdentityError> {
        let mut floor = 0;
        for stored in self
            .store
            .states(NONCE_FLOOR_SPACE)
            .map_err(IdentityError::Nonces)?
        {
            let Some(bound) = parse_timestamp_key(&stored.key) else {
                return Err(IdentityError::NonceFloorKey { key: stored.key });
            };
            floor = floor.max(bound);
        }
        self.requests.raise_floor(floor);
        let now = (self.clock)();
        for stored in self
            .store
            .states(NONCE_SPACE)
            .map_err(IdentityError::Nonces)?
        {
            let Some(nonce) = parse_nonce_key(&stored.key) else {
                return Err(IdentityError::NonceKey { key: stored.key });
            };
            self.requests.remember(nonce, now);
        }
        Ok(())
    }

    /// How many nonces of signed requests are remembered now (shared with
    /// the contexts this one shares nonces with).
    pub fn remembered_nonces(&self) -> usize {
        self.requests.remembered()
    }

    /// The state changes that record `nonce` (accepted at `now`) with a
    /// decision: store it, delete the stored nonces that have left the skew
    /// window, and store the bound they were deleted below.
    fn nonce_changes(&self, nonce: &AcceptedNonce, now: SystemTime) -> [StateChange; 4] {
        // Every key of an earlier timestamp sorts before this one.
        let bound = timestamp_key(self.requests.oldest_unexpired(now));
        [
            StateChange::PutState {
                space: NONCE_SPACE.into(),
                key: nonce_key(nonce),
                value: String::new(),
            },
            StateChange::DeleteStatesBefore {
                space: NONCE_SPACE.into(),
                key: bound.clone(),
            },
            StateChange::PutState {
                space: NONCE_FLOOR_SPACE.into(),
                key: bound.clone(),
                value: String::new(),
            },
            StateChange::DeleteStatesBefore {
                space: NONCE_FLOOR_SPACE.into(),
                key: bound,
            },
        ]
    }

    /// Remembers signed requests' nonces together with `previous` (the
    /// context of the policy this one replaces): a request already accepted
    /// before a reload is still refused as a replay after it, including one
    /// whose decision is not yet recorded. Without this a captured request
    /// could be replayed once per reload, within the skew.
    pub fn sharing_nonces_with(mut self, previous: &IdentityContext) -> IdentityContext {
        self.requests = previous.requests.clone();
        self
    }

    /// Reads the time from `clock` instead of the system clock (for tests).
    /// The stored nonces [`IdentityContext::new`] loaded were judged expired
    /// or not by the system clock.
    pub fn with_clock(mut self, clock: fn() -> SystemTime) -> IdentityContext {
        self.clock = clock;
        self
    }

    /// Re-reads revocations at most this often during decisions (default
    /// [`DEFAULT_REVOCATION_REFRESH`]; zero re-reads on every decision).
    pub fn with_revocation_refresh(mut self, every: Duration) -> IdentityContext {
        self.refresh_every = every;
        self
    }

    /// Loads revocations added to the store since the last load; returns
    /// how many were new.
    pub fn refresh_revocations(&self) -> Result<usize, IdentityError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let all = self.store.revocations().map_err(IdentityError::Store)?;
        let fresh = all.get(*loaded..).unwrap_or_default();
        for r in fresh {
            let id = RevocationId::parse(&r.id).map_err(|source| IdentityError::Revocation {
                id: r.id.clone(),
                source,
            })?;
            self.tokens.revoke(&id);
        }
        let count = fresh.len();
        *loaded = all.len();
        self.refreshed_ms
            .store(self.elapsed_ms(), Ordering::Relaxed);
        Ok(count)
    }

    /// Revokes a token's block id in this process at once (the store keeps
    /// revocations; this is for a caller that just wrote one).
    pub fn revoke(&self, id: &RevocationId) {
        self.tokens.revoke(id);
    }

    /// The token verifier (trusted issuers, revocations, cache).
    pub fn verifier(&self) -> &TokenVerifier {
        &self.tokens
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn refresh_if_due(&self) -> Result<(), IdentityError> {
        let due = u64::try_from(self.refresh_every.as_millis()).unwrap_or(u64::MAX);
        let last = self.refreshed_ms.load(Ordering::Relaxed);
        if self.elapsed_ms().saturating_sub(last) >= due {
            self.refresh_revocations()?;
        }
        Ok(())
    }

    /// Stores `agent` (its trust changed) with an event by `warden` saying
    /// what moved. Best effort: the decision that caused it stands either way.
    fn store_trust(
        &self,
        agent: &Agent,
        action: &str,
        update: &TrustUpdate,
        mut details: serde_json::Map<String, Value>,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        details.insert("score_from".into(), update.previous_score.into());
        details.insert("score_to".into(), update.state.score().into());
        if let Some(change) = update.ring_change {
            details.insert("ring_from".into(), change.from.get().into());
            details.insert("ring_to".into(), change.to.get().into());
        }
        let record = Record::Event(EventRecord {
            time_unix_nanos: now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            actor: "warden".into(),
            action: action.into(),
            subject: agent.did().to_string(),
            details: Value::Object(details).to_string(),
        });
        // A record that does not serialize is not written: an empty one
        // would make every later decision for the agent fail.
        let Ok(text) = serde_json::to_string(agent) else {
            return Ok(());
        };
        let change = StateChange::PutAgent {
            did: agent.did().to_string(),
            record: text,
        };
        self.store.append_with(record, change).map(|_| ())
    }

    /// A policy violation by the agent `did` (a rule denied its action,
    /// recorded at `decision_seq`): lowers its trust by the severity the
    /// action's intents show, demoting at once if the score no longer holds
    /// its ring, and stores the result with a `trust.violation` event.
    pub fn record_violation(
        &self,
        policy: &CompiledPolicy,
        did: &str,
        intents: &[warden_intent::Intent],
        decision_seq: Option<u64>,
    ) -> Result<(), StoreError> {
        let Ok(did) = Did::parse(did) else {
            return Ok(());
        };
        // Read the record under the write lock, so the change applies to
        // what is stored now (not to a copy a lifecycle move replaced).
        let _one_writer = crate::agents::record_writes();
        let Ok(stored) = self.agent(&did) else {
            return Ok(());
        };
        let severity = violation_severity(intents);
        let now = (self.clock)();
        let mut agent = (*stored).clone();
        let update = agent.record(
            TrustEvent::PolicyViolation { severity },
            now,
            &trust_config(policy),
        );
        let mut details = serde_json::Map::new();
        details.insert(
            "severity".into(),
            format!("{severity:?}").to_lowercase().into(),
        );
        if let Some(seq) = decision_seq {
            details.insert("decision_seq".into(), seq.into());
        }
        self.store_trust(&agent, "trust.violation", &update, details, now)
    }

    /// The agent `did` as stored now, parsed (or from the cache when the
    /// stored text is unchanged).
    fn agent(&self, did: &Did) -> Result<Arc<Agent>, Refusal> {
        let stored = match self.store.agent(did.as_str()) {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(Refusal::new(
                    reason::AGENT_UNKNOWN,
                    format!(
                        "no agent {did} is registered (hint: create it with 'warden agent create')"
                    ),
                ));
            }
            Err(e) => {
                return Err(Refusal::new(
                    reason::STORE_UNAVAILABLE,
                    format!(
                        "the agent record of {did} cannot be read, so the action is denied: {e}"
                    ),
                ));
            }
        };
        let mut cache = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((text, agent)) = cache.get(did.as_str())
            && *text == stored.record
        {
            return Ok(agent.clone());
        }
        let agent: Agent = serde_json::from_str(&stored.record).map_err(|e| {
            Refusal::new(
                reason::AGENT_RECORD_INVALID,
                format!("the stored record of agent {did} is invalid: {e}"),
            )
        })?;
        if agent.did() != did {
            return Err(Refusal::new(
                reason::AGENT_RECORD_INVALID,
                format!("the record stored for {did} is that of {}", agent.did()),
            ));
        }
        let agent = Arc::new(agent);
        if cache.len() >= AGENT_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(did.to_string(), (stored.record, agent.clone()));
        Ok(agent)
    }
}

/// Whether the check may remember what it saw (a signed request's nonce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `decide`: nonces are recorded, so a replay is refused.
    Decide,
    /// `explain`: nothing is recorded; a replay is not detected.
    Explain,
}

/// An identity that checked out.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub agent: String,
    pub sponsor: String,
    pub ring: u8,
    pub info: IdentityInfo,
}

/// Why an identity was refused; `who` is set once the token verified.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub reason: String,
    pub message: String,
    pub who: Option<(String, String)>,
}

impl Refusal {
    fn new(reason: &str, message: String) -> Refusal {
        Refusal {
            reason: reason.to_string(),
            message,
            who: None,
        }
    }

    fn token(e: &TokenError) -> Refusal {
        let reason = match e {
            TokenError::ToolNotGranted { .. } => reason::TOOL_NOT_GRANTED.to_string(),
            other => format!("identity:{}", other.code()),
        };
        Refusal {
            reason,
            message: e.to_string(),
            who: None,
        }
    }

    fn by(mut self, agent: &Did, sponsor: &str) -> Refusal {
        self.who = Some((agent.to_string(), sponsor.to_string()));
        self
    }
}

/// The reason an agent of `status` may not act, or `None` if it may.
pub(crate) fn inactive(status: Status) -> Option<&'static str> {
    match status {
        Status::Active => None,
        Status::Suspended => Some(reason::AGENT_SUSPENDED),
        Status::Decommissioned => Some(reason::AGENT_DECOMMISSIONED),
        Status::Provisioned => Some(reason::AGENT_NOT_ACTIVE),
    }
}

/// The identity of `action`: `Ok(None)` when it carries no token (the caller
/// decides whether one was needed), the verified identity, or a refusal.
/// `context` is `None` when the gate has no identity context. A signed
/// request's nonce, once accepted, adds to `changes` what stores it with
/// the decision's record, even if a later step refuses the action: the
/// nonce is used up either way.
pub(crate) fn check(
    context: Option<&IdentityContext>,
    policy: &CompiledPolicy,
    action: &Action,
    mode: Mode,
    changes: &mut Vec<StateChange>,
) -> Result<Option<Verified>, Refusal> {
    let Some(ctx) = context else {
        // Without a context nothing can be verified: a token is not read
        // unless the policy asks for identity, which then fails closed.
        if policy.identity().required {
            return Err(Refusal::new(
                reason::IDENTITY_UNAVAILABLE,
                "the policy requires identity, but this gate cannot verify tokens (no identity context), so every action is denied".to_string(),
            ));
        }
        return Ok(None);
    };
    let token = match action.context.get("token") {
        None => {
            if action.context.contains_key("signature") {
                return Err(Refusal::new(
                    reason::SIGNATURE_WITHOUT_TOKEN,
                    "the action is signed but carries no token in context.token; a signed request proves nothing without one".to_string(),
                ));
            }
            return Ok(None);
        }
        Some(Value::String(t)) => t,
        Some(_) => {
            return Err(Refusal::new(
                reason::TOKEN_NOT_A_STRING,
                "context.token must be a string (the token as issued)".to_string(),
            ));
        }
    };
    ctx.refresh_if_due().map_err(|e| {
        Refusal::new(
            reason::STORE_UNAVAILABLE,
            format!("revocations cannot be read, so the action is denied: {e}"),
        )
    })?;
    let now = (ctx.clock)();
    let verified = ctx
        .tokens
        .verify(token, now)
        .map_err(|e| Refusal::token(&e))?;
    let holder = verified.holder();
    let sponsor = verified.sponsor().as_str();

    if let Some(agent) = &action.agent
        && agent != holder.as_str()
    {
        return Err(Refusal::new(
            reason::AGENT_MISMATCH,
            format!("the action names agent {agent:?}, but the token belongs to {holder}"),
        )
        .by(holder, sponsor));
    }

    let signed = signature(ctx, policy, action, holder, now, mode, changes)
        .map_err(|r| r.by(holder, sponsor))?;

    let agent = ctx.agent(holder).map_err(|r| r.by(holder, sponsor))?;
    let refused = |reason: &str, status: Status| {
        Refusal::new(
            reason,
            format!("agent {holder} is {status}; only active agents may act"),
        )
        .by(holder, sponsor)
    };
    if let Some(why) = inactive(agent.status()) {
        return Err(refused(why, agent.status()));
    }

    // Trust decays without positive signals; a decay below the ring's
    // threshold demotes at once, and is recorded when deciding.
    let config = trust_config(policy);
    let decayed = agent.trust().decay(now, &config);
    if mode == Mode::Decide
        && let Some(change) = decayed.demotion()
    {
        // Re-read under the write lock: store the demotion over the record
        // as it is now, and only if it still needs one.
        let _one_writer = crate::agents::record_writes();
        if let Ok(current) = ctx.agent(holder)
            && current.status() == Status::Active
            && current.trust().decay(now, &config).demotion().is_some()
        {
            let mut demoted = (*current).clone();
            let update = demoted.trust_at(now, &config);
            let mut details = serde_json::Map::new();
            details.insert("cause".into(), "decay".into());
            details.insert("ring_earned".into(), change.to.get().into());
            // Best effort: this decision uses the lower ring either way.
            let _ = ctx.store_trust(&demoted, "trust.demoted", &update, details, now);
        }
    }
    let record_ring = ring_of(agent.ring(), &decayed.state, policy.rings());
    let mut ring = record_ring.get();
    if let Some(claim) = action.context.get("ring") {
        // Action::facts has already checked it is 0..=3.
        let claim = claim
            .as_u64()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(u8::MAX);
        if claim < ring {
            return Err(Refusal::new(
                reason::RING_CLAIM_REFUSED,
                format!(
                    "context.ring claims ring {claim}, but agent {holder} is at ring {ring}; an agent cannot raise its own ring"
                ),
            )
            .by(holder, sponsor));
        }
        ring = claim;
    }
    ring = ring.max(verified.effective_rights().ring_ceiling.get());
    let ring_value = Ring::new(ring).map_err(|e| {
        Refusal::new(reason::AGENT_RECORD_INVALID, e.to_string()).by(holder, sponsor)
    })?;
    if let Some(tool) = &action.tool {
        verified
            .authorize(tool, ring_value, now)
            .map_err(|e| Refusal::token(&e).by(holder, sponsor))?;
    }

    Ok(Some(Verified {
        agent: holder.to_string(),
        sponsor: sponsor.to_string(),
        ring,
        info: IdentityInfo {
            issuer: verified.issuer().to_string(),
            depth: verified.depth(),
            ring,
            token: verified.token_hash(),
            signed,
        },
    }))
}

/// Checks `context.signature`; returns whether the action was signed. When
/// deciding, an accepted nonce adds its state changes to `changes`.
fn signature(
    ctx: &IdentityContext,
    policy: &CompiledPolicy,
    action: &Action,
    holder: &Did,
    now: SystemTime,
    mode: Mode,
    changes: &mut Vec<StateChange>,
) -> Result<bool, Refusal> {
    let Some(value) = action.context.get("signature") else {
        if policy.identity().signed_requests == SignedRequests::Required {
            return Err(Refusal::new(
                reason::SIGNATURE_MISSING,
                "the policy requires signed requests, and the action carries no context.signature"
                    .to_string(),
            ));
        }
        return Ok(false);
    };
    let malformed = |detail: String| {
        Refusal::new(
            reason::SIGNATURE_MALFORMED,
            format!("context.signature is not a signed request: {detail}"),
        )
    };
    let parsed: Result<SignedRequest, serde_json::Error> = match value {
        Value::String(text) if text.len() > MAX_SIGNATURE_BYTES => {
            return Err(malformed(format!(
                "{} bytes; at most {MAX_SIGNATURE_BYTES}",
                text.len()
            )));
        }
        Value::String(text) => serde_json::from_str(text),
        other => <SignedRequest as serde::Deserialize>::deserialize(other),
    };
    let request = parsed.map_err(|e| malformed(e.to_string()))?;
    if request.did != *holder {
        return Err(Refusal::new(
            reason::SIGNATURE_WRONG_SIGNER,
            format!(
                "the request is signed by {}, but the token belongs to {holder}",
                request.did
            ),
        ));
    }
    let hash = action.hash_for_signing();
    let result = match mode {
        Mode::Decide => ctx.requests.verify(&request, &hash, now).inspect(|nonce| {
            changes.extend(ctx.nonce_changes(nonce, now));
        }),
        // A fresh replay cache: explaining must not use up the nonce.
        Mode::Explain => RequestVerifier::default().verify(&request, &hash, now),
    };
    result.map_err(|e| {
        let reason = match e {
            SignedRequestError::FieldLength { .. } | SignedRequestError::Encoding { .. } => {
                reason::SIGNATURE_MALFORMED
            }
            SignedRequestError::ActionMismatch { .. } => reason::SIGNATURE_ACTION_MISMATCH,
            SignedRequestError::Skew { .. } | SignedRequestError::Forgotten { .. } => {
                reason::SIGNATURE_SKEW
            }
            SignedRequestError::BadSignature { .. } => reason::SIGNATURE_INVALID,
            SignedRequestError::Replay { .. } => reason::SIGNATURE_REPLAYED,
            SignedRequestError::ReplayCacheFull { .. } => reason::SIGNATURE_REPLAY_CACHE_FULL,
        };
        Refusal::new(reason, e.to_string())
    })?;
    Ok(true)
}

/// The agent's ring: the record's, but never more privileged than what its
/// stored trust score earns under the policy's thresholds (so raising
/// `rings:` demotes at once). Ring 0 is only ever assigned by hand and is
/// kept while the score holds the ring-1 threshold, as in `warden_identity::trust`.
fn ring_of(stored: Ring, trust: &TrustState, rings: &RingThresholds) -> Ring {
    let earned = if stored == Ring::R0 && trust.score() >= rings.ring1 {
        Ring::R0
    } else {
        rings.eligible_ring(trust.score(), trust.ring1_approved())
    };
    if earned.get() > stored.get() {
        earned
    } else {
        stored
    }
}

/// Trust arithmetic under the policy's ring thresholds.
fn trust_config(policy: &CompiledPolicy) -> TrustConfig {
    TrustConfig {
        rings: policy.rings().clone(),
        ..TrustConfig::default()
    }
}

/// How bad a denied action was, from what it would have done: escalating
/// privileges is critical; destroying, exfiltrating or reading credentials
/// is high; anything else a rule denies is medium.
fn violation_severity(intents: &[warden_intent::Intent]) -> Severity {
    use warden_intent::Intent as I;
    if intents.contains(&I::PrivilegeEscalation) {
        Severity::Critical
    } else if intents
        .iter()
        .any(|i| matches!(i, I::Destructive | I::Exfiltration | I::CredentialAccess))
    {
        Severity::High
    } else {
        Severity::Medium
    }
}
