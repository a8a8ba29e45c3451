//! Descriptors, image manifests and indexes, in OCI and Docker schema 2 media types.

use std::collections::BTreeMap;

use kiln_oci::{Digest, Platform};
use serde::{Deserialize, Deserializer, Serialize};

/// The OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker's manifest list media type (schema 2).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image manifest media type (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The manifest media types kiln asks registries for, best first.
pub const ACCEPTED_MANIFEST_TYPES: &[&str] = &[
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// A content descriptor: what a blob is, its digest and size (an OCI descriptor).
///
/// Fields are written in the order Go's `ocispec.Descriptor` has them, empty ones left out, so
/// a descriptor serializes as BuildKit would write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the blob.
    #[serde(default, deserialize_with = "nullable")]
    pub media_type: String,
    /// The digest of the blob.
    pub digest: Digest,
    /// The size of the blob in bytes.
    pub size: u64,
    /// Other places the blob may be fetched from (foreign layers). kiln never follows them.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub urls: Vec<String>,
    /// Annotations.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub annotations: BTreeMap<String, String>,
    /// The platform of a manifest listed in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor with only a media type, digest and size.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

/// A single-platform image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The media type the manifest states; empty when it states none (OCI allows that).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub media_type: String,
    /// The image config blob.
    pub config: Descriptor,
    /// The layers, bottom first.
    #[serde(default, deserialize_with = "nullable")]
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub annotations: BTreeMap<String, String>,
}

/// A multi-platform index (OCI image index or Docker manifest list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The media type the index states; empty when it states none.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub media_type: String,
    /// The manifests, with their platforms.
    #[serde(default, deserialize_with = "nullable")]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub annotations: BTreeMap<String, String>,
}

/// A manifest document as fetched: an image manifest or an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// A single-platform image manifest.
    Manifest(Box<Manifest>),
    /// An index or manifest list.
    Index(Index),
}

/// Why a manifest document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    /// A media type that is not an image manifest or index (schema 1, an artifact, ...).
    UnsupportedMediaType(String),
    /// Not valid JSON of the expected shape.
    Invalid(String),
}

/// Just the fields that tell what a document is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    config: Option<serde::de::IgnoredAny>,
}

/// Reads a manifest document. The `mediaType` field decides what it is; a document without
/// one is an index when it has `manifests` and a manifest when it has `config`.
pub fn parse_document(bytes: &[u8]) -> Result<Document, DocumentError> {
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| DocumentError::Invalid(e.to_string()))?;
    let media_type = probe.media_type.unwrap_or_default();
    let known = [
        OCI_INDEX,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
    ];
    if !media_type.is_empty() && !known.contains(&media_type.as_str()) {
        return Err(DocumentError::UnsupportedMediaType(media_type));
    }
    if probe.schema_version != Some(2) {
        let version = probe
            .schema_version
            .map_or_else(|| "none".to_owned(), |v| v.to_string());
        return Err(DocumentError::UnsupportedMediaType(format!(
            "schema version {version}"
        )));
    }
    let is_index = match media_type.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => true,
        "" if probe.manifests.is_some() => true,
        "" if probe.config.is_none() => {
            return Err(DocumentError::Invalid(
                "no media type, config or manifests".to_owned(),
            ));
        }
        _ => false,
    };
    let invalid = |e: serde_json::Error| DocumentError::Invalid(e.to_string());
    if is_index {
        serde_json::from_slice(bytes)
            .map(Document::Index)
            .map_err(invalid)
    } else {
        serde_json::from_slice(bytes)
            .map(Document::Manifest)
            .map_err(invalid)
    }
}

/// Reads `null` as the type's default, as Go's `encoding/json` does.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a document was read as: `index N`, `manifest N` (N entries or layers) or the error.
    fn check(json: &str, expected: &str) {
        let got = match parse_document(json.as_bytes()) {
            Ok(Document::Index(index)) => format!("index {}", index.manifests.len()),
            Ok(Document::Manifest(manifest)) => format!("manifest {}", manifest.layers.len()),
            Err(DocumentError::UnsupportedMediaType(t)) => format!("unsupported {t}"),
            Err(DocumentError::Invalid(_)) => "invalid".to_owned(),
        };
        assert_eq!(got, expected, "for {json}");
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn documents() {
        let layer = format!(r#"{{"mediaType":"x","digest":"{D}","size":0}}"#);
        let cases = [
            (
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{layer},"layers":[{layer},{layer}]}}"#
                ),
                "manifest 2",
            ),
            (
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{layer},"layers":null}}"#
                ),
                "manifest 0",
            ),
            (
                format!(r#"{{"schemaVersion":2,"config":{layer},"layers":[{layer}]}}"#),
                "manifest 1",
            ),
            (
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[{layer}]}}"#
                ),
                "index 1",
            ),
            (r#"{"schemaVersion":2,"manifests":[]}"#.to_owned(), "index 0"),
            (
                r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#.to_owned(),
                "unsupported schema version 1",
            ),
            (
                r#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#
                    .to_owned(),
                "unsupported application/vnd.docker.distribution.manifest.v1+prettyjws",
            ),
            (
                format!(r#"{{"schemaVersion":1,"mediaType":"{OCI_MANIFEST}","config":{layer}}}"#),
                "unsupported schema version 1",
            ),
            (
                format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}"}}"#),
                "invalid",
            ),
            (
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"sha256:00","size":0}}}}"#
                ),
                "invalid",
            ),
            (
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{D}","size":-1}}}}"#
                ),
                "invalid",
            ),
            (r#"{"schemaVersion":2}"#.to_owned(), "invalid"),
            ("not json".to_owned(), "invalid"),
        ];
        for (json, expected) in cases {
            check(&json, expected);
        }
    }

    #[test]
    fn descriptor_round_trip_keeps_go_field_order() {
        let json = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":7,"urls":["u"],"annotations":{{"a":"b","c":"d"}}}}"#
        );
        let descriptor: Result<Descriptor, _> = serde_json::from_str(&json);
        let written = descriptor.and_then(|d| serde_json::to_string(&d));
        assert_eq!(written.ok(), Some(json));
    }
}
