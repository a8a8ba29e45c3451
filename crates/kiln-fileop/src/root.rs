//! Roots, paths inside them, and symlink resolution that never leaves the root.
//!
//! Every operation works in two phases:
//!
//! 1. **Resolve** a path the way BuildKit's `fs.RootPath` (containerd/continuity) does: clean it
//!    lexically, then walk it component by component; a symbolic link is replaced by its target,
//!    read *as if the root were `/`* (an absolute target starts again at the root, `..` never
//!    climbs above it), and the result is cleaned again. Missing components end the walk and
//!    are kept as they are. The result is an [`InPath`]: plain component names that, at the
//!    time of resolution, contain no symbolic link (except possibly the last one, when the
//!    caller asked not to follow it).
//! 2. **Act** through directory file descriptors, opening every component of the resolved path
//!    with `O_NOFOLLOW` relative to the root's descriptor. If something swapped a component
//!    for a symbolic link in between, the open fails (`ELOOP`/`ENOTDIR`): a race can make an
//!    operation fail, never escape.
//!
//! The root descriptor itself is the only thing opened by host path.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::error::Error;

/// How many symbolic links one resolution may follow (continuity's limit).
pub(crate) const MAX_LINKS: usize = 255;

/// A path inside a root: its components, none of them empty, `.` or `..`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct InPath(Vec<OsString>);

impl InPath {
    /// The root itself.
    pub(crate) fn root() -> Self {
        InPath(Vec::new())
    }

    /// The cleaned components of `path`, read as if it started with `/` (Go's
    /// `filepath.Join("/", path)`): `.` and empty elements vanish, `..` removes the previous
    /// element and never climbs above the root.
    pub(crate) fn lexical(path: &[u8]) -> Self {
        let mut out: Vec<OsString> = Vec::new();
        for element in path.split(|&b| b == b'/') {
            match element {
                b"" | b"." => {}
                b".." => {
                    out.pop();
                }
                name => out.push(OsStr::from_bytes(name).to_os_string()),
            }
        }
        InPath(out)
    }

    /// Whether this is the root.
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The components.
    pub(crate) fn components(&self) -> &[OsString] {
        &self.0
    }

    /// The last component, `None` for the root.
    pub(crate) fn name(&self) -> Option<&OsStr> {
        self.0.last().map(OsString::as_os_str)
    }

    /// The parent directory; the root is its own parent.
    pub(crate) fn parent(&self) -> InPath {
        let mut parent = self.0.clone();
        parent.pop();
        InPath(parent)
    }

    /// This path with `more` appended lexically (`..` climbs, never above the root).
    pub(crate) fn join(&self, more: &[u8]) -> InPath {
        let mut all = Vec::new();
        for c in &self.0 {
            all.push(b'/');
            all.extend_from_slice(c.as_bytes());
        }
        all.push(b'/');
        all.extend_from_slice(more);
        InPath::lexical(&all)
    }

    /// This path with one more component.
    pub(crate) fn child(&self, name: &OsStr) -> InPath {
        let mut out = self.0.clone();
        out.push(name.to_os_string());
        InPath(out)
    }

    /// The path as a person reads it: `/a/b`, or `/` for the root.
    pub(crate) fn display(&self) -> String {
        if self.0.is_empty() {
            return "/".to_owned();
        }
        let mut out = String::new();
        for c in &self.0 {
            out.push('/');
            out.push_str(&c.to_string_lossy());
        }
        out
    }

    /// The path relative to the root, as bytes (`a/b`; empty for the root).
    pub(crate) fn relative_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(c.as_bytes());
        }
        out
    }
}

/// The display form of `prefix` followed by `name`.
fn display_with(prefix: &[OsString], name: &OsStr) -> String {
    let mut path = InPath(prefix.to_vec());
    path.0.push(name.to_os_string());
    path.display()
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
        let original = String::from_utf8_lossy(path).into_owned();
        let mut pending = InPath::lexical(path).0;
        let mut links = 0usize;
        'restart: loop {
            let mut dir: Option<OwnedFd> = None;
            let mut done: Vec<OsString> = Vec::with_capacity(pending.len());
            let count = pending.len();
            for (i, name) in pending.iter().enumerate() {
                let last = i + 1 == count;
                let at = dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd());
                let st = match rfs::statat(at, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => {
                        // Missing components are kept as they are (continuity treats them as
                        // non-links).
                        done.extend(pending.iter().skip(i).cloned());
                        return Ok(InPath(done));
                    }
                    Err(e) => return Err(Error::io("lstat", display_with(&done, name), e)),
                };
                let kind = FileType::from_raw_mode(st.st_mode);
                if kind == FileType::Symlink && (!last || follow_last) {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Error::TooManyLinks { path: original });
                    }
                    let target = rfs::readlinkat(at, name.as_os_str(), Vec::new())
                        .map_err(|e| Error::io("readlink", display_with(&done, name), e))?;
                    let target = target.as_bytes();
                    let mut next: Vec<u8> = Vec::new();
                    if !target.starts_with(b"/") {
                        for c in &done {
                            next.push(b'/');
                            next.extend_from_slice(c.as_bytes());
                        }
                    }
                    next.push(b'/');
                    next.extend_from_slice(target);
                    for rest in pending.iter().skip(i + 1) {
                        next.push(b'/');
                        next.extend_from_slice(rest.as_bytes());
                    }
                    pending = InPath::lexical(&next).0;
                    continue 'restart;
                }
                if last {
                    done.push(name.clone());
                    return Ok(InPath(done));
                }
                if kind != FileType::Directory {
                    let mut shown = done.clone();
                    shown.push(name.clone());
                    let next = pending.get(i + 1).cloned().unwrap_or_default();
                    return Err(Error::io(
                        "lstat",
                        display_with(&shown, &next),
                        Errno::NOTDIR,
                    ));
                }
                let fd = rfs::openat(
                    at,
                    name.as_os_str(),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| Error::io("open", display_with(&done, name), e))?;
                dir = Some(fd);
                done.push(name.clone());
            }
            return Ok(InPath(done));
        }
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
            let shown = || InPath(comps.iter().take(i + 1).cloned().collect()).display();
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
    let mut cur = rfs::openat(base, ".", dir_flags(), Mode::empty())
        .map_err(|e| Error::io("open", InPath(shown_prefix.to_vec()).display(), e))?;
    for (i, name) in comps.iter().enumerate() {
        cur = rfs::openat(&cur, name.as_os_str(), dir_flags(), Mode::empty()).map_err(|e| {
            let mut shown = shown_prefix.to_vec();
            shown.extend(comps.iter().take(i + 1).cloned());
            Error::io("open", InPath(shown).display(), not_dir(e))
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
