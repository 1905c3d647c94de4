//! Intent classification of tool arguments with real parsers.
//!
//! warden decides on what an action *does*, not on what its tool is called.
//! This crate reads an argument with the parser for its language — SQL
//! (`sqlparser`), shell (`brush-parser`'s bash AST, `shlex` for words), URLs
//! (WHATWG `url`) and file paths — and reports the [`Intent`]s it finds, each
//! backed by a [`Finding`] that quotes the evidence and its byte span.
//!
//! Text is normalised first (NFKC, full-width forms folded, zero-width, bidi
//! and other invisible characters removed): every span points into that
//! *normalised* text, which [`normalize`] reproduces.
//!
//! Plain SQL batches (simple `SELECT` / `INSERT` / `UPDATE … WHERE` /
//! `DELETE … WHERE`) are read by a small exact recogniser instead of
//! sqlparser (about 15 times faster), and plain one-line shell command lists
//! by a small parser whose output the shell walker reads directly (its tree
//! is tested to be brush's own); both defer to the real parser on anything
//! they do not fully read, and [`classify_full`] (full parsers only) gives
//! the same result.
//!
//! Anything that does not parse, or that is cut off by one of the limits
//! ([`MAX_INPUT_BYTES`], [`MAX_DEPTH`], [`MAX_DECODED_BYTES`],
//! [`MAX_SYNTAX_NESTING`], [`MAX_ARGUMENT_STRINGS`]), is [`Intent::Unknown`],
//! never [`Intent::ReadOnly`].
//!
//! ```
//! use warden_intent::{classify, classify_arguments, Config, Egress, Intent, Kind};
//!
//! // Quoting, wrappers and encodings do not hide what a command does.
//! let c = classify(Kind::Shell, r#"sudo env X=1 sh -c "r''m -rf /""#);
//! assert!(c.has(Intent::Destructive));
//! assert!(c.has(Intent::PrivilegeEscalation));
//!
//! // ...and a dangerous word inside data is only data.
//! assert_eq!(classify(Kind::Sql, "SELECT 'DROP TABLE users'").intents, vec![Intent::ReadOnly]);
//! assert_eq!(classify(Kind::Shell, r#"grep -r "rm -rf" ."#).intents, vec![Intent::ReadOnly]);
//!
//! // A policy's egress allowlist feeds URL classification; the tool catalog
//! // can pin argument kinds, everything else is classified with `Kind::Auto`.
//! let config = Config { egress: Some(Egress::new(["*.example.com"])?), ..Config::default() };
//! let args = serde_json::json!({"q": "DELETE FROM users", "url": "https://api.example.com/x"});
//! let kinds = [("q".to_string(), Kind::Sql)].into_iter().collect();
//! let c = classify_arguments(&config, &args, Some(&kinds));
//! assert_eq!(c.intents, vec![Intent::Destructive]);
//! assert_eq!(c.findings[0].argument.as_deref(), Some("/q"));
//! # Ok::<(), warden_intent::IntentError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod analyze;
mod args;
mod egress;
mod normalize;
mod path;
mod script;
mod shell;
mod shell_fast;
mod sql;
mod sql_fast;
mod url_kind;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use egress::Egress;
pub use normalize::normalize;

/// Longest input (in bytes, before normalisation) that is parsed. Longer input
/// is classified on its first `MAX_INPUT_BYTES` and is also [`Intent::Unknown`].
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Deepest nesting of payloads re-parsed inside one another (`sh -c`, `eval`,
/// wrappers such as `sudo`/`env`/`xargs`, decoded base64, SQL inside `psql -c`).
pub const MAX_DEPTH: usize = 8;
/// Total bytes of decoded or unquoted payloads re-parsed for one input.
pub const MAX_DECODED_BYTES: usize = 64 * 1024;
/// Deepest bracket/quote nesting handed to a parser; deeper input is not parsed
/// (recursive-descent parsers would otherwise exhaust the stack).
pub const MAX_SYNTAX_NESTING: usize = 64;
/// Most string values classified in one tool-argument object; more are cut.
pub const MAX_ARGUMENT_STRINGS: usize = 256;
/// Deepest JSON nesting walked in tool arguments.
pub const MAX_JSON_DEPTH: usize = 32;
/// Most findings kept for one classification; more are dropped (the intents stay).
pub const MAX_FINDINGS: usize = 256;

/// What an action does, as read from its arguments.
///
/// Serialised in snake_case (`"privilege_escalation"`), the names policies use
/// in `match.intents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Deletes or irreversibly overwrites data or infrastructure.
    Destructive,
    /// Sends data to a place outside the allowed egress, or writes it out of the system.
    Exfiltration,
    /// Gains rights the caller does not hold (`sudo`, `GRANT`, setuid...).
    PrivilegeEscalation,
    /// Runs code that is not visible in the argument (download piped to a shell, `xp_cmdshell`...).
    CodeExecution,
    /// Reads secrets: keys, password catalogs, cloud metadata, `.env` files.
    CredentialAccess,
    /// Survives the session: cron, systemd units, shell rc files, triggers.
    Persistence,
    /// Changes state in a way that is none of the above (`INSERT`, `mkdir`, a
    /// program not known to be read-only).
    Write,
    /// Only reads, and nothing else was found. Never the result for input that
    /// did not parse or hit a limit.
    ReadOnly,
    /// Could not be classified: unparseable, dynamic, or cut by a limit.
    Unknown,
}

impl Intent {
    /// The snake_case name used in policies and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Destructive => "destructive",
            Intent::Exfiltration => "exfiltration",
            Intent::PrivilegeEscalation => "privilege_escalation",
            Intent::CodeExecution => "code_execution",
            Intent::CredentialAccess => "credential_access",
            Intent::Persistence => "persistence",
            Intent::Write => "write",
            Intent::ReadOnly => "read_only",
            Intent::Unknown => "unknown",
        }
    }

    /// Every intent, in declaration order.
    pub const ALL: [Intent; 9] = [
        Intent::Destructive,
        Intent::Exfiltration,
        Intent::PrivilegeEscalation,
        Intent::CodeExecution,
        Intent::CredentialAccess,
        Intent::Persistence,
        Intent::Write,
        Intent::ReadOnly,
        Intent::Unknown,
    ];
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Intent {
    type Err = IntentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Intent::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| IntentError::UnknownIntent(s.to_string()))
    }
}

/// Which parser reads a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A batch of SQL statements (PostgreSQL, MySQL, SQLite, MS SQL or generic).
    Sql,
    /// A bash / POSIX shell command line or script.
    Shell,
    /// A URL.
    Url,
    /// A file-system path.
    Path,
    /// Guess: classify as every kind the text parses as with confidence.
    Auto,
    /// Data, never code (a message body, a subject line): not read at all.
    /// A policy's tool catalog pins free-text arguments to it.
    Text,
}

impl Kind {
    /// The lowercase name (`sql`, `shell`, `url`, `path`, `auto`, `text`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sql => "sql",
            Kind::Shell => "shell",
            Kind::Url => "url",
            Kind::Path => "path",
            Kind::Auto => "auto",
            Kind::Text => "text",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = IntentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sql" => Ok(Kind::Sql),
            "shell" => Ok(Kind::Shell),
            "url" => Ok(Kind::Url),
            "path" => Ok(Kind::Path),
            "auto" => Ok(Kind::Auto),
            "text" => Ok(Kind::Text),
            other => Err(IntentError::UnknownKind(other.to_string())),
        }
    }
}

/// A byte range `start..end` into the **normalised** text of the argument
/// (see [`normalize`]). For payloads found inside other payloads (`sh -c "…"`,
/// base64), the span is that of the outermost element that contains them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// One piece of evidence for an intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The intent this evidence supports.
    pub intent: Intent,
    /// What was found: the offending command, statement, host or path, and why.
    pub evidence: String,
    /// Where, in the normalised text.
    pub span: Span,
    /// The parser that produced it (never [`Kind::Auto`] or [`Kind::Text`]).
    pub kind: Kind,
    /// For [`classify_arguments`]: the JSON pointer of the argument (`/sql`, `/cmds/0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argument: Option<String>,
}

/// The result of a classification.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Classification {
    /// The intents found, sorted and without duplicates. `[read_only]` when
    /// the text parsed and nothing else was found.
    pub intents: Vec<Intent>,
    /// The evidence, in the order it was found (at most [`MAX_FINDINGS`]).
    pub findings: Vec<Finding>,
}

impl Classification {
    /// Whether `intent` is among the intents.
    pub fn has(&self, intent: Intent) -> bool {
        self.intents.contains(&intent)
    }

    fn from_sink(sink: analyze::Sink) -> Self {
        let analyze::Sink {
            findings,
            mut intents,
        } = sink;
        intents.sort();
        intents.dedup();
        if intents.is_empty() {
            intents.push(Intent::ReadOnly);
        }
        Classification { intents, findings }
    }
}

/// What a policy tells the classifier.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Hosts that may be contacted. `None` means no allowlist is configured and
    /// hosts are not judged by name (metadata endpoints, private addresses and
    /// data-bearing queries still are); `Some` with no entries allows no host.
    pub egress: Option<Egress>,
    /// Declared roots for path arguments: a path that resolves outside all of
    /// them is a traversal. Empty means only `..` escaping the starting point counts.
    pub path_roots: Vec<String>,
}

/// Errors in configuration (classification itself never fails).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IntentError {
    /// An egress allowlist entry that is not a domain or `*.domain`.
    #[error(
        "invalid egress entry {pattern:?}: {reason}; write a host name (`api.example.com`) or a wildcard (`*.example.com`)"
    )]
    InvalidEgress {
        /// The entry as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A kind name other than `sql`, `shell`, `url`, `path`, `auto`.
    #[error("unknown argument kind {0:?}; expected one of sql, shell, url, path, auto, text")]
    UnknownKind(String),
    /// An intent name that is not one of [`Intent::ALL`].
    #[error(
        "unknown intent {0:?}; expected one of destructive, exfiltration, privilege_escalation, code_execution, credential_access, persistence, write, read_only, unknown"
    )]
    UnknownIntent(String),
}

/// Classifies `text` as `kind` with the default [`Config`] (no egress allowlist).
pub fn classify(kind: Kind, text: &str) -> Classification {
    classify_with(&Config::default(), kind, text)
}

/// Classifies `text` as `kind` under `config`.
pub fn classify_with(config: &Config, kind: Kind, text: &str) -> Classification {
    let mut sink = analyze::Sink::default();
    analyze::classify_into(config, kind, text, None, true, &mut sink);
    Classification::from_sink(sink)
}

/// Like [`classify_with`], but always with the full parsers (sqlparser,
/// brush-parser), skipping the fast paths that read simple input directly.
///
/// The result is the same by construction (the fast paths defer on anything
/// they do not fully understand); this exists so tests can check that, and
/// benchmarks can show what the fast paths save.
pub fn classify_full(config: &Config, kind: Kind, text: &str) -> Classification {
    let mut sink = analyze::Sink::default();
    analyze::classify_into(config, kind, text, None, false, &mut sink);
    Classification::from_sink(sink)
}

/// Classifies every string in a tool call's arguments.
///
/// `kinds` pins the kind of top-level arguments by name (from the policy's tool
/// catalog); strings under a pinned argument, at any depth, use its kind, and
/// every other string is classified with [`Kind::Auto`]. Arguments pinned to
/// [`Kind::Text`] are not read. Object keys are not classified. Arguments
/// with no strings at all are [`Intent::ReadOnly`].
pub fn classify_arguments(
    config: &Config,
    arguments: &serde_json::Value,
    kinds: Option<&BTreeMap<String, Kind>>,
) -> Classification {
    let mut sink = analyze::Sink::default();
    args::classify_value(config, arguments, kinds, &mut sink);
    Classification::from_sink(sink)
}
