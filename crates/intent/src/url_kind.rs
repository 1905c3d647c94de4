//! URLs: metadata endpoints, internal addresses in every notation, egress,
//! data-bearing queries, userinfo tricks, punycode and mixed-script hosts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use ipnet::{Ipv4Net, Ipv6Net};
use unicode_security::MixedScript;
use url::{Host, Url};

use crate::analyze::{Ctx, Origin};
use crate::{Intent, Kind, Span, path};

/// Shortest query/fragment value considered for "decodes to text".
const MIN_ENCODED_BLOB: usize = 16;
/// Values this long made only of base64/hex characters are data whatever they decode to.
const LONG_BLOB: usize = 64;

const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
];

/// Whether `t` is confidently a URL (has a scheme and no spaces).
pub(crate) fn looks_like_url(t: &str) -> bool {
    // `char::is_whitespace`, a byte at a time where the text is ASCII.
    let white = if t.is_ascii() {
        t.bytes().any(|b| matches!(b, b'\t'..=b'\r' | b' '))
    } else {
        t.contains(char::is_whitespace)
    };
    if white {
        return false;
    }
    let Some(colon) = t.bytes().position(|b| b == b':') else {
        return false;
    };
    let (scheme, rest) = (&t[..colon], &t[colon + 1..]);
    let scheme_ok = !scheme.is_empty()
        && scheme.as_bytes()[0].is_ascii_alphabetic()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    (scheme_ok
        && (rest.starts_with("//")
            || matches!(
                scheme.to_ascii_lowercase().as_str(),
                "javascript" | "data" | "file"
            )))
        || t.starts_with("www.")
}

pub(crate) fn analyze(ctx: &mut Ctx<'_>, text: &str, origin: Origin) {
    let raw = text.trim();
    let lead = text.len() - text.trim_start().len();
    let span = origin.span(lead, lead + raw.len());
    if raw.is_empty() {
        return;
    }
    let parsed = match Url::parse(raw) {
        Ok(u) => Ok(u),
        // A bare host (`evil.example/x`) is read as http; a broken URL is not.
        Err(e) if raw.contains("://") => Err(e),
        Err(_) => Url::parse(&format!("http://{raw}")),
    };
    let Ok(url) = parsed else {
        ctx.add(
            Intent::Unknown,
            Kind::Url,
            span,
            format!("not a URL: {raw}"),
        );
        return;
    };
    check_url(ctx, &url, span);
}

/// Classifies `text` when it parses as a URL (the shell's `curl`/`wget`
/// arguments, URLs in scripts); a URL [`plain_http_host`] reads is judged
/// by its host without the WHATWG parser, with the same result.
pub(crate) fn check_url_text(ctx: &mut Ctx<'_>, text: &str, span: Span) {
    if let Some(host) = plain_http_host(text) {
        // Lowercase, without a trailing dot or a punycode label: all that
        // `check_domain` adds to `check_host_name` is already so.
        check_host_name(ctx, host, span);
        if let Some(egress) = &ctx.config.egress
            && !egress.allows_normalized(host)
        {
            outside_egress(ctx, host, span);
        }
    } else if let Ok(url) = Url::parse(text) {
        check_url(ctx, &url, span);
    }
}

/// The host of an `http://` or `https://` URL that [`check_url`] would judge
/// by its domain name alone, read without the parser: a lowercase scheme,
/// then a host of lowercase letters, digits, `-` and `.` in non-empty labels
/// (so no userinfo, port, IP notation or uppercase to fold), no punycode
/// (`xn--`, which IDNA would check), a last label that starts with a letter
/// (so not a number, which WHATWG reads as IPv4), then nothing or a path of
/// printable ASCII without `?` or `#` (no query, no fragment). For such a
/// URL the parser's host is this text. Anything else returns `None`.
/// `plain_urls_match_the_parser` checks this against the `url` crate.
pub(crate) fn plain_http_host(text: &str) -> Option<&str> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))?;
    let b = rest.as_bytes();
    // One pass over the host: where it ends, and whether a label is empty
    // or starts with `xn--`.
    let mut host_len = b.len();
    let mut label_start = true;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'.' if label_start => return None,
            b'.' => label_start = true,
            b'a'..=b'z' | b'0'..=b'9' | b'-' => {
                if label_start && b[i..].starts_with(b"xn--") {
                    return None;
                }
                label_start = false;
            }
            _ => {
                host_len = i;
                break;
            }
        }
    }
    let (host, path) = rest.split_at(host_len);
    if !(path.is_empty() || path.starts_with('/'))
        || !path
            .bytes()
            .all(|c| c.is_ascii_graphic() && c != b'?' && c != b'#')
    {
        return None;
    }
    // The last label non-empty and starting with a letter.
    let h = host.as_bytes();
    let last = h.iter().rposition(|&c| c == b'.').map_or(0, |i| i + 1);
    if !h.get(last)?.is_ascii_lowercase() {
        return None;
    }
    Some(host)
}

/// Whether a label of domain `d` starts with `xn--` (punycode).
fn has_punycode_label(d: &str) -> bool {
    d.starts_with("xn--") || d.as_bytes().windows(5).any(|w| w == b".xn--")
}

/// Classifies a parsed URL (shared with the shell analysis of `curl`/`wget` arguments).
pub(crate) fn check_url(ctx: &mut Ctx<'_>, url: &Url, span: Span) {
    // The url crate keeps schemes in lowercase.
    let scheme = url.scheme();
    match scheme {
        "http" | "https" | "ws" | "wss" | "ftp" | "ftps" | "sftp" | "ssh" | "git" | "s3" | "gs"
        | "scp" | "rsync" | "smb" | "tcp" | "udp" => {}
        "file" => {
            let p = url.path();
            if let Some(reason) = path::credential_reason(p) {
                ctx.add(
                    Intent::CredentialAccess,
                    Kind::Url,
                    span,
                    format!("file URL {p}: {reason}"),
                );
            }
            return;
        }
        "javascript" | "vbscript" => {
            ctx.add(
                Intent::CodeExecution,
                Kind::Url,
                span,
                format!("{scheme}: URL runs code"),
            );
            return;
        }
        "data" => {
            if url.path().to_ascii_lowercase().starts_with("text/html") {
                ctx.add(
                    Intent::CodeExecution,
                    Kind::Url,
                    span,
                    "data: URL with HTML",
                );
            }
            return;
        }
        "gopher" | "dict" | "ldap" | "ldaps" | "jar" | "netdoc" | "tftp" => {
            ctx.add(
                Intent::Exfiltration,
                Kind::Url,
                span,
                format!("{scheme}: scheme used for request smuggling"),
            );
        }
        _ => {
            // mailto:, tel: and the like carry no host to judge.
            if url.host().is_none() {
                return;
            }
        }
    }

    let Some(host) = url.host() else {
        if url.cannot_be_a_base() {
            return;
        }
        ctx.add(Intent::Unknown, Kind::Url, span, "URL without a host");
        return;
    };

    if !url.username().is_empty() || url.password().is_some() {
        let user = url.username();
        if user.contains('.') || user.contains("%2") {
            ctx.add(
                Intent::Exfiltration,
                Kind::Url,
                span,
                format!("userinfo {user:?} disguises the real host {host}"),
            );
        } else if url.password().is_some() {
            ctx.add(
                Intent::CredentialAccess,
                Kind::Url,
                span,
                format!("credentials embedded in a URL for {host}"),
            );
        }
    }

    let host_text: std::borrow::Cow<'_, str> = match &host {
        Host::Domain(d) => (*d).into(),
        ip => ip.to_string().into(),
    };
    match host {
        Host::Ipv4(ip) => check_ip(ctx, IpAddr::V4(ip), &host_text, span),
        Host::Ipv6(ip) => check_ip(ctx, IpAddr::V6(ip), &host_text, span),
        Host::Domain(d) => check_domain(ctx, d, span),
    }
    check_egress(ctx, &host_text, span);

    let mut blobs = url
        .query_pairs()
        .map(|(_, v)| v.into_owned())
        .collect::<Vec<_>>();
    if let Some(f) = url.fragment() {
        blobs.extend(
            f.split('&')
                .map(|kv| kv.split_once('=').map_or(kv, |(_, v)| v).to_string()),
        );
    }
    if let Some(q) = url.query()
        && !q.contains('=')
    {
        blobs.push(q.to_string());
    }
    for v in blobs {
        if is_data_blob(&v) {
            ctx.add(
                Intent::Exfiltration,
                Kind::Url,
                span,
                format!(
                    "encoded data in the query or fragment: {}",
                    crate::analyze::truncate_chars(&v, 40)
                ),
            );
            break;
        }
    }
}

/// The checks on a domain host: metadata and loopback names, punycode
/// that imitates another name.
fn check_domain(ctx: &mut Ctx<'_>, d: &str, span: Span) {
    let d = d.trim_end_matches('.');
    let d: std::borrow::Cow<'_, str> = if d.bytes().any(|b| b.is_ascii_uppercase()) {
        d.to_ascii_lowercase().into()
    } else {
        d.into()
    };
    check_host_name(ctx, &d, span);
    if has_punycode_label(&d) {
        let (unicode, _) = idna::domain_to_unicode(&d);
        let mixed = unicode.split('.').any(|l| !l.is_single_script());
        // A label that is not ASCII but whose confusable skeleton is
        // (`ехаmple` in Cyrillic) imitates an ASCII name.
        let imitates_ascii = unicode
            .split('.')
            .any(|l| !l.is_ascii() && unicode_security::skeleton(l).all(|c| c.is_ascii()));
        if mixed || imitates_ascii {
            ctx.add(
                Intent::Exfiltration,
                Kind::Url,
                span,
                format!(
                    "{} host {unicode} ({d}) imitates another name",
                    if mixed {
                        "mixed-script"
                    } else {
                        "confusable punycode"
                    }
                ),
            );
        }
    }
}

/// Metadata and loopback names, for a lowercase domain `d` without a
/// trailing dot.
fn check_host_name(ctx: &mut Ctx<'_>, d: &str, span: Span) {
    if METADATA_HOSTS.contains(&d) {
        ctx.add(
            Intent::CredentialAccess,
            Kind::Url,
            span,
            format!("cloud metadata endpoint {d}"),
        );
    } else if d == "localhost" || d.ends_with(".localhost") {
        ctx.add(
            Intent::CredentialAccess,
            Kind::Url,
            span,
            format!("loopback host {d}"),
        );
    }
}

/// A host outside the policy's egress allowlist (when there is one).
fn check_egress(ctx: &mut Ctx<'_>, host: &str, span: Span) {
    if let Some(egress) = &ctx.config.egress {
        let h = host.trim_end_matches('.');
        if !egress.allows(h) {
            outside_egress(ctx, h, span);
        }
    }
}

fn outside_egress(ctx: &mut Ctx<'_>, host: &str, span: Span) {
    ctx.add(
        Intent::Exfiltration,
        Kind::Url,
        span,
        format!("host {host} is outside the egress allowlist"),
    );
}

fn check_ip(ctx: &mut Ctx<'_>, ip: IpAddr, shown: &str, span: Span) {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if let Some(what) = internal_ip(ip) {
        ctx.add(
            Intent::CredentialAccess,
            Kind::Url,
            span,
            format!("{what} address {shown}"),
        );
    }
}

/// What kind of non-public address `ip` is, if it is one.
pub(crate) fn internal_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if matches!(
                v4.octets(),
                [169, 254, 169, 254] | [169, 254, 170, 2] | [100, 100, 100, 200]
            ) {
                return Some("cloud metadata");
            }
            let nets: [(&str, Ipv4Net); 8] = [
                ("loopback", net4([127, 0, 0, 0], 8)),
                ("private", net4([10, 0, 0, 0], 8)),
                ("private", net4([172, 16, 0, 0], 12)),
                ("private", net4([192, 168, 0, 0], 16)),
                ("link-local", net4([169, 254, 0, 0], 16)),
                ("shared (CGNAT)", net4([100, 64, 0, 0], 10)),
                ("unspecified", net4([0, 0, 0, 0], 8)),
                ("broadcast", net4([255, 255, 255, 255], 32)),
            ];
            nets.iter().find(|(_, n)| n.contains(&v4)).map(|(w, _)| *w)
        }
        IpAddr::V6(v6) => {
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                return Some("cloud metadata");
            }
            if v6.is_loopback() {
                return Some("loopback");
            }
            if v6.is_unspecified() {
                return Some("unspecified");
            }
            let nets: [(&str, Ipv6Net); 2] = [
                ("private (ULA)", net6(0xfc00, 7)),
                ("link-local", net6(0xfe80, 10)),
            ];
            if let Some((w, _)) = nets.iter().find(|(_, n)| n.contains(&v6)) {
                return Some(w);
            }
            // IPv4-compatible / NAT64 forms of an internal IPv4.
            let s = v6.segments();
            if s[..6] == [0, 0, 0, 0, 0, 0] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return internal_ip(IpAddr::V4(v4));
            }
            None
        }
    }
}

fn net4(o: [u8; 4], prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::from(o), prefix)
}

fn net6(first: u16, prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(first, 0, 0, 0, 0, 0, 0, 0), prefix)
}

/// A query value that carries encoded data: long base64/hex runs, or shorter
/// ones that decode to readable text.
pub(crate) fn is_data_blob(v: &str) -> bool {
    let v = v.trim();
    if v.len() < MIN_ENCODED_BLOB {
        return false;
    }
    let is_hex = v.bytes().all(|b| b.is_ascii_hexdigit());
    let is_b64 = v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'));
    if !is_b64 {
        return false;
    }
    let has_digit = v.bytes().any(|b| b.is_ascii_digit());
    let has_upper = v.bytes().any(|b| b.is_ascii_uppercase());
    let has_lower = v.bytes().any(|b| b.is_ascii_lowercase());
    if v.len() >= LONG_BLOB && (is_hex || (has_digit && has_upper && has_lower)) {
        return true;
    }
    if is_hex && v.len() >= 24 && v.len().is_multiple_of(2) {
        let bytes: Vec<u8> = v
            .as_bytes()
            .chunks(2)
            .filter_map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
            .collect();
        return mostly_text(&bytes);
    }
    let trimmed = v.trim_end_matches('=');
    let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed.replace('-', "+").replace('_', "/"));
    matches!(decoded, Ok(b) if b.len() >= 12 && mostly_text(&b))
}

fn mostly_text(b: &[u8]) -> bool {
    let printable = b
        .iter()
        .filter(|&&c| (0x20..0x7f).contains(&c) || c == b'\n' || c == b'\t')
        .count();
    printable * 10 >= b.len() * 9 && b.iter().any(|c| !c.is_ascii_alphanumeric()) || {
        // Pure alphanumeric decodings of 12+ bytes are also text (e.g. a token).
        printable == b.len() && b.len() >= 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_in_every_notation() {
        for u in [
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://127.1/",
            "http://10.0.0.1./",
            "http://[fd00:ec2::254]/",
        ] {
            let url = Url::parse(u).unwrap();
            let ip = match url.host().unwrap() {
                Host::Ipv4(ip) => IpAddr::V4(ip),
                Host::Ipv6(ip) => IpAddr::V6(ip).to_canonical(),
                Host::Domain(d) => panic!("{u} parsed as domain {d}"),
            };
            assert!(internal_ip(ip).is_some(), "{u}");
        }
        assert!(internal_ip("8.8.8.8".parse().unwrap()).is_none());
    }

    fn findings(config: &crate::Config, check: impl FnOnce(&mut Ctx<'_>)) -> Vec<crate::Finding> {
        let mut sink = crate::analyze::Sink::default();
        check(&mut Ctx::new(config, &mut sink, None, true));
        sink.findings
    }

    #[test]
    fn plain_urls_skip_the_parser() {
        for (u, host) in [
            ("https://api.example.com/v1/health", Some("api.example.com")),
            ("http://localhost", Some("localhost")),
            (
                "http://metadata.google.internal/x",
                Some("metadata.google.internal"),
            ),
            ("https://a-b.c9/", Some("a-b.c9")),
            ("http://127.0.0.1/", None),
            ("http://0x7f.1/", None),
            ("http://example.com./", None),
            ("http://Example.com/", None),
            ("http://user@example.com/", None),
            ("http://example.com:8080/", None),
            ("http://example.com/?q=1", None),
            ("http://example.com/#f", None),
            ("http://xn--e1awd7f.com/", None),
            ("http://a..b/", None),
            ("http://", None),
            ("ftp://example.com/", None),
            ("HTTP://example.com/", None),
        ] {
            assert_eq!(plain_http_host(u), host, "{u}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4096, ..Default::default() })]

        /// Wherever the shortcut reads a host, the `url` crate reads the
        /// same host with nothing else to judge, and the findings agree.
        #[test]
        fn plain_urls_match_the_parser(
            scheme in proptest::sample::select(&["http://", "https://", "HTTP://", "ftp://", "http:/", ""][..]),
            parts in proptest::collection::vec(proptest::sample::select(&[
                "a", "z", "example", "com", "0", "9", "127", "0x7f", "xn--", "-", ".", "..", "/", "?", "#",
                "@", ":", "%2e", "A", "\\", " ", "\t", "localhost", "metadata", "é", "[::1]", "=", "x",
            ][..]), 0..8),
        ) {
            let text = format!("{scheme}{}", parts.concat());
            let config = crate::Config {
                egress: Some(crate::Egress::new(["*.example.com", "localhost"]).expect("valid egress")),
                ..crate::Config::default()
            };
            let span = Span { start: 0, end: text.len() };
            if let Some(host) = plain_http_host(&text) {
                let url = Url::parse(&text).expect("a plain URL parses");
                proptest::prop_assert!(matches!(url.scheme(), "http" | "https"));
                proptest::prop_assert_eq!(url.host(), Some(Host::Domain(host)));
                proptest::prop_assert!(url.username().is_empty() && url.password().is_none());
                proptest::prop_assert!(url.query().is_none() && url.fragment().is_none());
            }
            let fast = findings(&config, |ctx| check_url_text(ctx, &text, span));
            let full = findings(&config, |ctx| {
                if let Ok(url) = Url::parse(&text) {
                    check_url(ctx, &url, span);
                }
            });
            proptest::prop_assert_eq!(fast, full);
        }
    }

    #[test]
    fn blobs() {
        assert!(is_data_blob("Y2F0IC9ldGMvcGFzc3dkIHwgbmM="));
        assert!(!is_data_blob("hello"));
        assert!(!is_data_blob("2024-01-01"));
        assert!(!is_data_blob("helloworldfoobar"));
    }
}
