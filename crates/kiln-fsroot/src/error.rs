//! The crate's error type.

use std::ffi::OsString;
use std::io;

use rustix::io::Errno;

use crate::InPath;

/// A path could not be resolved inside its root.
///
/// Paths are inside the root (`/etc/passwd`, not the host location of the root): callers know
/// the root and add it to their own messages where it helps.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed on an entry inside the root.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The call: `lstat`, `readlink` or `open`.
        op: &'static str,
        /// The entry it was made on.
        path: InPath,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// More symbolic links than [`Options::max_links`](crate::Options::max_links) (a loop,
    /// most likely).
    #[error("too many levels of symbolic links resolving {path:?}")]
    TooManyLinks {
        /// The path being resolved, as given.
        path: String,
    },
    /// A component that is neither a directory nor a link to one has something below it.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The entry that is not a directory.
        path: InPath,
        /// The name that was to be looked up below it (`None` when the path had to end in a
        /// directory and this was its last component).
        next: Option<OsString>,
    },
    /// A component does not exist and the options say to fail.
    #[error("{} does not exist", path.display())]
    NotFound {
        /// The missing entry.
        path: InPath,
    },
    /// A `..` would have climbed above the root and the options say to fail.
    #[error("{path:?} leads outside the root")]
    Escape {
        /// The path being resolved, as given.
        path: String,
    },
    /// The caller's [`OnMissing`](crate::OnMissing) hook failed.
    #[error("fill in {}: {source}", path.display())]
    Missing {
        /// The missing entry.
        path: InPath,
        /// What the hook reported.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The error as one system call resolving the whole path would report it: the system
    /// error itself for [`Error::Io`] and [`Error::Missing`], otherwise `ELOOP`, `ENOTDIR`,
    /// `ENOENT`, or `EXDEV` (what `openat2` with `RESOLVE_BENEATH` reports for an escape).
    pub fn into_io(self) -> io::Error {
        match self {
            Error::Io { source, .. } | Error::Missing { source, .. } => source,
            Error::TooManyLinks { .. } => Errno::LOOP.into(),
            Error::NotADirectory { .. } => Errno::NOTDIR.into(),
            Error::NotFound { .. } => Errno::NOENT.into(),
            Error::Escape { .. } => Errno::XDEV.into(),
        }
    }
}
