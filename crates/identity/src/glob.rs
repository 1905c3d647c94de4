//! Tool-name patterns in capability tokens.
//!
//! A pattern is literal characters plus `*` (any sequence, including none)
//! and `?` (exactly one character). Literals are ASCII letters, digits and
//! `_ . : / @ + -`, so a pattern has no quoting, escaping or classes and
//! means the same in the fast matcher here, in the regular expression that
//! the token's datalog checks carry, and to a reader.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::did::quote;

/// Longest tool pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 128;
/// Longest tool name [`ToolPattern::matches`] is asked about; longer names
/// are refused before matching.
pub const MAX_TOOL_NAME_BYTES: usize = 256;

/// A pattern that is not a valid tool pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tool pattern {input:?} {problem} (hint: letters, digits, _ . : / @ + - and the wildcards * and ?)"
)]
pub struct PatternError {
    /// The pattern, shortened.
    pub input: String,
    /// What is wrong.
    pub problem: &'static str,
}

/// A validated tool-name glob.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ToolPattern(String);

fn is_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_.:/@+-".contains(&b)
}

impl ToolPattern {
    /// Validates a pattern.
    pub fn parse(text: &str) -> Result<ToolPattern, PatternError> {
        let err = |problem| PatternError {
            input: quote(text),
            problem,
        };
        if text.is_empty() {
            return Err(err("is empty"));
        }
        if text.len() > MAX_PATTERN_BYTES {
            return Err(err("is longer than 128 bytes"));
        }
        if !text
            .bytes()
            .all(|b| is_literal(b) || b == b'*' || b == b'?')
        {
            return Err(err("has a character outside the allowed set"));
        }
        Ok(ToolPattern(text.to_string()))
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `tool` matches. Tool names longer than [`MAX_TOOL_NAME_BYTES`] never match.
    pub fn matches(&self, tool: &str) -> bool {
        tool.len() <= MAX_TOOL_NAME_BYTES && wildcard_match(self.0.as_bytes(), tool)
    }

    /// Whether `self` covers `narrower`: every tool name that `narrower`
    /// matches, `self` matches too.
    ///
    /// Sound, not complete: `true` is a proof of inclusion; a few equivalent
    /// rewrites (`*?` against `?*`) answer `false`, which only refuses a
    /// delegation that could have been written another way.
    pub fn covers(&self, narrower: &ToolPattern) -> bool {
        covers(self.0.as_bytes(), narrower.0.as_bytes())
    }

    /// The anchored regular expression with the same meaning, for biscuit's
    /// `.matches()`: `(?s)` so `*` and `?` span any character, literals in
    /// brackets (`[.]`) so nothing needs a backslash.
    pub(crate) fn to_regex(&self) -> String {
        let mut out = String::with_capacity(self.0.len() * 3 + 8);
        out.push_str("(?s)^");
        for b in self.0.bytes() {
            match b {
                b'*' => out.push_str(".*"),
                b'?' => out.push('.'),
                b if b.is_ascii_alphanumeric() || b == b'_' => out.push(b as char),
                b => {
                    out.push('[');
                    out.push(b as char);
                    out.push(']');
                }
            }
        }
        out.push('$');
        out
    }
}

impl fmt::Display for ToolPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ToolPattern {
    type Error = PatternError;
    fn try_from(s: String) -> Result<ToolPattern, PatternError> {
        ToolPattern::parse(&s)
    }
}

impl From<ToolPattern> for String {
    fn from(p: ToolPattern) -> String {
        p.0
    }
}

/// Length of the UTF-8 character starting with byte `b`.
fn char_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Glob match with single-star backtracking: O(pattern × name) at worst.
/// `?` consumes one whole UTF-8 character of `name`.
fn wildcard_match(pattern: &[u8], name: &str) -> bool {
    let name = name.as_bytes();
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if p < pattern.len() && pattern[p] == b'?' {
            p += 1;
            n += char_len(name[n]);
        } else if p < pattern.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((sp, sn)) = star {
            let next = sn + char_len(name[sn]);
            star = Some((sp, next));
            p = sp + 1;
            n = next;
        } else {
            return false;
        }
    }
    // `?` may step past the end only on a multi-byte character, which ends exactly.
    if n > name.len() {
        return false;
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Whether pattern `wide` covers pattern `narrow`, deciding over pattern
/// symbols: a `*` in `wide` absorbs any run of `narrow`'s symbols; a `?` in
/// `wide` takes one `?` or literal; a literal takes the same literal.
fn covers(wide: &[u8], narrow: &[u8]) -> bool {
    let cols = narrow.len() + 1;
    // reach[i * cols + j]: wide[i..] covers narrow[j..]
    let mut reach = vec![false; (wide.len() + 1) * cols];
    reach[wide.len() * cols + narrow.len()] = true;
    for i in (0..wide.len()).rev() {
        for j in (0..=narrow.len()).rev() {
            let here = match wide[i] {
                b'*' => reach[(i + 1) * cols + j] || (j < narrow.len() && reach[i * cols + j + 1]),
                b'?' => j < narrow.len() && narrow[j] != b'*' && reach[(i + 1) * cols + j + 1],
                c => j < narrow.len() && narrow[j] == c && reach[(i + 1) * cols + j + 1],
            };
            reach[i * cols + j] = here;
        }
    }
    reach[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> ToolPattern {
        ToolPattern::parse(s).unwrap()
    }

    #[test]
    fn wildcards_match_as_documented() {
        assert!(p("read_*").matches("read_file"));
        assert!(p("read_*").matches("read_"));
        assert!(!p("read_*").matches("write_file"));
        assert!(p("db.?et").matches("db.get"));
        assert!(p("db.?et").matches("db.ßet"));
        assert!(!p("db.?et").matches("db.et"));
        assert!(p("*").matches(""));
        assert!(p("a*b*c").matches("aXXbYYc"));
        assert!(!p("a*b*c").matches("aXXbYY"));
        assert!(!p("x").matches(&"x".repeat(MAX_TOOL_NAME_BYTES + 1)));
    }

    #[test]
    fn invalid_patterns_are_refused() {
        for bad in [
            "",
            "a b",
            "read[ab]",
            "a\"b",
            "a\\b",
            "café",
            &"a".repeat(129),
            "{a,b}",
        ] {
            assert!(ToolPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn coverage_examples() {
        assert!(p("*").covers(&p("anything*")));
        assert!(p("read_*").covers(&p("read_file")));
        assert!(p("read_*").covers(&p("read_?ile*")));
        assert!(!p("read_?").covers(&p("read_*")));
        assert!(!p("read_file").covers(&p("read_*")));
        assert!(!p("read_*").covers(&p("*")));
        assert!(p("a*").covers(&p("a**")));
    }

    fn pattern() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ab.*?]{1,6}").unwrap()
    }

    proptest! {
        #[test]
        fn regex_and_matcher_agree(pat in pattern(), name in "[ab.é]{0,8}") {
            let pat = p(&pat);
            let re = regex_lite(&pat.to_regex(), &name);
            prop_assert_eq!(pat.matches(&name), re);
        }

        #[test]
        fn covers_is_sound(wide in pattern(), narrow in pattern(), name in "[ab.]{0,8}") {
            let (wide, narrow) = (p(&wide), p(&narrow));
            if wide.covers(&narrow) && narrow.matches(&name) {
                prop_assert!(wide.matches(&name));
            }
        }
    }

    /// Reference semantics: translate back and match by brute force over
    /// characters (independent of `wildcard_match`).
    fn regex_lite(re: &str, name: &str) -> bool {
        let body = re
            .strip_prefix("(?s)^")
            .and_then(|r| r.strip_suffix('$'))
            .unwrap();
        let mut toks = Vec::new();
        let b: Vec<char> = body.chars().collect();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                '.' if b.get(i + 1) == Some(&'*') => {
                    toks.push(None::<Option<char>>);
                    i += 2;
                }
                '.' => {
                    toks.push(Some(None));
                    i += 1;
                }
                '[' => {
                    toks.push(Some(Some(b[i + 1])));
                    i += 3;
                }
                c => {
                    toks.push(Some(Some(c)));
                    i += 1;
                }
            }
        }
        fn go(t: &[Option<Option<char>>], s: &[char]) -> bool {
            match t.first() {
                None => s.is_empty(),
                Some(None) => (0..=s.len()).any(|k| go(&t[1..], &s[k..])),
                Some(Some(None)) => !s.is_empty() && go(&t[1..], &s[1..]),
                Some(Some(Some(c))) => s.first() == Some(c) && go(&t[1..], &s[1..]),
            }
        }
        let s: Vec<char> = name.chars().collect();
        go(&toks, &s)
    }
}
