//! What image outputs add to the image: annotations at each level (`-o annotation*` and
//! `--annotation`), `--label` in the config, the build information, and reproducible images
//! with `SOURCE_DATE_EPOCH` and `rewrite-timestamp=true`. Checked in the layout kiln wrote and
//! with `skopeo inspect --raw`, which kiln did not write.

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use common::{assert_success, busybox, context_with, kiln_build, state_dir};

/// The Dockerfile: a base image, a RUN writing a file (a fresh time on every build) and a COPY.
const DOCKERFILE: &str = "FROM {base}\nRUN echo made > /made.txt\nCOPY hello.txt /hello.txt\nLABEL from.dockerfile=yes\n";

/// `SOURCE_DATE_EPOCH` of the reproducibility test, and the time it stands for.
const EPOCH: &str = "1700000000";
const EPOCH_TIME: &str = "2023-11-14T22:13:20Z";

fn context(base: &str) -> tempfile::TempDir {
    context_with(&[
        ("Dockerfile", &DOCKERFILE.replace("{base}", base)),
        ("hello.txt", "hello\n"),
    ])
}

/// Builds `ctx` into an OCI layout directory `dest` with `attrs` added to the output and
/// `extra` flags, with `env` added to kiln's environment.
fn build_layout(
    state: &Path,
    ctx: &Path,
    dest: &Path,
    attrs: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) {
    let out = kiln_build(state)
        .args(["--progress", "plain", "-o"])
        .arg(format!("type=oci,tar=false,dest={}{attrs}", dest.display()))
        .args(extra)
        .arg(ctx)
        .env_remove("SOURCE_DATE_EPOCH")
        .envs(env.iter().copied())
        .output()
        .expect("run kiln build");
    assert_success(&out);
}

fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A blob of a layout directory, as JSON.
fn blob(layout: &Path, digest: &str) -> serde_json::Value {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    read_json(&layout.join("blobs/sha256").join(hex))
}

/// The manifest of an OCI layout through `skopeo inspect --raw` (a tool kiln did not write).
fn skopeo_raw(layout: &Path) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}", layout.display()))
        .output()
        .unwrap_or_else(|e| panic!("skopeo must be installed (scripts/prereqs.sh): {e}"));
    assert!(
        out.status.success(),
        "skopeo inspect --raw: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo JSON")
}

/// The host platform's architecture as OCI names it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Collects every mismatch of `(what, got, want)` and fails with the list.
fn check_all(cases: &[(&str, serde_json::Value, serde_json::Value)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(what, got, want)| format!("{what}: got {got}, want {want}"))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn annotations_labels_and_buildinfo_reach_their_documents() {
    let (_registry, base) = busybox();
    let state = state_dir();
    let ctx = context(&base);
    let work = tempfile::tempdir_in("/var/tmp").expect("work dir");
    let layout = work.path().join("layout");
    let arch = host_arch();
    let attrs = format!(
        ",annotation.plain=manifest,annotation-manifest.typed=manifest,\
         annotation-manifest-descriptor.desc=descriptor,annotation-index.idx=index,\
         annotation-manifest[linux/{arch}].host=host,annotation-manifest[linux/s390x].other=no,\
         annotation.flag=from-output"
    );
    build_layout(
        state.path(),
        ctx.path(),
        &layout,
        &attrs,
        &[
            "-t",
            "example/app:v1",
            "--label",
            "from.flag=yes",
            "--annotation",
            "flag=from-flag",
            "--annotation",
            "index,manifest-descriptor:both=x",
        ],
        &[],
    );
    let index = read_json(&layout.join("index.json"));
    let entry = &index["manifests"][0];
    let manifest = blob(&layout, entry["digest"].as_str().expect("manifest digest"));
    let config = blob(
        &layout,
        manifest["config"]["digest"].as_str().expect("config"),
    );
    let raw = skopeo_raw(&layout);
    let buildinfo = config["moby.buildkit.buildinfo.v0"]
        .as_str()
        .map(|b| {
            let json = base64::engine::general_purpose::STANDARD
                .decode(b)
                .expect("base64");
            serde_json::from_slice::<serde_json::Value>(&json).expect("buildinfo JSON")
        })
        .unwrap_or_default();
    let pinned_base = buildinfo["sources"][0]["pin"]
        .as_str()
        .is_some_and(|p| p.starts_with("sha256:"));
    use serde_json::json;
    check_all(&[
        (
            "manifest annotations (the layout's blob)",
            manifest["annotations"].clone(),
            json!({"flag": "from-flag", "host": "host", "plain": "manifest", "typed": "manifest"}),
        ),
        (
            "manifest annotations (skopeo)",
            raw["annotations"].clone(),
            manifest["annotations"].clone(),
        ),
        (
            "index annotations",
            index["annotations"].clone(),
            json!({"both": "x", "idx": "index"}),
        ),
        (
            "descriptor annotation desc",
            entry["annotations"]["desc"].clone(),
            json!("descriptor"),
        ),
        (
            "descriptor annotation both",
            entry["annotations"]["both"].clone(),
            json!("x"),
        ),
        (
            "descriptor keeps the name",
            entry["annotations"]["org.opencontainers.image.ref.name"].clone(),
            json!("v1"),
        ),
        (
            "labels",
            config["config"]["Labels"].clone(),
            json!({"from.dockerfile": "yes", "from.flag": "yes"}),
        ),
        (
            "buildinfo frontend",
            buildinfo["frontend"].clone(),
            json!("dockerfile.v0"),
        ),
        ("buildinfo base pinned", json!(pinned_base), json!(true)),
        (
            "buildinfo has no attrs",
            buildinfo["attrs"].clone(),
            json!(null),
        ),
    ]);

    // buildinfo=false leaves it out; buildinfo-attrs=true adds the build arguments.
    let without = work.path().join("without");
    build_layout(
        state.path(),
        ctx.path(),
        &without,
        ",buildinfo=false",
        &[],
        &[],
    );
    let index = read_json(&without.join("index.json"));
    let manifest = blob(
        &without,
        index["manifests"][0]["digest"].as_str().expect("digest"),
    );
    let config = blob(
        &without,
        manifest["config"]["digest"].as_str().expect("config"),
    );
    assert!(
        config.get("moby.buildkit.buildinfo.v0").is_none(),
        "buildinfo=false: {config:#}"
    );
    let with_attrs = work.path().join("with-attrs");
    build_layout(
        state.path(),
        ctx.path(),
        &with_attrs,
        ",buildinfo-attrs=true",
        &["--build-arg", "COLOR=blue"],
        &[],
    );
    let index = read_json(&with_attrs.join("index.json"));
    let manifest = blob(
        &with_attrs,
        index["manifests"][0]["digest"].as_str().expect("digest"),
    );
    let config = blob(
        &with_attrs,
        manifest["config"]["digest"].as_str().expect("config"),
    );
    let info = base64::engine::general_purpose::STANDARD
        .decode(
            config["moby.buildkit.buildinfo.v0"]
                .as_str()
                .expect("buildinfo"),
        )
        .expect("base64");
    let info: serde_json::Value = serde_json::from_slice(&info).expect("JSON");
    assert_eq!(
        info["attrs"],
        json!({"build-arg:COLOR": "blue"}),
        "{info:#}"
    );
}

#[test]
fn bad_annotations_are_refused() {
    let check = |flags: &[&str], want: &str| {
        let state = state_dir();
        let ctx = context_with(&[("Dockerfile", "FROM scratch\n")]);
        let out = kiln_build(state.path())
            .args(flags)
            .arg(ctx.path())
            .output()
            .expect("run kiln build");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} succeeded");
        assert!(stderr.contains(want), "{flags:?}: {stderr}");
    };
    check(
        &["-o", "type=oci,dest=x.tar", "--annotation", "nope:a=b"],
        "unknown annotation type \"nope\"",
    );
    check(
        &["-o", "type=oci,dest=x.tar", "--annotation", "a"],
        "expected key=value",
    );
    check(
        &["-o", "type=oci,dest=x.tar,annotation-bogus.a=b"],
        "unrecognized annotation type bogus",
    );
    check(
        &["-o", "type=oci,dest=x.tar,rewrite-timestamp=maybe"],
        "non-bool value \"maybe\"",
    );
}

#[test]
fn source_date_epoch_and_rewrite_timestamp_make_reproducible_images() {
    let (_registry, base) = busybox();
    let ctx = context(&base);
    let work = tempfile::tempdir_in("/var/tmp").expect("work dir");
    // Two fresh state directories: nothing is shared but the inputs. The epoch comes once as
    // a build argument and once from the environment, as buildx passes it.
    let (first_state, second_state) = (state_dir(), state_dir());
    let (first, second) = (work.path().join("first"), work.path().join("second"));
    build_layout(
        first_state.path(),
        ctx.path(),
        &first,
        ",rewrite-timestamp=true",
        &["--build-arg", &format!("SOURCE_DATE_EPOCH={EPOCH}")],
        &[],
    );
    // A second in between, so that the RUN step's files get another time.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    build_layout(
        second_state.path(),
        ctx.path(),
        &second,
        ",rewrite-timestamp=true",
        &[],
        &[("SOURCE_DATE_EPOCH", EPOCH)],
    );
    let a = read_json(&first.join("index.json"));
    let b = read_json(&second.join("index.json"));
    assert_eq!(
        a["manifests"][0]["digest"], b["manifests"][0]["digest"],
        "same inputs, same epoch: same manifest\n{a:#}\n{b:#}"
    );
    let manifest = blob(
        &first,
        a["manifests"][0]["digest"].as_str().expect("digest"),
    );
    let config = blob(
        &first,
        manifest["config"]["digest"].as_str().expect("config"),
    );
    let history = config["history"].as_array().cloned().unwrap_or_default();
    let last = history.last().cloned().unwrap_or_default();
    use serde_json::json;
    check_all(&[
        (
            "config created",
            config["created"].clone(),
            json!(EPOCH_TIME),
        ),
        (
            "last history entry",
            last["created"].clone(),
            json!(EPOCH_TIME),
        ),
        (
            "index created annotation",
            a["manifests"][0]["annotations"]["org.opencontainers.image.created"].clone(),
            json!(EPOCH_TIME),
        ),
    ]);

    // The same epoch without rewrite-timestamp keeps the RUN step's file times: the layer
    // made for the rewritten export is not reused for it.
    let plain = work.path().join("plain");
    build_layout(
        first_state.path(),
        ctx.path(),
        &plain,
        "",
        &["--build-arg", &format!("SOURCE_DATE_EPOCH={EPOCH}")],
        &[],
    );
    let p = read_json(&plain.join("index.json"));
    let plain_manifest = blob(
        &plain,
        p["manifests"][0]["digest"].as_str().expect("digest"),
    );
    assert_ne!(
        plain_manifest["layers"][1]["digest"], manifest["layers"][1]["digest"],
        "the RUN layer without rewrite-timestamp keeps its times"
    );
    assert_eq!(
        plain_manifest["layers"][0]["digest"], manifest["layers"][0]["digest"],
        "the base layer is never rewritten"
    );

    // rewrite-timestamp without an epoch rewrites nothing, and says so as BuildKit does.
    let out = kiln_build(first_state.path())
        .args(["--progress", "plain", "-o"])
        .arg(format!(
            "type=oci,tar=false,dest={},rewrite-timestamp=true",
            work.path().join("no-epoch").display()
        ))
        .arg(ctx.path())
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run kiln build");
    let stderr = assert_success(&out);
    assert!(
        stderr.contains("rewrite-timestamp is specified, but no source-date-epoch was found"),
        "{stderr}"
    );
}
