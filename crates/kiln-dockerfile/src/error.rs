//! The error type of this crate.

use kiln_dockerfile_parser::LineRange;

/// An error found while turning the syntax tree into typed instructions, or while parsing a
/// flag value, a `--mount` specification or a check configuration.
///
/// The message is BuildKit's, word for word (including its capitalisation where BuildKit
/// capitalises), so that users see the same text as with `docker buildx build`. Errors about
/// one instruction carry the lines of that instruction and start with
/// `dockerfile parse error on line N: `, as BuildKit's do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// The Dockerfile lines the error is about, when it is about an instruction.
    pub lines: Option<LineRange>,
    /// The full message.
    pub message: String,
}

impl Error {
    /// An error without a location.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            lines: None,
            message: message.into(),
        }
    }

    /// An error about the given lines.
    pub fn at(lines: LineRange, message: impl Into<String>) -> Self {
        Self {
            lines: Some(lines),
            message: message.into(),
        }
    }

    /// Sets the location when the error does not have one yet.
    #[must_use]
    pub fn with_lines(mut self, lines: LineRange) -> Self {
        if self.lines.is_none() {
            self.lines = Some(lines);
        }
        self
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}
