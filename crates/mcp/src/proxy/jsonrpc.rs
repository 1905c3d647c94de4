//! The few JSON-RPC 2.0 shapes the proxy reads, over raw `serde_json::Value`s
//! (typed models would drop fields they do not know).

use serde_json::{Value, json};

/// What a message is, by its members.
#[derive(Debug, PartialEq)]
pub(crate) enum Kind<'a> {
    /// `method` and `id`: it expects a response.
    Request { id: &'a Value, method: &'a str },
    /// `method` and no `id`.
    Notification { method: &'a str },
    /// `result` or `error` and an `id`.
    Response { id: &'a Value },
    /// Anything else (left for the peer to refuse).
    Other,
}

pub(crate) fn kind(msg: &Value) -> Kind<'_> {
    let Some(obj) = msg.as_object() else {
        return Kind::Other;
    };
    match (obj.get("method").and_then(Value::as_str), obj.get("id")) {
        (Some(method), Some(id)) => Kind::Request { id, method },
        (Some(method), None) => Kind::Notification { method },
        (None, Some(id)) if obj.contains_key("result") || obj.contains_key("error") => {
            Kind::Response { id }
        }
        _ => Kind::Other,
    }
}

/// The key a request id is matched by. Numbers are compared by value,
/// since a peer may print `1.0` back as `1`; a number and a string never
/// match.
pub(crate) fn id_key(id: &Value) -> String {
    match id {
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => format!("n:{i}"),
            (None, Some(u), _) => format!("n:{u}"),
            (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                format!("n:{}", f as i64)
            }
            _ => format!("n:{n}"),
        },
        Value::String(s) => format!("s:{s}"),
        other => format!("o:{other}"),
    }
}

/// A successful response.
pub(crate) fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error response.
pub(crate) fn error(id: &Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// A tool result the model reads as a failed call: MCP's
/// `{content: [{type: text, text}], isError: true}`.
pub(crate) fn tool_error(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}], "isError": true})
}

/// JSON-RPC's "Invalid Request".
pub(crate) const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC's "Invalid params".
pub(crate) const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC's "Parse error".
pub(crate) const PARSE_ERROR: i64 = -32700;
/// "Request timed out", as MCP's SDKs answer a request nobody answered in
/// time (in JSON-RPC's range for implementation-defined server errors).
pub(crate) const REQUEST_TIMEOUT: i64 = -32001;
/// JSON-RPC's "Internal error": warden could not get an answer from the
/// MCP server (it exited, or warden could not govern the message).
pub(crate) const INTERNAL_ERROR: i64 = -32603;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_told_apart_by_their_members() {
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        assert!(matches!(
            kind(&req),
            Kind::Request {
                method: "tools/list",
                ..
            }
        ));
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert!(matches!(kind(&note), Kind::Notification { .. }));
        let resp = json!({"jsonrpc": "2.0", "id": "a", "result": {}});
        assert!(matches!(kind(&resp), Kind::Response { .. }));
        assert_eq!(kind(&json!({"jsonrpc": "2.0", "id": 3})), Kind::Other);
        assert_eq!(kind(&json!([1])), Kind::Other);
    }

    #[test]
    fn numeric_ids_match_by_value_and_never_match_strings() {
        assert_eq!(id_key(&json!(1)), id_key(&json!(1.0)));
        assert_ne!(id_key(&json!(1)), id_key(&json!("1")));
        assert_ne!(id_key(&json!(1.5)), id_key(&json!(1)));
        assert_eq!(id_key(&json!(u64::MAX)), id_key(&json!(u64::MAX)));
    }
}
