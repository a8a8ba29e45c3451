//! The samples, their medians, the table printed at the end and the JSON file of raw samples.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Serialize;

/// The scenarios: three builds of each build workload, two image exports of the export
/// workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// A build with empty caches.
    Cold,
    /// The same build again, nothing changed.
    NoOp,
    /// The build again after one context file changed.
    OneFile,
    /// kiln only: the built (cached) result exported with `-o type=oci`, gzip level 6: the
    /// layer diffed, compressed and written once. Docker 20.10's BuildKit has no `oci`
    /// exporter, so this figure has no counterpart.
    OciExport,
    /// kiln only: the same export with zstd, level 3 (BuildKit's default level).
    OciZstd,
    /// kiln only: the same export as eStargz, gzip level 6.
    OciEstargz,
    /// The built image pushed, gzip level 6, to an empty registry on loopback: `kiln build
    /// --push` on a cached result whose layer was never compressed, against `docker push` of
    /// the engine's image (which compresses the layer on every push to a new registry).
    Push,
}

impl Scenario {
    /// The scenarios of a build workload, in the order each round runs them.
    pub const BUILDS: [Scenario; 3] = [Scenario::Cold, Scenario::NoOp, Scenario::OneFile];

    /// Every scenario, in the table's order.
    pub const ALL: [Scenario; 7] = [
        Scenario::Cold,
        Scenario::NoOp,
        Scenario::OneFile,
        Scenario::OciExport,
        Scenario::OciZstd,
        Scenario::OciEstargz,
        Scenario::Push,
    ];

    /// The name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::Cold => "cold",
            Scenario::NoOp => "no-op",
            Scenario::OneFile => "one-file",
            Scenario::OciExport => "oci",
            Scenario::OciZstd => "oci-zstd",
            Scenario::OciEstargz => "oci-estgz",
            Scenario::Push => "push",
        }
    }

    /// The target for kiln's time over BuildKit's (issue 4 for builds; issue 5 for the push:
    /// at least 1.5 times the throughput), when the scenario has one.
    pub fn target(self) -> Option<f64> {
        match self {
            Scenario::NoOp => Some(0.5),
            Scenario::Cold | Scenario::OneFile => Some(1.0),
            Scenario::Push => Some(1.0 / 1.5),
            Scenario::OciExport | Scenario::OciZstd | Scenario::OciEstargz => None,
        }
    }
}

/// The two builders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    /// kiln's embedded builder.
    Kiln,
    /// The Docker engine's BuildKit.
    BuildKit,
}

impl Builder {
    /// The name in the progress lines.
    pub fn label(self) -> &'static str {
        match self {
            Builder::Kiln => "kiln",
            Builder::BuildKit => "BuildKit",
        }
    }
}

/// One measured build.
#[derive(Serialize)]
pub struct Sample {
    /// The workload's name.
    pub workload: &'static str,
    /// The scenario.
    pub scenario: Scenario,
    /// The builder.
    pub builder: Builder,
    /// The round, from 1.
    pub run: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Peak resident memory in KiB: kiln's process; for a BuildKit push, the engine's
    /// (`dockerd`, sampled while it pushed, its resting memory included).
    pub max_rss_kib: Option<u64>,
    /// For exports: the bytes of the layer before compression (the tar stream's size).
    pub layer_bytes: Option<u64>,
    /// For exports: the size of the compressed layer the builder wrote.
    pub blob_bytes: Option<u64>,
}

/// What the JSON file says of each generated workload.
#[derive(Serialize)]
pub struct WorkloadInfo {
    /// The workload's name.
    pub name: &'static str,
    /// Files in its context.
    pub files: u64,
    /// Bytes in its context.
    pub bytes: u64,
    /// SHA-256 of its generated inputs.
    pub fingerprint: String,
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let upper = *sorted.get(n / 2)?;
    if n % 2 == 1 {
        Some(upper)
    } else {
        Some((sorted.get(n / 2 - 1)? + upper) / 2.0)
    }
}

/// One row of the table.
struct Row {
    workload: &'static str,
    scenario: Scenario,
    kiln: f64,
    buildkit: Option<f64>,
    max_rss_kib: Option<u64>,
    engine_rss_kib: Option<u64>,
    layer_bytes: Option<u64>,
    kiln_blob: Option<u64>,
    buildkit_blob: Option<u64>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.buildkit.map(|b| self.kiln / b)
    }

    /// Whether the target is met; `None` for a figure without target.
    fn met(&self) -> Option<bool> {
        Some(self.ratio()? <= self.scenario.target()?)
    }
}

fn rows(samples: &[Sample]) -> Vec<Row> {
    let mut workloads: Vec<&'static str> = Vec::new();
    for s in samples {
        if !workloads.contains(&s.workload) {
            workloads.push(s.workload);
        }
    }
    let mut rows = Vec::new();
    for workload in workloads {
        for scenario in Scenario::ALL {
            let of = |builder: Builder| -> Vec<&Sample> {
                samples
                    .iter()
                    .filter(|s| {
                        s.workload == workload && s.scenario == scenario && s.builder == builder
                    })
                    .collect()
            };
            let secs = |v: &[&Sample]| median(&v.iter().map(|s| s.seconds).collect::<Vec<_>>());
            let kiln = of(Builder::Kiln);
            let buildkit = of(Builder::BuildKit);
            let Some(k) = secs(&kiln) else {
                continue;
            };
            let b = secs(&buildkit);
            if b.is_none() && scenario.target().is_some() {
                continue;
            }
            rows.push(Row {
                workload,
                scenario,
                kiln: k,
                buildkit: b,
                max_rss_kib: kiln.iter().filter_map(|s| s.max_rss_kib).max(),
                engine_rss_kib: buildkit.iter().filter_map(|s| s.max_rss_kib).max(),
                layer_bytes: kiln.iter().find_map(|s| s.layer_bytes),
                kiln_blob: kiln.iter().find_map(|s| s.blob_bytes),
                buildkit_blob: buildkit.iter().find_map(|s| s.blob_bytes),
            });
        }
    }
    rows
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "?".to_string(), |k| format!("{:.0}", k as f64 / 1024.0))
}

/// Megabytes (10^6 bytes) per second.
fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

/// Writes the table of medians, ratios and targets, the export throughputs, then a summary
/// line.
pub fn table(out: &mut impl Write, samples: &[Sample], runs: usize) -> std::io::Result<()> {
    let rows = rows(samples);
    writeln!(
        out,
        "\nkiln vs the Docker engine's BuildKit: medians of {runs} run(s) each, wall-clock seconds\n"
    )?;
    writeln!(
        out,
        "{:<10} {:<9} {:>9} {:>10} {:>7} {:>9}  {:>13}",
        "workload", "scenario", "kiln s", "BuildKit s", "ratio", "target", "kiln max RSS"
    )?;
    writeln!(out, "{}", "-".repeat(75))?;
    let mut missed = Vec::new();
    let mut with_target = 0;
    for row in &rows {
        let target = match (row.scenario.target(), row.met()) {
            (Some(t), Some(met)) => {
                with_target += 1;
                if !met {
                    missed.push(format!("{} {}", row.workload, row.scenario.label()));
                }
                format!("≤{t:.2} {}", if met { "ok" } else { "MISSED" })
                    .replace(".00 ", ".0 ")
                    .replace(".50 ", ".5 ")
            }
            _ => "-".to_string(),
        };
        writeln!(
            out,
            "{:<10} {:<9} {:>9.2} {:>10} {:>7} {:>9}  {:>9} MiB",
            row.workload,
            row.scenario.label(),
            row.kiln,
            row.buildkit
                .map_or_else(|| "-".to_string(), |b| format!("{b:.2}")),
            row.ratio()
                .map_or_else(|| "-".to_string(), |r| format!("{r:.2}")),
            target,
            mib(row.max_rss_kib),
        )?;
    }
    let exports: Vec<&Row> = rows.iter().filter(|r| r.layer_bytes.is_some()).collect();
    if !exports.is_empty() {
        writeln!(
            out,
            "\nImage export (throughput = layer bytes before compression / wall time; gzip level 6 unless the scenario names another compression):"
        )?;
    }
    for row in exports {
        let Some(layer) = row.layer_bytes else {
            continue;
        };
        let blob = |b: Option<u64>| {
            b.map_or_else(String::new, |b| {
                format!(", layer compressed to {:.1} MB", b as f64 / 1e6)
            })
        };
        writeln!(
            out,
            "  {} {}: layer {:.1} MB; kiln {:.0} MB/s{}, peak memory {} MiB",
            row.workload,
            row.scenario.label(),
            layer as f64 / 1e6,
            mb_per_s(layer, row.kiln),
            blob(row.kiln_blob),
            mib(row.max_rss_kib),
        )?;
        if let Some(b) = row.buildkit {
            writeln!(
                out,
                "  {} {}: docker push {:.0} MB/s{}, dockerd peak memory {} MiB (resting memory included); kiln's throughput {:.2}x",
                row.workload,
                row.scenario.label(),
                mb_per_s(layer, b),
                blob(row.buildkit_blob),
                mib(row.engine_rss_kib),
                b / row.kiln,
            )?;
        }
    }
    writeln!(out)?;
    if missed.is_empty() {
        writeln!(out, "All {with_target} figures with a target meet it.")
    } else {
        writeln!(
            out,
            "{} of {with_target} figures miss their target: {}.",
            missed.len(),
            missed.join(", ")
        )
    }
}

/// Writes every raw sample, with the workloads' descriptions and the medians, to `path`.
pub fn json(
    path: &Path,
    workloads: &[WorkloadInfo],
    samples: &[Sample],
    runs: usize,
) -> Result<()> {
    let medians: Vec<_> = rows(samples)
        .iter()
        .map(|r| {
            serde_json::json!({
                "workload": r.workload,
                "scenario": r.scenario,
                "kiln_median_seconds": r.kiln,
                "buildkit_median_seconds": r.buildkit,
                "ratio": r.ratio(),
                "target": r.scenario.target(),
                "met": r.met(),
                "kiln_max_rss_kib": r.max_rss_kib,
                "engine_max_rss_kib": r.engine_rss_kib,
                "layer_bytes": r.layer_bytes,
                "kiln_blob_bytes": r.kiln_blob,
                "buildkit_blob_bytes": r.buildkit_blob,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "runs": runs,
        "workloads": workloads,
        "medians": medians,
        "samples": samples,
    });
    let text = serde_json::to_string_pretty(&doc).context("encode the samples")?;
    std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians() {
        let check = |values: &[f64], expected: Option<f64>| {
            assert_eq!(median(values), expected, "median of {values:?}");
        };
        check(&[], None);
        check(&[3.0], Some(3.0));
        check(&[5.0, 1.0, 3.0], Some(3.0));
        check(&[4.0, 1.0, 3.0, 2.0], Some(2.5));
    }
}
