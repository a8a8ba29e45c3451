//! Shared fixtures for kiln's engine tests: a real registry on loopback, a busybox base image
//! made from Debian's `busybox-static`, and a builder of OCI image layouts.
//!
//! - [`TestRegistry`] runs Debian's `docker-registry` (the CNCF distribution server) on
//!   `127.0.0.1` and a free port, with storage in a temporary directory and a config written
//!   here; optionally with htpasswd basic authentication, and optionally over HTTPS with a
//!   certificate signed by a CA the test makes ([`TestRegistry::start_secure`], [`CaPem`]
//!   says how a client trusts it). Its access log is readable ([`TestRegistry::requests`]), so
//!   a test can count what a client asked. It starts in a few milliseconds and is killed on
//!   drop.
//! - [`OciImageBuilder`] and [`write_index`] write OCI image layouts (`oci-layout`,
//!   `index.json`, `blobs/sha256/...`) from layers given as tar entries ([`TarEntry`]) or
//!   directories, with realistic configs, in OCI or Docker media types, gzip, zstd or
//!   uncompressed. The bytes are deterministic (sorted entries, fixed mtimes), so digests are
//!   stable from run to run.
//! - [`push_layout`] pushes a layout with `skopeo`, a tool kiln did not write: skopeo
//!   accepting the layout is itself a check of it, and `--preserve-digests` guarantees the
//!   registry holds exactly the bytes we wrote.
//! - [`busybox_image`] and [`busybox_index_image`] are the one-call fixtures: a busybox image
//!   (and a two-platform index) built once and pushed to a test registry.
//! - [`DockerEngine`] is the Docker engine (Debian's `docker.io`) that parity tests compare
//!   kiln's results with: `DOCKER_BUILDKIT=1 docker build` through Debian's client, on the
//!   daemon `scripts/dockerd.sh` starts.
//! - [`HttpServer`] is a small HTTP/1.1 server on loopback whose answers come from a closure
//!   (a [`Handler`]), with [`StaticFiles`] for the common case of files with ETags; it logs
//!   each request's path and status, for `ADD https://…`, HTTP contexts and git over HTTP.
//! - [`SshServer`] is a real OpenSSH server on loopback that lets one generated key in, for git
//!   over SSH and Docker engines over SSH.
//! - [`FileTree`] snapshots an exported tree (types, modes, owners, contents, link targets,
//!   hard-link groups) so that two builders' results can be compared path by path.
//!
//! This crate knows nothing of kiln's engine: it only produces inputs (registries, images,
//! root filesystems) that a test then feeds to the engine, so that engine tests exercise real
//! components instead of fakes. It is a dev-dependency only and is never published.
//!
//! A missing tool (`docker-registry`, `skopeo`, `busybox-static`, `docker.io`) or a Docker
//! daemon that does not answer is an error naming the Debian package or the script that starts
//! it, never a silent skip: the tests that need it must fail. Every fixture talks to loopback
//! addresses only. The one piece of shared state is the busybox layout, built once
//! per process (a `OnceLock`) and cached on disk under the system's temporary directory,
//! keyed by the busybox binary's digest, because building it for each of the test processes
//! nextest starts would cost more than the tests themselves.

mod busybox;
mod docker;
mod error;
mod http;
mod layer;
mod layout;
mod push;
mod registry;
mod sshd;
mod tls;
mod tree;

pub use busybox::{
    BUSYBOX, BUSYBOX_INDEX_TAG, BUSYBOX_REPOSITORY, BUSYBOX_TAG, BusyboxLayout, busybox_entries,
    busybox_image, busybox_index_image, busybox_layout, busybox_rootfs,
};
pub use docker::{DOCKER, DOCKER_ENV, DockerEngine, write_docker_context};
pub use error::{Result, TestkitError};
pub use http::{Handler, HttpServer, Request, Response, StaticFile, StaticFiles};
pub use layer::{
    Compression, EntryKind, FIXED_CREATED, FIXED_MTIME, Layer, LayerSource, TarEntry, materialize,
};
pub use layout::{
    BlobRef, BuiltImage, BuiltIndex, BuiltLayer, MediaTypes, OciImageBuilder, REF_NAME_ANNOTATION,
    write_index,
};
pub use push::{ManifestFormat, PushOptions, PushedImage, SKOPEO, push_layout, push_layout_with};
pub use registry::{DOCKER_REGISTRY, LoggedRequest, TestRegistry};
pub use sshd::{SSHD, SshServer};
pub use tls::{CaPem, ServerCertificates, server_certificates};
pub use tree::{FileTree, Node, NodeKind};
