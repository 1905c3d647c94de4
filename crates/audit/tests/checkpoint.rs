//! Signed-note checkpoints: interoperability with Go's
//! `golang.org/x/mod/sumdb/note` and the Go checksum database, and tamper
//! detection.

use warden_audit::{Checkpoint, KeyError, LogSigner, LogVerifier, NoteError, Tree, leaf_hash};

// The example key pair and note of golang.org/x/mod/sumdb/note.
const GO_SIGNER: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIG: &str =
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";

// A signed tree head published by the Go checksum database, and its
// well-known verifier key (the default GOSUMDB key).
const SUMDB_VERIFIER: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
const SUMDB_NOTE: &str = "go.sum database tree\n49189689\nftjbAOzaupaIvaPo/G+Dk63nxOZ2s1OPOKIaPtXs7S4=\n\n— sum.golang.org Az3grlKZssqRoMNPpZfKt0TphbbcF+pzXqElURJKRNFKfaUAgqeI5k2AORH0QAhg/ebRwyIqD/OqP4oLtLnNumvOBAM=\n";

#[test]
fn signing_reproduces_the_go_note_example_byte_for_byte() {
    let signer = LogSigner::from_key_string(GO_SIGNER).expect("Go example signer key parses");
    assert_eq!(signer.to_key_string(), GO_SIGNER);
    assert_eq!(signer.verifier().to_key_string(), GO_VERIFIER);
    let note = signer
        .sign_note(GO_TEXT)
        .expect("text is a valid note text");
    assert_eq!(note, format!("{GO_TEXT}\n— PeterNeumann {GO_SIG}\n"));
}

#[test]
fn the_go_note_example_verifies_and_any_change_is_refused() {
    let verifier =
        LogVerifier::from_key_string(GO_VERIFIER).expect("Go example verifier key parses");
    assert_eq!(hex::encode(verifier.key_id()), "c74f20a3");
    let note = format!("{GO_TEXT}\n— PeterNeumann {GO_SIG}\n");
    assert_eq!(verifier.open_note(&note), Ok(GO_TEXT));
    let altered = note.replace("cryptography", "cryptographY");
    assert!(matches!(
        verifier.open_note(&altered),
        Err(NoteError::BadSignature { .. })
    ));
}

#[test]
fn a_real_go_checksum_database_tree_head_verifies() {
    let verifier = LogVerifier::from_key_string(SUMDB_VERIFIER).expect("sumdb key parses");
    let text = verifier
        .open_note(SUMDB_NOTE)
        .expect("published tree head verifies");
    let checkpoint = Checkpoint::parse(text).expect("it is a checkpoint");
    assert_eq!(checkpoint.origin, "go.sum database tree");
    assert_eq!(checkpoint.size, 49_189_689);
    // Its origin is not the key name, so as a warden checkpoint it is refused.
    assert!(matches!(
        verifier.verify_checkpoint(SUMDB_NOTE),
        Err(NoteError::WrongOrigin { .. })
    ));
}

fn sample() -> (LogSigner, Checkpoint, String) {
    let signer = LogSigner::from_seed("example.com/warden", [42; 32]).expect("valid name");
    let tree = Tree::from_leaves((0u8..5).map(|i| leaf_hash(&[i])));
    let checkpoint = tree.checkpoint("example.com/warden");
    let note = signer
        .sign_checkpoint(&checkpoint)
        .expect("origin is the key name");
    (signer, checkpoint, note)
}

#[test]
fn checkpoint_note_has_the_c2sp_shape_and_round_trips() {
    let (signer, checkpoint, note) = sample();
    let lines: Vec<&str> = note.split('\n').collect();
    assert_eq!(lines[0], "example.com/warden");
    assert_eq!(lines[1], "5");
    assert_eq!(lines[3], "");
    assert!(lines[4].starts_with("— example.com/warden "));
    assert_eq!(lines.len(), 6, "four lines and a final newline: {note:?}");
    let verifier =
        LogVerifier::from_key_string(&signer.verifier().to_key_string()).expect("own key parses");
    assert_eq!(verifier.verify_checkpoint(&note), Ok(checkpoint));
}

#[test]
fn verifier_key_id_is_the_sha256_prefix_of_name_newline_alg_and_key() {
    use sha2::{Digest, Sha256};
    let (signer, _, _) = sample();
    let key_string = signer.verifier().to_key_string();
    let parts: Vec<&str> = key_string.splitn(3, '+').collect();
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(parts[2])
        .expect("base64");
    assert_eq!(raw.len(), 33);
    assert_eq!(raw[0], 0x01);
    let digest = Sha256::digest([b"example.com/warden\n".as_slice(), &raw].concat());
    assert_eq!(parts[1], hex::encode(&digest[..4]));
}

#[test]
fn tampered_checkpoints_are_refused() {
    let (signer, checkpoint, note) = sample();
    let verifier = signer.verifier();
    // Another size.
    let other_size = note.replacen("\n5\n", "\n6\n", 1);
    assert!(matches!(
        verifier.verify_checkpoint(&other_size),
        Err(NoteError::BadSignature { .. })
    ));
    // Another signature (a different key under the same name).
    let impostor = LogSigner::from_seed("example.com/warden", [43; 32]).expect("valid name");
    let forged = impostor.sign_checkpoint(&checkpoint).expect("signs");
    assert!(matches!(
        verifier.verify_checkpoint(&forged),
        Err(NoteError::NoSignature { .. })
    ));
    // Every single-bit flip of the signature line's base64 payload is refused.
    let sig_start = note.rfind(' ').expect("signature line") + 1;
    for i in sig_start..note.len() - 1 {
        let mut bytes = note.clone().into_bytes();
        bytes[i] ^= 0x01;
        if let Ok(altered) = String::from_utf8(bytes) {
            assert!(
                verifier.verify_checkpoint(&altered).is_err(),
                "flip at byte {i} verified"
            );
        }
    }
    // Truncated notes.
    for cut in 0..note.len() {
        if note.is_char_boundary(cut) {
            assert!(
                verifier.verify_checkpoint(&note[..cut]).is_err(),
                "prefix of {cut} bytes verified"
            );
        }
    }
}

#[test]
fn notes_over_the_size_limit_are_refused_before_parsing() {
    let (signer, _, note) = sample();
    let huge = format!(
        "{}{}",
        "x".repeat(warden_audit::checkpoint::MAX_NOTE_BYTES),
        note
    );
    assert!(matches!(
        signer.verifier().open_note(&huge),
        Err(NoteError::Malformed { .. })
    ));
}

#[test]
fn bad_key_strings_and_names_are_refused_with_a_hint() {
    assert!(matches!(
        LogSigner::from_seed("has space", [1; 32]),
        Err(KeyError::BadName { .. })
    ));
    assert!(matches!(
        LogSigner::from_seed("a+b", [1; 32]),
        Err(KeyError::BadName { .. })
    ));
    assert!(matches!(
        LogSigner::from_seed("", [1; 32]),
        Err(KeyError::BadName { .. })
    ));
    let wrong_id = GO_VERIFIER.replace("c74f20a3", "c74f20a4");
    let err = LogVerifier::from_key_string(&wrong_id).expect_err("wrong key id");
    assert!(err.to_string().contains("hint"), "{err}");
    for bad in [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a3+AAAA",
    ] {
        assert!(LogVerifier::from_key_string(bad).is_err(), "{bad:?} parsed");
    }
    // Signer errors never echo the secret.
    let err = LogSigner::from_key_string(&GO_SIGNER.replace("c74f20a3", "00000000"))
        .expect_err("wrong id");
    assert!(!err.to_string().contains("AYEKFALV"), "{err}");
}

#[test]
fn checkpoint_text_parsing_is_strict() {
    let root = "XcnaeacGWamtVZy3Ad7Zoqudgjqtsklgz+Nw7/RgQyg=";
    assert!(Checkpoint::parse(&format!("o\n8\n{root}\n")).is_ok());
    assert!(Checkpoint::parse(&format!("o\n8\n{root}\next\n")).is_ok());
    for bad in [
        format!("o\n08\n{root}\n"),
        format!("o\n-1\n{root}\n"),
        format!("o\n8\n{root}"),
        format!("\n8\n{root}\n"),
        "o\n8\nAAAA\n".to_string(),
        "o\n8\n".to_string(),
    ] {
        assert!(Checkpoint::parse(&bad).is_err(), "{bad:?} parsed");
    }
}
