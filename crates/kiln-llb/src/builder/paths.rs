//! Slash-separated path helpers: Go's `path` package (from `kiln-gostd`), which BuildKit uses to
//! normalize every path it writes into LLB, and BuildKit's own `normalizePath` on top of it.

pub(crate) use kiln_gostd::path::{clean, is_abs, join};

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
    fn normalize_keeps_slash() {
        assert_eq!(normalize("/work", "out/", true), "/work/out/");
        assert_eq!(normalize("/work", "out/.", true), "/work/out/.");
        assert_eq!(normalize("/", "./", true), "/");
        assert_eq!(normalize("/", ".", true), "/");
        assert_eq!(normalize("/", "/.", true), "/.");
        assert_eq!(normalize("/a", "b/", false), "/a/b");
    }
}
