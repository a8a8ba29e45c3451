//! OCI image types kiln needs everywhere: platforms, image references, digests and image
//! configs.
//!
//! - [`Platform`] parses, normalizes, formats and matches `os/arch[/variant]` specifiers the way
//!   containerd's `platforms` package does (which is what BuildKit and Buildx use), and
//!   [`Matcher`] picks the best entry of an image index for a wanted platform.
//! - [`Reference`] parses and normalizes image names (`busybox` is
//!   `docker.io/library/busybox`) the way `distribution/reference` does; [`Digest`] validates
//!   `sha256:...` digests the way `opencontainers/go-digest` does, and computes them.
//! - [`Image`] and [`ImageConfig`] are the image config JSON with Docker's extensions, field for
//!   field as BuildKit reads and writes it.
//!
//! Everything here is plain data and pure functions: no I/O, no registry access, no global
//! state; the only hashing is [`Digest::of_bytes`], the sha256 of bytes already in memory.
//! Parsing never panics; every error is a typed value whose message is the upstream tool's,
//! word for word, because users compare kiln's output with Docker's and scripts match on those
//! messages.
//!
//! Upstream behaviour is followed even where it is surprising (`Foo/bar` names the registry
//! `Foo`; `linux/arm64/v8` normalizes to `linux/arm64`); each module documents its rules. The few
//! deliberate differences are documented where they apply: an architecture alone means Linux
//! rather than the host OS, the host platform is taken from the compile target rather than from
//! `/proc/cpuinfo`, and JSON field names are matched case-sensitively.

mod digest;
mod image;
mod platform;
mod reference;

pub use digest::{Digest, DigestError};
pub use image::{DEFAULT_PATH_ENV, EmptyObject, HealthConfig, History, Image, ImageConfig, RootFs};
pub use platform::{Matcher, Platform, PlatformError};
pub use reference::{Reference, ReferenceError};
