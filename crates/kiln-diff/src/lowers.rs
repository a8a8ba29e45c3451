//! Looking a path up in a stack of overlayfs layer directories without mounting them.
//!
//! BuildKit's overlay differ asks the mounted lower snapshot whether a path exists. kiln does
//! not mount for a diff: it emulates overlayfs' lookup over the layer directories instead,
//! top-most first, honouring whiteouts (character devices 0/0) and opaque directories. Every
//! component is checked to be a real directory in the layer before the next one is looked up,
//! so a symlink inside a layer is never followed out of it.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::fsutil::{is_opaque, is_whiteout};

/// A path found in the merged view of the lower layers.
#[derive(Debug)]
pub(crate) struct Found {
    /// The file in the layer directory that provides it.
    pub path: PathBuf,
    /// Its metadata (not following a final symlink).
    pub meta: Metadata,
}

/// Whether a lookup error just means "not there".
fn absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
}

/// Looks `rel` (path components) up in the merged view of `lowers` (top-most first), as
/// overlayfs would; `None` when the path does not exist there.
///
/// A symlink met before the last component ends the lookup with `None`: overlayfs would follow
/// it, but every caller asks about paths whose parents are directories on the upper side, and
/// an upper directory hides whatever non-directory a lower layer has at the same place.
pub(crate) fn lookup(lowers: &[&Path], rel: &[&[u8]]) -> io::Result<Option<Found>> {
    if rel.is_empty() || lowers.is_empty() {
        return Ok(None);
    }
    let mut candidates: Vec<usize> = (0..lowers.len()).collect();
    let mut prefix = PathBuf::new();
    for (k, comp) in rel.iter().enumerate() {
        prefix.push(OsStr::from_bytes(comp));
        let last = k + 1 == rel.len();
        let mut next: Vec<usize> = Vec::new();
        let mut top: Option<Found> = None;
        for &i in &candidates {
            let Some(layer) = lowers.get(i) else { continue };
            let path = layer.join(&prefix);
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if absent(&e) => continue,
                Err(e) => return Err(e),
            };
            if is_whiteout(&meta) {
                break;
            }
            if meta.is_dir() {
                let opaque = is_opaque(&path)?;
                if top.is_none() {
                    top = Some(Found { path, meta });
                }
                next.push(i);
                if opaque {
                    break;
                }
            } else {
                if next.is_empty() && last {
                    return Ok(Some(Found { path, meta }));
                }
                break;
            }
        }
        if next.is_empty() {
            return Ok(None);
        }
        if last {
            return Ok(top);
        }
        candidates = next;
    }
    Ok(None)
}
