//! Path resolution inside a root: symlinks are followed as if `root` were `/`, so that no
//! path ever leads outside it (an absolute target starts again at `root`, `..` stops at
//! `root`).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, io_err};

/// How many symlinks one resolution may follow before it is called a loop (as
/// `filepath-securejoin`, which BuildKit's resolution follows).
const MAX_LINKS: usize = 255;

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
    let mut current: Vec<OsString> = Vec::new();
    let mut remaining: VecDeque<OsString> = elements(path).collect();
    let mut links = 0;
    while let Some(element) = remaining.pop_front() {
        if element == ".." {
            current.pop();
            continue;
        }
        let mut next = root.to_path_buf();
        next.extend(&current);
        next.push(&element);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(io_err("lstat", next)(e)),
        };
        let last = remaining.is_empty();
        if meta.file_type().is_symlink() && (!last || follow_final) {
            links += 1;
            if links > MAX_LINKS {
                return Err(Error::TooManyLinks {
                    path: display.to_owned(),
                });
            }
            let target = std::fs::read_link(&next).map_err(io_err("readlink", &next))?;
            if target.as_os_str().as_bytes().first() == Some(&b'/') {
                current.clear();
            }
            for element in elements(target.as_os_str())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                remaining.push_front(element);
            }
            continue;
        }
        if !last && !meta.is_dir() {
            return Ok(None);
        }
        current.push(element);
    }
    Ok(Some(current.iter().collect()))
}

/// The elements of a path other than `/` and `.`, in order.
fn elements(path: &OsStr) -> impl Iterator<Item = OsString> + '_ {
    Path::new(path).components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// Whether an error means "no such entry" (a missing element, or a file used as a
/// directory).
pub(crate) fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.kind() == io::ErrorKind::NotADirectory
        || e.raw_os_error() == Some(libc::ENOTDIR)
}
