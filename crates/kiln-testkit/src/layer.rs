//! Layer contents (tar entries or a directory), written as deterministic tar streams.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Result, TestkitError, io_error};

/// The modification time of every tar entry the fixtures write: 2024-01-01T00:00:00Z.
///
/// A fixed time keeps layer digests identical from run to run.
pub const FIXED_MTIME: u64 = 1_704_067_200;

/// [`FIXED_MTIME`] as the RFC 3339 text image configs use.
pub const FIXED_CREATED: &str = "2024-01-01T00:00:00Z";

/// What a tar entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A symbolic link to this target, written as given.
    Symlink(String),
    /// A hard link to this earlier entry (a path relative to the layer root).
    Hardlink(String),
}

/// One entry of a layer tar: a path relative to the layer root, what it is, its mode and owner.
///
/// Paths are given without a leading `/` (one is stripped if present); they may not be empty or
/// contain `..`. Nothing is added implicitly: a layer holds exactly its entries, so a test can
/// build a layer whose parent directories are missing on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// The path inside the layer (`bin/sh`).
    pub path: String,
    /// What the entry is.
    pub kind: EntryKind,
    /// The permission bits, including set-uid, set-gid and sticky (`0o1777`).
    pub mode: u32,
    /// The owner's user ID.
    pub uid: u64,
    /// The owner's group ID.
    pub gid: u64,
}

impl TarEntry {
    fn new(path: &str, kind: EntryKind, mode: u32) -> TarEntry {
        TarEntry {
            path: path
                .trim_start_matches('/')
                .trim_end_matches('/')
                .to_owned(),
            kind,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// A directory, mode `0755`, owned by root.
    pub fn dir(path: &str) -> TarEntry {
        TarEntry::new(path, EntryKind::Dir, 0o755)
    }

    /// A regular file, mode `0644`, owned by root.
    pub fn file(path: &str, contents: impl Into<Vec<u8>>) -> TarEntry {
        TarEntry::new(path, EntryKind::File(contents.into()), 0o644)
    }

    /// A symbolic link, mode `0777`, owned by root.
    pub fn symlink(path: &str, target: &str) -> TarEntry {
        TarEntry::new(path, EntryKind::Symlink(target.to_owned()), 0o777)
    }

    /// A hard link to an entry that comes earlier in the layer.
    pub fn hardlink(path: &str, target: &str) -> TarEntry {
        let target = target.trim_start_matches('/').to_owned();
        TarEntry::new(path, EntryKind::Hardlink(target), 0o644)
    }

    /// A whiteout: the empty file `.wh.NAME` that deletes `path` from the layers below.
    pub fn whiteout(path: &str) -> TarEntry {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        let whiteout = match path.rsplit_once('/') {
            Some((parent, name)) => format!("{parent}/.wh.{name}"),
            None => format!(".wh.{path}"),
        };
        TarEntry::new(&whiteout, EntryKind::File(Vec::new()), 0o644)
    }

    /// An opaque-directory marker: `dir/.wh..wh..opq`, which hides everything the layers below
    /// have in `dir`.
    pub fn opaque(dir: &str) -> TarEntry {
        let dir = dir.trim_start_matches('/').trim_end_matches('/');
        TarEntry::new(
            &format!("{dir}/.wh..wh..opq"),
            EntryKind::File(Vec::new()),
            0o644,
        )
    }

    /// The same entry with other permission bits.
    pub fn mode(mut self, mode: u32) -> TarEntry {
        self.mode = mode;
        self
    }

    /// The same entry with another owner.
    pub fn owner(mut self, uid: u64, gid: u64) -> TarEntry {
        self.uid = uid;
        self.gid = gid;
        self
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip at the default level (through flate2 on zlib-rs).
    #[default]
    Gzip,
    /// zstd at level 3.
    Zstd,
}

/// Where a layer's contents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSource {
    /// These entries, written sorted by path.
    Entries(Vec<TarEntry>),
    /// Everything below this directory (not the directory itself), with the modes and owners
    /// it has on disk; files with several links become hard links to the first path.
    Dir(PathBuf),
}

/// One layer of an image: its contents and its compression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The contents.
    pub source: LayerSource,
    /// The compression of the blob.
    pub compression: Compression,
}

impl Layer {
    /// A gzip layer from tar entries.
    pub fn entries(entries: Vec<TarEntry>) -> Layer {
        Layer {
            source: LayerSource::Entries(entries),
            compression: Compression::Gzip,
        }
    }

    /// A gzip layer from a directory's contents.
    pub fn dir(dir: impl Into<PathBuf>) -> Layer {
        Layer {
            source: LayerSource::Dir(dir.into()),
            compression: Compression::Gzip,
        }
    }

    /// The same layer with another compression.
    pub fn compression(mut self, compression: Compression) -> Layer {
        self.compression = compression;
        self
    }
}

/// Checks a relative entry path: not empty, no `..`, no empty or `.` components.
fn check_path(path: &str) -> Result<()> {
    let bad = path.is_empty()
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(TestkitError::Invalid {
            what: "tar entry path",
            message: format!("{path:?} is empty or has an empty, `.` or `..` component"),
        });
    }
    Ok(())
}

/// A tar header with the fixed fields every entry shares.
fn header(entry_type: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(entry_type);
    header.set_mode(mode & 0o7777);
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_mtime(FIXED_MTIME);
    header.set_size(size);
    header
}

/// Writes the entries, sorted by path, as a tar stream into `out`.
pub(crate) fn write_entries<W: Write>(entries: &[TarEntry], out: W) -> Result<W> {
    let mut sorted: Vec<&TarEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut builder = tar::Builder::new(out);
    let tar_error = |source: io::Error| TestkitError::Io {
        action: "writing tar stream",
        path: PathBuf::from("<layer>"),
        source,
    };
    for entry in sorted {
        check_path(&entry.path)?;
        match &entry.kind {
            EntryKind::Dir => {
                let mut h = header(
                    tar::EntryType::Directory,
                    entry.mode,
                    entry.uid,
                    entry.gid,
                    0,
                );
                builder
                    .append_data(&mut h, format!("{}/", entry.path), io::empty())
                    .map_err(tar_error)?;
            }
            EntryKind::File(data) => {
                let size = data.len() as u64;
                let mut h = header(
                    tar::EntryType::Regular,
                    entry.mode,
                    entry.uid,
                    entry.gid,
                    size,
                );
                builder
                    .append_data(&mut h, &entry.path, data.as_slice())
                    .map_err(tar_error)?;
            }
            EntryKind::Symlink(target) => {
                let mut h = header(tar::EntryType::Symlink, entry.mode, entry.uid, entry.gid, 0);
                builder
                    .append_link(&mut h, &entry.path, target)
                    .map_err(tar_error)?;
            }
            EntryKind::Hardlink(target) => {
                check_path(target)?;
                let mut h = header(tar::EntryType::Link, entry.mode, entry.uid, entry.gid, 0);
                builder
                    .append_link(&mut h, &entry.path, target)
                    .map_err(tar_error)?;
            }
        }
    }
    builder.into_inner().map_err(tar_error)
}

/// Writes the contents of `root` (sorted, recursively) as a tar stream into `out`.
pub(crate) fn write_dir<W: Write>(root: &Path, out: W) -> Result<W> {
    let mut builder = tar::Builder::new(out);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    append_dir(&mut builder, root, "", &mut links)?;
    builder
        .into_inner()
        .map_err(io_error("writing tar stream of", root))
}

fn append_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &Path,
    prefix: &str,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<()> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error("reading directory", dir))? {
        let entry = entry.map_err(io_error("reading directory", dir))?;
        names.push(entry.file_name());
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let Some(name) = name.to_str() else {
            return Err(TestkitError::Invalid {
                what: "tar entry path",
                message: format!("{} is not UTF-8", path.display()),
            });
        };
        let rel = format!("{prefix}{name}");
        let meta = fs::symlink_metadata(&path).map_err(io_error("reading metadata of", &path))?;
        let (mode, uid, gid) = (meta.mode(), u64::from(meta.uid()), u64::from(meta.gid()));
        let file_type = meta.file_type();
        let append_error = io_error("adding to tar stream", &path);
        if file_type.is_dir() {
            let mut h = header(tar::EntryType::Directory, mode, uid, gid, 0);
            builder
                .append_data(&mut h, format!("{rel}/"), io::empty())
                .map_err(append_error)?;
            append_dir(builder, &path, &format!("{rel}/"), links)?;
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path).map_err(io_error("reading link", &path))?;
            let mut h = header(tar::EntryType::Symlink, mode, uid, gid, 0);
            builder
                .append_link(&mut h, &rel, &target)
                .map_err(append_error)?;
        } else if file_type.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    let mut h = header(tar::EntryType::Link, mode, uid, gid, 0);
                    builder
                        .append_link(&mut h, &rel, first)
                        .map_err(append_error)?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), rel.clone());
            }
            let file = fs::File::open(&path).map_err(io_error("opening", &path))?;
            let mut h = header(tar::EntryType::Regular, mode, uid, gid, meta.len());
            builder
                .append_data(&mut h, &rel, file)
                .map_err(append_error)?;
        } else {
            return Err(TestkitError::Invalid {
                what: "layer directory",
                message: format!(
                    "{} is not a directory, regular file or symlink",
                    path.display()
                ),
            });
        }
    }
    Ok(())
}

/// Creates the entries under `root`, with their modes and owners (owners need root).
///
/// Entries are created sorted by path, so parents come before children; missing parent
/// directories are created with mode `0755`.
pub fn materialize(entries: &[TarEntry], root: &Path) -> Result<()> {
    let mut sorted: Vec<&TarEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    // Directory modes are applied last, so that a read-only directory can still be filled.
    let mut dir_modes = Vec::new();
    for entry in sorted {
        check_path(&entry.path)?;
        let path = root.join(&entry.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error("creating directory", parent))?;
        }
        match &entry.kind {
            EntryKind::Dir => {
                if !path.is_dir() {
                    fs::create_dir(&path).map_err(io_error("creating directory", &path))?;
                }
                dir_modes.push((path.clone(), entry.mode));
            }
            EntryKind::File(data) => {
                fs::write(&path, data).map_err(io_error("writing", &path))?;
            }
            EntryKind::Symlink(target) => {
                std::os::unix::fs::symlink(target, &path)
                    .map_err(io_error("creating symlink", &path))?;
            }
            EntryKind::Hardlink(target) => {
                check_path(target)?;
                fs::hard_link(root.join(target), &path)
                    .map_err(io_error("creating hard link", &path))?;
            }
        }
        let uid = u32::try_from(entry.uid).ok();
        let gid = u32::try_from(entry.gid).ok();
        std::os::unix::fs::lchown(&path, uid, gid)
            .map_err(io_error("changing the owner of", &path))?;
        // The mode comes after the owner: changing the owner clears set-uid and set-gid.
        if matches!(entry.kind, EntryKind::File(_)) {
            fs::set_permissions(&path, fs::Permissions::from_mode(entry.mode))
                .map_err(io_error("setting the mode of", &path))?;
        }
    }
    for (path, mode) in dir_modes.into_iter().rev() {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(io_error("setting the mode of", &path))?;
    }
    Ok(())
}
