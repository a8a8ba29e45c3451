//! What `kiln build` does when no output is asked for, and `-o type=cacheonly`.
//!
//! buildx gives each builder a default: the docker driver loads the image into the Docker
//! engine (an implicit `type=image` export), other drivers keep the result in the build cache
//! and warn "No output specified with DRIVER driver. Build result will only remain in the
//! build cache. To push result image into registry use --push or to load image into docker use
//! --load". kiln's embedded builder sits in between: with `-t` names, the image is recorded
//! under those names in kiln's own image store (the `type=image` export without push);
//! without names, the result stays in the build cache only. Either way a warning at the end
//! says where the result is and how to export it. As buildx's (a log message, not progress
//! output), it is printed even with `--progress quiet`.
//!
//! `type=cacheonly` is buildx's "fake exporter" to opt out of these defaults: it counts as an
//! output (no implicit export, no warning) and is then dropped, so it combines with any other
//! output (`-o type=cacheonly --push` pushes).
//!
//! "No output" is judged after `--load` and `--push` have added their outputs, as buildx does.

use std::collections::BTreeMap;
use std::io::Write as _;

use crate::outputs::Output;

/// The warning to print once the build succeeded, when it had no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoOutputHint {
    /// The names the image was recorded under in kiln's image store (`-t`), if any.
    pub names: Vec<String>,
}

impl NoOutputHint {
    /// The warning's text (without the `WARNING: ` prefix).
    pub fn message(&self) -> String {
        if self.names.is_empty() {
            return "No output specified with the embedded builder. Build result will only remain in kiln's build cache. \
                To keep it as an image in kiln's image store use -t NAME, to push it into a registry use --push, \
                to load it into docker use --load, or export it with -o type=oci,dest=FILE or -o type=local,dest=DIR"
                .to_string();
        }
        let names: Vec<String> = self
            .names
            .iter()
            .map(|n| {
                kiln_export::ImageName::parse(n)
                    .map(|parsed| parsed.full())
                    .unwrap_or_else(|_| n.clone())
            })
            .collect();
        format!(
            "No output specified with the embedded builder. The image is kept in kiln's image store as {} \
            (and its layers in the build cache). To push it into a registry use --push, to load it into docker use --load, \
            or export it with -o type=oci,dest=FILE or -o type=docker,dest=FILE",
            names.join(", ")
        )
    }

    /// Prints the warning on stderr, as buildx prints its log warnings.
    pub fn print(&self) {
        let _ = writeln!(std::io::stderr().lock(), "WARNING: {}", self.message());
    }
}

/// Applies the no-output default to the outputs (after `--load` and `--push`): with no output,
/// `-t` names become an image-store output (`type=image`, no push) and the build gets a
/// [`NoOutputHint`]; `type=cacheonly` outputs are removed (they only opt out of the default).
pub fn apply(outputs: &mut Vec<Output>, tags: &[String]) -> Result<Option<NoOutputHint>, String> {
    if !outputs.is_empty() {
        outputs.retain(|o| !matches!(o, Output::CacheOnly));
        return Ok(None);
    }
    if tags.is_empty() {
        return Ok(Some(NoOutputHint { names: Vec::new() }));
    }
    let mut store = vec![Output::Store(crate::export_image::parse(
        "image",
        BTreeMap::new(),
    )?)];
    // The same naming and name checks as `-o type=image -t NAME`.
    crate::output_flags::apply_tags_and_push(&mut store, tags, false)?;
    outputs.append(&mut store);
    Ok(Some(NoOutputHint {
        names: tags.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::parse_output;

    /// What the outputs become for `-o OUTPUTS -t TAGS` (`--push` as `push`), as short
    /// strings, and whether the build gets the hint (and with which names).
    fn rewrite(
        outputs: &[&str],
        tags: &[&str],
        push: bool,
    ) -> Result<(Vec<String>, Option<Vec<String>>), String> {
        let mut parsed = outputs
            .iter()
            .map(|o| parse_output(o))
            .collect::<Result<Vec<_>, _>>()?;
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        crate::output_flags::apply_tags_and_push(&mut parsed, &tags, push)?;
        let hint = apply(&mut parsed, &tags)?;
        let kinds = parsed
            .iter()
            .map(|o| match o {
                Output::Store(s) => format!(
                    "image {} push={} store={}",
                    s.image.names.join(","),
                    s.push,
                    s.store
                ),
                Output::Local { .. } => "local".to_string(),
                Output::Tar { .. } => "tar".to_string(),
                Output::Image(i) => i.format.name().to_string(),
                Output::CacheOnly => "cacheonly".to_string(),
            })
            .collect();
        Ok((kinds, hint.map(|h| h.names)))
    }

    #[test]
    fn applies_the_no_output_default() {
        type Want<'a> = Result<(&'a [&'a str], Option<&'a [&'a str]>), &'a str>;
        let mut failures = Vec::new();
        let mut check = |outputs: &[&str], tags: &[&str], push: bool, want: Want<'_>| {
            let got = rewrite(outputs, tags, push);
            let ok = match (&got, &want) {
                (Ok((kinds, hint)), Ok((want_kinds, want_hint))) => {
                    kinds == want_kinds
                        && hint
                            .as_deref()
                            .map(|h| h.iter().map(String::as_str).collect())
                            == want_hint.map(|h| h.to_vec())
                }
                (Err(g), Err(w)) => g.contains(w),
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{outputs:?} -t {tags:?} push={push}: got {got:?}, want {want:?}"
                ));
            }
        };
        // Nothing at all: the cache only, and the hint.
        check(&[], &[], false, Ok((&[], Some(&[]))));
        // -t alone: recorded in the image store, and the hint names it.
        check(
            &[],
            &["app:1", "app:2"],
            false,
            Ok((
                &["image app:1,app:2 push=false store=true"],
                Some(&["app:1", "app:2"]),
            )),
        );
        check(&[], &["Bad Name"], false, Err("invalid tag \"Bad Name\""));
        // --push is an output: no default, no hint.
        check(
            &[],
            &["app"],
            true,
            Ok((&["image app push=true store=true"], None)),
        );
        // cacheonly opts out of the default and is then dropped, alone or with others.
        check(&["type=cacheonly"], &[], false, Ok((&[], None)));
        check(&["type=cacheonly"], &["app"], false, Ok((&[], None)));
        check(
            &["type=cacheonly"],
            &["app"],
            true,
            Ok((&["image app push=true store=true"], None)),
        );
        check(
            &["type=cacheonly", "type=local,dest=out"],
            &[],
            false,
            Ok((&["local"], None)),
        );
        check(
            &["type=local,dest=out"],
            &["app"],
            false,
            Ok((&["local"], None)),
        );
        assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    }

    #[test]
    fn hint_text() {
        let check = |names: &[&str], want: &[&str]| {
            let message = NoOutputHint {
                names: names.iter().map(|n| n.to_string()).collect(),
            }
            .message();
            for w in want {
                assert!(message.contains(w), "{names:?}: {message:?} lacks {w:?}");
            }
        };
        check(
            &[],
            &[
                "No output specified with the embedded builder",
                "only remain in kiln's build cache",
                "-t NAME",
                "--push",
                "--load",
                "-o type=oci,dest=FILE",
            ],
        );
        check(
            &["app:1", "x/y"],
            &[
                "kept in kiln's image store as docker.io/library/app:1, docker.io/x/y:latest",
                "--push",
                "--load",
                "-o type=oci,dest=FILE",
            ],
        );
    }
}
