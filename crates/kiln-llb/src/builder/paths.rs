//! Slash-separated path helpers with the exact semantics of Go's `path` package, which BuildKit
//! uses to normalize every path it writes into LLB.

/// Go's `path.Clean`: the shortest equivalent path, `.` for an empty result.
pub(crate) fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `path.Join`: joins the non-empty elements with `/` and cleans the result.
pub(crate) fn join(elems: &[&str]) -> String {
    let nonempty: Vec<&str> = elems.iter().copied().filter(|e| !e.is_empty()).collect();
    if nonempty.is_empty() {
        return String::new();
    }
    clean(&nonempty.join("/"))
}

/// Go's `path.IsAbs`.
pub(crate) fn is_abs(p: &str) -> bool {
    p.starts_with('/')
}

/// BuildKit's `normalizePath` for file actions: relative paths resolve against `parent`;
/// with `keep_slash`, a trailing `/` or `/.` of the original is kept (it changes copy semantics).
pub(crate) fn normalize(parent: &str, p: &str, keep_slash: bool) -> String {
    let mut out = clean(p);
    if !is_abs(&out) {
        out = join(&["/", parent, &out]);
    }
    if keep_slash {
        if p.ends_with('/') && !out.ends_with('/') {
            out.push('/');
        } else if p.ends_with("/.") {
            if out != "/" {
                out.push('/');
            }
            out.push('.');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        let cases = [
            ("", "."),
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("/abc/", "/abc"),
            ("//abc", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(input, want)| clean(input) != *want)
            .map(|(input, want)| format!("clean({input:?}) = {:?}, want {want:?}", clean(input)))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn normalize_keeps_slash() {
        assert_eq!(normalize("/work", "out/", true), "/work/out/");
        assert_eq!(normalize("/work", "out/.", true), "/work/out/.");
        assert_eq!(normalize("/", "./", true), "/");
        assert_eq!(normalize("/", ".", true), "/");
        assert_eq!(normalize("/", "/.", true), "/.");
        assert_eq!(normalize("/a", "b/", false), "/a/b");
    }
}
