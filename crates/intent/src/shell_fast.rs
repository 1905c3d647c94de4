//! A fast parser for plain one-line shell command lists — simple commands
//! of plain, single-quoted and double-quoted words (with `$NAME`, `${NAME}`
//! and `$(simple command)`), joined by `|`, `&&`, `||` and `;`, with `>`,
//! `>>`, `<`, `N>file` and `N>&M` redirects. It returns `None` (brush parses
//! it) on anything else: newlines, backslashes, backticks, `#`, `=`, `!`,
//! braces, parentheses, `&`, heredocs, reserved words, non-ASCII text.
//!
//! It reads the bytes once and hands each command, as byte ranges, to the
//! walker ([`Commands`]), which reads them directly instead of brush's AST
//! (a `String` and two `Arc`s per word). brush spends most of its time
//! tokenizing through a reader and trying every word as an assignment.
//! `parses_like_brush` in the tests below checks that the AST rebuilt from
//! the commands (a `Program`) is the one brush builds (locations included)
//! on the corpus and on generated command lines, and `tests/fast_path.rs`
//! that the walk gives the same classification.

#[cfg(test)]
use std::sync::Arc;

use brush_parser::ast;
#[cfg(test)]
use brush_parser::{SourcePosition, SourceSpan};

/// Longest text the fast parser reads; longer scripts go to brush.
const MAX_FAST_BYTES: usize = 16 * 1024;

/// Reserved words and `[[`, `]]`: syntax in some position.
#[cfg(test)]
const RESERVED: &[&[u8]] = &[
    b"if",
    b"then",
    b"else",
    b"elif",
    b"fi",
    b"do",
    b"done",
    b"case",
    b"esac",
    b"while",
    b"until",
    b"for",
    b"in",
    b"function",
    b"select",
    b"time",
    b"coproc",
    b"[[",
    b"]]",
];

/// Whether `w` is one of [`RESERVED`]: a `match` on bytes, which the
/// compiler turns into a switch on the length and then on each byte (a
/// few instructions for most words), inlined into the tokenizer.
#[inline(always)]
fn is_reserved(w: &[u8]) -> bool {
    // Their first bytes first: one bit test rejects most words.
    matches!(
        w.first(),
        Some(b'i' | b't' | b'e' | b'f' | b'd' | b'c' | b'w' | b'u' | b's' | b'[' | b']')
    ) && matches!(
        w,
        b"if"
            | b"then"
            | b"else"
            | b"elif"
            | b"fi"
            | b"do"
            | b"done"
            | b"case"
            | b"esac"
            | b"while"
            | b"until"
            | b"for"
            | b"in"
            | b"function"
            | b"select"
            | b"time"
            | b"coproc"
            | b"[["
            | b"]]"
    )
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    Pipe,
    And,
    Or,
    Semi,
}

/// What the tokenizer hands each command to, as soon as the command ends:
/// the walker, which so reads each command while it is in the cache and
/// keeps no program, or (in the tests) a [`Program`].
pub(crate) trait Commands {
    /// A simple command: its words (the name first) and redirects, in text
    /// order. `pipeline`: `Some(joiner)` when it is the first command of a
    /// pipeline (`joiner`: how that pipeline joins the previous one of its
    /// list), `None` when it follows a `|`.
    fn command(&mut self, items: &[Item], pipeline: Option<Option<Op>>);
}

/// How many bytes of the text are `(`, `{` or `[`, and how many are
/// backticks: the counts `nesting_exceeds_limit` starts from, so that the
/// walker scans the text again only when they are high.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Openings {
    pub openings: usize,
    pub backticks: usize,
}

/// A plain command list as the fast parser reads it, with the `&&`/`||`
/// joiners and the pipeline boundaries the walker does not need (only `;`
/// separates lists, and every item runs in the foreground): the tests
/// rebuild brush's AST from it.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Program {
    /// Pipelines in order: each an [`Item::Pipeline`] followed by its
    /// commands, each an [`Item::Command`] followed by its words and
    /// redirects (the name word first).
    pub items: Vec<Item>,
    pub openings: usize,
    pub backticks: usize,
    /// Index in `items` of the current pipeline's header.
    pipeline: Option<usize>,
}

#[cfg(test)]
impl Commands for Program {
    fn command(&mut self, items: &[Item], pipeline: Option<Option<Op>>) {
        if let Some(joiner) = pipeline {
            self.pipeline = Some(self.items.len());
            self.items.push(Item::Pipeline { cmds: 0, joiner });
        }
        if let Some(at) = self.pipeline
            && let Item::Pipeline { cmds, .. } = &mut self.items[at]
        {
            *cmds += 1;
        }
        self.items.push(Item::Command { len: items.len() });
        self.items.extend_from_slice(items);
    }
}

/// A word (byte range) or a redirect of a command; in the tests'
/// [`Program`], also the pipeline and command headers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Item {
    /// Starts a pipeline of `cmds` commands. `joiner`: how it joins the
    /// previous pipeline of its list (`None`: first in its list, after `;`
    /// or at the start).
    #[cfg(test)]
    Pipeline { cmds: usize, joiner: Option<Op> },
    /// Starts a command whose words and redirects are the next `len` items.
    #[cfg(test)]
    Command { len: usize },
    /// A word's byte range, and whether it is plain: no quotes and no `$`,
    /// so its value is its text.
    Word(usize, usize, bool),
    /// `[fd]op target`; the target is a word's byte range.
    Redirect(Option<i32>, Redir, usize, usize),
}

/// The redirect operators the fast parser reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redir {
    /// `>`
    Write,
    /// `>>`
    Append,
    /// `<`
    Read,
    /// `>&N`
    DuplicateOutput,
}

impl Redir {
    pub(crate) fn kind(self) -> ast::IoFileRedirectKind {
        match self {
            Redir::Write => ast::IoFileRedirectKind::Write,
            Redir::Append => ast::IoFileRedirectKind::Append,
            Redir::Read => ast::IoFileRedirectKind::Read,
            Redir::DuplicateOutput => ast::IoFileRedirectKind::DuplicateOutput,
        }
    }
}

/// Parses `text` into a [`Program`] when all of it is in the subset.
#[cfg(test)]
pub(crate) fn parse(text: &str) -> Option<Program> {
    let mut prog = Program::default();
    let counts = walk(text, &mut prog, &mut Vec::new())?;
    prog.openings = counts.openings;
    prog.backticks = counts.backticks;
    Some(prog)
}

/// Reads `text` when all of it is in the subset, handing each command to
/// `out` as soon as it ends; `None` defers to brush (after `out` may have
/// seen the commands before the point where the subset ends: the walker
/// undoes what it did for them). One pass over the bytes. `cmd`: a buffer
/// for the words of a command.
pub(crate) fn walk<C: Commands>(text: &str, out: &mut C, cmd: &mut Vec<Item>) -> Option<Openings> {
    // Non-ASCII bytes are refused where they are read (in words, quotes
    // and expansions), not in a pass of their own.
    if text.len() > MAX_FAST_BYTES {
        return None;
    }
    cmd.clear();
    // Room for a usual command at once, not grown word by word.
    cmd.reserve(16);
    let mut b = Builder {
        out,
        cmd,
        counts: Openings::default(),
        first_in_pipeline: true,
        joiner: None,
        after_op: true,
        last_op: None,
        any: false,
    };
    tokenize(text, &mut b)?;
    b.finish()
}

/// The command being read, and where the tokenizer is in the list.
struct Builder<'o, C> {
    out: &'o mut C,
    /// The current command's words and redirects (empty between commands).
    cmd: &'o mut Vec<Item>,
    counts: Openings,
    /// Whether the next command starts a pipeline.
    first_in_pipeline: bool,
    /// How the next pipeline joins the previous one.
    joiner: Option<Op>,
    /// Whether the last token was an operator (or there was none yet).
    after_op: bool,
    last_op: Option<Op>,
    /// Whether any command was read.
    any: bool,
}

impl<C: Commands> Builder<'_, C> {
    /// A word of the current command (its name when it is the first).
    #[inline(always)]
    fn word(&mut self, a: usize, b: usize, plain: bool) {
        self.cmd.push(Item::Word(a, b, plain));
        self.after_op = false;
    }

    /// The brackets and backticks in a word.
    fn count(&mut self, shape: &Shape) {
        self.counts.openings += shape.openings;
        self.counts.backticks += shape.backticks;
    }

    /// A redirect and its target word.
    fn redirect(&mut self, fd: Option<i32>, kind: Redir, a: usize, b: usize) -> Option<()> {
        // The command name comes first (a leading redirect goes to brush).
        if self.cmd.is_empty() {
            return None;
        }
        self.cmd.push(Item::Redirect(fd, kind, a, b));
        self.after_op = false;
        Some(())
    }

    /// An operator between commands.
    fn op(&mut self, op: Op) -> Option<()> {
        // Never first, never doubled.
        if self.after_op {
            return None;
        }
        self.end_command();
        if op != Op::Pipe {
            self.first_in_pipeline = true;
            self.joiner = (op != Op::Semi).then_some(op);
        }
        self.after_op = true;
        self.last_op = Some(op);
        Some(())
    }

    /// Hands the current command (if any) to `out`.
    fn end_command(&mut self) {
        if self.cmd.is_empty() {
            return;
        }
        let pipeline = self.first_in_pipeline.then_some(self.joiner);
        self.first_in_pipeline = false;
        self.out.command(self.cmd, pipeline);
        self.cmd.clear();
        self.any = true;
    }

    fn finish(mut self) -> Option<Openings> {
        if !self.cmd.is_empty() {
            self.end_command();
        } else if self.last_op.is_some_and(|op| op != Op::Semi) {
            // Only `;` may end the text.
            return None;
        }
        self.any.then_some(self.counts)
    }
}

/// brush's AST for a fast-parsed program (the tests check it is the one
/// brush builds).
#[cfg(test)]
fn to_ast(text: &str, prog: &Program) -> ast::Program {
    // Pipelines (joiner, commands), each command its words and redirects,
    // and the number of commands each pipeline's header gives.
    let mut pipelines: Vec<(Option<Op>, Vec<&[Item]>)> = Vec::new();
    let mut counted = Vec::new();
    let mut i = 0;
    while i < prog.items.len() {
        match prog.items[i] {
            Item::Pipeline { cmds, joiner } => {
                pipelines.push((joiner, Vec::new()));
                counted.push(cmds);
                i += 1;
            }
            Item::Command { len } => {
                let last = pipelines.last_mut().expect("a command is in a pipeline");
                last.1.push(&prog.items[i + 1..i + 1 + len]);
                i += 1 + len;
            }
            Item::Word(..) | Item::Redirect(..) => unreachable!("words follow their command"),
        }
    }
    let mut lists: Vec<ast::CompoundListItem> = Vec::new();
    let mut current: Option<ast::AndOrList> = None;
    for ((joiner, cmds), counted) in pipelines.iter().zip(counted) {
        assert_eq!(
            counted,
            cmds.len(),
            "a pipeline's header counts its commands"
        );
        let seq =
            cmds.iter()
                .map(|items| {
                    let Item::Word(a, b, _) = items[0] else {
                        unreachable!("a command starts with its name")
                    };
                    let suffix: Vec<_> =
                        items[1..]
                            .iter()
                            .map(|it| match *it {
                                Item::Word(a, b, _) => {
                                    ast::CommandPrefixOrSuffixItem::Word(word(text, a, b))
                                }
                                Item::Redirect(fd, kind, a, b) => {
                                    let w = word(text, a, b);
                                    let target = if kind == Redir::DuplicateOutput {
                                        ast::IoFileRedirectTarget::Duplicate(w)
                                    } else {
                                        ast::IoFileRedirectTarget::Filename(w)
                                    };
                                    ast::CommandPrefixOrSuffixItem::IoRedirect(
                                        ast::IoRedirect::File(fd, kind.kind(), target),
                                    )
                                }
                                Item::Pipeline { .. } | Item::Command { .. } => {
                                    unreachable!("headers are not in a command")
                                }
                            })
                            .collect();
                    ast::Command::Simple(ast::SimpleCommand {
                        prefix: None,
                        word_or_name: Some(word(text, a, b)),
                        suffix: (!suffix.is_empty()).then_some(ast::CommandSuffix(suffix)),
                    })
                })
                .collect();
        let pipeline = ast::Pipeline {
            timed: None,
            bang: false,
            seq,
        };
        match joiner {
            None => {
                if let Some(l) = current.take() {
                    lists.push(ast::CompoundListItem(l, ast::SeparatorOperator::Sequence));
                }
                current = Some(ast::AndOrList {
                    first: pipeline,
                    additional: Vec::new(),
                });
            }
            Some(op) => {
                let l = current.as_mut().expect("a joined pipeline follows another");
                l.additional.push(if *op == Op::And {
                    ast::AndOr::And(pipeline)
                } else {
                    ast::AndOr::Or(pipeline)
                });
            }
        }
    }
    if let Some(l) = current {
        lists.push(ast::CompoundListItem(l, ast::SeparatorOperator::Sequence));
    }
    ast::Program {
        complete_commands: vec![ast::CompoundList(lists)],
    }
}

#[cfg(test)]
fn word(text: &str, a: usize, b: usize) -> ast::Word {
    // One line of ASCII: index = byte, line 1, column = byte + 1.
    let pos = |i: usize| {
        Arc::new(SourcePosition {
            index: i,
            line: 1,
            column: i + 1,
        })
    };
    ast::Word {
        value: text[a..b].to_string(),
        loc: Some(SourceSpan {
            start: pos(a),
            end: pos(b),
        }),
    }
}

fn tokenize<C: Commands>(text: &str, toks: &mut Builder<'_, C>) -> Option<()> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // Most words: plain bytes up to a blank, a `|`, `&` or `;`, or the
        // end. Read here without [`word_end`]'s bookkeeping; any other word
        // is read again below.
        if PLAIN[usize::from(b[i])] {
            let mut end = i + 1;
            while end < b.len() && PLAIN[usize::from(b[end])] {
                end += 1;
            }
            if b.get(end)
                .is_none_or(|&c| matches!(c, b' ' | b'\t' | b'|' | b'&' | b';'))
            {
                if is_reserved(&b[i..end]) {
                    return None;
                }
                toks.word(i, end, true);
                i = end + usize::from(b.get(end) == Some(&b' '));
                continue;
            }
        }
        match b[i] {
            b' ' | b'\t' => i += 1,
            b'|' => {
                if b.get(i + 1) == Some(&b'|') {
                    toks.op(Op::Or)?;
                    i += 2;
                } else if b.get(i + 1) == Some(&b'&') {
                    return None;
                } else {
                    toks.op(Op::Pipe)?;
                    i += 1;
                }
            }
            b'&' => {
                if b.get(i + 1) != Some(&b'&') {
                    return None;
                }
                toks.op(Op::And)?;
                i += 2;
            }
            b';' => {
                if b.get(i + 1) == Some(&b';') {
                    return None;
                }
                toks.op(Op::Semi)?;
                i += 1;
            }
            b'>' | b'<' => i = redirect(b, i, None, toks)?,
            _ => {
                let (end, shape) = word_end(b, i)?;
                toks.count(&shape);
                // Bytes: the text is ASCII, and a `str` slice would check
                // both ends for character boundaries.
                let w = &b[i..end];
                if end < b.len() && matches!(b[end], b'>' | b'<') {
                    // `2>file`: an fd number; any other word touching a
                    // redirect goes to brush.
                    let fd: i32 = w
                        .iter()
                        .all(|c| c.is_ascii_digit())
                        .then(|| text[i..end].parse().ok())??;
                    i = redirect(b, end, Some(fd), toks)?;
                    continue;
                }
                if shape.assigns || is_reserved(w) {
                    return None;
                }
                toks.word(i, end, shape.plain);
                // The blank that usually follows, without another dispatch.
                i = end + usize::from(b.get(end) == Some(&b' '));
            }
        }
    }
    Some(())
}

/// A redirect operator at `i` and its target word, which must follow
/// (after blanks) and touch no other redirect; returns the target's end.
/// For `>&`, the target must be a plain number.
fn redirect<C: Commands>(
    b: &[u8],
    i: usize,
    fd: Option<i32>,
    toks: &mut Builder<'_, C>,
) -> Option<usize> {
    use Redir as K;
    let (kind, len) = match (b[i], b.get(i + 1)) {
        (b'>', Some(b'>')) => (K::Append, 2),
        (b'>', Some(b'&')) => (K::DuplicateOutput, 2),
        (b'>', Some(b'|' | b'(')) | (b'<', Some(b'<' | b'>' | b'&' | b'(')) => return None,
        (b'>', _) => (K::Write, 1),
        (b'<', _) => (K::Read, 1),
        _ => return None,
    };
    let next = i + len;
    if matches!(b.get(next), Some(b'>' | b'<' | b'&' | b'|')) {
        return None;
    }
    if kind == K::DuplicateOutput {
        // `>&2`, `2>&1` with the number right after: anything else to brush.
        let end = (next..b.len())
            .find(|&j| !b[j].is_ascii_digit())
            .unwrap_or(b.len());
        if end == next || !matches!(b.get(end), None | Some(b' ' | b'\t' | b';' | b'|')) {
            return None;
        }
    }
    let mut j = next;
    while j < b.len() && matches!(b[j], b' ' | b'\t') {
        j += 1;
    }
    if j == b.len() || matches!(b[j], b'|' | b'&' | b';' | b'>' | b'<') {
        return None;
    }
    let (end, shape) = word_end(b, j)?;
    toks.count(&shape);
    if end < b.len() && matches!(b[end], b'>' | b'<') || shape.assigns || is_reserved(&b[j..end]) {
        return None;
    }
    toks.redirect(fd, kind, j, end)?;
    Some(end)
}

/// Bytes that stand for themselves in a word: printable ASCII other than
/// blanks, operators, quotes, `$`, `=` and `[` (noted by [`word_end`]) and
/// what [`word_end`] defers to brush.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0x21;
    while c < 0x7f {
        t[c] = !matches!(
            c as u8,
            b'|' | b'&'
                | b';'
                | b'>'
                | b'<'
                | b'\''
                | b'"'
                | b'$'
                | b'\\'
                | b'`'
                | b'#'
                | b'('
                | b')'
                | b'{'
                | b'}'
                | b'!'
                | b'='
                | b'['
        );
        c += 1;
    }
    t
};

/// What [`word_end`] saw in a word.
struct Shape {
    /// No quotes and no `$`: the word's value is its text.
    plain: bool,
    /// An `=` anywhere, quoted or not (brush reads such words as possible
    /// assignments, so they go to brush).
    assigns: bool,
    /// `(`, `{` and `[` bytes, and backticks, quoted or not.
    openings: usize,
    backticks: usize,
}

/// The end of the word starting at `i`, or `None` for anything outside the
/// subset. Inlined into its two callers, the tokenizer's hot loop.
#[inline(always)]
fn word_end(b: &[u8], mut i: usize) -> Option<(usize, Shape)> {
    let mut shape = Shape {
        plain: true,
        assigns: false,
        openings: 0,
        backticks: 0,
    };
    while i < b.len() {
        // Runs of ordinary bytes first, a table lookup each.
        while i < b.len() && PLAIN[usize::from(b[i])] {
            i += 1;
        }
        let Some(&c) = b.get(i) else { break };
        match c {
            b' ' | b'\t' | b'|' | b'&' | b';' | b'>' | b'<' => break,
            b'=' => {
                shape.assigns = true;
                i += 1;
            }
            b'\'' => {
                shape.plain = false;
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'\'' => break,
                        b'=' => shape.assigns = true,
                        b'(' | b'{' | b'[' => shape.openings += 1,
                        b'`' => shape.backticks += 1,
                        0x80.. => return None,
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                shape.plain = false;
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'"' => break,
                        b'$' => {
                            shape.openings += dollar_opens(b, i);
                            i = dollar(b, i)?;
                        }
                        b'(' | b'{' | b'[' => {
                            shape.openings += 1;
                            i += 1;
                        }
                        b'\\' | b'`' | b'!' | 0x80.. => return None,
                        b'=' => {
                            shape.assigns = true;
                            i += 1;
                        }
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            b'$' => {
                shape.plain = false;
                shape.openings += dollar_opens(b, i);
                i = dollar(b, i)?;
            }
            b'[' => {
                shape.openings += 1;
                i += 1;
            }
            b'\\' | b'`' | b'#' | b'(' | b')' | b'{' | b'}' | b'!' | b'\n' | b'\r' => {
                return None;
            }
            c if c.is_ascii_graphic() => i += 1,
            _ => return None,
        }
    }
    Some((i, shape))
}

/// Bytes of the plain words [`dollar`] reads inside `$(…)`: ASCII letters,
/// digits and `+-%./_:,@`.
const SUBST_WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'+' | b'-' | b'%' | b'.' | b'/' | b'_' | b':' | b',' | b'@'
            );
        c += 1;
    }
    t
};

/// The opening bytes of the `$` expansion at `i` that [`dollar`] reads:
/// one for `${` and `$(` (inside, it reads no brackets), none for `$NAME`.
fn dollar_opens(b: &[u8], i: usize) -> usize {
    usize::from(matches!(b.get(i + 1), Some(b'(' | b'{')))
}

/// `$NAME`, `${NAME}` or `$(plain words)` at `i`; returns the end.
pub(crate) fn dollar(b: &[u8], i: usize) -> Option<usize> {
    let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    match *b.get(i + 1)? {
        c if c.is_ascii_alphabetic() || c == b'_' => {
            let mut j = i + 1;
            while j < b.len() && is_name(b[j]) {
                j += 1;
            }
            Some(j)
        }
        b'{' => {
            let mut j = i + 2;
            if !b
                .get(j)
                .is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_')
            {
                return None;
            }
            while j < b.len() && is_name(b[j]) {
                j += 1;
            }
            (b.get(j) == Some(&b'}')).then_some(j + 1)
        }
        b'(' => {
            // Only plain words and spaces inside: no quotes, no nesting.
            let mut j = i + 2;
            if b.get(j) == Some(&b'(') {
                return None;
            }
            while j < b.len() {
                match b[j] {
                    b')' => return (j > i + 2).then_some(j + 1),
                    b' ' | b'\t' => {}
                    c if SUBST_WORD[usize::from(c)] => {}
                    _ => return None,
                }
                j += 1;
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brush_parser::{Parser, ParserOptions};
    use proptest::prelude::*;

    fn brush(text: &str) -> Option<ast::Program> {
        Parser::new(text.as_bytes(), &ParserOptions::default())
            .parse_program()
            .ok()
    }

    fn parses_like_brush(text: &str) {
        if let Some(p) = parse(text) {
            let b = text.as_bytes();
            let openings = b.iter().filter(|c| matches!(c, b'(' | b'{' | b'[')).count();
            let backticks = b.iter().filter(|&&c| c == b'`').count();
            assert_eq!((p.openings, p.backticks), (openings, backticks), "{text:?}");
        }
        if let Some(fast) = parse(text).map(|p| to_ast(text, &p)) {
            let full = brush(text);
            assert_eq!(format!("{:?}", Some(fast)), format!("{full:?}"), "{text:?}");
        }
    }

    #[test]
    fn reserved_words_pass_the_screen() {
        for w in RESERVED {
            assert!(is_reserved(w), "{}", String::from_utf8_lossy(w));
            let mut longer = w.to_vec();
            longer.push(b'x');
            assert!(!is_reserved(&longer));
        }
        for w in ["", "cd", "sort", "date", "fin", "iff", "[", "]"] {
            assert!(!is_reserved(w.as_bytes()), "{w}");
        }
    }

    #[test]
    fn plain_command_lists_take_the_fast_path() {
        for t in [
            "cd /srv/app && git fetch origin && git status --short",
            "grep -rn 'TODO' src/ | sort | uniq -c | head -n 20",
            "tar czf /tmp/build-$(date +%s).tgz target/release/app",
            "echo \"deploying $VERSION\" >> /tmp/deploy.log",
            "docker ps --format '{{.Names}}' | xargs -n1 docker inspect",
            "make 2>&1 > /tmp/log; ls",
            "a || b",
            "a; b && c | d || e;",
            "a > f | b < g; c 2> h",
        ] {
            assert!(parse(t).is_some(), "{t}");
            parses_like_brush(t);
        }
    }

    #[test]
    fn defers_on_any_non_ascii_byte() {
        for t in [
            "grep -rn 'TODO' src/ | sort | uniq -c | head -n 20",
            "tar czf /tmp/build-$(date +%s).tgz target/release/app",
            "echo \"deploying $VERSION ${X}\" >> /tmp/deploy.log; ls 2>&1",
        ] {
            assert!(parse(t).is_some(), "{t}");
            for i in 0..=t.len() {
                for c in ["é", "\u{200b}", "ｘ"] {
                    let u = format!("{}{c}{}", &t[..i], &t[i..]);
                    assert!(parse(&u).is_none(), "{u:?}");
                }
            }
        }
    }

    #[test]
    fn defers_on_what_it_does_not_read() {
        for t in [
            "a\nb",
            "X=1 cmd",
            "cmd a=b",
            "if true; then ls; fi",
            "ls # c",
            "echo \\x",
            "echo `id`",
            "(ls)",
            "{ ls; }",
            "ls &",
            "ls |& cat",
            "! ls",
            "cat <<EOF",
            "a &> f",
            "a >| f",
            "a 2>&-",
            "echo $((1+2))",
            "echo $(ls | wc)",
            "echo ${x:-y}",
            "echo $1",
            "; ls",
            "ls ;; x",
            "ls &&",
            "> f ls",
            "| ls",
            "ls | | wc",
            "ls |",
            "ls || ",
            "a && && b",
            "a ; ; b",
            "a > > f",
            "a >",
            "a > | b",
            "a 2>",
            "   ",
            ";",
            "echo 'unterminated",
            "echo ｘ",
            "echo 'ｘ'",
            "echo \"café\"",
            "echo \"a $X é\"",
            "ls > 'é'",
            "",
        ] {
            assert!(parse(t).is_none(), "{t:?}");
        }
    }

    #[test]
    fn corpus_shell_lines_parse_like_brush() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for entry in std::fs::read_dir(&dir).expect("corpus directory") {
            let body = std::fs::read_to_string(entry.expect("entry").path()).expect("file");
            for line in body.lines() {
                if let Some((_, text)) = line.split_once(" :: ") {
                    parses_like_brush(&text.replace("{NL}", "\n").replace("{TAB}", "\t"));
                }
            }
        }
    }

    const FRAGMENTS: &[&str] = &[
        "ls",
        "cat",
        "git",
        "status",
        "-la",
        "--short",
        "/tmp/x",
        "./a.sh",
        "~/.ssh",
        "*.log",
        "'a b'",
        "'{{.N}}'",
        "\"x\"",
        "\"a $V b\"",
        "\"${H}\"",
        "$V",
        "${H}x",
        "$(date +%s)",
        "a$(id)b",
        "|",
        "||",
        "&&",
        ";",
        ">",
        ">>",
        "<",
        "2>",
        "2>&1",
        ">&2",
        "1>&2",
        "&",
        "=",
        "a=b",
        "if",
        "then",
        "fi",
        "for",
        "in",
        "do",
        "done",
        "time",
        "!",
        "#",
        "(",
        ")",
        "{",
        "}",
        "\\",
        "`",
        "'",
        "\"",
        "$",
        "$(",
        "2",
        "10",
        "-",
        "--",
        "x=1",
        "[[",
        "]]",
        "e\"x\"'y'",
        "'",
        "\t",
        "<<",
        "<>",
        ">|",
        "&>",
        "$1",
        "$?",
        "${#x}",
        "$((1))",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        #[test]
        fn generated_command_lines_parse_like_brush(
            words in prop::collection::vec(prop::sample::select(FRAGMENTS), 1..16),
            glue in prop::collection::vec(prop::sample::select(&[" ", " ", " ", ""][..]), 16),
        ) {
            let mut text = String::new();
            for (w, g) in words.iter().zip(&glue) {
                text.push_str(w);
                text.push_str(g);
            }
            parses_like_brush(&text);
            parses_like_brush(text.trim());
        }

        /// Only fragments the fast parser reads, so long lines reach it.
        #[test]
        fn generated_plain_command_lines_parse_like_brush(
            words in prop::collection::vec(prop::sample::select(&FRAGMENTS[..30]), 1..24),
            glue in prop::collection::vec(prop::sample::select(&[" ", " ", "  ", "\t", ""][..]), 24),
        ) {
            let mut text = String::new();
            for (w, g) in words.iter().zip(&glue) {
                text.push_str(w);
                text.push_str(g);
            }
            parses_like_brush(&text);
        }
    }
}
