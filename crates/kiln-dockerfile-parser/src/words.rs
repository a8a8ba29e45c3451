//! Word splitting used while shaping arguments: the `ARG`/`ENV`/`LABEL` word splitter and the
//! extraction of instruction flags (`--from=x`).

use crate::gostr::{is_latin1_space, is_space};

/// Splits `s` into words the way upstream's `parseWords` does for `ARG`, `ENV` and `LABEL`.
///
/// Words are separated by Unicode whitespace outside quotes. Quotes (`'` and `"`) and escape
/// characters are **kept** in the words: `a="b c" d\ e` gives `a="b c"` and `d\ e`. The escape
/// character (`\` or `` ` ``, from the `escape` directive) makes the next character literal,
/// except inside single quotes; an escape character at the very end of the input is dropped.
/// An unterminated quote runs to the end of the input. Empty words are only produced by quotes
/// (`''` is a word).
pub fn split_words(s: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq, Eq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut chars = s.chars().peekable();

    while let Some(mut ch) = chars.next() {
        if phase == Phase::Spaces {
            if is_space(ch) {
                continue;
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                match chars.next() {
                    // An escape character at the end of the input is dropped.
                    None => continue,
                    Some(next) => {
                        word.push(ch);
                        ch = next;
                    }
                }
            }
            word.push(ch);
            continue;
        }
        // Inside a quote.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            match chars.next() {
                None => {
                    phase = Phase::Word;
                    continue;
                }
                Some(next) => {
                    word.push(ch);
                    ch = next;
                }
            }
        }
        word.push(ch);
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// Upstream's `extractBuilderFlags`: takes the leading `--flag` words of `line` (the text after
/// the keyword) and returns the rest of the line and the flags.
///
/// Flag words have their quotes removed and `\` escapes the next byte (always `\`, whatever the
/// escape directive says). A lone `--` ends the flags and is dropped. Like upstream, the line is
/// walked byte by byte and each byte is taken as a Latin-1 character: a non-ASCII flag such as
/// `--chown=ü` therefore comes out as `--chown=Ã¼`, and the bytes 0x85 and 0xA0 (which occur
/// inside UTF-8 sequences) separate words. Upstream behaves the same, so the results match.
pub(crate) fn extract_flags(line: &str) -> (String, Vec<String>) {
    #[derive(PartialEq, Eq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let bytes = line.as_bytes();
    let rest_from =
        |pos: usize| String::from_utf8_lossy(bytes.get(pos..).unwrap_or_default()).into_owned();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;

    while pos < bytes.len() {
        let mut b = bytes[pos];
        if phase == Phase::Spaces {
            if is_latin1_space(b) {
                pos += 1;
                continue;
            }
            if b != b'-' || bytes.get(pos + 1) != Some(&b'-') {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if is_latin1_space(b) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if b == b'\'' || b == b'"' {
                quote = b;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if b == b'\\' {
                if pos + 1 == bytes.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                b = bytes[pos];
            }
            word.push(char::from(b));
            pos += 1;
            continue;
        }
        // Inside a quote.
        if b == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if b == b'\\' {
            if pos + 1 == bytes.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            b = bytes[pos];
        }
        word.push(char::from(b));
        pos += 1;
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    (String::new(), words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let cases: [(&str, &str, &[&str]); 8] = [
            ("--a=1 --b x y", "x y", &["--a=1", "--b"]),
            ("-- x", " x", &[]),
            ("--a -- x", " x", &["--a"]),
            ("--a=\"b c\" x", "x", &["--a=b c"]),
            ("--a='' x", "x", &["--a="]),
            ("--a=b\\ c x", "x", &["--a=b c"]),
            ("--a --", "", &["--a"]),
            ("--chown=\u{fc} x", "x", &["--chown=\u{c3}\u{bc}"]),
        ];
        for (input, rest, flags) in cases {
            let (got_rest, got_flags) = extract_flags(input);
            assert_eq!(
                (got_rest.as_str(), got_flags),
                (rest, flags.iter().map(|f| f.to_string()).collect()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn words_edge_cases() {
        assert_eq!(split_words("a\\", '\\'), ["a"]);
        assert_eq!(split_words("'a b", '\\'), ["'a b"]);
        assert_eq!(split_words("'' x", '\\'), ["''", "x"]);
        assert_eq!(split_words("\"a\\", '\\'), ["\"a"]);
        assert_eq!(split_words("a`\u{a0}b c", '`'), ["a`\u{a0}b", "c"]);
    }
}
