//! `.dockerignore` files with Docker's semantics (`moby/patternmatcher` and its
//! `ignorefile` package), which are not gitignore's.
//!
//! * [`read_ignore_file`] turns the bytes of an ignore file into a pattern list (comments,
//!   trimming, path cleaning, `!` exclusions).
//! * [`PatternMatcher`] decides whether a context path is excluded: patterns are anchored
//!   at the context root (`*.md` does not match `sub/readme.md`, unlike gitignore), a
//!   pattern that matches a directory matches everything below it, `**` spans any number of
//!   directories, `!pattern` includes again, and the last matching pattern wins. The
//!   context root itself is never excluded.
//! * [`ignore_file_for`] says which ignore file applies: `<Dockerfile>.dockerignore` next to
//!   the Dockerfile wins over `<context>/.dockerignore`.
//! * [`clean_path`] is Go's `filepath.Clean`, which both sides use.
//!
//! What it deliberately does not know: how to walk a directory, send files or follow
//! symlinks; the context transfer uses the matcher (ideally through
//! [`PatternMatcher::matches_using_parent_results`], which avoids re-testing parents).
//! Paths are `/`-separated strings relative to the context root; Windows paths are not
//! handled (kiln builds on Linux, where `\` in a pattern is an escape character).
//!
//! Why it is designed this way: the set of files a build sees must be exactly Docker's, or
//! cache keys and image contents differ. So the matcher ports upstream's design: the same
//! syntax check (Go's `filepath.Match`), the same classification of patterns into exact,
//! prefix, suffix and regular-expression matches, and an equivalent regular expression
//! built for the `regex` crate. The few places where upstream's translation gives
//! surprising results inside character classes are documented in the `glob` module and
//! differ on purpose; everything in upstream's tests behaves identically.

mod error;
mod glob;
mod ignorefile;
mod locate;
mod matcher;

pub use error::Error;
pub use glob::MatchType;
pub use ignorefile::{MAX_LINE_LEN, read_ignore_file};
/// Go's `filepath.Clean` on Unix (the same as `path.Clean`): see [`kiln_gostd::path::clean`].
pub use kiln_gostd::path::clean as clean_path;
pub use locate::ignore_file_for;
pub use matcher::{MatchInfo, Pattern, PatternMatcher};
