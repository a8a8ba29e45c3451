//! Image assembly: a build result (a committed snapshot and its parent chain) and an image
//! config become a single-platform image whose blobs are all in the content store.
//!
//! One layer per snapshot of the chain, base first, as BuildKit's image writer
//! (`exporter/containerimage/writer.go`) does:
//!
//! - a snapshot unpacked from a pulled layer (it carries [`crate::usage::BLOB_LABEL`]) reuses
//!   that blob byte for byte, its media type from the blob's magic bytes, unless
//!   `force-compression` asks for the requested compression;
//! - any other snapshot is diffed against its parents (`kiln_diff::write_diff_overlay` on the
//!   upper directory, or `write_diff_dirs` for the copying snapshotter) and the tar streamed
//!   through `kiln_diff::compress` into a content-store writer, so the layer is never in
//!   memory and both digests come from the same pass.
//!
//! What a layer was made into is remembered in labels of its snapshot (blob digest, size and
//! `diff_id` per compression and level; the `diff_id` of a pulled blob), so exporting the same
//! result again does no diff and no compression, and gives the same manifest.
//!
//! The history entries of the config are matched to the layers with BuildKit's
//! `normalizeLayersAndHistory`: missing entries are added from the snapshots, superfluous
//! non-empty ones marked `empty_layer`, and missing times filled from the snapshots' creation
//! times, so a cached build exports to the same digest every time.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::time::SystemTime;

use kiln_diff::{Compressed, Compression, CompressionKind, DiffOpts, XattrPolicy};
use kiln_export::ExportedImage;
use kiln_oci::{Digest, History, Image};
use kiln_registry::Descriptor;
use kiln_snapshot::{Driver, Info};
use serde::Serialize;

use crate::Parts;
use crate::error::{Error, Result};
use crate::image_meta::ImageMeta;
use crate::refs::Ref;
use crate::usage::BLOB_LABEL;

/// The snapshot label holding the `diff_id` of the pulled blob a layer was unpacked from.
const DIFF_ID_LABEL: &str = "kiln.export.diffid";

/// The prefix of the snapshot labels naming the blob made for a compression
/// (`kiln.export.blob.gzip-6` → `DIGEST SIZE DIFF_ID`).
const BLOB_CACHE_PREFIX: &str = "kiln.export.blob.";

/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// How an image is assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageOptions {
    /// The compression of the layers kiln makes (`compression`, `compression-level`).
    pub compression: Compression,
    /// Recompress pulled layers too (`force-compression=true`).
    pub force_compression: bool,
    /// OCI media types for the manifest, config and layers (`oci-mediatypes=true`); Docker's
    /// otherwise. zstd layers always use OCI media types, as upstream.
    pub oci_mediatypes: bool,
}

impl Default for ImageOptions {
    /// gzip at level 6 (Go's default, BuildKit's), no forced recompression, Docker media types.
    fn default() -> ImageOptions {
        ImageOptions {
            compression: Compression::Gzip { level: 6 },
            force_compression: false,
            oci_mediatypes: false,
        }
    }
}

/// What an export did, for progress output and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// The layers diffed or recompressed by this export (blob digests).
    pub created: Vec<Digest>,
    /// How many layers reused a blob made earlier or pulled.
    pub reused: usize,
}

/// An assembled image and what assembling it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageExport {
    /// The image; every blob it names is in the content store.
    pub image: ExportedImage,
    /// What the export did.
    pub stats: ExportStats,
}

/// One layer's blob.
struct Layer {
    digest: Digest,
    size: u64,
    diff_id: Digest,
    kind: CompressionKind,
    /// The descriptor's annotations (eStargz's TOC digest and uncompressed size).
    annotations: BTreeMap<String, String>,
    created_at: SystemTime,
    /// Whether this export made the blob.
    fresh: bool,
}

/// Assembles the image of `result` with `config` (blocking: diffs and compresses).
pub(crate) fn export_image(
    parts: &Parts,
    result: &Ref,
    config: &Image,
    opts: &ImageOptions,
) -> Result<ImageExport> {
    export_image_with(parts, result, config, opts, &ImageMeta::default())
}

/// [`export_image`] with the epoch, annotations and build information of `meta`.
pub(crate) fn export_image_with(
    parts: &Parts,
    result: &Ref,
    config: &Image,
    opts: &ImageOptions,
    meta: &ImageMeta,
) -> Result<ImageExport> {
    let chain = match result.snapshot() {
        None => Vec::new(),
        Some(name) => snapshot_chain(parts, name)?,
    };
    let mut layers = Vec::with_capacity(chain.len());
    for i in 0..chain.len() {
        layers.push(layer_for(parts, &chain, i, opts, meta.layer_epoch())?);
    }
    // zstd and eStargz layers exist in OCI media types only (as BuildKit forces them).
    let oci = opts.oci_mediatypes
        || matches!(
            opts.compression,
            Compression::Zstd { .. } | Compression::Estargz { .. }
        )
        || layers.iter().any(|l| l.kind == CompressionKind::Zstd);
    let layer_descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| {
            let mut d = Descriptor::new(&layer_media_type(l.kind, oci), l.digest.clone(), l.size);
            d.annotations.clone_from(&l.annotations);
            d
        })
        .collect();
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();

    let created: Vec<String> = layers.iter().map(|l| rfc3339_nano(l.created_at)).collect();
    let mut image = config.clone();
    image.history = normalize_history(&config.history, &created);
    image.rootfs = kiln_oci::RootFs {
        kind: "layers".to_string(),
        diff_ids: diff_ids.iter().map(ToString::to_string).collect(),
    };
    if image.created.is_none() {
        image.created = image.history.iter().rev().find_map(|h| h.created.clone());
    }
    crate::image_meta::apply_epoch(&mut image, meta, &config.history);
    let config_json = crate::image_meta::config_json(&image, meta)?;
    let (config_digest, config_size) = parts.content.put(&config_json)?;
    let config_desc = Descriptor::new(
        if oci { OCI_CONFIG } else { DOCKER_CONFIG },
        config_digest,
        config_size,
    );
    let manifest_type = if oci { OCI_MANIFEST } else { DOCKER_MANIFEST };
    let manifest_json = manifest_json(
        manifest_type,
        &config_desc,
        &layer_descs,
        &meta.manifest_annotations,
    )?;
    let (manifest_digest, manifest_size) = parts.content.put(&manifest_json)?;
    let stats = ExportStats {
        created: layers
            .iter()
            .filter(|l| l.fresh)
            .map(|l| l.digest.clone())
            .collect(),
        reused: layers.iter().filter(|l| !l.fresh).count(),
    };
    Ok(ImageExport {
        image: ExportedImage {
            manifest: Descriptor::new(manifest_type, manifest_digest, manifest_size),
            manifest_json,
            config: config_desc,
            config_json,
            layers: layer_descs,
            diff_ids,
        },
        stats,
    })
}

/// The snapshot and its ancestors, base first.
fn snapshot_chain(parts: &Parts, name: &str) -> Result<Vec<Info>> {
    let mut chain = Vec::new();
    let mut next = Some(name.to_string());
    while let Some(n) = next {
        let info = parts.snapshots.stat(&n)?;
        next = info.parent.clone();
        chain.push(info);
    }
    chain.reverse();
    Ok(chain)
}

/// The media type of a layer blob.
fn layer_media_type(kind: CompressionKind, oci: bool) -> String {
    match (kind, oci) {
        (CompressionKind::Uncompressed, false) => {
            "application/vnd.docker.image.rootfs.diff.tar".to_string()
        }
        (CompressionKind::Gzip, false) => {
            "application/vnd.docker.image.rootfs.diff.tar.gzip".to_string()
        }
        (kind, _) => format!(
            "application/vnd.oci.image.layer.v1.tar{}",
            kind.media_type_suffix()
        ),
    }
}

/// The label naming the blob made for a compression (and the epoch its file times were
/// clamped to, `rewrite-timestamp`: a blob made with another epoch, or none, is another blob).
fn cache_label(c: Compression, epoch: Option<i64>) -> String {
    let what = match c {
        Compression::Uncompressed => "uncompressed".to_string(),
        Compression::Gzip { level } => format!("gzip-{}", level.min(9)),
        Compression::Zstd { level } => format!("zstd-{level}"),
        Compression::Estargz { level } => format!("estargz-{}", level.min(9)),
    };
    match epoch {
        Some(e) => format!("{BLOB_CACHE_PREFIX}{what}.epoch-{e}"),
        None => format!("{BLOB_CACHE_PREFIX}{what}"),
    }
}

/// Parses `DIGEST SIZE DIFF_ID`.
fn parse_cached(value: &str) -> Option<(Digest, u64, Digest, BTreeMap<String, String>)> {
    let mut it = value.split_whitespace();
    let digest = Digest::parse(it.next()?).ok()?;
    let size = it.next()?.parse().ok()?;
    let diff_id = Digest::parse(it.next()?).ok()?;
    // Then the descriptor's annotations, `key=value` each (keys and values without spaces).
    let annotations = it
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect::<Option<BTreeMap<_, _>>>()?;
    Some((digest, size, diff_id, annotations))
}

/// The label value [`parse_cached`] reads.
fn cached_value(made: &Compressed) -> String {
    let mut value = format!("{} {} {}", made.digest, made.size, made.diff_id);
    for (k, v) in &made.annotations {
        value.push_str(&format!(" {k}={v}"));
    }
    value
}

/// The blob of layer `i` of `chain`: reused when possible, made otherwise.
fn layer_for(
    parts: &Parts,
    chain: &[Info],
    i: usize,
    opts: &ImageOptions,
    epoch: Option<i64>,
) -> Result<Layer> {
    let info = chain
        .get(i)
        .ok_or_else(|| Error::Invalid(format!("layer {i} is not in the snapshot chain")))?;
    let pulled = info
        .labels
        .get(BLOB_LABEL)
        .and_then(|d| Digest::parse(d).ok())
        .filter(|d| parts.content.exists(d).unwrap_or(false));

    // A pulled layer, as it is: always without `force-compression`, and with it when the
    // blob already has the wanted compression (BuildKit's `NeedsConversion`; a pulled gzip
    // blob is not known to be eStargz, so eStargz always converts).
    let pulled_kind = match &pulled {
        Some(blob) => Some(blob_kind(parts, blob)?),
        None => None,
    };
    let converts = |kind: CompressionKind| match opts.compression {
        Compression::Estargz { .. } => true,
        wanted => kind != wanted.kind(),
    };
    if let (Some(blob), Some(kind)) = (&pulled, pulled_kind)
        && (!opts.force_compression || !converts(kind))
    {
        let diff_id = match info
            .labels
            .get(DIFF_ID_LABEL)
            .and_then(|d| Digest::parse(d).ok())
        {
            Some(d) => d,
            None => {
                let d = blob_diff_id(parts, blob)?;
                let _ = parts.snapshots.update_labels(&info.name, |l| {
                    l.insert(DIFF_ID_LABEL.to_string(), d.to_string());
                });
                d
            }
        };
        return Ok(Layer {
            size: parts.content.size(blob)?,
            digest: blob.clone(),
            diff_id,
            annotations: BTreeMap::new(),
            kind,
            created_at: info.created,
            fresh: false,
        });
    }

    // A blob made by an earlier export with the same compression.
    // Pulled layers are the base image's: `rewrite-timestamp` leaves them alone, as BuildKit.
    let epoch = epoch.filter(|_| pulled.is_none());
    let label = cache_label(opts.compression, epoch);
    if let Some((digest, size, diff_id, annotations)) =
        info.labels.get(&label).and_then(|v| parse_cached(v))
        && parts.content.exists(&digest)?
        && parts.content.size(&digest)? == size
    {
        return Ok(Layer {
            digest,
            size,
            diff_id,
            annotations,
            kind: opts.compression.kind(),
            created_at: info.created,
            fresh: false,
        });
    }

    // Made now: recompressed from the pulled blob, or diffed.
    let made = match &pulled {
        Some(blob) => recompress(parts, blob, opts.compression)?,
        None => diff_and_compress(parts, chain, i, opts.compression, epoch)?,
    };
    let value = cached_value(&made);
    // Advisory: without the label the next export makes the blob again.
    let _ = parts.snapshots.update_labels(&info.name, |l| {
        l.insert(label, value);
    });
    Ok(Layer {
        digest: made.digest,
        size: made.size,
        diff_id: made.diff_id,
        annotations: made.annotations,
        kind: opts.compression.kind(),
        created_at: info.created,
        fresh: true,
    })
}

/// The compression of a blob in the store, from its magic bytes.
fn blob_kind(parts: &Parts, blob: &Digest) -> Result<CompressionKind> {
    let mut file = parts.content.open_blob(blob)?;
    let mut head = [0u8; 6];
    let mut filled = 0;
    while filled < head.len() {
        let rest = head.get_mut(filled..).unwrap_or_default();
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading", parts.content.path(blob), e)),
        }
    }
    Ok(kiln_diff::detect_compression(
        head.get(..filled).unwrap_or_default(),
    )?)
}

/// The `diff_id` of a pulled blob: the digest of its decompressed tar.
fn blob_diff_id(parts: &Parts, blob: &Digest) -> Result<Digest> {
    let file = parts.content.open_blob(blob)?;
    let (_, mut tar) = kiln_diff::decompress(BufReader::with_capacity(256 * 1024, file))?;
    let mut hashing = kiln_diff::HashingWriter::new(std::io::sink());
    std::io::copy(&mut tar, &mut hashing)
        .map_err(|e| Error::io("decompressing", parts.content.path(blob), e))?;
    let (_, digest, _) = hashing.finish();
    Ok(digest)
}

/// Recompresses a pulled blob (`force-compression`) into a new blob in the store.
fn recompress(parts: &Parts, blob: &Digest, compression: Compression) -> Result<Compressed> {
    let file = parts.content.open_blob(blob)?;
    let (_, tar) = kiln_diff::decompress(BufReader::with_capacity(256 * 1024, file))?;
    let mut writer = parts.content.writer(None)?;
    let made = kiln_diff::compress(tar, &mut writer, compression)?;
    writer.commit()?;
    Ok(made)
}

/// Diffs snapshot `i` of `chain` against its parents and compresses the tar into a new blob,
/// the differ writing into a pipe on one thread while the compressor reads it on this one.
fn diff_and_compress(
    parts: &Parts,
    chain: &[Info],
    i: usize,
    compression: Compression,
    epoch: Option<i64>,
) -> Result<Compressed> {
    let info = chain
        .get(i)
        .ok_or_else(|| Error::Invalid(format!("layer {i} is not in the snapshot chain")))?;
    let upper = parts.snapshots.upper_dir(&info.name)?;
    let parents: Vec<std::path::PathBuf> = chain
        .get(..i)
        .unwrap_or_default()
        .iter()
        .rev()
        .map(|p| parts.snapshots.upper_dir(&p.name))
        .collect::<std::result::Result<_, _>>()?;
    let driver = parts.snapshots.driver();
    let diff_opts = DiffOpts {
        source_date_epoch: epoch,
        xattrs: XattrPolicy::CapabilityOnly,
    };
    let (reader, writer) =
        std::io::pipe().map_err(|e| Error::io("creating a pipe for", &upper, e))?;
    let mut blob = parts.content.writer(None)?;
    let (diffed, compressed) = std::thread::scope(|s| {
        let upper = &upper;
        let parents = &parents;
        let differ = s.spawn(move || -> Result<()> {
            let mut out = BufWriter::with_capacity(256 * 1024, writer);
            match driver {
                Driver::Overlay => {
                    let lowers: Vec<&std::path::Path> =
                        parents.iter().map(|p| p.as_path()).collect();
                    kiln_diff::write_diff_overlay(upper, &lowers, &mut out, diff_opts)?;
                }
                Driver::Copy => {
                    kiln_diff::write_diff_dirs(
                        parents.first().map(|p| p.as_path()),
                        upper,
                        &mut out,
                        diff_opts,
                    )?;
                }
            }
            out.flush()
                .map_err(|e| Error::io("writing the diff of", upper, e))
        });
        let compressed = kiln_diff::compress(
            BufReader::with_capacity(256 * 1024, reader),
            &mut blob,
            compression,
        );
        let diffed = differ
            .join()
            .unwrap_or_else(|_| Err(Error::Invalid("the differ thread panicked".to_string())));
        (diffed, compressed)
    });
    let made = compressed?;
    diffed?;
    blob.commit()?;
    Ok(made)
}

/// BuildKit's `normalizeLayersAndHistory`: `created[i]` is the creation time of layer `i`.
fn normalize_history(history: &[History], created: &[String]) -> Vec<History> {
    let layers = created.len();
    let mut history = history.to_vec();
    let non_empty = history.iter().filter(|h| !h.empty_layer).count();
    if non_empty > layers {
        // More layer entries than layers: the later ones become empty.
        let mut seen = 0;
        for h in &mut history {
            if seen >= layers {
                h.empty_layer = true;
            }
            if !h.empty_layer {
                seen += 1;
            }
        }
    }
    if layers > non_empty {
        for c in created.iter().skip(non_empty) {
            history.push(History {
                created: Some(c.clone()),
                created_by: "created by buildkit".to_string(),
                comment: "buildkit.exporter.image.v0".to_string(),
                ..History::default()
            });
        }
    }
    let mut layer = 0;
    for h in &mut history {
        if !h.empty_layer {
            if h.created.is_none() {
                h.created = created.get(layer).cloned();
            }
            layer += 1;
        }
    }
    // The first time after an entry without one (a new layer's), else the last time.
    let mut fill: Option<String> = None;
    let mut missing = false;
    for h in &history {
        match &h.created {
            Some(c) => {
                fill = Some(c.clone());
                if missing {
                    break;
                }
            }
            None => missing = true,
        }
    }
    let mut missing = false;
    for h in &mut history {
        match &h.created {
            Some(c) => {
                if missing {
                    fill = Some(c.clone());
                }
            }
            None => {
                missing = true;
                h.created = fill.clone();
            }
        }
    }
    history
}

/// The manifest document, as BuildKit writes it (`json.MarshalIndent` with three spaces).
fn manifest_json(
    media_type: &str,
    config: &Descriptor,
    layers: &[Descriptor],
    annotations: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc<'a> {
        media_type: &'a str,
        schema_version: u32,
        config: &'a Descriptor,
        layers: &'a [Descriptor],
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        annotations: &'a BTreeMap<String, String>,
    }
    kiln_gostd::json::marshal_indent(
        &Doc {
            media_type,
            schema_version: 2,
            config,
            layers,
            annotations,
        },
        b"   ",
    )
    .map_err(|e| Error::Invalid(format!("serializing the image manifest: {e}")))
}

/// A time as Go's `time.Time` marshals to JSON in UTC.
fn rfc3339_nano(t: SystemTime) -> String {
    kiln_export::format_time(t, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(by: &str, created: Option<&str>, empty: bool) -> History {
        History {
            created: created.map(str::to_string),
            created_by: by.to_string(),
            empty_layer: empty,
            ..History::default()
        }
    }

    #[test]
    fn matches_history_to_layers() {
        let check = |history: Vec<History>, layers: &[&str], want: Vec<History>| {
            let created: Vec<String> = layers.iter().map(|s| s.to_string()).collect();
            assert_eq!(normalize_history(&history, &created), want);
        };
        // Base entry with a time, a metadata entry and a RUN without times.
        check(
            vec![
                entry("ADD base", Some("T0"), false),
                entry("ENV A=1", None, true),
                entry("RUN x", None, false),
            ],
            &["L0", "L1"],
            vec![
                entry("ADD base", Some("T0"), false),
                entry("ENV A=1", Some("L1"), true),
                entry("RUN x", Some("L1"), false),
            ],
        );
        // A layer without a history entry gets one.
        check(
            vec![entry("ADD base", Some("T0"), false)],
            &["L0", "L1"],
            vec![
                entry("ADD base", Some("T0"), false),
                History {
                    comment: "buildkit.exporter.image.v0".to_string(),
                    ..entry("created by buildkit", Some("L1"), false)
                },
            ],
        );
        // More layer entries than layers: the last ones become empty.
        check(
            vec![
                entry("ADD base", Some("T0"), false),
                entry("RUN x", Some("T1"), false),
            ],
            &["L0"],
            vec![
                entry("ADD base", Some("T0"), false),
                entry("RUN x", Some("T1"), true),
            ],
        );
    }

    #[test]
    fn names_layer_media_types() {
        let check = |kind, oci, want: &str| assert_eq!(layer_media_type(kind, oci), want);
        check(
            CompressionKind::Gzip,
            false,
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        );
        check(
            CompressionKind::Uncompressed,
            false,
            "application/vnd.docker.image.rootfs.diff.tar",
        );
        check(
            CompressionKind::Gzip,
            true,
            "application/vnd.oci.image.layer.v1.tar+gzip",
        );
        check(
            CompressionKind::Zstd,
            false,
            "application/vnd.oci.image.layer.v1.tar+zstd",
        );
        check(
            CompressionKind::Uncompressed,
            true,
            "application/vnd.oci.image.layer.v1.tar",
        );
    }
}
