//! OCI image layout directories: blobs, manifests, configs and `index.json`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use kiln_oci::{DEFAULT_PATH_ENV, Digest, History, Image, ImageConfig, Platform, RootFs};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::error::{Result, TestkitError, io_error};
use crate::layer::{self, Compression, FIXED_CREATED, Layer, LayerSource};

/// The annotation that names a tag in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// OCI media types.
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 media types.
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Which family of media types the manifests, configs and layers are written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaTypes {
    /// OCI image-spec media types.
    #[default]
    Oci,
    /// Docker's schema 2 media types (manifest list, `manifest.v2`, `container.image.v1`,
    /// `rootfs.diff.tar.gzip`), in an OCI layout, as `docker save` writes them. Docker has no
    /// zstd type: zstd layers keep the OCI one, as BuildKit does. skopeo cannot push such a
    /// layout; see [`push_layout_with`](crate::push_layout_with).
    Docker,
}

impl MediaTypes {
    fn index(self) -> &'static str {
        match self {
            MediaTypes::Oci => OCI_INDEX,
            MediaTypes::Docker => DOCKER_LIST,
        }
    }

    fn manifest(self) -> &'static str {
        match self {
            MediaTypes::Oci => OCI_MANIFEST,
            MediaTypes::Docker => DOCKER_MANIFEST,
        }
    }

    fn config(self) -> &'static str {
        match self {
            MediaTypes::Oci => OCI_CONFIG,
            MediaTypes::Docker => DOCKER_CONFIG,
        }
    }

    fn layer(self, compression: Compression) -> &'static str {
        match (self, compression) {
            (MediaTypes::Oci, Compression::None) => OCI_LAYER,
            (MediaTypes::Oci, Compression::Gzip) => OCI_LAYER_GZIP,
            (MediaTypes::Docker, Compression::None) => DOCKER_LAYER,
            (MediaTypes::Docker, Compression::Gzip) => DOCKER_LAYER_GZIP,
            (_, Compression::Zstd) => OCI_LAYER_ZSTD,
        }
    }
}

/// A blob written to a layout: its media type, digest and size (an OCI descriptor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// The media type.
    pub media_type: String,
    /// The digest of the blob as stored.
    pub digest: Digest,
    /// The size of the blob as stored, in bytes.
    pub size: u64,
}

/// A layer written to a layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltLayer {
    /// The (compressed) layer blob.
    pub blob: BlobRef,
    /// The digest of the uncompressed tar, as the config's `rootfs.diff_ids` lists it.
    pub diff_id: Digest,
}

/// An image written to a layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltImage {
    /// The platform the config states.
    pub platform: Platform,
    /// The manifest blob.
    pub manifest: BlobRef,
    /// The config blob.
    pub config: BlobRef,
    /// The layers, bottom first.
    pub layers: Vec<BuiltLayer>,
}

/// A multi-platform image (an index) written to a layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltIndex {
    /// The index blob.
    pub index: BlobRef,
    /// The images it lists, in order.
    pub images: Vec<BuiltImage>,
}

/// Builds a single-platform image into an OCI image layout directory.
///
/// The config is realistic: `Env` holds BuildKit's default `PATH`, `Cmd` is `["sh"]`, every
/// layer has a history entry (and `Cmd` an empty-layer one), `rootfs.diff_ids` lists the
/// layers' uncompressed digests, and `created` is [`FIXED_CREATED`]. The bytes are
/// deterministic: the same builder always writes the same blobs.
#[derive(Debug, Clone)]
pub struct OciImageBuilder {
    platform: Platform,
    layers: Vec<Layer>,
    config: ImageConfig,
    media_types: MediaTypes,
}

impl OciImageBuilder {
    /// An image for `platform` with no layers yet.
    pub fn new(platform: Platform) -> OciImageBuilder {
        let config = ImageConfig {
            env: vec![format!("PATH={DEFAULT_PATH_ENV}")],
            cmd: Some(vec!["sh".to_owned()]),
            ..ImageConfig::default()
        };
        OciImageBuilder {
            platform,
            layers: Vec::new(),
            config,
            media_types: MediaTypes::Oci,
        }
    }

    /// Adds a layer on top of the previous ones.
    pub fn layer(mut self, layer: Layer) -> OciImageBuilder {
        self.layers.push(layer);
        self
    }

    /// Changes the runtime config (`Env`, `Cmd`, `User`, `WorkingDir`, ...).
    pub fn config(mut self, change: impl FnOnce(&mut ImageConfig)) -> OciImageBuilder {
        change(&mut self.config);
        self
    }

    /// Writes Docker schema 2 or OCI media types (OCI by default).
    pub fn media_types(mut self, media_types: MediaTypes) -> OciImageBuilder {
        self.media_types = media_types;
        self
    }

    /// The platform the image is for.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Writes the image's blobs into `layout_dir` (created if needed) and tags the manifest
    /// `tag` in its `index.json`, replacing an earlier entry with the same tag.
    pub fn write(&self, layout_dir: &Path, tag: &str) -> Result<BuiltImage> {
        let layout = Layout::create(layout_dir)?;
        let built = self.write_blobs(&layout, &mut Vec::new())?;
        let mut descriptor = descriptor_json(&built.manifest);
        descriptor["platform"] = platform_json(&built.platform);
        layout.tag(tag, descriptor)?;
        Ok(built)
    }

    fn write_blobs(
        &self,
        layout: &Layout,
        cache: &mut Vec<(Layer, BuiltLayer)>,
    ) -> Result<BuiltImage> {
        let mut layers = Vec::new();
        for layer in &self.layers {
            let cached = cache
                .iter()
                .find(|(l, _)| l == layer)
                .map(|(_, b)| b.clone());
            let built = match cached {
                Some(built) => built,
                None => {
                    let built = layout.write_layer(layer, self.media_types)?;
                    cache.push((layer.clone(), built.clone()));
                    built
                }
            };
            layers.push(built);
        }
        let mut history: Vec<History> = layers
            .iter()
            .map(|layer| History {
                created: Some(FIXED_CREATED.to_owned()),
                created_by: format!(
                    "/bin/sh -c #(nop) ADD file:{} in / ",
                    layer.diff_id.encoded()
                ),
                ..History::default()
            })
            .collect();
        if let Some(cmd) = &self.config.cmd {
            let cmd = serde_json::to_string(cmd).unwrap_or_default();
            history.push(History {
                created: Some(FIXED_CREATED.to_owned()),
                created_by: format!("/bin/sh -c #(nop)  CMD {cmd}"),
                empty_layer: true,
                ..History::default()
            });
        }
        let image = Image {
            architecture: self.platform.architecture.clone(),
            os: self.platform.os.clone(),
            variant: self.platform.variant.clone(),
            config: self.config.clone(),
            created: Some(FIXED_CREATED.to_owned()),
            history,
            rootfs: RootFs::layers(layers.iter().map(|l| l.diff_id.to_string()).collect()),
            ..Image::default()
        };
        let config_bytes = serde_json::to_vec(&image).map_err(|e| TestkitError::Invalid {
            what: "image config",
            message: e.to_string(),
        })?;
        let config = layout.write_blob(self.media_types.config(), &config_bytes)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": self.media_types.manifest(),
            "config": descriptor_json(&config),
            "layers": layers.iter().map(|l| descriptor_json(&l.blob)).collect::<Vec<_>>(),
        });
        let manifest = layout.write_json(self.media_types.manifest(), &manifest)?;
        Ok(BuiltImage {
            platform: self.platform.clone(),
            manifest,
            config,
            layers,
        })
    }
}

/// Writes a multi-platform image: each image's blobs, an index (or Docker manifest list)
/// listing their manifests with their platforms, and the tag `tag` in `index.json` pointing at
/// that index. Layers shared between the images are written once.
pub fn write_index(
    layout_dir: &Path,
    tag: &str,
    images: &[OciImageBuilder],
    media_types: MediaTypes,
) -> Result<BuiltIndex> {
    let layout = Layout::create(layout_dir)?;
    let mut cache = Vec::new();
    let mut built = Vec::new();
    for image in images {
        built.push(image.write_blobs(&layout, &mut cache)?);
    }
    let manifests: Vec<Value> = built
        .iter()
        .map(|image| {
            let mut descriptor = descriptor_json(&image.manifest);
            descriptor["platform"] = platform_json(&image.platform);
            descriptor
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_types.index(),
        "manifests": manifests,
    });
    let index = layout.write_json(media_types.index(), &index)?;
    layout.tag(tag, descriptor_json(&index))?;
    Ok(BuiltIndex {
        index,
        images: built,
    })
}

/// A descriptor as JSON, in the OCI field order.
fn descriptor_json(blob: &BlobRef) -> Value {
    json!({
        "mediaType": blob.media_type,
        "digest": blob.digest.as_str(),
        "size": blob.size,
    })
}

/// A platform as the `platform` object of a descriptor.
fn platform_json(platform: &Platform) -> Value {
    let mut value = json!({
        "architecture": platform.architecture,
        "os": platform.os,
    });
    if !platform.variant.is_empty() {
        value["variant"] = json!(platform.variant);
    }
    value
}

/// A layout directory being written.
struct Layout {
    dir: PathBuf,
    blobs: PathBuf,
}

impl Layout {
    fn create(dir: &Path) -> Result<Layout> {
        let blobs = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_error("creating directory", &blobs))?;
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(Layout {
            dir: dir.to_owned(),
            blobs,
        })
    }

    fn write_json(&self, media_type: &str, value: &Value) -> Result<BlobRef> {
        let bytes = serde_json::to_vec(value).map_err(|e| TestkitError::Invalid {
            what: "manifest",
            message: e.to_string(),
        })?;
        self.write_blob(media_type, &bytes)
    }

    fn write_blob(&self, media_type: &str, bytes: &[u8]) -> Result<BlobRef> {
        let digest = Digest::of_bytes(bytes);
        let path = self.blobs.join(digest.encoded());
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
        Ok(BlobRef {
            media_type: media_type.to_owned(),
            digest,
            size: bytes.len() as u64,
        })
    }

    /// Streams a layer through tar, the compressor and two hashes into a temporary file, then
    /// renames it to its digest.
    fn write_layer(&self, layer: &Layer, media_types: MediaTypes) -> Result<BuiltLayer> {
        let temp = tempfile::NamedTempFile::new_in(&self.blobs)
            .map_err(io_error("creating a temporary file in", &self.blobs))?;
        let file = temp
            .reopen()
            .map_err(io_error("opening", temp.path().to_owned()))?;
        let compressed = HashWriter::new(io::BufWriter::new(file));
        let encoder = Encoder::new(layer.compression, compressed).map_err(io_error(
            "starting compression into",
            temp.path().to_owned(),
        ))?;
        let tar = HashWriter::new(encoder);
        let tar = match &layer.source {
            LayerSource::Entries(entries) => layer::write_entries(entries, tar)?,
            LayerSource::Dir(dir) => layer::write_dir(dir, tar)?,
        };
        let (encoder, diff_id, _) = tar.finish()?;
        let compressed = encoder
            .finish()
            .map_err(io_error("compressing into", temp.path().to_owned()))?;
        let (mut file, digest, size) = compressed.finish()?;
        file.flush()
            .map_err(io_error("writing", temp.path().to_owned()))?;
        let path = self.blobs.join(digest.encoded());
        temp.persist(&path)
            .map_err(|e| io_error("renaming a blob to", &path)(e.error))?;
        Ok(BuiltLayer {
            blob: BlobRef {
                media_type: media_types.layer(layer.compression).to_owned(),
                digest,
                size,
            },
            diff_id,
        })
    }

    /// Points `tag` at `descriptor` in `index.json`, keeping the other tags.
    fn tag(&self, tag: &str, mut descriptor: Value) -> Result<()> {
        descriptor["annotations"] = json!({ REF_NAME_ANNOTATION: tag });
        let path = self.dir.join("index.json");
        let mut manifests = Vec::new();
        match fs::read(&path) {
            Ok(bytes) => {
                let index: Value =
                    serde_json::from_slice(&bytes).map_err(|e| TestkitError::Invalid {
                        what: "image layout",
                        message: format!("{}: {e}", path.display()),
                    })?;
                if let Some(entries) = index["manifests"].as_array() {
                    manifests.extend(
                        entries
                            .iter()
                            .filter(|m| m["annotations"][REF_NAME_ANNOTATION] != tag)
                            .cloned(),
                    );
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("reading", &path)(e)),
        }
        manifests.push(descriptor);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index).map_err(|e| TestkitError::Invalid {
            what: "image layout",
            message: e.to_string(),
        })?;
        write_atomic(&path, &bytes)
    }
}

/// Writes a file through a temporary file in the same directory and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .map_err(io_error("creating a temporary file in", dir))?;
    temp.write_all(bytes).map_err(io_error("writing", path))?;
    temp.persist(path)
        .map_err(|e| io_error("renaming into", path)(e.error))?;
    Ok(())
}

/// Passes bytes through to `inner`, hashing and counting them.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashWriter<W> {
    fn new(inner: W) -> HashWriter<W> {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> Result<(W, Digest, u64)> {
        let text = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        let digest = Digest::parse(&text).map_err(|e| TestkitError::Invalid {
            what: "digest",
            message: format!("{text}: {e}"),
        })?;
        Ok((self.inner, digest, self.size))
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or_default();
        self.hasher.update(written);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The compressor of a layer.
enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(compression: Compression, inner: W) -> io::Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::None(inner),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(inner, 3)?),
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(inner) => Ok(inner),
            Encoder::Gzip(encoder) => encoder.finish(),
            Encoder::Zstd(encoder) => encoder.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(inner) => inner.write(buf),
            Encoder::Gzip(encoder) => encoder.write(buf),
            Encoder::Zstd(encoder) => encoder.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(inner) => inner.flush(),
            Encoder::Gzip(encoder) => encoder.flush(),
            Encoder::Zstd(encoder) => encoder.flush(),
        }
    }
}
