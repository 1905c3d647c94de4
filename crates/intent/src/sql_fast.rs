//! A fast path for plain SQL batches: a small scanner and recogniser for a
//! strict subset of PostgreSQL (`SELECT` / `INSERT` / `UPDATE … WHERE` /
//! `DELETE … WHERE` over plain names, literals, arithmetic, comparisons,
//! `IN`, joins and simple function calls).
//!
//! It exists because sqlparser spends most of a classification speculatively
//! parsing data types and cloning tokens. It must give exactly what the full
//! path ([`crate::sql::analyze`]) gives, so it is deliberately narrow and
//! returns `None` — defer to sqlparser — on anything outside the subset:
//! comments, quoted identifiers, escapes, non-ASCII text, any keyword it does
//! not expect (a keyword is only accepted as a name when it is on
//! [`NAME_KEYWORDS`]), any name the classifier judges by name (catalogs,
//! secret columns, dangerous functions), `OR` / `NOT` / repeated names in the
//! `WHERE` of a write, and writes without `WHERE`. Within the subset every
//! `SELECT` is read-only and every write is `write`; `tests/fast_path.rs`
//! checks the agreement with the full path on the corpus and on generated
//! batches.

use sqlparser::keywords::ALL_KEYWORDS;

use crate::sql::{
    CREDENTIAL_CATALOGS, EXEC_FUNCTIONS, EXFIL_FUNCTIONS, PRIV_PROCEDURES, READ_FUNCTIONS,
    SECRET_COLUMNS,
};

/// One statement the fast path understood: where it is, and whether it writes.
pub(crate) struct FastStatement {
    pub start: usize,
    pub end: usize,
    pub write: bool,
}

/// Keywords that sqlparser (PostgreSQL dialect) reads as plain names in every
/// position the recogniser accepts a name (column, table, function, explicit
/// alias; never as an implicit alias).
const NAME_KEYWORDS: &[&str] = &[
    "ACTION", "AT", "AVG", "COALESCE", "COUNT", "ID", "LOWER", "MAX", "MIN", "NAME", "STATUS",
    "SUM", "UPPER",
];

/// Longest text the fast path reads; longer batches take the full path.
const MAX_FAST_BYTES: usize = 16 * 1024;
/// Deepest parenthesis nesting the recogniser follows.
const MAX_FAST_NESTING: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum T {
    Word,
    Num,
    Str,
    LParen,
    RParen,
    Comma,
    Dot,
    Semi,
    Star,
    Plus,
    Minus,
    Slash,
    Percent,
    Eq,
    Lt,
    Gt,
    LtEq,
    GtEq,
    NotEq,
}

/// The keywords the grammar reads, as they are spelt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(clippy::upper_case_acronyms)]
enum Kw {
    AND,
    AS,
    ASC,
    BY,
    CROSS,
    DELETE,
    DESC,
    DISTINCT,
    FALSE,
    FROM,
    FULL,
    GROUP,
    HAVING,
    IN,
    INNER,
    INSERT,
    INTERVAL,
    INTO,
    JOIN,
    LEFT,
    LIMIT,
    NOT,
    NULL,
    OFFSET,
    ON,
    OR,
    ORDER,
    OUTER,
    RIGHT,
    SELECT,
    SET,
    TRUE,
    UPDATE,
    VALUES,
    WHERE,
}

const GRAMMAR_KEYWORDS: &[(&str, Kw)] = &[
    ("AND", Kw::AND),
    ("AS", Kw::AS),
    ("ASC", Kw::ASC),
    ("BY", Kw::BY),
    ("CROSS", Kw::CROSS),
    ("DELETE", Kw::DELETE),
    ("DESC", Kw::DESC),
    ("DISTINCT", Kw::DISTINCT),
    ("FALSE", Kw::FALSE),
    ("FROM", Kw::FROM),
    ("FULL", Kw::FULL),
    ("GROUP", Kw::GROUP),
    ("HAVING", Kw::HAVING),
    ("IN", Kw::IN),
    ("INNER", Kw::INNER),
    ("INSERT", Kw::INSERT),
    ("INTERVAL", Kw::INTERVAL),
    ("INTO", Kw::INTO),
    ("JOIN", Kw::JOIN),
    ("LEFT", Kw::LEFT),
    ("LIMIT", Kw::LIMIT),
    ("NOT", Kw::NOT),
    ("NULL", Kw::NULL),
    ("OFFSET", Kw::OFFSET),
    ("ON", Kw::ON),
    ("OR", Kw::OR),
    ("ORDER", Kw::ORDER),
    ("OUTER", Kw::OUTER),
    ("RIGHT", Kw::RIGHT),
    ("SELECT", Kw::SELECT),
    ("SET", Kw::SET),
    ("TRUE", Kw::TRUE),
    ("UPDATE", Kw::UPDATE),
    ("VALUES", Kw::VALUES),
    ("WHERE", Kw::WHERE),
];

#[derive(Clone, Copy)]
struct Tok {
    t: T,
    start: u32,
    end: u32,
    /// For words: the grammar keyword it is, if any.
    kw: Option<Kw>,
    /// For words: usable as a name (see [`P::name`]).
    name_ok: bool,
    /// For words: usable as an implicit alias (no keyword at all).
    alias_ok: bool,
    /// For words: any sqlparser keyword.
    keyword: bool,
}

impl Tok {
    fn new(t: T, start: usize, end: usize) -> Tok {
        Tok {
            t,
            start: start as u32,
            end: end as u32,
            kw: None,
            name_ok: false,
            alias_ok: false,
            keyword: false,
        }
    }

    /// A word token; `hash` is [`fnv_upper`] of `word`.
    fn word(word: &str, hash: u64, start: usize, end: usize) -> Tok {
        debug_assert_eq!(hash, fnv_upper(word.as_bytes()));
        let keyword = KEYWORDS.contains(word, hash);
        let sensitive = is_sensitive_hashed(word, hash);
        let (kw, name_keyword) = if keyword {
            match GRAMMAR.find(word, hash) {
                Some((0, i)) => (Some(GRAMMAR_KEYWORDS[i].1), false),
                Some(_) => (None, true),
                None => (None, false),
            }
        } else {
            (None, false)
        };
        Tok {
            kw,
            name_ok: !sensitive && (!keyword || name_keyword),
            alias_ok: !sensitive && !keyword,
            keyword,
            ..Tok::new(T::Word, start, end)
        }
    }
}

/// Classifies `text` when all of it is in the subset; `None` defers.
pub(crate) fn classify(text: &str) -> Option<Vec<FastStatement>> {
    if text.len() > MAX_FAST_BYTES {
        return None;
    }
    let toks = tokenize(text)?;
    let mut p = P {
        src: text,
        toks,
        i: 0,
        depth: 0,
    };
    let mut out = Vec::new();
    loop {
        let first = p.i;
        let write = p.statement()?;
        let last = p.toks.get(p.i.checked_sub(1)?)?;
        out.push(FastStatement {
            start: p.toks[first].start as usize,
            end: last.end as usize,
            write,
        });
        match p.peek() {
            None => break,
            Some(T::Semi) => {
                p.i += 1;
                if p.peek().is_none() {
                    break;
                }
            }
            Some(_) => return None,
        }
    }
    Some(out)
}

fn tokenize(text: &str) -> Option<Vec<Tok>> {
    let b = text.as_bytes();
    let mut toks = Vec::with_capacity(b.len() / 3);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let t = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                // The word's bytes, hashed as they are read ([`fnv_upper`]).
                let mut hash = FNV_OFFSET;
                while i < b.len() && WORD_BYTE[usize::from(b[i])] {
                    hash = fnv_step(hash, b[i]);
                    i += 1;
                }
                // `E'…'`, `x'…'`, `DATE '…'`-like forms and `$` in names defer.
                if i < b.len() && matches!(b[i], b'\'' | b'$' | b'"' | b'&') {
                    return None;
                }
                toks.push(Tok::word(&text[start..i], hash, start, i));
                continue;
            }
            b'0'..=b'9' => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.')) {
                    return None;
                }
                toks.push(Tok::new(T::Num, start, i));
                continue;
            }
            b'\'' => {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    if b[i] == b'\\' || !(b[i] == b' ' || b[i].is_ascii_graphic()) {
                        return None;
                    }
                    i += 1;
                }
                // Unterminated, or `''` (an escaped quote): defer.
                if i >= b.len() || b.get(i + 1) == Some(&b'\'') {
                    return None;
                }
                i += 1;
                toks.push(Tok::new(T::Str, start, i));
                continue;
            }
            b'(' => T::LParen,
            b')' => T::RParen,
            b',' => T::Comma,
            b'.' => T::Dot,
            b';' => T::Semi,
            b'*' => T::Star,
            b'+' => T::Plus,
            b'-' => T::Minus,
            b'/' => T::Slash,
            b'%' => T::Percent,
            b'=' => T::Eq,
            b'<' => match b.get(i + 1) {
                Some(b'=') => {
                    i += 1;
                    T::LtEq
                }
                Some(b'>') => {
                    i += 1;
                    T::NotEq
                }
                _ => T::Lt,
            },
            b'>' => match b.get(i + 1) {
                Some(b'=') => {
                    i += 1;
                    T::GtEq
                }
                _ => T::Gt,
            },
            b'!' if b.get(i + 1) == Some(&b'=') => {
                i += 1;
                T::NotEq
            }
            _ => return None,
        };
        i += 1;
        // Operators run together (`--`, `/*`, `<=>`, `->`, `*/`, `||`...) defer.
        if t != T::LParen
            && t != T::RParen
            && i < b.len()
            && matches!(
                b[i],
                b'-' | b'+'
                    | b'*'
                    | b'/'
                    | b'%'
                    | b'<'
                    | b'>'
                    | b'='
                    | b'!'
                    | b'|'
                    | b'&'
                    | b'^'
                    | b'#'
                    | b'@'
                    | b'~'
                    | b'?'
                    | b':'
            )
        {
            return None;
        }
        if t == T::Dot && i < b.len() && b[i].is_ascii_digit() {
            return None;
        }
        toks.push(Tok::new(t, start, i));
    }
    Some(toks)
}

/// A set of ASCII words built at compile time: open addressing over an FNV-1a
/// hash of the upper-cased word, slots holding `list << 12 | index` + 1.
struct WordSet<const N: usize> {
    lists: &'static [&'static [&'static str]],
    slots: [u16; N],
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// One byte of [`fnv_upper`].
const fn fnv_step(h: u64, b: u8) -> u64 {
    (h ^ b.to_ascii_uppercase() as u64).wrapping_mul(0x0100_0000_01b3)
}

const fn fnv_upper(word: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < word.len() {
        h = fnv_step(h, word[i]);
        i += 1;
    }
    h
}

/// The bytes of a word after its first: ASCII letters, digits and `_`.
static WORD_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_';
        b += 1;
    }
    t
};

impl<const N: usize> WordSet<N> {
    const fn new(lists: &'static [&'static [&'static str]]) -> Self {
        let mut slots = [0u16; N];
        let mut l = 0;
        while l < lists.len() {
            let mut i = 0;
            while i < lists[l].len() {
                let mut at = (fnv_upper(lists[l][i].as_bytes()) as usize) & (N - 1);
                while slots[at] != 0 {
                    at = (at + 1) & (N - 1);
                }
                slots[at] = ((l << 12) | i) as u16 + 1;
                i += 1;
            }
            l += 1;
        }
        WordSet { lists, slots }
    }

    /// Where `word` (whose [`fnv_upper`] is `hash`) is in the set, ignoring
    /// ASCII case: its list and index.
    fn find(&self, word: &str, hash: u64) -> Option<(usize, usize)> {
        let mut at = (hash as usize) & (N - 1);
        loop {
            let slot = self.slots[at] as usize;
            if slot == 0 {
                return None;
            }
            let (l, i) = ((slot - 1) >> 12, (slot - 1) & 0xfff);
            if self.lists[l][i].eq_ignore_ascii_case(word) {
                return Some((l, i));
            }
            at = (at + 1) & (N - 1);
        }
    }

    fn contains(&self, word: &str, hash: u64) -> bool {
        self.find(word, hash).is_some()
    }
}

const GRAMMAR_WORDS: [&str; GRAMMAR_KEYWORDS.len()] = {
    let mut words = [""; GRAMMAR_KEYWORDS.len()];
    let mut i = 0;
    while i < words.len() {
        words[i] = GRAMMAR_KEYWORDS[i].0;
        i += 1;
    }
    words
};

/// The grammar's keywords (list 0) and [`NAME_KEYWORDS`] (list 1).
static GRAMMAR: WordSet<256> = WordSet::new(&[&GRAMMAR_WORDS, NAME_KEYWORDS]);

/// Every sqlparser keyword (any dialect).
static KEYWORDS: WordSet<4096> = WordSet::new(&[ALL_KEYWORDS]);

/// Names the full path judges by name (the lists in `sql.rs`, and the parts
/// of `mysql.user`, `sys.sql_logins`, `query_to_xml`): the fast path then
/// defers. Checked on every part of every name, so it covers what `sql.rs`
/// checks on last parts and on whole qualified names. `dblink…` is checked
/// by prefix in [`is_sensitive_hashed`].
static SENSITIVE: WordSet<512> = WordSet::new(&[
    EXEC_FUNCTIONS,
    READ_FUNCTIONS,
    EXFIL_FUNCTIONS,
    PRIV_PROCEDURES,
    CREDENTIAL_CATALOGS,
    SECRET_COLUMNS,
    &["user", "sql_logins", "query_to_xml"],
]);

#[cfg(test)]
fn is_keyword(word: &str) -> bool {
    KEYWORDS.contains(word, fnv_upper(word.as_bytes()))
}

#[cfg(test)]
fn is_sensitive(word: &str) -> bool {
    is_sensitive_hashed(word, fnv_upper(word.as_bytes()))
}

fn is_sensitive_hashed(word: &str, hash: u64) -> bool {
    SENSITIVE.contains(word, hash)
        || word.len() >= 6 && word.as_bytes()[..6].eq_ignore_ascii_case(b"dblink")
}

struct P<'t> {
    src: &'t str,
    toks: Vec<Tok>,
    i: usize,
    depth: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<T> {
        self.toks.get(self.i).map(|t| t.t)
    }

    fn peek_at(&self, k: usize) -> Option<T> {
        self.toks.get(self.i + k).map(|t| t.t)
    }

    fn text(&self, i: usize) -> &str {
        let t = self.toks[i];
        &self.src[t.start as usize..t.end as usize]
    }

    /// Whether the token at `i + k` is the keyword `kw`.
    fn is_kw_at(&self, k: usize, kw: Kw) -> bool {
        self.toks.get(self.i + k).is_some_and(|t| t.kw == Some(kw))
    }

    fn is_kw(&self, kw: Kw) -> bool {
        self.is_kw_at(0, kw)
    }

    fn eat_kw(&mut self, kw: Kw) -> bool {
        let yes = self.is_kw(kw);
        if yes {
            self.i += 1;
        }
        yes
    }

    fn expect_kw(&mut self, kw: Kw) -> Option<()> {
        self.eat_kw(kw).then_some(())
    }

    fn eat(&mut self, t: T) -> bool {
        let yes = self.peek() == Some(t);
        if yes {
            self.i += 1;
        }
        yes
    }

    fn expect(&mut self, t: T) -> Option<()> {
        self.eat(t).then_some(())
    }

    /// A plain name: not a keyword (unless on [`NAME_KEYWORDS`]) and not one
    /// the classifier judges by name.
    fn name(&mut self) -> Option<()> {
        let t = self.toks.get(self.i)?;
        if t.t != T::Word || !t.name_ok {
            return None;
        }
        self.i += 1;
        Some(())
    }

    /// A name that is no keyword at all (implicit aliases).
    fn plain_word_next(&self) -> bool {
        self.toks
            .get(self.i)
            .is_some_and(|t| t.t == T::Word && t.alias_ok)
    }

    /// `[AS] alias`, where an alias without `AS` must be no keyword.
    fn opt_alias(&mut self) -> Option<()> {
        if self.eat_kw(Kw::AS) {
            return self.name();
        }
        if self.plain_word_next() {
            self.i += 1;
        }
        Some(())
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_FAST_NESTING).then_some(())
    }

    /// One statement; returns whether it writes.
    fn statement(&mut self) -> Option<bool> {
        if self.is_kw(Kw::SELECT) {
            self.query()?;
            Some(false)
        } else if self.eat_kw(Kw::INSERT) {
            self.expect_kw(Kw::INTO)?;
            self.object_name()?;
            if self.peek() == Some(T::LParen) && !self.is_kw_at(1, Kw::SELECT) {
                self.i += 1;
                self.name()?;
                while self.eat(T::Comma) {
                    self.name()?;
                }
                self.expect(T::RParen)?;
            }
            if self.eat_kw(Kw::VALUES) {
                loop {
                    self.expect(T::LParen)?;
                    self.expr_list()?;
                    self.expect(T::RParen)?;
                    if !self.eat(T::Comma) {
                        break;
                    }
                }
            } else if self.is_kw(Kw::SELECT) {
                self.query()?;
            } else {
                return None;
            }
            Some(true)
        } else if self.eat_kw(Kw::UPDATE) {
            self.object_name()?;
            self.opt_table_alias()?;
            self.expect_kw(Kw::SET)?;
            loop {
                self.name()?;
                self.expect(T::Eq)?;
                self.expr()?;
                if !self.eat(T::Comma) {
                    break;
                }
            }
            self.expect_kw(Kw::WHERE)?;
            self.write_filter()?;
            Some(true)
        } else if self.eat_kw(Kw::DELETE) {
            self.expect_kw(Kw::FROM)?;
            self.object_name()?;
            self.opt_table_alias()?;
            self.expect_kw(Kw::WHERE)?;
            self.write_filter()?;
            Some(true)
        } else {
            None
        }
    }

    /// `[AS] alias` after the target of UPDATE / DELETE.
    fn opt_table_alias(&mut self) -> Option<()> {
        if self.is_kw(Kw::AS) {
            self.i += 1;
            return self.name();
        }
        if self.plain_word_next() {
            self.i += 1;
        }
        Some(())
    }

    /// The WHERE of a write: conjuncts `name op expr` / `name IN (…)` where
    /// the right side is not the same name, so the full path's "always true"
    /// test cannot hold (it needs `x = x`, constants, `OR`, `NOT`, `LIKE '%'`).
    fn write_filter(&mut self) -> Option<()> {
        loop {
            let left = self.i;
            self.column_ref()?;
            let left_end = self.i;
            match self.peek()? {
                T::Eq | T::Lt | T::Gt | T::LtEq | T::GtEq | T::NotEq => {
                    self.i += 1;
                    let right = self.i;
                    self.arith()?;
                    if self.same_tokens(left, left_end, right, self.i) {
                        return None;
                    }
                }
                T::Word if self.is_kw(Kw::IN) => {
                    self.i += 1;
                    self.in_rhs()?;
                }
                _ => return None,
            }
            if !self.eat_kw(Kw::AND) {
                break;
            }
        }
        if self.is_kw(Kw::OR) || self.is_kw(Kw::NOT) {
            return None;
        }
        Some(())
    }

    fn same_tokens(&self, a: usize, a_end: usize, b: usize, b_end: usize) -> bool {
        a_end - a == b_end - b && (0..a_end - a).all(|k| self.text(a + k) == self.text(b + k))
    }

    fn object_name(&mut self) -> Option<()> {
        self.name()?;
        if self.eat(T::Dot) {
            self.name()?;
        }
        Some(())
    }

    fn query(&mut self) -> Option<()> {
        self.enter()?;
        self.expect_kw(Kw::SELECT)?;
        self.eat_kw(Kw::DISTINCT);
        loop {
            self.select_item()?;
            if !self.eat(T::Comma) {
                break;
            }
        }
        if self.eat_kw(Kw::FROM) {
            loop {
                self.table_ref()?;
                if !self.eat(T::Comma) {
                    break;
                }
            }
        }
        if self.eat_kw(Kw::WHERE) {
            self.expr()?;
        }
        if self.is_kw(Kw::GROUP) {
            self.i += 1;
            self.expect_kw(Kw::BY)?;
            self.expr_list()?;
        }
        if self.eat_kw(Kw::HAVING) {
            self.expr()?;
        }
        if self.is_kw(Kw::ORDER) {
            self.i += 1;
            self.expect_kw(Kw::BY)?;
            loop {
                self.expr()?;
                if !self.eat_kw(Kw::ASC) {
                    self.eat_kw(Kw::DESC);
                }
                if !self.eat(T::Comma) {
                    break;
                }
            }
        }
        if self.eat_kw(Kw::LIMIT) {
            self.expect(T::Num)?;
        }
        if self.eat_kw(Kw::OFFSET) {
            self.expect(T::Num)?;
        }
        self.depth -= 1;
        Some(())
    }

    fn select_item(&mut self) -> Option<()> {
        if self.eat(T::Star) {
            return Some(());
        }
        if self.peek() == Some(T::Word)
            && self.peek_at(1) == Some(T::Dot)
            && self.peek_at(2) == Some(T::Star)
        {
            self.name()?;
            self.i += 2;
            return Some(());
        }
        self.expr()?;
        self.opt_alias()
    }

    fn table_ref(&mut self) -> Option<()> {
        self.table_factor()?;
        loop {
            let cross = if self.is_kw(Kw::JOIN) {
                self.i += 1;
                false
            } else if self.is_kw(Kw::INNER) && self.is_kw_at(1, Kw::JOIN) {
                self.i += 2;
                false
            } else if (self.is_kw(Kw::LEFT) || self.is_kw(Kw::RIGHT) || self.is_kw(Kw::FULL))
                && (self.is_kw_at(1, Kw::JOIN)
                    || self.is_kw_at(1, Kw::OUTER) && self.is_kw_at(2, Kw::JOIN))
            {
                self.i += if self.is_kw_at(1, Kw::OUTER) { 3 } else { 2 };
                false
            } else if self.is_kw(Kw::CROSS) && self.is_kw_at(1, Kw::JOIN) {
                self.i += 2;
                true
            } else {
                return Some(());
            };
            self.table_factor()?;
            if !cross {
                self.expect_kw(Kw::ON)?;
                self.expr()?;
            }
        }
    }

    fn table_factor(&mut self) -> Option<()> {
        self.object_name()?;
        if self.peek() == Some(T::LParen) {
            // Table functions defer.
            return None;
        }
        self.opt_alias()
    }

    fn expr_list(&mut self) -> Option<()> {
        loop {
            self.expr()?;
            if !self.eat(T::Comma) {
                return Some(());
            }
        }
    }

    /// `conj (OR conj)*`.
    fn expr(&mut self) -> Option<()> {
        self.enter()?;
        loop {
            self.comparison()?;
            if !(self.eat_kw(Kw::AND) || self.eat_kw(Kw::OR)) {
                break;
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// `arith [op arith | IN (…)]`, never chained.
    fn comparison(&mut self) -> Option<()> {
        self.arith()?;
        match self.peek() {
            Some(T::Eq | T::Lt | T::Gt | T::LtEq | T::GtEq | T::NotEq) => {
                self.i += 1;
                self.arith()?;
            }
            Some(T::Word) if self.is_kw(Kw::IN) => {
                self.i += 1;
                self.in_rhs()?;
            }
            _ => return Some(()),
        }
        match self.peek() {
            Some(T::Eq | T::Lt | T::Gt | T::LtEq | T::GtEq | T::NotEq) => None,
            Some(T::Word) if self.is_kw(Kw::IN) => None,
            _ => Some(()),
        }
    }

    /// `(SELECT …)` or `(literal, …)`.
    fn in_rhs(&mut self) -> Option<()> {
        self.expect(T::LParen)?;
        if self.is_kw(Kw::SELECT) {
            self.query()?;
        } else {
            loop {
                self.expect_one_of(&[T::Num, T::Str])?;
                if !self.eat(T::Comma) {
                    break;
                }
            }
        }
        self.expect(T::RParen)
    }

    fn expect_one_of(&mut self, ts: &[T]) -> Option<()> {
        let t = self.peek()?;
        ts.contains(&t).then(|| self.i += 1)
    }

    fn arith(&mut self) -> Option<()> {
        loop {
            self.factor()?;
            match self.peek() {
                Some(T::Plus | T::Minus | T::Star | T::Slash | T::Percent) => self.i += 1,
                _ => return Some(()),
            }
        }
    }

    fn factor(&mut self) -> Option<()> {
        match self.peek()? {
            T::Num | T::Str => {
                self.i += 1;
                Some(())
            }
            T::Minus | T::Plus if matches!(self.peek_at(1), Some(T::Num)) => {
                self.i += 2;
                Some(())
            }
            T::LParen => {
                self.i += 1;
                if self.is_kw(Kw::SELECT) {
                    self.query()?;
                } else {
                    self.expr()?;
                }
                self.expect(T::RParen)
            }
            T::Word => {
                if self.is_kw(Kw::INTERVAL) && self.peek_at(1) == Some(T::Str) {
                    self.i += 2;
                    // `INTERVAL '1' DAY` and friends defer.
                    return (!self.interval_field_next()).then_some(());
                }
                if self.is_kw(Kw::NULL) || self.is_kw(Kw::TRUE) || self.is_kw(Kw::FALSE) {
                    self.i += 1;
                    return Some(());
                }
                if self.peek_at(1) == Some(T::LParen) {
                    self.name()?;
                    self.i += 1;
                    if !self.eat(T::Star) && self.peek() != Some(T::RParen) {
                        self.eat_kw(Kw::DISTINCT);
                        self.expr_list()?;
                    }
                    return self.expect(T::RParen);
                }
                self.column_ref()
            }
            _ => None,
        }
    }

    /// Whether a keyword that could qualify an interval follows: any keyword
    /// but those the grammar expects after an expression.
    fn interval_field_next(&self) -> bool {
        use Kw::*;
        const FOLLOW: &[Kw] = &[
            AND, OR, FROM, WHERE, GROUP, ORDER, LIMIT, OFFSET, AS, ASC, DESC, HAVING, JOIN, INNER,
            LEFT, RIGHT, FULL, CROSS, ON,
        ];
        self.toks.get(self.i).is_some_and(|t| {
            t.t == T::Word && t.keyword && !t.kw.is_some_and(|k| FOLLOW.contains(&k))
        })
    }

    /// `name` or `table.name`.
    fn column_ref(&mut self) -> Option<()> {
        self.name()?;
        if self.eat(T::Dot) {
            self.name()?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_sets_hold_exactly_their_words() {
        assert!(ALL_KEYWORDS.len() < 2048);
        for k in ALL_KEYWORDS {
            assert!(is_keyword(k) && is_keyword(&k.to_ascii_lowercase()), "{k}");
        }
        for list in SENSITIVE.lists {
            for w in *list {
                assert!(
                    is_sensitive(w) && is_sensitive(&w.to_ascii_uppercase()),
                    "{w}"
                );
            }
        }
        for w in ["users", "orders", "u", "created_at", "now", "carrier", "x"] {
            assert!(!is_keyword(w) && !is_sensitive(w), "{w}");
        }
        assert!(is_sensitive("dblink_exec") && is_sensitive("DBLINKX"));
        for (w, kw) in GRAMMAR_KEYWORDS {
            assert!(is_keyword(w), "{w}");
            let lower = w.to_ascii_lowercase();
            let t = Tok::word(&lower, fnv_upper(lower.as_bytes()), 0, w.len());
            assert_eq!(t.kw, Some(*kw));
            assert!(!t.name_ok && !t.alias_ok);
        }
        for w in NAME_KEYWORDS {
            assert!(is_keyword(w), "{w}");
            let t = Tok::word(w, fnv_upper(w.as_bytes()), 0, w.len());
            assert!(t.kw.is_none() && t.name_ok && !t.alias_ok, "{w}");
        }
    }

    #[test]
    fn plain_batches_take_the_fast_path() {
        for s in [
            "SELECT u.id, u.name, count(o.id) AS orders FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.created_at > '2024-01-01' GROUP BY u.id, u.name ORDER BY orders DESC LIMIT 50",
            "UPDATE orders SET status = 'shipped', shipped_at = now() WHERE id IN (SELECT order_id FROM shipments WHERE carrier = 'ups')",
            "INSERT INTO audit_log (actor, action, at) VALUES ('agent-7', 'report', now())",
            "DELETE FROM sessions WHERE expires_at < now() - interval '1 day'",
            "SELECT 1; SELECT * FROM t;",
        ] {
            assert!(classify(s).is_some(), "{s}");
        }
    }

    #[test]
    fn defers_on_what_it_does_not_read() {
        for s in [
            "DELETE FROM users",
            "DELETE FROM users WHERE 1=1",
            "DELETE FROM users WHERE id = id",
            "DELETE FROM users WHERE id = 5 OR 1 = 1",
            "UPDATE users SET role = 'admin'",
            "SELECT password FROM users",
            "SELECT * FROM mysql.user",
            "SELECT load_file('/etc/passwd')",
            "SELECT 1 -- x",
            "SELECT 'it''s'",
            "SELECT \"id\" FROM t",
            "SELECT date FROM t",
            "SELECT 1 INTO OUTFILE '/tmp/x'",
            "SELECT * FROM dblink('x', 'DROP TABLE t')",
            "DROP TABLE t",
            "SELECT 1;;SELECT 2",
            "SELECT ｘ FROM t",
        ] {
            assert!(classify(s).is_none(), "{s}");
        }
    }
}
