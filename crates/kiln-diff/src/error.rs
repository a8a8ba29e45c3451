//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while applying, diffing or compressing a layer.
///
/// Messages name the archive entry or the file involved; the underlying system error is the
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The layer stream could not be read (or decompressed).
    #[error("cannot read the layer stream")]
    Read(#[source] io::Error),
    /// The output stream could not be written.
    #[error("cannot write the layer stream")]
    Write(#[source] io::Error),
    /// The compressor failed (an internal error of the compression library, or one of its
    /// worker threads stopped).
    #[error("cannot compress the layer: {0}")]
    Compress(String),
    /// The layer is compressed with something that is not an OCI layer format.
    #[error("layer is compressed with {0}, which is not an OCI layer format (gzip, zstd or none)")]
    UnsupportedCompression(&'static str),
    /// The tar stream is malformed.
    #[error("malformed tar stream")]
    Tar(#[source] io::Error),
    /// A system call on an archive entry failed while applying a layer.
    #[error("cannot {op} {entry:?} in {dest}")]
    Apply {
        /// What was being done (`create file`, `set owner of`, ...).
        op: &'static str,
        /// The entry's path in the archive.
        entry: String,
        /// The destination directory.
        dest: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// An entry type the applier does not handle (for example a GNU volume header).
    #[error("unsupported tar entry type {kind:?} for {entry:?}")]
    UnsupportedEntry {
        /// The raw type flag.
        kind: char,
        /// The entry's path in the archive.
        entry: String,
    },
    /// A whiteout whose name does not name a sibling (`.wh.`, `.wh..`, `.wh...`).
    #[error("invalid whiteout {entry:?}")]
    InvalidWhiteout {
        /// The entry's path in the archive.
        entry: String,
    },
    /// A hard link whose target is the root directory or cannot be linked.
    #[error("invalid hard link {entry:?} to {target:?}")]
    InvalidLink {
        /// The entry's path in the archive.
        entry: String,
        /// The link target as written in the archive.
        target: String,
    },
    /// A file system operation failed while reading a snapshot for a diff.
    #[error("cannot {op} {path}")]
    Fs {
        /// What was being done (`read directory`, `stat`, ...).
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A file changed size while it was being archived.
    #[error("{path} changed while it was being archived")]
    Changed {
        /// The file involved.
        path: PathBuf,
    },
    /// A header field cannot be encoded (for example a PAX header over 1 MiB of xattrs).
    #[error("cannot encode the tar header of {entry:?}: {why}")]
    Header {
        /// The entry's path in the archive.
        entry: String,
        /// What does not fit.
        why: &'static str,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Renders raw path bytes for an error message.
pub(crate) fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
