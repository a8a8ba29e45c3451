//! Go's `path` package for `/`-separated paths: `Clean`, `Join`, `Base`, `Dir` and `IsAbs`.
//!
//! On Unix, `path/filepath` behaves exactly the same, so these also stand for `filepath.Clean`
//! and friends. The processing is purely lexical: nothing here looks at a file system, and
//! symbolic links are not followed.
//!
//! Shell patterns: [`matches()`] is Go's `path.Match` (and `filepath.Match`), with
//! [`contains_wildcards`] and [`split_wildcards`], the two helpers that fsutil and BuildKit's
//! content hasher define identically on top of it.

mod pattern;

pub use pattern::{BadPattern, contains_wildcards, matches, split_wildcards};

/// Go's `path.Clean`: the shortest path equivalent to `p` by purely lexical processing.
///
/// Runs of slashes become one, `.` elements are removed, an element followed by `..` is removed
/// with it, `..` elements at the start of a rooted path are dropped, and a trailing slash is
/// removed (except for `/` itself). The empty path, and a relative path that cleans away to
/// nothing, become `.`.
///
/// ```
/// use kiln_gostd::path::clean;
/// assert_eq!(clean("./a//b/../c/"), "a/c");
/// assert_eq!(clean("/../x"), "/x");
/// assert_eq!(clean("a/../.."), "..");
/// assert_eq!(clean(""), ".");
/// ```
pub fn clean(p: &str) -> String {
    let rooted = is_abs(p);
    // The kept elements; `..` only ever stands at the front, and only in a relative path.
    let mut kept: Vec<&str> = Vec::new();
    let mut leading_dotdots = 0usize;
    for element in p.split('/') {
        match element {
            "" | "." => {}
            ".." if kept.len() > leading_dotdots => {
                kept.pop();
            }
            ".." if rooted => {}
            ".." => {
                kept.push("..");
                leading_dotdots += 1;
            }
            name => kept.push(name),
        }
    }
    let body = kept.join("/");
    if rooted {
        format!("/{body}")
    } else if body.is_empty() {
        ".".to_owned()
    } else {
        body
    }
}

/// Go's `path.Join`: the non-empty elements joined with `/`, then [`clean`]ed; the empty
/// string when every element is empty (and so when there is none).
///
/// ```
/// use kiln_gostd::path::join;
/// assert_eq!(join(&["/", "work", "../src/"]), "/src");
/// assert_eq!(join(&["a", "", "b"]), "a/b");
/// assert_eq!(join(&["", ""]), "");
/// ```
pub fn join<S: AsRef<str>>(elements: &[S]) -> String {
    let non_empty: Vec<&str> = elements
        .iter()
        .map(AsRef::as_ref)
        .filter(|e| !e.is_empty())
        .collect();
    if non_empty.is_empty() {
        return String::new();
    }
    clean(&non_empty.join("/"))
}

/// Go's `path.Base`: the last element, trailing slashes removed first; `.` for the empty path
/// and `/` for a path of slashes only.
pub fn base(p: &str) -> &str {
    if p.is_empty() {
        return ".";
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// Go's `path.Dir`: everything before the last `/`, [`clean`]ed; `.` when there is no `/`.
pub fn dir(p: &str) -> String {
    match p.rfind('/') {
        Some(slash) => clean(p.get(..=slash).unwrap_or(p)),
        None => ".".to_owned(),
    }
}

/// Go's `path.IsAbs`: whether `p` starts with `/`.
pub fn is_abs(p: &str) -> bool {
    p.starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::table;

    /// Go's `cleantests` from `path/path_test.go`, and a few more.
    #[test]
    fn clean_like_go() {
        table(
            "clean",
            clean,
            &[
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
                ("a/b/c/", "a/b/c"),
                ("./", "."),
                ("../", ".."),
                ("../../", "../.."),
                ("/abc/", "/abc"),
                ("abc//def//ghi", "abc/def/ghi"),
                ("//abc", "/abc"),
                ("///abc", "/abc"),
                ("//abc//", "/abc"),
                ("abc//", "abc"),
                ("//", "/"),
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
                ("/a/../../b", "/b"),
                ("/..", "/"),
                ("/../x", "/x"),
                ("**/", "**"),
                ("!docs/", "!docs"),
            ],
        );
    }

    /// Go's `jointests`, and a few more.
    #[test]
    fn join_like_go() {
        table(
            "join",
            join::<&str>,
            &[
                (&[][..], ""),
                (&[""], ""),
                (&["", ""], ""),
                (&["a"], "a"),
                (&["a", "b"], "a/b"),
                (&["a", ""], "a"),
                (&["", "b"], "b"),
                (&["/", "a"], "/a"),
                (&["/", ""], "/"),
                (&["a/", "b"], "a/b"),
                (&["a/", ""], "a"),
                (&["a", "", "b"], "a/b"),
                (&["/", "work", "../src/"], "/src"),
                (&["linux", "arm", "v7"], "linux/arm/v7"),
            ],
        );
    }

    /// Go's `basetests`.
    #[test]
    fn base_like_go() {
        table(
            "base",
            base,
            &[
                ("", "."),
                (".", "."),
                ("/.", "."),
                ("/", "/"),
                ("////", "/"),
                ("x/", "x"),
                ("abc", "abc"),
                ("abc/def", "def"),
                ("a/b/.x", ".x"),
                ("a/b/c.", "c."),
                ("a/b/c.x", "c.x"),
            ],
        );
    }

    /// Go's `dirtests`.
    #[test]
    fn dir_like_go() {
        table(
            "dir",
            dir,
            &[
                ("", "."),
                (".", "."),
                ("/.", "/"),
                ("/", "/"),
                ("////", "/"),
                ("/foo", "/"),
                ("x/", "x"),
                ("abc", "."),
                ("abc/def", "abc"),
                ("abc////def", "abc"),
                ("a/b/.x", "a/b"),
                ("a/b/c.", "a/b"),
                ("a/b/c.x", "a/b"),
            ],
        );
    }

    #[test]
    fn is_abs_like_go() {
        table(
            "is_abs",
            is_abs,
            &[
                ("", false),
                ("/", true),
                ("/a", true),
                ("a/", false),
                ("./a", false),
            ],
        );
    }
}
