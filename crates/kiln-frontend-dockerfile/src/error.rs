//! The conversion error: a message and the Dockerfile lines it is about.

use kiln_dockerfile_parser::LineRange;

/// Why a Dockerfile could not be converted.
///
/// The message reads as BuildKit's (`dockerfile parse error on line 3: unknown instruction:
/// FOO`, `circular dependency detected on stage: a`, ...); `lines` are the Dockerfile lines it is
/// about (several for a dependency cycle, none for errors about the whole file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConvertError {
    /// What went wrong.
    pub message: String,
    /// Where, 1-based and inclusive; empty when the error is about the whole file.
    pub lines: Vec<LineRange>,
}

impl ConvertError {
    /// An error about the whole file.
    pub(crate) fn new(message: impl Into<String>) -> ConvertError {
        ConvertError {
            message: message.into(),
            lines: Vec::new(),
        }
    }

    /// An error about the given lines.
    pub(crate) fn at(lines: LineRange, message: impl Into<String>) -> ConvertError {
        ConvertError {
            message: message.into(),
            lines: vec![lines],
        }
    }

    /// Attaches lines to an error that has none yet.
    pub(crate) fn or_at(mut self, lines: LineRange) -> ConvertError {
        if self.lines.is_empty() {
            self.lines.push(lines);
        }
        self
    }
}

impl From<kiln_dockerfile::Error> for ConvertError {
    fn from(e: kiln_dockerfile::Error) -> ConvertError {
        ConvertError {
            message: e.message,
            lines: e.lines.into_iter().collect(),
        }
    }
}

impl From<kiln_dockerfile_parser::ParseError> for ConvertError {
    fn from(e: kiln_dockerfile_parser::ParseError) -> ConvertError {
        let lines = if e.line == 0 {
            Vec::new()
        } else {
            vec![LineRange {
                start: e.line,
                end: e.line,
            }]
        };
        ConvertError {
            message: e.message,
            lines,
        }
    }
}

impl From<kiln_llb::Error> for ConvertError {
    fn from(e: kiln_llb::Error) -> ConvertError {
        ConvertError::new(e.to_string())
    }
}

impl From<kiln_shell::ShellError> for ConvertError {
    fn from(e: kiln_shell::ShellError) -> ConvertError {
        ConvertError::new(e.to_string())
    }
}
