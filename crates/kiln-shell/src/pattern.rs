//! Shell wildcard patterns for `${v#p}`, `${v%p}` and `${v/p/r}`.
//!
//! Like BuildKit, a pattern is turned into a regular expression: `*` is any run of
//! characters, `?` one character, `\` escapes `*`, `?` and `\` (and drops itself before `}`
//! and `/`, which needed escaping only for the `${…}` syntax). Brackets are **not** character
//! classes: upstream does not implement bracket expressions, so `[` and `]` are literal.
//! Neither `*` nor `?` matches a newline (the regular-expression `.` does not).
//!
//! Suffix removal finds the shortest or longest match at the *end* of the value. A
//! regular-expression engine searches leftmost, so, as upstream does, both the pattern and
//! the value are reversed and a prefix is removed instead.

use kiln_gostd::unicode::{is_digit, is_letter};
use regex::Regex;

use crate::scanner::{Scanner, char_or_eof};

/// Builds the regular expression for a shell pattern. `greedy` picks `.*` over `.*?` for
/// `*`; `anchored` adds a leading `^`.
pub(crate) fn shell_pattern_to_regex(
    pattern: &str,
    greedy: bool,
    anchored: bool,
) -> Result<Regex, String> {
    let mut s = Scanner::new(pattern);
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    while let Some(tok) = s.next() {
        match tok {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                if matches!(s.peek(), Some('}' | '/')) {
                    continue;
                }
                let escaped = s.next();
                match escaped {
                    Some(c @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(c);
                    }
                    other => return Err(format!("invalid escape '\\{}'", char_or_eof(other))),
                }
            }
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => {
                out.push('\\');
                out.push(tok);
            }
            _ => out.push(tok),
        }
    }
    Regex::new(&out).map_err(|e| e.to_string())
}

/// Reverses a pattern but keeps each `\x` escape pair in order (`a\*c` becomes `c\*a`).
pub(crate) fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens: Vec<&[char]> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let len = if chars[i] == '\\' && i + 1 < chars.len() {
            2
        } else {
            1
        };
        tokens.push(&chars[i..i + len]);
        i += len;
    }
    tokens.iter().rev().flat_map(|t| t.iter()).collect()
}

fn reverse_string(s: &str) -> String {
    s.chars().rev().collect()
}

fn invalid(pattern: &str, reason: String) -> crate::ShellErrorKind {
    crate::ShellErrorKind::InvalidPattern {
        pattern: pattern.to_owned(),
        reason,
    }
}

/// `${value#pattern}` (shortest) and `${value##pattern}` (greedy).
pub(crate) fn trim_prefix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, crate::ShellErrorKind> {
    let re = shell_pattern_to_regex(pattern, greedy, true).map_err(|r| invalid(pattern, r))?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_owned(),
        None => value.to_owned(),
    })
}

/// `${value%pattern}` (shortest) and `${value%%pattern}` (greedy).
pub(crate) fn trim_suffix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, crate::ShellErrorKind> {
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reverse_string(value), greedy)
        // Report the pattern as written, not reversed.
        .map_err(|e| match e {
            crate::ShellErrorKind::InvalidPattern { reason, .. } => invalid(pattern, reason),
            other => other,
        })?;
    Ok(reverse_string(&trimmed))
}

/// `${value/pattern/replacement}` and `${value//pattern/replacement}`.
///
/// The first form replaces the leftmost match with `replacement` taken literally. The second
/// replaces every match, and — because upstream uses Go's `Regexp.ReplaceAllString` —
/// `replacement` is a Go template there: `$0` or `${0}` is the matched text, `$$` is `$`,
/// any other `$name` is empty, and a `$` not followed by a name stays as it is.
pub(crate) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, crate::ShellErrorKind> {
    let re = shell_pattern_to_regex(pattern, true, false).map_err(|r| invalid(pattern, r))?;
    if !all {
        return Ok(match re.find(value) {
            Some(m) => format!(
                "{}{}{}",
                &value[..m.start()],
                replacement,
                &value[m.end()..]
            ),
            None => value.to_owned(),
        });
    }
    // Go's replaceAll loop: an empty match right after the previous match is not replaced,
    // and the search always advances by at least one character.
    let mut out = String::with_capacity(value.len());
    let mut last_end = 0;
    let mut search = 0;
    while search <= value.len() {
        let Some(m) = re.find_at(value, search) else {
            break;
        };
        out.push_str(&value[last_end..m.start()]);
        if m.end() > last_end || m.start() == 0 {
            expand_go_template(&mut out, replacement, m.as_str());
        }
        last_end = m.end();
        let width = value[search..].chars().next().map_or(0, char::len_utf8);
        if search + width > m.end() {
            search += width;
        } else if search + 1 > m.end() {
            search += 1;
        } else {
            search = m.end();
        }
    }
    out.push_str(&value[last_end..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a regular expression whose only group is the whole match.
fn expand_go_template(out: &mut String, template: &str, whole: &str) {
    let mut rest = template;
    while let Some((before, after)) = rest.split_once('$') {
        out.push_str(before);
        rest = after;
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        match extract_group_name(rest) {
            Some((name, r)) => {
                rest = r;
                if name == "0" {
                    out.push_str(whole);
                }
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// Reads `name` or `{name}` after a `$` (Go's `extract`). A name is a run of letters,
/// digits and `_`; a braced name must be closed.
fn extract_group_name(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let len: usize = body
        .chars()
        .take_while(|&c| is_letter(c) || is_digit(c) || c == '_')
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let (name, mut rest) = body.split_at(len);
    if braced {
        rest = rest.strip_prefix('}')?;
    }
    Some((name, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_conversion_matches_upstream() {
        let cases = [
            ("*", "^.*"),
            ("?", "^."),
            ("\\*", "^\\*"),
            (
                "(()[]{\\}^$.\\*\\?|\\\\",
                "^\\(\\(\\)\\[\\]\\{\\}\\^\\$\\.\\*\\?\\|\\\\",
            ),
        ];
        for (pattern, want) in cases {
            let re = shell_pattern_to_regex(pattern, true, true);
            assert_eq!(re.map(|r| r.as_str().to_owned()), Ok(want.to_owned()));
        }
        for bad in ["\\", "\\x", "\\\\\\"] {
            assert!(shell_pattern_to_regex(bad, true, true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reverse_pattern_keeps_escapes() {
        let cases = [
            ("a\\*c", "c\\*a"),
            ("\\\\\\ab", "b\\a\\\\"),
            ("ab\\", "\\ba"),
            ("👽\\🚀🖖", "🖖\\🚀👽"),
            ("\\\\b", "b\\\\"),
        ];
        for (pattern, want) in cases {
            assert_eq!(reverse_pattern(pattern), want, "{pattern:?}");
        }
    }

    #[test]
    fn go_template_expansion() {
        let cases = [
            ("[$0]", "[m]"),
            ("${0}$$", "m$"),
            ("$1x$name", ""),
            ("$.$", "$.$"),
            ("${0", "${0"),
        ];
        for (template, want) in cases {
            let mut out = String::new();
            expand_go_template(&mut out, template, "m");
            assert_eq!(out, want, "{template:?}");
        }
    }
}
