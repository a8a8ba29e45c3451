//! Go's `path/filepath.Clean` and `Dir` for `/`-separated paths.

/// Returns the shortest path equivalent to `p` by purely lexical processing, exactly like
/// Go's `filepath.Clean` on Unix.
///
/// Repeated slashes become one, `.` elements are removed, `x/..` pairs are removed, `..` at
/// the start of a rooted path is dropped, and a trailing slash is removed. The empty path
/// becomes `.`.
///
/// ```
/// use kiln_dockerignore::clean_path;
/// assert_eq!(clean_path("docs/"), "docs");
/// assert_eq!(clean_path("./a//b/../c"), "a/c");
/// assert_eq!(clean_path("/../x"), "/x");
/// assert_eq!(clean_path("../x"), "../x");
/// assert_eq!(clean_path(""), ".");
/// ```
pub fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir`: everything before the last `/`, cleaned (`.` when there is no `/`).
pub(crate) fn dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => clean_path(&p[..=i]),
        None => ".".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_like_go() {
        let cases = [
            ("", "."),
            (".", "."),
            ("/", "/"),
            ("//", "/"),
            ("**/", "**"),
            ("a/b/..", "a"),
            ("a/../..", ".."),
            ("../../a/./b/", "../../a/b"),
            ("/a/../../b", "/b"),
            ("!docs/", "!docs"),
            ("a/./.././b", "b"),
        ];
        for (input, want) in cases {
            assert_eq!(clean_path(input), want, "{input:?}");
        }
    }

    #[test]
    fn dir_like_go() {
        let cases = [
            ("a", "."),
            ("a/b", "a"),
            ("/a", "/"),
            ("/", "/"),
            ("a/b/", "a/b"),
        ];
        for (input, want) in cases {
            assert_eq!(dir(input), want, "{input:?}");
        }
    }
}
