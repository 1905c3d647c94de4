//! Compiler-style diagnostics: `file:line:column: message (hint)`.

use std::borrow::Cow;
use std::fmt;

/// User text made safe for one line of terminal output: control characters
/// (newlines, escape sequences) are shown escaped, like `\n` and `\u{1b}`.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .flat_map(|c| {
                let escaped: Vec<char> = if c.is_control() {
                    c.escape_default().collect()
                } else {
                    vec![c]
                };
                escaped
            })
            .collect(),
    )
}

/// One problem found in a policy, with the place it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The policy file as the user named it (or the include path).
    pub file: String,
    /// 1-based line; 0 when the place is the whole file.
    pub line: u64,
    /// 1-based column; 0 when the place is the whole file.
    pub column: u64,
    /// What is wrong.
    pub message: String,
    /// What to do about it, when there is something useful to say.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Messages quote user text: keep one diagnostic on one line.
        let (file, message) = (printable(&self.file), printable(&self.message));
        if self.line > 0 {
            write!(f, "{file}:{}:{}: {message}", self.line, self.column)?;
        } else {
            write!(f, "{file}: {message}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " ({})", printable(hint))?;
        }
        Ok(())
    }
}

/// A position in a policy source: 1-based line and column (0/0 = unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

/// Every problem found while loading or compiling a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The problems, in the order they were found (at least one).
    pub diagnostics: Vec<Diagnostic>,
}

impl PolicyError {
    pub(crate) fn one(d: Diagnostic) -> Self {
        PolicyError {
            diagnostics: vec![d],
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let max = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposition_counts_as_one_edit() {
        assert_eq!(edit_distance("verdcit", "verdict"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_only_close_words() {
        let fields = ["verdict", "reason", "when"];
        assert_eq!(suggest("verdcit", &fields), Some("verdict"));
        assert_eq!(suggest("zzzzzz", &fields), None);
    }

    #[test]
    fn user_text_cannot_break_the_line_or_reach_the_terminal() {
        let d = Diagnostic::new(
            "p.yaml",
            Pos { line: 1, column: 1 },
            "unknown field 'ver\ndict\u{1b}[2J'",
        );
        assert_eq!(
            d.to_string(),
            "p.yaml:1:1: unknown field 'ver\\ndict\\u{1b}[2J'"
        );
        assert_eq!(printable("plain"), "plain");
    }

    #[test]
    fn display_matches_compiler_format() {
        let d = Diagnostic::new(
            "p.yaml",
            Pos {
                line: 12,
                column: 5,
            },
            "unknown field 'x'",
        )
        .hint("did you mean 'y'?");
        assert_eq!(
            d.to_string(),
            "p.yaml:12:5: unknown field 'x' (did you mean 'y'?)"
        );
    }
}
