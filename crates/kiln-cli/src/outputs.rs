//! `--output` / `-o` values, parsed the way buildx parses them.
//!
//! buildx accepts CSV (`type=local,dest=out`), a bare path as shorthand for a local export
//! (`-o out`), and `-` for a tarball on stdout. The shorthands `--load` and `--push` come later
//! with the image exporters.

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
        "image" | "registry" | "oci" | "docker" | "cacheonly" => {
            return Err(format!(
                "output type {kind:?} is not supported by kiln yet (local and tar are)"
            ));
        }
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
        check("type=oci,dest=x.tar", Err("not supported by kiln yet"));
        check(
            "type=local,dest=x,foo=bar",
            Err("unknown attribute \"foo\""),
        );
        check("type=local,dest", Err("expected key=value"));
    }
}
