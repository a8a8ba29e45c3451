//! String helpers for the Go behaviours BuildKit's parser relies on.
//!
//! The Go standard-library functions (`unicode.IsSpace`, `strings.ToLower`,
//! `strings.TrimSpace`, `strconv.Quote`) come from `kiln-gostd` and are re-exported here under
//! the names the parser uses; this module adds the character classes of upstream's own regular
//! expressions and byte loops. The parser's output is compared byte for byte with upstream's,
//! so these follow Go's definitions rather than Rust's where the two differ.

pub(crate) use kiln_gostd::strconv::quote;
pub(crate) use kiln_gostd::strings::{to_lower, trim_space};
pub(crate) use kiln_gostd::unicode::is_space;

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
