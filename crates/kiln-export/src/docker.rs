//! Docker image tarballs: an OCI layout plus `manifest.json` and `repositories`.

use std::collections::BTreeMap;
use std::io::Write;

use kiln_content::ContentStore;
use serde::Serialize;

use crate::annotations::LayoutAnnotations;
use crate::error::{Error, Result};
use crate::image::{ExportedImage, ImageName};
use crate::layout::{blob_path, index_json, write_layout};
use crate::sink::TarSink;

#[derive(Serialize)]
struct DockerManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Docker's `manifest.json`: one entry with the config's and the layers' paths in the tarball
/// and the familiar names (`RepoTags`, `null` without names, as Docker writes it).
pub fn docker_manifest_json(image: &ExportedImage, names: &[ImageName]) -> Result<Vec<u8>> {
    let doc = [DockerManifest {
        config: blob_path(&image.config)?,
        repo_tags: (!names.is_empty()).then(|| names.iter().map(ImageName::familiar).collect()),
        layers: image.layers.iter().map(blob_path).collect::<Result<_>>()?,
    }];
    kiln_gostd::json::marshal(&doc).map_err(|source| Error::Json {
        what: "manifest.json",
        source,
    })
}

/// Docker's legacy `repositories` file (repository → tag → the top layer's id, the hex of its
/// blob digest, as `docker save` writes it since Docker 25), or `None` when the image has no
/// names or no layers. `docker load` reads `manifest.json` and ignores this file; older tools
/// look for it.
pub fn repositories_json(image: &ExportedImage, names: &[ImageName]) -> Result<Option<Vec<u8>>> {
    let Some(top) = image.layers.last() else {
        return Ok(None);
    };
    if names.is_empty() {
        return Ok(None);
    }
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for n in names {
        repos
            .entry(n.familiar_repository())
            .or_default()
            .insert(n.ref_name(), top.digest.encoded().to_string());
    }
    kiln_gostd::json::marshal(&repos)
        .map(Some)
        .map_err(|source| Error::Json {
            what: "repositories",
            source,
        })
}

/// Writes `image` as a Docker image tarball (`docker load -i`) to `out` and returns `out`: an
/// OCI layout (whose `index.json` carries `annotations`) plus `manifest.json` and
/// `repositories`.
pub fn write_docker_tar<W: Write>(
    store: &ContentStore,
    image: &ExportedImage,
    names: &[ImageName],
    annotations: LayoutAnnotations<'_>,
    out: W,
) -> Result<W> {
    let index = index_json(image, names, annotations)?;
    let manifest = docker_manifest_json(image, names)?;
    let repositories = repositories_json(image, names)?;
    let mut extra: Vec<(&str, &[u8])> = vec![("manifest.json", &manifest)];
    if let Some(r) = &repositories {
        extra.push(("repositories", r));
    }
    let mut sink = TarSink::new(out);
    write_layout(store, image, &index, &extra, &mut sink)?;
    sink.finish()
}
