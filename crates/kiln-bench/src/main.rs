//! `kiln-bench`: builds four generated workloads with kiln's embedded builder and with the
//! Docker engine's BuildKit, alternating between the two, and prints for each figure the
//! medians and the ratio kiln/BuildKit against the targets of issue 4.
//!
//! It knows nothing of kiln's internals: it runs the `kiln` and `docker` binaries as a user
//! would, so the figures include everything a user waits for (process start, context
//! transfer, progress). The registry holding the base image and the Docker engine are set up
//! by `scripts/bench.sh`; this program only needs the base image's reference.
//!
//! Every figure alternates the builders (kiln, BuildKit, kiln, BuildKit…), so that drift on
//! the machine (page cache, other load, thermal state) touches both alike.

mod builders;
mod report;
mod rng;
mod workload;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Parser;

use crate::builders::Builders;
use crate::report::{Builder, Sample, Scenario};

/// Benchmark kiln against the Docker engine's BuildKit.
#[derive(Parser)]
#[command(name = "kiln-bench", version)]
struct Args {
    /// The base image every workload builds FROM (a busybox image in a registry).
    #[arg(long)]
    base: String,
    /// Measurements per figure and builder.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The workloads to run (default: all), comma-separated: a-context, b-stages, c-bigrun,
    /// d-chain (or just a, b, c, d).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where the workloads and kiln's state directories go (not tmpfs: overlayfs must work).
    #[arg(long, default_value = "/var/tmp/kiln-bench")]
    work: PathBuf,
    /// The kiln binary (default: `kiln` next to this program).
    #[arg(long)]
    kiln: Option<PathBuf>,
    /// The Docker CLI with BuildKit support.
    #[arg(long, default_value = "/usr/bin/docker")]
    docker: PathBuf,
    /// GNU time, for the peak memory of kiln.
    #[arg(long, default_value = "/usr/bin/time")]
    time: PathBuf,
    /// Also write every raw sample to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        let _ = writeln!(std::io::stderr(), "kiln-bench: {e:#}");
        std::process::exit(1);
    }
}

/// Progress lines on stderr, so stdout holds only the report.
fn note(message: &str) {
    let _ = writeln!(std::io::stderr(), "kiln-bench: {message}");
}

fn run(args: Args) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let kiln = match args.kiln {
        Some(path) => path,
        None => std::env::current_exe()
            .context("find kiln-bench's own path")?
            .with_file_name("kiln"),
    };
    for tool in [&kiln, &args.docker, &args.time] {
        if !tool.is_file() {
            bail!("{} is missing", tool.display());
        }
    }
    let names = select(&args.only)?;
    let scratch = args.work.join("scratch");
    std::fs::create_dir_all(&scratch).with_context(|| format!("create {}", scratch.display()))?;
    let builders = Builders {
        kiln,
        docker: args.docker,
        time: args.time,
        base: args.base,
        scratch,
    };

    let mut samples = Vec::new();
    let mut generated = Vec::new();
    let mut outcome = Ok(());
    let mut benched = Vec::new();
    for name in names {
        note(&format!("generating workload {name}"));
        let workload = workload::generate(name, &args.work.join("workloads"))?;
        note(&format!(
            "{name}: {} files, {:.1} MB, fingerprint {}",
            workload.files,
            workload.bytes as f64 / 1e6,
            workload
                .fingerprint
                .get(..16)
                .unwrap_or(&workload.fingerprint)
        ));
        let result = bench(&builders, &workload, args.runs, &mut samples);
        // Leave the engine as it was, even after a failure.
        let cleaned = builders.docker_cold(&workload);
        generated.push(report::WorkloadInfo {
            name: workload.name,
            files: workload.files,
            bytes: workload.bytes,
            fingerprint: workload.fingerprint.clone(),
        });
        benched.push(workload);
        if let Err(e) = result.and(cleaned) {
            outcome = Err(e);
            break;
        }
    }
    // kiln's state directories go only now, after every measurement (see
    // `Builders::kiln_state`), and even after a failure.
    for workload in &benched {
        builders.remove_kiln_states(workload, args.runs)?;
    }
    outcome?;

    let mut stdout = std::io::stdout().lock();
    report::table(&mut stdout, &samples, args.runs).context("write the report")?;
    if let Some(path) = &args.json {
        report::json(path, &generated, &samples, args.runs)?;
        note(&format!("raw samples written to {}", path.display()));
    }
    Ok(())
}

/// The workload names `only` selects, in their fixed order.
fn select(only: &[String]) -> Result<Vec<&'static str>> {
    if only.is_empty() {
        return Ok(workload::NAMES.to_vec());
    }
    let mut names = Vec::new();
    for wanted in only {
        let found = workload::NAMES
            .iter()
            .find(|n| *n == wanted || n.split('-').next() == Some(wanted.as_str()))
            .with_context(|| {
                format!(
                    "unknown workload {wanted:?} (known: {})",
                    workload::NAMES.join(", ")
                )
            })?;
        if !names.contains(found) {
            names.push(*found);
        }
    }
    names.sort_by_key(|n| workload::NAMES.iter().position(|m| m == n));
    Ok(names)
}

/// Runs `runs` rounds of the three scenarios on `workload`, alternating the builders inside each
/// scenario. Each round starts from empty caches, so every round measures the same work.
fn bench(
    builders: &Builders,
    workload: &workload::Workload,
    runs: usize,
    samples: &mut Vec<Sample>,
) -> Result<()> {
    for run in 1..=runs {
        workload.restore()?;
        builders.kiln_cold(workload, run)?;
        builders.docker_cold(workload)?;
        for scenario in Scenario::ALL {
            if scenario == Scenario::OneFile {
                workload.change()?;
            }
            for builder in [Builder::Kiln, Builder::BuildKit] {
                let timed = match builder {
                    Builder::Kiln => builders.kiln_build(workload, run)?,
                    Builder::BuildKit => builders.docker_build(workload)?,
                };
                note(&format!(
                    "{} {} run {run}/{runs}: {} {:.2}s{}",
                    workload.name,
                    scenario.label(),
                    builder.label(),
                    timed.seconds,
                    timed
                        .max_rss_kib
                        .map(|k| format!(", max RSS {:.0} MiB", k as f64 / 1024.0))
                        .unwrap_or_default()
                ));
                samples.push(Sample {
                    workload: workload.name,
                    scenario,
                    builder,
                    run,
                    seconds: timed.seconds,
                    max_rss_kib: timed.max_rss_kib,
                });
            }
        }
    }
    workload.restore()
}
