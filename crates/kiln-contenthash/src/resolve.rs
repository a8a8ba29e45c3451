//! Path resolution inside a root: symlinks are followed as if `root` were `/`, so that no
//! path ever leads outside it (an absolute target starts again at `root`, `..` stops at
//! `root`). The walk itself is [`kiln_fsroot`]'s, with `filepath-securejoin`'s reading of `..`,
//! which BuildKit's resolution follows.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kiln_fsroot::{Options, Policy};

use crate::error::{Error, io_err};

/// Resolves `path` (`/`-separated, absolute or relative to `root`) to the entry it names
/// inside `root`. Every symlink met on the way is resolved inside `root`; the last element
/// only when `follow_final` is set.
///
/// Returns the resolved path relative to `root` (empty for `root` itself, never with `..` or
/// symlink elements), or `None` when no such entry exists (a missing element, or an element
/// below something that is not a directory). `display` names the path in errors.
pub(crate) fn resolve_in_root(
    root: &Path,
    path: &OsStr,
    follow_final: bool,
    display: &str,
) -> Result<Option<PathBuf>, Error> {
    let root_fd = kiln_fsroot::open_root(root).map_err(io_err("open", root))?;
    let options = Options {
        follow_last: follow_final,
        missing: Policy::Fail,
        not_dir: Policy::Fail,
        ..Options::securejoin()
    };
    match kiln_fsroot::resolve(root_fd.as_fd(), path.as_bytes(), &options) {
        Ok(resolved) => Ok(Some(resolved.to_path_buf())),
        Err(kiln_fsroot::Error::NotFound { .. } | kiln_fsroot::Error::NotADirectory { .. }) => {
            Ok(None)
        }
        Err(kiln_fsroot::Error::TooManyLinks { .. }) => Err(Error::TooManyLinks {
            path: display.to_owned(),
        }),
        Err(kiln_fsroot::Error::Io { op, path, source }) => {
            Err(io_err(op, root.join(path.to_path_buf()))(source))
        }
        Err(e) => Err(io_err("resolve", root.join(path))(e.into_io())),
    }
}

/// Whether an error means "no such entry" (a missing element, or a file used as a
/// directory).
pub(crate) fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.kind() == io::ErrorKind::NotADirectory
        || e.raw_os_error() == Some(libc::ENOTDIR)
}
