//! Capability tokens through the public API: issue, attenuate, verify,
//! authorize, and every way a chain is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use biscuit_auth::builder::{Algorithm, Term};
use biscuit_auth::{Biscuit, BlockBuilder, KeyPair, PrivateKey};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use warden_identity::{
    Attenuation, Grant, IdentityKey, MAX_DELEGATION_DEPTH, MAX_TOKEN_BYTES, RevocationId, Ring,
    Sponsor, Token, TokenError, TokenVerifier, ToolPattern, VerifiedToken, issue,
};

const T0: u64 = 1_800_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn pats(list: &[&str]) -> Vec<ToolPattern> {
    list.iter()
        .map(|p| ToolPattern::parse(p).unwrap())
        .collect()
}

/// Keys from fixed seeds, so tests can also drive biscuit directly.
struct Keys {
    org: IdentityKey,
    agent: IdentityKey,
    child: IdentityKey,
    grandchild: IdentityKey,
}

const ORG_SEED: [u8; 32] = [1; 32];
const AGENT_SEED: [u8; 32] = [2; 32];
const CHILD_SEED: [u8; 32] = [3; 32];

fn keys() -> Keys {
    Keys {
        org: IdentityKey::from_seed(&ORG_SEED),
        agent: IdentityKey::from_seed(&AGENT_SEED),
        child: IdentityKey::from_seed(&CHILD_SEED),
        grandchild: IdentityKey::from_seed(&[4; 32]),
    }
}

/// A fresh RNG per call: a test that re-seeded the same RNG every time
/// would hand biscuit the same "next" key twice (see
/// `attenuation_with_a_repeating_rng_is_refused`).
fn rng() -> StdRng {
    static SEED: AtomicU64 = AtomicU64::new(1);
    StdRng::seed_from_u64(SEED.fetch_add(1, Ordering::Relaxed))
}

fn grant(k: &Keys) -> Grant {
    Grant {
        agent: k.agent.did().clone(),
        sponsor: Sponsor::parse("alice@example.com").unwrap(),
        tools: pats(&["read_*", "db.query"]),
        ring_ceiling: Ring::R2,
        ttl: Duration::from_secs(3600),
    }
}

fn verifier(k: &Keys) -> TokenVerifier {
    TokenVerifier::new([k.org.did().clone()]).unwrap()
}

fn agent_token(k: &Keys) -> Token {
    issue(&k.org, &grant(k), at(T0), &mut rng()).unwrap()
}

fn verified(k: &Keys, token: &Token) -> VerifiedToken {
    verifier(k).verify_uncached(token.as_str(), at(T0)).unwrap()
}

/// The agent delegates its token.
fn delegate(k: &Keys, parent: &Token, to: &IdentityKey, tools: &[&str], ttl: u64) -> Token {
    verified(k, parent)
        .attenuate(
            &k.agent,
            &Attenuation {
                delegate: to.did().clone(),
                tools: pats(tools),
                ring_ceiling: Some(Ring::R3),
                ttl: Some(Duration::from_secs(ttl)),
            },
            at(T0),
            &mut rng(),
        )
        .unwrap()
}

#[test]
fn issued_token_verifies_and_authorizes_within_its_rights() {
    let k = keys();
    let token = agent_token(&k);
    let v = verifier(&k);
    let auth = v
        .authorize(token.as_str(), "read_file", Ring::R2, at(T0 + 10))
        .unwrap();
    assert_eq!(&auth.agent, k.agent.did());
    assert_eq!(auth.sponsor.as_str(), "alice@example.com");
    assert_eq!(&auth.issuer, k.org.did());
    assert_eq!(auth.depth, 0);
    assert!(
        v.authorize(token.as_str(), "db.query", Ring::R3, at(T0))
            .is_ok()
    );
    assert!(matches!(
        v.authorize(token.as_str(), "write_file", Ring::R3, at(T0)),
        Err(TokenError::ToolNotGranted { link: 0, .. })
    ));
    assert!(matches!(
        v.authorize(token.as_str(), "read_file", Ring::R1, at(T0)),
        Err(TokenError::RingNotGranted { .. })
    ));
}

#[test]
fn delegation_narrows_binds_the_child_and_keeps_the_sponsor() {
    let k = keys();
    let parent = agent_token(&k);
    let child = delegate(&k, &parent, &k.child, &["read_file"], 600);
    let v = verifier(&k);
    let vt = v.verify(child.as_str(), at(T0)).unwrap();
    assert_eq!(vt.depth(), 1);
    assert_eq!(vt.holder(), k.child.did());
    let auth = vt.authorize("read_file", Ring::R3, at(T0)).unwrap();
    assert_eq!(&auth.agent, k.child.did());
    assert_eq!(auth.sponsor.as_str(), "alice@example.com");
    // The parent could, the child cannot.
    assert!(
        v.authorize(parent.as_str(), "read_dir", Ring::R2, at(T0))
            .is_ok()
    );
    assert!(matches!(
        vt.authorize("read_dir", Ring::R3, at(T0)),
        Err(TokenError::ToolNotGranted { link: 1, .. })
    ));
    assert!(matches!(
        vt.authorize("read_file", Ring::R2, at(T0)),
        Err(TokenError::RingNotGranted { .. })
    ));
    assert!(matches!(
        vt.authorize("read_file", Ring::R3, at(T0 + 600)),
        Err(TokenError::Expired { link: 1, .. })
    ));
    // Biscuit's own authorizer agrees.
    assert!(vt.authorize_datalog("read_file", Ring::R3, at(T0)).is_ok());
    assert!(vt.authorize_datalog("read_dir", Ring::R3, at(T0)).is_err());
    assert!(vt.authorize_datalog("read_file", Ring::R2, at(T0)).is_err());
    assert!(
        vt.authorize_datalog("read_file", Ring::R3, at(T0 + 600))
            .is_err()
    );
}

#[test]
fn chain_description_names_every_link_and_its_rights() {
    let k = keys();
    let child = delegate(&k, &agent_token(&k), &k.child, &["read_file"], 600);
    let text = verified(&k, &child).describe();
    let issuer = text.find(k.org.did().as_str()).unwrap();
    let agent = text.find(k.agent.did().as_str()).unwrap();
    let delegate = text.find(k.child.did().as_str()).unwrap();
    assert!(issuer < agent && agent < delegate, "{text}");
    assert!(
        text.contains("[read_*, db.query]") && text.contains("[read_file]"),
        "{text}"
    );
    assert!(text.contains("alice@example.com"));
    assert!(
        text.contains("2027-01-15T09:00:00Z") && text.contains("2027-01-15T08:10:00Z"),
        "{text}"
    );
}

#[test]
fn attenuation_refuses_to_widen_any_right() {
    let k = keys();
    let parent = verified(&k, &agent_token(&k));
    let base = Attenuation {
        delegate: k.child.did().clone(),
        tools: pats(&["read_file"]),
        ring_ceiling: None,
        ttl: None,
    };
    let try_it = |a: Attenuation| parent.attenuate(&k.agent, &a, at(T0), &mut rng());
    assert!(try_it(base.clone()).is_ok());
    for widened in [
        Attenuation {
            tools: pats(&["write_*"]),
            ..base.clone()
        },
        Attenuation {
            tools: pats(&["*"]),
            ..base.clone()
        },
        Attenuation {
            tools: pats(&["read_file", "db.*"]),
            ..base.clone()
        },
        Attenuation {
            ring_ceiling: Some(Ring::R1),
            ..base.clone()
        },
        Attenuation {
            ttl: Some(Duration::from_secs(3601)),
            ..base.clone()
        },
    ] {
        assert!(
            matches!(
                try_it(widened.clone()),
                Err(TokenError::WidenedRights { link: 1, .. })
            ),
            "{widened:?}"
        );
    }
    assert!(matches!(
        try_it(Attenuation {
            tools: vec![],
            ..base.clone()
        }),
        Err(TokenError::InvalidRequest { .. })
    ));
}

#[test]
fn only_the_holder_can_delegate() {
    let k = keys();
    let parent = verified(&k, &agent_token(&k));
    let a = Attenuation {
        delegate: k.child.did().clone(),
        tools: pats(&["read_file"]),
        ring_ceiling: None,
        ttl: None,
    };
    assert!(matches!(
        parent.attenuate(&k.child, &a, at(T0), &mut rng()),
        Err(TokenError::WrongDelegator { .. })
    ));
}

#[test]
fn foreign_root_is_unknown_issuer() {
    let k = keys();
    let other_org = IdentityKey::from_seed(&[9; 32]);
    let token = issue(&other_org, &grant(&k), at(T0), &mut rng()).unwrap();
    let err = verifier(&k).verify(token.as_str(), at(T0)).unwrap_err();
    assert!(matches!(err, TokenError::UnknownRoot { .. }), "{err:?}");
    assert_eq!(err.code(), "token_unknown_issuer");
    // Trusting it makes it verify: the failure was the root, nothing else.
    let both = TokenVerifier::new([k.org.did().clone(), other_org.did().clone()]).unwrap();
    assert!(both.verify(token.as_str(), at(T0)).is_ok());
    assert!(matches!(
        TokenVerifier::new([]),
        Err(TokenError::NoTrustedIssuers)
    ));
}

/// Replaces the first occurrence of `from` in the token's bytes.
fn tamper(token: &str, from: &[u8], to: &[u8]) -> String {
    let mut bytes = URL_SAFE.decode(token).unwrap();
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes[at..at + to.len()].copy_from_slice(to);
    URL_SAFE.encode(bytes)
}

#[test]
fn tampered_blocks_fail_the_signature_check() {
    let k = keys();
    let token = agent_token(&k);
    let v = verifier(&k);
    let forged = tamper(token.as_str(), b"alice@example.com", b"mallo@example.com");
    assert!(matches!(
        v.verify(&forged, at(T0)),
        Err(TokenError::BadSignature { .. })
    ));
    // A delegation block altered to name a wider tool.
    let child = delegate(&k, &token, &k.child, &["read_file"], 600);
    let forged = tamper(child.as_str(), b"\"read_file\"", b"\"read_*ile\"");
    assert!(matches!(
        v.verify(&forged, at(T0)),
        Err(TokenError::BadSignature { .. })
    ));
    assert!(v.verify(child.as_str(), at(T0)).is_ok());
}

#[test]
fn expired_tokens_are_refused_cold_and_cached() {
    let k = keys();
    let token = agent_token(&k);
    let v = verifier(&k);
    assert!(v.verify(token.as_str(), at(T0 + 3599)).is_ok());
    assert_eq!(v.cached(), 1);
    let err = v.verify(token.as_str(), at(T0 + 3600)).unwrap_err();
    assert!(
        matches!(err, TokenError::Expired { link: 0, .. }),
        "{err:?}"
    );
    assert_eq!(v.cached(), 0, "an expired hit leaves the cache");
    assert!(matches!(
        verifier(&k).verify_uncached(token.as_str(), at(T0 + 7200)),
        Err(TokenError::Expired { .. })
    ));
}

#[test]
fn revocation_refuses_the_link_and_everything_below_it_even_when_cached() {
    let k = keys();
    let parent = agent_token(&k);
    let child = delegate(&k, &parent, &k.child, &["read_file"], 600);
    let v = verifier(&k);
    let vp = v.verify(parent.as_str(), at(T0)).unwrap();
    let vc = v.verify(child.as_str(), at(T0)).unwrap();
    assert_eq!(v.cached(), 2);
    // Revoking the delegation leaves the parent alone.
    v.revoke(&vc.links()[1].revocation_id);
    assert!(matches!(
        v.verify(child.as_str(), at(T0)),
        Err(TokenError::Revoked { link: 1, .. })
    ));
    assert!(v.verify(parent.as_str(), at(T0)).is_ok());
    // Revoking the agent's link revokes both.
    v.revoke(&vp.links()[0].revocation_id);
    assert!(matches!(
        v.verify(parent.as_str(), at(T0)),
        Err(TokenError::Revoked { link: 0, .. })
    ));
    assert!(matches!(
        v.verify(child.as_str(), at(T0)),
        Err(TokenError::Revoked { .. })
    ));
    assert_eq!(v.cached(), 0);
    // The ids can be read from the token text without verifying it (e.g. once expired).
    let ids = warden_identity::revocation_ids(child.as_str()).unwrap();
    assert_eq!(
        ids,
        vec![
            vc.links()[0].revocation_id.clone(),
            vc.links()[1].revocation_id.clone()
        ]
    );
    assert!(warden_identity::revocation_ids("garbage").is_err());
    // A verifier started with the list refuses cold too.
    let fresh = verifier(&k).with_revoked([vp.links()[0].revocation_id.clone()]);
    assert!(matches!(
        fresh.verify(child.as_str(), at(T0)),
        Err(TokenError::Revoked { link: 0, .. })
    ));
    assert!(RevocationId::parse("abc").is_err());
}

#[test]
fn chains_deeper_than_the_limit_are_refused() {
    let k = keys();
    let mut holders: Vec<IdentityKey> = vec![k.agent.clone()];
    let mut token = agent_token(&k);
    let v = verifier(&k);
    for i in 0..MAX_DELEGATION_DEPTH {
        let next = IdentityKey::from_seed(&[100 + i as u8; 32]);
        let parent = v.verify(token.as_str(), at(T0)).unwrap();
        token = parent
            .attenuate(
                &holders[i],
                &Attenuation {
                    delegate: next.did().clone(),
                    tools: pats(&["read_file"]),
                    ring_ceiling: None,
                    ttl: None,
                },
                at(T0),
                &mut rng(),
            )
            .unwrap();
        holders.push(next);
    }
    let full = v.verify(token.as_str(), at(T0)).unwrap();
    assert_eq!(full.depth(), MAX_DELEGATION_DEPTH);
    let more = full.attenuate(
        &holders[MAX_DELEGATION_DEPTH],
        &Attenuation {
            delegate: k.grandchild.did().clone(),
            tools: pats(&["read_file"]),
            ring_ceiling: None,
            ttl: None,
        },
        at(T0),
        &mut rng(),
    );
    assert!(matches!(
        more,
        Err(TokenError::TooDeep { depth: 6, max: 5 })
    ));
    let strict = verifier(&k).with_max_depth(2);
    assert!(matches!(
        strict.verify(token.as_str(), at(T0)),
        Err(TokenError::TooDeep { depth: 5, max: 2 })
    ));
}

// ---- forged chains: an attacker holding a valid token writes blocks by hand ----

fn biscuit_of(token: &Token) -> Biscuit {
    let root =
        KeyPair::from(&PrivateKey::from_bytes(&ORG_SEED, Algorithm::Ed25519).unwrap()).public();
    Biscuit::from_base64(token.as_str(), root).unwrap()
}

fn private(seed: &[u8; 32]) -> PrivateKey {
    PrivateKey::from_bytes(seed, Algorithm::Ed25519).unwrap()
}

/// Appends a third-party block signed by `signer_seed`.
fn append_signed(token: &Token, signer_seed: &[u8; 32], block: BlockBuilder) -> String {
    let biscuit = biscuit_of(token);
    let signer = private(signer_seed);
    let signed = biscuit
        .third_party_request()
        .unwrap()
        .create_block(&signer, block)
        .unwrap();
    biscuit
        .append_third_party(signer.public(), signed)
        .unwrap()
        .to_base64()
        .unwrap()
}

/// A block in warden's canonical shape with whatever rights the attacker likes.
fn canonical_looking(
    delegate: &str,
    regex: &str,
    tool: &str,
    ring: i64,
    expires: u64,
) -> BlockBuilder {
    let mut params = HashMap::new();
    params.insert("did".to_string(), Term::Str(delegate.into()));
    params.insert("re0".to_string(), Term::Str(regex.into()));
    params.insert("ring".to_string(), Term::Integer(ring));
    params.insert("expires".to_string(), Term::Date(expires));
    let context = format!(
        r#"{{"link":"delegate","v":1,"delegate":"{delegate}","tools":["{tool}"],"ring":{ring},"expires":{expires}}}"#
    );
    BlockBuilder::new()
        .code_with_params(
            "delegate({did});\ncheck if tool($tool), $tool.matches({re0});\ncheck if ring($ring), $ring >= {ring};\ncheck if time($time), $time < {expires};\n",
            params,
            HashMap::new(),
        )
        .unwrap()
        .context(context)
}

#[test]
fn hand_written_canonical_block_is_accepted_so_the_forgery_tests_mean_something() {
    let k = keys();
    let token = agent_token(&k);
    let block = canonical_looking(
        k.child.did().as_str(),
        "(?s)^read_file$",
        "read_file",
        3,
        T0 + 60,
    );
    let forged = append_signed(&token, &AGENT_SEED, block);
    let vt = verifier(&k).verify(&forged, at(T0)).unwrap();
    assert!(vt.authorize("read_file", Ring::R3, at(T0)).is_ok());
}

#[test]
fn forged_block_claiming_wider_rights_is_refused() {
    let k = keys();
    let token = agent_token(&k);
    let child = k.child.did().as_str();
    let v = verifier(&k);
    for (regex, tool, ring, expires) in [
        ("(?s)^.*$", "*", 3, T0 + 60),
        ("(?s)^write_file$", "write_file", 3, T0 + 60),
        ("(?s)^read_file$", "read_file", 0, T0 + 60),
        ("(?s)^read_file$", "read_file", 3, T0 + 99_999),
    ] {
        let forged = append_signed(
            &token,
            &AGENT_SEED,
            canonical_looking(child, regex, tool, ring, expires),
        );
        let err = v.verify(&forged, at(T0)).unwrap_err();
        assert!(
            matches!(err, TokenError::WidenedRights { link: 1, .. }),
            "{tool} {ring} {expires}: {err:?}"
        );
    }
}

#[test]
fn forged_block_with_arbitrary_datalog_is_refused_and_biscuit_ignores_its_facts_anyway() {
    let k = keys();
    let token = agent_token(&k);
    // Facts and rules that try to satisfy the issuer's checks, and no checks at all.
    let block = BlockBuilder::new()
        .code(r#"delegate("x"); tool("read_everything"); ring(3); time(2000-01-01T00:00:00Z); tool($t) <- delegate($t);"#)
        .unwrap()
        .context(format!(
            r#"{{"link":"delegate","v":1,"delegate":"{}","tools":["read_file"],"ring":3,"expires":{}}}"#,
            k.child.did(),
            T0 + 60
        ));
    let forged = append_signed(&token, &AGENT_SEED, block);
    let err = verifier(&k).verify(&forged, at(T0)).unwrap_err();
    assert!(matches!(err, TokenError::Malformed { .. }), "{err:?}");
    // Biscuit itself: the issuer's checks see only the authority block and the
    // authorizer's facts, so the appended facts cannot make `write_file` pass.
    let biscuit = biscuit_of(&token);
    let appended = {
        let root = KeyPair::from(&private(&ORG_SEED)).public();
        Biscuit::from_base64(&forged, root).unwrap()
    };
    for (b, expect_ok) in [(&biscuit, false), (&appended, false)] {
        let mut authorizer = biscuit_auth::AuthorizerBuilder::new()
            .code(r#"tool("write_file"); ring(3); time(2027-01-15T08:00:00Z); allow if true;"#)
            .unwrap()
            .build(b)
            .unwrap();
        assert_eq!(authorizer.authorize().is_ok(), expect_ok);
    }
}

#[test]
fn delegation_block_not_signed_by_the_holder_is_refused() {
    let k = keys();
    let token = agent_token(&k);
    let v = verifier(&k);
    let block = || {
        canonical_looking(
            k.child.did().as_str(),
            "(?s)^read_file$",
            "read_file",
            3,
            T0 + 60,
        )
    };
    // Signed by someone else's key.
    let forged = append_signed(&token, &CHILD_SEED, block());
    assert!(matches!(
        v.verify(&forged, at(T0)),
        Err(TokenError::WrongDelegator { link: 1, .. })
    ));
    // A plain (first-party) block: anyone holding the bytes could add one.
    let plain = biscuit_of(&token)
        .append(block())
        .unwrap()
        .to_base64()
        .unwrap();
    assert!(matches!(
        v.verify(&plain, at(T0)),
        Err(TokenError::WrongDelegator { link: 1, .. })
    ));
}

#[test]
fn hostile_token_text_is_an_error_never_a_panic() {
    let k = keys();
    let v = verifier(&k);
    let huge = "A".repeat(MAX_TOKEN_BYTES + 1);
    assert!(matches!(
        v.verify(&huge, at(T0)),
        Err(TokenError::TooLarge { .. })
    ));
    for bad in [
        "",
        "not a token",
        "\u{202e}\u{0000}",
        "AAAA",
        "////",
        "ＥｎｃｏｄｅｄＴｏｋｅｎ",
    ] {
        let err = v.verify(bad, at(T0)).unwrap_err();
        assert!(
            matches!(err, TokenError::Malformed { .. }),
            "{bad:?}: {err:?}"
        );
    }
}

#[test]
fn cache_returns_the_same_verification_and_is_bounded() {
    let k = keys();
    let token = agent_token(&k);
    let v = verifier(&k);
    let a = v.verify(token.as_str(), at(T0)).unwrap();
    let b = v
        .verify(&format!("  {}\n", token.as_str()), at(T0 + 1))
        .unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(v.cached(), 1);
    assert_eq!(a.token_hash(), token.hash());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_as_a_token_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let k = keys();
        let v = verifier(&k);
        let _ = v.verify(&URL_SAFE.encode(&bytes), at(T0));
        let _ = v.verify(&String::from_utf8_lossy(&bytes), at(T0));
    }

    #[test]
    fn flipping_any_byte_never_yields_a_token_that_verifies_with_other_rights(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let k = keys();
        let token = agent_token(&k);
        let mut bytes = URL_SAFE.decode(token.as_str()).unwrap();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let v = verifier(&k);
        if let Ok(vt) = v.verify(&URL_SAFE.encode(&bytes), at(T0)) {
            // Only bytes outside the signed payloads (e.g. the unsigned root key id
            // pointing at the same key) can flip and still verify; the rights must be unchanged.
            let original = verified(&k, &token);
            prop_assert_eq!(vt.links(), original.links());
        }
    }
}

// ---- no attenuation sequence widens rights ----

fn pattern() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ab*?]{1,4}").unwrap()
}

#[derive(Debug, Clone)]
struct Step {
    tools: Vec<String>,
    ring: Option<u8>,
    ttl: Option<u64>,
}

fn step() -> impl Strategy<Value = Step> {
    (
        // Literal names are often within the parent; random patterns often are not.
        proptest::collection::vec(prop_oneof![pattern(), "[ab]{1,3}", "a[ab*]{0,2}"], 1..3),
        proptest::option::of(0u8..4),
        proptest::option::of(1u64..5000),
    )
        .prop_map(|(tools, ring, ttl)| Step { tools, ring, ttl })
}

/// Every name over {a, b} up to 3 characters, plus one outside the alphabet.
fn names() -> Vec<String> {
    let mut out = vec![String::new(), "c".to_string()];
    let mut layer = vec![String::new()];
    for _ in 0..3 {
        layer = layer
            .iter()
            .flat_map(|s| [format!("{s}a"), format!("{s}b")])
            .collect();
        out.extend(layer.iter().cloned());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    #[test]
    fn no_attenuation_sequence_widens_rights(
        root_tools in proptest::collection::vec(prop_oneof![pattern(), Just("*".to_string())], 1..3),
        root_ring in 0u8..4,
        steps in proptest::collection::vec(step(), 1..4),
    ) {
        let k = keys();
        let v = verifier(&k);
        let mut rng = rng();
        let g = Grant {
            agent: k.agent.did().clone(),
            sponsor: Sponsor::parse("alice@example.com").unwrap(),
            tools: pats(&root_tools.iter().map(String::as_str).collect::<Vec<_>>()),
            ring_ceiling: Ring::new(root_ring).unwrap(),
            ttl: Duration::from_secs(3600),
        };
        let mut token = issue(&k.org, &g, at(T0), &mut rng).unwrap();
        let mut holder = k.agent.clone();
        let names = names();
        let times = [T0, T0 + 1500, T0 + 3599, T0 + 3600];
        for (i, s) in steps.iter().enumerate() {
            let parent = v.verify_uncached(token.as_str(), at(T0)).unwrap();
            let next = IdentityKey::from_seed(&[50 + i as u8; 32]);
            let request = Attenuation {
                delegate: next.did().clone(),
                tools: pats(&s.tools.iter().map(String::as_str).collect::<Vec<_>>()),
                ring_ceiling: s.ring.map(|r| Ring::new(r).unwrap()),
                ttl: s.ttl.map(Duration::from_secs),
            };
            let child = match parent.attenuate(&holder, &request, at(T0), &mut rng) {
                Ok(t) => t,
                Err(TokenError::WidenedRights { .. }) => continue,
                Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
            };
            let vc = v.verify_uncached(child.as_str(), at(T0)).unwrap();
            for name in &names {
                for ring in 0..4 {
                    let ring = Ring::new(ring).unwrap();
                    for &t in &times {
                        let c = vc.authorize(name, ring, at(t)).is_ok();
                        let p = parent.authorize(name, ring, at(t)).is_ok();
                        prop_assert!(!c || p, "child allows {name:?} at {ring} t={t}, parent does not");
                        let d = vc.authorize_datalog(name, ring, at(t)).is_ok();
                        prop_assert_eq!(c, d, "fast path and datalog disagree on {:?} at {} t={}", name, ring, t);
                    }
                }
            }
            token = child;
            holder = next;
        }
    }
}

#[test]
fn stripping_a_delegation_does_not_give_back_the_parent_token() {
    let k = keys();
    let parent = agent_token(&k);
    let child = delegate(&k, &parent, &k.child, &["read_file"], 600);
    let mut container = biscuit_of(&child).container().clone();
    container.blocks.pop();
    let stripped = URL_SAFE.encode(container.to_vec().unwrap());
    let err = verifier(&k).verify(&stripped, at(T0)).unwrap_err();
    assert!(matches!(err, TokenError::BadSignature { .. }), "{err:?}");
}

#[test]
fn verifiers_and_verified_tokens_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<TokenVerifier>();
    shared::<VerifiedToken>();
    shared::<warden_identity::RequestVerifier>();
    shared::<IdentityKey>();
}

#[test]
fn attenuation_with_a_repeating_rng_is_refused() {
    let k = keys();
    let token = issue(&k.org, &grant(&k), at(T0), &mut StdRng::seed_from_u64(99)).unwrap();
    let a = Attenuation {
        delegate: k.child.did().clone(),
        tools: pats(&["read_file"]),
        ring_ceiling: None,
        ttl: None,
    };
    let err = verified(&k, &token)
        .attenuate(&k.agent, &a, at(T0), &mut StdRng::seed_from_u64(99))
        .unwrap_err();
    assert!(matches!(err, TokenError::InvalidRequest { .. }), "{err:?}");
}

#[test]
fn cache_keeps_at_most_its_capacity_oldest_first() {
    let k = keys();
    let v = verifier(&k).with_cache_capacity(2);
    let tokens: Vec<Token> = (0..3).map(|_| agent_token(&k)).collect();
    for t in &tokens {
        v.verify(t.as_str(), at(T0)).unwrap();
    }
    assert_eq!(v.cached(), 2);
    // Still verifies after eviction, from scratch.
    assert!(v.verify(tokens[0].as_str(), at(T0)).is_ok());
    assert_eq!(v.cached(), 2);
    let off = verifier(&k).with_cache_capacity(0);
    assert!(off.verify(tokens[0].as_str(), at(T0)).is_ok());
    assert_eq!(off.cached(), 0);
}

#[test]
fn grant_limits_are_enforced() {
    let k = keys();
    let many: Vec<String> = (0..=warden_identity::token::MAX_TOOLS_PER_LINK)
        .map(|i| format!("tool{i}"))
        .collect();
    let too_many = Grant {
        tools: pats(&many.iter().map(String::as_str).collect::<Vec<_>>()),
        ..grant(&k)
    };
    assert!(matches!(
        issue(&k.org, &too_many, at(T0), &mut rng()),
        Err(TokenError::InvalidRequest { .. })
    ));
    let exactly = Grant {
        tools: too_many.tools[1..].to_vec(),
        ..grant(&k)
    };
    assert!(issue(&k.org, &exactly, at(T0), &mut rng()).is_ok());
    for ttl in [
        Duration::ZERO,
        warden_identity::token::MAX_TOKEN_TTL + Duration::from_secs(1),
    ] {
        let g = Grant { ttl, ..grant(&k) };
        assert!(
            matches!(
                issue(&k.org, &g, at(T0), &mut rng()),
                Err(TokenError::InvalidRequest { .. })
            ),
            "{ttl:?}"
        );
    }
    let longest = Grant {
        ttl: warden_identity::token::MAX_TOKEN_TTL,
        ..grant(&k)
    };
    assert!(issue(&k.org, &longest, at(T0), &mut rng()).is_ok());
}
