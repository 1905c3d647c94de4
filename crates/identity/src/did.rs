//! `did:key` for Ed25519, as the W3C did:key method defines it.
//!
//! `did:key:z` + base58btc(`0xed 0x01` ‖ 32-byte public key). The `z` is the
//! multibase prefix for base58btc (Bitcoin alphabet); `0xed 0x01` is the
//! unsigned-varint multicodec `ed25519-pub`.

use std::fmt;
use std::hash::{Hash, Hasher};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

/// The method prefix every accepted DID starts with.
pub const DID_KEY_PREFIX: &str = "did:key:";
/// Multicodec `ed25519-pub` as an unsigned varint.
pub const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];
/// Multicodec `x25519-pub` as an unsigned varint (the DID document's key agreement key).
pub const X25519_MULTICODEC: [u8; 2] = [0xec, 0x01];
/// Longest DID text accepted before any decoding. An Ed25519 did:key is 56 bytes.
pub const MAX_DID_BYTES: usize = 128;
/// How much of an offending input an error message quotes.
const QUOTE_CHARS: usize = 80;

/// Why a text is not an Ed25519 `did:key`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    /// Longer than [`MAX_DID_BYTES`]; not decoded at all.
    #[error(
        "DID is {len} bytes, more than the {max} a did:key may have (hint: an Ed25519 did:key is 56 characters)"
    )]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Does not start with `did:key:`.
    #[error("{input:?} is not a did:key (hint: it must start with \"did:key:z6Mk\")")]
    WrongPrefix {
        /// The input, shortened.
        input: String,
    },
    /// A DID URL (fragment, query or path) rather than a bare DID.
    #[error(
        "{input:?} is a DID URL, not a DID (hint: drop everything from the first '#', '?' or '/')"
    )]
    DidUrl {
        /// The input, shortened.
        input: String,
    },
    /// The method-specific id does not start with the multibase prefix `z`.
    #[error(
        "{input:?} is not base58btc multibase (hint: the part after \"did:key:\" must start with 'z')"
    )]
    NotBase58Btc {
        /// The input, shortened.
        input: String,
    },
    /// The base58btc text does not decode.
    #[error(
        "{input:?} has invalid base58btc: {detail} (hint: the Bitcoin alphabet has no 0, O, I or l)"
    )]
    BadBase58 {
        /// The input, shortened.
        input: String,
        /// What the decoder said.
        detail: String,
    },
    /// The decoded bytes do not start with the `ed25519-pub` multicodec.
    #[error(
        "{input:?} encodes multicodec 0x{found} ({name}), not ed25519-pub 0xed01 (hint: only Ed25519 did:keys are supported)"
    )]
    WrongMulticodec {
        /// The input, shortened.
        input: String,
        /// Hex of the first (up to) two decoded bytes.
        found: String,
        /// The multicodec's name when it is a well-known key type.
        name: &'static str,
    },
    /// Right multicodec, wrong key length.
    #[error("{input:?} carries a {len}-byte key; Ed25519 public keys are 32 bytes")]
    WrongLength {
        /// The input, shortened.
        input: String,
        /// Key length found after the multicodec.
        len: usize,
    },
    /// 32 bytes that are not a point on the curve.
    #[error("{input:?} does not encode a valid Ed25519 public key")]
    InvalidKey {
        /// The input, shortened.
        input: String,
    },
    /// A small-order point: every signature "verifies" under it.
    #[error("{input:?} encodes a weak (small-order) Ed25519 key, which cannot identify anyone")]
    WeakKey {
        /// The input, shortened.
        input: String,
    },
    /// Decodes, but is not the canonical encoding of its key.
    #[error("{input:?} is not the canonical encoding of its key (expected {canonical:?})")]
    NonCanonical {
        /// The input, shortened.
        input: String,
        /// The canonical DID for the same key.
        canonical: String,
    },
}

/// An Ed25519 `did:key`: self-certifying, the DID *is* the public key.
///
/// Equality, ordering and hashing are by the DID text, which is canonical.
#[derive(Clone)]
pub struct Did {
    text: String,
    key: VerifyingKey,
}

impl Did {
    /// Parses a DID strictly: prefix, multibase, base58btc, multicodec,
    /// length, curve point and canonical form are all checked.
    pub fn parse(input: &str) -> Result<Did, DidError> {
        if input.len() > MAX_DID_BYTES {
            return Err(DidError::TooLong {
                len: input.len(),
                max: MAX_DID_BYTES,
            });
        }
        let quoted = || quote(input);
        let Some(id) = input.strip_prefix(DID_KEY_PREFIX) else {
            return Err(DidError::WrongPrefix { input: quoted() });
        };
        if id.contains(['#', '?', '/']) {
            return Err(DidError::DidUrl { input: quoted() });
        }
        let Some(b58) = id.strip_prefix('z') else {
            return Err(DidError::NotBase58Btc { input: quoted() });
        };
        let bytes = bs58::decode(b58)
            .with_alphabet(bs58::Alphabet::BITCOIN)
            .into_vec()
            .map_err(|e| DidError::BadBase58 {
                input: quoted(),
                detail: e.to_string(),
            })?;
        if bytes.len() < 2 || bytes[..2] != ED25519_MULTICODEC {
            let found = hex::encode(&bytes[..bytes.len().min(2)]);
            return Err(DidError::WrongMulticodec {
                input: quoted(),
                name: multicodec_name(&bytes),
                found,
            });
        }
        let key_bytes: [u8; 32] = bytes[2..].try_into().map_err(|_| DidError::WrongLength {
            input: quoted(),
            len: bytes.len() - 2,
        })?;
        let key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| DidError::InvalidKey { input: quoted() })?;
        if key.is_weak() {
            return Err(DidError::WeakKey { input: quoted() });
        }
        let did = Did::from_verifying_key(key);
        if did.text != input {
            return Err(DidError::NonCanonical {
                input: quoted(),
                canonical: did.text,
            });
        }
        Ok(did)
    }

    /// The DID of a public key given as 32 bytes.
    pub fn from_public_key(bytes: &[u8; 32]) -> Result<Did, DidError> {
        let quoted = || hex::encode(bytes);
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| DidError::InvalidKey { input: quoted() })?;
        if key.is_weak() {
            return Err(DidError::WeakKey { input: quoted() });
        }
        Ok(Did::from_verifying_key(key))
    }

    pub(crate) fn from_verifying_key(key: VerifyingKey) -> Did {
        Did {
            text: format!(
                "{DID_KEY_PREFIX}{}",
                multibase(&ED25519_MULTICODEC, key.as_bytes())
            ),
            key,
        }
    }

    /// The DID text, `did:key:z6Mk…`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The multibase public key (`z6Mk…`), also the verification method's fragment.
    pub fn multibase_key(&self) -> &str {
        &self.text[DID_KEY_PREFIX.len()..]
    }

    /// The DID document, in the shape of the did:key specification's
    /// Ed25519VerificationKey2020 example: one verification method
    /// (`publicKeyMultibase`) used for `authentication`, `assertionMethod`,
    /// `capabilityDelegation` and `capabilityInvocation`, and the X25519 key
    /// derived from it (birational map to Montgomery form) for `keyAgreement`.
    pub fn document(&self) -> Value {
        let vm = format!("{}#{}", self.text, self.multibase_key());
        let x25519 = multibase(&X25519_MULTICODEC, self.key.to_montgomery().as_bytes());
        json!({
            "@context": [
                "https://www.w3.org/ns/did/v1",
                "https://w3id.org/security/suites/ed25519-2020/v1",
                "https://w3id.org/security/suites/x25519-2020/v1"
            ],
            "id": self.text,
            "verificationMethod": [{
                "id": vm,
                "type": "Ed25519VerificationKey2020",
                "controller": self.text,
                "publicKeyMultibase": self.multibase_key(),
            }],
            "authentication": [vm],
            "assertionMethod": [vm],
            "capabilityDelegation": [vm],
            "capabilityInvocation": [vm],
            "keyAgreement": [{
                "id": format!("{}#{}", self.text, x25519),
                "type": "X25519KeyAgreementKey2020",
                "controller": self.text,
                "publicKeyMultibase": x25519,
            }],
        })
    }
}

/// `z` + base58btc(codec ‖ key).
fn multibase(codec: &[u8; 2], key: &[u8; 32]) -> String {
    let mut bytes = [0u8; 34];
    bytes[..2].copy_from_slice(codec);
    bytes[2..].copy_from_slice(key);
    format!(
        "z{}",
        bs58::encode(bytes)
            .with_alphabet(bs58::Alphabet::BITCOIN)
            .into_string()
    )
}

fn multicodec_name(bytes: &[u8]) -> &'static str {
    match bytes {
        [0xec, 0x01, ..] => "x25519-pub",
        [0xe7, 0x01, ..] => "secp256k1-pub",
        [0x80, 0x24, ..] => "p256-pub",
        [0x81, 0x24, ..] => "p384-pub",
        [0x82, 0x24, ..] => "p521-pub",
        [0x85, 0x24, ..] => "rsa-pub",
        [0xeb, 0x01, ..] => "bls12_381-g2-pub",
        _ => "unknown",
    }
}

/// The input for an error message: at most [`QUOTE_CHARS`] characters.
pub(crate) fn quote(input: &str) -> String {
    let mut out: String = input.chars().take(QUOTE_CHARS).collect();
    if out.len() < input.len() {
        out.push('…');
    }
    out
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({})", self.text)
    }
}

impl PartialEq for Did {
    fn eq(&self, other: &Did) -> bool {
        self.text == other.text
    }
}

impl Eq for Did {}

impl Hash for Did {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl PartialOrd for Did {
    fn partial_cmp(&self, other: &Did) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Did {
    fn cmp(&self, other: &Did) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl std::str::FromStr for Did {
    type Err = DidError;
    fn from_str(s: &str) -> Result<Did, DidError> {
        Did::parse(s)
    }
}

impl Serialize for Did {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Did {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Did, D::Error> {
        let text = String::deserialize(deserializer)?;
        Did::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED0_DID: &str = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";

    #[test]
    fn parse_then_print_is_identity() {
        let did = Did::parse(SEED0_DID).unwrap();
        assert_eq!(did.as_str(), SEED0_DID);
        assert_eq!(Did::from_public_key(did.public_key_bytes()).unwrap(), did);
    }

    #[test]
    fn each_malformation_has_its_own_error() {
        let long = "did:key:z".to_string() + &"6".repeat(200);
        assert!(matches!(Did::parse(&long), Err(DidError::TooLong { .. })));
        assert!(matches!(
            Did::parse("did:web:example.com"),
            Err(DidError::WrongPrefix { .. })
        ));
        assert!(matches!(
            Did::parse(&format!("{SEED0_DID}#key-1")),
            Err(DidError::DidUrl { .. })
        ));
        assert!(matches!(
            Did::parse("did:key:u7QE"),
            Err(DidError::NotBase58Btc { .. })
        ));
        assert!(matches!(
            Did::parse("did:key:z6Mk0OIl"),
            Err(DidError::BadBase58 { .. })
        ));
        // An X25519 did:key from the same test-vector file.
        assert!(matches!(
            Did::parse("did:key:z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW"),
            Err(DidError::WrongMulticodec {
                name: "x25519-pub",
                ..
            })
        ));
        let short = format!(
            "did:key:z{}",
            bs58::encode([0xed, 0x01, 1, 2, 3]).into_string()
        );
        assert!(matches!(
            Did::parse(&short),
            Err(DidError::WrongLength { len: 3, .. })
        ));
        // The identity point (small order).
        let mut weak = [0u8; 34];
        weak[..2].copy_from_slice(&ED25519_MULTICODEC);
        weak[2] = 1;
        let weak = format!("did:key:z{}", bs58::encode(weak).into_string());
        assert!(matches!(Did::parse(&weak), Err(DidError::WeakKey { .. })));
    }

    #[test]
    fn document_lists_the_key_for_every_relationship() {
        let did = Did::parse(SEED0_DID).unwrap();
        let doc = did.document();
        let vm = format!("{SEED0_DID}#z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp");
        assert_eq!(doc["id"], SEED0_DID);
        assert_eq!(doc["verificationMethod"][0]["id"], vm);
        assert_eq!(
            doc["verificationMethod"][0]["type"],
            "Ed25519VerificationKey2020"
        );
        assert_eq!(doc["verificationMethod"][0]["controller"], SEED0_DID);
        for rel in [
            "authentication",
            "assertionMethod",
            "capabilityDelegation",
            "capabilityInvocation",
        ] {
            assert_eq!(doc[rel][0], vm, "{rel}");
        }
        // The X25519 key the test vectors derive for seed 0.
        assert_eq!(
            doc["keyAgreement"][0]["publicKeyMultibase"],
            "z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW"
        );
    }

    #[test]
    fn serde_round_trips_and_rejects_bad_text() {
        let did = Did::parse(SEED0_DID).unwrap();
        let json = serde_json::to_string(&did).unwrap();
        assert_eq!(json, format!("\"{SEED0_DID}\""));
        let back: Did = serde_json::from_str(&json).unwrap();
        assert_eq!(back, did);
        assert!(serde_json::from_str::<Did>("\"did:key:zzz\"").is_err());
    }
}
