//! Where the policy comes from, and hot reload.
//!
//! The directories of the policy file and of its includes are watched
//! (notify, each directory on its own, updated after every load); a change
//! to a YAML file there, or a Kubernetes-style `..data` symlink swap,
//! compiles the
//! new version and swaps the whole gate atomically: a decision in flight
//! finishes on the gate it started with. A policy that does not compile
//! leaves the old one deciding, is logged with the compiler's message and
//! counts in `warden_policy_reload_errors_total`. `POST /v1/policy/reload`
//! does the same on demand.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use notify::{RecursiveMode, Watcher};
use warden_gate::{Gate, IdentityContext, IdentityError, Runtime, files};
use warden_identity::Did;
use warden_policy::{CompiledPolicy, PolicyError};
use warden_store::Store;

use crate::AppState;

/// The example policy bundled into the binary, served when no policy is given.
pub const BUNDLED_POLICY: &str = include_str!("../../../examples/database-agent/policy.yaml");
/// The name the bundled policy is reported under.
pub const BUNDLED_NAME: &str = "<bundled>/database-agent/policy.yaml";

/// Where the policy comes from, and what else a gate is built with.
#[derive(Debug)]
pub struct PolicySource {
    path: Option<PathBuf>,
    issuers: Vec<Did>,
    /// Serialises reloads (a watcher event and a forced reload).
    lock: Mutex<()>,
    /// The directories of the files the latest load read or tried to read.
    dirs: Mutex<BTreeSet<PathBuf>>,
    /// The watcher, once [`watch`] started it.
    watcher: Mutex<Option<Watched>>,
}

/// The first diagnostic of a policy error, and how many more there are.
pub fn summarize(e: &PolicyError) -> String {
    let mut s = e
        .diagnostics
        .first()
        .map(|d| d.to_string())
        .unwrap_or_default();
    let more = e.diagnostics.len().saturating_sub(1);
    if more > 0 {
        s.push_str(&format!(
            " (and {more} more problem(s): run 'warden policy lint')"
        ));
    }
    s
}

/// Loads the policy at `path`, or the bundled example policy.
pub fn load_policy(path: Option<&str>) -> Result<CompiledPolicy> {
    let loaded = match path {
        Some(p) => files::load_policy(p),
        None => warden_policy::parse(BUNDLED_NAME, BUNDLED_POLICY).and_then(warden_policy::compile),
    };
    loaded.map_err(|e| anyhow!(summarize(&e)))
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reloaded {
    /// The policy's name.
    pub name: String,
    /// Its hash.
    pub hash: String,
    /// Its rules.
    pub rules: usize,
    /// Whether it differs from the one before.
    pub changed: bool,
}

impl PolicySource {
    /// The policy at `path` (or the bundled one), trusting `issuers` for
    /// capability tokens besides the policy's own.
    pub fn new(path: Option<PathBuf>, issuers: Vec<Did>) -> PolicySource {
        PolicySource {
            path,
            issuers,
            lock: Mutex::new(()),
            dirs: Mutex::default(),
            watcher: Mutex::default(),
        }
    }

    /// The file, or `<bundled>/…`.
    pub fn describe(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| BUNDLED_NAME.to_string(), |p| p.display().to_string())
    }

    /// Compiles the policy and builds a gate over it. With `previous` (the
    /// gate it replaces), the new gate keeps its record of used nonces;
    /// without, it loads them from `audit`. Fails when the store's
    /// revocations or nonces cannot be read: a gate without them would let
    /// a revoked token or a replayed request through.
    pub fn build(
        &self,
        runtime: Arc<Runtime>,
        audit: Arc<dyn Store>,
        previous: Option<&Gate>,
    ) -> Result<Gate> {
        let path = match &self.path {
            Some(p) => Some(
                p.to_str()
                    .ok_or_else(|| anyhow!("the policy path '{}' is not UTF-8", p.display()))?,
            ),
            None => None,
        };
        let policy = match path {
            Some(p) => {
                let (loaded, read) = files::load_policy_reading(p);
                let dirs = std::iter::once(p)
                    .chain(read.iter().map(String::as_str))
                    .map(|file| files::dir_of(file).to_path_buf())
                    .collect();
                *self.dirs.lock().unwrap_or_else(|e| e.into_inner()) = dirs;
                loaded.map_err(|e| anyhow!(summarize(&e)))?
            }
            None => load_policy(None)?,
        };
        let issuers = self.issuers.iter().cloned();
        // A reload shares the nonces the running gate holds (those stored
        // plus those accepted since) rather than reading the stored ones again.
        let context = match previous.and_then(|g| g.identity()) {
            Some(old) => IdentityContext::replacing(&policy, audit, issuers, old),
            None => IdentityContext::new(&policy, audit, issuers),
        };
        let identity = match context {
            Ok(ctx) => Some(Arc::new(ctx)),
            Err(e @ IdentityError::Issuers(_)) => {
                // Without trusted issuers nothing can be verified: only a
                // policy that asks for identity makes that worth a warning.
                if policy.uses_identity() {
                    tracing::warn!(error = %e, "identities cannot be checked; actions that need one are denied");
                } else {
                    tracing::info!(error = %e, "capability tokens are not checked (the policy does not use identity)");
                }
                None
            }
            Err(e) => return Err(e.into()),
        };
        // Callers over HTTP or MCP prove a ring with a token; their word is
        // not enough (the MCP proxies send no context.ring of their own).
        let mut gate = Gate::new(policy)
            .with_runtime(runtime)
            .refusing_unproven_rings();
        if let Some(ctx) = identity {
            gate = gate.with_identity(ctx);
        }
        Ok(gate)
    }

    /// Recompiles and swaps the gate; on error the old gate keeps deciding.
    /// Either way the watcher, if any, then watches the directories of the
    /// files this load read (an include may have come or gone).
    pub fn reload(&self, state: &AppState) -> Result<Reloaded> {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let result = self.reload_locked(state);
        self.sync_watches();
        result
    }

    fn reload_locked(&self, state: &AppState) -> Result<Reloaded> {
        let old_hash = state.gate.load().policy().map(|p| p.hash().to_string());
        let previous = state.gate.load_full();
        match self.build(state.runtime.clone(), state.audit.clone(), Some(&previous)) {
            Ok(gate) => {
                let policy = gate.policy().expect("a built gate has a policy");
                let reloaded = Reloaded {
                    name: policy.name().to_string(),
                    hash: policy.hash().to_string(),
                    rules: policy.rules().len(),
                    changed: old_hash.as_deref() != Some(policy.hash()),
                };
                state.metrics.set_policy(Some(policy));
                state.gate.store(Arc::new(gate));
                tracing::info!(policy = %reloaded.name, hash = %reloaded.hash, rules = reloaded.rules, changed = reloaded.changed, "policy reloaded");
                Ok(reloaded)
            }
            Err(e) => {
                state.metrics.reload_failed();
                if e.downcast_ref::<IdentityError>().is_some() {
                    tracing::error!(error = %e, "the new policy's identity step cannot read the store; the previous policy keeps deciding");
                } else {
                    tracing::error!(error = %e, "the new policy does not compile; the previous policy keeps deciding");
                }
                Err(e)
            }
        }
    }

    /// Drops the watcher, which ends [`watch`]'s task.
    pub fn stop_watching(&self) {
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Makes the watcher, if any, watch exactly the directories of the
    /// files the latest load read.
    fn sync_watches(&self) {
        if let Some(watched) = self
            .watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            watched.sync(&self.dirs.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// Installs `watcher` over the latest load's directories; false, and
    /// no watcher, when the root policy's directory `root` cannot be watched.
    fn start_watching(&self, watcher: notify::RecommendedWatcher, root: &Path) -> bool {
        let mut watched = Watched {
            watcher,
            dirs: BTreeSet::new(),
        };
        watched.sync(&self.dirs.lock().unwrap_or_else(|e| e.into_inner()));
        if !watched.dirs.contains(root) {
            return false;
        }
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(watched);
        true
    }
}

/// A watcher and the directories it watches.
#[derive(Debug)]
struct Watched {
    watcher: notify::RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
}

impl Watched {
    /// Watches exactly `wanted`, each directory non-recursively. One that
    /// cannot be watched is logged and tried again at the next sync.
    fn sync(&mut self, wanted: &BTreeSet<PathBuf>) {
        for gone in self.dirs.difference(wanted).cloned().collect::<Vec<_>>() {
            let _ = self.watcher.unwatch(&gone);
            self.dirs.remove(&gone);
        }
        for dir in wanted.difference(&self.dirs).cloned().collect::<Vec<_>>() {
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.dirs.insert(dir);
                }
                Err(e) => {
                    tracing::warn!(error = %e, dir = %dir.display(), "cannot watch a directory of the policy; changes there need POST /v1/policy/reload");
                }
            }
        }
    }
}

/// Whether a file event at `path` may change the policy: a YAML file, or
/// the `..data` symlink (and its temporary twin) through which Kubernetes
/// swaps a mounted ConfigMap's files all at once.
fn concerns_policy(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    ) || path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".."))
}

/// How long file events settle before a reload (editors write in steps).
const SETTLE: Duration = Duration::from_millis(200);

/// Watches the directories of the policy and its includes and reloads on
/// change; false for the bundled policy or when the policy's own directory
/// cannot be watched (logged).
pub fn watch(state: Arc<AppState>) -> bool {
    let Some(path) = &state.policy.path else {
        return false;
    };
    let Some(root_dir) = path.to_str().map(files::dir_of) else {
        return false;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && (event.kind.is_modify() || event.kind.is_create() || event.kind.is_remove())
            && event.paths.iter().any(|p| concerns_policy(p))
        {
            let _ = tx.send(());
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the policy; use POST /v1/policy/reload");
            return false;
        }
    };
    if !state.policy.start_watching(watcher, root_dir) {
        tracing::warn!(dir = %root_dir.display(), "cannot watch the policy's directory; use POST /v1/policy/reload");
        return false;
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let state = state.clone();
            let _ = tokio::task::spawn_blocking(move || state.policy.reload(&state)).await;
        }
    });
    true
}
