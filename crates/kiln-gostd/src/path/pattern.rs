//! Go's `path.Match` (which `path/filepath.Match` is on Unix), and the two helpers that fsutil
//! and BuildKit's content hasher both build on it to find where the wildcard part of a path
//! starts.
//!
//! Go strings are bytes, not characters, and `Match` reads them that way: a `*` skips the name
//! byte by byte, `?` and classes decode one UTF-8 character where one starts and take a byte
//! that does not start one as U+FFFD, one byte wide. Working on `&[u8]` keeps those corners
//! identical (file names need not be UTF-8 at all), so both functions take anything that is
//! `AsRef<[u8]>`: `&str`, `&[u8]`, `&String`, `&Vec<u8>`.

/// A malformed pattern (Go's `path.ErrBadPattern`, whose message this is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern")]
pub struct BadPattern;

/// Go's `path.Match`: whether all of `name` matches the shell pattern `pattern`.
///
/// `*` matches any run of bytes other than `/`, `?` one character other than `/`, `[...]` one
/// character of a class (`[^...]` negated, `lo-hi` ranges, `\` escapes; a class may match
/// `/`), and `\c` the character `c`. A malformed pattern is an error whether or not matching
/// reaches the malformed part (so `matches(p, "")` checks a whole pattern), except after a
/// final `*` has already decided the match, as in Go.
///
/// ```
/// use kiln_gostd::path::{BadPattern, matches};
/// assert_eq!(matches("a*/b", "abc/b"), Ok(true));
/// assert_eq!(matches("a*", "ab/c"), Ok(false));
/// assert_eq!(matches("a[", "x"), Err(BadPattern));
/// ```
pub fn matches(pattern: impl AsRef<[u8]>, name: impl AsRef<[u8]>) -> Result<bool, BadPattern> {
    let mut pattern = pattern.as_ref();
    let mut name = name.as_ref();
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A final star matches the rest of the name unless it crosses a `/`.
            return Ok(!name.contains(&b'/'));
        }
        // The chunk right here; the last chunk must use up the name.
        if let Some(tail) = match_chunk(chunk, name)?
            && (tail.is_empty() || !pattern.is_empty())
        {
            name = tail;
            continue;
        }
        if star {
            // The star swallows 1, 2, ... bytes (never a `/`) before the chunk.
            let mut skip = 0;
            while let Some(&b) = name.get(skip) {
                if b == b'/' {
                    break;
                }
                skip += 1;
                let after = name.get(skip..).unwrap_or_default();
                if let Some(tail) = match_chunk(chunk, after)? {
                    if pattern.is_empty() && !tail.is_empty() {
                        continue;
                    }
                    name = tail;
                    continue 'chunks;
                }
            }
        }
        // No match: the rest of the pattern must still be well formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, &[])?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Decodes the character at the start of `s` the way Go's `utf8.DecodeRune` does: the
/// character and its width; a byte that does not start a valid UTF-8 sequence is U+FFFD one
/// byte wide, and the empty slice U+FFFD zero bytes wide.
fn decode(s: &[u8]) -> (char, usize) {
    let Some(&first) = s.first() else {
        return (char::REPLACEMENT_CHARACTER, 0);
    };
    if first.is_ascii() {
        return (char::from(first), 1);
    }
    let width = match first {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return (char::REPLACEMENT_CHARACTER, 1),
    };
    // `from_utf8` rejects overlong forms, surrogates and code points above U+10FFFF, as Go
    // does.
    match s.get(..width).map(std::str::from_utf8) {
        Some(Ok(text)) => text
            .chars()
            .next()
            .map_or((char::REPLACEMENT_CHARACTER, 1), |c| (c, width)),
        _ => (char::REPLACEMENT_CHARACTER, 1),
    }
}

/// Splits off the next chunk: whether stars lead it, the chunk (up to the next star outside a
/// character class), and the rest of the pattern.
fn scan_chunk(pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut pattern = pattern;
    let mut star = false;
    while let Some((b'*', rest)) = pattern.split_first() {
        pattern = rest;
        star = true;
    }
    let mut in_class = false;
    let mut i = 0;
    while let Some(&b) = pattern.get(i) {
        match b {
            // Skip the escaped byte, if there is one (a final `\` is reported later).
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_class = true,
            b']' => in_class = false,
            b'*' if !in_class => break,
            _ => {}
        }
        i += 1;
    }
    let (chunk, rest) = pattern.split_at(i.min(pattern.len()));
    (star, chunk, rest)
}

/// Matches `chunk` (no star outside classes) against the start of `s`: what is left of `s`,
/// or `None` when the chunk does not match there. The whole chunk is parsed even after a
/// mismatch, so that a malformed chunk is always reported.
fn match_chunk<'s>(chunk: &[u8], s: &'s [u8]) -> Result<Option<&'s [u8]>, BadPattern> {
    let mut chunk = chunk;
    let mut s = s;
    let mut failed = false;
    while let Some((&c, after)) = chunk.split_first() {
        if s.is_empty() {
            failed = true;
        }
        match c {
            b'[' => {
                // Go compares against rune 0 once the match has failed; it cannot matter.
                let mut r = '\0';
                if !failed {
                    let (decoded, width) = decode(s);
                    r = decoded;
                    s = s.get(width..).unwrap_or_default();
                }
                chunk = after;
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = chunk.get(1..).unwrap_or_default();
                }
                let mut matched = false;
                let mut ranges = 0usize;
                loop {
                    if ranges > 0
                        && let Some((b']', rest)) = chunk.split_first()
                    {
                        chunk = rest;
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if let Some((b'-', rest)) = chunk.split_first() {
                        let (h, rest) = class_char(rest)?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s.first() == Some(&b'/') {
                        failed = true;
                    }
                    let (_, width) = decode(s);
                    s = s.get(width..).unwrap_or_default();
                }
                chunk = after;
            }
            _ => {
                let (literal, rest) = if c == b'\\' {
                    match after.split_first() {
                        Some((&escaped, rest)) => (escaped, rest),
                        None => return Err(BadPattern),
                    }
                } else {
                    (c, after)
                };
                if !failed {
                    if s.first() != Some(&literal) {
                        failed = true;
                    }
                    s = s.get(1..).unwrap_or_default();
                }
                chunk = rest;
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

/// One (possibly escaped) character of a class, and the pattern after it, which must not be
/// empty (the class still needs its `]`).
fn class_char(chunk: &[u8]) -> Result<(char, &[u8]), BadPattern> {
    let chunk = match chunk.split_first() {
        None | Some((b'-' | b']', _)) => return Err(BadPattern),
        Some((b'\\', [])) => return Err(BadPattern),
        Some((b'\\', rest)) => rest,
        Some(_) => chunk,
    };
    let (c, width) = decode(chunk);
    let rest = chunk.get(width..).unwrap_or_default();
    if (c == char::REPLACEMENT_CHARACTER && width == 1) || rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((c, rest))
}

/// Whether one path element has a wildcard (`*`, `?` or `[`) that no `\` escapes: the
/// `containsWildcards` that fsutil's copy and BuildKit's content hasher both define.
///
/// ```
/// use kiln_gostd::path::contains_wildcards;
/// assert!(contains_wildcards("*.txt"));
/// assert!(!contains_wildcards("a\\*b"));
/// ```
pub fn contains_wildcards(element: impl AsRef<[u8]>) -> bool {
    let mut bytes = element.as_ref().iter();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => {
                bytes.next();
            }
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
    }
    false
}

/// Splits `path` at its first element with a wildcard (the `splitWildcards` of fsutil and of
/// BuildKit's content hasher): the elements before it, joined (`/`-rooted when `path` is, `""`
/// when there are none), and the rest, joined (relative; `""` when there is no wildcard).
/// `path` is cleaned first, so `..` never crosses the split.
///
/// ```
/// use kiln_gostd::path::split_wildcards;
/// assert_eq!(split_wildcards("/a/b*/c"), ("/a".to_owned(), "b*/c".to_owned()));
/// assert_eq!(split_wildcards("a/b"), ("a/b".to_owned(), String::new()));
/// ```
pub fn split_wildcards(path: &str) -> (String, String) {
    let cleaned = super::join(&[path]);
    let mut before: Vec<&str> = Vec::new();
    let mut after: Vec<&str> = Vec::new();
    for element in cleaned.split('/') {
        // An empty element stands for the root (Go joins it back as `/`).
        let element = if element.is_empty() { "/" } else { element };
        if after.is_empty() && !contains_wildcards(element) {
            before.push(element);
        } else {
            after.push(element);
        }
    }
    (super::join(&before), super::join(&after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::table;

    /// One `Match` case: pattern and name, and the result.
    type Row<T> = ((T, T), Result<bool, BadPattern>);

    /// Go's `matchTests` from `path/filepath/match_test.go` (the same table as `path`'s), then
    /// cases for the byte-wise corners that the Go table does not cover.
    #[test]
    fn match_like_go() {
        let go_table: &[Row<&str>] = &[
            (("abc", "abc"), Ok(true)),
            (("*", "abc"), Ok(true)),
            (("*c", "abc"), Ok(true)),
            (("a*", "a"), Ok(true)),
            (("a*", "abc"), Ok(true)),
            (("a*", "ab/c"), Ok(false)),
            (("a*/", "abc/"), Ok(true)),
            (("a*/", "a/c/"), Ok(false)),
            (("a*b*c*d*e*/f", "axbxcxdxe/f"), Ok(true)),
            (("a*b*c*d*e*/f", "axbxcxdxexxx/f"), Ok(true)),
            (("a*b*c*d*e*/f", "axbxcxdxe/xxx/f"), Ok(false)),
            (("a*b*c*d*e*/f", "axbxcxdxexxx/fff"), Ok(false)),
            (("a*b?c*x", "abxbbxdbxebxczzx"), Ok(true)),
            (("a*b?c*x", "abxbbxdbxebxczzy"), Ok(false)),
            (("ab[c]", "abc"), Ok(true)),
            (("ab[b-d]", "abc"), Ok(true)),
            (("ab[e-g]", "abc"), Ok(false)),
            (("ab[^c]", "abc"), Ok(false)),
            (("ab[^b-d]", "abc"), Ok(false)),
            (("ab[^e-g]", "abc"), Ok(true)),
            (("a\\*", "a*"), Ok(true)),
            (("a\\*", "a"), Ok(false)),
            (("a?", "a☺"), Ok(true)),
            (("a[^a]", "a☺"), Ok(true)),
            (("a???", "a☺"), Ok(false)),
            (("a[^a][^a][^a]", "a☺"), Ok(false)),
            (("[a-ζ]*", "α"), Ok(true)),
            (("*[a-ζ]", "A"), Ok(false)),
            (("a?", "a/"), Ok(false)),
            (("a*", "a/"), Ok(false)),
            (("[\\]a]", "]"), Ok(true)),
            (("[\\-]", "-"), Ok(true)),
            (("[x\\-]", "x"), Ok(true)),
            (("[x\\-]", "-"), Ok(true)),
            (("[x\\-]", "z"), Ok(false)),
            (("[\\-x]", "x"), Ok(true)),
            (("[\\-x]", "-"), Ok(true)),
            (("[\\-x]", "a"), Ok(false)),
            (("[]a]", "]"), Err(BadPattern)),
            (("[-]", "-"), Err(BadPattern)),
            (("[x-]", "x"), Err(BadPattern)),
            (("[x-]", "-"), Err(BadPattern)),
            (("[x-]", "z"), Err(BadPattern)),
            (("[-x]", "x"), Err(BadPattern)),
            (("[-x]", "-"), Err(BadPattern)),
            (("[-x]", "a"), Err(BadPattern)),
            (("\\", "a"), Err(BadPattern)),
            (("[a-b-c]", "a"), Err(BadPattern)),
            (("[", "a"), Err(BadPattern)),
            (("[^", "a"), Err(BadPattern)),
            (("[^bc", "a"), Err(BadPattern)),
            (("a[", "a"), Err(BadPattern)),
            (("a[", "a"), Err(BadPattern)),
            (("a[", "x"), Err(BadPattern)),
            (("a/b[", "x"), Err(BadPattern)),
            (("*x", "xxx"), Ok(true)),
        ];
        let ours: &[Row<&[u8]>] = &[
            // A star skips bytes, so it can stop inside a character; the `?`s then take the
            // two continuation bytes as U+FFFD each (Go: true).
            (("*??".as_bytes(), "☺".as_bytes()), Ok(true)),
            (("*?".as_bytes(), "☺".as_bytes()), Ok(true)),
            (("?".as_bytes(), "☺".as_bytes()), Ok(true)),
            // Names that are not UTF-8: a stray byte is one U+FFFD character.
            ((b"a?b", b"a\xffb"), Ok(true)),
            ((b"a??b", b"a\xffb"), Ok(false)),
            ((b"a*", b"a\xff\xfe"), Ok(true)),
            ((b"a\xffb", b"a\xffb"), Ok(true)),
            ((b"a[^x]b", b"a\xffb"), Ok(true)),
            (("a[\u{fffd}]b".as_bytes(), b"a\xffb"), Ok(true)),
            // A truncated sequence is one U+FFFD per byte.
            ((b"??", b"\xe2\x98"), Ok(true)),
            // A class character that is not UTF-8 is malformed.
            ((b"[\xff]", b"a"), Err(BadPattern)),
            // Malformed parts after a mismatch are still reported.
            ((b"x*a[", b"y"), Err(BadPattern)),
            ((b"x*y\\", b"xy"), Err(BadPattern)),
            // A final star decides before the rest is looked at (there is no rest).
            ((b"a*", b"a"), Ok(true)),
            ((b"*", b""), Ok(true)),
            ((b"", b""), Ok(true)),
            ((b"", b"a"), Ok(false)),
            // A class may match `/`; `?` and `*` may not.
            ((b"a[/]b", b"a/b"), Ok(true)),
            ((b"a[^x]b", b"a/b"), Ok(true)),
            ((b"**/b", b"a/b"), Ok(true)),
            ((b"*/*", b"a/b/c"), Ok(false)),
        ];
        table("Match", |(p, n): (&str, &str)| matches(p, n), go_table);
        table("Match", |(p, n): (&[u8], &[u8])| matches(p, n), ours);
    }

    /// Every malformed pattern of the table is reported against the empty name too.
    #[test]
    fn whole_pattern_checked() {
        table(
            "Match(_, \"\")",
            |pattern: &str| matches(pattern, ""),
            &[
                ("[]a]", Err(BadPattern)),
                ("a[", Err(BadPattern)),
                ("a/b[", Err(BadPattern)),
                ("[x-]", Err(BadPattern)),
                ("*[", Err(BadPattern)),
                ("a*b*[", Err(BadPattern)),
                ("a*", Ok(false)),
                ("*", Ok(true)),
                ("[a-z]", Ok(false)),
            ],
        );
    }

    #[test]
    fn wildcards_found() {
        table(
            "containsWildcards",
            |e: &str| contains_wildcards(e),
            &[
                ("", false),
                ("abc", false),
                ("*", true),
                ("a?c", true),
                ("[ab]", true),
                ("a]", false),
                ("a\\*", false),
                ("a\\\\*", true),
                ("a\\", false),
                ("{a,b}", false),
            ],
        );
    }

    /// The cases of fsutil's copy and of BuildKit's content hasher.
    #[test]
    fn split_at_the_first_wildcard() {
        table(
            "splitWildcards",
            split_wildcards,
            &[
                ("/a/b/*.txt", ("/a/b".to_owned(), "*.txt".to_owned())),
                ("/a/*/c", ("/a".to_owned(), "*/c".to_owned())),
                ("/a/b*/c", ("/a".to_owned(), "b*/c".to_owned())),
                ("/a/b", ("/a/b".to_owned(), String::new())),
                ("a/b\\*c/d", ("a/b\\*c/d".to_owned(), String::new())),
                ("/a/b\\*c", ("/a/b\\*c".to_owned(), String::new())),
                ("/*", ("/".to_owned(), "*".to_owned())),
                ("/*.txt", ("/".to_owned(), "*.txt".to_owned())),
                ("/", ("/".to_owned(), String::new())),
                ("*", (String::new(), "*".to_owned())),
                // Go splits "" into one empty element, which stands for the root.
                ("", ("/".to_owned(), String::new())),
                ("/a//b*//c/", ("/a".to_owned(), "b*/c".to_owned())),
                // Cleaned before it is split, as upstream joins the path first.
                ("a/../b*", (String::new(), "b*".to_owned())),
                ("a/*/..", ("a".to_owned(), String::new())),
                ("./x/?", ("x".to_owned(), "?".to_owned())),
            ],
        );
    }
}
