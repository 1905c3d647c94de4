//! Signed checkpoints in the C2SP formats (`tlog-checkpoint` inside a
//! `signed-note`), signed with Ed25519.
//!
//! A checkpoint note looks like this:
//!
//! ```text
//! example.com/warden
//! 8
//! XcnaeacGWamtVZy3Ad7Zoqudgjqtsklgz+Nw7/RgQyg=
//!
//! — example.com/warden <base64 of the 4-byte key id and the 64-byte signature>
//! ```
//!
//! The key id is the first 4 bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public
//! key)`; the signature line carries `base64(key id ‖ signature)` and the
//! signature covers the note text (the lines before the blank line,
//! including the final newline). Verifier keys are written
//! `name+keyid+base64(0x01 ‖ public key)` and signer keys
//! `PRIVATE+KEY+name+keyid+base64(0x01 ‖ seed)`, as in Go's
//! `golang.org/x/mod/sumdb/note`, so other tools can check warden's
//! checkpoints.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// Algorithm byte of Ed25519 note keys.
const ALG_ED25519: u8 = 0x01;

/// Largest signed note accepted, in bytes.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

/// Most signature lines one note may carry.
pub const MAX_SIGNATURES: usize = 100;

/// The signature line prefix: an em dash and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// What a checkpoint says: the log's origin, its size and its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (its unique name, also the key name).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root of those leaves.
    pub root: Hash,
}

/// Why a key string or name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key name is empty or has whitespace or `+`.
    #[error(
        "invalid key name {name:?}; hint: use a non-empty name without spaces or '+', e.g. example.com/warden"
    )]
    BadName {
        /// The name given.
        name: String,
    },
    /// The key string is not of the expected shape.
    #[error("invalid {kind} key {key:?}: {what}; hint: expected {expected}")]
    Malformed {
        /// `verifier` or `signer`.
        kind: &'static str,
        /// The key string (signer keys are not echoed).
        key: String,
        /// What is wrong.
        what: String,
        /// The expected shape.
        expected: &'static str,
    },
}

/// Why a signed note or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is not a well-formed signed note.
    #[error(
        "malformed signed note: {what}; hint: a note is text lines, a blank line, then lines '— <name> <base64>'"
    )]
    Malformed {
        /// What is wrong.
        what: String,
    },
    /// No signature line is from this verifier's key.
    #[error(
        "no signature by key {name}+{key_id} on the note; hint: check that the note comes from this log and the verifier key is right"
    )]
    NoSignature {
        /// The verifier's name.
        name: String,
        /// The verifier's key id, hex.
        key_id: String,
    },
    /// A signature by this key is present but does not verify.
    #[error(
        "the signature by {name} does not verify; hint: the note text or its signature was altered"
    )]
    BadSignature {
        /// The key name.
        name: String,
    },
    /// The signed text is not a valid checkpoint.
    #[error(
        "invalid checkpoint in line {line}: {what}; hint: a checkpoint is the origin, the decimal tree size and the base64 root hash, one per line"
    )]
    BadCheckpoint {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// The checkpoint names another origin than the verifier key.
    #[error(
        "checkpoint origin {origin:?} is not the key name {name:?}; hint: this checkpoint belongs to another log"
    )]
    WrongOrigin {
        /// The checkpoint's origin line.
        origin: String,
        /// The verifier's key name.
        name: String,
    },
}

fn check_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty()
        || name.contains('+')
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(KeyError::BadName { name: name.into() });
    }
    Ok(())
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn b64_canonical(text: &str) -> Option<Vec<u8>> {
    let bytes = B64.decode(text).ok()?;
    // Refuse non-canonical encodings so one key has one string.
    (B64.encode(&bytes) == text).then_some(bytes)
}

impl Checkpoint {
    /// The checkpoint body: origin, size and base64 root, one per line.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parse a checkpoint body. Extension lines after the root are allowed
    /// (C2SP `tlog-checkpoint`) and ignored.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |line: usize, what: String| NoteError::BadCheckpoint { line, what };
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad(1, "the text does not end with a newline".into()))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(bad(1, "the origin line is empty".into()));
        }
        let size_line = lines
            .next()
            .ok_or_else(|| bad(2, "the tree size line is missing".into()))?;
        let size = size_line
            .parse::<u64>()
            .ok()
            .filter(|n| n.to_string() == size_line)
            .ok_or_else(|| {
                bad(
                    2,
                    format!("{size_line:?} is not a canonical decimal tree size"),
                )
            })?;
        let root_line = lines
            .next()
            .ok_or_else(|| bad(3, "the root hash line is missing".into()))?;
        let root: Hash = b64_canonical(root_line)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                bad(
                    3,
                    format!("{root_line:?} is not the base64 of a 32-byte hash"),
                )
            })?;
        for (i, ext) in lines.enumerate() {
            if ext.is_empty() {
                return Err(bad(4 + i, "empty extension line".into()));
            }
        }
        Ok(Self {
            origin: origin.into(),
            size,
            root,
        })
    }
}

/// The log's signing key: signs checkpoints.
pub struct LogSigner {
    name: String,
    key: SigningKey,
    key_id: [u8; 4],
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("LogSigner")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id))
            .finish_non_exhaustive()
    }
}

impl LogSigner {
    /// A signer named `name` (the log's origin) from a 32-byte Ed25519 seed.
    /// The caller supplies the randomness: this crate does no I/O.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, KeyError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.into(),
            key,
            key_id,
        })
    }

    /// Parse a signer key string `PRIVATE+KEY+name+keyid+base64(0x01 ‖ seed)`.
    pub fn from_key_string(text: &str) -> Result<Self, KeyError> {
        const EXPECTED: &str =
            "PRIVATE+KEY+<name>+<8 hex key id>+<base64 of 0x01 and the 32-byte seed>";
        let bad = |what: &str| KeyError::Malformed {
            kind: "signer",
            key: "<redacted>".into(),
            what: what.into(),
            expected: EXPECTED,
        };
        let rest = text
            .trim_end_matches('\n')
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("missing PRIVATE+KEY+ prefix"))?;
        let (name, id_hex, key_b64) =
            split_key(rest).ok_or_else(|| bad("expected three '+'-separated fields"))?;
        let raw =
            b64_canonical(key_b64).ok_or_else(|| bad("key material is not canonical base64"))?;
        let seed: [u8; 32] = match raw.split_first() {
            Some((&ALG_ED25519, seed)) => {
                seed.try_into().map_err(|_| bad("seed is not 32 bytes"))?
            }
            _ => return Err(bad("algorithm byte is not 0x01 (Ed25519)")),
        };
        let signer = Self::from_seed(name, seed)?;
        if hex::encode(signer.key_id) != id_hex {
            return Err(bad("key id does not match the name and key"));
        }
        Ok(signer)
    }

    /// The signer key string; keep it secret.
    pub fn to_key_string(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            B64.encode(raw)
        )
    }

    /// The key name (the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier.
    pub fn verifier(&self) -> LogVerifier {
        LogVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            key_id: self.key_id,
        }
    }

    /// Sign a note text (non-empty, ending in a newline, no blank line
    /// at the end) and return the signed note.
    pub fn sign_note(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }

    /// Sign a checkpoint of this log. Its origin must be the key name.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, NoteError> {
        if checkpoint.origin != self.name {
            return Err(NoteError::WrongOrigin {
                origin: checkpoint.origin.clone(),
                name: self.name.clone(),
            });
        }
        self.sign_note(&checkpoint.to_text())
    }
}

fn split_key(text: &str) -> Option<(&str, &str, &str)> {
    // name+keyid+base64: the base64 may itself contain '+', the name may not.
    let (name, rest) = text.split_once('+')?;
    let (id, key) = rest.split_once('+')?;
    (id.len() == 8 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some((name, id, key))
}

fn check_text(text: &str) -> Result<(), NoteError> {
    let bad = |what: &str| NoteError::Malformed { what: what.into() };
    if text.is_empty() || !text.ends_with('\n') {
        return Err(bad("the text must be non-empty and end with a newline"));
    }
    if text.contains("\n\n") || text.starts_with('\n') {
        return Err(bad("the text must not contain a blank line"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(bad(
            "the text must not contain control characters other than newline",
        ));
    }
    Ok(())
}

/// The log's public key: verifies checkpoints offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVerifier {
    name: String,
    key: VerifyingKey,
    key_id: [u8; 4],
}

impl LogVerifier {
    /// Parse a verifier key string `name+keyid+base64(0x01 ‖ public key)`.
    pub fn from_key_string(text: &str) -> Result<Self, KeyError> {
        const EXPECTED: &str = "<name>+<8 hex key id>+<base64 of 0x01 and the 32-byte public key>";
        let bad = |what: &str| KeyError::Malformed {
            kind: "verifier",
            key: text.into(),
            what: what.into(),
            expected: EXPECTED,
        };
        let (name, id_hex, key_b64) =
            split_key(text).ok_or_else(|| bad("expected three '+'-separated fields"))?;
        check_name(name)?;
        let raw =
            b64_canonical(key_b64).ok_or_else(|| bad("key material is not canonical base64"))?;
        let public: [u8; 32] = match raw.split_first() {
            Some((&ALG_ED25519, public)) => public
                .try_into()
                .map_err(|_| bad("public key is not 32 bytes"))?,
            _ => return Err(bad("algorithm byte is not 0x01 (Ed25519)")),
        };
        let key =
            VerifyingKey::from_bytes(&public).map_err(|_| bad("not a valid Ed25519 public key"))?;
        if key.is_weak() {
            return Err(bad("the public key has small order"));
        }
        let key_id = key_id(name, &public);
        if hex::encode(key_id) != id_hex {
            return Err(bad("key id does not match the name and key"));
        }
        Ok(Self {
            name: name.into(),
            key,
            key_id,
        })
    }

    /// The verifier key string, as `warden audit key` prints it.
    pub fn to_key_string(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            B64.encode(raw)
        )
    }

    /// The key name (the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// Check a signed note and return its text. Signatures by other keys
    /// are ignored; one by this key must be present and valid
    /// (`verify_strict`: no malleable or small-order signatures).
    pub fn open_note<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let bad = |what: String| NoteError::Malformed { what };
        if note.len() > MAX_NOTE_BYTES {
            return Err(bad(format!(
                "{} bytes, more than the limit of {MAX_NOTE_BYTES}",
                note.len()
            )));
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| bad("no blank line between the text and the signatures".into()))?;
        let (text, sigs) = (&note[..=split], &note[split + 2..]);
        check_text(text)?;
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or_else(|| bad("the signature block does not end with a newline".into()))?;
        let mut found = None;
        for (i, line) in sigs.split('\n').enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(bad(format!("more than {MAX_SIGNATURES} signatures")));
            }
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or_else(|| bad(format!("signature line {line:?} does not start with '— '")))?;
            let (name, b64) = rest.split_once(' ').ok_or_else(|| {
                bad(format!(
                    "signature line {line:?} has no space between name and signature"
                ))
            })?;
            let blob = b64_canonical(b64).filter(|b| b.len() >= 5).ok_or_else(|| {
                bad(format!(
                    "signature of {name:?} is not canonical base64 of a key id and a signature"
                ))
            })?;
            if name == self.name && blob[..4] == self.key_id && found.is_none() {
                found = Some(blob);
            }
        }
        let blob = found.ok_or_else(|| NoteError::NoSignature {
            name: self.name.clone(),
            key_id: hex::encode(self.key_id),
        })?;
        let sig_bytes: [u8; 64] = blob[4..].try_into().map_err(|_| NoteError::BadSignature {
            name: self.name.clone(),
        })?;
        self.key
            .verify_strict(text.as_bytes(), &Signature::from_bytes(&sig_bytes))
            .map_err(|_| NoteError::BadSignature {
                name: self.name.clone(),
            })?;
        Ok(text)
    }

    /// Check a signed checkpoint of this log and return what it says.
    pub fn verify_checkpoint(&self, note: &str) -> Result<Checkpoint, NoteError> {
        let checkpoint = Checkpoint::parse(self.open_note(note)?)?;
        if checkpoint.origin != self.name {
            return Err(NoteError::WrongOrigin {
                origin: checkpoint.origin,
                name: self.name.clone(),
            });
        }
        Ok(checkpoint)
    }
}
