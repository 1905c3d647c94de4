//! Argument rewrites: `{path, redact: true}` and `{path, replace: VALUE}`.
//!
//! A path is dot-separated: `headers.authorization`, `recipients.0`,
//! `messages.*.body`. `*` matches every key of a mapping or every item of a
//! list; a number indexes a list. A path that leads nowhere changes nothing.

use crate::model::{TransformAction, TransformOp};
use serde_json::Value;

/// What a redacted value becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Checks a path's syntax at load time.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty transform path".into());
    }
    if path.split('.').any(str::is_empty) {
        return Err(format!("transform path '{path}' has an empty segment"));
    }
    Ok(())
}

/// Applies `ops` to `args` in order. Returns how many values were rewritten.
pub fn apply(ops: &[TransformOp], args: &mut Value) -> usize {
    let mut n = 0;
    for op in ops {
        let segments: Vec<&str> = op.path.split('.').collect();
        let replacement = match &op.action {
            TransformAction::Redact(_) => Value::String(REDACTED.to_string()),
            TransformAction::Replace(v) => v.clone(),
        };
        n += rewrite(args, &segments, &replacement);
    }
    n
}

fn rewrite(value: &mut Value, path: &[&str], replacement: &Value) -> usize {
    let Some((head, rest)) = path.split_first() else {
        *value = replacement.clone();
        return 1;
    };
    match value {
        Value::Object(map) if *head == "*" => map
            .values_mut()
            .map(|v| rewrite(v, rest, replacement))
            .sum(),
        Value::Object(map) => map
            .get_mut(*head)
            .map_or(0, |v| rewrite(v, rest, replacement)),
        Value::Array(items) if *head == "*" => items
            .iter_mut()
            .map(|v| rewrite(v, rest, replacement))
            .sum(),
        Value::Array(items) => head
            .parse::<usize>()
            .ok()
            .and_then(|i| items.get_mut(i))
            .map_or(0, |v| rewrite(v, rest, replacement)),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(path: &str, action: TransformAction) -> TransformOp {
        TransformOp {
            path: path.into(),
            action,
        }
    }

    #[test]
    fn redacts_nested_and_wildcard_paths() {
        let mut args =
            json!({"password": "x", "items": [{"token": "a"}, {"token": "b"}], "keep": 1});
        let n = apply(
            &[
                op("password", TransformAction::Redact(true)),
                op("items.*.token", TransformAction::Redact(true)),
            ],
            &mut args,
        );
        assert_eq!(n, 3);
        assert_eq!(
            args,
            json!({"password": REDACTED, "items": [{"token": REDACTED}, {"token": REDACTED}], "keep": 1})
        );
    }

    #[test]
    fn replace_by_index_and_missing_paths_change_nothing() {
        let mut args = json!({"to": ["a@x", "b@y"]});
        let n = apply(
            &[
                op("to.1", TransformAction::Replace(json!("c@z"))),
                op("cc.0", TransformAction::Redact(true)),
                op("to.9", TransformAction::Redact(true)),
            ],
            &mut args,
        );
        assert_eq!(n, 1);
        assert_eq!(args, json!({"to": ["a@x", "c@z"]}));
    }

    #[test]
    fn empty_segments_are_rejected() {
        assert!(check_path("a..b").is_err());
        assert!(check_path("").is_err());
        assert!(check_path("a.*.b").is_ok());
    }
}
