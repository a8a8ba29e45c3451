//! Go's `encoding/json` string output, which BuildKit uses for some source attributes
//! (`local.includepattern` and friends): it escapes `<`, `>`, `&`, U+2028 and U+2029, which
//! serde_json does not.

/// Encodes a list of strings as Go's `json.Marshal([]string)` does.
pub(crate) fn string_array(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(item, &mut out);
    }
    out.push(']');
    out
}

fn string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_like_go() {
        let items = vec![
            "a<b>&c".to_string(),
            "q\"\\\n\u{1}".to_string(),
            "*.go".to_string(),
        ];
        assert_eq!(
            super::string_array(&items),
            r#"["a\u003cb\u003e\u0026c","q\"\\\n\u0001","*.go"]"#
        );
        assert_eq!(super::string_array(&[]), "[]");
    }
}
