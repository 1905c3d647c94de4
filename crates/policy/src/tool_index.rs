//! Finding a tool's rules fast: maps keyed by tool name with a cheap hash,
//! and tool globs looked up by their literal prefix before any pattern runs.
//!
//! Compiling a glob with globset builds a regex (about 0.4M instructions
//! each), which for a 1,000-rule policy was most of its compile time; the
//! common shapes (`prefix*`, one byte per item) never need it, so a
//! [`ToolGlob`] builds the regex only for the others.
//!
//! A decision looks a tool up here once or twice, so these lookups are on
//! the hot path. The keys are the policy's own names (callers only look
//! up), so a keyed hash buys nothing against flooding and costs a SipHash
//! per lookup.

use globset::GlobMatcher;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a, for maps whose keys come from the policy.
#[derive(Default, Clone, Copy)]
pub(crate) struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map from the policy's names (tools) to `V`.
pub(crate) type NameMap<V> = HashMap<String, V, BuildHasherDefault<NameHasher>>;

/// How a glob is matched once its literal prefix is known to match.
#[derive(Clone, Debug)]
enum Rest {
    /// The glob is `prefix*`: every name with the prefix matches.
    Anything,
    /// The rest of the glob is one byte of the name per item (literals, `?`,
    /// classes of ASCII letters and digits): the name's remaining bytes are
    /// checked against these sets, without running the glob.
    Bytes(Vec<ByteSet>),
    /// Anything else: the whole glob runs on the whole name.
    Glob(GlobMatcher),
}

/// A set of bytes.
#[derive(Clone, Copy)]
struct ByteSet([u64; 4]);

impl std::fmt::Debug for ByteSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries((0..=255u8).filter(|&b| self.contains(b)))
            .finish()
    }
}

impl ByteSet {
    const NONE: ByteSet = ByteSet([0; 4]);
    const ALL: ByteSet = ByteSet([u64::MAX; 4]);

    fn of(b: u8) -> ByteSet {
        let mut set = ByteSet::NONE;
        set.add(b);
        set
    }

    fn add(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn contains(self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    fn complement(self) -> ByteSet {
        ByteSet(self.0.map(|w| !w))
    }
}

/// The byte sets `rest` (a glob's text from its first meta byte on)
/// matches, one per byte of the name, when it is only literals, `?` (any
/// one byte: globset matches bytes, `.` matching a newline too), `\`
/// escapes of ASCII and classes like `[0-9]`, `[!ab]` of ASCII letters and
/// digits; `None` for anything else (stars, alternates, other classes),
/// which keeps the glob.
fn byte_sets(rest: &str) -> Option<Vec<ByteSet>> {
    let b = rest.as_bytes();
    let mut sets = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let set = match b[i] {
            b'?' => ByteSet::ALL,
            b'\\' => {
                i += 1;
                let c = *b.get(i).filter(|c| c.is_ascii())?;
                ByteSet::of(c)
            }
            b'[' => {
                i += 1;
                let negated = matches!(b.get(i), Some(b'!' | b'^'));
                if negated {
                    i += 1;
                }
                let mut set = ByteSet::NONE;
                let mut empty = true;
                loop {
                    let lo = *b.get(i)?;
                    if lo == b']' && !empty {
                        break;
                    }
                    if !lo.is_ascii_alphanumeric() {
                        return None;
                    }
                    let hi = match (b.get(i + 1), b.get(i + 2)) {
                        (Some(b'-'), Some(&hi)) if hi.is_ascii_alphanumeric() && hi >= lo => {
                            i += 2;
                            hi
                        }
                        (Some(b'-'), _) => return None,
                        _ => lo,
                    };
                    for c in lo..=hi {
                        set.add(c);
                    }
                    empty = false;
                    i += 1;
                }
                if negated { set.complement() } else { set }
            }
            b'*' | b']' | b'{' | b'}' | b',' => return None,
            // Any other byte, of ASCII or of a UTF-8 sequence, is itself.
            c => ByteSet::of(c),
        };
        sets.push(set);
        i += 1;
    }
    Some(sets)
}

/// A tool or agent glob (`match.tool`, `match.agent`, `limits.tools`),
/// matched as globset matches it with [`crate::compile::glob`]'s options.
#[derive(Clone, Debug)]
pub(crate) struct ToolGlob {
    /// The literal prefix, which every match starts with.
    prefix: String,
    rest: Rest,
}

impl ToolGlob {
    /// Compiles `pattern`. globset parses and compiles it only when the
    /// rest after the literal prefix is neither `*` nor one byte per item:
    /// those two shapes are valid globs by construction.
    pub fn new(pattern: &str) -> Result<ToolGlob, globset::Error> {
        let prefix = literal_prefix(pattern);
        let rest = if prefix_star(pattern).is_some() {
            Rest::Anything
        } else if let Some(sets) = byte_sets(&pattern[prefix.len()..]) {
            Rest::Bytes(sets)
        } else {
            Rest::Glob(crate::compile::glob(pattern)?.compile_matcher())
        };
        Ok(ToolGlob {
            prefix: prefix.to_string(),
            rest,
        })
    }

    /// Whether `name` matches (`GlobMatcher::is_match` of the same glob).
    pub fn is_match(&self, name: &str) -> bool {
        self.matches(name, &mut None)
    }

    /// [`ToolGlob::is_match`], sharing the globset candidate of `name`
    /// with the other globs it is tried against.
    fn matches<'n>(&self, name: &'n str, candidate: &mut Option<globset::Candidate<'n>>) -> bool {
        name.starts_with(self.prefix.as_str()) && self.rest_matches(name, candidate)
    }

    /// Whether `name` matches, its prefix already known to match.
    fn rest_matches<'n>(
        &self,
        name: &'n str,
        candidate: &mut Option<globset::Candidate<'n>>,
    ) -> bool {
        match &self.rest {
            Rest::Anything => true,
            Rest::Bytes(sets) => {
                let rest = &name.as_bytes()[self.prefix.len()..];
                rest.len() == sets.len() && rest.iter().zip(sets).all(|(&b, set)| set.contains(b))
            }
            Rest::Glob(g) => {
                g.is_match_candidate(candidate.get_or_insert_with(|| globset::Candidate::new(name)))
            }
        }
    }
}

/// The tool globs of one rule: [`ToolGlobs::is_match`] is `GlobSet::is_match`
/// over the same globs.
#[derive(Clone, Debug, Default)]
pub(crate) struct ToolGlobs(Vec<ToolGlob>);

impl ToolGlobs {
    /// Adds `pattern`.
    pub fn add(&mut self, pattern: &str) -> Result<(), globset::Error> {
        self.0.push(ToolGlob::new(pattern)?);
        Ok(())
    }

    /// Whether any of the globs matches `name`.
    pub fn is_match(&self, name: &str) -> bool {
        let mut candidate = None;
        self.0.iter().any(|g| g.matches(name, &mut candidate))
    }
}

/// The tool globs of one intervention point, by slot (the order they were
/// added). [`GlobIndex::for_each_match`] finds the same slots as a `GlobSet`
/// of the same globs.
#[derive(Default)]
pub(crate) struct GlobIndex {
    /// Per slot: the glob.
    globs: Vec<ToolGlob>,
    /// Literal prefix to the slots that have it.
    by_prefix: NameMap<Vec<usize>>,
    /// The distinct prefix lengths, ascending.
    lengths: Vec<usize>,
}

/// Bytes that start glob syntax (`literal_separator(false)`, `backslash_escape(true)`).
pub(crate) fn is_meta(b: u8) -> bool {
    matches!(b, b'*' | b'?' | b'[' | b']' | b'{' | b'}' | b'\\')
}

/// The literal prefix of `pattern`: its bytes before any glob syntax.
fn literal_prefix(pattern: &str) -> &str {
    &pattern[..pattern.bytes().position(is_meta).unwrap_or(pattern.len())]
}

/// `Some(prefix)` when `pattern` is `prefix*` with a literal prefix: it
/// matches exactly the names that start with `prefix` (`*` matches any
/// bytes, `/` included, with `literal_separator(false)`).
pub(crate) fn prefix_star(pattern: &str) -> Option<&str> {
    let prefix = literal_prefix(pattern);
    (&pattern[prefix.len()..] == "*").then_some(prefix)
}

impl GlobIndex {
    /// Adds `pattern` as the next slot.
    pub fn add(&mut self, pattern: &str) -> Result<(), globset::Error> {
        let glob = ToolGlob::new(pattern)?;
        let len = glob.prefix.len();
        self.by_prefix
            .entry(glob.prefix.clone())
            .or_default()
            .push(self.globs.len());
        self.globs.push(glob);
        if let Err(at) = self.lengths.binary_search(&len) {
            self.lengths.insert(at, len);
        }
        Ok(())
    }

    /// Calls `f` with the slot of every glob that matches `tool`, once each
    /// (in no particular order).
    pub fn for_each_match(&self, tool: &str, mut f: impl FnMut(usize)) {
        let mut candidate = None;
        for &len in &self.lengths {
            if len > tool.len() {
                break;
            }
            let Some(slots) = tool.get(..len).and_then(|p| self.by_prefix.get(p)) else {
                continue;
            };
            for &slot in slots {
                if self.globs[slot].rest_matches(tool, &mut candidate) {
                    f(slot);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn both(patterns: &[String]) -> (GlobIndex, globset::GlobSet) {
        let (index, _, set) = all(patterns);
        (index, set)
    }

    fn all(patterns: &[String]) -> (GlobIndex, ToolGlobs, globset::GlobSet) {
        let mut index = GlobIndex::default();
        let mut globs = ToolGlobs::default();
        let mut set = globset::GlobSetBuilder::new();
        for p in patterns {
            index.add(p).unwrap();
            globs.add(p).unwrap();
            set.add(crate::compile::glob(p).unwrap());
        }
        (index, globs, set.build().unwrap())
    }

    fn matches(index: &GlobIndex, tool: &str) -> Vec<usize> {
        let mut out = Vec::new();
        index.for_each_match(tool, |slot| out.push(slot));
        out.sort_unstable();
        out
    }

    #[test]
    fn prefix_star_globs_match_by_prefix_and_others_by_pattern() {
        let patterns: Vec<String> = [
            "svc1.*",
            "svc1.op?",
            "svc1.op[0-9]",
            "*",
            "db.{a,b}",
            "x\\*",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (index, _) = both(&patterns);
        assert_eq!(matches(&index, "svc1.op7"), vec![0, 1, 2, 3]);
        assert_eq!(
            matches(&index, "svc1.opé"),
            vec![0, 3],
            "? is one byte, as in globset"
        );
        assert_eq!(matches(&index, "db.b"), vec![3, 4]);
        assert_eq!(matches(&index, "x*"), vec![3, 5]);
        assert_eq!(matches(&index, ""), vec![3]);
    }

    fn pattern() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "a", "b", "ab", ".", "/", "é", "*", "**", "?", "[ab]", "[!a]", "{a,b}", "\\*",
                "\\?", "[é]", "[a-b]", "[^b]", "[b-]", "[]a]", ",", "\\a", "\\é",
            ]),
            0..5,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The index finds exactly the slots a GlobSet of the same globs
        /// finds, and a rule's globs match when the GlobSet does.
        #[test]
        fn agrees_with_globset(
            patterns in prop::collection::vec(pattern(), 1..8),
            tool in "[ab./é*?,\n-]{0,6}",
        ) {
            for p in &patterns {
                prop_assert_eq!(
                    ToolGlob::new(p).is_ok(),
                    crate::compile::glob(p).is_ok(),
                    "{:?}: the shapes matched without globset are valid globs, and only they",
                    p
                );
            }
            let patterns: Vec<String> = patterns
                .into_iter()
                .filter(|p| crate::compile::glob(p).is_ok())
                .collect();
            prop_assume!(!patterns.is_empty());
            for p in &patterns {
                let one = crate::compile::glob(p).unwrap().compile_matcher();
                prop_assert_eq!(ToolGlob::new(p).unwrap().is_match(&tool), one.is_match(&tool));
            }
            let (index, globs, set) = all(&patterns);
            prop_assert_eq!(matches(&index, &tool), set.matches(&tool));
            prop_assert_eq!(globs.is_match(&tool), set.is_match(&tool));
        }
    }
}
