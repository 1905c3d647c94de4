//! Signed requests: an agent proves, per action, that it holds its key, and
//! a captured request cannot be played again.
//!
//! # The signed bytes
//!
//! The agent signs, with Ed25519, exactly this byte string:
//!
//! ```text
//! "warden/signed-request/v1\n"        25 bytes, ASCII, domain separation
//! u32 big-endian  len(action_hash)    4 bytes
//! action_hash                         the gate's action hash as text, UTF-8
//!                                     ("sha256:" + 64 lowercase hex), 1–128 bytes
//! u64 big-endian  timestamp           8 bytes, seconds since 1970-01-01T00:00:00Z
//! u32 big-endian  len(nonce)          4 bytes
//! nonce                               16–64 random bytes
//! ```
//!
//! No other byte is signed: no separator, no terminator. The DID is not in
//! the message; the signature verifies only under the DID's own key.
//!
//! # Verification
//!
//! [`RequestVerifier::verify`] checks, in this order: field limits, that the
//! signed action hash is the one the gate computed, the timestamp within the
//! skew (default 60 s either way), the signature (`verify_strict`), and that
//! the (DID, nonce) pair has not been seen. Seen pairs are kept until their
//! timestamp leaves the skew window (after which the skew check alone rejects
//! them); when the cache is full of unexpired pairs, requests are refused
//! ([`SignedRequestError::ReplayCacheFull`]), never let through. The bound
//! it forgets below never goes back: if the clock does, requests from
//! before that bound are refused ([`SignedRequestError::Forgotten`]) until
//! the clock catches up, rather than their replays being let in again.
//!
//! The cache is memory. A caller that must refuse replays across restarts
//! keeps each [`AcceptedNonce`] that `verify` returns somewhere durable and
//! hands the unexpired ones to [`RequestVerifier::remember`] when it starts,
//! and the bound it deletes them below to [`RequestVerifier::raise_floor`]
//! (warden's gate stores both with the decision's audit record).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::did::{Did, quote};
use crate::key::{IdentityKey, verify_signature};
use crate::time::unix_seconds;

/// The domain-separation prefix of every signed request.
pub const SIGNED_REQUEST_DOMAIN: &[u8; 25] = b"warden/signed-request/v1\n";
/// Longest action hash text accepted.
pub const MAX_ACTION_HASH_BYTES: usize = 128;
/// Shortest nonce accepted (128 bits).
pub const MIN_NONCE_BYTES: usize = 16;
/// Longest nonce accepted.
pub const MAX_NONCE_BYTES: usize = 64;
/// Default allowed clock difference, either way.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);
/// Default number of (DID, nonce) pairs remembered.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedRequestError {
    /// A field is empty or too long.
    #[error("signed request: {field} is {len} bytes, allowed {min}–{max}")]
    FieldLength {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// Lower limit.
        min: usize,
        /// Upper limit.
        max: usize,
    },
    /// A field does not decode (base64url without padding).
    #[error("signed request: {field} {input:?} is not base64url without padding")]
    Encoding {
        /// Which field.
        field: &'static str,
        /// The text, shortened.
        input: String,
    },
    /// The request was signed for another action.
    #[error("signed request is for action {signed:?}, but this action hashes to {actual:?}")]
    ActionMismatch {
        /// The hash in the request.
        signed: String,
        /// The hash of the action presented.
        actual: String,
    },
    /// The timestamp is too far from `now`.
    #[error(
        "signed request timestamp {timestamp} is {distance} s from now ({now}); at most {skew} s allowed (hint: check the agent's clock)"
    )]
    Skew {
        /// The request's timestamp.
        timestamp: u64,
        /// The verifier's time.
        now: u64,
        /// How far apart they are.
        distance: u64,
        /// The allowed skew in seconds.
        skew: u64,
    },
    /// The signature is not by the DID's key over these bytes.
    #[error("signed request signature does not verify for {did}")]
    BadSignature {
        /// The DID the request claims.
        did: String,
    },
    /// The timestamp is within the skew of `now`, but before a window this
    /// verifier has already forgotten nonces from: its clock went back.
    #[error(
        "signed request timestamp {timestamp} is before {floor}, from when this verifier may have forgotten nonces (its clock went back; hint: check the server's clock)"
    )]
    Forgotten {
        /// The request's timestamp.
        timestamp: u64,
        /// The earliest timestamp whose nonces are all still remembered.
        floor: u64,
    },
    /// The nonce was used before by this DID.
    #[error("signed request replayed: {did} already used this nonce")]
    Replay {
        /// The DID.
        did: String,
    },
    /// Too many unexpired nonces to remember another; refused rather than
    /// forgetting one that could then be replayed.
    #[error(
        "replay cache full ({capacity} unexpired nonces); request refused (hint: raise the capacity or lower the skew)"
    )]
    ReplayCacheFull {
        /// The cache capacity.
        capacity: usize,
    },
}

/// A (DID, nonce) pair [`RequestVerifier::verify`] accepted: what a verifier
/// started later needs ([`RequestVerifier::remember`]) to refuse it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AcceptedNonce {
    /// SHA-256(u32be(len(did)) ‖ did ‖ nonce): one id per (DID, nonce).
    pub replay_id: [u8; 32],
    /// The request's timestamp, seconds since the epoch: the pair must be
    /// remembered while this is within the skew of the clock.
    pub timestamp: u64,
}

/// A request signature as it travels: the DID, what was signed, and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRequest {
    /// The signer.
    pub did: Did,
    /// The action hash signed (the gate's text form).
    pub action_hash: String,
    /// Seconds since the epoch when the agent signed.
    pub timestamp: u64,
    /// The nonce, base64url without padding.
    pub nonce: String,
    /// The 64-byte Ed25519 signature, base64url without padding.
    pub signature: String,
}

/// The exact bytes an agent signs (see the module documentation).
pub fn signed_request_bytes(action_hash: &str, timestamp: u64, nonce: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(SIGNED_REQUEST_DOMAIN.len() + 16 + action_hash.len() + nonce.len());
    out.extend_from_slice(SIGNED_REQUEST_DOMAIN);
    out.extend_from_slice(&(action_hash.len() as u32).to_be_bytes());
    out.extend_from_slice(action_hash.as_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&(nonce.len() as u32).to_be_bytes());
    out.extend_from_slice(nonce);
    out
}

fn check_len(
    field: &'static str,
    len: usize,
    min: usize,
    max: usize,
) -> Result<(), SignedRequestError> {
    if (min..=max).contains(&len) {
        Ok(())
    } else {
        Err(SignedRequestError::FieldLength {
            field,
            len,
            min,
            max,
        })
    }
}

impl SignedRequest {
    /// Signs `action_hash` at `now` with a caller-chosen nonce (16–64 random bytes).
    pub fn sign(
        key: &IdentityKey,
        action_hash: &str,
        now: SystemTime,
        nonce: &[u8],
    ) -> Result<SignedRequest, SignedRequestError> {
        check_len("action_hash", action_hash.len(), 1, MAX_ACTION_HASH_BYTES)?;
        check_len("nonce", nonce.len(), MIN_NONCE_BYTES, MAX_NONCE_BYTES)?;
        let timestamp = unix_seconds(now);
        let signature = key.sign(&signed_request_bytes(action_hash, timestamp, nonce));
        Ok(SignedRequest {
            did: key.did().clone(),
            action_hash: action_hash.to_string(),
            timestamp,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            signature: URL_SAFE_NO_PAD.encode(signature),
        })
    }

    /// Signs with a fresh 32-byte nonce from the caller's RNG.
    pub fn sign_with_rng<R: rand_core::CryptoRng + ?Sized>(
        key: &IdentityKey,
        action_hash: &str,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<SignedRequest, SignedRequestError> {
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        SignedRequest::sign(key, action_hash, now, &nonce)
    }

    fn decode_nonce(&self) -> Result<Vec<u8>, SignedRequestError> {
        // base64 of MAX_NONCE_BYTES is 86 characters; refuse longer text before decoding.
        check_len(
            "nonce",
            self.nonce.len(),
            1,
            MAX_NONCE_BYTES.div_ceil(3) * 4,
        )?;
        let nonce =
            URL_SAFE_NO_PAD
                .decode(&self.nonce)
                .map_err(|_| SignedRequestError::Encoding {
                    field: "nonce",
                    input: quote(&self.nonce),
                })?;
        check_len("nonce", nonce.len(), MIN_NONCE_BYTES, MAX_NONCE_BYTES)?;
        Ok(nonce)
    }

    fn decode_signature(&self) -> Result<[u8; 64], SignedRequestError> {
        let bad = || SignedRequestError::Encoding {
            field: "signature",
            input: quote(&self.signature),
        };
        crate::key::decode_signature(&self.signature).ok_or_else(bad)
    }
}

/// Remembered (DID, nonce) pairs with their timestamps.
#[derive(Debug, Default)]
struct ReplayCache {
    seen: HashMap<[u8; 32], u64>,
    by_time: BTreeSet<(u64, [u8; 32])>,
    /// The latest bound pruned to: pairs with earlier timestamps may be
    /// forgotten, so their requests are refused even if the clock goes
    /// back and the skew check alone would let them in again.
    floor: u64,
}

impl ReplayCache {
    /// Forgets pairs whose timestamp is before `oldest`, or before the
    /// highest bound given so far (the floor never goes back): a replay of
    /// them fails the skew or the floor check.
    fn prune(&mut self, oldest: u64) {
        self.floor = self.floor.max(oldest);
        let oldest = self.floor;
        while let Some(&(ts, id)) = self.by_time.first() {
            if ts >= oldest {
                break;
            }
            self.by_time.pop_first();
            self.seen.remove(&id);
        }
    }

    /// Remembers the pair; false if it was remembered already.
    fn insert(&mut self, nonce: AcceptedNonce) -> bool {
        if self.seen.contains_key(&nonce.replay_id) {
            return false;
        }
        self.seen.insert(nonce.replay_id, nonce.timestamp);
        self.by_time.insert((nonce.timestamp, nonce.replay_id));
        true
    }
}

/// Verifies signed requests and remembers nonces. Shareable across threads.
#[derive(Debug)]
pub struct RequestVerifier {
    skew: u64,
    capacity: usize,
    cache: Mutex<ReplayCache>,
}

impl Default for RequestVerifier {
    fn default() -> RequestVerifier {
        RequestVerifier::new(DEFAULT_SKEW, DEFAULT_REPLAY_CAPACITY)
    }
}

impl RequestVerifier {
    /// A verifier allowing `skew` either way and remembering up to `capacity` nonces.
    pub fn new(skew: Duration, capacity: usize) -> RequestVerifier {
        RequestVerifier {
            skew: skew.as_secs(),
            capacity,
            cache: Mutex::new(ReplayCache::default()),
        }
    }

    /// How many nonces are remembered now.
    pub fn remembered(&self) -> usize {
        self.lock().seen.len()
    }

    /// Raises the floor to `floor` (never lowers it) and forgets the nonces
    /// below it: for the bound a store's copy of the nonces was pruned to
    /// before a restart, so that a clock set back since cannot let a replay
    /// of a deleted nonce in.
    pub fn raise_floor(&self, floor: u64) {
        self.lock().prune(floor);
    }

    /// The earliest timestamp still inside the skew window at `now`. A pair
    /// with an earlier timestamp need not be remembered: the skew check
    /// alone refuses its request.
    pub fn oldest_unexpired(&self, now: SystemTime) -> u64 {
        unix_seconds(now).saturating_sub(self.skew)
    }

    /// Remembers a pair accepted earlier, e.g. by this verifier before a
    /// restart, so that its request is refused as a replay; returns whether
    /// it is remembered (false when its timestamp is outside the window at
    /// `now`, so that the skew check refuses it anyway). Remembered pairs
    /// count towards the capacity but are kept even beyond it: forgetting
    /// one would let its request through again.
    pub fn remember(&self, nonce: AcceptedNonce, now: SystemTime) -> bool {
        let mut cache = self.lock();
        if nonce.timestamp < self.oldest_unexpired(now).max(cache.floor) {
            return false;
        }
        cache.insert(nonce);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReplayCache> {
        // A panic elsewhere cannot leave the two maps inconsistent: each
        // update below touches both without calling out in between.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Accepts `request` for the action hashing to `action_hash` at `now`,
    /// recording its nonce, or says why not. What it returns is what a
    /// later verifier needs to refuse the request too
    /// ([`RequestVerifier::remember`]).
    pub fn verify(
        &self,
        request: &SignedRequest,
        action_hash: &str,
        now: SystemTime,
    ) -> Result<AcceptedNonce, SignedRequestError> {
        check_len(
            "action_hash",
            request.action_hash.len(),
            1,
            MAX_ACTION_HASH_BYTES,
        )?;
        let nonce = request.decode_nonce()?;
        let signature = request.decode_signature()?;
        if request.action_hash != action_hash {
            return Err(SignedRequestError::ActionMismatch {
                signed: quote(&request.action_hash),
                actual: quote(action_hash),
            });
        }
        let oldest = self.oldest_unexpired(now);
        let now = unix_seconds(now);
        let distance = now.abs_diff(request.timestamp);
        if distance > self.skew {
            return Err(SignedRequestError::Skew {
                timestamp: request.timestamp,
                now,
                distance,
                skew: self.skew,
            });
        }
        let message = signed_request_bytes(&request.action_hash, request.timestamp, &nonce);
        if !verify_signature(&request.did, &message, &signature) {
            return Err(SignedRequestError::BadSignature {
                did: request.did.to_string(),
            });
        }
        let accepted = AcceptedNonce {
            replay_id: replay_id(&request.did, &nonce),
            timestamp: request.timestamp,
        };
        let mut cache = self.lock();
        cache.prune(oldest);
        if request.timestamp < cache.floor {
            return Err(SignedRequestError::Forgotten {
                timestamp: request.timestamp,
                floor: cache.floor,
            });
        }
        if cache.seen.contains_key(&accepted.replay_id) {
            return Err(SignedRequestError::Replay {
                did: request.did.to_string(),
            });
        }
        if cache.seen.len() >= self.capacity {
            return Err(SignedRequestError::ReplayCacheFull {
                capacity: self.capacity,
            });
        }
        cache.insert(accepted);
        Ok(accepted)
    }
}

/// SHA-256(u32be(len(did)) ‖ did ‖ nonce): one key per (DID, nonce).
fn replay_id(did: &Did, nonce: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((did.as_str().len() as u32).to_be_bytes());
    h.update(did.as_str().as_bytes());
    h.update(nonce);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_bytes_match_the_documented_layout() {
        let bytes = signed_request_bytes("sha256:ab", 0x0102030405060708, &[0xaa; 16]);
        let mut expected = b"warden/signed-request/v1\n".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 9]);
        expected.extend_from_slice(b"sha256:ab");
        expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        expected.extend_from_slice(&[0, 0, 0, 16]);
        expected.extend_from_slice(&[0xaa; 16]);
        assert_eq!(bytes, expected);
    }
}
