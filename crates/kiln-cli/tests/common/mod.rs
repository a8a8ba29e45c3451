//! Helpers shared by the end-to-end tests of the `kiln` binary.
//!
//! Each test file uses a subset of them.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_testkit::TestRegistry;

/// The `kiln` binary under test.
pub fn kiln() -> assert_cmd::Command {
    assert_cmd::cargo::cargo_bin_cmd!("kiln")
}

/// `kiln build --root STATE`, for the caller to add flags and the context.
pub fn kiln_build(state: &Path) -> assert_cmd::Command {
    let mut cmd = kiln();
    cmd.arg("build").arg("--root").arg(state);
    cmd
}

/// `kiln build --root STATE --progress plain -o type=local,dest=DEST`, for the caller to add
/// flags and the context.
pub fn build_to_local(state: &Path, dest: &Path) -> assert_cmd::Command {
    let mut cmd = kiln_build(state);
    cmd.args(["--progress", "plain", "-o"])
        .arg(format!("type=local,dest={}", dest.display()));
    cmd
}

/// Runs `kiln build --root STATE EXTRA CONTEXT` with `env` added to its environment.
pub fn build_with(
    state: &Path,
    context: impl AsRef<OsStr>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    kiln_build(state)
        .args(extra)
        .arg(context)
        .envs(env.iter().copied())
        .output()
        .expect("run kiln build")
}

/// A temporary build context holding `files` (path, content).
pub fn context_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("context");
    for (path, content) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("context file");
    }
    dir
}

/// A state directory for one test, on a filesystem where overlayfs works (not tmpfs).
pub fn state_dir() -> tempfile::TempDir {
    std::fs::create_dir_all("/var/tmp/kiln-tests").expect("create /var/tmp/kiln-tests");
    tempfile::Builder::new()
        .prefix("state-")
        .tempdir_in("/var/tmp/kiln-tests")
        .expect("state dir")
}

/// Fails the test with kiln's stderr unless the command succeeded; returns that stderr.
pub fn assert_success(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "kiln build failed ({:?}):\n{stderr}",
        out.status.code()
    );
    stderr
}

/// Fails the test unless the build failed with exit code 1; returns its stderr.
pub fn assert_failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "kiln build:\n{stderr}");
    stderr
}

/// A registry serving busybox, and its reference.
pub fn busybox() -> (TestRegistry, String) {
    let registry = TestRegistry::start().expect("start registry");
    let base = kiln_testkit::busybox_image(&registry)
        .expect("push busybox")
        .reference;
    (registry, base)
}

/// Runs git with `args` in the repository `dir` (as user `kiln`, default branch `main`) and
/// returns its trimmed stdout; fails the test if git fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=kiln",
            "-c",
            "user.email=kiln@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("git must be installed (scripts/prereqs.sh)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A value no file could contain by chance: `prefix` and 64 random hex digits.
pub fn unique_value(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::from(prefix);
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// The SHA-256 of `data`, hex, through the host's `sha256sum`.
pub fn sha256_hex(data: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let f = dir.path().join("data");
    std::fs::write(&f, data).expect("write");
    let out = Command::new("sha256sum")
        .arg(&f)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `root` (not following symlinks) whose bytes contain one of
/// `needles`: where a secret leaked to.
pub fn files_containing(root: &Path, needles: &[impl AsRef<[u8]>]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if meta.is_file() {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            if needles.iter().any(|n| contains(&data, n.as_ref())) {
                found.push(p);
            }
        }
    }
    found
}

/// Generates a key pair named `name` (also its comment) with `ssh-keygen` and `args` (`-t`,
/// `-N`, ...) in `dir`; returns the private key's path.
pub fn keygen(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-C", name, "-f"])
        .arg(&path)
        .args(args)
        .output()
        .expect("ssh-keygen (Debian package openssh-client) must be installed");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// How a step ended in a plain progress log: `CACHED`, `DONE` or `ERROR`; `None` if the step
/// does not appear.
pub fn step_state<'a>(log: &'a str, step: &str) -> Option<&'a str> {
    let number = log.lines().find_map(|l| {
        let (num, rest) = l.strip_prefix('#')?.split_once(' ')?;
        (rest.contains(step) && rest.starts_with('[')).then_some(num)
    })?;
    let prefix = format!("#{number} ");
    log.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .find_map(|rest| {
            ["CACHED", "DONE", "ERROR"]
                .into_iter()
                .find(|s| rest.starts_with(s))
        })
}

/// Opens the worker of a state directory in this process (the image store, usage records),
/// as `kiln build` does; the caller runs no build on it at the same time.
pub async fn open_worker(state: &Path) -> kiln_worker::Worker {
    let registry: std::sync::Arc<dyn kiln_registry::Registry> = std::sync::Arc::new(
        kiln_registry::RegistryClient::new(kiln_registry::RegistryConfig::default())
            .expect("client"),
    );
    kiln_worker::Worker::open(kiln_worker::WorkerOptions {
        root: state.to_path_buf(),
        registry,
        platform: kiln_oci::Platform::host(),
        snapshotter: kiln_snapshot::DriverChoice::Auto,
        concurrency: 0,
    })
    .await
    .expect("open worker")
}

/// A real OpenSSH server on 127.0.0.1 (see [`kiln_testkit::SshServer`]).
pub fn ssh_server() -> kiln_testkit::SshServer {
    kiln_testkit::SshServer::start().unwrap_or_else(|e| panic!("{e}"))
}
