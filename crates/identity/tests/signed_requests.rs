//! Signed requests: the exact signed bytes, and every refusal; and the
//! bytes of an approver's signed answer.
//!
//! The tests checked by Python need `python3` with the `cryptography`
//! package and fail (never skip) without it.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warden_identity::request::{DEFAULT_SKEW, signed_request_bytes};
use warden_identity::{
    AcceptedNonce, IdentityKey, RequestVerifier, SignedRequest, SignedRequestError,
};

const T0: u64 = 1_800_000_000;
const HASH: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn key() -> IdentityKey {
    IdentityKey::from_seed(&core::array::from_fn(|i| i as u8))
}

fn nonce(n: u8) -> [u8; 16] {
    [n; 16]
}

/// Seed 00 01 … 1f, nonce f0 … ff, timestamp 1 800 000 000, the all-zero action hash.
const VECTOR_BYTES: &str = concat!(
    "77617264656e2f7369676e65642d726571756573742f76310a", // "warden/signed-request/v1\n"
    "00000047",                                           // len(action_hash) = 71
    "7368613235363a",                                     // "sha256:"
    "30303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030",
    "000000006b49d200", // timestamp
    "00000010",         // len(nonce) = 16
    "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
);
const VECTOR_SIGNATURE: &str =
    "v7ee7kux6rfuW5QHNtQDBrA1wjUtulJnnHrOZtfIveZNg-JPs7vvrlEUipjZY-44GsXRwQDIoVCH41NfriEDCQ";

fn vector_nonce() -> [u8; 16] {
    core::array::from_fn(|i| 0xf0 + i as u8)
}

#[test]
fn fixed_vector_bytes_and_signature() {
    let bytes = signed_request_bytes(HASH, T0, &vector_nonce());
    assert_eq!(hex::encode(&bytes), VECTOR_BYTES);
    let req = SignedRequest::sign(&key(), HASH, at(T0), &vector_nonce()).unwrap();
    assert_eq!(
        req.did.as_str(),
        "did:key:z6MkehRgf7yJbgaGfYsdoAsKdBPE3dj2CYhowQdcjqSJgvVd"
    );
    assert_eq!(req.nonce, "8PHy8_T19vf4-fr7_P3-_w");
    assert_eq!(req.signature, VECTOR_SIGNATURE);
    assert!(
        RequestVerifier::default()
            .verify(&req, HASH, at(T0))
            .is_ok()
    );
}

#[test]
fn signature_is_plain_ed25519_checked_by_python() {
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(VECTOR_SIGNATURE)
        .unwrap();
    let script = format!(
        "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey as K\n\
         K.from_public_bytes(bytes.fromhex('{}')).verify(bytes.fromhex('{}'), bytes.fromhex('{}'))\n\
         print('ok')",
        hex::encode(key().did().public_key_bytes()),
        hex::encode(sig),
        VECTOR_BYTES
    );
    assert_eq!(python_verifies(&script, "the vector"), "ok");
}

/// Runs `script` (which verifies a signature with Python's `cryptography`
/// and prints something) and returns what it printed, trimmed; fails the
/// test, saying what `what` was, if Python refused.
fn python_verifies(script: &str, what: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3 is needed for this test (with the `cryptography` package)");
    assert!(
        out.status.success(),
        "python cryptography did not verify {what} (is `cryptography` installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_nonce_is_accepted_once() {
    let v = RequestVerifier::default();
    let req = SignedRequest::sign(&key(), HASH, at(T0), &nonce(1)).unwrap();
    assert!(v.verify(&req, HASH, at(T0)).is_ok());
    assert!(matches!(
        v.verify(&req, HASH, at(T0 + 5)),
        Err(SignedRequestError::Replay { .. })
    ));
    // Another nonce is fine; the same nonce from another agent is too.
    let again = SignedRequest::sign(&key(), HASH, at(T0), &nonce(2)).unwrap();
    assert!(v.verify(&again, HASH, at(T0)).is_ok());
    let other = IdentityKey::from_seed(&[9; 32]);
    let theirs = SignedRequest::sign(&other, HASH, at(T0), &nonce(1)).unwrap();
    assert!(v.verify(&theirs, HASH, at(T0)).is_ok());
}

#[test]
fn timestamps_outside_the_skew_are_refused_both_ways() {
    let v = RequestVerifier::default();
    let skew = DEFAULT_SKEW.as_secs();
    for (signed_at, ok) in [
        (T0 - skew, true),
        (T0 + skew, true),
        (T0 - skew - 1, false),
        (T0 + skew + 1, false),
    ] {
        let req = SignedRequest::sign(&key(), HASH, at(signed_at), &nonce((signed_at % 200) as u8))
            .unwrap();
        let result = v.verify(&req, HASH, at(T0));
        if ok {
            assert!(result.is_ok(), "{signed_at}: {result:?}");
        } else {
            assert!(
                matches!(result, Err(SignedRequestError::Skew { .. })),
                "{signed_at}: {result:?}"
            );
        }
    }
}

#[test]
fn wrong_key_altered_fields_and_other_actions_are_refused() {
    let v = RequestVerifier::default();
    let req = SignedRequest::sign(&key(), HASH, at(T0), &nonce(3)).unwrap();
    // Claiming another DID.
    let mut forged = req.clone();
    forged.did = IdentityKey::from_seed(&[9; 32]).did().clone();
    assert!(matches!(
        v.verify(&forged, HASH, at(T0)),
        Err(SignedRequestError::BadSignature { .. })
    ));
    // Moving the timestamp.
    let mut moved = req.clone();
    moved.timestamp += 1;
    assert!(matches!(
        v.verify(&moved, HASH, at(T0)),
        Err(SignedRequestError::BadSignature { .. })
    ));
    // Presenting it for another action.
    let other = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    assert!(matches!(
        v.verify(&req, other, at(T0)),
        Err(SignedRequestError::ActionMismatch { .. })
    ));
    let mut relabelled = req.clone();
    relabelled.action_hash = other.into();
    assert!(matches!(
        v.verify(&relabelled, other, at(T0)),
        Err(SignedRequestError::BadSignature { .. })
    ));
    // None of the refusals used up the nonce.
    assert!(v.verify(&req, HASH, at(T0)).is_ok());
}

#[test]
fn full_replay_cache_refuses_until_old_nonces_expire() {
    let v = RequestVerifier::new(Duration::from_secs(60), 2);
    let sign = |n, t| SignedRequest::sign(&key(), HASH, at(t), &nonce(n)).unwrap();
    assert!(v.verify(&sign(1, T0), HASH, at(T0)).is_ok());
    assert!(v.verify(&sign(2, T0), HASH, at(T0)).is_ok());
    assert!(matches!(
        v.verify(&sign(3, T0), HASH, at(T0)),
        Err(SignedRequestError::ReplayCacheFull { capacity: 2 })
    ));
    // The refused request did not take a slot; the remembered ones still block replays.
    assert!(matches!(
        v.verify(&sign(1, T0), HASH, at(T0 + 60)),
        Err(SignedRequestError::Replay { .. })
    ));
    // Once the first two leave the window they are forgotten, and their
    // replays fail the skew check instead.
    assert!(v.verify(&sign(3, T0 + 61), HASH, at(T0 + 61)).is_ok());
    assert_eq!(v.remembered(), 1);
    assert!(matches!(
        v.verify(&sign(1, T0), HASH, at(T0 + 61)),
        Err(SignedRequestError::Skew { .. })
    ));
}

#[test]
fn a_clock_that_goes_back_does_not_readmit_forgotten_nonces() {
    let v = RequestVerifier::new(Duration::from_secs(60), 100);
    let sign = |n, t| SignedRequest::sign(&key(), HASH, at(t), &nonce(n)).unwrap();
    let first = sign(1, T0);
    assert!(v.verify(&first, HASH, at(T0)).is_ok());
    // The clock jumps 200 s ahead: a request then forgets nonces before
    // T0 + 140, the first among them.
    assert!(v.verify(&sign(2, T0 + 200), HASH, at(T0 + 200)).is_ok());
    assert_eq!(v.remembered(), 1);
    // Back to T0 + 10: the first request is within the skew again, but its
    // nonce is forgotten, so it is refused rather than let in twice; so is
    // any request from before the bound, until the clock catches up.
    let forgotten = |r| {
        matches!(
            r,
            Err(SignedRequestError::Forgotten { floor, .. }) if floor == T0 + 140
        )
    };
    assert!(forgotten(v.verify(&first, HASH, at(T0 + 10))));
    assert!(forgotten(v.verify(&sign(3, T0 + 10), HASH, at(T0 + 10))));
    assert!(
        v.verify(&sign(3, T0 + 10), HASH, at(T0 + 10))
            .unwrap_err()
            .to_string()
            .contains("clock went back")
    );
    assert!(!v.remember(
        AcceptedNonce {
            replay_id: [7; 32],
            timestamp: T0 + 10
        },
        at(T0 + 10)
    ));
    assert!(v.verify(&sign(4, T0 + 140), HASH, at(T0 + 140)).is_ok());
}

#[test]
fn a_remembered_nonce_is_refused_by_a_new_verifier_until_it_expires() {
    let first = RequestVerifier::default();
    let req = SignedRequest::sign(&key(), HASH, at(T0), &nonce(1)).unwrap();
    let accepted = first.verify(&req, HASH, at(T0)).unwrap();
    assert_eq!(accepted.timestamp, T0);

    // A verifier started later (after a restart) refuses the request only
    // if it is told about the nonce.
    let later = RequestVerifier::default();
    assert!(later.remember(accepted, at(T0 + 10)));
    assert!(matches!(
        later.verify(&req, HASH, at(T0 + 10)),
        Err(SignedRequestError::Replay { .. })
    ));
    assert!(
        RequestVerifier::default()
            .verify(&req, HASH, at(T0 + 10))
            .is_ok()
    );

    // Outside the window it is not remembered: the skew check refuses it.
    let skew = DEFAULT_SKEW.as_secs();
    let expired = RequestVerifier::default();
    assert!(expired.remember(accepted, at(T0 + skew)));
    assert!(!RequestVerifier::default().remember(accepted, at(T0 + skew + 1)));
    assert_eq!(expired.oldest_unexpired(at(T0 + skew + 1)), T0 + 1);
}

#[test]
fn remembered_nonces_are_kept_beyond_the_capacity() {
    let v = RequestVerifier::new(Duration::from_secs(60), 1);
    for n in 0..3u8 {
        let nonce = AcceptedNonce {
            replay_id: [n; 32],
            timestamp: T0,
        };
        assert!(v.remember(nonce, at(T0)));
    }
    assert_eq!(v.remembered(), 3);
    // Full: a new nonce is refused rather than one of them forgotten.
    assert!(matches!(
        v.verify(
            &SignedRequest::sign(&key(), HASH, at(T0), &nonce(9)).unwrap(),
            HASH,
            at(T0)
        ),
        Err(SignedRequestError::ReplayCacheFull { capacity: 1 })
    ));
}

#[test]
fn malformed_fields_are_refused_with_field_errors() {
    let v = RequestVerifier::default();
    assert!(matches!(
        SignedRequest::sign(&key(), HASH, at(T0), &[1; 8]),
        Err(SignedRequestError::FieldLength { field: "nonce", .. })
    ));
    assert!(matches!(
        SignedRequest::sign(&key(), &"x".repeat(129), at(T0), &nonce(1)),
        Err(SignedRequestError::FieldLength {
            field: "action_hash",
            ..
        })
    ));
    let req = SignedRequest::sign(&key(), HASH, at(T0), &nonce(4)).unwrap();
    for (nonce, signature) in [
        ("!!!!".to_string(), req.signature.clone()),
        ("A".repeat(10_000), req.signature.clone()),
        (req.nonce.clone(), "short".to_string()),
        (
            req.nonce.clone(),
            format!("{}\u{202e}", &req.signature[..85]),
        ),
        (req.nonce.clone(), "é".repeat(43)),
    ] {
        let bad = SignedRequest {
            nonce,
            signature,
            ..req.clone()
        };
        let err = v.verify(&bad, HASH, at(T0)).unwrap_err();
        assert!(
            matches!(
                err,
                SignedRequestError::Encoding { .. } | SignedRequestError::FieldLength { .. }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn json_form_round_trips_and_refuses_unknown_fields() {
    let req = SignedRequest::sign(&key(), HASH, at(T0), &nonce(5)).unwrap();
    let json = serde_json::to_string(&req).unwrap();
    let back: SignedRequest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, req);
    let extra = json.replacen('{', r#"{"extra":1,"#, 1);
    assert!(serde_json::from_str::<SignedRequest>(&extra).is_err());
    let bad_did = json.replace(req.did.as_str(), "did:key:zBAD");
    assert!(serde_json::from_str::<SignedRequest>(&bad_did).is_err());
}

/// An approver's signed answer: Python builds the documented bytes itself
/// (domain, then length-prefixed id, verb and action hash) and checks the
/// signature with the `cryptography` package.
#[test]
fn an_approval_answer_signature_is_checked_by_python_over_the_documented_bytes() {
    use base64::Engine as _;
    use warden_identity::approval::{answer_bytes, sign_answer};
    let id = "apr_0123456789abcdef0123456789abcdef";
    let signature = sign_answer(&key(), id, false, HASH);
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&signature)
        .unwrap();
    let script = format!(
        "import struct\n\
         from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey as K\n\
         m = b'warden/approval-answer/v1\\n'\n\
         for f in ['{id}', 'deny', '{HASH}']:\n    m += struct.pack('>I', len(f)) + f.encode()\n\
         K.from_public_bytes(bytes.fromhex('{}')).verify(bytes.fromhex('{}'), m)\n\
         print(m.hex())",
        hex::encode(key().did().public_key_bytes()),
        hex::encode(sig),
    );
    assert_eq!(
        python_verifies(&script, "the answer"),
        hex::encode(answer_bytes(id, false, HASH))
    );
}
