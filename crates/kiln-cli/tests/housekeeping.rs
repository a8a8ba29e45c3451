//! `kiln du`, `kiln prune` and the garbage collection after builds, on real builds (a loopback
//! registry with busybox, RUN steps under runc).

mod common;

use common::{busybox, kiln, kiln_build, state_dir};

use std::path::Path;
use std::process::Output;

use kiln_worker::{Filter, RecordType, Storage, UsageRecord};

const DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE}
COPY data.txt /data.txt
RUN cp /data.txt /copy.txt && head -c 200000 /dev/zero > /big
"#;

fn context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("context");
    std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE).expect("Dockerfile");
    std::fs::write(dir.path().join("data.txt"), "x".repeat(50_000)).expect("data");
    dir
}

fn build(state: &Path, context: &Path, base: &str, env: &[(&str, &str)]) -> String {
    let out = kiln_build(state)
        .args(["--progress", "plain", "--build-arg"])
        .arg(format!("BASE={base}"))
        .arg(context)
        .env("KILN_GC", "0")
        .envs(env.iter().copied())
        .output()
        .expect("run kiln build");
    success(&out, "kiln build");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn success(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(state: &Path, args: &[&str], stdin: &str) -> String {
    let out = kiln()
        .args(args)
        .arg("--root")
        .arg(state)
        .write_stdin(stdin)
        .output()
        .expect("run kiln");
    success(&out, &args.join(" "))
}

/// The records of the state directory, with exact sizes.
fn records(state: &Path) -> Vec<UsageRecord> {
    let _lock = kiln_worker::StateLock::acquire(state, |_| {}).expect("lock");
    Storage::open(state)
        .expect("storage")
        .disk_usage(&Filter::all(), &[])
        .expect("du")
}

fn total(records: &[UsageRecord]) -> u64 {
    records.iter().map(|r| r.size).sum()
}

fn find<'a>(records: &'a [UsageRecord], description: &str) -> Option<&'a UsageRecord> {
    records.iter().find(|r| r.description.contains(description))
}

/// Whether any step of a plain progress log was a cache hit.
fn any_cached(log: &str) -> bool {
    log.lines().any(|l| {
        l.strip_prefix('#')
            .and_then(|l| l.split_once(' '))
            .is_some_and(|(_, rest)| rest.starts_with("CACHED"))
    })
}

#[test]
fn du_lists_records_and_prune_removes_them() {
    let (_registry, base) = busybox();
    let state = state_dir();
    let ctx = context();
    build(state.path(), ctx.path(), &base, &[]);
    assert!(any_cached(&build(state.path(), ctx.path(), &base, &[])));

    // The records: the image layer, the context, the COPY and the RUN results, all reclaimable.
    let recs = records(state.path());
    let mut failures = Vec::new();
    for (what, ty) in [
        ("FROM", RecordType::Regular),
        ("load build context", RecordType::LocalSource),
        ("COPY data.txt", RecordType::Regular),
        ("RUN cp", RecordType::Regular),
    ] {
        match find(&recs, what) {
            Some(r) if r.size > 0 && r.record_type == ty && !r.in_use => {}
            other => failures.push(format!("{what}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}\nall records: {recs:#?}");
    let run_record = find(&recs, "RUN cp").expect("RUN record");
    assert!(run_record.size >= 200_000, "{run_record:?}");
    assert!(!run_record.parents.is_empty(), "{run_record:?}");

    // The table and the totals, as buildx prints them.
    let table = run(state.path(), &["du"], "");
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines
        .first()
        .map(|l| l.split('\t').filter(|c| !c.is_empty()).collect())
        .unwrap_or_default();
    assert_eq!(
        header,
        ["ID", "RECLAIMABLE", "SIZE", "LAST ACCESSED"],
        "{table}"
    );
    assert!(
        lines.iter().filter(|l| l.contains("\ttrue ")).count() >= 4,
        "{table}"
    );
    let total_line = lines
        .iter()
        .find(|l| l.starts_with("Total:"))
        .expect("Total");
    let reclaimable = lines
        .iter()
        .find(|l| l.starts_with("Reclaimable:"))
        .expect("Reclaimable");
    assert_eq!(
        total_line.trim_start_matches("Total:").trim(),
        reclaimable.trim_start_matches("Reclaimable:").trim(),
        "{table}"
    );
    assert!(!total_line.ends_with("\t0B"), "{table}");
    let verbose = run(
        state.path(),
        &["du", "--verbose", "--filter", "type=source.local"],
        "",
    );
    assert!(verbose.contains("Type:\t\tsource.local"), "{verbose}");
    assert!(
        verbose.contains("Description:\tload build context")
            || verbose.contains("load build context"),
        "{verbose}"
    );
    assert!(
        !verbose.contains("Total:"),
        "filtered output has no totals:\n{verbose}"
    );

    // Declining the question (stdin is not a terminal: one line is read) removes nothing.
    let declined = run(state.path(), &["prune"], "n\n");
    assert!(
        declined.starts_with("WARNING! This will remove all dangling build cache."),
        "{declined}"
    );
    assert_eq!(records(state.path()).len(), recs.len());
    // Everything was used within the last day.
    let recent = run(
        state.path(),
        &["prune", "--force", "--filter", "until=24h"],
        "",
    );
    assert_eq!(recent.trim(), "Total:\t0B", "{recent}");
    assert_eq!(records(state.path()).len(), recs.len());

    // A limit keeps the newest records within it: the context copy is the oldest leaf.
    let before = total(&recs);
    let context_size = find(&recs, "load build context").map_or(0, |r| r.size);
    let keep = before - context_size;
    let kept = run(
        state.path(),
        &["prune", "--force", "--keep-storage", &keep.to_string()],
        "",
    );
    let after = records(state.path());
    assert!(total(&after) <= keep, "{kept}\n{after:#?}");
    assert!(
        find(&after, "load build context").is_none(),
        "{kept}\n{after:#?}"
    );
    assert!(find(&after, "RUN cp").is_some(), "{kept}\n{after:#?}");
    assert!(kept.contains("Total:"), "{kept}");

    // --all removes everything, and the next build runs every step again.
    let all = run(state.path(), &["prune", "--all", "--force"], "");
    assert!(all.starts_with("ID\t"), "{all}");
    assert_eq!(records(state.path()), Vec::<UsageRecord>::new());
    let du = run(state.path(), &["du"], "");
    assert!(du.contains("Total:\t\t0B"), "{du}");
    let rebuilt = build(state.path(), ctx.path(), &base, &[]);
    assert!(!any_cached(&rebuilt), "{rebuilt}");
    assert!(rebuilt.contains("RUN cp"), "{rebuilt}");
}

#[test]
fn garbage_collection_trims_to_a_small_limit() {
    let (_registry, base) = busybox();
    let state = state_dir();
    let ctx = context();
    build(state.path(), ctx.path(), &base, &[]);
    let unlimited = records(state.path());
    assert!(
        find(&unlimited, "load build context").is_some(),
        "{unlimited:#?}"
    );

    // With a 1-byte cap the collection removes everything the build does not hold: its result
    // and the layers under it stay.
    build(
        state.path(),
        ctx.path(),
        &base,
        &[("KILN_GC", "1"), ("KILN_GC_MAX_USED_SPACE", "1")],
    );
    let trimmed = records(state.path());
    assert!(
        find(&trimmed, "load build context").is_none(),
        "{trimmed:#?}"
    );
    assert!(find(&trimmed, "RUN cp").is_some(), "{trimmed:#?}");
    assert!(trimmed.len() < unlimited.len(), "{trimmed:#?}");
    assert!(total(&trimmed) < total(&unlimited));
}
