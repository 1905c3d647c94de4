//! Shared state of one classification and the dispatch between parsers.

use crate::normalize::normalize_cow;
use crate::{
    Config, Finding, Intent, Kind, MAX_DECODED_BYTES, MAX_DEPTH, MAX_FINDINGS, MAX_INPUT_BYTES,
    MAX_SYNTAX_NESTING, Span, path, shell, sql, url_kind,
};

/// Longest evidence string kept in a finding.
const MAX_EVIDENCE_CHARS: usize = 160;

/// Collects findings and intents for one classification.
#[derive(Default)]
pub(crate) struct Sink {
    pub findings: Vec<Finding>,
    pub intents: Vec<Intent>,
}

impl Sink {
    pub(crate) fn push(&mut self, finding: Finding) {
        if self.findings.capacity() == 0 {
            // Room for the findings of a usual text at once, instead of
            // growing through 4 and 8.
            self.findings.reserve(16);
        }
        if !self.intents.contains(&finding.intent) {
            self.intents.push(finding.intent);
        }
        if self.findings.len() < MAX_FINDINGS
            && !self.findings.iter().any(|f| {
                f.intent == finding.intent
                    && f.span == finding.span
                    && f.evidence == finding.evidence
            })
        {
            self.findings.push(finding);
        }
    }
}

/// The context passed through every parser: configuration, the sink, the
/// budget of decoded bytes left, and where nested payloads came from.
pub(crate) struct Ctx<'a> {
    pub config: &'a Config,
    sink: &'a mut Sink,
    argument: Option<&'a str>,
    decoded_left: usize,
    budget_reported: bool,
    /// Whether the exact fast paths may answer before the full parsers.
    pub fast_paths: bool,
}

/// The state of a [`Ctx`] at one point, to return to it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark {
    findings: usize,
    intents: usize,
    decoded_left: usize,
    budget_reported: bool,
}

/// Where a payload sits: its nesting depth and, for nested payloads, the span
/// of the outermost element (in the top-level normalised text) that holds it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    pub depth: usize,
    pub outer: Option<Span>,
}

impl Origin {
    pub const TOP: Origin = Origin {
        depth: 0,
        outer: None,
    };

    /// The span to report for a local `start..end`.
    pub fn span(&self, start: usize, end: usize) -> Span {
        self.outer.unwrap_or(Span { start, end })
    }

    /// The origin of a payload nested at local `start..end`.
    pub fn nested(&self, start: usize, end: usize) -> Origin {
        Origin {
            depth: self.depth + 1,
            outer: Some(self.span(start, end)),
        }
    }
}

impl<'a> Ctx<'a> {
    pub fn add(&mut self, intent: Intent, kind: Kind, span: Span, evidence: impl Into<String>) {
        let mut evidence = evidence.into();
        truncate_in_place(&mut evidence, MAX_EVIDENCE_CHARS);
        self.sink.push(Finding {
            intent,
            evidence,
            span,
            kind,
            argument: self.argument.map(str::to_string),
        });
    }

    /// Accounts for `n` bytes of payload about to be re-parsed. Returns false
    /// (and records `unknown` once) when the budget is spent.
    pub fn spend(&mut self, n: usize, kind: Kind, span: Span) -> bool {
        if n <= self.decoded_left {
            self.decoded_left -= n;
            return true;
        }
        if !self.budget_reported {
            self.budget_reported = true;
            self.add(
                Intent::Unknown,
                kind,
                span,
                format!("decoded payloads exceed {MAX_DECODED_BYTES} bytes; not parsed"),
            );
        }
        false
    }

    /// The state of one classification, with the whole decoded-payload budget.
    pub(crate) fn new(
        config: &'a Config,
        sink: &'a mut Sink,
        argument: Option<&'a str>,
        fast_paths: bool,
    ) -> Self {
        Ctx {
            config,
            sink,
            argument,
            decoded_left: MAX_DECODED_BYTES,
            budget_reported: false,
            fast_paths,
        }
    }

    /// Classifies a payload found inside another one (e.g. the string of
    /// `sh -c`, the SQL of `psql -c`), after normalising it like any input.
    pub fn nested(&mut self, kind: Kind, text: &str, origin: Origin) {
        let span = origin.span(0, 0);
        if origin.depth > MAX_DEPTH {
            self.add(
                Intent::Unknown,
                kind,
                span,
                format!("payload nested deeper than {MAX_DEPTH} levels; not parsed"),
            );
            return;
        }
        if !self.spend(text.len(), kind, span) {
            return;
        }
        let text = normalize_cow(text);
        dispatch(self, kind, &text, origin);
    }

    /// Where the classification stands, for [`Self::rollback`].
    pub fn mark(&self) -> Mark {
        Mark {
            findings: self.sink.findings.len(),
            intents: self.sink.intents.len(),
            decoded_left: self.decoded_left,
            budget_reported: self.budget_reported,
        }
    }

    /// Undoes everything added since `mark` (the sink only ever grows, so
    /// cutting it back restores it).
    pub fn rollback(&mut self, mark: Mark) {
        self.sink.findings.truncate(mark.findings);
        self.sink.intents.truncate(mark.intents);
        self.decoded_left = mark.decoded_left;
        self.budget_reported = mark.budget_reported;
    }

    pub fn has(&self, intent: Intent) -> bool {
        self.sink.intents.contains(&intent)
    }
}

/// Classifies one top-level text into `sink`.
pub(crate) fn classify_into(
    config: &Config,
    kind: Kind,
    text: &str,
    argument: Option<&str>,
    fast_paths: bool,
    sink: &mut Sink,
) {
    if kind == Kind::Text {
        return;
    }
    let mut ctx = Ctx::new(config, sink, argument, fast_paths);
    let mut cut = text;
    if text.len() > MAX_INPUT_BYTES {
        let mut end = MAX_INPUT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        cut = &text[..end];
    }
    let normalized = normalize_cow(cut);
    if cut.len() < text.len() {
        let len = normalized.len();
        ctx.add(
            Intent::Unknown,
            if kind == Kind::Auto { Kind::Shell } else { kind },
            Span { start: 0, end: len },
            format!(
                "input of {} bytes exceeds the {MAX_INPUT_BYTES}-byte limit; only the start was read",
                text.len()
            ),
        );
    }
    dispatch(&mut ctx, kind, &normalized, Origin::TOP);
}

fn dispatch(ctx: &mut Ctx<'_>, kind: Kind, text: &str, origin: Origin) {
    match kind {
        Kind::Sql => sql::analyze(ctx, text, origin),
        Kind::Shell => shell::analyze(ctx, text, origin),
        Kind::Url => url_kind::analyze(ctx, text, origin),
        Kind::Path => path::analyze(ctx, text, origin),
        Kind::Auto => auto(ctx, text, origin),
        Kind::Text => {}
    }
}

/// `auto`: a string is classified as each kind it parses as with confidence.
/// Plain prose that is none of them is data and adds nothing.
fn auto(ctx: &mut Ctx<'_>, text: &str, origin: Origin) {
    let t = text.trim();
    if t.is_empty() {
        return;
    }
    if url_kind::looks_like_url(t) {
        url_kind::analyze(ctx, text, origin);
        return;
    }
    if path::looks_like_path(t) {
        path::analyze(ctx, text, origin);
        return;
    }
    if sql::looks_like_sql(t) {
        sql::analyze(ctx, text, origin);
        return;
    }
    if shell::looks_like_shell(t) {
        shell::analyze(ctx, text, origin);
    }
}

/// Deepest nesting of brackets, braces and backticks, ignoring quoting (an
/// over-estimate, which is the safe side for a stack guard).
pub(crate) fn nesting_exceeds_limit(text: &str) -> bool {
    // Depth never exceeds the number of opening bytes: count those first,
    // in a loop without branches that the compiler vectorises, and walk
    // the depth only when there are enough of them.
    let (mut opening, mut backticks) = (0usize, 0usize);
    for block in text.as_bytes().chunks(255) {
        // Byte-wide counters (a block of 255 cannot overflow them) let the
        // compiler compare 16 or 32 bytes at a time.
        let (mut o, mut t) = (0u8, 0u8);
        for &b in block {
            o += u8::from(b == b'(') + u8::from(b == b'{') + u8::from(b == b'[');
            t += u8::from(b == b'`');
        }
        opening += usize::from(o);
        backticks += usize::from(t);
    }
    if backticks > 2 * MAX_SYNTAX_NESTING {
        return true;
    }
    if opening <= MAX_SYNTAX_NESTING {
        return false;
    }
    let mut depth: usize = 0;
    for b in text.bytes() {
        match b {
            b'(' | b'{' | b'[' => {
                depth += 1;
                if depth > MAX_SYNTAX_NESTING {
                    return true;
                }
            }
            b')' | b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// [`truncate_chars`] of an owned string, without copying it.
pub(crate) fn truncate_in_place(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push('…');
    }
}

pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    let mut out = String::new();
    push_truncated(&mut out, s, max);
    out
}

/// Appends [`truncate_chars`] of `s` to `out`.
pub(crate) fn push_truncated(out: &mut String, s: &str, max: usize) {
    // No more bytes than `max` means no more characters either.
    if s.len() <= max {
        out.push_str(s);
        return;
    }
    match s.char_indices().nth(max) {
        Some((i, _)) => {
            out.push_str(&s[..i]);
            out.push('…');
        }
        None => out.push_str(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncating_in_place_is_truncate_chars() {
        let long = "é".repeat(200);
        for s in [
            "",
            "abc",
            "x".repeat(160).as_str(),
            "x".repeat(161).as_str(),
            long.as_str(),
        ] {
            for max in [0, 3, 160] {
                let mut owned = s.to_string();
                truncate_in_place(&mut owned, max);
                assert_eq!(owned, truncate_chars(s, max), "{s:?} {max}");
            }
        }
    }
}
