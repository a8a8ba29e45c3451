//! Remote sources end to end on the embedded builder: `ADD` of HTTP files (pinned checksums,
//! ETag revalidation) from a small HTTP server on loopback, and `ADD` of git repositories (refs,
//! subdirectories, `--keep-git-dir`, refs that look like options) from `git daemon` on loopback.
//! The builds start `FROM scratch`, so no registry is needed.

mod common;

use common::{
    assert_failure, assert_success, build_to_local, context_with, git, sha256_hex, state_dir,
    step_state,
};

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

use kiln_testkit::{HttpServer, StaticFile, StaticFiles};

/// Builds `dockerfile` (in a context of its own) and exports the result to `dest`.
fn build(state: &Path, dockerfile: &str, dest: &Path) -> Output {
    let context = context_with(&[("Dockerfile", dockerfile)]);
    build_to_local(state, dest)
        .arg(context.path())
        .output()
        .expect("run kiln build")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// A small gzipped tarball, made with tar(1).
fn tarball() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("inside.txt"), "inside the archive\n").expect("write");
    let out = Command::new("tar")
        .arg("-czf")
        .arg("-")
        .arg("-C")
        .arg(dir.path())
        .arg("inside.txt")
        .output()
        .expect("tar");
    assert!(out.status.success());
    out.stdout
}

#[test]
fn add_http_with_checksum() {
    let body = b"pinned content\n".to_vec();
    let right = sha256(&body);
    let wrong = sha256(b"something else");
    let server = HttpServer::start_static(StaticFiles::new([(
        "/files/pinned.txt",
        StaticFile::new(body).with_last_modified("Wed, 21 Oct 2015 07:28:00 GMT"),
    )]))
    .expect("http server");
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let url = server.url("/files/pinned.txt");

    let dockerfile = format!("FROM scratch\nADD --checksum={right} {url} /dst/\n");
    let log = assert_success(&build(state.path(), &dockerfile, &out.path().join("a")));
    let file = out.path().join("a/dst/pinned.txt");
    assert_eq!(
        std::fs::read_to_string(&file).expect("downloaded file"),
        "pinned content\n",
        "{log}"
    );
    let meta = std::fs::metadata(&file).expect("stat");
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o600,
        "BuildKit's default mode"
    );
    assert_eq!(meta.mtime(), 1_445_412_480, "the mtime is Last-Modified");
    let requests = server.requests().len();
    assert_eq!(requests, 1, "{:?}", server.requests());

    // A pinned checksum is the cache key: the rebuild is cached without asking the server.
    let log = assert_success(&build(state.path(), &dockerfile, &out.path().join("b")));
    assert_eq!(step_state(&log, "ADD --checksum"), Some("CACHED"), "{log}");
    assert_eq!(server.requests().len(), requests, "{:?}", server.requests());

    // A wrong checksum fails with BuildKit's message, and leaves nothing behind.
    let dockerfile = format!("FROM scratch\nADD --checksum={wrong} {url} /dst/\n");
    let stderr = assert_failure(&build(state.path(), &dockerfile, &out.path().join("c")));
    let digest_mismatch = format!("digest mismatch {right}: {wrong}");
    assert!(stderr.contains(&digest_mismatch), "{stderr}");
    assert!(!out.path().join("c/dst").exists());
}

#[test]
fn add_http_revalidates_with_etag() {
    let archive = tarball();
    let server = HttpServer::start_static(StaticFiles::new([(
        "/archive.tar.gz",
        StaticFile::new(archive.clone()).with_etag("\"v1\""),
    )]))
    .expect("http server");
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let dockerfile = format!(
        "FROM scratch\nADD {} /dst/\n",
        server.url("/archive.tar.gz")
    );
    assert_success(&build(state.path(), &dockerfile, &out.path().join("a")));
    // A remote archive is not unpacked (BuildKit's ADD unpacks local archives only).
    let file = out.path().join("a/dst/archive.tar.gz");
    assert_eq!(
        std::fs::read(&file).expect("archive"),
        archive,
        "the archive arrives as it was served"
    );
    assert_eq!(std::fs::metadata(&file).expect("stat").mtime(), 0);

    let log = assert_success(&build(state.path(), &dockerfile, &out.path().join("b")));
    assert_eq!(step_state(&log, "ADD http://"), Some("CACHED"), "{log}");
    assert_eq!(
        server.requests(),
        [
            ("/archive.tar.gz".to_string(), 200),
            ("/archive.tar.gz".to_string(), 304)
        ],
        "the second build revalidated with If-None-Match"
    );
    assert!(out.path().join("b/dst/archive.tar.gz").is_file());
}

// ---------------------------------------------------------------------------------------------
// git daemon

/// A repository served by `git daemon` on 127.0.0.1; the daemon is killed on drop.
struct GitServer {
    _dir: tempfile::TempDir,
    port: u16,
    daemon: Child,
    /// The commit tagged `v1`.
    v1: String,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

impl GitServer {
    /// `repo.git` with `top.txt`, `sub/hello.txt`, the executable `sub/run.sh` and a build
    /// context in `ctx/` tagged `v1` (annotated), then a second commit on `main`.
    fn start() -> GitServer {
        let dir = tempfile::tempdir().expect("dir");
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("sub")).expect("mkdir");
        std::fs::create_dir_all(work.join("ctx")).expect("mkdir");
        std::fs::write(work.join("ctx/Dockerfile"), "FROM scratch\nCOPY . /ctx/\n").expect("write");
        std::fs::write(work.join("ctx/data.txt"), "context from git\n").expect("write");
        std::fs::write(work.join("ctx/ignored.txt"), "ignored\n").expect("write");
        std::fs::write(work.join("ctx/.dockerignore"), "ignored.txt\n").expect("write");
        git(&work, &["init", "-q"]);
        std::fs::write(work.join("top.txt"), "top\n").expect("write");
        std::fs::write(work.join("sub/hello.txt"), "hello from git\n").expect("write");
        std::fs::write(work.join("sub/run.sh"), "#!/bin/sh\necho run\n").expect("write");
        std::fs::set_permissions(
            work.join("sub/run.sh"),
            std::fs::Permissions::from_mode(0o775),
        )
        .expect("chmod");
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "one"]);
        git(&work, &["tag", "-a", "-m", "v1", "v1"]);
        let v1 = git(&work, &["rev-parse", "HEAD"]);
        std::fs::write(work.join("top.txt"), "top, changed\n").expect("write");
        git(&work, &["commit", "-q", "-am", "two"]);
        let bare = dir.path().join("repo.git");
        git(
            dir.path(),
            &["clone", "-q", "--bare", "--", "work", "repo.git"],
        );
        assert!(bare.is_dir());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let daemon = Command::new("git")
            .arg("daemon")
            .arg("--export-all")
            .arg("--reuseaddr")
            .arg(format!("--base-path={}", dir.path().display()))
            .arg(format!("--port={port}"))
            .arg("--listen=127.0.0.1")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("git daemon must be installed (scripts/prereqs.sh)");
        let server = GitServer {
            _dir: dir,
            port,
            daemon,
            v1,
        };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("git daemon did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/repo.git", self.port)
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn add_git_ref_subdir_and_keep_git_dir() {
    let server = GitServer::start();
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let url = server.url();
    let dockerfile = format!(
        "FROM scratch\nADD {url}#v1:sub /src\nADD --keep-git-dir=true {url}#v1 /repo\nADD {url} /main\n"
    );
    let dest = out.path().join("a");
    let log = assert_success(&build(state.path(), &dockerfile, &dest));

    // The subdirectory's content, with git's modes and no .git.
    let mut names: Vec<String> = std::fs::read_dir(dest.join("src"))
        .expect("src")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["hello.txt", "run.sh"], "{log}");
    assert_eq!(
        std::fs::read_to_string(dest.join("src/hello.txt")).expect("hello"),
        "hello from git\n"
    );
    assert_eq!(mode(&dest.join("src/hello.txt")), 0o644);
    assert_eq!(mode(&dest.join("src/run.sh")), 0o755);

    // The whole tree with a repository whose HEAD is the tagged commit and whose origin is the
    // remote.
    let repo = dest.join("repo");
    assert_eq!(
        std::fs::read_to_string(repo.join("top.txt")).expect("top"),
        "top\n"
    );
    assert!(repo.join(".git").is_dir(), "--keep-git-dir keeps .git");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), server.v1);
    assert_eq!(git(&repo, &["remote", "get-url", "origin"]), url);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");

    // No ref: the default branch.
    assert_eq!(
        std::fs::read_to_string(dest.join("main/top.txt")).expect("top"),
        "top, changed\n"
    );
    assert!(!dest.join("main/.git").exists());

    // Keyed on the commit: the rebuild is cached.
    let log = assert_success(&build(state.path(), &dockerfile, &out.path().join("b")));
    assert_eq!(step_state(&log, "#v1:sub /src"), Some("CACHED"), "{log}");
    assert_eq!(step_state(&log, "--keep-git-dir"), Some("CACHED"), "{log}");
}

#[test]
fn git_refs_that_look_like_options_are_refused() {
    let server = GitServer::start();
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let marker = out.path().join("pwned");
    let failures: Vec<String> = [
        format!("--upload-pack=touch {}", marker.display()),
        "-oProxyCommand=true".to_string(),
    ]
    .iter()
    .filter_map(|bad| {
        let dockerfile = format!("FROM scratch\nADD [\"{}#{bad}\", \"/src\"]\n", server.url());
        let result = build(state.path(), &dockerfile, &out.path().join("x"));
        let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
        let refused = result.status.code() == Some(1)
            && stderr.contains("must not start with \"-\"")
            && !marker.exists();
        (!refused).then(|| format!("{bad:?} was not refused ({:?}):\n{stderr}", result.status))
    })
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(!out.path().join("x").exists());
}

#[test]
fn git_repository_as_the_build_context() {
    let server = GitServer::start();
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let build = |dest: &Path| {
        build_to_local(state.path(), dest)
            .arg(format!("{}#v1:ctx", server.url()))
            .output()
            .expect("run kiln build")
    };
    let dest = out.path().join("a");
    let log = assert_success(&build(&dest));
    assert_eq!(
        std::fs::read_to_string(dest.join("ctx/data.txt")).expect("data"),
        "context from git\n",
        "{log}"
    );
    assert!(dest.join("ctx/Dockerfile").is_file());
    // As with BuildKit, a repository's .dockerignore does not filter a git context (it only
    // applies to local directories the client sends; docker/cli#2827).
    assert_eq!(
        std::fs::read_to_string(dest.join("ctx/ignored.txt"))
            .ok()
            .as_deref(),
        Some("ignored\n"),
        "the repository's .dockerignore must not apply"
    );
    let log = assert_success(&build(&out.path().join("b")));
    assert_eq!(step_state(&log, "COPY . /ctx/"), Some("CACHED"), "{log}");
}
