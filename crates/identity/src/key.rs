//! Ed25519 private keys: generation from a caller's RNG, import from a hex
//! seed or PKCS#8 PEM, export to PKCS#8 PEM. Never printed.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::did::Did;

/// Longest key text [`IdentityKey::import`] reads. A PKCS#8 PEM Ed25519 key
/// is about 120 bytes; anything near this limit is not a key.
pub const MAX_KEY_TEXT_BYTES: usize = 8 * 1024;

/// DER of a PKCS#8 v1 Ed25519 private key up to the 32-byte seed:
/// SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }.
const PKCS8_V1_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Why a text is not an importable Ed25519 private key.
///
/// Errors describe the input's shape only: they never quote key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Longer than [`MAX_KEY_TEXT_BYTES`].
    #[error(
        "key text is {len} bytes, more than the {max} accepted (hint: expected a 64-character hex seed or a PKCS#8 PEM)"
    )]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Nothing but whitespace.
    #[error("key text is empty (hint: expected a 64-character hex seed or a PKCS#8 PEM)")]
    Empty,
    /// A hex seed of the wrong length.
    #[error("hex seed has {len} characters; an Ed25519 seed is 32 bytes = 64 hex characters")]
    SeedLength {
        /// Number of characters after trimming whitespace.
        len: usize,
    },
    /// A character that is not a hex digit.
    #[error("hex seed has a non-hex character at position {position} (hint: only 0-9, a-f, A-F)")]
    SeedNotHex {
        /// Character index (0-based, after trimming whitespace).
        position: usize,
    },
    /// A PEM block of another kind.
    #[error("PEM block is {label:?}, not \"PRIVATE KEY\" (hint: {hint})")]
    WrongPemLabel {
        /// The label after `-----BEGIN `.
        label: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// A `PRIVATE KEY` PEM that is not a valid PKCS#8 Ed25519 key.
    #[error(
        "not a PKCS#8 Ed25519 private key: {detail} (hint: `openssl genpkey -algorithm ed25519` writes one)"
    )]
    Pkcs8 {
        /// What the decoder said (never key bytes).
        detail: String,
    },
}

/// An Ed25519 private key and the `did:key` it controls.
///
/// `Debug` shows the DID and `<redacted>`; there is no `Display`. The
/// signing key zeroizes its memory on drop.
#[derive(Clone)]
pub struct IdentityKey {
    signing: SigningKey,
    did: Did,
}

impl IdentityKey {
    /// A fresh key from the caller's cryptographically secure RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> IdentityKey {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        IdentityKey::from_seed(&seed)
    }

    /// The key whose RFC 8032 private key (seed) is these 32 bytes.
    pub fn from_seed(seed: &[u8; 32]) -> IdentityKey {
        IdentityKey::from_signing_key(SigningKey::from_bytes(seed))
    }

    fn from_signing_key(signing: SigningKey) -> IdentityKey {
        let did = Did::from_verifying_key(signing.verifying_key());
        IdentityKey { signing, did }
    }

    /// Reads a key as exported elsewhere: a PKCS#8 PEM (`-----BEGIN PRIVATE
    /// KEY-----`) or a raw 32-byte seed as 64 hex characters. Surrounding
    /// whitespace is ignored.
    pub fn import(text: &str) -> Result<IdentityKey, KeyError> {
        if text.len() > MAX_KEY_TEXT_BYTES {
            return Err(KeyError::TooLong {
                len: text.len(),
                max: MAX_KEY_TEXT_BYTES,
            });
        }
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(KeyError::Empty);
        }
        if trimmed.starts_with("-----BEGIN ") {
            IdentityKey::from_pkcs8_pem(trimmed)
        } else {
            IdentityKey::from_seed_hex(trimmed)
        }
    }

    /// A raw seed as exactly 64 hex characters (surrounding whitespace ignored).
    pub fn from_seed_hex(text: &str) -> Result<IdentityKey, KeyError> {
        let text = text.trim();
        if let Some(position) = text.chars().position(|c| !c.is_ascii_hexdigit()) {
            return Err(KeyError::SeedNotHex { position });
        }
        if text.len() != 64 {
            return Err(KeyError::SeedLength { len: text.len() });
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, seed.as_mut())
            .map_err(|_| KeyError::SeedLength { len: text.len() })?;
        Ok(IdentityKey::from_seed(&seed))
    }

    /// A PKCS#8 (RFC 8410) PEM, as `openssl genpkey -algorithm ed25519` writes.
    pub fn from_pkcs8_pem(text: &str) -> Result<IdentityKey, KeyError> {
        if text.len() > MAX_KEY_TEXT_BYTES {
            return Err(KeyError::TooLong {
                len: text.len(),
                max: MAX_KEY_TEXT_BYTES,
            });
        }
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("-----BEGIN ") {
            let label = rest.split("-----").next().unwrap_or_default();
            if label != "PRIVATE KEY" {
                let hint = match label {
                    "OPENSSH PRIVATE KEY" => {
                        "convert it with `ssh-keygen -p -m PKCS8 -f FILE`, or export the seed as hex"
                    }
                    "ENCRYPTED PRIVATE KEY" => {
                        "decrypt it first: `openssl pkey -in FILE -out plain.pem`"
                    }
                    "PUBLIC KEY" => "this is a public key; import the private key",
                    _ => "only Ed25519 keys in PKCS#8 form are accepted",
                };
                return Err(KeyError::WrongPemLabel {
                    label: crate::did::quote(label),
                    hint,
                });
            }
        }
        SigningKey::from_pkcs8_pem(text)
            .map(IdentityKey::from_signing_key)
            .map_err(|e| KeyError::Pkcs8 {
                detail: e.to_string(),
            })
    }

    /// The key as PKCS#8 PEM, for a file with mode 0600.
    ///
    /// Written as RFC 8410 v1 (`OneAsymmetricKey` without the public key),
    /// the form `openssl genpkey` writes: OpenSSL 3.0 refuses the v2 form
    /// with the embedded public key.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let mut der = Zeroizing::new([0u8; 48]);
        der[..16].copy_from_slice(&PKCS8_V1_ED25519_PREFIX);
        der[16..].copy_from_slice(self.signing.as_bytes());
        let body = Zeroizing::new(STANDARD.encode(der.as_ref()));
        Zeroizing::new(format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            body.as_str()
        ))
    }

    /// The DID this key controls.
    pub fn did(&self) -> &Did {
        &self.did
    }

    /// An Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// The 32-byte seed, for handing to another Ed25519 implementation.
    pub(crate) fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("did", &self.did.as_str())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Verifies an Ed25519 signature by `did` over `message` with
/// `verify_strict` (no small-order keys, no malleable signatures).
pub fn verify_signature(did: &Did, message: &[u8], signature: &[u8; 64]) -> bool {
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    did.verifying_key()
        .verify_strict(message, &signature)
        .is_ok()
}

/// A 64-byte signature from base64url without padding; `None` for any
/// other text (checked for length before decoding).
pub(crate) fn decode_signature(text: &str) -> Option<[u8; 64]> {
    if text.len() != 86 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_the_seed() {
        let key = IdentityKey::from_seed(&[7u8; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains(&hex::encode([7u8; 32])));
        assert!(shown.contains(key.did().as_str()));
    }

    #[test]
    fn hex_seed_errors_name_length_or_position_only() {
        assert_eq!(
            IdentityKey::import("abcd").unwrap_err(),
            KeyError::SeedLength { len: 4 }
        );
        let mut bad = "00".repeat(32);
        bad.replace_range(10..11, "g");
        let err = IdentityKey::import(&bad).unwrap_err();
        assert_eq!(err, KeyError::SeedNotHex { position: 10 });
        assert!(!err.to_string().contains(&bad));
        assert_eq!(IdentityKey::import(" \n ").unwrap_err(), KeyError::Empty);
        assert!(matches!(
            IdentityKey::import(&"a".repeat(MAX_KEY_TEXT_BYTES + 1)),
            Err(KeyError::TooLong { .. })
        ));
    }

    #[test]
    fn pem_round_trips_and_wrong_labels_are_named() {
        let key = IdentityKey::from_seed(&[9u8; 32]);
        let pem = key.to_pkcs8_pem();
        let back = IdentityKey::import(&pem).unwrap();
        assert_eq!(back.did(), key.did());
        assert!(matches!(
            IdentityKey::import(
                "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
            ),
            Err(KeyError::WrongPemLabel { .. })
        ));
        assert!(matches!(
            IdentityKey::import(
                "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----"
            ),
            Err(KeyError::Pkcs8 { .. })
        ));
    }

    #[test]
    fn strict_verification_accepts_own_signature_only() {
        let key = IdentityKey::from_seed(&[1u8; 32]);
        let other = IdentityKey::from_seed(&[2u8; 32]);
        let sig = key.sign(b"hello");
        assert!(verify_signature(key.did(), b"hello", &sig));
        assert!(!verify_signature(key.did(), b"hellO", &sig));
        assert!(!verify_signature(other.did(), b"hello", &sig));
    }
}
