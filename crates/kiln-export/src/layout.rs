//! OCI image layouts: `oci-layout`, `index.json` and `blobs/sha256/<hex>`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use kiln_content::ContentStore;
use kiln_registry::Descriptor;
use serde::Serialize;

use crate::annotations::LayoutAnnotations;
use crate::error::{Error, Result};
use crate::image::{ExportedImage, ImageName};
use crate::sink::{DirSink, IndexLock, Sink, TarSink};

/// The content of the `oci-layout` file.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The media type of `index.json`.
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// containerd's annotation with the full image name.
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// The OCI annotation with the reference name (the tag).
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The mode of blobs and of the layout's JSON files.
const FILE_MODE: u32 = 0o444;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexDoc<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<Descriptor>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

/// The `index.json` of a layout holding `image`: its manifest once per name (annotated with
/// the full name and the tag, as containerd's archive exporter does), or once without names.
/// The descriptor annotations go on every manifest descriptor (BuildKit adds
/// `org.opencontainers.image.created`), the index annotations on the index.
pub fn index_json(
    image: &ExportedImage,
    names: &[ImageName],
    annotations: LayoutAnnotations<'_>,
) -> Result<Vec<u8>> {
    let LayoutAnnotations {
        descriptor: annotations,
        index: index_annotations,
    } = annotations;
    let manifests = if names.is_empty() {
        vec![manifest_descriptor(image, annotations, None)]
    } else {
        names
            .iter()
            .map(|n| manifest_descriptor(image, annotations, Some((&n.full(), &n.ref_name()))))
            .collect()
    };
    kiln_gostd::json::marshal(&IndexDoc {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests,
        annotations: index_annotations,
    })
    .map_err(|source| Error::Json {
        what: "index.json",
        source,
    })
}

/// The `index.json` of a layout directory that already has `existing` (its bytes, when the
/// file exists) after `image` is added, as BuildKit's client adds an image to a layout
/// directory (`ociindex.StoreIndex.Put`): for each name, the entries with the same name and
/// reference name are replaced by the image's manifest; without names the image is tagged
/// `latest` (reference name only). Other entries and unknown fields are kept as they are; the
/// index's own `annotations` are those of `existing` with `index_annotations` over them.
pub(crate) fn merged_index_json(
    existing: Option<&[u8]>,
    image: &ExportedImage,
    names: &[ImageName],
    annotations: LayoutAnnotations<'_>,
) -> Result<Vec<u8>> {
    let LayoutAnnotations {
        descriptor: annotations,
        index: index_annotations,
    } = annotations;
    let json_error = |source| Error::Json {
        what: "index.json",
        source,
    };
    let mut index: serde_json::Map<String, serde_json::Value> = match existing {
        Some(bytes) if !bytes.is_empty() => serde_json::from_slice(bytes).map_err(json_error)?,
        _ => serde_json::Map::new(),
    };
    index
        .entry("schemaVersion")
        .or_insert_with(|| serde_json::Value::from(2));
    index
        .entry("mediaType")
        .or_insert_with(|| serde_json::Value::from(OCI_INDEX));
    let mut manifests = match index.remove("manifests") {
        Some(serde_json::Value::Array(m)) => m,
        _ => Vec::new(),
    };
    // (containerd image name, reference name): the image name is empty for a bare tag.
    let tags: Vec<(String, String)> = if names.is_empty() {
        vec![(String::new(), "latest".to_string())]
    } else {
        names.iter().map(|n| (n.full(), n.ref_name())).collect()
    };
    for (image_name, ref_name) in tags {
        let annotation = |m: &serde_json::Value, key: &str| {
            m.pointer(&format!(
                "/annotations/{}",
                key.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
        };
        manifests.retain(|m| {
            annotation(m, OCI_REF_NAME) != ref_name || annotation(m, CONTAINERD_NAME) != image_name
        });
        let d = manifest_descriptor(image, annotations, Some((&image_name, &ref_name)));
        manifests.push(serde_json::to_value(&d).map_err(json_error)?);
    }
    index.insert("manifests".to_string(), serde_json::Value::Array(manifests));
    if !index_annotations.is_empty() {
        let merged = index
            .entry("annotations")
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if let Some(map) = merged.as_object_mut() {
            for (k, v) in index_annotations {
                map.insert(k.clone(), serde_json::Value::from(v.as_str()));
            }
        }
    }
    kiln_gostd::json::marshal(&index).map_err(json_error)
}

/// The image's manifest descriptor in an index: with `annotations`, and with a name, containerd's
/// full image name (unless empty: a bare tag) and the OCI reference name.
fn manifest_descriptor(
    image: &ExportedImage,
    annotations: &BTreeMap<String, String>,
    name: Option<(&str, &str)>,
) -> Descriptor {
    let mut d = image.manifest.clone();
    d.annotations.extend(annotations.clone());
    if let Some((image_name, ref_name)) = name {
        if !image_name.is_empty() {
            d.annotations
                .insert(CONTAINERD_NAME.to_string(), image_name.to_string());
        }
        d.annotations
            .insert(OCI_REF_NAME.to_string(), ref_name.to_string());
    }
    d
}

/// The name of a blob in a layout (`blobs/sha256/<hex>`).
pub(crate) fn blob_path(d: &Descriptor) -> Result<String> {
    if d.digest.algorithm() != "sha256" {
        return Err(Error::Algorithm(d.digest.clone()));
    }
    Ok(format!("blobs/sha256/{}", d.digest.encoded()))
}

/// Writes the layout's files into `sink` in bytewise name order: `blobs/`, `blobs/sha256/`,
/// the blobs, then `extra` files (sorted with `index.json` and `oci-layout`).
pub(crate) fn write_layout(
    store: &ContentStore,
    image: &ExportedImage,
    index: &[u8],
    extra: &[(&str, &[u8])],
    sink: &mut dyn Sink,
) -> Result<()> {
    sink.dir("blobs/")?;
    sink.dir("blobs/sha256/")?;
    let mut blobs: Vec<(String, &Descriptor)> = image
        .blobs()
        .into_iter()
        .map(|d| Ok((blob_path(d)?, d)))
        .collect::<Result<_>>()?;
    blobs.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, d) in blobs {
        if sink.has(&name) {
            continue;
        }
        copy_blob(store, d, &name, sink)?;
    }
    let mut files: Vec<(&str, &[u8])> = vec![("index.json", index), ("oci-layout", OCI_LAYOUT)];
    files.extend_from_slice(extra);
    files.sort_by(|a, b| a.0.cmp(b.0));
    for (name, data) in files {
        let mut r: &[u8] = data;
        sink.file(name, FILE_MODE, data.len() as u64, &mut r)?;
    }
    Ok(())
}

/// Copies one blob from the store into the sink, checking its size first.
fn copy_blob(store: &ContentStore, d: &Descriptor, name: &str, sink: &mut dyn Sink) -> Result<()> {
    let blob_err = |source| Error::Blob {
        digest: d.digest.clone(),
        source,
    };
    let actual = store.size(&d.digest).map_err(blob_err)?;
    if actual != d.size {
        return Err(Error::BlobSize {
            digest: d.digest.clone(),
            expected: d.size,
            actual,
        });
    }
    let file = store.open_blob(&d.digest).map_err(blob_err)?;
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
    sink.file(name, FILE_MODE, d.size, &mut reader as &mut dyn Read)
}

/// Writes `image` as an OCI image layout tarball to `out` and returns `out`.
pub fn write_oci_tar<W: Write>(
    store: &ContentStore,
    image: &ExportedImage,
    names: &[ImageName],
    annotations: LayoutAnnotations<'_>,
    out: W,
) -> Result<W> {
    let index = index_json(image, names, annotations)?;
    let mut sink = TarSink::new(out);
    write_layout(store, image, &index, &[], &mut sink)?;
    sink.finish()
}

/// Writes `image` as an OCI image layout directory at `dir` (created when missing). Blobs the
/// directory already has are kept, and the image is added to its `index.json` as BuildKit's
/// client adds it (see `merged_index_json`), under the lock file `index.json.lock`.
pub fn write_oci_dir(
    store: &ContentStore,
    image: &ExportedImage,
    names: &[ImageName],
    annotations: LayoutAnnotations<'_>,
    dir: &Path,
) -> Result<()> {
    let mut sink = DirSink::new(dir)?;
    let _lock = IndexLock::take(dir)?;
    let path = dir.join("index.json");
    let existing = match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("reading", &path, e)),
    };
    let index = merged_index_json(existing.as_deref(), image, names, annotations)?;
    write_layout(store, image, &index, &[], &mut sink)
}
