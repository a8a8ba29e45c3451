//! What digests cover: pinned golden digests, which changes change which digests, selection
//! rules (wildcards, patterns, symlinks) and errors.

mod support;

use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use kiln_contenthash::{ChecksumOpts, Filter, Hasher};
use support::{EMPTY, Probe, Spec, excluding, follow, including, sel, strings, tree, whole, wild};

/// A small tree with every kind of entry the goldens cover.
const GOLDEN_TREE: &[Spec<'static>] = &[
    Spec::File("hello.txt", "hello\n", 0o644),
    Spec::File("empty.txt", "", 0o600),
    Spec::File("bin/tool", "#!/bin/sh\necho hi\n", 0o755),
    Spec::File("bin/suid", "x", 0o4755),
    Spec::Dir("docs", 0o755),
    Spec::File("docs/a.md", "# A\n", 0o644),
    Spec::Dir("docs/empty", 0o700),
    Spec::Dir("tmp", 0o1777),
    Spec::Link("link", "docs/a.md"),
    Spec::Link("abs", "/etc/passwd"),
];

/// Digests pinned for [`GOLDEN_TREE`]. They change only with a new version tag: a change
/// here changes every cache key kiln has ever written. The file, directory, symlink and
/// wildcard values were checked against an independent implementation (a few lines of
/// Python) of the encoding documented in `kiln_contenthash::encode`.
#[test]
fn golden_digests() {
    let root = tree(GOLDEN_TREE);
    let cases: Vec<(&str, Probe, &str)> = vec![
        (
            "whole context",
            whole(),
            "sha256:dad8352c5031f1f6042d69771f36b8e7490f89ad78f05e5f5f1b02b284ea88bd",
        ),
        (
            "context without docs",
            Probe::Tree(Filter {
                excludes: strings(&["docs"]),
                ..Filter::default()
            }),
            "sha256:4161ec09fbbdd7ccc95f5be511e2ce6f52e285babac2427b8502528a72f03833",
        ),
        (
            "root",
            sel("/"),
            "sha256:0d35885db62ee98c466e82ba97a8fc9e325eb884e2c0635e4edf00581da0cb65",
        ),
        (
            "file",
            sel("/hello.txt"),
            "sha256:51c5177d79384a9fc51dc1052c3ebd8a8cf50ab27fa05811c8360941c02b5574",
        ),
        (
            "empty file",
            sel("empty.txt"),
            "sha256:bca8a1e10a00ec85247d2de99b98cf79cf995e4e8261752491822176728c62be",
        ),
        (
            "setuid file",
            sel("bin/suid"),
            "sha256:12b2c0f7642d39d296f35fade1c25c90a3314702d2b7b6a3452430ede1777304",
        ),
        (
            "directory",
            sel("/docs"),
            "sha256:56058387c296becfb0562388a8e4034c93fb5f4026b3145896c5a8986f10eb78",
        ),
        (
            "sticky directory",
            sel("/tmp"),
            "sha256:b9012694993f5a8480c294580fd50728bd3c93b882899a957d4321d55a2314af",
        ),
        (
            "symlink",
            sel("/link"),
            "sha256:ae60835f101c6393f466dab7d76dc214ef67815796f75a07d4bc141c636e68eb",
        ),
        (
            "absolute symlink",
            sel("/abs"),
            "sha256:3820e12167e42fa6c25b63be9744a8b49cc8b8b161b622819a6d720b73dde5ce",
        ),
        (
            "followed symlink is its target",
            follow("/link"),
            "sha256:58940baa1da63a59a8f09bf6b48e3bb4760d7ac4b9a6b5e51386ee521068e9a0",
        ),
        (
            "wildcard",
            wild("/*.txt"),
            "sha256:54aebdef1a329be59ba93d8e2a8c5be09236c9f488ba64128886379f220abb7c",
        ),
        (
            "directory with exclude",
            excluding("/docs", &["*.md"]),
            "sha256:9b6c24f96af85e07d4dd3e24b5248344a318808bb00561b2f2eb10624e394719",
        ),
        ("wildcard without match", wild("/nomatch*"), EMPTY),
    ];
    check_goldens(root.path(), &cases);
}

fn check_goldens(root: &Path, cases: &[(&str, Probe, &str)]) {
    let hasher = Hasher::new(None);
    let mut failures = Vec::new();
    for (name, probe, want) in cases {
        match probe.run(&hasher, root) {
            Ok(got) if got == *want => {}
            got => failures.push(format!("{name}: got {got:?}, want {want}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden digests differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The tree the change cases start from.
const BASE_TREE: &[Spec<'static>] = &[
    Spec::File("a/x", "x-content", 0o644),
    Spec::File("a/y", "y-content", 0o644),
    Spec::File("b/z", "z", 0o644),
    Spec::File("top.txt", "top", 0o644),
    Spec::Link("ln", "a/x"),
];

/// The digests every change case looks at, with the labels used in expectations.
fn probes() -> Vec<(&'static str, Probe)> {
    vec![
        ("tree", whole()),
        ("/", sel("/")),
        ("/a", sel("/a")),
        ("/a/x", sel("/a/x")),
        ("/a/y", sel("/a/y")),
        ("/b", sel("/b")),
        ("/top.txt", sel("/top.txt")),
        ("/ln", sel("/ln")),
        ("/ln followed", follow("/ln")),
        ("/*.txt", wild("/*.txt")),
        ("/a/*", wild("/a/*")),
    ]
}

/// Labels of the probes that see a change of `a/x`'s own entry.
const X_CHANGED: &[&str] = &["tree", "/", "/a", "/a/x", "/ln followed", "/a/*"];

type Change = fn(&Path);

#[test]
fn changes() {
    let cases: Vec<(&str, Change, &[&str])> = vec![
        ("nothing", |_| {}, &[]),
        (
            "mtime and atime of a/x",
            |r| {
                let file = fs::File::options()
                    .write(true)
                    .open(r.join("a/x"))
                    .expect("open");
                let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
                file.set_times(fs::FileTimes::new().set_modified(old).set_accessed(old))
                    .expect("set times");
            },
            &[],
        ),
        (
            "a/x rewritten with the same content (new inode)",
            |r| {
                fs::remove_file(r.join("a/x")).expect("rm");
                fs::write(r.join("a/x"), "x-content").expect("write");
                fs::set_permissions(r.join("a/x"), fs::Permissions::from_mode(0o644))
                    .expect("chmod");
            },
            &[],
        ),
        (
            "one byte of a/x",
            |r| fs::write(r.join("a/x"), "X-content").expect("write"),
            X_CHANGED,
        ),
        (
            "a/x one byte longer",
            |r| fs::write(r.join("a/x"), "x-content!").expect("write"),
            X_CHANGED,
        ),
        (
            "mode of a/x",
            |r| {
                fs::set_permissions(r.join("a/x"), fs::Permissions::from_mode(0o600))
                    .expect("chmod")
            },
            X_CHANGED,
        ),
        (
            "setuid on a/x",
            |r| {
                fs::set_permissions(r.join("a/x"), fs::Permissions::from_mode(0o4644))
                    .expect("chmod")
            },
            X_CHANGED,
        ),
        (
            "owner of a/x",
            |r| lchown(r.join("a/x"), Some(1000), None).expect("chown"),
            X_CHANGED,
        ),
        (
            "group of a/x",
            |r| lchown(r.join("a/x"), None, Some(1000)).expect("chgrp"),
            X_CHANGED,
        ),
        (
            "user xattr on a/x",
            |r| xattr_set(&r.join("a/x"), "user.kiln", b"1"),
            X_CHANGED,
        ),
        (
            "mode of directory a",
            |r| fs::set_permissions(r.join("a"), fs::Permissions::from_mode(0o700)).expect("chmod"),
            &["tree", "/", "/a"],
        ),
        (
            "sticky bit on directory b",
            |r| {
                fs::set_permissions(r.join("b"), fs::Permissions::from_mode(0o1755)).expect("chmod")
            },
            &["tree", "/", "/b"],
        ),
        (
            "mode of the root",
            |r| fs::set_permissions(r, fs::Permissions::from_mode(0o700)).expect("chmod"),
            &["/"],
        ),
        (
            "symlink target",
            |r| {
                fs::remove_file(r.join("ln")).expect("rm");
                symlink("a/y", r.join("ln")).expect("symlink");
            },
            &["tree", "/", "/ln", "/ln followed"],
        ),
        (
            "owner of the symlink",
            |r| lchown(r.join("ln"), Some(1000), Some(1000)).expect("lchown"),
            &["tree", "/", "/ln"],
        ),
        (
            "new empty file in a",
            |r| fs::write(r.join("a/new"), "").expect("write"),
            &["tree", "/", "/a", "/a/*"],
        ),
        (
            "new empty directory in b",
            |r| fs::create_dir(r.join("b/d")).expect("mkdir"),
            &["tree", "/", "/b"],
        ),
        (
            "top.txt renamed",
            |r| fs::rename(r.join("top.txt"), r.join("top2.txt")).expect("rename"),
            &["tree", "/", "/top.txt", "/*.txt"],
        ),
        (
            "new text file at the top",
            |r| fs::write(r.join("more.txt"), "more").expect("write"),
            &["tree", "/", "/*.txt"],
        ),
        (
            "one byte of b/z",
            |r| fs::write(r.join("b/z"), "Z").expect("write"),
            &["tree", "/", "/b"],
        ),
    ];
    check_changes(&cases);
}

fn xattr_set(path: &Path, name: &str, value: &[u8]) {
    xattr::set(path, name, value)
        .expect("set a user xattr (the test file system must support them)");
}

/// For each case: build [`BASE_TREE`] afresh, take every probe, apply the change, take
/// every probe again; the probes that changed must be exactly the expected ones. Fresh
/// trees (new paths, inodes and times) must all give the same digests before the change.
fn check_changes(cases: &[(&str, Change, &[&str])]) {
    let hasher = Hasher::new(None);
    let probes = probes();
    let mut failures = Vec::new();
    let mut reference: Option<Vec<Result<String, String>>> = None;
    for (name, change, expected) in cases {
        let root = tree(BASE_TREE);
        let before: Vec<_> = probes
            .iter()
            .map(|(_, p)| p.run(&hasher, root.path()))
            .collect();
        match &reference {
            None => reference = Some(before.clone()),
            Some(reference) if *reference != before => {
                failures.push(format!(
                    "{name}: a fresh copy of the base tree hashes differently"
                ));
            }
            Some(_) => {}
        }
        change(root.path());
        let mut changed = Vec::new();
        for ((label, probe), old) in probes.iter().zip(&before) {
            if probe.run(&hasher, root.path()) != *old {
                changed.push(*label);
            }
        }
        if changed != *expected {
            failures.push(format!("{name}: changed {changed:?}, want {expected:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} change cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What a selection probe should give, relative to other probes on the same tree.
enum Expect {
    /// The same digest as this other probe.
    Same(Probe),
    /// A different digest from this other probe.
    Differs(Probe),
    /// Exactly this digest.
    Digest(&'static str),
    /// This error message.
    Error(&'static str),
}

/// The tree the selection cases run on.
const SELECTION_TREE: &[Spec<'static>] = &[
    Spec::File("a.txt", "a", 0o644),
    Spec::File("b.txt", "b", 0o644),
    Spec::File("c.md", "c", 0o644),
    Spec::File("src/main.rs", "fn main() {}", 0o644),
    Spec::File("src/lib.rs", "", 0o644),
    Spec::File("src/notes.md", "notes", 0o644),
    Spec::File("src/deep/x.rs", "x", 0o644),
    Spec::File("etc/passwd", "in-root passwd", 0o644),
    Spec::Link("hostetc", "/etc"),
    Spec::Link("up", "../../../../etc"),
    Spec::Link("srclink", "src"),
    Spec::Link("dangling", "nowhere"),
    Spec::Link("loop1", "loop2"),
    Spec::Link("loop2", "loop1"),
    Spec::Link("a-link.txt", "a.txt"),
];

#[test]
fn selections() {
    use Expect::*;
    let cases: Vec<(&str, Probe, Expect)> = vec![
        // Wildcards.
        (
            "one wildcard match is named",
            wild("/a*.txt"),
            Differs(sel("/a.txt")),
        ),
        (
            "a wildcard without wildcards is a plain path",
            wild("/a.txt"),
            Same(sel("/a.txt")),
        ),
        (
            "wildcard without match",
            wild("/*.none"),
            Digest(support::EMPTY),
        ),
        (
            "wildcard below a missing directory",
            wild("/missing/*"),
            Digest(support::EMPTY),
        ),
        (
            "wildcard below a file",
            wild("/a.txt/*"),
            Digest(support::EMPTY),
        ),
        (
            "wildcard does not cross /",
            wild("/*.rs"),
            Digest(support::EMPTY),
        ),
        (
            "wildcard in a directory",
            wild("/src/*.rs"),
            Differs(wild("/src/*")),
        ),
        (
            "a wildcard selecting a directory",
            wild("/sr?"),
            Differs(sel("/src")),
        ),
        (
            "wildcard through a symlinked prefix",
            wild("/srclink/*.rs"),
            Same(wild("/src/*.rs")),
        ),
        (
            "wildcard under a symlink to /etc stays in the root",
            wild("/hostetc/pass*"),
            Same(wild("/etc/pass*")),
        ),
        (
            "malformed wildcard",
            wild("/[a"),
            Error("syntax error in pattern \"/[a\""),
        ),
        // Symlinks.
        (
            "a symlink is not followed by default",
            sel("/a-link.txt"),
            Differs(sel("/a.txt")),
        ),
        (
            "a followed symlink is its target",
            follow("/a-link.txt"),
            Same(sel("/a.txt")),
        ),
        (
            "a followed symlink to a directory",
            follow("/srclink"),
            Same(sel("/src")),
        ),
        (
            "symlinks in the middle are always followed",
            sel("/srclink/main.rs"),
            Same(sel("/src/main.rs")),
        ),
        (
            "a symlink to /etc resolves in the root",
            sel("/hostetc/passwd"),
            Same(sel("/etc/passwd")),
        ),
        (
            "a symlink climbing out resolves in the root",
            sel("/up/passwd"),
            Same(sel("/etc/passwd")),
        ),
        (
            "/.. stays in the root",
            sel("/../../etc/passwd"),
            Same(sel("/etc/passwd")),
        ),
        (
            "a followed symlink to /etc is the in-root etc",
            follow("/hostetc"),
            Same(sel("/etc")),
        ),
        (
            "a dangling symlink itself",
            sel("/dangling"),
            Differs(sel("/a.txt")),
        ),
        (
            "a dangling symlink followed",
            follow("/dangling"),
            Error("\"/dangling\": not found"),
        ),
        (
            "a symlink loop",
            sel("/loop1/x"),
            Error("too many levels of symbolic links resolving \"/loop1/x\""),
        ),
        (
            "a wildcard matching a dangling link, followed",
            Probe::Checksum(
                "/dang*",
                ChecksumOpts {
                    wildcard: true,
                    follow_links: true,
                    ..ChecksumOpts::default()
                },
            ),
            Error("\"/dangling\": not found"),
        ),
        // Missing paths.
        (
            "a missing file",
            sel("/missing"),
            Error("\"/missing\": not found"),
        ),
        (
            "a missing file, relative selector",
            sel("src/missing.rs"),
            Error("\"/src/missing.rs\": not found"),
        ),
        (
            "below a file",
            sel("/a.txt/x"),
            Error("\"/a.txt/x\": not found"),
        ),
        (
            "a missing file with patterns",
            excluding("/missing", &["x"]),
            Error("\"/missing\": not found"),
        ),
        // Patterns.
        (
            "excluding nothing keeps the digest",
            excluding("/src", &["nothing"]),
            Same(sel("/src")),
        ),
        (
            "excluding files changes it",
            excluding("/src", &["*.md"]),
            Differs(sel("/src")),
        ),
        (
            "exclude patterns are relative to the item",
            excluding("/src", &["src"]),
            Same(sel("/src")),
        ),
        (
            "an excluded single file is still selected",
            excluding("/a.txt", &["a.txt"]),
            Same(sel("/a.txt")),
        ),
        (
            "including everything keeps the digest",
            including("/src", &["*"]),
            Same(sel("/src")),
        ),
        (
            "include patterns select inside",
            including("/src", &["*.rs", "deep"]),
            Same(excluding("/src", &["*.md"])),
        ),
        (
            "include nothing is an empty selection",
            including("/src", &["nothing"]),
            Digest(support::EMPTY),
        ),
        (
            "include patterns on a file select nothing",
            including("/a.txt", &["a.txt"]),
            Digest(support::EMPTY),
        ),
        (
            "malformed exclude pattern",
            excluding("/src", &["[z"]),
            Error(
                "invalid exclude patterns: syntax error in pattern \"[z\": malformed character class",
            ),
        ),
    ];
    check_selections(&cases);
}

fn check_selections(cases: &[(&str, Probe, Expect)]) {
    let root = tree(SELECTION_TREE);
    let hasher = Hasher::new(None);
    let mut failures = Vec::new();
    for (name, probe, expect) in cases {
        let got = probe.run(&hasher, root.path());
        let ok = match expect {
            Expect::Same(other) => got.is_ok() && got == other.run(&hasher, root.path()),
            Expect::Differs(other) => {
                let other = other.run(&hasher, root.path());
                got.is_ok() && other.is_ok() && got != other
            }
            Expect::Digest(want) => got.as_deref() == Ok(*want),
            Expect::Error(want) => got.as_ref().err().map(String::as_str) == Some(*want),
        };
        if !ok {
            failures.push(format!("{name}: got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} selection cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn root_errors() {
    let root = tree(&[Spec::File("file", "x", 0o644)]);
    let hasher = Hasher::new(None);
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (root.path().join("file"), "is not a directory"),
        (root.path().join("missing"), "No such file or directory"),
    ];
    let mut failures = Vec::new();
    for (path, want) in cases {
        for result in [
            hasher.tree_digest(&path, &Filter::default()),
            hasher.checksum(&path, "/", &ChecksumOpts::default()),
        ] {
            match result {
                Err(e) if e.to_string().contains(want) => {}
                other => failures.push(format!(
                    "{}: got {other:?}, want an error with {want:?}",
                    path.display()
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
