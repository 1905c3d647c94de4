//! Agent identity for warden: who an agent is, who answers for it, what it
//! may do, and how far it is trusted.
//!
//! - [`Did`]: Ed25519 `did:key` identities (W3C did:key), parsed strictly,
//!   with their DID document.
//! - [`IdentityKey`]: private keys — generated from the caller's RNG or
//!   imported (hex seed, PKCS#8 PEM); never printed.
//! - [`Agent`]: the record — DID, name, [`Sponsor`] (the accountable human),
//!   lifecycle [`Status`], [`Ring`] and trust.
//! - [`token`]: attenuating capability tokens (biscuit): [`issue`],
//!   [`VerifiedToken::attenuate`], [`TokenVerifier`] (every signature, trusted
//!   roots, revocation, expiry, depth; cached), [`VerifiedToken::authorize`].
//! - [`request`]: replay-safe signed requests; the exact signed bytes are
//!   documented there.
//! - [`approval`]: an approver's signature over an answer to an approval.
//! - [`trust`]: scores 0–1000 that move with events, decay over time, and earn rings.
//!
//! The crate is pure: no files, no network, no clock. Times come in as
//! arguments and randomness from the caller's RNG.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use rand::SeedableRng;
//! use warden_identity::{
//!     Attenuation, Grant, IdentityKey, Ring, Sponsor, TokenVerifier, ToolPattern, issue,
//! };
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1); // use an OS-seeded RNG in production
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let org = IdentityKey::generate(&mut rng);
//! let agent = IdentityKey::generate(&mut rng);
//! let helper = IdentityKey::generate(&mut rng);
//!
//! // The organisation grants the agent read tools for an hour.
//! let token = issue(&org, &Grant {
//!     agent: agent.did().clone(),
//!     sponsor: Sponsor::parse("alice@example.com")?,
//!     tools: vec![ToolPattern::parse("read_*")?],
//!     ring_ceiling: Ring::R2,
//!     ttl: Duration::from_secs(3600),
//! }, now, &mut rng)?;
//!
//! // The agent hands one tool on to a helper, for ten minutes.
//! let verifier = TokenVerifier::new([org.did().clone()])?;
//! let delegated = verifier.verify(token.as_str(), now)?.attenuate(&agent, &Attenuation {
//!     delegate: helper.did().clone(),
//!     tools: vec![ToolPattern::parse("read_file")?],
//!     ring_ceiling: Some(Ring::R3),
//!     ttl: Some(Duration::from_secs(600)),
//! }, now, &mut rng)?;
//!
//! let ok = verifier.authorize(delegated.as_str(), "read_file", Ring::R3, now)?;
//! assert_eq!(&ok.agent, helper.did());
//! assert_eq!(ok.sponsor.as_str(), "alice@example.com");
//! assert!(verifier.authorize(delegated.as_str(), "read_secrets", Ring::R3, now).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod agent;
pub mod approval;
mod did;
mod glob;
mod key;
pub mod request;
mod time;
pub mod token;
pub mod trust;

pub use agent::{
    Agent, AgentError, LifecycleError, MAX_AGENT_NAME_BYTES, MAX_SPONSOR_BYTES,
    MAX_SPONSOR_LOCAL_BYTES, Ring, RingError, Sponsor, SponsorError, Status, validate_agent_name,
};
pub use did::{DID_KEY_PREFIX, Did, DidError, ED25519_MULTICODEC, MAX_DID_BYTES};
pub use glob::{MAX_PATTERN_BYTES, MAX_TOOL_NAME_BYTES, PatternError, ToolPattern};
pub use key::{IdentityKey, KeyError, MAX_KEY_TEXT_BYTES, verify_signature};
pub use request::{AcceptedNonce, RequestVerifier, SignedRequest, SignedRequestError};
pub use time::{format_rfc3339, unix_seconds};
pub use token::{
    Attenuation, Authorization, Grant, Link, LinkRole, MAX_DELEGATION_DEPTH, MAX_TOKEN_BYTES,
    RevocationId, Rights, Token, TokenError, TokenVerifier, VerifiedToken, issue, revocation_ids,
};
pub use trust::{
    RingChange, RingThresholds, Severity, TrustConfig, TrustEvent, TrustState, TrustUpdate,
};
