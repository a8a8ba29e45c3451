//! The snapshotter of the embedded builder: filesystem trees stacked on each other, as
//! containerd's snapshotters keep them, with their metadata in a redb database.
//!
//! The model is containerd's. A snapshot is identified by a key. [`Snapshotter::prepare`]
//! creates an *active* (writable) snapshot on top of an optional committed parent,
//! [`Snapshotter::view`] a read-only one; both return the [`Mount`]s that give its
//! filesystem. [`Snapshotter::commit`] turns an active snapshot into an immutable
//! *committed* one under a name, which can then be the parent of others.
//! [`Snapshotter::remove`] refuses to remove a snapshot that still has children.
//!
//! Two drivers store the trees under `<root>/snapshots/<id>/`:
//! - [`Driver::Overlay`]: each snapshot's `fs` directory holds only its own changes (the
//!   overlayfs upper directory, with overlayfs whiteouts for deletions), and a `work`
//!   directory for overlayfs. An active snapshot with parents mounts as an `overlay` of the
//!   parents' `fs` directories (nearest first) under its own. Overlayfs limits the lower
//!   directories (500 in the kernel, and the whole option string must fit into the one page
//!   `mount(2)` accepts); when a parent chain would exceed [`MAX_LOWER_DIRS`] or the page,
//!   the parent's chain is *flattened*: merged once into one extra directory (copying
//!   contents, modes, owners, xattrs, hard links, symlinks and device nodes, and applying
//!   whiteouts and opaque directories), which the parent's record points to and its
//!   descendants use instead of the chain. The flattened directory belongs to that parent
//!   and is removed with it; it never shows up as a snapshot of its own.
//! - [`Driver::Copy`], the fallback when overlayfs does not work under the root (on top of
//!   another overlayfs, for example): preparing copies the parent's whole tree (with all its
//!   metadata) into the new snapshot, which is bind-mounted; committing just freezes it.
//!
//! [`Snapshotter::open`] picks the driver ([`DriverChoice::Auto`] tries a real overlay mount
//! under the root) and reports it through [`Snapshotter::driver`], so that the caller can say
//! once in its progress output that the slow copying driver is in use.
//!
//! Crash safety: every change is one redb write transaction. New directories are built under
//! temporary names and renamed into place inside that transaction, before it commits;
//! removals delete the record first and the directory after. A crash at any point therefore
//! leaves, at worst, directories without a record (temporary or renamed ones), which the next
//! [`Snapshotter::open`] removes; records whose directory is missing (which only damage from
//! outside can cause) are dropped on open together with their descendants. The one mount the
//! snapshotter makes inside its own directory, the test mount of the overlayfs check in
//! `open`, is unmounted before its directory is removed when a crash interrupted it. What was
//! dropped is reported by [`Snapshotter::recovery`].
//!
//! What it deliberately does not know: layers, tars, digests, images, what is in use. The
//! callers (the differ, the unpacker, the worker running RUN steps, the cache) give snapshots
//! their meaning and decide what to remove. It keeps its metadata in tables prefixed
//! `kiln.snapshot.v1.` of a database the caller opens and may share with other stores; one
//! snapshotter (one root) per database, opened by one process at a time.
//!
//! Why: containerd's split keeps each piece small and its crash safety local, and kiln's
//! snapshots can be handed to an OCI runtime as plain mount lists, as BuildKit does.

mod error;
mod fsutil;
mod meta;
mod mount;
mod overlay;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use redb::{Database, ReadableDatabase, ReadableTable};

pub use error::{Error, MountError, Result};
pub use mount::{Mount, mount_all, mounts_under, unmount, unmount_under, with_temp_mount};

use error::{db_err, io_err};
use fsutil::{Whiteouts, apply_tree, disk_usage, remove_any, sync_dir};
use meta::{
    CHILDREN, DRIVER, NEXT_ID, OVERLAY_CHECKED_BOOT, OVERLAY_CHECKED_DEV, Record, SETTINGS,
    SNAPSHOTS, child_key,
};

/// The most lower directories an overlay mount of this snapshotter stacks; deeper parent
/// chains are flattened. The kernel allows 500, but lookups get slower with every layer
/// (Dagger squashes at 128 too).
pub const MAX_LOWER_DIRS: usize = 128;

/// The kind of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Writable; made by [`Snapshotter::prepare`], turned into a committed snapshot by
    /// [`Snapshotter::commit`].
    Active,
    /// Read-only; made by [`Snapshotter::view`].
    View,
    /// Immutable; the only kind that can be a parent.
    Committed,
}

/// What [`Snapshotter::stat`] and [`Snapshotter::walk`] say about a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The key (active snapshots, views) or name (committed snapshots).
    pub name: String,
    /// The kind.
    pub kind: Kind,
    /// The name of the parent, a committed snapshot.
    pub parent: Option<String>,
    /// When the snapshot was created (for a committed one: when it was committed).
    pub created: SystemTime,
    /// When its record last changed.
    pub updated: SystemTime,
    /// Free-form labels, set through [`Snapshotter::update_labels`].
    pub labels: BTreeMap<String, String>,
}

/// How snapshots are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Driver {
    /// Overlayfs: each snapshot stores only its own changes.
    Overlay,
    /// Full copies: each snapshot stores its whole tree (the fallback when overlayfs does not
    /// work).
    Copy,
}

impl Driver {
    /// The driver's name: `overlayfs` or `copy`.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay => "overlayfs",
            Driver::Copy => "copy",
        }
    }

    fn code(self) -> u64 {
        match self {
            Driver::Overlay => 1,
            Driver::Copy => 2,
        }
    }

    fn from_code(code: u64) -> Option<Driver> {
        match code {
            1 => Some(Driver::Overlay),
            2 => Some(Driver::Copy),
            _ => None,
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which driver [`Snapshotter::open`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DriverChoice {
    /// The driver that made the existing snapshots; for an empty store overlayfs when a test
    /// mount under the root works, the copying driver otherwise.
    #[default]
    Auto,
    /// Overlayfs, or an error when it does not work under the root.
    Overlay,
    /// The copying driver.
    Copy,
}

impl FromStr for DriverChoice {
    type Err = String;

    /// Parses `auto`, `overlayfs` (or `overlay`) and `copy` (or `native`, BuildKit's name).
    fn from_str(s: &str) -> std::result::Result<DriverChoice, String> {
        match s {
            "auto" => Ok(DriverChoice::Auto),
            "overlayfs" | "overlay" => Ok(DriverChoice::Overlay),
            "copy" | "native" => Ok(DriverChoice::Copy),
            other => Err(format!(
                "unknown snapshotter {other:?}: expected auto, overlayfs or copy"
            )),
        }
    }
}

/// What [`Snapshotter::open`] repaired after a crash (or damage from outside).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Directories under `<root>/snapshots/` that no record referred to (half-made or
    /// half-removed snapshots, temporary directories), now removed.
    pub removed_directories: Vec<PathBuf>,
    /// Snapshots whose directory was missing (or whose parent was), with their descendants,
    /// now removed from the metadata.
    pub dropped_snapshots: Vec<String>,
    /// Mount points inside those directories that a killed process left (the test mount of
    /// the overlayfs check), unmounted before the directories were removed.
    pub unmounted: Vec<PathBuf>,
}

/// The snapshotter: snapshots under `<root>/snapshots/`, metadata in a redb database.
#[derive(Debug)]
pub struct Snapshotter {
    root: PathBuf,
    dir: PathBuf,
    db: Arc<Database>,
    driver: Driver,
    overlay_options: Vec<String>,
    recovery: Recovery,
}

/// A directory being built under a temporary name in `<root>/snapshots/`; removed when dropped
/// before it is renamed into place.
struct Staged {
    dir: tempfile::TempDir,
    /// For the copying driver: the directory id of the parent whose tree was copied.
    copied_from: Option<u64>,
}

impl Snapshotter {
    /// Opens the snapshotter rooted at `root` (created if needed) with its metadata in `db`,
    /// repairs what a crash left behind (see [`Snapshotter::recovery`]) and chooses the
    /// driver.
    pub fn open(
        root: impl AsRef<Path>,
        db: Arc<Database>,
        choice: DriverChoice,
    ) -> Result<Snapshotter> {
        let root = root.as_ref().to_owned();
        let dir = root.join("snapshots");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("create directory", &dir))?;

        // Create the tables (a read transaction cannot open a table that does not exist).
        let recorded = {
            let txn = db.begin_write().map_err(db_err)?;
            let recorded = {
                txn.open_table(SNAPSHOTS).map_err(db_err)?;
                txn.open_table(CHILDREN).map_err(db_err)?;
                let settings = txn.open_table(SETTINGS).map_err(db_err)?;
                let driver = settings
                    .get(DRIVER)
                    .map_err(db_err)?
                    .and_then(|code| Driver::from_code(code.value()));
                let stamp = match (
                    settings.get(OVERLAY_CHECKED_BOOT).map_err(db_err)?,
                    settings.get(OVERLAY_CHECKED_DEV).map_err(db_err)?,
                ) {
                    (Some(boot), Some(dev)) => Some((boot.value(), dev.value())),
                    _ => None,
                };
                (driver, stamp)
            };
            txn.commit().map_err(db_err)?;
            recorded
        };
        let (recorded, checked_stamp) = recorded;
        // The overlay check mounts and unmounts a test overlay, and unmounting flushes the
        // whole file system: it runs once per boot and file system, not on every open.
        let stamp = overlay_stamp(&dir);
        let already_checked = stamp.is_some() && stamp == checked_stamp;

        let mut snapshotter = Snapshotter {
            root,
            dir,
            db,
            driver: Driver::Copy,
            overlay_options: overlay::base_options(),
            recovery: Recovery::default(),
        };
        snapshotter.recovery = snapshotter.recover()?;
        let has_snapshots = !snapshotter.walk()?.is_empty();

        let check = || {
            if already_checked {
                return Ok(());
            }
            overlay::check(&snapshotter.dir, &snapshotter.overlay_options)
        };
        let unavailable = |reason: String| Error::OverlayUnavailable {
            root: snapshotter.root.clone(),
            reason,
        };
        let driver = match (choice, recorded.filter(|_| has_snapshots)) {
            (DriverChoice::Overlay, _) | (DriverChoice::Auto, Some(Driver::Overlay)) => {
                check().map_err(unavailable)?;
                Driver::Overlay
            }
            (DriverChoice::Copy, _) | (DriverChoice::Auto, Some(Driver::Copy)) => Driver::Copy,
            (DriverChoice::Auto, None) => match check() {
                Ok(()) => Driver::Overlay,
                Err(_) => Driver::Copy,
            },
        };
        if let Some(recorded) = recorded.filter(|_| has_snapshots)
            && recorded != driver
        {
            return Err(Error::DriverMismatch {
                root: snapshotter.root.clone(),
                recorded: recorded.name(),
                requested: driver.name(),
            });
        }
        let newly_checked = driver == Driver::Overlay && !already_checked;
        if recorded != Some(driver) || newly_checked {
            let txn = snapshotter.db.begin_write().map_err(db_err)?;
            {
                let mut settings = txn.open_table(SETTINGS).map_err(db_err)?;
                settings.insert(DRIVER, driver.code()).map_err(db_err)?;
                if newly_checked && let Some((boot, dev)) = stamp {
                    settings
                        .insert(OVERLAY_CHECKED_BOOT, boot)
                        .map_err(db_err)?;
                    settings.insert(OVERLAY_CHECKED_DEV, dev).map_err(db_err)?;
                }
            }
            txn.commit().map_err(db_err)?;
        }
        snapshotter.driver = driver;
        Ok(snapshotter)
    }

    /// The driver in use.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What [`Snapshotter::open`] repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Creates the active (writable) snapshot `key` on top of the committed snapshot
    /// `parent` (or empty), and returns its mounts.
    pub fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        self.create(Kind::Active, key, parent)
    }

    /// Creates the read-only snapshot `key` of the committed snapshot `parent` (or empty),
    /// and returns its mounts.
    pub fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        self.create(Kind::View, key, parent)
    }

    /// The mounts of an active snapshot or a view.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
        let record = meta::get(&snapshots, key)?.ok_or_else(|| not_found(key))?;
        if record.kind == Kind::Committed {
            return Err(Error::NotMountable {
                key: key.to_owned(),
            });
        }
        let lowers = match &record.parent {
            Some(parent) => self.lowers(&snapshots, parent)?,
            None => Vec::new(),
        };
        Ok(self.mounts_for(record.kind, record.id, &lowers))
    }

    /// Turns the active snapshot `key` into the committed snapshot `name`; `key` is gone
    /// afterwards. Its labels carry over. The caller must have unmounted it.
    pub fn commit(&self, name: &str, key: &str) -> Result<()> {
        validate_key(name)?;
        // Measure the disk usage before taking the write lock of the (shared) database.
        let id = {
            let txn = self.db.begin_read().map_err(db_err)?;
            let snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
            let record = meta::get(&snapshots, key)?.ok_or_else(|| not_found(key))?;
            if record.kind != Kind::Active {
                return Err(Error::NotActive {
                    key: key.to_owned(),
                });
            }
            record.id
        };
        let size = disk_usage(&self.fs_dir(id))?;
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
            let mut children = txn.open_table(CHILDREN).map_err(db_err)?;
            let record = meta::get(&snapshots, key)?.ok_or_else(|| not_found(key))?;
            if record.kind != Kind::Active || record.id != id {
                return Err(Error::NotActive {
                    key: key.to_owned(),
                });
            }
            if meta::get(&snapshots, name)?.is_some() {
                return Err(Error::AlreadyExists {
                    key: name.to_owned(),
                });
            }
            let now = meta::now_nanos();
            let committed = Record {
                kind: Kind::Committed,
                created: now,
                updated: now,
                size,
                ..record
            };
            snapshots.remove(key).map_err(db_err)?;
            snapshots
                .insert(name, meta::encode(name, &committed)?.as_slice())
                .map_err(db_err)?;
            if let Some(parent) = &committed.parent {
                children
                    .remove(child_key(parent, key).as_str())
                    .map_err(db_err)?;
                children
                    .insert(child_key(parent, name).as_str(), ())
                    .map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Removes a snapshot (of any kind). A snapshot that is the parent of others is refused
    /// with [`Error::HasChildren`]. The record goes first; the directory is deleted after
    /// that, and if that deletion fails the directory is left for [`Snapshotter::cleanup`]
    /// (or the next open) to remove. Active snapshots and views must have been unmounted.
    pub fn remove(&self, key: &str) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(db_err)?;
        let record = {
            let mut snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
            let mut children = txn.open_table(CHILDREN).map_err(db_err)?;
            let record = meta::get(&snapshots, key)?.ok_or_else(|| not_found(key))?;
            let kids = meta::children(&children, key)?;
            if !kids.is_empty() {
                return Err(Error::HasChildren {
                    key: key.to_owned(),
                    children: kids,
                });
            }
            snapshots.remove(key).map_err(db_err)?;
            if let Some(parent) = &record.parent {
                children
                    .remove(child_key(parent, key).as_str())
                    .map_err(db_err)?;
            }
            record
        };
        if record.kind == Kind::View {
            // As for their creation: a lost removal of a view leaves a record whose directory
            // is gone, which opening drops.
            let _ = txn.set_durability(redb::Durability::None);
        }
        txn.commit().map_err(db_err)?;
        for id in std::iter::once(record.id).chain(record.flat) {
            // The snapshot is gone; a directory that cannot be deleted now is an orphan that
            // `cleanup` removes later.
            let _ = remove_any(&self.dir.join(id.to_string()));
        }
        Ok(())
    }

    /// What is known about a snapshot.
    pub fn stat(&self, key: &str) -> Result<Info> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
        meta::get(&snapshots, key)?
            .map(|record| record.info(key))
            .ok_or_else(|| not_found(key))
    }

    /// All snapshots, sorted by key.
    pub fn walk(&self) -> Result<Vec<Info>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
        let mut infos = Vec::new();
        for entry in snapshots.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            infos.push(meta::decode(key.value(), value.value())?.info(key.value()));
        }
        Ok(infos)
    }

    /// The disk space (allocated bytes) of the snapshot's own directory: for the overlay
    /// driver its changes against its parent, for the copying driver its whole tree. Measured
    /// now for active snapshots, at commit time for committed ones; views own nothing (0).
    pub fn usage(&self, key: &str) -> Result<u64> {
        let record = {
            let txn = self.db.begin_read().map_err(db_err)?;
            let snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
            meta::get(&snapshots, key)?.ok_or_else(|| not_found(key))?
        };
        match record.kind {
            Kind::Active => disk_usage(&self.fs_dir(record.id)),
            Kind::Committed => Ok(record.size),
            Kind::View => Ok(0),
        }
    }

    /// The directory holding the snapshot's own files: for the overlay driver its upper
    /// directory (its changes against its parent, with overlayfs whiteouts for deletions,
    /// which a differ can read directly), for the copying driver its whole tree.
    pub fn upper_dir(&self, key: &str) -> Result<PathBuf> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
        let record = meta::get(&snapshots, key)?.ok_or_else(|| not_found(key))?;
        Ok(self.fs_dir(record.id))
    }

    /// Changes the labels of a snapshot in one transaction and returns its new info.
    pub fn update_labels(
        &self,
        key: &str,
        change: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<Info> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let info = {
            let mut snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
            let mut record = meta::get(&snapshots, key)?.ok_or_else(|| not_found(key))?;
            change(&mut record.labels);
            record.updated = meta::now_nanos();
            snapshots
                .insert(key, meta::encode(key, &record)?.as_slice())
                .map_err(db_err)?;
            record.info(key)
        };
        txn.commit().map_err(db_err)?;
        Ok(info)
    }

    /// Removes the directories under `<root>/snapshots/` that no record refers to (left by a
    /// removal whose deletion failed) and returns them. Temporary directories of operations
    /// in progress are left alone; [`Snapshotter::open`] removes those too.
    pub fn cleanup(&self) -> Result<Vec<PathBuf>> {
        self.remove_orphans(false).map(|(removed, _)| removed)
    }

    /// The `fs` directory of a snapshot directory id.
    fn fs_dir(&self, id: u64) -> PathBuf {
        self.dir.join(id.to_string()).join("fs")
    }

    /// The `work` directory of a snapshot directory id.
    fn work_dir(&self, id: u64) -> PathBuf {
        self.dir.join(id.to_string()).join("work")
    }

    /// The directories under the snapshot with parent `parent`: for the overlay driver the
    /// `fs` directories of the parent chain, nearest first, ending at the first flattened
    /// one; for the copying driver the parent's tree alone.
    fn lowers<T: ReadableTable<&'static str, &'static [u8]>>(
        &self,
        snapshots: &T,
        parent: &str,
    ) -> Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        let mut next = Some(parent.to_owned());
        while let Some(name) = next {
            let record = meta::get(snapshots, &name)?.ok_or_else(|| Error::Corrupt {
                key: name.clone(),
                reason: "a snapshot's parent has no record".to_owned(),
            })?;
            if self.driver == Driver::Copy {
                return Ok(vec![self.fs_dir(record.id)]);
            }
            if let Some(flat) = record.flat {
                dirs.push(self.fs_dir(flat));
                break;
            }
            dirs.push(self.fs_dir(record.id));
            if dirs.len() > 1_000_000 {
                return Err(Error::Corrupt {
                    key: name,
                    reason: "the parent chain has a cycle".to_owned(),
                });
            }
            next = record.parent;
        }
        Ok(dirs)
    }

    /// The mounts of a snapshot of `kind` with directory `id` over `lowers`.
    fn mounts_for(&self, kind: Kind, id: u64, lowers: &[PathBuf]) -> Vec<Mount> {
        let bind = |dir: &Path, read_only: bool| Mount {
            kind: "bind".to_owned(),
            source: dir.to_string_lossy().into_owned(),
            options: vec![
                if read_only { "ro" } else { "rw" }.to_owned(),
                "rbind".to_owned(),
            ],
        };
        let own = self.fs_dir(id);
        let lower_option = || {
            let joined: Vec<String> = lowers
                .iter()
                .map(|dir| dir.to_string_lossy().into_owned())
                .collect();
            format!("lowerdir={}", joined.join(":"))
        };
        match (self.driver, kind, lowers) {
            (Driver::Copy, Kind::View, [parent, ..]) => vec![bind(parent, true)],
            (_, Kind::View, []) => vec![bind(&own, true)],
            (Driver::Copy, _, _) | (Driver::Overlay, _, []) => vec![bind(&own, false)],
            (Driver::Overlay, Kind::View, [parent]) => vec![bind(parent, true)],
            (Driver::Overlay, Kind::View, _) => {
                let mut options = self.overlay_options.clone();
                options.push(lower_option());
                vec![overlay_mount(options)]
            }
            (Driver::Overlay, _, _) => {
                let mut options = self.overlay_options.clone();
                options.push(format!("workdir={}", self.work_dir(id).to_string_lossy()));
                options.push(format!("upperdir={}", own.to_string_lossy()));
                options.push(lower_option());
                vec![overlay_mount(options)]
            }
        }
    }

    /// Creates an active snapshot or a view.
    fn create(&self, kind: Kind, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        validate_key(key)?;
        if let Some(parent) = parent {
            validate_key(parent)?;
        }
        // Flattening changes the parent's lowers, and a concurrent removal and re-creation of
        // the parent changes what the copying driver copied: both make the transaction start
        // over, a bounded number of times.
        for _ in 0..4 {
            let staged = self.stage(kind, parent)?;
            let mut txn = self.db.begin_write().map_err(db_err)?;
            if kind == Kind::View {
                // Views are short-lived read-only mounts: their records are written without
                // waiting for the disk (a crash that loses one leaves a directory without a
                // record, which opening removes). It fails only with persistent savepoints,
                // which kiln never makes; the transaction then stays durable.
                let _ = txn.set_durability(redb::Durability::None);
            }
            let outcome = {
                let mut snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
                let mut children = txn.open_table(CHILDREN).map_err(db_err)?;
                let mut settings = txn.open_table(SETTINGS).map_err(db_err)?;
                if meta::get(&snapshots, key)?.is_some() {
                    return Err(Error::AlreadyExists {
                        key: key.to_owned(),
                    });
                }
                let (lowers, parent_id) = match parent {
                    Some(parent) => {
                        let record =
                            meta::get(&snapshots, parent)?.ok_or_else(|| not_found(parent))?;
                        if record.kind != Kind::Committed {
                            return Err(Error::ParentNotCommitted {
                                parent: parent.to_owned(),
                            });
                        }
                        (self.lowers(&snapshots, parent)?, Some(record.id))
                    }
                    None => (Vec::new(), None),
                };
                let id = settings
                    .get(NEXT_ID)
                    .map_err(db_err)?
                    .map_or(1, |v| v.value());
                let mounts = self.mounts_for(kind, id, &lowers);
                if staged.copied_from != parent_id
                    && self.driver == Driver::Copy
                    && kind == Kind::Active
                {
                    None
                } else if let Some(too_long) = self.overflow(&mounts, lowers.len()) {
                    if lowers.len() <= 1 {
                        return Err(Error::OptionsTooLong {
                            key: key.to_owned(),
                            len: too_long,
                            max: mount::page_size(),
                        });
                    }
                    Some(Err(()))
                } else {
                    let staged_fs = staged.dir.path().join("fs");
                    if let (Driver::Overlay, Some(top)) = (self.driver, lowers.first()) {
                        // The root of the merged tree takes the upper directory's owner and
                        // mode: give it those of the tree below.
                        copy_root_attributes(top, &staged_fs)?;
                    }
                    let now = meta::now_nanos();
                    let record = Record {
                        id,
                        kind,
                        parent: parent.map(str::to_owned),
                        created: now,
                        updated: now,
                        labels: BTreeMap::new(),
                        size: 0,
                        flat: None,
                    };
                    snapshots
                        .insert(key, meta::encode(key, &record)?.as_slice())
                        .map_err(db_err)?;
                    if let Some(parent) = parent {
                        children
                            .insert(child_key(parent, key).as_str(), ())
                            .map_err(db_err)?;
                    }
                    settings.insert(NEXT_ID, id + 1).map_err(db_err)?;
                    let target = self.dir.join(id.to_string());
                    let temp = staged.dir.keep();
                    fs::rename(&temp, &target).map_err(|e| {
                        let _ = remove_any(&temp);
                        io_err("rename into place", &target)(e)
                    })?;
                    sync_dir(&self.dir).inspect_err(|_| {
                        let _ = remove_any(&target);
                    })?;
                    Some(Ok((mounts, target)))
                }
            };
            match outcome {
                Some(Ok((mounts, target))) => {
                    if let Err(e) = txn.commit() {
                        let _ = remove_any(&target);
                        return Err(db_err(e));
                    }
                    return Ok(mounts);
                }
                Some(Err(())) => {
                    txn.abort().map_err(db_err)?;
                    if let Some(parent) = parent {
                        self.flatten(parent)?;
                    }
                }
                None => txn.abort().map_err(db_err)?,
            }
        }
        Err(Error::Corrupt {
            key: key.to_owned(),
            reason: "the parent kept changing while the snapshot was created".to_owned(),
        })
    }

    /// The length of the first overlay option string that does not fit into a page, or that
    /// stacks too many lower directories.
    fn overflow(&self, mounts: &[Mount], lowers: usize) -> Option<usize> {
        let max = mount::page_size();
        mounts.iter().filter(|m| m.kind == "overlay").find_map(|m| {
            let len = m.data_len();
            (len > max || lowers > MAX_LOWER_DIRS).then_some(len)
        })
    }

    /// Builds the directory of a new snapshot under a temporary name: `fs`, `work` for an
    /// active overlay snapshot, and for an active snapshot of the copying driver a copy of
    /// the parent's tree.
    fn stage(&self, kind: Kind, parent: Option<&str>) -> Result<Staged> {
        let dir = tempfile::Builder::new()
            .prefix("new-")
            .tempdir_in(&self.dir)
            .map_err(io_err("create temporary directory in", &self.dir))?;
        let fs_dir = dir.path().join("fs");
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&fs_dir)
            .map_err(io_err("create directory", &fs_dir))?;
        fs::set_permissions(&fs_dir, fs::Permissions::from_mode(0o755))
            .map_err(io_err("change mode of", &fs_dir))?;
        let mut copied_from = None;
        match (self.driver, kind, parent) {
            (Driver::Overlay, Kind::Active, _) => {
                let work = dir.path().join("work");
                fs::DirBuilder::new()
                    .mode(0o711)
                    .create(&work)
                    .map_err(io_err("create directory", &work))?;
            }
            (Driver::Copy, Kind::Active, Some(parent)) => {
                let record = {
                    let txn = self.db.begin_read().map_err(db_err)?;
                    let snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
                    meta::get(&snapshots, parent)?.ok_or_else(|| not_found(parent))?
                };
                if record.kind != Kind::Committed {
                    return Err(Error::ParentNotCommitted {
                        parent: parent.to_owned(),
                    });
                }
                apply_tree(&self.fs_dir(record.id), &fs_dir, Whiteouts::Copy)?;
                copied_from = Some(record.id);
            }
            _ => {}
        }
        Ok(Staged { dir, copied_from })
    }

    /// Merges the whole chain of the committed snapshot `name` into one directory and records
    /// it as the snapshot's flattened form (see the crate documentation).
    fn flatten(&self, name: &str) -> Result<()> {
        let (id, lowers) = {
            let txn = self.db.begin_read().map_err(db_err)?;
            let snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
            let record = meta::get(&snapshots, name)?.ok_or_else(|| not_found(name))?;
            if record.flat.is_some() {
                return Ok(());
            }
            (record.id, self.lowers(&snapshots, name)?)
        };
        let staged = tempfile::Builder::new()
            .prefix("new-")
            .tempdir_in(&self.dir)
            .map_err(io_err("create temporary directory in", &self.dir))?;
        let merged = staged.path().join("fs");
        fs::create_dir(&merged).map_err(io_err("create directory", &merged))?;
        for layer in lowers.iter().rev() {
            apply_tree(layer, &merged, Whiteouts::Apply)?;
        }

        let txn = self.db.begin_write().map_err(db_err)?;
        let target = {
            let mut snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
            let mut settings = txn.open_table(SETTINGS).map_err(db_err)?;
            let current = meta::get(&snapshots, name)?;
            match current {
                Some(mut record) if record.id == id && record.flat.is_none() => {
                    let flat = settings
                        .get(NEXT_ID)
                        .map_err(db_err)?
                        .map_or(1, |v| v.value());
                    settings.insert(NEXT_ID, flat + 1).map_err(db_err)?;
                    record.flat = Some(flat);
                    record.updated = meta::now_nanos();
                    snapshots
                        .insert(name, meta::encode(name, &record)?.as_slice())
                        .map_err(db_err)?;
                    let target = self.dir.join(flat.to_string());
                    let temp = staged.keep();
                    fs::rename(&temp, &target).map_err(|e| {
                        let _ = remove_any(&temp);
                        io_err("rename into place", &target)(e)
                    })?;
                    sync_dir(&self.dir).inspect_err(|_| {
                        let _ = remove_any(&target);
                    })?;
                    Some(target)
                }
                // Removed, replaced or flattened meanwhile: the staged copy is not needed.
                _ => None,
            }
        };
        match target {
            Some(target) => txn.commit().map_err(|e| {
                let _ = remove_any(&target);
                db_err(e)
            }),
            None => txn.abort().map_err(db_err),
        }
    }

    /// Drops records whose directories are missing (with their descendants), then removes
    /// directories no record refers to.
    fn recover(&self) -> Result<Recovery> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let dropped = {
            let mut snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
            let mut children = txn.open_table(CHILDREN).map_err(db_err)?;
            let mut records: Vec<(String, Record)> = Vec::new();
            for entry in snapshots.iter().map_err(db_err)? {
                let (key, value) = entry.map_err(db_err)?;
                records.push((
                    key.value().to_owned(),
                    meta::decode(key.value(), value.value())?,
                ));
            }
            let names: HashSet<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
            let mut kids: HashMap<&str, Vec<&str>> = HashMap::new();
            let mut queue: VecDeque<&str> = VecDeque::new();
            for (key, record) in &records {
                if let Some(parent) = &record.parent {
                    kids.entry(parent.as_str()).or_default().push(key.as_str());
                }
                let parent_missing = record.parent.as_deref().is_some_and(|p| !names.contains(p));
                if parent_missing || !is_dir(&self.fs_dir(record.id)) {
                    queue.push_back(key.as_str());
                }
            }
            let mut dropped: Vec<String> = Vec::new();
            let mut seen: HashSet<&str> = HashSet::new();
            while let Some(key) = queue.pop_front() {
                if !seen.insert(key) {
                    continue;
                }
                dropped.push(key.to_owned());
                queue.extend(kids.get(key).into_iter().flatten().copied());
            }
            for (key, record) in &records {
                if seen.contains(key.as_str()) {
                    snapshots.remove(key.as_str()).map_err(db_err)?;
                    if let Some(parent) = &record.parent {
                        children
                            .remove(child_key(parent, key).as_str())
                            .map_err(db_err)?;
                    }
                } else if let Some(flat) = record.flat
                    && !is_dir(&self.fs_dir(flat))
                {
                    let repaired = Record {
                        flat: None,
                        ..record.clone()
                    };
                    snapshots
                        .insert(key.as_str(), meta::encode(key, &repaired)?.as_slice())
                        .map_err(db_err)?;
                }
            }
            dropped.sort();
            dropped
        };
        txn.commit().map_err(db_err)?;
        let (removed_directories, unmounted) = self.remove_orphans(true)?;
        Ok(Recovery {
            removed_directories,
            dropped_snapshots: dropped,
            unmounted,
        })
    }

    /// Removes the directories under `<root>/snapshots/` no record refers to; temporary ones
    /// too when `temporary` is set. Runs inside a write transaction, so that no snapshot is
    /// being created meanwhile (directory ids are never reused).
    ///
    /// An orphan may have a mount inside: the test mount of the overlayfs check, left by a
    /// process killed during [`Snapshotter::open`]. It is unmounted first (a directory with a
    /// mount inside cannot be removed, and must not be emptied through the mount); the mount
    /// points are returned with the removed directories.
    fn remove_orphans(&self, temporary: bool) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let orphans = {
            let snapshots = txn.open_table(SNAPSHOTS).map_err(db_err)?;
            let mut used: HashSet<String> = HashSet::new();
            for entry in snapshots.iter().map_err(db_err)? {
                let (key, value) = entry.map_err(db_err)?;
                let record = meta::decode(key.value(), value.value())?;
                used.insert(record.id.to_string());
                if let Some(flat) = record.flat {
                    used.insert(flat.to_string());
                }
            }
            let mut orphans = Vec::new();
            let entries = fs::read_dir(&self.dir).map_err(io_err("read directory", &self.dir))?;
            for entry in entries {
                let entry = entry.map_err(io_err("read directory", &self.dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_id = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
                if used.contains(&name) || (!is_id && !temporary) {
                    continue;
                }
                orphans.push(entry.path());
            }
            orphans
        };
        txn.abort().map_err(db_err)?;
        let mut unmounted = Vec::new();
        if !orphans.is_empty() {
            // The kernel lists mount points by their resolved paths.
            let dir = fs::canonicalize(&self.dir).map_err(io_err("resolve", &self.dir))?;
            for orphan in &orphans {
                if let Some(name) = orphan.file_name() {
                    unmounted.extend(mount::unmount_under(&dir.join(name))?);
                }
            }
        }
        for orphan in &orphans {
            remove_any(orphan)?;
        }
        if !orphans.is_empty() {
            sync_dir(&self.dir)?;
        }
        let mut orphans = orphans;
        orphans.sort();
        Ok((orphans, unmounted))
    }
}

/// An overlay mount with these options.
fn overlay_mount(options: Vec<String>) -> Mount {
    Mount {
        kind: "overlay".to_owned(),
        source: "overlay".to_owned(),
        options,
    }
}

/// Gives `to` the owner and mode of `from`.
fn copy_root_attributes(from: &Path, to: &Path) -> Result<()> {
    let meta = fs::metadata(from).map_err(io_err("stat", from))?;
    rustix::fs::chown(
        to,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
    )
    .map_err(|e| io_err("change owner of", to)(e.into()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(io_err("change mode of", to))
}

/// Whether `path` is a directory (not following symlinks).
fn is_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

fn not_found(key: &str) -> Error {
    Error::NotFound {
        key: key.to_owned(),
    }
}

/// Keys and names must be non-empty and free of NUL (the child index separates with NUL).
/// What a passed overlay check depends on: the running kernel (the first 64 bits of its boot
/// id) and the file system under `dir` (its device number). `None` when either cannot be read
/// (the check then runs on every open).
fn overlay_stamp(dir: &Path) -> Option<(u64, u64)> {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let hex: String = boot
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(16)
        .collect();
    let boot = u64::from_str_radix(&hex, 16).ok()?;
    let dev = fs::metadata(dir).ok()?.dev();
    Some((boot, dev))
}

fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.contains('\0') {
        return Err(Error::InvalidKey {
            key: key.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The overlay check's stamp is recorded once it passed, so that the next open skips it;
    /// a stamp from another boot or file system does not count.
    #[test]
    fn a_passed_overlay_check_is_recorded_for_the_boot_and_file_system() {
        let dir = tempfile::Builder::new()
            .tempdir_in("/var/tmp")
            .expect("temp dir");
        let db = Arc::new(Database::create(dir.path().join("meta.redb")).expect("database"));
        let root = dir.path().join("root");
        let opened = Snapshotter::open(&root, Arc::clone(&db), DriverChoice::Auto).expect("open");
        let recorded = |db: &Database| {
            let txn = db.begin_read().expect("read");
            let settings = txn.open_table(SETTINGS).expect("settings");
            let get = |key| settings.get(key).expect("get").map(|v| v.value());
            (get(OVERLAY_CHECKED_BOOT), get(OVERLAY_CHECKED_DEV))
        };
        let stamp = overlay_stamp(&root.join("snapshots")).expect("stamp");
        match opened.driver() {
            Driver::Overlay => assert_eq!(recorded(&db), (Some(stamp.0), Some(stamp.1))),
            Driver::Copy => assert_eq!(recorded(&db), (None, None)),
        }
        drop(opened);
        // A stamp of another boot: the check runs again and records this boot.
        {
            let txn = db.begin_write().expect("write");
            txn.open_table(SETTINGS)
                .expect("settings")
                .insert(OVERLAY_CHECKED_BOOT, stamp.0 ^ 1)
                .expect("insert");
            txn.commit().expect("commit");
        }
        let again = Snapshotter::open(&root, Arc::clone(&db), DriverChoice::Auto).expect("open");
        if again.driver() == Driver::Overlay {
            assert_eq!(recorded(&db), (Some(stamp.0), Some(stamp.1)));
        }
    }
}
