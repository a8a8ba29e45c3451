//! Resolving archive paths inside a root directory, never outside it.
//!
//! Every directory on the way is opened relative to the previous one with `O_PATH |
//! O_NOFOLLOW`; a symlink is read and its target resolved again from the root (absolute
//! targets) or from the current directory (relative ones), and `..` never climbs above the
//! root. This is what `openat2(RESOLVE_IN_ROOT)` does in the kernel, done in user space so
//! that kiln also learns the resolved path (needed for opaque directories) and can create
//! missing directories on the way. The final component is never followed: callers use the
//! returned directory descriptor with `*at` calls and `AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`
//! or `O_EXCL`, so no write can land outside the root whatever the archive's symlinks say.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

/// Linux's limit on symlinks followed in one resolution.
const MAX_SYMLINKS: usize = 40;

/// What the applier did about a missing directory on the way.
pub(crate) enum Missing {
    /// It created the directory: open it and go on.
    Created,
    /// The lower layers have a symlink there with this target: follow it.
    Follow(Vec<u8>),
    /// Leave it missing: the resolution fails with `ENOENT`.
    Absent,
}

/// The applier's decision about a missing directory: called with the parent's descriptor, the
/// parent's resolved path and the missing name.
pub(crate) type OnMissing<'a> =
    dyn FnMut(BorrowedFd<'_>, &[Vec<u8>], &[u8]) -> io::Result<Missing> + 'a;

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
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd })
    }

    /// Resolves the directory `comps` inside the root. `on_missing` is asked about each
    /// component that does not exist (with the parent's descriptor, the resolved path of the
    /// parent and the name).
    pub(crate) fn resolve_dir(
        &self,
        comps: &[Vec<u8>],
        on_missing: &mut OnMissing<'_>,
    ) -> io::Result<Resolved> {
        let mut stack: Vec<(OwnedFd, Vec<u8>)> = Vec::new();
        let mut queue: VecDeque<Vec<u8>> = comps.iter().cloned().collect();
        let mut links = 0usize;
        while let Some(comp) = queue.pop_front() {
            if comp.is_empty() || comp == b"." {
                continue;
            }
            if comp == b".." {
                stack.pop();
                continue;
            }
            let cur = stack.last().map_or(self.fd.as_fd(), |(fd, _)| fd.as_fd());
            let opened = rustix::fs::openat(
                cur,
                comp.as_slice(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            );
            let target = match opened {
                Ok(fd) => {
                    let st = rustix::fs::fstat(&fd)?;
                    match FileType::from_raw_mode(st.st_mode) {
                        FileType::Directory => {
                            stack.push((fd, comp));
                            continue;
                        }
                        FileType::Symlink => {
                            rustix::fs::readlinkat(cur, comp.as_slice(), Vec::new())?.into_bytes()
                        }
                        _ => return Err(Errno::NOTDIR.into()),
                    }
                }
                Err(Errno::NOENT) => {
                    let rel: Vec<Vec<u8>> = stack.iter().map(|(_, n)| n.clone()).collect();
                    match on_missing(cur, &rel, &comp)? {
                        Missing::Created => {
                            let fd = rustix::fs::openat(
                                cur,
                                comp.as_slice(),
                                OFlags::PATH
                                    | OFlags::NOFOLLOW
                                    | OFlags::DIRECTORY
                                    | OFlags::CLOEXEC,
                                Mode::empty(),
                            )?;
                            stack.push((fd, comp));
                            continue;
                        }
                        Missing::Follow(target) => target,
                        Missing::Absent => return Err(Errno::NOENT.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Errno::LOOP.into());
            }
            if target.first() == Some(&b'/') {
                stack.clear();
            }
            for part in target.split(|&b| b == b'/').rev() {
                queue.push_front(part.to_vec());
            }
        }
        let rel = stack.iter().map(|(_, n)| n.clone()).collect();
        let fd = match stack.pop() {
            Some((fd, _)) => fd,
            None => rustix::fs::openat(
                self.fd.as_fd(),
                ".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?,
        };
        Ok(Resolved { fd, rel })
    }
}

/// Splits an archive path into clean components: empty and `.` components dropped, `..`
/// removing the previous component and never climbing above the root (Go's
/// `filepath.Clean` of the path joined to `/`).
pub(crate) fn clean(path: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            _ => out.push(part.to_vec()),
        }
    }
    out
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
        let show = |p: &[u8]| String::from_utf8(join(&clean(p))).unwrap();
        assert_eq!(show(b"../../etc/x"), "etc/x");
        assert_eq!(show(b"/abs/./path/"), "abs/path");
        assert_eq!(show(b"a/../../b"), "b");
        assert_eq!(show(b"./"), "");
    }
}
