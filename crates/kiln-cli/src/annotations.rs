//! The image-content options of image outputs: annotations (`-o ...,annotation.KEY=V` and
//! `--annotation`), `SOURCE_DATE_EPOCH` (`source-date-epoch`, the build argument or the
//! environment) with `rewrite-timestamp`, and the build information (`buildinfo`,
//! `buildinfo-attrs`).
//!
//! `--annotation [TYPE[,TYPE...][\[PLATFORM\]]:]KEY=VALUE` is parsed as buildx's
//! `ParseAnnotations` does and becomes the exporter attribute BuildKit reads
//! (`annotation-manifest-descriptor.KEY`), set on every image output, where it replaces an
//! attribute of the same key, as buildx does.

use std::collections::BTreeMap;

use kiln_export::{AnnotationKey, AnnotationKind, Annotations};

use crate::attrs::parse_bool;

/// The image-content attributes of one image output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageContent {
    /// The `annotation*` attributes as given (key → value).
    pub annotations: BTreeMap<String, String>,
    /// `source-date-epoch=SECONDS`: overrides the build's `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<i64>,
    /// `rewrite-timestamp=true`: clamp the file times of the build's layers to the epoch.
    pub rewrite_timestamp: bool,
    /// `buildinfo` (default true): attach `moby.buildkit.buildinfo.v0` to the config.
    pub buildinfo: bool,
    /// `buildinfo-attrs` (default false): include the build arguments in it.
    pub buildinfo_attrs: bool,
}

impl Default for ImageContent {
    fn default() -> ImageContent {
        ImageContent {
            annotations: BTreeMap::new(),
            source_date_epoch: None,
            rewrite_timestamp: false,
            buildinfo: true,
            buildinfo_attrs: false,
        }
    }
}

impl ImageContent {
    /// Takes the image-content attributes out of an output's attributes, checking them.
    pub fn take(attrs: &mut BTreeMap<String, String>) -> Result<ImageContent, String> {
        let mut out = ImageContent::default();
        let keys: Vec<String> = attrs.keys().cloned().collect();
        for k in keys {
            if AnnotationKey::parse_attr(&k)
                .map_err(|e| e.to_string())?
                .is_some()
                && let Some(v) = attrs.remove(&k)
            {
                out.annotations.insert(k, v);
            }
        }
        if let Some(v) = attrs.remove("source-date-epoch") {
            out.source_date_epoch = Some(parse_epoch(&v)?);
        }
        if let Some(v) = attrs.remove("rewrite-timestamp") {
            out.rewrite_timestamp = parse_bool("rewrite-timestamp", &v)?;
        }
        if let Some(v) = attrs.remove("buildinfo") {
            out.buildinfo = parse_bool("buildinfo", &v)?;
        }
        if let Some(v) = attrs.remove("buildinfo-attrs") {
            out.buildinfo_attrs = parse_bool("buildinfo-attrs", &v)?;
        }
        Ok(out)
    }

    /// The annotations for the image of `platform`, refusing the index-descriptor type: a
    /// single-platform layout has no descriptor of its index (BuildKit refuses both index
    /// types for single-platform exports; kiln puts `annotation-index` on the layout's
    /// `index.json`).
    pub fn resolve(&self, platform: &kiln_oci::Platform) -> Result<Annotations, String> {
        let annotations = Annotations::from_attrs(
            self.annotations
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
            Some(platform),
        )
        .map_err(|e| e.to_string())?;
        if let Some(k) = annotations.index_descriptor.keys().next() {
            return Err(format!(
                "index-descriptor annotation {k:?} needs an image index: a single-platform export has none (use annotation-index or annotation-manifest-descriptor)"
            ));
        }
        Ok(annotations)
    }
}

/// A `SOURCE_DATE_EPOCH` value: whole seconds since 1970.
pub fn parse_epoch(v: &str) -> Result<i64, String> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| format!("invalid SOURCE_DATE_EPOCH {v:?}: expected seconds since 1970"))
}

/// Parses `--annotation` values as buildx does into exporter attributes (attribute key →
/// value, later values winning).
pub fn parse_annotation_flags(values: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for value in values {
        if value.is_empty() {
            continue;
        }
        let (k, v) = value
            .split_once('=')
            .ok_or_else(|| format!("invalid annotation {value:?}, expected key=value"))?;
        let Some((types, key)) = k.split_once(':') else {
            out.insert(format!("annotation.{k}"), v.to_string());
            continue;
        };
        for type_and_platform in types.split(',') {
            let (name, platform) = split_type(type_and_platform).ok_or_else(|| {
                format!(
                    "invalid annotation type {type_and_platform:?}, expected type and optional platform in square brackets"
                )
            })?;
            let kind = AnnotationKind::from_name(name)
                .ok_or_else(|| format!("unknown annotation type {name:?}"))?;
            let platform = platform
                .map(|p| {
                    kiln_oci::Platform::parse(p)
                        .map(|p| p.to_string())
                        .map_err(|e| format!("invalid platform {p:?}: {e}"))
                })
                .transpose()?;
            let attr = AnnotationKey {
                kind,
                platform,
                key: key.to_string(),
            }
            .to_attr();
            out.insert(attr, v.to_string());
        }
    }
    Ok(out)
}

/// `TYPE` or `TYPE[PLATFORM]` (type: lower-case letters and dashes; platform: letters, digits,
/// `_`, `/`, `-`).
fn split_type(s: &str) -> Option<(&str, Option<&str>)> {
    let (name, platform) = match s.split_once('[') {
        Some((name, rest)) => {
            let p = rest.strip_suffix(']')?;
            let ok = !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '-'));
            if !ok {
                return None;
            }
            (name, Some(p))
        }
        None => (s, None),
    };
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '-');
    ok.then_some((name, platform))
}

/// What the build tells the image exporters beyond the result and its config.
#[derive(Debug, Clone, Default)]
pub struct BuildFacts {
    /// The build arguments (with `SOURCE_DATE_EPOCH` from the environment, as buildx adds it).
    pub build_args: BTreeMap<String, String>,
    /// The base images, resolved (for the build information).
    pub base_images: Vec<kiln_frontend_dockerfile::BaseImage>,
    /// How many leading history entries of the config are the base image's.
    pub base_history: usize,
}

/// What an image output adds to the image: for the worker, and for the layout's `index.json`.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The worker's part: epoch, manifest annotations, build information.
    pub meta: kiln_worker::ImageMeta,
    /// The annotations of every manifest descriptor: `annotation-manifest-descriptor.*` and
    /// `org.opencontainers.image.created` (the epoch, else now; whole seconds).
    pub descriptor: BTreeMap<String, String>,
    /// The index's annotations (`annotation-index.*`).
    pub index: BTreeMap<String, String>,
    /// What BuildKit warns about these options (`rewrite-timestamp` without an epoch).
    pub warnings: Vec<String>,
}

/// The annotation BuildKit's oci and docker exporters put on the manifest descriptor.
const CREATED: &str = "org.opencontainers.image.created";

impl ImageContent {
    /// Resolves the options of this output against the build, for an image with `config`
    /// (its platform decides which qualified annotations apply).
    pub fn prepare_for(
        &self,
        facts: &BuildFacts,
        config: &kiln_oci::Image,
    ) -> anyhow::Result<Prepared> {
        let platform = kiln_oci::Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
            ..kiln_oci::Platform::default()
        };
        self.prepare(facts, &platform)
            .map_err(|e| anyhow::anyhow!(e))
    }

    /// Resolves the options of this output against the build, for an image of `platform`.
    pub fn prepare(
        &self,
        facts: &BuildFacts,
        platform: &kiln_oci::Platform,
    ) -> Result<Prepared, String> {
        let annotations = self.resolve(platform)?;
        let epoch = match self.source_date_epoch {
            Some(e) => Some(e),
            None => facts
                .build_args
                .get("SOURCE_DATE_EPOCH")
                .filter(|v| !v.is_empty())
                .map(|v| parse_epoch(v))
                .transpose()?,
        };
        let buildinfo = if self.buildinfo {
            let sources: Vec<kiln_worker::BuildSource> = facts
                .base_images
                .iter()
                .map(|b| {
                    let (reference, pin) = b
                        .reference
                        .split_once('@')
                        .unwrap_or((b.reference.as_str(), ""));
                    kiln_worker::BuildSource {
                        kind: "docker-image".to_string(),
                        reference: reference.to_string(),
                        pin: pin.to_string(),
                    }
                })
                .collect();
            let attrs = self.buildinfo_attrs.then_some(&facts.build_args);
            Some(
                kiln_worker::buildinfo("dockerfile.v0", attrs, &sources)
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        let mut descriptor = annotations.manifest_descriptor.clone();
        if !descriptor.contains_key(CREATED) {
            let time = epoch
                .map(kiln_worker::image_epoch_time)
                .unwrap_or_else(std::time::SystemTime::now);
            descriptor.insert(CREATED.to_string(), kiln_export::format_time(time, false));
        }
        let mut warnings = Vec::new();
        if self.rewrite_timestamp && epoch.is_none() {
            warnings
                .push("rewrite-timestamp is specified, but no source-date-epoch was found".into());
        }
        Ok(Prepared {
            warnings,
            meta: kiln_worker::ImageMeta {
                epoch,
                rewrite_timestamp: self.rewrite_timestamp,
                base_history: facts.base_history,
                manifest_annotations: annotations.manifest,
                buildinfo,
            },
            descriptor,
            index: annotations.index,
        })
    }
}

/// buildx passes a non-empty `SOURCE_DATE_EPOCH` of the environment as a build argument unless
/// one is given.
pub fn source_date_epoch_from_env(build_args: &mut BTreeMap<String, String>) {
    if !build_args.contains_key("SOURCE_DATE_EPOCH")
        && let Ok(v) = std::env::var("SOURCE_DATE_EPOCH")
        && !v.is_empty()
    {
        build_args.insert("SOURCE_DATE_EPOCH".to_string(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kvs: &[(&str, &str)]) -> BTreeMap<String, String> {
        kvs.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// buildx's `TestParseAnnotations` cases, and its error messages.
    #[test]
    fn parses_annotation_flags() {
        let check = |input: &[&str], want: Result<BTreeMap<String, String>, &str>| {
            let values: Vec<String> = input.iter().map(|s| s.to_string()).collect();
            let got = parse_annotation_flags(&values);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{input:?}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "{input:?}: {g}"),
                _ => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        };
        check(&["a=b"], Ok(map(&[("annotation.a", "b")])));
        check(&["a=b=c", ""], Ok(map(&[("annotation.a", "b=c")])));
        check(
            &["manifest:a=b"],
            Ok(map(&[("annotation-manifest.a", "b")])),
        );
        check(
            &["index,manifest-descriptor:org.opencontainers.image.title=t"],
            Ok(map(&[
                ("annotation-index.org.opencontainers.image.title", "t"),
                (
                    "annotation-manifest-descriptor.org.opencontainers.image.title",
                    "t",
                ),
            ])),
        );
        check(
            &["manifest[linux/amd64],manifest-descriptor[linux/arm64]:a=b"],
            Ok(map(&[
                ("annotation-manifest[linux/amd64].a", "b"),
                ("annotation-manifest-descriptor[linux/arm64].a", "b"),
            ])),
        );
        check(
            &["index-descriptor:a=b", "index-descriptor:a=c"],
            Ok(map(&[("annotation-index-descriptor.a", "c")])),
        );
        check(&["a"], Err("invalid annotation \"a\", expected key=value"));
        check(&["foo:a=b"], Err("unknown annotation type \"foo\""));
        check(
            &["manifest[linux/amd64:a=b"],
            Err("invalid annotation type \"manifest[linux/amd64\""),
        );
        check(
            &["Manifest:a=b"],
            Err("invalid annotation type \"Manifest\""),
        );
        check(&["manifest[*]:a=b"], Err("invalid annotation type"));
        check(&["manifest[linux/a/b/c]:a=b"], Err("invalid platform"));
    }

    #[test]
    fn takes_content_attributes() {
        let check = |attrs: &[(&str, &str)], want: Result<(ImageContent, &[&str]), &str>| {
            let mut attrs = map(attrs);
            let got = ImageContent::take(&mut attrs);
            match (&got, &want) {
                (Ok(g), Ok((w, rest))) => {
                    assert_eq!(g, w);
                    let left: Vec<&str> = attrs.keys().map(String::as_str).collect();
                    assert_eq!(&left, rest);
                }
                (Err(g), Err(w)) => assert!(g.contains(w), "{g}"),
                _ => panic!("got {got:?}, want {want:?}"),
            }
        };
        check(&[("name", "x")], Ok((ImageContent::default(), &["name"])));
        check(
            &[
                ("annotation.a", "1"),
                ("annotation-index.b", "2"),
                ("source-date-epoch", "1700000000"),
                ("rewrite-timestamp", "true"),
                ("buildinfo", "false"),
                ("buildinfo-attrs", "1"),
                ("annotations", "kept"),
            ],
            Ok((
                ImageContent {
                    annotations: map(&[("annotation.a", "1"), ("annotation-index.b", "2")]),
                    source_date_epoch: Some(1_700_000_000),
                    rewrite_timestamp: true,
                    buildinfo: false,
                    buildinfo_attrs: true,
                },
                &["annotations"],
            )),
        );
        check(
            &[("annotation-nope.a", "1")],
            Err("unrecognized annotation type nope"),
        );
        check(
            &[("source-date-epoch", "soon")],
            Err("invalid SOURCE_DATE_EPOCH"),
        );
        check(
            &[("rewrite-timestamp", "yes")],
            Err("non-bool value \"yes\""),
        );
    }

    #[test]
    fn resolves_annotations_for_the_platform() {
        let content = ImageContent {
            annotations: map(&[
                ("annotation.a", "1"),
                ("annotation-manifest[linux/arm64].a", "arm"),
                ("annotation-index.i", "2"),
            ]),
            ..ImageContent::default()
        };
        let arm = kiln_oci::Platform::parse("linux/arm64").expect("platform");
        let got = content.resolve(&arm).expect("annotations");
        assert_eq!(got.manifest, map(&[("a", "arm")]));
        assert_eq!(got.index, map(&[("i", "2")]));
        let bad = ImageContent {
            annotations: map(&[("annotation-index-descriptor.x", "1")]),
            ..ImageContent::default()
        };
        let err = bad.resolve(&arm).expect_err("index-descriptor refused");
        assert!(err.contains("needs an image index"), "{err}");
    }
}
