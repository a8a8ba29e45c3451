//! `kiln-bench`: builds four generated workloads with kiln's embedded builder and with the
//! Docker engine's BuildKit, alternating between the two, and prints for each figure the
//! medians and the ratio kiln/BuildKit against the targets of issue 4; then exports and pushes
//! the image of a fifth workload, whose layer is about 400 MB, and compares the compression
//! throughput and memory with the engine's (issue 5).
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
    /// d-chain, e-export (or just a, b, c, d, e).
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
        let result = if workload.name == workload::EXPORT {
            bench_export(&builders, &workload, args.runs, &mut samples)
        } else {
            bench(&builders, &workload, args.runs, &mut samples)
        };
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
        for scenario in Scenario::BUILDS {
            if scenario == Scenario::OneFile {
                workload.change()?;
            }
            for builder in [Builder::Kiln, Builder::BuildKit] {
                let timed = match builder {
                    Builder::Kiln => builders.kiln_build(workload, run)?,
                    Builder::BuildKit => builders.docker_build(workload)?,
                };
                record(
                    samples,
                    Sample {
                        workload: workload.name,
                        scenario,
                        builder,
                        run,
                        seconds: timed.seconds,
                        max_rss_kib: timed.max_rss_kib,
                        layer_bytes: None,
                        blob_bytes: None,
                    },
                    runs,
                );
            }
        }
    }
    workload.restore()
}

/// Runs `runs` rounds of the export scenarios on the export workload: each round prepares its
/// own built results, untimed, then times kiln's OCI export, kiln's push and the engine's push
/// (see [`Builders::kiln_prepare_export`]).
fn bench_export(
    builders: &Builders,
    workload: &workload::Workload,
    runs: usize,
    samples: &mut Vec<Sample>,
) -> Result<()> {
    for run in 1..=runs {
        note(&format!(
            "{} run {run}/{runs}: preparing the built results",
            workload.name
        ));
        let oci_state = builders.export_state(workload, run, "oci");
        let push_state = builders.export_state(workload, run, "push");
        builders.kiln_prepare_export(workload, &oci_state)?;
        builders.kiln_prepare_export(workload, &push_state)?;
        builders.docker_prepare_export(workload)?;

        // gzip first: its layer, decompressed, gives the layer's size for every figure.
        let mut layer = 0;
        for (scenario, compression) in [
            (Scenario::OciExport, "gzip,compression-level=6"),
            (Scenario::OciZstd, "zstd,compression-level=3"),
            (Scenario::OciEstargz, "estargz,compression-level=6"),
        ] {
            let tarball = builders
                .scratch
                .join(format!("{}-{run}.oci.tar", workload.name));
            let timed = builders.kiln_export(
                workload,
                &oci_state,
                &format!(
                    "type=oci,dest={},compression={compression}",
                    tarball.display()
                ),
            )?;
            let (blob, gunzipped) =
                builders::largest_tar_member(&tarball, scenario == Scenario::OciExport)?;
            std::fs::remove_file(&tarball)
                .with_context(|| format!("remove {}", tarball.display()))?;
            layer = gunzipped.unwrap_or(layer);
            let sample = export_sample(scenario, Builder::Kiln, run, &timed, (layer, blob));
            record(samples, sample, runs);
        }

        let registry = kiln_testkit::TestRegistry::start().context("start a registry")?;
        let target = format!("{}/bench/{}:kiln-{run}", registry.addr(), workload.name);
        let timed = builders.kiln_export(
            workload,
            &push_state,
            &format!("type=image,name={target},push=true,compression=gzip,compression-level=6"),
        )?;
        let (path, blob) = builders::largest_file(&registry.storage_dir())?;
        let layer = builders::gunzipped_len(&path)?;
        let sample = export_sample(Scenario::Push, Builder::Kiln, run, &timed, (layer, blob));
        record(samples, sample, runs);
        drop(registry);

        let registry = kiln_testkit::TestRegistry::start().context("start a registry")?;
        let target = format!("{}/bench/{}:docker-{run}", registry.addr(), workload.name);
        let timed = builders.docker_push(workload, &target)?;
        let (path, blob) = builders::largest_file(&registry.storage_dir())?;
        let layer = builders::gunzipped_len(&path)?;
        let sample = export_sample(
            Scenario::Push,
            Builder::BuildKit,
            run,
            &timed,
            (layer, blob),
        );
        record(samples, sample, runs);
    }
    Ok(())
}

/// Prints one measurement and keeps it.
fn record(samples: &mut Vec<Sample>, sample: Sample, runs: usize) {
    let sizes = match (sample.layer_bytes, sample.blob_bytes) {
        (Some(layer), Some(blob)) => format!(
            ", layer {:.1} MB compressed to {:.1} MB",
            layer as f64 / 1e6,
            blob as f64 / 1e6
        ),
        _ => String::new(),
    };
    note(&format!(
        "{} {} run {}/{runs}: {} {:.2}s{sizes}{}",
        sample.workload,
        sample.scenario.label(),
        sample.run,
        sample.builder.label(),
        sample.seconds,
        sample
            .max_rss_kib
            .map(|k| format!(", max RSS {:.0} MiB", k as f64 / 1024.0))
            .unwrap_or_default()
    ));
    samples.push(sample);
}

/// A measured export of round `run` of the export workload.
fn export_sample(
    scenario: Scenario,
    builder: Builder,
    run: usize,
    timed: &builders::Timed,
    (layer_bytes, blob_bytes): (u64, u64),
) -> Sample {
    Sample {
        workload: workload::EXPORT,
        scenario,
        builder,
        run,
        seconds: timed.seconds,
        max_rss_kib: timed.max_rss_kib,
        layer_bytes: Some(layer_bytes),
        blob_bytes: Some(blob_bytes),
    }
}
