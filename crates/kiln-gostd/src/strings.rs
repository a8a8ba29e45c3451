//! Go's `strings.ToLower` and `strings.TrimSpace`.

use crate::unicode::is_space;

/// Go's `strings.ToLower`: every character mapped by its simple lower-case mapping.
///
/// Rust's `str::to_lowercase` differs in two ways: it lower-cases a final capital sigma to `ς`
/// by context, and it maps U+0130 (`İ`) to two characters. Go does neither: `Σ` is always `σ`
/// and `İ` is a plain `i`.
pub fn to_lower(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        // `char::to_lowercase` is the simple mapping followed by the combining dot above for
        // U+0130, the only character whose full mapping has more than one character; Go keeps
        // the first one.
        out.push(c.to_lowercase().next().unwrap_or(c));
    }
    out
}

/// Go's `strings.TrimSpace`: `s` without leading and trailing [`is_space`] characters.
pub fn trim_space(s: &str) -> &str {
    s.trim_matches(is_space)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::table;

    #[test]
    fn lower_matches_go() {
        table(
            "to_lower",
            to_lower,
            &[
                ("FROM", "from"),
                ("ONBU\u{130}LD", "onbuild"),
                ("HEALTHCHEC\u{212a}", "healthcheck"),
                ("ΣΑΣ", "σασ"),
                ("Ünïcode", "ünïcode"),
                ("", ""),
            ],
        );
    }

    #[test]
    fn trim_space_matches_go() {
        table(
            "trim_space",
            trim_space,
            &[
                (" \t a b \n", "a b"),
                ("\u{85}\u{a0}x\u{3000}", "x"),
                ("\u{200b}x", "\u{200b}x"),
                ("   ", ""),
            ],
        );
    }
}
