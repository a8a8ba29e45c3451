//! Registry access for kiln: resolve an image reference to the manifest and config for a
//! platform, and stream blobs, verified, into any writer.
//!
//! The engine sees only the [`Registry`] trait and plain types ([`Resolved`], [`Manifest`],
//! [`Descriptor`]); [`RegistryClient`] implements it on top of the `oci-client` crate, which
//! does the HTTP, the token dance (anonymous, basic and bearer-token auth) and the token
//! cache. Keeping oci-client behind our own trait means it can be replaced (by an in-house
//! client, if streaming or push needs outgrow it) without touching the engine, and the engine
//! can be tested with a fake registry.
//!
//! What the client adds on top of oci-client:
//! - **Platform resolution** of indexes and Docker manifest lists with [`kiln_oci::Matcher`]
//!   (containerd's rules, as BuildKit uses them), not oci-client's resolver.
//! - **Streaming blobs** ([`Registry::fetch_blob`]): chunk by chunk into a writer, the size
//!   and digest verified while streaming; a blob is never held whole in memory (oci-client's
//!   `pull()` would). Only manifests and configs, which are small, are read into memory.
//! - **Credentials** from Docker's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`, or a
//!   directory given explicitly) and its credential helpers, through `docker_credential` in
//!   `spawn_blocking`, since helpers are processes.
//! - **Plain HTTP** for loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`), as
//!   BuildKit's localhost rule has it.
//! - **Insecure registries** ([`RegistryConfig::insecure`], what `registry.insecure=true`
//!   configures) reached as BuildKit reaches them: over HTTPS that accepts any certificate,
//!   falling back to plain HTTP when HTTPS does not work for the registry. BuildKit falls back
//!   request by request (and then stays on HTTP); kiln decides once per registry, on its first
//!   use, with a probe of `/v2/` ([`Transport`], [`RegistryClient::transport`]), so that the
//!   oci-client clients keep one protocol each.
//! - **Typed errors** that name the registry, repository, reference or digest.
//!
//! What it deliberately does not know: layer media types and compression (the unpacker's
//! business; layers come back as descriptors), the content store (the caller passes the
//! writer), and progress display (the caller passes a callback).
//!
//! **Pushing** ([`Pusher`], implemented by [`RegistryClient`]) is a trait of its own, because
//! sources that cannot be pushed to (an OCI layout store) implement [`Registry`] too. A blob is
//! checked with `HEAD` first, then mounted from another repository of the same registry when
//! the caller knows one, else uploaded with one streamed `PUT` (never whole in memory) and
//! verified against its descriptor while it is sent; manifests and indexes are put last, with
//! their media type. The types here serialize as the OCI JSON they were read from
//! ([`Manifest`], [`Index`] and [`Descriptor`] are `Serialize`, field order as Go writes
//! them), and [`Resolved::manifest_bytes`] keeps the exact bytes the digest covers.
//!
//! **TLS**: besides the system's roots, a registry is trusted with the CAs of Docker's
//! certificates directory (`/etc/docker/certs.d/<host[:port]>/*.crt`, or the directory
//! [`RegistryConfig::certs_dir`] names); such a registry gets an HTTPS client of its own,
//! even on loopback, unless it is listed as insecure.

mod client;
mod credentials;
mod error;
mod manifest;
mod push;
mod select;
mod verify;
pub use verify::Verifier;

use std::future::Future;
use std::io::Write;
use std::pin::Pin;

use kiln_oci::{Digest, Image, Platform, Reference};

pub use client::{
    DEFAULT_USER_AGENT, DOCKER_CERTS_DIR, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, RegistryClient,
    RegistryConfig, Transport, is_insecure, is_plain_http,
};
pub use error::{RegistryError, Result};
pub use manifest::{
    ACCEPTED_MANIFEST_TYPES, DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor,
    Document, DocumentError, Index, Manifest, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, parse_document,
};
pub use push::{BlobPushed, BlobSource, CHUNK_SIZE, Pusher};
pub use select::{MAX_INDEX_DEPTH, ManifestSource, Selected, select_manifest};

/// A boxed future that can cross threads: what the [`Registry`] methods return, so that the
/// trait can be used as `dyn Registry`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An image reference resolved for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The reference with a digest: the digest of what the reference points at (the index,
    /// when it points at one), keeping the tag (`busybox:latest@sha256:...`). This is what
    /// BuildKit pins a `FROM` to.
    pub reference: Reference,
    /// The digest of the platform's image manifest.
    pub manifest_digest: Digest,
    /// The platform's image manifest.
    pub manifest: Manifest,
    /// The manifest exactly as fetched (its digest is [`Resolved::manifest_digest`]).
    pub manifest_bytes: Vec<u8>,
    /// The image config exactly as fetched (its digest is the manifest's config digest).
    pub config_bytes: Vec<u8>,
    /// The image config.
    pub config: Image,
}

/// A source of images: resolves references and streams blobs.
pub trait Registry: Send + Sync {
    /// Resolves `reference` (a tag, `latest` when it has neither tag nor digest, or a digest)
    /// to the image manifest and config for `platform`.
    ///
    /// An index or Docker manifest list is resolved to the entry [`Matcher::only`] prefers
    /// for `platform` (so `linux/arm/v7` also accepts `v6`, `amd64` also `386`);
    /// a reference that points straight at an image manifest is returned whatever its
    /// platform (BuildKit warns about a mismatch; callers can compare
    /// [`Image::platform`] of the config). Manifests fetched by digest are verified against
    /// it; entries of an index are checked against the size the index states; the config is
    /// fetched and verified like any blob.
    ///
    /// [`Matcher::only`]: kiln_oci::Matcher::only
    fn resolve<'a>(
        &'a self,
        reference: &'a Reference,
        platform: &'a Platform,
    ) -> BoxFuture<'a, Result<Resolved>>;

    /// Streams the blob `descriptor` names from `reference`'s repository into `out`, chunk by
    /// chunk, never holding it whole in memory.
    ///
    /// The size and digest are verified while streaming: more bytes than the descriptor
    /// states stop the transfer at once, and a wrong digest is an error at the end, after
    /// which the caller must discard what was written. `progress` is called after each chunk
    /// with the number of bytes received so far. Foreign-layer URLs are never followed.
    ///
    /// `out` is written from the async task, chunk by chunk: give it something that does not
    /// block for long (a buffered file, a content-store writer), not a pipe that may fill up.
    fn fetch_blob<'a>(
        &'a self,
        reference: &'a Reference,
        descriptor: &'a Descriptor,
        out: &'a mut (dyn Write + Send),
        progress: &'a (dyn Fn(u64) + Send + Sync),
    ) -> BoxFuture<'a, Result<()>>;
}
