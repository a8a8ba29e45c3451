//! Roots, paths inside them, and symlink resolution that never leaves the root.
//!
//! Every operation works in two phases:
//!
//! 1. **Resolve** a path the way BuildKit's `fs.RootPath` (containerd/continuity) does, with
//!    [`kiln_fsroot`]: clean it lexically, then walk it component by component; a symbolic link
//!    is replaced by its target, read *as if the root were `/`* (an absolute target starts again
//!    at the root, `..` never climbs above it), and the result is cleaned again. Missing
//!    components end the walk and are kept as they are. The result is an [`InPath`]: plain
//!    component names that, at the time of resolution, contain no symbolic link (except
//!    possibly the last one, when the caller asked not to follow it).
//! 2. **Act** through directory file descriptors, opening every component of the resolved path
//!    with `O_NOFOLLOW` relative to the root's descriptor. If something swapped a component
//!    for a symbolic link in between, the open fails (`ELOOP`/`ENOTDIR`): a race can make an
//!    operation fail, never escape.
//!
//! The root descriptor itself is the only thing opened by host path.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::error::Error;

pub(crate) use kiln_fsroot::InPath;

/// A file action's error for a failed resolution (`original` is the path as given).
pub(crate) fn resolve_error(e: kiln_fsroot::Error, original: &[u8]) -> Error {
    match e {
        kiln_fsroot::Error::Io { op, path, source } => Error::std_io(op, path.display(), source),
        kiln_fsroot::Error::TooManyLinks { .. } => Error::TooManyLinks {
            path: String::from_utf8_lossy(original).into_owned(),
        },
        // Reported where the lookup below the non-directory failed, as `lstat` reports it.
        kiln_fsroot::Error::NotADirectory { path, next } => {
            let shown = match next {
                Some(next) => path.child(&next),
                None => path,
            };
            Error::io("lstat", shown.display(), Errno::NOTDIR)
        }
        kiln_fsroot::Error::NotFound { ref path }
        | kiln_fsroot::Error::Missing { ref path, .. } => {
            let shown = path.display();
            Error::std_io("lstat", shown, e.into_io())
        }
        e @ kiln_fsroot::Error::Escape { .. } => Error::std_io(
            "resolve",
            String::from_utf8_lossy(original).into_owned(),
            e.into_io(),
        ),
    }
}

/// A directory tree that operations must stay inside, held open by descriptor.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
}

/// Flags for opening a directory to work in.
fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW
}

impl Root {
    /// Opens the directory at `path` (a host path; it may itself be a symbolic link).
    pub(crate) fn open(path: &Path) -> Result<Root, Error> {
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Root {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Root { fd })
    }

    /// The root's descriptor.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Resolves `path` inside the root with `fs.RootPath` semantics (see the module docs).
    /// With `follow_last` false, a symbolic link in the last position is kept as it is.
    pub(crate) fn resolve(&self, path: &[u8], follow_last: bool) -> Result<InPath, Error> {
        let options = kiln_fsroot::Options {
            follow_last,
            ..kiln_fsroot::Options::continuity()
        };
        kiln_fsroot::resolve(self.fd(), path, &options).map_err(|e| resolve_error(e, path))
    }

    /// Opens the directory `path` without following any symbolic link.
    pub(crate) fn open_dir(&self, path: &InPath) -> Result<OwnedFd, Error> {
        open_dir_beneath(self.fd(), path.components(), &[])
    }

    /// Opens the parent directory of `path` (which must not be the root) and returns it with
    /// the last component.
    pub(crate) fn open_parent<'p>(&self, path: &'p InPath) -> Result<(OwnedFd, &'p OsStr), Error> {
        let comps = path.components();
        let Some((name, parents)) = comps.split_last() else {
            return Err(Error::io("open", path.display(), Errno::ISDIR));
        };
        Ok((open_dir_beneath(self.fd(), parents, &[])?, name.as_os_str()))
    }

    /// The metadata of `path` itself (not following a final symbolic link), or `None` if it
    /// does not exist.
    pub(crate) fn lstat(&self, path: &InPath) -> Result<Option<Meta>, Error> {
        if path.is_root() {
            return stat_at(self.fd(), OsStr::new("."), "/");
        }
        let (dir, name) = match self.open_parent(path) {
            Ok(found) => found,
            Err(e) if e.errno() == Some(Errno::NOENT.raw_os_error()) => return Ok(None),
            Err(e) => return Err(e),
        };
        stat_at(dir.as_fd(), name, &path.display())
    }

    /// Go's `os.MkdirAll` as fsutil forks it: creates every missing directory of `path` with
    /// exactly `perm` (no umask), owned by `owner` when given and stamped with `time` when
    /// given; existing directories are left alone. Returns the final directory, open.
    pub(crate) fn mkdir_all(
        &self,
        path: &InPath,
        perm: u32,
        owner: Option<(u32, u32)>,
        time: Option<Timespec>,
    ) -> Result<OwnedFd, Error> {
        let mut cur = rfs::openat(self.fd(), ".", dir_flags(), Mode::empty())
            .map_err(|e| Error::io("open", "/", e))?;
        let comps = path.components();
        for (i, name) in comps.iter().enumerate() {
            let shown = || {
                comps
                    .iter()
                    .take(i + 1)
                    .cloned()
                    .collect::<InPath>()
                    .display()
            };
            let next = match rfs::openat(&cur, name.as_os_str(), dir_flags(), Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(&cur, name.as_os_str(), Mode::from_raw_mode(perm)) {
                        Ok(()) => {
                            let fd =
                                rfs::openat(&cur, name.as_os_str(), dir_flags(), Mode::empty())
                                    .map_err(|e| Error::io("open", shown(), e))?;
                            rfs::fchmod(&fd, Mode::from_raw_mode(perm))
                                .map_err(|e| Error::io("chmod", shown(), e))?;
                            if let Some((uid, gid)) = owner {
                                chown_fd(&fd, uid, gid)
                                    .map_err(|e| Error::io("chown", shown(), e))?;
                            }
                            if let Some(t) = time {
                                set_times_fd(&fd, t, t)
                                    .map_err(|e| Error::io("utime", shown(), e))?;
                            }
                            fd
                        }
                        // Someone else created it in between: use it if it is a directory.
                        Err(Errno::EXIST) => {
                            rfs::openat(&cur, name.as_os_str(), dir_flags(), Mode::empty())
                                .map_err(|e| Error::io("mkdir", shown(), not_dir(e)))?
                        }
                        Err(e) => return Err(Error::io("mkdir", shown(), e)),
                    }
                }
                Err(e) => return Err(Error::io("mkdir", shown(), not_dir(e))),
            };
            cur = next;
        }
        Ok(cur)
    }
}

/// `ELOOP` (a symbolic link where a directory was expected) reported as `ENOTDIR`, the way Go's
/// `MkdirAll` reports a non-directory in the way.
fn not_dir(e: Errno) -> Errno {
    if e == Errno::LOOP { Errno::NOTDIR } else { e }
}

/// Opens `base/comps...` as a directory, every component with `O_NOFOLLOW`. `shown_prefix` is
/// prepended to paths in errors.
pub(crate) fn open_dir_beneath(
    base: BorrowedFd<'_>,
    comps: &[OsString],
    shown_prefix: &[OsString],
) -> Result<OwnedFd, Error> {
    let mut cur = rfs::openat(base, ".", dir_flags(), Mode::empty()).map_err(|e| {
        let shown: InPath = shown_prefix.iter().cloned().collect();
        Error::io("open", shown.display(), e)
    })?;
    for (i, name) in comps.iter().enumerate() {
        cur = rfs::openat(&cur, name.as_os_str(), dir_flags(), Mode::empty()).map_err(|e| {
            let shown: InPath = shown_prefix
                .iter()
                .chain(comps.iter().take(i + 1))
                .cloned()
                .collect();
            Error::io("open", shown.display(), not_dir(e))
        })?;
    }
    Ok(cur)
}

/// The parts of `struct stat` the operations use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    /// The full `st_mode`.
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) nlink: u64,
    pub(crate) rdev: u64,
    pub(crate) atime: Timespec,
    pub(crate) mtime: Timespec,
}

impl Meta {
    // The field types of `struct stat` differ between architectures.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    pub(crate) fn from_stat(st: &rfs::Stat) -> Meta {
        Meta {
            mode: st.st_mode as u32,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            rdev: st.st_rdev as u64,
            atime: Timespec {
                tv_sec: st.st_atime as i64,
                tv_nsec: st.st_atime_nsec as _,
            },
            mtime: Timespec {
                tv_sec: st.st_mtime as i64,
                tv_nsec: st.st_mtime_nsec as _,
            },
        }
    }

    pub(crate) fn kind(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.kind() == FileType::Directory
    }

    /// Permission and special bits (`0o7777`).
    pub(crate) fn perm(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// `lstat` of `name` in `dir`, `None` when it does not exist.
pub(crate) fn stat_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    shown: &str,
) -> Result<Option<Meta>, Error> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(Meta::from_stat(&st))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::io("lstat", shown, e)),
    }
}

/// Changes the owner of an open file.
pub(crate) fn chown_fd(fd: impl AsFd, uid: u32, gid: u32) -> Result<(), Errno> {
    rfs::fchown(
        fd,
        Some(rfs::Uid::from_raw(uid)),
        Some(rfs::Gid::from_raw(gid)),
    )
}

/// Sets the access and modification times of an open file.
pub(crate) fn set_times_fd(fd: impl AsFd, atime: Timespec, mtime: Timespec) -> Result<(), Errno> {
    rfs::futimens(
        fd,
        &Timestamps {
            last_access: atime,
            last_modification: mtime,
        },
    )
}

/// Sets the times of `name` in `dir` itself (a symbolic link is not followed).
pub(crate) fn set_times_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    atime: Timespec,
    mtime: Timespec,
) -> Result<(), Errno> {
    rfs::utimensat(
        dir,
        name,
        &Timestamps {
            last_access: atime,
            last_modification: mtime,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// Changes the owner of `name` in `dir` itself (a symbolic link is not followed).
pub(crate) fn chown_at(dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> Result<(), Errno> {
    rfs::chownat(
        dir,
        name,
        Some(rfs::Uid::from_raw(uid)),
        Some(rfs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// Changes the mode of `name` in `dir`, which must not be a symbolic link: it is opened with
/// `O_PATH | O_NOFOLLOW` and changed through `/proc/self/fd`, so a link swapped in is never
/// followed. Used for device nodes, FIFOs and sockets, which cannot be opened for `fchmod`.
pub(crate) fn chmod_special_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> Result<(), Errno> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rfs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        return Err(Errno::LOOP);
    }
    let proc_path = format!("/proc/self/fd/{}", fd_number(&fd));
    rfs::chmodat(
        rfs::CWD,
        proc_path.as_str(),
        Mode::from_raw_mode(mode),
        AtFlags::empty(),
    )
}

/// The number of a descriptor, for `/proc/self/fd` paths.
pub(crate) fn fd_number(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// Removes `name` in `dir` and, if it is a directory, everything below it (Go's
/// `os.RemoveAll`), never following a symbolic link. A missing `name` is not an error.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr, shown: &str) -> Result<(), Error> {
    let Some(meta) = stat_at(dir, name, shown)? else {
        return Ok(());
    };
    if meta.is_dir() {
        let sub = rfs::openat(dir, name, dir_flags(), Mode::empty())
            .map_err(|e| Error::io("open", shown, e))?;
        for child in read_dir_names(&sub).map_err(|e| Error::io("readdir", shown, e))? {
            let child_shown = format!(
                "{}/{}",
                shown.trim_end_matches('/'),
                child.to_string_lossy()
            );
            remove_all_at(sub.as_fd(), &child, &child_shown)?;
        }
        match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io("remove", shown, e)),
        }
    } else {
        match rfs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io("remove", shown, e)),
        }
    }
}

/// The names in an open directory, without `.` and `..`, sorted bytewise (the order of Go's
/// `os.ReadDir`).
pub(crate) fn read_dir_names(dir: impl AsFd) -> Result<Vec<OsString>, Errno> {
    let mut names = Vec::new();
    let mut reader = rfs::Dir::read_from(dir.as_fd())?;
    while let Some(entry) = reader.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        names.push(OsString::from_vec(name.to_vec()));
    }
    names.sort();
    Ok(names)
}
