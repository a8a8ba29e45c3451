//! The errors of the executor.

use std::path::PathBuf;

/// Everything that can go wrong while preparing, running or cleaning up a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable OCI runtime was found; `tried` says, for each candidate, why it was rejected.
    #[error("no working OCI runtime on this host: {tried}")]
    NoRuntime {
        /// One `name: reason` entry per candidate, joined with `; `.
        tried: String,
    },
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`create bundle directory`, `read`, ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime binary could not be started.
    #[error("start {runtime}: {source}")]
    Spawn {
        /// The runtime binary.
        runtime: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A field of the [`crate::RunSpec`] is not acceptable.
    #[error("invalid run spec: {field}: {reason}")]
    InvalidSpec {
        /// The field (`cwd`, `args`, `mounts[2].dest`, ...).
        field: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The user of the process could not be resolved in the root filesystem.
    #[error("unable to resolve user {user:?}: {reason}")]
    User {
        /// The user as given (`name`, `uid`, `name:group`, ...).
        user: String,
        /// Why it failed (`no matching entries in passwd file`, ...).
        reason: String,
    },
    /// The runtime configuration could not be built.
    #[error("build OCI runtime config: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    /// The runtime configuration could not be serialised.
    #[error("serialise OCI runtime config: {0}")]
    Json(#[from] serde_json::Error),
    /// The runtime failed before or instead of running the process (its own error, not the
    /// process's exit code).
    #[error("{runtime} failed to run container {id}: {message}")]
    Runtime {
        /// The runtime (`runc`, `crun`).
        runtime: String,
        /// The container id.
        id: String,
        /// The runtime's own error message.
        message: String,
    },
    /// The run was cancelled; the container was killed and removed.
    #[error("run cancelled (container {id:?})")]
    Cancelled {
        /// The container id (empty when the run was cancelled before a container was made).
        id: String,
    },
    /// A background task of the executor panicked or was aborted.
    #[error("executor task failed: {0}")]
    Task(String),
}

impl Error {
    /// An [`Error::Io`] for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// An [`Error::InvalidSpec`].
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidSpec {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
