//! Pattern syntax: the validity check upstream borrows from Go's `filepath.Match`, and the
//! translation of a pattern into the form it is matched in.
//!
//! Upstream (`moby/patternmatcher`) classifies every pattern: a plain string is compared
//! exactly, `dir/**` is a prefix test, `**` followed by plain text is a suffix test, and
//! everything else becomes a regular expression. We do the same, with the same
//! classification rules, and build a `regex` crate expression equivalent to the Go one
//! upstream builds:
//!
//! * `*` is `[^/]*`, `?` is `[^/]`, `**` is `(.*/)?` (any number of whole segments,
//!   including none) and a final `**` is `.*`;
//! * `. + ( ) | { } $` are literal; `^` is passed through and, as in upstream, anchors (so a
//!   pattern with `^` in the middle and a wildcard never matches);
//! * `\x` escapes `x`: a punctuation character is literal. Upstream hands `\` plus a letter
//!   or digit to Go's regular-expression parser, which gives it a meaning (`\d` a digit,
//!   `\t` a tab, `\b` a word boundary…); we support the escapes whose meaning is the same
//!   in both engines and report the others (`\1`, `\x41`, `\pL`, `\Q`…) as invalid patterns
//!   when the pattern is used;
//! * `[...]` and `[^...]` are character classes with ranges and `\` escapes. A reversed
//!   range such as `[l-O]` is an error when the pattern is used (upstream's regular
//!   expression fails to compile then).
//!
//! Deliberate differences, all in classes, where upstream's translation produces regular
//! expressions that do not mean what the pattern says: `*` and `?` inside a class (`[*?]`)
//! are literal members here, while upstream expands them inside the class; and `[:alpha:]`
//! style names are plain characters here, while upstream's regular expression reads them as
//! POSIX classes.

use regex::Regex;

/// How a pattern is matched against a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    /// The path must equal the pattern.
    Exact,
    /// The pattern is `X**`: the path must start with `X`.
    Prefix,
    /// The pattern is `**X` with no wildcard in `X`: the path must end with `X`, or equal
    /// `X` without its leading `/`.
    Suffix,
    /// Anything else: a regular expression.
    Regex,
}

/// A pattern ready for matching.
#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    Exact,
    Prefix,
    Suffix,
    Regex(Regex),
    /// The pattern passed the syntax check but cannot be matched; using it is an error.
    Invalid(String),
}

/// Checks `pattern` the way Go's `filepath.Match(pattern, ".")` does (Unix rules): every
/// character class must be well formed and the pattern must not end in a lone `\`.
pub(crate) fn validate(pattern: &str) -> Result<(), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut rest: &[char] = &chars;
    while !rest.is_empty() {
        // Skip the stars that start a chunk, then find where the chunk ends: at the next
        // `*` that is outside a class (as Go's scanChunk decides it).
        while let Some(('*', tail)) = rest.split_first() {
            rest = tail;
        }
        let mut in_range = false;
        let mut i = 0;
        while i < rest.len() {
            match rest[i] {
                '\\' if i + 1 < rest.len() => i += 1,
                '[' => in_range = true,
                ']' => in_range = false,
                '*' if !in_range => break,
                _ => {}
            }
            i += 1;
        }
        let (chunk, tail) = rest.split_at(i);
        check_chunk(chunk)?;
        rest = tail;
    }
    Ok(())
}

const BAD_CLASS: &str = "malformed character class";

/// Go's matchChunk, reduced to its syntax checks.
fn check_chunk(mut chunk: &[char]) -> Result<(), String> {
    while let Some((&c, tail)) = chunk.split_first() {
        chunk = tail;
        match c {
            '[' => {
                if let Some(('^', tail)) = chunk.split_first() {
                    chunk = tail;
                }
                let mut nrange = 0;
                loop {
                    if let Some((']', tail)) = chunk.split_first()
                        && nrange > 0
                    {
                        chunk = tail;
                        break;
                    }
                    class_char(&mut chunk)?;
                    if let Some(('-', tail)) = chunk.split_first() {
                        chunk = tail;
                        class_char(&mut chunk)?;
                    }
                    nrange += 1;
                }
            }
            '\\' => match chunk.split_first() {
                Some((_, tail)) => chunk = tail,
                None => return Err("trailing backslash".to_owned()),
            },
            _ => {}
        }
    }
    Ok(())
}

/// Go's getEsc: one (possibly escaped) class character, which must be followed by more
/// pattern text.
fn class_char(chunk: &mut &[char]) -> Result<char, String> {
    let mut rest = *chunk;
    let c = match rest.split_first() {
        None | Some(('-' | ']', _)) => return Err(BAD_CLASS.to_owned()),
        Some(('\\', tail)) => {
            let (&c, tail) = tail.split_first().ok_or(BAD_CLASS)?;
            rest = tail;
            c
        }
        Some((&c, tail)) => {
            rest = tail;
            c
        }
    };
    if rest.is_empty() {
        return Err(BAD_CLASS.to_owned());
    }
    *chunk = rest;
    Ok(c)
}

/// Reads pattern characters one at a time, skipping a leading U+FEFF like Go's
/// `text/scanner`, which upstream uses here.
struct Chars<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl<'a> Chars<'a> {
    fn new(s: &'a str) -> Self {
        let s = s.strip_prefix('\u{feff}').unwrap_or(s);
        Chars {
            chars: s.chars().peekable(),
        }
    }
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }
    fn next(&mut self) -> Option<char> {
        self.chars.next()
    }
}

/// Classifies and translates a cleaned pattern (without its `!`).
pub(crate) fn compile(pattern: &str) -> (MatchType, Compiled) {
    match translate(pattern) {
        Ok((MatchType::Regex, re)) => match Regex::new(&re) {
            Ok(re) => (MatchType::Regex, Compiled::Regex(re)),
            Err(e) => (MatchType::Regex, Compiled::Invalid(e.to_string())),
        },
        Ok((MatchType::Exact, _)) => (MatchType::Exact, Compiled::Exact),
        Ok((MatchType::Prefix, _)) => (MatchType::Prefix, Compiled::Prefix),
        Ok((MatchType::Suffix, _)) => (MatchType::Suffix, Compiled::Suffix),
        Err(reason) => (MatchType::Regex, Compiled::Invalid(reason)),
    }
}

/// Upstream's classification, with the regular expression text (meaningful only for
/// [`MatchType::Regex`]).
pub(crate) fn translate(pattern: &str) -> Result<(MatchType, String), String> {
    let mut s = Chars::new(pattern);
    let mut re = String::from("^");
    let mut ty = MatchType::Exact;
    let mut i = 0;
    while let Some(c) = s.next() {
        match c {
            '*' if s.peek() == Some('*') => {
                s.next();
                // `**/` is treated like `**`.
                if s.peek() == Some('/') {
                    s.next();
                }
                if s.peek().is_none() {
                    if ty == MatchType::Exact {
                        ty = MatchType::Prefix;
                    } else {
                        re.push_str(".*");
                        ty = MatchType::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    ty = MatchType::Regex;
                }
                if i == 0 {
                    ty = MatchType::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                ty = MatchType::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                ty = MatchType::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(c);
            }
            '\\' => {
                match s.next() {
                    Some(e) => re.push_str(&escape_outside_class(e)?),
                    None => return Err("trailing backslash".to_owned()),
                }
                ty = MatchType::Regex;
            }
            '[' => {
                re.push_str(&class(&mut s)?);
                ty = MatchType::Regex;
            }
            ']' => {
                re.push_str("\\]");
                ty = MatchType::Regex;
            }
            _ => re.push(c),
        }
        i += 1;
    }
    if ty == MatchType::Regex {
        re.push('$');
    }
    Ok((ty, re))
}

/// A literal character for the `regex` crate, in or out of a class: letters and digits as
/// they are, anything else in `\x{…}` form, which is never special.
fn class_member(c: char) -> String {
    if c.is_alphanumeric() {
        c.to_string()
    } else {
        format!("\\x{{{:x}}}", u32::from(c))
    }
}

/// The character a Go escape `\c` stands for, when it stands for one character.
fn escaped_char(c: char) -> Option<char> {
    Some(match c {
        _ if c.is_ascii() && !c.is_ascii_alphanumeric() => c,
        'a' => '\u{7}',
        'f' => '\u{c}',
        't' => '\t',
        'n' => '\n',
        'r' => '\r',
        'v' => '\u{b}',
        _ => return None,
    })
}

fn unsupported_escape(c: char) -> String {
    format!("unsupported escape \\{c}")
}

/// `\c` outside a class, with the meaning Go's regular-expression syntax gives it.
fn escape_outside_class(c: char) -> Result<String, String> {
    if let Some(lit) = escaped_char(c) {
        return Ok(class_member(lit));
    }
    Ok(match c {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        's' => "[\\t\\n\\f\\r ]",
        'S' => "[^\\t\\n\\f\\r ]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        'b' => "(?-u:\\b)",
        'B' => "(?-u:\\B)",
        'A' => "\\A",
        'z' => "\\z",
        _ => return Err(unsupported_escape(c)),
    }
    .to_owned())
}

/// One class member character after `[`, `^` or `-`, with `\` escapes.
fn class_char_in(s: &mut Chars<'_>) -> Result<char, String> {
    match s.next() {
        Some('\\') => {
            let c = s.next().ok_or(BAD_CLASS)?;
            escaped_char(c).ok_or_else(|| unsupported_escape(c))
        }
        Some(c) => Ok(c),
        None => Err(BAD_CLASS.to_owned()),
    }
}

/// Translates a class; the `[` has been read.
fn class(s: &mut Chars<'_>) -> Result<String, String> {
    let mut out = String::from("[");
    if s.peek() == Some('^') {
        s.next();
        out.push('^');
    }
    let mut first = true;
    loop {
        match s.peek() {
            Some(']') if !first => {
                s.next();
                break;
            }
            None => return Err(BAD_CLASS.to_owned()),
            _ => {}
        }
        first = false;
        let lo = class_char_in(s)?;
        out.push_str(&class_member(lo));
        if s.peek() == Some('-') {
            s.next();
            let hi = class_char_in(s)?;
            if hi < lo {
                return Err(format!("invalid character class range {lo}-{hi}"));
            }
            out.push('-');
            out.push_str(&class_member(hi));
        }
    }
    out.push(']');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_follows_filepath_match() {
        let ok = [
            "*",
            "a[b-d]e",
            "[\\]a]",
            "[\\-]",
            "[x\\-]",
            "[*]",
            "a]",
            "[Local-Only]/",
        ];
        for p in ok {
            assert_eq!(validate(p), Ok(()), "{p:?}");
        }
        let bad = [
            "[", "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[^", "[^bc", "a[", "a*[",
        ];
        for p in bad {
            assert!(validate(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn escapes_that_go_gives_a_meaning() {
        let cases = [
            ("a\\d", "a5", true),
            ("a\\d", "ad", false),
            ("a\\tb", "a\tb", true),
            ("foo\\bar", "foobar", false),
            ("a\\*b", "a*b", true),
            ("a\\<", "a<", true),
        ];
        for (pattern, path, want) in cases {
            let (_, compiled) = compile(pattern);
            let Compiled::Regex(re) = compiled else {
                panic!("{pattern:?} did not compile: {compiled:?}");
            };
            assert_eq!(re.is_match(path), want, "{pattern:?} on {path:?}");
        }
        for pattern in ["a\\1", "a\\x41", "a\\pL", "[\\d]", "é\\é"] {
            assert!(
                matches!(compile(pattern).1, Compiled::Invalid(_)),
                "{pattern:?}"
            );
        }
    }
}
