//! Small string helpers that reproduce the Go standard library functions BuildKit's parser
//! relies on (`unicode.IsSpace`, `strings.ToLower`, `strconv.Quote`, `unicode.IsPrint`, ...).
//!
//! The parser's output is compared byte for byte with upstream's, so these helpers follow Go's
//! definitions rather than Rust's where the two differ (lower-casing of U+0130, for example).

use unicode_general_category::{GeneralCategory, get_general_category};

/// Go's `unicode.IsSpace`: the Unicode `White_Space` property, which is exactly what Rust's
/// `char::is_whitespace` implements.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `unicode.IsSpace(rune(b))` applied to a single byte, as BuildKit does when it walks a
/// string byte by byte (flag extraction, `HEALTHCHECK`): the byte is read as a Latin-1 code
/// point, so the UTF-8 continuation bytes 0x85 and 0xA0 count as spaces.
pub(crate) fn is_latin1_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0)
}

/// The whitespace class `[\t\v\f\r ]` of upstream's `reWhitespace` regular expression.
pub(crate) fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// The `\s` class of Go's regular expressions (RE2): `[\t\n\f\r ]` (no `\v`).
pub(crate) fn is_regex_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// Go's `strings.TrimSpace`.
pub(crate) fn trim_space(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Go's `strings.ToLower`: per-character simple lower-case mapping. Rust's `to_lowercase`
/// differs only for U+0130, which Go maps to a plain `i`.
pub(crate) fn to_lower(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\u{130}' {
            out.push('i');
            continue;
        }
        let mut lower = c.to_lowercase();
        match lower.next() {
            Some(first) => out.push(first),
            None => out.push(c),
        }
    }
    out
}

/// Go's `unicode.IsLetter` (general category L).
pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        GeneralCategory::UppercaseLetter
            | GeneralCategory::LowercaseLetter
            | GeneralCategory::TitlecaseLetter
            | GeneralCategory::ModifierLetter
            | GeneralCategory::OtherLetter
    )
}

/// Go's `unicode.IsDigit` (general category Nd).
pub(crate) fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    get_general_category(c) == GeneralCategory::DecimalNumber
}

/// Go's `unicode.IsPrint` / `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols
/// and the ASCII space. Every other space, control, format, private-use and unassigned code
/// point is not printable. The categories come from Unicode 16.0 (the `unicode-general-category`
/// crate) while Go uses Unicode 15.0, so a character first assigned in 16.0 prints as itself
/// here and as a `\u` escape in Go; nothing else differs.
pub(crate) fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    use GeneralCategory as G;
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
            | G::NonspacingMark
            | G::SpacingMark
            | G::EnclosingMark
            | G::DecimalNumber
            | G::LetterNumber
            | G::OtherNumber
            | G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation
            | G::MathSymbol
            | G::CurrencySymbol
            | G::ModifierSymbol
            | G::OtherSymbol
    )
}

/// Go's `strconv.Quote`: a double-quoted string with Go escape sequences, keeping printable
/// non-ASCII characters as they are.
pub(crate) fn quote(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Splits `s` at the first run of `[\t\v\f\r ]` like Go's `reWhitespace.Split(s, 2)` does for
/// the (already trimmed) strings the parser passes it: the text before the run and, when there
/// is a run, the text after it.
pub(crate) fn split_token_space_once(s: &str) -> (&str, Option<&str>) {
    match s.find(is_token_space) {
        None => (s, None),
        Some(start) => {
            let after = s[start..].trim_start_matches(is_token_space);
            (&s[..start], Some(after))
        }
    }
}

/// Go's `reWhitespace.Split(s, -1)` for a non-empty string that does not start or end with
/// whitespace: the pieces between runs of `[\t\v\f\r ]`.
pub(crate) fn split_token_space(s: &str) -> Vec<String> {
    s.split(is_token_space)
        .filter(|piece| !piece.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        let cases = [
            ("", "\"\""),
            ("a\"b\\c", "\"a\\\"b\\\\c\""),
            (
                "\x00\x07\x08\x0c\n\r\t\x0b\x1b\x7f",
                "\"\\x00\\a\\b\\f\\n\\r\\t\\v\\x1b\\x7f\"",
            ),
            (
                "\u{a0}\u{ad}\u{2028}\u{feff}",
                "\"\\u00a0\\u00ad\\u2028\\ufeff\"",
            ),
            ("♥☃é\u{301}", "\"♥☃é\u{301}\""),
            (
                "\u{e000}\u{10ffff}\u{1f600}",
                "\"\\ue000\\U0010ffff\u{1f600}\"",
            ),
            ("\u{80}\u{9f}", "\"\\u0080\\u009f\""),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(input, want)| quote(input) != *want)
            .map(|(input, want)| format!("{input:?}: got {} want {want}", quote(input)))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn lower_matches_go() {
        assert_eq!(to_lower("FROM"), "from");
        assert_eq!(to_lower("ONBU\u{130}LD"), "onbuild");
        assert_eq!(to_lower("HEALTHCHEC\u{212a}"), "healthcheck");
        assert_eq!(to_lower("ΣΑΣ"), "σασ");
    }
}
