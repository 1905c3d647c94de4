//! Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace,
//! strings escaped and numbers printed as serde_json prints them. Key order
//! is sorted here explicitly, so the result does not depend on whether some
//! dependency turned on serde_json's `preserve_order`.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `value` as canonical JSON.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                write(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_str(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_str(s: &str, out: &mut String) {
    // serde_json's string escaping cannot fail for a &str.
    out.push_str(&Value::String(s.to_string()).to_string());
}

/// `sha256:` + hex of SHA-256 over the canonical JSON of `value`.
pub fn hash(value: &Value) -> String {
    let digest = Sha256::digest(to_string(value).as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_level_and_whitespace_is_gone() {
        let v = json!({"b": 1, "a": {"z": [1, {"y": 2, "x": "é\n"}], "c": null}});
        assert_eq!(
            to_string(&v),
            r#"{"a":{"c":null,"z":[1,{"x":"é\n","y":2}]},"b":1}"#
        );
    }

    #[test]
    fn hash_is_sha256_of_the_canonical_text() {
        // sha256("{}") computed independently: printf '{}' | sha256sum
        assert_eq!(
            hash(&json!({})),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
