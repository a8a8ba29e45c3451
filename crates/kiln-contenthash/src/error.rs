//! The crate's error type.

use std::io;
use std::path::PathBuf;

use kiln_gostd::strconv::quote;

/// Computing a checksum failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The selected path does not exist inside the root (BuildKit's message: the cleaned,
    /// absolute selector in Go quotes, then `: not found`).
    #[error("{}: not found", quote(path))]
    NotFound {
        /// The selector, cleaned and made absolute (`/src/main.rs`).
        path: String,
    },
    /// The root given to a [`crate::Hasher`] method is not a directory.
    #[error("root {} is not a directory", path.display())]
    RootNotDirectory {
        /// The root as given.
        path: PathBuf,
    },
    /// Resolving a path met more symbolic links than allowed (a loop, most likely).
    #[error("too many levels of symbolic links resolving {}", quote(path))]
    TooManyLinks {
        /// The path being resolved.
        path: String,
    },
    /// A wildcard selector that Go's `path.Match` calls malformed.
    #[error("syntax error in pattern {}", quote(selector))]
    BadSelector {
        /// The selector as given.
        selector: String,
    },
    /// An include, exclude or `.dockerignore` pattern is malformed.
    #[error("invalid {kind} patterns: {source}")]
    Pattern {
        /// `include` or `exclude`.
        kind: &'static str,
        /// What the matcher said.
        #[source]
        source: kiln_dockerignore::Error,
    },
    /// A file system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation (`lstat`, `open`, `read`, `readdir`, `readlink`, `listxattr`…).
        op: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The stat cache's database failed.
    #[error("stat cache database: {0}")]
    Database(#[source] Box<redb::Error>),
    /// A hashing thread ended without a result (it panicked).
    #[error("a file hashing thread stopped unexpectedly")]
    Worker,
}

/// Converts any redb error into ours.
pub(crate) fn db_err(e: impl Into<redb::Error>) -> Error {
    Error::Database(Box::new(e.into()))
}

/// An [`Error::Io`] for `op` on `path`.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
