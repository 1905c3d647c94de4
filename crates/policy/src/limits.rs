//! Limits on untrusted policy input. Each is enforced where it is named and tested.

/// Largest policy file accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;
/// Most rules in one policy, includes counted.
pub const MAX_RULES: usize = 10_000;
/// Longest `when:` CEL expression, in bytes.
pub const MAX_CEL_LEN: usize = 4096;
/// Most tool-name globs in one policy, includes counted.
pub const MAX_GLOBS: usize = 20_000;
/// Deepest YAML nesting accepted. A policy needs about 8; parsing recurses,
/// so this also bounds stack use (≈30 KB a level in debug builds).
pub const MAX_YAML_DEPTH: usize = 24;
/// Deepest chain of `include:`s.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Most calls a `limits:` entry may count (`calls`, `per_session`).
pub const MAX_LIMIT_CALLS: u64 = 1_000_000_000;
/// Longest window a `limits:` rate may use (`per`): seven days.
pub const MAX_LIMIT_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
/// Most tool globs under `limits.tools`, includes counted. The gate checks
/// every one against each tool call.
pub const MAX_TOOL_LIMITS: usize = 1_000;
