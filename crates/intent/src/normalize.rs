//! Unicode normalisation applied before any parser sees the text.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// Returns the text every parser sees, and every span points into: NFKC
/// (which also folds full-width forms such as `ｒｍ` to `rm`), with invisible
/// characters removed — zero-width, bidi controls, soft hyphen, tag and
/// variation-selector characters, and C0/C1 controls other than tab, line
/// feed and carriage return. Unicode line and paragraph separators become `\n`.
pub fn normalize(text: &str) -> String {
    normalize_cow(text).into_owned()
}

/// [`normalize`], borrowing `text` when it is already normal (plain
/// printable ASCII, the common case), so the classifier copies nothing.
pub(crate) fn normalize_cow(text: &str) -> Cow<'_, str> {
    if is_plain_ascii(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.nfkc() {
        match c {
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            c if is_invisible(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Printable ASCII, tab, line feed and carriage return only. Checked 32
/// bytes at a time without an early exit per byte, which the compiler
/// turns into vector code.
fn is_plain_ascii(text: &str) -> bool {
    let plain = |b: u8| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\t' || b == b'\r';
    let (rows, rest) = text.as_bytes().as_chunks::<32>();
    rows.iter().all(|row| {
        let mut bad = 0u8;
        for &b in row {
            bad |= u8::from(b.wrapping_sub(0x20) >= 0x5f)
                & u8::from(b != b'\n')
                & u8::from(b != b'\t')
                & u8::from(b != b'\r');
        }
        bad == 0
    }) && rest.iter().all(|&b| plain(b))
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{ad}'                      // soft hyphen
        | '\u{34f}'                     // combining grapheme joiner
        | '\u{61c}'                     // arabic letter mark
        | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}' // hangul fillers
        | '\u{17b4}' | '\u{17b5}'
        | '\u{180b}'..='\u{180f}'       // mongolian selectors / vowel separator
        | '\u{200b}'..='\u{200f}'       // zero-width, LRM/RLM
        | '\u{202a}'..='\u{202e}'       // bidi embeddings/overrides
        | '\u{2060}'..='\u{206f}'       // word joiner, invisible operators, bidi isolates
        | '\u{fe00}'..='\u{fe0f}'       // variation selectors
        | '\u{feff}'                    // BOM / zero-width no-break space
        | '\u{fff9}'..='\u{fffb}'       // interlinear annotations
        | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}'     // tags, variation selectors supplement
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_full_width_and_strips_invisibles() {
        assert_eq!(normalize("ｒｍ -rf /"), "rm -rf /");
        assert_eq!(normalize("r\u{200b}m\u{202e} -rf\u{feff} /"), "rm -rf /");
        assert_eq!(normalize("a\u{2028}b"), "a\nb");
        assert_eq!(normalize("DR\u{e0041}OP"), "DROP");
    }

    proptest::proptest! {
        #[test]
        fn plain_ascii_is_checked_like_a_byte_scan(
            text in "[ -~\t\n\r\u{0}-\u{1f}\u{7f}é]{0,80}",
        ) {
            let plain = text
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) || matches!(b, b'\n' | b'\t' | b'\r'));
            proptest::prop_assert_eq!(is_plain_ascii(&text), plain);
        }
    }

    #[test]
    fn keeps_ordinary_text() {
        assert_eq!(normalize("ls -la\n\tx"), "ls -la\n\tx");
        assert_eq!(normalize("café"), "café");
    }
}
