//! The errors of the snapshotter and of the mount helpers.

use std::io;
use std::path::PathBuf;

/// Why a mount helper failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// `mount(2)` failed.
    #[error("mount {kind} {device} on {target}: {errno}")]
    Mount {
        /// The mount type (`overlay`, `bind`).
        kind: String,
        /// The mount source.
        device: String,
        /// The mount point.
        target: PathBuf,
        /// The error the kernel returned.
        errno: io::Error,
    },
    /// `umount2(2)` failed.
    #[error("unmount {target}: {errno}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The error the kernel returned.
        errno: io::Error,
    },
    /// The options do not fit into the single page `mount(2)` accepts.
    #[error(
        "options of the {kind} mount on {target} are {len} bytes, over the {max}-byte limit of mount(2)"
    )]
    OptionsTooLong {
        /// The mount type.
        kind: String,
        /// The mount point.
        target: PathBuf,
        /// The length of the option string, with its terminating NUL.
        len: usize,
        /// The limit (the page size).
        max: usize,
    },
    /// A temporary mount point could not be created or removed.
    #[error("temporary mount point {path}: {errno}")]
    TempDir {
        /// The directory (or the parent it was to be created in).
        path: PathBuf,
        /// The error.
        errno: io::Error,
    },
    /// The mount table (`/proc/self/mountinfo`) could not be read.
    #[error("read the mount table {path}: {errno}")]
    MountTable {
        /// The file read.
        path: PathBuf,
        /// The error.
        errno: io::Error,
    },
}

/// Why a snapshotter operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation on a path of the snapshotter failed.
    #[error("snapshotter: {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The metadata database failed.
    #[error("snapshot metadata database: {0}")]
    Database(#[from] Box<redb::Error>),
    /// A metadata record cannot be decoded.
    #[error("snapshot metadata of {key:?} is corrupt: {reason}")]
    Corrupt {
        /// The snapshot key of the record.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No snapshot has this key or name.
    #[error("snapshot {key:?} not found")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// A snapshot with this key or name exists already.
    #[error("snapshot {key:?} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// Keys must be non-empty and free of NUL characters.
    #[error("invalid snapshot key {key:?}: keys must be non-empty and must not contain NUL")]
    InvalidKey {
        /// The key.
        key: String,
    },
    /// Only committed snapshots can be parents.
    #[error("parent {parent:?} is not a committed snapshot")]
    ParentNotCommitted {
        /// The parent asked for.
        parent: String,
    },
    /// Only active snapshots can be committed.
    #[error("snapshot {key:?} is not active")]
    NotActive {
        /// The key.
        key: String,
    },
    /// Committed snapshots have no mounts of their own: mount a view of them.
    #[error("snapshot {key:?} is committed: only active snapshots and views have mounts")]
    NotMountable {
        /// The key.
        key: String,
    },
    /// A snapshot that is the parent of others cannot be removed.
    #[error("cannot remove snapshot {key:?}: it is the parent of {children:?}")]
    HasChildren {
        /// The key.
        key: String,
        /// The snapshots that have it as their parent.
        children: Vec<String>,
    },
    /// The overlay driver was asked for but overlayfs does not work under the root.
    #[error("overlayfs is unavailable under {root}: {reason}")]
    OverlayUnavailable {
        /// The root of the snapshotter.
        root: PathBuf,
        /// What the test mount said.
        reason: String,
    },
    /// The store holds snapshots of another driver than the one asked for.
    #[error(
        "snapshots under {root} were made by the {recorded} driver, not the {requested} driver"
    )]
    DriverMismatch {
        /// The root of the snapshotter.
        root: PathBuf,
        /// The driver recorded in the metadata.
        recorded: &'static str,
        /// The driver asked for.
        requested: &'static str,
    },
    /// Even a flattened parent chain gives overlay options too long for `mount(2)` (the root
    /// path is too long).
    #[error(
        "overlay options for snapshot {key:?} are {len} bytes, over the {max}-byte limit of mount(2)"
    )]
    OptionsTooLong {
        /// The key.
        key: String,
        /// The length of the options, with the terminating NUL.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Copying or merging a tree failed.
    #[error("copy {from} to {to}: {reason}")]
    Copy {
        /// The source path.
        from: PathBuf,
        /// The destination path.
        to: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A mount helper failed.
    #[error(transparent)]
    Mount(#[from] MountError),
}

/// The result type of the snapshotter.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches the action and path to an IO error.
pub(crate) fn io_err(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// Converts any redb error into ours.
pub(crate) fn db_err(e: impl Into<redb::Error>) -> Error {
    Error::Database(Box::new(e.into()))
}
