//! Errors of the progress displays.

/// What can go wrong when setting up a progress display.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A progress mode that does not exist (`--progress` or `BUILDKIT_PROGRESS`).
    #[error("invalid progress mode {value:?}: valid values are auto, plain, tty, rawjson, quiet")]
    InvalidMode {
        /// The value given.
        value: String,
    },
    /// `tty` was asked for but the output is not a terminal.
    #[error("progress mode tty needs a terminal: the output is not one")]
    NotATerminal,
    /// The thread that renders the progress could not be started.
    #[error("starting the progress render thread")]
    Spawn(#[source] std::io::Error),
}
