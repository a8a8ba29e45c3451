//! The errors of the content store.

use std::io;
use std::path::PathBuf;

use kiln_oci::Digest;

/// Why a content store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation on a path of the store failed.
    #[error("content store: {action} {path}: {source}")]
    Io {
        /// What was being done (`create directory`, `rename`, ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// No blob with this digest is in the store.
    #[error("blob {digest} not found")]
    NotFound {
        /// The digest asked for.
        digest: Digest,
    },
    /// The written content does not hash to the digest the writer was told to expect; nothing
    /// was committed.
    #[error("unexpected commit digest {actual}, expected {expected}")]
    DigestMismatch {
        /// The digest the writer was told to expect.
        expected: Digest,
        /// The digest of what was written.
        actual: Digest,
    },
    /// The written content does not have the size the writer was told to expect; nothing was
    /// committed.
    #[error("unexpected commit size {actual} for {digest}, expected {expected}")]
    SizeMismatch {
        /// The digest the writer was told to expect.
        digest: Digest,
        /// The size the writer was told to expect.
        expected: u64,
        /// The number of bytes written (at least, when the write overflowed the expectation).
        actual: u64,
    },
    /// A stored blob no longer hashes to its digest (found by a verifying read).
    #[error("blob {digest} is corrupt: its content hashes to {actual}")]
    Corrupt {
        /// The digest the blob is stored under.
        digest: Digest,
        /// The digest of its content.
        actual: Digest,
    },
    /// The store only ingests `sha256` content.
    #[error(
        "unsupported digest algorithm {algorithm:?} in {digest}: the content store ingests sha256 only"
    )]
    UnsupportedAlgorithm {
        /// The algorithm of the digest.
        algorithm: String,
        /// The digest.
        digest: Digest,
    },
}

/// The result type of the content store.
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
