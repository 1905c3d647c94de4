//! What outlives one decision: the kill switch, the registered agents that
//! may not act, session labels, rate limits and approvals ([`Runtime`]). A
//! gate built with [`Gate::with_runtime`] consults it at the lifecycle,
//! budget, policy and flow steps.
//!
//! Durable state lives in the store's `state` table, changed in the same
//! transaction as the audit entry that records the change:
//!
//! | space | key | value |
//! |---|---|---|
//! | `kill` | `*` (everyone) or an agent | [`KillEntry`] JSON |
//! | `approval` | the approval id | [`Approval`] JSON |
//! | `labels/<sha256 of the session, 32 hex>` | a label | `""` |
//!
//! Rate-limit counters are kept in memory only: a restart starts every
//! window and every session count afresh.
//!
//! [`Gate::with_runtime`]: crate::Gate::with_runtime

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use warden_audit::{Arguments, EventRecord, Record};
use warden_identity::approval::{self, ApprovalSignatureError};
use warden_identity::{Agent, DID_KEY_PREFIX, Did, DidError, Status};
use warden_policy::{CompiledPolicy, Limit, Point, Verdict};
use warden_store::{StateChange, Store, StoreError};

use crate::{Action, Decision, reason};

/// The store space of the kill switch.
pub const KILL_SPACE: &str = "kill";
/// The store space of approvals.
pub const APPROVAL_SPACE: &str = "approval";
/// The kill-switch key that stops every agent.
pub const KILL_ALL: &str = "*";

/// How long an approval waits for a human, and how long an approved one
/// stays usable, by default: 15 minutes.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(15 * 60);

/// How long a settled approval (used, denied or expired) stays listed
/// after its expiry, by default: a day. The audit log keeps its history.
pub const DEFAULT_APPROVAL_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How often approvals past their retention are looked for (when a new
/// approval is created).
const APPROVAL_SWEEP_EVERY_MS: u64 = 60_000;

/// Most approvals one decision's commit forgets, so a sweep never makes
/// a single commit large.
const APPROVAL_SWEEP_BATCH: usize = 1024;

/// Settings of a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// How long a pending approval waits, and how long an approved one
    /// stays usable ([`DEFAULT_APPROVAL_TTL`]).
    pub approval_ttl: Duration,
    /// Most sessions whose labels are kept in memory; the least recently
    /// used are dropped beyond it (their labels stay in the store and are
    /// read again on their next action).
    pub max_sessions: usize,
    /// Most rate-limit counters. When full, the windows that have passed
    /// go, then per-session counts, the least recently counted first (a
    /// tenth of the table at a time: an agent can start a new session
    /// anyway, so dropping its count lifts nothing it could not lift
    /// itself); when only live windows are left, actions that need a new
    /// counter are denied.
    pub max_counters: usize,
    /// How long a settled approval stays listed after its expiry
    /// ([`DEFAULT_APPROVAL_RETENTION`]); then it is forgotten, in memory
    /// and in the store, by the next decision that creates an approval.
    pub approval_retention: Duration,
    /// Most approvals held (100,000). At the limit, settled approvals are
    /// forgotten early, oldest first; when every one is live (pending, or
    /// approved and unused), an action that needs a new approval is
    /// denied with `approval:queue_full`, so a flood of distinct actions
    /// cannot grow the server without bound.
    pub max_approvals: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            approval_ttl: DEFAULT_APPROVAL_TTL,
            max_sessions: 100_000,
            max_counters: 1_000_000,
            approval_retention: DEFAULT_APPROVAL_RETENTION,
            max_approvals: 100_000,
        }
    }
}

/// Why the kill switch is on, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillEntry {
    /// Who turned it on.
    pub by: String,
    /// What they said.
    pub reason: String,
    /// Milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
}

/// The kill switch as it stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KillStatus {
    /// Set when every agent is stopped.
    pub global: Option<KillEntry>,
    /// Agents stopped one by one, by DID.
    pub agents: Vec<(String, KillEntry)>,
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for a human.
    Pending,
    /// Approved: the identical action is allowed once.
    Approved,
    /// Refused by a human.
    Denied,
    /// Approved and used by the identical action.
    Used,
    /// Nobody decided in time, or an approval was not used in time.
    Expired,
}

impl ApprovalState {
    /// The state's name in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Used => "used",
            ApprovalState::Expired => "expired",
        }
    }

    /// Parses a name from [`ApprovalState::as_str`].
    pub fn parse(s: &str) -> Option<ApprovalState> {
        Some(match s {
            "pending" => ApprovalState::Pending,
            "approved" => ApprovalState::Approved,
            "denied" => ApprovalState::Denied,
            "used" => ApprovalState::Used,
            "expired" => ApprovalState::Expired,
            _ => return None,
        })
    }
}

/// A request for a human's approval of one exact action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// `apr_` + 32 hex digits.
    pub id: String,
    /// Where it stands (a pending approval past its expiry reads as expired).
    pub state: ApprovalState,
    /// What it approves: [`Action::hash_for_signing`] of the action, so a
    /// fresh signature on the identical action still matches and any other
    /// change (an argument, the session, the token) is a new action.
    pub action_hash: String,
    /// The agent that asked.
    pub agent: Option<String>,
    /// The name of the API token that asked ([`Action::caller`]), when
    /// the server authenticates its callers: only an identical action from
    /// a token of that name can use the approval, or hears that it was
    /// denied. An approval that names none is not used by one that does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// Its session.
    pub session: Option<String>,
    /// The intervention point.
    pub point: String,
    /// The tool.
    pub tool: Option<String>,
    /// The action's arguments as canonical JSON, as the audit log records
    /// them (a transform's rewrite, not the original), so the approver sees
    /// what they approve; absent when the policy records arguments only by
    /// hash (`audit: {arguments: hash}`) or they are over the log's inline
    /// limit: then `action_hash` is what identifies them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// The rule that asked for approval.
    pub rule: Option<String>,
    /// The rule's reason.
    pub reason: String,
    /// Who may approve; empty means anyone with the approver role.
    pub approvers: Vec<String>,
    /// The audit sequence number of the decision that asked.
    pub decision_seq: Option<u64>,
    /// When it was asked for (ms since the Unix epoch).
    pub created_unix_ms: u64,
    /// When it stops counting: for a pending approval, the deadline for a
    /// human; for an approved one, the deadline for the agent to use it.
    pub expires_unix_ms: u64,
    /// Who approved or denied it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_unix_ms: Option<u64>,
    /// The approver's signature, as given. Checked when the approver has a
    /// key (see [`Answer::key`]); then `signed_by` names it.
    pub signature: Option<String>,
    /// The `did:key` whose signature over the answer verified
    /// ([`warden_identity::approval`]); absent when the signature is only
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// The approver's comment.
    pub comment: Option<String>,
    /// Set once a decision used it or answered the agent that it was
    /// denied or expired: the next identical action asks afresh.
    #[serde(default)]
    pub closed: bool,
}

impl Approval {
    /// The state at `now_ms`: a pending or approved approval past its
    /// expiry is expired.
    pub fn state_at(&self, now_ms: u64) -> ApprovalState {
        match self.state {
            ApprovalState::Pending | ApprovalState::Approved if now_ms >= self.expires_unix_ms => {
                ApprovalState::Expired
            }
            s => s,
        }
    }
}

/// Why an approver's answer was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No approval has that id.
    #[error("no approval has the id '{0}'")]
    NotFound(String),
    /// It was answered, used or expired already.
    #[error("approval '{id}' is {state}, not pending")]
    NotPending {
        /// The approval.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// The approver is not among the approval's approvers.
    #[error("'{who}' may not answer approval '{id}'; its approvers are: {approvers}")]
    NotAnApprover {
        /// The approval.
        id: String,
        /// Who tried.
        who: String,
        /// Who may.
        approvers: String,
    },
    /// The approver has a key and the answer carries no signature.
    #[error(
        "'{who}' answers with a key ({did}): sign the answer (warden approvals approve --key FILE)"
    )]
    SignatureRequired {
        /// Who answered.
        who: String,
        /// Their key.
        did: String,
    },
    /// The signature is malformed or not the approver's over this answer.
    #[error("{0}")]
    BadSignature(#[from] ApprovalSignatureError),
    /// The approver is named by a `did:key` that does not parse.
    #[error("the approver '{who}' is not a valid did:key: {error}")]
    ApproverKey {
        /// Who answered.
        who: String,
        /// Why the DID does not parse.
        error: DidError,
    },
    /// The answer could not be recorded.
    #[error("the answer could not be recorded in the audit log: {0}")]
    Store(#[from] StoreError),
}

/// An approver's answer to an approval.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// Approve (or deny).
    pub approve: bool,
    /// Who answers: the API token's name, or the approver named when the
    /// server runs without authentication.
    pub by: String,
    /// The key the answer must be signed with. An approver named by a
    /// `did:key` has that key even when this is `None`.
    pub key: Option<Did>,
    /// The signature over the answer ([`warden_identity::approval`]);
    /// required, and checked, when the approver has a key; recorded as
    /// given otherwise.
    pub signature: Option<String>,
    /// A note kept with the answer.
    pub comment: Option<String>,
}

impl Answer {
    /// The key the answer must be signed with, if any.
    fn signer(&self) -> Result<Option<Did>, ApprovalError> {
        if self.key.is_some() || !self.by.starts_with(DID_KEY_PREFIX) {
            return Ok(self.key.clone());
        }
        Did::parse(&self.by)
            .map(Some)
            .map_err(|error| ApprovalError::ApproverKey {
                who: self.by.clone(),
                error,
            })
    }
}

/// A `rate_limited` refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limited {
    /// The decision's message: which limit is used up, what it allows and
    /// when a call can count again ("the per-agent limit of 600 calls per
    /// 1m is used up; retry after 12 s").
    pub message: String,
    /// Seconds until a call would be counted again; `None` for a session
    /// limit (it lasts as long as the session).
    pub retry_after: Option<u64>,
}

/// A limit as a message names it: the policy's `limits.agents` and a tool
/// limit are told apart even for a tool named `agents`.
fn limit_name(scope: &str, tool: bool) -> String {
    if tool {
        format!("the limit on tool '{scope}'")
    } else {
        "the per-agent limit".to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CounterKey {
    scope: String,
    /// A tool limit's (`scope` is its glob), apart from `limits.agents`
    /// even for a tool named `agents`.
    tool: bool,
    agent: String,
    /// Set for a per-session count.
    session: Option<String>,
}

/// The rate-limit counters, and what the last purge of a full table
/// learnt.
#[derive(Debug, Default)]
struct Counters {
    map: HashMap<CounterKey, Counter>,
    /// Set when a purge left the table full: no counter can expire before
    /// this time (ms) under the policy with this hash, so until then a
    /// purge would scan the whole table (under the lock every decision
    /// takes) for nothing.
    full_until: Option<(u64, String)>,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    /// A window's start (ms); for a per-session count, when it last
    /// counted a call.
    start_ms: u64,
    count: u64,
}

#[derive(Debug, Default)]
struct Sessions {
    /// Labels per session, with the tick of the last use.
    by_id: HashMap<String, (Arc<Vec<String>>, u64)>,
    tick: u64,
    /// The tick of the last label commit of each session that was not in
    /// memory then: a store read that began before it may miss its labels,
    /// so it is not kept ([`Runtime::cache_labels`]).
    absent_commits: HashMap<String, u64>,
    /// Bumped whenever `absent_commits` is emptied to bound it: no read
    /// that began before is kept either.
    epoch: u64,
}

/// Where a read of a session's labels from the store began
/// ([`Runtime::cached_labels`]).
#[derive(Debug, Clone, Copy)]
struct ReadStart {
    tick: u64,
    epoch: u64,
}

/// When [`Runtime::sweep_approvals`] looks again (ms since the epoch).
#[derive(Debug, Default, Clone, Copy)]
struct SweepClocks {
    /// For approvals past their retention.
    next_sweep_ms: u64,
    /// Until when a full book is known to hold only live approvals, so a
    /// flood of new ones is refused without scanning it each time.
    full_until_ms: u64,
    /// Until when no sweep is tried again: set while a sweep's forgetting
    /// waits for its decision to commit, and kept if that fails, so a
    /// store that keeps failing does not have every decision rescan the
    /// book. A commit puts the clocks of its sweep in place instead.
    retry_at_ms: u64,
}

/// How long a sweep whose forgetting did not commit waits to be tried again.
const APPROVAL_SWEEP_RETRY_MS: u64 = 1000;

/// What [`Runtime::sweep_approvals`] found: the approvals to forget, and
/// the clocks as they are once they are forgotten.
#[derive(Debug)]
struct Sweep {
    forgotten: Vec<String>,
    clocks: SweepClocks,
}

#[derive(Debug, Default)]
struct ApprovalBook {
    by_id: HashMap<String, Approval>,
    /// The current (latest) approval of each caller for each action hash:
    /// its id, one per caller (almost always only one).
    by_hash: HashMap<String, Vec<String>>,
    clocks: SweepClocks,
}

/// The state behind the lifecycle, budget and flow steps, and the approval
/// queue. Shared by every gate of a process (it survives policy reloads).
pub struct Runtime {
    store: Arc<dyn Store>,
    config: RuntimeConfig,
    clock: fn() -> SystemTime,
    kill: RwLock<KillStatusMap>,
    killed_any: AtomicBool,
    /// Registered agents that may not act, by DID.
    stopped: RwLock<HashMap<String, AgentStop>>,
    stopped_any: AtomicBool,
    sessions: Mutex<Sessions>,
    counters: Mutex<Counters>,
    approvals: Mutex<ApprovalBook>,
    rate_limited: AtomicU64,
}

/// Why a registered agent may not act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStop {
    /// Its status is not `active`.
    Status(Status),
    /// Its record in the store cannot be read, so its status is unknown.
    Unreadable,
}

#[derive(Debug, Default)]
struct KillStatusMap {
    global: Option<KillEntry>,
    agents: HashMap<String, KillEntry>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .field("killed_any", &self.killed_any.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Whether a new approval has to be created for a `require_approval`
/// decision, or an existing one answers it.
enum Resolution {
    /// Nothing on record: a new pending approval.
    Create(Approval),
    /// Still pending: the same approval, unchanged.
    Waiting(Approval),
    /// Approved: allowed once; the approval becomes used.
    Use(Approval),
    /// Denied or expired: denied, and the approval is closed so that the
    /// next identical action asks afresh.
    Close(Approval, &'static str),
}

/// What a decision changes in the runtime once its record is durable.
pub(crate) struct Staged<'a> {
    changes: Vec<StateChange>,
    approval: Option<(MutexGuard<'a, ApprovalBook>, Option<Approval>)>,
    /// The approvals this decision's commit forgets, if any.
    sweep: Option<Sweep>,
    labels: Option<(String, Vec<String>)>,
}

impl Staged<'_> {
    pub(crate) fn take_changes(&mut self) -> Vec<StateChange> {
        std::mem::take(&mut self.changes)
    }
}

/// The session labels a decision adds: the state changes that store them
/// with its record, and what [`Runtime::commit_labels`] adds in memory once
/// the record is durable. Unlike [`Staged`] it holds no lock, so it can
/// wait for an asynchronous append.
#[derive(Default)]
pub(crate) struct StagedLabels {
    pub(crate) changes: Vec<StateChange>,
    pub(crate) fresh: Option<(String, Vec<String>)>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, millis)
}

/// `d` in whole milliseconds, at most `u64::MAX`.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The store space of a session's labels (session ids can be longer than a
/// space name may be).
fn label_space(session: &str) -> String {
    let digest = Sha256::digest(session.as_bytes());
    format!("labels/{}", &hex::encode(digest)[..32])
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Runtime {
    /// Loads the kill switch, the agents that may not act and the
    /// approvals from `store`.
    pub fn open(store: Arc<dyn Store>, config: RuntimeConfig) -> Result<Runtime, StoreError> {
        let runtime = Runtime {
            store,
            config,
            clock: SystemTime::now,
            kill: RwLock::new(KillStatusMap::default()),
            killed_any: AtomicBool::new(false),
            stopped: RwLock::new(HashMap::new()),
            stopped_any: AtomicBool::new(false),
            sessions: Mutex::new(Sessions::default()),
            counters: Mutex::new(Counters::default()),
            approvals: Mutex::new(ApprovalBook::default()),
            rate_limited: AtomicU64::new(0),
        };
        runtime.reload()?;
        Ok(runtime)
    }

    /// Reads the time from `clock` instead of the system clock (for tests).
    pub fn with_clock(mut self, clock: fn() -> SystemTime) -> Runtime {
        self.clock = clock;
        self
    }

    /// The store the runtime writes to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// Re-reads the kill switch, the agents that may not act and the
    /// approvals from the store.
    pub fn reload(&self) -> Result<(), StoreError> {
        // No agent moves between reading the records and swapping the map
        // in, or the move would be undone until the next reload.
        let one_writer = crate::agents::record_writes();
        let mut stopped = HashMap::new();
        for stored in self.store.agents()? {
            let stop = match crate::agents::parse_agent(&stored.did, &stored.record) {
                Ok(agent) if agent.status() == Status::Active => continue,
                Ok(agent) => AgentStop::Status(agent.status()),
                // An unreadable record still stops the agent it names.
                Err(_) => AgentStop::Unreadable,
            };
            stopped.insert(stored.did, stop);
        }
        let any = !stopped.is_empty();
        *self.stopped.write().unwrap_or_else(|e| e.into_inner()) = stopped;
        self.stopped_any.store(any, Ordering::SeqCst);
        drop(one_writer);

        let mut kill = KillStatusMap::default();
        for s in self.store.states(KILL_SPACE)? {
            let Ok(entry) = serde_json::from_str::<KillEntry>(&s.value) else {
                // An unreadable entry still stops what it names.
                let entry = KillEntry {
                    by: "unknown".into(),
                    reason: "unreadable kill-switch entry in the store".into(),
                    since_unix_ms: 0,
                };
                insert_kill(&mut kill, s.key, entry);
                continue;
            };
            insert_kill(&mut kill, s.key, entry);
        }
        let any = kill.global.is_some() || !kill.agents.is_empty();
        *self.kill.write().unwrap_or_else(|e| e.into_inner()) = kill;
        self.killed_any.store(any, Ordering::SeqCst);

        let mut book = ApprovalBook::default();
        for s in self.store.states(APPROVAL_SPACE)? {
            if let Ok(mut a) = serde_json::from_str::<Approval>(&s.value) {
                // Only the write that created an approval lacks the decision's
                // seq (it is that write's own entry, not known before it
                // commits); every later write copies it from memory.
                if a.decision_seq.is_none() {
                    a.decision_seq = Some(s.audit_seq);
                }
                book.insert(a);
            }
        }
        *lock(&self.approvals) = book;
        Ok(())
    }

    // ---- agent status ------------------------------------------------------

    /// Why the registered agent `did` may not act, if it may not. The
    /// gate asks this of an action that names an agent without proving
    /// it; a capability token's agent is checked against the store.
    pub fn agent_stop(&self, did: &str) -> Option<AgentStop> {
        if !self.stopped_any.load(Ordering::SeqCst) {
            return None;
        }
        let stopped = self.stopped.read().unwrap_or_else(|e| e.into_inner());
        stopped.get(did).copied()
    }

    /// Takes in `agent` as just stored ([`crate::agents::Agents::noting`]
    /// calls this after each write).
    pub fn note_agent(&self, agent: &Agent) {
        let mut stopped = self.stopped.write().unwrap_or_else(|e| e.into_inner());
        if agent.status() == Status::Active {
            stopped.remove(agent.did().as_str());
        } else {
            stopped.insert(agent.did().to_string(), AgentStop::Status(agent.status()));
        }
        self.stopped_any
            .store(!stopped.is_empty(), Ordering::SeqCst);
    }

    // ---- kill switch -------------------------------------------------------

    /// The kill-switch entry that stops `agent` (or everyone), if any.
    pub fn killed(&self, agent: Option<&str>) -> Option<(String, KillEntry)> {
        if !self.killed_any.load(Ordering::SeqCst) {
            return None;
        }
        let kill = self.kill.read().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = &kill.global {
            return Some((KILL_ALL.to_string(), g.clone()));
        }
        let agent = agent?;
        kill.agents
            .get(agent)
            .map(|e| (agent.to_string(), e.clone()))
    }

    /// The kill switch as it stands.
    pub fn kill_status(&self) -> KillStatus {
        let kill = self.kill.read().unwrap_or_else(|e| e.into_inner());
        let mut agents: Vec<(String, KillEntry)> = kill
            .agents
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        agents.sort_by(|a, b| a.0.cmp(&b.0));
        KillStatus {
            global: kill.global.clone(),
            agents,
        }
    }

    /// Whether any kill switch is on.
    pub fn kill_active(&self) -> bool {
        self.killed_any.load(Ordering::SeqCst)
    }

    /// Stops every agent (`target` = [`KILL_ALL`]) or one agent, from the
    /// next decision on. Recorded as a `kill.on` event; returns its seq.
    pub fn kill(&self, target: &str, by: &str, why: &str) -> Result<u64, StoreError> {
        let entry = KillEntry {
            by: by.to_string(),
            reason: why.to_string(),
            since_unix_ms: unix_ms(self.now()),
        };
        let value = serde_json::to_string(&entry).unwrap_or_default();
        let mut kill = self.kill.write().unwrap_or_else(|e| e.into_inner());
        let appended = self.store.append_with(
            self.event(by, "kill.on", target, json!({"reason": why})),
            StateChange::PutState {
                space: KILL_SPACE.into(),
                key: target.into(),
                value,
            },
        )?;
        insert_kill(&mut kill, target.to_string(), entry);
        self.killed_any.store(true, Ordering::SeqCst);
        Ok(appended.seq)
    }

    /// Lifts the kill switch for everyone (`target` = [`KILL_ALL`]) or one
    /// agent. Recorded as a `kill.off` event; `None` when it was not on.
    pub fn lift(&self, target: &str, by: &str) -> Result<Option<u64>, StoreError> {
        let mut kill = self.kill.write().unwrap_or_else(|e| e.into_inner());
        let on = if target == KILL_ALL {
            kill.global.is_some()
        } else {
            kill.agents.contains_key(target)
        };
        if !on {
            return Ok(None);
        }
        let appended = self.store.append_with(
            self.event(by, "kill.off", target, json!({})),
            StateChange::DeleteState {
                space: KILL_SPACE.into(),
                key: target.into(),
            },
        )?;
        if target == KILL_ALL {
            kill.global = None;
        } else {
            kill.agents.remove(target);
        }
        let any = kill.global.is_some() || !kill.agents.is_empty();
        self.killed_any.store(any, Ordering::SeqCst);
        Ok(Some(appended.seq))
    }

    fn event(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        details: serde_json::Value,
    ) -> Record {
        Record::Event(EventRecord {
            time_unix_nanos: unix_nanos(self.now()),
            actor: actor.to_string(),
            action: action.to_string(),
            subject: subject.to_string(),
            details: details.to_string(),
        })
    }

    // ---- budgets -----------------------------------------------------------

    /// How many actions were refused as `rate_limited` so far.
    pub fn rate_limited_total(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Counts the action against the policy's limits, or refuses it. Only
    /// actions that start something count: `pre_tool_call` (agent and tool
    /// limits), `pre_model_call`, `message` and `delegation` (agent limits).
    /// An action over any limit is not counted against the others.
    pub(crate) fn take_budget(
        &self,
        policy: &CompiledPolicy,
        action: &Action,
        agent: Option<&str>,
    ) -> Result<(), Limited> {
        let limits = policy.limits();
        if limits.is_empty() {
            return Ok(());
        }
        let counts = matches!(
            action.point,
            Point::PreToolCall | Point::PreModelCall | Point::Message | Point::Delegation
        );
        if !counts {
            return Ok(());
        }
        // (scope, whether a tool limit's, limit)
        let mut applicable: Vec<(&str, bool, &Limit)> = Vec::new();
        if let Some(l) = &limits.agents {
            applicable.push(("agents", false, l));
        }
        if action.point == Point::PreToolCall
            && let Some(tool) = action.tool.as_deref()
        {
            for t in limits.for_tool(tool) {
                applicable.push((t.tool.as_str(), true, &t.limit));
            }
        }
        if applicable.is_empty() {
            return Ok(());
        }
        let now = unix_ms(self.now());
        let agent = agent.unwrap_or_default().to_string();
        let mut table = lock(&self.counters);
        let Counters {
            map: counters,
            full_until,
        } = &mut *table;
        // Each counter this action takes from: its key, window start, count
        // so far, and whether the map holds it already.
        let mut keys: Vec<(CounterKey, u64, u64, bool)> = Vec::new();
        for &(scope, tool, limit) in &applicable {
            if let Some(rate) = &limit.rate {
                let per_ms = millis(rate.per);
                let key = CounterKey {
                    scope: scope.to_string(),
                    tool,
                    agent: agent.clone(),
                    session: None,
                };
                let c = counters.get(&key).copied();
                let held = c.is_some();
                let current = match c {
                    Some(c) if now.saturating_sub(c.start_ms) < per_ms => c,
                    _ => Counter {
                        start_ms: now,
                        count: 0,
                    },
                };
                if current.count >= rate.calls {
                    let wait_ms = (current.start_ms + per_ms).saturating_sub(now);
                    self.rate_limited.fetch_add(1, Ordering::Relaxed);
                    let retry_after = wait_ms.div_ceil(1000).max(1);
                    return Err(Limited {
                        message: format!(
                            "{} of {} calls per {} is used up; retry after {retry_after} s",
                            limit_name(scope, tool),
                            rate.calls,
                            human(rate.per)
                        ),
                        retry_after: Some(retry_after),
                    });
                }
                keys.push((key, current.start_ms, current.count, held));
            }
            if let (Some(max), Some(session)) = (limit.per_session, action.session.as_deref()) {
                let key = CounterKey {
                    scope: scope.to_string(),
                    tool,
                    agent: agent.clone(),
                    session: Some(session.to_string()),
                };
                let held = counters.get(&key).map(|c| c.count);
                let count = held.unwrap_or(0);
                if count >= max {
                    self.rate_limited.fetch_add(1, Ordering::Relaxed);
                    return Err(Limited {
                        message: format!(
                            "{} of {max} calls per session is used up for the rest of the session",
                            limit_name(scope, tool)
                        ),
                        retry_after: None,
                    });
                }
                keys.push((key, now, count, held.is_some()));
            }
        }
        let mut new_keys = keys.iter().filter(|k| !k.3).count();
        // Full, unless the last purge proved nothing can go yet (same
        // policy, before the first live window it saw ends): purge.
        if counters.len() + new_keys > self.config.max_counters
            && !full_until
                .as_ref()
                .is_some_and(|(until, hash)| now < *until && hash == policy.hash())
        {
            // A rate counter goes once its window has passed, whatever tool
            // it counts (not only this action's: the others' live windows
            // are limits still in force), and any counter goes when the
            // policy no longer has its limit.
            let limit_of = |key: &CounterKey| {
                if key.tool {
                    limits
                        .tools
                        .iter()
                        .find(|t| t.tool == key.scope)
                        .map(|t| &t.limit)
                } else {
                    limits.agents.as_ref()
                }
            };
            let mut first_expiry = u64::MAX;
            counters.retain(|k, c| {
                let Some(limit) = limit_of(k) else {
                    return false;
                };
                if k.session.is_some() {
                    return limit.per_session.is_some();
                }
                let Some(per) = limit.rate.as_ref().map(|r| millis(r.per)) else {
                    return false;
                };
                let live = now.saturating_sub(c.start_ms) < per;
                if live {
                    first_expiry = first_expiry.min(c.start_ms.saturating_add(per));
                }
                live
            });
            // Then the per-session counts counted least recently: enough
            // for this action and a tenth of the table more, so that the
            // next purge is far off (those counted in the same millisecond
            // as the last to go go with it).
            let over = (counters.len() + new_keys).saturating_sub(self.config.max_counters);
            if over > 0 {
                let mut last_counted: Vec<u64> = counters
                    .iter()
                    .filter(|(k, _)| k.session.is_some())
                    .map(|(_, c)| c.start_ms)
                    .collect();
                let drop = over
                    .max(self.config.max_counters / 10)
                    .min(last_counted.len());
                if drop > 0 {
                    let cutoff = *last_counted.select_nth_unstable(drop - 1).1;
                    counters.retain(|k, c| k.session.is_none() || c.start_ms > cutoff);
                }
            }
            // Dropping may have dropped this action's own counters; they
            // are put back below with their counts.
            new_keys = keys.iter().filter(|k| !counters.contains_key(&k.0)).count();
            // Still full, of live windows only: nothing can go before the
            // first of them ends.
            *full_until = (counters.len() + new_keys > self.config.max_counters)
                .then(|| (first_expiry, policy.hash().to_string()));
        }
        if counters.len() + new_keys > self.config.max_counters {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
            // Room comes when the first live window ends.
            let retry_after = match full_until {
                Some((until, _)) if *until < u64::MAX => {
                    Some(until.saturating_sub(now).div_ceil(1000).max(1))
                }
                _ => None,
            };
            let wait = match retry_after {
                Some(s) => format!("retry after {s} s"),
                // Only with room for fewer counters than one action needs.
                None => "no counter can be freed".into(),
            };
            return Err(Limited {
                message: format!(
                    "the gate's {} rate-limit counters are all in use; {wait}",
                    self.config.max_counters
                ),
                retry_after,
            });
        }
        if new_keys > 0 {
            // A new counter may end before the first window the purge saw.
            *full_until = None;
        }
        for (key, start_ms, count, _) in keys {
            counters.insert(
                key,
                Counter {
                    start_ms,
                    count: count + 1,
                },
            );
        }
        Ok(())
    }

    // ---- sessions ----------------------------------------------------------

    /// The labels that entered `session` so far (sorted).
    pub fn session_labels(&self, session: &str) -> Result<Arc<Vec<String>>, StoreError> {
        let start = match self.cached_labels(session) {
            Ok(labels) => return Ok(labels),
            Err(start) => start,
        };
        let stored: Vec<String> = self
            .store
            .states(&label_space(session))?
            .into_iter()
            .map(|s| s.key)
            .collect();
        Ok(self.cache_labels(session, stored, start))
    }

    /// The session's labels if they are in memory; otherwise where a read
    /// from the store begins.
    fn cached_labels(&self, session: &str) -> Result<Arc<Vec<String>>, ReadStart> {
        let mut sessions = lock(&self.sessions);
        sessions.tick += 1;
        let tick = sessions.tick;
        if let Some((labels, last)) = sessions.by_id.get_mut(session) {
            *last = tick;
            return Ok(labels.clone());
        }
        Err(ReadStart {
            tick,
            epoch: sessions.epoch,
        })
    }

    /// Keeps `stored`, the session's labels read from the store since
    /// `start`, in memory, and returns the labels to decide with. A read
    /// during which labels of the session were committed (the session was
    /// not in memory, so the commit had nothing to add them to) may miss
    /// them: it is used for the decision in flight, which ran alongside
    /// that commit, but not kept, so that no later decision misses them.
    /// Labels another reader kept meanwhile win.
    fn cache_labels(
        &self,
        session: &str,
        stored: Vec<String>,
        start: ReadStart,
    ) -> Arc<Vec<String>> {
        let mut sessions = lock(&self.sessions);
        if let Some((labels, _)) = sessions.by_id.get(session) {
            return labels.clone();
        }
        let stored = Arc::new(stored);
        let committed_meanwhile = sessions.epoch != start.epoch
            || sessions
                .absent_commits
                .get(session)
                .is_some_and(|&tick| tick > start.tick);
        if committed_meanwhile {
            return stored;
        }
        sessions.absent_commits.remove(session);
        let tick = sessions.tick;
        sessions
            .by_id
            .insert(session.to_string(), (stored.clone(), tick));
        self.trim_sessions(&mut sessions);
        stored
    }

    fn trim_sessions(&self, sessions: &mut Sessions) {
        let max = self.config.max_sessions.max(1);
        if sessions.by_id.len() <= max {
            return;
        }
        // Drop the least recently used half beyond the limit in one pass.
        let mut ticks: Vec<u64> = sessions.by_id.values().map(|v| v.1).collect();
        let drop = sessions.by_id.len() - max / 2;
        ticks.select_nth_unstable(drop.saturating_sub(1));
        let cutoff = ticks[drop.saturating_sub(1)];
        sessions.by_id.retain(|_, v| v.1 > cutoff);
    }

    // ---- decisions ---------------------------------------------------------

    /// What `decision` about `action` changes here: the labels it adds to
    /// its session, and the approval it creates, uses or closes (which may
    /// change the decision). Holds the approval book until [`Runtime::commit`]
    /// or the drop of the result, so an approval is used at most once.
    pub(crate) fn stage<'a>(
        &'a self,
        policy: Option<&CompiledPolicy>,
        action: &Action,
        decision: &mut Decision,
        add_labels: Vec<String>,
    ) -> Staged<'a> {
        let mut staged = Staged {
            changes: Vec::new(),
            approval: None,
            sweep: None,
            labels: None,
        };
        if decision.verdict == Verdict::RequireApproval {
            self.stage_approval(&mut staged, policy, action, decision);
        }
        let labels = self.stage_labels(policy, action, decision, add_labels);
        staged.changes.extend(labels.changes);
        staged.labels = labels.fresh;
        staged
    }

    /// Stages the approval `decision` creates, uses or closes, holding the
    /// book; a new one also forgets old ones ([`Runtime::sweep_approvals`]).
    /// When a new one does not fit, the decision becomes a denial
    /// (`approval:queue_full`) instead.
    fn stage_approval<'a>(
        &'a self,
        staged: &mut Staged<'a>,
        policy: Option<&CompiledPolicy>,
        action: &Action,
        decision: &mut Decision,
    ) {
        let action_hash = action.hash_for_signing();
        let mut book = lock(&self.approvals);
        let approval = self.resolve(
            book.current(action.caller.as_deref(), &action_hash),
            action_hash,
            policy,
            action,
            decision,
        );
        if matches!(approval, Resolution::Create(_)) {
            let sweep = self.sweep_approvals(&book);
            let forgets = sweep.forgotten.len();
            // What the sweep found holds only once its forgetting commits;
            // finding nothing to forget holds at once.
            if forgets == 0 {
                book.clocks = sweep.clocks;
            } else {
                // Until the commit says otherwise, this sweep is in flight.
                book.clocks.retry_at_ms =
                    unix_ms(self.now()).saturating_add(APPROVAL_SWEEP_RETRY_MS);
                staged
                    .changes
                    .extend(sweep.forgotten.iter().map(|id| StateChange::DeleteState {
                        space: APPROVAL_SPACE.into(),
                        key: id.clone(),
                    }));
                staged.sweep = Some(sweep);
            }
            let kept = book.by_id.len() - forgets;
            if kept >= self.config.max_approvals {
                decision.verdict = Verdict::Deny;
                decision.reason = reason::APPROVAL_QUEUE_FULL.to_string();
                decision.message = format!(
                    "{}; but no approval can be created: the queue holds {kept} approvals, and its limit is {}; approvers must answer some, or they expire within {}",
                    decision.message,
                    self.config.max_approvals,
                    human(self.config.approval_ttl)
                );
                decision.approvers.clear();
                // Hold the book to the commit only if it forgets some.
                if forgets > 0 {
                    staged.approval = Some((book, None));
                }
                return;
            }
        }
        let (approval, change) = self.apply_resolution(approval, decision);
        staged.changes.push(change);
        staged.approval = Some((book, Some(approval)));
    }

    /// The labels `decision` adds to its session. They enter when something
    /// came back: a tool result the gate let through, or a rule that adds
    /// labels. Sets [`Decision::labels_added`].
    pub(crate) fn stage_labels(
        &self,
        policy: Option<&CompiledPolicy>,
        action: &Action,
        decision: &mut Decision,
        add_labels: Vec<String>,
    ) -> StagedLabels {
        let mut staged = StagedLabels::default();
        let (Some(session), Some(policy)) = (action.session.as_deref(), policy) else {
            return staged;
        };
        let passed = matches!(
            decision.verdict,
            Verdict::Allow | Verdict::Warn | Verdict::Transform
        );
        if !passed {
            return staged;
        }
        let mut labels: BTreeSet<String> = BTreeSet::new();
        if action.point == Point::PostToolCall
            && let Some(spec) = action.tool.as_deref().and_then(|t| policy.tools().get(t))
        {
            labels.extend(spec.labels.iter().cloned());
        }
        labels.extend(add_labels);
        if labels.is_empty() {
            return staged;
        }
        let known = self.session_labels(session).unwrap_or_default();
        let fresh: Vec<String> = labels.into_iter().filter(|l| !known.contains(l)).collect();
        if fresh.is_empty() {
            return staged;
        }
        let space = label_space(session);
        for l in &fresh {
            staged.changes.push(StateChange::PutState {
                space: space.clone(),
                key: l.clone(),
                value: String::new(),
            });
        }
        decision.labels_added = fresh.clone();
        staged.fresh = Some((session.to_string(), fresh));
        staged
    }

    /// What the approval of the action (its `action_hash`) does for this
    /// decision, given the `current` one.
    fn resolve(
        &self,
        current: Option<&Approval>,
        action_hash: String,
        policy: Option<&CompiledPolicy>,
        action: &Action,
        decision: &Decision,
    ) -> Resolution {
        let now = unix_ms(self.now());
        match current.map(|a| (a, a.state_at(now))) {
            Some((a, ApprovalState::Pending)) => Resolution::Waiting(a.clone()),
            Some((a, ApprovalState::Approved)) => Resolution::Use(a.clone()),
            Some((a, ApprovalState::Denied)) if !a.closed => Resolution::Close(a.clone(), "denied"),
            Some((a, ApprovalState::Expired)) if !a.closed => {
                Resolution::Close(a.clone(), "expired")
            }
            _ => {
                let mut id = [0u8; 16];
                let hash = Sha256::digest(
                    format!(
                        "{}|{}|{}",
                        action_hash,
                        unix_nanos(self.now()),
                        APPROVAL_COUNTER.fetch_add(1, Ordering::Relaxed)
                    )
                    .as_bytes(),
                );
                id.copy_from_slice(&hash[..16]);
                Resolution::Create(Approval {
                    id: format!("apr_{}", hex::encode(id)),
                    state: ApprovalState::Pending,
                    action_hash,
                    agent: decision.agent.clone().or_else(|| action.agent.clone()),
                    caller: action.caller.clone(),
                    session: action.session.clone(),
                    point: action.point.as_str().to_string(),
                    tool: action.tool.clone(),
                    arguments: match crate::audit::recorded_arguments(policy, action, decision) {
                        Arguments::Json(json) => Some(json),
                        _ => None,
                    },
                    rule: decision.rule.as_deref().map(String::from),
                    reason: decision.reason.clone(),
                    approvers: decision.approvers.clone(),
                    decision_seq: None,
                    created_unix_ms: now,
                    expires_unix_ms: now.saturating_add(millis(self.config.approval_ttl)),
                    decided_by: None,
                    decided_unix_ms: None,
                    signature: None,
                    signed_by: None,
                    comment: None,
                    closed: false,
                })
            }
        }
    }

    /// Applies the resolution to the decision; returns the approval as it
    /// will be stored.
    fn apply_resolution(&self, r: Resolution, decision: &mut Decision) -> (Approval, StateChange) {
        let approval = match r {
            Resolution::Create(a) => {
                decision.message = format!(
                    "{}; approval {} is pending until {} (ms since epoch)",
                    decision.message, a.id, a.expires_unix_ms
                );
                a
            }
            Resolution::Waiting(a) => {
                decision.message =
                    format!("{}; approval {} is still pending", decision.message, a.id);
                a
            }
            Resolution::Use(mut a) => {
                decision.verdict = Verdict::Allow;
                decision.reason = reason::APPROVED.to_string();
                decision.message = format!(
                    "allowed once: approval {} by {}",
                    a.id,
                    a.decided_by.as_deref().unwrap_or("an approver")
                );
                decision.approvers.clear();
                a.state = ApprovalState::Used;
                a.closed = true;
                a
            }
            Resolution::Close(mut a, how) => {
                a.closed = true;
                decision.verdict = Verdict::Deny;
                decision.approvers.clear();
                if how == "denied" {
                    decision.reason = reason::APPROVAL_DENIED.to_string();
                    decision.message = format!(
                        "denied: approval {} was refused by {}",
                        a.id,
                        a.decided_by.as_deref().unwrap_or("an approver")
                    );
                } else {
                    decision.reason = reason::APPROVAL_EXPIRED.to_string();
                    decision.message = format!(
                        "denied: approval {} expired before it was {}",
                        a.id,
                        if a.state == ApprovalState::Approved {
                            "used"
                        } else {
                            "answered"
                        }
                    );
                    a.state = ApprovalState::Expired;
                }
                a
            }
        };
        decision.approval = Some(crate::decision::ApprovalRef {
            id: approval.id.clone(),
            state: approval.state,
            expires_unix_ms: approval.expires_unix_ms,
        });
        let change = StateChange::PutState {
            space: APPROVAL_SPACE.into(),
            key: approval.id.clone(),
            value: serde_json::to_string(&approval).unwrap_or_default(),
        };
        (approval, change)
    }

    /// The approvals a new one may push out, as `book` holds them under
    /// the decision's lock: those past their retention (looked for once a
    /// minute), and at the limit, settled ones, oldest first. At most
    /// [`APPROVAL_SWEEP_BATCH`]; forgotten only if the decision commits.
    fn sweep_approvals(&self, book: &ApprovalBook) -> Sweep {
        let now = unix_ms(self.now());
        let full = book.by_id.len() >= self.config.max_approvals;
        let mut clocks = book.clocks;
        if now < clocks.retry_at_ms
            || !(now >= clocks.next_sweep_ms || (full && now >= clocks.full_until_ms))
        {
            return Sweep {
                forgotten: Vec::new(),
                clocks,
            };
        }
        let retention = millis(self.config.approval_retention);
        let mut settled: Vec<(bool, bool, u64, &String)> = book
            .by_id
            .values()
            .filter(|a| {
                !matches!(
                    a.state_at(now),
                    ApprovalState::Pending | ApprovalState::Approved
                )
            })
            .map(|a| {
                let past = now >= a.expires_unix_ms.saturating_add(retention);
                (!past, !a.closed, a.created_unix_ms, &a.id)
            })
            .filter(|(kept, _, _, _)| full || !kept)
            .collect();
        // Past their retention first, then those the agent was already
        // told about (closed: used, or its denial or expiry answered),
        // then the oldest.
        settled.sort_unstable();
        let room = book
            .by_id
            .len()
            .saturating_sub(self.config.max_approvals.saturating_sub(1));
        let past = settled.iter().take_while(|(kept, _, _, _)| !kept).count();
        let take = past.max(room).min(APPROVAL_SWEEP_BATCH);
        let forgotten: Vec<String> = settled
            .into_iter()
            .take(take)
            .map(|(_, _, _, id)| id.clone())
            .collect();
        if now >= clocks.next_sweep_ms {
            clocks.next_sweep_ms = now.saturating_add(APPROVAL_SWEEP_EVERY_MS);
        }
        if full && forgotten.len() < room {
            clocks.full_until_ms = now.saturating_add(1000);
        }
        Sweep { forgotten, clocks }
    }

    /// The decision's record is durable at `seq`: apply what it changed.
    pub(crate) fn commit(&self, staged: Staged<'_>, seq: u64) {
        if let Some((mut book, approval)) = staged.approval {
            if let Some(sweep) = staged.sweep {
                for id in &sweep.forgotten {
                    book.remove(id);
                }
                book.clocks = sweep.clocks;
            }
            if let Some(mut approval) = approval {
                if approval.decision_seq.is_none() {
                    approval.decision_seq = Some(seq);
                }
                book.insert(approval);
            }
        }
        self.commit_labels(staged.labels);
    }

    /// Adds staged labels to the session in memory (their record is durable).
    pub(crate) fn commit_labels(&self, labels: Option<(String, Vec<String>)>) {
        if let Some((session, fresh)) = labels {
            let mut sessions = lock(&self.sessions);
            sessions.tick += 1;
            let tick = sessions.tick;
            if let Some((labels, last)) = sessions.by_id.get_mut(&session) {
                let mut merged: Vec<String> = labels.iter().cloned().collect();
                for l in fresh {
                    if !merged.contains(&l) {
                        merged.push(l);
                    }
                }
                merged.sort();
                *labels = Arc::new(merged);
                *last = tick;
            } else {
                // Read from the store next time; a read already under way
                // may have missed these labels and must not be kept.
                sessions.absent_commits.insert(session, tick);
                if sessions.absent_commits.len() > self.config.max_sessions.max(1) {
                    sessions.absent_commits.clear();
                    sessions.epoch += 1;
                }
            }
        }
    }

    // ---- approvals API -----------------------------------------------------

    /// Approvals in `state` (all when `None`), oldest first.
    pub fn approvals(&self, state: Option<ApprovalState>) -> Vec<Approval> {
        let now = unix_ms(self.now());
        let book = lock(&self.approvals);
        let mut list: Vec<Approval> = book
            .by_id
            .values()
            .filter(|a| state.is_none_or(|s| a.state_at(now) == s))
            .map(|a| {
                let mut a = a.clone();
                a.state = a.state_at(now);
                a
            })
            .collect();
        list.sort_by(|a, b| {
            a.created_unix_ms
                .cmp(&b.created_unix_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        list
    }

    /// The approval `id`, with its state as of now.
    pub fn approval(&self, id: &str) -> Option<Approval> {
        let now = unix_ms(self.now());
        lock(&self.approvals).by_id.get(id).map(|a| {
            let mut a = a.clone();
            a.state = a.state_at(now);
            a
        })
    }

    /// How many approvals are pending now.
    pub fn pending_approvals(&self) -> usize {
        let now = unix_ms(self.now());
        lock(&self.approvals)
            .by_id
            .values()
            .filter(|a| a.state_at(now) == ApprovalState::Pending)
            .count()
    }

    /// An approver answers approval `id`. Recorded as an
    /// `approval.approved` / `approval.denied` event with the approver,
    /// their signature and, when it was checked, the key that made it. An
    /// approved approval is usable once, within the approval time-to-live
    /// from now.
    pub fn answer(&self, id: &str, answer: Answer) -> Result<Approval, ApprovalError> {
        let Answer {
            approve,
            ref by,
            ref signature,
            ref comment,
            ..
        } = answer;
        let signer = answer.signer()?;
        let now = unix_ms(self.now());
        let mut book = lock(&self.approvals);
        let Some(current) = book.by_id.get(id) else {
            return Err(ApprovalError::NotFound(id.to_string()));
        };
        let state = current.state_at(now);
        if state != ApprovalState::Pending {
            return Err(ApprovalError::NotPending {
                id: id.to_string(),
                state: state.as_str(),
            });
        }
        if !current.approvers.is_empty() && !current.approvers.iter().any(|a| a == by) {
            return Err(ApprovalError::NotAnApprover {
                id: id.to_string(),
                who: by.to_string(),
                approvers: current.approvers.join(", "),
            });
        }
        let signed_by = match (&signer, signature) {
            (None, _) => None,
            (Some(did), None) => {
                return Err(ApprovalError::SignatureRequired {
                    who: by.clone(),
                    did: did.to_string(),
                });
            }
            (Some(did), Some(text)) => {
                approval::verify_answer(did, id, approve, &current.action_hash, text)?;
                Some(did.to_string())
            }
        };
        let mut next = current.clone();
        next.state = if approve {
            ApprovalState::Approved
        } else {
            ApprovalState::Denied
        };
        next.decided_by = Some(by.to_string());
        next.decided_unix_ms = Some(now);
        next.signature = signature.clone();
        next.signed_by = signed_by.clone();
        next.comment = comment.clone();
        if approve {
            next.expires_unix_ms = now.saturating_add(millis(self.config.approval_ttl));
        }
        let action = if approve {
            "approval.approved"
        } else {
            "approval.denied"
        };
        self.store.append_with(
            self.event(
                by,
                action,
                id,
                json!({
                    "action_hash": next.action_hash,
                    "decision_seq": next.decision_seq,
                    "signature": signature,
                    "signed_by": signed_by,
                    "comment": comment,
                }),
            ),
            StateChange::PutState {
                space: APPROVAL_SPACE.into(),
                key: id.to_string(),
                value: serde_json::to_string(&next).unwrap_or_default(),
            },
        )?;
        book.insert(next.clone());
        // A denial settles an approval, which a full queue may now forget.
        book.clocks.full_until_ms = 0;
        Ok(next)
    }
}

static APPROVAL_COUNTER: AtomicU64 = AtomicU64::new(0);

fn insert_kill(kill: &mut KillStatusMap, key: String, entry: KillEntry) {
    if key == KILL_ALL {
        kill.global = Some(entry);
    } else {
        kill.agents.insert(key, entry);
    }
}

impl ApprovalBook {
    fn insert(&mut self, a: Approval) {
        let ids = self.by_hash.entry(a.action_hash.clone()).or_default();
        let same_caller = ids
            .iter()
            .position(|id| self.by_id.get(id).is_some_and(|c| c.caller == a.caller));
        match same_caller {
            None => ids.push(a.id.clone()),
            Some(i) => {
                let cur = &self.by_id[&ids[i]];
                if cur.id == a.id || cur.created_unix_ms <= a.created_unix_ms {
                    ids[i] = a.id.clone();
                }
            }
        }
        self.by_id.insert(a.id.clone(), a);
    }

    fn remove(&mut self, id: &str) {
        if let Some(a) = self.by_id.remove(id)
            && let Some(ids) = self.by_hash.get_mut(&a.action_hash)
        {
            ids.retain(|current| current != id);
            if ids.is_empty() {
                self.by_hash.remove(&a.action_hash);
            }
        }
    }

    /// The latest approval `caller` asked for the action `action_hash`.
    fn current(&self, caller: Option<&str>, action_hash: &str) -> Option<&Approval> {
        self.by_hash
            .get(action_hash)?
            .iter()
            .filter_map(|id| self.by_id.get(id))
            .find(|a| a.caller.as_deref() == caller)
    }
}

/// `1h`, `90s`: a duration as a policy would write it.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_audit::{EventRecord, Record};
    use warden_store::{SqliteStore, StoreConfig};

    /// Commits `label` to `session` as a decision does: durable in the
    /// store first, then in memory.
    fn commit_label(runtime: &Runtime, store: &SqliteStore, session: &str, label: &str) {
        store
            .append_with(
                Record::Event(EventRecord {
                    time_unix_nanos: 1,
                    actor: "test".into(),
                    action: "labels".into(),
                    subject: session.into(),
                    details: "{}".into(),
                }),
                StateChange::PutState {
                    space: label_space(session),
                    key: label.into(),
                    value: String::new(),
                },
            )
            .unwrap();
        runtime.commit_labels(Some((session.into(), vec![label.into()])));
    }

    /// A decision whose record was not written (its append failed, and its
    /// staged changes were dropped) forgets nothing and leaves the sweep's
    /// clocks as they were; the sweep is tried again a second later, not
    /// by every decision in between (a failing store would have each of
    /// them rescan the book).
    #[test]
    fn an_unrecorded_sweep_is_done_again_a_second_later() {
        static NOW_MS: AtomicU64 = AtomicU64::new(1_700_000_000_000);
        fn clock() -> SystemTime {
            UNIX_EPOCH + Duration::from_millis(NOW_MS.load(Ordering::SeqCst))
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), StoreConfig::default()).unwrap());
        let config = RuntimeConfig {
            approval_ttl: Duration::from_secs(1),
            approval_retention: Duration::ZERO,
            ..RuntimeConfig::default()
        };
        let runtime = Arc::new(Runtime::open(store, config).unwrap().with_clock(clock));
        let policy = warden_policy::compile(
            warden_policy::parse(
                "p.yaml",
                "version: warden/v1\nname: t\ndefault: deny\nrules:\n  - id: mail\n    match: {tool: email.send}\n    verdict: require_approval\n",
            )
            .unwrap(),
        )
        .unwrap();
        let gate = crate::Gate::new(policy).with_runtime(runtime.clone());
        let mail = |to: &str| -> Action {
            serde_json::from_value(serde_json::json!(
                {"point": "pre_tool_call", "tool": "email.send", "args": {"to": to}}
            ))
            .unwrap()
        };
        let old = gate.decide(&mail("a")).approval.unwrap().id;
        let refusal = Answer {
            approve: false,
            by: "human".into(),
            ..Answer::default()
        };
        runtime.answer(&old, refusal).unwrap();
        // Past its expiry and retention once the sweep's minute is up.
        NOW_MS.fetch_add(APPROVAL_SWEEP_EVERY_MS + 1, Ordering::SeqCst);
        let before = lock(&runtime.approvals).clocks;

        let unrecorded = mail("b");
        let mut decision = Decision::base(Verdict::RequireApproval, unrecorded.hash());
        let staged = runtime.stage(gate.policy(), &unrecorded, &mut decision, Vec::new());
        assert_eq!(
            staged.sweep.as_ref().map(|s| s.forgotten.as_slice()),
            Some(std::slice::from_ref(&old)),
            "the sweep finds it"
        );
        drop(staged);
        let book = lock(&runtime.approvals);
        assert!(book.by_id.contains_key(&old));
        assert_eq!(book.clocks.next_sweep_ms, before.next_sweep_ms);
        drop(book);

        let soon = gate.decide(&mail("c"));
        assert_eq!(soon.verdict, Verdict::RequireApproval, "{soon:?}");
        assert!(runtime.approval(&old).is_some(), "not swept again yet");

        NOW_MS.fetch_add(APPROVAL_SWEEP_RETRY_MS, Ordering::SeqCst);
        let recorded = gate.decide(&mail("d"));
        assert_eq!(recorded.verdict, Verdict::RequireApproval, "{recorded:?}");
        assert!(runtime.approval(&old).is_none(), "forgotten now");
        let clocks = lock(&runtime.approvals).clocks;
        assert!(clocks.next_sweep_ms > before.next_sweep_ms);
        assert!(
            clocks.retry_at_ms <= NOW_MS.load(Ordering::SeqCst),
            "{clocks:?}"
        );
    }

    /// A decision reads a session's labels from the store (the session is
    /// not in memory) while another decision's label commits: the read is
    /// from before the commit, and keeping it would hide the label from
    /// every later decision of the session (a fail-open: `pii` missing,
    /// `exfiltration` allowed).
    #[test]
    fn a_read_that_raced_a_label_commit_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), StoreConfig::default()).unwrap());
        let runtime = Runtime::open(store.clone(), RuntimeConfig::default()).unwrap();

        let start = runtime.cached_labels("s").unwrap_err();
        let before: Vec<String> = store
            .states(&label_space("s"))
            .unwrap()
            .into_iter()
            .map(|s| s.key)
            .collect();
        assert!(before.is_empty());
        commit_label(&runtime, &store, "s", "pii");
        // The racing decision decides with what it read...
        assert!(runtime.cache_labels("s", before, start).is_empty());
        // ... and the next one sees the label.
        assert_eq!(
            *runtime.session_labels("s").unwrap(),
            vec!["pii".to_string()]
        );

        // A read that began after the commit is kept, and later commits add to it.
        commit_label(&runtime, &store, "t", "untrusted");
        assert_eq!(
            *runtime.session_labels("t").unwrap(),
            vec!["untrusted".to_string()]
        );
        commit_label(&runtime, &store, "t", "pii");
        assert_eq!(
            *runtime.session_labels("t").unwrap(),
            vec!["pii".to_string(), "untrusted".to_string()]
        );
        assert!(lock(&runtime.sessions).by_id.contains_key("t"));
    }
}
