//! Reading what the user points the CLI at: policies and action documents.

use anyhow::{Context, Result, anyhow, bail};
use std::io::Read;
use warden_gate::{Action, MAX_ACTION_BYTES, files};
use warden_policy::{CompiledPolicy, PolicyError};

/// The example policy bundled into the binary, used when no `--policy` is given.
pub const BUNDLED_POLICY: &str = include_str!("../../../examples/database-agent/policy.yaml");
/// The name the bundled policy is reported under.
pub const BUNDLED_NAME: &str = "<bundled>/database-agent/policy.yaml";

/// Loads `path`, or the bundled example policy when `path` is `None`.
pub fn policy(path: Option<&str>) -> Result<CompiledPolicy> {
    let loaded = match path {
        Some(p) => files::load_policy(p),
        None => warden_policy::parse(BUNDLED_NAME, BUNDLED_POLICY).and_then(warden_policy::compile),
    };
    loaded.map_err(|e| anyhow!(summarize(&e)))
}

/// The first diagnostic, and how many more there are.
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

/// Reads an action document from a file, or from stdin when `path` is `-`.
pub fn action(path: &str) -> Result<Action> {
    let mut bytes = Vec::new();
    let limit = MAX_ACTION_BYTES as u64 + 1;
    if path == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("cannot read the action from stdin")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read action file '{path}'"))?;
    }
    if bytes.len() > MAX_ACTION_BYTES {
        bail!("action '{path}' is larger than {MAX_ACTION_BYTES} bytes");
    }
    Action::from_json(&bytes).with_context(|| format!("action '{path}'"))
}
