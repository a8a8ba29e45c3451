//! Go's `unicode` character classes.
//!
//! Go defines its classes by Unicode general category (`IsLetter` is category `L`, `IsDigit`
//! is `Nd`), while Rust's `char::is_alphabetic` and `char::is_numeric` use wider derived
//! properties: a Devanagari vowel sign is alphabetic for Rust but a mark for Go, and a Roman
//! numeral is numeric for Rust but a letter number for Go. The categories are looked up here so
//! that the answers are Go's.

use unicode_general_category::{GeneralCategory as G, get_general_category};

/// Go's `unicode.IsLetter`: general category `Lu`, `Ll`, `Lt`, `Lm` or `Lo`.
pub fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    is_letter_category(get_general_category(c))
}

/// Go's `unicode.IsDigit`: general category `Nd`.
pub fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    get_general_category(c) == G::DecimalNumber
}

/// Go's `unicode.IsSpace`: the Unicode `White_Space` property, which is exactly what
/// `char::is_whitespace` tests (in Latin-1: `\t`, `\n`, `\v`, `\f`, `\r`, space, U+0085 and
/// U+00A0).
pub fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `unicode.IsPrint` (and `strconv.IsPrint`, which has the same definition): letters,
/// marks, numbers, punctuation, symbols (categories `L`, `M`, `N`, `P`, `S`) and the ASCII
/// space. Every other space, control, format, surrogate, private-use and unassigned code point
/// is not printable.
pub fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return c == ' ' || c.is_ascii_graphic();
    }
    let category = get_general_category(c);
    is_letter_category(category)
        || matches!(
            category,
            G::NonspacingMark
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

/// Category `L`: `Lu`, `Ll`, `Lt`, `Lm` or `Lo`.
fn is_letter_category(category: G) -> bool {
    matches!(
        category,
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::table;

    /// `(is_letter, is_digit, is_space, is_print)` of `c`.
    fn classes(c: char) -> (bool, bool, bool, bool) {
        (is_letter(c), is_digit(c), is_space(c), is_print(c))
    }

    /// One row per character: `(is_letter, is_digit, is_space, is_print)` as Go answers.
    #[test]
    fn classes_follow_go() {
        table(
            "(is_letter, is_digit, is_space, is_print)",
            classes,
            &[
                ('a', (true, false, false, true)),
                ('Z', (true, false, false, true)),
                ('7', (false, true, false, true)),
                ('_', (false, false, false, true)),
                (' ', (false, false, true, true)),
                ('\t', (false, false, true, false)),
                ('\u{b}', (false, false, true, false)),
                ('\u{0}', (false, false, false, false)),
                ('\u{7f}', (false, false, false, false)),
                // Latin-1: C1 controls, NEL, no-break space, soft hyphen, letters and symbols.
                ('\u{80}', (false, false, false, false)),
                ('\u{85}', (false, false, true, false)),
                ('\u{a0}', (false, false, true, false)),
                ('\u{ad}', (false, false, false, false)),
                ('\u{aa}', (true, false, false, true)),
                ('\u{b5}', (true, false, false, true)),
                ('é', (true, false, false, true)),
                ('×', (false, false, false, true)),
                // A Devanagari vowel sign is alphabetic for Rust but a mark for Go.
                ('\u{93e}', (false, false, false, true)),
                // A Roman numeral is numeric for Rust but a letter number for Go.
                ('Ⅻ', (false, false, false, true)),
                ('٣', (false, true, false, true)),
                ('한', (true, false, false, true)),
                ('♥', (false, false, false, true)),
                ('\u{301}', (false, false, false, true)),
                // Other spaces, separators and format characters are not printable.
                ('\u{2028}', (false, false, true, false)),
                ('\u{3000}', (false, false, true, false)),
                ('\u{200b}', (false, false, false, false)),
                ('\u{feff}', (false, false, false, false)),
                ('\u{e0001}', (false, false, false, false)),
                // Private use, unassigned and non-characters.
                ('\u{e000}', (false, false, false, false)),
                ('\u{f0000}', (false, false, false, false)),
                ('\u{378}', (false, false, false, false)),
                ('\u{2065}', (false, false, false, false)),
                ('\u{ffff}', (false, false, false, false)),
                ('\u{10ffff}', (false, false, false, false)),
                ('\u{1f600}', (false, false, false, true)),
            ],
        );
    }
}
