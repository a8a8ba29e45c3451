//! GNU tar as an independent oracle: it reads and extracts kiln's layers to the same tree, and
//! kiln applies GNU tar's archives (PAX and GNU formats) to the same tree.

mod common;

use common::{build_tree, compare, data, run, snapshot, tmpdir};
use kiln_diff::{DiffOpts, WhiteoutMode, apply_layer, write_diff_dirs};
use serde_json::Value;
use std::ffi::OsStr;

/// The reference cases without whiteouts, as (name, entries).
fn cases() -> Vec<(String, Vec<Value>)> {
    let cases: Value =
        serde_json::from_slice(&std::fs::read(data("gotar/cases.json")).unwrap()).unwrap();
    cases
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            !c["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["type"] == "whiteout")
        })
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["entries"].as_array().unwrap().clone(),
            )
        })
        .collect()
}

fn tar(args: &[&OsStr]) -> String {
    run("tar", args)
}

/// GNU tar lists and extracts kiln's layer of the case's tree; the extracted tree is the tree.
fn check_gnu_reads_kiln(name: &str, entries: &[Value]) -> Vec<String> {
    let dir = tmpdir();
    let (src, out) = (dir.path().join("src"), dir.path().join("out"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&out).unwrap();
    build_tree(&src, entries);
    let layer = dir.path().join("layer.tar");
    let mut file = std::fs::File::create(&layer).unwrap();
    write_diff_dirs(None, &src, &mut file, DiffOpts::default()).unwrap();
    drop(file);

    let mut failures = Vec::new();
    let list = tar(&[OsStr::new("-tvf"), layer.as_os_str()]);
    for e in entries {
        let path = e["path"].as_str().unwrap();
        if !list.contains(path) {
            failures.push(format!("{name}: `tar -tvf` does not list {path}:\n{list}"));
        }
    }
    tar(&[
        OsStr::new("--xattrs"),
        OsStr::new("--xattrs-include=*"),
        OsStr::new("--numeric-owner"),
        OsStr::new("-xpf"),
        layer.as_os_str(),
        OsStr::new("-C"),
        out.as_os_str(),
    ]);
    for line in compare(&snapshot(&src), &snapshot(&out)) {
        failures.push(format!("{name}: extracted by GNU tar: {line}"));
    }
    failures
}

/// kiln applies GNU tar's archive of the case's tree (in `format`); the result is the tree.
fn check_kiln_reads_gnu(name: &str, entries: &[Value], format: &str) -> Vec<String> {
    let dir = tmpdir();
    let (src, out) = (dir.path().join("src"), dir.path().join("out"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&out).unwrap();
    build_tree(&src, entries);
    let archive = dir.path().join("gnu.tar");
    tar(&[
        OsStr::new(&format!("--format={format}")),
        OsStr::new("--xattrs"),
        OsStr::new("--xattrs-include=*"),
        OsStr::new("--numeric-owner"),
        OsStr::new("--sort=name"),
        OsStr::new("-C"),
        src.as_os_str(),
        OsStr::new("-cf"),
        archive.as_os_str(),
        OsStr::new("."),
    ]);
    let mut failures = Vec::new();
    let blob = std::fs::read(&archive).unwrap();
    match apply_layer(&blob[..], &out, WhiteoutMode::Delete) {
        Ok(applied) if !applied.warnings.is_empty() => {
            failures.push(format!(
                "{name} ({format}): warnings {:?}",
                applied.warnings
            ));
        }
        Ok(_) => {}
        Err(e) => failures.push(format!("{name} ({format}): {e:?}")),
    }
    // GNU tar records xattrs in PAX extended headers in both formats.
    let mut expected = snapshot(&src);
    for node in expected.values_mut() {
        // containerd's applier (and so kiln's) sets times before 1970 to 1970.
        node.mtime = node.mtime.max(0);
    }
    for line in compare(&expected, &snapshot(&out)) {
        failures.push(format!("{name} ({format}): {line}"));
    }
    failures
}

fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn gnu_tar_reads_kiln_layers() {
    let failures = cases()
        .iter()
        .flat_map(|(name, entries)| check_gnu_reads_kiln(name, entries))
        .collect();
    assert_no_failures(failures);
}

#[test]
fn kiln_applies_gnu_tar_archives() {
    let mut failures = Vec::new();
    for (name, entries) in cases() {
        for format in ["pax", "gnu"] {
            failures.extend(check_kiln_reads_gnu(&name, &entries, format));
        }
    }
    assert_no_failures(failures);
}

#[test]
fn tar_tool_is_gnu_tar() {
    let version = tar(&[OsStr::new("--version")]);
    assert!(version.contains("GNU tar"), "{version}");
}
