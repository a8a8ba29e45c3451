//! Extended attributes through file descriptors.
//!
//! Regular files and directories are handled through ordinary descriptors. Symbolic links,
//! device nodes, FIFOs and sockets cannot be opened for reading, so they are opened with
//! `O_PATH | O_NOFOLLOW` and reached through their `/proc/self/fd` entry, which leads to the
//! opened inode itself and never through a symbolic link found at the path later.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use rustix::fs::{self as rfs, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

/// Where attributes are read or written.
pub(crate) enum XattrFile<'a> {
    /// An ordinary open descriptor.
    Fd(BorrowedFd<'a>),
    /// An `O_PATH` descriptor, used through `/proc/self/fd`.
    PathFd(OwnedFd),
}

impl XattrFile<'_> {
    /// Opens `name` in `dir` with `O_PATH | O_NOFOLLOW`.
    pub(crate) fn open_path(
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<XattrFile<'static>, Errno> {
        let fd = rfs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(XattrFile::PathFd(fd))
    }

    fn proc_path(fd: &OwnedFd) -> String {
        format!("/proc/self/fd/{}", fd.as_raw_fd())
    }

    fn list(&self) -> Result<Vec<u8>, Errno> {
        loop {
            let size = match self {
                XattrFile::Fd(fd) => rfs::flistxattr_query(fd)?,
                XattrFile::PathFd(fd) => rfs::listxattr_query(Self::proc_path(fd).as_str())?,
            };
            if size == 0 {
                return Ok(Vec::new());
            }
            let mut buf = vec![0u8; size];
            let got = match self {
                XattrFile::Fd(fd) => rfs::flistxattr(fd, &mut buf[..]),
                XattrFile::PathFd(fd) => rfs::listxattr(Self::proc_path(fd).as_str(), &mut buf[..]),
            };
            match got {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                // The list grew in between: ask again.
                Err(Errno::RANGE) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn get(&self, key: &OsStr) -> Result<Vec<u8>, Errno> {
        loop {
            let size = match self {
                XattrFile::Fd(fd) => rfs::fgetxattr_query(fd, key)?,
                XattrFile::PathFd(fd) => rfs::getxattr_query(Self::proc_path(fd).as_str(), key)?,
            };
            let mut buf = vec![0u8; size];
            if size == 0 {
                return Ok(buf);
            }
            let got = match self {
                XattrFile::Fd(fd) => rfs::fgetxattr(fd, key, &mut buf[..]),
                XattrFile::PathFd(fd) => {
                    rfs::getxattr(Self::proc_path(fd).as_str(), key, &mut buf[..])
                }
            };
            match got {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(Errno::RANGE) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sets one attribute.
    pub(crate) fn set(&self, key: &OsStr, value: &[u8]) -> Result<(), Errno> {
        match self {
            XattrFile::Fd(fd) => rfs::fsetxattr(fd, key, value, XattrFlags::empty()),
            XattrFile::PathFd(fd) => rfs::setxattr(
                Self::proc_path(fd).as_str(),
                key,
                value,
                XattrFlags::empty(),
            ),
        }
    }

    /// The names of all attributes.
    pub(crate) fn names(&self) -> Result<Vec<OsString>, Errno> {
        let list = self.list()?;
        Ok(list
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| OsString::from_vec(n.to_vec()))
            .collect())
    }
}

/// Copies every extended attribute of `src` to `dst`. Like BuildKit (whose handler only logs),
/// attributes that cannot be read or written are skipped; a file system without attribute
/// support has none to copy.
pub(crate) fn copy_all(src: &XattrFile<'_>, dst: &XattrFile<'_>) {
    let Ok(names) = src.names() else {
        return;
    };
    for name in names {
        if let Ok(value) = src.get(&name) {
            let _ = dst.set(&name, &value);
        }
    }
}

/// A borrowed descriptor as an [`XattrFile`].
pub(crate) fn fd_file(fd: &impl AsFd) -> XattrFile<'_> {
    XattrFile::Fd(fd.as_fd())
}

/// The key as text, for messages.
pub(crate) fn key_text(key: &OsStr) -> String {
    String::from_utf8_lossy(key.as_bytes()).into_owned()
}
