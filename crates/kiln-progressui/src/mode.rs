//! The progress modes (`--progress`) and how `auto` is resolved.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The name of the environment variable that buildx reads for the default progress mode.
///
/// The library never reads it: the caller passes its value to
/// [`ProgressMode::with_env_default`].
pub const PROGRESS_ENV: &str = "BUILDKIT_PROGRESS";

/// How the progress of a build is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProgressMode {
    /// `tty` when the output is a terminal (that is not `TERM=dumb`), `plain` otherwise.
    #[default]
    Auto,
    /// BuildKit's plain text: numbered steps, their logs, `DONE`, `CACHED`, `ERROR`.
    Plain,
    /// buildx's redrawn display: a header with the elapsed time and one line per step.
    Tty,
    /// One JSON `SolveStatus` object per line, for programs.
    RawJson,
    /// Nothing at all: the caller prints only the result.
    Quiet,
}

impl ProgressMode {
    /// Every mode, in the order the error message lists them.
    pub const ALL: [ProgressMode; 5] = [
        ProgressMode::Auto,
        ProgressMode::Plain,
        ProgressMode::Tty,
        ProgressMode::RawJson,
        ProgressMode::Quiet,
    ];

    /// The name of the mode as `--progress` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressMode::Auto => "auto",
            ProgressMode::Plain => "plain",
            ProgressMode::Tty => "tty",
            ProgressMode::RawJson => "rawjson",
            ProgressMode::Quiet => "quiet",
        }
    }

    /// Applies the value of `BUILDKIT_PROGRESS` as buildx does: it replaces `auto` when it is
    /// set and not empty, and is ignored when a mode was chosen explicitly.
    pub fn with_env_default(self, env_value: Option<&str>) -> Result<ProgressMode, Error> {
        match (self, env_value) {
            (ProgressMode::Auto, Some(value)) if !value.is_empty() => value.parse(),
            _ => Ok(self),
        }
    }

    /// The mode actually used for an output: `auto` becomes `tty` on a terminal that is not
    /// dumb and `plain` elsewhere; `tty` on something that is not a terminal is an error, as
    /// in BuildKit. The result is never [`ProgressMode::Auto`].
    pub fn resolve(self, is_terminal: bool, dumb_terminal: bool) -> Result<ProgressMode, Error> {
        match self {
            ProgressMode::Auto if is_terminal && !dumb_terminal => Ok(ProgressMode::Tty),
            ProgressMode::Auto => Ok(ProgressMode::Plain),
            ProgressMode::Tty if !is_terminal => Err(Error::NotATerminal),
            other => Ok(other),
        }
    }
}

impl FromStr for ProgressMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<ProgressMode, Error> {
        ProgressMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| Error::InvalidMode {
                value: s.to_string(),
            })
    }
}

impl fmt::Display for ProgressMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
