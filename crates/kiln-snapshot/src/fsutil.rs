//! Filesystem helpers: copying trees with all their metadata, merging overlay layers, disk
//! usage, durable renames.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, Timespec, Timestamps, Uid};

use crate::error::{Error, Result, io_err};

/// How [`apply_tree`] treats overlayfs whiteouts and opaque directories in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whiteouts {
    /// The source is an overlay layer (an upper directory): a whiteout (a character device
    /// 0/0) removes the path from the destination, an opaque directory
    /// (`trusted.overlay.opaque=y`) replaces the directory instead of merging into it.
    Apply,
    /// The source is a plain tree: character devices and xattrs are copied as they are.
    Copy,
}

/// The xattr that marks an opaque directory in an overlay layer.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Copies the tree `src` onto the directory `dst` (which exists), preserving file types,
/// contents, modes, owners, xattrs, timestamps, symlinks, hard links (within `src`), device
/// nodes, fifos and sockets. Existing entries of `dst` that `src` also has are replaced;
/// directories are merged. With [`Whiteouts::Apply`] the source is read as an overlay layer.
///
/// Overlay-private xattrs (`trusted.overlay.*`, `user.overlay.*`) are never copied.
pub(crate) fn apply_tree(src: &Path, dst: &Path, whiteouts: Whiteouts) -> Result<()> {
    let copy_err = |reason: String| Error::Copy {
        from: src.to_owned(),
        to: dst.to_owned(),
        reason,
    };
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    // Directories get their timestamps after their contents were written, deepest first.
    let mut dir_times: Vec<(PathBuf, fs::Metadata)> = Vec::new();

    let root_meta = fs::symlink_metadata(src).map_err(io_err("stat", src))?;
    copy_metadata(src, dst, &root_meta)?;
    dir_times.push((dst.to_owned(), root_meta));

    let walker = walkdir::WalkDir::new(src)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name();
    for entry in walker {
        let entry = entry.map_err(|e| copy_err(e.to_string()))?;
        let from = entry.path();
        let rel = from
            .strip_prefix(src)
            .map_err(|e| copy_err(format!("{}: {e}", from.display())))?;
        let to = dst.join(rel);
        let meta = fs::symlink_metadata(from).map_err(io_err("stat", from))?;
        let kind = meta.file_type();

        if whiteouts == Whiteouts::Apply && kind.is_char_device() && meta.rdev() == 0 {
            remove_any(&to)?;
            continue;
        }
        if kind.is_dir() {
            let opaque = whiteouts == Whiteouts::Apply && is_opaque(from)?;
            let existing = fs::symlink_metadata(&to).ok();
            let keep = !opaque && existing.as_ref().is_some_and(|m| m.is_dir());
            if !keep {
                if existing.is_some() {
                    remove_any(&to)?;
                }
                fs::create_dir(&to).map_err(io_err("create directory", &to))?;
            }
            copy_metadata(from, &to, &meta)?;
            dir_times.push((to, meta));
            continue;
        }
        remove_any(&to)?;
        if meta.nlink() > 1 {
            let inode = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&inode) {
                fs::hard_link(first, &to).map_err(io_err("hard link", &to))?;
                continue;
            }
            links.insert(inode, to.clone());
        }
        create_like(from, &to, &meta)?;
        copy_metadata(from, &to, &meta)?;
        set_times(&to, &meta)?;
    }
    for (dir, meta) in dir_times.iter().rev() {
        set_times(dir, meta)?;
    }
    Ok(())
}

/// Creates `to` as a copy of the non-directory `from` (contents, link target or device).
fn create_like(from: &Path, to: &Path, meta: &fs::Metadata) -> Result<()> {
    let kind = meta.file_type();
    if kind.is_file() {
        let mut source = File::open(from).map_err(io_err("open", from))?;
        let mut target = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(io_err("create", to))?;
        io::copy(&mut source, &mut target).map_err(io_err("copy contents to", to))?;
        return Ok(());
    }
    if kind.is_symlink() {
        let link = fs::read_link(from).map_err(io_err("read link", from))?;
        return std::os::unix::fs::symlink(&link, to).map_err(io_err("create symlink", to));
    }
    let file_type = if kind.is_char_device() {
        FileType::CharacterDevice
    } else if kind.is_block_device() {
        FileType::BlockDevice
    } else if kind.is_fifo() {
        FileType::Fifo
    } else if kind.is_socket() {
        FileType::Socket
    } else {
        return Err(Error::Copy {
            from: from.to_owned(),
            to: to.to_owned(),
            reason: "unknown file type".to_owned(),
        });
    };
    rustix::fs::mknodat(CWD, to, file_type, Mode::from_raw_mode(0o600), meta.rdev())
        .map_err(|e| io_err("create special file", to)(e.into()))
}

/// Gives `to` the owner, mode and xattrs of `from` (timestamps are set separately). Owner
/// first: `chown` clears set-uid bits and file capabilities, which come after.
fn copy_metadata(from: &Path, to: &Path, meta: &fs::Metadata) -> Result<()> {
    rustix::fs::chownat(
        CWD,
        to,
        Some(Uid::from_raw(meta.uid())),
        Some(Gid::from_raw(meta.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io_err("change owner of", to)(e.into()))?;
    let is_symlink = meta.file_type().is_symlink();
    if !is_symlink {
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io_err("change mode of", to))?;
    }
    copy_xattrs(from, to, is_symlink)
}

/// Copies the xattrs of `from` to `to`, except overlayfs' own. Xattrs the destination cannot
/// hold (not supported there, or not allowed on a symlink) are left out.
fn copy_xattrs(from: &Path, to: &Path, is_symlink: bool) -> Result<()> {
    let names = match xattr::list(from) {
        Ok(names) => names,
        Err(e) if e.kind() == io::ErrorKind::Unsupported => return Ok(()),
        Err(e) => return Err(io_err("list xattrs of", from)(e)),
    };
    for name in names {
        let text = name.to_string_lossy();
        if text.starts_with("trusted.overlay.") || text.starts_with("user.overlay.") {
            continue;
        }
        let Some(value) = xattr::get(from, &name).map_err(io_err("read xattr of", from))? else {
            continue;
        };
        match xattr::set(to, &name, &value) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
            Err(e) if is_symlink && e.kind() == io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err(io_err("set xattr of", to)(e)),
        }
    }
    Ok(())
}

/// Gives `to` the access and modification times of `meta`, without following symlinks.
fn set_times(to: &Path, meta: &fs::Metadata) -> Result<()> {
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
    rustix::fs::utimensat(CWD, to, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io_err("set times of", to)(e.into()))
}

/// Whether a directory of an overlay layer is opaque.
fn is_opaque(dir: &Path) -> Result<bool> {
    match xattr::get(dir, OPAQUE_XATTR) {
        Ok(value) => Ok(value.as_deref() == Some(b"y".as_slice())),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(false),
        Err(e) => Err(io_err("read xattr of", dir)(e)),
    }
}

/// Removes whatever is at `path` (a file or a whole tree); nothing there is fine.
pub(crate) fn remove_any(path: &Path) -> Result<()> {
    let removed = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// The disk space a tree takes, in bytes of allocated blocks, counting each inode once (as
/// containerd's `fs.DiskUsage` does).
pub(crate) fn disk_usage(root: &Path) -> Result<u64> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0u64;
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(|e| Error::Io {
            action: "walk",
            path: root.to_owned(),
            source: e.into(),
        })?;
        let meta = entry.metadata().map_err(|e| Error::Io {
            action: "stat",
            path: entry.path().to_owned(),
            source: e.into(),
        })?;
        if seen.insert((meta.dev(), meta.ino())) {
            total = total.saturating_add(meta.blocks().saturating_mul(512));
        }
    }
    Ok(total)
}

/// Syncs a directory, making the renames in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}
