//! File system helpers shared by the differs and the overlay-aware applier: sorted directory
//! listings, xattr sets, overlayfs markers, and BuildKit's "same entry" comparison.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Which extended attributes a diff records (and compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum XattrPolicy {
    /// Every xattr except overlayfs' own (`trusted.overlay.*`, `user.overlay.*`) and the host's
    /// SELinux label (`security.selinux`): what a faithful round trip needs.
    #[default]
    All,
    /// Only `security.capability`, as containerd's change writer (and so BuildKit) records:
    /// the choice for layers whose `diff_id` must match BuildKit's.
    CapabilityOnly,
}

/// Whether an xattr name is overlayfs bookkeeping that never belongs in a layer.
pub(crate) fn is_overlay_internal(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// Whether an xattr name is recorded under `policy`.
fn recorded(name: &[u8], policy: XattrPolicy) -> bool {
    match policy {
        XattrPolicy::CapabilityOnly => name == b"security.capability",
        XattrPolicy::All => !is_overlay_internal(name) && name != b"security.selinux",
    }
}

/// Whether an error means "this file system has no xattrs" rather than a failure.
fn unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error())
}

/// The xattrs of `path` (not following a final symlink) that `policy` records, sorted by name.
/// Empty values of `security.capability` are dropped, as containerd does.
pub(crate) fn read_xattrs(
    path: &Path,
    policy: XattrPolicy,
) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let names: Vec<Vec<u8>> = match policy {
        XattrPolicy::CapabilityOnly => vec![b"security.capability".to_vec()],
        XattrPolicy::All => match xattr::list(path) {
            Ok(list) => list.map(|n| n.as_bytes().to_vec()).collect(),
            Err(e) if unsupported(&e) => return Ok(out),
            Err(e) => return Err(e),
        },
    };
    for name in names {
        if !recorded(&name, policy) {
            continue;
        }
        match xattr::get(path, OsStr::from_bytes(&name)) {
            Ok(Some(value)) => {
                if name == b"security.capability" && value.is_empty() {
                    continue;
                }
                out.insert(name, value);
            }
            Ok(None) => {}
            Err(e) if unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The names in directory `dir`, sorted bytewise (Go's `filepath.Walk` order).
pub(crate) fn sorted_names(dir: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        names.push(entry?.file_name().as_bytes().to_vec());
    }
    names.sort_unstable();
    Ok(names)
}

/// Joins a relative path (bytes, `/`-separated, no leading slash) to `root`.
pub(crate) fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// `dir/name` for relative paths, `name` alone at the root.
pub(crate) fn child(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

/// Whether `meta` is an overlayfs whiteout: a character device 0/0.
pub(crate) fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether directory `path` carries overlayfs' opaque marker (`trusted.overlay.opaque=y`, or
/// `user.overlay.opaque=y` for `userxattr` mounts).
pub(crate) fn is_opaque(path: &Path) -> io::Result<bool> {
    for key in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        match xattr::get(path, key) {
            Ok(Some(v)) if v == b"y" => return Ok(true),
            Ok(_) => {}
            Err(e) if unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// BuildKit's `sameDirent` (continuity's `sameFile`): whether `upper` records no change from
/// `base`.
///
/// Equal when they are the same inode; otherwise mode, owner, device number and the recorded
/// xattrs must match, and for non-directories the size and the mtime seconds too. When both
/// mtimes have no sub-second part (the mark of a file unpacked from a tar) the content (or the
/// symlink target) decides; otherwise the nanoseconds must match.
pub(crate) fn same_dirent(
    base: &Metadata,
    upper: &Metadata,
    base_path: &Path,
    upper_path: &Path,
    policy: XattrPolicy,
) -> io::Result<bool> {
    if base.dev() == upper.dev() && base.ino() == upper.ino() {
        return Ok(true);
    }
    if base.mode() != upper.mode()
        || base.uid() != upper.uid()
        || base.gid() != upper.gid()
        || base.rdev() != upper.rdev()
    {
        return Ok(false);
    }
    if read_xattrs(base_path, policy)? != read_xattrs(upper_path, policy)? {
        return Ok(false);
    }
    if base.is_dir() {
        return Ok(true);
    }
    if base.size() != upper.size() || base.mtime() != upper.mtime() {
        return Ok(false);
    }
    if base.mtime_nsec() == 0 && upper.mtime_nsec() == 0 {
        if base.file_type().is_symlink() {
            return Ok(fs::read_link(base_path)? == fs::read_link(upper_path)?);
        }
        if base.size() == 0 || !base.is_file() {
            return Ok(true);
        }
        return same_content(base_path, upper_path);
    }
    Ok(base.mtime_nsec() == upper.mtime_nsec())
}

/// Opens a regular file for reading without following a final symlink.
pub(crate) fn open_nofollow(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow())
        .open(path)
}

/// `O_NOFOLLOW` as the `i32` that `OpenOptionsExt::custom_flags` wants.
fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Compares two files byte by byte.
fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let mut fa = open_nofollow(a)?;
    let mut fb = open_nofollow(b)?;
    let mut ba = vec![0u8; 32 * 1024];
    let mut bb = vec![0u8; 32 * 1024];
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba.get(..na) != bb.get(..nb) {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = buf.get_mut(filled..).unwrap_or_default();
        match f.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
