//! What is read about one file system entry: the fields that go into its digest, and the
//! fields the stat cache compares.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::{Error, io_err};
use crate::resolve::is_missing;

/// The type of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

impl Kind {
    /// The byte that stands for the type in the digest (tar's type flags).
    pub(crate) fn tag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::Symlink => b'2',
            Kind::CharDevice => b'3',
            Kind::BlockDevice => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
            Kind::Socket => b's',
        }
    }
}

/// The identity of a file's content as far as `lstat` can tell: when all of it is unchanged,
/// the content is taken to be unchanged (see the stat cache for the racy case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatKey {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
    pub(crate) ctime_ns: i64,
    /// The whole `st_mode`, type bits included.
    pub(crate) mode: u32,
}

impl StatKey {
    /// The key of already-read metadata.
    pub(crate) fn of(meta: &std::fs::Metadata) -> StatKey {
        StatKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
            mode: meta.mode(),
        }
    }
}

/// Extended attributes: (name, value) pairs.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything the digest of one entry covers, plus its stat key.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) kind: Kind,
    /// Permission bits with setuid, setgid and sticky (`mode & 0o7777`).
    pub(crate) perm: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// The size of a regular file; 0 for anything else.
    pub(crate) size: u64,
    /// Device numbers of a character or block device; 0 for anything else.
    pub(crate) dev_major: u64,
    pub(crate) dev_minor: u64,
    /// The target of a symlink, as stored.
    pub(crate) link: Option<Vec<u8>>,
    /// The extended attributes the digest covers, sorted by name.
    pub(crate) xattrs: Xattrs,
    pub(crate) key: StatKey,
}

/// Reads the metadata of `path` without following a final symlink. `None` when the entry
/// does not exist (any more).
pub(crate) fn lstat(path: &Path) -> Result<Option<Meta>, Error> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(io_err("lstat", path)(e)),
    };
    let file_type = meta.file_type();
    let kind = if file_type.is_file() {
        Kind::File
    } else if file_type.is_dir() {
        Kind::Dir
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else if file_type.is_fifo() {
        Kind::Fifo
    } else if file_type.is_char_device() {
        Kind::CharDevice
    } else if file_type.is_block_device() {
        Kind::BlockDevice
    } else {
        Kind::Socket
    };
    let link = if kind == Kind::Symlink {
        match std::fs::read_link(path) {
            Ok(target) => Some(target.into_os_string().as_bytes().to_vec()),
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(io_err("readlink", path)(e)),
        }
    } else {
        None
    };
    let (dev_major, dev_minor) = if matches!(kind, Kind::CharDevice | Kind::BlockDevice) {
        split_dev(meta.rdev())
    } else {
        (0, 0)
    };
    Ok(Some(Meta {
        kind,
        perm: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size: if kind == Kind::File { meta.size() } else { 0 },
        dev_major,
        dev_minor,
        link,
        xattrs: read_xattrs(path)?,
        key: StatKey::of(&meta),
    }))
}

/// Linux's split of a device number into major and minor (glibc's `gnu_dev_major` and
/// `gnu_dev_minor`).
fn split_dev(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff & 0xffff_ffff);
    (major, minor & 0xffff_ffff)
}

/// Whether an extended attribute is part of the digest. As in BuildKit (`tarsum`'s v1
/// header selection): everything except `security.*` (but `security.capability` is kept,
/// since it changes what a binary may do), `system.*` (ACLs, which describe the host) and
/// `com.apple.*`. SELinux labels (`security.selinux`) depend on the host and would make the
/// same files hash differently on different machines.
fn xattr_counts(name: &[u8]) -> bool {
    name == b"security.capability"
        || !(name.starts_with(b"security.")
            || name.starts_with(b"system.")
            || name.starts_with(b"com.apple."))
}

/// The extended attributes of `path` (not following a symlink) that the digest covers,
/// sorted by name. A file system without extended attributes has none.
fn read_xattrs(path: &Path) -> Result<Xattrs, Error> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) if is_missing(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listxattr", path)(e)),
    };
    let mut out = Vec::new();
    for name in names {
        let bytes = name.as_bytes();
        if !xattr_counts(bytes) {
            continue;
        }
        match xattr::get(path, OsStr::from_bytes(bytes)) {
            Ok(Some(value)) => out.push((bytes.to_vec(), value)),
            // Removed between listing and reading: as if it had never been there.
            Ok(None) => {}
            Err(e) if unsupported(&e) || is_missing(&e) => {}
            Err(e) => return Err(io_err("getxattr", path)(e)),
        }
    }
    out.sort();
    Ok(out)
}

/// Whether an error says the file system has no extended attributes.
fn unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || e.raw_os_error() == Some(libc::ENOTSUP)
        || e.raw_os_error() == Some(libc::ENODATA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers() {
        // makedev(1, 3) is /dev/null; makedev(4095 + 4096, 1048577) exercises the high bits
        // of both numbers.
        assert_eq!(split_dev(0x0103), (1, 3));
        let (major, minor) = (8191u64, 1_048_577u64);
        let dev = ((major & 0xfff) << 8)
            | ((major & !0xfff) << 32)
            | (minor & 0xff)
            | ((minor & !0xff) << 12);
        assert_eq!(split_dev(dev), (major, minor));
    }

    #[test]
    fn xattr_selection() {
        let cases = [
            ("user.foo", true),
            ("trusted.overlay.opaque", true),
            ("security.capability", true),
            ("security.selinux", false),
            ("system.posix_acl_access", false),
            ("com.apple.quarantine", false),
        ];
        for (name, want) in cases {
            assert_eq!(xattr_counts(name.as_bytes()), want, "{name}");
        }
    }
}
