//! The fixtures themselves: the registry, the layouts (checked with umoci and skopeo, tools
//! kiln did not write), the busybox root filesystem and the tar streams.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_oci::{Digest, Platform};
use kiln_testkit::{
    BUSYBOX_INDEX_TAG, BUSYBOX_TAG, BuiltImage, Compression, Layer, OciImageBuilder, TarEntry,
    TestRegistry, busybox_entries, busybox_index_image, busybox_layout, busybox_rootfs,
    materialize,
};
use sha2::{Digest as _, Sha256};

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"))
}

fn platform(text: &str) -> Platform {
    Platform::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The status code of `GET path` on `addr`, with an `Authorization` header if given, or the
/// connection error.
fn get_status(addr: &str, path: &str, authorization: Option<&str>) -> String {
    let mut stream = match TcpStream::connect(addr) {
        Ok(stream) => stream,
        Err(e) => return format!("connect: {:?}", e.kind()),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let auth = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return format!("write: {:?}", e.kind());
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .unwrap_or("no status")
        .to_owned()
}

#[test]
fn registry_starts_quickly_and_stops_on_drop() {
    let started = Instant::now();
    let registry = TestRegistry::start().unwrap_or_else(|e| panic!("{e}"));
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "started in {elapsed:?}");
    let addr = registry.addr();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert_eq!(get_status(&addr, "/v2/", None), "200");
    assert!(registry.storage_dir().is_dir());
    drop(registry);
    assert_eq!(
        get_status(&addr, "/v2/", None),
        "connect: ConnectionRefused"
    );
}

#[test]
fn htpasswd_registry_requires_the_password() {
    let registry =
        TestRegistry::start_with_htpasswd("kiln", "s3cret").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(registry.credentials(), Some(("kiln", "s3cret")));
    let addr = registry.addr();
    // base64 of `kiln:s3cret` and of `kiln:wrong`.
    let cases = [
        (None, "401"),
        (Some("Basic a2lsbjpzM2NyZXQ="), "200"),
        (Some("Basic a2lsbjp3cm9uZw=="), "401"),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(auth, expected)| {
            let got = get_status(&addr, "/v2/", *auth);
            (got != *expected).then(|| format!("{auth:?}: got {got}, want {expected}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One line per path: type, mode, owner, and the link target or size.
fn describe(root: &Path, paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .map(|path| {
            let full = root.join(path);
            let Ok(meta) = std::fs::symlink_metadata(&full) else {
                return format!("{path} missing");
            };
            let kind = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&full).unwrap_or_default();
                format!("symlink -> {}", target.display())
            } else if meta.is_dir() {
                "dir".to_owned()
            } else {
                format!("file {} bytes", meta.len())
            };
            let mode = meta.permissions().mode() & 0o7777;
            format!("{path} {kind} {mode:o} {}:{}", meta.uid(), meta.gid())
        })
        .collect()
}

#[test]
fn busybox_rootfs_is_a_usable_root() {
    let root = temp_dir();
    busybox_rootfs(root.path()).unwrap_or_else(|e| panic!("{e}"));
    let size = std::fs::metadata("/bin/busybox")
        .map(|m| m.len())
        .unwrap_or(0);
    let got = describe(
        root.path(),
        &[
            "bin/busybox",
            "bin/sh",
            "usr/bin/env",
            "sbin/init",
            "tmp",
            "root",
            "home/app",
            "etc/passwd",
        ],
    );
    let want = vec![
        format!("bin/busybox file {size} bytes 755 0:0"),
        "bin/sh symlink -> /bin/busybox 777 0:0".to_owned(),
        "usr/bin/env symlink -> /bin/busybox 777 0:0".to_owned(),
        "sbin/init symlink -> /bin/busybox 777 0:0".to_owned(),
        "tmp dir 1777 0:0".to_owned(),
        "root dir 700 0:0".to_owned(),
        "home/app dir 755 1000:1000".to_owned(),
        "etc/passwd file 120 bytes 644 0:0".to_owned(),
    ];
    assert_eq!(got, want);
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap_or_default();
    let users: Vec<&str> = passwd.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(users, ["root", "app", "nobody"]);
    // The copied binary runs (the symlinks are absolute: they resolve inside a container).
    let output = Command::new(root.path().join("bin/busybox"))
        .args(["sh", "-c", "echo hello from $0"])
        .output()
        .unwrap_or_else(|e| panic!("running busybox: {e}"));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hello from sh\n");
}

/// Lists a layer blob's tar entries (after decompressing it) and checks its digest and diff
/// ID against what the builder reported.
fn check_layer(layout: &Path, built: &BuiltImage, compression: Compression, expected: &[&str]) {
    let layer = built.layers.first().unwrap_or_else(|| panic!("one layer"));
    let blob_path = layout
        .join("blobs/sha256")
        .join(layer.blob.digest.encoded());
    let blob = std::fs::read(&blob_path).unwrap_or_else(|e| panic!("{}: {e}", blob_path.display()));
    assert_eq!(
        Digest::of_bytes(&blob),
        layer.blob.digest,
        "{compression:?} digest"
    );
    assert_eq!(blob.len() as u64, layer.blob.size, "{compression:?} size");
    let mut tar = Vec::new();
    let read = match compression {
        Compression::None => blob.as_slice().read_to_end(&mut tar),
        Compression::Gzip => flate2::read::GzDecoder::new(blob.as_slice()).read_to_end(&mut tar),
        Compression::Zstd => zstd::stream::read::Decoder::new(blob.as_slice())
            .and_then(|mut d| d.read_to_end(&mut tar)),
    };
    read.unwrap_or_else(|e| panic!("{compression:?}: {e}"));
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&tar))),
        layer.diff_id.to_string(),
        "{compression:?} diff ID"
    );
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut got = Vec::new();
    for entry in archive.entries().unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let header = entry.header();
        let link = entry
            .link_name()
            .ok()
            .flatten()
            .map(|l| format!(" -> {}", l.display()))
            .unwrap_or_default();
        got.push(format!(
            "{:?} {} {:o} {}:{} {}{link} mtime={}",
            header.entry_type(),
            entry
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            header.mode().unwrap_or(0),
            header.uid().unwrap_or(0),
            header.gid().unwrap_or(0),
            header.size().unwrap_or(0),
            header.mtime().unwrap_or(0),
        ));
    }
    assert_eq!(got, expected, "{compression:?} entries");
}

#[test]
fn layers_are_sorted_deterministic_tars() {
    let entries = vec![
        TarEntry::file("/etc/hello", "hello\n"),
        TarEntry::dir("etc/"),
        TarEntry::whiteout("etc/gone"),
        TarEntry::opaque("var/cache"),
        TarEntry::symlink("etc/link", "hello"),
        TarEntry::hardlink("etc/hard", "etc/hello"),
        TarEntry::dir("tmp").mode(0o1777),
        TarEntry::file("home/app/run", "#!/bin/sh\n")
            .mode(0o4755)
            .owner(1000, 1000),
    ];
    let expected = [
        "Directory etc/ 755 0:0 0 mtime=1704067200",
        "Regular etc/.wh.gone 644 0:0 0 mtime=1704067200",
        "Link etc/hard 644 0:0 0 -> etc/hello mtime=1704067200",
        "Regular etc/hello 644 0:0 6 mtime=1704067200",
        "Symlink etc/link 777 0:0 0 -> hello mtime=1704067200",
        "Regular home/app/run 4755 1000:1000 10 mtime=1704067200",
        "Directory tmp/ 1777 0:0 0 mtime=1704067200",
        "Regular var/cache/.wh..wh..opq 644 0:0 0 mtime=1704067200",
    ];
    let mut digests = Vec::new();
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let image = OciImageBuilder::new(platform("linux/amd64"))
            .layer(Layer::entries(entries.clone()).compression(compression));
        let (first, second) = (temp_dir(), temp_dir());
        let built = image
            .write(first.path(), "t")
            .unwrap_or_else(|e| panic!("{e}"));
        let again = image
            .write(second.path(), "t")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            built, again,
            "{compression:?}: the same builder writes the same bytes"
        );
        check_layer(first.path(), &built, compression, &expected);
        digests.push(built.layers.first().map(|l| l.diff_id.clone()));
    }
    digests.dedup();
    assert_eq!(digests.len(), 1, "one diff ID whatever the compression");
}

#[test]
fn a_directory_layer_equals_its_entries() {
    let entries = busybox_entries().unwrap_or_else(|e| panic!("{e}"));
    let root = temp_dir();
    materialize(&entries, root.path()).unwrap_or_else(|e| panic!("{e}"));
    let layout = temp_dir();
    let from_dir = OciImageBuilder::new(platform("linux/amd64"))
        .layer(Layer::dir(root.path()).compression(Compression::None))
        .write(layout.path(), "dir")
        .unwrap_or_else(|e| panic!("{e}"));
    let from_entries = OciImageBuilder::new(platform("linux/amd64"))
        .layer(Layer::entries(entries).compression(Compression::None))
        .write(layout.path(), "entries")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_dir, from_entries);
}

#[test]
fn umoci_unpacks_a_layout_with_whiteouts_and_links() {
    let layout = temp_dir();
    let base = Layer::entries(vec![
        TarEntry::dir("etc"),
        TarEntry::file("etc/hello", "hello\n"),
        TarEntry::file("etc/gone", "soon gone\n"),
        TarEntry::dir("var"),
        TarEntry::dir("var/cache"),
        TarEntry::file("var/cache/old", "old\n"),
    ]);
    let top = Layer::entries(vec![
        TarEntry::dir("etc"),
        TarEntry::whiteout("etc/gone"),
        TarEntry::symlink("etc/link", "hello"),
        TarEntry::hardlink("etc/hard", "etc/hello"),
        TarEntry::dir("var/cache"),
        TarEntry::opaque("var/cache"),
        TarEntry::file("var/cache/new", "new\n"),
    ])
    // umoci (0.4) reads gzip and plain layers, not zstd.
    .compression(Compression::None);
    OciImageBuilder::new(Platform::host())
        .layer(base)
        .layer(top)
        .write(layout.path(), "latest")
        .unwrap_or_else(|e| panic!("{e}"));
    let bundle = temp_dir();
    let bundle_dir = bundle.path().join("bundle");
    let output = Command::new("/usr/bin/umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.path().display()))
        .arg(&bundle_dir)
        .output()
        .unwrap_or_else(|e| panic!("umoci (Debian package umoci): {e}"));
    assert!(
        output.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rootfs = bundle_dir.join("rootfs");
    let got = describe(
        &rootfs,
        &[
            "etc/hello",
            "etc/gone",
            "etc/link",
            "etc/hard",
            "var/cache/old",
            "var/cache/new",
        ],
    );
    let want = [
        "etc/hello file 6 bytes 644 0:0",
        "etc/gone missing",
        "etc/link symlink -> hello 777 0:0",
        "etc/hard file 6 bytes 644 0:0",
        "var/cache/old missing",
        "var/cache/new file 4 bytes 644 0:0",
    ];
    assert_eq!(got, want);
    let ino = |p: &str| std::fs::metadata(rootfs.join(p)).map(|m| m.ino()).ok();
    assert_eq!(ino("etc/hard"), ino("etc/hello"), "a hard link");
}

#[test]
fn busybox_layout_holds_both_tags() {
    let layout = busybox_layout().unwrap_or_else(|e| panic!("{e}"));
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.dir.join("index.json")).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tags: Vec<String> = index["manifests"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["annotations"]["org.opencontainers.image.ref.name"]
                            .as_str()
                            .unwrap_or_default(),
                        e["digest"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        tags,
        [
            format!("{BUSYBOX_TAG} {}", layout.image.manifest.digest),
            format!("{BUSYBOX_INDEX_TAG} {}", layout.index.index.digest),
        ]
    );
    let platforms: Vec<String> = layout
        .index
        .images
        .iter()
        .map(|i| i.platform.to_string())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    // Both platforms share the one busybox layer.
    let layers: Vec<&Digest> = layout
        .index
        .images
        .iter()
        .flat_map(|i| i.layers.iter().map(|l| &l.blob.digest))
        .collect();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers.first(), layers.last());
    // The cached layout is the one a fresh process reads again.
    assert!(layout.dir.join("oci-layout").is_file());
}

#[test]
fn pushed_index_is_byte_identical() {
    let registry = TestRegistry::start().unwrap_or_else(|e| panic!("{e}"));
    let pushed = busybox_index_image(&registry).unwrap_or_else(|e| panic!("{e}"));
    let layout = busybox_layout().unwrap_or_else(|e| panic!("{e}"));
    let addr = registry.addr();
    assert_eq!(
        pushed.reference,
        format!("{addr}/library/busybox:{BUSYBOX_INDEX_TAG}")
    );
    assert_eq!(
        pushed.by_digest(),
        format!("{addr}/library/busybox@{}", layout.index.index.digest)
    );
    let output = Command::new("/usr/bin/skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}", pushed.by_digest()))
        .output()
        .unwrap_or_else(|e| panic!("skopeo: {e}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let local = std::fs::read(
        layout
            .dir
            .join("blobs/sha256")
            .join(layout.index.index.digest.encoded()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.stdout, local);
}
