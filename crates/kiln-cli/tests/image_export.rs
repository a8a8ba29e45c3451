//! `-o type=oci` and `-o type=docker`: image tarballs and layouts checked by tools kiln did not
//! write (skopeo, umoci, oci-image-tool, `docker load` and `docker run`).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{assert_success, busybox, context_with, kiln_build, state_dir};
use kiln_testkit::DockerEngine;

/// The file the RUN step writes, and what it holds.
const RUN_FILE: &str = "made-by-run.txt";
const RUN_TEXT: &str = "written by a RUN step";

/// The Dockerfile every test builds: a base image, a RUN writing a file and a COPY.
fn dockerfile(base: &str) -> String {
    format!(
        "FROM {base}\nRUN echo '{RUN_TEXT}' > /{RUN_FILE}\nCOPY hello.txt /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n"
    )
}

/// A build context with the Dockerfile and the copied file.
fn context(base: &str) -> tempfile::TempDir {
    context_with(&[
        ("Dockerfile", &dockerfile(base)),
        ("hello.txt", "hello from the context\n"),
    ])
}

/// Runs a tool kiln did not write; fails the test when it is missing or fails.
fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (scripts/prereqs.sh): {e}"));
    check_tool(program, args, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check_tool(program: &str, args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `skopeo inspect` of an image, as JSON.
fn skopeo_inspect(image: &str) -> serde_json::Value {
    let text = tool("skopeo", &["inspect", "--tls-verify=false", image]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("skopeo inspect {image}: {e}\n{text}"))
}

/// The manifest of an image, through `skopeo inspect --raw`.
fn raw_manifest(image: &str) -> serde_json::Value {
    let text = tool("skopeo", &["inspect", "--raw", "--tls-verify=false", image]);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("skopeo inspect --raw {image}: {e}\n{text}"))
}

/// The layers' media types and digests, from the image's manifest as skopeo reads it.
fn layers(image: &str) -> Vec<(String, String)> {
    let manifest = raw_manifest(image);
    manifest["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers in {manifest:#}"))
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap_or_default().to_string(),
                l["digest"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Builds the context with `-o OUTPUT` and extra flags; returns kiln's stderr.
fn build(state: &Path, ctx: &Path, output: &str, extra: &[&str]) -> String {
    let out = kiln_build(state)
        .args(["--progress", "plain", "-o", output])
        .args(extra)
        .arg(ctx)
        .output()
        .expect("run kiln build");
    assert_success(&out)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read JSON file")).expect("JSON")
}

#[test]
fn oci_tarball_is_accepted_by_skopeo_umoci_and_oci_image_tool() {
    let (registry, base) = busybox();
    let state = state_dir();
    let ctx = context(&base);
    let work = tempfile::tempdir_in("/var/tmp").expect("work dir");
    let tar = work.path().join("x.tar");
    let metadata = work.path().join("metadata.json");
    let iidfile = work.path().join("iid");
    let stderr = build(
        state.path(),
        ctx.path(),
        &format!("type=oci,dest={}", tar.display()),
        &[
            "-t",
            "example/app:v1",
            "--metadata-file",
            metadata.to_str().expect("path"),
            "--iidfile",
            iidfile.to_str().expect("path"),
        ],
    );
    assert!(stderr.contains("exporting to oci image format"), "{stderr}");
    assert!(
        stderr.contains("created layer"),
        "the first export makes layers:\n{stderr}"
    );
    // The tarball and the metadata files are made as buildx makes them: 0666 less the umask
    // (nextest runs each test in its own process, so reading the umask here is safe).
    let umask = rustix::process::umask(rustix::fs::Mode::empty());
    rustix::process::umask(umask);
    for file in [&tar, &metadata, &iidfile] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(file).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask.bits(), "{}", file.display());
    }

    // skopeo: three layers (busybox's, the RUN's, the COPY's), OCI gzip media types, and the
    // base layer is the registry's blob byte for byte.
    let archive = format!("oci-archive:{}", tar.display());
    let inspect = skopeo_inspect(&archive);
    let got = layers(&archive);
    assert_eq!(got.len(), 3, "{got:?}");
    for (media_type, _) in &got {
        assert_eq!(media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
    }
    let upstream_layers = layers(&format!("docker://{base}"));
    assert_eq!(
        got.first().map(|l| &l.1),
        upstream_layers.first().map(|l| &l.1),
        "the base layer is reused as it is"
    );
    assert_eq!(inspect["Labels"], serde_json::Value::Null, "{inspect:#}");

    // Metadata and image id.
    let meta = read_json(&metadata);
    let raw_text = tool("skopeo", &["inspect", "--raw", &archive]);
    let manifest: serde_json::Value = serde_json::from_str(&raw_text).expect("manifest");
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    assert_eq!(
        meta["containerimage.config.digest"], config_digest,
        "{meta:#}"
    );
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        meta["containerimage.digest"],
        meta["containerimage.descriptor"]["digest"]
    );
    assert_eq!(meta["image.name"], "docker.io/example/app:v1");
    assert_eq!(
        std::fs::read_to_string(&iidfile).expect("iidfile"),
        config_digest
    );
    let manifest_digest = format!("sha256:{}", common::sha256_hex(raw_text.as_bytes()));
    assert_eq!(meta["containerimage.digest"], manifest_digest.as_str());

    // umoci unpacks what skopeo copied into an OCI layout directory.
    let layout = work.path().join("layout");
    tool(
        "skopeo",
        &[
            "copy",
            &format!("oci-archive:{}", tar.display()),
            &format!("oci:{}:tag", layout.display()),
        ],
    );
    let bundle = work.path().join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:tag", layout.display()),
            bundle.to_str().expect("path"),
        ],
    );
    let made = std::fs::read_to_string(bundle.join("rootfs").join(RUN_FILE)).expect("RUN file");
    assert_eq!(made.trim(), RUN_TEXT);
    assert!(bundle.join("rootfs/hello.txt").is_file());
    assert!(bundle.join("rootfs/bin/busybox").exists());

    // oci-image-tool validates kiln's own layout (the manifest named `v1`, its config and
    // layers). Debian's build (1.0.0-rc1) finds nothing in any layout tarball with an
    // `index.json`, umoci's included, and calls `--type imageLayout` unimplemented, so it
    // checks the tarball unpacked (it detects a directory given as `--type image`).
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).expect("mkdir");
    tool(
        "tar",
        &[
            "-xf",
            tar.to_str().expect("path"),
            "-C",
            unpacked.to_str().expect("path"),
        ],
    );
    let validated = tool(
        "oci-image-tool",
        &[
            "validate",
            "--type",
            "image",
            "--ref",
            "name=v1",
            unpacked.to_str().expect("path"),
        ],
    );
    assert!(validated.contains("Validation succeeded"), "{validated}");

    // The same build again: fully cached, the layers made by the first export are reused
    // (no diff, no compression) and the manifest is the same.
    let tar2 = work.path().join("x2.tar");
    let metadata2 = work.path().join("metadata2.json");
    let stderr = build(
        state.path(),
        ctx.path(),
        &format!("type=oci,dest={}", tar2.display()),
        &[
            "-t",
            "example/app:v1",
            "--metadata-file",
            metadata2.to_str().expect("path"),
        ],
    );
    assert!(!stderr.contains("created layer"), "{stderr}");
    assert_eq!(
        read_json(&metadata2)["containerimage.digest"],
        meta["containerimage.digest"]
    );
    drop(registry);
}

#[test]
fn docker_tarball_loads_and_runs_in_the_docker_engine() {
    let docker = DockerEngine::connect().expect("the Docker engine (scripts/dockerd.sh)");
    let (_registry, base) = busybox();
    let state = state_dir();
    let ctx = context(&base);
    let work = tempfile::tempdir_in("/var/tmp").expect("work dir");
    let tar = work.path().join("y.tar");
    let name = format!(
        "kiln-test/image-export:{}",
        common::unique_value("t").get(..20).unwrap_or("t")
    );
    let iidfile = work.path().join("iid");
    build(
        state.path(),
        ctx.path(),
        &format!("type=docker,dest={},name={name}", tar.display()),
        &["--iidfile", iidfile.to_str().expect("path")],
    );
    // Docker media types by default.
    let inspect = skopeo_inspect(&format!("docker-archive:{}", tar.display()));
    assert_eq!(
        inspect["Layers"].as_array().map(Vec::len),
        Some(3),
        "{inspect:#}"
    );

    let docker_cmd = |args: &[&str]| {
        let out = docker.command().args(args).output().expect("run docker");
        check_tool("docker", args, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let loaded = docker_cmd(&["load", "-i", tar.to_str().expect("path")]);
    assert!(loaded.contains(&name), "{loaded}");
    let result = std::panic::catch_unwind(|| {
        let printed = docker_cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            &name,
            "cat",
            &format!("/{RUN_FILE}"),
        ]);
        assert_eq!(printed.trim(), RUN_TEXT);
        // CMD from the Dockerfile.
        let printed = docker_cmd(&["run", "--rm", "--network", "none", &name]);
        assert_eq!(printed.trim(), "hello from the context");
        // The image id is the config digest kiln wrote to --iidfile.
        let id = docker_cmd(&["image", "inspect", "--format", "{{.Id}}", &name]);
        assert_eq!(
            id.trim(),
            std::fs::read_to_string(&iidfile).expect("iidfile")
        );
    });
    docker_cmd(&["image", "rm", &name]);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn every_compression_gives_an_image_skopeo_accepts() {
    let (_registry, base) = busybox();
    let state = state_dir();
    let ctx = context(&base);
    let work = tempfile::tempdir_in("/var/tmp").expect("work dir");
    let upstream = layers(&format!("docker://{base}"));
    let check = |attrs: &str, want_base: &str, want_own: &str, forced: bool| {
        let tar = work
            .path()
            .join(format!("{}.tar", attrs.replace([',', '='], "_")));
        build(
            state.path(),
            ctx.path(),
            &format!("type=oci,dest={},{attrs}", tar.display()),
            &[],
        );
        let archive = format!("oci-archive:{}", tar.display());
        skopeo_inspect(&archive);
        let got = layers(&archive);
        assert_eq!(got.len(), 3, "{attrs}: {got:?}");
        let types: Vec<&str> = got.iter().map(|l| l.0.as_str()).collect();
        assert_eq!(types, [want_base, want_own, want_own], "{attrs}");
        let same_base = got.first().map(|l| &l.1) == upstream.first().map(|l| &l.1);
        assert_eq!(
            same_base, !forced,
            "{attrs}: base layer reused unless forced"
        );
        // The whole image reads back: skopeo copies it, checking every digest.
        let copy = work
            .path()
            .join(format!("{}-copy", attrs.replace([',', '='], "_")));
        tool(
            "skopeo",
            &[
                "copy",
                &format!("oci-archive:{}", tar.display()),
                &format!("oci:{}:t", copy.display()),
            ],
        );
    };
    let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    let zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
    let plain = "application/vnd.oci.image.layer.v1.tar";
    check("compression=gzip", gzip, gzip, false);
    check("compression=zstd", gzip, zstd, false);
    check("compression=uncompressed", gzip, plain, false);
    check("compression=zstd,force-compression=true", zstd, zstd, true);
    // Forcing the compression the base layer already has converts nothing (BuildKit's
    // `NeedsConversion`).
    check("compression=gzip,force-compression=true", gzip, gzip, false);
    // eStargz converts the base layer too (BuildKit forces compression for it).
    check("compression=estargz", gzip, gzip, true);
    // eStargz layers, the base image's included, carry the TOC digest and uncompressed size;
    // the blob is gzip that the copy above decompressed and checked against the diff_id.
    let estargz = work.path().join("compression_estargz.tar");
    let raw = raw_manifest(&format!("oci-archive:{}", estargz.display()));
    assert_eq!(raw["layers"].as_array().map(Vec::len), Some(3), "{raw}");
    for layer in raw["layers"].as_array().into_iter().flatten() {
        let annotations = &layer["annotations"];
        assert!(
            annotations["containerd.io/snapshot/stargz/toc.digest"]
                .as_str()
                .is_some_and(|d| d.starts_with("sha256:")),
            "{layer}"
        );
        assert!(
            annotations["io.containers.estargz.uncompressed-size"]
                .as_str()
                .is_some_and(|n| n.parse::<u64>().is_ok()),
            "{layer}"
        );
    }
    check(
        "compression=gzip,compression-level=9,oci-mediatypes=true",
        gzip,
        gzip,
        false,
    );
    // Docker media types when asked for.
    let tar = work.path().join("docker-types.tar");
    build(
        state.path(),
        ctx.path(),
        &format!("type=oci,dest={},oci-mediatypes=false", tar.display()),
        &[],
    );
    let raw = raw_manifest(&format!("oci-archive:{}", tar.display()));
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        raw["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        raw["layers"][2]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );

    // dest=-: the tarball on stdout.
    let out = kiln_build(state.path())
        .args(["-q", "-o", "type=docker,dest=-"])
        .arg(ctx.path())
        .output()
        .expect("run kiln build");
    assert_success(&out);
    let stdout_tar = work.path().join("stdout.tar");
    std::fs::write(&stdout_tar, &out.stdout).expect("write");
    let inspect = skopeo_inspect(&format!("docker-archive:{}", stdout_tar.display()));
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(3));

    // tar=false: a layout directory.
    let dir = work.path().join("layout-dir");
    build(
        state.path(),
        ctx.path(),
        &format!("type=oci,dest={},tar=false,name=app", dir.display()),
        &[],
    );
    assert!(dir.join("oci-layout").is_file());
    let got = layers(&format!("oci:{}:latest", dir.display()));
    assert_eq!(got.len(), 3);
    // A second image into the same directory joins the first (BuildKit's client merges the
    // index): skopeo finds both names.
    build(
        state.path(),
        ctx.path(),
        &format!("type=oci,dest={},tar=false,name=app:v2", dir.display()),
        &[],
    );
    for tag in ["latest", "v2"] {
        let got = layers(&format!("oci:{}:{tag}", dir.display()));
        assert_eq!(got.len(), 3, "{tag}");
    }
}

#[test]
fn bad_image_outputs_give_one_clear_message() {
    let (_registry, base) = busybox();
    let state = state_dir();
    let ctx = context(&base);
    let check = |output: &str, want: &str| {
        let out = kiln_build(state.path())
            .args(["--progress", "plain", "-o", output])
            .arg(ctx.path())
            .output()
            .expect("run kiln build");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{output}: kiln succeeded:\n{stderr}");
        assert!(
            stderr.contains(want),
            "{output}: want {want:?} in:\n{stderr}"
        );
    };
    check(
        "type=oci,dest=x.tar,bogus=1",
        "unknown attribute \"bogus\" for output type \"oci\"",
    );
    check("type=oci", "dest is required for oci output");
    check(
        "type=docker,dest=/nonexistent-kiln-dir/y.tar",
        "directory /nonexistent-kiln-dir does not exist",
    );
    let out = kiln_build(state.path())
        .args(["-o", "type=oci,dest=x.tar,compression=brotli"])
        .arg(ctx.path())
        .output()
        .expect("run kiln build");
    // A usage error, as buildx's (exit code 2).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unsupported compression type brotli"),
        "{stderr}"
    );
}
