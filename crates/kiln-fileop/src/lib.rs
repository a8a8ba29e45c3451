//! LLB file actions (`FileOp`: the `COPY`, `ADD`, `WORKDIR` and heredoc steps of a
//! Dockerfile) carried out directly on directory trees, never through a container.
//!
//! Each action works on one or two *roots*, host directories holding a snapshot's file system
//! (a mounted snapshot, an unpacked layer): [`copy`] from a source root to a destination root,
//! [`mkdir`], [`mkfile`], [`rm`] and [`symlink`] in one root. Their behaviour follows BuildKit's
//! file backend (`solver/llbsolver/file`) and the copier it uses (`tonistiigi/fsutil/copy`):
//! wildcards, the directory-versus-contents rules, destination creation, ownership, modes
//! (octal and `chmod(1)` symbolic), timestamps, hard links, include/exclude patterns and
//! archive extraction for `ADD`. The module docs of `copy` and `archive` state the rules.
//!
//! **Nothing is ever read or written outside a root**, whatever symbolic links the trees or an
//! archive contain. Paths are resolved component by component with symbolic links evaluated
//! as if the root were `/` (continuity's `fs.RootPath` semantics), and every file system call
//! then goes through directory descriptors, each component opened with `O_NOFOLLOW`, so that a
//! link swapped in concurrently makes the action fail instead of escaping. A source symbolic
//! link to `/etc/passwd` copied with `follow_symlink` reads the root's own `/etc/passwd`.
//!
//! What it deliberately does not know: snapshots, mounts, the solver and cache keys (the
//! caller hands it directories and discards a failed action's output), how LLB inputs map to
//! roots (the caller picks the root whose `/etc/passwd` resolves a user name, through
//! [`UserLookup`]), and progress reporting. It is synchronous and blocking: callers run it on
//! a blocking thread.
//!
//! Why it is designed this way: file actions run as root on untrusted trees, so path safety
//! is structural (descriptor-relative calls everywhere) rather than a check before a path
//! based call. Copies go through `FICLONE`, then `copy_file_range`, so the kernel moves the
//! data, and metadata is set on open descriptors to keep the number of path lookups low.
//!
//! Deliberate differences from upstream, all in the direction of determinism: modes are set
//! exactly, independent of the process umask (upstream relies on running with umask 0); GNU
//! sparse archive entries are extracted instead of rejected; and `rm` of a dangling symbolic
//! link removes the link (upstream's existence check follows the link and fails).

mod archive;
mod chmod;
mod copy;
mod error;
mod ops;
mod root;
mod users;
mod wildcard;
mod xattr;

use std::path::Path;

pub use error::Error;
use kiln_llb::ops::{
    FileActionCopy, FileActionMkDir, FileActionMkFile, FileActionRm, FileActionSymlink,
};
use rustix::fs::Timespec;
pub use users::{PasswdLookup, UserLookup};

/// Copies `action.src` from the tree at `src_root` to `action.dest` in the tree at `dest_root`
/// (BuildKit's `FileActionCopy`).
///
/// The rules, in the order they apply:
///
/// * Without `create_dest_path`, the parent of the (resolved) destination must exist.
/// * With `allow_wildcard`, the source is a Go `filepath.Match` pattern; no match is an error
///   (`<src> not found`) unless `allow_empty_wildcard`. Each match is copied on its own, and
///   hard links are preserved within one match.
/// * With `attempt_unpack_docker_compatibility`, a match that is a tar archive (plain, gzip,
///   bzip2, xz or zstd, recognised by content) is extracted into the destination instead;
///   archive entries keep their owners unless `owner` is set, and never land outside the
///   destination.
/// * The directory holding the destination is created (mode 0755, with the owner and timestamp
///   of the copy); a destination ending in `/` or `/.` is itself created.
/// * A file copied onto an existing directory goes inside it, as does a directory copied onto
///   an existing path unless `dir_copy_contents`, which merges the directory's contents into the
///   destination.
/// * Entries are copied as they are: symbolic links as links (only the source path itself is
///   followed, with `follow_symlink`), hard links as hard links, FIFOs and devices as nodes.
///   Each gets its source's owner (or `owner`), mode (or `mode`/`mode_str`, which also apply to
///   directories), times (or `timestamp`) and extended attributes.
/// * `include_patterns` keep only matching paths (their parent directories are created as
///   needed) and `exclude_patterns` drop paths, with `.dockerignore` matching on paths relative
///   to the copied source.
/// * A file never replaces a directory. With `always_replace_existing_dest_paths` anything else
///   in the way is removed first; otherwise a directory cannot replace a non-directory.
///
/// `required_paths` is not consulted: it only matters to the cache key of the action.
///
/// The two roots must be different trees (BuildKit mounts the source read-only next to the
/// destination); copying a directory into itself is not detected. `users` is consulted only
/// when the action has an owner. On error, the destination may hold part of the copy.
pub fn copy(
    src_root: &Path,
    dest_root: &Path,
    action: &FileActionCopy,
    users: &dyn UserLookup,
) -> Result<(), Error> {
    copy::copy(src_root, dest_root, action, users)
}

/// Creates the directory `action.path` in the tree at `root` (BuildKit's `FileActionMkDir`).
///
/// With `make_parents`, missing parents are created too, all with `action.mode`, the owner
/// and the timestamp, and an existing directory is left alone; without it the parent must
/// exist, and an existing path of any kind is left alone.
pub fn mkdir(root: &Path, action: &FileActionMkDir, users: &dyn UserLookup) -> Result<(), Error> {
    ops::mkdir(root, action, users)
}

/// Writes the file `action.path` in the tree at `root` (BuildKit's `FileActionMkFile`).
///
/// The data goes to a temporary file in the same directory that is then renamed over the
/// target, so whatever stood there (a symbolic link, a device node) is replaced, never
/// written through. A symbolic link in the path itself, including the last component, is
/// followed inside the root. The parent directory must exist.
pub fn mkfile(root: &Path, action: &FileActionMkFile, users: &dyn UserLookup) -> Result<(), Error> {
    ops::mkfile(root, action, users)
}

/// Removes `action.path` (and everything below it) in the tree at `root` (BuildKit's
/// `FileActionRm`).
///
/// The last component is removed as it is: a symbolic link is removed, not its target. A
/// missing path is an error unless `allow_not_found`; with `allow_wildcard`, every match of the
/// pattern is removed and no match is not an error.
pub fn rm(root: &Path, action: &FileActionRm) -> Result<(), Error> {
    ops::rm(root, action)
}

/// Creates the symbolic link `action.newpath` pointing to `action.oldpath` in the tree at
/// `root` (BuildKit's `FileActionSymlink`). The target is stored verbatim.
pub fn symlink(
    root: &Path,
    action: &FileActionSymlink,
    users: &dyn UserLookup,
) -> Result<(), Error> {
    ops::symlink(root, action, users)
}

/// BuildKit's `cleanPath`: the path made absolute and cleaned, keeping a trailing `/` or `/.`,
/// which say "into this directory" and "the contents of this directory".
pub(crate) fn clean_path(path: &str) -> String {
    let mut cleaned = kiln_gostd::path::clean(&format!("/{path}"));
    if path.ends_with("/.") {
        if cleaned != "/" {
            cleaned.push('/');
        }
        cleaned.push('.');
    } else if path.ends_with('/') && cleaned != "/" {
        cleaned.push('/');
    }
    cleaned
}

/// An LLB timestamp (Unix nanoseconds, `-1` for none) as a time.
pub(crate) fn timestamp(nanos: i64) -> Option<Timespec> {
    if nanos == -1 {
        return None;
    }
    Some(Timespec {
        tv_sec: nanos.div_euclid(1_000_000_000),
        tv_nsec: nanos.rem_euclid(1_000_000_000) as _,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths_like_buildkit() {
        let cases = [
            ("foo", "/foo"),
            ("/foo/", "/foo/"),
            ("foo/.", "/foo/."),
            ("/", "/"),
            (".", "/"),
            ("/.", "/."),
            ("a/../b/", "/b/"),
            ("", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(clean_path(input), want, "{input:?}");
        }
    }
}
