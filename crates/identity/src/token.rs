//! Capability tokens: attenuating, offline-verifiable delegation with biscuit.
//!
//! # Shape of a token
//!
//! An organisation's key (a did:key, the *issuer*) mints a token for an
//! agent with [`issue`]. Its authority block, signed by the issuer, holds
//!
//! ```text
//! agent("did:key:…"); sponsor("alice@example.com");
//! check if tool($tool), $tool.matches("(?s)^read_.*$") || …;
//! check if ring($ring), $ring >= 2;
//! check if time($time), $time < 2026-12-01T12:00:00Z;
//! ```
//!
//! and, as the block's context, the same rights as JSON (issuer, agent,
//! sponsor, tools, ring, expiry). Delegating ([`VerifiedToken::attenuate`])
//! appends a biscuit *third-party* block signed by the current holder's own
//! did:key, holding `delegate("did:key:…")` and the same three checks over
//! the narrower rights. Only a holder of the agent's private key can
//! delegate its token, so a leaked token cannot be re-delegated to a thief.
//!
//! # Why attenuation cannot widen
//!
//! Rights are enforced by checks, and every block's checks must pass:
//! biscuit evaluates a block's checks over the authority block, that block
//! and the authorizer's facts (`tool`, `ring`, `time`), never over facts a
//! later block adds. Whatever datalog an attacker appends, the issuer's
//! checks still run against the real request, so effective rights are the
//! intersection along the chain. On top, [`TokenVerifier`] refuses any
//! block that is not exactly the canonical datalog of its declared rights
//! (so the fast path in [`VerifiedToken::authorize`], which reads the
//! declared rights, answers what biscuit's authorizer would), any link whose
//! rights are not within its parent's ([`TokenError::WidenedRights`]), and
//! any delegation block not signed by the previous holder.
//!
//! # Verification
//!
//! Always all of: size limit, every block signature (biscuit, Ed25519
//! `verify_strict`), the root against the configured trusted issuers (no
//! fallback), the delegator signatures, the chain depth, the revocation list
//! (biscuit revocation ids, one per block) and expiry against the `now`
//! passed in. Verified tokens are cached by SHA-256 of their text; a cache
//! hit still checks expiry and revocation.

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::{Algorithm, Term};
use biscuit_auth::error::{Format, Token as BiscuitError};
use biscuit_auth::{
    AuthorizerBuilder, AuthorizerLimits, Biscuit, BlockBuilder, KeyPair, PrivateKey, PublicKey,
};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::agent::{Ring, Sponsor};
use crate::did::{Did, quote};
use crate::glob::{MAX_TOOL_NAME_BYTES, ToolPattern};
use crate::key::IdentityKey;
use crate::time::{format_rfc3339, unix_seconds};

/// Most delegations after the agent's own link (issuer → agent → 5 delegates).
pub const MAX_DELEGATION_DEPTH: usize = 5;
/// Longest token text accepted (base64url), checked before decoding.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// Most tool patterns in one link.
pub const MAX_TOOLS_PER_LINK: usize = 32;
/// Longest lifetime a token or delegation may be given.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(366 * 24 * 3600);
/// Verified tokens kept in a [`TokenVerifier`]'s cache.
pub const TOKEN_CACHE_CAPACITY: usize = 4096;
/// Version of the JSON rights in each block's context.
const CONTEXT_VERSION: u32 = 1;
/// Datalog run limits for [`VerifiedToken::authorize_datalog`]: the blocks
/// are canonical and tiny, so these are generous.
const DATALOG_MAX_FACTS: u64 = 1000;
const DATALOG_MAX_ITERATIONS: u64 = 100;
const DATALOG_MAX_TIME: Duration = Duration::from_millis(100);

/// Why a token was refused, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`]; not decoded.
    #[error("token is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a biscuit, or not one of warden's shape.
    #[error("token is malformed: {detail}")]
    Malformed {
        /// What is wrong.
        detail: String,
    },
    /// A block's signature does not verify: the token was altered.
    #[error("token signature does not verify (the token was altered or is corrupt): {detail}")]
    BadSignature {
        /// What biscuit said.
        detail: String,
    },
    /// The root key is not one of the trusted issuers.
    #[error(
        "token is signed by an issuer that is not trusted (root key id {key_id:?}) (hint: add the issuer's did:key to the trusted issuers)"
    )]
    UnknownRoot {
        /// The token's root key id, if it names one.
        key_id: Option<u32>,
    },
    /// A delegation block is not signed by the link before it.
    #[error("link {link} is signed by {found}, not by the holder it delegates from, {expected}")]
    WrongDelegator {
        /// Link index (0 is the agent).
        link: usize,
        /// The holder that must sign.
        expected: String,
        /// Who signed (DID, or a description).
        found: String,
    },
    /// More delegations than allowed.
    #[error("token has {depth} delegations; at most {max} allowed")]
    TooDeep {
        /// Delegations in the chain.
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// A link claims more than its parent holds.
    #[error("link {link} widens its parent's rights: {detail}")]
    WidenedRights {
        /// Link index (0 is the agent).
        link: usize,
        /// Which right.
        detail: String,
    },
    /// Expired at `now`.
    #[error("token expired at {} (link {link}); now is {}", format_rfc3339(*.expires_unix), format_rfc3339(*.now_unix))]
    Expired {
        /// The link whose expiry passed first.
        link: usize,
        /// When it expired.
        expires_unix: u64,
        /// The time of the check.
        now_unix: u64,
    },
    /// A block's revocation id is on the revocation list.
    #[error("token is revoked (link {link}, revocation id {id})")]
    Revoked {
        /// Link index.
        link: usize,
        /// The revoked id.
        id: String,
    },
    /// The tool is outside the token's rights.
    #[error("tool {tool:?} is not granted by link {link} of the token (granted: {granted})")]
    ToolNotGranted {
        /// The tool asked for, shortened.
        tool: String,
        /// The first link that does not grant it.
        link: usize,
        /// The patterns that link grants.
        granted: String,
    },
    /// The ring asked for is more privileged than the token allows.
    #[error("{ring} is more privileged than the token's ceiling, {ceiling}")]
    RingNotGranted {
        /// The ring of the call.
        ring: Ring,
        /// The token's ceiling.
        ceiling: Ring,
    },
    /// Biscuit's authorizer refused (only from [`VerifiedToken::authorize_datalog`]).
    #[error("token's datalog checks refuse the request: {detail}")]
    DatalogDenied {
        /// What biscuit said.
        detail: String,
    },
    /// A bad issue or attenuation request (empty tools, zero TTL, …).
    #[error("invalid token request: {problem}")]
    InvalidRequest {
        /// What is wrong.
        problem: String,
    },
    /// A verifier with no trusted issuers would refuse everything; refused at construction.
    #[error("no trusted issuers configured (hint: name the organisation's did:key)")]
    NoTrustedIssuers,
}

impl TokenError {
    /// A short stable code for decision reasons and metrics, e.g. `token_expired`.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::TooLarge { .. } => "token_too_large",
            TokenError::Malformed { .. } => "token_malformed",
            TokenError::BadSignature { .. } => "token_bad_signature",
            TokenError::UnknownRoot { .. } => "token_unknown_issuer",
            TokenError::WrongDelegator { .. } => "token_wrong_delegator",
            TokenError::TooDeep { .. } => "token_too_deep",
            TokenError::WidenedRights { .. } => "token_widened_rights",
            TokenError::Expired { .. } => "token_expired",
            TokenError::Revoked { .. } => "token_revoked",
            TokenError::ToolNotGranted { .. } => "token_tool_not_granted",
            TokenError::RingNotGranted { .. } => "token_ring_not_granted",
            TokenError::DatalogDenied { .. } => "token_datalog_denied",
            TokenError::InvalidRequest { .. } => "token_invalid_request",
            TokenError::NoTrustedIssuers => "token_no_trusted_issuers",
        }
    }
}

fn malformed(detail: impl Into<String>) -> TokenError {
    TokenError::Malformed {
        detail: detail.into(),
    }
}

fn invalid(problem: impl Into<String>) -> TokenError {
    TokenError::InvalidRequest {
        problem: problem.into(),
    }
}

/// Errors from building blocks or appending: these are our own inputs, so
/// any failure is reported as an invalid request.
fn build_error(e: BiscuitError) -> TokenError {
    invalid(format!("biscuit refused the block: {e}"))
}

/// What one link of the chain may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rights {
    /// Tool-name patterns; a call must match one of them.
    pub tools: Vec<ToolPattern>,
    /// The most privileged ring a call may run at (calls need ring ≥ this number).
    pub ring_ceiling: Ring,
    /// Expiry, seconds since the epoch; valid while `now < expires_unix`.
    pub expires_unix: u64,
}

impl Rights {
    /// Whether `self` holds no more than `parent`, or which right it widens.
    fn within(&self, parent: &Rights) -> Result<(), String> {
        for tool in &self.tools {
            if !parent.tools.iter().any(|p| p.covers(tool)) {
                return Err(format!(
                    "tool pattern {tool:?} is not within the parent's {}",
                    join(&parent.tools)
                ));
            }
        }
        if self.ring_ceiling.get() < parent.ring_ceiling.get() {
            return Err(format!(
                "ring ceiling {} is more privileged than the parent's {}",
                self.ring_ceiling.get(),
                parent.ring_ceiling.get()
            ));
        }
        if self.expires_unix > parent.expires_unix {
            return Err(format!(
                "expiry {} is later than the parent's {}",
                format_rfc3339(self.expires_unix),
                format_rfc3339(parent.expires_unix)
            ));
        }
        Ok(())
    }

    fn check_request(&self) -> Result<(), TokenError> {
        if self.tools.is_empty() {
            return Err(invalid("at least one tool pattern is needed"));
        }
        if self.tools.len() > MAX_TOOLS_PER_LINK {
            return Err(invalid(format!(
                "{} tool patterns; at most {MAX_TOOLS_PER_LINK} per link",
                self.tools.len()
            )));
        }
        Ok(())
    }
}

fn join(tools: &[ToolPattern]) -> String {
    let names: Vec<&str> = tools.iter().map(ToolPattern::as_str).collect();
    format!("[{}]", names.join(", "))
}

/// What the issuer grants an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The agent.
    pub agent: Did,
    /// The agent's accountable human; carried to every delegate.
    pub sponsor: Sponsor,
    /// Tools the agent may call.
    pub tools: Vec<ToolPattern>,
    /// The most privileged ring the agent may act at.
    pub ring_ceiling: Ring,
    /// Lifetime from `now`.
    pub ttl: Duration,
}

/// What a holder hands on to a sub-agent. Each field may only narrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attenuation {
    /// The sub-agent.
    pub delegate: Did,
    /// Tools, each within one of the parent's patterns.
    pub tools: Vec<ToolPattern>,
    /// Ring ceiling; `None` keeps the parent's. A number below the parent's is an error.
    pub ring_ceiling: Option<Ring>,
    /// Lifetime from `now`; `None` keeps the parent's expiry. Outliving the parent is an error.
    pub ttl: Option<Duration>,
}

/// A token as text (biscuit, base64url). `Debug` shows only its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token text, to hand to the agent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `sha256:<hex>` of the text, the cache key and a safe way to name a token in logs.
    pub fn hash(&self) -> String {
        format!("sha256:{}", hex::encode(token_hash(&self.0)))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}, {} bytes)", self.hash(), self.0.len())
    }
}

fn token_hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A block's revocation id (its signature, as lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RevocationId(String);

impl RevocationId {
    /// Parses a revocation id: 128 hex characters (a 64-byte Ed25519 signature).
    pub fn parse(text: &str) -> Result<RevocationId, TokenError> {
        let text = text.trim();
        if text.len() != 128 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "revocation id {:?} is not 128 hex characters",
                quote(text)
            )));
        }
        Ok(RevocationId(text.to_ascii_lowercase()))
    }

    /// The id as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RevocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RevocationId {
    type Error = TokenError;
    fn try_from(s: String) -> Result<RevocationId, TokenError> {
        RevocationId::parse(&s)
    }
}

impl From<RevocationId> for String {
    fn from(r: RevocationId) -> String {
        r.0
    }
}

/// The role of a link in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkRole {
    /// The agent the issuer minted the token for (link 0).
    Agent,
    /// A sub-agent a holder delegated to.
    Delegate,
}

/// One link of a verified chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Agent or delegate.
    pub role: LinkRole,
    /// Who holds the token at this link.
    pub did: Did,
    /// What this link may do (already within its parent's).
    pub rights: Rights,
    /// The block's revocation id; revoking it revokes this link and all below.
    pub revocation_id: RevocationId,
}

/// The rights as a block's context (JSON), the declared form of its checks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "link", rename_all = "snake_case", deny_unknown_fields)]
enum BlockContext {
    Agent {
        v: u32,
        /// Compared as text with the issuer whose key verified the root.
        issuer: String,
        agent: Did,
        sponsor: Sponsor,
        tools: Vec<ToolPattern>,
        ring: Ring,
        expires: u64,
    },
    Delegate {
        v: u32,
        delegate: Did,
        tools: Vec<ToolPattern>,
        ring: Ring,
        expires: u64,
    },
}

/// The canonical block for a link: head fact(s), then the three checks.
fn canonical_block(
    head: &str,
    did: &Did,
    sponsor: Option<&Sponsor>,
    rights: &Rights,
    context: String,
) -> Result<BlockBuilder, TokenError> {
    let mut code = String::new();
    let mut params: HashMap<String, Term> = HashMap::new();
    let _ = writeln!(code, "{head}({{did}});");
    params.insert("did".into(), Term::Str(did.as_str().to_string()));
    if let Some(sponsor) = sponsor {
        code.push_str("sponsor({sponsor});\n");
        params.insert("sponsor".into(), Term::Str(sponsor.as_str().to_string()));
    }
    code.push_str("check if tool($tool), ");
    for (i, tool) in rights.tools.iter().enumerate() {
        if i > 0 {
            code.push_str(" || ");
        }
        let _ = write!(code, "$tool.matches({{re{i}}})");
        params.insert(format!("re{i}"), Term::Str(tool.to_regex()));
    }
    code.push_str(
        ";\ncheck if ring($ring), $ring >= {ring};\ncheck if time($time), $time < {expires};\n",
    );
    params.insert(
        "ring".into(),
        Term::Integer(rights.ring_ceiling.get().into()),
    );
    params.insert("expires".into(), Term::Date(rights.expires_unix));
    Ok(BlockBuilder::new()
        .code_with_params(code, params, HashMap::new())
        .map_err(build_error)?
        .context(context))
}

/// The canonical block's datalog exactly as biscuit prints it
/// (`print_block_source`), written out directly so verification does not
/// run the datalog parser. `canonical_block(..).to_string()` equals this;
/// a unit test holds the two together.
fn canonical_source(head: &str, did: &Did, sponsor: Option<&Sponsor>, rights: &Rights) -> String {
    let mut out = String::with_capacity(256 + rights.tools.len() * 48);
    let _ = writeln!(out, "{head}(\"{did}\");");
    if let Some(sponsor) = sponsor {
        let _ = writeln!(out, "sponsor(\"{sponsor}\");");
    }
    out.push_str("check if tool($tool), ");
    for (i, tool) in rights.tools.iter().enumerate() {
        if i > 0 {
            out.push_str(" || ");
        }
        let _ = write!(out, "$tool.matches(\"{}\")", tool.to_regex());
    }
    let _ = write!(
        out,
        ";\ncheck if ring($ring), $ring >= {};\ncheck if time($time), $time < {};\n",
        rights.ring_ceiling.get(),
        format_rfc3339(rights.expires_unix)
    );
    out
}

/// The key id a token names its root by: the first 4 bytes of SHA-256 of
/// the issuer's public key, big-endian.
pub fn root_key_id(issuer: &Did) -> u32 {
    let digest = Sha256::digest(issuer.public_key_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn biscuit_keypair(key: &IdentityKey) -> Result<KeyPair, TokenError> {
    let seed = key.seed();
    let private =
        PrivateKey::from_bytes(&seed[..], Algorithm::Ed25519).map_err(|e| build_error(e.into()))?;
    Ok(KeyPair::from(&private))
}

fn expiry(now: u64, ttl: Duration) -> Result<u64, TokenError> {
    if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
        return Err(invalid(format!(
            "lifetime {} s is outside 1 s – {} s",
            ttl.as_secs(),
            MAX_TOKEN_TTL.as_secs()
        )));
    }
    Ok(now.saturating_add(ttl.as_secs().max(1)))
}

fn check_size(token: String) -> Result<Token, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge {
            len: token.len(),
            max: MAX_TOKEN_BYTES,
        });
    }
    Ok(Token(token))
}

/// Mints an agent's token, signed by the issuer's key. The next-block key
/// biscuit needs comes from `rng`.
pub fn issue<R: CryptoRng + ?Sized>(
    issuer: &IdentityKey,
    grant: &Grant,
    now: SystemTime,
    rng: &mut R,
) -> Result<Token, TokenError> {
    let rights = Rights {
        tools: grant.tools.clone(),
        ring_ceiling: grant.ring_ceiling,
        expires_unix: expiry(unix_seconds(now), grant.ttl)?,
    };
    rights.check_request()?;
    let context = BlockContext::Agent {
        v: CONTEXT_VERSION,
        issuer: issuer.did().to_string(),
        agent: grant.agent.clone(),
        sponsor: grant.sponsor.clone(),
        tools: rights.tools.clone(),
        ring: rights.ring_ceiling,
        expires: rights.expires_unix,
    };
    let context = serde_json::to_string(&context).map_err(|e| invalid(e.to_string()))?;
    let block = canonical_block(
        "agent",
        &grant.agent,
        Some(&grant.sponsor),
        &rights,
        context,
    )?;
    let root = biscuit_keypair(issuer)?;
    let next = biscuit_keypair(&IdentityKey::generate(rng))?;
    let biscuit = Biscuit::builder()
        .merge(block)
        .root_key_id(root_key_id(issuer.did()))
        .build_with_key_pair(&root, biscuit_auth::datalog::SymbolTable::new(), &next)
        .map_err(build_error)?;
    check_size(biscuit.to_base64().map_err(build_error)?)
}

/// The revocation ids of a token's blocks, agent first, *without* verifying
/// it: for `warden token revoke`, where the token may already be expired or
/// its issuer no longer trusted. Revoking ids read this way cannot widen
/// anything; it can only refuse more.
pub fn revocation_ids(token: &str) -> Result<Vec<RevocationId>, TokenError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge {
            len: token.len(),
            max: MAX_TOKEN_BYTES,
        });
    }
    let unverified = biscuit_auth::UnverifiedBiscuit::from_base64(token)
        .map_err(|e| malformed(e.to_string()))?;
    Ok(unverified
        .revocation_identifiers()
        .iter()
        .map(|id| RevocationId(hex::encode(id)))
        .collect())
}

/// What [`VerifiedToken::authorize`] answers when a call is within rights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authorization {
    /// The DID holding the token (the last link): the caller must be this agent.
    pub agent: Did,
    /// The accountable human, carried from the agent's link.
    pub sponsor: Sponsor,
    /// The issuer that minted the chain.
    pub issuer: Did,
    /// Delegations between the issuer's agent and the holder.
    pub depth: usize,
}

/// A token whose whole chain verified. Cheap to query; see [`TokenVerifier::verify`].
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    hash: [u8; 32],
    issuer: Did,
    sponsor: Sponsor,
    links: Vec<Link>,
    effective: Rights,
    biscuit: Biscuit,
}

impl VerifiedToken {
    /// The issuer (root) of the chain.
    pub fn issuer(&self) -> &Did {
        &self.issuer
    }
    /// The accountable human.
    pub fn sponsor(&self) -> &Sponsor {
        &self.sponsor
    }
    /// The links, agent first, holder last.
    pub fn links(&self) -> &[Link] {
        &self.links
    }
    /// Who holds the token now (the last link's DID).
    pub fn holder(&self) -> &Did {
        // links is never empty: verification refuses a chain without the agent link.
        &self.links[self.links.len() - 1].did
    }
    /// Delegations after the agent's link.
    pub fn depth(&self) -> usize {
        self.links.len() - 1
    }
    /// The rights in force: the last link's tools (each within every parent's),
    /// the least privileged ring ceiling and the earliest expiry along the chain.
    pub fn effective_rights(&self) -> &Rights {
        &self.effective
    }
    /// `sha256:<hex>` of the token text.
    pub fn token_hash(&self) -> String {
        format!("sha256:{}", hex::encode(self.hash))
    }

    /// Whether a call to `tool` at `ring` is within the token's rights at
    /// `now`: every link must grant the tool, the ring must be at or below
    /// (numerically at or above) every ceiling, and no link may have
    /// expired. Returns the holder and sponsor; the caller must check that
    /// the action's agent is [`Authorization::agent`].
    pub fn authorize(
        &self,
        tool: &str,
        ring: Ring,
        now: SystemTime,
    ) -> Result<Authorization, TokenError> {
        let now_unix = unix_seconds(now);
        if now_unix >= self.effective.expires_unix {
            return Err(self.expired(now_unix));
        }
        if ring.get() < self.effective.ring_ceiling.get() {
            return Err(TokenError::RingNotGranted {
                ring,
                ceiling: self.effective.ring_ceiling,
            });
        }
        let too_long = tool.len() > MAX_TOOL_NAME_BYTES;
        for (i, link) in self.links.iter().enumerate() {
            if too_long || !link.rights.tools.iter().any(|p| p.matches(tool)) {
                return Err(TokenError::ToolNotGranted {
                    tool: quote(tool),
                    link: i,
                    granted: join(&link.rights.tools),
                });
            }
        }
        Ok(Authorization {
            agent: self.holder().clone(),
            sponsor: self.sponsor.clone(),
            issuer: self.issuer.clone(),
            depth: self.depth(),
        })
    }

    /// The same question answered by biscuit's own authorizer over the
    /// token's datalog (facts `tool`, `ring`, `time`; `allow if true`). Slower
    /// (tens of µs); [`VerifiedToken::authorize`] is held to the same answers by tests.
    pub fn authorize_datalog(
        &self,
        tool: &str,
        ring: Ring,
        now: SystemTime,
    ) -> Result<(), TokenError> {
        let mut params = HashMap::new();
        params.insert("tool".to_string(), Term::Str(tool.to_string()));
        params.insert("ring".to_string(), Term::Integer(ring.get().into()));
        params.insert("time".to_string(), Term::Date(unix_seconds(now)));
        let denied = |e: BiscuitError| TokenError::DatalogDenied {
            detail: e.to_string(),
        };
        let mut authorizer = AuthorizerBuilder::new()
            .code_with_params(
                "tool({tool}); ring({ring}); time({time}); allow if true;",
                params,
                HashMap::new(),
            )
            .map_err(denied)?
            .set_limits(AuthorizerLimits {
                max_facts: DATALOG_MAX_FACTS,
                max_iterations: DATALOG_MAX_ITERATIONS,
                max_time: DATALOG_MAX_TIME,
            })
            .build(&self.biscuit)
            .map_err(denied)?;
        authorizer.authorize().map(|_| ()).map_err(denied)
    }

    fn expired(&self, now_unix: u64) -> TokenError {
        let (link, first) = self
            .links
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| l.rights.expires_unix)
            .map(|(i, l)| (i, l.rights.expires_unix))
            .unwrap_or((0, 0));
        TokenError::Expired {
            link,
            expires_unix: first,
            now_unix,
        }
    }

    /// Delegates to a sub-agent: appends a block, signed by `holder` (who
    /// must be the current holder), binding `request.delegate` to rights
    /// within this token's. Fails rather than silently narrowing.
    pub fn attenuate<R: CryptoRng + ?Sized>(
        &self,
        holder: &IdentityKey,
        request: &Attenuation,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Token, TokenError> {
        let link = self.links.len();
        if holder.did() != self.holder() {
            return Err(TokenError::WrongDelegator {
                link,
                expected: self.holder().to_string(),
                found: holder.did().to_string(),
            });
        }
        if self.depth() + 1 > MAX_DELEGATION_DEPTH {
            return Err(TokenError::TooDeep {
                depth: self.depth() + 1,
                max: MAX_DELEGATION_DEPTH,
            });
        }
        let now_unix = unix_seconds(now);
        if now_unix >= self.effective.expires_unix {
            return Err(self.expired(now_unix));
        }
        let rights = Rights {
            tools: request.tools.clone(),
            ring_ceiling: request.ring_ceiling.unwrap_or(self.effective.ring_ceiling),
            expires_unix: match request.ttl {
                Some(ttl) => expiry(now_unix, ttl)?,
                None => self.effective.expires_unix,
            },
        };
        rights.check_request()?;
        rights
            .within(&self.effective)
            .map_err(|detail| TokenError::WidenedRights { link, detail })?;
        let context = BlockContext::Delegate {
            v: CONTEXT_VERSION,
            delegate: request.delegate.clone(),
            tools: rights.tools.clone(),
            ring: rights.ring_ceiling,
            expires: rights.expires_unix,
        };
        let context = serde_json::to_string(&context).map_err(|e| invalid(e.to_string()))?;
        let block = canonical_block("delegate", &request.delegate, None, &rights, context)?;
        let holder_keys = biscuit_keypair(holder)?;
        let signed = self
            .biscuit
            .third_party_request()
            .map_err(build_error)?
            .create_block(&holder_keys.private(), block)
            .map_err(build_error)?;
        // A key already used in the chain would let the new holder strip the
        // new block and get the parent token back: only a broken RNG repeats.
        let next_key = IdentityKey::generate(rng);
        let proto = self.biscuit.container().to_proto();
        if std::iter::once(&proto.authority)
            .chain(&proto.blocks)
            .any(|b| b.next_key.key.as_slice() == next_key.did().public_key_bytes())
        {
            return Err(invalid(
                "the RNG produced a key already used in this token (hint: pass a cryptographically secure RNG, not a re-seeded one)",
            ));
        }
        let next = biscuit_keypair(&next_key)?;
        let biscuit = self
            .biscuit
            .append_third_party_with_keypair(holder_keys.public(), signed, next)
            .map_err(build_error)?;
        check_size(biscuit.to_base64().map_err(build_error)?)
    }

    /// The chain for `warden token verify`: issuer → agent → delegates, with
    /// the rights at each link.
    pub fn describe(&self) -> String {
        let mut out = format!("issuer    {}\n", self.issuer);
        for (i, link) in self.links.iter().enumerate() {
            let role = match link.role {
                LinkRole::Agent => "agent",
                LinkRole::Delegate => "delegate",
            };
            let indent = "  ".repeat(i + 1);
            let _ = writeln!(out, "{indent}└─ {role} {}", link.did);
            if link.role == LinkRole::Agent {
                let _ = writeln!(out, "{indent}   sponsor  {}", self.sponsor);
            }
            let _ = writeln!(out, "{indent}   tools    {}", join(&link.rights.tools));
            let _ = writeln!(
                out,
                "{indent}   rings    {} to 3",
                link.rights.ring_ceiling.get()
            );
            let _ = writeln!(
                out,
                "{indent}   expires  {}",
                format_rfc3339(link.rights.expires_unix)
            );
            let _ = writeln!(out, "{indent}   revocation id {}", link.revocation_id);
        }
        out
    }
}

/// Biscuit symbols warden's blocks may contain: no quote, backslash,
/// whitespace, comma or semicolon, so a block's printed source has one reading.
fn clean_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b',' | b';'))
}

/// Verifies tokens against trusted issuers and a revocation list, caching
/// verified chains. Shareable across threads.
#[derive(Debug)]
pub struct TokenVerifier {
    /// Root key id → issuer, with its key already decoded for biscuit.
    trusted: HashMap<u32, (Did, PublicKey)>,
    max_depth: usize,
    cache_capacity: usize,
    revoked: RwLock<HashSet<RevocationId>>,
    cache: Mutex<TokenCache>,
}

#[derive(Debug, Default)]
struct TokenCache {
    entries: HashMap<[u8; 32], Arc<VerifiedToken>>,
    order: VecDeque<[u8; 32]>,
}

impl TokenCache {
    fn insert(&mut self, key: [u8; 32], value: Arc<VerifiedToken>, capacity: usize) {
        if capacity == 0 {
            return;
        }
        while self.entries.len() >= capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        if self.entries.insert(key, value).is_none() {
            self.order.push_back(key);
        }
        // Keys removed by revocation linger in `order`; compact when they pile up.
        if self.order.len() > 2 * capacity {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }

    fn remove(&mut self, key: &[u8; 32]) {
        self.entries.remove(key);
    }
}

impl TokenVerifier {
    /// A verifier trusting exactly these issuers, allowing [`MAX_DELEGATION_DEPTH`].
    pub fn new<I: IntoIterator<Item = Did>>(
        trusted_issuers: I,
    ) -> Result<TokenVerifier, TokenError> {
        let mut trusted = HashMap::new();
        for did in trusted_issuers {
            let id = root_key_id(&did);
            if let Some((other, _)) = trusted.get(&id)
                && other != &did
            {
                return Err(invalid(format!(
                    "issuers {other} and {did} share root key id {id}; use another key"
                )));
            }
            let key = PublicKey::from_bytes(did.public_key_bytes(), Algorithm::Ed25519)
                .map_err(|e| build_error(e.into()))?;
            trusted.insert(id, (did, key));
        }
        if trusted.is_empty() {
            return Err(TokenError::NoTrustedIssuers);
        }
        Ok(TokenVerifier {
            trusted,
            max_depth: MAX_DELEGATION_DEPTH,
            cache_capacity: TOKEN_CACHE_CAPACITY,
            revoked: RwLock::new(HashSet::new()),
            cache: Mutex::new(TokenCache::default()),
        })
    }

    /// Allows at most `depth` delegations (never more than [`MAX_DELEGATION_DEPTH`]).
    pub fn with_max_depth(mut self, depth: usize) -> TokenVerifier {
        self.max_depth = depth.min(MAX_DELEGATION_DEPTH);
        self
    }

    /// Keeps at most `capacity` verified tokens (default [`TOKEN_CACHE_CAPACITY`];
    /// 0 turns the cache off). When full, the oldest entry goes first.
    pub fn with_cache_capacity(mut self, capacity: usize) -> TokenVerifier {
        self.cache_capacity = capacity;
        self
    }

    /// Adds revocation ids (e.g. loaded from the store at start-up).
    pub fn with_revoked<I: IntoIterator<Item = RevocationId>>(self, ids: I) -> TokenVerifier {
        for id in ids {
            self.revoke(&id);
        }
        self
    }

    /// The trusted issuers.
    pub fn trusted_issuers(&self) -> impl Iterator<Item = &Did> {
        self.trusted.values().map(|(did, _)| did)
    }

    /// Revokes a block id: every token whose chain contains it is refused
    /// from now on, cached or not.
    pub fn revoke(&self, id: &RevocationId) {
        self.revoked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone());
        let mut cache = self.lock_cache();
        cache
            .entries
            .retain(|_, v| !v.links.iter().any(|l| &l.revocation_id == id));
    }

    /// Whether an id is revoked.
    pub fn is_revoked(&self, id: &RevocationId) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Number of cached verified tokens.
    pub fn cached(&self) -> usize {
        self.lock_cache().entries.len()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        // The cache holds only verified results; a panic mid-update loses at most an entry.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Verifies a token at `now`, from the cache when it was verified before
    /// (expiry and revocation are checked again on every hit).
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Arc<VerifiedToken>, TokenError> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge {
                len: token.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        let key = token_hash(token);
        let hit = self.lock_cache().entries.get(&key).cloned();
        if let Some(hit) = hit {
            match self.still_valid(&hit, now) {
                Ok(()) => return Ok(hit),
                Err(e) => {
                    self.lock_cache().remove(&key);
                    return Err(e);
                }
            }
        }
        let verified = Arc::new(self.verify_with_hash(token, key, now)?);
        self.lock_cache()
            .insert(key, verified.clone(), self.cache_capacity);
        Ok(verified)
    }

    /// Verifies and answers [`VerifiedToken::authorize`] in one call.
    pub fn authorize(
        &self,
        token: &str,
        tool: &str,
        ring: Ring,
        now: SystemTime,
    ) -> Result<Authorization, TokenError> {
        self.verify(token, now)?.authorize(tool, ring, now)
    }

    fn still_valid(&self, token: &VerifiedToken, now: SystemTime) -> Result<(), TokenError> {
        let now_unix = unix_seconds(now);
        if now_unix >= token.effective.expires_unix {
            return Err(token.expired(now_unix));
        }
        let revoked = self.revoked.read().unwrap_or_else(|e| e.into_inner());
        if !revoked.is_empty() {
            for (link, l) in token.links.iter().enumerate() {
                if revoked.contains(&l.revocation_id) {
                    return Err(TokenError::Revoked {
                        link,
                        id: l.revocation_id.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Verifies without the cache (and without filling it).
    pub fn verify_uncached(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<VerifiedToken, TokenError> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge {
                len: token.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        self.verify_with_hash(token, token_hash(token), now)
    }

    fn verify_with_hash(
        &self,
        token: &str,
        hash: [u8; 32],
        now: SystemTime,
    ) -> Result<VerifiedToken, TokenError> {
        let unknown_root: Cell<Option<Option<u32>>> = Cell::new(None);
        let provider = |key_id: Option<u32>| -> Result<PublicKey, Format> {
            match key_id.and_then(|id| self.trusted.get(&id)) {
                Some((_, key)) => Ok(*key),
                None => {
                    unknown_root.set(Some(key_id));
                    Err(Format::UnknownPublicKey)
                }
            }
        };
        let biscuit = Biscuit::from_base64(token, provider).map_err(|e| {
            if let Some(key_id) = unknown_root.get() {
                return TokenError::UnknownRoot { key_id };
            }
            match e {
                BiscuitError::Format(Format::Signature(s)) => TokenError::BadSignature {
                    detail: s.to_string(),
                },
                BiscuitError::Format(Format::SealedSignature) => TokenError::BadSignature {
                    detail: "sealed signature".into(),
                },
                other => malformed(other.to_string()),
            }
        })?;
        // The provider ran and returned a trusted key: the root is that issuer.
        let issuer = biscuit
            .root_key_id()
            .and_then(|id| self.trusted.get(&id))
            .map(|(did, _)| did.clone())
            .ok_or(TokenError::UnknownRoot {
                key_id: biscuit.root_key_id(),
            })?;

        let blocks = biscuit.block_count();
        let depth = blocks.saturating_sub(1);
        if depth > self.max_depth {
            return Err(TokenError::TooDeep {
                depth,
                max: self.max_depth,
            });
        }
        let contexts = biscuit.context();
        let revocation_ids = biscuit.revocation_identifiers();
        if contexts.len() != blocks || revocation_ids.len() != blocks {
            return Err(malformed(
                "block count disagrees with contexts or revocation ids",
            ));
        }
        {
            let revoked = self.revoked.read().unwrap_or_else(|e| e.into_inner());
            for (link, id) in revocation_ids.iter().enumerate() {
                let id = RevocationId(hex::encode(id));
                if revoked.contains(&id) {
                    return Err(TokenError::Revoked {
                        link,
                        id: id.to_string(),
                    });
                }
            }
        }

        let mut links: Vec<Link> = Vec::with_capacity(blocks);
        let mut sponsor = None;
        for (i, context) in contexts.iter().enumerate() {
            let context = context
                .as_deref()
                .ok_or_else(|| malformed(format!("block {i} has no rights context")))?;
            let context: BlockContext = serde_json::from_str(context)
                .map_err(|e| malformed(format!("block {i} rights context: {e}")))?;
            let (role, did, rights, expected_source) = match (i, context) {
                (
                    0,
                    BlockContext::Agent {
                        v: CONTEXT_VERSION,
                        issuer: claimed,
                        agent,
                        sponsor: s,
                        tools,
                        ring,
                        expires,
                    },
                ) => {
                    if claimed != issuer.as_str() {
                        return Err(malformed(format!(
                            "block 0 names issuer {:?} but is signed by {issuer}",
                            quote(&claimed)
                        )));
                    }
                    let rights = Rights {
                        tools,
                        ring_ceiling: ring,
                        expires_unix: expires,
                    };
                    let source = canonical_source("agent", &agent, Some(&s), &rights);
                    sponsor = Some(s);
                    (LinkRole::Agent, agent, rights, source)
                }
                (
                    1..,
                    BlockContext::Delegate {
                        v: CONTEXT_VERSION,
                        delegate,
                        tools,
                        ring,
                        expires,
                    },
                ) => {
                    let rights = Rights {
                        tools,
                        ring_ceiling: ring,
                        expires_unix: expires,
                    };
                    let source = canonical_source("delegate", &delegate, None, &rights);
                    (LinkRole::Delegate, delegate, rights, source)
                }
                _ => {
                    return Err(malformed(format!(
                        "block {i} has the wrong kind of rights context or version (block 0 is the agent's, later blocks delegations)"
                    )));
                }
            };
            rights
                .check_request()
                .map_err(|e| malformed(format!("block {i}: {e}")))?;

            // The block's datalog must be exactly the canonical form of its declared rights.
            let symbols = biscuit
                .block_symbols(i)
                .map_err(|e| malformed(e.to_string()))?;
            if let Some(bad) = symbols.iter().find(|s| !clean_symbol(s)) {
                return Err(malformed(format!(
                    "block {i} has a symbol warden never writes: {:?}",
                    quote(bad)
                )));
            }
            let keys = biscuit
                .block_public_keys(i)
                .map_err(|e| malformed(e.to_string()))?;
            if keys.current_offset() != 0 {
                return Err(malformed(format!(
                    "block {i} declares public keys (trust scopes) warden never writes"
                )));
            }
            let source = biscuit
                .print_block_source(i)
                .map_err(|e| malformed(e.to_string()))?;
            if source != expected_source {
                return Err(malformed(format!(
                    "block {i}'s datalog is not the canonical form of its declared rights"
                )));
            }

            // Delegations are signed by the holder they delegate from.
            let external = biscuit
                .block_external_key(i)
                .map_err(|e| malformed(e.to_string()))?;
            match (links.last(), external) {
                (None, None) => {}
                (None, Some(_)) => return Err(malformed("block 0 is a third-party block")),
                (Some(parent), None) => {
                    return Err(TokenError::WrongDelegator {
                        link: i,
                        expected: parent.did.to_string(),
                        found: "no one (the block is not signed by a delegator)".into(),
                    });
                }
                (Some(parent), Some(key)) => {
                    let signer = key.to_bytes();
                    if key.algorithm()
                        != biscuit_auth::format::schema::public_key::Algorithm::Ed25519
                        || signer.as_slice() != parent.did.public_key_bytes()
                    {
                        let found = <[u8; 32]>::try_from(signer.as_slice())
                            .ok()
                            .and_then(|b| Did::from_public_key(&b).ok())
                            .map_or_else(
                                || "a key that is not a did:key".into(),
                                |d| d.to_string(),
                            );
                        return Err(TokenError::WrongDelegator {
                            link: i,
                            expected: parent.did.to_string(),
                            found,
                        });
                    }
                    rights
                        .within(&parent.rights)
                        .map_err(|detail| TokenError::WidenedRights { link: i, detail })?;
                }
            }
            links.push(Link {
                role,
                did,
                rights,
                revocation_id: RevocationId(hex::encode(&revocation_ids[i])),
            });
        }
        let sponsor = sponsor.ok_or_else(|| malformed("no agent block"))?;
        let last = links.last().ok_or_else(|| malformed("no agent block"))?;
        let effective = Rights {
            tools: last.rights.tools.clone(),
            ring_ceiling: links
                .iter()
                .map(|l| l.rights.ring_ceiling)
                .max()
                .unwrap_or(Ring::R3),
            expires_unix: links
                .iter()
                .map(|l| l.rights.expires_unix)
                .min()
                .unwrap_or(0),
        };
        let verified = VerifiedToken {
            hash,
            issuer,
            sponsor,
            links,
            effective,
            biscuit,
        };
        let now_unix = unix_seconds(now);
        if now_unix >= verified.effective.expires_unix {
            return Err(verified.expired(now_unix));
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_source_is_what_biscuit_prints_for_the_canonical_block() {
        let did = IdentityKey::from_seed(&[1; 32]).did().clone();
        let sponsor = Sponsor::parse("o'neil+x@example.com").unwrap();
        let cases = [
            (vec!["read_*"], 0, 0),
            (vec!["db.q-u:e/r@y+", "a?", "*", "x"], 3, 1_800_000_000),
            (vec!["?*?"; MAX_TOOLS_PER_LINK], 2, 4_102_444_799),
        ];
        for (tools, ring, expires) in cases {
            let rights = Rights {
                tools: tools
                    .iter()
                    .map(|t| ToolPattern::parse(t).unwrap())
                    .collect(),
                ring_ceiling: Ring::new(ring).unwrap(),
                expires_unix: expires,
            };
            for (head, sponsor) in [("agent", Some(&sponsor)), ("delegate", None)] {
                let block = canonical_block(head, &did, sponsor, &rights, String::new()).unwrap();
                assert_eq!(
                    block.to_string(),
                    canonical_source(head, &did, sponsor, &rights)
                );
            }
        }
    }
}
