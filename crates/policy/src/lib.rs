//! The `warden/v1` policy language: parse, compile, evaluate.
//!
//! This crate is pure: it reads no files, no clock and no environment. The
//! caller hands in policy text through [`Sources`] and gets back either a
//! [`CompiledPolicy`] or compiler-style [`Diagnostic`]s
//! (`policy.yaml:12:5: unknown field 'verdcit' in rule 'block-drop' (did you mean 'verdict'?)`).
//!
//! ```
//! use warden_policy::{compile, parse, Input, Point, Verdict};
//!
//! let policy = compile(parse("p.yaml", r#"
//! version: warden/v1
//! name: example
//! default: allow
//! rules:
//!   - id: no-big-exports
//!     match: {tool: "db.*"}
//!     when: args.limit > 1000
//!     verdict: deny
//! "#)?)?;
//!
//! let args = serde_json::json!({"limit": 5000});
//! let context = serde_json::Map::new();
//! let input = Input {
//!     point: Point::PreToolCall, tool: Some("db.export"), agent: None, session: None,
//!     args: &args, context: &context, labels: &[], intents: &[], ring: 3,
//! };
//! let eval = policy.evaluate(&input);
//! assert_eq!(eval.verdict, Verdict::Deny);
//! assert_eq!(eval.rule.map(|r| &*r.id), Some("no-big-exports"));
//! # Ok::<(), warden_policy::PolicyError>(())
//! ```
#![deny(missing_docs)]

mod compile;
mod diag;
mod eval;
pub mod limits;
mod load;
mod model;
mod native;
mod rate_limit;
mod tool_index;
pub mod transform;
mod yaml;

pub use compile::{CompiledPolicy, ToolArgs, compile};
pub use diag::{Diagnostic, PolicyError, Pos, printable};
pub use eval::{EvalError, EvalErrorKind, Evaluation, Explanation, Input, Miss, Outcome, Trace};
pub use load::{KNOWN_INTENTS, MemorySources, Sources, VERSION, load, parse, resolve_include};
pub use model::*;
pub use rate_limit::{Limit, Limits, Rate, ToolLimit};

/// Loads and compiles the policy rooted at `root` in one step.
pub fn load_compiled(root: &str, sources: &dyn Sources) -> Result<CompiledPolicy, PolicyError> {
    compile(load(root, sources)?)
}
