//! Writing the difference between a snapshot and its parent as a layer tar.
//!
//! Two differs feed one change writer:
//!
//! * [`write_diff_overlay`] walks an overlayfs upper directory, as BuildKit's overlay differ
//!   (`util/overlay`) does: character devices 0/0 are deletions, opaque directories hide the
//!   lower layers, and the lower layers are only consulted to drop whiteouts of paths they do
//!   not have and to skip entries that were copied up without a change. Two deliberate
//!   differences: an opaque directory is written as a `.wh..wh..opq` marker (BuildKit diffs
//!   it against the lower layers instead), and an unchanged copied-up file that is hard
//!   linked to a changed one is written as a link, so the hard link survives.
//! * [`write_diff_dirs`] compares two full trees, as continuity's double-walking differ does,
//!   for the copying snapshotter.
//!
//! The change writer follows containerd's `ChangeWriter`: entries in walk order (each
//! directory's names sorted bytewise, parents before children), a directory that did not
//! change itself emitted right before the first change below it, hard links within the layer
//! emitted as links to the first path written, whiteouts as empty regular files dated 1970,
//! modification times cut to whole seconds and clamped to `SOURCE_DATE_EPOCH`, headers encoded
//! as Go's `archive/tar` does. The same tree always gives the same bytes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use kiln_oci::Digest;

use crate::error::{Error, Result, show};
use crate::fsutil::{
    XattrPolicy, child, is_opaque, is_whiteout, join, open_nofollow, read_xattrs, same_dirent,
    sorted_names,
};
use crate::gotar::{Header, TarWriter, encode_header, flag};
use crate::hash::HashingWriter;
use crate::lowers;

/// Options of the differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiffOpts {
    /// `SOURCE_DATE_EPOCH`: when set, every modification time later than it is replaced by it
    /// (whiteouts are always dated 0, as containerd 2 does).
    pub source_date_epoch: Option<i64>,
    /// Which extended attributes are recorded (and compared when deciding what changed).
    pub xattrs: XattrPolicy,
}

/// What a differ wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffStats {
    /// The `sha256` of the tar written (the layer's `diff_id`).
    pub diff_id: Digest,
    /// The size of the tar in bytes.
    pub size: u64,
    /// The number of entries (whiteouts included, PAX extended headers not counted).
    pub entries: u64,
}

/// Writes the layer recorded in overlayfs upper directory `upper` to `out`.
///
/// `lowers` are the layer directories below it, top-most first (overlayfs `lowerdir` order);
/// the snapshotter must mount without `metacopy` and `redirect_dir`, whose upper directories
/// do not hold whole files. An opaque directory that hides something of the lower layers is
/// written as the directory, a `.wh..wh..opq` marker and everything the upper directory has
/// below it.
pub fn write_diff_overlay<W: Write>(
    upper: &Path,
    lowers: &[&Path],
    out: W,
    opts: DiffOpts,
) -> Result<DiffStats> {
    struct Frame {
        rel: Vec<u8>,
        names: Vec<Vec<u8>>,
        next: usize,
        /// Below an opaque directory: the lower layers are hidden, everything is new.
        opaque: bool,
    }
    let mut cw = ChangeWriter::new(out, upper, opts);
    let names = sorted_names(upper).map_err(|e| fs_err("read directory", upper, e))?;
    let mut stack = vec![Frame {
        rel: Vec::new(),
        names,
        next: 0,
        opaque: false,
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.names.get(frame.next).cloned() else {
            stack.pop();
            continue;
        };
        frame.next += 1;
        let rel = child(&frame.rel, &name);
        let in_opaque = frame.opaque;
        let path = join(upper, &rel);
        let meta = fs::symlink_metadata(&path).map_err(|e| fs_err("stat", &path, e))?;
        let descend = |opaque: bool| -> Result<Frame> {
            let names = sorted_names(&path).map_err(|e| fs_err("read directory", &path, e))?;
            Ok(Frame {
                rel: rel.clone(),
                names,
                next: 0,
                opaque,
            })
        };

        if in_opaque {
            if is_whiteout(&meta) {
                continue;
            }
            cw.handle(Kind::Add, &rel, Some(&meta))?;
            if meta.is_dir() {
                let next = descend(true)?;
                stack.push(next);
            }
            continue;
        }

        let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
        let base = lowers::lookup(lowers, &comps)
            .map_err(|e| fs_err("look up in the lower layers", &path, e))?;
        if is_whiteout(&meta) {
            // A whiteout of something the lower layers do not have records nothing.
            if base.is_some() {
                cw.handle(Kind::Delete, &rel, None)?;
            }
            continue;
        }
        let skip = match &base {
            Some(found) => same_dirent(&found.meta, &meta, &found.path, &path, opts.xattrs)
                .map_err(|e| fs_err("compare with the lower layers", &path, e))?,
            None => false,
        };
        if !skip {
            let kind = if base.is_some() {
                Kind::Modify
            } else {
                Kind::Add
            };
            cw.handle(kind, &rel, Some(&meta))?;
        } else if !meta.is_dir() && meta.nlink() > 1 {
            // BuildKit drops an unchanged entry here. When it is hard linked to something this
            // layer writes (`ln lower-file new` copies the lower file up unchanged), the link
            // must be written too, or the applied tree would have two inodes where the mount
            // had one; the change writer writes it only in that case.
            cw.handle(Kind::Unmodified, &rel, Some(&meta))?;
        }
        if meta.is_dir() {
            let opaque = base.is_some()
                && is_opaque(&path).map_err(|e| fs_err("read xattrs of", &path, e))?;
            if opaque {
                cw.opaque(&rel)?;
            }
            let next = descend(opaque)?;
            stack.push(next);
        }
    }
    cw.finish()
}

/// Writes the difference from `lower` to `upper` (two full trees) to `out`; with no `lower`,
/// everything in `upper` is added.
///
/// Changed entries are found by metadata and, when timestamps cannot tell (both without
/// sub-second parts), by content. A deleted directory is one whiteout; a directory replaced
/// by a file is the file.
pub fn write_diff_dirs<W: Write>(
    lower: Option<&Path>,
    upper: &Path,
    out: W,
    opts: DiffOpts,
) -> Result<DiffStats> {
    struct Frame {
        rel: Vec<u8>,
        lower: Vec<Vec<u8>>,
        upper: Vec<Vec<u8>>,
        li: usize,
        ui: usize,
    }
    let mut cw = ChangeWriter::new(out, upper, opts);
    let list = |path: &Path| sorted_names(path).map_err(|e| fs_err("read directory", path, e));
    let mut stack = vec![Frame {
        rel: Vec::new(),
        lower: match lower {
            Some(l) => list(l)?,
            None => Vec::new(),
        },
        upper: list(upper)?,
        li: 0,
        ui: 0,
    }];
    let lower_root = lower.unwrap_or(upper);
    while let Some(frame) = stack.last_mut() {
        let l = frame.lower.get(frame.li).cloned();
        let u = frame.upper.get(frame.ui).cloned();
        let (in_lower, in_upper, name) = match (l, u) {
            (None, None) => {
                stack.pop();
                continue;
            }
            (Some(l), None) => (true, false, l),
            (None, Some(u)) => (false, true, u),
            (Some(l), Some(u)) => match l.cmp(&u) {
                std::cmp::Ordering::Less => (true, false, l),
                std::cmp::Ordering::Greater => (false, true, u),
                std::cmp::Ordering::Equal => (true, true, u),
            },
        };
        if in_lower {
            frame.li += 1;
        }
        if in_upper {
            frame.ui += 1;
        }
        let rel = child(&frame.rel, &name);
        if !in_upper {
            cw.handle(Kind::Delete, &rel, None)?;
            continue;
        }
        let upath = join(upper, &rel);
        let umeta = fs::symlink_metadata(&upath).map_err(|e| fs_err("stat", &upath, e))?;
        let mut lower_dir = false;
        if in_lower {
            let lpath = join(lower_root, &rel);
            let lmeta = fs::symlink_metadata(&lpath).map_err(|e| fs_err("stat", &lpath, e))?;
            let same = same_dirent(&lmeta, &umeta, &lpath, &upath, opts.xattrs)
                .map_err(|e| fs_err("compare with the lower tree", &upath, e))?;
            if !same {
                cw.handle(Kind::Modify, &rel, Some(&umeta))?;
            } else if !umeta.is_dir() && umeta.nlink() > 1 {
                cw.handle(Kind::Unmodified, &rel, Some(&umeta))?;
            }
            lower_dir = lmeta.is_dir();
        } else {
            cw.handle(Kind::Add, &rel, Some(&umeta))?;
        }
        if umeta.is_dir() {
            let lower_names = if lower_dir {
                list(&join(lower_root, &rel))?
            } else {
                Vec::new()
            };
            let upper_names = list(&upath)?;
            stack.push(Frame {
                rel,
                lower: lower_names,
                upper: upper_names,
                li: 0,
                ui: 0,
            });
        }
    }
    cw.finish()
}

/// A file system error while reading a snapshot.
fn fs_err(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Fs {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// continuity's change kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Modify,
    Delete,
    /// Unchanged, but hard linked: it may have to be re-linked to a changed sibling.
    Unmodified,
}

/// containerd's `ChangeWriter`, writing through the Go-compatible tar encoder.
struct ChangeWriter<W: Write> {
    tw: TarWriter<BufWriter<HashingWriter<W>>>,
    source: PathBuf,
    opts: DiffOpts,
    /// The first path written for each hard-linked inode.
    inode_src: HashMap<(u64, u64), Vec<u8>>,
    /// Unmodified paths of hard-linked inodes not written yet.
    inode_refs: HashMap<(u64, u64), Vec<Vec<u8>>>,
    /// Directories already written (without trailing slash).
    added_dirs: HashSet<Vec<u8>>,
    entries: u64,
}

/// The directory part of a relative path (`""` at the top).
fn parent_of(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => rel.get(..i).unwrap_or_default(),
        None => &[],
    }
}

/// The last component of a relative path.
fn base_of(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => rel.get(i + 1..).unwrap_or_default(),
        None => rel,
    }
}

impl<W: Write> ChangeWriter<W> {
    fn new(out: W, source: &Path, opts: DiffOpts) -> Self {
        ChangeWriter {
            tw: TarWriter::new(BufWriter::with_capacity(
                256 * 1024,
                HashingWriter::new(out),
            )),
            source: source.to_path_buf(),
            opts,
            inode_src: HashMap::new(),
            inode_refs: HashMap::new(),
            added_dirs: HashSet::new(),
            entries: 0,
        }
    }

    /// Records one change of `rel` (relative path, no leading slash); `meta` is the upper
    /// side's metadata for everything but deletions.
    fn handle(&mut self, kind: Kind, rel: &[u8], meta: Option<&Metadata>) -> Result<()> {
        let meta = match (kind, meta) {
            (Kind::Delete, _) | (_, None) => {
                let dir = parent_of(rel);
                let name = child(dir, &[b".wh.", base_of(rel)].concat());
                return self.write_marker(name);
            }
            (_, Some(meta)) => meta,
        };
        let ft = meta.file_type();
        if ft.is_socket() {
            return Ok(());
        }
        let path = join(&self.source, rel);
        let mut hdr = Header {
            name: rel.to_vec(),
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            mtime: self.clamp(meta.mtime()),
            ..Header::default()
        };
        if ft.is_file() {
            hdr.typeflag = flag::REG;
            hdr.size = meta.size();
        } else if ft.is_dir() {
            hdr.typeflag = flag::DIR;
            hdr.name.push(b'/');
        } else if ft.is_symlink() {
            hdr.typeflag = flag::SYMLINK;
            hdr.linkname = fs::read_link(&path)
                .map_err(|e| fs_err("read symlink", &path, e))?
                .as_os_str()
                .as_bytes()
                .to_vec();
        } else if ft.is_char_device() || ft.is_block_device() {
            hdr.typeflag = if ft.is_char_device() {
                flag::CHAR
            } else {
                flag::BLOCK
            };
            hdr.devmajor = u64::from(rustix::fs::major(meta.rdev()));
            hdr.devminor = u64::from(rustix::fs::minor(meta.rdev()));
        } else if ft.is_fifo() {
            hdr.typeflag = flag::FIFO;
        } else {
            return Err(fs_err(
                "archive",
                &path,
                io::Error::other("unknown file type"),
            ));
        }

        let mut additional: Vec<Vec<u8>> = Vec::new();
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(src) = self.inode_src.get(&key) {
                hdr.typeflag = flag::LINK;
                hdr.linkname = src.clone();
                hdr.size = 0;
            } else {
                if kind == Kind::Unmodified {
                    self.inode_refs
                        .entry(key)
                        .or_default()
                        .push(hdr.name.clone());
                    return Ok(());
                }
                self.inode_src.insert(key, hdr.name.clone());
                additional = self.inode_refs.remove(&key).unwrap_or_default();
            }
        } else if kind == Kind::Unmodified {
            return Ok(());
        }

        let xattrs =
            read_xattrs(&path, self.opts.xattrs).map_err(|e| fs_err("read xattrs of", &path, e))?;
        hdr.pax = xattrs
            .into_iter()
            .map(|(k, v)| ([&b"SCHILY.xattr."[..], &k].concat(), v))
            .collect::<BTreeMap<_, _>>();

        self.include_parents(&hdr.name, hdr.typeflag == flag::DIR)?;
        self.write(&hdr)?;
        if hdr.typeflag == flag::REG && hdr.size > 0 {
            self.copy_file(&path, hdr.size)?;
        }

        if !additional.is_empty() {
            let source = hdr.name.clone();
            for extra in additional {
                hdr.name = extra;
                hdr.typeflag = flag::LINK;
                hdr.linkname = source.clone();
                hdr.size = 0;
                self.include_parents(&hdr.name, false)?;
                self.write(&hdr)?;
            }
        }
        Ok(())
    }

    /// Writes the opaque marker of directory `rel`.
    fn opaque(&mut self, rel: &[u8]) -> Result<()> {
        self.write_marker(child(rel, b".wh..wh..opq"))
    }

    /// Writes a whiteout-style marker: an empty regular file, mode 0, owned by 0:0, dated 0.
    fn write_marker(&mut self, name: Vec<u8>) -> Result<()> {
        let hdr = Header {
            name,
            typeflag: flag::REG,
            ..Header::default()
        };
        self.include_parents(&hdr.name, false)?;
        self.write(&hdr)
    }

    /// containerd's `includeParents`: writes the directories above `name` that have not been
    /// written yet (top-most first), then remembers `name` if it is a directory.
    fn include_parents(&mut self, name: &[u8], is_dir: bool) -> Result<()> {
        let trimmed = name.strip_suffix(b"/").unwrap_or(name);
        let mut missing: Vec<Vec<u8>> = Vec::new();
        let mut dir = parent_of(trimmed);
        while !dir.is_empty() && !self.added_dirs.contains(dir) {
            missing.push(dir.to_vec());
            dir = parent_of(dir);
        }
        for dir in missing.into_iter().rev() {
            self.added_dirs.insert(dir.clone());
            let path = join(&self.source, &dir);
            let meta = fs::symlink_metadata(&path).map_err(|e| fs_err("stat", &path, e))?;
            self.handle(Kind::Modify, &dir, Some(&meta))?;
        }
        if is_dir {
            self.added_dirs.insert(trimmed.to_vec());
        }
        Ok(())
    }

    /// Applies `SOURCE_DATE_EPOCH`.
    fn clamp(&self, mtime: i64) -> i64 {
        match self.opts.source_date_epoch {
            Some(epoch) if mtime > epoch => epoch,
            _ => mtime,
        }
    }

    /// Encodes and writes one header.
    fn write(&mut self, hdr: &Header) -> Result<()> {
        let encoded = encode_header(hdr).map_err(|e| Error::Header {
            entry: show(&hdr.name),
            why: e.why(),
        })?;
        self.tw
            .write_header(&encoded, hdr.typeflag, hdr.size)
            .map_err(Error::Write)?;
        self.entries += 1;
        Ok(())
    }

    /// Streams exactly `size` bytes of `path` into the current entry.
    fn copy_file(&mut self, path: &Path, size: u64) -> Result<()> {
        let file = open_nofollow(path).map_err(|e| fs_err("open", path, e))?;
        let mut limited = file.take(size);
        let mut buf = vec![0u8; 64 * 1024];
        let mut copied = 0u64;
        loop {
            let n = match limited.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fs_err("read", path, e)),
            };
            self.tw
                .write_data(buf.get(..n).unwrap_or_default())
                .map_err(Error::Write)?;
            copied += n as u64;
        }
        let mut rest = limited.into_inner();
        let mut one = [0u8; 1];
        let grew = loop {
            match rest.read(&mut one) {
                Ok(n) => break n > 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fs_err("read", path, e)),
            }
        };
        if copied != size || grew {
            return Err(Error::Changed {
                path: path.to_path_buf(),
            });
        }
        Ok(())
    }

    /// Ends the archive and returns what was written.
    fn finish(self) -> Result<DiffStats> {
        let entries = self.entries;
        let buffered = self.tw.finish().map_err(Error::Write)?;
        let hashing = buffered
            .into_inner()
            .map_err(|e| Error::Write(e.into_error()))?;
        let (_, diff_id, size) = hashing.finish();
        Ok(DiffStats {
            diff_id,
            size,
            entries,
        })
    }
}
