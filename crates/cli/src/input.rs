//! Reading what the user points the CLI at: policies and action documents.

use anyhow::{Context, Result, bail};
use std::io::Read;
use warden_gate::{Action, MAX_ACTION_BYTES};
use warden_policy::CompiledPolicy;

/// Loads `path`, or the bundled example policy when `path` is `None`
/// (the one `warden serve` serves).
pub fn policy(path: Option<&str>) -> Result<CompiledPolicy> {
    warden_server::reload::load_policy(path)
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
