//! Reading a `.dockerignore` file into a pattern list (upstream's `ignorefile.ReadAll`).

use kiln_gostd::path::clean as clean_path;

use crate::error::Error;

/// The longest line upstream can read: Go's `bufio.Scanner` gives up on a line of 64 KiB or
/// more (not counting the newline).
pub const MAX_LINE_LEN: usize = 64 * 1024 - 1;

/// Reads the patterns of an ignore file, as BuildKit does before building the matcher.
///
/// * A UTF-8 byte-order mark at the start is removed.
/// * Lines are separated by `\n`; a `\r` before it is dropped.
/// * A line whose **first byte** is `#` is a comment (a `#` after leading spaces is not).
/// * Lines are trimmed of whitespace; empty lines are dropped.
/// * A leading `!` is kept and the text after it is trimmed again; that text is
///   path-cleaned ([`clean_path`]) and one leading `/` is removed, so `/a/b/` and `a/b` are
///   the same pattern. A lone `!` is returned as it is (the matcher rejects it).
///
/// Invalid UTF-8 is replaced by U+FFFD (kiln matches paths as Unicode strings). Fails only
/// on a line longer than [`MAX_LINE_LEN`] bytes, where upstream fails too.
pub fn read_ignore_file(content: &[u8]) -> Result<Vec<String>, Error> {
    let (bom_len, content) = match content.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (3, rest),
        None => (0, content),
    };
    let mut lines: Vec<&[u8]> = content.split(|&b| b == b'\n').collect();
    // A final newline does not start another line.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = Vec::new();
    for (n, line) in lines.into_iter().enumerate() {
        // Upstream removes the byte-order mark after reading the line, so it counts.
        let read_len = line.len() + if n == 0 { bom_len } else { 0 };
        if read_len > MAX_LINE_LEN {
            return Err(Error::LineTooLong { line: n + 1 });
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'#') {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        let pattern = text.trim();
        if pattern.is_empty() {
            continue;
        }
        let (invert, body) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, pattern),
        };
        let mut body = if body.is_empty() {
            String::new()
        } else {
            clean_path(body)
        };
        if body.len() > 1 && body.starts_with('/') {
            body.remove(0);
        }
        out.push(if invert { format!("!{body}") } else { body });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_rules() {
        let input = b"\xEF\xBB\xBF#c\r\n  # not a comment\r\n/\n!\t/x/\n\n";
        let want = ["# not a comment", "/", "!x"];
        assert_eq!(read_ignore_file(input), Ok(want.map(String::from).to_vec()));
        assert_eq!(read_ignore_file(b""), Ok(vec![]));
    }

    #[test]
    fn line_length_limit() {
        let mut ok = vec![b'a'; MAX_LINE_LEN];
        ok.push(b'\n');
        assert!(read_ignore_file(&ok).is_ok());
        let long = vec![b'a'; MAX_LINE_LEN + 1];
        assert_eq!(read_ignore_file(&long), Err(Error::LineTooLong { line: 1 }));
    }
}
