//! What every image output shares, whatever it writes to: the format's media types, the
//! names, the layer compression and the image content (`name`, `compression`,
//! `compression-level`, `force-compression`, `oci-mediatypes`, annotations, epoch, build
//! information). The `oci`/`docker` tarballs ([`crate::outputs`]) and the image store
//! ([`crate::export_image`]) build on it; it knows neither.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::attrs::parse_bool;

/// The image tarball formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// An OCI image layout (`type=oci`).
    Oci,
    /// A Docker image tarball that `docker load` reads (`type=docker`).
    Docker,
}

impl ImageFormat {
    /// The output type's name.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Oci => "oci",
            ImageFormat::Docker => "docker",
        }
    }
}

/// An `oci` or `docker` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOutput {
    /// Which format.
    pub format: ImageFormat,
    /// The file (or directory with `tar=false`), or `None` for stdout (or the engine, with
    /// `load`).
    pub dest: Option<PathBuf>,
    /// `type=docker` without `dest` (or `--load`): the tarball goes into the Docker engine.
    pub load: bool,
    /// Whether to write a tarball (`tar=true`, the default) or a layout directory.
    pub tar: bool,
    /// The image names (`name=a,b`; `-t` replaces them, as buildx does).
    pub names: Vec<String>,
    /// The layer compression (`compression`, `compression-level`).
    pub compression: kiln_diff::Compression,
    /// `force-compression=true`: recompress base layers too.
    pub force_compression: bool,
    /// `oci-mediatypes`: explicit, or `None` for the format's default (`oci`: true).
    pub oci_mediatypes: Option<bool>,
    /// Annotations, `source-date-epoch`, `rewrite-timestamp`, `buildinfo`, `buildinfo-attrs`.
    pub content: crate::annotations::ImageContent,
}

impl ImageOutput {
    /// Whether the image gets OCI media types, and the warning BuildKit gives when a
    /// compression forces them on although `oci-mediatypes=false` was asked for.
    pub fn oci_mediatypes(&self) -> (bool, Option<String>) {
        let wanted = self
            .oci_mediatypes
            .unwrap_or(self.format == ImageFormat::Oci);
        let forced = match self.compression {
            kiln_diff::Compression::Zstd { .. } => Some("zstd"),
            kiln_diff::Compression::Estargz { .. } => Some("estargz"),
            _ => None,
        };
        if let Some(name) = forced
            && !wanted
        {
            return (
                true,
                Some(format!("forcibly turning on oci-mediatype mode for {name}")),
            );
        }
        (wanted, None)
    }
}

impl ImageOutput {
    /// The worker's options for this output, and the warnings BuildKit gives when a
    /// compression forces an option on: eStargz and zstd need OCI media types, and eStargz
    /// converts every layer, the base image's too (BuildKit's `NeedsForceCompression`).
    pub fn worker_options(&self) -> (kiln_worker::ImageOptions, Vec<String>) {
        let (oci_mediatypes, warning) = self.oci_mediatypes();
        let mut warnings: Vec<String> = warning.into_iter().collect();
        let mut force_compression = self.force_compression;
        if matches!(self.compression, kiln_diff::Compression::Estargz { .. }) && !force_compression
        {
            warnings.push("forcibly turning on force-compression mode for estargz".to_string());
            force_compression = true;
        }
        let options = kiln_worker::ImageOptions {
            compression: self.compression,
            force_compression,
            oci_mediatypes,
        };
        (options, warnings)
    }
}

/// Attributes BuildKit's image exporters know that kiln does not implement yet.
const IMAGE_ATTRS_LATER: &[&str] = &["oci-artifact", "attestation-prefix", "context"];

/// Parses the attributes every image exporter shares (`name`, compression, media types; `dest`
/// and `tar` removed) of an output of type `kind`, refusing any other attribute. The result has
/// no `dest` and `tar=true`.
pub(crate) fn parse_image_attrs(
    kind: &str,
    format: ImageFormat,
    mut attrs: BTreeMap<String, String>,
) -> Result<ImageOutput, String> {
    let names = attrs
        .remove("name")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let level = attrs
        .remove("compression-level")
        .map(|v| {
            v.trim()
                .parse::<i32>()
                .map_err(|_| format!("invalid compression-level {v:?}: expected a number"))
        })
        .transpose()?;
    let compression = match attrs.remove("compression").as_deref() {
        None | Some("gzip") => {
            let level = level.unwrap_or(6);
            if !(0..=9).contains(&level) {
                return Err(format!(
                    "invalid compression-level {level} for gzip: expected 0 to 9"
                ));
            }
            kiln_diff::Compression::Gzip {
                level: level.unsigned_abs(),
            }
        }
        Some("zstd") => {
            let level = level.unwrap_or(3);
            if !(0..=22).contains(&level) {
                return Err(format!(
                    "invalid compression-level {level} for zstd: expected 0 to 22"
                ));
            }
            kiln_diff::Compression::Zstd { level }
        }
        Some("uncompressed") => kiln_diff::Compression::Uncompressed,
        Some("estargz") => {
            let level = level.unwrap_or(6);
            if !(0..=9).contains(&level) {
                return Err(format!(
                    "invalid compression-level {level} for estargz: expected 0 to 9"
                ));
            }
            kiln_diff::Compression::Estargz {
                level: level.unsigned_abs(),
            }
        }
        Some(other) => {
            return Err(format!(
                "unsupported compression type {other}: expected uncompressed, gzip, estargz or zstd"
            ));
        }
    };
    let force_compression = match attrs.remove("force-compression") {
        Some(v) => parse_bool("force-compression", &v)?,
        None => false,
    };
    let oci_mediatypes = attrs
        .remove("oci-mediatypes")
        .map(|v| {
            if v.is_empty() {
                Ok(true)
            } else {
                parse_bool("oci-mediatypes", &v)
            }
        })
        .transpose()?;
    let content = crate::annotations::ImageContent::take(&mut attrs)?;
    if let Some(k) = attrs.keys().next() {
        let family = k.split(['.', '[']).next().unwrap_or(k);
        if IMAGE_ATTRS_LATER.contains(&k.as_str()) || IMAGE_ATTRS_LATER.contains(&family) {
            return Err(format!(
                "attribute {k:?} of output type {kind:?} is not supported by kiln yet"
            ));
        }
        return Err(format!("unknown attribute {k:?} for output type {kind:?}"));
    }
    Ok(ImageOutput {
        format,
        dest: None,
        load: false,
        tar: true,
        names,
        compression,
        force_compression,
        oci_mediatypes,
        content,
    })
}
