//! Character classes with Go's exact definitions, and Go's `%q` quoting.
//!
//! BuildKit decides what a variable name is with Go's `unicode.IsLetter` and
//! `unicode.IsDigit`, which are general-category tests (`L*` and `Nd`). Rust's
//! `char::is_alphabetic` and `char::is_numeric` use wider Unicode properties (for example
//! they accept combining vowel signs and letter numbers), so we look the category up
//! ourselves to get the same names as upstream.

use unicode_general_category::{GeneralCategory, get_general_category};

/// Go's `unicode.IsLetter`: general category `Lu`, `Ll`, `Lt`, `Lm` or `Lo`.
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

/// Go's `unicode.IsDigit`: general category `Nd`.
pub(crate) fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    get_general_category(c) == GeneralCategory::DecimalNumber
}

/// Go's `unicode.IsSpace`. It is the Unicode `White_Space` property, which is exactly what
/// `char::is_whitespace` tests.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `strconv.IsPrint`: printable Latin-1 characters, and above Latin-1 the letters,
/// marks, numbers, punctuation and symbols. The only printable space is U+0020.
fn is_print(c: char) -> bool {
    let u = u32::from(c);
    if u <= 0xFF {
        return (0x20..=0x7E).contains(&u) || ((0xA1..=0xFF).contains(&u) && u != 0xAD);
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

/// Quotes `s` the way Go's `strconv.Quote` (and so `fmt`'s `%q`) does, because upstream's
/// error messages embed the word that failed that way.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ if is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            _ if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            _ if u32::from(c) < 0x10000 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            _ => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        let cases = [
            ("a\"b\\c", r#""a\"b\\c""#),
            ("\u{0}\u{7}\t\u{7f}", r#""\x00\a\t\x7f""#),
            ("♥\u{a0}\u{ad}", r#""♥\u00a0\u00ad""#),
            ("\u{e0000}", r#""\U000e0000""#),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want, "quoting {input:?}");
        }
    }

    #[test]
    fn letters_follow_general_category() {
        // A Devanagari vowel sign is alphabetic for Rust but a mark (not a letter) for Go.
        assert!('\u{93e}'.is_alphabetic());
        assert!(!is_letter('\u{93e}'));
        // A Roman numeral is numeric for Rust but a letter number, not a digit, for Go.
        assert!('Ⅻ'.is_numeric());
        assert!(!is_digit('Ⅻ'));
        assert!(is_letter('한') && is_digit('٣') && !is_letter('_'));
    }
}
