//! The writers' errors.

use std::path::PathBuf;

use kiln_oci::Digest;

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A blob the image needs is not in the content store (or cannot be read).
    #[error("blob {digest}: {source}")]
    Blob {
        /// The blob.
        digest: Digest,
        /// The store's error.
        source: kiln_content::Error,
    },
    /// A blob in the store does not have the size its descriptor says.
    #[error("blob {digest} has {actual} bytes, its descriptor says {expected}")]
    BlobSize {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The size in the store.
        actual: u64,
    },
    /// A digest that is not sha256 (an OCI layout names blobs by algorithm; kiln only writes
    /// sha256).
    #[error("blob {0}: only sha256 digests can be written to an image layout")]
    Algorithm(Digest),
    /// Reading a blob or writing the output failed.
    #[error("{action} {what}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what (a path or a tar entry name).
        what: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A JSON document could not be serialized.
    #[error("serializing {what}: {source}")]
    Json {
        /// Which document.
        what: &'static str,
        /// The error.
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        what: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            action,
            what: what.into(),
            source,
        }
    }
}

/// The writers' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
