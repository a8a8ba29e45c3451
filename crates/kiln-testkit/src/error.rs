//! The one error type of the fixtures.

use std::io;
use std::path::PathBuf;

/// Why a fixture could not be set up.
///
/// Every variant names the tool, file or process involved, so that a failing test says what to
/// fix (a missing Debian package, a port clash, a tool that rejected our layout).
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A program the fixture runs is not installed.
    #[error("{program} is missing: install the Debian package {package} (scripts/prereqs.sh does)")]
    MissingTool {
        /// The program's path or name.
        program: String,
        /// The Debian package that provides it.
        package: String,
    },
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`writing`, `reading`, `creating directory`, ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The registry process did not come up.
    #[error("the test registry did not start: {message}")]
    RegistryStart {
        /// What went wrong, with the end of the registry's log when there is one.
        message: String,
    },
    /// A command exited with a failure.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The command line, as a user could run it again.
        command: String,
        /// The exit status.
        status: String,
        /// What the command wrote to its standard error.
        stderr: String,
    },
    /// A layer entry or a layout is not what the builder accepts.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// The kind of thing (`tar entry path`, `image layout`, `reference`, ...).
        what: &'static str,
        /// Which one, and why.
        message: String,
    },
    /// A cached fixture failed to build earlier in this process.
    #[error("fixture {name} could not be built: {message}")]
    Fixture {
        /// The fixture.
        name: &'static str,
        /// The error it failed with the first time.
        message: String,
    },
}

/// The result type of the fixtures.
pub type Result<T> = std::result::Result<T, TestkitError>;

/// Wraps an I/O error with the action and the path it concerns.
pub(crate) fn io_error(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> TestkitError {
    let path = path.into();
    move |source| TestkitError::Io {
        action,
        path,
        source,
    }
}
