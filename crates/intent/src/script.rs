//! Inline scripts (`python -c`, `perl -e`, `node -e`, `awk '…'`...).
//!
//! There is no parser here for every scripting language, so this is a lexical
//! reading: the code is split into string literals and the rest; calls that
//! run commands or open sockets are looked up in the code outside strings, and
//! the strings themselves are judged as data (credential paths, URLs) or, when
//! they are the argument of a command-running call, classified as shell.

use base64::Engine as _;

use crate::analyze::{Ctx, Origin};
use crate::{Intent, Kind, Span, path, url_kind};

/// The scripting language of an inline program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lang {
    Python,
    Perl,
    Ruby,
    Node,
    Php,
    Lua,
    Awk,
    PowerShell,
    Other,
}

impl Lang {
    pub fn of(name: &str) -> Option<Lang> {
        // Without a version suffix (`python3.12`), counted in bytes.
        let suffix = name
            .bytes()
            .rev()
            .take_while(|&c| c.is_ascii_digit() || c == b'.')
            .count();
        let stem = &name[..name.len() - suffix];
        Some(match stem.as_bytes() {
            b"python" | b"pypy" | b"ipython" => Lang::Python,
            b"perl" => Lang::Perl,
            b"ruby" | b"irb" => Lang::Ruby,
            b"node" | b"nodejs" | b"deno" | b"bun" => Lang::Node,
            b"php" => Lang::Php,
            b"lua" | b"luajit" => Lang::Lua,
            b"awk" | b"gawk" | b"mawk" | b"nawk" | b"busybox awk" => Lang::Awk,
            b"pwsh" | b"powershell" => Lang::PowerShell,
            b"Rscript" | b"tclsh" | b"osascript" | b"jshell" | b"groovy" => Lang::Other,
            _ => return None,
        })
    }

    /// The flag that passes code inline.
    pub fn inline_flags(self) -> &'static [&'static str] {
        match self {
            Lang::Python => &["-c"],
            Lang::Perl | Lang::Ruby => &["-e", "-E"],
            Lang::Node => &["-e", "--eval", "-p", "--print", "eval"],
            Lang::Php => &["-r"],
            Lang::Lua => &["-e"],
            Lang::PowerShell => &[
                "-c",
                "-command",
                "-Command",
                "-e",
                "-EncodedCommand",
                "-enc",
            ],
            Lang::Awk => &[],
            Lang::Other => &["-e", "-c"],
        }
    }
}

/// Calls that run an operating-system command; their string argument is shell.
const EXEC_CALLS: &[&str] = &[
    "os.system",
    "os.popen",
    "os.exec",
    "os.spawn",
    "subprocess.",
    "pty.spawn",
    "commands.getoutput",
    "child_process",
    "execSync",
    "spawnSync",
    "execFile",
    "shell_exec",
    "passthru",
    "proc_open",
    "popen",
    "os.execute",
    "io.popen",
    "IO.popen",
    "Open3",
    "Runtime.getRuntime",
    "Start-Process",
    "Invoke-Expression",
    "iex ",
    "system(",
    "system (",
    "exec(",
    "spawn(",
    "qx",
    "%x",
    "`",
    "| getline",
    "|getline",
    "Process.Start",
];
/// Calls that evaluate code built at run time.
const EVAL_CALLS: &[&str] = &[
    "eval(",
    "exec(",
    "compile(",
    "__import__",
    "Function(",
    "assert(",
];
/// Calls that open network connections.
const NET_CALLS: &[&str] = &[
    "socket",
    "urlopen",
    "urllib",
    "requests.",
    "http.client",
    "httplib",
    "fetch(",
    "net.connect",
    "net.Socket",
    "http.request",
    "https.request",
    "IO::Socket",
    "LWP::",
    "fsockopen",
    "TCPSocket",
    "Net::HTTP",
    "curl_exec",
    "Invoke-WebRequest",
    "Invoke-RestMethod",
    "WebClient",
    "/inet/tcp",
];
/// Calls that send data (as opposed to fetching).
const SEND_CALLS: &[&str] = &[
    ".post(",
    ".put(",
    "send(",
    "sendall(",
    "sendto(",
    ".write(",
    "method:'POST'",
    "method: 'POST'",
    "method:\"POST\"",
    "method: \"POST\"",
    "data=",
    "UploadFile",
    "UploadString",
    "-Method Post",
    "connect(",
    "print |&",
];
/// Calls that delete recursively.
const DELETE_CALLS: &[&str] = &[
    "shutil.rmtree",
    "rmtree(",
    "rmSync",
    "rmdirSync",
    "rm_rf",
    "rm_r",
    "FileUtils.rm",
    "Remove-Item",
    "remove_tree",
    "rimraf",
];
/// Markers of writing files.
const WRITE_MARKERS: &[&str] = &[
    "'w'",
    "\"w\"",
    "'a'",
    "\"a\"",
    "'wb'",
    "'ab'",
    ">>",
    "writeFile",
    "appendFile",
    "write_text",
    "File.write",
    "file_put_contents",
    "Set-Content",
    "Add-Content",
    "Out-File",
    "print >",
    "printf >",
];

pub(crate) fn analyze(ctx: &mut Ctx<'_>, lang: Lang, code: &str, origin: Origin, span: Span) {
    let (strings, bare) = split_strings(code, lang);
    let mut exec = EXEC_CALLS.iter().any(|c| bare.contains(c));
    if lang == Lang::Awk {
        exec = bare.contains("system(")
            || bare.contains("getline")
            || bare.contains("| \"")
            || bare.contains("|\"");
    }
    let eval = EVAL_CALLS.iter().any(|c| bare.contains(c));
    let net = NET_CALLS
        .iter()
        .any(|c| bare.contains(c) || code.contains(c));
    let send = SEND_CALLS.iter().any(|c| bare.contains(c));
    let writes = WRITE_MARKERS.iter().any(|c| code.contains(c));
    let deletes = DELETE_CALLS.iter().any(|c| bare.contains(c));
    let head = crate::analyze::truncate_chars(code.trim(), 80);

    if exec {
        ctx.add(
            Intent::CodeExecution,
            Kind::Shell,
            span,
            format!("inline {lang:?} code runs commands: {head}"),
        );
    }
    if net && (send || exec) {
        ctx.add(
            Intent::Exfiltration,
            Kind::Shell,
            span,
            format!("inline {lang:?} code sends data over the network: {head}"),
        );
    }
    if deletes {
        ctx.add(
            Intent::Destructive,
            Kind::Shell,
            span,
            format!("inline {lang:?} code deletes recursively: {head}"),
        );
    }
    for s in &strings {
        if exec && (s.contains(' ') || s.starts_with('/')) && !s.starts_with("/dev/") {
            ctx.nested(Kind::Shell, s, origin);
        }
        if let Some(r) = path::credential_reason(s.trim()) {
            ctx.add(
                Intent::CredentialAccess,
                Kind::Shell,
                span,
                format!("inline {lang:?} code opens {s}: {r}"),
            );
        }
        if writes {
            if let Some(r) = path::persistence_reason(s.trim()) {
                ctx.add(
                    Intent::Persistence,
                    Kind::Shell,
                    span,
                    format!("writes {s}: {r}"),
                );
            }
            if let Some(r) = path::privilege_reason(s.trim()) {
                ctx.add(
                    Intent::PrivilegeEscalation,
                    Kind::Shell,
                    span,
                    format!("writes {s}: {r}"),
                );
            }
        }
        if url_kind::looks_like_url(s.trim()) {
            url_kind::check_url_text(ctx, s.trim(), span);
        }
        // exec(base64.b64decode('...')), eval(atob('...')): decode and read again.
        if (eval || exec) && s.len() >= 16 {
            let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&compact)
                && let Ok(decoded) = String::from_utf8(bytes)
                && decoded
                    .chars()
                    .all(|c| !c.is_control() || c == '\n' || c == '\t')
                && ctx.spend(decoded.len(), Kind::Shell, span)
            {
                let nested = origin.nested(0, 0);
                let nested = Origin {
                    outer: Some(span),
                    ..nested
                };
                if crate::shell::looks_like_shell(&decoded) {
                    ctx.nested(Kind::Shell, &decoded, nested);
                } else {
                    analyze(ctx, lang, &decoded, nested, span);
                }
                if !ctx.has(Intent::CodeExecution) {
                    ctx.add(
                        Intent::CodeExecution,
                        Kind::Shell,
                        span,
                        format!("inline {lang:?} code evaluates a decoded payload"),
                    );
                }
            }
        }
    }
    if eval && !exec && strings.is_empty() && bare.contains("input") {
        ctx.add(
            Intent::CodeExecution,
            Kind::Shell,
            span,
            format!("inline {lang:?} code evaluates its input"),
        );
    }
}

/// Splits code into its string literals and the code outside them.
fn split_strings(code: &str, lang: Lang) -> (Vec<String>, String) {
    let mut strings = Vec::new();
    let mut bare = String::with_capacity(code.len());
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        let quote = matches!(c, '\'' | '"') || (c == '`' && lang == Lang::Node);
        if !quote {
            bare.push(c);
            continue;
        }
        bare.push(c);
        let mut s = String::new();
        while let Some(d) = chars.next() {
            if d == '\\' {
                match chars.next() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some(e) => s.push(e),
                    None => {}
                }
                continue;
            }
            if d == c {
                break;
            }
            s.push(d);
        }
        bare.push(c);
        strings.push(s);
    }
    (strings, bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_separated_from_code() {
        let (s, bare) = split_strings(r#"import os; os.system("rm -rf /")"#, Lang::Python);
        assert_eq!(s, vec!["rm -rf /".to_string()]);
        assert!(bare.contains("os.system(\"\")"));
    }
}
