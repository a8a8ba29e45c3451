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
//! That is the job of `kiln-dockerfile`. It does no IO and depends on no other kiln crate.
//!
//! Why: keeping the parser a pure function of its input, with line ranges on every node,
//! makes it easy to test against upstream's own test vectors and to fuzz, and lets every
//! later error point at the Dockerfile line that caused it.

mod ast;

pub use ast::*;
