//! Where the policy comes from, and hot reload.
//!
//! The policy file's directory is watched (notify); a change compiles the
//! new version and swaps the whole gate atomically: a decision in flight
//! finishes on the gate it started with. A policy that does not compile
//! leaves the old one deciding, is logged with the compiler's message and
//! counts in `warden_policy_reload_errors_total`. `POST /v1/policy/reload`
//! does the same on demand.

use std::path::PathBuf;
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
        let policy = load_policy(path)?;
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
        let mut gate = Gate::new(policy).with_runtime(runtime);
        if let Some(ctx) = identity {
            gate = gate.with_identity(ctx);
        }
        Ok(gate)
    }

    /// Recompiles and swaps the gate; on error the old gate keeps deciding.
    pub fn reload(&self, state: &AppState) -> Result<Reloaded> {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
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

    /// The directory to watch, if the policy is a file.
    fn watched_dir(&self) -> Option<PathBuf> {
        let path = self.path.as_ref()?;
        let dir = path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })?;
        Some(dir)
    }
}

/// How long file events settle before a reload (editors write in steps).
const SETTLE: Duration = Duration::from_millis(200);

/// Watches the policy's directory and reloads on change; `None` for the
/// bundled policy or when watching is not possible (logged).
pub fn watch(state: Arc<AppState>) -> Option<notify::RecommendedWatcher> {
    let dir = state.policy.watched_dir()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && (event.kind.is_modify() || event.kind.is_create() || event.kind.is_remove())
                && event
                    .paths
                    .iter()
                    .any(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            {
                let _ = tx.send(());
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the policy; use POST /v1/policy/reload");
                return None;
            }
        };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the policy's directory; use POST /v1/policy/reload");
        return None;
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let state = state.clone();
            let _ = tokio::task::spawn_blocking(move || state.policy.reload(&state)).await;
        }
    });
    Some(watcher)
}
