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
        let rss_file = self.scratch.join("kiln-rss.txt");
        let mut command = Command::new(&self.time);
        command
            .args(["-f", "%M", "-o"])
            .arg(&rss_file)
            .arg(&self.kiln)
            .arg("build")
            .arg("--root")
            .arg(self.kiln_state(workload, run))
            .args(["--progress", "quiet", "-f"])
            .arg(&workload.dockerfile)
            .arg("--build-arg")
            .arg(format!("BASE={}", self.base))
            .arg(&workload.context);
        let (seconds, out) = timed(&mut command)?;
        check(&format!("kiln build of {}", workload.name), &out)?;
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
