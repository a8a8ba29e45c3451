//! How base images are looked up: a trait the engine implements with a registry client.

use std::future::Future;

use kiln_llb::ResolveMode;
use kiln_oci::{Digest, Image, Platform};

/// Resolves image references to their config, for `FROM`, `COPY --from=<image>` and
/// `RUN --mount=from=<image>`.
///
/// The engine implements it with a registry client (and its image store); tests use a fake.
/// The returned future must be `Send` so that an engine can drive conversions on any thread.
pub trait ImageResolver: Sync {
    /// Resolves `reference` (normalized, tagged: `docker.io/library/busybox:latest`) for
    /// `platform`.
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
        mode: ResolveMode,
    ) -> impl Future<Output = Result<ResolvedImage, ResolveError>> + Send;

    /// Resolves an image of an OCI layout the client lends the build (`--build-context
    /// NAME=oci-layout://…`, BuildKit's `oci-layout` resolver type) for `platform`: `store` is
    /// the layout's store id in the session, `reference` names the image by digest
    /// (`docker.io/library/NAME@sha256:…`, the name only shown) and `name` is the context's
    /// name, for progress.
    ///
    /// The default resolves nothing: the reference is used as it is, with an empty config.
    fn resolve_oci_layout(
        &self,
        name: &str,
        store: &str,
        reference: &str,
        platform: &Platform,
    ) -> impl Future<Output = Result<ResolvedImage, ResolveError>> + Send {
        let _ = (name, store, platform);
        std::future::ready(Ok(ResolvedImage {
            reference: reference.to_string(),
            digest: None,
            config: None,
        }))
    }
}

/// A resolved image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedImage {
    /// The reference to use from now on; the requested one unless a policy rewrote it.
    pub reference: String,
    /// The manifest digest the reference pointed at, pinned into the LLB; `None` when the
    /// resolver could not tell (the reference is then used unpinned).
    pub digest: Option<Digest>,
    /// The image config; `None` when the resolver does not know it (an empty config is used).
    pub config: Option<Image>,
}

/// Why an image could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ResolveError {
    /// What went wrong, e.g. `docker.io/library/nope:latest: not found`.
    pub message: String,
}

/// A resolver that resolves nothing: every image is used by its reference, unpinned, with an
/// empty config. For `kiln debug dump-llb` without registry access.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unresolved;

impl ImageResolver for Unresolved {
    fn resolve(
        &self,
        reference: &str,
        _platform: &Platform,
        _mode: ResolveMode,
    ) -> impl Future<Output = Result<ResolvedImage, ResolveError>> + Send {
        std::future::ready(Ok(ResolvedImage {
            reference: reference.to_string(),
            digest: None,
            config: None,
        }))
    }
}
