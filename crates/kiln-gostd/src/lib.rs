//! Go standard-library behaviours that kiln must reproduce byte for byte.
//!
//! BuildKit, Buildx and their libraries are written in Go, and much of what users see of them
//! is produced by Go's standard library: error messages quote words with `strconv.Quote`,
//! variable names are whatever Go's `unicode` package calls letters and digits, every path
//! written into LLB goes through `path.Clean`, some LLB attributes are JSON from
//! `encoding/json`, and durations are read with `time.ParseDuration` and printed by
//! `time.Duration.String`. Rust's standard library has close relatives of all of these that
//! differ in the corners (which characters are printable, whether `<` is escaped in JSON,
//! what `a/../..` cleans to), and kiln's output is compared with upstream's byte for byte. This
//! crate is the one place where those corners are settled, module by module after the Go
//! package it follows:
//!
//! * [`unicode`]: `IsLetter`, `IsDigit`, `IsSpace`, `IsPrint` (general-category tests).
//! * [`strconv`]: `Quote`, which is also what `fmt`'s `%q` prints for a string.
//! * [`strings`]: `ToLower` and `TrimSpace`.
//! * [`path`]: `Clean`, `Join`, `Base`, `Dir`, `IsAbs` for `/`-separated paths (also
//!   `path/filepath` on Unix, which behaves the same), and `Match` for shell patterns.
//! * [`json`]: string escaping as `encoding/json` writes it (HTML-safe by default), and a
//!   `serde_json` formatter that writes whole documents (image configs, manifests) with it.
//! * [`time`]: `ParseDuration` and `Duration.String`.
//!
//! What it deliberately does not know: anything of Docker or BuildKit. A helper that only one
//! upstream project defines (BuildKit's `normalizePath`, the Dockerfile parser's whitespace
//! regular expressions) stays in the crate that reproduces that project. Only what the Go
//! standard library itself defines belongs here, so that every kiln crate can depend on this one
//! without pulling in anything else. The one exception is a pair of small helpers around
//! `path.Match` (`containsWildcards`, `splitWildcards`) that fsutil and BuildKit both define,
//! identically, for the crates that reproduce each of them.
//!
//! Why a crate of its own: several crates had written their own copies of these functions, and
//! the copies had drifted apart (one quoted unassigned code points as they are, another escaped
//! them). One copy with the tests of all of them keeps every crate's output identical to Go's.
//!
//! Rust strings are always valid UTF-8, so the Go behaviours for invalid byte sequences
//! (`\xff` escapes in `Quote`, `\ufffd` in JSON) do not arise. Unicode tables come from the
//! `unicode-general-category` crate (Unicode 16.0) while current Go uses Unicode 15.0: a
//! character first assigned in 16.0 is printable here and escaped by Go; nothing else differs.

#[cfg(test)]
mod check;
pub mod json;
pub mod path;
pub mod strconv;
pub mod strings;
pub mod time;
pub mod unicode;
