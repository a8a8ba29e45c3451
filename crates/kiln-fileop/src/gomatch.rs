//! Go's `path/filepath.Match` on Unix, and fsutil's helpers that find the wildcard part of a
//! path.
//!
//! Semantics (from Go's documentation): `*` matches any run of non-`/` characters, `?` one
//! non-`/` character, `[...]` a character class (`[^...]` negated, ranges `a-z`, `\` escapes
//! inside), and `\c` matches `c` literally. A class may match `/`. Names are bytes; a byte that
//! is not valid UTF-8 is read as U+FFFD, one byte wide, as Go does.

/// A malformed pattern (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadPattern;

/// Decodes one character at the start of `s`: the character and its width in bytes. Invalid
/// UTF-8 decodes as U+FFFD with width 1; the empty slice as U+FFFD with width 0.
fn decode(s: &[u8]) -> (char, usize) {
    let Some(&first) = s.first() else {
        return ('\u{fffd}', 0);
    };
    if first < 0x80 {
        return (char::from(first), 1);
    }
    let width = match first {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return ('\u{fffd}', 1),
    };
    match s.get(..width).map(std::str::from_utf8) {
        Some(Ok(text)) => match text.chars().next() {
            Some(c) => (c, width),
            None => ('\u{fffd}', 1),
        },
        _ => ('\u{fffd}', 1),
    }
}

/// Whether `name` matches the shell pattern `pattern` (Go's `filepath.Match`).
pub(crate) fn matches(pattern: &[u8], name: &[u8]) -> Result<bool, BadPattern> {
    let mut pattern = pattern;
    let mut name = name;
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of the name unless it has a `/`.
            return Ok(!name.contains(&b'/'));
        }
        let (tail, ok) = match_chunk(chunk, name)?;
        // The last chunk must consume the whole name.
        if ok && (tail.is_empty() || !pattern.is_empty()) {
            name = tail;
            continue;
        }
        if star {
            // Try skipping more and more of the name, never a `/`.
            let mut i = 0;
            while i < name.len() && name.get(i) != Some(&b'/') {
                let (tail, ok) = match_chunk(chunk, name.get(i + 1..).unwrap_or(&[]))?;
                if ok {
                    if pattern.is_empty() && !tail.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = tail;
                    continue 'pattern;
                }
                i += 1;
            }
        }
        // No match: still report a malformed remainder of the pattern, as Go does.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, &[])?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off the leading stars and the next chunk (up to the next `*` outside a class).
fn scan_chunk(pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut pattern = pattern;
    let mut star = false;
    while let Some((b'*', rest)) = pattern.split_first() {
        pattern = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern.get(i) {
            Some(b'\\') if i + 1 < pattern.len() => i += 1,
            Some(b'[') => in_range = true,
            Some(b']') => in_range = false,
            Some(b'*') if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    let (chunk, rest) = pattern.split_at(i.min(pattern.len()));
    (star, chunk, rest)
}

/// Matches `chunk` against the start of `s`; returns the rest of `s` and whether it matched.
/// The whole chunk is always checked for syntax, even after the match failed.
fn match_chunk<'s>(chunk: &[u8], s: &'s [u8]) -> Result<(&'s [u8], bool), BadPattern> {
    let mut chunk = chunk;
    let mut s = s;
    let mut failed = false;
    while let Some(&c) = chunk.first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            b'[' => {
                let mut r = '\u{fffd}';
                if !failed {
                    let (ch, n) = decode(s);
                    r = ch;
                    s = s.get(n..).unwrap_or(&[]);
                }
                chunk = chunk.get(1..).unwrap_or(&[]);
                let mut negated = false;
                if chunk.first() == Some(&b'^') {
                    negated = true;
                    chunk = chunk.get(1..).unwrap_or(&[]);
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = chunk.get(1..).unwrap_or(&[]);
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.first() == Some(&b'-') {
                        let (h, rest) = get_esc(chunk.get(1..).unwrap_or(&[]))?;
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
                    let (_, n) = decode(s);
                    s = s.get(n..).unwrap_or(&[]);
                }
                chunk = chunk.get(1..).unwrap_or(&[]);
            }
            _ => {
                let literal = if c == b'\\' {
                    chunk = chunk.get(1..).unwrap_or(&[]);
                    match chunk.first() {
                        Some(&l) => l,
                        None => return Err(BadPattern),
                    }
                } else {
                    c
                };
                if !failed {
                    if s.first() != Some(&literal) {
                        failed = true;
                    }
                    s = s.get(1..).unwrap_or(&[]);
                }
                chunk = chunk.get(1..).unwrap_or(&[]);
            }
        }
    }
    if failed {
        Ok((&[], false))
    } else {
        Ok((s, true))
    }
}

/// One (possibly escaped) class character; it must be followed by more pattern text.
fn get_esc(chunk: &[u8]) -> Result<(char, &[u8]), BadPattern> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(BadPattern),
        Some(b'\\') => {
            chunk = chunk.get(1..).unwrap_or(&[]);
            if chunk.is_empty() {
                return Err(BadPattern);
            }
        }
        _ => {}
    }
    let (r, n) = decode(chunk);
    let invalid = r == '\u{fffd}' && n == 1;
    let rest = chunk.get(n..).unwrap_or(&[]);
    if invalid || rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((r, rest))
}

/// Whether a path element contains an unescaped wildcard character (fsutil's
/// `containsWildcards`).
pub(crate) fn contains_wildcards(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name.get(i) {
            Some(b'\\') => i += 1,
            Some(b'*' | b'?' | b'[') => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Splits `path` at its first element with a wildcard (fsutil's `splitWildcards`): the part
/// before it (a cleaned path, `/`-rooted when `path` is) and the rest (cleaned, relative;
/// empty when there is no wildcard).
pub(crate) fn split_wildcards(path: &str) -> (String, String) {
    let mut before: Vec<&str> = Vec::new();
    let mut after: Vec<&str> = Vec::new();
    let mut found = false;
    for element in path.split('/') {
        if !found && contains_wildcards(element.as_bytes()) {
            found = true;
        }
        let element = if element.is_empty() { "/" } else { element };
        if found {
            after.push(element);
        } else {
            before.push(element);
        }
    }
    (go_join(&before), go_join(&after))
}

/// Go's `filepath.Join`: joins the non-empty elements with `/` and cleans the result; all
/// empty gives the empty string.
fn go_join(elements: &[&str]) -> String {
    let kept: Vec<&str> = elements.iter().copied().filter(|e| !e.is_empty()).collect();
    if kept.is_empty() {
        return String::new();
    }
    kiln_gostd::path::clean(&kept.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from Go's `filepath` match tests (the Unix ones).
    #[test]
    fn go_match_cases() {
        let cases: &[(&str, &str, Result<bool, BadPattern>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(BadPattern)),
            ("[-]", "-", Err(BadPattern)),
            ("[x-]", "x", Err(BadPattern)),
            ("[x-]", "-", Err(BadPattern)),
            ("[x-]", "z", Err(BadPattern)),
            ("[-x]", "x", Err(BadPattern)),
            ("[-x]", "-", Err(BadPattern)),
            ("[-x]", "a", Err(BadPattern)),
            ("\\", "a", Err(BadPattern)),
            ("[a-b-c]", "a", Err(BadPattern)),
            ("[", "a", Err(BadPattern)),
            ("[^", "a", Err(BadPattern)),
            ("[^bc", "a", Err(BadPattern)),
            ("a[", "a", Err(BadPattern)),
            ("a[", "ab", Err(BadPattern)),
            ("a[", "x", Err(BadPattern)),
            ("a/b[", "x", Err(BadPattern)),
            ("*x", "xxx", Ok(true)),
        ];
        let mut failures = Vec::new();
        for (pattern, name, want) in cases {
            let got = matches(pattern.as_bytes(), name.as_bytes());
            if got != *want {
                failures.push(format!(
                    "Match({pattern:?}, {name:?}) = {got:?}, want {want:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn wildcard_split() {
        let cases = [
            ("/a/b/*.txt", ("/a/b", "*.txt")),
            ("/a/*/c", ("/a", "*/c")),
            ("/a/b", ("/a/b", "")),
            ("a/b\\*c/d", ("a/b\\*c/d", "")),
            ("/*", ("/", "*")),
            ("*", ("", "*")),
        ];
        for (input, (before, after)) in cases {
            assert_eq!(
                split_wildcards(input),
                (before.to_owned(), after.to_owned()),
                "{input:?}"
            );
        }
    }
}
