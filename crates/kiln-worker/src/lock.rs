//! The lock of the state directory: one embedded builder at a time per state directory.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::error::{Error, Result};

/// An exclusive lock on a state directory, held until dropped. The lock file holds the pid of
/// the holder, so that a waiting process can say who it waits for.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// Takes the lock, waiting for it when another process holds it. `waiting` is called once,
    /// with the holder's pid (when known), before waiting.
    pub fn acquire(root: &Path, waiting: impl FnOnce(Option<u32>)) -> Result<StateLock> {
        std::fs::create_dir_all(root)
            .map_err(|e| Error::io("creating state directory", root, e))?;
        let path = root.join("kiln.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("opening lock file", &path, e))?;
        if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            waiting(holder.trim().parse().ok());
            rustix::fs::flock(&file, FlockOperation::LockExclusive)
                .map_err(|e| Error::io("locking", &path, e.into()))?;
        }
        file.set_len(0)
            .map_err(|e| Error::io("writing lock file", &path, e))?;
        file.rewind()
            .map_err(|e| Error::io("writing lock file", &path, e))?;
        writeln!(file, "{}", std::process::id())
            .map_err(|e| Error::io("writing lock file", &path, e))?;
        Ok(StateLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = rustix::fs::flock(&self.file, FlockOperation::Unlock);
    }
}
