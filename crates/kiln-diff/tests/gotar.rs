//! Byte-for-byte conformance of kiln's layer tars with Go's `archive/tar` as containerd's
//! change writer drives it.
//!
//! `tests/data/gotar/cases.json` describes trees entry by entry, in walk order; the files in
//! `tests/data/gotar/expected/` were written by Go 1.19's `archive/tar` from those entries
//! (`tests/data/gotar/gen/main.go`, see the README there). Each test builds the tree on disk,
//! diffs it with kiln and compares the bytes.

mod common;

use std::path::Path;

use common::{build_tree, data, listing, tmpdir};
use kiln_diff::{DiffOpts, XattrPolicy, write_diff_dirs, write_diff_overlay};
use serde_json::Value;

/// Builds the lower tree of a case with whiteouts: the deleted names, inside copies of their
/// parent directories whose mode (0700) differs from the upper side's, so that those
/// directories are recorded as modified.
fn build_lower(root: &Path, entries: &[Value]) -> bool {
    let mut any = false;
    for e in entries {
        if e["type"] != "whiteout" {
            continue;
        }
        any = true;
        let path = e["path"].as_str().unwrap();
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
        let target = base.strip_prefix(".wh.").unwrap();
        let dir_path = root.join(dir);
        std::fs::create_dir_all(&dir_path).unwrap();
        let mut p = dir_path.clone();
        while p != root {
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .unwrap();
            p.pop();
        }
        std::fs::write(dir_path.join(target), "deleted").unwrap();
    }
    any
}

/// Diffs the tree of one case both ways and compares with Go's bytes; returns the failures.
fn check(case: &Value) -> Vec<String> {
    let name = case["name"].as_str().unwrap();
    let entries = case["entries"].as_array().unwrap();
    let expected = std::fs::read(data(&format!("gotar/expected/{name}.tar"))).unwrap();
    let opts = DiffOpts {
        source_date_epoch: case.get("epoch").and_then(Value::as_i64),
        xattrs: XattrPolicy::All,
    };
    let dir = tmpdir();
    let upper = dir.path().join("upper");
    let lower = dir.path().join("lower");
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&lower).unwrap();
    build_tree(&upper, entries);
    let has_lower = build_lower(&lower, entries);

    let mut failures = Vec::new();
    let mut out = Vec::new();
    let stats =
        write_diff_dirs(has_lower.then_some(lower.as_path()), &upper, &mut out, opts).unwrap();
    if out != expected {
        failures.push(format!(
            "{name}: write_diff_dirs differs from Go\n--- go\n{}--- kiln\n{}",
            listing(&expected),
            listing(&out)
        ));
    }
    if stats.diff_id != kiln_oci::Digest::of_bytes(&expected) || stats.size != expected.len() as u64
    {
        failures.push(format!("{name}: stats {stats:?} do not describe Go's tar"));
    }
    if !has_lower {
        let mut overlay = Vec::new();
        write_diff_overlay(&upper, &[], &mut overlay, opts).unwrap();
        if overlay != expected {
            failures.push(format!(
                "{name}: write_diff_overlay differs from Go\n--- go\n{}--- kiln\n{}",
                listing(&expected),
                listing(&overlay)
            ));
        }
    }
    failures
}

#[test]
fn layer_tars_match_go_archive_tar() {
    let cases: Value =
        serde_json::from_slice(&std::fs::read(data("gotar/cases.json")).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 6);
    let failures: Vec<String> = cases.iter().flat_map(check).collect();
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
