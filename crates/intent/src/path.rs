//! File paths: lexical resolution, sensitive files, traversal.

use std::borrow::Cow;

use crate::analyze::{Ctx, Origin};
use crate::{Intent, Kind};

/// Resolves a path lexically: `$HOME`, `${HOME}`, `/root` and `/home/<user>`
/// become `~`; `$TMPDIR` becomes `/tmp`; backslashes are separators; empty
/// and `.` segments are dropped and `..` pops a segment. A leading `..` that
/// escapes the start is kept. Percent-encoded bytes are decoded first when the
/// path contains `%2e`, `%2f` or `%5c` (any case).
pub(crate) fn canonical(raw: &str) -> String {
    canonical_cow(raw).into_owned()
}

/// [`canonical`], borrowing `raw` when it is already canonical (most words
/// are: `src/`, `-n`, `origin`), which [`is_canonical`] tells cheaply.
pub(crate) fn canonical_cow(raw: &str) -> Cow<'_, str> {
    if is_canonical(raw) {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(canonical_slow(raw))
    }
}

/// Whether [`canonical_slow`] returns `raw` unchanged, judged without
/// building it: nothing to decode or expand (`%`, `\\`, `$`, `~`, `/root`,
/// `/home/`), and no empty, `.` or `..` segment (an absolute path has only
/// its leading empty one). Over-strict is fine: the slow path is exact.
fn is_canonical(raw: &str) -> bool {
    let b = raw.as_bytes();
    if b.is_empty() || b.iter().any(|&c| c == b'%' || c == b'\\') {
        return false;
    }
    if matches!(b[0], b'$' | b'~') || raw.starts_with("/root") || raw.starts_with("/home/") {
        return false;
    }
    let rest = raw.strip_prefix('/').unwrap_or(raw);
    !rest.is_empty()
        && rest
            .as_bytes()
            .split(|&c| c == b'/')
            .all(|seg| !matches!(seg, b"" | b"." | b".."))
}

fn canonical_slow(raw: &str) -> String {
    let decoded;
    let mut p = raw;
    if encodes_separator(p) {
        decoded = percent_decode(p);
        p = &decoded;
    }
    let p: std::borrow::Cow<'_, str> = if p.contains('\\') {
        p.replace('\\', "/").into()
    } else {
        p.into()
    };
    let mut rest: &str = &p;
    let mut prefix = "";
    for (from, to) in [
        ("${HOME}", "~"),
        ("$HOME", "~"),
        ("${TMPDIR}", "/tmp"),
        ("$TMPDIR", "/tmp"),
        ("/root", "~"),
    ] {
        if let Some(r) = rest.strip_prefix(from)
            && (r.is_empty() || r.starts_with('/'))
        {
            prefix = to;
            rest = r;
            break;
        }
    }
    let home_user;
    if prefix.is_empty() {
        if let Some(r) = rest.strip_prefix("/home/") {
            let (_user, tail) = r.split_once('/').unwrap_or((r, ""));
            home_user = format!("/{tail}");
            prefix = "~";
            rest = &home_user;
        } else if let Some(r) = rest.strip_prefix('~') {
            // `~` or `~user`
            let tail = r.find('/').map_or("", |i| &r[i..]);
            prefix = "~";
            rest = tail;
        } else if rest.starts_with('/') {
            prefix = "/";
        }
    }
    let mut segs: Vec<&str> = Vec::new();
    let mut escapes = 0usize;
    for seg in rest.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if segs.pop().is_none() && prefix.is_empty() {
                    escapes += 1;
                }
            }
            s => segs.push(s),
        }
    }
    let mut out = String::with_capacity(rest.len() + 2);
    match prefix {
        "/" => out.push('/'),
        "~" => {
            out.push('~');
            if !segs.is_empty() {
                out.push('/');
            }
        }
        "/tmp" => {
            out.push_str("/tmp");
            if !segs.is_empty() {
                out.push('/');
            }
        }
        _ => {
            for _ in 0..escapes {
                out.push_str("../");
            }
        }
    }
    for (i, seg) in segs.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(seg);
    }
    out
}

/// Whether `p` percent-encodes a `.`, `/` or `\\` (`%2e`, `%2f`, `%5c`, any
/// case): only then does [`canonical`] decode it.
fn encodes_separator(p: &str) -> bool {
    p.as_bytes().windows(3).any(|w| {
        w[0] == b'%' && matches!(&[w[1], w[2].to_ascii_lowercase()], b"2e" | b"2f" | b"5c")
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn basename(p: &str) -> &str {
    match p.bytes().rposition(|c| c == b'/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

pub(crate) fn has_glob(p: &str) -> bool {
    p.bytes().any(|c| matches!(c, b'*' | b'?' | b'['))
}

/// The bytes the path rules look for, one bit each in [`byte_classes`],
/// so that one pass over a word answers every "does it contain" question.
pub(crate) mod class {
    pub const DOT: u16 = 1 << 0;
    pub const TILDE: u16 = 1 << 1;
    pub const SLASH: u16 = 1 << 2;
    pub const BACKSLASH: u16 = 1 << 3;
    pub const DOLLAR: u16 = 1 << 4;
    /// `*`, `?` or `[` ([`super::has_glob`]).
    pub const GLOB: u16 = 1 << 5;
    pub const UNDERSCORE: u16 = 1 << 6;
    pub const PERCENT: u16 = 1 << 7;
    pub const EQUALS: u16 = 1 << 8;
    /// The shell's placeholder for a value known only at run time (U+0001).
    pub const PLACEHOLDER: u16 = 1 << 9;
}

const CLASSES: [u16; 256] = {
    let mut t = [0u16; 256];
    t[b'.' as usize] = class::DOT;
    t[b'~' as usize] = class::TILDE;
    t[b'/' as usize] = class::SLASH;
    t[b'\\' as usize] = class::BACKSLASH;
    t[b'$' as usize] = class::DOLLAR;
    t[b'*' as usize] = class::GLOB;
    t[b'?' as usize] = class::GLOB;
    t[b'[' as usize] = class::GLOB;
    t[b'_' as usize] = class::UNDERSCORE;
    t[b'%' as usize] = class::PERCENT;
    t[b'=' as usize] = class::EQUALS;
    t[1] = class::PLACEHOLDER;
    t
};

/// Which [`class`] bytes occur in `s`.
pub(crate) fn byte_classes(s: &str) -> u16 {
    s.bytes().fold(0, |m, c| m | CLASSES[usize::from(c)])
}

/// Representative sensitive paths a glob is tested against.
const GLOB_CANDIDATES: &[&str] = &[
    "~/.ssh/id_rsa",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ecdsa",
    "~/.aws/credentials",
    "~/.kube/config",
    "~/.netrc",
    "~/.pgpass",
    "~/.git-credentials",
    "~/.docker/config.json",
    "/etc/shadow",
    "/etc/gshadow",
    "/proc/self/environ",
    "/proc/1/environ",
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ".env",
    "id_rsa",
    "id_ed25519",
];

/// Why reading `path` (canonical or not) accesses credentials, if it does.
pub(crate) fn credential_reason(path: &str) -> Option<&'static str> {
    credential_reason_classed(path, byte_classes(path))
}

/// [`credential_reason`] of a path whose [`byte_classes`] are known. The
/// one-pass screen is inlined into the callers (most words stop there);
/// the rest is not.
#[inline]
pub(crate) fn credential_reason_classed(path: &str, classes: u16) -> Option<&'static str> {
    if cannot_name_a_credential(path, classes) {
        return None;
    }
    credential_reason_unscreened(path, classes)
}

/// [`credential_reason_classed`] after the one-pass screen.
#[inline(never)]
fn credential_reason_unscreened(path: &str, classes: u16) -> Option<&'static str> {
    if relative_without_secret_names(path, classes) {
        return None;
    }
    credential_reason_full(path)
}

/// Whether `raw` is a relative path (nothing to expand or decode, no glob)
/// none of whose segments is a secret's file name. Its canonical form then
/// starts with neither `~` nor `/`, so only the file-name rules apply, and
/// its basename is one of its segments (resolution only drops and pops
/// segments), which none of those rules flags.
fn relative_without_secret_names(raw: &str, classes: u16) -> bool {
    use class::*;
    if raw.starts_with('/') || classes & (TILDE | DOLLAR | PERCENT | BACKSLASH | GLOB) != 0 {
        return false;
    }
    // Every file-name rule needs an `id_` prefix or a `.`.
    if classes & (DOT | UNDERSCORE) == 0 {
        return true;
    }
    let mut rest = raw;
    loop {
        let (seg, next) = match rest.bytes().position(|c| c == b'/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if (seg.starts_with("id_") || seg.as_bytes().contains(&b'.'))
            && (is_ssh_key_name(seg) || secret_file_reason(seg).is_some())
        {
            return false;
        }
        match next {
            Some(n) => rest = n,
            None => return true,
        }
    }
}

/// [`credential_reason`] without the shortcut.
fn credential_reason_full(path: &str) -> Option<&'static str> {
    let c = canonical_cow(path);
    if has_glob(&c) {
        let matches = GLOB_CANDIDATES.iter().any(|cand| {
            if c.contains('/') {
                glob_match(&c, cand)
            } else {
                glob_match(&c, basename(cand))
            }
        });
        return matches.then_some("glob that matches a credential file");
    }
    credential_reason_canonical(&c)
}

/// Whether `raw` is a word [`credential_reason`] never flags, told in one
/// pass over its bytes. Every rule needs one of these in the canonical form:
/// a glob (`*?[`), a `~` or `/` prefix (home and system files), a `.` in the
/// basename (`.env`, key suffixes, `secrets.json`…), or an `id_` basename
/// (SSH keys). [`canonical`] introduces `~`, `/` or `.` only from `\\`, `$`,
/// `~`, `/` or a percent-encoded separator in the raw word, so a word with
/// none of those and no `id_` canonicalises to itself and matches no rule
/// (`credential_shortcut_is_exact` checks this against the full rules).
///
/// An absolute path with no `.`, `~`, `\\`, `$`, glob, `_` or `%`
/// canonicalises to itself less empty segments, so its first segment stays first; a system
/// rule then needs that segment to start with `e`, `v`, `r` or `p` (`h`:
/// `/home/` becomes `~`), and every other rule needs a `.` or an `_`.
#[inline]
fn cannot_name_a_credential(raw: &str, classes: u16) -> bool {
    use class::*;
    if classes & (DOT | TILDE | BACKSLASH | DOLLAR | GLOB | UNDERSCORE | PERCENT) == 0
        && let [b'/', second, ..] = raw.as_bytes()
        && !matches!(second, b'/' | b'e' | b'v' | b'r' | b'p' | b'h')
    {
        return true;
    }
    if classes & (DOT | TILDE | SLASH | BACKSLASH | DOLLAR | GLOB) != 0 {
        return false;
    }
    // `id_` needs a `_` and an encoded separator a `%`.
    classes & (UNDERSCORE | PERCENT) == 0
        || (!raw.as_bytes().windows(3).any(|w| w == b"id_") && !encodes_separator(raw))
}

/// Credential files under a home directory (canonical form).
const HOME_SECRETS: &[&str] = &[
    "~/.aws",
    "~/.config/gcloud",
    "~/.azure",
    "~/.kube/config",
    "~/.docker/config.json",
    "~/.netrc",
    "~/.pgpass",
    "~/.my.cnf",
    "~/.git-credentials",
    "~/.npmrc",
    "~/.pypirc",
    "~/.gnupg",
    "~/.password-store",
    "~/.vault-token",
    "~/.config/gh/hosts.yml",
    "~/.cargo/credentials",
    "~/.cargo/credentials.toml",
    "~/.terraform.d/credentials.tfrc.json",
    "~/.bash_history",
    "~/.zsh_history",
    "~/.psql_history",
    "~/.mysql_history",
];
/// System credential files and directories.
const SYSTEM_SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/shadow-",
    "/etc/master.passwd",
    "/etc/security/opasswd",
    "/etc/ssl/private",
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/pki",
    "/var/run/secrets",
    "/run/secrets",
    "/proc/self/environ",
    "/etc/sudoers",
];

fn credential_reason_canonical(c: &str) -> Option<&'static str> {
    let base = basename(c);
    if c == "~/.ssh" || c.starts_with("~/.ssh/") {
        if !(matches!(
            base,
            "known_hosts" | "config" | "authorized_keys" | "known_hosts.old"
        ) || base.ends_with(".pub"))
        {
            return Some("SSH private keys");
        }
        return None;
    }
    if is_ssh_key_name(base) {
        return Some("SSH private key");
    }
    // Every home entry starts with `~`, every system entry with `/` and
    // then `e`, `v`, `r` or `p`, as do the two rules after the loop.
    let secrets = match c.as_bytes() {
        [b'~', ..] => HOME_SECRETS,
        [b'/', b'e' | b'v' | b'r' | b'p', ..] => SYSTEM_SECRETS,
        _ => return secret_file_reason(base),
    };
    for s in secrets {
        if under(c, s) {
            return Some(if s.starts_with('~') {
                "credential file in a home directory"
            } else {
                "system credential file"
            });
        }
    }
    if c.starts_with("/etc/ssh/ssh_host_") && !c.ends_with(".pub") {
        return Some("SSH host private key");
    }
    if let Some(rest) = c.strip_prefix("/proc/")
        && let Some((_pid, file)) = rest.split_once('/')
        && matches!(file, "environ" | "mem" | "maps")
    {
        return Some("process environment or memory");
    }
    secret_file_reason(base)
}

/// The SSH private keys known by their file name alone.
fn is_ssh_key_name(base: &str) -> bool {
    matches!(
        base,
        "id_rsa" | "id_dsa" | "id_ecdsa" | "id_ed25519" | "id_ecdsa_sk" | "id_ed25519_sk"
    )
}

/// Secrets known by their file name wherever they are: dotenv files,
/// private keys and key stores, secrets manifests.
fn secret_file_reason(base: &str) -> Option<&'static str> {
    // Every name below has a `.`.
    if !base.as_bytes().contains(&b'.') {
        return None;
    }
    if base == ".env"
        || (base.starts_with(".env.")
            && !matches!(
                &base[5..],
                "example" | "sample" | "template" | "dist" | "defaults" | "schema"
            ))
    {
        return Some("dotenv secrets file");
    }
    // Compared without case, and without allocating a lowercase copy.
    let ends = |suffix: &str| {
        base.len() >= suffix.len()
            && base.as_bytes()[base.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    let contains = |needle: &str| {
        base.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    };
    if ends(".key")
        || ends(".p12")
        || ends(".pfx")
        || ends(".jks")
        || (ends(".pem") && (contains("key") || contains("priv")))
        || [
            "credentials.json",
            "secrets.json",
            "secrets.yaml",
            "secrets.yml",
            "terraform.tfstate",
        ]
        .iter()
        .any(|n| base.eq_ignore_ascii_case(n))
    {
        return Some("private key or secrets file");
    }
    None
}

/// Whether canonical `c` is `root` or below it.
fn under(c: &str, root: &str) -> bool {
    let (c, r) = (c.as_bytes(), root.as_bytes());
    // Most candidates differ by their second byte (`/etc` against `/tmp`):
    // rejected before the full comparison.
    if c.len() < r.len() || (r.len() > 1 && c[1] != r[1]) {
        return false;
    }
    c.starts_with(r) && (c.len() == r.len() || c[r.len()] == b'/')
}

/// Why writing `path` persists across sessions, if it does.
pub(crate) fn persistence_reason(path: &str) -> Option<&'static str> {
    persistence_reason_canonical(&canonical_cow(path))
}

/// Shell startup files (canonical form).
const STARTUP_FILES: &[&str] = &[
    "~/.bashrc",
    "~/.bash_profile",
    "~/.bash_login",
    "~/.bash_logout",
    "~/.profile",
    "~/.zshrc",
    "~/.zprofile",
    "~/.zshenv",
    "~/.zlogin",
    "~/.config/fish",
    "/etc/profile",
    "/etc/profile.d",
    "/etc/bash.bashrc",
    "/etc/bashrc",
    "/etc/zshrc",
    "/etc/zsh",
    "/etc/environment",
];
/// Scheduler, service and login configuration (canonical form).
const SCHEDULER_FILES: &[&str] = &[
    "/etc/crontab",
    "/etc/cron.d",
    "/etc/cron.daily",
    "/etc/cron.hourly",
    "/etc/cron.weekly",
    "/etc/cron.monthly",
    "/var/spool/cron",
    "/etc/systemd",
    "/lib/systemd/system",
    "/usr/lib/systemd",
    "~/.config/systemd",
    "/etc/init.d",
    "/etc/init",
    "/etc/rc.local",
    "/etc/xdg/autostart",
    "~/.config/autostart",
    "/Library/LaunchAgents",
    "/Library/LaunchDaemons",
    "~/Library/LaunchAgents",
    "/etc/update-motd.d",
    "~/.ssh/authorized_keys",
    "~/.ssh/rc",
];

/// [`persistence_reason`] of a canonical path.
pub(crate) fn persistence_reason_canonical(c: &str) -> Option<&'static str> {
    // Every entry starts with `~` or with `/` and one of these bytes: one
    // test passes most paths.
    if !matches!(
        c.as_bytes(),
        [b'~', ..] | [b'/', b'e' | b'v' | b'l' | b'u' | b'L', ..]
    ) {
        return c.contains(".git/hooks/").then_some("git hook");
    }
    if STARTUP_FILES.iter().any(|r| under(c, r)) {
        return Some("shell startup file");
    }
    if SCHEDULER_FILES.iter().any(|r| under(c, r)) {
        return Some("scheduler, service or login configuration");
    }
    if c.contains(".git/hooks/") {
        return Some("git hook");
    }
    None
}

/// Why writing `path` grants privileges, if it does.
pub(crate) fn privilege_reason(path: &str) -> Option<&'static str> {
    privilege_reason_canonical(&canonical_cow(path))
}

/// Account, sudo and loader configuration (canonical form).
const PRIVILEGE_FILES: &[&str] = &[
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/doas.conf",
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/ld.so.preload",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/pam.d",
    "/etc/security",
];

/// [`privilege_reason`] of a canonical path.
pub(crate) fn privilege_reason_canonical(c: &str) -> Option<&'static str> {
    // All under `/etc/`.
    (c.starts_with("/etc/") && PRIVILEGE_FILES.iter().any(|r| under(c, r)))
        .then_some("account, sudo or loader configuration")
}

/// A system directory, where world-writable modes or ownership changes matter.
pub(crate) fn is_system_path(path: &str) -> bool {
    let c = canonical_cow(path);
    if c == "/" || c == "~" || c == "/*" {
        return true;
    }
    const ROOTS: &[&str] = &[
        "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/boot", "/var", "/sys",
        "/proc", "/dev", "/opt", "/srv", "/home", "/root", "~/.ssh",
    ];
    ROOTS.iter().any(|r| under(&c, r))
}

/// A scratch location where deleting is routine.
pub(crate) fn is_temp(path: &str) -> bool {
    // A canonical form can start with `/` only when the path starts with
    // `/`, `$` (`$TMPDIR`), `\\` or `%` (an encoded separator).
    if !matches!(path.as_bytes().first(), Some(b'/' | b'$' | b'\\' | b'%')) {
        return false;
    }
    let c = canonical_cow(path);
    ["/tmp/", "/var/tmp/", "/dev/shm/"]
        .iter()
        .any(|t| c.starts_with(t) && c.len() > t.len())
}

/// A raw disk or memory device, where writing destroys data.
/// Takes the canonical form ([`canonical_cow`]).
pub(crate) fn is_block_device_canonical(c: &str) -> bool {
    let Some(dev) = c.strip_prefix("/dev/") else {
        return false;
    };
    [
        "sd", "hd", "vd", "xvd", "nvme", "mmcblk", "disk", "mapper/", "md", "dm-", "loop", "mem",
        "kmem", "port", "nbd",
    ]
    .iter()
    .any(|p| dev.starts_with(p))
}

/// Glob match with `*`, `?` and `[...]` classes; `*` does not cross `/`.
/// Linear in practice: classic two-pointer backtracking on the last `*` only.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    let leading_dot = |ti: usize| t[ti] == '.' && (ti == 0 || t[ti - 1] == '/');
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' | '?' | '[' if leading_dot(ti) => {}
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' if t[ti] != '/' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class_match(&p, pi, t[ti])
                        && matched
                    {
                        pi = next;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) if t[st] != '/' && !leading_dot(st) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            _ => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`; returns
/// (matched, index after the class), or None if the class is not closed.
fn class_match(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// Whether a bare string is confidently a path.
pub(crate) fn looks_like_path(t: &str) -> bool {
    if t.contains(char::is_whitespace) || t.len() > 4096 || t.contains("://") {
        return false;
    }
    t.starts_with('/')
        || t.starts_with("~/")
        || t.starts_with("./")
        || t.starts_with("../")
        || t.starts_with("..\\")
        || t.starts_with("$HOME/")
        || (t.len() > 2 && t.as_bytes()[1] == b':' && matches!(t.as_bytes()[2], b'\\' | b'/'))
        || credential_reason(t).is_some()
        || t.contains("../")
        || t.contains("..\\")
}

/// `path` kind: sensitive files and traversal out of the declared roots.
pub(crate) fn analyze(ctx: &mut Ctx<'_>, text: &str, origin: Origin) {
    let raw = text.trim();
    let span = origin.span(0, text.len());
    if raw.is_empty() {
        return;
    }
    if raw.contains('\0') || raw.contains('\n') {
        ctx.add(
            Intent::Unknown,
            Kind::Path,
            span,
            "path contains control characters",
        );
    }
    if let Some(reason) = credential_reason(raw) {
        ctx.add(
            Intent::CredentialAccess,
            Kind::Path,
            span,
            format!("{raw}: {reason}"),
        );
    }
    let c = canonical(raw);
    let roots = &ctx.config.path_roots;
    if c.starts_with("../") {
        ctx.add(
            Intent::PrivilegeEscalation,
            Kind::Path,
            span,
            format!("{raw}: traversal escapes its starting directory"),
        );
    } else if !roots.is_empty() {
        let inside = if c.starts_with('/') || c.starts_with('~') {
            roots.iter().any(|r| under(&c, &canonical(r)))
        } else {
            // Relative: resolved against each root, must stay inside it.
            roots.iter().any(|r| {
                let root = canonical(r);
                under(&canonical(&format!("{root}/{c}")), &root)
            })
        };
        if !inside {
            ctx.add(
                Intent::PrivilegeEscalation,
                Kind::Path,
                span,
                format!("{raw}: outside the declared roots"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_screens_cover_every_rule() {
        // `credential_reason_canonical` skips the system rules for a `/`
        // path whose second byte is none of these.
        for s in SYSTEM_SECRETS
            .iter()
            .chain(&["/etc/ssh/ssh_host_", "/proc/"])
        {
            assert!(matches!(s.as_bytes()[1], b'e' | b'v' | b'r' | b'p'), "{s}");
        }
        // `secret_file_reason` needs a `.` in the name.
        for n in ["app", "id_rsa", "key", "pem", "credentials", "env"] {
            assert_eq!(secret_file_reason(n), None, "{n}");
        }
        for n in [".env", "a.key", "secrets.json", "key.pem"] {
            assert!(secret_file_reason(n).is_some(), "{n}");
        }
        // `persistence_reason_canonical`'s first test.
        for s in STARTUP_FILES.iter().chain(SCHEDULER_FILES) {
            assert!(
                matches!(
                    s.as_bytes(),
                    [b'~', ..] | [b'/', b'e' | b'v' | b'l' | b'u' | b'L', ..]
                ),
                "{s}"
            );
        }
        assert!(persistence_reason_canonical("/srv/x/.git/hooks/pre-commit").is_some());
        assert!(persistence_reason_canonical("/etc/cron.d/x").is_some());
        assert_eq!(persistence_reason_canonical("/tmp/deploy.log"), None);
        // `privilege_reason_canonical`'s.
        for s in PRIVILEGE_FILES {
            assert!(s.starts_with("/etc/"), "{s}");
        }
        assert!(privilege_reason_canonical("/etc/sudoers.d/x").is_some());
        assert_eq!(privilege_reason_canonical("/etc"), None);
        // Absolute paths the one-pass screen passes, and some it must not.
        for p in ["/srv/app", "/tmp/build-", "/usr/bin/x", "/a//b/"] {
            assert!(cannot_name_a_credential(p, byte_classes(p)), "{p}");
            assert_eq!(credential_reason_full(p), None, "{p}");
        }
        for p in [
            "/etc/shadow",
            "//etc/shadow",
            "/run/secrets",
            "/var/run/secrets/x",
            "/proc/1/environ",
            "/root/.ssh/id_rsa",
            "/home/u/.aws",
            "/x/id_rsa",
            "/x/.env",
        ] {
            assert!(!cannot_name_a_credential(p, byte_classes(p)), "{p}");
            assert!(credential_reason_full(p).is_some(), "{p}");
        }
    }

    #[test]
    fn canonical_resolves_home_and_dots() {
        assert_eq!(
            canonical("$HOME/.ssh/../.aws/credentials"),
            "~/.aws/credentials"
        );
        assert_eq!(canonical("/home/bob//.ssh/./id_rsa"), "~/.ssh/id_rsa");
        assert_eq!(canonical("/tmp/../etc/shadow"), "/etc/shadow");
        assert_eq!(canonical("../../etc/passwd"), "../../etc/passwd");
        assert_eq!(canonical("%2e%2e%2fetc%2fpasswd"), "../etc/passwd");
        assert_eq!(canonical("~root/.ssh"), "~/.ssh");
    }

    #[test]
    fn credentials_found_through_globs_and_dots() {
        assert!(credential_reason("~/.s*/id_*").is_some());
        assert!(credential_reason("/proc/*/environ").is_some());
        assert!(credential_reason("/etc/sha[d]ow").is_some());
        assert!(credential_reason("./.env").is_some());
        assert!(credential_reason(".env.example").is_none());
        assert!(credential_reason("~/.ssh/id_rsa.pub").is_none());
        assert!(credential_reason("src/*.rs").is_none());
    }

    #[test]
    fn credential_shortcut_keeps_every_listed_secret() {
        for p in HOME_SECRETS
            .iter()
            .chain(SYSTEM_SECRETS)
            .chain(GLOB_CANDIDATES)
        {
            assert!(!cannot_name_a_credential(p, byte_classes(p)), "{p}");
            assert!(credential_reason(p).is_some(), "{p}");
        }
        assert!(cannot_name_a_credential("origin", byte_classes("origin")));
        for p in [
            "./.env",
            "a/../id_rsa",
            "x/server.KEY",
            "secrets.yaml",
            "b/.env.local",
        ] {
            assert!(!relative_without_secret_names(p, byte_classes(p)), "{p}");
            assert!(credential_reason(p).is_some(), "{p}");
        }
        let url = "https://api.example.com/v1/health";
        assert!(relative_without_secret_names(url, byte_classes(url)));
        assert!(!cannot_name_a_credential("id_rsa", byte_classes("id_rsa")));
    }

    #[test]
    fn byte_classes_name_the_bytes_they_stand_for() {
        use class::*;
        assert_eq!(byte_classes("abc-09"), 0);
        assert_eq!(byte_classes("~/a.b"), TILDE | SLASH | DOT);
        assert_eq!(
            byte_classes("$x\\*?[_%=\u{1}"),
            DOLLAR | BACKSLASH | GLOB | UNDERSCORE | PERCENT | EQUALS | PLACEHOLDER
        );
        for s in ["*.log", "a?", "[ab]", "src/", "x"] {
            assert_eq!(byte_classes(s) & GLOB != 0, has_glob(s), "{s}");
        }
    }

    #[test]
    fn secret_lists_start_with_their_root() {
        // `credential_reason_canonical` picks the list by the first character.
        assert!(HOME_SECRETS.iter().all(|s| s.starts_with('~')));
        assert!(SYSTEM_SECRETS.iter().all(|s| s.starts_with('/')));
    }

    proptest::proptest! {
        /// The borrowed shortcut only takes paths the full resolution leaves
        /// as they are.
        #[test]
        fn canonical_shortcut_is_exact(s in "[a-z./~$%\\\\_{}A-Z-]{0,16}") {
            if is_canonical(&s) {
                proptest::prop_assert_eq!(canonical_slow(&s), s.clone());
            }
            proptest::prop_assert_eq!(canonical_cow(&s), canonical_slow(&s));
        }
        #[test]
        fn credential_shortcut_is_exact(s in "([a-z_.~/$%\\\\*?\\[A-Z0-9-]|id_|\\.ssh|\\.env|\\.key|%2e|%2F|%5c|%41){0,8}") {
            let classes = byte_classes(&s);
            if cannot_name_a_credential(&s, classes) || relative_without_secret_names(&s, classes) {
                proptest::prop_assert_eq!(credential_reason_full(&s), None);
            }
        }

        #[test]
        fn canonical_shortcut_on_path_like_words(
            parts in proptest::collection::vec(proptest::sample::select(&[
                "", ".", "..", "a", "etc", "root", "home", "~", "$HOME", "${HOME}", "$TMPDIR",
                "%2e", "x%2F", "\\", "tmp", ".ssh", "id_rsa",
            ][..]), 1..6),
            lead in proptest::bool::ANY,
        ) {
            let s = format!("{}{}", if lead { "/" } else { "" }, parts.join("/"));
            proptest::prop_assert_eq!(canonical_cow(&s), canonical_slow(&s));
        }
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match("a*c", "abbc"));
        assert!(!glob_match("a*c", "ab/c"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[!a-c]x", "bx"));
        assert!(glob_match("*", "anything"));
        assert!(!glob_match("*", ".env"));
        assert!(glob_match(".e*", ".env"));
    }
}
