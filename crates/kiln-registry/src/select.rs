//! Choosing the image manifest for a platform, whatever the documents come from.
//!
//! A registry and an OCI layout on disk hold the same documents and need the same choice: an
//! index (or Docker manifest list) is followed to the entry that [`Matcher::only`] prefers for
//! the platform; failing one, to the entries without a platform, in order, each taken only if
//! its config states a matching platform (as containerd does); nested indexes are followed up
//! to [`MAX_INDEX_DEPTH`] levels. Where the documents come from is a [`ManifestSource`].

use kiln_oci::{Digest, Image, Matcher, Platform};

use crate::manifest::{ACCEPTED_MANIFEST_TYPES, Descriptor, Document, Manifest};
use crate::{BoxFuture, RegistryError, Result};

/// How deep indexes may nest (an index listing an index ...).
pub const MAX_INDEX_DEPTH: usize = 4;

/// Where [`select_manifest`] reads documents and configs.
pub trait ManifestSource: Sync {
    /// The document an index entry names, read and verified against the entry (digest and
    /// size), with its bytes.
    fn child<'a>(&'a self, entry: &'a Descriptor) -> BoxFuture<'a, Result<(Vec<u8>, Document)>>;

    /// The config of `manifest` (the document `digest`), read, verified and parsed, with its
    /// bytes.
    fn config<'a>(
        &'a self,
        manifest: &'a Manifest,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<(Vec<u8>, Image)>>;

    /// How errors name the document `digest`.
    fn shown(&self, digest: &Digest) -> String;
}

/// The image manifest chosen for a platform, and its config.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The digest of the image manifest.
    pub digest: Digest,
    /// The image manifest as read.
    pub bytes: Vec<u8>,
    /// The image manifest.
    pub manifest: Manifest,
    /// The config as read.
    pub config_bytes: Vec<u8>,
    /// The config.
    pub config: Image,
}

/// Follows the document `top` (named `digest`, read as `bytes`) to the image manifest for
/// `platform` (see the module documentation). A document that is an image manifest already is
/// taken whatever its platform.
pub async fn select_manifest<S: ManifestSource + ?Sized>(
    source: &S,
    digest: Digest,
    bytes: Vec<u8>,
    top: Document,
    platform: &Platform,
) -> Result<Selected> {
    let (mut digest, mut bytes, mut document) = (digest, bytes, top);
    let matcher = Matcher::only(platform);
    let mut depth = 0;
    let mut checked_config = None;
    let manifest = loop {
        let index = match document {
            Document::Manifest(manifest) => break *manifest,
            Document::Index(index) => index,
        };
        depth += 1;
        if depth > MAX_INDEX_DEPTH {
            return Err(RegistryError::InvalidManifest {
                reference: source.shown(&digest),
                message: format!("indexes nest more than {MAX_INDEX_DEPTH} levels deep"),
            });
        }
        let candidates: Vec<&Descriptor> = index
            .manifests
            .iter()
            .filter(|d| ACCEPTED_MANIFEST_TYPES.contains(&d.media_type.as_str()))
            .collect();
        let with_platform: Vec<&Descriptor> = candidates
            .iter()
            .copied()
            .filter(|d| d.platform.is_some())
            .collect();
        let best = matcher
            .select(with_platform.iter().map(|d| d.platform.as_ref()))
            .and_then(|i| with_platform.get(i).copied());
        let tries: Vec<&Descriptor> = match best {
            Some(best) => vec![best],
            None => candidates
                .iter()
                .copied()
                .filter(|d| d.platform.is_none())
                .collect(),
        };
        let mut found = None;
        for chosen in tries {
            let (child_bytes, child) = source.child(chosen).await?;
            if chosen.platform.is_none()
                && let Document::Manifest(manifest) = &child
            {
                let config = source.config(manifest, &chosen.digest).await?;
                if !matcher.matches(&config.1.platform()) {
                    continue;
                }
                checked_config = Some(config);
            }
            found = Some((chosen.digest.clone(), child_bytes, child));
            break;
        }
        let Some((child_digest, child_bytes, child)) = found else {
            let mut available: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                .collect();
            available.dedup();
            return Err(RegistryError::NoMatchingPlatform {
                reference: source.shown(&digest),
                platform: platform.to_string(),
                available: if available.is_empty() {
                    "no platforms".to_owned()
                } else {
                    available.join(", ")
                },
            });
        };
        digest = child_digest;
        bytes = child_bytes;
        document = child;
    };
    let (config_bytes, config) = match checked_config {
        Some(checked) => checked,
        None => source.config(&manifest, &digest).await?,
    };
    Ok(Selected {
        digest,
        bytes,
        manifest,
        config_bytes,
        config,
    })
}
