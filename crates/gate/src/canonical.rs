//! Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace,
//! strings escaped exactly as serde_json escapes them, numbers printed as
//! serde_json prints them. Key order is checked here explicitly, so the result
//! does not depend on whether a dependency turned on serde_json's
//! `preserve_order`.
//!
//! This sits on the decision hot path (every decision hashes its action), so
//! it writes into one buffer without intermediate values.

use crate::Action;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use smallvec::SmallVec;
use std::fmt::Write;

/// Writes `value` as canonical JSON.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

/// `sha256:` + hex of SHA-256 over the canonical JSON of `value`.
pub fn hash(value: &Value) -> String {
    digest(&to_string(value))
}

/// `sha256:` + hex of SHA-256 over the canonical JSON of `action`; equal to
/// `hash(&serde_json::to_value(action))`, without building the value.
pub fn action_hash(action: &Action) -> String {
    let mut out = String::with_capacity(256);
    // Top-level keys in sorted order: agent, args, context, point, session,
    // tool. Each is written with the comma before it, which the first drops.
    let key = |out: &mut String, comma_key: &str| {
        out.push_str(if out.len() == 1 {
            &comma_key[1..]
        } else {
            comma_key
        });
    };
    out.push('{');
    if let Some(agent) = &action.agent {
        key(&mut out, ",\"agent\":");
        write_str(agent, &mut out);
    }
    if let Some(args) = &action.args {
        key(&mut out, ",\"args\":");
        write_value(args, &mut out);
    }
    if !action.context.is_empty() {
        key(&mut out, ",\"context\":");
        write_object(&action.context, &mut out);
    }
    key(&mut out, ",\"point\":");
    write_str(action.point.as_str(), &mut out);
    if let Some(session) = &action.session {
        key(&mut out, ",\"session\":");
        write_str(session, &mut out);
    }
    if let Some(tool) = &action.tool {
        key(&mut out, ",\"tool\":");
        write_str(tool, &mut out);
    }
    out.push('}');
    digest(&out)
}

fn digest(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(text.as_bytes());
    let mut text = [0u8; 7 + 64];
    text[..7].copy_from_slice(b"sha256:");
    for (i, b) in digest.iter().enumerate() {
        text[7 + 2 * i] = HEX[usize::from(b >> 4)];
        text[8 + 2 * i] = HEX[usize::from(b & 0xf)];
    }
    // Only ASCII was written, so this never falls back to the empty string.
    String::from_utf8(text.to_vec()).unwrap_or_default()
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => write_object(map, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_str(s, out),
        Value::Number(n) => match n.as_u64() {
            // The commonest number; printed as serde_json prints it, without `fmt`.
            Some(u) => write_u64(u, out),
            None => {
                let _ = write!(out, "{n}");
            }
        },
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
    }
}

fn write_u64(mut n: u64, out: &mut String) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

fn write_object(map: &Map<String, Value>, out: &mut String) {
    out.push('{');
    let sorted = map.keys().zip(map.keys().skip(1)).all(|(a, b)| a < b);
    if sorted {
        for (i, (k, v)) in map.iter().enumerate() {
            entry(i, k, v, out);
        }
    } else {
        // Most objects are small: their entries are sorted on the stack,
        // filled and read in place (moving the inline array copies it whole).
        let mut entries: SmallVec<[(&String, &Value); 16]> = SmallVec::new();
        entries.extend(map.iter());
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (i, &(k, v)) in entries.iter().enumerate() {
            entry(i, k, v, out);
        }
    }
    out.push('}');
}

fn entry(i: usize, k: &str, v: &Value, out: &mut String) {
    if i > 0 {
        out.push(',');
    }
    write_str(k, out);
    out.push(':');
    write_value(v, out);
}

/// JSON string escaping, byte-for-byte as serde_json does it.
fn write_str(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(i) = next_escape(bytes, start) {
        out.push_str(&s[start..i]);
        match bytes[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Where the first byte at or after `from` that JSON escapes is (a control
/// character, `"` or `\`). Eight bytes at a time: the strings hashed on
/// every decision are mostly plain.
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit set in each byte of `w` that is zero, and maybe in bytes
    // after it; the lowest set bit is always exact.
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let mut at = from;
    let mut words = bytes[from..].chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let hits =
            below_space | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = words.remainder();
    rest.iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The reference definition: sort every object, then let serde_json print.
    fn reference(v: &Value) -> String {
        fn sort(v: &Value) -> Value {
            match v {
                Value::Object(m) => {
                    let mut keys: Vec<&String> = m.keys().collect();
                    keys.sort();
                    let mut out = String::from("{");
                    for (i, k) in keys.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&serde_json::to_string(k).unwrap());
                        out.push(':');
                        out.push_str(&reference(&m[*k]));
                    }
                    out.push('}');
                    Value::String(out)
                }
                other => other.clone(),
            }
        }
        match v {
            Value::Object(_) => match sort(v) {
                Value::String(s) => s,
                _ => unreachable!(),
            },
            Value::Array(items) => {
                format!(
                    "[{}]",
                    items.iter().map(reference).collect::<Vec<_>>().join(",")
                )
            }
            other => serde_json::to_string(other).unwrap(),
        }
    }

    #[test]
    fn keys_are_sorted_at_every_level_and_whitespace_is_gone() {
        let v = json!({"b": 1, "a": {"z": [1, {"y": 2, "x": "é\n\u{1}"}], "c": null}});
        assert_eq!(
            to_string(&v),
            r#"{"a":{"c":null,"z":[1,{"x":"é\n\u0001","y":2}]},"b":1}"#
        );
    }

    #[test]
    fn every_byte_is_escaped_as_serde_json_escapes_it_at_every_position() {
        for b in 0u8..0x80 {
            for at in 0..20 {
                let mut chars: Vec<char> = "abcdefghé\u{2028}ijklmnop".chars().collect();
                chars.insert(at.min(chars.len()), char::from(b));
                let text: String = chars.into_iter().collect();
                let mut out = String::new();
                write_str(&text, &mut out);
                assert_eq!(
                    out,
                    serde_json::to_string(&text).unwrap(),
                    "byte {b:#x} at {at}"
                );
            }
        }
    }

    #[test]
    fn hash_is_sha256_of_the_canonical_text() {
        // printf '{}' | sha256sum
        assert_eq!(
            hash(&json!({})),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                // Keys in any order (the map keeps insertion order when
                // serde_json's `preserve_order` is on), repeats included.
                prop::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn matches_the_reference_definition(v in json_value()) {
            prop_assert_eq!(to_string(&v), reference(&v));
        }

        #[test]
        fn action_hash_equals_hash_of_the_serialized_action(
            args in json_value(),
            agent in prop::option::of(any::<String>()),
            session in prop::option::of(any::<String>()),
            tool in prop::option::of(any::<String>()),
            ctx in prop::collection::vec((any::<String>(), json_value()), 0..3),
        ) {
            let action = Action {
                agent, session, point: warden_policy::Point::PreToolCall, tool,
                args: Some(args), context: ctx.into_iter().collect(), caller: None,
            };
            let via_value = hash(&serde_json::to_value(&action).unwrap());
            prop_assert_eq!(action_hash(&action), via_value);
        }
    }
}
