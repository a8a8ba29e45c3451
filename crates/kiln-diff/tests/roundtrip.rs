//! Round trips and determinism: a tree diffed and applied again is the same tree, and the same
//! tree always gives the same bytes.

mod common;

use std::path::Path;

use common::{build_tree, compare, data, listing, snapshot, tmpdir};
use kiln_diff::{DiffOpts, WhiteoutMode, XattrPolicy, apply_layer, write_diff_dirs};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let cases: Value =
        serde_json::from_slice(&std::fs::read(data("gotar/cases.json")).unwrap()).unwrap();
    cases
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            // Whiteouts need a lower tree; they have their own tests.
            !c["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["type"] == "whiteout")
        })
        .cloned()
        .collect()
}

fn diff(tree: &Path, opts: DiffOpts) -> Vec<u8> {
    let mut out = Vec::new();
    write_diff_dirs(None, tree, &mut out, opts).unwrap();
    out
}

/// Diffs the case's tree, applies the layer to an empty directory and compares the trees
/// (times in whole seconds, clamped to the epoch, and times before 1970 set to 1970 as
/// containerd's applier does); then diffs the copy and expects the same bytes when no time
/// had to change.
fn check(case: &Value) -> Vec<String> {
    let name = case["name"].as_str().unwrap();
    let epoch = case.get("epoch").and_then(Value::as_i64);
    let opts = DiffOpts {
        source_date_epoch: epoch,
        xattrs: XattrPolicy::All,
    };
    let dir = tmpdir();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&dst).unwrap();
    build_tree(&src, case["entries"].as_array().unwrap());

    let layer = diff(&src, opts);
    let applied = apply_layer(&layer[..], &dst, WhiteoutMode::Delete).unwrap();
    let mut failures = Vec::new();
    if applied.diff_id != kiln_oci::Digest::of_bytes(&layer) || applied.size != layer.len() as u64 {
        failures.push(format!("{name}: apply reported {applied:?}"));
    }
    if !applied.warnings.is_empty() {
        failures.push(format!("{name}: warnings {:?}", applied.warnings));
    }

    let mut expected = snapshot(&src);
    let mut times_changed = false;
    for node in expected.values_mut() {
        let mut t = node.mtime;
        if let Some(e) = epoch {
            t = t.min(e);
        }
        if t < 0 {
            t = 0;
            times_changed = true;
        }
        node.mtime = t;
    }
    for line in compare(&expected, &snapshot(&dst)) {
        failures.push(format!("{name}: {line}"));
    }
    if !times_changed && diff(&dst, opts) != layer {
        failures.push(format!("{name}: the applied copy diffs to different bytes"));
    }
    if diff(&src, opts) != layer {
        failures.push(format!("{name}: two diffs of the same tree differ"));
    }
    failures
}

#[test]
fn diff_then_apply_gives_the_same_tree() {
    let cases = cases();
    assert!(cases.len() >= 5);
    let failures: Vec<String> = cases.iter().flat_map(check).collect();
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The same entries created in another order (so with other inode numbers and another
/// on-disk directory order) give the same bytes.
#[test]
fn creation_order_does_not_change_the_bytes() {
    let mut failures = Vec::new();
    for case in cases() {
        let name = case["name"].as_str().unwrap().to_string();
        let entries = case["entries"].as_array().unwrap().clone();
        let depth = |e: &Value| e["path"].as_str().unwrap().matches('/').count();
        let mut shuffled = entries.clone();
        // Parents before children, siblings in reverse order, hard links after their targets.
        shuffled.sort_by(|a, b| {
            let ha = a["type"] == "hardlink";
            let hb = b["type"] == "hardlink";
            (ha, depth(a))
                .cmp(&(hb, depth(b)))
                .then_with(|| b["path"].as_str().cmp(&a["path"].as_str()))
        });
        let dir = tmpdir();
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        std::fs::create_dir(&one).unwrap();
        std::fs::create_dir(&two).unwrap();
        build_tree(&one, &entries);
        build_tree(&two, &shuffled);
        let opts = DiffOpts::default();
        if diff(&one, opts) != diff(&two, opts) {
            failures.push(name);
        }
    }
    assert!(
        failures.is_empty(),
        "cases whose bytes depend on creation order: {failures:?}"
    );
}

/// With `XattrPolicy::CapabilityOnly` only `security.capability` is recorded, as BuildKit does.
#[test]
fn capability_only_policy_records_only_capabilities() {
    let case = cases().into_iter().find(|c| c["name"] == "xattrs").unwrap();
    let dir = tmpdir();
    build_tree(dir.path(), case["entries"].as_array().unwrap());
    let layer = diff(
        dir.path(),
        DiffOpts {
            source_date_epoch: None,
            xattrs: XattrPolicy::CapabilityOnly,
        },
    );
    insta::assert_snapshot!(listing(&layer));
}

/// The copying snapshotter's differ: a modified copy of a tree, diffed against the tree and
/// applied to another copy of it, gives the modified tree, hard links included.
#[test]
fn tree_diff_then_apply_gives_the_upper_tree() {
    const OLD: i64 = 900_000_000;
    const EPOCH: i64 = 1_000_000_000;
    let dir = tmpdir();
    let (lower, upper, copy) = (
        dir.path().join("lower"),
        dir.path().join("upper"),
        dir.path().join("copy"),
    );
    std::fs::create_dir(&lower).unwrap();
    let write = |root: &Path, rel: &str, content: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    };
    for (rel, content) in [
        ("keep/same", "same"),
        ("keep/samesize", "aaaa"),
        ("keep/mode", "m"),
        ("keep/xattr", "x"),
        ("gone", "g"),
        ("gonedir/a/b", "b"),
        ("dir2file/x", "x"),
        ("file2dir", "f"),
        ("links/a", "shared"),
        ("links/c", "broken"),
        ("links/e", "grown"),
    ] {
        write(&lower, rel, content);
    }
    std::fs::hard_link(lower.join("links/a"), lower.join("links/b")).unwrap();
    std::fs::hard_link(lower.join("links/c"), lower.join("links/d")).unwrap();
    std::fs::hard_link(lower.join("links/e"), lower.join("links/f")).unwrap();
    common::set_all_mtimes(&lower, OLD);
    common::copy_tree(&lower, &upper);
    common::copy_tree(&lower, &copy);

    // Same size, same whole-second time: only the content tells.
    std::fs::write(upper.join("keep/samesize"), "bbbb").unwrap();
    common::set_mtime(&upper.join("keep/samesize"), OLD, 0);
    std::fs::set_permissions(
        upper.join("keep/mode"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    xattr::set(upper.join("keep/xattr"), "user.new", b"1").unwrap();
    std::fs::remove_file(upper.join("gone")).unwrap();
    std::fs::remove_dir_all(upper.join("gonedir")).unwrap();
    std::fs::remove_dir_all(upper.join("dir2file")).unwrap();
    write(&upper, "dir2file", "now a file");
    std::fs::remove_file(upper.join("file2dir")).unwrap();
    write(&upper, "file2dir/inner", "now a dir");
    write(&upper, "new/deep/file", "new");
    // Modified in place: both names change.
    std::fs::OpenOptions::new()
        .append(true)
        .open(upper.join("links/a"))
        .unwrap();
    std::fs::write(upper.join("links/a"), "shared, changed").unwrap();
    // Link broken: c is a new file, d keeps the old content.
    std::fs::remove_file(upper.join("links/c")).unwrap();
    write(&upper, "links/c", "new c");
    // A new name for an unchanged linked file: e and f must be re-linked to it.
    std::fs::hard_link(upper.join("links/e"), upper.join("links/g")).unwrap();

    let opts = DiffOpts {
        source_date_epoch: Some(EPOCH),
        xattrs: XattrPolicy::All,
    };
    let mut layer = Vec::new();
    kiln_diff::write_diff_dirs(Some(&lower), &upper, &mut layer, opts).unwrap();
    insta::assert_snapshot!(listing(&layer));
    let mut again = Vec::new();
    kiln_diff::write_diff_dirs(Some(&lower), &upper, &mut again, opts).unwrap();
    assert!(again == layer, "two diffs differ");

    apply_layer(&layer[..], &copy, WhiteoutMode::Delete).unwrap();
    let failures = compare(
        &common::clamp(snapshot(&upper), EPOCH),
        &common::clamp(snapshot(&copy), EPOCH),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
