//! End-to-end builds on the embedded builder: a real registry on loopback (Debian's
//! `docker-registry`), a busybox base image built from Debian's `busybox-static`, RUN steps under
//! runc, and the results exported as files and as a tarball.

mod common;

use common::{assert_success, busybox, kiln, kiln_build, state_dir, step_state};

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use kiln_testkit::TestRegistry;

const DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE} AS build
WORKDIR /src
ENV GREETING=hello
COPY greeting.txt ./
COPY --chmod=0755 tool.sh /usr/local/bin/tool
RUN tool > /src/out.txt && echo "$GREETING from $(whoami)" >> /src/out.txt
RUN mkdir -p /artifacts && cp /src/out.txt /artifacts/ && chown -R app:app /artifacts

FROM ${BASE}
COPY --from=build /artifacts /srv/artifacts
COPY --from=build --chown=1000:1000 /src/greeting.txt /home/app/
USER app
WORKDIR /home/app
RUN echo "user=$(id -u):$(id -g) pwd=$(pwd)" > /home/app/whoami.txt
"#;

fn write_context(dir: &Path) {
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE).expect("Dockerfile");
    std::fs::write(dir.join("greeting.txt"), "hello from the context\n").expect("greeting");
    std::fs::write(dir.join("tool.sh"), "#!/bin/sh\necho tool ran\n").expect("tool");
    std::fs::write(dir.join("ignored.txt"), "never copied\n").expect("ignored");
    std::fs::write(dir.join(".dockerignore"), "ignored.txt\n").expect(".dockerignore");
}

fn build(state: &Path, context: &Path, base: &str, extra: &[&str]) -> Output {
    kiln_build(state)
        .args(["--progress", "plain", "--build-arg"])
        .arg(format!("BASE={base}"))
        .args(extra)
        .arg(context)
        .output()
        .expect("run kiln build")
}

/// Counts the layer downloads (not config downloads) in the registry's access log.
fn blob_gets(registry: &TestRegistry) -> usize {
    let layout = kiln_testkit::busybox_layout().expect("busybox layout");
    let layers: Vec<String> = layout
        .image
        .layers
        .iter()
        .map(|l| format!("GET /v2/library/busybox/blobs/{}", l.blob.digest))
        .collect();
    registry
        .log()
        .lines()
        .filter(|l| layers.iter().any(|g| l.contains(g.as_str())))
        .count()
}

#[test]
fn multi_stage_build_to_local_files_then_fully_cached() {
    let (registry, base) = busybox();
    let state = state_dir();
    let context = tempfile::tempdir().expect("context");
    write_context(context.path());
    let out_dir = tempfile::tempdir().expect("out");
    let dest = out_dir.path().join("out");

    let first = build(
        state.path(),
        context.path(),
        &base,
        &["-o", &format!("type=local,dest={}", dest.display())],
    );
    let log = assert_success(&first);
    let first_log = log.clone();
    assert!(log.contains("RUN tool > /src/out.txt"), "{log}");
    let downloads = blob_gets(&registry);
    assert!(
        downloads >= 1,
        "the first build pulls the base layer:\n{}",
        registry.log()
    );

    // The files of the final stage, with their modes and owners.
    let artifacts = std::fs::read_to_string(dest.join("srv/artifacts/out.txt")).expect("out.txt");
    assert_eq!(artifacts, "tool ran\nhello from root\n");
    let greeting = dest.join("home/app/greeting.txt");
    assert_eq!(
        std::fs::read_to_string(&greeting).expect("greeting"),
        "hello from the context\n"
    );
    // As with BuildKit, a local export belongs to the user running the build (root here); the
    // owners inside the image show in a tarball export.
    let meta = std::fs::metadata(&greeting).expect("stat");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 0),
        "local exports are owned by the caller"
    );
    let tar = out_dir.path().join("fs.tar");
    let tarred = build(
        state.path(),
        context.path(),
        &base,
        &["-o", &format!("type=tar,dest={}", tar.display())],
    );
    assert_success(&tarred);
    let owners = tar_owners(&tar);
    assert_eq!(
        owners.get("srv/artifacts/out.txt").map(String::as_str),
        Some("1000/1000"),
        "chown -R app:app in the build stage"
    );
    assert_eq!(
        owners.get("home/app/greeting.txt").map(String::as_str),
        Some("1000/1000"),
        "COPY --chown=1000:1000"
    );
    assert_eq!(owners.get("bin/busybox").map(String::as_str), Some("0/0"));
    assert!(
        dest.join("bin/busybox").is_file(),
        "the base image's files are exported"
    );
    assert!(
        !dest.join("src").exists(),
        "the build stage's files are not in the final stage"
    );
    // Files the container runtime needed (mount points) are not left in the result.
    assert!(
        !dest.join("etc/hosts").exists(),
        "/etc/hosts mount stub left in the result"
    );
    assert!(
        !dest.join("etc/resolv.conf").exists(),
        "/etc/resolv.conf mount stub left in the result"
    );

    // A second build is fully cached and downloads nothing.
    let dest2 = out_dir.path().join("out2");
    let second = build(
        state.path(),
        context.path(),
        &base,
        &["-o", &format!("type=local,dest={}", dest2.display())],
    );
    let log = assert_success(&second);
    assert_eq!(
        blob_gets(&registry),
        downloads,
        "the second build downloaded layers:\n{}",
        registry.log()
    );
    for step in [
        "RUN tool > /src/out.txt",
        "COPY greeting.txt ./",
        "RUN echo \"user=",
    ] {
        assert_eq!(
            step_state(&log, step),
            Some("CACHED"),
            "{step}:\n{log}\nfirst build:\n{first_log}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dest2.join("srv/artifacts/out.txt")).expect("out.txt"),
        artifacts
    );

    // Rewriting a file with the same content (new mtime) and changing an ignored file keeps
    // everything cached.
    let f = context.path().join("greeting.txt");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&f, "hello from the context\n").expect("rewrite same content");
    std::fs::write(context.path().join("ignored.txt"), "changed but ignored\n").expect("write");
    let third = build(state.path(), context.path(), &base, &[]);
    let third_log = assert_success(&third);
    for step in [
        "RUN tool > /src/out.txt",
        "COPY greeting.txt ./",
        "RUN echo \"user=",
    ] {
        assert_eq!(
            step_state(&third_log, step),
            Some("CACHED"),
            "{step}:\n{third_log}\nsecond build:\n{log}\nfirst build:\n{first_log}"
        );
    }

    // Changing one byte rebuilds only the steps that depend on that file.
    std::fs::write(&f, "hello, changed\n").expect("change one file");
    let dest3 = out_dir.path().join("out3");
    let fourth = build(
        state.path(),
        context.path(),
        &base,
        &["-o", &format!("type=local,dest={}", dest3.display())],
    );
    let log = assert_success(&fourth);
    assert_eq!(
        step_state(&log, "COPY greeting.txt ./"),
        Some("DONE"),
        "{log}"
    );
    // Steps before the changed one stay cached; steps after it in the same stage rebuild (their
    // base changed); a later stage copying files whose content did not change stays cached.
    assert_eq!(
        step_state(&log, "[build 2/6] WORKDIR /src"),
        Some("CACHED"),
        "{log}"
    );
    assert_eq!(
        step_state(&log, "RUN tool > /src/out.txt"),
        Some("DONE"),
        "{log}"
    );
    assert_eq!(
        step_state(&log, "COPY --from=build /artifacts /srv/artifacts"),
        Some("CACHED"),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(dest3.join("home/app/greeting.txt")).expect("greeting"),
        "hello, changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(dest3.join("srv/artifacts/out.txt")).expect("out.txt"),
        artifacts
    );
}

/// `path -> uid/gid` of every entry of a tarball, as GNU tar lists them.
fn tar_owners(tar: &Path) -> std::collections::BTreeMap<String, String> {
    let out = std::process::Command::new("tar")
        .arg("--numeric-owner")
        .arg("-tvf")
        .arg(tar)
        .output()
        .expect("tar");
    assert!(
        out.status.success(),
        "tar -tvf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let owner = fields.get(1)?;
            let path = fields
                .get(5)?
                .trim_start_matches("./")
                .trim_end_matches('/');
            Some((path.to_string(), owner.to_string()))
        })
        .collect()
}

#[test]
fn tar_output_and_stdin_dockerfile() {
    let (_registry, base) = busybox();
    let state = state_dir();
    let dir = tempfile::tempdir().expect("dir");
    let tar = dir.path().join("fs.tar");
    let out = kiln_build(state.path())
        .arg("--metadata-file")
        .arg(dir.path().join("metadata.json"))
        .args(["--progress", "plain", "-f", "-", "-o"])
        .arg(format!("type=tar,dest={}", tar.display()))
        .arg(dir.path())
        .write_stdin(format!("FROM {base}\nRUN echo made-by-run > /made.txt\n"))
        .output()
        .expect("run kiln");
    assert_success(&out);
    let listing = std::process::Command::new("tar")
        .arg("-tvf")
        .arg(&tar)
        .output()
        .expect("tar");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("made.txt"), "{listing}");
    assert!(listing.contains("bin/busybox"), "{listing}");
    let metadata: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("metadata.json")).expect("metadata file"),
    )
    .expect("JSON");
    let reference = metadata["buildx.build.ref"]
        .as_str()
        .expect("buildx.build.ref");
    assert!(
        reference.starts_with("default/default/") && reference.len() == 16 + 25,
        "{reference}"
    );
}

#[test]
fn failing_run_step_reports_exit_code_and_line() {
    let (_registry, base) = busybox();
    let state = state_dir();
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base}\nRUN echo before-failing && exit 3\n"),
    )
    .expect("write");
    let out = build(state.path(), dir.path(), &base, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("before-failing"),
        "the step's output is shown: {stderr}"
    );
    assert!(stderr.contains("exit code: 3"), "{stderr}");
    assert!(
        stderr.contains(
            "Dockerfile:2: failed to solve: process \"/bin/sh -c echo before-failing && exit 3\""
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(">>> RUN echo before-failing && exit 3"),
        "the failing line is shown: {stderr}"
    );
}

#[test]
fn bad_output_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("dir");
    let out = kiln()
        .args(["build", "-o", "type=nope,dest=x"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown output type \"nope\""));
}
