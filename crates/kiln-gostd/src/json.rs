//! JSON strings as Go's `encoding/json` writes them.
//!
//! BuildKit stores some LLB attributes as JSON made by `json.Marshal` (the include and exclude
//! patterns of a local source, for example), and those bytes are part of a vertex digest. Go
//! escapes more than `serde_json` does: `<`, `>` and `&` (unless HTML escaping is turned off
//! with `Encoder.SetEscapeHTML(false)`), and always U+2028 and U+2029.

use std::fmt::Write as _;

/// Appends `s` to `out` as a JSON string, the way Go's `encoding/json` encodes a `string`.
///
/// `"` and `\` are escaped with a backslash; backspace, form feed, newline, carriage return and
/// tab use their short escapes (`\b`, `\f`, `\n`, `\r`, `\t`, as Go does since 1.22); the other
/// control characters below U+0020 become `\u00XX`; U+2028 and U+2029 become `\u2028` and
/// `\u2029`; with `escape_html`, `<`, `>` and `&` become `\u003c`, `\u003e` and `\u0026`.
/// Everything else, DEL and non-ASCII included, is written as it is.
pub fn push_quoted(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if !escape_html => out.push(c),
            '\u{0}'..='\u{1f}' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a JSON string, as Go's `json.Marshal` encodes a `string` (HTML escaping on).
///
/// ```
/// use kiln_gostd::json::quote;
/// assert_eq!(quote("a<b>&\"c\"\n"), r#""a\u003cb\u003e\u0026\"c\"\n""#);
/// ```
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_quoted(&mut out, s, true);
    out
}

/// A list of strings as Go's `json.Marshal` encodes a non-nil `[]string`: `["a","b"]`, without
/// spaces, `[]` for an empty list.
///
/// ```
/// use kiln_gostd::json::marshal_strings;
/// assert_eq!(marshal_strings(&["*.go", "!a<b"]), r#"["*.go","!a\u003cb"]"#);
/// ```
pub fn marshal_strings<S: AsRef<str>>(items: &[S]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_quoted(&mut out, item.as_ref(), true);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::table;

    /// Expected values are what Go 1.22's `json.Marshal` writes.
    #[test]
    fn strings_like_go() {
        table(
            "quote",
            quote,
            &[
                ("", r#""""#),
                ("*.go", r#""*.go""#),
                ("a<b>&c", r#""a\u003cb\u003e\u0026c""#),
                ("q\"\\/", r#""q\"\\/""#),
                ("\u{8}\u{c}\n\r\t", r#""\b\f\n\r\t""#),
                (
                    "\u{0}\u{1}\u{b}\u{1b}\u{1f}",
                    r#""\u0000\u0001\u000b\u001b\u001f""#,
                ),
                ("\u{7f}é♥\u{a0}\u{feff}", "\"\u{7f}é♥\u{a0}\u{feff}\""),
                ("\u{2028}\u{2029}", r#""\u2028\u2029""#),
            ],
        );
    }

    #[test]
    fn html_escaping_can_be_turned_off() {
        let unescaped = |s: &str| {
            let mut out = String::new();
            push_quoted(&mut out, s, false);
            out
        };
        table(
            "push_quoted(escape_html: false)",
            unescaped,
            &[("<a&b>", r#""<a&b>""#), ("\u{2028}\n", r#""\u2028\n""#)],
        );
    }

    #[test]
    fn string_lists_like_go() {
        table(
            "marshal_strings",
            marshal_strings::<&str>,
            &[
                (&[][..], "[]"),
                (&["*.go"], r#"["*.go"]"#),
                (
                    &["a<b>&c", "q\"\\\n\u{1}", "*.go"],
                    r#"["a\u003cb\u003e\u0026c","q\"\\\n\u0001","*.go"]"#,
                ),
            ],
        );
    }
}
