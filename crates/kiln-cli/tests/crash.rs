//! Crash safety and concurrency of the embedded builder's state directory (issue 3).
//!
//! The crash tests start `kiln build --root STATE` as a child process and `kill -9` it at one
//! point of a multi-stage build: right after the start, with the base layer half downloaded
//! (a proxy in front of the test registry holds the rest back), while the layer is unpacked,
//! while a RUN step runs or ends (markers in the streamed plain progress output), while the
//! export writes files, and after the export. Then the same build runs again on the same
//! state and must succeed: the exported files must be exactly right (content, modes, and the
//! owners through a tarball export), whatever the killed build had done, and the state
//! directory must keep nothing a crash left behind (no mounts under it, no process of the
//! killed build once the next one has opened the state, no temporary or unreferenced
//! snapshots, no half-written downloads, no container state). One test crashes several
//! builds in a row on one state before one finishes.
//!
//! The concurrency test starts a second build on a state directory while a first one is in a
//! RUN step: the second says it waits for the first (naming its pid), then finds everything
//! in the cache, and both succeed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_testkit::TestRegistry;

/// How long any one build may take before the test gives up on it.
const BUILD_TIMEOUT: Duration = Duration::from_secs(120);

/// A multi-stage build: the base image pulled from the test registry, files copied from the
/// context, RUN steps that write files (with modes and owners) and sleep a little, so that
/// there is time to interrupt them, a copy from the other stage, and a RUN in the final stage.
const DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE} AS build
ARG NAP=0.5
WORKDIR /src
COPY greeting.txt tool.sh ./
RUN echo run-one-started && sleep $NAP && sh tool.sh > out.txt && chmod 0640 out.txt && chown 1000:1000 out.txt && echo run-one-done
RUN echo run-two-started && sleep 0.2 && mkdir -p /artifacts/bin && cp -p out.txt greeting.txt /artifacts/ && ln -s out.txt /artifacts/link && printf '#!/bin/sh\necho hi\n' > /artifacts/bin/hi && chmod 4755 /artifacts/bin/hi && echo run-two-done

FROM ${BASE}
COPY --from=build /artifacts /srv/artifacts
COPY --chown=1000:1000 --chmod=0600 greeting.txt /home/app/
RUN echo run-three-started && sleep 0.3 && cat /srv/artifacts/out.txt /home/app/greeting.txt > /final.txt && echo run-three-done
"#;

const GREETING: &str = "hello from the context\n";
const TOOL: &str = "echo tool ran\n";

fn write_context(dir: &Path) {
    let write = |name: &str, content: &str| {
        std::fs::write(dir.join(name), content).expect("write the context");
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644))
            .expect("chmod the context");
    };
    write("Dockerfile", DOCKERFILE);
    write("greeting.txt", GREETING);
    write("tool.sh", TOOL);
}

/// A state directory for one test, on a filesystem where overlayfs works (not tmpfs). When a
/// test fails with mounts or processes left on it, dropping it ends them, so that a failure
/// does not leave the machine in a state that breaks later tests.
struct StateDir(tempfile::TempDir);

impl StateDir {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        for (pid, _) in processes_using(self.path()) {
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        for (point, _) in mounts_under(self.path()).into_iter().rev() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(point)
                .status();
        }
    }
}

fn state_dir() -> StateDir {
    std::fs::create_dir_all("/var/tmp/kiln-tests").expect("create /var/tmp/kiln-tests");
    StateDir(
        tempfile::Builder::new()
            .prefix("state-")
            .tempdir_in("/var/tmp/kiln-tests")
            .expect("state dir"),
    )
}

/// The mounts whose mount point is under `dir`, in mount order: (mount point, mountinfo line).
fn mounts_under(dir: &Path) -> Vec<(String, String)> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    mountinfo
        .lines()
        .filter_map(|line| {
            // The fifth field is the mount point, with spaces escaped as \040.
            let point = line.split(' ').nth(4)?.replace("\\040", " ");
            Path::new(&point)
                .starts_with(&dir)
                .then(|| (point, line.to_string()))
        })
        .collect()
}

/// The processes (other than this one) whose command line names `dir`: a container runtime
/// whose parent was killed, for example. Returns (pid, command line).
fn processes_using(dir: &Path) -> Vec<(u32, String)> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) {
                found.push((pid, cmdline));
            }
        }
    }
    found
}

/// The processes using `dir` ([`processes_using`]) that are not `pid` or its descendants.
fn stale_processes(dir: &Path, pid: u32) -> Vec<(u32, String)> {
    let parent = |p: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        // `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
        let rest = stat.get(stat.rfind(')')? + 1..)?;
        rest.split_whitespace().nth(1)?.parse().ok()
    };
    processes_using(dir)
        .into_iter()
        .filter(|(p, _)| {
            let mut next = Some(*p);
            while let Some(q) = next {
                if q == pid {
                    return false;
                }
                next = parent(q).filter(|&up| up > 1);
            }
            true
        })
        .collect()
}

/// One line of a build's stderr.
#[derive(Debug, Clone)]
struct Line {
    text: String,
}

/// A `kiln build` running as a child process, its stderr read line by line as it streams.
struct Build {
    child: Child,
    lines: Arc<Mutex<Vec<Line>>>,
    /// Tells the test that a new line arrived (or that stderr was closed).
    news: mpsc::Receiver<()>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// What a finished (or killed) build left.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    /// When the test saw the process end.
    ended: Instant,
    lines: Vec<Line>,
}

impl Finished {
    fn log(&self) -> String {
        self.lines.iter().map(|l| format!("{}\n", l.text)).collect()
    }
}

impl Build {
    /// Starts `kiln build --progress plain` of `context` on `state`, exporting to `dest`.
    fn start(state: &Path, context: &Path, base: &str, dest: &Path, extra: &[&str]) -> Build {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("build")
            .arg("--root")
            .arg(state)
            .args(["--progress", "plain", "--build-arg"])
            .arg(format!("BASE={base}"))
            .arg("-o")
            .arg(format!("type=local,dest={}", dest.display()))
            .args(extra)
            .arg(context)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kiln build");
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, news) = mpsc::channel();
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for text in BufReader::new(stderr).lines() {
                let Ok(text) = text else { break };
                sink.lock().expect("log lock").push(Line { text });
                let _ = tx.send(());
            }
        });
        Build {
            child,
            lines,
            news,
            reader: Some(reader),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        self.lines
            .lock()
            .expect("log lock")
            .iter()
            .map(|l| format!("{}\n", l.text))
            .collect()
    }

    /// Waits until `ready` says yes about the lines so far; false when the process closed its
    /// stderr (ended) first, or after [`BUILD_TIMEOUT`].
    fn wait_until(&self, ready: impl Fn(&[Line]) -> bool) -> bool {
        let deadline = Instant::now() + BUILD_TIMEOUT;
        loop {
            if ready(&self.lines.lock().expect("log lock")) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if self.news.recv_timeout(left).is_err() {
                return ready(&self.lines.lock().expect("log lock"));
            }
        }
    }

    /// `kill -9`, then waits for the process.
    fn kill(mut self) -> Finished {
        // The process may have ended by itself already; killing a zombie is harmless.
        let _ = self.child.kill();
        self.wait()
    }

    /// Waits for the process to end (killing it after [`BUILD_TIMEOUT`]).
    fn wait(mut self) -> Finished {
        let deadline = Instant::now() + BUILD_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for kiln") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let status = self.child.wait().expect("wait for kiln");
                panic!(
                    "kiln build did not finish within {BUILD_TIMEOUT:?} ({status}):\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let ended = Instant::now();
        if let Some(reader) = self.reader.take() {
            // The killed process's children (a container runtime) may hold stderr open: do not
            // wait for them.
            let until = Instant::now() + Duration::from_secs(5);
            while !reader.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        let lines = self.lines.lock().expect("log lock").clone();
        Finished {
            status,
            ended,
            lines,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The expected result

/// One exported file, as the test compares them: type, content, mode and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    /// Permission bits with setuid, setgid and sticky (not for symlinks).
    mode: u32,
    uid: u32,
    gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    /// A regular file, by the digest of its content.
    File(String),
    Symlink(String),
    Other,
}

/// Every path under `root` (relative, without the root itself).
fn tree(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
            let kind = if meta.file_type().is_symlink() {
                Kind::Symlink(
                    std::fs::read_link(&path)
                        .expect("read link")
                        .to_string_lossy()
                        .into_owned(),
                )
            } else if meta.is_dir() {
                Kind::Dir
            } else if meta.is_file() {
                let data = std::fs::read(&path).expect("read file");
                Kind::File(kiln_oci::Digest::of_bytes(&data).to_string())
            } else {
                Kind::Other
            };
            let rel = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .into_owned();
            let is_dir = kind == Kind::Dir;
            out.insert(
                rel,
                Entry {
                    mode: if matches!(kind, Kind::Symlink(_)) {
                        0
                    } else {
                        meta.mode() & 0o7777
                    },
                    kind,
                    uid: meta.uid(),
                    gid: meta.gid(),
                },
            );
            if is_dir {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The files the build produces: the busybox image's files plus what the Dockerfile adds, with
/// their owners in the image.
fn expected_tree() -> BTreeMap<String, Entry> {
    let base = tempfile::tempdir().expect("tempdir");
    kiln_testkit::busybox_rootfs(base.path()).expect("busybox rootfs");
    let mut want = tree(base.path());
    let file = |content: &str, mode: u32, uid: u32| Entry {
        kind: Kind::File(kiln_oci::Digest::of_bytes(content.as_bytes()).to_string()),
        mode,
        uid,
        gid: uid,
    };
    let dir = |mode: u32| Entry {
        kind: Kind::Dir,
        mode,
        uid: 0,
        gid: 0,
    };
    let out_txt = "tool ran\n";
    for (path, entry) in [
        // The mount points of the final stage's RUN, left empty as BuildKit leaves them.
        ("dev", dir(0o755)),
        ("proc", dir(0o755)),
        ("sys", dir(0o755)),
        ("srv", dir(0o755)),
        ("srv/artifacts", dir(0o755)),
        ("srv/artifacts/bin", dir(0o755)),
        (
            "srv/artifacts/bin/hi",
            file("#!/bin/sh\necho hi\n", 0o4755, 0),
        ),
        ("srv/artifacts/greeting.txt", file(GREETING, 0o644, 0)),
        ("srv/artifacts/out.txt", file(out_txt, 0o640, 1000)),
        (
            "srv/artifacts/link",
            Entry {
                kind: Kind::Symlink("out.txt".to_string()),
                mode: 0,
                uid: 0,
                gid: 0,
            },
        ),
        ("home/app/greeting.txt", file(GREETING, 0o600, 1000)),
        ("final.txt", file(&format!("{out_txt}{GREETING}"), 0o644, 0)),
    ] {
        want.insert(path.to_string(), entry);
    }
    want
}

/// The files a local export must write: those of [`expected_tree`], owned by the user who runs
/// the build, as BuildKit writes them (the owners in the image show in a tarball export).
fn expected_local_export() -> BTreeMap<String, Entry> {
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    expected_tree()
        .into_iter()
        .map(|(path, entry)| (path, Entry { uid, gid, ..entry }))
        .collect()
}

/// Runs the build once more (fully cached) with `-o type=tar` and returns what the tarball
/// holds, extracted with owners and modes; or why that failed.
fn tar_export_tree(
    state: &Path,
    context: &Path,
    base: &str,
) -> Result<BTreeMap<String, Entry>, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let tar = dir.path().join("fs.tar");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("build")
        .arg("--root")
        .arg(state)
        .args(["--progress", "plain", "--build-arg"])
        .arg(format!("BASE={base}"))
        .arg("-o")
        .arg(format!("type=tar,dest={}", tar.display()))
        .arg(context)
        .output()
        .expect("run kiln build");
    if !out.status.success() {
        return Err(format!(
            "the tarball export failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("mkdir");
    let untar = std::process::Command::new("tar")
        .args(["--numeric-owner", "--same-permissions", "-xf"])
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .output()
        .expect("run tar");
    if !untar.status.success() {
        return Err(format!(
            "tar -xf failed: {}",
            String::from_utf8_lossy(&untar.stderr)
        ));
    }
    Ok(tree(&root))
}

/// The differences between two trees, one line per path.
fn tree_diff(got: &BTreeMap<String, Entry>, want: &BTreeMap<String, Entry>) -> Vec<String> {
    let mut diff = Vec::new();
    for (path, w) in want {
        match got.get(path) {
            None => diff.push(format!("missing {path}: want {w:?}")),
            Some(g) if g != w => diff.push(format!("{path}: got {g:?}, want {w:?}")),
            Some(_) => {}
        }
    }
    for (path, g) in got {
        if !want.contains_key(path) {
            diff.push(format!("unexpected {path}: {g:?}"));
        }
    }
    diff
}

// ---------------------------------------------------------------------------------------------
// What a state directory must not keep

/// What is left in a state directory that no build uses: mounts, processes and files of
/// interrupted builds, and what the worker's own check finds.
fn leftovers(state: &Path) -> Vec<String> {
    let state = std::fs::canonicalize(state).expect("canonical state dir");
    let mut found: Vec<String> = mounts_under(&state)
        .into_iter()
        .map(|(_, line)| format!("mounted: {line}"))
        .collect();
    for (pid, cmdline) in processes_using(&state) {
        found.push(format!("process {pid} still running: {cmdline}"));
    }
    // Directories that hold only the work in progress of a build.
    for dir in ["mounts", "executor/bundles", "content/ingest"] {
        if let Ok(entries) = std::fs::read_dir(state.join(dir)) {
            for e in entries.flatten() {
                found.push(format!("left in {dir}: {}", e.path().display()));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(state.join("executor")) {
        for runtime in entries.flatten().filter(|e| e.file_name() != "bundles") {
            if let Ok(containers) = std::fs::read_dir(runtime.path()) {
                for c in containers.flatten() {
                    found.push(format!("container state left: {}", c.path().display()));
                }
            }
        }
    }
    let lock = kiln_worker::StateLock::acquire(&state, |pid| {
        panic!("the state directory is still locked by {pid:?}")
    })
    .expect("lock the state directory");
    let check = kiln_worker::check_state(&state).expect("check the state directory");
    drop(lock);
    found.extend(check.problems());
    found
}

// ---------------------------------------------------------------------------------------------
// A registry proxy that holds the layer download

/// What the proxy does with the first download of the base image's layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Sends the first quarter of the layer, reports it, and sends nothing more on that
    /// connection.
    HalfWay,
    /// Sends the whole layer and reports it.
    Nothing,
}

/// A TCP proxy on loopback in front of the test registry, so that a test knows when the layer
/// of the base image is being downloaded (builds use the image through the proxy's address).
/// Only the first download of the layer is watched; everything else passes through.
struct Proxy {
    addr: String,
    /// Reports that the watched download reached its point.
    reached: mpsc::Receiver<()>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    fn start(upstream: String, hold: Hold) -> Proxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let layer = &kiln_testkit::busybox_layout()
            .expect("busybox layout")
            .image
            .layers;
        assert_eq!(layer.len(), 1, "the busybox image has one layer");
        let request = format!(
            "GET /v2/{}/blobs/{}",
            kiln_testkit::BUSYBOX_REPOSITORY,
            layer[0].blob.digest
        );
        let size = layer[0].blob.size;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let (tx, reached) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let watched = Arc::new(AtomicBool::new(false));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                // Set when this connection carries the watched download.
                let armed = Arc::new(AtomicBool::new(false));
                let (c_in, s_out) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let (request, watched, armed2) =
                    (request.clone(), Arc::clone(&watched), Arc::clone(&armed));
                std::thread::spawn(move || {
                    relay_requests(c_in, s_out, &request, &watched, &armed2)
                });
                let (tx, stopping) = (tx.clone(), Arc::clone(&stopping));
                std::thread::spawn(move || {
                    relay_responses(server, client, &armed, hold, size, &tx, &stopping)
                });
            }
        });
        Proxy {
            addr,
            reached,
            stop,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop up.
        let _ = std::net::TcpStream::connect(&self.addr);
    }
}

/// Client to registry: passes everything on, and arms the connection that asks for the
/// watched layer first.
fn relay_requests(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    request: &str,
    watched: &std::sync::atomic::AtomicBool,
    armed: &std::sync::atomic::AtomicBool,
) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let mut buf = vec![0u8; 64 * 1024];
    // The end of what was sent so far, long enough to find the request line across reads.
    let mut recent: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        recent.extend_from_slice(&buf[..n]);
        if recent
            .windows(request.len())
            .any(|w| w == request.as_bytes())
            && !watched.swap(true, Ordering::SeqCst)
        {
            armed.store(true, Ordering::SeqCst);
        }
        let keep = recent.len().saturating_sub(request.len());
        recent.drain(..keep);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Registry to client: passes everything on; on the armed connection, counts the layer's bytes
/// after the response headers, reports the point `hold` names and, for [`Hold::HalfWay`],
/// stops passing data on (until the proxy is dropped).
fn relay_responses(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    armed: &std::sync::atomic::AtomicBool,
    hold: Hold,
    size: u64,
    reached: &mpsc::Sender<()>,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let mut buf = vec![0u8; 16 * 1024];
    // The response so far on the armed connection: headers, then the number of body bytes.
    let mut headers: Vec<u8> = Vec::new();
    let mut body: Option<u64> = None;
    let mut reported = false;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        if armed.load(Ordering::SeqCst) && !reported {
            let mut body_start = 0;
            if body.is_none() {
                headers.extend_from_slice(chunk);
                if let Some(end) = headers.windows(4).position(|w| w == b"\r\n\r\n") {
                    let in_chunk = (end + 4).saturating_sub(headers.len() - n);
                    body_start = in_chunk;
                    body = Some(0);
                }
            }
            if let Some(sent) = body {
                let fresh = (n - body_start) as u64;
                let (limit, stall) = match hold {
                    Hold::HalfWay => (size / 4, true),
                    Hold::Nothing => (size, false),
                };
                if sent + fresh >= limit {
                    let upto = body_start + usize::try_from(limit - sent).expect("small");
                    let send = if stall { &chunk[..upto.min(n)] } else { chunk };
                    if to.write_all(send).and_then(|()| to.flush()).is_err() {
                        break;
                    }
                    reported = true;
                    let _ = reached.send(());
                    if stall {
                        while !stop.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        return;
                    }
                    continue;
                }
                body = Some(sent + fresh);
            }
        }
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

// ---------------------------------------------------------------------------------------------
// The crash test

/// When the first build is killed.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Right after it was started.
    Start,
    /// When the layer of the base image is half downloaded (the proxy holds the rest).
    Downloading,
    /// When the layer was downloaded and a snapshot is mounted to unpack it into.
    Unpacking,
    /// As soon as lines of its progress output contain these texts, in this order.
    Output(&'static [&'static str]),
    /// As soon as the export has written its first files.
    Exporting,
}

/// Waits until `ready` says yes, polling every millisecond; false after the build timeout.
fn poll(mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + BUILD_TIMEOUT;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// Whether a directory exists and has an entry.
fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Whether the lines of `log` contain `markers` in this order.
fn in_order(lines: &[Line], markers: &[&str]) -> bool {
    let mut rest = lines.iter();
    markers
        .iter()
        .all(|m| rest.by_ref().any(|l| l.text.contains(m)))
}

/// A test registry with the busybox image, behind a proxy.
struct Setup {
    _registry: TestRegistry,
    proxy: Proxy,
    /// The base image, through the proxy.
    base: String,
}

fn setup(hold: Hold) -> Setup {
    let registry = TestRegistry::start().expect("start registry");
    let pushed = kiln_testkit::busybox_image(&registry).expect("push busybox");
    let proxy = Proxy::start(registry.addr(), hold);
    let base = pushed.reference.replacen(&registry.addr(), &proxy.addr, 1);
    assert_ne!(base, pushed.reference, "the reference names the registry");
    Setup {
        _registry: registry,
        proxy,
        base,
    }
}

/// Kills a build at `at`; returns the killed build and whether the kill point was reached
/// (otherwise it was killed when the build ended or timed out).
fn kill_at(setup: &Setup, state: &Path, dest: &Path, build: Build, at: KillAt) -> (Finished, bool) {
    let reached = match at {
        KillAt::Start => true,
        KillAt::Downloading => setup.proxy.reached.recv_timeout(BUILD_TIMEOUT).is_ok(),
        KillAt::Unpacking => {
            setup.proxy.reached.recv_timeout(BUILD_TIMEOUT).is_ok()
                && poll(|| has_entries(&state.join("mounts")))
        }
        KillAt::Output(markers) => build.wait_until(|lines| in_order(lines, markers)),
        KillAt::Exporting => poll(|| has_entries(dest)),
    };
    (build.kill(), reached)
}

/// Checks that once a build started after a kill has opened the state (it resolves the base
/// image after that), nothing the killed build started still runs.
fn check_opened(state: &Path, build: &Build) -> Vec<String> {
    if !build.wait_until(|lines| in_order(lines, &["load metadata for"])) {
        return Vec::new();
    }
    stale_processes(state, build.pid())
        .into_iter()
        .map(|(pid, cmdline)| {
            format!(
                "process {pid} of the killed build still runs after the next build opened the state: {cmdline}"
            )
        })
        .collect()
}

/// One crash: a build killed at `at`, then the same build again on the same state, which must
/// succeed with exactly the right files and leave nothing behind.
fn check_crash(name: &str, hold: Hold, at: KillAt) -> Vec<String> {
    let mut failures = Vec::new();
    let setup = setup(hold);
    let state = state_dir();
    let context = tempfile::tempdir().expect("context");
    write_context(context.path());
    let out = tempfile::tempdir().expect("out");
    let dest = out.path().join("out");

    let first = Build::start(state.path(), context.path(), &setup.base, &dest, &[]);
    let (killed, reached) = kill_at(&setup, state.path(), &dest, first, at);
    if !reached {
        failures.push(format!(
            "{name}: the first build never reached the point to kill it at ({}):\n{}",
            killed.status,
            killed.log()
        ));
    }
    let second = Build::start(state.path(), context.path(), &setup.base, &dest, &[]);
    for problem in check_opened(state.path(), &second) {
        failures.push(format!("{name}: {problem}"));
    }
    let second = second.wait();
    if !second.status.success() {
        failures.push(format!(
            "{name}: the build after the kill failed ({}):\n{}\nthe killed build ({}):\n{}",
            second.status,
            second.log(),
            killed.status,
            killed.log()
        ));
        return failures;
    }
    failures.extend(
        check_result(state.path(), context.path(), &setup.base, &dest)
            .into_iter()
            .map(|f| format!("{name}: {f}\nlog:\n{}", second.log())),
    );
    failures
}

/// Checks what a successful build left: the files of its local export in `dest`, the owners
/// through a tarball export (a cached build), and the state directory.
fn check_result(state: &Path, context: &Path, base: &str, dest: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let diff = tree_diff(&tree(dest), &expected_local_export());
    if !diff.is_empty() {
        failures.push(format!(
            "the exported files are wrong:\n  {}",
            diff.join("\n  ")
        ));
    }
    match tar_export_tree(state, context, base) {
        Ok(got) => {
            let diff = tree_diff(&got, &expected_tree());
            if !diff.is_empty() {
                failures.push(format!(
                    "the tarball export is wrong:\n  {}",
                    diff.join("\n  ")
                ));
            }
        }
        Err(e) => failures.push(e),
    }
    failures.extend(leftovers(state));
    failures
}

fn assert_crash(name: &str, hold: Hold, at: KillAt) {
    let failures = check_crash(name, hold, at);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn crash_right_after_start() {
    assert_crash("right after start", Hold::Nothing, KillAt::Start);
}

#[test]
fn crash_while_downloading_the_base_layer() {
    assert_crash("downloading", Hold::HalfWay, KillAt::Downloading);
}

#[test]
fn crash_while_unpacking_the_base_layer() {
    assert_crash("unpacking", Hold::Nothing, KillAt::Unpacking);
}

#[test]
fn crash_while_a_run_step_runs() {
    assert_crash(
        "during RUN",
        Hold::Nothing,
        KillAt::Output(&["run-one-started"]),
    );
}

#[test]
fn crash_as_a_run_step_ends() {
    // The container printed its last line: the kill lands while it exits, its mount points are
    // removed, its snapshot is committed or its result recorded.
    assert_crash(
        "end of RUN",
        Hold::Nothing,
        KillAt::Output(&["run-two-done"]),
    );
}

#[test]
fn crash_during_export() {
    assert_crash("during export", Hold::Nothing, KillAt::Exporting);
}

#[test]
fn crash_after_the_export() {
    assert_crash(
        "after export",
        Hold::Nothing,
        KillAt::Output(&["exporting to client directory", "DONE"]),
    );
}

/// Crashes one after the other on the same state, each build getting further than the last,
/// before one runs to the end: what each crash leaves must not pile up.
#[test]
fn repeated_crashes_on_one_state() {
    let setup = setup(Hold::HalfWay);
    let state = state_dir();
    let context = tempfile::tempdir().expect("context");
    write_context(context.path());
    let out = tempfile::tempdir().expect("out");
    let dest = out.path().join("out");
    let mut failures = Vec::new();
    let mut logs = String::new();
    for (i, (name, at)) in [
        ("downloading", KillAt::Downloading),
        ("during RUN", KillAt::Output(&["run-one-started"])),
        ("end of RUN", KillAt::Output(&["run-two-done"])),
        ("final RUN", KillAt::Output(&["run-three-started"])),
        ("during export", KillAt::Exporting),
    ]
    .into_iter()
    .enumerate()
    {
        let build = Build::start(state.path(), context.path(), &setup.base, &dest, &[]);
        if i > 0 {
            failures.extend(
                check_opened(state.path(), &build)
                    .into_iter()
                    .map(|p| format!("{name}: {p}")),
            );
        }
        let (killed, reached) = kill_at(&setup, state.path(), &dest, build, at);
        logs.push_str(&format!(
            "--- killed {name} ({}):\n{}",
            killed.status,
            killed.log()
        ));
        if !reached {
            failures.push(format!(
                "{name}: the build never reached the point to kill it at"
            ));
        }
    }
    let last = Build::start(state.path(), context.path(), &setup.base, &dest, &[]);
    failures.extend(check_opened(state.path(), &last));
    let last = last.wait();
    if !last.status.success() {
        failures.push(format!(
            "the last build failed ({}):\n{}",
            last.status,
            last.log()
        ));
    } else {
        failures.extend(check_result(
            state.path(),
            context.path(),
            &setup.base,
            &dest,
        ));
    }
    assert!(
        failures.is_empty(),
        "{}\n\nthe killed builds:\n{logs}",
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The concurrency test

/// A second build on the same state waits for the first, naming its pid, then both succeed.
#[test]
fn second_build_waits_for_the_lock() {
    let registry = TestRegistry::start().expect("start registry");
    let base = kiln_testkit::busybox_image(&registry)
        .expect("push busybox")
        .reference;
    let state = state_dir();
    let context = tempfile::tempdir().expect("context");
    write_context(context.path());
    let out = tempfile::tempdir().expect("out");
    let (dest_a, dest_b) = (out.path().join("a"), out.path().join("b"));
    // A long first RUN, so that B starts while A holds the lock.
    let nap = ["--build-arg", "NAP=2"];

    let a = Build::start(state.path(), context.path(), &base, &dest_a, &nap);
    assert!(
        a.wait_until(|lines| in_order(lines, &["run-one-started"])),
        "build A never started its RUN step:\n{}",
        a.log()
    );
    let a_pid = a.pid();
    let b = Build::start(state.path(), context.path(), &base, &dest_b, &nap);
    let waiting = format!(
        "waiting for another kiln build to release {} (held by pid {a_pid})",
        state.path().display()
    );
    let b_waits = b.wait_until(|lines| lines.iter().any(|l| l.text.contains(&waiting)));
    // Both are waited for at the same time, so that their end times can be compared.
    let a = std::thread::spawn(move || a.wait());
    let b = std::thread::spawn(move || b.wait());
    let (a, b) = (a.join().expect("wait for A"), b.join().expect("wait for B"));
    let logs = format!("build A:\n{}\nbuild B:\n{}", a.log(), b.log());
    assert!(b_waits, "B did not say {waiting:?}:\n{logs}");
    assert!(a.status.success(), "A failed ({}):\n{logs}", a.status);
    assert!(b.status.success(), "B failed ({}):\n{logs}", b.status);
    assert!(b.ended > a.ended, "B ended before A:\n{logs}");
    // B waited for A's results instead of building at the same time: it found every step in
    // the cache, although A was still running its first RUN step when B started.
    for step in ["run-one-started", "run-two-started", "run-three-started"] {
        assert!(
            b.lines
                .iter()
                .all(|l| !l.text.ends_with(&format!(" {step}"))),
            "B ran a step A had built ({step}):\n{logs}"
        );
    }
    assert!(
        b.lines
            .iter()
            .filter(|l| l.text.ends_with(" CACHED"))
            .count()
            >= 5,
        "B did not use A's results:\n{logs}"
    );
    let diff = tree_diff(&tree(&dest_a), &expected_local_export());
    assert!(
        diff.is_empty(),
        "A exported wrong files:\n  {}\n{logs}",
        diff.join("\n  ")
    );
    let failures = check_result(state.path(), context.path(), &base, &dest_b);
    assert!(failures.is_empty(), "{}\n{logs}", failures.join("\n"));
}
