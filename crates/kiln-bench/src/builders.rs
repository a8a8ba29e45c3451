//! Running one build with each builder, and making each builder's cache cold.
//!
//! What each side does, so that the figures compare the same work:
//! - kiln: `kiln build --root STATE --progress quiet -f DOCKERFILE --build-arg BASE=… CONTEXT`,
//!   with no output: the result stays in kiln's cache. Cold means a new, empty state directory
//!   (no blobs, no snapshots, no cache index, no pulled base image).
//! - BuildKit: `DOCKER_BUILDKIT=1 docker build --network host -q -t kiln-bench/NAME -f … `,
//!   which exports the result as an image into the engine (uncompressed layers in the engine's
//!   layer store, its closest equivalent of "no output"). Cold means the tag and every dangling
//!   image removed, then `docker builder prune -af`, which drops the whole build cache,
//!   including the base image BuildKit pulled and the context it transferred.
//! - Both: the file system is synced before each timed build (see [`settle`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::workload::Workload;

/// One timed build.
pub struct Timed {
    /// Wall-clock seconds the build command took.
    pub seconds: f64,
    /// Peak resident memory of the build command in KiB, when it was measured.
    pub max_rss_kib: Option<u64>,
}

/// How to run both builders.
pub struct Builders {
    /// The `kiln` binary.
    pub kiln: PathBuf,
    /// The Docker CLI with BuildKit support (Debian's `/usr/bin/docker`).
    pub docker: PathBuf,
    /// GNU time, which reports the peak memory of the kiln process.
    pub time: PathBuf,
    /// The base image reference passed as `BASE`.
    pub base: String,
    /// Where the kiln state directories and scratch files go.
    pub scratch: PathBuf,
}

fn check(what: &str, out: &Output) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Builders {
    /// The state directory kiln uses for round `run` of `workload`.
    ///
    /// Each round gets a new, empty one, and all are removed only when every workload is done
    /// ([`Builders::remove_kiln_states`]). ext4 without a journal (the root file system of
    /// the machine this was measured on) skips inodes freed in the last 60 seconds, 360 while
    /// their inode table block is unwritten, when it allocates new ones
    /// (`recently_deleted`): removing 60,000 files just before a cold build made the build's
    /// file creation crawl (a-context took 10 to 26 s instead of 3), a cost of the
    /// benchmark's own clean-up that no user pays. For the same reason, a second benchmark
    /// started within six minutes of the end of the first measures kiln slower.
    pub fn kiln_state(&self, workload: &Workload, run: usize) -> PathBuf {
        self.scratch.join(format!("state-{}-{run}", workload.name))
    }

    /// Makes kiln cold for round `run` of `workload`: its state directory must not exist yet
    /// (one left by an interrupted earlier benchmark is removed).
    pub fn kiln_cold(&self, workload: &Workload, run: usize) -> Result<()> {
        remove_dir(&self.kiln_state(workload, run))
    }

    /// One `kiln build` of `workload` in round `run`, timed, with its peak memory.
    pub fn kiln_build(&self, workload: &Workload, run: usize) -> Result<Timed> {
        self.kiln_timed(workload, &self.kiln_state(workload, run), &[])
            .with_context(|| format!("kiln build of {}", workload.name))
    }

    /// One timed `kiln build --root STATE --progress quiet [EXTRA…] -f DOCKERFILE --build-arg
    /// BASE=… CONTEXT` of `workload`, with its peak memory (from GNU time).
    fn kiln_timed(&self, workload: &Workload, state: &Path, extra: &[&str]) -> Result<Timed> {
        let rss_file = self.scratch.join("kiln-rss.txt");
        let mut command = Command::new(&self.time);
        command
            .args(["-f", "%M", "-o"])
            .arg(&rss_file)
            .arg(&self.kiln)
            .arg("build")
            .arg("--root")
            .arg(state)
            .args(["--progress", "quiet"])
            .args(extra)
            .arg("-f")
            .arg(&workload.dockerfile)
            .arg("--build-arg")
            .arg(format!("BASE={}", self.base))
            .arg(&workload.context);
        let (seconds, out) = timed(&mut command)?;
        check("kiln build", &out)?;
        let rss = std::fs::read_to_string(&rss_file)
            .with_context(|| format!("read {}", rss_file.display()))?;
        // GNU time writes a "Command exited…" line first when the command fails; the last line
        // is the figure.
        let max_rss_kib = rss.lines().last().and_then(|l| l.trim().parse().ok());
        Ok(Timed {
            seconds,
            max_rss_kib,
        })
    }

    fn docker(&self) -> Command {
        let mut command = Command::new(&self.docker);
        command.env("DOCKER_BUILDKIT", "1");
        command
    }

    fn tag(workload: &Workload) -> String {
        format!("kiln-bench/{}", workload.name)
    }

    /// Makes the Docker engine's BuildKit cold: removes the workload's image and all dangling
    /// images, then the whole build cache.
    pub fn docker_cold(&self, workload: &Workload) -> Result<()> {
        let out = self
            .docker()
            .args(["image", "rm", "-f", &Self::tag(workload)])
            .output()
            .context("run docker image rm")?;
        // A missing image is fine: that is the state we want.
        if !out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("No such image")
        {
            check("docker image rm", &out)?;
        }
        let out = self
            .docker()
            .args(["image", "prune", "-f"])
            .output()
            .context("run docker image prune")?;
        check("docker image prune", &out)?;
        let out = self
            .docker()
            .args(["builder", "prune", "-af"])
            .output()
            .context("run docker builder prune")?;
        check("docker builder prune", &out)
    }

    /// One `DOCKER_BUILDKIT=1 docker build` of `workload`, timed.
    pub fn docker_build(&self, workload: &Workload) -> Result<Timed> {
        let mut command = self.docker();
        command
            .args([
                "build",
                "--network",
                "host",
                "-q",
                "-t",
                &Self::tag(workload),
                "-f",
            ])
            .arg(&workload.dockerfile)
            .arg("--build-arg")
            .arg(format!("BASE={}", self.base))
            .arg(&workload.context);
        let (seconds, out) = timed(&mut command)?;
        check(&format!("docker build of {}", workload.name), &out)?;
        Ok(Timed {
            seconds,
            max_rss_kib: None,
        })
    }

    /// Removes kiln's state directories of every round of `workload`.
    pub fn remove_kiln_states(&self, workload: &Workload, runs: usize) -> Result<()> {
        for run in 1..=runs {
            self.kiln_cold(workload, run)?;
            for purpose in ["oci", "push"] {
                remove_dir(&self.export_state(workload, run, purpose))?;
            }
        }
        Ok(())
    }
}

fn timed(command: &mut Command) -> Result<(f64, Output)> {
    command.stdin(Stdio::null());
    settle()?;
    let start = Instant::now();
    let out = command
        .output()
        .with_context(|| format!("run {command:?}"))?;
    Ok((start.elapsed().as_secs_f64(), out))
}

/// Writes back everything the previous builds left unwritten, before a timed build starts.
///
/// Both builders unmount overlay mounts during a build, and the kernel flushes the whole file
/// system on each such unmount (`syncfs`): without this, a build pays for the hundreds of
/// megabytes the *other* builder wrote just before it (a-context doubled or halved either
/// builder's time depending on the order). Each build is timed from a clean start instead;
/// its own writes are still in its figure.
fn settle() -> Result<()> {
    let status = Command::new("sync")
        .status()
        .context("run sync before a timed build")?;
    if !status.success() {
        bail!("sync failed ({status})");
    }
    Ok(())
}

fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", path.display())),
    }
}

/// The image exports of the export workload (issue 5), on both builders.
///
/// Each round prepares, untimed, two kiln state directories holding the built result with no
/// image exported yet (`-o type=cacheonly`), and the engine's image (`docker build -t`), then
/// measures, each from a clean start ([`settle`]):
/// - kiln `-o type=oci,dest=FILE,compression=gzip,compression-level=6` on the first state: the
///   layer is diffed, compressed and written once, digests computed while compressing;
/// - kiln `--push` (gzip level 6) on the second state to a new, empty registry;
/// - `docker push` of the engine's image to another new, empty registry. The engine keeps no
///   compressed layers: each push to a registry that has not seen the layer compresses it
///   again with Go's `compress/gzip` at its default level (6), which is also what BuildKit
///   uses for gzip layers. A new registry per push (a new port, so a new registry name) also
///   keeps the engine from mounting the layer from an earlier push instead.
impl Builders {
    /// The state directory of round `run` of the export workload, for `purpose` (`oci` or
    /// `push`).
    pub fn export_state(&self, workload: &Workload, run: usize, purpose: &str) -> PathBuf {
        self.scratch
            .join(format!("state-{}-{run}-{purpose}", workload.name))
    }

    /// Builds the export workload into a new state directory, exporting nothing (untimed).
    pub fn kiln_prepare_export(&self, workload: &Workload, state: &Path) -> Result<()> {
        remove_dir(state)?;
        let out = Command::new(&self.kiln)
            .arg("build")
            .arg("--root")
            .arg(state)
            .args(["--progress", "quiet", "-o", "type=cacheonly", "-f"])
            .arg(&workload.dockerfile)
            .arg("--build-arg")
            .arg(format!("BASE={}", self.base))
            .arg(&workload.context)
            .stdin(Stdio::null())
            .output()
            .context("run kiln build")?;
        check(&format!("kiln build of {}", workload.name), &out)
    }

    /// One timed `kiln build` of `workload` on `state` with `output`, with its peak memory.
    pub fn kiln_export(&self, workload: &Workload, state: &Path, output: &str) -> Result<Timed> {
        self.kiln_timed(workload, state, &["-o", output])
            .with_context(|| format!("kiln export of {} ({output})", workload.name))
    }

    /// Builds the engine's image of the export workload (untimed; the build cache is pruned
    /// first, so that each round's image is built as the previous one was).
    pub fn docker_prepare_export(&self, workload: &Workload) -> Result<()> {
        self.docker_cold(workload)?;
        let out = self
            .docker()
            .args(["build", "--network", "host", "-q", "-t"])
            .arg(Self::tag(workload))
            .arg("-f")
            .arg(&workload.dockerfile)
            .arg("--build-arg")
            .arg(format!("BASE={}", self.base))
            .arg(&workload.context)
            .stdin(Stdio::null())
            .output()
            .context("run docker build")?;
        check(&format!("docker build of {}", workload.name), &out)
    }

    /// One timed `docker push` of the engine's image of `workload` as `target`, with the
    /// engine's peak memory while it pushed (sampled every 20 ms).
    pub fn docker_push(&self, workload: &Workload, target: &str) -> Result<Timed> {
        let out = self
            .docker()
            .args(["tag", &Self::tag(workload), target])
            .output()
            .context("run docker tag")?;
        check("docker tag", &out)?;
        let engine = engine_pid()?;
        let mut command = self.docker();
        command.args(["push", "--quiet", target]);
        let sampler = RssSampler::start(engine);
        let result = timed(&mut command);
        let peak = sampler.stop();
        let (seconds, out) = result?;
        check(&format!("docker push {target}"), &out)?;
        let out = self
            .docker()
            .args(["image", "rm", target])
            .output()
            .context("run docker image rm")?;
        check("docker image rm", &out)?;
        Ok(Timed {
            seconds,
            max_rss_kib: peak,
        })
    }
}

/// The process id of the Docker engine (`dockerd`).
fn engine_pid() -> Result<u32> {
    let out = Command::new("pidof")
        .arg("dockerd")
        .output()
        .context("run pidof dockerd")?;
    check("pidof dockerd", &out)?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|pid| pid.parse().ok())
        .context("pidof dockerd printed no process id")
}

/// The resident memory of a process in KiB (`VmRSS` of `/proc/PID/status`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Samples another process's resident memory on a thread until stopped, keeping the peak.
struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<u64>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = None;
            loop {
                if let Some(kib) = rss_kib(pid) {
                    peak = peak.max(Some(kib));
                }
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return peak;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        RssSampler { stop, thread }
    }

    fn stop(self) -> Option<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

/// The largest file under `dir` (recursively) and its size: the image's big layer, in an OCI
/// layout or a registry's storage.
pub fn largest_file(dir: &Path) -> Result<(PathBuf, u64)> {
    let mut best: Option<(PathBuf, u64)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("read {}", d.display()))? {
            let entry = entry.with_context(|| format!("read {}", d.display()))?;
            let meta = entry
                .metadata()
                .with_context(|| format!("stat {}", entry.path().display()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if best.as_ref().is_none_or(|(_, size)| meta.len() > *size) {
                best = Some((entry.path(), meta.len()));
            }
        }
    }
    best.with_context(|| format!("no file under {}", dir.display()))
}

/// The size of a gzip file's contents, decompressed as a stream.
pub fn gunzipped_len(path: &Path) -> Result<u64> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut decoder = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    std::io::copy(&mut decoder, &mut std::io::sink())
        .with_context(|| format!("decompress {}", path.display()))
}

/// The largest member of a tar file (an OCI layout tarball's big layer): its size, and with
/// `gunzip` the size of its contents once decompressed with gzip.
pub fn largest_tar_member(path: &Path, gunzip: bool) -> Result<(u64, Option<u64>)> {
    let open = || -> Result<tar::Archive<std::io::BufReader<std::fs::File>>> {
        let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
        Ok(tar::Archive::new(std::io::BufReader::new(file)))
    };
    let mut best: Option<(PathBuf, u64)> = None;
    for entry in open()?
        .entries()
        .with_context(|| format!("read {}", path.display()))?
    {
        let entry = entry.with_context(|| format!("read {}", path.display()))?;
        let size = entry.size();
        if best.as_ref().is_none_or(|(_, s)| size > *s) {
            let name = entry
                .path()
                .with_context(|| format!("read {}", path.display()))?
                .into_owned();
            best = Some((name, size));
        }
    }
    let (name, size) = best.with_context(|| format!("{} is empty", path.display()))?;
    if !gunzip {
        return Ok((size, None));
    }
    for entry in open()?
        .entries()
        .with_context(|| format!("read {}", path.display()))?
    {
        let entry = entry.with_context(|| format!("read {}", path.display()))?;
        if entry.path().ok().as_deref() == Some(name.as_path()) {
            let mut decoder = flate2::read::GzDecoder::new(entry);
            let len = std::io::copy(&mut decoder, &mut std::io::sink())
                .with_context(|| format!("decompress {} in {}", name.display(), path.display()))?;
            return Ok((size, Some(len)));
        }
    }
    bail!("{} vanished from {}", name.display(), path.display())
}
