//! Snapshots mounted for the duration of an op, unmounted when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_snapshot::Mount;

use crate::error::{Error, Result};

/// A unique name for a temporary snapshot or directory: process id, time and a counter.
pub(crate) fn unique_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}{}-{nanos:x}-{n}", std::process::id())
}

/// A mounted filesystem in a directory of its own; unmounted and removed on drop.
#[derive(Debug)]
pub(crate) struct Mounted {
    dir: PathBuf,
    mounted: bool,
}

impl Mounted {
    /// Mounts `mounts` (from the snapshotter) on a new directory under `parent`. An empty mount
    /// list gives an empty directory (scratch).
    pub fn new(parent: &Path, mounts: &[Mount]) -> Result<Mounted> {
        let dir = parent.join(unique_id("m"));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating mount point", &dir, e))?;
        let mut m = Mounted {
            dir,
            mounted: false,
        };
        if !mounts.is_empty() {
            kiln_snapshot::mount_all(mounts, &m.dir)?;
            m.mounted = true;
        }
        Ok(m)
    }

    /// Where the filesystem is.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Unmounts now, reporting errors (drop does the same, silently).
    pub fn release(mut self) -> Result<()> {
        self.unmount()
    }

    fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            kiln_snapshot::unmount(&self.dir)?;
            self.mounted = false;
        }
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing mount point", &self.dir, e)),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}
