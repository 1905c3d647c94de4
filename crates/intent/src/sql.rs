//! SQL: every statement of a batch, read through sqlparser's AST.

use std::ops::ControlFlow;

use sqlparser::ast::{
    AlterRoleOperation, BinaryOperator, CopySource, CopyTarget, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, ObjectName, Query, RoleOption, Select, SelectItem, Set, SetExpr, Spanned,
    Statement, UnaryOperator, Value, Visit, Visitor,
};
use sqlparser::dialect::{
    Dialect, GenericDialect, MsSqlDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect,
};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::analyze::{Ctx, Origin, nesting_exceeds_limit, truncate_chars};
use crate::{Intent, Kind, MAX_SYNTAX_NESTING, Span, path, sql_fast};

/// Statement keywords that make a bare string SQL in `auto` mode.
const STATEMENT_KEYWORDS: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "DROP", "CREATE", "ALTER", "TRUNCATE", "GRANT",
    "REVOKE", "WITH", "COPY", "EXEC", "EXECUTE", "CALL", "MERGE", "REPLACE", "SHOW", "DESCRIBE",
    "EXPLAIN", "PRAGMA", "ATTACH", "LOAD", "VACUUM", "UPSERT", "DECLARE", "BEGIN", "SET", "USE",
];

/// Functions that run operating-system commands or native code.
pub(crate) const EXEC_FUNCTIONS: &[&str] = &[
    "xp_cmdshell",
    "sys_exec",
    "sys_eval",
    "sp_oacreate",
    "sp_oamethod",
    "sp_execute_external_script",
    "load_extension",
    "runjava",
    "lo_compat_privileges",
];
/// Functions that read server files, registry or secrets.
pub(crate) const READ_FUNCTIONS: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "load_file",
    "lo_import",
    "readfile",
    "xp_regread",
    "openrowset",
    "bulk_read",
];
/// Functions that write data out of the database (files, network).
pub(crate) const EXFIL_FUNCTIONS: &[&str] = &[
    "lo_export",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_send_query",
    "writefile",
    "pg_file_write",
    "xp_dirtree",
    "xp_fileexist",
    "xp_subdirs",
    "request",
    "get_host_address",
    "httpuritype",
    "http_get",
    "http_post",
];
/// Procedures that change server configuration or membership.
pub(crate) const PRIV_PROCEDURES: &[&str] = &[
    "sp_configure",
    "sp_addsrvrolemember",
    "sp_addrolemember",
    "sp_addlogin",
    "sp_change_users_login",
];
/// Catalogs that hold password hashes or connection secrets.
pub(crate) const CREDENTIAL_CATALOGS: &[&str] = &[
    "pg_shadow",
    "pg_authid",
    "pg_user_mapping",
    "pg_user_mappings",
    "sql_logins",
    "syslogins",
    "user$",
    "dba_users",
    "global_priv",
    "credentials",
];
/// Column names that hold secrets when selected.
pub(crate) const SECRET_COLUMNS: &[&str] = &[
    "password",
    "passwd",
    "password_hash",
    "passwordhash",
    "pass_hash",
    "pwd_hash",
    "hashed_password",
    "encrypted_password",
    "rolpassword",
    "authentication_string",
    "api_key",
    "apikey",
    "secret_key",
    "private_key",
    "access_token",
    "refresh_token",
    "client_secret",
    "aws_secret_access_key",
    "totp_secret",
    "otp_secret",
];
/// Roles whose membership is administrative.
const ADMIN_ROLES: &[&str] = &[
    "admin",
    "root",
    "superuser",
    "sysadmin",
    "db_owner",
    "rds_superuser",
    "cloudsqlsuperuser",
    "azure_pg_admin",
    "pg_execute_server_program",
    "pg_read_server_files",
    "pg_write_server_files",
    "dba",
];

fn dialects() -> [&'static dyn Dialect; 5] {
    [
        &PostgreSqlDialect {},
        &MySqlDialect {},
        &SQLiteDialect {},
        &MsSqlDialect {},
        &GenericDialect {},
    ]
}

/// Whether a bare string is confidently SQL: it starts with a statement
/// keyword and some dialect parses it.
pub(crate) fn looks_like_sql(t: &str) -> bool {
    let first = t
        .trim_start_matches(|c: char| c == '(' || c.is_whitespace())
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("");
    if !STATEMENT_KEYWORDS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(first))
    {
        return false;
    }
    if nesting_exceeds_limit(t) {
        return true;
    }
    // What the fast path reads in full is SQL, without a second parse.
    if sql_fast::classify(t).is_some() {
        return true;
    }
    let unwrapped = unwrap_mysql_comments(t);
    let t = unwrapped.as_deref().unwrap_or(t);
    dialects().iter().any(|d| Parser::parse_sql(*d, t).is_ok()) || has_sql_shape(t)
}

/// For text no dialect parses: whether its words still have the shape of a
/// dangerous statement (`DELETE FROM`, `UPDATE x SET`, `DROP TABLE`,
/// `GRANT … TO`, `INTO OUTFILE`), read from sqlparser's tokens.
fn has_sql_shape(t: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&MySqlDialect {}, t).tokenize() else {
        return false;
    };
    let words: Vec<String> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    match w(0) {
        "delete" => w(1) == "from",
        "update" => w(2) == "set",
        "drop" | "truncate" => matches!(
            w(1),
            "table"
                | "database"
                | "schema"
                | "view"
                | "index"
                | "user"
                | "role"
                | "function"
                | "procedure"
                | "trigger"
        ),
        "grant" => words.iter().any(|x| x == "to") && words.iter().any(|x| x == "on" || x == "all"),
        _ => words
            .windows(2)
            .any(|p| p[0] == "into" && (p[1] == "outfile" || p[1] == "dumpfile")),
    }
}

pub(crate) fn analyze(ctx: &mut Ctx<'_>, text: &str, origin: Origin) {
    if text.trim().is_empty() {
        return;
    }
    if nesting_exceeds_limit(text) {
        ctx.add(
            Intent::Unknown,
            Kind::Sql,
            origin.span(0, text.len()),
            format!("SQL nested deeper than {MAX_SYNTAX_NESTING} levels; not parsed"),
        );
        token_scan(ctx, text, 0, text.len(), origin);
        return;
    }
    if ctx.fast_paths
        && let Some(statements) = sql_fast::classify(text)
    {
        for st in statements {
            if st.write {
                let span = origin.span(st.start, st.end);
                ctx.add(
                    Intent::Write,
                    Kind::Sql,
                    span,
                    head(&text[st.start..st.end]),
                );
            }
        }
        return;
    }
    analyze_parsed(ctx, text, origin);
}

/// The evidence for a statement: its source, on one line, cut at 80 characters.
pub(crate) fn head(source: &str) -> String {
    const MAX: usize = 80;
    if source.is_ascii() {
        return head_ascii(source.as_bytes(), MAX);
    }
    // Joining stops once past MAX characters: the cut only needs the start.
    let mut line = String::with_capacity(source.len().min(4 * MAX + 8));
    let mut chars = 0;
    for word in source.split_whitespace() {
        if !line.is_empty() {
            line.push(' ');
            chars += 1;
        }
        line.push_str(word);
        chars += word.chars().count();
        if chars > MAX {
            break;
        }
    }
    truncate_chars(&line, MAX)
}

/// [`head`] of ASCII text, byte by byte: words joined by one space (the
/// whitespace `split_whitespace` knows, which for ASCII includes the
/// vertical tab), cut at `max` with an ellipsis when anything is left.
fn head_ascii(b: &[u8], max: usize) -> String {
    let space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r');
    let mut out = String::with_capacity(max + '…'.len_utf8());
    let mut gap = false;
    for &c in b {
        if space(c) {
            gap = !out.is_empty();
            continue;
        }
        if gap {
            if out.len() >= max {
                out.push('…');
                return out;
            }
            out.push(' ');
            gap = false;
        }
        if out.len() >= max {
            out.push('…');
            return out;
        }
        out.push(char::from(c));
    }
    out
}

/// The full path: sqlparser's AST, dialect by dialect, then statement by statement.
pub(crate) fn analyze_parsed(ctx: &mut Ctx<'_>, text: &str, origin: Origin) {
    // MySQL runs the body of `/*! ... */` comments: read them as code.
    let unwrapped = unwrap_mysql_comments(text);
    let text = unwrapped.as_deref().unwrap_or(text);
    let lines = LineIndex::new(text);
    for d in dialects() {
        // Tokenize once per dialect: the tokens give both the parser its
        // input and each statement its extent (first to last token; the
        // AST's own spans leave out closing parentheses and the like).
        let Ok(tokens) = Tokenizer::new(d, text).tokenize_with_location() else {
            continue;
        };
        let extents = statement_extents(&tokens, &lines);
        let Ok(statements) = Parser::new(d)
            .with_tokens_with_locations(tokens)
            .parse_statements()
        else {
            continue;
        };
        for (i, s) in statements.iter().enumerate() {
            let (start, end) = match extents.get(i) {
                Some(&e) if extents.len() == statements.len() => e,
                // Statements that hold `;` themselves (`BEGIN … END`).
                _ => lines.span(s.span()),
            };
            let span = origin.span(start, end);
            StatementVisitor {
                ctx,
                span,
                origin: origin.nested(start, end),
                source: text.get(start..end).unwrap_or(text),
            }
            .visit(s);
        }
        return;
    }
    // No dialect parses the whole batch: split it with the tokenizer and try
    // each statement alone, so one odd statement does not hide the others.
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize_with_location() else {
        ctx.add(
            Intent::Unknown,
            Kind::Sql,
            origin.span(0, text.len()),
            "SQL does not tokenize (unterminated string or comment?)",
        );
        token_scan(ctx, text, 0, text.len(), origin);
        return;
    };
    for (start, end) in statement_pieces(&tokens, text, &lines) {
        let Some(piece) = text.get(start..end) else {
            continue;
        };
        if piece.trim().is_empty() {
            continue;
        }
        let parsed = dialects()
            .into_iter()
            .find_map(|d| Parser::parse_sql(d, piece).ok())
            .or_else(|| create_user_as_role(piece));
        if parsed.is_none() && is_read_pragma_call(piece) {
            continue;
        }
        match parsed {
            Some(statements) => {
                let local = LineIndex::new(piece);
                for s in &statements {
                    let (a, b) = local.span(s.span());
                    let span = origin.span(start + a, start + b);
                    StatementVisitor {
                        ctx,
                        span,
                        origin: origin.nested(start + a, start + b),
                        source: piece.get(a..b).unwrap_or(piece),
                    }
                    .visit(s);
                }
            }
            None => {
                ctx.add(
                    Intent::Unknown,
                    Kind::Sql,
                    origin.span(start, end),
                    format!("unparseable SQL: {}", truncate_chars(piece.trim(), 60)),
                );
                token_scan(ctx, text, start, end, origin);
            }
        }
    }
}

/// SQLite pragmas that take a table or index name and only report on it.
const READ_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_info",
    "index_xinfo",
    "index_list",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
];

/// `PRAGMA [schema.]name(argument)` with a reporting pragma, which sqlparser
/// reads only when the argument is quoted: `PRAGMA table_info(users)`.
fn is_read_pragma_call(piece: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&SQLiteDialect {}, piece).tokenize() else {
        return false;
    };
    let t: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let word = |t: &Token| match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
        _ => None,
    };
    let name = match t.as_slice() {
        [p, n, Token::LParen, _, Token::RParen] => (word(p).as_deref() == Some("pragma"))
            .then(|| word(n))
            .flatten(),
        [p, _, Token::Period, n, Token::LParen, _, Token::RParen] => (word(p).as_deref()
            == Some("pragma"))
        .then(|| word(n))
        .flatten(),
        _ => None,
    };
    let argument_ok = matches!(
        t.get(t.len().wrapping_sub(2)),
        Some(Token::Word(_) | Token::SingleQuotedString(_) | Token::Number(..))
    );
    argument_ok && name.is_some_and(|n| READ_PRAGMAS.contains(&n.as_str()))
}

/// `CREATE USER name [WITH] options`, which sqlparser does not read in the
/// PostgreSQL form: it is `CREATE ROLE name WITH LOGIN options`, so it is
/// read as `CREATE ROLE` (same length, same spans) and judged like one.
fn create_user_as_role(piece: &str) -> Option<Vec<Statement>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, piece)
        .tokenize_with_location()
        .ok()?;
    let mut words = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)));
    let (create, user) = (words.next()?, words.next()?);
    let is = |t: &TokenWithSpan, k: &str| matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    if !is(create, "create") || !is(user, "user") {
        return None;
    }
    let lines = LineIndex::new(piece);
    let at = lines.offset(user.span.start);
    let mut as_role = piece.to_string();
    as_role.replace_range(at..at + 4, "ROLE");
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, &as_role).ok()?;
    match statements.as_slice() {
        [Statement::CreateRole(_)] => Some(statements),
        _ => None,
    }
}

/// Byte ranges of the non-empty statements of a batch: from the first to the
/// last token between `;` tokens, whitespace and comments left out.
fn statement_extents(tokens: &[TokenWithSpan], lines: &LineIndex<'_>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(Location, Location)> = None;
    for t in tokens {
        match &t.token {
            Token::SemiColon => {
                if let Some((a, b)) = current.take() {
                    out.push((lines.offset(a), lines.offset(b)));
                }
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => {
                let first = current.map_or(t.span.start, |(a, _)| a);
                current = Some((first, t.span.end));
            }
        }
    }
    if let Some((a, b)) = current {
        out.push((lines.offset(a), lines.offset(b)));
    }
    out
}

fn statement_pieces(
    tokens: &[TokenWithSpan],
    text: &str,
    lines: &LineIndex<'_>,
) -> Vec<(usize, usize)> {
    let mut piece_start = 0usize;
    let mut pieces = Vec::new();
    for t in tokens {
        if t.token == Token::SemiColon {
            let end = lines.offset(t.span.start);
            pieces.push((piece_start, end.max(piece_start)));
            piece_start = lines.offset(t.span.end);
        }
    }
    pieces.push((piece_start.min(text.len()), text.len()));
    pieces
}

/// Replaces MySQL executable comments `/*!50000 ... */` by their body.
/// Returns None when there are none.
fn unwrap_mysql_comments(text: &str) -> Option<String> {
    if !text.contains("/*!") {
        return None;
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut quote: Option<u8> = None;
    let mut open = 0usize;
    let mut last = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) => {
                if c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    quote = None;
                }
            }
            None => {
                if matches!(c, b'\'' | b'"' | b'`') {
                    quote = Some(c);
                } else if b[i..].starts_with(b"/*!") {
                    out.push_str(&text[last..i]);
                    i += 3;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    out.push(' ');
                    last = i;
                    open += 1;
                    continue;
                } else if open > 0 && b[i..].starts_with(b"*/") {
                    out.push_str(&text[last..i]);
                    out.push(' ');
                    i += 2;
                    last = i;
                    open -= 1;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(text.get(last..).unwrap_or(""));
    Some(out)
}

/// Line/column (1-based, columns in characters) to byte offsets.
struct LineIndex<'t> {
    text: &'t str,
    /// Byte offset of every character, then `text.len()`.
    chars: Vec<usize>,
    /// For each line, the index in `chars` of its first character.
    lines: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    /// One pass over the text, so that each `offset` is a lookup: scanning a
    /// line per token would be quadratic in a long one-line batch.
    fn new(text: &'t str) -> Self {
        let mut chars = Vec::with_capacity(text.len() + 1);
        let mut lines = vec![0];
        for (i, c) in text.char_indices() {
            chars.push(i);
            if c == '\n' {
                lines.push(chars.len());
            }
        }
        chars.push(text.len());
        LineIndex { text, chars, lines }
    }

    /// The byte offset of a 1-based (line, column in characters) location;
    /// past the end it is the end of the text.
    fn offset(&self, loc: Location) -> usize {
        if loc.line == 0 {
            return 0;
        }
        let Some(&first) = self.lines.get(loc.line as usize - 1) else {
            return self.text.len();
        };
        let col = loc.column.saturating_sub(1) as usize;
        self.chars
            .get(first.saturating_add(col))
            .copied()
            .unwrap_or(self.text.len())
    }

    fn span(&self, s: sqlparser::tokenizer::Span) -> (usize, usize) {
        if s.start.line == 0 {
            return (0, self.text.len());
        }
        let a = self.offset(s.start);
        let b = self.offset(s.end).max(a);
        (a, b)
    }
}

struct StatementVisitor<'c, 'a, 't> {
    ctx: &'c mut Ctx<'a>,
    span: Span,
    origin: Origin,
    /// The statement's source text, quoted as evidence (cheaper than
    /// re-printing the AST, and it is what the caller wrote).
    source: &'t str,
}

impl StatementVisitor<'_, '_, '_> {
    fn visit(mut self, s: &Statement) {
        let _ = s.visit(&mut self);
    }

    fn add(&mut self, intent: Intent, evidence: impl Into<String>) {
        self.ctx.add(intent, Kind::Sql, self.span, evidence);
    }

    fn statement(&mut self, s: &Statement) {
        use Statement as S;
        let source = self.source;
        let head = || head(source);
        match s {
            // Reads, session state and control flow: nothing by themselves
            // (the visitor still walks their expressions and nested statements).
            S::Query(_)
            | S::Explain { .. }
            | S::ExplainTable { .. }
            | S::ShowFunctions { .. }
            | S::ShowVariable { .. }
            | S::ShowStatus { .. }
            | S::ShowVariables { .. }
            | S::ShowCreate { .. }
            | S::ShowColumns { .. }
            | S::ShowCatalogs { .. }
            | S::ShowDatabases { .. }
            | S::ShowProcessList { .. }
            | S::ShowSchemas { .. }
            | S::ShowCharset(_)
            | S::ShowObjects(_)
            | S::ShowTables { .. }
            | S::ShowViews { .. }
            | S::ShowCollation { .. }
            | S::Use(_)
            | S::StartTransaction { .. }
            | S::Commit { .. }
            | S::Rollback { .. }
            | S::Savepoint { .. }
            | S::ReleaseSavepoint { .. }
            | S::Declare { .. }
            | S::Fetch { .. }
            | S::Close { .. }
            | S::Prepare { .. }
            | S::Deallocate { .. }
            | S::Case(_)
            | S::If(_)
            | S::While(_)
            | S::Raise(_)
            | S::Assert { .. }
            | S::Print(_)
            | S::Return(_)
            | S::Throw(_)
            | S::RaisError { .. }
            | S::WaitFor(_)
            | S::LISTEN { .. }
            | S::UNLISTEN { .. }
            | S::Discard { .. }
            | S::Reset(_) => {}
            S::Set(set) => match set {
                Set::SetRole { .. } | Set::SetSessionAuthorization(_) => self.add(
                    Intent::PrivilegeEscalation,
                    format!("switches identity: {}", head()),
                ),
                _ => {}
            },
            S::Pragma { name, value, is_eq } => {
                let reads = !is_eq && READ_PRAGMAS.contains(&last_part(name).as_str());
                if value.is_some() && !reads {
                    self.add(Intent::Write, head());
                }
            }
            S::Drop { .. }
            | S::DropFunction(_)
            | S::DropDomain(_)
            | S::DropProcedure { .. }
            | S::DropSecret { .. }
            | S::DropPolicy(_)
            | S::DropConnector { .. }
            | S::DropExtension(_)
            | S::DropOperator(_)
            | S::DropOperatorFamily(_)
            | S::DropOperatorClass(_)
            | S::DropTrigger(_)
            | S::Truncate(_) => self.add(Intent::Destructive, head()),
            S::AlterTable(at) => {
                if at
                    .operations
                    .iter()
                    .any(|op| format!("{op:?}").starts_with("Drop"))
                {
                    self.add(Intent::Destructive, head());
                } else {
                    self.add(Intent::Write, head());
                }
            }
            S::Delete(d) => match &d.selection {
                None => self.add(
                    Intent::Destructive,
                    format!("DELETE without WHERE: {}", head()),
                ),
                Some(w) if always_true(w) => self.add(
                    Intent::Destructive,
                    format!("DELETE with an always-true WHERE ({w}): {}", head()),
                ),
                Some(_) => self.add(Intent::Write, head()),
            },
            S::Update(u) => match &u.selection {
                None => self.add(
                    Intent::Destructive,
                    format!("UPDATE without WHERE: {}", head()),
                ),
                Some(w) if always_true(w) => self.add(
                    Intent::Destructive,
                    format!("UPDATE with an always-true WHERE ({w}): {}", head()),
                ),
                Some(_) => self.add(Intent::Write, head()),
            },
            S::Grant(_) => self.add(Intent::PrivilegeEscalation, head()),
            S::CreateRole(r) => {
                let admin = r.superuser == Some(true)
                    || r.bypassrls == Some(true)
                    || r.create_role == Some(true)
                    || r.replication == Some(true)
                    || r.in_role
                        .iter()
                        .chain(&r.in_group)
                        .any(|i| is_admin_role(&i.value));
                if admin {
                    self.add(Intent::PrivilegeEscalation, head());
                } else {
                    self.add(Intent::Write, head());
                }
            }
            S::AlterRole { name, operation } => {
                let admin = match operation {
                    AlterRoleOperation::WithOptions { options } => options.iter().any(|o| {
                        matches!(
                            o,
                            RoleOption::SuperUser(true)
                                | RoleOption::BypassRLS(true)
                                | RoleOption::CreateRole(true)
                                | RoleOption::Replication(true)
                        )
                    }),
                    AlterRoleOperation::AddMember { .. } => is_admin_role(&name.value),
                    _ => false,
                };
                if admin {
                    self.add(Intent::PrivilegeEscalation, head());
                } else {
                    self.add(Intent::Write, head());
                }
            }
            S::CreateUser(_) | S::AlterUser(_) => {
                let text = s.to_string().to_ascii_uppercase();
                if ["SUPERUSER", "ADMIN", "ALL PRIVILEGES", "SYSADMIN"]
                    .iter()
                    .any(|k| text.contains(k))
                {
                    self.add(Intent::PrivilegeEscalation, head());
                } else {
                    self.add(Intent::Write, head());
                }
            }
            S::Copy {
                source, to, target, ..
            } => {
                match target {
                    CopyTarget::Program { command } => {
                        self.add(
                            Intent::CodeExecution,
                            format!("COPY … PROGRAM runs {command:?}"),
                        );
                        if *to {
                            self.add(Intent::Exfiltration, head());
                        }
                        let o = self.origin;
                        self.ctx.nested(Kind::Shell, command, o);
                    }
                    CopyTarget::File { filename } if *to => {
                        self.add(Intent::Exfiltration, format!("COPY … TO file {filename:?}"));
                        if let Some(r) = path::persistence_reason(filename) {
                            self.add(Intent::Persistence, format!("COPY … TO {filename}: {r}"));
                        }
                    }
                    CopyTarget::Stdout if *to => self.add(
                        Intent::Exfiltration,
                        format!("COPY … TO STDOUT: {}", head()),
                    ),
                    CopyTarget::File { filename } => {
                        if let Some(r) = path::credential_reason(filename) {
                            self.add(
                                Intent::CredentialAccess,
                                format!("COPY … FROM {filename}: {r}"),
                            );
                        }
                        self.add(Intent::Write, head());
                    }
                    _ => {
                        if !*to {
                            self.add(Intent::Write, head());
                        }
                    }
                }
                let _ = source as &CopySource;
            }
            S::Directory { .. } | S::ExportData(_) | S::Unload { .. } => {
                self.add(Intent::Exfiltration, head())
            }
            S::Execute {
                name, parameters, ..
            } => {
                if let Some(n) = name {
                    self.routine(n);
                }
                // Dynamic SQL: EXECUTE IMMEDIATE 'DROP ...' / EXEC('...').
                for p in parameters {
                    if let Some(text) = string_literal(p)
                        && (name.is_none() || looks_like_sql(&text))
                    {
                        let o = self.origin;
                        self.ctx.nested(Kind::Sql, &text, o);
                    }
                }
                if name.is_none() && parameters.iter().all(|p| string_literal(p).is_none()) {
                    self.add(Intent::CodeExecution, format!("dynamic SQL: {}", head()));
                }
            }
            S::Call(f) => {
                self.routine(&f.name);
            }
            S::CreateFunction(f) => {
                let lang = f
                    .language
                    .as_ref()
                    .map(|l| l.value.to_ascii_lowercase())
                    .unwrap_or_default();
                if matches!(
                    lang.as_str(),
                    "c" | "internal"
                        | "plpythonu"
                        | "plpython2u"
                        | "plpython3u"
                        | "plperlu"
                        | "pltclu"
                        | "plsh"
                        | "java"
                        | "python"
                ) {
                    self.add(
                        Intent::CodeExecution,
                        format!("function in untrusted language {lang}: {}", head()),
                    );
                } else {
                    self.add(Intent::Write, head());
                }
            }
            S::CreateTrigger(_) => self.add(Intent::Persistence, format!("trigger: {}", head())),
            S::CreateExtension(_) | S::Load { .. } | S::Install { .. } => self.add(
                Intent::CodeExecution,
                format!("loads native code: {}", head()),
            ),
            S::AttachDatabase { .. } | S::AttachDuckDBDatabase { .. } => {
                let text = s.to_string();
                if let Some(r) = path::persistence_reason(quoted(&text).unwrap_or_default()) {
                    self.add(Intent::Persistence, format!("{}: {r}", head()));
                }
                self.add(Intent::Write, head());
            }
            _ => self.add(Intent::Write, head()),
        }
    }

    /// A called procedure or function by name.
    fn routine(&mut self, name: &ObjectName) {
        let n = last_part(name);
        let full = name.to_string().to_ascii_lowercase();
        if EXEC_FUNCTIONS.contains(&n.as_str()) {
            self.add(
                Intent::CodeExecution,
                format!("{full} runs commands or native code"),
            );
        } else if READ_FUNCTIONS.contains(&n.as_str()) {
            self.add(
                Intent::CredentialAccess,
                format!("{full} reads server files or secrets"),
            );
        } else if EXFIL_FUNCTIONS.contains(&n.as_str())
            && (n != "request" || full.contains("utl_http"))
        {
            self.add(
                Intent::Exfiltration,
                format!("{full} sends data out of the database"),
            );
        } else if PRIV_PROCEDURES.contains(&n.as_str()) {
            self.add(
                Intent::PrivilegeEscalation,
                format!("{full} changes server configuration or roles"),
            );
        }
    }

    fn select(&mut self, select: &Select) {
        if select.into.is_some() {
            self.add(Intent::Write, "SELECT … INTO creates a table");
        }
        for item in &select.projection {
            let expr = match item {
                SelectItem::UnnamedExpr(e) => e,
                SelectItem::ExprWithAlias { expr, .. } => expr,
                _ => continue,
            };
            let col = match expr {
                Expr::Identifier(i) => Some(&i.value),
                Expr::CompoundIdentifier(parts) => parts.last().map(|i| &i.value),
                _ => None,
            };
            if let Some(c) = col
                && SECRET_COLUMNS.contains(&c.to_ascii_lowercase().as_str())
            {
                self.add(
                    Intent::CredentialAccess,
                    format!("selects secret column {c}"),
                );
            }
        }
    }
}

impl Visitor for StatementVisitor<'_, '_, '_> {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        self.statement(s);
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        let mut body = q.body.as_ref();
        loop {
            match body {
                SetExpr::Select(s) => {
                    self.select(s);
                    break;
                }
                SetExpr::Query(q) => body = q.body.as_ref(),
                SetExpr::SetOperation { left, right, .. } => {
                    if let SetExpr::Select(s) = right.as_ref() {
                        self.select(s);
                    }
                    body = left.as_ref();
                }
                _ => break,
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
        // Table functions (`FROM dblink(...)`) are visited as relations.
        self.routine(r);
        let n = last_part(r);
        let full = r
            .to_string()
            .to_ascii_lowercase()
            .replace(['`', '"', '[', ']'], "");
        let catalog = CREDENTIAL_CATALOGS.contains(&n.as_str())
            && (n != "credentials" || full.starts_with("mysql."))
            || full == "mysql.user"
            || full.ends_with("sys.sql_logins");
        if catalog {
            self.add(
                Intent::CredentialAccess,
                format!("reads credential catalog {full}"),
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = e {
            self.routine(&f.name);
            // dblink('conn', 'SQL') and friends carry SQL as data that runs.
            if let FunctionArguments::List(list) = &f.args {
                let n = last_part(&f.name);
                if n.starts_with("dblink") || n == "query_to_xml" {
                    for a in &list.args {
                        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(ex)) = a
                            && let Some(text) = string_literal(ex)
                            && looks_like_sql(&text)
                        {
                            let o = self.origin;
                            self.ctx.nested(Kind::Sql, &text, o);
                        }
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

fn last_part(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_admin_role(name: &str) -> bool {
    ADMIN_ROLES.contains(&name.to_ascii_lowercase().as_str())
}

fn quoted(s: &str) -> Option<&str> {
    let a = s.find('\'')?;
    let b = s[a + 1..].find('\'')?;
    Some(&s[a + 1..a + 1 + b])
}

fn string_literal(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::DoubleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::NationalStringLiteral(s)
            | Value::UnicodeStringLiteral(s)
            | Value::TripleSingleQuotedString(s)
            | Value::TripleDoubleQuotedString(s) => Some(s.clone()),
            Value::DollarQuotedString(d) => Some(d.value.clone()),
            _ => None,
        },
        Expr::Nested(inner) => string_literal(inner),
        _ => None,
    }
}

/// A constant value, for deciding whether a WHERE clause filters anything.
#[derive(Debug, PartialEq)]
enum Const {
    Bool(bool),
    Num(f64),
    Str(String),
    Null,
}

impl Const {
    fn truthy(&self) -> Option<bool> {
        match self {
            Const::Bool(b) => Some(*b),
            Const::Num(n) => Some(*n != 0.0),
            Const::Null => Some(false),
            Const::Str(s) => s.trim().parse::<f64>().ok().map(|n| n != 0.0),
        }
    }
}

/// Whether a WHERE clause keeps every row: constants that are true, `x = x`,
/// `x OR <true>`, `NOT false`, `x LIKE '%'`...
fn always_true(e: &Expr) -> bool {
    truth(e, 0) == Some(true)
}

const MAX_EXPR_DEPTH: usize = 32;

fn truth(e: &Expr, depth: usize) -> Option<bool> {
    if depth > MAX_EXPR_DEPTH {
        return None;
    }
    let d = depth + 1;
    match e {
        Expr::Nested(inner) => truth(inner, d),
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::Or => {
                if truth(left, d) == Some(true) || truth(right, d) == Some(true) {
                    Some(true)
                } else {
                    None
                }
            }
            BinaryOperator::And => {
                if truth(left, d) == Some(true) && truth(right, d) == Some(true) {
                    Some(true)
                } else {
                    None
                }
            }
            BinaryOperator::Eq
            | BinaryOperator::GtEq
            | BinaryOperator::LtEq
            | BinaryOperator::Spaceship
                if left.to_string() == right.to_string() && !is_null_literal(left) =>
            {
                Some(true)
            }
            _ => {
                let l = constant(left, d)?;
                let r = constant(right, d)?;
                compare(&l, op, &r)
            }
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => truth(expr, d)
            .map(|b| !b)
            .or_else(|| constant(expr, d).and_then(|c| c.truthy()).map(|b| !b)),
        Expr::IsNotNull(inner) => constant(inner, d).map(|c| c != Const::Null),
        Expr::IsNull(inner) => constant(inner, d).map(|c| c == Const::Null),
        Expr::IsTrue(inner) => truth(inner, d),
        Expr::IsNotFalse(inner) => truth(inner, d),
        Expr::Like {
            negated: false,
            pattern,
            ..
        }
        | Expr::ILike {
            negated: false,
            pattern,
            ..
        } => match constant(pattern, d)? {
            Const::Str(s) if !s.is_empty() && s.chars().all(|c| c == '%') => Some(true),
            _ => None,
        },
        Expr::InList {
            expr,
            list,
            negated: false,
        } => {
            let x = expr.to_string();
            list.iter().any(|i| i.to_string() == x).then_some(true)
        }
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } => {
            let (x, l, h) = (constant(expr, d)?, constant(low, d)?, constant(high, d)?);
            match (x, l, h) {
                (Const::Num(x), Const::Num(l), Const::Num(h)) => Some(l <= x && x <= h),
                _ => None,
            }
        }
        _ => constant(e, d)?.truthy(),
    }
}

fn is_null_literal(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::Null))
}

fn constant(e: &Expr, depth: usize) -> Option<Const> {
    if depth > MAX_EXPR_DEPTH {
        return None;
    }
    match e {
        Expr::Nested(inner) => constant(inner, depth + 1),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok().map(Const::Num),
            Value::Boolean(b) => Some(Const::Bool(*b)),
            Value::Null => Some(Const::Null),
            _ => string_literal(e).map(Const::Str),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match constant(expr, depth + 1)? {
            Const::Num(n) => Some(Const::Num(-n)),
            _ => None,
        },
        Expr::BinaryOp { .. } | Expr::UnaryOp { .. } | Expr::IsNull(_) | Expr::IsNotNull(_) => {
            truth(e, depth + 1).map(Const::Bool)
        }
        _ => None,
    }
}

fn compare(l: &Const, op: &BinaryOperator, r: &Const) -> Option<bool> {
    use std::cmp::Ordering;
    let ord = match (l, r) {
        (Const::Num(a), Const::Num(b)) => a.partial_cmp(b)?,
        (Const::Str(a), Const::Str(b)) => a.cmp(b),
        (Const::Bool(a), Const::Bool(b)) => a.cmp(b),
        (Const::Num(a), Const::Str(b)) | (Const::Str(b), Const::Num(a)) => {
            // MySQL compares '1' = 1 numerically.
            let b: f64 = b.trim().parse().ok()?;
            if matches!(l, Const::Num(_)) {
                a.partial_cmp(&b)?
            } else {
                b.partial_cmp(a)?
            }
        }
        _ => return None,
    };
    Some(match op {
        BinaryOperator::Eq | BinaryOperator::Spaceship => ord == Ordering::Equal,
        BinaryOperator::NotEq => ord != Ordering::Equal,
        BinaryOperator::Lt => ord == Ordering::Less,
        BinaryOperator::LtEq => ord != Ordering::Greater,
        BinaryOperator::Gt => ord == Ordering::Greater,
        BinaryOperator::GtEq => ord != Ordering::Less,
        BinaryOperator::Or => l.truthy().unwrap_or(false) || r.truthy().unwrap_or(false),
        BinaryOperator::And => l.truthy().unwrap_or(false) && r.truthy().unwrap_or(false),
        _ => return None,
    })
}

/// Keyword-level reading of SQL no dialect parses, from sqlparser's own
/// tokens (so strings and comments stay data). Always used together with an
/// `unknown` finding.
fn token_scan(ctx: &mut Ctx<'_>, text: &str, start: usize, end: usize, origin: Origin) {
    let span = origin.span(start, end);
    let piece = text.get(start..end).unwrap_or("");
    for (intent, why) in scan_words(piece) {
        ctx.add(intent, Kind::Sql, span, why);
    }
}

fn scan_words(piece: &str) -> Vec<(Intent, String)> {
    let tokens: Vec<TokenWithSpan> =
        match Tokenizer::new(&MySqlDialect {}, piece).tokenize_with_location() {
            Ok(t) => t,
            Err(_) => match Tokenizer::new(&GenericDialect {}, piece).tokenize_with_location() {
                Ok(t) => t,
                Err(_) => return Vec::new(),
            },
        };
    let words: Vec<String> = tokens
        .iter()
        .filter_map(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
            Token::SemiColon => Some(";".into()),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    let mut statement_start = true;
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).map(String::as_str).unwrap_or("");
        if statement_start {
            match w.as_str() {
                "drop" | "truncate" => {
                    out.push((Intent::Destructive, format!("{w} {next} (unparsed)")))
                }
                "delete" | "update" => {
                    let has_where = words[i..]
                        .iter()
                        .take_while(|x| x.as_str() != ";")
                        .any(|x| x == "where");
                    if !has_where {
                        out.push((Intent::Destructive, format!("{w} without WHERE (unparsed)")));
                    }
                }
                "grant" => out.push((Intent::PrivilegeEscalation, "GRANT (unparsed)".into())),
                _ => {}
            }
        }
        statement_start = w == ";";
        match w.as_str() {
            "outfile" | "dumpfile" if i > 0 && words[i - 1] == "into" => out.push((
                Intent::Exfiltration,
                format!("INTO {} (unparsed)", w.to_uppercase()),
            )),
            "program" if words[..i].iter().any(|x| x == "copy") => {
                out.push((Intent::CodeExecution, "COPY … PROGRAM (unparsed)".into()))
            }
            "infile" | "load_file" | "pg_read_file" | "pg_read_binary_file" => out.push((
                Intent::CredentialAccess,
                format!("{w} reads server files (unparsed)"),
            )),
            w2 if EXEC_FUNCTIONS.contains(&w2) => {
                out.push((Intent::CodeExecution, format!("{w2} (unparsed)")))
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// [`head`] as it was written first: join the words, then cut.
    fn head_by_words(source: &str) -> String {
        let line: Vec<&str> = source.split_whitespace().collect();
        truncate_chars(&line.join(" "), 80)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The byte-wise ASCII path gives what joining the words and cutting does,
        /// around the 80-character cut and with every ASCII whitespace.
        #[test]
        fn head_of_ascii_is_the_words_joined_and_cut(
            parts in prop::collection::vec(
                prop_oneof!["[a-z(),=']{1,12}", "[ \t\n\r\x0B\x0C]{1,3}"],
                0..40,
            ),
        ) {
            let text = parts.concat();
            prop_assert_eq!(head(&text), head_by_words(&text));
        }
    }

    #[test]
    fn head_cuts_at_80_characters_like_the_word_join() {
        for n in [78, 79, 80, 81] {
            for tail in ["", " ", " b", "\x0Bb", "b"] {
                let text = format!("{}{tail}", "a".repeat(n));
                assert_eq!(head(&text), head_by_words(&text), "{text:?}");
            }
        }
        assert_eq!(head("DELETE  FROM\n t"), "DELETE FROM t");
        assert_eq!(head("é  x"), "é x", "non-ASCII keeps the general path");
    }

    #[test]
    fn line_index_maps_character_columns_to_bytes() {
        let text = "ab\néx y\n";
        let idx = LineIndex::new(text);
        let at = |line, column| idx.offset(Location { line, column });
        assert_eq!(at(1, 1), 0);
        assert_eq!(at(1, 3), 2);
        assert_eq!(at(2, 1), 3);
        // 'é' is two bytes: the second column starts at byte 5.
        assert_eq!(at(2, 2), 5);
        assert_eq!(at(2, 4), 7);
        // Past a line's end the count runs on into the next line, and past the
        // text's end it is the end.
        assert_eq!(at(3, 1), text.len());
        assert_eq!(at(9, 1), text.len());
        assert_eq!(at(2, 99), text.len());
        assert_eq!(at(0, 0), 0);
    }

    fn where_of(sql: &str) -> Expr {
        match Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0)
        {
            Statement::Delete(d) => d.selection.unwrap(),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn always_true_where_clauses() {
        for w in [
            "1=1",
            "true",
            "'a'='a'",
            "x=x",
            "1",
            "2>1",
            "id=5 OR 1=1",
            "NOT false",
            "name LIKE '%'",
            "(1)=(1)",
            "'1'=1",
        ] {
            assert!(
                always_true(&where_of(&format!("DELETE FROM t WHERE {w}"))),
                "{w}"
            );
        }
        for w in [
            "id=5",
            "1=2",
            "x=y",
            "a AND 1=1",
            "name LIKE 'a%'",
            "x = NULL",
        ] {
            assert!(
                !always_true(&where_of(&format!("DELETE FROM t WHERE {w}"))),
                "{w}"
            );
        }
    }

    #[test]
    fn mysql_executable_comments_are_code() {
        assert_eq!(
            unwrap_mysql_comments("/*!50000DROP*/ TABLE x").as_deref(),
            Some(" DROP  TABLE x")
        );
        assert_eq!(
            unwrap_mysql_comments("SELECT '/*!x*/'").as_deref(),
            Some("SELECT '/*!x*/'")
        );
    }
}
