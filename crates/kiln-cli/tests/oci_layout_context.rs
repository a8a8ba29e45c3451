//! Named contexts from OCI image layouts, end to end on the embedded builder:
//! `--build-context NAME=oci-layout://PATH[:TAG|@DIGEST]` used by `FROM NAME` and
//! `COPY --from=NAME`, with the image config applied, a two-platform index, the cache (a
//! rebuild, and an image pulled from a registry before), and the errors (missing layout, tag,
//! digest, corrupt blobs).
//!
//! The layouts are written by `kiln-testkit` (busybox images with a marker file naming their
//! architecture and a config setting `FOO` and `WORKDIR`); only the shared-cache test needs a
//! registry.

mod common;

use common::{assert_success, build_to_local, context_with, state_dir, step_state};

use std::path::Path;
use std::process::Output;

use kiln_oci::{Digest, Platform};
use kiln_testkit::{
    BuiltImage, Layer, MediaTypes, OciImageBuilder, TarEntry, busybox_entries, write_index,
};

/// The step that reads an `oci-layout://` context named `base`.
const LOAD_STEP: &str = "[context base] OCI load from client";

/// A busybox image for `platform` whose config sets `FOO=from-layout` and `WORKDIR /work`, with
/// `/arch` naming the platform's architecture.
fn image(platform: &Platform) -> OciImageBuilder {
    OciImageBuilder::new(platform.clone())
        .layer(Layer::entries(busybox_entries().expect("busybox entries")))
        .layer(Layer::entries(vec![
            TarEntry::dir("work"),
            TarEntry::file("arch", platform.architecture.clone()),
        ]))
        .config(|c| {
            c.env.push("FOO=from-layout".to_string());
            c.working_dir = "/work".to_string();
        })
}

/// A layout holding the host's image, tagged `v1`.
fn host_layout() -> (tempfile::TempDir, BuiltImage) {
    let dir = tempfile::tempdir().expect("layout dir");
    let built = image(&Platform::host())
        .write(dir.path(), "v1")
        .expect("write layout");
    (dir, built)
}

/// Runs `kiln build` with plain progress on a context holding `dockerfile`, exporting to `dest`.
fn build(state: &Path, dockerfile: &str, extra: &[String], dest: &Path) -> Output {
    build_context(state, &[("Dockerfile", dockerfile)], extra, dest)
}

/// [`build`] with a context holding `files` (name, content).
fn build_context(state: &Path, files: &[(&str, &str)], extra: &[String], dest: &Path) -> Output {
    let context = context_with(files);
    build_to_local(state, dest)
        .args(extra)
        .arg(context.path())
        .output()
        .expect("run kiln build")
}

fn context_flag(value: String) -> Vec<String> {
    vec!["--build-context".to_string(), format!("base={value}")]
}

/// What a RUN on the layout's image sees: `FOO` and the working directory.
const RUN_DOCKERFILE: &str = "FROM base AS build\n\
    RUN echo \"$FOO\" > out.txt && pwd >> out.txt && cat /arch >> out.txt\n\
    FROM scratch\n\
    COPY --from=build /work/out.txt /\n";

/// Builds [`RUN_DOCKERFILE`] with `base` set to `value` and compares `out.txt` with
/// `expected`; returns the progress log.
fn check_run(state: &Path, value: String, expected: &str) -> String {
    let dest = tempfile::tempdir().expect("dest");
    let out = build(state, RUN_DOCKERFILE, &context_flag(value), dest.path());
    let log = assert_success(&out);
    let got = std::fs::read_to_string(dest.path().join("out.txt")).unwrap_or_default();
    assert_eq!(got, expected, "out.txt; build log:\n{log}");
    log
}

fn expected_run_output(platform: &Platform) -> String {
    format!("from-layout\n/work\n{}", platform.architecture)
}

#[test]
fn from_a_tag_applies_the_config_and_rebuilds_from_the_cache() {
    let state = state_dir();
    let (layout, _) = host_layout();
    let value = format!("oci-layout://{}:v1", layout.path().display());
    let want = expected_run_output(&Platform::host());
    let first = check_run(state.path(), value.clone(), &want);
    assert_eq!(step_state(&first, LOAD_STEP), Some("DONE"), "{first}");

    // The second build is fully cached: the layout is not read again, the RUN not run again.
    let second = check_run(state.path(), value, &want);
    let steps: Vec<&str> = second
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest))
        .filter(|rest| rest.starts_with('[') && !rest.starts_with("[internal]"))
        .filter(|rest| !rest.contains("load metadata for"))
        .collect();
    assert!(!steps.is_empty(), "no steps in:\n{second}");
    let not_cached: Vec<&&str> = steps
        .iter()
        .filter(|s| step_state(&second, s) != Some("CACHED"))
        .collect();
    assert!(
        not_cached.is_empty(),
        "steps not cached: {not_cached:?}\n{second}"
    );
}

#[test]
fn from_a_digest_and_without_a_tag() {
    let state = state_dir();
    let (layout, built) = host_layout();
    let want = expected_run_output(&Platform::host());
    let by_digest = format!(
        "oci-layout://{}@{}",
        layout.path().display(),
        built.manifest.digest
    );
    check_run(state.path(), by_digest, &want);
    // A layout holding one image needs no tag.
    let untagged = format!("oci-layout://{}", layout.path().display());
    check_run(state.path(), untagged, &want);
}

/// The other platform of the two-platform index: not the host's.
fn other_platform() -> Platform {
    if Platform::host().architecture == "arm64" {
        Platform::new("linux", "amd64", "")
    } else {
        Platform::new("linux", "arm64", "")
    }
}

#[test]
fn copy_from_an_index_picks_the_target_platform() {
    let state = state_dir();
    let layout = tempfile::tempdir().expect("layout dir");
    let platforms = [Platform::host(), other_platform()];
    // Each platform's config has its own working directory.
    let images: Vec<OciImageBuilder> = platforms
        .iter()
        .map(|p| {
            let workdir = format!("/work-{}", p.architecture);
            image(p).config(move |c| c.working_dir = workdir)
        })
        .collect();
    write_index(layout.path(), "multi", &images, MediaTypes::Oci).expect("write index");
    let value = format!("oci-layout://{}:multi", layout.path().display());
    // `COPY --from=base` reads the platform's files; `FROM base` and a relative `COPY` use the
    // platform's config.
    let files = [
        (
            "Dockerfile",
            "FROM base AS files\nCOPY marker ./\n\
             FROM scratch\nARG TARGETARCH\nCOPY --from=base /arch /\n\
             COPY --from=files /work-${TARGETARCH}/marker /\n",
        ),
        ("marker", "m"),
    ];
    let mut failures = Vec::new();
    for platform in &platforms {
        let dest = tempfile::tempdir().expect("dest");
        let mut extra = context_flag(value.clone());
        extra.extend(["--platform".to_string(), platform.to_string()]);
        let out = build_context(state.path(), &files, &extra, dest.path());
        let log = assert_success(&out);
        let arch = std::fs::read_to_string(dest.path().join("arch")).unwrap_or_default();
        let mut copied: Vec<String> = std::fs::read_dir(dest.path())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        copied.sort();
        if arch != platform.architecture || copied != ["arch", "marker"] {
            failures.push(format!(
                "{platform}: /arch is {arch:?}, exported {copied:?}\n{log}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn same_image_from_a_registry_shares_the_cache() {
    let registry = kiln_testkit::TestRegistry::start().expect("start registry");
    let pushed = kiln_testkit::busybox_image(&registry).expect("push busybox");
    let layout = kiln_testkit::busybox_layout().expect("busybox layout");
    let state = state_dir();
    let dest = tempfile::tempdir().expect("dest");
    let run = "RUN echo shared > /shared.txt\n";
    let first = build(
        state.path(),
        &format!("FROM {}\n{run}", pushed.reference),
        &[],
        dest.path(),
    );
    assert_success(&first);
    let value = format!(
        "oci-layout://{}:{}",
        layout.dir.display(),
        kiln_testkit::BUSYBOX_TAG
    );
    let second = build(
        state.path(),
        &format!("FROM base\n{run}"),
        &context_flag(value),
        dest.path(),
    );
    let log = assert_success(&second);
    for step in [LOAD_STEP, "RUN echo shared"] {
        assert_eq!(step_state(&log, step), Some("CACHED"), "{step}:\n{log}");
    }
}

/// How a layout is broken before the build, and the context value that reads it.
type Setup = fn(&Path, &BuiltImage) -> String;

/// The message expected from a failed build (`LAYOUT` standing for the layout directory).
type Expected = fn(&BuiltImage) -> String;

/// Builds `FROM base` with the context `setup` gives, and checks that the build fails with a
/// message containing `expected` (in which `LAYOUT` stands for the layout directory).
fn check_error(name: &str, setup: Setup, expected: Expected) -> Option<String> {
    let state = state_dir();
    let (layout, built) = host_layout();
    let value = setup(layout.path(), &built);
    let dest = tempfile::tempdir().expect("dest");
    let out = build(
        state.path(),
        "FROM base\nRUN true\n",
        &context_flag(value),
        dest.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = expected(&built).replace("LAYOUT", &layout.path().display().to_string());
    if out.status.code() == Some(1) && stderr.contains(&want) {
        return None;
    }
    Some(format!(
        "{name}: exit {:?}, want 1 and a message containing {want:?}:\n{stderr}",
        out.status.code()
    ))
}

fn corrupt(layout: &Path, digest: &Digest) {
    let path = layout.join("blobs/sha256").join(digest.encoded());
    std::fs::remove_file(&path).expect("remove blob");
    std::fs::write(&path, b"tampered").expect("write blob");
}

#[test]
fn errors_name_what_is_missing_or_wrong() {
    let cases: Vec<(&str, Setup, Expected)> = vec![
        (
            "missing layout directory",
            |dir, _| format!("oci-layout://{}/nope:v1", dir.display()),
            |_| "could not be resolved: OCI layout directory LAYOUT/nope not found".to_string(),
        ),
        (
            "tag not found",
            |dir, _| format!("oci-layout://{}:v2", dir.display()),
            |_| {
                "could not be resolved: tag \"v2\" not found in OCI layout LAYOUT (its tags: v1)"
                    .to_string()
            },
        ),
        (
            "digest not found",
            |dir, _| {
                format!(
                    "oci-layout://{}@{}",
                    dir.display(),
                    Digest::of_bytes(b"elsewhere")
                )
            },
            |_| {
                format!(
                    "could not be resolved: digest {} not found in OCI layout LAYOUT",
                    Digest::of_bytes(b"elsewhere")
                )
            },
        ),
        (
            "corrupt config",
            |dir, built| {
                corrupt(dir, &built.config.digest);
                format!("oci-layout://{}:v1", dir.display())
            },
            |built| {
                format!(
                    "digest mismatch for blob {d} in OCI layout LAYOUT: expected {d}, got {}",
                    Digest::of_bytes(b"tampered"),
                    d = built.config.digest
                )
            },
        ),
        (
            "corrupt layer",
            |dir, built| {
                let layer = built.layers.last().expect("layer");
                corrupt(dir, &layer.blob.digest);
                format!("oci-layout://{}:v1", dir.display())
            },
            |built| {
                let d = &built.layers.last().expect("layer").blob.digest;
                format!("blob {d} in OCI layout LAYOUT: expected")
            },
        ),
    ];
    let failures: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, setup, expected)| check_error(name, setup, expected))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
