//! Parser directives (`# syntax=...`, `# escape=...`, `# check=...`).
//!
//! A directive is a comment line of the form `# key = value` at the very top of the file. The
//! first line that is not one (an instruction, a blank line, a plain comment, or a comment whose
//! key is not a known directive) ends the directive block for good. Keys are matched without
//! regard to case; a directive may appear only once.

use crate::ast::{Directive, LineRange};
use crate::error::ParseError;
use crate::gostr::{is_regex_space, is_space};
use crate::json::{self, TopValue};

/// The directive names BuildKit knows.
const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// The longest physical line (without its `\n`) that Go's `bufio.Scanner` accepts.
pub(crate) const MAX_LINE: usize = 65_535;

/// The state machine upstream calls `DirectiveParser`: fed one line at a time, it recognises
/// directives until the first line that is not one.
#[derive(Debug)]
pub(crate) struct DirectiveParser {
    line: usize,
    prefix: &'static str,
    seen: Vec<String>,
    done: bool,
}

impl DirectiveParser {
    /// A parser for directives written after `prefix` (`#`, or `//` for the `syntax` fallback),
    /// whose first line is numbered `offset + 1`.
    pub(crate) fn new(prefix: &'static str, offset: usize) -> Self {
        Self {
            line: offset,
            prefix,
            seen: Vec::new(),
            done: false,
        }
    }

    /// The number of lines fed so far, plus the offset.
    pub(crate) fn line(&self) -> usize {
        self.line
    }

    /// Feeds one line (without its line ending). Returns the directive it holds, if any; the
    /// error is upstream's duplicate-directive message.
    pub(crate) fn parse_line(&mut self, line: &str) -> Result<Option<Directive>, String> {
        self.line += 1;
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix(self.prefix) else {
            self.done = true;
            return Ok(None);
        };
        let Some((key, value)) = match_key_value(rest.trim_start_matches(is_space)) else {
            self.done = true;
            return Ok(None);
        };
        let name = key.to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&name) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        self.seen.push(name.clone());
        Ok(Some(Directive {
            name,
            value,
            line: self.line,
        }))
    }
}

/// Matches upstream's `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` (with Go's `\s`, which is
/// `[\t\n\f\r ]`), returning the key and the value.
fn match_key_value(s: &str) -> Option<(&str, String)> {
    let bytes = s.as_bytes();
    if !bytes.first()?.is_ascii_alphabetic() {
        return None;
    }
    let key_end = bytes
        .iter()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(bytes.len());
    let (key, after_key) = s.split_at(key_end);
    let after_eq = after_key
        .trim_start_matches(is_regex_space)
        .strip_prefix('=')?;
    let value_start = after_eq.trim_start_matches(is_regex_space);
    if !value_start.is_empty() {
        // Lines never hold a `\n` here; `.` would not match one.
        let value = value_start.trim_end_matches(is_regex_space);
        return (!value.contains('\n')).then(|| (key, value.to_owned()));
    }
    // Only whitespace after `=`: the lazy `(.+?)` still needs one character, so the regular
    // expression backtracks and the value is the last whitespace character.
    let last = after_eq.chars().next_back()?;
    if last == '\n' {
        return None;
    }
    Some((key, last.to_string()))
}

/// Splits `data` into lines like Go's `bufio.Scanner` with `ScanLines`: on `\n`, dropping one
/// `\r` before it; a final line without `\n` counts when it is not empty. Scanning stops before
/// a line longer than the scanner's limit.
fn scan_lines(data: &[u8]) -> impl Iterator<Item = String> + '_ {
    data.split_inclusive(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\n").unwrap_or(line))
        .take_while(|line| line.len() <= MAX_LINE)
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            String::from_utf8_lossy(line).into_owned()
        })
}

fn parse_all(data: &[u8], parser: &mut DirectiveParser) -> (Vec<Directive>, Option<String>) {
    let mut found = Vec::new();
    for line in scan_lines(data) {
        if parser.done {
            break;
        }
        match parser.parse_line(&line) {
            Ok(Some(directive)) => found.push(directive),
            Ok(None) => {}
            Err(message) => return (found, Some(message)),
        }
    }
    (found, None)
}

fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data)
}

/// Reads the parser directives at the top of a Dockerfile (upstream `DirectiveParser.ParseAll`
/// with the `#` comment style).
///
/// Only `syntax`, `escape` and `check` are directives (names lower-cased, values trimmed); the
/// first other line ends the block. A UTF-8 byte order mark at the start is skipped (upstream
/// skips it before calling `ParseAll`), and invalid UTF-8 is replaced with U+FFFD. A repeated
/// directive is an error (`only one syntax parser directive can be used`) at the line of the
/// repetition. The escape value is not checked here; [`crate::parse`] checks it.
pub fn parse_directives(input: &[u8]) -> Result<Vec<Directive>, ParseError> {
    let mut parser = DirectiveParser::new("#", 0);
    let (found, error) = parse_all(strip_bom(input), &mut parser);
    match error {
        Some(message) => Err(ParseError::new(parser.line(), message)),
        None => Ok(found),
    }
}

/// Upstream's `parseDirective`: finds directive `key` in the `#` style and, when `any_format`,
/// also in the `//` style and as a top-level key of a JSON object making up the whole file.
fn find_directive(
    key: &str,
    input: &[u8],
    any_format: bool,
) -> Option<(String, String, LineRange)> {
    let data = strip_bom(input);
    let (data, offset) = match data.iter().position(|&b| b == b'\n') {
        _ if !data.starts_with(b"#!") => (data, 0),
        Some(newline) => (&data[newline + 1..], 1),
        None => (&data[data.len()..], 1),
    };

    let found = |directives: Vec<Directive>| {
        directives.into_iter().find(|d| d.name == key).map(|d| {
            let reference = d.value.split(' ').next().unwrap_or_default().to_owned();
            let lines = LineRange {
                start: d.line,
                end: d.line,
            };
            (reference, d.value, lines)
        })
    };

    let (directives, _) = parse_all(data, &mut DirectiveParser::new("#", offset));
    if let Some(hit) = found(directives) {
        return Some(hit);
    }
    if !any_format {
        return None;
    }
    let (directives, _) = parse_all(data, &mut DirectiveParser::new("//", offset));
    if let Some(hit) = found(directives) {
        return Some(hit);
    }
    let text = String::from_utf8_lossy(data);
    let TopValue::Object(members) = json::unmarshal(&text)? else {
        return None;
    };
    // Go decodes into a map, so the last member with the key wins.
    let (_, value) = members.into_iter().rev().find(|(k, _)| k == key)?;
    let value = value?;
    let lines = LineRange {
        start: offset,
        end: offset,
    };
    Some((value.clone(), value, lines))
}

/// Finds the `syntax` directive (upstream `DetectSyntax`): the frontend image reference (the
/// value up to its first space), the whole value, and the line it is on.
///
/// Besides `# syntax=...`, this accepts `// syntax=...` lines and a file that is one JSON object
/// with a string `"syntax"` member (then the line is 0, or 1 after a shebang). A leading UTF-8
/// byte order mark is skipped, and a first line starting with `#!` is skipped but still counted.
pub fn detect_syntax(input: &[u8]) -> Option<(String, String, LineRange)> {
    find_directive("syntax", input, true)
}

/// Finds the `check` directive (upstream `ParseDirective("check", ...)`): the value up to its
/// first space, the whole value (for example `skip=all // opts`), and the line it is on. Only
/// the `#` comment style counts for this directive.
pub fn parse_directive_check(input: &[u8]) -> Option<(String, String, LineRange)> {
    find_directive("check", input, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_matching_follows_the_regex() {
        let cases = [
            ("escape=\\", Some(("escape", "\\"))),
            ("syntax = a b  ", Some(("syntax", "a b"))),
            ("escape= ", Some(("escape", " "))),
            ("escape=", None),
            ("escape \t=\t x\x0b ", Some(("escape", "x\x0b"))),
            ("1escape=x", None),
            ("es-cape=x", None),
        ];
        for (input, want) in cases {
            let got = match_key_value(input);
            let got = got.as_ref().map(|(k, v)| (*k, v.as_str()));
            assert_eq!(got, want, "{input:?}");
        }
    }
}
