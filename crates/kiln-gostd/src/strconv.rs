//! Go's `strconv.Quote`, which is also what `fmt` prints for a string with `%q` (and `%#v`).
//!
//! Upstream error messages embed user input this way, so kiln's messages must quote the same
//! characters with the same escapes to read the same.

use std::fmt::Write as _;

use crate::unicode::is_print;

/// Quotes `s` the way Go's `strconv.Quote` does.
///
/// The result is enclosed in double quotes; `"` and `\` are escaped with a backslash;
/// printable characters ([`is_print`], so printable non-ASCII too) stay as they are; the
/// control characters with a C escape use it (`\a`, `\b`, `\f`, `\n`, `\r`, `\t`, `\v`); other
/// ASCII controls and DEL become `\xNN`; every other non-printable character becomes `\uNNNN`,
/// or `\UNNNNNNNN` above the Basic Multilingual Plane.
///
/// ```
/// use kiln_gostd::strconv::quote;
/// assert_eq!(quote("a \"b\"\n"), r#""a \"b\"\n""#);
/// assert_eq!(quote("é\u{a0}\u{7f}"), r#""é\u00a0\x7f""#);
/// ```
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out.push('"');
    out
}

/// Appends `c` as it appears inside a string quoted by [`quote`].
fn push_escaped(out: &mut String, c: char) {
    let escape = match c {
        '"' | '\\' => {
            out.push('\\');
            out.push(c);
            return;
        }
        c if is_print(c) => {
            out.push(c);
            return;
        }
        '\u{7}' => "\\a",
        '\u{8}' => "\\b",
        '\u{c}' => "\\f",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\u{b}' => "\\v",
        _ => {
            let code = u32::from(c);
            // Writing to a String cannot fail.
            let _ = if code < 0x20 || code == 0x7f {
                write!(out, "\\x{code:02x}")
            } else if code < 0x1_0000 {
                write!(out, "\\u{code:04x}")
            } else {
                write!(out, "\\U{code:08x}")
            };
            return;
        }
    };
    out.push_str(escape);
}

#[cfg(test)]
mod tests {
    use super::quote;
    use crate::check::table;

    /// Expected values are what Go 1.22's `strconv.Quote` prints.
    #[test]
    fn quotes_like_go() {
        table(
            "quote",
            quote,
            &[
                ("", r#""""#),
                ("abc", r#""abc""#),
                ("linux/amd64", r#""linux/amd64""#),
                ("a\"b\\c", r#""a\"b\\c""#),
                ("it's", r#""it's""#),
                ("tab\there\n", r#""tab\there\n""#),
                (
                    "\u{0}\u{7}\u{8}\u{c}\n\r\t\u{b}\u{1b}\u{7f}",
                    r#""\x00\a\b\f\n\r\t\v\x1b\x7f""#,
                ),
                // Printable non-ASCII stays, combining marks included.
                ("♥☃é\u{301}한", "\"♥☃é\u{301}한\""),
                ("\u{1f600}", "\"\u{1f600}\""),
                // Latin-1 controls, no-break space, soft hyphen.
                ("\u{80}\u{9f}", r#""\u0080\u009f""#),
                ("\u{a0}\u{ad}", r#""\u00a0\u00ad""#),
                // Separators and format characters.
                ("\u{2028}\u{200b}\u{feff}", r#""\u2028\u200b\ufeff""#),
                ("\u{e0001}", r#""\U000e0001""#),
                // Private use, unassigned code points and non-characters.
                (
                    "\u{e000}\u{f0000}\u{10ffff}",
                    r#""\ue000\U000f0000\U0010ffff""#,
                ),
                ("\u{378}\u{2065}\u{ffff}", r#""\u0378\u2065\uffff""#),
            ],
        );
    }
}
