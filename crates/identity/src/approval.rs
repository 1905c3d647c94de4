//! An approver's signature over an answer to an approval: proof that the
//! holder of a `did:key` approved (or denied) this exact action, which
//! anyone can check later against the audit log.
//!
//! The signed bytes are [`APPROVAL_DOMAIN`], then three length-prefixed
//! fields (u32 big-endian length, then the UTF-8 bytes): the approval id,
//! the answer (`approve` or `deny`), and the action hash the approval is
//! bound to. The signature is 64 bytes of Ed25519 over them, written in
//! base64url without padding (86 characters). An approver's comment is
//! recorded beside the signature but is not covered by it.
//!
//! ```
//! use warden_identity::IdentityKey;
//! use warden_identity::approval::{sign_answer, verify_answer};
//!
//! let key = IdentityKey::from_seed(&[9; 32]);
//! let signature = sign_answer(&key, "apr_1", true, "sha256:ab");
//! assert!(verify_answer(key.did(), "apr_1", true, "sha256:ab", &signature).is_ok());
//! // The same signature does not deny, nor approve another action.
//! assert!(verify_answer(key.did(), "apr_1", false, "sha256:ab", &signature).is_err());
//! assert!(verify_answer(key.did(), "apr_1", true, "sha256:cd", &signature).is_err());
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::did::quote;
use crate::key::decode_signature;
use crate::{Did, IdentityKey, verify_signature};

/// The first bytes of every signed approval answer.
pub const APPROVAL_DOMAIN: &[u8; 26] = b"warden/approval-answer/v1\n";

/// Why an approval signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalSignatureError {
    /// Not 64 bytes in base64url without padding.
    #[error("the signature '{0}' is not 64 bytes in base64url without padding (86 characters)")]
    Encoding(String),
    /// Well formed, but not by this key over this answer.
    #[error(
        "the signature does not verify: it was not made by {did} over {verb} of approval '{id}' (action {action_hash})"
    )]
    Mismatch {
        /// The key the signature was checked against.
        did: String,
        /// `approve` or `deny`.
        verb: &'static str,
        /// The approval id (quoted, shortened).
        id: String,
        /// The action hash (quoted, shortened).
        action_hash: String,
    },
}

/// The answer's verb in the signed bytes.
pub fn verb(approve: bool) -> &'static str {
    if approve { "approve" } else { "deny" }
}

/// The exact bytes an approver signs (see the module documentation).
pub fn answer_bytes(id: &str, approve: bool, action_hash: &str) -> Vec<u8> {
    let verb = verb(approve);
    let mut out =
        Vec::with_capacity(APPROVAL_DOMAIN.len() + 12 + id.len() + verb.len() + action_hash.len());
    out.extend_from_slice(APPROVAL_DOMAIN);
    for field in [id, verb, action_hash] {
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

/// Signs an answer: base64url without padding.
pub fn sign_answer(key: &IdentityKey, id: &str, approve: bool, action_hash: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.sign(&answer_bytes(id, approve, action_hash)))
}

/// Checks `signature` (base64url, as [`sign_answer`] writes it) is `did`'s
/// over this answer.
pub fn verify_answer(
    did: &Did,
    id: &str,
    approve: bool,
    action_hash: &str,
    signature: &str,
) -> Result<(), ApprovalSignatureError> {
    let bytes = decode_signature(signature)
        .ok_or_else(|| ApprovalSignatureError::Encoding(quote(signature)))?;
    if verify_signature(did, &answer_bytes(id, approve, action_hash), &bytes) {
        Ok(())
    } else {
        Err(ApprovalSignatureError::Mismatch {
            did: did.to_string(),
            verb: verb(approve),
            id: quote(id),
            action_hash: quote(action_hash),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> IdentityKey {
        IdentityKey::from_seed(&[3; 32])
    }

    #[test]
    fn the_signed_bytes_are_the_documented_layout() {
        let b = answer_bytes("apr_1", false, "h");
        let mut want = APPROVAL_DOMAIN.to_vec();
        want.extend_from_slice(&[0, 0, 0, 5]);
        want.extend_from_slice(b"apr_1");
        want.extend_from_slice(&[0, 0, 0, 4]);
        want.extend_from_slice(b"deny");
        want.extend_from_slice(&[0, 0, 0, 1]);
        want.extend_from_slice(b"h");
        assert_eq!(b, want);
    }

    #[test]
    fn a_signature_binds_the_id_the_answer_the_action_and_the_key() {
        let k = key();
        let s = sign_answer(&k, "apr_1", true, "sha256:00");
        assert_eq!(s.len(), 86);
        verify_answer(k.did(), "apr_1", true, "sha256:00", &s).unwrap();
        for (id, approve, hash) in [
            ("apr_2", true, "sha256:00"),
            ("apr_1", false, "sha256:00"),
            ("apr_1", true, "sha256:01"),
        ] {
            assert!(
                matches!(
                    verify_answer(k.did(), id, approve, hash, &s),
                    Err(ApprovalSignatureError::Mismatch { .. })
                ),
                "{id} {approve} {hash}"
            );
        }
        let other = IdentityKey::from_seed(&[4; 32]);
        assert!(verify_answer(other.did(), "apr_1", true, "sha256:00", &s).is_err());
    }

    #[test]
    fn malformed_signatures_are_encoding_errors_not_panics() {
        let k = key();
        let good = sign_answer(&k, "a", true, "h");
        for bad in [
            String::new(),
            "x".repeat(86),
            format!("{good}="),
            good[..85].to_string(),
            "é".repeat(43),
            "A".repeat(1 << 20),
        ] {
            assert!(
                matches!(
                    verify_answer(k.did(), "a", true, "h", &bad),
                    Err(ApprovalSignatureError::Encoding(_))
                ),
                "{}",
                bad.len()
            );
        }
    }
}
