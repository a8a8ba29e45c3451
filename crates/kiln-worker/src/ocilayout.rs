//! `oci-layout://…` sources: images read from an OCI image layout directory the client lends the
//! build (`--build-context NAME=oci-layout://PATH[:TAG|@DIGEST]`).
//!
//! BuildKit serves such an image with its ordinary image source and a different resolver: the
//! client registers the layout as a content store in its session, and the image source fetches
//! the manifest, the config and the layers from it instead of from a registry. kiln does the
//! same in process: [`OciLayoutStore`] implements [`kiln_registry::Registry`] on a layout
//! directory (manifests, configs and layers are read from `blobs/<algorithm>/<hex>`, every blob
//! verified against its digest), and an `oci-layout://` source is the image source of
//! `docker-image://` with that store as its registry. Pulling and unpacking are therefore the
//! same code, and so is the cache key (the manifest digest the reference is pinned to, and the
//! platform): an image read from a layout and the same image pulled from a registry share their
//! cache entry and their layer snapshots, as they do in BuildKit.
//!
//! The layout is read by digest only: the client resolves a tag to a digest in `index.json`
//! before the build (as buildx does), so the worker never looks at `index.json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_oci::{Digest, Image, Platform, Reference};
use kiln_registry::{
    BoxFuture, DOCKER_CONFIG, Descriptor, Document, DocumentError, MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE, Manifest, ManifestSource, OCI_CONFIG, Registry, RegistryError, Resolved,
    Verifier, parse_document, select_manifest,
};
use tokio::io::AsyncReadExt as _;

use crate::Parts;
use crate::error::{Error, Result};
use crate::ops::ImageSource;
use crate::session::Session;

/// The size of the chunks a layer is read in.
const CHUNK: usize = 1 << 20;

/// The LLB attribute naming the layout's store id in the session.
const STORE_ATTR: &str = "oci.store";

/// The LLB attribute limiting the number of layers used.
const LAYER_LIMIT_ATTR: &str = "oci.layerlimit";

/// An OCI image layout directory read as a registry: by digest, every blob verified.
///
/// Reading never writes to the directory (no lock file, unlike BuildKit's client): the layout
/// may be read-only or shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLayoutStore {
    dir: PathBuf,
}

impl OciLayoutStore {
    /// A store reading the layout in `dir`. Nothing is read until it is used.
    pub fn new(dir: impl Into<PathBuf>) -> OciLayoutStore {
        OciLayoutStore { dir: dir.into() }
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `digest` is stored (`blobs/<algorithm>/<hex>`).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.encoded())
    }

    /// Whether the layout holds the blob `digest` (without verifying it).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// How errors name the layout: `OCI layout /path`.
    fn name(&self) -> String {
        format!("OCI layout {}", self.dir.display())
    }

    fn io_error(&self, digest: &Digest, e: &std::io::Error) -> RegistryError {
        if e.kind() == std::io::ErrorKind::NotFound {
            return RegistryError::BlobNotFound {
                repository: self.name(),
                digest: digest.clone(),
            };
        }
        RegistryError::Server {
            registry: self.name(),
            reference: digest.to_string(),
            message: format!("reading {}: {e}", self.blob_path(digest).display()),
        }
    }

    /// Reads a small blob (a manifest, an index, a config) whole, refusing one larger than
    /// `limit`, and verifies it against its digest.
    async fn read_small(
        &self,
        digest: &Digest,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let path = self.blob_path(digest);
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| self.io_error(digest, &e))?;
        if meta.len() > limit {
            return Err(RegistryError::TooLarge {
                what: format!("{what} {digest} in {}", self.name()),
                size: meta.len(),
                limit,
            });
        }
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| self.io_error(digest, &e))?;
        let mut hasher = Verifier::new(digest);
        hasher.update(&bytes);
        let actual = hasher.finish();
        if actual != digest.as_str() {
            return Err(self.mismatch(digest, actual));
        }
        Ok(bytes)
    }

    fn mismatch(&self, digest: &Digest, actual: String) -> RegistryError {
        RegistryError::DigestMismatch {
            what: format!("blob {digest} in {}", self.name()),
            expected: digest.clone(),
            actual,
        }
    }

    /// Reads a manifest or index, checking the size its descriptor states when there is one.
    async fn read_document(
        &self,
        digest: &Digest,
        expected: Option<&Descriptor>,
    ) -> Result<(Vec<u8>, Document), RegistryError> {
        let bytes = self
            .read_small(digest, MAX_MANIFEST_SIZE, "manifest")
            .await?;
        if let Some(d) = expected
            && d.size != bytes.len() as u64
        {
            return Err(RegistryError::SizeMismatch {
                what: format!("manifest {digest} in {}", self.name()),
                expected: d.size,
                actual: bytes.len() as u64,
            });
        }
        let reference = format!("{digest} in {}", self.name());
        let document = parse_document(&bytes).map_err(|e| match e {
            DocumentError::UnsupportedMediaType(media_type) => RegistryError::UnsupportedManifest {
                reference,
                media_type,
            },
            DocumentError::Invalid(message) => {
                RegistryError::InvalidManifest { reference, message }
            }
        })?;
        Ok((bytes, document))
    }

    /// Reads and parses the config a manifest names.
    async fn read_config(&self, manifest: &Manifest) -> Result<(Vec<u8>, Image), RegistryError> {
        let descriptor = &manifest.config;
        if descriptor.media_type != OCI_CONFIG && descriptor.media_type != DOCKER_CONFIG {
            return Err(RegistryError::UnsupportedConfig {
                reference: format!("{} in {}", descriptor.digest, self.name()),
                media_type: descriptor.media_type.clone(),
            });
        }
        let bytes = self
            .read_small(&descriptor.digest, MAX_CONFIG_SIZE, "config")
            .await?;
        let config = serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidConfig {
            reference: self.name(),
            digest: descriptor.digest.clone(),
            message: e.to_string(),
        })?;
        Ok((bytes, config))
    }

    async fn resolve_inner(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Resolved, RegistryError> {
        let Some(top) = reference.digest() else {
            return Err(RegistryError::NotFound {
                reference: format!(
                    "{reference} in {} (a layout is read by digest)",
                    self.name()
                ),
            });
        };
        let (bytes, document) = self.read_document(top, None).await?;
        let selected = select_manifest(self, top.clone(), bytes, document, platform).await?;
        Ok(Resolved {
            reference: reference.clone(),
            manifest_digest: selected.digest,
            manifest: selected.manifest,
            manifest_bytes: selected.bytes,
            config_bytes: selected.config_bytes,
            config: selected.config,
        })
    }

    async fn fetch_inner(
        &self,
        descriptor: &Descriptor,
        out: &mut (dyn Write + Send),
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let digest = &descriptor.digest;
        let mut file = tokio::fs::File::open(self.blob_path(digest))
            .await
            .map_err(|e| self.io_error(digest, &e))?;
        let mut hasher = Verifier::new(digest);
        let mut buf = vec![0u8; CHUNK];
        let mut total: u64 = 0;
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| self.io_error(digest, &e))?;
            if n == 0 {
                break;
            }
            let chunk = buf.get(..n).unwrap_or_default();
            total += n as u64;
            if total > descriptor.size {
                return Err(RegistryError::SizeMismatch {
                    what: format!("blob {digest} in {}", self.name()),
                    expected: descriptor.size,
                    actual: total,
                });
            }
            hasher.update(chunk);
            out.write_all(chunk)
                .map_err(|source| RegistryError::Write {
                    digest: digest.clone(),
                    source,
                })?;
            progress(total);
        }
        if total != descriptor.size {
            return Err(RegistryError::SizeMismatch {
                what: format!("blob {digest} in {}", self.name()),
                expected: descriptor.size,
                actual: total,
            });
        }
        let actual = hasher.finish();
        if actual != digest.as_str() {
            return Err(self.mismatch(digest, actual));
        }
        Ok(())
    }
}

impl ManifestSource for OciLayoutStore {
    fn child<'a>(
        &'a self,
        entry: &'a Descriptor,
    ) -> BoxFuture<'a, Result<(Vec<u8>, Document), RegistryError>> {
        Box::pin(self.read_document(&entry.digest, Some(entry)))
    }

    fn config<'a>(
        &'a self,
        manifest: &'a Manifest,
        _digest: &'a Digest,
    ) -> BoxFuture<'a, Result<(Vec<u8>, Image), RegistryError>> {
        Box::pin(self.read_config(manifest))
    }

    fn shown(&self, digest: &Digest) -> String {
        format!("{digest} in {}", self.name())
    }
}

impl Registry for OciLayoutStore {
    /// Resolves `reference`, which must carry a digest (its name is only shown), to the image
    /// manifest and config for `platform`, with the registry client's rules for indexes.
    fn resolve<'a>(
        &'a self,
        reference: &'a Reference,
        platform: &'a Platform,
    ) -> BoxFuture<'a, kiln_registry::Result<Resolved>> {
        Box::pin(self.resolve_inner(reference, platform))
    }

    /// Copies the blob into `out`, verifying its size and digest while it streams.
    fn fetch_blob<'a>(
        &'a self,
        _reference: &'a Reference,
        descriptor: &'a Descriptor,
        out: &'a mut (dyn Write + Send),
        progress: &'a (dyn Fn(u64) + Send + Sync),
    ) -> BoxFuture<'a, kiln_registry::Result<()>> {
        Box::pin(self.fetch_inner(descriptor, out, progress))
    }
}

/// The image source of an `oci-layout://NAME@DIGEST` LLB source: the `docker-image://` source
/// reading from the layout the session lends under the source's store id (`oci.store`).
pub(crate) fn image_source(
    parts: &Arc<Parts>,
    identifier: &str,
    attrs: &BTreeMap<String, String>,
    platform: Platform,
    session: &Session,
) -> Result<ImageSource> {
    let spec = identifier
        .strip_prefix("oci-layout://")
        .unwrap_or(identifier);
    let reference = Reference::parse(spec)
        .map_err(|e| Error::Invalid(format!("invalid oci-layout reference {spec:?}: {e}")))?;
    if reference.digest().is_none() {
        return Err(Error::Invalid(format!(
            "oci-layout reference {spec:?} has no digest"
        )));
    }
    if attrs.contains_key(LAYER_LIMIT_ATTR) {
        return Err(Error::Unsupported(format!(
            "{LAYER_LIMIT_ATTR} is not supported by kiln yet ({spec})"
        )));
    }
    let store = attrs.get(STORE_ATTR).map(String::as_str).unwrap_or("");
    let dir = session.oci_layouts.get(store).ok_or_else(|| {
        Error::Invalid(format!(
            "no OCI layout store {store:?} was given for the build (needed by {spec})"
        ))
    })?;
    Ok(ImageSource {
        parts: Arc::clone(parts),
        identifier: identifier.to_string(),
        reference,
        platform,
        registry: Arc::new(OciLayoutStore::new(dir.clone())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_testkit::{Layer, MediaTypes, OciImageBuilder, TarEntry, write_index};

    /// A layout with a single-platform image (`single`, linux/amd64, with `ENV FOO=bar`) and a
    /// two-platform index (`multi`: linux/amd64 and linux/arm64, each with a file naming its
    /// architecture).
    struct Fixture {
        dir: tempfile::TempDir,
        single: kiln_testkit::BuiltImage,
        multi: kiln_testkit::BuiltIndex,
    }

    fn image(arch: &str) -> OciImageBuilder {
        OciImageBuilder::new(Platform::new("linux", arch, ""))
            .layer(Layer::entries(vec![TarEntry::file("arch", arch)]))
            .config(|c| c.env.push("FOO=bar".to_string()))
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("layout dir");
        let single = image("amd64").write(dir.path(), "single").expect("single");
        let multi = write_index(
            dir.path(),
            "multi",
            &[image("amd64"), image("arm64")],
            MediaTypes::Oci,
        )
        .expect("index");
        Fixture { dir, single, multi }
    }

    fn reference(digest: &Digest) -> Reference {
        Reference::parse(&format!("base@{digest}")).expect("reference")
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// What resolving gave: `manifest <digest> arch <arch> env <env>` or the error message, with
    /// the layout directory shown as `LAYOUT`.
    fn resolved_text(f: &Fixture, result: kiln_registry::Result<Resolved>) -> String {
        let text = match result {
            Ok(r) => format!(
                "manifest {} arch {} env {}",
                r.manifest_digest,
                r.config.architecture,
                r.config.config.env.join(",")
            ),
            Err(e) => e.to_string(),
        };
        text.replace(&f.dir.path().display().to_string(), "LAYOUT")
    }

    /// Resolves `reference` for `platform` after `damage` has been done to the layout, and
    /// compares the outcome with `expected` (built from the fixture's digests).
    fn check_resolve(
        damage: impl Fn(&Fixture),
        reference: impl Fn(&Fixture) -> Reference,
        platform: &str,
        expected: impl Fn(&Fixture) -> String,
    ) -> Option<String> {
        let f = fixture();
        damage(&f);
        let store = OciLayoutStore::new(f.dir.path());
        let platform = Platform::parse(platform).expect("platform");
        let reference = reference(&f);
        let got = resolved_text(&f, runtime().block_on(store.resolve(&reference, &platform)));
        let want = expected(&f);
        (got != want).then(|| format!("{reference} for {platform}:\n  got  {got}\n  want {want}"))
    }

    fn corrupt(path: &Path) {
        let _ = std::fs::remove_file(path);
        std::fs::write(path, b"not what the digest says").expect("corrupt blob");
    }

    #[test]
    fn resolve() {
        let none = |_: &Fixture| {};
        type Case = (
            &'static str,
            Box<dyn Fn(&Fixture)>,
            Box<dyn Fn(&Fixture) -> Reference>,
            &'static str,
            Box<dyn Fn(&Fixture) -> String>,
        );
        let cases: Vec<Case> = vec![
            (
                "single-platform manifest",
                Box::new(none),
                Box::new(|f| reference(&f.single.manifest.digest)),
                "linux/amd64",
                Box::new(|f| {
                    format!(
                        "manifest {} arch amd64 env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,FOO=bar",
                        f.single.manifest.digest
                    )
                }),
            ),
            (
                "a manifest is taken whatever its platform",
                Box::new(none),
                Box::new(|f| reference(&f.single.manifest.digest)),
                "linux/arm64",
                Box::new(|f| {
                    format!(
                        "manifest {} arch amd64 env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,FOO=bar",
                        f.single.manifest.digest
                    )
                }),
            ),
            (
                "index, arm64 entry",
                Box::new(none),
                Box::new(|f| reference(&f.multi.index.digest)),
                "linux/arm64",
                Box::new(|f| {
                    let m = f.multi.images.get(1).expect("arm64");
                    format!(
                        "manifest {} arch arm64 env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,FOO=bar",
                        m.manifest.digest
                    )
                }),
            ),
            (
                "index, amd64 entry",
                Box::new(none),
                Box::new(|f| reference(&f.multi.index.digest)),
                "linux/amd64",
                Box::new(|f| {
                    let m = f.multi.images.first().expect("amd64");
                    format!(
                        "manifest {} arch amd64 env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,FOO=bar",
                        m.manifest.digest
                    )
                }),
            ),
            (
                "index without the platform",
                Box::new(none),
                Box::new(|f| reference(&f.multi.index.digest)),
                "linux/s390x",
                Box::new(|f| {
                    format!(
                        "no match for platform linux/s390x in {} in OCI layout LAYOUT (the index has linux/amd64, linux/arm64)",
                        f.multi.index.digest
                    )
                }),
            ),
            (
                "no digest",
                Box::new(none),
                Box::new(|_| Reference::parse("base:v1").expect("reference")),
                "linux/amd64",
                Box::new(|_| {
                    "docker.io/library/base:v1 in OCI layout LAYOUT (a layout is read by digest): not found"
                        .to_string()
                }),
            ),
            (
                "digest not in the layout",
                Box::new(none),
                Box::new(|_| reference(&Digest::of_bytes(b"elsewhere"))),
                "linux/amd64",
                Box::new(|_| {
                    format!(
                        "blob {} not found in OCI layout LAYOUT",
                        Digest::of_bytes(b"elsewhere")
                    )
                }),
            ),
            (
                "corrupt config",
                Box::new(|f: &Fixture| {
                    corrupt(&OciLayoutStore::new(f.dir.path()).blob_path(&f.single.config.digest))
                }),
                Box::new(|f| reference(&f.single.manifest.digest)),
                "linux/amd64",
                Box::new(|f| {
                    format!(
                        "digest mismatch for blob {d} in OCI layout LAYOUT: expected {d}, got {}",
                        Digest::of_bytes(b"not what the digest says"),
                        d = f.single.config.digest
                    )
                }),
            ),
            (
                "corrupt manifest",
                Box::new(|f: &Fixture| {
                    corrupt(&OciLayoutStore::new(f.dir.path()).blob_path(&f.single.manifest.digest))
                }),
                Box::new(|f| reference(&f.single.manifest.digest)),
                "linux/amd64",
                Box::new(|f| {
                    format!(
                        "digest mismatch for blob {d} in OCI layout LAYOUT: expected {d}, got {}",
                        Digest::of_bytes(b"not what the digest says"),
                        d = f.single.manifest.digest
                    )
                }),
            ),
            (
                "a layer is not a manifest",
                Box::new(none),
                Box::new(|f| reference(&f.single.layers.first().expect("layer").blob.digest)),
                "linux/amd64",
                Box::new(|f| {
                    let d = &f.single.layers.first().expect("layer").blob.digest;
                    format!(
                        "invalid manifest {d} in OCI layout LAYOUT: expected value at line 1 column 1"
                    )
                }),
            ),
        ];
        let failures: Vec<String> = cases
            .into_iter()
            .filter_map(|(name, damage, reference, platform, expected)| {
                check_resolve(damage, reference, platform, expected).map(|e| format!("{name}: {e}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Fetches the single image's layer after `damage`, and compares the outcome (`ok <bytes>`
    /// or the error message) with `expected`.
    fn check_fetch(
        damage: impl Fn(&Fixture, &Path),
        expected: impl Fn(&Fixture) -> String,
    ) -> Option<String> {
        let f = fixture();
        let store = OciLayoutStore::new(f.dir.path());
        let layer = f.single.layers.first().expect("layer");
        let path = store.blob_path(&layer.blob.digest);
        let original = std::fs::read(&path).expect("layer blob");
        damage(&f, &path);
        let descriptor = Descriptor::new(
            &layer.blob.media_type,
            layer.blob.digest.clone(),
            layer.blob.size,
        );
        let mut out = Vec::new();
        let last = std::sync::Mutex::new(0u64);
        let progress = |n: u64| {
            if let Ok(mut l) = last.lock() {
                *l = n;
            }
        };
        let reference = reference(&f.single.manifest.digest);
        let result =
            runtime().block_on(store.fetch_blob(&reference, &descriptor, &mut out, &progress));
        let got = match result {
            Ok(()) => format!(
                "ok {} bytes, same {}, progress {}",
                out.len(),
                out == original,
                last.lock().map(|l| *l).unwrap_or(0)
            ),
            Err(e) => e.to_string(),
        }
        .replace(&f.dir.path().display().to_string(), "LAYOUT");
        let want = expected(&f);
        (got != want).then(|| format!("got  {got}\n  want {want}"))
    }

    #[test]
    fn fetch() {
        type Case = (
            &'static str,
            Box<dyn Fn(&Fixture, &Path)>,
            Box<dyn Fn(&Fixture) -> String>,
        );
        let layer = |f: &Fixture| f.single.layers.first().expect("layer").blob.clone();
        let cases: Vec<Case> = vec![
            (
                "intact",
                Box::new(|_, _| {}),
                Box::new(move |f| {
                    let size = layer(f).size;
                    format!("ok {size} bytes, same true, progress {size}")
                }),
            ),
            (
                "missing",
                Box::new(|_, p| std::fs::remove_file(p).expect("remove")),
                Box::new(move |f| {
                    format!("blob {} not found in OCI layout LAYOUT", layer(f).digest)
                }),
            ),
            (
                "corrupt, same size",
                Box::new(|_, p| {
                    let mut bytes = std::fs::read(p).expect("read");
                    if let Some(b) = bytes.last_mut() {
                        *b ^= 0xff;
                    }
                    let actual = Digest::of_bytes(&bytes);
                    std::fs::remove_file(p).expect("remove");
                    std::fs::write(p, &bytes).expect("write");
                    std::fs::write(p.with_extension("actual"), actual.as_str()).expect("note");
                }),
                Box::new(move |f| {
                    let d = layer(f).digest;
                    let path = OciLayoutStore::new(f.dir.path()).blob_path(&d);
                    let actual =
                        std::fs::read_to_string(path.with_extension("actual")).unwrap_or_default();
                    format!(
                        "digest mismatch for blob {d} in OCI layout LAYOUT: expected {d}, got {actual}"
                    )
                }),
            ),
            (
                "longer than its descriptor",
                Box::new(|_, p| {
                    let mut bytes = std::fs::read(p).expect("read");
                    bytes.extend_from_slice(b"more");
                    std::fs::remove_file(p).expect("remove");
                    std::fs::write(p, &bytes).expect("write");
                }),
                Box::new(move |f| {
                    let l = layer(f);
                    format!(
                        "size mismatch for blob {} in OCI layout LAYOUT: expected {} bytes, got {}",
                        l.digest,
                        l.size,
                        l.size + 4
                    )
                }),
            ),
            (
                "shorter than its descriptor",
                Box::new(|_, p| {
                    let bytes = std::fs::read(p).expect("read");
                    std::fs::remove_file(p).expect("remove");
                    std::fs::write(p, bytes.get(..10).unwrap_or_default()).expect("write");
                }),
                Box::new(move |f| {
                    let l = layer(f);
                    format!(
                        "size mismatch for blob {} in OCI layout LAYOUT: expected {} bytes, got 10",
                        l.digest, l.size
                    )
                }),
            ),
        ];
        let failures: Vec<String> = cases
            .into_iter()
            .filter_map(|(name, damage, expected)| {
                check_fetch(damage, expected).map(|e| format!("{name}: {e}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
