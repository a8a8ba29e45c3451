//! Resolving archive paths inside a root directory, never outside it, with [`kiln_fsroot`].
//!
//! Every directory on the way is opened relative to the previous one with `O_PATH |
//! O_NOFOLLOW`; a symlink is read and its target resolved again from the root (absolute
//! targets) or from the current directory (relative ones), and `..` never climbs above the
//! root. This is what `openat2(RESOLVE_IN_ROOT)` does in the kernel, done in user space so
//! that kiln also learns the resolved path (needed for opaque directories) and can create
//! missing directories on the way. The final component is never followed: callers use the
//! returned directory descriptor with `*at` calls and `AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`
//! or `O_EXCL`, so no write can land outside the root whatever the archive's symlinks say.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use kiln_fsroot::{DotDot, Escape, InPath, LINUX_MAX_LINKS, Options, Policy};

pub(crate) use kiln_fsroot::OnMissing;

/// How the applier resolves: as the kernel does (`..` where it is met, at most 40 links),
/// every missing directory handed to the applier's hook and an error if the hook leaves it
/// missing.
const OPTIONS: Options = Options {
    follow_last: true,
    dotdot: DotDot::Resolved,
    max_links: LINUX_MAX_LINKS,
    missing: Policy::Fail,
    not_dir: Policy::Fail,
    escape: Escape::Clamp,
};

/// A directory resolved inside the root.
pub(crate) struct Resolved {
    /// An `O_PATH` descriptor of the directory.
    pub fd: OwnedFd,
    /// Its path below the root, as resolved (no symlinks, no `..`).
    pub rel: Vec<Vec<u8>>,
}

/// The destination root.
pub(crate) struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens `path` as the root.
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        Ok(Root {
            fd: kiln_fsroot::open_root(path)?,
        })
    }

    /// Resolves the directory `comps` inside the root. `on_missing` is asked about each
    /// component that does not exist (with the parent's descriptor, the resolved path of the
    /// parent and the name). Errors are the system errors a kernel lookup would report.
    pub(crate) fn resolve_dir(
        &self,
        comps: &[Vec<u8>],
        on_missing: &mut OnMissing<'_>,
    ) -> io::Result<Resolved> {
        let dir = kiln_fsroot::resolve_dir(self.fd.as_fd(), &join(comps), &OPTIONS, on_missing)
            .map_err(kiln_fsroot::Error::into_io)?;
        Ok(Resolved {
            fd: dir.fd,
            rel: components(&dir.path),
        })
    }
}

/// The components of a path inside the root, as bytes.
pub(crate) fn components(path: &InPath) -> Vec<Vec<u8>> {
    path.components()
        .iter()
        .map(|c| c.as_bytes().to_vec())
        .collect()
}

/// Splits an archive path into clean components: empty and `.` components dropped, `..`
/// removing the previous component and never climbing above the root (Go's
/// `filepath.Clean` of the path joined to `/`).
pub(crate) fn clean(path: &[u8]) -> Vec<Vec<u8>> {
    components(&InPath::lexical(path))
}

/// Joins components with `/`.
pub(crate) fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_never_climbs_above_the_root() {
        let show = |p: &[u8]| String::from_utf8_lossy(&join(&clean(p))).into_owned();
        assert_eq!(show(b"../../etc/x"), "etc/x");
        assert_eq!(show(b"/abs/./path/"), "abs/path");
        assert_eq!(show(b"a/../../b"), "b");
        assert_eq!(show(b"./"), "");
    }
}
