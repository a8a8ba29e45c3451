//! Rendering of an error or warning with the Dockerfile lines it points at, as buildx does.

use std::fmt::Write;

/// Renders `NAME:LINE: message` followed by the offending lines framed like buildx's output.
///
/// `start` and `end` are 1-based and inclusive; `0` means the error has no line.
pub fn render(name: &str, source: &[u8], start: usize, end: usize, message: &str) -> String {
    let mut out = String::new();
    if start == 0 {
        let _ = writeln!(out, "{name}: {message}");
        return out;
    }
    let end = end.max(start);
    let _ = writeln!(out, "{name}:{start}: {message}");
    let text = String::from_utf8_lossy(source);
    let lines: Vec<&str> = text.lines().collect();
    // Show up to four lines of context before the error, like buildx.
    let first = start.saturating_sub(4).max(1);
    let last = end.min(lines.len());
    if first > last {
        return out;
    }
    let rule = "-".repeat(20);
    let _ = writeln!(out, "{rule}");
    for n in first..=last {
        let line = lines.get(n - 1).copied().unwrap_or("");
        let marker = if n >= start { ">>>" } else { "   " };
        let _ = writeln!(out, " {n:>3} | {marker} {line}");
    }
    let _ = writeln!(out, "{rule}");
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn renders_context_lines() {
        let src = b"FROM busybox\nRUN true\nFOO bar\nRUN x\n";
        let got = render("Dockerfile", src, 3, 3, "unknown instruction: FOO");
        let want = "Dockerfile:3: unknown instruction: FOO\n--------------------\n   1 |     FROM busybox\n   2 |     RUN true\n   3 | >>> FOO bar\n--------------------\n";
        assert_eq!(got, want);
    }

    #[test]
    fn renders_without_line() {
        assert_eq!(
            render("Dockerfile", b"", 0, 0, "empty"),
            "Dockerfile: empty\n"
        );
    }
}
