//! `-o type=image`, `-o type=registry` and `--push`: images named in kiln's image store and
//! pushed to registries (plain HTTP on loopback, and HTTPS with basic authentication), read
//! back by skopeo and by a second kiln build.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{assert_success, busybox, context_with, kiln, kiln_build, state_dir};
use kiln_testkit::{LoggedRequest, TestRegistry};

/// What the RUN step writes into `/greeting`.
const GREETING: &str = "pushed by kiln";

/// A context whose Dockerfile is `FROM base` plus a RUN writing `/greeting`.
fn context(base: &str) -> tempfile::TempDir {
    context_with(&[(
        "Dockerfile",
        &format!("FROM {base}\nRUN echo '{GREETING}' > /greeting\n"),
    )])
}

/// Runs `kiln build --root STATE --progress plain ARGS CONTEXT` with `env`.
fn build(state: &Path, context: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    kiln_build(state)
        .args(["--progress", "plain"])
        .args(args)
        .arg(context)
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .output()
        .expect("run kiln build")
}

/// Runs skopeo; fails the test when it is missing or fails. Returns its stdout.
fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("skopeo must be installed (scripts/prereqs.sh): {e}"));
    assert!(
        out.status.success(),
        "skopeo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The blob uploads (the final `PUT .../blobs/uploads/...?digest=`) among `requests`, by digest.
fn uploads(requests: &[LoggedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/"))
        .filter_map(|r| r.path.split("digest=").nth(1))
        .map(|d| d.replace("%3A", ":"))
        .collect()
}

/// Builds with `-t REG/app:1 --push`, reads the image back with skopeo and a second build, and
/// checks the base layer was never uploaded and a second identical push uploads nothing.
#[test]
fn push_round_trip_mounts_base_and_skips_present_blobs() {
    let (registry, base) = busybox();
    let addr = registry.addr();
    let base_layers = json(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{base}"),
    ]))["Layers"]
        .clone();
    let base_layer = base_layers[0].as_str().expect("base layer").to_string();
    let state = state_dir();
    let ctx = context(&base);
    let meta = tempfile::tempdir().expect("dir");
    let meta_file = meta.path().join("meta.json");
    let iid_file = meta.path().join("iid");
    let tag = format!("{addr}/app:1");
    let before = registry.requests().len();
    let out = build(
        state.path(),
        ctx.path(),
        &[
            "-t",
            &tag,
            "--push",
            "--metadata-file",
            meta_file.to_str().expect("utf-8"),
            "--iidfile",
            iid_file.to_str().expect("utf-8"),
        ],
        &[],
    );
    let stderr = assert_success(&out);
    assert!(stderr.contains("exporting to image"), "{stderr}");
    assert!(stderr.contains("pushing layers"), "{stderr}");
    assert!(
        stderr.contains(&format!("pushing manifest for {tag}@sha256:")),
        "{stderr}"
    );
    let first: Vec<LoggedRequest> = registry.requests().split_off(before);
    let uploaded = uploads(&first);
    assert!(
        !uploaded.contains(&base_layer),
        "the base layer was uploaded again: {uploaded:?}\n{first:#?}"
    );
    assert!(
        first.iter().any(|r| (r.method == "POST"
            && r.path
                .contains(&format!("mount={}", base_layer.replace(':', "%3A")))
            && r.status == 201)
            || (r.method == "HEAD" && r.path.ends_with(&base_layer) && r.status == 200)),
        "the base layer was neither mounted nor found: {first:#?}"
    );
    assert!(
        !uploaded.is_empty(),
        "the RUN layer was not uploaded: {first:#?}"
    );

    // Metadata and image id.
    let meta = json(&std::fs::read_to_string(&meta_file).expect("metadata file"));
    let inspect = json(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{tag}"),
    ]));
    assert_eq!(meta["containerimage.digest"], inspect["Digest"], "{meta:#}");
    assert_eq!(meta["image.name"], serde_json::json!(tag));
    let raw = json(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{tag}"),
    ]));
    assert_eq!(
        std::fs::read_to_string(&iid_file).expect("iid file"),
        raw["config"]["digest"].as_str().expect("config digest")
    );
    assert_eq!(
        inspect["Layers"].as_array().map(Vec::len),
        Some(base_layers.as_array().map_or(0, Vec::len) + 1)
    );
    // skopeo copies it whole (every blob is there and verified).
    let copy = tempfile::tempdir().expect("dir");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{tag}"),
        &format!("oci:{}:app", copy.path().display()),
    ]);

    // The same push again: cached build, nothing uploaded.
    let before = registry.requests().len();
    let out = build(state.path(), ctx.path(), &["-t", &tag, "--push"], &[]);
    let stderr = assert_success(&out);
    assert!(stderr.contains("CACHED"), "{stderr}");
    let second: Vec<LoggedRequest> = registry.requests().split_off(before);
    assert_eq!(uploads(&second), Vec::<String>::new(), "{second:#?}");

    // A second build on the pushed image, in a fresh state directory.
    let state2 = state_dir();
    let ctx2 = context_with(&[(
        "Dockerfile",
        &format!("FROM {tag}\nRUN cat /greeting > /copied\n"),
    )]);
    let dest = tempfile::tempdir().expect("dest");
    let out = build(
        state2.path(),
        ctx2.path(),
        &["-o", &format!("type=local,dest={}", dest.path().display())],
        &[],
    );
    assert_success(&out);
    assert_eq!(
        std::fs::read_to_string(dest.path().join("copied")).expect("copied"),
        format!("{GREETING}\n")
    );
}

/// `type=image,name=...` without push names the image in kiln's image store; the garbage
/// collector keeps its blobs; `name-canonical` adds `NAME@DIGEST`; `store=false` names nothing.
#[test]
fn image_output_names_the_image_in_the_store() {
    let (_registry, base) = busybox();
    let state = state_dir();
    let ctx = context(&base);
    let meta = tempfile::tempdir().expect("dir");
    let meta_file = meta.path().join("meta.json");
    let out = build(
        state.path(),
        ctx.path(),
        &[
            "-o",
            "type=image,\"name=x/app:1,x/app:2\",name-canonical=true,unpack=true",
            "-o",
            "type=image,name=x/unstored:1,store=false",
            "--metadata-file",
            meta_file.to_str().expect("utf-8"),
        ],
        &[],
    );
    let stderr = assert_success(&out);
    assert!(stderr.contains("naming to docker.io/x/app:1"), "{stderr}");
    let meta = json(&std::fs::read_to_string(&meta_file).expect("metadata"));
    // The last image output gives the metadata: both export the same image.
    let digest = meta["containerimage.digest"]
        .as_str()
        .expect("digest")
        .to_string();

    // Everything prunable goes; the named image's blobs stay.
    let out = kiln()
        .args(["prune", "--all", "--force", "--root"])
        .arg(state.path())
        .output()
        .expect("kiln prune");
    assert!(
        out.status.success(),
        "kiln prune: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (names, missing) = runtime.block_on(async {
        let worker = common::open_worker(state.path()).await;
        let images = worker.images().expect("images");
        let names: Vec<(String, String)> = images
            .iter()
            .map(|r| (r.name.clone(), r.target.digest.to_string()))
            .collect();
        let missing: Vec<String> = images
            .iter()
            .flat_map(|r| r.blobs.iter())
            .filter(|d| !worker.content().path(d).exists())
            .map(ToString::to_string)
            .collect();
        (names, missing)
    });
    let want: Vec<(String, String)> = [
        "docker.io/x/app:1".to_string(),
        format!("docker.io/x/app:1@{digest}"),
        "docker.io/x/app:2".to_string(),
        format!("docker.io/x/app:2@{digest}"),
    ]
    .into_iter()
    .map(|n| (n, digest.clone()))
    .collect();
    assert_eq!(names, want);
    assert_eq!(missing, Vec::<String>::new(), "prune removed named blobs");
}

/// `push=true` without a name fails before building, with buildx's message.
#[test]
fn push_without_a_name_is_refused() {
    let state = state_dir();
    let ctx = context("busybox");
    for args in [
        &["--push"][..],
        &["-o", "type=registry"][..],
        &["-o", "type=image,push=true"][..],
    ] {
        let out = build(state.path(), ctx.path(), args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("tag is needed when pushing to registry"),
            "{args:?}: {stderr}"
        );
    }
}

/// Writes a Docker `config.json` with basic credentials for `registry` into `dir`.
fn docker_config(dir: &Path, registry: &str, user: &str, password: &str) {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(format!("{user}:{password}").as_bytes())?;
            child.wait_with_output()
        })
        .expect("base64");
    let auth = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let config = serde_json::json!({ "auths": { registry: { "auth": auth } } });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config.json");
}

/// A push to an HTTPS registry with basic authentication: a wrong password fails with one
/// clear message; after fixing it, the retry pushes with the build cached, and skopeo reads
/// the image back with the CA and the credentials.
#[test]
fn push_to_secure_registry_retries_after_wrong_password() {
    let (base_registry, base) = busybox();
    let (registry, ca) = TestRegistry::start_secure("kiln", "s3cret").expect("secure registry");
    let addr = registry.addr();
    let certs = tempfile::tempdir().expect("certs.d");
    let cert_dir = ca.install(certs.path(), &addr).expect("install CA");
    let docker = tempfile::tempdir().expect("docker config");
    docker_config(docker.path(), &addr, "kiln", "wrong");
    let env = [
        ("KILN_CERTS_D", certs.path()),
        ("DOCKER_CONFIG", docker.path()),
    ];
    let state = state_dir();
    let ctx = context(&base);
    let tag = format!("{addr}/secure/app:1");

    let out = build(state.path(), ctx.path(), &["-t", &tag, "--push"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!("failed to push {tag}")),
        "{stderr}"
    );

    docker_config(docker.path(), &addr, "kiln", "s3cret");
    let out = build(state.path(), ctx.path(), &["-t", &tag, "--push"], &env);
    let stderr = assert_success(&out);
    assert!(stderr.contains("CACHED"), "{stderr}");
    assert!(
        stderr.contains(&format!("pushing manifest for {tag}@sha256:")),
        "{stderr}"
    );
    let inspect = json(&skopeo(&[
        "inspect",
        "--cert-dir",
        cert_dir.to_str().expect("utf-8"),
        "--creds",
        "kiln:s3cret",
        &format!("docker://{tag}"),
    ]));
    assert_eq!(
        inspect["Name"],
        serde_json::json!(format!("{addr}/secure/app"))
    );
    drop(base_registry);
}
