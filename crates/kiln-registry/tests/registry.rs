//! The registry client against a real registry (Debian's `docker-registry`, started by
//! kiln-testkit) holding images pushed by skopeo.

use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use kiln_oci::{Digest, Platform, Reference};
use kiln_registry::{
    DOCKER_CONFIG, DOCKER_MANIFEST, Descriptor, Registry, RegistryClient, RegistryConfig,
    RegistryError, Resolved,
};
use kiln_testkit::{
    BuiltImage, Layer, ManifestFormat, MediaTypes, OciImageBuilder, PushOptions, TarEntry,
    TestRegistry, busybox_image, busybox_index_image, busybox_layout, push_layout_with,
    write_index,
};

/// A client reading credentials from `config_dir` only (never the user's own config).
fn client(config_dir: &Path) -> RegistryClient {
    RegistryClient::new(RegistryConfig {
        insecure: Vec::new(),
        docker_config_dir: Some(config_dir.to_owned()),
        user_agent: "kiln-registry-tests",
        certs_dir: None,
    })
    .unwrap_or_else(|e| panic!("creating the client: {e}"))
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"))
}

fn reference(text: &str) -> Reference {
    Reference::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn platform(text: &str) -> Platform {
    Platform::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn start_registry() -> TestRegistry {
    TestRegistry::start().unwrap_or_else(|e| panic!("{e}"))
}

/// What a resolution gave, in a form that compares against what was built: the pinned
/// reference, the manifest digest and media type, the config digest and platform, the layer
/// digests and the diff IDs.
fn summary(resolved: &Resolved) -> String {
    let layers: Vec<String> = resolved
        .manifest
        .layers
        .iter()
        .map(|l| l.digest.to_string())
        .collect();
    format!(
        "{} manifest={} ({}) config={} {} layers={:?} diff_ids={:?} cmd={:?} bytes_ok={}",
        resolved.reference,
        resolved.manifest_digest,
        resolved.manifest.media_type,
        resolved.manifest.config.digest,
        resolved.config.platform(),
        layers,
        resolved.config.rootfs.diff_ids,
        resolved.config.config.cmd,
        Digest::of_bytes(&resolved.manifest_bytes) == resolved.manifest_digest
            && Digest::of_bytes(&resolved.config_bytes) == resolved.manifest.config.digest,
    )
}

/// The summary a resolution of `pinned` to the built image must have.
fn expected_summary(pinned: &str, built: &BuiltImage) -> String {
    let layers: Vec<String> = built
        .layers
        .iter()
        .map(|l| l.blob.digest.to_string())
        .collect();
    let diff_ids: Vec<String> = built.layers.iter().map(|l| l.diff_id.to_string()).collect();
    format!(
        "{pinned} manifest={} ({}) config={} {} layers={:?} diff_ids={:?} cmd={:?} bytes_ok=true",
        built.manifest.digest,
        built.manifest.media_type,
        built.config.digest,
        built.platform,
        layers,
        diff_ids,
        Some(vec!["sh".to_owned()]),
    )
}

/// Resolves each `(reference, platform)` and compares with the expected summary or error
/// message; collects every failure before asserting.
async fn check_resolve(registry: &dyn Registry, cases: &[(String, &str, String)]) {
    let mut failures = Vec::new();
    for (text, wanted, expected) in cases {
        let got = match registry.resolve(&reference(text), &platform(wanted)).await {
            Ok(resolved) => summary(&resolved),
            Err(e) => format!("error: {e}"),
        };
        if &got != expected {
            failures.push(format!(
                "{text} for {wanted}\n   got: {got}\n  want: {expected}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn resolves_tags_and_digests() {
    let registry = start_registry();
    let pushed = busybox_image(&registry).unwrap_or_else(|e| panic!("{e}"));
    let built = &busybox_layout().unwrap_or_else(|e| panic!("{e}")).image;
    assert_eq!(
        pushed.digest, built.manifest.digest,
        "skopeo kept the digest"
    );
    let addr = registry.addr();
    let digest = &built.manifest.digest;
    let host = Platform::host().to_string();
    let config = temp_dir();
    let cases = vec![
        (
            format!("{addr}/library/busybox:latest"),
            host.as_str(),
            expected_summary(&format!("{addr}/library/busybox:latest@{digest}"), built),
        ),
        (
            format!("{addr}/library/busybox"),
            host.as_str(),
            expected_summary(&format!("{addr}/library/busybox:latest@{digest}"), built),
        ),
        (
            format!("{addr}/library/busybox@{digest}"),
            host.as_str(),
            expected_summary(&format!("{addr}/library/busybox@{digest}"), built),
        ),
        (
            format!("{addr}/library/busybox:latest@{digest}"),
            host.as_str(),
            expected_summary(&format!("{addr}/library/busybox:latest@{digest}"), built),
        ),
        // A reference to a single manifest is returned whatever the platform asked for.
        (
            format!("{addr}/library/busybox:latest"),
            "linux/s390x",
            expected_summary(&format!("{addr}/library/busybox:latest@{digest}"), built),
        ),
    ];
    check_resolve(&client(config.path()), &cases).await;
}

#[tokio::test]
async fn selects_the_platform_from_an_index() {
    let registry = start_registry();
    let pushed = busybox_index_image(&registry).unwrap_or_else(|e| panic!("{e}"));
    let index = &busybox_layout().unwrap_or_else(|e| panic!("{e}")).index;
    assert_eq!(pushed.digest, index.index.digest, "skopeo kept the digest");
    let (amd64, arm64) = match index.images.as_slice() {
        [amd64, arm64] => (amd64, arm64),
        other => panic!("the fixture has {} images", other.len()),
    };
    let addr = registry.addr();
    let name = format!("{addr}/library/busybox:multiplatform");
    let pinned = format!("{name}@{}", index.index.digest);
    let no_match = |wanted: &str| {
        format!(
            "error: no match for platform {wanted} in {addr}/library/busybox@{} \
             (the index has linux/amd64, linux/arm64)",
            index.index.digest
        )
    };
    let config = temp_dir();
    let cases = vec![
        (
            name.clone(),
            "linux/amd64",
            expected_summary(&pinned, amd64),
        ),
        (
            name.clone(),
            "linux/arm64",
            expected_summary(&pinned, arm64),
        ),
        (
            name.clone(),
            "linux/arm64/v8",
            expected_summary(&pinned, arm64),
        ),
        (
            name.clone(),
            "linux/amd64/v3",
            expected_summary(&pinned, amd64),
        ),
        (name.clone(), "linux/s390x", no_match("linux/s390x")),
        (name.clone(), "linux/arm/v7", no_match("linux/arm/v7")),
        (name.clone(), "windows/amd64", no_match("windows/amd64")),
        (
            format!("{addr}/library/busybox@{}", index.index.digest),
            "linux/arm64",
            expected_summary(
                &format!("{addr}/library/busybox@{}", index.index.digest),
                arm64,
            ),
        ),
    ];
    check_resolve(&client(config.path()), &cases).await;
}

/// A small image (two layers, one with a whiteout and links) for the tests that do not need
/// busybox.
fn small_image(platform: Platform) -> OciImageBuilder {
    OciImageBuilder::new(platform)
        .layer(Layer::entries(vec![
            TarEntry::dir("etc"),
            TarEntry::file("etc/hello", "hello\n"),
            TarEntry::file("etc/gone", "soon gone\n"),
        ]))
        .layer(Layer::entries(vec![
            TarEntry::dir("etc"),
            TarEntry::whiteout("etc/gone"),
            TarEntry::symlink("etc/link", "hello"),
            TarEntry::hardlink("etc/hard", "etc/hello"),
        ]))
}

/// A summary with the manifest digest left out: converting to Docker schema 2 rewrites the
/// manifests, so their digests are not the layout's (the summary still checks that the
/// manifest bytes have the digest the resolution reports).
fn without_manifest_digest(summary: &str) -> String {
    match summary.split_once(" manifest=") {
        Some((head, tail)) => {
            let rest = tail.split_once(' ').map_or("", |(_, rest)| rest);
            format!("{head} manifest=<converted> {rest}")
        }
        None => summary.to_owned(),
    }
}

#[tokio::test]
async fn reads_docker_schema2_manifests_and_lists() {
    let registry = start_registry();
    let layout = temp_dir();
    let single = small_image(platform("linux/amd64"))
        .write(layout.path(), "single")
        .unwrap_or_else(|e| panic!("{e}"));
    let list = write_index(
        layout.path(),
        "list",
        &[
            small_image(platform("linux/amd64")),
            small_image(platform("linux/arm/v7")),
        ],
        MediaTypes::Oci,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let addr = registry.addr();
    let options = PushOptions {
        credentials: None,
        convert: Some(ManifestFormat::DockerV2S2),
    };
    let push = |tag: &str| {
        push_layout_with(
            layout.path(),
            &addr,
            &format!("docker/small:{tag}"),
            &options,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let (pushed_single, pushed_list) = (push("single"), push("list"));
    let as_docker = |built: &BuiltImage| {
        let mut built = built.clone();
        built.manifest.media_type = DOCKER_MANIFEST.to_owned();
        built
    };
    let arm = list.images.get(1).unwrap_or_else(|| panic!("two images"));
    let config = temp_dir();
    let client = client(config.path());
    let cases = [
        (
            format!("{addr}/docker/small:single"),
            "linux/amd64",
            expected_summary(
                &format!("{addr}/docker/small:single@{}", pushed_single.digest),
                &as_docker(&single),
            ),
        ),
        // arm/v7 is the best match for arm64 (which the list does not have).
        (
            format!("{addr}/docker/small:list"),
            "linux/arm64",
            expected_summary(
                &format!("{addr}/docker/small:list@{}", pushed_list.digest),
                &as_docker(arm),
            ),
        ),
    ];
    let mut failures = Vec::new();
    for (text, wanted, expected) in &cases {
        let got = match client.resolve(&reference(text), &platform(wanted)).await {
            Ok(resolved) => {
                let kinds = (
                    resolved.manifest.config.media_type.as_str(),
                    resolved.manifest.layers.iter().all(|l| {
                        l.media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip"
                    }),
                );
                if kinds != (DOCKER_CONFIG, true) {
                    failures.push(format!("{text}: media types {kinds:?}"));
                }
                summary(&resolved)
            }
            Err(e) => format!("error: {e}"),
        };
        let (got, expected) = (
            without_manifest_digest(&got),
            without_manifest_digest(expected),
        );
        if got != expected {
            failures.push(format!(
                "{text} for {wanted}\n   got: {got}\n  want: {expected}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Adds to the layout an index listing `images` without their platforms, tagged `tag`.
fn write_index_without_platforms(layout: &Path, tag: &str, images: &[&BuiltImage]) -> Digest {
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|image| {
            serde_json::json!({
                "mediaType": image.manifest.media_type,
                "digest": image.manifest.digest.as_str(),
                "size": image.manifest.size,
            })
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let bytes = serde_json::to_vec(&index).unwrap_or_default();
    let digest = Digest::of_bytes(&bytes);
    std::fs::write(layout.join("blobs/sha256").join(digest.encoded()), &bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    let path = layout.join("index.json");
    let mut top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
    if let Some(entries) = top["manifests"].as_array_mut() {
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest.as_str(),
            "size": bytes.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }));
    }
    std::fs::write(&path, serde_json::to_vec(&top).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    digest
}

#[tokio::test]
async fn checks_the_config_of_index_entries_without_a_platform() {
    let registry = start_registry();
    let layout = temp_dir();
    let amd64 = small_image(platform("linux/amd64"))
        .write(layout.path(), "amd64")
        .unwrap_or_else(|e| panic!("{e}"));
    let arm64 = small_image(platform("linux/arm64"))
        .write(layout.path(), "arm64")
        .unwrap_or_else(|e| panic!("{e}"));
    let index = write_index_without_platforms(layout.path(), "bare", &[&amd64, &arm64]);
    let addr = registry.addr();
    push_layout_with(
        layout.path(),
        &addr,
        "bare/small:bare",
        &PushOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let name = format!("{addr}/bare/small:bare");
    let pinned = format!("{name}@{index}");
    let config = temp_dir();
    let cases = vec![
        (
            name.clone(),
            "linux/amd64",
            expected_summary(&pinned, &amd64),
        ),
        (
            name.clone(),
            "linux/arm64",
            expected_summary(&pinned, &arm64),
        ),
        (
            name.clone(),
            "linux/s390x",
            format!(
                "error: no match for platform linux/s390x in {addr}/bare/small@{index} \
                 (the index has no platforms)"
            ),
        ),
    ];
    check_resolve(&client(config.path()), &cases).await;
}

/// Fetches a blob into memory; returns the bytes and every progress value reported.
async fn fetch(
    registry: &dyn Registry,
    reference: &Reference,
    descriptor: &Descriptor,
) -> Result<(Vec<u8>, Vec<u64>), RegistryError> {
    let progress = Mutex::new(Vec::new());
    let report = |n: u64| {
        if let Ok(mut seen) = progress.lock() {
            seen.push(n);
        }
    };
    let mut out = Vec::new();
    registry
        .fetch_blob(reference, descriptor, &mut out, &report)
        .await?;
    Ok((out, progress.into_inner().unwrap_or_default()))
}

#[tokio::test]
async fn fetches_layers_verified() {
    let registry = start_registry();
    busybox_image(&registry).unwrap_or_else(|e| panic!("{e}"));
    let built = &busybox_layout().unwrap_or_else(|e| panic!("{e}")).image;
    let layer = built.layers.first().unwrap_or_else(|| panic!("one layer"));
    let addr = registry.addr();
    let repo = reference(&format!("{addr}/library/busybox"));
    let config = temp_dir();
    let client = client(config.path());
    let descriptor = Descriptor::new(
        &layer.blob.media_type,
        layer.blob.digest.clone(),
        layer.blob.size,
    );

    let (bytes, progress) = fetch(&client, &repo, &descriptor)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Digest::of_bytes(&bytes), layer.blob.digest);
    assert_eq!(progress.last().copied(), Some(layer.blob.size));
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "progress grows");
    assert!(progress.len() > 1, "a 1 MB layer arrives in several chunks");

    let missing = Digest::of_bytes(b"not in the registry");
    let size = layer.blob.size;
    let digest = &layer.blob.digest;
    let cases = vec![
        (
            Descriptor::new(&layer.blob.media_type, digest.clone(), size - 1),
            format!(
                "size mismatch for blob {digest} of {addr}/library/busybox: expected {} bytes, got {size}",
                size - 1
            ),
        ),
        (
            Descriptor::new(&layer.blob.media_type, digest.clone(), size + 1),
            format!(
                "size mismatch for blob {digest} of {addr}/library/busybox: expected {} bytes, got {size}",
                size + 1
            ),
        ),
        (
            Descriptor::new(&layer.blob.media_type, missing.clone(), 19),
            format!("blob {missing} not found in {addr}/library/busybox"),
        ),
    ];
    let mut failures = Vec::new();
    for (descriptor, expected) in cases {
        let got = match fetch(&client, &repo, &descriptor).await {
            Ok((bytes, _)) => format!("ok {} bytes", bytes.len()),
            Err(e) => e.to_string(),
        };
        if got != expected {
            failures.push(format!("   got: {got}\n  want: {expected}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn detects_corrupted_blobs() {
    let registry = start_registry();
    let layout = temp_dir();
    let built = small_image(platform("linux/amd64"))
        .write(layout.path(), "latest")
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = registry.addr();
    push_layout_with(
        layout.path(),
        &addr,
        "corrupt/small:latest",
        &PushOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Flip the bytes of the first layer and of the config in the registry's storage, keeping
    // their sizes: the registry serves them as they are.
    let corrupt = |digest: &Digest| -> String {
        let path = registry.blob_path(digest);
        let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for byte in bytes.iter_mut() {
            *byte = !*byte;
        }
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Digest::of_bytes(&bytes).to_string()
    };
    let layer = built.layers.first().unwrap_or_else(|| panic!("two layers"));
    let bad_layer = corrupt(&layer.blob.digest);
    let bad_config = corrupt(&built.config.digest);
    let config = temp_dir();
    let client = client(config.path());
    let repo = reference(&format!("{addr}/corrupt/small"));
    let descriptor = Descriptor::new(
        &layer.blob.media_type,
        layer.blob.digest.clone(),
        layer.blob.size,
    );
    let got = fetch(&client, &repo, &descriptor).await.map(|_| ());
    let want = format!(
        "digest mismatch for blob {} of {addr}/corrupt/small: expected {}, got {bad_layer}",
        layer.blob.digest, layer.blob.digest
    );
    assert_eq!(got.err().map(|e| e.to_string()), Some(want));

    let got = client
        .resolve(
            &reference(&format!("{addr}/corrupt/small:latest")),
            &platform("linux/amd64"),
        )
        .await
        .map(|_| ());
    let want = format!(
        "digest mismatch for blob {} of {addr}/corrupt/small: expected {}, got {bad_config}",
        built.config.digest, built.config.digest
    );
    assert_eq!(got.err().map(|e| e.to_string()), Some(want));
}

#[tokio::test]
async fn reports_what_is_not_found() {
    let registry = start_registry();
    let pushed = busybox_image(&registry).unwrap_or_else(|e| panic!("{e}"));
    let addr = registry.addr();
    let missing = Digest::of_bytes(b"no such manifest");
    let config = temp_dir();
    let host = Platform::host().to_string();
    let cases: Vec<(String, &str, String)> = [
        format!("{addr}/library/busybox:nope"),
        format!("{addr}/library/nothing:latest"),
        format!("{addr}/library/busybox@{missing}"),
    ]
    .into_iter()
    .map(|text| {
        let expected = format!("error: {text}: not found");
        (text, host.as_str(), expected)
    })
    .collect();
    check_resolve(&client(config.path()), &cases).await;
    assert!(pushed.reference.ends_with("library/busybox:latest"));
}

#[tokio::test]
async fn names_the_registry_it_cannot_reach() {
    // Nothing listens on port 1 of the loopback address.
    let config = temp_dir();
    let got = client(config.path())
        .resolve(
            &reference("127.0.0.1:1/library/busybox:latest"),
            &platform("linux/amd64"),
        )
        .await
        .map(|_| ());
    let message = got.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.starts_with("cannot reach registry 127.0.0.1:1: ")
            && message.contains("onnection refused"),
        "got {message:?}"
    );
}

/// Writes a Docker `config.json` into a new directory.
fn docker_config(json: &str) -> tempfile::TempDir {
    let dir = temp_dir();
    std::fs::write(dir.path().join("config.json"), json).unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[tokio::test]
async fn authenticates_with_basic_auth_from_the_docker_config() {
    let registry =
        TestRegistry::start_with_htpasswd("kiln", "s3cret").unwrap_or_else(|e| panic!("{e}"));
    busybox_image(&registry).unwrap_or_else(|e| panic!("{e}"));
    let built = &busybox_layout().unwrap_or_else(|e| panic!("{e}")).image;
    let addr = registry.addr();
    let auth = |user: &str, password: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    };
    let ok = expected_summary(
        &format!("{addr}/library/busybox:latest@{}", built.manifest.digest),
        built,
    );
    let denied = format!("error: unauthorized: {addr} denied access to {addr}/library/busybox");
    let cases = vec![
        (
            format!(
                r#"{{"auths":{{"{addr}":{{"auth":"{}"}}}}}}"#,
                auth("kiln", "s3cret")
            ),
            ok.clone(),
        ),
        (
            format!(r#"{{"auths":{{"http://{addr}":{{"username":"kiln","password":"s3cret"}}}}}}"#),
            ok,
        ),
        ("{}".to_owned(), denied.clone()),
        (
            format!(
                r#"{{"auths":{{"{addr}":{{"auth":"{}"}}}}}}"#,
                auth("kiln", "wrong")
            ),
            denied.clone(),
        ),
        (
            format!(
                r#"{{"auths":{{"127.0.0.1:1":{{"auth":"{}"}}}}}}"#,
                auth("kiln", "s3cret")
            ),
            denied,
        ),
    ];
    let mut failures = Vec::new();
    for (json, expected) in cases {
        let dir = docker_config(&json);
        let client = client(dir.path());
        let target = reference(&format!("{addr}/library/busybox:latest"));
        let got = match client.resolve(&target, &Platform::host()).await {
            Ok(resolved) => {
                // A blob can be fetched with the same credentials.
                let layer = resolved.manifest.layers.first().cloned();
                match layer {
                    Some(layer) => match fetch(&client, &target, &layer).await {
                        Ok(_) => summary(&resolved),
                        Err(e) => format!("error fetching the layer: {e}"),
                    },
                    None => "no layer".to_owned(),
                }
            }
            Err(e) => format!("error: {e}"),
        };
        if got != expected {
            failures.push(format!("{json}\n   got: {got}\n  want: {expected}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn reports_credential_helper_failures() {
    let registry = start_registry();
    let addr = registry.addr();
    let dir = docker_config(r#"{"credsStore":"kiln-test-no-such-helper"}"#);
    let got = client(dir.path())
        .resolve(
            &reference(&format!("{addr}/library/busybox:latest")),
            &Platform::host(),
        )
        .await
        .map(|_| ());
    let want = format!(
        "credentials for {addr}: cannot run the credential helper that {}/config.json names",
        dir.path().display()
    );
    assert_eq!(got.err().map(|e| e.to_string()), Some(want));
}
