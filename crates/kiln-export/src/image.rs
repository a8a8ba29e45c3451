//! What the writers write: one assembled image, and the names it goes by.

use kiln_oci::{Digest, Reference, ReferenceError};
use kiln_registry::Descriptor;

/// A single-platform image whose blobs are in a content store: the manifest and config as the
/// bytes that were hashed, and the layer descriptors in manifest order (base first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedImage {
    /// The manifest's descriptor (media type, digest, size), as an index lists it.
    pub manifest: Descriptor,
    /// The manifest document, exactly the bytes its digest names.
    pub manifest_json: Vec<u8>,
    /// The config's descriptor, as the manifest lists it.
    pub config: Descriptor,
    /// The config document, exactly the bytes its digest names.
    pub config_json: Vec<u8>,
    /// The layers, base first, as the manifest lists them.
    pub layers: Vec<Descriptor>,
    /// The uncompressed digest of each layer (the config's `rootfs.diff_ids`).
    pub diff_ids: Vec<Digest>,
}

impl ExportedImage {
    /// Every blob of the image once (a layer listed twice is one blob), in the order manifest,
    /// config, layers.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        let mut out: Vec<&Descriptor> = Vec::with_capacity(self.layers.len() + 2);
        for d in [&self.manifest, &self.config]
            .into_iter()
            .chain(&self.layers)
        {
            if !out.iter().any(|o| o.digest == d.digest) {
                out.push(d);
            }
        }
        out
    }
}

/// An image name as the exporters use it: normalized, with `latest` when no tag was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    reference: Reference,
}

impl ImageName {
    /// Parses and normalizes a name (`busybox` is `docker.io/library/busybox:latest`).
    pub fn parse(name: &str) -> Result<ImageName, ReferenceError> {
        Ok(ImageName {
            reference: Reference::parse(name)?.with_default_tag(),
        })
    }

    /// The full name (`docker.io/library/busybox:latest`), containerd's
    /// `io.containerd.image.name`.
    pub fn full(&self) -> String {
        self.reference.to_string()
    }

    /// The name as Docker shows it (`busybox:latest`), for `RepoTags`.
    pub fn familiar(&self) -> String {
        self.reference.familiar()
    }

    /// The repository as Docker shows it (`busybox`), for `repositories`.
    pub fn familiar_repository(&self) -> String {
        self.reference.familiar_name()
    }

    /// The OCI layout's `org.opencontainers.image.ref.name`: the part of the name after the
    /// repository, as containerd's `reference.Parse` gives it (`Object`): the tag, `@DIGEST`,
    /// or `TAG@DIGEST`.
    pub fn ref_name(&self) -> String {
        match (self.reference.tag(), self.reference.digest()) {
            (Some(tag), Some(d)) => format!("{tag}@{d}"),
            (Some(tag), None) => tag.to_string(),
            (None, Some(d)) => format!("@{d}"),
            (None, None) => "latest".to_string(),
        }
    }
}
