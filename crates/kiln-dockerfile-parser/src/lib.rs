//! Dockerfile text to a lossless syntax tree, with BuildKit's parser semantics.
//!
//! This crate is the first stage of the Dockerfile frontend. It turns the bytes of a
//! Dockerfile into a flat list of [`Node`]s (one per instruction, in source order), the
//! parser directives found at the top (`syntax`, `escape`, `check`), and the warnings the
//! parser itself emits (for example an empty continuation line).
//!
//! What it knows: logical lines (continuations with the escape character, comments inside
//! continuations, CRLF, a UTF-8 BOM), parser directives, heredocs, the JSON (exec) form
//! versus the shell form, instruction flags, ONBUILD nesting, and the exact argument shaping
//! of each keyword as BuildKit's `frontend/dockerfile/parser` does it. It also renders the
//! AST in the dump format of BuildKit's parser test files ([`dump`]).
//!
//! What it does not know: what instructions mean. Keywords are not validated here (an unknown
//! keyword is a node like any other), variables are not expanded, flags are not interpreted.
//! That is the job of `kiln-dockerfile`. It does no IO and depends on no other kiln crate but
//! `kiln-gostd` (Go's `strconv.Quote` and `unicode` classes) and `kiln-shell`, whose word
//! lexer finds heredoc markers, as upstream's parser uses its `shell` package for that.
//!
//! Why: keeping the parser a pure function of its input, with line ranges on every node,
//! makes it easy to test against upstream's own test vectors and to fuzz, and lets every
//! later error point at the Dockerfile line that caused it. The behaviour was written from
//! upstream's observable behaviour (its test vectors and its documented rules), including its
//! quirks, because a Dockerfile must mean the same thing here as it does with Docker.
//!
//! # The rules, in short
//!
//! * **Lines.** The input is split on `\n`; trailing `\r`s are dropped, so CRLF files parse
//!   like LF files (heredoc bodies keep their line endings as written). A UTF-8 byte order mark
//!   at the start is skipped. **Invalid UTF-8** is replaced with U+FFFD line by line (Go keeps
//!   the raw bytes; the Rust AST holds `String`s), which is the only place the AST can differ
//!   from upstream's.
//! * **Line length.** Like upstream (whose Go line scanner has a 64 KiB buffer), a physical line
//!   longer than 65535 bytes, not counting its `\n`, stops the parse with the error `dockerfile
//!   line greater than max allowed size of 65535`. This is kept deliberately: the same files are
//!   rejected as with Docker, and it bounds the work done on one line. As upstream, an
//!   input whose too-long line comes before any instruction reports `file with no
//!   instructions` instead, and one whose too-long line falls inside a heredoc body reports
//!   `unterminated heredoc`.
//! * **Directives** (`# syntax=`, `# escape=`, `# check=`) are recognised only in the comment
//!   lines at the very top; the first other line (an instruction, a blank line, a plain
//!   comment) ends them. See [`parse_directives`], [`detect_syntax`] and
//!   [`parse_directive_check`].
//! * **Logical lines.** A line whose last non-blank character is the escape character (`\`, or
//!   `` ` `` after `# escape=``) continues on the next line; comment lines and blank lines inside
//!   a continuation are skipped (a blank one gives a [`Warning`] with rule
//!   `NoEmptyContinuation`). Only the first physical line loses its leading whitespace.
//! * **Comments** (`#` as first non-blank character) directly above an instruction become its
//!   [`Node::prev_comment`] (an empty `#` line resets them, blank lines do not).
//! * **Arguments** are shaped per keyword exactly as upstream does (see [`Node::args`] and
//!   [`dump`]); [`parse_json_array`] and [`split_words`] are the building blocks.
//! * **Heredocs** are looked for after `RUN`, `COPY` and `ADD` in shell form (also as the
//!   trigger of an `ONBUILD`, where they are attached to the `ONBUILD` node, as upstream does),
//!   once the logical line is complete. Their bodies are the following physical lines up to
//!   the terminator, unparsed. See [`heredocs_from_line`] and [`parse_heredoc`].
//!
//! # Deliberate limits
//!
//! Two bounds exist that upstream does not have, because Rust code recursing on input would
//! otherwise exhaust its stack: `ONBUILD` instructions nest at most 64 deep (`ONBUILD ONBUILD
//! ...`, which upstream's later stages reject anyway), and the shell lexer that finds heredoc
//! words gives up on `${...}` substitutions nested more than [`kiln_shell::MAX_NESTING`] deep
//! (a line is then taken to have no heredocs).
//!
//! One difference comes from `kiln-shell` on purpose: upstream's lexer shares one word buffer
//! between nested `${...}` levels, so a word loses whatever came before a `${name<modifier>...}`
//! substitution in it. Upstream therefore finds no heredoc in `RUN <<${X:-EOF}` or
//! `RUN <<E${X:-OF}` (the word no longer starts with `<<`), while kiln finds one named
//! `${X:-EOF}` or `E${X:-OF}`; and when such a name holds an unbalanced quote once its
//! escapes are processed (`RUN <<${x:-\'}`), kiln reports an error where upstream sees a plain
//! `RUN`. No heredoc name in upstream's test vectors contains such a substitution.

mod ast;
mod directives;
mod dump;
mod error;
mod gostr;
mod heredoc;
mod json;
mod line_parsers;
mod parser;
mod words;

pub use ast::*;
pub use directives::{detect_syntax, parse_directive_check, parse_directives};
pub use dump::dump;
pub use error::ParseError;
pub use heredoc::{chomp_heredoc_content, heredocs_from_line, parse_heredoc};
pub use line_parsers::parse_json_array;
pub use parser::parse;
pub use words::split_words;
