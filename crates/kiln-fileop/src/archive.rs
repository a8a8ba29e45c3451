//! `ADD` of a local archive: detection by content and extraction that stays inside the
//! destination (BuildKit's `unpack` and `applyRootArchive`).
//!
//! Detection: the source (with symbolic links resolved in its root) must be a regular file whose
//! content, after decompression chosen by magic number (gzip, bzip2, xz, zstd or none, as
//! Docker's `DecompressStream`), starts with a valid tar header. Anything else is copied as a
//! file.
//!
//! Extraction, into the destination directory (created with mode 0755 and the copy's owner and
//! timestamp), which acts as the root of the archive:
//!
//! * names are cleaned with leading `/` removed; a name that still climbs out (`../x`) is an
//!   error; the root itself is skipped;
//! * every parent component is resolved inside the destination: symbolic links are followed
//!   (absolute targets start again at the destination), `..` may not climb above it; the last
//!   component is never followed, so an entry replaces whatever is there (a directory entry
//!   merges into an existing directory);
//! * missing parents are created (0755, owned by root);
//! * regular files, directories, symbolic links (targets kept verbatim, never followed later)
//!   and hard links (to a path resolved the same way, never outside) are created with the
//!   archive's mode (set-id and sticky bits included), owner (or the copy's owner when given),
//!   times and `SCHILY.xattr.*` attributes; device nodes and FIFOs are skipped;
//! * directory times are set last, in archive order.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec};
use rustix::io::Errno;
use tar::EntryType;

use crate::error::Error;
use crate::root::{
    InPath, Root, chmod_special_at, chown_at, chown_fd, open_dir_beneath, remove_all_at,
    resolve_error, set_times_at, set_times_fd, stat_at,
};
use crate::xattr::{XattrFile, fd_file, key_text};

const BZIP2_MAGIC: &[u8] = b"BZh";
const XZ_MAGIC: &[u8] = &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b, 0x08];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// The compression of a stream, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Detects the compression from the first bytes of a stream.
pub(crate) fn detect(head: &[u8]) -> Compression {
    if head.starts_with(BZIP2_MAGIC) {
        Compression::Bzip2
    } else if head.starts_with(XZ_MAGIC) {
        Compression::Xz
    } else if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) || is_zstd_skippable(head) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// A zstd skippable frame (`0x184D2A50`–`0x184D2A5F`, little endian), which containerd also
/// takes for zstd.
fn is_zstd_skippable(head: &[u8]) -> bool {
    matches!(head, [b0, 0x2a, 0x4d, 0x18, ..] if b0 & 0xf0 == 0x50)
}

/// The decompressed content of `reader`, the compression chosen from its first ten bytes
/// (Go's `Peek(10)`).
pub(crate) fn decompress<'r, R: Read + 'r>(mut reader: R) -> io::Result<Box<dyn Read + 'r>> {
    let mut head = [0u8; 10];
    let mut len = 0;
    while let Some(rest) = head.get_mut(len..) {
        if rest.is_empty() {
            break;
        }
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = head.get(..len).unwrap_or(&[]).to_vec();
    let kind = detect(&head);
    let stream = BufReader::with_capacity(64 * 1024, io::Cursor::new(head).chain(reader));
    Ok(match kind {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(stream)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(stream)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(stream)?),
    })
}

/// Whether the regular file `file` holds a (possibly compressed) tar archive.
fn is_archive(file: File) -> bool {
    let Ok(reader) = decompress(file) else {
        return false;
    };
    let mut archive = tar::Archive::new(reader);
    let Ok(mut entries) = archive.entries() else {
        return false;
    };
    matches!(entries.next(), Some(Ok(_)))
}

/// Opens the regular file `path` of `root` for reading, or `None` if it is not one.
fn open_regular(root: &Root, path: &InPath) -> Result<Option<File>, Error> {
    let Some(meta) = root.lstat(path)? else {
        return Ok(None);
    };
    if meta.kind() != FileType::RegularFile {
        return Ok(None);
    }
    let (dir, name) = root.open_parent(path)?;
    let fd = rfs::openat(
        &dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", path.display(), e))?;
    Ok(Some(File::from(fd)))
}

/// BuildKit's `unpack`: extracts `source` (of `src`) into `dest` (of `dst`) if it is an
/// archive, and says whether it was.
pub(crate) fn unpack(
    src: &Root,
    source: &[u8],
    dst: &Root,
    dest: &str,
    owner: Option<(u32, u32)>,
    utime: Option<Timespec>,
) -> Result<bool, Error> {
    let path = src.resolve(source, true)?;
    let Some(file) = open_regular(src, &path)? else {
        return Ok(false);
    };
    if !is_archive(file) {
        return Ok(false);
    }
    let dest = dst.resolve(dest.as_bytes(), true)?;
    let dest_fd = dst.mkdir_all(&dest, 0o755, owner, utime)?;
    let Some(file) = open_regular(src, &path)? else {
        return Err(Error::io("open", path.display(), Errno::NOENT));
    };
    let shown = path.display();
    let reader = decompress(file).map_err(|source| Error::Archive {
        path: shown.clone(),
        source,
    })?;
    let mut extractor = Extractor {
        root: dest_fd,
        shown: dest,
        owner,
        archive: shown,
        dirs: Vec::new(),
    };
    extractor.extract(reader)?;
    Ok(true)
}

/// Cleans an archive name: leading `/` removed, `.`/`..` processed; `None` for the root;
/// an error if it still climbs out.
pub(crate) fn clean_name(raw: &[u8]) -> Result<Option<Vec<OsString>>, Error> {
    let mut out: Vec<OsString> = Vec::new();
    let mut climbs = false;
    for element in raw.split(|&b| b == b'/') {
        match element {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    climbs = true;
                }
            }
            name => {
                if climbs {
                    // `../x` stays outside whatever follows.
                    break;
                }
                out.push(OsString::from_vec(name.to_vec()));
            }
        }
    }
    if climbs {
        return Err(Error::ArchiveEscape {
            path: String::from_utf8_lossy(raw).into_owned(),
        });
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(out))
}

struct DirTimes {
    path: Vec<OsString>,
    atime: Timespec,
    mtime: Timespec,
}

struct Extractor {
    /// The destination directory: the root of the archive.
    root: OwnedFd,
    /// The destination inside the destination root, for messages.
    shown: InPath,
    /// The copy's owner override.
    owner: Option<(u32, u32)>,
    /// The archive inside the source root, for messages.
    archive: String,
    dirs: Vec<DirTimes>,
}

/// Seconds (with an optional fraction) of a PAX time record.
fn pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = match text.split_once('.') {
        Some((s, f)) => (s, f),
        None => (text, ""),
    };
    let negative = secs.starts_with('-');
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    let mut digits = 0;
    for c in frac.chars() {
        let d = c.to_digit(10)?;
        if digits < 9 {
            nanos = nanos * 10 + i64::from(d);
            digits += 1;
        }
    }
    while digits < 9 {
        nanos *= 10;
        digits += 1;
    }
    if negative && nanos > 0 {
        return Some(Timespec {
            tv_sec: secs - 1,
            tv_nsec: (1_000_000_000 - nanos) as _,
        });
    }
    Some(Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    })
}

/// A numeric header field; an empty one (all NUL or spaces) reads as 0, as Go's archive/tar
/// reads it.
fn lenient(value: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match value {
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        other => other,
    }
}

/// Times before the epoch (or absurdly far ahead) become the epoch, as upstream bounds them.
fn bound(t: Timespec) -> Timespec {
    if t.tv_sec < 0 || t.tv_sec > i64::from(i32::MAX) * 1_000 {
        Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }
    } else {
        t
    }
}

/// What one entry says, read before its data.
struct EntryInfo {
    name: Vec<OsString>,
    raw_name: String,
    kind: EntryType,
    is_dir: bool,
    mode: u32,
    uid: u32,
    gid: u32,
    atime: Timespec,
    mtime: Timespec,
    link: Option<Vec<u8>>,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Extractor {
    fn shown(&self, path: &[OsString]) -> String {
        let mut p = self.shown.clone();
        for c in path {
            p = p.child(c);
        }
        p.display()
    }

    fn archive_error(&self, source: io::Error) -> Error {
        Error::Archive {
            path: self.archive.clone(),
            source,
        }
    }

    fn extract(&mut self, reader: Box<dyn Read + '_>) -> Result<(), Error> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| self.archive_error(e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.archive_error(e))?;
            let Some(info) = self.read_info(&mut entry)? else {
                continue;
            };
            self.apply(info, &mut entry)?;
        }
        for dir in std::mem::take(&mut self.dirs) {
            let shown = self.shown(&dir.path);
            let Some((name, parents)) = dir.path.split_last() else {
                continue;
            };
            let parent = open_dir_beneath(self.root.as_fd(), parents, self.shown.components())?;
            set_times_at(parent.as_fd(), name, dir.atime, dir.mtime)
                .map_err(|e| Error::io("utime", shown, e))?;
        }
        Ok(())
    }

    /// The entry's header fields, or `None` for entries that are skipped.
    fn read_info<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<Option<EntryInfo>, Error> {
        let header = entry.header();
        let kind = header.entry_type();
        if matches!(
            kind,
            EntryType::XHeader
                | EntryType::XGlobalHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(None);
        }
        let raw_flag = header.as_old().linkflag.first().copied().unwrap_or(b'0');
        let raw_name = entry.path_bytes().into_owned();
        let Some(name) = clean_name(&raw_name)? else {
            return Ok(None);
        };
        if matches!(kind, EntryType::Char | EntryType::Block | EntryType::Fifo) {
            return Ok(None);
        }
        let is_dir = kind == EntryType::Directory || (raw_flag == 0 && raw_name.ends_with(b"/"));
        let header = entry.header();
        let old = header.as_old();
        let mode =
            lenient(header.mode().map(u64::from), &old.mode).map_err(|e| self.archive_error(e))?;
        let mode = u32::try_from(mode & 0o7777).unwrap_or(0);
        let uid = lenient(header.uid(), &old.uid).map_err(|e| self.archive_error(e))?;
        let gid = lenient(header.gid(), &old.gid).map_err(|e| self.archive_error(e))?;
        let mtime = lenient(header.mtime(), &old.mtime).map_err(|e| self.archive_error(e))?;
        let mut mtime = Timespec {
            tv_sec: i64::try_from(mtime).unwrap_or(-1),
            tv_nsec: 0,
        };
        let mut atime: Option<Timespec> = header
            .as_gnu()
            .and_then(|g| g.atime().ok())
            .filter(|&t| t != 0)
            .and_then(|t| i64::try_from(t).ok())
            .map(|tv_sec| Timespec { tv_sec, tv_nsec: 0 });
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let mut xattrs = Vec::new();
        if let Some(records) = entry.pax_extensions().map_err(|e| self.archive_error(e))? {
            for record in records {
                let record = record.map_err(|e| self.archive_error(e))?;
                let key = record.key_bytes();
                if key == b"mtime" {
                    if let Some(t) = pax_time(record.value_bytes()) {
                        mtime = t;
                    }
                } else if key == b"atime" {
                    atime = pax_time(record.value_bytes());
                } else if let Some(attr) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((
                        OsString::from_vec(attr.to_vec()),
                        record.value_bytes().to_vec(),
                    ));
                }
            }
        }
        let raw_text = String::from_utf8_lossy(&raw_name).into_owned();
        let id = |v: u64| {
            u32::try_from(v).map_err(|_| Error::Archive {
                path: self.archive.clone(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("entry {raw_text:?} has an owner id out of range"),
                ),
            })
        };
        let (uid, gid) = match self.owner {
            Some(owner) => owner,
            None => (id(uid)?, id(gid)?),
        };
        // Upstream: atime is the later of the access and modification times.
        let atime = match atime {
            Some(a) if (a.tv_sec, a.tv_nsec) > (mtime.tv_sec, mtime.tv_nsec) => a,
            _ => mtime,
        };
        Ok(Some(EntryInfo {
            name,
            raw_name: raw_text,
            kind,
            is_dir,
            mode,
            uid,
            gid,
            atime: bound(atime),
            mtime: bound(mtime),
            link,
            xattrs,
        }))
    }

    /// Resolves `name` inside the destination: parents followed, the last component kept.
    /// A link's `..` applies after the links before it are expanded, and may not climb above
    /// the destination.
    fn resolve(&self, name: &[OsString], raw: &str) -> Result<Vec<OsString>, Error> {
        let options = kiln_fsroot::Options {
            follow_last: false,
            dotdot: kiln_fsroot::DotDot::Resolved,
            escape: kiln_fsroot::Escape::Fail,
            ..kiln_fsroot::Options::continuity()
        };
        let path: InPath = name.iter().cloned().collect();
        match kiln_fsroot::resolve(self.root.as_fd(), &path.relative_bytes(), &options) {
            Ok(resolved) => Ok(resolved.into_components()),
            Err(kiln_fsroot::Error::Io { op, path, source }) => {
                Err(Error::std_io(op, self.shown(path.components()), source))
            }
            Err(kiln_fsroot::Error::NotADirectory { path, .. }) => Err(Error::io(
                "resolve",
                self.shown(path.components()),
                Errno::NOTDIR,
            )),
            Err(kiln_fsroot::Error::Escape { .. }) => Err(Error::ArchiveEscape {
                path: raw.to_owned(),
            }),
            Err(kiln_fsroot::Error::TooManyLinks { .. }) => Err(Error::TooManyLinks {
                path: raw.to_owned(),
            }),
            Err(e) => Err(resolve_error(e, raw.as_bytes())),
        }
    }

    /// Creates the missing parents of `path` (mode 0755, owned by root) and opens the last one.
    fn make_parents(&self, parents: &[OsString]) -> Result<OwnedFd, Error> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut cur = rfs::openat(&self.root, ".", flags, Mode::empty())
            .map_err(|e| Error::io("open", self.shown.display(), e))?;
        for (i, name) in parents.iter().enumerate() {
            let shown = || self.shown(parents.get(..=i).unwrap_or(parents));
            match rfs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => {
                    let fd = rfs::openat(&cur, name, flags, Mode::empty())
                        .map_err(|e| Error::io("open", shown(), e))?;
                    chown_fd(&fd, 0, 0).map_err(|e| Error::io("chown", shown(), e))?;
                    rfs::fchmod(&fd, Mode::from_raw_mode(0o755))
                        .map_err(|e| Error::io("chmod", shown(), e))?;
                    cur = fd;
                }
                Err(Errno::EXIST) => {
                    cur = rfs::openat(&cur, name, flags, Mode::empty()).map_err(|e| {
                        let e = if e == Errno::LOOP { Errno::NOTDIR } else { e };
                        Error::io("mkdir", shown(), e)
                    })?;
                }
                Err(e) => return Err(Error::io("mkdir", shown(), e)),
            }
        }
        Ok(cur)
    }

    fn set_xattrs(&self, file: &XattrFile<'_>, info: &EntryInfo, shown: &str) -> Result<(), Error> {
        for (key, value) in &info.xattrs {
            file.set(key, value).map_err(|e| Error::Xattr {
                key: key_text(key),
                path: shown.to_owned(),
                source: e.into(),
            })?;
        }
        Ok(())
    }

    fn apply<R: Read>(
        &mut self,
        info: EntryInfo,
        data: &mut tar::Entry<'_, R>,
    ) -> Result<(), Error> {
        let path = self.resolve(&info.name, &info.raw_name)?;
        let Some((leaf, parents)) = path.split_last() else {
            return Ok(());
        };
        let shown = self.shown(&path);
        let parent = self.make_parents(parents)?;
        if let Some(existing) = stat_at(parent.as_fd(), leaf, &shown)?
            && (!existing.is_dir() || !info.is_dir)
        {
            remove_all_at(parent.as_fd(), leaf, &shown)?;
        }
        let io = |op: &'static str| {
            let shown = shown.clone();
            move |e: Errno| Error::io(op, shown, e)
        };
        if info.is_dir {
            match rfs::mkdirat(&parent, leaf, Mode::from_raw_mode(info.mode & 0o777)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(Error::io("mkdir", shown, e)),
            }
            let fd = rfs::openat(
                &parent,
                leaf,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io("open"))?;
            chown_fd(&fd, info.uid, info.gid).map_err(io("chown"))?;
            self.set_xattrs(&fd_file(&fd), &info, &shown)?;
            rfs::fchmod(&fd, Mode::from_raw_mode(info.mode)).map_err(io("chmod"))?;
            self.dirs.push(DirTimes {
                path: path.clone(),
                atime: info.atime,
                mtime: info.mtime,
            });
            return Ok(());
        }
        match info.kind {
            EntryType::Regular | EntryType::GNUSparse => {
                let fd = rfs::openat(
                    &parent,
                    leaf,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(info.mode & 0o777),
                )
                .map_err(io("create"))?;
                let mut file = File::from(fd);
                io::copy(data, &mut file).map_err(|e| self.archive_error(e))?;
                chown_fd(&file, info.uid, info.gid).map_err(io("chown"))?;
                self.set_xattrs(&fd_file(&file), &info, &shown)?;
                rfs::fchmod(&file, Mode::from_raw_mode(info.mode)).map_err(io("chmod"))?;
                set_times_fd(&file, info.atime, info.mtime).map_err(io("utime"))?;
                Ok(())
            }
            EntryType::Symlink => {
                let target = info.link.clone().unwrap_or_default();
                rfs::symlinkat(target.as_slice(), &parent, leaf).map_err(io("symlink"))?;
                chown_at(parent.as_fd(), leaf, info.uid, info.gid).map_err(io("chown"))?;
                set_times_at(parent.as_fd(), leaf, info.atime, info.mtime).map_err(io("utime"))?;
                Ok(())
            }
            EntryType::Link => self.hard_link(&info, parent.as_fd(), leaf, &shown),
            other => Err(Error::ArchiveEntryType {
                path: info.raw_name.clone(),
                kind: other.as_byte(),
            }),
        }
    }

    fn hard_link(
        &self,
        info: &EntryInfo,
        parent: BorrowedFd<'_>,
        leaf: &OsStr,
        shown: &str,
    ) -> Result<(), Error> {
        let raw = info.link.clone().unwrap_or_default();
        let Some(target) = clean_name(&raw)? else {
            return Err(Error::ArchiveHardlinkToRoot {
                path: info.raw_name.clone(),
            });
        };
        let target = self.resolve(&target, &String::from_utf8_lossy(&raw))?;
        let Some((old_name, old_parents)) = target.split_last() else {
            return Err(Error::ArchiveHardlinkToRoot {
                path: info.raw_name.clone(),
            });
        };
        let old_dir = open_dir_beneath(self.root.as_fd(), old_parents, self.shown.components())?;
        rfs::linkat(&old_dir, old_name, parent, leaf, AtFlags::empty())
            .map_err(|e| Error::io("link", shown, e))?;
        chown_at(parent, leaf, info.uid, info.gid).map_err(|e| Error::io("chown", shown, e))?;
        let Some(meta) = stat_at(parent, leaf, shown)? else {
            return Err(Error::io("link", shown, Errno::NOENT));
        };
        match meta.kind() {
            FileType::Symlink => Ok(()),
            FileType::RegularFile => {
                let fd = rfs::openat(
                    parent,
                    leaf,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
                    Mode::empty(),
                )
                .map_err(|e| Error::io("open", shown, e))?;
                self.set_xattrs(&fd_file(&fd), info, shown)?;
                rfs::fchmod(&fd, Mode::from_raw_mode(info.mode))
                    .map_err(|e| Error::io("chmod", shown, e))?;
                set_times_fd(&fd, info.atime, info.mtime).map_err(|e| Error::io("utime", shown, e))
            }
            _ => {
                let file =
                    XattrFile::open_path(parent, leaf).map_err(|e| Error::io("open", shown, e))?;
                self.set_xattrs(&file, info, shown)?;
                chmod_special_at(parent, leaf, info.mode)
                    .map_err(|e| Error::io("chmod", shown, e))?;
                set_times_at(parent, leaf, info.atime, info.mtime)
                    .map_err(|e| Error::io("utime", shown, e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let ok = |raw: &str| {
            clean_name(raw.as_bytes()).ok().flatten().map(|c| {
                c.iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
        };
        assert_eq!(ok("/etc/passwd"), Some("etc/passwd".to_owned()));
        assert_eq!(ok("./a/./b/"), Some("a/b".to_owned()));
        assert_eq!(ok("a/../b"), Some("b".to_owned()));
        assert_eq!(ok("."), None);
        assert_eq!(ok("/"), None);
        assert_eq!(ok("a/.."), None);
        assert!(clean_name(b"../x").is_err());
        assert!(clean_name(b"a/../../x").is_err());
        // Leading slashes are trimmed before cleaning, so this one climbs too.
        assert!(clean_name(b"/../x").is_err());
    }

    #[test]
    fn compression_detection() {
        assert_eq!(detect(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(detect(&[0x1f, 0x8b, 0x08, 0]), Compression::Gzip);
        assert_eq!(
            detect(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1]),
            Compression::Xz
        );
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(detect(&[0x50, 0x2a, 0x4d, 0x18]), Compression::Zstd);
        assert_eq!(detect(b"hello"), Compression::None);
        assert_eq!(detect(&[0x1f, 0x8b]), Compression::None);
    }

    #[test]
    fn pax_times() {
        let t = pax_time(b"1234.5").map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(t, Some((1234, 500_000_000)));
        let t = pax_time(b"-1.25").map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(t, Some((-2, 750_000_000)));
        assert!(pax_time(b"x").is_none());
    }
}
