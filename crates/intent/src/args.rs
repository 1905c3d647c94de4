//! Tool-call arguments: every string in a JSON value, by pinned kind or `auto`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::analyze::{Sink, classify_into};
use crate::{Config, Intent, Kind, MAX_ARGUMENT_STRINGS, MAX_JSON_DEPTH, Span};

pub(crate) fn classify_value(
    config: &Config,
    value: &Value,
    kinds: Option<&BTreeMap<String, Kind>>,
    sink: &mut Sink,
) {
    let mut walk = Walk {
        config,
        sink,
        seen: 0,
        cut: false,
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let kind = kinds.and_then(|m| m.get(k)).copied().unwrap_or(Kind::Auto);
                if kind == Kind::Text || !has_strings(v, 1) {
                    continue;
                }
                let pointer = format!("/{}", escape(k));
                walk.value(v, kind, pointer, 1);
            }
        }
        other => walk.value(other, Kind::Auto, String::new(), 0),
    }
}

struct Walk<'a> {
    config: &'a Config,
    sink: &'a mut Sink,
    seen: usize,
    cut: bool,
}

impl Walk<'_> {
    fn value(&mut self, v: &Value, kind: Kind, pointer: String, depth: usize) {
        if self.cut {
            return;
        }
        if depth > MAX_JSON_DEPTH {
            self.limit(
                &pointer,
                format!("arguments nested deeper than {MAX_JSON_DEPTH} levels; not read"),
            );
            return;
        }
        match v {
            Value::String(s) => {
                self.seen += 1;
                if self.seen > MAX_ARGUMENT_STRINGS {
                    self.limit(
                        &pointer,
                        format!("more than {MAX_ARGUMENT_STRINGS} string arguments; the rest were not read"),
                    );
                    return;
                }
                classify_into(self.config, kind, s, Some(&pointer), true, self.sink);
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.value(item, kind, format!("{pointer}/{i}"), depth + 1);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    self.value(item, kind, format!("{pointer}/{}", escape(k)), depth + 1);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn limit(&mut self, pointer: &str, evidence: String) {
        self.cut = true;
        self.sink.push(crate::Finding {
            intent: Intent::Unknown,
            evidence,
            span: Span { start: 0, end: 0 },
            kind: Kind::Auto,
            argument: Some(pointer.to_string()),
        });
    }
}

/// Whether `v` may hold a string (numbers, booleans and nulls are never
/// read, so they need no walk). Past the depth limit it answers yes, so the
/// walk reports the limit.
fn has_strings(v: &Value, depth: usize) -> bool {
    if depth > MAX_JSON_DEPTH {
        return true;
    }
    match v {
        Value::String(_) => true,
        Value::Array(items) => items.iter().any(|i| has_strings(i, depth + 1)),
        Value::Object(map) => map.values().any(|i| has_strings(i, depth + 1)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// JSON pointer escaping (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
