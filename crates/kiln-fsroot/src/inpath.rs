//! [`InPath`]: a path inside a root, as plain component names.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A path inside a root: its components, none of them empty, `.` or `..`, and none containing
/// `/`. The empty path is the root itself.
///
/// Every way of making one keeps those rules, so an `InPath` joined to a root can never name
/// anything above it lexically; whether it contains symbolic links depends on where it came
/// from ([`crate::resolve`] returns paths whose components were not links when it looked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InPath(Vec<OsString>);

impl InPath {
    /// The root itself.
    pub fn root() -> InPath {
        InPath(Vec::new())
    }

    /// The cleaned components of `path`, read as if it started with `/` (Go's
    /// `filepath.Join("/", path)`): empty and `.` elements vanish, and `..` removes the
    /// element before it and never climbs above the root.
    ///
    /// ```
    /// use kiln_fsroot::InPath;
    /// assert_eq!(InPath::lexical("a/./b/../../../c/").display(), "/c");
    /// assert!(InPath::lexical("/..").is_root());
    /// ```
    pub fn lexical(path: impl AsRef<[u8]>) -> InPath {
        Self::lexical_checked(path.as_ref()).0
    }

    /// Like [`InPath::lexical`], and whether some `..` had to stop at the root.
    pub(crate) fn lexical_checked(path: &[u8]) -> (InPath, bool) {
        let mut out = InPath::root();
        let mut climbed = false;
        for element in path.split(|&b| b == b'/') {
            climbed |= out.push_element(element);
        }
        (out, climbed)
    }

    /// Applies one element lexically; returns whether it was a `..` at the root.
    fn push_element(&mut self, element: &[u8]) -> bool {
        match element {
            b"" | b"." => false,
            b".." => self.0.pop().is_none(),
            name => {
                self.0.push(OsStr::from_bytes(name).to_os_string());
                false
            }
        }
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The components, outermost first.
    pub fn components(&self) -> &[OsString] {
        &self.0
    }

    /// The components, outermost first, by value.
    pub fn into_components(self) -> Vec<OsString> {
        self.0
    }

    /// The last component; `None` for the root.
    pub fn name(&self) -> Option<&OsStr> {
        self.0.last().map(OsString::as_os_str)
    }

    /// The parent directory; the root is its own parent.
    pub fn parent(&self) -> InPath {
        let mut parent = self.0.clone();
        parent.pop();
        InPath(parent)
    }

    /// This path with one more component. A `name` that is not a single plain component
    /// (empty, `.`, `..`, or containing `/`) is applied lexically instead, as [`InPath::join`]
    /// would.
    pub fn child(&self, name: &OsStr) -> InPath {
        self.join(name.as_bytes())
    }

    /// This path with `more` appended lexically: `/`-separated, `..` climbs, never above the
    /// root (a leading `/` in `more` does not restart at the root).
    pub fn join(&self, more: impl AsRef<[u8]>) -> InPath {
        let mut out = self.clone();
        for element in more.as_ref().split(|&b| b == b'/') {
            out.push_element(element);
        }
        out
    }

    /// The path as a person reads it: `/a/b`, or `/` for the root (bytes that are not UTF-8
    /// are shown as U+FFFD).
    pub fn display(&self) -> String {
        if self.0.is_empty() {
            return "/".to_owned();
        }
        let mut out = String::new();
        for c in &self.0 {
            out.push('/');
            out.push_str(&c.to_string_lossy());
        }
        out
    }

    /// The path relative to the root as bytes: `a/b`, empty for the root.
    pub fn relative_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(c.as_bytes());
        }
        out
    }

    /// The path relative to the root: `a/b`, empty for the root. Join it to the root's host
    /// path to name the entry on the host.
    pub fn to_path_buf(&self) -> PathBuf {
        self.0.iter().collect()
    }
}

/// Collects components (each applied lexically, as [`InPath::join`] does, so that the rules
/// hold whatever they contain).
impl FromIterator<OsString> for InPath {
    fn from_iter<I: IntoIterator<Item = OsString>>(iter: I) -> InPath {
        let mut out = InPath::root();
        for component in iter {
            for element in component.as_bytes().split(|&b| b == b'/') {
                out.push_element(element);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str, climbs: bool, failures: &mut Vec<String>) {
        let (got, climbed) = InPath::lexical_checked(input.as_bytes());
        if got.display() != expected || climbed != climbs {
            failures.push(format!(
                "lexical({input:?}) = {:?} (climbed: {climbed}), want {expected:?} (climbed: {climbs})",
                got.display()
            ));
        }
    }

    #[test]
    fn lexical_never_climbs_above_the_root() {
        let mut failures = Vec::new();
        for (input, expected, climbs) in [
            ("", "/", false),
            ("/", "/", false),
            (".", "/", false),
            ("..", "/", true),
            ("/..", "/", true),
            ("../../etc/x", "/etc/x", true),
            ("/abs/./path/", "/abs/path", false),
            ("a/../../b", "/b", true),
            ("a/b/../..", "/", false),
            ("./", "/", false),
            ("a//b///c", "/a/b/c", false),
            ("a/b/../c/./d/", "/a/c/d", false),
        ] {
            check(input, expected, climbs, &mut failures);
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn building_keeps_the_rules() {
        let base = InPath::lexical("a/b");
        let cases = [
            (base.child(OsStr::new("c")), "/a/b/c"),
            (base.child(OsStr::new("..")), "/a"),
            (base.child(OsStr::new("x/y")), "/a/b/x/y"),
            (base.child(OsStr::new("")), "/a/b"),
            (base.join("../../../z"), "/z"),
            (base.join("/q"), "/a/b/q"),
            (base.parent(), "/a"),
            (InPath::root().parent(), "/"),
            (
                [
                    OsString::from("a"),
                    OsString::from(".."),
                    OsString::from("b/c"),
                ]
                .into_iter()
                .collect(),
                "/b/c",
            ),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(got, want)| got.display() != *want)
            .map(|(got, want)| format!("got {:?}, want {want:?}", got.display()))
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert_eq!(base.relative_bytes(), b"a/b");
        assert_eq!(base.to_path_buf(), PathBuf::from("a/b"));
        assert_eq!(base.name(), Some(OsStr::new("b")));
        assert_eq!(InPath::root().name(), None);
        assert!(InPath::root().relative_bytes().is_empty());
        assert_eq!(
            InPath::lexical(b"a/\xff").display(),
            "/a/\u{fffd}",
            "non-UTF-8 names display lossily"
        );
    }
}
