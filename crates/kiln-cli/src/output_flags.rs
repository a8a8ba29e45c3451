//! The build flags that rewrite the `--output` list, as buildx applies them: `--load`
//! ([`add_load`]), `-t` and `--push` ([`apply_tags_and_push`]) and `--annotation`
//! ([`apply_annotations`]). The outputs are parsed first ([`crate::outputs`]); these functions
//! only edit the parsed list, so the parsers know nothing of the flags.

use std::collections::BTreeMap;

use kiln_oci::Reference;

use crate::export_image::StoreOutput;
use crate::image_attrs::{ImageFormat, ImageOutput};
use crate::outputs::{Output, parse_image};

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

/// The output `--push` adds when no `image` output is given: `type=image,push=true`.
fn pushed_output() -> Result<StoreOutput, String> {
    let mut attrs = BTreeMap::new();
    attrs.insert("push".to_string(), "true".to_string());
    crate::export_image::parse("image", attrs)
}

/// Applies `-t` and `--push` to the image-store outputs as buildx does, and checks that every
/// output that pushes has a name.
pub fn apply_tags_and_push(
    outputs: &mut Vec<Output>,
    tags: &[String],
    push: bool,
) -> Result<(), String> {
    if push {
        let mut used = false;
        for o in outputs.iter_mut() {
            if let Output::Store(s) = o {
                s.push = true;
                used = true;
            }
        }
        if !used {
            outputs.push(Output::Store(pushed_output()?));
        }
    }
    for o in outputs.iter_mut() {
        let Output::Store(s) = o else { continue };
        if !tags.is_empty() {
            s.image.names = tags.to_vec();
        }
        if s.push && s.image.names.is_empty() {
            return Err("tag is needed when pushing to registry".to_string());
        }
        for name in &s.image.names {
            kiln_export::ImageName::parse(name)
                .map_err(|e| format!("invalid tag {name:?}: {e}"))?;
        }
        if let Some(prefix) = &s.dangling_prefix {
            Reference::parse(prefix)
                .ok()
                .filter(|r| r.tag().is_none() && r.digest().is_none())
                .ok_or_else(|| {
                    format!("invalid dangling-name-prefix {prefix:?}: expected a repository name")
                })?;
        }
    }
    Ok(())
}

/// Sets the `--annotation` attributes on every image output (replacing the same keys).
pub fn apply_annotations(outputs: &mut [Output], flags: &[String]) -> Result<(), String> {
    let attrs = crate::annotations::parse_annotation_flags(flags)?;
    if attrs.is_empty() {
        return Ok(());
    }
    for o in outputs {
        let content = match o {
            Output::Image(i) => &mut i.content,
            Output::Store(s) => &mut s.image.content,
            _ => continue,
        };
        content
            .annotations
            .extend(attrs.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::parse_output;

    /// Parses `outputs`, applies `tags` and `push`, and describes the image-store outputs as
    /// `names push=.. store=..` lines, or gives the error.
    fn rewrite(outputs: &[&str], tags: &[&str], push: bool) -> Result<Vec<String>, String> {
        let mut parsed = outputs
            .iter()
            .map(|o| parse_output(o))
            .collect::<Result<Vec<_>, _>>()?;
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        apply_tags_and_push(&mut parsed, &tags, push)?;
        Ok(parsed
            .iter()
            .map(|o| match o {
                Output::Store(s) => format!(
                    "image {} push={} by-digest={} insecure={} canonical={} dangling={:?} store={} unpack={} oci={}",
                    s.image.names.join(","),
                    s.push,
                    s.push_by_digest,
                    s.insecure,
                    s.name_canonical,
                    s.dangling_prefix,
                    s.store,
                    s.unpack,
                    s.image.oci_mediatypes().0,
                ),
                other => format!("{other:?}"),
            })
            .collect())
    }

    #[test]
    fn rewrites_outputs_as_buildx() {
        let mut failures = Vec::new();
        let mut check =
            |outputs: &[&str], tags: &[&str], push: bool, want: Result<&[&str], &str>| {
                let got = rewrite(outputs, tags, push);
                let ok = match (&got, &want) {
                    (Ok(g), Ok(w)) => g == w,
                    (Err(g), Err(w)) => g.contains(w),
                    _ => false,
                };
                if !ok {
                    failures.push(format!(
                        "{outputs:?} -t {tags:?} push={push}: got {got:?}, want {want:?}"
                    ));
                }
            };
        let plain = "push=false by-digest=false insecure=false canonical=false dangling=None store=true unpack=false oci=false";
        let pushed = "push=true by-digest=false insecure=false canonical=false dangling=None store=true unpack=false oci=false";
        check(
            &[],
            &["reg/app:1"],
            true,
            Ok(&[&format!("image reg/app:1 {pushed}")]),
        );
        check(
            &[],
            &[],
            true,
            Err("tag is needed when pushing to registry"),
        );
        check(
            &["type=image,name=x"],
            &[],
            false,
            Ok(&[&format!("image x {plain}")]),
        );
        check(
            &["type=image,\"name=a,b\""],
            &[],
            true,
            Ok(&[&format!("image a,b {pushed}")]),
        );
        check(
            &["type=image,name=x"],
            &["t1", "t2"],
            false,
            Ok(&[&format!("image t1,t2 {plain}")]),
        );
        check(
            &["type=registry,name=x,push=false"],
            &[],
            false,
            Ok(&[&format!("image x {pushed}")]),
        );
        check(
            &["type=registry"],
            &[],
            false,
            Err("tag is needed when pushing to registry"),
        );
        check(&["type=image,push=true"], &[], false, Err("tag is needed"));
        check(&["type=image,push="], &[], false, Err("tag is needed"));
        check(
            &["type=image,push=true"],
            &["t"],
            false,
            Ok(&[&format!("image t {pushed}")]),
        );
        check(
            &[
                "type=image,name=x,push-by-digest=true,registry.insecure=true,name-canonical=true,unpack=true,store=false,oci-mediatypes=true,compression=zstd",
            ],
            &[],
            true,
            Ok(&[
                "image x push=true by-digest=true insecure=true canonical=true dangling=None store=false unpack=true oci=true",
            ]),
        );
        check(
            &["type=image,dangling-name-prefix=reg/tmp"],
            &[],
            false,
            Ok(&[
                "image  push=false by-digest=false insecure=false canonical=false dangling=Some(\"reg/tmp\") store=true unpack=false oci=false",
            ]),
        );
        check(
            &["type=image,dangling-name-prefix=Bad:Name"],
            &[],
            false,
            Err("invalid dangling-name-prefix"),
        );
        // `--push` with another output adds an image output; it leaves the other alone.
        check(
            &["type=local,dest=out"],
            &["t"],
            true,
            Ok(&["Local { dest: \"out\" }", &format!("image t {pushed}")]),
        );
        check(
            &["type=image,push=maybe"],
            &[],
            false,
            Err("non-bool value \"maybe\" specified for push"),
        );
        check(
            &["type=image,dest=x"],
            &[],
            false,
            Err("does not write files"),
        );
        check(
            &["type=image,bogus=1"],
            &[],
            false,
            Err("unknown attribute \"bogus\" for output type \"image\""),
        );
        check(
            &["type=image,name=UPPER"],
            &[],
            false,
            Err("invalid tag \"UPPER\""),
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
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
}
