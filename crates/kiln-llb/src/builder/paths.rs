//! Slash-separated path helpers: Go's `path` package (from `kiln-gostd`), which BuildKit uses to
//! normalize every path it writes into LLB, and BuildKit's own `normalizePath` on top of it.

pub(crate) use kiln_gostd::path::{clean, is_abs, join};

/// BuildKit's `normalizePath` for file actions: the path is cleaned, and a relative one is
/// resolved against `parent` (itself taken from the root, an empty `parent` being the root), so
/// the result is always absolute. With `keep_slash`, a trailing `/` or `/.` of the original is
/// kept, because it changes copy semantics (`normalize("/app", "conf/", true)` is `/app/conf/`).
///
/// The Dockerfile frontend uses the same function for `COPY`/`ADD` sources and destinations.
pub fn normalize(parent: &str, p: &str, keep_slash: bool) -> String {
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
    fn normalize_keeps_slash() {
        assert_eq!(normalize("/work", "out/", true), "/work/out/");
        assert_eq!(normalize("/work", "out/.", true), "/work/out/.");
        assert_eq!(normalize("/", "./", true), "/");
        assert_eq!(normalize("/", ".", true), "/");
        assert_eq!(normalize("/", "/.", true), "/.");
        assert_eq!(normalize("/a", "b/", false), "/a/b");
        assert_eq!(normalize("", "b", false), "/b");
        assert_eq!(normalize("/a/", "", false), "/a");
        assert_eq!(normalize("/a", "../../b/./c/", true), "/b/c/");
        assert_eq!(normalize("/a", "//x//y/", true), "/x/y/");
    }
}
