//! The records of the audit log and their canonical byte encoding.
//!
//! Every log entry is an [`Entry`]: its sequence number plus a [`Record`],
//! either a [`DecisionRecord`] (what the gate decided) or an
//! [`OutcomeRecord`] (what happened after an allowed action ran). The bytes
//! of [`Entry::encode`] are the RFC 6962 leaf data: every field is inside
//! the leaf hash. The format is specified in the repository's `ARCHITECTURE.md`
//! (*Audit record encoding*).

use serde::{Deserialize, Serialize};

use crate::merkle::{Hash, leaf_hash};

/// Format version, the first byte of every encoded entry.
pub const ENCODING_VERSION: u8 = 1;

/// Largest encoded entry accepted, in bytes. Larger arguments should be
/// logged by hash (`audit: {arguments: hash}` in the policy).
pub const MAX_ENTRY_BYTES: usize = 1 << 20;

/// Most intents one decision record may carry.
pub const MAX_INTENTS: usize = 256;

const KIND_DECISION: u8 = 0x01;
const KIND_OUTCOME: u8 = 0x02;
/// A decision whose agent proved its identity: the decision fields, then
/// the accountable human (the sponsor).
const KIND_SPONSORED_DECISION: u8 = 0x03;
const KIND_EVENT: u8 = 0x04;
/// A decision asked for by an authenticated API caller: the decision
/// fields, then the sponsor as an option, then the caller.
const KIND_CALLER_DECISION: u8 = 0x05;

/// One entry of the log: a record at its sequence number (its leaf index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, starting at 0; equal to the leaf index.
    pub seq: u64,
    /// What is recorded.
    pub record: Record,
}

/// What an entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Records are built once and moved into the log; boxing the larger variant
// would only add an allocation per decision.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    /// A decision of the gate.
    Decision(DecisionRecord),
    /// The outcome of an earlier decision's action.
    Outcome(OutcomeRecord),
    /// A change made by a person or by warden itself outside a decision:
    /// an agent created or suspended, a token revoked, a ring demotion.
    Event(EventRecord),
}

/// A decision of the gate, with every field that explains it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// When the decision was made, in nanoseconds since the Unix epoch (UTC).
    pub time_unix_nanos: u64,
    /// The agent that asked (its DID).
    pub agent: String,
    /// The agent's session.
    pub session: String,
    /// The intervention point, e.g. `pre_tool_call`.
    pub point: String,
    /// The tool (or model, or peer) the action addresses.
    pub tool: String,
    /// The action's arguments, or only their hash.
    pub arguments: Arguments,
    /// Intents read from the arguments, e.g. `destructive`.
    pub intents: Vec<String>,
    /// The verdict: `allow`, `deny`, `require_approval`, `transform` or `warn`.
    pub verdict: String,
    /// The id of the rule that decided, if a rule did (else the default).
    pub rule: Option<String>,
    /// Machine-readable reason, e.g. `rule:no-drop` or `error:audit_unavailable`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// The gate's hash of the whole action, as the gate renders it.
    pub action_hash: String,
    /// Name of the policy in force.
    pub policy_name: String,
    /// Hash of the policy in force, as the policy crate renders it.
    pub policy_hash: String,
    /// The accountable human behind the agent, when the agent proved its
    /// identity with a capability token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sponsor: Option<String>,
    /// Who asked for the decision over the API: the name of the caller's
    /// bearer token in the decision server's tokens file. Absent without
    /// authentication and outside the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
}

/// A change outside a decision, and who made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When it happened, in nanoseconds since the Unix epoch (UTC).
    pub time_unix_nanos: u64,
    /// Who did it: a person (e.g. `cli:alice`) or `warden`.
    pub actor: String,
    /// What was done, e.g. `agent.created`, `agent.status`, `token.revoked`.
    pub action: String,
    /// What it was done to: an agent DID, a token's revocation id.
    pub subject: String,
    /// Details as JSON text, exactly as the caller serialized them.
    pub details: String,
}

/// The arguments of an action, in full or by hash only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arguments {
    /// The arguments as JSON text, exactly as the gate serialized them.
    Json(String),
    /// Only the SHA-256 of that JSON text (the policy asked not to keep it).
    Sha256(#[serde(with = "hex_hash")] Hash),
}

impl Arguments {
    /// The hashed form of the given JSON text: `SHA-256(json)`.
    pub fn hashed(json: &str) -> Self {
        use sha2::{Digest, Sha256};
        Self::Sha256(Sha256::digest(json.as_bytes()).into())
    }
}

/// What happened when an allowed action ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action ran and reported success.
    Succeeded,
    /// The action ran and reported an error.
    Failed,
    /// Nobody knows (timeout, lost connection, crash).
    Unknown,
}

/// The outcome of an earlier decision, appended as its own entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// When the outcome was observed, in nanoseconds since the Unix epoch (UTC).
    pub time_unix_nanos: u64,
    /// Sequence number of the decision this outcome belongs to.
    pub decision_seq: u64,
    /// What happened.
    pub outcome: Outcome,
    /// SHA-256 of the tool result, when there was one.
    #[serde(with = "opt_hex_hash")]
    pub result_hash: Option<Hash>,
    /// Error text, when the action failed.
    pub error: Option<String>,
}

/// Why a record could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded entry would exceed [`MAX_ENTRY_BYTES`].
    #[error(
        "entry {seq} encodes to {bytes} bytes, more than the limit of {MAX_ENTRY_BYTES}; hint: log the arguments by hash (audit: {{arguments: hash}})"
    )]
    TooLarge {
        /// The entry's sequence number.
        seq: u64,
        /// Its encoded size.
        bytes: usize,
    },
    /// The record carries more than [`MAX_INTENTS`] intents.
    #[error(
        "entry {seq} has {count} intents, more than the limit of {MAX_INTENTS}; hint: intents are a small fixed vocabulary, deduplicate them"
    )]
    TooManyIntents {
        /// The entry's sequence number.
        seq: u64,
        /// How many intents it has.
        count: usize,
    },
}

/// Why bytes are not a valid encoded entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid audit entry encoding at byte {offset}: {what}; hint: the stored record was altered or written by an incompatible version"
)]
pub struct DecodeError {
    /// Byte offset where decoding stopped.
    pub offset: usize,
    /// What was wrong there.
    pub what: String,
}

impl Entry {
    /// The canonical encoding of this entry: the RFC 6962 leaf data.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer(Vec::with_capacity(256));
        w.u8(ENCODING_VERSION);
        match &self.record {
            Record::Decision(d) => {
                if d.intents.len() > MAX_INTENTS {
                    return Err(EncodeError::TooManyIntents {
                        seq: self.seq,
                        count: d.intents.len(),
                    });
                }
                w.u8(match (&d.caller, &d.sponsor) {
                    (Some(_), _) => KIND_CALLER_DECISION,
                    (None, Some(_)) => KIND_SPONSORED_DECISION,
                    (None, None) => KIND_DECISION,
                });
                w.u64(self.seq);
                w.u64(d.time_unix_nanos);
                w.str(&d.agent);
                w.str(&d.session);
                w.str(&d.point);
                w.str(&d.tool);
                match &d.arguments {
                    Arguments::Json(json) => {
                        w.u8(0x00);
                        w.str(json);
                    }
                    Arguments::Sha256(hash) => {
                        w.u8(0x01);
                        w.0.extend_from_slice(hash);
                    }
                }
                w.u32(d.intents.len() as u32);
                for intent in &d.intents {
                    w.str(intent);
                }
                w.str(&d.verdict);
                w.opt_str(d.rule.as_deref());
                w.str(&d.reason);
                w.str(&d.message);
                w.str(&d.action_hash);
                w.str(&d.policy_name);
                w.str(&d.policy_hash);
                match &d.caller {
                    Some(caller) => {
                        w.opt_str(d.sponsor.as_deref());
                        w.str(caller);
                    }
                    None => {
                        if let Some(sponsor) = &d.sponsor {
                            w.str(sponsor);
                        }
                    }
                }
            }
            Record::Outcome(o) => {
                w.u8(KIND_OUTCOME);
                w.u64(self.seq);
                w.u64(o.time_unix_nanos);
                w.u64(o.decision_seq);
                w.u8(match o.outcome {
                    Outcome::Succeeded => 0x01,
                    Outcome::Failed => 0x02,
                    Outcome::Unknown => 0x03,
                });
                match &o.result_hash {
                    None => w.u8(0x00),
                    Some(hash) => {
                        w.u8(0x01);
                        w.0.extend_from_slice(hash);
                    }
                }
                w.opt_str(o.error.as_deref());
            }
            Record::Event(e) => {
                w.u8(KIND_EVENT);
                w.u64(self.seq);
                w.u64(e.time_unix_nanos);
                w.str(&e.actor);
                w.str(&e.action);
                w.str(&e.subject);
                w.str(&e.details);
            }
        }
        if w.0.len() > MAX_ENTRY_BYTES {
            return Err(EncodeError::TooLarge {
                seq: self.seq,
                bytes: w.0.len(),
            });
        }
        Ok(w.0)
    }

    /// Decode an entry. Accepts exactly the bytes [`Entry::encode`]
    /// produces: decoding then re-encoding gives the same bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(r.fail(format!(
                "{} bytes is more than the limit of {MAX_ENTRY_BYTES}",
                bytes.len()
            )));
        }
        let version = r.u8()?;
        if version != ENCODING_VERSION {
            return Err(DecodeError {
                offset: 0,
                what: format!("unknown format version {version} (expected {ENCODING_VERSION})"),
            });
        }
        let kind_at = r.pos;
        let kind = r.u8()?;
        let seq = r.u64()?;
        let record = match kind {
            KIND_DECISION | KIND_SPONSORED_DECISION | KIND_CALLER_DECISION => {
                let time_unix_nanos = r.u64()?;
                let agent = r.str()?;
                let session = r.str()?;
                let point = r.str()?;
                let tool = r.str()?;
                let tag_at = r.pos;
                let arguments = match r.u8()? {
                    0x00 => Arguments::Json(r.str()?),
                    0x01 => Arguments::Sha256(r.hash()?),
                    other => {
                        return Err(DecodeError {
                            offset: tag_at,
                            what: format!("unknown arguments tag {other:#04x}"),
                        });
                    }
                };
                let count_at = r.pos;
                let count = r.u32()? as usize;
                if count > MAX_INTENTS {
                    return Err(DecodeError {
                        offset: count_at,
                        what: format!("{count} intents, more than the limit of {MAX_INTENTS}"),
                    });
                }
                let mut intents = Vec::with_capacity(count);
                for _ in 0..count {
                    intents.push(r.str()?);
                }
                Record::Decision(DecisionRecord {
                    time_unix_nanos,
                    agent,
                    session,
                    point,
                    tool,
                    arguments,
                    intents,
                    verdict: r.str()?,
                    rule: r.opt_str()?,
                    reason: r.str()?,
                    message: r.str()?,
                    action_hash: r.str()?,
                    policy_name: r.str()?,
                    policy_hash: r.str()?,
                    sponsor: match kind {
                        KIND_SPONSORED_DECISION => Some(r.str()?),
                        KIND_CALLER_DECISION => r.opt_str()?,
                        _ => None,
                    },
                    caller: if kind == KIND_CALLER_DECISION {
                        Some(r.str()?)
                    } else {
                        None
                    },
                })
            }
            KIND_EVENT => Record::Event(EventRecord {
                time_unix_nanos: r.u64()?,
                actor: r.str()?,
                action: r.str()?,
                subject: r.str()?,
                details: r.str()?,
            }),
            KIND_OUTCOME => {
                let time_unix_nanos = r.u64()?;
                let decision_seq = r.u64()?;
                let outcome_at = r.pos;
                let outcome = match r.u8()? {
                    0x01 => Outcome::Succeeded,
                    0x02 => Outcome::Failed,
                    0x03 => Outcome::Unknown,
                    other => {
                        return Err(DecodeError {
                            offset: outcome_at,
                            what: format!("unknown outcome {other:#04x}"),
                        });
                    }
                };
                let tag_at = r.pos;
                let result_hash = match r.u8()? {
                    0x00 => None,
                    0x01 => Some(r.hash()?),
                    other => {
                        return Err(DecodeError {
                            offset: tag_at,
                            what: format!("invalid option tag {other:#04x}"),
                        });
                    }
                };
                Record::Outcome(OutcomeRecord {
                    time_unix_nanos,
                    decision_seq,
                    outcome,
                    result_hash,
                    error: r.opt_str()?,
                })
            }
            other => {
                return Err(DecodeError {
                    offset: kind_at,
                    what: format!("unknown record kind {other:#04x}"),
                });
            }
        };
        if r.pos != bytes.len() {
            return Err(r.fail(format!("{} trailing bytes", bytes.len() - r.pos)));
        }
        Ok(Entry { seq, record })
    }

    /// Encode and hash: the entry's RFC 6962 leaf hash and its leaf data.
    pub fn leaf(&self) -> Result<(Hash, Vec<u8>), EncodeError> {
        let data = self.encode()?;
        Ok((leaf_hash(&data), data))
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn str(&mut self, s: &str) {
        // Lengths above u32::MAX cannot occur: the entry limit is far lower
        // and encode() rejects the result before it is used.
        self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0x00),
            Some(s) => {
                self.u8(0x01);
                self.str(s);
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn fail(&self, what: String) -> DecodeError {
        DecodeError {
            offset: self.pos,
            what,
        }
    }
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                self.fail(format!(
                    "needs {n} more bytes but only {} remain",
                    self.bytes.len() - self.pos
                ))
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn hash(&mut self) -> Result<Hash, DecodeError> {
        self.array()
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let len = self.u32()? as usize;
        let at = self.pos;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|e| DecodeError {
            offset: at + e.utf8_error().valid_up_to(),
            what: "string is not valid UTF-8".into(),
        })
    }
    fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0x00 => Ok(None),
            0x01 => Ok(Some(self.str()?)),
            other => Err(DecodeError {
                offset: at,
                what: format!("invalid option tag {other:#04x}"),
            }),
        }
    }
}

/// Serde helper: a hash as lowercase hex.
mod hex_hash {
    use super::Hash;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(hash: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out)
            .map_err(|e| D::Error::custom(format!("{text:?} is not 64 hex digits: {e}")))?;
        Ok(out)
    }
}

/// Serde helper: an optional hash as lowercase hex or null.
mod opt_hex_hash {
    use super::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &Option<Hash>, s: S) -> Result<S::Ok, S::Error> {
        match hash {
            Some(h) => super::hex_hash::serialize(h, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Hash>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::hex_hash")] Hash);
        Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(h)| h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision() -> Entry {
        Entry {
            seq: 7,
            record: Record::Decision(DecisionRecord {
                time_unix_nanos: 1_700_000_000_123_456_789,
                agent: "did:key:z6Mk".into(),
                session: "s-1".into(),
                point: "pre_tool_call".into(),
                tool: "sql.query".into(),
                arguments: Arguments::Json(r#"{"q":"DROP TABLE t"}"#.into()),
                intents: vec!["destructive".into()],
                verdict: "deny".into(),
                rule: Some("no-drop".into()),
                reason: "rule:no-drop".into(),
                message: "dropping tables is not allowed".into(),
                action_hash: "ab".repeat(32),
                policy_name: "prod".into(),
                policy_hash: "cd".repeat(32),
                sponsor: None,
                caller: None,
            }),
        }
    }

    fn outcome() -> Entry {
        Entry {
            seq: 8,
            record: Record::Outcome(OutcomeRecord {
                time_unix_nanos: 5,
                decision_seq: 7,
                outcome: Outcome::Failed,
                result_hash: Some([9; 32]),
                error: Some("timeout".into()),
            }),
        }
    }

    fn sponsored() -> Entry {
        let mut e = decision();
        if let Record::Decision(d) = &mut e.record {
            d.sponsor = Some("alice@example.com".into());
        }
        e
    }

    fn called(sponsor: Option<&str>) -> Entry {
        let mut e = decision();
        if let Record::Decision(d) = &mut e.record {
            d.sponsor = sponsor.map(String::from);
            d.caller = Some("support-bot".into());
        }
        e
    }

    fn event() -> Entry {
        Entry {
            seq: 9,
            record: Record::Event(EventRecord {
                time_unix_nanos: 6,
                actor: "cli:alice".into(),
                action: "agent.status".into(),
                subject: "did:key:z6Mk".into(),
                details: r#"{"from":"active","to":"suspended"}"#.into(),
            }),
        }
    }

    #[test]
    fn sponsored_decisions_are_decisions_plus_the_sponsor() {
        // Kind 0x03: the bytes of kind 0x01, then the sponsor.
        let mut want = decision().encode().unwrap();
        want[1] = 0x03;
        want.extend(s("alice@example.com"));
        assert_eq!(sponsored().encode().unwrap(), want);
        // A 0x03 entry without the sponsor does not decode.
        let mut bare = decision().encode().unwrap();
        bare[1] = 0x03;
        assert!(Entry::decode(&bare).is_err());
    }

    #[test]
    fn decisions_by_a_caller_are_decisions_plus_an_optional_sponsor_and_the_caller() {
        // Kind 0x05: the bytes of kind 0x01, the sponsor as an option, the caller.
        let mut want = decision().encode().unwrap();
        want[1] = 0x05;
        want.push(0x00);
        want.extend(s("support-bot"));
        assert_eq!(called(None).encode().unwrap(), want);
        let mut want = decision().encode().unwrap();
        want[1] = 0x05;
        want.push(0x01);
        want.extend(s("alice@example.com"));
        want.extend(s("support-bot"));
        assert_eq!(called(Some("alice@example.com")).encode().unwrap(), want);
        // A 0x05 entry without the caller does not decode.
        let mut bare = decision().encode().unwrap();
        bare[1] = 0x05;
        bare.push(0x00);
        assert!(Entry::decode(&bare).is_err());
    }

    #[test]
    fn event_encoding_follows_the_spec_byte_for_byte() {
        let mut want = vec![0x01, 0x04];
        want.extend(9u64.to_be_bytes());
        want.extend(6u64.to_be_bytes());
        for f in [
            "cli:alice",
            "agent.status",
            "did:key:z6Mk",
            r#"{"from":"active","to":"suspended"}"#,
        ] {
            want.extend(s(f));
        }
        assert_eq!(event().encode().unwrap(), want);
    }

    /// Build the expected bytes by hand from the spec in ARCHITECTURE.md, independently of
    /// the encoder.
    fn s(text: &str) -> Vec<u8> {
        [&(text.len() as u32).to_be_bytes()[..], text.as_bytes()].concat()
    }

    #[test]
    fn decision_encoding_follows_the_spec_byte_for_byte() {
        let e = decision();
        let mut want = vec![0x01, 0x01];
        want.extend(7u64.to_be_bytes());
        want.extend(1_700_000_000_123_456_789u64.to_be_bytes());
        for f in ["did:key:z6Mk", "s-1", "pre_tool_call", "sql.query"] {
            want.extend(s(f));
        }
        want.push(0x00);
        want.extend(s(r#"{"q":"DROP TABLE t"}"#));
        want.extend(1u32.to_be_bytes());
        want.extend(s("destructive"));
        want.extend(s("deny"));
        want.push(0x01);
        want.extend(s("no-drop"));
        for f in ["rule:no-drop", "dropping tables is not allowed"] {
            want.extend(s(f));
        }
        want.extend(s(&"ab".repeat(32)));
        want.extend(s("prod"));
        want.extend(s(&"cd".repeat(32)));
        assert_eq!(e.encode().unwrap(), want);
    }

    #[test]
    fn outcome_encoding_follows_the_spec_byte_for_byte() {
        let mut want = vec![0x01, 0x02];
        want.extend(8u64.to_be_bytes());
        want.extend(5u64.to_be_bytes());
        want.extend(7u64.to_be_bytes());
        want.push(0x02);
        want.push(0x01);
        want.extend([9u8; 32]);
        want.push(0x01);
        want.extend(s("timeout"));
        assert_eq!(outcome().encode().unwrap(), want);
    }

    #[test]
    fn every_field_changes_the_leaf_hash() {
        let base = decision();
        let (base_hash, _) = base.leaf().unwrap();
        let Record::Decision(d) = &base.record else {
            unreachable!()
        };
        let mut variants: Vec<DecisionRecord> = Vec::new();
        macro_rules! vary {
            ($field:ident = $value:expr) => {{
                let mut v = d.clone();
                v.$field = $value;
                variants.push(v);
            }};
        }
        vary!(time_unix_nanos = 1);
        vary!(agent = "did:key:other".into());
        vary!(session = "s-2".into());
        vary!(point = "post_tool_call".into());
        vary!(tool = "sql.exec".into());
        vary!(arguments = Arguments::hashed(r#"{"q":"DROP TABLE t"}"#));
        vary!(intents = vec![]);
        vary!(verdict = "allow".into());
        vary!(rule = None);
        vary!(reason = "default".into());
        vary!(message = String::new());
        vary!(action_hash = "00".into());
        vary!(policy_name = "dev".into());
        vary!(policy_hash = "11".into());
        vary!(sponsor = Some("alice@example.com".into()));
        vary!(caller = Some("support-bot".into()));
        for v in variants {
            let e = Entry {
                seq: base.seq,
                record: Record::Decision(v),
            };
            assert_ne!(e.leaf().unwrap().0, base_hash, "{e:?}");
        }
        let moved = Entry { seq: 8, ..base };
        assert_ne!(moved.leaf().unwrap().0, base_hash);
    }

    #[test]
    fn decode_inverts_encode_and_rejects_every_truncation_and_trailing_byte() {
        for e in [
            decision(),
            outcome(),
            sponsored(),
            called(None),
            called(Some("alice@example.com")),
            event(),
        ] {
            let bytes = e.encode().unwrap();
            assert_eq!(Entry::decode(&bytes).unwrap(), e);
            for cut in 0..bytes.len() {
                assert!(
                    Entry::decode(&bytes[..cut]).is_err(),
                    "prefix {cut} decoded"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Entry::decode(&longer).is_err());
        }
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        // Moving a character between adjacent strings changes the bytes.
        let mut a = decision();
        let mut b = decision();
        if let (Record::Decision(x), Record::Decision(y)) = (&mut a.record, &mut b.record) {
            x.agent = "ab".into();
            x.session = "c".into();
            y.agent = "a".into();
            y.session = "bc".into();
        }
        assert_ne!(a.encode().unwrap(), b.encode().unwrap());
    }

    #[test]
    fn invalid_tags_and_utf8_are_refused_with_their_offset() {
        let mut bytes = outcome().encode().unwrap();
        bytes[26] = 0x07; // outcome byte
        let err = Entry::decode(&bytes).unwrap_err();
        assert_eq!(err.offset, 26);
        assert!(err.to_string().contains("hint"));

        let mut bytes = decision().encode().unwrap();
        bytes[22] = 0xff; // first byte of the agent string
        assert_eq!(Entry::decode(&bytes).unwrap_err().offset, 22);
        assert_eq!(Entry::decode(&[0x02]).unwrap_err().offset, 0);
    }

    #[test]
    fn limits_are_enforced_on_encode_and_decode() {
        let mut e = decision();
        if let Record::Decision(d) = &mut e.record {
            d.arguments = Arguments::Json("x".repeat(MAX_ENTRY_BYTES));
        }
        assert!(matches!(
            e.encode(),
            Err(EncodeError::TooLarge { seq: 7, .. })
        ));
        let mut e = decision();
        if let Record::Decision(d) = &mut e.record {
            d.intents = vec!["i".into(); MAX_INTENTS + 1];
        }
        assert!(matches!(
            e.encode(),
            Err(EncodeError::TooManyIntents { .. })
        ));
        // A forged huge intent count is refused before allocating.
        let mut bytes = decision().encode().unwrap();
        let at = 2
            + 16
            + 4 * 4
            + "did:key:z6Mk".len()
            + 3
            + "pre_tool_call".len()
            + "sql.query".len()
            + 1
            + 4
            + r#"{"q":"DROP TABLE t"}"#.len();
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Entry::decode(&bytes).is_err());
        // A forged string length past the end is refused.
        let mut bytes = decision().encode().unwrap();
        bytes[18..22].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Entry::decode(&bytes).is_err());
    }

    #[test]
    fn json_form_round_trips_with_hex_hashes() {
        for e in [decision(), outcome()] {
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
        }
        let json = serde_json::to_string(&outcome()).unwrap();
        assert!(json.contains(&"09".repeat(32)), "{json}");
        assert!(json.contains(r#""kind":"outcome""#), "{json}");
    }

    #[test]
    fn the_example_in_the_spec_is_what_the_encoder_produces() {
        let doc = include_str!("../../../ARCHITECTURE.md");
        let start = doc.find("encodes to (hex").unwrap();
        let block = &doc[start..];
        let block = &block[block.find("```\n").unwrap() + 4..];
        let block = &block[..block.find("```").unwrap()];
        let doc_hex: String = block.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(doc_hex, hex::encode(outcome().encode().unwrap()));
    }
}
