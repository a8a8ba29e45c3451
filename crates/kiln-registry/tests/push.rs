//! Pushing with [`Pusher`] to real registries (Debian's `docker-registry`, started by
//! kiln-testkit): plain HTTP on loopback, and HTTPS with a CA made by the test plus htpasswd
//! basic auth. What was pushed is read back with kiln's own client and with skopeo, and the
//! registry's access log shows what each push asked for.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use kiln_oci::{Digest, Reference};
use kiln_registry::{
    BlobPushed, BlobSource, Descriptor, Pusher, Registry, RegistryClient, RegistryConfig,
};
use kiln_testkit::{
    BuiltImage, CaPem, LoggedRequest, SKOPEO, TestRegistry, busybox_layout, server_certificates,
};

const USER: &str = "kiln";
const PASSWORD: &str = "s3cret-pass";

/// A client reading credentials from `config_dir` and CAs from `certs_dir` only.
fn client(config_dir: &Path, certs_dir: &Path) -> RegistryClient {
    RegistryClient::new(RegistryConfig {
        docker_config_dir: Some(config_dir.to_owned()),
        certs_dir: Some(certs_dir.to_owned()),
        user_agent: "kiln-push-tests",
        ..RegistryConfig::default()
    })
    .unwrap_or_else(|e| panic!("creating the client: {e}"))
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"))
}

fn reference(text: &str) -> Reference {
    Reference::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// Writes `config.json` with basic-auth credentials for `registry`.
fn docker_config(dir: &Path, registry: &str, user: &str, password: &str) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = serde_json::json!({ "auths": { registry: { "auth": auth } } });
    std::fs::write(dir.join("config.json"), config.to_string())
        .unwrap_or_else(|e| panic!("writing config.json: {e}"));
}

/// The busybox image (shared by all tests) and its layout directory.
fn busybox() -> (PathBuf, BuiltImage) {
    let layout = busybox_layout().unwrap_or_else(|e| panic!("{e}"));
    (layout.dir.clone(), layout.image.clone())
}

fn blob_path(layout: &Path, digest: &Digest) -> PathBuf {
    layout
        .join("blobs")
        .join(digest.algorithm())
        .join(digest.encoded())
}

fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: digest.clone(),
        size,
        urls: Vec::new(),
        annotations: Default::default(),
        platform: None,
    }
}

/// Pushes the layers, the config, then the manifest of `image` as `target`; returns what each
/// blob push did (layers first, then the config) and the manifest's digest.
async fn push_image(
    pusher: &dyn Pusher,
    layout: &Path,
    image: &BuiltImage,
    target: &Reference,
    mount_from: &[Reference],
) -> Result<(Vec<BlobPushed>, Digest), kiln_registry::RegistryError> {
    let mut blobs: Vec<Descriptor> = image
        .layers
        .iter()
        .map(|layer| descriptor(&layer.blob.media_type, &layer.blob.digest, layer.blob.size))
        .collect();
    blobs.push(descriptor(
        &image.config.media_type,
        &image.config.digest,
        image.config.size,
    ));
    let mut done = Vec::new();
    for blob in &blobs {
        let source = BlobSource::File(blob_path(layout, &blob.digest));
        done.push(
            pusher
                .push_blob(target, blob, source, mount_from, &|_| {})
                .await?,
        );
    }
    let bytes = std::fs::read(blob_path(layout, &image.manifest.digest))
        .unwrap_or_else(|e| panic!("reading the manifest: {e}"));
    let digest = pusher
        .push_manifest(target, &image.manifest.media_type, &bytes)
        .await?;
    Ok((done, digest))
}

/// The requests the registry logged after the first `skip`, once the last one is the `PUT` of
/// a manifest (the registry logs a request just after answering it).
fn requests_since(registry: &TestRegistry, skip: usize) -> Vec<LoggedRequest> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let requests: Vec<LoggedRequest> = registry.requests().into_iter().skip(skip).collect();
        let done = requests
            .last()
            .is_some_and(|r| r.method == "PUT" && r.path.contains("/manifests/"));
        if done || Instant::now() > deadline {
            return requests;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `METHOD path-kind status` for each request, the digests and upload ids left out, to
/// compare a push's requests with what is expected. The `GET /v2/` before each request is
/// left out too: oci-client asks it again and again of a registry that needs no token (it
/// caches tokens, not their absence).
fn shapes(requests: &[LoggedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| !(r.method == "GET" && r.path == "/v2/"))
        .map(|r| {
            let kind = if r.path.contains("/blobs/uploads/") {
                if r.path.contains("mount=") {
                    "blob-mount"
                } else {
                    "blob-upload"
                }
            } else if r.path.contains("/blobs/") {
                "blob"
            } else if r.path.contains("/manifests/") {
                "manifest"
            } else {
                "other"
            };
            format!("{} {kind} {}", r.method, r.status)
        })
        .collect()
}

/// The requests of a push that uploads `blobs` blobs, then puts the manifest.
fn upload_shapes(blobs: usize) -> Vec<String> {
    let mut expected = Vec::new();
    for _ in 0..blobs {
        expected.extend([
            "HEAD blob 404".to_owned(),
            "POST blob-upload 202".to_owned(),
            "PUT blob-upload 201".to_owned(),
        ]);
    }
    expected.push("PUT manifest 201".to_owned());
    expected
}

/// Reads the image back with kiln (resolve, then every blob, each verified) and checks its
/// digests are the ones pushed.
async fn pull_back(client: &RegistryClient, target: &Reference, image: &BuiltImage) {
    let platform = image.platform.clone();
    let resolved = client
        .resolve(target, &platform)
        .await
        .unwrap_or_else(|e| panic!("resolving {target}: {e}"));
    assert_eq!(resolved.manifest_digest, image.manifest.digest, "{target}");
    assert_eq!(resolved.manifest.config.digest, image.config.digest);
    for layer in &resolved.manifest.layers {
        let mut out = Vec::new();
        client
            .fetch_blob(target, layer, &mut out, &|_| {})
            .await
            .unwrap_or_else(|e| panic!("fetching {}: {e}", layer.digest));
        assert_eq!(Digest::of_bytes(&out), layer.digest);
    }
}

fn skopeo(args: &[&str]) -> String {
    assert!(
        Path::new(SKOPEO).exists(),
        "{SKOPEO} is missing: install skopeo"
    );
    let output = Command::new(SKOPEO)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running skopeo: {e}"));
    assert!(
        output.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The manifest digest `skopeo inspect` reports.
fn skopeo_digest(extra: &[&str], image: &str) -> String {
    let mut args = vec!["--insecure-policy", "inspect"];
    args.extend_from_slice(extra);
    args.push(image);
    let text = skopeo(&args);
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("skopeo inspect output: {e}"));
    json["Digest"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn push_plain_http_then_again_then_to_another_repository() {
    let registry = TestRegistry::start().unwrap_or_else(|e| panic!("{e}"));
    let (layout, image) = busybox();
    let config = temp_dir();
    let certs = temp_dir();
    let client = client(config.path(), certs.path());
    let addr = registry.addr();
    let first = reference(&format!("{addr}/kiln/push:v1"));
    let second = reference(&format!("{addr}/kiln/other:v1"));
    let blobs = image.layers.len() + 1;
    let rt = runtime();

    // First push: every blob is uploaded (HEAD, POST, PUT each), then the manifest.
    let (done, digest) = rt
        .block_on(push_image(&client, &layout, &image, &first, &[]))
        .unwrap_or_else(|e| panic!("first push: {e}"));
    assert_eq!(done, vec![BlobPushed::Uploaded; blobs]);
    assert_eq!(digest, image.manifest.digest);
    let log = requests_since(&registry, 0);
    assert_eq!(shapes(&log), upload_shapes(blobs), "first push");
    rt.block_on(pull_back(&client, &first, &image));
    let first_text = format!("docker://{first}");
    assert_eq!(
        skopeo_digest(&["--tls-verify=false"], &first_text),
        image.manifest.digest.to_string()
    );

    // Second push: nothing is uploaded, only checked.
    let seen = registry.requests().len();
    let (done, _) = rt
        .block_on(push_image(&client, &layout, &image, &first, &[]))
        .unwrap_or_else(|e| panic!("second push: {e}"));
    assert_eq!(done, vec![BlobPushed::Present; blobs]);
    let mut expected = vec!["HEAD blob 200".to_owned(); blobs];
    expected.push("PUT manifest 201".to_owned());
    assert_eq!(
        shapes(&requests_since(&registry, seen)),
        expected,
        "second push"
    );

    // Another repository: every blob is mounted from the first.
    let seen = registry.requests().len();
    let (done, _) = rt
        .block_on(push_image(
            &client,
            &layout,
            &image,
            &second,
            std::slice::from_ref(&first),
        ))
        .unwrap_or_else(|e| panic!("push with mounts: {e}"));
    let from = format!("{addr}/kiln/push");
    assert_eq!(done, vec![BlobPushed::Mounted { from }; blobs]);
    let mut expected = Vec::new();
    for _ in 0..blobs {
        expected.extend(["HEAD blob 404".to_owned(), "POST blob-mount 201".to_owned()]);
    }
    expected.push("PUT manifest 201".to_owned());
    assert_eq!(shapes(&requests_since(&registry, seen)), expected, "mounts");
    rt.block_on(pull_back(&client, &second, &image));
}

#[test]
fn push_over_tls_with_basic_auth() {
    let (registry, ca) =
        TestRegistry::start_secure(USER, PASSWORD).unwrap_or_else(|e| panic!("{e}"));
    let (layout, image) = busybox();
    let addr = registry.addr();
    let config = temp_dir();
    docker_config(config.path(), &addr, USER, PASSWORD);
    let certs = temp_dir();
    let cert_dir = ca
        .install(certs.path(), &addr)
        .unwrap_or_else(|e| panic!("{e}"));
    let client = client(config.path(), certs.path());
    let target = reference(&format!("{addr}/kiln/secure:v1"));
    let rt = runtime();

    let (done, digest) = rt
        .block_on(push_image(&client, &layout, &image, &target, &[]))
        .unwrap_or_else(|e| panic!("push: {e}"));
    assert_eq!(done, vec![BlobPushed::Uploaded; image.layers.len() + 1]);
    assert_eq!(digest, image.manifest.digest);
    assert_eq!(
        shapes(&requests_since(&registry, 0)),
        upload_shapes(image.layers.len() + 1),
        "push over TLS"
    );
    rt.block_on(pull_back(&client, &target, &image));

    // skopeo, trusting the same CA, with the same credentials.
    let cert_arg = format!("--cert-dir={}", cert_dir.display());
    let creds = format!("--creds={USER}:{PASSWORD}");
    let image_text = format!("docker://{target}");
    assert_eq!(
        skopeo_digest(&[&cert_arg, &creds], &image_text),
        image.manifest.digest.to_string()
    );
    let copy = temp_dir();
    let destination = format!("oci:{}:copied", copy.path().display());
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--preserve-digests",
        &format!("--src-cert-dir={}", cert_dir.display()),
        &format!("--src-creds={USER}:{PASSWORD}"),
        &image_text,
        &destination,
    ]);
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(copy.path().join("index.json"))
            .unwrap_or_else(|e| panic!("reading the copy's index.json: {e}")),
    )
    .unwrap_or_else(|e| panic!("the copy's index.json: {e}"));
    assert_eq!(
        index["manifests"][0]["digest"].as_str(),
        Some(image.manifest.digest.as_str())
    );
}

/// One way a push to the secure registry can be set up wrong, and what its error must say.
struct ErrorCase {
    name: &'static str,
    /// The password in `config.json`.
    password: &'static str,
    /// The CA installed for the registry (`None`: none).
    ca: Option<CaPem>,
    /// Substrings the error message must contain (`{addr}` is the registry's address).
    expected: &'static [&'static str],
}

#[test]
fn push_errors_are_clear() {
    let (registry, ca) =
        TestRegistry::start_secure(USER, PASSWORD).unwrap_or_else(|e| panic!("{e}"));
    let other_ca = server_certificates("another CA")
        .unwrap_or_else(|e| panic!("{e}"))
        .ca;
    let (layout, image) = busybox();
    let addr = registry.addr();
    let cases = vec![
        ErrorCase {
            name: "wrong password",
            password: "wrong",
            ca: Some(ca.clone()),
            expected: &[
                "pushing blob sha256:",
                "to {addr}/kiln/errors",
                "unauthorized: {addr} denied access to {addr}/kiln/errors",
            ],
        },
        ErrorCase {
            name: "CA of another registry",
            password: PASSWORD,
            ca: Some(other_ca),
            expected: &[
                "cannot reach registry {addr}",
                "certificate",
                "UnknownIssuer",
            ],
        },
        ErrorCase {
            // Loopback registries are plain HTTP unless a CA is configured for them.
            name: "no CA configured",
            password: PASSWORD,
            ca: None,
            expected: &[
                "registry {addr} failed",
                "HTTP 400 Bad Request to plain HTTP: if the registry speaks HTTPS, put its CA \
                 in the certificates directory (<certs.d>/{addr}/ca.crt)",
            ],
        },
    ];
    let rt = runtime();
    let mut failures = Vec::new();
    for case in cases {
        let config = temp_dir();
        docker_config(config.path(), &addr, USER, case.password);
        let certs = temp_dir();
        if let Some(ca) = &case.ca {
            ca.install(certs.path(), &addr)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let client = client(config.path(), certs.path());
        let target = reference(&format!("{addr}/kiln/errors:v1"));
        match rt.block_on(push_image(&client, &layout, &image, &target, &[])) {
            Ok(_) => failures.push(format!("{}: the push succeeded", case.name)),
            Err(e) => {
                let message = e.to_string();
                for expected in case.expected {
                    let expected = expected.replace("{addr}", &addr);
                    if !message.contains(&expected) {
                        failures.push(format!("{}: {message:?} lacks {expected:?}", case.name));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

/// A TCP proxy on loopback that cuts the first connection sending more than a given number of
/// bytes towards the registry, once armed.
struct CuttingProxy {
    addr: String,
    cut_after: Arc<AtomicU64>,
}

impl CuttingProxy {
    fn start(upstream: String) -> CuttingProxy {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding the proxy: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy address: {e}"))
            .to_string();
        let cut_after = Arc::new(AtomicU64::new(0));
        let armed = Arc::clone(&cut_after);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let armed = Arc::clone(&armed);
                let (Ok(client_read), Ok(server_write)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                std::thread::spawn(move || copy(server, client, None));
                std::thread::spawn(move || copy(client_read, server_write, Some(armed)));
            }
        });
        CuttingProxy { addr, cut_after }
    }

    /// Cuts the next connection that sends more than `bytes` towards the registry.
    fn arm(&self, bytes: u64) {
        self.cut_after.store(bytes, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`; with `cut`, shuts both down once more than its (non-zero) value has
/// passed, and disarms it.
fn copy(mut from: TcpStream, mut to: TcpStream, cut: Option<Arc<AtomicU64>>) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut passed: u64 = 0;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        passed += n as u64;
        if let Some(cut) = &cut {
            let limit = cut.load(Ordering::SeqCst);
            if limit != 0 && passed > limit && cut.swap(0, Ordering::SeqCst) == limit {
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
        if to.write_all(buffer.get(..n).unwrap_or_default()).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Incompressible, deterministic bytes (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes().first().copied().unwrap_or(0)
        })
        .collect()
}

#[test]
fn upload_cut_midway_fails_then_a_retry_succeeds() {
    let registry = TestRegistry::start().unwrap_or_else(|e| panic!("{e}"));
    let proxy = CuttingProxy::start(registry.addr());
    let config = temp_dir();
    let certs = temp_dir();
    let client = client(config.path(), certs.path());
    let data = noise(4 << 20);
    let blob = descriptor(
        "application/vnd.oci.image.layer.v1.tar",
        &Digest::of_bytes(&data),
        data.len() as u64,
    );
    let through_proxy = reference(&format!("{}/kiln/cut:v1", proxy.addr));
    let direct = reference(&format!("{}/kiln/cut:v1", registry.addr()));
    let rt = runtime();

    proxy.arm(1 << 20);
    let source = BlobSource::Reader(Box::new(std::io::Cursor::new(data.clone())));
    let error = rt
        .block_on(client.push_blob(&through_proxy, &blob, source, &[], &|_| {}))
        .err()
        .unwrap_or_else(|| panic!("the cut upload succeeded"));
    let message = error.to_string();
    let expected = format!(
        "pushing blob {} to {}/kiln/cut: cannot reach registry {}",
        blob.digest, proxy.addr, proxy.addr
    );
    assert!(
        message.starts_with(&expected),
        "{message:?} does not start with {expected:?}"
    );
    let present = rt
        .block_on(client.blob_exists(&direct, &blob.digest))
        .unwrap_or_else(|e| panic!("HEAD: {e}"));
    assert!(!present, "a cut upload left the blob in the registry");

    let sent = AtomicU64::new(0);
    let source = BlobSource::Reader(Box::new(std::io::Cursor::new(data.clone())));
    let done = rt
        .block_on(client.push_blob(&through_proxy, &blob, source, &[], &|n| {
            sent.store(n, Ordering::SeqCst)
        }))
        .unwrap_or_else(|e| panic!("retry: {e}"));
    assert_eq!(done, BlobPushed::Uploaded);
    assert_eq!(sent.load(Ordering::SeqCst), blob.size);
    let mut out = Vec::new();
    rt.block_on(client.fetch_blob(&direct, &blob, &mut out, &|_| {}))
        .unwrap_or_else(|e| panic!("fetching the blob back: {e}"));
    assert!(out == data, "the blob read back differs");
}

#[test]
fn a_source_that_is_not_the_descriptor_is_refused() {
    let registry = TestRegistry::start().unwrap_or_else(|e| panic!("{e}"));
    let config = temp_dir();
    let certs = temp_dir();
    let client = client(config.path(), certs.path());
    let target = reference(&format!("{}/kiln/verify:v1", registry.addr()));
    let data = noise(300_000);
    let right = Digest::of_bytes(&data);
    let cases: Vec<(&str, Descriptor, &str)> = vec![
        (
            "other digest",
            descriptor(
                "application/octet-stream",
                &Digest::of_bytes(b"x"),
                data.len() as u64,
            ),
            "digest mismatch for blob",
        ),
        (
            "shorter than stated",
            descriptor("application/octet-stream", &right, data.len() as u64 + 1),
            "size mismatch for blob",
        ),
        (
            "longer than stated",
            descriptor("application/octet-stream", &right, data.len() as u64 - 1),
            "size mismatch for blob",
        ),
    ];
    let rt = runtime();
    let mut failures = Vec::new();
    for (name, blob, expected) in cases {
        let source = BlobSource::Reader(Box::new(std::io::Cursor::new(data.clone())));
        match rt.block_on(client.push_blob(&target, &blob, source, &[], &|_| {})) {
            Ok(done) => failures.push(format!("{name}: pushed ({done:?})")),
            Err(e) if !e.to_string().contains(expected) => {
                failures.push(format!("{name}: {e} lacks {expected:?}"));
            }
            Err(_) => {}
        }
        let present = rt
            .block_on(client.blob_exists(&target, &blob.digest))
            .unwrap_or_else(|e| panic!("HEAD: {e}"));
        if present {
            failures.push(format!("{name}: the registry holds {}", blob.digest));
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

/// A registry that stores manifests but answers their `PUT` without `Location`, as AWS ECR
/// does: pushing by tag, by digest and by tag and digest all succeed (oci-client's workaround
/// for such registries used to panic for a digest).
#[test]
fn manifest_push_without_location_header() {
    let puts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&puts);
    let server = kiln_testkit::HttpServer::start(move |request| {
        if request.method == "PUT" && request.path().contains("/manifests/") {
            if let Ok(mut puts) = seen.lock() {
                puts.push(request.path().to_string());
            }
            kiln_testkit::Response::new(201, Vec::new())
        } else {
            // The `/v2/` probe: no authentication needed.
            kiln_testkit::Response::new(200, b"{}".to_vec())
        }
    })
    .unwrap_or_else(|e| panic!("fake registry: {e}"));
    let config = temp_dir();
    let certs = temp_dir();
    let client = client(config.path(), certs.path());
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let digest = Digest::of_bytes(body);
    let host = server.host();
    let rt = runtime();
    for text in [
        format!("{host}/kiln/ecr:v1"),
        format!("{host}/kiln/ecr@{digest}"),
        format!("{host}/kiln/ecr:v1@{digest}"),
    ] {
        let pushed = rt
            .block_on(client.push_manifest(
                &reference(&text),
                "application/vnd.oci.image.manifest.v1+json",
                body,
            ))
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(pushed, digest, "{text}");
    }
    let puts = puts.lock().map(|p| p.clone()).unwrap_or_default();
    assert_eq!(
        puts,
        [
            "/v2/kiln/ecr/manifests/v1".to_string(),
            format!("/v2/kiln/ecr/manifests/{digest}"),
            format!("/v2/kiln/ecr/manifests/{digest}"),
        ]
    );
}
