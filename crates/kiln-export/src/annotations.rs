//! Image annotations as BuildKit's exporters take them: `annotation.KEY=V`,
//! `annotation-TYPE.KEY=V` and `annotation-TYPE[PLATFORM].KEY=V` exporter attributes, where
//! TYPE says which document gets the annotation.
//!
//! * `manifest` (the default, also plain `annotation.KEY`): the image manifest's `annotations`;
//! * `manifest-descriptor`: the descriptor pointing at the manifest (in an OCI layout, the
//!   entry of `index.json`);
//! * `index`: the image index (for the oci and docker exporters of a single-platform image,
//!   the layout's `index.json`);
//! * `index-descriptor`: the descriptor pointing at an image index, which a single-platform
//!   export does not have.
//!
//! A platform qualifier (`annotation-manifest[linux/amd64].KEY`) limits a manifest annotation
//! to the image of that platform; index annotations ignore it, as BuildKit does.

use std::collections::BTreeMap;

use kiln_oci::Platform;

/// Which document an annotation goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnnotationKind {
    /// The image index (`annotation-index.KEY`).
    Index,
    /// The descriptor of the image index (`annotation-index-descriptor.KEY`).
    IndexDescriptor,
    /// The image manifest (`annotation.KEY`, `annotation-manifest.KEY`).
    Manifest,
    /// The descriptor of the image manifest (`annotation-manifest-descriptor.KEY`).
    ManifestDescriptor,
}

impl AnnotationKind {
    /// The type's name in attributes and `--annotation` values (`manifest-descriptor`).
    pub fn name(self) -> &'static str {
        match self {
            AnnotationKind::Index => "index",
            AnnotationKind::IndexDescriptor => "index-descriptor",
            AnnotationKind::Manifest => "manifest",
            AnnotationKind::ManifestDescriptor => "manifest-descriptor",
        }
    }

    /// The type named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<AnnotationKind> {
        [
            AnnotationKind::Index,
            AnnotationKind::IndexDescriptor,
            AnnotationKind::Manifest,
            AnnotationKind::ManifestDescriptor,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }

    /// Whether the annotation belongs to an index or its descriptor.
    pub fn is_index(self) -> bool {
        matches!(
            self,
            AnnotationKind::Index | AnnotationKind::IndexDescriptor
        )
    }
}

/// A parsed annotation attribute key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AnnotationKey {
    /// Which document gets it.
    pub kind: AnnotationKind,
    /// The platform it is limited to, normalized (`linux/arm64`), if any.
    pub platform: Option<String>,
    /// The annotation's key (`org.opencontainers.image.title`).
    pub key: String,
}

/// Why an annotation attribute was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// The attribute starts like an annotation but does not have its shape.
    #[error("could not fully parse annotation {0}")]
    Shape(String),
    /// The type between `annotation-` and the key is not one of the four.
    #[error("unrecognized annotation type {0}")]
    Type(String),
    /// The platform qualifier does not parse.
    #[error("invalid platform {platform:?} in annotation {attr}: {why}")]
    Platform {
        /// The attribute.
        attr: String,
        /// The platform as written.
        platform: String,
        /// The parser's reason.
        why: String,
    },
}

impl AnnotationKey {
    /// Parses an exporter attribute key as BuildKit's `ParseAnnotationKey` does: `None` when the
    /// key is not an annotation (it does not start with `annotation.`, `annotation-` or
    /// `annotation[`), an error when it starts like one but is malformed.
    pub fn parse_attr(attr: &str) -> Result<Option<AnnotationKey>, AnnotationError> {
        let Some(rest) = attr.strip_prefix("annotation") else {
            return Ok(None);
        };
        if !rest.starts_with(['.', '-', '[']) {
            return Ok(None);
        }
        let shape = || AnnotationError::Shape(attr.to_string());
        // `-TYPE`: lower-case letters and dashes.
        let (kind_name, rest) = match rest.strip_prefix('-') {
            Some(r) => {
                let end = r
                    .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
                    .unwrap_or(r.len());
                if end == 0 {
                    return Err(shape());
                }
                r.split_at(end)
            }
            None => ("", rest),
        };
        // `[PLATFORM]`: letters, digits, `_`, `/` and `-`.
        let (platform, rest) = match rest.strip_prefix('[') {
            Some(r) => {
                let close = r.find(']').ok_or_else(shape)?;
                let (p, after) = r.split_at(close);
                if p.is_empty()
                    || !p
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '-'))
                {
                    return Err(shape());
                }
                (Some(p), after.get(1..).unwrap_or_default())
            }
            None => (None, rest),
        };
        // `.KEY`: at least one character, no white space.
        let key = rest.strip_prefix('.').ok_or_else(shape)?;
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(shape());
        }
        let kind = match kind_name {
            "" => AnnotationKind::Manifest,
            name => AnnotationKind::from_name(name)
                .ok_or_else(|| AnnotationError::Type(name.to_string()))?,
        };
        let platform = platform
            .map(|p| {
                Platform::parse(p)
                    .map(|p| p.to_string())
                    .map_err(|e| AnnotationError::Platform {
                        attr: attr.to_string(),
                        platform: p.to_string(),
                        why: e.to_string(),
                    })
            })
            .transpose()?;
        Ok(Some(AnnotationKey {
            kind,
            platform,
            key: key.to_string(),
        }))
    }

    /// The attribute key (BuildKit's `AnnotationKey.String`): `annotation-manifest[linux/amd64].KEY`.
    /// Index types never carry a platform; an unqualified manifest key keeps its type.
    pub fn to_attr(&self) -> String {
        let mut out = format!("annotation-{}", self.kind.name());
        if !self.kind.is_index()
            && let Some(p) = &self.platform
        {
            out.push('[');
            out.push_str(p);
            out.push(']');
        }
        out.push('.');
        out.push_str(&self.key);
        out
    }
}

/// The annotations of one image, by the document they go to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// The image index's (for a single-platform layout: `index.json`'s).
    pub index: BTreeMap<String, String>,
    /// The index descriptor's.
    pub index_descriptor: BTreeMap<String, String>,
    /// The image manifest's.
    pub manifest: BTreeMap<String, String>,
    /// The manifest descriptor's (for a layout: each `index.json` entry's).
    pub manifest_descriptor: BTreeMap<String, String>,
}

impl Annotations {
    /// Sorts exporter attributes into annotations for the image of `platform` (BuildKit's
    /// `AnnotationsGroup.Platform`): every index annotation, the manifest annotations without a
    /// platform, then those for `platform` (which win). Attributes that are not annotations are
    /// left out.
    pub fn from_attrs<'a>(
        attrs: impl IntoIterator<Item = (&'a str, &'a str)>,
        platform: Option<&Platform>,
    ) -> Result<Annotations, AnnotationError> {
        let wanted = platform.map(|p| p.normalize().to_string());
        let mut out = Annotations::default();
        let mut specific = Annotations::default();
        for (attr, value) in attrs {
            let Some(key) = AnnotationKey::parse_attr(attr)? else {
                continue;
            };
            let target = match (&key.platform, key.kind.is_index()) {
                (_, true) | (None, _) => &mut out,
                (Some(p), false) if Some(p) == wanted.as_ref() => &mut specific,
                (Some(_), false) => continue,
            };
            let map = match key.kind {
                AnnotationKind::Index => &mut target.index,
                AnnotationKind::IndexDescriptor => &mut target.index_descriptor,
                AnnotationKind::Manifest => &mut target.manifest,
                AnnotationKind::ManifestDescriptor => &mut target.manifest_descriptor,
            };
            map.insert(key.key, value.to_string());
        }
        out.manifest.extend(specific.manifest);
        out.manifest_descriptor.extend(specific.manifest_descriptor);
        Ok(out)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
            && self.index_descriptor.is_empty()
            && self.manifest.is_empty()
            && self.manifest_descriptor.is_empty()
    }
}

/// The annotations a layout's `index.json` carries besides the image names.
#[derive(Debug, Clone, Copy)]
pub struct LayoutAnnotations<'a> {
    /// On every manifest descriptor (`annotation-manifest-descriptor.KEY` and
    /// `org.opencontainers.image.created`).
    pub descriptor: &'a BTreeMap<String, String>,
    /// On the index itself (`annotation-index.KEY`).
    pub index: &'a BTreeMap<String, String>,
}

/// No annotations.
static NONE: BTreeMap<String, String> = BTreeMap::new();

impl<'a> LayoutAnnotations<'a> {
    /// Annotations on the manifest descriptors only.
    pub fn descriptor(descriptor: &'a BTreeMap<String, String>) -> LayoutAnnotations<'a> {
        LayoutAnnotations {
            descriptor,
            index: &NONE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExportedImage, ImageName, index_json};

    fn key(kind: AnnotationKind, platform: Option<&str>, k: &str) -> AnnotationKey {
        AnnotationKey {
            kind,
            platform: platform.map(str::to_string),
            key: k.to_string(),
        }
    }

    #[test]
    fn parses_attribute_keys() {
        use AnnotationKind::*;
        let check = |attr: &str, want: Result<Option<AnnotationKey>, &str>| {
            let got = AnnotationKey::parse_attr(attr);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{attr}"),
                (Err(g), Err(w)) => assert!(g.to_string().contains(w), "{attr}: {g}"),
                _ => panic!("{attr}: got {got:?}, want {want:?}"),
            }
        };
        check("name", Ok(None));
        check("annotations", Ok(None));
        check("annotation.a", Ok(Some(key(Manifest, None, "a"))));
        check(
            "annotation.org.opencontainers.image.title",
            Ok(Some(key(Manifest, None, "org.opencontainers.image.title"))),
        );
        check("annotation-index.a", Ok(Some(key(Index, None, "a"))));
        check(
            "annotation-index-descriptor.a",
            Ok(Some(key(IndexDescriptor, None, "a"))),
        );
        check("annotation-manifest.a", Ok(Some(key(Manifest, None, "a"))));
        check(
            "annotation-manifest-descriptor.a",
            Ok(Some(key(ManifestDescriptor, None, "a"))),
        );
        check(
            "annotation-manifest[linux/amd64].a",
            Ok(Some(key(Manifest, Some("linux/amd64"), "a"))),
        );
        // Platforms are normalized (`aarch64` is `arm64`).
        check(
            "annotation-manifest-descriptor[linux/aarch64].a",
            Ok(Some(key(ManifestDescriptor, Some("linux/arm64"), "a"))),
        );
        check(
            "annotation[linux/arm/v7].a",
            Ok(Some(key(Manifest, Some("linux/arm/v7"), "a"))),
        );
        check("annotation-foo.a", Err("unrecognized annotation type foo"));
        check("annotation.", Err("could not fully parse annotation"));
        check("annotation-.a", Err("could not fully parse annotation"));
        check("annotation-index", Err("could not fully parse annotation"));
        check("annotation[].a", Err("could not fully parse annotation"));
        check("annotation[linux/amd64.a", Err("could not fully parse"));
        check("annotation[linux amd64].a", Err("could not fully parse"));
        check("annotation.a b", Err("could not fully parse annotation"));
        check("annotation[*/amd64].a", Err("could not fully parse"));
        check(
            "annotation-manifest[linux/amd64/v2/x].a",
            Err("invalid platform"),
        );
    }

    #[test]
    fn formats_attribute_keys() {
        use AnnotationKind::*;
        let check = |k: AnnotationKey, want: &str| {
            assert_eq!(k.to_attr(), want);
            assert_eq!(AnnotationKey::parse_attr(want), Ok(Some(k)), "{want}");
        };
        check(key(Manifest, None, "a"), "annotation-manifest.a");
        check(key(Index, None, "a.b"), "annotation-index.a.b");
        check(
            key(ManifestDescriptor, Some("linux/arm64"), "a"),
            "annotation-manifest-descriptor[linux/arm64].a",
        );
        check(
            key(IndexDescriptor, None, "a"),
            "annotation-index-descriptor.a",
        );
    }

    #[test]
    fn sorts_attributes_by_document_and_platform() {
        let map = |kvs: &[(&str, &str)]| -> BTreeMap<String, String> {
            kvs.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let attrs = [
            ("name", "app"),
            ("annotation.a", "manifest"),
            ("annotation-manifest[linux/amd64].a", "amd64"),
            ("annotation-manifest[linux/arm64].a", "arm64"),
            ("annotation-manifest-descriptor.d", "descriptor"),
            ("annotation-index.i", "index"),
            ("annotation-index-descriptor.j", "index descriptor"),
        ];
        let check = |platform: Option<&str>, want: Annotations| {
            let p = platform.map(|p| Platform::parse(p).expect("platform"));
            let got = Annotations::from_attrs(attrs, p.as_ref()).expect("annotations");
            assert_eq!(got, want, "{platform:?}");
        };
        let common = Annotations {
            index: map(&[("i", "index")]),
            index_descriptor: map(&[("j", "index descriptor")]),
            manifest: map(&[("a", "manifest")]),
            manifest_descriptor: map(&[("d", "descriptor")]),
        };
        check(None, common.clone());
        check(
            Some("linux/amd64"),
            Annotations {
                manifest: map(&[("a", "amd64")]),
                ..common.clone()
            },
        );
        check(
            Some("linux/aarch64"),
            Annotations {
                manifest: map(&[("a", "arm64")]),
                ..common.clone()
            },
        );
        check(Some("linux/s390x"), common);
        assert!(
            Annotations::from_attrs([("annotation-nope.a", "x")], None).is_err(),
            "a bad annotation attribute is an error"
        );
    }
    #[test]
    fn writes_annotated_index_json() {
        use kiln_oci::Digest;
        use kiln_registry::Descriptor;
        let map = |kvs: &[(&str, &str)]| -> BTreeMap<String, String> {
            kvs.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let image = ExportedImage {
            manifest: Descriptor::new(
                "application/vnd.oci.image.manifest.v1+json",
                Digest::of_bytes(b"manifest"),
                8,
            ),
            manifest_json: b"manifest".to_vec(),
            config: Descriptor::new(
                "application/vnd.oci.image.config.v1+json",
                Digest::of_bytes(b"config"),
                6,
            ),
            config_json: b"config".to_vec(),
            layers: Vec::new(),
            diff_ids: Vec::new(),
        };
        let names = [ImageName::parse("app:v1").expect("name")];
        let render = |descriptor: &[(&str, &str)], index: &[(&str, &str)]| -> serde_json::Value {
            let (descriptor, index) = (map(descriptor), map(index));
            let json = index_json(
                &image,
                &names,
                LayoutAnnotations {
                    descriptor: &descriptor,
                    index: &index,
                },
            )
            .expect("index.json");
            serde_json::from_slice(&json).expect("json")
        };
        let cases = serde_json::json!({
            "none": render(&[], &[]),
            "descriptor and index": render(
                &[
                    ("org.opencontainers.image.created", "2023-11-14T22:13:20Z"),
                    ("org.opencontainers.image.title", "app"),
                ],
                &[("org.opencontainers.image.description", "an index annotation")],
            ),
        });
        insta::assert_json_snapshot!(cases);
    }
}
