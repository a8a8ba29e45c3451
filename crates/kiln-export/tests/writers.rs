//! The writers' output: tar listings and JSON documents, checked against snapshots.

use std::collections::BTreeMap;
use std::io::Read;

use kiln_content::ContentStore;
use kiln_export::{
    ExportedImage, ImageName, LayoutAnnotations, docker_manifest_json, index_json,
    write_docker_tar, write_oci_dir, write_oci_tar,
};
use kiln_registry::Descriptor;

/// A store holding a small image: two layers (one listed twice), a config and a manifest.
fn fixture() -> (tempfile::TempDir, ContentStore, ExportedImage) {
    let dir = tempfile::tempdir().expect("dir");
    let store = ContentStore::open(dir.path().join("content")).expect("store");
    let layer = |data: &[u8]| {
        let (digest, size) = store.put(data).expect("put layer");
        Descriptor::new("application/vnd.oci.image.layer.v1.tar", digest, size)
    };
    let l1 = layer(b"layer one");
    let l2 = layer(b"layer two, a little longer");
    let config_json =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#.to_vec();
    let (cd, cs) = store.put(&config_json).expect("put config");
    let config = Descriptor::new("application/vnd.oci.image.config.v1+json", cd, cs);
    let layers = vec![l1.clone(), l2.clone(), l1.clone()];
    let manifest_json = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": config,
        "layers": layers,
    }))
    .expect("manifest");
    let (md, ms) = store.put(&manifest_json).expect("put manifest");
    let image = ExportedImage {
        manifest: Descriptor::new("application/vnd.oci.image.manifest.v1+json", md, ms),
        manifest_json,
        config,
        config_json,
        diff_ids: layers.iter().map(|l| l.digest.clone()).collect(),
        layers,
    };
    (dir, store, image)
}

/// One line per tar entry: type, mode, owner, time, size, name.
fn listing(tar_bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let h = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read entry");
        out.push(format!(
            "{:?} {:o} {}:{} t={} {} {}",
            h.entry_type(),
            h.mode().expect("mode"),
            h.uid().expect("uid"),
            h.gid().expect("gid"),
            h.mtime().expect("mtime"),
            data.len(),
            String::from_utf8_lossy(&h.path_bytes()),
        ));
    }
    out
}

/// The text of one tar entry.
fn entry_text(tar_bytes: &[u8], name: &str) -> String {
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if entry.path_bytes().as_ref() == name.as_bytes() {
            let mut s = String::new();
            entry.read_to_string(&mut s).expect("read");
            return s;
        }
    }
    panic!("no {name} in the tarball");
}

fn names(list: &[&str]) -> Vec<ImageName> {
    list.iter()
        .map(|n| ImageName::parse(n).expect("name"))
        .collect()
}

#[test]
fn oci_tarball() {
    let (_dir, store, image) = fixture();
    let tar = write_oci_tar(
        &store,
        &image,
        &names(&["example/app", "localhost:5000/app:v1"]),
        LayoutAnnotations::descriptor(&BTreeMap::new()),
        Vec::new(),
    )
    .expect("write");
    insta::assert_debug_snapshot!("oci_tar_listing", listing(&tar));
    // The exact bytes: compact JSON, fields in Go's order.
    insta::assert_snapshot!("oci_index", entry_text(&tar, "index.json"));
    assert_eq!(
        entry_text(&tar, "oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    // The same input gives the same bytes.
    let again = write_oci_tar(
        &store,
        &image,
        &names(&["example/app", "localhost:5000/app:v1"]),
        LayoutAnnotations::descriptor(&BTreeMap::new()),
        Vec::new(),
    )
    .expect("write again");
    assert_eq!(tar, again);
}

#[test]
fn docker_tarball() {
    let (_dir, store, image) = fixture();
    let tar = write_docker_tar(
        &store,
        &image,
        &names(&["example/app:1.0"]),
        LayoutAnnotations::descriptor(&BTreeMap::new()),
        Vec::new(),
    )
    .expect("write");
    insta::assert_debug_snapshot!("docker_tar_listing", listing(&tar));
    insta::assert_snapshot!("docker_manifest", entry_text(&tar, "manifest.json"));
    insta::assert_snapshot!("docker_repositories", entry_text(&tar, "repositories"));
}

#[test]
fn documents_without_names() {
    let (_dir, _store, image) = fixture();
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "org.opencontainers.image.created".to_string(),
        "2024-01-02T03:04:05Z".to_string(),
    );
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("utf-8");
    insta::assert_snapshot!(
        "index_unnamed",
        text(index_json(&image, &[], LayoutAnnotations::descriptor(&annotations)).expect("index"))
    );
    insta::assert_snapshot!(
        "docker_manifest_unnamed",
        text(docker_manifest_json(&image, &[]).expect("manifest"))
    );
}

#[test]
fn oci_directory() {
    let (dir, store, image) = fixture();
    let out = dir.path().join("layout");
    write_oci_dir(
        &store,
        &image,
        &names(&["app"]),
        LayoutAnnotations::descriptor(&BTreeMap::new()),
        &out,
    )
    .expect("write");
    // Again into the same directory: blobs are kept, documents replaced.
    write_oci_dir(
        &store,
        &image,
        &names(&["app"]),
        LayoutAnnotations::descriptor(&BTreeMap::new()),
        &out,
    )
    .expect("rewrite");
    let mut files = Vec::new();
    let mut stack = vec![out.clone()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).expect("read dir") {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(&out)
                    .expect("rel")
                    .display()
                    .to_string();
                let size = e.metadata().expect("meta").len();
                files.push(format!("{size} {rel}"));
            }
        }
    }
    files.sort();
    insta::assert_debug_snapshot!("oci_dir_listing", files);
}

/// Adding images to a layout directory as BuildKit's client does: each write replaces only the
/// entries with the same name and reference name, and keeps everything else it finds in
/// `index.json`, unknown fields included.
#[test]
fn oci_directory_index_is_merged() {
    let (dir, store, image) = fixture();
    let out = dir.path().join("layout");
    std::fs::create_dir_all(&out).expect("mkdir");
    let other = r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":7,"artifactType":"application/x-kept","annotations":{"org.opencontainers.image.ref.name":"other"}}"#;
    std::fs::write(
        out.join("index.json"),
        format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{other}],"annotations":{{"kept":"yes"}}}}"#),
    )
    .expect("existing index");
    // The reference names (and containerd names) of the entries after each write, in order.
    let check = |write: &[&str], want: &[&str]| {
        write_oci_dir(
            &store,
            &image,
            &names(write),
            LayoutAnnotations::descriptor(&BTreeMap::new()),
            &out,
        )
        .expect("write");
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("index.json")).expect("read"))
                .expect("json");
        let got: Vec<String> = index["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .map(|m| {
                let a = &m["annotations"];
                format!(
                    "{} {}",
                    a["org.opencontainers.image.ref.name"]
                        .as_str()
                        .unwrap_or("-"),
                    a["io.containerd.image.name"].as_str().unwrap_or("-")
                )
            })
            .collect();
        assert_eq!(got, want, "after writing {write:?}");
        assert_eq!(index["annotations"]["kept"], "yes");
        assert_eq!(index["manifests"][0]["artifactType"], "application/x-kept");
        assert!(!out.join("index.json.lock").exists());
    };
    check(&["app:v1"], &["other -", "v1 docker.io/library/app:v1"]);
    check(
        &["app:v2"],
        &[
            "other -",
            "v1 docker.io/library/app:v1",
            "v2 docker.io/library/app:v2",
        ],
    );
    // The same name again replaces its entry (now last).
    check(
        &["app:v1"],
        &[
            "other -",
            "v2 docker.io/library/app:v2",
            "v1 docker.io/library/app:v1",
        ],
    );
    // Without a name: the tag `latest` alone.
    check(
        &[],
        &[
            "other -",
            "v2 docker.io/library/app:v2",
            "v1 docker.io/library/app:v1",
            "latest -",
        ],
    );
    // A digest name's reference name is `@DIGEST`, as containerd's `reference.Parse` gives.
    let digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    check(
        &[&format!("app@{digest}")],
        &[
            "other -",
            "v2 docker.io/library/app:v2",
            "v1 docker.io/library/app:v1",
            "latest -",
            &format!("@{digest} docker.io/library/app@{digest}"),
        ],
    );
}

#[test]
fn missing_blob_is_an_error() {
    let (_dir, store, mut image) = fixture();
    let mut bogus = image.config.clone();
    bogus.digest = kiln_oci::Digest::of_bytes(b"not in the store");
    image.layers.push(bogus.clone());
    let err = write_oci_tar(
        &store,
        &image,
        &[],
        LayoutAnnotations::descriptor(&BTreeMap::new()),
        Vec::new(),
    )
    .expect_err("a missing blob must fail");
    assert!(
        err.to_string().contains(&bogus.digest.to_string()),
        "the error names the blob: {err}"
    );
}
