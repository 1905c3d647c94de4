//! `limits:` — how many calls an agent may make: across all its actions
//! (`agents`) and per tool glob (`tools`). The policy only states the limits;
//! the gate counts calls and enforces them.
//!
//! ```
//! use std::time::Duration;
//! use warden_policy::parse;
//!
//! let policy = parse("p.yaml", r#"
//! version: warden/v1
//! default: allow
//! limits:
//!   agents: {calls: 600, per: 1m}
//!   tools:
//!     "db.*": {calls: 100, per: 1m, per_session: 2000}
//! "#)?;
//! let limits = &policy.limits;
//! assert_eq!(limits.agents.as_ref().and_then(|l| l.rate.as_ref()).map(|r| r.per),
//!            Some(Duration::from_secs(60)));
//! let db: Vec<&str> = limits.for_tool("db.query").map(|t| t.tool.as_str()).collect();
//! assert_eq!(db, ["db.*"]);
//! assert_eq!(limits.for_tool("dbx").count(), 0);
//! # Ok::<(), warden_policy::PolicyError>(())
//! ```

use std::time::Duration;

/// Every limit a policy sets (`limits:`). Empty when no file sets any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    /// `limits.agents` — each agent, all its actions together.
    pub agents: Option<Limit>,
    /// `limits.tools` — each agent, per tool glob, in the order written
    /// (included files first, like rules). Every limit whose glob matches a
    /// tool applies to it.
    pub tools: Vec<ToolLimit>,
}

impl Limits {
    /// Whether the policy sets no limit at all.
    pub fn is_empty(&self) -> bool {
        self.agents.is_none() && self.tools.is_empty()
    }

    /// The tool limits whose glob matches `tool`, in the order written.
    pub fn for_tool<'a>(&'a self, tool: &'a str) -> impl Iterator<Item = &'a ToolLimit> + 'a {
        self.tools.iter().filter(move |t| t.matches(tool))
    }
}

/// One limit: a rate, a per-session cap, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// `calls` per `per`: calls per window of `per`, counted per agent.
    pub rate: Option<Rate>,
    /// `per_session`: calls within one session.
    pub per_session: Option<u64>,
}

impl Limit {
    /// The limit that holds both `self` and `other` in: the fewer calls over
    /// the longer window, and the smaller per-session cap. Used when two
    /// files limit the same thing.
    pub(crate) fn stricter(self, other: Limit) -> Limit {
        let rate = match (self.rate, other.rate) {
            (Some(a), Some(b)) => Some(Rate {
                calls: a.calls.min(b.calls),
                per: a.per.max(b.per),
            }),
            (a, b) => a.or(b),
        };
        let per_session = match (self.per_session, other.per_session) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Limit { rate, per_session }
    }
}

/// At most `calls` calls in a window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Calls allowed per window (1 to [`crate::limits::MAX_LIMIT_CALLS`]).
    pub calls: u64,
    /// The window (1 second to [`crate::limits::MAX_LIMIT_WINDOW`]).
    pub per: Duration,
}

/// A limit on the tools one glob names (`limits.tools.<glob>`).
#[derive(Debug, Clone)]
pub struct ToolLimit {
    /// The glob as written, e.g. `db.*` or `email.send`.
    pub tool: String,
    /// The limit, per agent, on the tools the glob matches.
    pub limit: Limit,
    matcher: crate::tool_index::ToolGlob,
}

impl ToolLimit {
    /// A tool limit for `tool`, compiled like `match.tool`.
    pub(crate) fn new(tool: String, limit: Limit) -> Result<ToolLimit, globset::Error> {
        let matcher = crate::tool_index::ToolGlob::new(&tool)?;
        Ok(ToolLimit {
            tool,
            limit,
            matcher,
        })
    }

    /// Whether this limit applies to `tool` (the glob semantics of `match.tool`).
    pub fn matches(&self, tool: &str) -> bool {
        self.matcher.is_match(tool)
    }
}

/// The matcher follows from `tool`, so equality is over what was written.
impl PartialEq for ToolLimit {
    fn eq(&self, other: &Self) -> bool {
        self.tool == other.tool && self.limit == other.limit
    }
}

impl Eq for ToolLimit {}

/// Parses a window: `<positive integer><unit>`, unit `s`, `m`, `h` or `d`.
pub(crate) fn parse_window(text: &str) -> Result<Duration, String> {
    const FORMAT: &str =
        "a window is a positive whole number and a unit: s, m, h or d (e.g. '30s', '1m', '24h')";
    let max = crate::limits::MAX_LIMIT_WINDOW;
    let split = text.len().saturating_sub(1);
    let (digits, unit) = (text.get(..split).unwrap_or(""), text.get(split..));
    let unit_secs: u64 = match unit {
        Some("s") => 1,
        Some("m") => 60,
        Some("h") => 3600,
        Some("d") => 86_400,
        _ => return Err(FORMAT.into()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FORMAT.into());
    }
    let too_long = || format!("the longest window is {}d", max.as_secs() / 86_400);
    let n: u64 = match digits.parse() {
        Ok(n) => n,
        // Only digits, so the number is too large.
        Err(_) => return Err(too_long()),
    };
    if n == 0 {
        return Err("a window must be longer than zero".into());
    }
    if digits.starts_with('0') {
        return Err(FORMAT.into());
    }
    match n.checked_mul(unit_secs).map(Duration::from_secs) {
        Some(d) if d <= max => Ok(d),
        _ => Err(too_long()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_a_number_and_a_unit() {
        let secs = |t: &str| parse_window(t).map(|d| d.as_secs());
        assert_eq!(secs("30s"), Ok(30));
        assert_eq!(secs("1m"), Ok(60));
        assert_eq!(secs("24h"), Ok(86_400));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs("604800s"), Ok(604_800));
        for bad in [
            "", "s", "10", "10x", "1.5h", "-1m", "+1m", " 1m", "1 m", "01m", "1M", "1mm", "1é",
        ] {
            assert!(parse_window(bad).is_err(), "{bad:?}");
        }
        assert!(secs("0s").unwrap_err().contains("longer than zero"));
        assert!(secs("8d").unwrap_err().contains("longest window is 7d"));
        assert!(secs("604801s").unwrap_err().contains("7d"));
        assert!(secs("99999999999999999999999d").unwrap_err().contains("7d"));
        assert!(secs("18446744073709551615d").unwrap_err().contains("7d"));
    }

    #[test]
    fn the_stricter_limit_keeps_fewer_calls_over_the_longer_window() {
        let rate = |calls, secs| {
            Some(Rate {
                calls,
                per: Duration::from_secs(secs),
            })
        };
        let a = Limit {
            rate: rate(10, 60),
            per_session: None,
        };
        let b = Limit {
            rate: rate(100, 3600),
            per_session: Some(20),
        };
        let both = Limit {
            rate: rate(10, 3600),
            per_session: Some(20),
        };
        assert_eq!(a.stricter(b), both);
        assert_eq!(b.stricter(a), both);
        assert_eq!(a.stricter(a), a);
    }
}
