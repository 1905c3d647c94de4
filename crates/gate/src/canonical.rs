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
    // Top-level keys in sorted order: agent, args, context, point, session, tool.
    out.push('{');
    let mut first = true;
    let mut key = |out: &mut String, k: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        write_str(k, out);
        out.push(':');
    };
    if let Some(agent) = &action.agent {
        key(&mut out, "agent");
        write_str(agent, &mut out);
    }
    if let Some(args) = &action.args {
        key(&mut out, "args");
        write_value(args, &mut out);
    }
    if !action.context.is_empty() {
        key(&mut out, "context");
        write_object(&action.context, &mut out);
    }
    key(&mut out, "point");
    write_str(action.point.as_str(), &mut out);
    if let Some(session) = &action.session {
        key(&mut out, "session");
        write_str(session, &mut out);
    }
    if let Some(tool) = &action.tool {
        key(&mut out, "tool");
        write_str(tool, &mut out);
    }
    out.push('}');
    digest(&out)
}

fn digest(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in digest {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
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
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
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
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (i, (k, v)) in entries.into_iter().enumerate() {
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
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
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
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
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
            tool in prop::option::of(any::<String>()),
            ctx in prop::collection::btree_map(any::<String>(), json_value(), 0..3),
        ) {
            let action = Action {
                agent, session: None, point: warden_policy::Point::PreToolCall, tool,
                args: Some(args), context: ctx.into_iter().collect(),
            };
            let via_value = hash(&serde_json::to_value(&action).unwrap());
            prop_assert_eq!(action_hash(&action), via_value);
        }
    }
}
