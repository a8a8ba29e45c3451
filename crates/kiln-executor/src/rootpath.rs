//! Resolving a path inside a root directory the way the container will see it.
//!
//! Symlinks are followed, but every absolute target and every `..` is interpreted relative to
//! the root, so the result never leaves it (the semantics of `securejoin`, which runc uses for
//! mount destinations, and of containerd's `fs.RootPath`). Components that do not exist are
//! kept as they are.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution may follow before giving up (`ELOOP`).
const MAX_SYMLINKS: usize = 255;

/// Resolves `path` (absolute or relative, both taken from the root) inside `root` and returns
/// the host path. The result is `root` joined with a normalised relative path.
pub fn resolve(root: &Path, path: &Path) -> io::Result<PathBuf> {
    Ok(root.join(resolve_relative(root, path)?))
}

/// Like [`resolve`], but returns the path relative to `root` (empty for the root itself).
pub fn resolve_relative(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(path);
    let mut current: Vec<OsString> = Vec::new();
    let mut links = 0usize;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            current.pop();
            continue;
        }
        let candidate = root.join(current.iter().collect::<PathBuf>()).join(&part);
        let meta = match std::fs::symlink_metadata(&candidate) {
            Ok(meta) => meta,
            Err(e) if missing(&e) => {
                // The rest does not exist: keep it lexically.
                current.push(part);
                for rest in pending.drain(..) {
                    if rest == ".." {
                        current.pop();
                    } else {
                        current.push(rest);
                    }
                }
                break;
            }
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_symlink() {
            current.push(part);
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(io::Error::from_raw_os_error(40)); // ELOOP
        }
        let target = std::fs::read_link(&candidate)?;
        if target.is_absolute() {
            current.clear();
        }
        for c in components(&target).into_iter().rev() {
            pending.push_front(c);
        }
    }
    Ok(current.iter().collect())
}

/// The normal and `..` components of `path`; `.` and the root are dropped.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Whether an error means "this path does not exist" (including a file used as a directory).
pub fn missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) // ENOTDIR
}

/// Normalises an absolute container path lexically (`/a/./b/../c` → `/a/c`), as Go's
/// `filepath.Clean` does for an absolute path.
pub fn clean_absolute(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}
