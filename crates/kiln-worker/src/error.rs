//! The worker's errors.

use std::path::PathBuf;

/// Why an op or the worker failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A storage error (content store).
    #[error(transparent)]
    Content(#[from] kiln_content::Error),
    /// A storage error (snapshots).
    #[error(transparent)]
    Snapshot(#[from] kiln_snapshot::Error),
    /// A mount failed.
    #[error(transparent)]
    Mount(#[from] kiln_snapshot::MountError),
    /// A registry error.
    #[error(transparent)]
    Registry(#[from] kiln_registry::RegistryError),
    /// A layer could not be applied or written.
    #[error(transparent)]
    Diff(#[from] kiln_diff::Error),
    /// The container runtime failed.
    #[error(transparent)]
    Executor(#[from] kiln_executor::Error),
    /// A file operation failed.
    #[error(transparent)]
    File(#[from] kiln_fileop::Error),
    /// A checksum could not be computed.
    #[error(transparent)]
    ContentHash(#[from] kiln_contenthash::Error),
    /// The build graph is invalid.
    #[error(transparent)]
    Llb(#[from] kiln_llb::Error),
    /// The solver failed.
    #[error(transparent)]
    Solve(#[from] kiln_solver::SolveError),
    /// The metadata database failed.
    #[error("metadata database {path}: {message}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A `RUN` step failed.
    #[error("process {command:?} did not complete successfully: exit code: {code}")]
    ProcessFailed {
        /// The command, as BuildKit shows it (`/bin/sh -c make`).
        command: String,
        /// Its exit code.
        code: i32,
    },
    /// A build needs a secret the client did not provide (BuildKit's wording).
    #[error("secret {0}: not found")]
    SecretNotFound(String),
    /// An op needs an entitlement the build was not granted (`network.host`,
    /// `security.insecure`), as BuildKit words it.
    #[error("{0} is not allowed")]
    NotAllowed(&'static str),
    /// An HTTP source failed (BuildKit's messages: `digest mismatch …`, `invalid response
    /// status …`).
    #[error("{0}")]
    Http(String),
    /// A git source failed (BuildKit's messages: `failed to fetch remote …`).
    #[error("{0}")]
    Git(String),
    /// Something the worker does not support (yet).
    #[error("{0}")]
    Unsupported(String),
    /// The op is malformed.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The worker's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
