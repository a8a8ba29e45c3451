//! Shell-word expansion and splitting for Dockerfile instructions, with BuildKit's exact
//! semantics (`frontend/dockerfile/shell/lex.go`).
//!
//! A Dockerfile is not run by a shell, but many instructions (`ENV`, `ARG` defaults,
//! `COPY`/`ADD` sources, `WORKDIR`, `USER`, `EXPOSE`, flags like `--chmod=$MODE`, …) expand
//! variables in a shell-like way before BuildKit acts on them. [`Lexer`] does that:
//!
//! * single quotes (everything literal) and double quotes (literal except `$` and the
//!   escape character, which escapes only `"`, `$` and itself there);
//! * the escape character, `\` or `` ` `` (set by the `# escape=` directive), which escapes
//!   any character outside quotes and disappears at the end of a word;
//! * `$NAME` and `${NAME}`; positional (`$1`, `${10}`) and special parameters
//!   (`$@ $* $# $? $- $$ $! $0`) are read as names and looked up like any other (a
//!   Dockerfile never sets them, so they expand to nothing);
//! * the modifiers `${v:-w}` `${v-w}` `${v:+w}` `${v+w}` `${v:?msg}` `${v?msg}` (the `:`
//!   forms treat an empty value like an unset one), `${v#p}` `${v##p}` `${v%p}` `${v%%p}`
//!   and `${v/p/r}` `${v//p/r}` with the wildcards `*` and `?` (upstream has no bracket
//!   expressions, so `[` is literal), and the errors upstream gives for everything else;
//! * splitting into words ([`Lexer::process_words`]) on unquoted whitespace, including
//!   whitespace that comes out of an unquoted variable, except the blanks right after an
//!   unquoted `<<`, which stay in its word (`<<  EOF` is one word, so that the Dockerfile
//!   parser finds heredoc markers written with a space);
//! * the modes the instruction layer needs: keeping quotes or escapes in the output, leaving
//!   unset variables as written (used to find heredoc names and to detect undefined
//!   variables), and not treating quotes specially (heredoc bodies). It also reports which
//!   variables were looked up and found or not ([`ProcessResult`]), for the `UndefinedVar`
//!   check.
//!
//! What it deliberately does not know: it is not a shell. There is no command substitution,
//! arithmetic, globbing of file names, tilde expansion or assignment (`${v=w}` is an error,
//! as upstream). It does not know which instruction it serves or which variables exist; the
//! caller passes an [`EnvGetter`]. It does no IO.
//!
//! Why it is designed this way: expansion must give byte-identical results to BuildKit,
//! because the results become cache keys and file paths. So the lexer follows upstream's
//! algorithm step by step (a single pass over the characters with a recursive descent into
//! `${…}`), including its error messages and its corner cases, rather than a grammar of our
//! own. The known, deliberate differences from upstream are:
//!
//! * upstream's current code shares one word buffer between nested `${…}` levels, so that
//!   `process_words("a${x:-b}c")` loses the `a`; kiln keeps one buffer per level and returns
//!   `["abc"]` (the single-word result is the same either way);
//! * substitutions may nest at most [`MAX_NESTING`] levels deep (upstream has no limit).

mod env;
mod error;
mod lexer;
mod pattern;
mod scanner;

pub use env::{EnvGetter, KeyValueList, env_key_value_list};
pub use error::{ShellError, ShellErrorKind};
pub use lexer::{Lexer, MAX_NESTING, ProcessResult};
