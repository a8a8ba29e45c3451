//! The error type of the parser.

/// A Dockerfile that cannot be parsed.
///
/// The message is upstream BuildKit's wording wherever upstream has one (for example
/// `file with no instructions` or `when using JSON array syntax, arrays must be comprised of
/// strings only`), so that users see the same text as with Docker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// The 1-based line the error is reported at (the first line of the instruction that failed),
    /// or 0 when the error has no line (an empty file, or a helper called on a lone string).
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

impl ParseError {
    /// An error at `line` (1-based, 0 for none).
    pub(crate) fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}
