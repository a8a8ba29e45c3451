//! Fixtures shared by the snapshotter tests: a snapshotter in a temporary directory, changes
//! applied through real mounts, and listings of mounted trees.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use kiln_snapshot::{DriverChoice, Snapshotter, with_temp_mount};

/// The tests mount filesystems: they need root, and fail (not skip) without it.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the snapshotter tests mount filesystems and must run as root"
    );
}

/// A snapshotter in a temporary directory under `/var/tmp` (a real disk filesystem, where
/// overlayfs works), with its database.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub db: Arc<redb::Database>,
    pub snapshotter: Snapshotter,
}

impl Fixture {
    pub fn new(choice: DriverChoice) -> Fixture {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("kiln-snapshot-")
            .tempdir_in("/var/tmp")
            .expect("temporary directory");
        Fixture::in_dir(dir, choice)
    }

    pub fn in_dir(dir: tempfile::TempDir, choice: DriverChoice) -> Fixture {
        let db = Arc::new(redb::Database::create(dir.path().join("meta.redb")).expect("database"));
        let snapshotter = Snapshotter::open(dir.path().join("root"), db.clone(), choice)
            .expect("open snapshotter");
        Fixture {
            dir,
            db,
            snapshotter,
        }
    }

    /// Opens the snapshotter again on the same root and database, as a new process would.
    pub fn reopen(self, choice: DriverChoice) -> Fixture {
        let Fixture {
            dir,
            db,
            snapshotter,
        } = self;
        drop(snapshotter);
        drop(db);
        Fixture::in_dir(dir, choice)
    }

    /// Prepares `key` on `parent`, applies `changes` through its mounts and commits it as
    /// `name`.
    pub fn layer(&self, name: &str, parent: Option<&str>, changes: &[Change]) {
        let key = format!("{name}-active");
        let mounts = self.snapshotter.prepare(&key, parent).expect("prepare");
        with_temp_mount(&mounts, |root| {
            for change in changes {
                change.apply(root);
            }
        })
        .expect("mount the active snapshot");
        self.snapshotter.commit(name, &key).expect("commit");
    }

    /// The listing of a view of `parent`.
    pub fn view_listing(&self, key: &str, parent: Option<&str>) -> Vec<String> {
        let mounts = self.snapshotter.view(key, parent).expect("view");
        let listing = with_temp_mount(&mounts, listing).expect("mount the view");
        self.snapshotter.remove(key).expect("remove the view");
        listing
    }
}

/// A change made through the mount of an active snapshot.
#[derive(Debug, Clone)]
pub enum Change {
    /// Writes a file (creating its parent directories).
    Write(&'static str, &'static str),
    /// Removes a file or a whole directory.
    Remove(&'static str),
    /// Creates a directory (and its parents).
    Mkdir(&'static str),
    /// Creates a symlink `path` → `target`.
    Symlink(&'static str, &'static str),
    /// Changes the mode of a path.
    Chmod(&'static str, u32),
    /// Anything else.
    Custom(fn(&Path)),
}

impl Change {
    pub fn apply(&self, root: &Path) {
        let at = |path: &str| root.join(path);
        match self {
            Change::Write(path, content) => {
                if let Some(parent) = at(path).parent() {
                    fs::create_dir_all(parent).expect("create parents");
                }
                fs::write(at(path), content).expect("write");
            }
            Change::Remove(path) => {
                let target = at(path);
                if fs::symlink_metadata(&target).expect("stat").is_dir() {
                    fs::remove_dir_all(target).expect("remove directory");
                } else {
                    fs::remove_file(target).expect("remove file");
                }
            }
            Change::Mkdir(path) => fs::create_dir_all(at(path)).expect("mkdir"),
            Change::Symlink(path, target) => {
                std::os::unix::fs::symlink(target, at(path)).expect("symlink")
            }
            Change::Chmod(path, mode) => {
                fs::set_permissions(at(path), fs::Permissions::from_mode(*mode)).expect("chmod")
            }
            Change::Custom(f) => f(root),
        }
    }
}

/// One line per entry of the tree at `root` (sorted): path, type, mode, owner, and the
/// content, link target or device number; hard links name the first path of their inode;
/// user and security xattrs are listed. Timestamps and inode numbers are left out.
pub fn listing(root: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut inodes: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.expect("walk");
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("relative")
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(path).expect("stat");
        let kind = meta.file_type();
        let what = if kind.is_dir() {
            "dir".to_owned()
        } else if kind.is_symlink() {
            format!(
                "symlink -> {}",
                fs::read_link(path).expect("readlink").display()
            )
        } else if kind.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = inodes.get(&meta.ino()) {
                    lines.push(format!("{rel} hardlink to {first}"));
                    continue;
                }
                inodes.insert(meta.ino(), rel.clone());
            }
            format!(
                "file {:?}",
                fs::read_to_string(path).unwrap_or_else(|_| "<binary>".to_owned())
            )
        } else if kind.is_char_device() {
            format!(
                "char {}:{}",
                rustix::fs::major(meta.rdev()),
                rustix::fs::minor(meta.rdev())
            )
        } else if kind.is_block_device() {
            format!(
                "block {}:{}",
                rustix::fs::major(meta.rdev()),
                rustix::fs::minor(meta.rdev())
            )
        } else if kind.is_fifo() {
            "fifo".to_owned()
        } else {
            "socket".to_owned()
        };
        let mode = if kind.is_symlink() {
            String::new()
        } else {
            format!(" {:o}", meta.mode() & 0o7777)
        };
        let mut xattrs: Vec<String> = xattr::list(path)
            .map(|names| {
                names
                    .filter_map(|n| n.into_string().ok())
                    .filter(|n| n.starts_with("user.") || n.starts_with("security.capability"))
                    .map(|n| {
                        let value = xattr::get(path, &n).ok().flatten().unwrap_or_default();
                        format!(" {n}={}", String::from_utf8_lossy(&value))
                    })
                    .collect()
            })
            .unwrap_or_default();
        xattrs.sort();
        lines.push(format!(
            "{rel} {what}{mode} {}:{}{}",
            meta.uid(),
            meta.gid(),
            xattrs.concat()
        ));
    }
    lines
}
