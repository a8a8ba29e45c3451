//! The lexer's error type. Messages follow BuildKit's word for word, so that users see the
//! same text as with `docker build`.

use kiln_gostd::strconv::quote as go_quote;

/// Expansion of a word failed.
///
/// Displays as upstream does: `failed to process "<word>": <reason>`, with the word quoted
/// like Go's `%q`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {kind}", go_quote(.word))]
pub struct ShellError {
    /// The whole word that was being processed.
    pub word: String,
    /// What went wrong.
    pub kind: ShellErrorKind,
}

/// Why expansion failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellErrorKind {
    /// A `'` was opened and never closed.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// A `"` was opened and never closed.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// The word ended while looking for the given closing character.
    #[error("unexpected end of statement while looking for matching {0}")]
    UnexpectedEnd(char),
    /// `${` was not closed by `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${name/pattern/replacement}` is missing its second `/`.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${{…}`, `${:…}` and the like.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// A modifier that is not supported, such as `${a=b}` or `${a:#b}`. The text is the
    /// modifier as written; the end of the word shows as U+FFFD, as upstream prints it.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${name?message}` or `${name:?message}` on an unset (or empty) variable.
    #[error("{name}: {message}")]
    Required {
        /// The variable name.
        name: String,
        /// The (expanded) message, or upstream's default text.
        message: String,
    },
    /// The pattern of `${v#p}`, `${v%p}` or `${v/p/r}` is invalid.
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern {
        /// The pattern after expansion.
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Substitutions nested deeper than [`crate::MAX_NESTING`] (a kiln limit that keeps
    /// hostile input from exhausting the stack; upstream has none).
    #[error("substitutions nested deeper than {0} levels")]
    TooDeep(usize),
}
