//! The policy's egress allowlist: which hosts may be contacted.

use crate::IntentError;

/// A compiled egress allowlist of host names.
///
/// An entry `api.example.com` allows exactly that host; `*.example.com` allows
/// every subdomain of `example.com` (not `example.com` itself). Matching is
/// case-insensitive and ignores a trailing dot. IP addresses are never allowed
/// by name: list them as written (`10.0.0.5`) if they must be reachable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Egress {
    exact: Vec<String>,
    suffixes: Vec<String>,
}

impl Egress {
    /// Compiles the allowlist; an entry that is not a host name or `*.domain`
    /// is an error that names it.
    pub fn new<I, S>(entries: I) -> Result<Self, IntentError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut egress = Egress::default();
        for entry in entries {
            let raw = entry.as_ref();
            let pattern = raw.trim().trim_end_matches('.').to_ascii_lowercase();
            let invalid = |reason: &str| IntentError::InvalidEgress {
                pattern: raw.to_string(),
                reason: reason.to_string(),
            };
            let (wild, host) = match pattern.strip_prefix("*.") {
                Some(rest) => (true, rest.to_string()),
                None => (false, pattern.clone()),
            };
            if host.is_empty() {
                return Err(invalid("empty host"));
            }
            if host.contains('*') {
                return Err(invalid("`*` is only allowed as the whole first label"));
            }
            if !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':')
            {
                return Err(invalid(
                    "only letters, digits, `-`, `.` (and `:` in IPv6 literals) are allowed; write internationalised names in punycode",
                ));
            }
            if host.split('.').any(str::is_empty) {
                return Err(invalid("empty label"));
            }
            if wild {
                egress.suffixes.push(format!(".{host}"));
            } else {
                egress.exact.push(host);
            }
        }
        Ok(egress)
    }

    /// Whether `host` may be contacted.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        let host: std::borrow::Cow<'_, str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            host.to_ascii_lowercase().into()
        } else {
            host.into()
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allows_normalized(host)
    }

    /// [`Self::allows`] for a host already as it normalises it: lowercase,
    /// without a trailing dot or brackets.
    pub(crate) fn allows_normalized(&self, host: &str) -> bool {
        self.exact.iter().any(|e| e == host)
            || self
                .suffixes
                .iter()
                .any(|s| host.len() > s.len() && host.ends_with(s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_allows_subdomains_only() {
        let e = Egress::new(["*.example.com", "api.github.com"]).unwrap();
        assert!(e.allows("a.example.com"));
        assert!(e.allows("A.B.Example.COM."));
        assert!(!e.allows("example.com"));
        assert!(!e.allows("evilexample.com"));
        assert!(e.allows("api.github.com"));
        assert!(!e.allows("github.com"));
    }

    #[test]
    fn rejects_malformed_entries() {
        assert!(Egress::new(["*"]).is_err());
        assert!(Egress::new(["a.*.com"]).is_err());
        assert!(Egress::new(["exa mple.com"]).is_err());
        assert!(Egress::new([""]).is_err());
    }
}
