//! `--output` / `-o` values, parsed the way buildx parses them.
//!
//! buildx accepts CSV (`type=local,dest=out`), a bare path as shorthand for a local export
//! (`-o out`), and `-` for a tarball on stdout. Image tarballs (`type=oci`, `type=docker`)
//! take BuildKit's image attributes (`name`, `tar`, `compression`, `compression-level`,
//! `force-compression`, `oci-mediatypes`). `type=docker` without `dest` loads the image into
//! the Docker engine, and `--load` is its shorthand ([`add_load`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One export requested with `-o`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=local,dest=DIR`: the final filesystem as files in a directory.
    Local {
        /// The directory (created when missing).
        dest: PathBuf,
    },
    /// `type=tar,dest=FILE|-`: the final filesystem as a tarball.
    Tar {
        /// The file, or `None` for stdout.
        dest: Option<PathBuf>,
    },
    /// `type=oci|docker,dest=FILE|-`: the image as an OCI layout or Docker tarball.
    Image(ImageOutput),
    /// `type=image|registry`: the image in kiln's image store, pushed with `push=true`.
    Store(crate::export_image::StoreOutput),
    /// `type=cacheonly`: nothing is exported; the result stays in the build cache, and the
    /// build opts out of the no-output default ([`crate::no_output`]).
    CacheOnly,
}

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

/// Attributes BuildKit's image exporters know that kiln does not implement yet.
const IMAGE_ATTRS_LATER: &[&str] = &["oci-artifact", "attestation-prefix", "context"];

/// Parses an `oci` or `docker` output's attributes (`type` removed).
fn parse_image(
    format: ImageFormat,
    mut attrs: BTreeMap<String, String>,
) -> Result<ImageOutput, String> {
    let kind = format.name();
    let load = format == ImageFormat::Docker && !attrs.contains_key("dest");
    let dest = match attrs.remove("dest").as_deref() {
        None if load => None,
        None => return Err(format!("dest is required for {kind} output")),
        Some("-") => None,
        Some("") => return Err(format!("dest is required for {kind} output")),
        Some(d) => Some(PathBuf::from(d)),
    };
    let tar = match attrs.remove("tar") {
        Some(v) => parse_bool("tar", &v)?,
        None => true,
    };
    if !tar && load {
        return Err(format!(
            "tar=false writes a directory: {kind} output needs dest=DIR"
        ));
    }
    if !tar && dest.is_none() {
        return Err(format!(
            "tar=false writes a directory: {kind} output needs dest=DIR, not stdout"
        ));
    }
    let mut out = parse_image_attrs(kind, format, attrs)?;
    out.dest = dest;
    out.load = load;
    out.tar = tar;
    Ok(out)
}

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

/// `--load`, as buildx applies it: a `type=docker` output into the Docker engine is added
/// unless one of the outputs already loads into the engine (a `type=docker` with `dest` still
/// writes its file, and `--load` adds the load next to it).
pub fn add_load(outputs: &mut Vec<Output>) {
    if !outputs
        .iter()
        .any(|o| matches!(o, Output::Image(ImageOutput { load: true, .. })))
        && let Ok(load) = parse_image(ImageFormat::Docker, BTreeMap::new())
    {
        outputs.push(Output::Image(load));
    }
}

/// Go's `strconv.ParseBool`, as BuildKit reads boolean attributes.
pub(crate) fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("non-bool value {v:?} specified for {key}")),
    }
}

/// Parses one `--output` value.
pub fn parse_output(value: &str) -> Result<Output, String> {
    if value == "-" {
        return Ok(Output::Tar { dest: None });
    }
    if !value.contains('=') {
        // `-o DIR` is a local export, as in buildx.
        return Ok(Output::Local {
            dest: PathBuf::from(value),
        });
    }
    let mut attrs = BTreeMap::new();
    for field in split_csv(value)? {
        let (k, v) = field.split_once('=').ok_or_else(|| {
            format!("invalid value {field:?} in output {value:?}: expected key=value")
        })?;
        attrs.insert(k.trim().to_lowercase(), v.to_string());
    }
    let kind = attrs.remove("type").unwrap_or_else(|| "local".to_string());
    match kind.as_str() {
        "oci" => return parse_image(ImageFormat::Oci, attrs).map(Output::Image),
        "docker" => return parse_image(ImageFormat::Docker, attrs).map(Output::Image),
        "image" | "registry" => return crate::export_image::parse(&kind, attrs).map(Output::Store),
        // BuildKit's exporter takes no attributes; buildx drops the output before solving.
        "cacheonly" => {
            if let Some(k) = attrs.keys().next() {
                return Err(format!("unknown attribute {k:?} for output type {kind:?}"));
            }
            return Ok(Output::CacheOnly);
        }
        _ => {}
    }
    let dest = attrs.remove("dest");
    let out = match kind.as_str() {
        "local" => Output::Local {
            dest: PathBuf::from(
                dest.ok_or_else(|| "dest is required for local output".to_string())?,
            ),
        },
        "tar" => Output::Tar {
            dest: match dest.as_deref() {
                None => return Err("dest is required for tar output".to_string()),
                Some("-") => None,
                Some(d) => Some(PathBuf::from(d)),
            },
        },
        other => {
            return Err(format!(
                "unknown output type {other:?}: expected local, tar, image, registry, oci, docker or cacheonly"
            ));
        }
    };
    if let Some(k) = attrs.keys().next() {
        return Err(format!("unknown attribute {k:?} for output type {kind:?}"));
    }
    Ok(out)
}

/// Splits a CSV line as Go's `encoding/csv` does for one record: fields separated by commas,
/// double-quoted fields may contain commas and doubled quotes.
pub(crate) fn split_csv(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match (c, in_quotes) {
            ('"', false) if cur.is_empty() || cur.ends_with('=') => in_quotes = true,
            ('"', true) => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            }
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if in_quotes {
        return Err(format!("invalid output {s:?}: unterminated quote"));
    }
    fields.push(cur);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_outputs() {
        let check = |input: &str, want: Result<Output, &str>| {
            let got = parse_output(input);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{input}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "{input}: {g}"),
                _ => panic!("{input}: got {got:?}, want {want:?}"),
            }
        };
        check(
            "type=local,dest=out",
            Ok(Output::Local { dest: "out".into() }),
        );
        check(
            "out/dir",
            Ok(Output::Local {
                dest: "out/dir".into(),
            }),
        );
        check("-", Ok(Output::Tar { dest: None }));
        check("type=tar,dest=-", Ok(Output::Tar { dest: None }));
        check(
            "type=tar,dest=fs.tar",
            Ok(Output::Tar {
                dest: Some("fs.tar".into()),
            }),
        );
        check("dest=out", Ok(Output::Local { dest: "out".into() }));
        check(
            r#"type=local,"dest=a,b""#,
            Ok(Output::Local { dest: "a,b".into() }),
        );
        check("type=local", Err("dest is required"));
        check("type=nope,dest=x", Err("unknown output type \"nope\""));
        check("type=cacheonly", Ok(Output::CacheOnly));
        check(
            "type=cacheonly,dest=x",
            Err("unknown attribute \"dest\" for output type \"cacheonly\""),
        );
        check(
            "type=local,dest=x,foo=bar",
            Err("unknown attribute \"foo\""),
        );
        check("type=local,dest", Err("expected key=value"));
    }

    #[test]
    fn parses_image_outputs() {
        use kiln_diff::Compression;
        let image = |format, dest: Option<&str>| ImageOutput {
            format,
            dest: dest.map(PathBuf::from),
            load: false,
            tar: true,
            names: Vec::new(),
            compression: Compression::Gzip { level: 6 },
            force_compression: false,
            oci_mediatypes: None,
            content: Default::default(),
        };
        let check = |input: &str, want: Result<ImageOutput, &str>| {
            let got = parse_output(input);
            match (&got, &want) {
                (Ok(Output::Image(g)), Ok(w)) => assert_eq!(g, w, "{input}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "{input}: {g}"),
                _ => panic!("{input}: got {got:?}, want {want:?}"),
            }
        };
        check(
            "type=oci,dest=x.tar",
            Ok(image(ImageFormat::Oci, Some("x.tar"))),
        );
        check("type=oci,dest=-", Ok(image(ImageFormat::Oci, None)));
        check(
            "type=docker,dest=y.tar,name=a",
            Ok(ImageOutput {
                names: vec!["a".to_string()],
                ..image(ImageFormat::Docker, Some("y.tar"))
            }),
        );
        check(
            r#"type=oci,dest=d,tar=false,"name=a,b:v1",compression=zstd,compression-level=19,force-compression=true,oci-mediatypes=false"#,
            Ok(ImageOutput {
                tar: false,
                names: vec!["a".to_string(), "b:v1".to_string()],
                compression: Compression::Zstd { level: 19 },
                force_compression: true,
                oci_mediatypes: Some(false),
                ..image(ImageFormat::Oci, Some("d"))
            }),
        );
        check(
            "type=oci,dest=x,compression=uncompressed,oci-mediatypes=",
            Ok(ImageOutput {
                compression: Compression::Uncompressed,
                oci_mediatypes: Some(true),
                ..image(ImageFormat::Oci, Some("x"))
            }),
        );
        check(
            "type=oci,dest=x,compression-level=0",
            Ok(ImageOutput {
                compression: Compression::Gzip { level: 0 },
                ..image(ImageFormat::Oci, Some("x"))
            }),
        );
        check("type=oci", Err("dest is required for oci output"));
        check(
            "type=docker",
            Ok(ImageOutput {
                load: true,
                ..image(ImageFormat::Docker, None)
            }),
        );
        check(
            "type=docker,name=a:1",
            Ok(ImageOutput {
                load: true,
                names: vec!["a:1".to_string()],
                ..image(ImageFormat::Docker, None)
            }),
        );
        check("type=docker,dest=-", Ok(image(ImageFormat::Docker, None)));
        check("type=docker,tar=false", Err("needs dest=DIR"));
        check("type=oci,dest=-,tar=false", Err("needs dest=DIR"));
        check("type=oci,dest=x,tar=maybe", Err("non-bool value \"maybe\""));
        check(
            "type=oci,dest=x,compression=lz4",
            Err("unsupported compression type lz4"),
        );
        check(
            "type=oci,dest=x,compression-level=10",
            Err("expected 0 to 9"),
        );
        check(
            "type=oci,dest=x,compression=zstd,compression-level=23",
            Err("expected 0 to 22"),
        );
        check(
            "type=oci,dest=x,compression-level=high",
            Err("expected a number"),
        );
        check(
            "type=oci,dest=x,compression=estargz,compression-level=9",
            Ok(ImageOutput {
                compression: Compression::Estargz { level: 9 },
                ..image(ImageFormat::Oci, Some("x"))
            }),
        );
        check(
            "type=oci,dest=x,compression=estargz,compression-level=10",
            Err("expected 0 to 9"),
        );
        check(
            "type=docker,dest=x,annotation-bogus.a=b",
            Err("unrecognized annotation type bogus"),
        );
        check(
            "type=docker,dest=x,bogus=1",
            Err("unknown attribute \"bogus\" for output type \"docker\""),
        );
    }

    #[test]
    fn load_shorthand() {
        // The outputs given with -o, and whether each output loads into the engine after
        // --load.
        let check = |given: &[&str], want: &[bool]| {
            let mut outputs: Vec<Output> = given
                .iter()
                .map(|o| parse_output(o).unwrap_or_else(|e| panic!("{o}: {e}")))
                .collect();
            add_load(&mut outputs);
            let loads: Vec<bool> = outputs
                .iter()
                .map(|o| matches!(o, Output::Image(ImageOutput { load: true, .. })))
                .collect();
            assert_eq!(loads, want, "{given:?}");
        };
        check(&[], &[true]);
        check(&["type=docker"], &[true]);
        check(&["type=docker,name=a"], &[true]);
        check(&["type=docker,dest=x.tar"], &[false, true]);
        check(&["type=oci,dest=x.tar"], &[false, true]);
        check(&["type=local,dest=x"], &[false, true]);
    }

    #[test]
    fn media_type_defaults() {
        let check = |input: &str, want: (bool, Option<&str>)| {
            let Ok(Output::Image(o)) = parse_output(input) else {
                panic!("{input}: not an image output");
            };
            let (oci, warning) = o.oci_mediatypes();
            assert_eq!((oci, warning.as_deref()), want, "{input}");
        };
        check("type=oci,dest=x", (true, None));
        check("type=docker,dest=x", (false, None));
        check("type=oci,dest=x,oci-mediatypes=false", (false, None));
        check("type=docker,dest=x,oci-mediatypes=true", (true, None));
        check(
            "type=docker,dest=x,compression=zstd",
            (
                true,
                Some("forcibly turning on oci-mediatype mode for zstd"),
            ),
        );
    }
}
