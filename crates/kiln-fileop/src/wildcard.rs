//! Source wildcards (fsutil's `ResolveWildcards`).
//!
//! The path is split at its first element with a wildcard. The part before it is resolved in
//! the root (following a final symbolic link only when the copy follows links); the tree below
//! it is walked in name order, and every entry whose path relative to that directory matches
//! the rest of the pattern (Go's `filepath.Match`) is a match; a matching directory is not
//! entered. Symbolic links found on the way are matched but never entered.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

use crate::error::Error;
use crate::root::{InPath, Root, read_dir_names, stat_at};
use kiln_gostd::path::{matches, split_wildcards};

/// Resolves `path` in `root` the way fsutil's `rootPath` does: the root for `/`; otherwise the
/// parent resolved with links followed, plus the last element, itself followed only when
/// `follow_last`.
pub(crate) fn root_path(root: &Root, path: &[u8], follow_last: bool) -> Result<InPath, Error> {
    let lexical = InPath::lexical(path);
    if lexical.is_root() {
        return Ok(lexical);
    }
    if follow_last {
        return root.resolve(path, true);
    }
    let parent = root.resolve(&lexical.parent().relative_bytes(), true)?;
    match lexical.name() {
        Some(name) => Ok(parent.child(name)),
        None => Ok(parent),
    }
}

/// The paths (relative to the root, without a leading `/`) that the source pattern `src`
/// stands for. Without a wildcard, `src` itself (cleaned), whether or not it exists.
pub(crate) fn resolve_wildcards(
    root: &Root,
    src: &str,
    follow_links: bool,
) -> Result<Vec<Vec<u8>>, Error> {
    let (base, pattern) = split_wildcards(src);
    if pattern.is_empty() {
        return Ok(vec![base.into_bytes()]);
    }
    let base = root_path(root, base.as_bytes(), follow_links)?;
    let Some(meta) = root.lstat(&base)? else {
        return Err(Error::io("lstat", base.display(), Errno::NOENT));
    };
    let mut out = Vec::new();
    if !meta.is_dir() {
        return Ok(out);
    }
    // A match cannot have more elements than the pattern has `/` characters plus one, so
    // deeper directories need not be walked.
    let max_depth = pattern.bytes().filter(|&b| b == b'/').count() + 1;
    let dir = root.open_dir(&base)?;
    let walk = Walk {
        pattern: pattern.as_bytes(),
        max_depth,
        base: &base,
    };
    walk.dir(dir.as_fd(), &[], 1, &mut out)?;
    Ok(out)
}

struct Walk<'a> {
    pattern: &'a [u8],
    max_depth: usize,
    base: &'a InPath,
}

impl Walk<'_> {
    fn dir(
        &self,
        dir: BorrowedFd<'_>,
        prefix: &[u8],
        depth: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), Error> {
        let shown = || self.base.join(prefix).display();
        let names = read_dir_names(dir).map_err(|e| Error::io("readdir", shown(), e))?;
        for name in names {
            let mut rel = prefix.to_vec();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());
            let child_shown = self.base.join(&rel).display();
            let Some(meta) = stat_at(dir, &name, &child_shown)? else {
                return Err(Error::io("lstat", child_shown, Errno::NOENT));
            };
            // A malformed pattern matches nothing, as upstream ignores the error.
            if matches(self.pattern, &rel).unwrap_or(false) {
                out.push(self.base.join(&rel).relative_bytes());
                continue;
            }
            if meta.is_dir() && depth < self.max_depth {
                let sub = rfs::openat(
                    dir,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| Error::io("open", child_shown.clone(), e))?;
                self.dir(sub.as_fd(), &rel, depth + 1, out)?;
            }
        }
        Ok(())
    }
}
