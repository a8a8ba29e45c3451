//! The samples, their medians, the table printed at the end and the JSON file of raw samples.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Serialize;

/// The three build scenarios of each workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// A build with empty caches.
    Cold,
    /// The same build again, nothing changed.
    NoOp,
    /// The build again after one context file changed.
    OneFile,
}

impl Scenario {
    /// The scenarios in the order each round runs them.
    pub const ALL: [Scenario; 3] = [Scenario::Cold, Scenario::NoOp, Scenario::OneFile];

    /// The name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::Cold => "cold",
            Scenario::NoOp => "no-op",
            Scenario::OneFile => "one-file",
        }
    }

    /// Issue 4's target for kiln's time over BuildKit's.
    pub fn target(self) -> f64 {
        match self {
            Scenario::NoOp => 0.5,
            Scenario::Cold | Scenario::OneFile => 1.0,
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
    /// Peak resident memory in KiB (kiln only).
    pub max_rss_kib: Option<u64>,
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
    buildkit: f64,
    max_rss_kib: Option<u64>,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.kiln / self.buildkit
    }

    fn met(&self) -> bool {
        self.ratio() <= self.scenario.target()
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
            let (Some(k), Some(b)) = (secs(&kiln), secs(&of(Builder::BuildKit))) else {
                continue;
            };
            rows.push(Row {
                workload,
                scenario,
                kiln: k,
                buildkit: b,
                max_rss_kib: kiln.iter().filter_map(|s| s.max_rss_kib).max(),
            });
        }
    }
    rows
}

/// Writes the table of medians, ratios and targets, then a summary line.
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
    for row in &rows {
        let mark = if row.met() { "ok" } else { "MISSED" };
        if !row.met() {
            missed.push(format!("{} {}", row.workload, row.scenario.label()));
        }
        writeln!(
            out,
            "{:<10} {:<9} {:>9.2} {:>10.2} {:>7.2} {:>9}  {:>9} MiB",
            row.workload,
            row.scenario.label(),
            row.kiln,
            row.buildkit,
            row.ratio(),
            format!("≤{:.1} {mark}", row.scenario.target()),
            row.max_rss_kib
                .map_or_else(|| "?".to_string(), |k| format!("{:.0}", k as f64 / 1024.0)),
        )?;
    }
    writeln!(out)?;
    if missed.is_empty() {
        writeln!(out, "All {} figures meet their targets.", rows.len())
    } else {
        writeln!(
            out,
            "{} of {} figures miss their target: {}.",
            missed.len(),
            rows.len(),
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
