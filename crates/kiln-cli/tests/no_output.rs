//! `kiln build` without `-o`, `--push` or `--load`: the result stays in the build cache (and,
//! with `-t`, the image is named in kiln's image store), and a warning at the end says how to
//! export it; `-o type=cacheonly` opts out of both.

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_success, context_with, kiln_build, state_dir};

/// A context that needs no registry: `FROM scratch` and one file.
fn context() -> tempfile::TempDir {
    context_with(&[
        ("Dockerfile", "FROM scratch\nCOPY hello /hello\n"),
        ("hello", "kept by kiln\n"),
    ])
}

/// Runs `kiln build --root STATE ARGS CONTEXT`.
fn build(state: &Path, context: &Path, args: &[&str]) -> Output {
    kiln_build(state)
        .args(args)
        .arg(context)
        .output()
        .expect("run kiln build")
}

/// The image store of the state directory, as `kiln images --no-trunc` lists it: each name
/// with its manifest digest.
fn stored_images(state: &Path) -> Vec<(String, String)> {
    let out = common::kiln()
        .args(["images", "--no-trunc", "--root"])
        .arg(state)
        .output()
        .expect("run kiln images");
    common::assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    assert_eq!(
        lines
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["NAME", "DIGEST", "CREATED"]),
        "{text}"
    );
    lines
        .map(|l| {
            let mut cols = l.split_whitespace();
            let name = cols.next().unwrap_or_default().to_string();
            let digest = cols.next().unwrap_or_default().to_string();
            (name, digest)
        })
        .collect()
}

/// What one build should show: the warning's presence and text, and the image store after it.
struct Want<'a> {
    /// Lines of the warning that must appear (empty: no warning at all).
    hint: &'a [&'a str],
    /// Whether stderr must hold nothing but warnings (`--progress quiet`).
    quiet: bool,
    /// The names the image store must hold afterwards.
    stored: &'a [&'a str],
}

/// Builds with `args` in a fresh state directory and checks the outcome; returns what is
/// wrong.
fn check(args: &[&str], want: &Want<'_>) -> Vec<String> {
    let state = state_dir();
    let ctx = context();
    let meta_dir = tempfile::tempdir().expect("dir");
    let meta_file = meta_dir.path().join("meta.json");
    let mut full: Vec<&str> = args.to_vec();
    let meta_arg = meta_file.to_str().expect("utf-8").to_string();
    full.extend(["--metadata-file", &meta_arg]);
    let out = build(state.path(), ctx.path(), &full);
    let stderr = assert_success(&out);
    let mut failures = Vec::new();
    let mut fail = |what: String| failures.push(format!("{args:?}: {what}\n{stderr}"));
    let warning = stderr
        .lines()
        .find(|l| l.starts_with("WARNING: No output specified"));
    match (want.hint.is_empty(), warning) {
        (true, Some(w)) => fail(format!("unexpected warning {w:?}")),
        (false, None) => fail("no warning".to_string()),
        (false, Some(w)) => {
            for part in want.hint {
                if !w.contains(part) {
                    fail(format!("warning lacks {part:?}"));
                }
            }
            // At the end: nothing but other warnings after it.
            let after = stderr.split(w).nth(1).unwrap_or_default();
            if after.lines().any(|l| !l.trim().is_empty()) {
                fail(format!("output after the warning: {after:?}"));
            }
        }
        (true, None) => {}
    }
    if want.quiet
        && let Some(l) = stderr
            .lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with("WARNING: "))
    {
        fail(format!("quiet build printed {l:?}"));
    }
    let stored = stored_images(state.path());
    let names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    if names != want.stored {
        fail(format!(
            "image store holds {names:?}, want {:?}",
            want.stored
        ));
    }
    // A named image is the build's image: the metadata file gives its digest.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_file).unwrap_or_default())
            .unwrap_or_default();
    let digest = meta["containerimage.digest"].as_str();
    if want.stored.is_empty() {
        if digest.is_some() {
            fail(format!("metadata names an image: {meta}"));
        }
    } else if stored.iter().any(|(_, d)| Some(d.as_str()) != digest) {
        fail(format!("stored {stored:?}, metadata digest {digest:?}"));
    }
    failures
}

#[test]
fn no_output_keeps_the_result_and_says_how_to_export_it() {
    let mut failures = Vec::new();
    // Nothing asked: the cache only, the warning even in quiet mode, and nothing else.
    failures.extend(check(
        &["--progress", "quiet"],
        &Want {
            hint: &[
                "No output specified with the embedded builder",
                "only remain in kiln's build cache",
                "-t NAME",
                "--push",
                "--load",
                "-o type=oci,dest=FILE",
            ],
            quiet: true,
            stored: &[],
        },
    ));
    // -t names: the image goes into kiln's image store under each name.
    failures.extend(check(
        &["--progress", "plain", "-t", "app:1", "-t", "x/y:2"],
        &Want {
            hint: &[
                "kept in kiln's image store as docker.io/library/app:1, docker.io/x/y:2",
                "--push",
                "--load",
                "-o type=oci,dest=FILE",
            ],
            quiet: false,
            stored: &["docker.io/library/app:1", "docker.io/x/y:2"],
        },
    ));
    // The same, quiet: only the warning.
    failures.extend(check(
        &["-q", "-t", "app:1"],
        &Want {
            hint: &["kept in kiln's image store as docker.io/library/app:1"],
            quiet: true,
            stored: &["docker.io/library/app:1"],
        },
    ));
    // cacheonly: nothing exported, nothing stored, no warning, even with -t.
    failures.extend(check(
        &["--progress", "plain", "-o", "type=cacheonly", "-t", "app:1"],
        &Want {
            hint: &[],
            quiet: false,
            stored: &[],
        },
    ));
    // cacheonly next to a real output: that output runs, still no warning.
    failures.extend(check(
        &[
            "--progress",
            "plain",
            "-o",
            "type=cacheonly",
            "-o",
            "type=image,name=z/kept:1",
        ],
        &Want {
            hint: &[],
            quiet: false,
            stored: &["docker.io/z/kept:1"],
        },
    ));
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n\n"));
}
