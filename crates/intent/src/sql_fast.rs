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

/// Whether the full path judges a name by itself (the lists in `sql.rs`,
/// `mysql.user`, `sys.sql_logins`, `dblink…`, `query_to_xml`): the fast
/// path then defers. Checked on every part of every name, so it covers what
/// `sql.rs` checks on last parts and whole qualified names.
fn is_sensitive(word: &str) -> bool {
    let mut buf = [0u8; 64];
    let Some(dst) = buf.get_mut(..word.len()) else {
        return true;
    };
    dst.copy_from_slice(word.as_bytes());
    dst.make_ascii_lowercase();
    let w = std::str::from_utf8(dst).unwrap_or("user");
    [
        EXEC_FUNCTIONS,
        READ_FUNCTIONS,
        EXFIL_FUNCTIONS,
        PRIV_PROCEDURES,
        CREDENTIAL_CATALOGS,
        SECRET_COLUMNS,
        &["user", "sql_logins", "query_to_xml"],
    ]
    .iter()
    .any(|list| list.contains(&w))
        || w.starts_with("dblink")
}

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

#[derive(Clone, Copy)]
struct Tok {
    t: T,
    start: u32,
    end: u32,
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
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                // `E'…'`, `x'…'`, `DATE '…'`-like forms and `$` in names defer.
                if i < b.len() && matches!(b[i], b'\'' | b'$' | b'"' | b'&') {
                    return None;
                }
                toks.push(Tok {
                    t: T::Word,
                    start: start as u32,
                    end: i as u32,
                });
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
                toks.push(Tok {
                    t: T::Num,
                    start: start as u32,
                    end: i as u32,
                });
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
                toks.push(Tok {
                    t: T::Str,
                    start: start as u32,
                    end: i as u32,
                });
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
        toks.push(Tok {
            t,
            start: start as u32,
            end: i as u32,
        });
    }
    Some(toks)
}

fn is_keyword(word: &str) -> bool {
    let mut buf = [0u8; 64];
    let Some(dst) = buf.get_mut(..word.len()) else {
        // Longer than any keyword.
        return false;
    };
    dst.copy_from_slice(word.as_bytes());
    dst.make_ascii_uppercase();
    let upper = std::str::from_utf8(dst).unwrap_or("");
    ALL_KEYWORDS.binary_search(&upper).is_ok()
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

    /// Whether the token at `i + k` is the keyword `kw` (upper case).
    fn is_kw_at(&self, k: usize, kw: &str) -> bool {
        self.peek_at(k) == Some(T::Word) && self.text(self.i + k).eq_ignore_ascii_case(kw)
    }

    fn is_kw(&self, kw: &str) -> bool {
        self.is_kw_at(0, kw)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = self.is_kw(kw);
        if yes {
            self.i += 1;
        }
        yes
    }

    fn expect_kw(&mut self, kw: &str) -> Option<()> {
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
        if self.peek() != Some(T::Word) {
            return None;
        }
        let w = self.text(self.i);
        if is_sensitive(w)
            || is_keyword(w) && !NAME_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w))
        {
            return None;
        }
        self.i += 1;
        Some(())
    }

    /// A name that is no keyword at all (implicit aliases).
    fn plain_word_next(&self) -> bool {
        self.peek() == Some(T::Word) && {
            let w = self.text(self.i);
            !is_keyword(w) && !is_sensitive(w)
        }
    }

    /// `[AS] alias`, where an alias without `AS` must be no keyword.
    fn opt_alias(&mut self) -> Option<()> {
        if self.eat_kw("AS") {
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
        if self.is_kw("SELECT") {
            self.query()?;
            Some(false)
        } else if self.eat_kw("INSERT") {
            self.expect_kw("INTO")?;
            self.object_name()?;
            if self.peek() == Some(T::LParen) && !self.is_kw_at(1, "SELECT") {
                self.i += 1;
                self.name()?;
                while self.eat(T::Comma) {
                    self.name()?;
                }
                self.expect(T::RParen)?;
            }
            if self.eat_kw("VALUES") {
                loop {
                    self.expect(T::LParen)?;
                    self.expr_list()?;
                    self.expect(T::RParen)?;
                    if !self.eat(T::Comma) {
                        break;
                    }
                }
            } else if self.is_kw("SELECT") {
                self.query()?;
            } else {
                return None;
            }
            Some(true)
        } else if self.eat_kw("UPDATE") {
            self.object_name()?;
            self.opt_table_alias()?;
            self.expect_kw("SET")?;
            loop {
                self.name()?;
                self.expect(T::Eq)?;
                self.expr()?;
                if !self.eat(T::Comma) {
                    break;
                }
            }
            self.expect_kw("WHERE")?;
            self.write_filter()?;
            Some(true)
        } else if self.eat_kw("DELETE") {
            self.expect_kw("FROM")?;
            self.object_name()?;
            self.opt_table_alias()?;
            self.expect_kw("WHERE")?;
            self.write_filter()?;
            Some(true)
        } else {
            None
        }
    }

    /// `[AS] alias` after the target of UPDATE / DELETE.
    fn opt_table_alias(&mut self) -> Option<()> {
        if self.is_kw("AS") {
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
                T::Word if self.is_kw("IN") => {
                    self.i += 1;
                    self.in_rhs()?;
                }
                _ => return None,
            }
            if !self.eat_kw("AND") {
                break;
            }
        }
        if self.is_kw("OR") || self.is_kw("NOT") {
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
        self.expect_kw("SELECT")?;
        self.eat_kw("DISTINCT");
        loop {
            self.select_item()?;
            if !self.eat(T::Comma) {
                break;
            }
        }
        if self.eat_kw("FROM") {
            loop {
                self.table_ref()?;
                if !self.eat(T::Comma) {
                    break;
                }
            }
        }
        if self.eat_kw("WHERE") {
            self.expr()?;
        }
        if self.is_kw("GROUP") {
            self.i += 1;
            self.expect_kw("BY")?;
            self.expr_list()?;
        }
        if self.eat_kw("HAVING") {
            self.expr()?;
        }
        if self.is_kw("ORDER") {
            self.i += 1;
            self.expect_kw("BY")?;
            loop {
                self.expr()?;
                if !self.eat_kw("ASC") {
                    self.eat_kw("DESC");
                }
                if !self.eat(T::Comma) {
                    break;
                }
            }
        }
        if self.eat_kw("LIMIT") {
            self.expect(T::Num)?;
        }
        if self.eat_kw("OFFSET") {
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
            let cross = if self.is_kw("JOIN") {
                self.i += 1;
                false
            } else if self.is_kw("INNER") && self.is_kw_at(1, "JOIN") {
                self.i += 2;
                false
            } else if (self.is_kw("LEFT") || self.is_kw("RIGHT") || self.is_kw("FULL"))
                && (self.is_kw_at(1, "JOIN")
                    || self.is_kw_at(1, "OUTER") && self.is_kw_at(2, "JOIN"))
            {
                self.i += if self.is_kw_at(1, "OUTER") { 3 } else { 2 };
                false
            } else if self.is_kw("CROSS") && self.is_kw_at(1, "JOIN") {
                self.i += 2;
                true
            } else {
                return Some(());
            };
            self.table_factor()?;
            if !cross {
                self.expect_kw("ON")?;
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
            if !(self.eat_kw("AND") || self.eat_kw("OR")) {
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
            Some(T::Word) if self.is_kw("IN") => {
                self.i += 1;
                self.in_rhs()?;
            }
            _ => return Some(()),
        }
        match self.peek() {
            Some(T::Eq | T::Lt | T::Gt | T::LtEq | T::GtEq | T::NotEq) => None,
            Some(T::Word) if self.is_kw("IN") => None,
            _ => Some(()),
        }
    }

    /// `(SELECT …)` or `(literal, …)`.
    fn in_rhs(&mut self) -> Option<()> {
        self.expect(T::LParen)?;
        if self.is_kw("SELECT") {
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
                if self.is_kw("SELECT") {
                    self.query()?;
                } else {
                    self.expr()?;
                }
                self.expect(T::RParen)
            }
            T::Word => {
                if self.is_kw("INTERVAL") && self.peek_at(1) == Some(T::Str) {
                    self.i += 2;
                    // `INTERVAL '1' DAY` and friends defer.
                    return (!self.interval_field_next()).then_some(());
                }
                if self.is_kw("NULL") || self.is_kw("TRUE") || self.is_kw("FALSE") {
                    self.i += 1;
                    return Some(());
                }
                if self.peek_at(1) == Some(T::LParen) {
                    self.name()?;
                    self.i += 1;
                    if !self.eat(T::Star) && self.peek() != Some(T::RParen) {
                        self.eat_kw("DISTINCT");
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
        const FOLLOW: &[&str] = &[
            "AND", "OR", "FROM", "WHERE", "GROUP", "ORDER", "LIMIT", "OFFSET", "AS", "ASC", "DESC",
            "HAVING", "JOIN", "INNER", "LEFT", "RIGHT", "FULL", "CROSS", "ON",
        ];
        self.peek() == Some(T::Word) && {
            let w = self.text(self.i);
            is_keyword(w) && !FOLLOW.iter().any(|k| k.eq_ignore_ascii_case(w))
        }
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
