//! Agent identity for warden: who an agent is, who answers for it, what it
//! may do, and how far it is trusted.
//!
//! - [`Did`]: Ed25519 `did:key` identities, parsed strictly, with their DID document.
//! - [`IdentityKey`]: private keys — generated from the caller's RNG or
//!   imported (hex seed, PKCS#8 PEM); never printed.
//! - [`Agent`]: the record — DID, name, [`Sponsor`] (the accountable human),
//!   lifecycle [`Status`], [`Ring`] and trust.
//! - [`trust`]: scores 0–1000 that move with events, decay over time, and earn rings.
//! - [`request`]: replay-safe signed requests.
//!
//! The crate is pure: no files, no network, no clock. Times come in as
//! arguments and randomness from the caller's RNG.
//!
//! ```
//! use std::time::SystemTime;
//! use warden_identity::{Agent, Did, IdentityKey, Sponsor, TrustConfig};
//!
//! let key = IdentityKey::from_seed(&[0u8; 32]);
//! assert_eq!(
//!     key.did().as_str(),
//!     "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
//! );
//! let did = Did::parse(key.did().as_str())?;
//! let sponsor = Sponsor::parse("alice@example.com")?;
//! let agent = Agent::new(did, "db-agent", sponsor, SystemTime::UNIX_EPOCH, &TrustConfig::default())?;
//! assert_eq!(agent.trust_score(), 500);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod agent;
mod did;
mod glob;
mod key;
pub mod request;
mod time;
pub mod token;
pub mod trust;

pub use agent::{
    Agent, AgentError, LifecycleError, MAX_AGENT_NAME_BYTES, MAX_SPONSOR_BYTES, Ring, RingError,
    Sponsor, SponsorError, Status, validate_agent_name,
};
pub use did::{DID_KEY_PREFIX, Did, DidError, ED25519_MULTICODEC, MAX_DID_BYTES};
pub use glob::{MAX_PATTERN_BYTES, MAX_TOOL_NAME_BYTES, PatternError, ToolPattern};
pub use key::{IdentityKey, KeyError, MAX_KEY_TEXT_BYTES, verify_signature};
pub use request::{RequestVerifier, SignedRequest, SignedRequestError};
pub use time::{format_rfc3339, unix_seconds};
pub use token::{
    Attenuation, Authorization, Grant, Link, LinkRole, MAX_DELEGATION_DEPTH, MAX_TOKEN_BYTES,
    RevocationId, Rights, Token, TokenError, TokenVerifier, VerifiedToken, issue,
};
pub use trust::{
    RingChange, RingThresholds, Severity, TrustConfig, TrustEvent, TrustState, TrustUpdate,
};
