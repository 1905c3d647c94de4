//! Property tests: classification never panics, never calls unparseable or
//! cut input `read_only`, keeps spans inside the normalised text, and follows
//! payloads through nested wrappers up to the depth limit.

use proptest::prelude::*;
use warden_intent::{Intent, Kind, MAX_DEPTH, classify, normalize};

const KINDS: [Kind; 5] = [Kind::Sql, Kind::Shell, Kind::Url, Kind::Path, Kind::Auto];

fn check_invariants(kind: Kind, text: &str) {
    let c = classify(kind, text);
    assert!(!c.intents.is_empty(), "no intents for {text:?}");
    if c.has(Intent::ReadOnly) {
        assert_eq!(
            c.intents,
            vec![Intent::ReadOnly],
            "read_only mixed with others for {text:?}"
        );
    }
    if c.has(Intent::Unknown) {
        assert!(!c.has(Intent::ReadOnly));
    }
    let len = normalize(text).len();
    for f in &c.findings {
        assert!(
            f.span.start <= f.span.end && f.span.end <= len,
            "span {:?} outside 0..{len} for {text:?}",
            f.span
        );
        assert_ne!(f.kind, Kind::Auto);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        for kind in KINDS {
            check_invariants(kind, &text);
        }
    }

    #[test]
    fn never_panics_on_arbitrary_unicode(text in "\\PC{0,256}") {
        for kind in KINDS {
            check_invariants(kind, &text);
        }
    }

    #[test]
    fn never_panics_on_shell_and_sql_punctuation(text in "[a-z0-9 |;&$(){}\\[\\]'\"`\\\\<>=*#!%@~,.:/\n-]{0,300}") {
        for kind in KINDS {
            check_invariants(kind, &text);
        }
    }

    /// Transparent wrappers in any order, then the payload: still destructive.
    #[test]
    fn wrappers_do_not_hide_a_command(wrappers in proptest::collection::vec(
        prop::sample::select(vec!["sudo", "env", "nohup", "timeout 5", "nice -n 5", "command", "stdbuf -oL", "env -i X=1", "setsid", "time"]),
        0..12,
    )) {
        let cmd = format!("{} rm -rf /data", wrappers.join(" "));
        let c = classify(Kind::Shell, &cmd);
        prop_assert!(c.has(Intent::Destructive), "{cmd}: {:?}", c.intents);
    }

    /// Re-parsed payloads (`sh -c`, `bash -c`, `eval`) are followed down to
    /// MAX_DEPTH; deeper ones are `unknown`, never `read_only`.
    #[test]
    fn nested_payloads_to_the_depth_limit(levels in proptest::collection::vec(
        prop::sample::select(vec!["sh -c", "bash -c", "eval", "sudo sh -c", "env bash -c"]),
        1..(MAX_DEPTH + 4),
    )) {
        let mut cmd = "rm -rf /data".to_string();
        for w in &levels {
            cmd = format!("{w} {}", shlex::try_quote(&cmd).expect("no NUL").into_owned());
        }
        let c = classify(Kind::Shell, &cmd);
        if levels.len() <= MAX_DEPTH {
            prop_assert!(c.has(Intent::Destructive), "depth {}: {cmd}: {:?}", levels.len(), c);
        } else {
            prop_assert!(c.has(Intent::Unknown), "depth {}: {:?}", levels.len(), c.intents);
        }
        prop_assert!(!c.has(Intent::ReadOnly));
    }
}
