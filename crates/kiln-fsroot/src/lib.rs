//! Resolving paths inside a root directory so that no symbolic link or `..` can lead outside
//! it: the one place kiln does this, because every copy of security-critical code is a place
//! for a CVE to hide.
//!
//! A build works on trees it does not trust: build contexts, image layers, the root file system
//! a `RUN` step just changed. Any of them may hold a symbolic link to `/etc` or to
//! `../../../..`, and every path kiln follows into such a tree (a `COPY` destination, an entry
//! of a layer, a mount point, a path to checksum) must be read as the container would read it,
//! with the tree as `/`: an absolute target starts again at the root, and `..` stops there.
//! [`resolve`] does that and returns the [`InPath`] the path leads to; [`resolve_dir`] also
//! returns the directory open, for callers that act inside it with `*at` calls.
//!
//! Upstream does this in several slightly different ways, and kiln reproduces each where its
//! results are visible, through [`Options`]:
//!
//! * containerd's `fs.RootPath` (fsutil's copy, BuildKit's file operations) cleans the path
//!   lexically before and after each link ([`DotDot::Lexical`]) and keeps missing components;
//! * `filepath-securejoin` (runc's mount destinations) and the kernel's `RESOLVE_IN_ROOT` read
//!   `..` where they meet it ([`DotDot::Resolved`]);
//! * the layer applier asks, for each missing parent directory, whether to create it or what
//!   a lower layer has there ([`OnMissing`]), and stops at the kernel's limit of 40 links;
//! * archive extraction refuses a `..` that would climb above the root ([`Escape::Fail`]).
//!
//! Every lookup is made relative to an open directory with `O_NOFOLLOW`, never through a host
//! path: a link swapped in while a resolution runs is either seen and resolved inside the root
//! or makes the resolution fail. What this crate deliberately does not know is what callers do
//! with the result, or how they word their errors: [`Error`] names the entry inside the root
//! and the failed call, and each caller maps it onto its own messages.

mod error;
mod inpath;
mod resolve;

pub use error::Error;
pub use inpath::InPath;
pub use resolve::{
    Dir, DotDot, Escape, Fill, GO_MAX_LINKS, LINUX_MAX_LINKS, OnMissing, Options, Policy,
    open_root, resolve, resolve_dir,
};
