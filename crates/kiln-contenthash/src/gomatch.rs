//! Go's `path.Match` (the shell-pattern matcher BuildKit applies to wildcard selectors), and
//! the helpers that find where the wildcard part of a selector starts.
//!
//! Syntax: `*` matches any run of characters other than `/`, `?` one character other than
//! `/`, `[class]` one character of a class (`[^class]` negated, `a-z` ranges, `\` escapes),
//! and `\c` the character `c`. A malformed pattern is an error, reported whether or not the
//! malformed part is reached while matching a particular name.

/// The pattern is malformed (Go's `path.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadPattern;

/// A checked pattern, ready to match many names.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    chars: Vec<char>,
}

impl Glob {
    /// Checks the whole pattern (as Go's `Match(pattern, "")` would report it) and keeps it.
    pub(crate) fn new(pattern: &str) -> Result<Glob, BadPattern> {
        let glob = Glob {
            chars: pattern.chars().collect(),
        };
        glob.matches("")?;
        Ok(glob)
    }

    /// Whether `name` matches the whole pattern.
    pub(crate) fn matches(&self, name: &str) -> Result<bool, BadPattern> {
        let name: Vec<char> = name.chars().collect();
        match_chars(&self.chars, &name)
    }
}

/// Go's `path.Match` on character slices.
fn match_chars(mut pattern: &[char], mut name: &[char]) -> Result<bool, BadPattern> {
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A final star matches the rest of the name unless it crosses a `/`.
            return Ok(!name.contains(&'/'));
        }
        // The chunk right here?
        let here = match_chunk(chunk, name)?;
        if let Some(tail) = here {
            // The last chunk must use up the name; an earlier one may leave some for the rest.
            if tail.is_empty() || !pattern.is_empty() {
                name = tail;
                continue;
            }
        }
        if star {
            // The star swallows 1, 2, … characters (never a `/`) before the chunk.
            let mut skip = 0;
            while let Some(&c) = name.get(skip) {
                if c == '/' {
                    break;
                }
                skip += 1;
                let after = name.get(skip..).unwrap_or(&[]);
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

/// Splits off the next chunk: leading stars, then everything up to the next star outside a
/// character class.
fn scan_chunk(pattern: &[char]) -> (bool, &[char], &[char]) {
    let mut star = false;
    let mut pattern = pattern;
    while let Some(('*', rest)) = pattern.split_first() {
        pattern = rest;
        star = true;
    }
    let mut in_class = false;
    let mut i = 0;
    while let Some(&c) = pattern.get(i) {
        match c {
            // Skip the escaped character, if there is one.
            '\\' if i + 1 < pattern.len() => i += 1,
            '[' => in_class = true,
            ']' => in_class = false,
            '*' if !in_class => break,
            _ => {}
        }
        i += 1;
    }
    let (chunk, rest) = pattern.split_at(i.min(pattern.len()));
    (star, chunk, rest)
}

/// Matches a chunk (no unescaped star outside classes) at the start of `s`; returns what
/// is left of `s`, or `None` when the chunk does not match. The whole chunk is parsed even
/// after a mismatch, so that a malformed chunk is always reported.
fn match_chunk<'a>(
    mut chunk: &[char],
    mut s: &'a [char],
) -> Result<Option<&'a [char]>, BadPattern> {
    let mut failed = false;
    while let Some((&c, after)) = chunk.split_first() {
        let next = if failed { None } else { s.split_first() };
        if next.is_none() {
            failed = true;
        }
        match c {
            '[' => {
                let mut r = '\0';
                if let Some((&first, rest)) = next {
                    r = first;
                    s = rest;
                }
                chunk = after;
                let negated = chunk.first() == Some(&'^');
                if negated {
                    chunk = chunk.get(1..).unwrap_or(&[]);
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if ranges > 0 && chunk.first() == Some(&']') {
                        chunk = chunk.get(1..).unwrap_or(&[]);
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if let Some(('-', rest)) = chunk.split_first() {
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
            '?' => {
                if let Some((&first, rest)) = next {
                    if first == '/' {
                        failed = true;
                    }
                    s = rest;
                }
                chunk = after;
            }
            '\\' => {
                let Some((&escaped, rest)) = after.split_first() else {
                    return Err(BadPattern);
                };
                if let Some((&first, tail)) = next {
                    if first != escaped {
                        failed = true;
                    }
                    s = tail;
                }
                chunk = rest;
            }
            _ => {
                if let Some((&first, tail)) = next {
                    if first != c {
                        failed = true;
                    }
                    s = tail;
                }
                chunk = after;
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

/// One (possibly escaped) character of a class; the class must go on after it.
fn class_char(chunk: &[char]) -> Result<(char, &[char]), BadPattern> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some('-') | Some(']') => return Err(BadPattern),
        Some('\\') => chunk = chunk.get(1..).unwrap_or(&[]),
        Some(_) => {}
    }
    let Some((&c, rest)) = chunk.split_first() else {
        return Err(BadPattern);
    };
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((c, rest))
}

/// Whether one path element has a wildcard (`*`, `?`, `[`) that is not escaped.
pub(crate) fn contains_wildcards(element: &str) -> bool {
    let mut bytes = element.bytes();
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

/// Splits a cleaned absolute selector into its leading elements without wildcards (an
/// absolute path, `/` when the first element already has one) and the rest (relative, empty
/// when there is no wildcard at all).
pub(crate) fn split_wildcards(selector: &str) -> (String, String) {
    let mut prefix = vec!["/"];
    let mut rest: Vec<&str> = Vec::new();
    for element in selector.split('/').filter(|e| !e.is_empty()) {
        if rest.is_empty() && !contains_wildcards(element) {
            prefix.push(element);
        } else {
            rest.push(element);
        }
    }
    (kiln_gostd::path::join(&prefix), rest.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's own `path.Match` test table (transcribed rows, `Ok(bool)` or a bad pattern).
    #[test]
    fn go_match_table() {
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
            let got = match_chars(
                &pattern.chars().collect::<Vec<_>>(),
                &name.chars().collect::<Vec<_>>(),
            );
            if got != *want {
                failures.push(format!(
                    "Match({pattern:?}, {name:?}) = {got:?}, want {want:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn split() {
        let cases = [
            ("/a/b*/c", ("/a", "b*/c")),
            ("/a/b", ("/a/b", "")),
            ("/*.txt", ("/", "*.txt")),
            ("/", ("/", "")),
            ("/a/b\\*c", ("/a/b\\*c", "")),
        ];
        for (input, (d1, d2)) in cases {
            assert_eq!(
                split_wildcards(input),
                (d1.to_owned(), d2.to_owned()),
                "{input}"
            );
        }
    }
}
