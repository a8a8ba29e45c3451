//! `--output` / `-o` values, parsed the way buildx parses them.
//!
//! buildx accepts CSV (`type=local,dest=out`), a bare path as shorthand for a local export
//! (`-o out`), and `-` for a tarball on stdout. Image tarballs (`type=oci`, `type=docker`)
//! take BuildKit's image attributes (`name`, `tar`, `compression`, `compression-level`,
//! `force-compression`, `oci-mediatypes`). `type=docker` without `dest` loads the image into
//! the Docker engine, and `--load` is its shorthand ([`crate::output_flags::add_load`]). The
//! attributes every image output shares are parsed by [`crate::image_attrs`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::attrs::{parse_bool, split_csv};
use crate::image_attrs::{ImageFormat, ImageOutput, parse_image_attrs};

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

/// Parses an `oci` or `docker` output's attributes (`type` removed).
pub(crate) fn parse_image(
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
