//! Resolving a path inside a root directory the way the container will see it.
//!
//! Symlinks are followed, but every absolute target and every `..` is interpreted relative to
//! the root, so the result never leaves it: the semantics of `securejoin`, which runc uses for
//! mount destinations, as [`kiln_fsroot`] implements them (`..` read where it is met, even after
//! a missing component). Components that do not exist, and components below a file, are kept
//! as they are.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kiln_fsroot::{InPath, Options};

/// Resolves `path` (absolute or relative, both taken from the root) inside `root` and returns
/// the host path. The result is `root` joined with a normalised relative path.
pub fn resolve(root: &Path, path: &Path) -> io::Result<PathBuf> {
    Ok(root.join(resolve_relative(root, path)?))
}

/// Like [`resolve`], but returns the path relative to `root` (empty for the root itself).
/// Fails when `root` cannot be opened, with `ELOOP` after 255 symlinks, and with the system
/// error of a lookup that fails for another reason than a missing entry.
pub fn resolve_relative(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let root = kiln_fsroot::open_root(root)?;
    kiln_fsroot::resolve(
        root.as_fd(),
        path.as_os_str().as_bytes(),
        &Options::securejoin(),
    )
    .map(|resolved| resolved.to_path_buf())
    .map_err(kiln_fsroot::Error::into_io)
}

/// Whether an error means "this path does not exist" (including a file used as a directory).
pub fn missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) // ENOTDIR
}

/// Normalises an absolute container path lexically (`/a/./b/../c` → `/a/c`), as Go's
/// `filepath.Clean` does for an absolute path.
pub fn clean_absolute(path: &str) -> String {
    InPath::lexical(path).display()
}
