//! The crate's error type.
//!
//! Paths in messages are always paths *inside* the root the operation works on (`/etc/passwd`,
//! not the host location of the snapshot), the way BuildKit strips the mount point from its
//! errors: the person reading the message wrote the Dockerfile, not the snapshotter.

use std::io;
use std::path::PathBuf;

/// A file action failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system call failed on a path inside a root.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`open`, `mkdir`, `copy`...).
        op: &'static str,
        /// The path inside the root.
        path: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The root directory itself could not be opened.
    #[error("open root directory {path}: {source}")]
    Root {
        /// The host path of the root.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A source wildcard matched nothing and empty matches are not allowed.
    #[error("{path} not found")]
    NoMatch {
        /// The source pattern.
        path: String,
    },
    /// The destination's parent directory is missing and the action does not create it.
    #[error("failed to stat {path}: parent directory {parent} does not exist")]
    DestParentMissing {
        /// The destination as the action gives it.
        path: String,
        /// The missing directory, inside the root.
        parent: String,
    },
    /// A directory would have to be created where something else exists.
    #[error("cannot copy to non-directory: {path}")]
    NotADirectory {
        /// The path inside the destination root.
        path: String,
    },
    /// A file would replace a directory.
    #[error("cannot replace to directory {path} with file")]
    ReplaceDirectory {
        /// The path inside the destination root.
        path: String,
    },
    /// Symbolic links nest too deeply (or loop).
    #[error("too many levels of symbolic links resolving {path}")]
    TooManyLinks {
        /// The path being resolved.
        path: String,
    },
    /// A `--chmod` value could not be parsed.
    #[error("invalid mode {mode:?}: {reason}")]
    InvalidMode {
        /// The mode as given.
        mode: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Include or exclude patterns are malformed or fail to match.
    #[error("invalid {kind} patterns {patterns:?}: {source}")]
    Patterns {
        /// `include` or `exclude`.
        kind: &'static str,
        /// The patterns as given.
        patterns: Vec<String>,
        /// What the matcher reported.
        #[source]
        source: kiln_dockerignore::Error,
    },
    /// An archive entry names a path outside the extraction root.
    #[error("archive path {path:?} is outside extraction root")]
    ArchiveEscape {
        /// The entry name as the archive gives it.
        path: String,
    },
    /// A hard link in an archive points at the extraction root itself.
    #[error("archive hardlink {path:?} targets extraction root")]
    ArchiveHardlinkToRoot {
        /// The entry name.
        path: String,
    },
    /// An archive entry has a type that cannot be extracted.
    #[error("unsupported tar entry {path:?} type {kind}")]
    ArchiveEntryType {
        /// The entry name.
        path: String,
        /// The tar type flag.
        kind: u8,
    },
    /// An archive could not be read (corrupt or truncated data, decompression failure).
    #[error("reading archive {path}: {source}")]
    Archive {
        /// The archive, inside the source root.
        path: String,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// An extended attribute from an archive could not be set.
    #[error("failed to set xattr {key:?} on {path}: {source}")]
    Xattr {
        /// The attribute name.
        key: String,
        /// The path inside the destination root.
        path: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// `rm` was asked to remove the root itself.
    #[error("rm: invalid empty path {path:?}")]
    RemoveRoot {
        /// The path as given.
        path: String,
    },
    /// A source has a file type that cannot be copied.
    #[error("unsupported file type {mode:#o} of {path}")]
    UnsupportedType {
        /// The path inside the source root.
        path: String,
        /// The raw `st_mode`.
        mode: u32,
    },
    /// A [`crate::UserLookup`] implementation failed.
    #[error("resolving owner: {0}")]
    Lookup(String),
}

impl Error {
    /// An [`Error::Io`] from a system error number.
    pub(crate) fn io(op: &'static str, path: impl Into<String>, errno: rustix::io::Errno) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source: io::Error::from(errno),
        }
    }

    /// An [`Error::Io`] from a standard I/O error.
    pub(crate) fn std_io(op: &'static str, path: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The system error number behind an [`Error::Io`], if any.
    pub(crate) fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
