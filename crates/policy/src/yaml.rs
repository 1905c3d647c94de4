//! YAML text to a position-carrying node tree.
//!
//! serde-saphyr does the parsing (safe, budgeted, duplicate keys rejected,
//! `strict_booleans` so that `NO` stays a string); this module keeps every
//! node's line and column so later checks can point at the exact place.

use crate::diag::{Diagnostic, PolicyError, Pos};
use crate::limits::MAX_YAML_DEPTH;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Budget, Options, Spanned};
use std::fmt;

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// The shape of a YAML node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// A short name for the kind of node, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The node as JSON (for values the policy passes through, like `replace:`).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::UInt(u) => (*u).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => s.clone().into(),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.scalar_text(), v.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }

    /// A scalar's text (keys are rendered this way).
    pub fn scalar_text(&self) -> String {
        match &self.value {
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Null => "null".to_string(),
            Value::Seq(_) | Value::Map(_) => String::new(),
        }
    }
}

struct Raw(Value);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Raw>::deserialize(d)?;
        let loc = spanned.referenced;
        Ok(Node {
            value: spanned.value.0,
            pos: Pos {
                line: loc.line(),
                column: loc.column(),
            },
        })
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor).map(Raw)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, _v: &[u8]) -> Result<Value, E> {
        Err(E::custom("binary values are not allowed in a policy"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// Parses one YAML document into a node tree, or a diagnostic pointing at the problem.
///
/// Most policies take the direct route of [`from_events`]; whatever it does
/// not handle exactly as serde-saphyr would goes through serde-saphyr, which
/// also has the final word on every error.
pub(crate) fn parse(file: &str, text: &str) -> Result<Node, PolicyError> {
    match from_events(text) {
        Some(node) => {
            // Every debug build (so every test that loads a policy) holds the
            // direct route to serde-saphyr's reading.
            debug_assert_eq!(
                parse_with_serde(file, text).as_ref().ok(),
                Some(&node),
                "the direct YAML route read {file} differently from serde-saphyr"
            );
            Ok(node)
        }
        None => parse_with_serde(file, text),
    }
}

/// Collections open deeper than this leave the document to serde-saphyr,
/// which counts depth its own way and reports [`MAX_YAML_DEPTH`].
const DIRECT_MAX_DEPTH: usize = MAX_YAML_DEPTH - 4;

/// Documents with more nodes than this leave the direct route too, well
/// before serde-saphyr's own budget (250,000 by default) refuses them.
const DIRECT_MAX_NODES: usize = 200_000;

/// Builds the node tree straight from the YAML parser's events, without
/// serde's per-node `Spanned` round trip (two thirds of the parse time of a
/// 1,000-rule policy).
///
/// Only the shapes policies are written in: mappings with string keys written
/// once, sequences, strings, `true`/`false`, null and small decimal integers.
/// Anything else — anchors, aliases, tags, merge keys, keys that are not
/// strings or are written twice, other numbers, deep nesting, very many
/// nodes, several documents, any syntax error — returns `None`, and [`parse_with_serde`]
/// decides. So this path never accepts a document serde-saphyr would refuse,
/// and never reads one differently (a test holds the two to each other).
fn from_events(text: &str) -> Option<Node> {
    use granit_parser::{Event, Parser};
    // The parser's limits are the ones serde-saphyr gives it by default;
    // comments only matter to a formatter.
    let options = granit_parser::options! { emit_comments: false };
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut open: Vec<Open> = Vec::new();
    let mut root = None;
    let mut documents = 0;
    let mut nodes = 0;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.ok()?;
        if matches!(
            event,
            Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..)
        ) {
            nodes += 1;
            if nodes > DIRECT_MAX_NODES {
                return None;
            }
        }
        let pos = Pos {
            line: span.start.line() as u64,
            column: span.start.col() as u64 + 1,
        };
        let node = match event {
            Event::StreamStart | Event::DocumentEnd => continue,
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return None;
                }
                continue;
            }
            Event::Scalar(text, style, 0, None) => Node {
                value: resolve(text, style)?,
                pos,
            },
            Event::SequenceStart(_, 0, None) | Event::MappingStart(_, 0, None)
                if open.len() >= DIRECT_MAX_DEPTH =>
            {
                return None;
            }
            Event::SequenceStart(_, 0, None) => {
                open.push(Open::Seq(pos, Vec::new()));
                continue;
            }
            Event::MappingStart(_, 0, None) => {
                open.push(Open::Map(pos, Vec::new(), None));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => open.pop()?.close()?,
            _ => return None,
        };
        match open.last_mut() {
            Some(parent) => parent.push(node)?,
            None if root.is_none() => root = Some(node),
            None => return None,
        }
    }
    if !open.is_empty() {
        return None;
    }
    root
}

/// A collection whose end event has not come yet.
enum Open {
    Seq(Pos, Vec<Node>),
    /// The entries so far, and a key waiting for its value.
    Map(Pos, Vec<(Node, Node)>, Option<Node>),
}

impl Open {
    fn push(&mut self, node: Node) -> Option<()> {
        match self {
            Open::Seq(_, items) => items.push(node),
            Open::Map(_, entries, key) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => match &node.value {
                    Value::Str(s) if s != "<<" => *key = Some(node),
                    _ => return None,
                },
            },
        }
        Some(())
    }

    fn close(self) -> Option<Node> {
        Some(match self {
            Open::Seq(pos, items) => Node {
                value: Value::Seq(items),
                pos,
            },
            Open::Map(_, _, Some(_)) => return None,
            Open::Map(pos, entries, None) => {
                if has_repeated_key(&entries) {
                    return None;
                }
                Node {
                    value: Value::Map(entries),
                    pos,
                }
            }
        })
    }
}

fn has_repeated_key(entries: &[(Node, Node)]) -> bool {
    // Only string keys are pushed; any other would read as "" and at worst
    // send the document to serde-saphyr.
    fn key(entry: &(Node, Node)) -> &str {
        match &entry.0.value {
            Value::Str(s) => s,
            _ => "",
        }
    }
    if entries.len() <= 16 {
        return entries
            .iter()
            .enumerate()
            .any(|(i, a)| entries[..i].iter().any(|b| key(a) == key(b)));
    }
    let mut keys: Vec<&str> = entries.iter().map(key).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// A scalar's value as serde-saphyr reads it untyped with `strict_booleans`,
/// or `None` where that takes more than this (floats, signs, other radices,
/// leading zeros, big numbers).
fn resolve(text: std::borrow::Cow<'_, str>, style: granit_parser::ScalarStyle) -> Option<Value> {
    if style != granit_parser::ScalarStyle::Plain {
        return Some(Value::Str(text.into_owned()));
    }
    Some(match &*text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        t => match t.as_bytes()[0] {
            b'0'..=b'9' if t.bytes().all(|b| b.is_ascii_digit()) => {
                if t.len() > 18 || (t.len() > 1 && t.starts_with('0')) {
                    return None;
                }
                Value::UInt(t.parse().ok()?)
            }
            // Not a number whatever the parser tries: after a leading 1-9
            // (no radix prefix) only decimal integers and Rust's float syntax
            // are numbers, and a character outside both makes it text: `1m`.
            b'1'..=b'9' if t.bytes().any(|b| !b"0123456789_.eE+-".contains(&b)) => {
                Value::Str(text.into_owned())
            }
            b'0'..=b'9' => return None,
            b'+' | b'-' | b'.' | b' ' | b'\t' | b'\r' | b'\n' => return None,
            _ if t.ends_with([' ', '\t', '\r', '\n']) => return None,
            _ => Value::Str(text.into_owned()),
        },
    })
}

fn parse_with_serde(file: &str, text: &str) -> Result<Node, PolicyError> {
    let mut budget = Budget::default();
    budget.max_depth = MAX_YAML_DEPTH;
    let mut options = Options::default();
    options.strict_booleans = true;
    options.budget = Some(budget);
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos {
                line: l.line(),
                column: l.column(),
            })
            .unwrap_or_default();
        if let serde_saphyr::Error::Budget {
            breach: serde_saphyr::budget::BudgetBreach::Depth { .. },
            ..
        } = e.without_snippet()
        {
            return PolicyError::one(
                Diagnostic::new(
                    file,
                    pos,
                    format!("YAML nests deeper than {MAX_YAML_DEPTH} levels"),
                )
                .hint("a policy never needs this much nesting"),
            );
        }
        let message = e.without_snippet().to_string();
        // serde-saphyr puts the location in its own message; we print ours in front.
        let message = message
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .trim()
            .to_string();
        PolicyError::one(Diagnostic::new(
            file,
            pos,
            format!("invalid YAML: {message}"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_nested_nodes() {
        let n = parse("p.yaml", "a: 1\nb:\n  - x\n  - y: NO\n").unwrap();
        let Value::Map(entries) = &n.value else {
            panic!("not a map")
        };
        assert_eq!(entries[1].0.pos, Pos { line: 2, column: 1 });
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items[1].pos.line, 4);
        // strict booleans: NO is a string, not false
        let Value::Map(inner) = &items[1].value else {
            panic!("not a map")
        };
        assert_eq!(inner[0].1.value, Value::Str("NO".into()));
    }

    #[test]
    fn duplicate_keys_are_rejected_with_a_position() {
        let e = parse("p.yaml", "a: 1\na: 2\n").unwrap_err();
        let d = &e.diagnostics[0];
        assert_eq!(d.line, 2, "{d}");
        assert!(d.message.contains("invalid YAML"), "{d}");
    }

    /// The direct route's answer, checked against serde-saphyr's: when it
    /// reads a document at all, it reads it the same way.
    fn direct(text: &str) -> Option<Node> {
        let fast = from_events(text);
        if let Some(node) = &fast {
            assert_eq!(
                parse_with_serde("p.yaml", text).as_ref().ok(),
                Some(node),
                "{text:?}"
            );
        }
        fast
    }

    #[test]
    fn policies_in_the_usual_shapes_take_the_direct_route() {
        let example = include_str!("../../../examples/database-agent/policy.yaml");
        assert!(direct(example).is_some());
        let flow = "version: warden/v1\nrules:\n  - {id: a, match: {tool: [x.y, 'z*'], ring: {max: 1}}, when: \"args.n > 2\", verdict: deny}\n";
        let node = direct(flow).expect("flow style is read directly");
        let Value::Map(top) = &node.value else {
            panic!("not a map")
        };
        assert_eq!(top[1].0.pos, Pos { line: 2, column: 1 });
        assert!(direct("a: 1\nb:\n  - x\n  - y: NO\n").is_some());
        assert!(direct("a: null\nb: ~\nc: ''\nd: TRUE\ne: \"1\"\nf: 0\ng: |\n  text\n").is_some());
        assert!(direct("per: 1m\nnet: 10.0.0.0/8\nv: 2x\n").is_some());
    }

    #[test]
    fn anything_else_is_left_to_serde_saphyr() {
        for text in [
            "a: &x 1\nb: *x\n",
            "base: &b {k: 1}\nc:\n  <<: *b\n",
            "a: !!str 1\n",
            "a: !custom x\n",
            "a: 1\na: 2\n",
            "a: 1\n\"a\": 2\n",
            "a: 1.5\n",
            "a: -1\n",
            "a: +1\n",
            "a: 0x1F\n",
            "a: 007\n",
            "a: .inf\n",
            "a: 1e3\n",
            "a: 1_000\n",
            "a: 1.2.3\n",
            "a: 0m\n",
            "a: 12345678901234567890\n",
            "1: a\n",
            "true: a\n",
            "? [a]\n: b\n",
            "a: 1\n---\nb: 2\n",
            "rules: [a, b\n",
            "a: [\n",
        ] {
            assert_eq!(direct(text), None, "{text:?}");
        }
        let deep = "[".repeat(DIRECT_MAX_DEPTH + 1) + &"]".repeat(DIRECT_MAX_DEPTH + 1);
        assert_eq!(direct(&deep), None);
        let long = |n: usize| format!("[{}]", vec!["a"; n].join(","));
        assert!(direct(&long(DIRECT_MAX_NODES - 1)).is_some());
        assert_eq!(direct(&long(DIRECT_MAX_NODES)), None);
    }

    /// A YAML-ish document: not always valid, which is the point.
    #[derive(Debug, Clone)]
    enum Doc {
        Scalar(String, u8),
        Seq(Vec<Doc>, bool),
        Map(Vec<(String, u8, Doc)>, bool),
    }

    fn scalar_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::sample::select(vec![
                "a",
                "deny",
                "true",
                "True",
                "tRue",
                "yes",
                "NO",
                "null",
                "Null",
                "~",
                "",
                "0",
                "1",
                "01",
                "10",
                "-1",
                "+1",
                "1.5",
                ".5",
                "1e3",
                "0x1F",
                "0o7",
                ".inf",
                "-.Inf",
                ".nan",
                "1_000",
                "12:30",
                "123456789012345678",
                "1234567890123456789",
                "99999999999999999999",
                "inf",
                "nan",
                "<<",
                "a b",
                " a",
                "a ",
                "é",
                "x#y",
                "x #y",
                "a: b",
                "- a",
                "*a",
                "&a b",
                "!t x",
                "'q'",
                "\"d\"",
                "|",
                ">",
                "[",
                "}",
                "%x",
                "@x",
                "`x",
                "a\tb",
                "\u{feff}a",
                "a\u{85}b",
            ])
            .prop_map(str::to_string),
            "[a-z0-9 .:+~#'\"\\-]{0,6}",
        ]
    }

    fn doc() -> impl proptest::strategy::Strategy<Value = Doc> {
        use proptest::prelude::*;
        let leaf = (scalar_text(), 0u8..3).prop_map(|(s, q)| Doc::Scalar(s, q));
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                (
                    proptest::collection::vec(inner.clone(), 0..4),
                    any::<bool>()
                )
                    .prop_map(|(items, flow)| Doc::Seq(items, flow)),
                (
                    proptest::collection::vec((scalar_text(), 0u8..3, inner), 0..4),
                    any::<bool>()
                )
                    .prop_map(|(entries, flow)| Doc::Map(entries, flow)),
            ]
        })
    }

    fn scalar(s: &str, quoting: u8) -> String {
        match quoting {
            0 => s.to_string(),
            1 => format!("'{}'", s.replace('\'', "''")),
            _ => serde_json::to_string(s).unwrap(),
        }
    }

    fn flow(d: &Doc) -> String {
        match d {
            Doc::Scalar(s, q) => scalar(s, *q),
            Doc::Seq(items, _) => format!(
                "[{}]",
                items.iter().map(flow).collect::<Vec<_>>().join(", ")
            ),
            Doc::Map(entries, _) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, q, v)| format!("{}: {}", scalar(k, *q), flow(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn block(d: &Doc, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match d {
            Doc::Seq(items, false) if !items.is_empty() => {
                for item in items {
                    out.push_str(&format!("{pad}-"));
                    child(item, indent, out);
                }
            }
            Doc::Map(entries, false) if !entries.is_empty() => {
                for (k, q, v) in entries {
                    out.push_str(&format!("{pad}{}:", scalar(k, *q)));
                    child(v, indent, out);
                }
            }
            other => out.push_str(&format!("{pad}{}\n", flow(other))),
        }
    }

    fn child(d: &Doc, indent: usize, out: &mut String) {
        let nested_block = match d {
            Doc::Seq(items, false) => !items.is_empty(),
            Doc::Map(entries, false) => !entries.is_empty(),
            _ => false,
        };
        if nested_block {
            out.push('\n');
            block(d, indent + 2, out);
        } else {
            out.push_str(&format!(" {}\n", flow(d)));
        }
    }

    proptest::proptest! {
        #[test]
        fn the_direct_route_never_reads_a_document_differently(d in doc()) {
            let mut text = String::new();
            block(&d, 0, &mut text);
            direct(&text);
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse("p.yaml", &deep).is_err());
        let deep_block: String = (0..500)
            .map(|i| format!("{}k:\n", "  ".repeat(i)))
            .collect();
        assert!(parse("p.yaml", &deep_block).is_err());
    }
}
