//! Shared fixtures: a busybox root filesystem and an executor in a temporary state directory.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kiln_executor::{
    CancellationToken, Error, Executor, ExecutorConfig, ExitStatus, ProcessIo, RunSpec,
};
use tempfile::TempDir;

/// The static busybox the tests build their root filesystems from (Debian `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
alice:x:1000:1000:Alice:/home/alice:/bin/sh\n\
bob:x:2000:2000:Bob:/home/bob:/bin/sh\n";

pub const GROUP: &str = "root:x:0:\n\
wheel:x:10:root,alice\n\
audio:x:29:alice\n\
alice:x:1000:\n\
bob:x:2000:\n";

/// A temporary directory under `/var/tmp` (on the root filesystem, not a tmpfs).
pub fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .expect("create a temporary directory under /var/tmp")
}

/// A root filesystem with `/bin/busybox`, one symlink per applet in `/bin`, and `/etc/passwd`
/// and `/etc/group`. Nothing else: no `/proc`, `/dev`, `/sys`, `/etc/hosts`, `/tmp`.
pub fn busybox_rootfs() -> TempDir {
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} is missing: install Debian's busybox-static (scripts/prereqs.sh)"
    );
    let dir = temp_dir("kiln-executor-rootfs-");
    let root = dir.path();
    std::fs::create_dir_all(root.join("bin")).expect("mkdir bin");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir etc");
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
    std::fs::set_permissions(
        root.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod busybox");
    let list = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
            .expect("symlink applet");
    }
    std::fs::write(root.join("etc/passwd"), PASSWD).expect("write passwd");
    std::fs::write(root.join("etc/group"), GROUP).expect("write group");
    dir
}

/// An executor with the automatic runtime choice, in a new state directory.
pub async fn executor() -> (Executor, TempDir) {
    let state = temp_dir("kiln-executor-state-");
    let exec = Executor::new(ExecutorConfig::new(state.path()))
        .await
        .expect("an OCI runtime that works on this host (runc or crun)");
    (exec, state)
}

/// The output of one run.
#[derive(Debug)]
pub struct Output {
    pub status: Result<ExitStatus, Error>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The exit code, or a description of the error.
    pub fn code(&self) -> Result<i32, String> {
        self.status
            .as_ref()
            .map(|s| s.code())
            .map_err(|e| e.to_string())
    }
}

/// Runs `spec` and collects its output.
pub async fn run(exec: &Executor, spec: RunSpec) -> Output {
    let (io, mut out_rx, mut err_rx) = ProcessIo::channels(64);
    let collect_out = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(chunk) = out_rx.recv().await {
            v.extend(chunk);
        }
        String::from_utf8_lossy(&v).into_owned()
    });
    let collect_err = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(chunk) = err_rx.recv().await {
            v.extend(chunk);
        }
        String::from_utf8_lossy(&v).into_owned()
    });
    let status = exec.run(spec, io, CancellationToken::new()).await;
    Output {
        status,
        stdout: collect_out.await.expect("stdout collector"),
        stderr: collect_err.await.expect("stderr collector"),
    }
}

/// A `sh -c SCRIPT` spec in `rootfs`.
pub fn sh(rootfs: &Path, script: &str) -> RunSpec {
    RunSpec::new(rootfs, vec!["/bin/sh".into(), "-c".into(), script.into()])
}

/// One entry of a tree listing: type, size of regular files, mode, owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Option<(i64, i64)>,
}

/// Every path under `root` (relative), with its type, size, mode and owner; directories also
/// with their modification time.
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            let kind = if ft.is_symlink() {
                "symlink"
            } else if ft.is_dir() {
                "dir"
            } else if ft.is_file() {
                "file"
            } else {
                "other"
            };
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.insert(
                rel,
                Entry {
                    kind,
                    size: if ft.is_file() { meta.len() } else { 0 },
                    mode: meta.mode(),
                    uid: meta.uid(),
                    gid: meta.gid(),
                    mtime: ft.is_dir().then(|| (meta.mtime(), meta.mtime_nsec())),
                },
            );
            if ft.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}
