//! The agent record: who an agent is, who answers for it, where it is in its
//! lifecycle, and how far it is trusted.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::did::{Did, quote};
use crate::time::unix_seconds;
use crate::trust::{TrustConfig, TrustEvent, TrustState, TrustUpdate};

/// Longest agent name, in bytes.
pub const MAX_AGENT_NAME_BYTES: usize = 128;
/// Longest sponsor address, in bytes (RFC 5321's path limit).
pub const MAX_SPONSOR_BYTES: usize = 254;
/// Longest local part of a sponsor address, in bytes (RFC 5321).
pub const MAX_SPONSOR_LOCAL_BYTES: usize = 64;

/// A privilege ring, 0 (most privileged) to 3 (new agents: read-only, sandboxed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Ring(u8);

impl Ring {
    /// Ring 0: never reached automatically.
    pub const R0: Ring = Ring(0);
    /// Ring 1: high trust plus a human approval.
    pub const R1: Ring = Ring(1);
    /// Ring 2: earned trust.
    pub const R2: Ring = Ring(2);
    /// Ring 3: where every agent starts.
    pub const R3: Ring = Ring(3);

    /// The ring numbered `n`, if `n` is 0–3.
    pub fn new(n: u8) -> Result<Ring, RingError> {
        if n <= 3 {
            Ok(Ring(n))
        } else {
            Err(RingError { found: n.into() })
        }
    }

    /// The ring's number.
    pub fn get(self) -> u8 {
        self.0
    }

    /// Whether this ring may do what `other` may: rings are nested, a lower
    /// number holds every right of a higher one.
    pub fn at_least_as_privileged_as(self, other: Ring) -> bool {
        self.0 <= other.0
    }
}

impl fmt::Display for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ring {}", self.0)
    }
}

impl TryFrom<u8> for Ring {
    type Error = RingError;
    fn try_from(n: u8) -> Result<Ring, RingError> {
        Ring::new(n)
    }
}

impl From<Ring> for u8 {
    fn from(r: Ring) -> u8 {
        r.0
    }
}

/// A ring number outside 0–3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ring {found} does not exist (hint: rings are 0, 1, 2 and 3)")]
pub struct RingError {
    /// The number given.
    pub found: i64,
}

/// The accountable human behind an agent: an email address.
///
/// Deliberately stricter than RFC 5322: ASCII only; the local part is
/// letters, digits and `. _ % + ' -` without leading, trailing or doubled
/// dots; the domain has at least two dot-separated labels of letters, digits
/// and inner hyphens, ending in an alphabetic top-level label. The domain is
/// kept in lower case. Internationalised domains must be given in their
/// `xn--` form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sponsor(String);

/// Why a text is not a sponsor address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SponsorError {
    /// Empty after trimming.
    #[error("sponsor is required: the email address of the human accountable for the agent")]
    Missing,
    /// Longer than the limits.
    #[error("sponsor {input:?} is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// The input, shortened.
        input: String,
        /// Its length.
        len: usize,
        /// The limit that was exceeded.
        max: usize,
    },
    /// Not of the form `local@domain` or with a character outside the accepted set.
    #[error("sponsor {input:?} is not an email address: {problem} (hint: e.g. alice@example.com)")]
    Invalid {
        /// The input, shortened.
        input: String,
        /// What is wrong.
        problem: &'static str,
    },
}

impl Sponsor {
    /// Validates an email address (surrounding whitespace ignored).
    pub fn parse(input: &str) -> Result<Sponsor, SponsorError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(SponsorError::Missing);
        }
        let invalid = |problem| SponsorError::Invalid {
            input: quote(text),
            problem,
        };
        if text.len() > MAX_SPONSOR_BYTES {
            return Err(SponsorError::TooLong {
                input: quote(text),
                len: text.len(),
                max: MAX_SPONSOR_BYTES,
            });
        }
        if !text.is_ascii() {
            return Err(invalid(
                "non-ASCII characters (give an internationalised domain in its xn-- form)",
            ));
        }
        let Some((local, domain)) = text.rsplit_once('@') else {
            return Err(invalid("no '@'"));
        };
        if local.is_empty() {
            return Err(invalid("nothing before '@'"));
        }
        if local.len() > MAX_SPONSOR_LOCAL_BYTES {
            return Err(SponsorError::TooLong {
                input: quote(text),
                len: local.len(),
                max: MAX_SPONSOR_LOCAL_BYTES,
            });
        }
        if !local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+'-".contains(&b))
        {
            return Err(invalid(
                "the part before '@' may only hold letters, digits and . _ % + ' -",
            ));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(invalid(
                "dots before '@' may not lead, trail or come in pairs",
            ));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(invalid(
                "the domain needs at least two labels, e.g. example.com",
            ));
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err(invalid(
                    "a domain label is empty or longer than 63 characters",
                ));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return Err(invalid(
                    "domain labels are letters, digits and inner hyphens",
                ));
            }
        }
        let tld = labels[labels.len() - 1];
        if tld.len() < 2
            || !(tld.bytes().all(|b| b.is_ascii_alphabetic()) || tld.starts_with("xn--"))
        {
            return Err(invalid(
                "the last domain label must be alphabetic, e.g. com",
            ));
        }
        Ok(Sponsor(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sponsor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Sponsor {
    type Error = SponsorError;
    fn try_from(s: String) -> Result<Sponsor, SponsorError> {
        Sponsor::parse(&s)
    }
}

impl From<Sponsor> for String {
    fn from(s: Sponsor) -> String {
        s.0
    }
}

/// Where an agent is in its lifecycle.
///
/// ```text
/// provisioned ──► active ◄──► suspended
///      │            │             │
///      └────────────┴─────────────┴──► decommissioned (terminal)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, not yet allowed to act.
    Provisioned,
    /// Allowed to act.
    Active,
    /// Temporarily stopped; can be resumed.
    Suspended,
    /// Retired for good: credentials revoked, records kept.
    Decommissioned,
}

impl Status {
    /// The status name as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Provisioned => "provisioned",
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Decommissioned => "decommissioned",
        }
    }

    /// Whether the lifecycle allows moving from `self` to `to`.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Provisioned, Active)
                | (Active, Suspended)
                | (Suspended, Active)
                | (Provisioned | Active | Suspended, Decommissioned)
        )
    }

    /// Moves to `to`, or says why the lifecycle forbids it.
    pub fn transition(self, to: Status) -> Result<Status, LifecycleError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(LifecycleError { from: self, to })
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = AgentError;
    fn from_str(s: &str) -> Result<Status, AgentError> {
        match s {
            "provisioned" => Ok(Status::Provisioned),
            "active" => Ok(Status::Active),
            "suspended" => Ok(Status::Suspended),
            "decommissioned" => Ok(Status::Decommissioned),
            _ => Err(AgentError::UnknownStatus { input: quote(s) }),
        }
    }
}

/// A lifecycle transition that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an agent cannot go from {from} to {to} ({})", lifecycle_hint(*.from))]
pub struct LifecycleError {
    /// The current status.
    pub from: Status,
    /// The status asked for.
    pub to: Status,
}

fn lifecycle_hint(from: Status) -> &'static str {
    match from {
        Status::Provisioned => "a provisioned agent can be activated or decommissioned",
        Status::Active => "an active agent can be suspended or decommissioned",
        Status::Suspended => "a suspended agent can be resumed or decommissioned",
        Status::Decommissioned => "decommissioned is final; create a new agent",
    }
}

/// Why an agent record cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The name is empty, too long, or has invisible or control characters.
    #[error("agent name {input:?} {problem}")]
    Name {
        /// The name, shortened.
        input: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A status text that is not one of the four.
    #[error("unknown status {input:?} (hint: provisioned, active, suspended or decommissioned)")]
    UnknownStatus {
        /// The text, shortened.
        input: String,
    },
    /// A forbidden lifecycle transition.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

/// Checks an agent name: 1–[`MAX_AGENT_NAME_BYTES`] bytes, no control,
/// format (zero-width, bidi) or other invisible characters, no leading or
/// trailing whitespace.
pub fn validate_agent_name(name: &str) -> Result<(), AgentError> {
    let err = |problem| AgentError::Name {
        input: quote(name),
        problem,
    };
    if name.is_empty() {
        return Err(err("is empty"));
    }
    if name.len() > MAX_AGENT_NAME_BYTES {
        return Err(err("is longer than 128 bytes"));
    }
    if name.trim() != name {
        return Err(err("has leading or trailing whitespace"));
    }
    if name.chars().any(is_invisible) {
        return Err(err("has control or invisible characters"));
    }
    Ok(())
}

/// Control characters, and the format and separator characters that render
/// as nothing or reorder text (zero-width, bidi controls, BOM, tags).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
            | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{E0000}'..='\u{E0FFF}')
}

/// An agent: identity, accountable human, lifecycle and trust.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    did: Did,
    name: String,
    sponsor: Sponsor,
    created_unix: u64,
    status: Status,
    trust: TrustState,
}

impl Agent {
    /// A new agent: `provisioned`, default trust, ring 3.
    pub fn new(
        did: Did,
        name: &str,
        sponsor: Sponsor,
        now: SystemTime,
        config: &TrustConfig,
    ) -> Result<Agent, AgentError> {
        validate_agent_name(name)?;
        Ok(Agent {
            did,
            name: name.to_string(),
            sponsor,
            created_unix: unix_seconds(now),
            status: Status::Provisioned,
            trust: TrustState::new(config, now),
        })
    }

    /// Rebuilds a stored record, checking the name again.
    pub fn restore(
        did: Did,
        name: &str,
        sponsor: Sponsor,
        created_unix: u64,
        status: Status,
        trust: TrustState,
    ) -> Result<Agent, AgentError> {
        validate_agent_name(name)?;
        Ok(Agent {
            did,
            name: name.to_string(),
            sponsor,
            created_unix,
            status,
            trust,
        })
    }

    /// The agent's DID.
    pub fn did(&self) -> &Did {
        &self.did
    }
    /// The agent's display name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The accountable human.
    pub fn sponsor(&self) -> &Sponsor {
        &self.sponsor
    }
    /// When the record was created, in seconds since 1970-01-01T00:00:00Z.
    pub fn created_unix(&self) -> u64 {
        self.created_unix
    }
    /// Lifecycle status.
    pub fn status(&self) -> Status {
        self.status
    }
    /// The current ring.
    pub fn ring(&self) -> Ring {
        self.trust.ring()
    }
    /// The trust score, 0–1000, as last updated (see [`Agent::trust_at`] for decay).
    pub fn trust_score(&self) -> u16 {
        self.trust.score()
    }
    /// The full trust state.
    pub fn trust(&self) -> &TrustState {
        &self.trust
    }
    /// Whether the agent may act at all (only `active` agents may).
    pub fn may_act(&self) -> bool {
        self.status == Status::Active
    }

    /// Moves the lifecycle to `to`, or names both states in the error.
    pub fn set_status(&mut self, to: Status) -> Result<(), LifecycleError> {
        self.status = self.status.transition(to)?;
        Ok(())
    }

    /// Applies a trust event (after decay up to `now`) and returns what changed.
    pub fn record(
        &mut self,
        event: TrustEvent,
        now: SystemTime,
        config: &TrustConfig,
    ) -> TrustUpdate {
        let update = self.trust.apply(event, now, config);
        self.trust = update.state.clone();
        update
    }

    /// Applies decay up to `now` and returns what changed.
    pub fn trust_at(&mut self, now: SystemTime, config: &TrustConfig) -> TrustUpdate {
        let update = self.trust.decay(now, config);
        self.trust = update.state.clone();
        update
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sponsor_accepts_plain_addresses_and_lowercases_domain() {
        assert_eq!(
            Sponsor::parse(" Alice.Smith+ops@Example.COM ")
                .unwrap()
                .as_str(),
            "Alice.Smith+ops@example.com"
        );
        assert!(Sponsor::parse("o'neil@xn--bcher-kva.example").is_ok());
    }

    #[test]
    fn sponsor_rejects_malformed_and_hostile_text() {
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "alice@example.c0m",
            "alice@-example.com",
            "alice@exa_mple.com",
            "al..ice@example.com",
            ".alice@example.com",
            "alice smith@example.com",
            "\"alice\"@example.com",
            "alice@example.com\u{202e}",
            "alice\u{200b}@example.com",
            "ａｌｉｃｅ@example.com",
            "alice@exämple.com",
            "alice@example..com",
            "a\"b@example.com",
        ] {
            assert!(
                matches!(Sponsor::parse(bad), Err(SponsorError::Invalid { .. })),
                "{bad:?} accepted"
            );
        }
        assert_eq!(Sponsor::parse("  "), Err(SponsorError::Missing));
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(matches!(
            Sponsor::parse(&long),
            Err(SponsorError::TooLong { .. })
        ));
        let huge = format!("a@{}.com", "b".repeat(300));
        assert!(matches!(
            Sponsor::parse(&huge),
            Err(SponsorError::TooLong { .. })
        ));
    }

    #[test]
    fn lifecycle_allows_exactly_the_documented_transitions() {
        use Status::*;
        let all = [Provisioned, Active, Suspended, Decommissioned];
        let allowed = [
            (Provisioned, Active),
            (Active, Suspended),
            (Suspended, Active),
            (Provisioned, Decommissioned),
            (Active, Decommissioned),
            (Suspended, Decommissioned),
        ];
        for from in all {
            for to in all {
                let ok = from.transition(to);
                assert_eq!(ok.is_ok(), allowed.contains(&(from, to)), "{from} -> {to}");
                if let Err(e) = ok {
                    let text = e.to_string();
                    assert!(
                        text.contains(from.as_str()) && text.contains(to.as_str()),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn ring_outside_zero_to_three_is_an_error() {
        assert!(Ring::new(4).is_err());
        assert!(serde_json::from_str::<Ring>("7").is_err());
        assert_eq!(serde_json::from_str::<Ring>("2").unwrap(), Ring::R2);
        assert!(Ring::R1.at_least_as_privileged_as(Ring::R2));
        assert!(!Ring::R3.at_least_as_privileged_as(Ring::R2));
    }

    #[test]
    fn agent_names_refuse_invisible_characters() {
        assert!(validate_agent_name("db-agent 1").is_ok());
        assert!(validate_agent_name("ピーター").is_ok());
        for bad in [
            "",
            " x",
            "a\u{200b}b",
            "a\u{202e}b",
            "a\nb",
            &"x".repeat(129),
        ] {
            assert!(validate_agent_name(bad).is_err(), "{bad:?}");
        }
    }
}
