//! Go's `strconv.Quote`, which upstream error messages use through `%q`.
//!
//! Go decides what to escape with `unicode.IsPrint`; Rust has no general-category table in the
//! standard library, so non-ASCII characters are treated as printable unless they are control
//! characters, whitespace, or one of the invisible format characters listed below. That covers
//! every character a platform specifier or image reference can legally contain (ASCII only), and
//! gives readable output for the rest.

use std::fmt::Write;

/// Quotes `s` the way Go's `strconv.Quote` (and so `fmt`'s `%q`) does.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if c.is_ascii() => {
                if c.is_ascii_graphic() {
                    out.push(c);
                } else {
                    // Other C0 controls and DEL.
                    let _ = write!(out, "\\x{:02x}", u32::from(c));
                }
            }
            c if is_printable(c) => out.push(c),
            c if u32::from(c) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` for non-ASCII characters.
fn is_printable(c: char) -> bool {
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    // Format characters (category Cf) that Go escapes and that are neither control nor
    // whitespace in Rust's tables.
    !matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e000}'..='\u{f8ff}'
    )
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_like_go() {
        let cases = [
            ("", r#""""#),
            ("linux/amd64", r#""linux/amd64""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("tab\there\n", r#""tab\there\n""#),
            ("\u{0}\u{7f}", r#""\x00\x7f""#),
            ("♥", "\"♥\""),
            ("\u{a0}", r#""\u00a0""#),
            ("\u{feff}", r#""\ufeff""#),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(input, want)| quote(input) != *want)
            .map(|(input, want)| format!("{input:?}: got {}, want {want}", quote(input)))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
