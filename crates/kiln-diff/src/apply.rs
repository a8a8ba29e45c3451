//! Applying a layer tar to a directory.
//!
//! The semantics are containerd's `archive.Apply`: entries replace what is at their path
//! (directories merge with directories), whiteouts delete, opaque markers hide what the lower
//! layers had, ownership, modes, xattrs and times come from the headers, and directory times
//! are set once everything below them is written. Where containerd resolves paths with
//! `fs.RootPath` and then uses plain path calls, this applier works through directory
//! descriptors (see [`crate::resolve`]), so neither `..`, absolute names, symlinks in the
//! archive nor hard link targets can make it touch anything outside the destination.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use kiln_fsroot::{Fill, InPath};
use kiln_oci::Digest;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::compress::{CompressionKind, decompress};
use crate::error::{Error, Result, show};
use crate::fsutil::is_overlay_internal;
use crate::gotar::flag;
use crate::hash::HashingReader;
use crate::lowers;
use crate::resolve::{Resolved, Root, clean, components, join};

/// The prefix that marks a whiteout entry.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The prefix of whiteout meta entries (AUFS bookkeeping, opaque markers).
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// The opaque directory marker.
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// The xattr prefix of PAX records.
const PAX_XATTR: &[u8] = b"SCHILY.xattr.";

/// How whiteouts and opaque markers are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WhiteoutMode {
    /// The destination is an (initially empty) overlayfs upper directory: a whiteout becomes
    /// a character device 0/0 and an opaque marker the `trusted.overlay.opaque=y` xattr, for
    /// the kernel to apply when the layer is mounted over its parents.
    Overlay,
    /// The destination is a full copy of the lower layers: whiteouts delete their target,
    /// and an opaque marker deletes everything in its directory that this layer did not add.
    Delete,
}

/// Options of [`apply_layer_with`].
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'a> {
    /// How whiteouts are applied.
    pub mode: WhiteoutMode,
    /// In [`WhiteoutMode::Overlay`], the layer directories below the destination, top-most
    /// first (overlayfs `lowerdir` order). They are read, never written: a directory the layer
    /// needs but does not contain is created with the lower layers' mode, owner, xattrs and
    /// times (not as a plain 0755 directory that would mask theirs), a symlink on the way is
    /// followed as the mounted overlay would, and a hard link to a file that only a lower layer
    /// has copies that file up first. Ignored in [`WhiteoutMode::Delete`].
    pub lowers: &'a [&'a Path],
    /// Whether to flush the destination's file system (`syncfs`) once everything is written,
    /// so that a snapshot recorded as committed afterwards survives a crash.
    pub sync: bool,
}

/// What [`apply_layer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The `sha256` of the uncompressed tar stream (the layer's `diff_id`), trailing padding
    /// included.
    pub diff_id: Digest,
    /// The size of the uncompressed tar stream in bytes.
    pub size: u64,
    /// The compression detected on the input.
    pub compression: CompressionKind,
    /// Entries or attributes that were skipped, one sentence each (for example an xattr the
    /// file system does not support, as containerd skips them with a warning).
    pub warnings: Vec<String>,
}

/// Applies the layer read from `reader` (gzip, zstd or uncompressed, detected from the magic
/// bytes) to `dest`.
pub fn apply_layer<R: Read>(reader: R, dest: &Path, mode: WhiteoutMode) -> Result<Applied> {
    apply_layer_with(
        reader,
        dest,
        &ApplyOptions {
            mode,
            lowers: &[],
            sync: false,
        },
    )
}

/// Applies the layer read from `reader` to `dest`, with lower layers for the overlay mode.
pub fn apply_layer_with<R: Read>(
    reader: R,
    dest: &Path,
    opts: &ApplyOptions<'_>,
) -> Result<Applied> {
    let (compression, decoded) = decompress(reader)?;
    let root = Root::open(dest).map_err(|source| Error::Apply {
        op: "open destination",
        entry: String::new(),
        dest: dest.to_path_buf(),
        source,
    })?;
    let mut state = State {
        root,
        dest: dest.to_path_buf(),
        mode: opts.mode,
        lowers: match opts.mode {
            WhiteoutMode::Overlay => opts.lowers,
            WhiteoutMode::Delete => &[],
        },
        cache: HashMap::new(),
        unpacked: HashSet::new(),
        dirs: Vec::new(),
        warnings: Vec::new(),
        proc_fd: Path::new("/proc/self/fd").is_dir(),
    };
    let mut hashing = HashingReader::new(decoded);
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive.entries().map_err(Error::Tar)?;
        for entry in entries {
            let mut entry = entry.map_err(Error::Tar)?;
            state.apply_entry(&mut entry)?;
        }
    }
    let (diff_id, size) = hashing.drain().map_err(Error::Read)?;
    state.finish_dirs()?;
    if opts.sync {
        let fd = rustix::fs::open(
            dest,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(|fd| rustix::fs::syncfs(&fd))
        .map_err(|e| Error::Apply {
            op: "flush the file system of",
            entry: String::new(),
            dest: dest.to_path_buf(),
            source: e.into(),
        });
        fd?;
    }
    Ok(Applied {
        diff_id,
        size,
        compression,
        warnings: state.warnings,
    })
}

/// The metadata of one entry, read from its header and PAX records.
struct Meta {
    typeflag: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    atime: Timespec,
    linkname: Vec<u8>,
    devmajor: u32,
    devminor: u32,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A directory whose times are set at the end.
struct DirTime {
    rel: Vec<Vec<u8>>,
    times: Timestamps,
}

/// The applier's state across entries.
struct State<'a> {
    root: Root,
    dest: PathBuf,
    mode: WhiteoutMode,
    lowers: &'a [&'a Path],
    /// Resolved parent directories by lexical path; cleared whenever something is removed or
    /// a new directory or symlink appears, since either can change what a path resolves to.
    cache: HashMap<Vec<u8>, Rc<Resolved>>,
    /// Resolved paths this layer wrote (for opaque markers met after their siblings).
    unpacked: HashSet<Vec<u8>>,
    dirs: Vec<DirTime>,
    warnings: Vec<String>,
    /// Whether `/proc/self/fd` can name a directory descriptor (for xattrs on non-files).
    proc_fd: bool,
}

/// Parses a PAX time (`secs[.frac]`, possibly negative) into a timespec.
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = match text.split_once('.') {
        Some((s, f)) => (s, f),
        None => (text, ""),
    };
    let negative = secs.starts_with('-');
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: i64 = digits.parse().ok()?;
    if negative && nanos > 0 {
        Some(Timespec {
            tv_sec: secs - 1,
            tv_nsec: (1_000_000_000 - nanos) as _,
        })
    } else {
        Some(Timespec {
            tv_sec: secs,
            tv_nsec: nanos as _,
        })
    }
}

/// containerd's `boundTime`: times before the epoch (or past what a timespec holds in
/// nanoseconds) become the epoch.
fn bound_time(t: Timespec) -> Timespec {
    const MAX_SECS: i64 = i64::MAX / 1_000_000_000;
    if t.tv_sec < 0 || t.tv_sec > MAX_SECS {
        Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }
    } else {
        t
    }
}

/// Whether `a` is later than `b`.
fn later(a: &Timespec, b: &Timespec) -> bool {
    (a.tv_sec, a.tv_nsec) > (b.tv_sec, b.tv_nsec)
}

/// The kind of node an entry creates, to pick how metadata is set on it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Node {
    File,
    Dir,
    Symlink,
    Other,
}

impl<'a> State<'a> {
    /// An apply error about entry `name`.
    fn err(&self, op: &'static str, name: &[u8], source: io::Error) -> Error {
        Error::Apply {
            op,
            entry: show(name),
            dest: self.dest.clone(),
            source,
        }
    }

    /// Reads the header fields and PAX records of `entry`.
    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, name: &[u8]) -> Result<Meta> {
        let header = entry.header();
        let raw = header.entry_type().as_byte();
        let typeflag = match raw {
            // The deprecated `TypeRegA`: a directory when the name ends in a slash.
            b'\0' if name.ends_with(b"/") => flag::DIR,
            b'\0' | b'7' | b'S' => flag::REG,
            b'0'..=b'6' => raw,
            other => {
                return Err(Error::UnsupportedEntry {
                    kind: char::from(other),
                    entry: show(name),
                });
            }
        };
        let bad = |e: io::Error| Error::Tar(e);
        let field = |b: &[u8], what: &str| {
            crate::gotar::parse_numeric(b).ok_or_else(|| {
                bad(io::Error::other(format!(
                    "invalid {what} field in the header of {:?}",
                    show(name)
                )))
            })
        };
        let old = header.as_old();
        let mode = u32::try_from(field(&old.mode, "mode")? & 0o7777).unwrap_or(0);
        let uid = u32::try_from(field(&old.uid, "uid")?)
            .map_err(|_| bad(io::Error::other("uid does not fit 32 bits")))?;
        let gid = u32::try_from(field(&old.gid, "gid")?)
            .map_err(|_| bad(io::Error::other("gid does not fit 32 bits")))?;
        let header_mtime = field(&old.mtime, "mtime")?;
        let (devmajor, devminor) = match (typeflag, header.as_ustar(), header.as_gnu()) {
            (flag::CHAR | flag::BLOCK, Some(u), _) => (
                field(&u.dev_major, "device major")?,
                field(&u.dev_minor, "device minor")?,
            ),
            (flag::CHAR | flag::BLOCK, None, Some(g)) => (
                field(&g.dev_major, "device major")?,
                field(&g.dev_minor, "device minor")?,
            ),
            _ => (0, 0),
        };
        let devmajor = u32::try_from(devmajor)
            .map_err(|_| bad(io::Error::other("device major number out of range")))?;
        let devminor = u32::try_from(devminor)
            .map_err(|_| bad(io::Error::other("device minor number out of range")))?;
        let linkname = entry
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default();
        let mut mtime = Timespec {
            tv_sec: header_mtime,
            tv_nsec: 0,
        };
        let mut atime = None;
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions().map_err(bad)? {
            for ext in exts {
                let ext = ext.map_err(bad)?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                } else if key == b"atime" {
                    atime = parse_pax_time(ext.value_bytes());
                } else if let Some(xattr) = key.strip_prefix(PAX_XATTR)
                    && !xattr.is_empty()
                {
                    xattrs.push((xattr.to_vec(), ext.value_bytes().to_vec()));
                }
            }
        }
        let atime = match atime {
            Some(a) if later(&a, &mtime) => a,
            _ => mtime,
        };
        Ok(Meta {
            typeflag,
            mode,
            uid,
            gid,
            mtime: bound_time(mtime),
            atime: bound_time(atime),
            linkname,
            devmajor,
            devminor,
            xattrs,
        })
    }

    /// Applies one archive entry.
    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let name = entry.path_bytes().into_owned();
        if entry.header().entry_type().is_pax_global_extensions() {
            return Ok(());
        }
        let meta = self.meta(entry, &name)?;
        let comps = clean(&name);
        let Some((base, parent)) = comps.split_last() else {
            // The root itself ("./"): containerd leaves its metadata alone.
            return Ok(());
        };
        // AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`) is not layer content.
        let meta_component = |c: &Vec<u8>| c.starts_with(WHITEOUT_META_PREFIX);
        if parent.iter().any(meta_component) || (meta_component(base) && base != WHITEOUT_OPAQUE) {
            self.warnings
                .push(format!("skipped AUFS metadata entry {:?}", show(&name)));
            return Ok(());
        }
        if base == WHITEOUT_OPAQUE {
            return self.opaque(parent, &name);
        }
        if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX) {
            if target.is_empty() || target == b"." || target == b".." {
                return Err(Error::InvalidWhiteout { entry: show(&name) });
            }
            return self.whiteout(parent, target, &meta, &name);
        }

        let dir = self
            .parent(parent, true)
            .map_err(|e| self.err("create parent directories of", &name, e))?;
        let at = dir.fd.as_fd();
        let rel = {
            let mut rel = dir.rel.clone();
            rel.push(base.clone());
            rel
        };

        // Replace what is there, except a directory over a directory, which merges.
        match rustix::fs::statat(at, base.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if !(is_dir && meta.typeflag == flag::DIR) {
                    self.cache.clear();
                    remove_all_at(at, base).map_err(|e| self.err("replace", &name, e))?;
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(self.err("inspect", &name, e.into())),
        }

        let node = match meta.typeflag {
            flag::DIR => {
                match rustix::fs::mkdirat(at, base.as_slice(), Mode::from_raw_mode(0o700)) {
                    Ok(()) => self.cache.clear(),
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(self.err("create directory", &name, e.into())),
                }
                Node::Dir
            }
            flag::REG => {
                let file = self.create_file(at, base, entry, &name)?;
                self.set_file_meta(&file, &meta, &name)?;
                self.unpacked.insert(join(&rel));
                return Ok(());
            }
            flag::SYMLINK => {
                rustix::fs::symlinkat(meta.linkname.as_slice(), at, base.as_slice())
                    .map_err(|e| self.err("create symlink", &name, e.into()))?;
                self.cache.clear();
                Node::Symlink
            }
            flag::LINK => self.hard_link(at, base, &meta, &name)?,
            flag::CHAR | flag::BLOCK | flag::FIFO => {
                let kind = match meta.typeflag {
                    flag::CHAR => FileType::CharacterDevice,
                    flag::BLOCK => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(meta.devmajor, meta.devminor);
                rustix::fs::mknodat(at, base.as_slice(), kind, Mode::from_raw_mode(0o600), dev)
                    .map_err(|e| self.err("create device node", &name, e.into()))?;
                Node::Other
            }
            other => {
                return Err(Error::UnsupportedEntry {
                    kind: char::from(other),
                    entry: show(&name),
                });
            }
        };
        self.set_meta_at(at, &dir.rel, base, node, &meta, &name)?;
        if node == Node::Dir {
            self.dirs.push(DirTime {
                rel: rel.clone(),
                times: Timestamps {
                    last_access: meta.atime,
                    last_modification: meta.mtime,
                },
            });
        }
        self.unpacked.insert(join(&rel));
        Ok(())
    }

    /// Resolves a parent directory (cached), creating missing directories when `create`.
    fn parent(&mut self, comps: &[Vec<u8>], create: bool) -> io::Result<Rc<Resolved>> {
        let key = join(comps);
        if let Some(hit) = self.cache.get(&key) {
            return Ok(Rc::clone(hit));
        }
        let lowers = self.lowers;
        let dirs = &mut self.dirs;
        let mut on_missing = |at: BorrowedFd<'_>, rel: &InPath, name: &OsStr| -> io::Result<Fill> {
            if !create {
                return Ok(Fill::Absent);
            }
            let rel = components(rel);
            let name = name.as_bytes();
            let mut full: Vec<&[u8]> = rel.iter().map(Vec::as_slice).collect();
            full.push(name);
            if let Some(found) = lowers::lookup(lowers, &full)? {
                let ft = found.meta.file_type();
                if ft.is_symlink() {
                    let target = std::fs::read_link(&found.path)?;
                    return Ok(Fill::Link(target.as_os_str().as_bytes().to_vec()));
                }
                if !ft.is_dir() {
                    return Err(Errno::NOTDIR.into());
                }
                rustix::fs::mkdirat(at, name, Mode::from_raw_mode(0o700))?;
                copy_dir_meta(at, name, &found.path, &found.meta)?;
                let mut rel_full = rel;
                rel_full.push(name.to_vec());
                dirs.push(DirTime {
                    rel: rel_full,
                    times: Timestamps {
                        last_access: Timespec {
                            tv_sec: found.meta.atime(),
                            tv_nsec: found.meta.atime_nsec() as _,
                        },
                        last_modification: Timespec {
                            tv_sec: found.meta.mtime(),
                            tv_nsec: found.meta.mtime_nsec() as _,
                        },
                    },
                });
                return Ok(Fill::Created);
            }
            rustix::fs::mkdirat(at, name, Mode::from_raw_mode(0o755))?;
            // mkdir is subject to the umask; containerd's parents end up 0755 under the usual one.
            rustix::fs::chmodat(at, name, Mode::from_raw_mode(0o755), AtFlags::empty())?;
            Ok(Fill::Created)
        };
        let resolved = Rc::new(self.root.resolve_dir(comps, &mut on_missing)?);
        self.cache.insert(key, Rc::clone(&resolved));
        Ok(resolved)
    }

    /// Creates and fills a regular file (never through an existing file or symlink).
    fn create_file<R: Read>(
        &self,
        at: BorrowedFd<'_>,
        base: &[u8],
        entry: &mut tar::Entry<'_, R>,
        name: &[u8],
    ) -> Result<File> {
        let fd = rustix::fs::openat(
            at,
            base,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.err("create file", name, e.into()))?;
        let mut file = File::from(fd);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Tar(e)),
            };
            file.write_all(buf.get(..n).unwrap_or_default())
                .map_err(|e| self.err("write file", name, e))?;
        }
        Ok(file)
    }

    /// Owner, xattrs, mode and times of a regular file, through its descriptor.
    fn set_file_meta(&mut self, file: &File, meta: &Meta, name: &[u8]) -> Result<()> {
        rustix::fs::fchown(
            file,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(|e| self.err("set owner of", name, e.into()))?;
        for (key, value) in &meta.xattrs {
            if self.skip_xattr(key, name) {
                continue;
            }
            let res = rustix::fs::fsetxattr(file, key.as_slice(), value, XattrFlags::empty());
            self.xattr_result(res, key, name, Node::File)?;
        }
        rustix::fs::fchmod(file, Mode::from_raw_mode(meta.mode))
            .map_err(|e| self.err("set mode of", name, e.into()))?;
        rustix::fs::futimens(
            file,
            &Timestamps {
                last_access: meta.atime,
                last_modification: meta.mtime,
            },
        )
        .map_err(|e| self.err("set times of", name, e.into()))?;
        Ok(())
    }

    /// Owner, xattrs, mode and (except for directories) times of a node, by name in `at`,
    /// never following a final symlink.
    fn set_meta_at(
        &mut self,
        at: BorrowedFd<'_>,
        at_rel: &[Vec<u8>],
        base: &[u8],
        node: Node,
        meta: &Meta,
        name: &[u8],
    ) -> Result<()> {
        rustix::fs::chownat(
            at,
            base,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err("set owner of", name, e.into()))?;
        // A hard link's node is whatever its target is.
        let node = if node == Node::Other {
            match rustix::fs::statat(at, base, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                    FileType::Symlink => Node::Symlink,
                    FileType::Directory => Node::Dir,
                    _ => Node::Other,
                },
                Err(e) => return Err(self.err("inspect", name, e.into())),
            }
        } else {
            node
        };
        if !meta.xattrs.is_empty() {
            let path = self.node_path(at, at_rel, base);
            let dir_fd = if node == Node::Dir {
                rustix::fs::openat(
                    at,
                    base,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()
            } else {
                None
            };
            for (key, value) in &meta.xattrs {
                if self.skip_xattr(key, name) {
                    continue;
                }
                let res = match &dir_fd {
                    Some(fd) => {
                        rustix::fs::fsetxattr(fd, key.as_slice(), value, XattrFlags::empty())
                    }
                    None => rustix::fs::lsetxattr(
                        path.as_path(),
                        key.as_slice(),
                        value,
                        XattrFlags::empty(),
                    ),
                };
                self.xattr_result(res, key, name, node)?;
            }
        }
        if node != Node::Symlink {
            // The node was just created by this applier and is not a symlink, so following it
            // is following nothing; Linux has no lchmod.
            rustix::fs::chmodat(at, base, Mode::from_raw_mode(meta.mode), AtFlags::empty())
                .map_err(|e| self.err("set mode of", name, e.into()))?;
        }
        if node != Node::Dir {
            rustix::fs::utimensat(
                at,
                base,
                &Timestamps {
                    last_access: meta.atime,
                    last_modification: meta.mtime,
                },
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.err("set times of", name, e.into()))?;
        }
        Ok(())
    }

    /// A path naming `base` in directory `at` (resolved to `at_rel` below the destination)
    /// for calls that only take paths (xattrs on symlinks and device nodes): through
    /// `/proc/self/fd`, which pins the directory, or without /proc through the resolved path,
    /// whose components were all real directories a moment ago.
    fn node_path(&self, at: BorrowedFd<'_>, at_rel: &[Vec<u8>], base: &[u8]) -> PathBuf {
        let mut p = if self.proc_fd {
            PathBuf::from(format!("/proc/self/fd/{}", at.as_raw_fd()))
        } else {
            let mut p = self.dest.clone();
            for comp in at_rel {
                p.push(std::ffi::OsStr::from_bytes(comp));
            }
            p
        };
        p.push(std::ffi::OsStr::from_bytes(base));
        p
    }

    /// Whether an xattr from the archive is left out: overlayfs' own attributes would let a
    /// layer steer the overlay mount (redirects, opaque markers), so they never come from
    /// archives.
    fn skip_xattr(&mut self, key: &[u8], name: &[u8]) -> bool {
        if is_overlay_internal(key) {
            self.warnings.push(format!(
                "ignored overlayfs xattr {:?} on {:?}",
                show(key),
                show(name)
            ));
            return true;
        }
        false
    }

    /// containerd's xattr error policy: unsupported attributes, and `user.*` attributes on
    /// nodes that cannot carry them, are skipped with a warning.
    fn xattr_result(
        &mut self,
        res: rustix::io::Result<()>,
        key: &[u8],
        name: &[u8],
        node: Node,
    ) -> Result<()> {
        match res {
            Ok(()) => Ok(()),
            Err(Errno::OPNOTSUPP) => {
                self.warnings.push(format!(
                    "ignored xattr {:?} on {:?}: not supported by the file system",
                    show(key),
                    show(name)
                ));
                Ok(())
            }
            Err(Errno::PERM)
                if key.starts_with(b"user.") && !matches!(node, Node::File | Node::Dir) =>
            {
                self.warnings.push(format!(
                    "ignored xattr {:?} on {:?}: only files and directories carry user xattrs",
                    show(key),
                    show(name)
                ));
                Ok(())
            }
            Err(e) => Err(self.err("set xattr of", name, e.into())),
        }
    }

    /// Creates hard link `base` (in `at`) to the entry's link target, resolved in the root.
    fn hard_link(
        &mut self,
        at: BorrowedFd<'_>,
        base: &[u8],
        meta: &Meta,
        name: &[u8],
    ) -> Result<Node> {
        let invalid = || Error::InvalidLink {
            entry: show(name),
            target: show(&meta.linkname),
        };
        let target = clean(&meta.linkname);
        let Some((tbase, tparent)) = target.split_last() else {
            return Err(invalid());
        };
        let tdir = self
            .parent(
                tparent,
                self.mode == WhiteoutMode::Overlay && !self.lowers.is_empty(),
            )
            .map_err(|e| self.err("resolve hard link target of", name, e))?;
        if self.mode == WhiteoutMode::Overlay && !self.lowers.is_empty() {
            match rustix::fs::statat(&tdir.fd, tbase.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => {
                    let mut full: Vec<&[u8]> = tdir.rel.iter().map(Vec::as_slice).collect();
                    full.push(tbase);
                    if let Some(found) = lowers::lookup(self.lowers, &full)
                        .map_err(|e| self.err("look up hard link target of", name, e))?
                    {
                        copy_up(tdir.fd.as_fd(), tbase, &found.path, &found.meta)
                            .map_err(|e| self.err("copy up hard link target of", name, e))?;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(self.err("inspect hard link target of", name, e.into())),
            }
        }
        match rustix::fs::linkat(&tdir.fd, tbase.as_slice(), at, base, AtFlags::empty()) {
            Ok(()) => Ok(Node::Other),
            Err(Errno::PERM) => Err(invalid()),
            Err(e) => Err(self.err("create hard link", name, e.into())),
        }
    }

    /// A whiteout: delete the target, or mark it deleted for overlayfs.
    fn whiteout(
        &mut self,
        parent: &[Vec<u8>],
        target: &[u8],
        meta: &Meta,
        name: &[u8],
    ) -> Result<()> {
        match self.mode {
            WhiteoutMode::Delete => {
                let dir = match self.parent(parent, false) {
                    Ok(dir) => dir,
                    Err(e) if is_absent(&e) => return Ok(()),
                    Err(e) => return Err(self.err("resolve", name, e)),
                };
                self.cache.clear();
                remove_all_at(dir.fd.as_fd(), target)
                    .map_err(|e| self.err("delete whiteout target of", name, e))
            }
            WhiteoutMode::Overlay => {
                let dir = self
                    .parent(parent, true)
                    .map_err(|e| self.err("create parent directories of", name, e))?;
                let at = dir.fd.as_fd();
                self.cache.clear();
                remove_all_at(at, target).map_err(|e| self.err("replace", name, e))?;
                rustix::fs::mknodat(at, target, FileType::CharacterDevice, Mode::empty(), 0)
                    .map_err(|e| self.err("create whiteout device for", name, e.into()))?;
                rustix::fs::chownat(
                    at,
                    target,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| self.err("set owner of", name, e.into()))
            }
        }
    }

    /// An opaque marker for directory `parent`.
    fn opaque(&mut self, parent: &[Vec<u8>], name: &[u8]) -> Result<()> {
        match self.mode {
            WhiteoutMode::Overlay => {
                let dir = self
                    .parent(parent, true)
                    .map_err(|e| self.err("create parent directories of", name, e))?;
                let fd = rustix::fs::openat(
                    &dir.fd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.err("open opaque directory of", name, e.into()))?;
                rustix::fs::fsetxattr(&fd, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                    .map_err(|e| self.err("mark opaque the directory of", name, e.into()))
            }
            WhiteoutMode::Delete => {
                let dir = match self.parent(parent, false) {
                    Ok(dir) => dir,
                    Err(e) if is_absent(&e) => return Ok(()),
                    Err(e) => return Err(self.err("resolve", name, e)),
                };
                self.cache.clear();
                self.clear_opaque(&dir)
                    .map_err(|e| self.err("empty opaque directory of", name, e))
            }
        }
    }

    /// Deletes everything below `dir` that this layer did not write.
    fn clear_opaque(&self, dir: &Resolved) -> io::Result<()> {
        struct Frame {
            fd: OwnedFd,
            rel: Vec<u8>,
            names: Vec<Vec<u8>>,
            next: usize,
        }
        let top = rustix::fs::openat(
            &dir.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let names = list_dir(top.as_fd())?;
        let mut stack = vec![Frame {
            fd: top,
            rel: join(&dir.rel),
            names,
            next: 0,
        }];
        while let Some(frame) = stack.last_mut() {
            let Some(child) = frame.names.get(frame.next).cloned() else {
                stack.pop();
                continue;
            };
            frame.next += 1;
            let rel = crate::fsutil::child(&frame.rel, &child);
            if !self.unpacked.contains(&rel) {
                remove_all_at(frame.fd.as_fd(), &child)?;
                continue;
            }
            let st = rustix::fs::statat(&frame.fd, child.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let fd = rustix::fs::openat(
                    &frame.fd,
                    child.as_slice(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let names = list_dir(fd.as_fd())?;
                stack.push(Frame {
                    fd,
                    rel,
                    names,
                    next: 0,
                });
            }
        }
        Ok(())
    }

    /// Sets the times of the directories written, now that nothing more goes into them.
    fn finish_dirs(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for dir in dirs.iter().rev() {
            let Some((base, parent)) = dir.rel.split_last() else {
                continue;
            };
            let at = match self.parent(parent, false) {
                Ok(at) => at,
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(self.err("resolve", &join(&dir.rel), e)),
            };
            match rustix::fs::utimensat(
                &at.fd,
                base.as_slice(),
                &dir.times,
                AtFlags::SYMLINK_NOFOLLOW,
            ) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(self.err("set times of", &join(&dir.rel), e.into())),
            }
        }
        Ok(())
    }
}

/// Whether an error means the path is not there (or a component is not a directory).
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == Errno::NOENT.raw_os_error() || code == Errno::NOTDIR.raw_os_error()
    )
}

/// The entries of a directory except `.` and `..`.
fn list_dir(fd: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    let mut dir = rustix::fs::Dir::read_from(fd)?;
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}

/// Removes `name` in `at` and everything below it, never following symlinks.
pub(crate) fn remove_all_at(at: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let st = match rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Ok(rustix::fs::unlinkat(at, name, AtFlags::empty())?);
    }
    struct Frame {
        fd: OwnedFd,
        name: Vec<u8>,
        names: Vec<Vec<u8>>,
        next: usize,
    }
    let open_dir = |parent: BorrowedFd<'_>, name: &[u8]| -> io::Result<Frame> {
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let names = list_dir(fd.as_fd())?;
        Ok(Frame {
            fd,
            name: name.to_vec(),
            names,
            next: 0,
        })
    };
    let mut stack = vec![open_dir(at, name)?];
    while let Some(frame) = stack.last_mut() {
        if let Some(child) = frame.names.get(frame.next).cloned() {
            frame.next += 1;
            let st =
                match rustix::fs::statat(&frame.fd, child.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                };
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let next = open_dir(frame.fd.as_fd(), &child)?;
                stack.push(next);
            } else {
                rustix::fs::unlinkat(&frame.fd, child.as_slice(), AtFlags::empty())?;
            }
            continue;
        }
        let done = stack.pop();
        if let Some(done) = done {
            let parent = stack.last().map_or(at, |f| f.fd.as_fd());
            rustix::fs::unlinkat(parent, done.name.as_slice(), AtFlags::REMOVEDIR)?;
        }
    }
    Ok(())
}

/// Sets one xattr (name, value) on a copy.
type SetXattr<'a> = dyn FnMut(&[u8], &[u8]) -> io::Result<()> + 'a;

/// Copies the xattrs of `src` (a path in a lower layer) through `set`, except overlayfs' own;
/// attributes the destination file system does not support are skipped.
fn copy_xattrs(src: &Path, set: &mut SetXattr<'_>) -> io::Result<()> {
    let xattrs = crate::fsutil::read_xattrs(src, crate::fsutil::XattrPolicy::All)?;
    for (k, v) in &xattrs {
        match set(k, v) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(Errno::OPNOTSUPP.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Gives directory `name` in `at` the owner, mode and xattrs of a lower layer's directory
/// (containerd's `copyDirInfo` and `copyUpXAttrs`); its times are set at the end.
fn copy_dir_meta(
    at: BorrowedFd<'_>,
    name: &[u8],
    src: &Path,
    meta: &std::fs::Metadata,
) -> io::Result<()> {
    let fd = rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fchown(
        &fd,
        Some(Uid::from_raw(meta.uid())),
        Some(Gid::from_raw(meta.gid())),
    )?;
    copy_xattrs(src, &mut |k, v| {
        Ok(rustix::fs::fsetxattr(&fd, k, v, XattrFlags::empty())?)
    })?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.permissions().mode() & 0o7777))?;
    Ok(())
}

/// Copies a lower layer's file, symlink or node `src` to `name` in `at` (overlayfs'
/// copy-up), so that a hard link can be made to it.
fn copy_up(
    at: BorrowedFd<'_>,
    name: &[u8],
    src: &Path,
    meta: &std::fs::Metadata,
) -> io::Result<()> {
    let ft = meta.file_type();
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    };
    let owner = (
        Some(Uid::from_raw(meta.uid())),
        Some(Gid::from_raw(meta.gid())),
    );
    if ft.is_file() {
        let fd = rustix::fs::openat(
            at,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut out = File::from(fd);
        let mut input = crate::fsutil::open_nofollow(src)?;
        io::copy(&mut input, &mut out)?;
        rustix::fs::fchown(&out, owner.0, owner.1)?;
        copy_xattrs(src, &mut |k, v| {
            Ok(rustix::fs::fsetxattr(&out, k, v, XattrFlags::empty())?)
        })?;
        rustix::fs::fchmod(
            &out,
            Mode::from_raw_mode(meta.permissions().mode() & 0o7777),
        )?;
        rustix::fs::futimens(&out, &times)?;
        return Ok(());
    }
    if ft.is_symlink() {
        let target = std::fs::read_link(src)?;
        rustix::fs::symlinkat(target.as_os_str().as_bytes(), at, name)?;
    } else {
        let kind = FileType::from_raw_mode(meta.mode());
        rustix::fs::mknodat(at, name, kind, Mode::from_raw_mode(0o600), meta.rdev())?;
        rustix::fs::chmodat(
            at,
            name,
            Mode::from_raw_mode(meta.mode() & 0o7777),
            AtFlags::empty(),
        )?;
    }
    rustix::fs::chownat(at, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)?;
    rustix::fs::utimensat(at, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        let t = parse_pax_time(b"42").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (42, 0));
        assert!(parse_pax_time(b"4x").is_none());
    }
}
