//! Mount points created in the root filesystem for a run, and their removal afterwards.
//!
//! A mount needs an existing file or directory to mount on. When the root filesystem lacks one
//! (`/proc` in a `FROM scratch` image, `/etc/hosts`, the destination of a `RUN --mount`), the
//! executor creates it, with any missing parent directories, and remembers exactly what it
//! created. After the container is gone it removes them again, deepest first, but only while
//! they are still what it created: an empty directory or an empty regular file, reached
//! through real directories (never through a symlink the process may have planted: that is
//! CVE-2024-23652 in BuildKit). Whatever the process put there stays.
//!
//! The modification time of each pre-existing directory that received a stub is restored, so
//! that the snapshot diff does not see a change the process did not make: to its time before
//! the stubs when the process did not touch the directory, else to its time before the stubs
//! were removed (BuildKit restores the latter only).

use std::fs::{FileTimes, OpenOptions};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use oci_spec::runtime::Mount;

use crate::Error;
use crate::rootpath;

#[derive(Debug, Clone)]
struct Created {
    /// Relative to the root.
    rel: PathBuf,
    dir: bool,
}

#[derive(Debug, Clone)]
struct Parent {
    /// Relative to the root (empty for the root itself).
    rel: PathBuf,
    atime: SystemTime,
    mtime: SystemTime,
    /// The modification time right after the stubs were created.
    mtime_after: Option<SystemTime>,
}

/// The stubs created for one run.
#[derive(Debug)]
pub struct MountStubs {
    root: PathBuf,
    created: Vec<Created>,
    parents: Vec<Parent>,
}

/// Whether a runtime mount mounts its source (so that the stub must match the source's type).
fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_ref()
            .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"))
}

/// Whether `dest` is strictly inside `parent` (both clean absolute paths).
fn nested(dest: &Path, parent: &Path) -> bool {
    dest != parent && dest.starts_with(parent)
}

fn times(path: &Path) -> std::io::Result<(SystemTime, SystemTime)> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok((meta.accessed()?, meta.modified()?))
}

impl MountStubs {
    /// Creates the missing mount points of `mounts` (in order) in `root`. A destination inside
    /// an earlier mount's destination is left alone: the runtime creates it inside that mount.
    pub fn create(root: &Path, mounts: &[Mount]) -> Result<MountStubs, Error> {
        let mut stubs = MountStubs {
            root: root.to_path_buf(),
            created: Vec::new(),
            parents: Vec::new(),
        };
        for (i, m) in mounts.iter().enumerate() {
            let dest = m.destination();
            if mounts
                .get(..i)
                .unwrap_or_default()
                .iter()
                .any(|earlier| nested(dest, earlier.destination()))
            {
                continue;
            }
            let file = is_bind(m)
                && m.source()
                    .as_ref()
                    .and_then(|s| std::fs::metadata(s).ok())
                    .is_some_and(|meta| !meta.is_dir());
            if let Err(e) = stubs.create_one(dest, file) {
                // Leave nothing behind from the ones already made.
                stubs.remove();
                return Err(e);
            }
        }
        for p in &mut stubs.parents {
            p.mtime_after = times(&root.join(&p.rel)).ok().map(|(_, m)| m);
        }
        Ok(stubs)
    }

    fn create_one(&mut self, dest: &Path, file: bool) -> Result<(), Error> {
        let rel = rootpath::resolve_relative(&self.root, dest).map_err(|e| {
            Error::io(
                "resolve mount point",
                self.root.join(dest.strip_prefix("/").unwrap_or(dest)),
                e,
            )
        })?;
        let parts: Vec<&std::ffi::OsStr> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let mut so_far = PathBuf::new();
        for (i, part) in parts.iter().enumerate() {
            let parent = so_far.clone();
            so_far.push(part);
            let host = self.root.join(&so_far);
            match std::fs::symlink_metadata(&host) {
                Ok(_) => continue,
                Err(e) if rootpath::missing(&e) => {}
                Err(e) => return Err(Error::io("inspect mount point", host, e)),
            }
            if !self.parents.iter().any(|p| p.rel == parent)
                && !self.created.iter().any(|c| c.rel == parent)
            {
                let (atime, mtime) = times(&self.root.join(&parent))
                    .map_err(|e| Error::io("inspect", self.root.join(&parent), e))?;
                self.parents.push(Parent {
                    rel: parent.clone(),
                    atime,
                    mtime,
                    mtime_after: None,
                });
            }
            let last = i + 1 == parts.len();
            if last && file {
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&host)
                    .map_err(|e| Error::io("create mount point", host.clone(), e))?;
            } else {
                std::fs::create_dir(&host)
                    .map_err(|e| Error::io("create mount point", host.clone(), e))?;
            }
            self.created.push(Created {
                rel: so_far.clone(),
                dir: !(last && file),
            });
        }
        Ok(())
    }

    /// The stubs created, as host paths, in creation order.
    pub fn created(&self) -> Vec<PathBuf> {
        self.created
            .iter()
            .map(|c| self.root.join(&c.rel))
            .collect()
    }

    /// Whether every ancestor of `rel` below the root is a real directory (not a symlink).
    fn reachable(&self, rel: &Path) -> bool {
        let mut p = self.root.clone();
        let Some(parent) = rel.parent() else {
            return true;
        };
        for c in parent.components() {
            p.push(c);
            match std::fs::symlink_metadata(&p) {
                Ok(meta) if meta.file_type().is_dir() => {}
                _ => return false,
            }
        }
        true
    }

    /// Removes the stubs that are still untouched, deepest first, and restores the times of
    /// their pre-existing parents. Returns the stubs left in place (the process used them).
    pub fn remove(self) -> Vec<PathBuf> {
        let before_removal: Vec<Option<(SystemTime, SystemTime)>> = self
            .parents
            .iter()
            .map(|p| times(&self.root.join(&p.rel)).ok())
            .collect();
        let mut kept = Vec::new();
        for c in self.created.iter().rev() {
            let host = self.root.join(&c.rel);
            if !self.reachable(&c.rel) {
                kept.push(host);
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&host) else {
                continue; // Already gone.
            };
            let removed = if c.dir && meta.file_type().is_dir() {
                std::fs::read_dir(&host).is_ok_and(|mut d| d.next().is_none())
                    && std::fs::remove_dir(&host).is_ok()
            } else if !c.dir && meta.file_type().is_file() && meta.len() == 0 {
                std::fs::remove_file(&host).is_ok()
            } else {
                false
            };
            if !removed {
                kept.push(host);
            }
        }
        for (p, before) in self.parents.iter().zip(before_removal) {
            let host = self.root.join(&p.rel);
            if !p.rel.as_os_str().is_empty() && !self.reachable(&p.rel.join("x")) {
                continue;
            }
            let Some((atime_now, mtime_now)) = before else {
                continue;
            };
            let untouched = p.mtime_after == Some(mtime_now);
            let (atime, mtime) = if untouched {
                (p.atime, p.mtime)
            } else {
                (atime_now, mtime_now)
            };
            if let Ok(dir) = std::fs::File::open(&host) {
                let _ = dir.set_times(FileTimes::new().set_accessed(atime).set_modified(mtime));
            }
        }
        kept
    }
}
