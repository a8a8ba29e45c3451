//! The executor: bundles, the runtime process, streams, cancellation and cleanup.

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use crate::oci::{HostFacts, SpecInput, build_spec};
use crate::process_io::{ExitStatus, OutputSink, ProcessIo};
use crate::resolvconf::{DnsConfig, read_optional};
use crate::runtime::{OciRuntime, Rejected, Runtime, RuntimeInfo, RuntimeKind, find_binary};
use crate::stubs::MountStubs;
use crate::{Error, Network, RunSpec, hosts, resolvconf, rootpath, user};

/// How the executor is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorConfig {
    /// The state directory: bundles (`bundles/ID`) and the runtime's container state
    /// (`runc/`, `crun/`). One executor owns it at a time; [`Executor::new`] removes what a
    /// previous one left behind.
    pub root: PathBuf,
    /// Which runtime to use.
    pub runtime: Runtime,
    /// The binary of an explicitly chosen runtime (searched in `PATH` when `None`).
    pub runtime_path: Option<PathBuf>,
    /// DNS settings replacing the host's.
    pub dns: Option<DnsConfig>,
    /// The host resolver file to derive `/etc/resolv.conf` from (by default `/etc/resolv.conf`,
    /// or systemd-resolved's upstream file as BuildKit picks it).
    pub host_resolv_conf: Option<PathBuf>,
}

impl ExecutorConfig {
    /// The default configuration for a state directory: automatic runtime choice, host DNS.
    pub fn new(root: impl Into<PathBuf>) -> ExecutorConfig {
        ExecutorConfig {
            root: root.into(),
            runtime: Runtime::Auto,
            runtime_path: None,
            dns: None,
            host_resolv_conf: None,
        }
    }
}

/// Runs processes in containers through an OCI runtime. Cheap to share (`&self` methods);
/// runs may happen concurrently. Runs on the same root filesystem are serialised: the mount
/// points one run creates and removes must not be pulled from under another.
#[derive(Debug)]
pub struct Executor {
    bundles: PathBuf,
    rootfs_locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    runtime: OciRuntime,
    info: RuntimeInfo,
    host: HostFacts,
    dns: Option<DnsConfig>,
    host_resolv_conf: Option<PathBuf>,
}

/// How long a cancelled container may take to die after `kill` before the runtime process
/// itself is killed.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `kill` is retried while the container is still being created.
const KILL_RETRY: Duration = Duration::from_millis(50);
/// The size of one output chunk.
const CHUNK: usize = 32 * 1024;

fn mkdir(path: &Path, mode: u32) -> Result<(), Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| Error::io("create directory", path, e))
}

/// A new container id: `kiln-` and 128 random bits in hex.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(
            bytes.get_mut(filled..).unwrap_or_default(),
            rustix::rand::GetRandomFlags::empty(),
        ) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    if filled < bytes.len() {
        // No entropy source: fall back to the clock and the process id, still unique here.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mixed = nanos ^ (u128::from(std::process::id()) << 96);
        bytes = mixed.to_le_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("kiln-{hex}")
}

impl Executor {
    /// Sets up the state directory, picks a runtime that can run a container on this host
    /// (by running a trivial one), and cleans up containers and bundles left by a previous
    /// executor on the same state directory.
    pub async fn new(config: ExecutorConfig) -> Result<Executor, Error> {
        mkdir(&config.root, 0o711)?;
        let root = std::fs::canonicalize(&config.root)
            .map_err(|e| Error::io("resolve state directory", &config.root, e))?;
        let bundles = root.join("bundles");
        mkdir(&bundles, 0o711)?;
        let host = HostFacts::probe();

        let candidates: &[RuntimeKind] = match config.runtime {
            Runtime::Auto => &[RuntimeKind::Crun, RuntimeKind::Runc],
            Runtime::Runc => &[RuntimeKind::Runc],
            Runtime::Crun => &[RuntimeKind::Crun],
        };
        let mut rejected: Vec<Rejected> = Vec::new();
        for &kind in candidates {
            let path = match (&config.runtime_path, config.runtime) {
                (Some(p), Runtime::Runc | Runtime::Crun) => Some(p.clone()),
                _ => find_binary(kind.name()),
            };
            let Some(path) = path else {
                rejected.push(Rejected {
                    kind,
                    reason: "not found in PATH or the system directories".to_string(),
                });
                continue;
            };
            let runtime = OciRuntime {
                kind,
                path: path.clone(),
                state_root: root.join(kind.name()),
            };
            mkdir(&runtime.state_root, 0o711)?;
            let version = match runtime.version().await {
                Ok(v) => v,
                Err(reason) => {
                    rejected.push(Rejected { kind, reason });
                    continue;
                }
            };
            let mut executor = Executor {
                bundles: bundles.clone(),
                rootfs_locks: Mutex::new(HashMap::new()),
                runtime,
                info: RuntimeInfo {
                    kind,
                    path,
                    version: version.clone(),
                    probed: false,
                    rejected: Vec::new(),
                },
                host: host.clone(),
                dns: config.dns.clone(),
                host_resolv_conf: config.host_resolv_conf.clone(),
            };
            executor.clean_stale().await;
            match executor.probe().await {
                Ok(probed) => {
                    executor.info.probed = probed;
                    executor.info.rejected = rejected;
                    return Ok(executor);
                }
                Err(reason) => rejected.push(Rejected {
                    kind,
                    reason: format!("{version}: {reason}"),
                }),
            }
        }
        Err(Error::NoRuntime {
            tried: rejected
                .iter()
                .map(|r| format!("{}: {}", r.kind, r.reason))
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    /// The runtime in use and the ones rejected, with their reasons.
    pub fn runtime_info(&self) -> &RuntimeInfo {
        &self.info
    }

    /// Removes containers and bundles a previous executor left (after a crash).
    async fn clean_stale(&self) {
        let ids: Vec<String> = std::fs::read_dir(&self.runtime.state_root)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for id in ids {
            let _ = self.runtime.delete_force(&id).await;
        }
        if let Ok(entries) = std::fs::read_dir(&self.bundles) {
            for e in entries.filter_map(|e| e.ok()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Runs the probe program in an otherwise empty root filesystem. `Ok(false)` when there is
    /// no probe program for this architecture.
    async fn probe(&self) -> Result<bool, String> {
        let Some(program) = crate::runtime::probe_program(&self.host.arch) else {
            return Ok(false);
        };
        let dir = self.bundles.join(format!("probe-{}", new_id()));
        let rootfs = dir.join("rootfs");
        let prepared = (|| -> std::io::Result<()> {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&rootfs)?;
            let exe = rootfs.join("probe");
            std::fs::write(&exe, &program)?;
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))
        })();
        if let Err(e) = prepared {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("prepare probe in {}: {e}", dir.display()));
        }
        let spec = RunSpec::new(&rootfs, vec!["/probe".to_string()]);
        let result = self
            .run(spec, ProcessIo::default(), CancellationToken::new())
            .await;
        let _ = std::fs::remove_dir_all(&dir);
        match result {
            Ok(status) if status.success() => Ok(true),
            Ok(status) => Err(format!("the probe container ended with {status}")),
            Err(Error::Runtime { message, .. }) => Err(message),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Runs one process in a container and waits for it. Output is delivered to `io` as it
    /// arrives. Cancelling `cancel` kills the container (`kill KILL`, then `delete --force`)
    /// and returns [`Error::Cancelled`]. The bundle is always removed, and the mount points
    /// created in the root filesystem are removed when the process did not use them (also
    /// when the returned future is dropped before it completes).
    ///
    /// A non-zero exit is not an error: it is in the returned [`ExitStatus`]. When the runtime
    /// itself fails (the command does not exist, a mount is impossible), the result is
    /// [`Error::Runtime`] with the runtime's message, which the runtime also writes to the
    /// process's stderr, as BuildKit shows it.
    pub async fn run(
        &self,
        spec: RunSpec,
        io: ProcessIo,
        cancel: CancellationToken,
    ) -> Result<ExitStatus, Error> {
        spec.validate()?;
        let lock = self.rootfs_lock(&spec.rootfs);
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Error::Cancelled { id: String::new() }),
            guard = lock.lock() => {
                let result = self.run_locked(spec, io, cancel).await;
                drop(guard);
                result
            }
        };
        self.release_rootfs_lock(lock);
        result
    }

    /// The lock of one root filesystem.
    fn rootfs_lock(&self, rootfs: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let key = std::fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.to_path_buf());
        let mut locks = self.rootfs_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(key).or_default().clone()
    }

    /// Forgets the locks nobody holds or waits for.
    fn release_rootfs_lock(&self, lock: Arc<tokio::sync::Mutex<()>>) {
        drop(lock);
        let mut locks = self.rootfs_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
    }

    async fn run_locked(
        &self,
        spec: RunSpec,
        io: ProcessIo,
        cancel: CancellationToken,
    ) -> Result<ExitStatus, Error> {
        let id = new_id();
        let bundle = self.bundles.join(&id);
        let mut guard = RunGuard {
            runtime: self.runtime.clone(),
            id: id.clone(),
            bundle: bundle.clone(),
            stubs: None,
            armed: true,
        };
        let ctx = PrepareCtx {
            id: id.clone(),
            bundle: bundle.clone(),
            spec,
            host: self.host.clone(),
            dns: self.dns.clone(),
            host_resolv_conf: self.host_resolv_conf.clone(),
        };
        let stubs = tokio::task::spawn_blocking(move || prepare(ctx))
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        let stubs = match stubs {
            Ok(stubs) => stubs,
            Err(e) => {
                guard.armed = false;
                let _ = std::fs::remove_dir_all(&bundle);
                return Err(e);
            }
        };
        guard.stubs = Some(stubs);

        let result = self.execute(&id, &bundle, io, &cancel).await;

        // The container is gone unless the runtime kept state (it failed, or was killed).
        if self.runtime.has_state(&id) {
            let _ = self.runtime.delete_force(&id).await;
        }
        guard.armed = false;
        let stubs = guard.stubs.take();
        let bundle_dir = bundle.clone();
        let cleanup = tokio::task::spawn_blocking(move || {
            if let Some(stubs) = stubs {
                stubs.remove();
            }
            std::fs::remove_dir_all(&bundle_dir)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        let status = result?;
        cleanup.map_err(|e| Error::io("remove bundle", &bundle, e))?;
        Ok(status)
    }

    /// Starts `runtime run`, pumps the streams, and waits for it or for cancellation.
    async fn execute(
        &self,
        id: &str,
        bundle: &Path,
        io: ProcessIo,
        cancel: &CancellationToken,
    ) -> Result<ExitStatus, Error> {
        let log = bundle.join("runtime.log");
        let mut cmd = self.runtime.command(Some(&log));
        cmd.arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(if io.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            runtime: self.runtime.path.clone(),
            source,
        })?;
        let pid = child.id();

        let stdin_task = match (io.stdin, child.stdin.take()) {
            (Some(mut reader), Some(mut writer)) => Some(tokio::spawn(async move {
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            })),
            _ => None,
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let mut out_sink = io.stdout;
        let mut err_sink = io.stderr;
        let finished = async {
            let (_, _, status) = tokio::join!(
                pump(stdout, &mut out_sink),
                pump(stderr, &mut err_sink),
                child.wait()
            );
            status
        };
        tokio::pin!(finished);

        let mut cancelled = false;
        let status = tokio::select! {
            status = &mut finished => status,
            _ = cancel.cancelled() => {
                cancelled = true;
                let deadline = Instant::now() + KILL_TIMEOUT;
                loop {
                    let _ = self.runtime.kill(id).await;
                    tokio::select! {
                        status = &mut finished => break status,
                        _ = tokio::time::sleep(KILL_RETRY) => {}
                    }
                    if Instant::now() >= deadline {
                        // The runtime does not react: kill it and its container.
                        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok())
                            && let Some(pid) = rustix::process::Pid::from_raw(pid)
                        {
                            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                        }
                        let _ = self.runtime.delete_force(id).await;
                        break finished.await;
                    }
                }
            }
        };
        if let Some(task) = stdin_task {
            task.abort();
        }
        let status = status.map_err(|e| Error::io("wait for runtime", &self.runtime.path, e))?;
        if cancelled {
            return Err(Error::Cancelled { id: id.to_string() });
        }
        let Some(code) = status.code() else {
            return Err(Error::Runtime {
                runtime: self.runtime.kind.to_string(),
                id: id.to_string(),
                message: format!("the runtime process was ended by {status}"),
            });
        };
        if code != 0 {
            let log_text = read_optional(&log).ok().flatten().unwrap_or_default();
            let errors = crate::runtime::log_errors(&log_text);
            if !errors.is_empty() {
                return Err(Error::Runtime {
                    runtime: self.runtime.kind.to_string(),
                    id: id.to_string(),
                    message: errors.join("; "),
                });
            }
        }
        Ok(ExitStatus::from_code(code))
    }
}

/// Reads one stream to its end, delivering chunks as they come. A sink that stops accepting
/// output gets nothing more, but the stream is still drained so the process never blocks.
async fn pump<R: AsyncRead + Unpin>(reader: Option<R>, sink: &mut OutputSink) {
    let Some(mut reader) = reader else {
        return;
    };
    let mut buf = vec![0u8; CHUNK];
    let mut wanted = true;
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if wanted {
                    wanted = sink.deliver(buf.get(..n).unwrap_or_default()).await;
                }
            }
        }
    }
}

/// Cleans up after a run whose future was dropped before it finished: the container is
/// killed and deleted, the stubs and the bundle are removed (synchronously).
struct RunGuard {
    runtime: OciRuntime,
    id: String,
    bundle: PathBuf,
    stubs: Option<MountStubs>,
    armed: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.runtime.delete_force_blocking(&self.id);
        if let Some(stubs) = self.stubs.take() {
            stubs.remove();
        }
        let _ = std::fs::remove_dir_all(&self.bundle);
    }
}

/// What the blocking preparation of a run needs.
struct PrepareCtx {
    id: String,
    bundle: PathBuf,
    spec: RunSpec,
    host: HostFacts,
    dns: Option<DnsConfig>,
    host_resolv_conf: Option<PathBuf>,
}

/// Writes the bundle (`config.json`, `hosts`, `resolv.conf`), creates the working directory
/// and the mount stubs.
fn prepare(ctx: PrepareCtx) -> Result<MountStubs, Error> {
    let spec = &ctx.spec;
    match std::fs::metadata(&spec.rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::invalid(
                "rootfs",
                format!("{} is not a directory", spec.rootfs.display()),
            ));
        }
        Err(e) => return Err(Error::io("inspect root filesystem", &spec.rootfs, e)),
    }
    std::fs::DirBuilder::new()
        .mode(0o711)
        .create(&ctx.bundle)
        .map_err(|e| Error::io("create bundle directory", &ctx.bundle, e))?;

    let hosts_path = ctx.bundle.join("hosts");
    let hosts = hosts::hosts_file(&spec.hostname, &spec.extra_hosts);
    write_file(&hosts_path, hosts.as_bytes())?;

    let host_network = spec.network == Network::Host;
    let source = match &ctx.host_resolv_conf {
        Some(p) => p.clone(),
        None => {
            let etc = read_optional(Path::new(resolvconf::HOST_RESOLV_CONF))
                .map_err(|e| Error::io("read", resolvconf::HOST_RESOLV_CONF, e))?;
            resolvconf::host_source(etc.as_deref(), host_network)
        }
    };
    let host_content = read_optional(&source).map_err(|e| Error::io("read", &source, e))?;
    let resolv = resolvconf::resolv_conf(host_content.as_deref(), host_network, ctx.dns.as_ref())
        .map_err(|e| Error::invalid("dns.nameservers", e.to_string()))?;
    let resolv_path = ctx.bundle.join("resolv.conf");
    write_file(&resolv_path, resolv.as_bytes())?;

    let user = user::resolve_user(&spec.rootfs, &spec.user)?;
    create_cwd(&spec.rootfs, &spec.cwd, user.uid, user.gid)?;

    let oci = build_spec(&SpecInput {
        id: &ctx.id,
        run: spec,
        user: &user,
        hosts_file: &hosts_path,
        resolv_conf: &resolv_path,
        host: &ctx.host,
    })?;
    let json = serde_json::to_vec(&oci)?;
    write_file(&ctx.bundle.join("config.json"), &json)?;

    create_runtime_dirs(&spec.rootfs)?;
    MountStubs::create(&spec.rootfs, oci.mounts().as_deref().unwrap_or_default())
}

/// Creates `/proc`, `/dev` and `/sys` when the root filesystem lacks them, and leaves them there
/// after the run, empty: BuildKit does the same (runc creates them, and BuildKit removes only the
/// mount points it made itself, see moby/buildkit#3455), so an image built `FROM scratch` gets
/// the same three empty directories with kiln as with BuildKit. What is mounted on them never
/// reaches the layer.
fn create_runtime_dirs(rootfs: &Path) -> Result<(), Error> {
    for name in ["dev", "proc", "sys"] {
        let path = rootfs.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&path).map_err(|e| Error::io("create", &path, e))?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| Error::io("set permissions of", &path, e))?;
            }
            Err(e) => return Err(Error::io("stat", &path, e)),
        }
    }
    Ok(())
}

fn write_file(path: &Path, content: &[u8]) -> Result<(), Error> {
    std::fs::write(path, content).map_err(|e| Error::io("write", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io("set permissions of", path, e))
}

/// Creates the working directory when missing, each new directory owned by the process user
/// (BuildKit's `MkdirAllAndChown(cwd, 0755, uid, gid)`).
fn create_cwd(rootfs: &Path, cwd: &str, uid: u32, gid: u32) -> Result<(), Error> {
    let rel = rootpath::resolve_relative(rootfs, Path::new(cwd))
        .map_err(|e| Error::io("resolve working directory in", rootfs, e))?;
    let mut path = rootfs.to_path_buf();
    for c in rel.components() {
        path.push(c);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => continue,
            Err(e) if rootpath::missing(&e) => {}
            Err(e) => return Err(Error::io("inspect working directory", &path, e)),
        }
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&path)
            .map_err(|e| Error::io("create working directory", &path, e))?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .map_err(|e| Error::io("change owner of", &path, e))?;
    }
    Ok(())
}
