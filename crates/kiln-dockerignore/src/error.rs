//! The crate's error type.

/// Reading or applying `.dockerignore` patterns failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A pattern consisting of `!` alone.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// A malformed pattern.
    #[error("syntax error in pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern as given (an exclusion with its `!`).
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A [`crate::MatchInfo`] from a matcher with a different number of patterns.
    #[error("wrong number of values in parent match info: got {got}, expected {expected}")]
    ParentInfoLength {
        /// Values in the match info.
        got: usize,
        /// Patterns in the matcher.
        expected: usize,
    },
    /// A line of the ignore file is longer than upstream can read.
    #[error("line {line} of the ignore file is longer than {max} bytes", max = crate::MAX_LINE_LEN)]
    LineTooLong {
        /// The 1-based line number.
        line: usize,
    },
}
