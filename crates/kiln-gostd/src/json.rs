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

/// A `serde_json` formatter that writes strings as Go's `encoding/json` does, around another
/// formatter that decides the layout (compact for `json.Marshal`, indented for
/// `json.MarshalIndent`): `<`, `>`, `&`, U+2028 and U+2029 become `\u003c`, `\u003e`,
/// `\u0026`, `\u2028` and `\u2029`. Everything else `serde_json` already writes as Go does
/// (control characters as `\b`, `\f`, `\n`, `\r`, `\t` or `\u00xx`).
///
/// Images BuildKit writes (configs, manifests, indexes) are Go's `json.Marshal` output, so a
/// `RUN a && b` in a config's history is `a \u0026\u0026 b` there; writing the same bytes keeps
/// kiln's documents byte-identical to BuildKit's for the same content.
pub struct GoFormatter<F> {
    inner: F,
}

impl<F> GoFormatter<F> {
    /// Go's string escaping around `inner`.
    pub fn new(inner: F) -> GoFormatter<F> {
        GoFormatter { inner }
    }
}

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for GoFormatter<F> {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(fragment.get(start..i).unwrap_or_default().as_bytes())?;
            writer.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(fragment.get(start..).unwrap_or_default().as_bytes())
    }

    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.begin_array(w)
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_array(w)
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.inner.begin_array_value(w, first)
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_array_value(w)
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.begin_object(w)
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_object(w)
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.inner.begin_object_key(w, first)
    }

    fn end_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_object_key(w)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.begin_object_value(w)
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_object_value(w)
    }
}

/// `value` as Go's `json.Marshal` writes it (compact, Go's string escaping). Map keys come out
/// in the order `value` gives them: Go sorts map keys, so callers pass sorted maps.
pub fn marshal<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        GoFormatter::new(serde_json::ser::CompactFormatter),
    );
    value.serialize(&mut ser)?;
    Ok(out)
}

/// `value` as Go's `json.MarshalIndent(value, "", indent)` writes it.
pub fn marshal_indent<T: serde::Serialize + ?Sized>(
    value: &T,
    indent: &[u8],
) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        GoFormatter::new(serde_json::ser::PrettyFormatter::with_indent(indent)),
    );
    value.serialize(&mut ser)?;
    Ok(out)
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

    /// Expected bytes are what Go 1.22's `json.Marshal` and `json.MarshalIndent(v, "", "   ")`
    /// write for the same values.
    #[test]
    fn documents_like_go() {
        let value = serde_json::json!({
            "created_by": "RUN a && b <c> \u{2028}",
            "list": ["x\n", "\u{1}"],
            "empty": [],
        });
        let compact = marshal(&value).expect("marshal");
        assert_eq!(
            String::from_utf8_lossy(&compact),
            r#"{"created_by":"RUN a \u0026\u0026 b \u003cc\u003e \u2028","list":["x\n","\u0001"],"empty":[]}"#
        );
        let indented = marshal_indent(&value, b"   ").expect("marshal");
        assert_eq!(
            String::from_utf8_lossy(&indented),
            "{\n   \"created_by\": \"RUN a \\u0026\\u0026 b \\u003cc\\u003e \\u2028\",\n   \"list\": [\n      \"x\\n\",\n      \"\\u0001\"\n   ],\n   \"empty\": []\n}"
        );
    }
}
