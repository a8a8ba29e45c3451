//! Go's `strconv.Quote` (also what `%q` and `%#v` print for a string), used to reproduce
//! BuildKit's error messages exactly.

/// Quotes `s` the way Go's `strconv.Quote` does: double quotes around it, `"` and `\`
/// escaped, C-style escapes for the usual control characters, `\x..` for other ASCII control
/// characters, `\u....` / `\U........` for other characters that are not printable.
pub fn quote(s: &str) -> String {
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
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: graphic characters and the ASCII space.
fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    // Format characters and the like that Go does not print as is.
    !matches!(c as u32, 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
        | 0x202a..=0x202e | 0x2060..=0x206f | 0xfeff | 0xfff9..=0xfffb | 0xd800..=0xdfff
        | 0xe000..=0xf8ff | 0xfffe | 0xffff)
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quoting() {
        for (input, expected) in [
            ("abc", r#""abc""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("\t\n\u{0}", r#""\t\n\x00""#),
            ("♥", "\"♥\""),
            ("\u{a0}", r#""\u00a0""#),
        ] {
            assert_eq!(quote(input), expected);
        }
    }
}
