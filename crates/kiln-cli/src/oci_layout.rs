//! Named contexts from OCI image layouts: `--build-context NAME=oci-layout://PATH[:TAG|@DIGEST]`.
//!
//! This is the client's half, as buildx does it: the tag is resolved to a digest in the layout's
//! `index.json` (annotation `io.containerd.image.name`, then `org.opencontainers.image.ref.name`;
//! a layout holding a single image needs no tag), and the layout directory is lent to the build
//! under a store id. The frontend then sees `oci-layout://STORE:TAG@DIGEST`; it resolves the
//! image config through [`LayoutResolver`] (BuildKit's `oci-layout` resolver type), and the
//! worker's `oci-layout://` source reads the manifest and layers from the directory the session
//! lends under that store id, verifying every blob.
//!
//! The store id is derived from the layout's absolute path (buildx draws a random one), so that
//! the same command gives the same LLB; it never enters a cache key.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kiln_frontend_dockerfile::{NamedContext, ResolveError, ResolvedImage};
use kiln_oci::{Digest, Platform, Reference};
use kiln_registry::Registry as _;

use crate::metadata::MetadataLoads;

/// The scheme of OCI layout contexts.
const SCHEME: &str = "oci-layout://";

/// The annotation containerd (and BuildKit's exporters) name an image with.
const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// The OCI annotation that tags an image in a layout's `index.json`.
const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// A parsed `oci-layout://PATH[:TAG][@DIGEST]` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// The layout directory.
    pub path: PathBuf,
    /// The tag; `None` when the value names none (`latest` is then looked up).
    pub tag: Option<String>,
    /// The digest, when the value pins one (it wins over the tag).
    pub digest: Option<Digest>,
}

impl LayoutRef {
    /// Parses a context value, or returns `None` when it is not an `oci-layout://` one. A digest
    /// follows the last `@`; a tag follows the last `:` when no `/` comes after it.
    pub fn parse(value: &str) -> Option<anyhow::Result<LayoutRef>> {
        let rest = value.strip_prefix(SCHEME)?;
        Some(Self::parse_rest(value, rest))
    }

    fn parse_rest(value: &str, rest: &str) -> anyhow::Result<LayoutRef> {
        let (rest, digest) = match rest.rsplit_once('@') {
            Some((path, d)) => {
                let digest = Digest::parse(d)
                    .with_context(|| format!("invalid context value {value:?}: digest {d:?}"))?;
                (path, Some(digest))
            }
            None => (rest, None),
        };
        let (path, tag) = match rest.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') => (path, Some(tag.to_string())),
            _ => (rest, None),
        };
        if path.is_empty() {
            anyhow::bail!("invalid context value {value:?}: empty layout path");
        }
        if tag.as_deref() == Some("") {
            anyhow::bail!("invalid context value {value:?}: empty tag");
        }
        Ok(LayoutRef {
            path: PathBuf::from(path),
            tag,
            digest,
        })
    }

    /// The tag looked up when the value names none.
    fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }
}

/// The store id under which the layout in `path` is lent to the build.
pub fn store_id(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let digest = Digest::of_bytes(absolute.as_os_str().as_encoded_bytes());
    digest.encoded().chars().take(25).collect()
}

/// The named context for an `oci-layout://` value: the tag resolved to a digest in the
/// layout's `index.json` (a digest given is checked to be in the layout), under the layout's
/// store id. Errors name the value and what is missing.
pub fn named_context(value: &str) -> anyhow::Result<NamedContext> {
    let parsed = match LayoutRef::parse(value) {
        Some(parsed) => parsed?,
        None => anyhow::bail!("{value:?} is not an oci-layout:// context"),
    };
    let digest = resolve_digest(&parsed).map_err(|e| {
        anyhow::anyhow!("oci-layout reference {value:?} could not be resolved: {e}")
    })?;
    let reference = match &parsed.tag {
        Some(tag) => format!(":{tag}@{digest}"),
        None => format!("@{digest}"),
    };
    Ok(NamedContext::OciLayout {
        store: store_id(&parsed.path),
        reference,
    })
}

/// The layouts the build contexts lend, by store id (absolute directories).
pub fn stores(build_contexts: &[String]) -> BTreeMap<String, PathBuf> {
    build_contexts
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(_, v)| v))
        .filter_map(|v| LayoutRef::parse(v)?.ok())
        .map(|r| {
            let dir = std::path::absolute(&r.path).unwrap_or(r.path);
            (store_id(&dir), dir)
        })
        .collect()
}

/// The digest a layout reference names: the one it pins (which must be in the layout), else the
/// image its tag names in `index.json`.
fn resolve_digest(r: &LayoutRef) -> Result<Digest, String> {
    let dir = &r.path;
    if !dir.is_dir() {
        return Err(format!("OCI layout directory {} not found", dir.display()));
    }
    let store = kiln_worker::OciLayoutStore::new(dir);
    if let Some(digest) = &r.digest {
        if !store.has_blob(digest) {
            return Err(format!(
                "digest {digest} not found in OCI layout {}",
                dir.display()
            ));
        }
        return Ok(digest.clone());
    }
    let index_path = dir.join("index.json");
    let bytes = std::fs::read(&index_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{} is not an OCI layout: no index.json", dir.display())
        } else {
            format!("reading {}: {e}", index_path.display())
        }
    })?;
    let index: kiln_registry::Index = serde_json::from_slice(&bytes)
        .map_err(|e| format!("invalid {}: {e}", index_path.display()))?;
    let tag = r.tag_or_latest();
    let named = |key: &str| {
        index
            .manifests
            .iter()
            .find(|m| m.annotations.get(key).map(String::as_str) == Some(tag))
    };
    if let Some(found) = named(IMAGE_NAME_ANNOTATION).or_else(|| named(REF_NAME_ANNOTATION)) {
        return Ok(found.digest.clone());
    }
    // A layout holding one image: buildx takes it whatever the tag. kiln does when no tag was
    // given or the image has no name, and refuses an explicit tag the image does not carry.
    if let [single] = index.manifests.as_slice() {
        let unnamed = !single.annotations.contains_key(IMAGE_NAME_ANNOTATION)
            && !single.annotations.contains_key(REF_NAME_ANNOTATION);
        if r.tag.is_none() || unnamed {
            return Ok(single.digest.clone());
        }
    }
    let mut tags: Vec<&str> = index
        .manifests
        .iter()
        .filter_map(|m| m.annotations.get(REF_NAME_ANNOTATION).map(String::as_str))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    let known = if tags.is_empty() {
        "it has no tagged images".to_string()
    } else {
        format!("its tags: {}", tags.join(", "))
    };
    Err(format!(
        "tag {tag:?} not found in OCI layout {} ({known})",
        dir.display()
    ))
}

/// Image configs from the layouts lent to the build, for the frontend (BuildKit's `oci-layout`
/// resolver type). Each image is looked up once per build and platform, reported as
/// `[context NAME] load metadata for REF`.
pub struct LayoutResolver {
    layouts: BTreeMap<String, PathBuf>,
    loads: MetadataLoads,
}

impl LayoutResolver {
    /// A resolver over `layouts` (store id → directory), sharing the build's `loads`.
    pub fn new(layouts: BTreeMap<String, PathBuf>, loads: MetadataLoads) -> LayoutResolver {
        LayoutResolver { layouts, loads }
    }

    /// Resolves `reference` (`NAME@DIGEST`) in the layout lent as `store`, for `platform`.
    pub fn resolve(
        &self,
        name: &str,
        store: &str,
        reference: &str,
        platform: &Platform,
    ) -> impl Future<Output = Result<ResolvedImage, ResolveError>> + Send + use<> {
        let dir = self.layouts.get(store).cloned();
        let loads = self.loads.clone();
        let label = format!("[context {name}] load metadata for {reference}");
        let key = format!("oci-layout://{store}/{reference}");
        let store = store.to_string();
        let reference = reference.to_string();
        let platform = platform.clone();
        async move {
            loads
                .load(key, &platform, label, || {
                    resolve_config(dir, &store, &reference, &platform)
                })
                .await
        }
    }
}

/// Reads the manifest for `platform` and its config from the layout in `dir`.
async fn resolve_config(
    dir: Option<PathBuf>,
    store: &str,
    reference: &str,
    platform: &Platform,
) -> Result<ResolvedImage, String> {
    let dir = dir.ok_or_else(|| format!("no OCI layout was lent to the build as {store:?}"))?;
    let parsed = Reference::parse(reference).map_err(|e| format!("{reference}: {e}"))?;
    let store = kiln_worker::OciLayoutStore::new(dir);
    let resolved = store
        .resolve(&parsed, platform)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ResolvedImage {
        reference: reference.to_string(),
        digest: parsed.digest().cloned(),
        config: Some(resolved.config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn check_parse(value: &str, expected: &str) -> Option<String> {
        let got = match LayoutRef::parse(value) {
            None => "not a layout".to_string(),
            Some(Err(e)) => format!("error {e:#}"),
            Some(Ok(r)) => format!(
                "path {} tag {} digest {}",
                r.path.display(),
                r.tag.as_deref().unwrap_or("-"),
                r.digest.as_ref().map_or("-", Digest::as_str)
            ),
        };
        (got != expected).then(|| format!("{value}: got {got:?}, want {expected:?}"))
    }

    #[test]
    fn parse() {
        let cases = [
            ("oci-layout:///l", "path /l tag - digest -".to_string()),
            ("oci-layout://./l:v1", "path ./l tag v1 digest -".to_string()),
            (
                "oci-layout:///a:b/l",
                "path /a:b/l tag - digest -".to_string(),
            ),
            (
                &format!("oci-layout:///l@{D1}"),
                format!("path /l tag - digest {D1}"),
            ),
            (
                &format!("oci-layout:///l:v1@{D1}"),
                format!("path /l tag v1 digest {D1}"),
            ),
            (
                "oci-layout:///l@sha256:12",
                "error invalid context value \"oci-layout:///l@sha256:12\": digest \"sha256:12\": invalid checksum digest length".to_string(),
            ),
            (
                "oci-layout://",
                "error invalid context value \"oci-layout://\": empty layout path".to_string(),
            ),
            (
                "oci-layout:///l:",
                "error invalid context value \"oci-layout:///l:\": empty tag".to_string(),
            ),
            ("docker-image://busybox", "not a layout".to_string()),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(value, expected)| check_parse(value, expected))
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Writes a layout whose `index.json` has `entries` (digest, annotations) and a blob for
    /// each digest, then resolves `spec` (the part after `PATH`) in it.
    fn check_resolve(
        entries: &[(&str, &[(&str, &str)])],
        spec: &str,
        expected: &str,
    ) -> Option<String> {
        let dir = tempfile::tempdir().expect("layout");
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .map(|(digest, annotations)| {
                let annotations: serde_json::Map<String, serde_json::Value> = annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                    .collect();
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "size": 1,
                    "annotations": annotations,
                })
            })
            .collect();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
        std::fs::write(dir.path().join("index.json"), index.to_string()).expect("index");
        let blobs = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).expect("blobs");
        for (digest, _) in entries {
            let hex = digest.trim_start_matches("sha256:");
            std::fs::write(blobs.join(hex), b"x").expect("blob");
        }
        let value = format!("oci-layout://{}{spec}", dir.path().display());
        let got = match named_context(&value) {
            Ok(NamedContext::OciLayout { reference, .. }) => reference,
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("{e:#}")
                .replace(&value, "VALUE")
                .replace(&dir.path().display().to_string(), "DIR"),
        };
        (got != expected).then(|| format!("{spec}: got {got:?}, want {expected:?}"))
    }

    #[test]
    fn resolve() {
        let v1: &[(&str, &str)] = &[(REF_NAME_ANNOTATION, "v1")];
        let v2: &[(&str, &str)] = &[(REF_NAME_ANNOTATION, "v2")];
        let latest: &[(&str, &str)] = &[(REF_NAME_ANNOTATION, "latest")];
        let containerd: &[(&str, &str)] = &[
            (IMAGE_NAME_ANNOTATION, "v1"),
            (REF_NAME_ANNOTATION, "other"),
        ];
        let none: &[(&str, &str)] = &[];
        /// The entries of `index.json`, the part of the value after the path, and what it gives.
        type Case<'a> = (Vec<Entry<'a>>, String, String);
        type Entry<'a> = (&'a str, &'a [(&'a str, &'a str)]);
        let cases: Vec<Case> = vec![
            (vec![(D1, v1), (D2, v2)], ":v2".into(), format!(":v2@{D2}")),
            (vec![(D1, v1), (D2, latest)], "".into(), format!("@{D2}")),
            (vec![(D2, v2), (D1, containerd)], ":v1".into(), format!(":v1@{D1}")),
            (vec![(D1, v1)], "".into(), format!("@{D1}")),
            (vec![(D1, none)], ":anything".into(), format!(":anything@{D1}")),
            (vec![(D1, v1)], format!("@{D2}"), "oci-layout reference \"VALUE\" could not be resolved: digest sha256:2222222222222222222222222222222222222222222222222222222222222222 not found in OCI layout DIR".into()),
            (vec![(D1, v1), (D2, v2)], format!("@{D1}"), format!("@{D1}")),
            (vec![(D1, v1), (D2, v2)], format!(":v2@{D1}"), format!(":v2@{D1}")),
            (
                vec![(D1, v1)],
                ":v3".into(),
                "oci-layout reference \"VALUE\" could not be resolved: tag \"v3\" not found in OCI layout DIR (its tags: v1)".into(),
            ),
            (
                vec![(D1, v1), (D2, v2)],
                "".into(),
                "oci-layout reference \"VALUE\" could not be resolved: tag \"latest\" not found in OCI layout DIR (its tags: v1, v2)".into(),
            ),
            (
                vec![],
                ":v1".into(),
                "oci-layout reference \"VALUE\" could not be resolved: tag \"v1\" not found in OCI layout DIR (it has no tagged images)".into(),
            ),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(entries, spec, expected)| check_resolve(entries, spec, expected))
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn missing_layouts() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("nope");
        let cases = [
            (
                format!("oci-layout://{}:v1", missing.display()),
                format!("OCI layout directory {} not found", missing.display()),
            ),
            (
                format!("oci-layout://{}", dir.path().display()),
                format!(
                    "{} is not an OCI layout: no index.json",
                    dir.path().display()
                ),
            ),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(value, expected)| {
                let got = match named_context(value) {
                    Ok(c) => format!("{c:?}"),
                    Err(e) => format!("{e:#}"),
                };
                let want =
                    format!("oci-layout reference {value:?} could not be resolved: {expected}");
                (got != want).then(|| format!("{value}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn store_ids_are_stable_and_lend_absolute_paths() {
        let a = store_id(Path::new("/layouts/a"));
        assert_eq!(a, store_id(Path::new("/layouts/a")));
        assert_ne!(a, store_id(Path::new("/layouts/b")));
        assert_eq!(a.len(), 25);
        let stores = stores(&[
            "base=oci-layout:///layouts/a:v1".to_string(),
            "other=docker-image://busybox".to_string(),
            "dir=./local".to_string(),
        ]);
        let want: BTreeMap<String, PathBuf> = [(a, PathBuf::from("/layouts/a"))].into();
        assert_eq!(stores, want);
    }
}
