//! did:key against the W3C test vectors and against keys made by other
//! implementations (Python `cryptography`, OpenSSL).
//!
//! The cross-implementation tests need `python3` with the `cryptography`
//! package and the `openssl` command; they fail (never skip) without them.

use std::process::Command;

use proptest::prelude::*;
use warden_identity::{Did, DidError, IdentityKey};

/// Seeds 0–4 of w3c-ccg/did-method-key `test-vectors/ed25519-x25519.json`:
/// (seed, did, publicKeyBase58, X25519 keyAgreement multibase).
const W3C_VECTORS: [(&str, &str, &str, &str); 5] = [
    (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS",
        "z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000001",
        "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
        "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt",
        "z6LSrHyXiPBhUbvPUtyUCdf32sniiMGPTAesgHrtEa4FePtr",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000002",
        "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf",
        "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH",
        "z6LSkkqoZRC34AEpbkhZCqLDcHQVAxuLpQ7kC8XCXMVUfvjE",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000003",
        "did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ",
        "HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2",
        "z6LSiUo6AEDat8Ze4nQzDo67SGuHLLwsUGkxndHGUjsywHow",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000004",
        "did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL",
        "J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x",
        "z6LSrGb3qm4xMCEBjvwkLb2WEcXfTM94Tu1RyGCbT5wbg8i9",
    ),
];

/// base58btc written out, independent of the `bs58` crate warden uses.
fn base58btc(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u8> = Vec::new(); // base 58, least significant first
    for &byte in data {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    let mut out = "1".repeat(zeros);
    out.extend(digits.iter().rev().map(|&d| ALPHABET[d as usize] as char));
    out
}

fn did_of(public: &[u8]) -> String {
    let mut bytes = vec![0xed, 0x01];
    bytes.extend_from_slice(public);
    format!("did:key:z{}", base58btc(&bytes))
}

#[test]
fn w3c_test_vectors_seed_to_did_and_document() {
    for (seed, did, public_b58, x25519) in W3C_VECTORS {
        let key = IdentityKey::import(seed).unwrap();
        assert_eq!(key.did().as_str(), did);
        assert_eq!(base58btc(key.did().public_key_bytes()), public_b58);
        let parsed = Did::parse(did).unwrap();
        assert_eq!(&parsed, key.did());
        let doc = parsed.document();
        assert_eq!(
            doc["verificationMethod"][0]["publicKeyMultibase"],
            &did[8..]
        );
        assert_eq!(doc["keyAgreement"][0]["publicKeyMultibase"], x25519);
        assert_eq!(
            doc["keyAgreement"][0]["id"],
            format!("{did}#{x25519}").as_str()
        );
    }
}

#[test]
fn independent_base58_agrees_on_generated_keys() {
    for i in 0..64u8 {
        let key = IdentityKey::from_seed(&[i; 32]);
        assert_eq!(key.did().as_str(), did_of(key.did().public_key_bytes()));
    }
}

#[test]
fn python_cryptography_keys_give_the_same_did() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/independent_did_key.py");
    let out = Command::new("python3")
        .arg(script)
        .arg("8")
        .output()
        .expect("python3 is needed for this test (with the `cryptography` package)");
    assert!(
        out.status.success(),
        "tests/independent_did_key.py failed (is the Python `cryptography` package installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut seen = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let did = v["did"].as_str().unwrap();
        let from_seed = IdentityKey::import(v["seed"].as_str().unwrap()).unwrap();
        let from_pem = IdentityKey::import(v["pem"].as_str().unwrap()).unwrap();
        assert_eq!(from_seed.did().as_str(), did);
        assert_eq!(from_pem.did().as_str(), did);
        assert_eq!(
            hex::encode(from_pem.did().public_key_bytes()),
            v["public"].as_str().unwrap()
        );
        assert_eq!(Did::parse(did).unwrap(), *from_pem.did());
        seen += 1;
    }
    assert_eq!(seen, 8);
}

#[test]
fn openssl_genpkey_pem_imports_to_the_did_of_its_public_key() {
    let dir = std::env::temp_dir().join(format!("warden-identity-openssl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..4 {
        let pem_path = dir.join(format!("k{i}.pem"));
        let status = Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&pem_path)
            .status()
            .expect("the `openssl` command is needed for this test");
        assert!(status.success(), "openssl genpkey failed");
        let der = Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&pem_path)
            .output()
            .expect("the `openssl` command is needed for this test");
        assert!(der.status.success(), "openssl pkey -pubout failed");
        // SubjectPublicKeyInfo for Ed25519 is a 12-byte header then the 32-byte key.
        assert_eq!(der.stdout.len(), 44);
        let public = &der.stdout[12..];
        let pem = std::fs::read_to_string(&pem_path).unwrap();
        let key = IdentityKey::import(&pem).unwrap();
        assert_eq!(key.did().as_str(), did_of(public));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exported_pem_is_read_by_openssl() {
    let key = IdentityKey::from_seed(&[5u8; 32]);
    let dir = std::env::temp_dir().join(format!("warden-identity-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("k.pem");
    std::fs::write(&path, key.to_pkcs8_pem().as_bytes()).unwrap();
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&path)
        .output()
        .expect("the `openssl` command is needed for this test");
    assert!(
        der.status.success(),
        "openssl could not read the exported key"
    );
    assert_eq!(&der.stdout[12..], key.did().public_key_bytes());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_dids_are_rejected_with_their_own_error() {
    let good = W3C_VECTORS[0].1;
    type Expect = fn(&DidError) -> bool;
    let cases: Vec<(String, Expect)> = vec![
        ("did:key:".into(), |e| {
            matches!(e, DidError::NotBase58Btc { .. })
        }),
        ("DID:KEY:z6Mk".into(), |e| {
            matches!(e, DidError::WrongPrefix { .. })
        }),
        (good.replacen('z', "Z", 1), |e| {
            matches!(e, DidError::NotBase58Btc { .. })
        }),
        (format!("{good}l"), |e| {
            matches!(e, DidError::BadBase58 { .. })
        }),
        (format!("{good}2"), |e| {
            matches!(
                e,
                DidError::WrongMulticodec { .. } | DidError::WrongLength { .. }
            )
        }),
        (good[..good.len() - 1].to_string(), |e| {
            matches!(
                e,
                DidError::WrongMulticodec { .. } | DidError::WrongLength { .. }
            )
        }),
        (format!(" {good}"), |e| {
            matches!(e, DidError::WrongPrefix { .. })
        }),
        (format!("{good}\u{200b}"), |e| {
            matches!(e, DidError::BadBase58 { .. })
        }),
        (
            format!("did:key:z{}", base58btc(&[0xe7, 0x01, 2, 3])),
            |e| {
                matches!(
                    e,
                    DidError::WrongMulticodec {
                        name: "secp256k1-pub",
                        ..
                    }
                )
            },
        ),
    ];
    for (input, expected) in cases {
        let err = Did::parse(&input).unwrap_err();
        assert!(expected(&err), "{input:?}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(s in any::<String>()) {
        let _ = Did::parse(&s);
        let _ = Did::parse(&format!("did:key:z{s}"));
    }

    #[test]
    fn parsing_arbitrary_multibase_bytes_never_panics_and_accepts_only_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let text = format!("did:key:z{}", base58btc(&bytes));
        if let Ok(did) = Did::parse(&text) {
            prop_assert_eq!(did.as_str(), text.as_str());
            prop_assert_eq!(&bytes[..2], &[0xed, 0x01]);
        }
    }

    #[test]
    fn every_seed_round_trips(seed in any::<[u8; 32]>()) {
        let key = IdentityKey::from_seed(&seed);
        let did = Did::parse(key.did().as_str()).unwrap();
        prop_assert_eq!(&did, key.did());
        prop_assert_eq!(did.as_str(), did_of(did.public_key_bytes()));
        let back = IdentityKey::import(&hex::encode(seed)).unwrap();
        prop_assert_eq!(back.did(), key.did());
    }
}
