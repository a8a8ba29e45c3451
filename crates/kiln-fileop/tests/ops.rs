//! `mkdir`, `mkfile`, `rm` and `symlink`: each case a tree and an action, the outcome an insta
//! snapshot per action kind.

mod common;

use std::path::Path;

use common::{build, chown_ids, dump, outcome, tempdir};
use kiln_fileop::{Error, PasswdLookup};
use kiln_llb::ops::{FileActionMkDir, FileActionMkFile, FileActionRm, FileActionSymlink};

/// Runs `run` on a tree built from each spec and snapshots all outcomes together.
fn check<A>(
    snapshot: &str,
    cases: Vec<(&str, &str, A)>,
    run: impl Fn(&Path, &A) -> Result<(), Error>,
) {
    let mut out = String::new();
    for (name, spec, action) in cases {
        let root = tempdir();
        build(root.path(), spec);
        let result = run(root.path(), &action);
        out.push_str(&format!(
            "## {name}\n{}{}\n",
            outcome(result),
            dump(root.path())
        ));
    }
    insta::assert_snapshot!(snapshot, out);
}

fn mkdir(path: &str, mode: i32, make_parents: bool) -> FileActionMkDir {
    FileActionMkDir {
        path: path.into(),
        mode,
        make_parents,
        owner: None,
        timestamp: -1,
    }
}

#[test]
fn mkdir_cases() {
    check(
        "mkdir",
        vec![
            ("a new directory", "", mkdir("/app", 0o755, false)),
            (
                "the mode is exact, whatever the umask",
                "",
                mkdir("/open", 0o777, false),
            ),
            (
                "a missing parent without make_parents",
                "",
                mkdir("/a/b", 0o755, false),
            ),
            (
                "make_parents gives every created directory the mode, owner and time",
                "",
                FileActionMkDir {
                    owner: Some(chown_ids(7, 8)),
                    timestamp: 1_234_567_890_000_000_000,
                    ..mkdir("/a/b/c", 0o711, true)
                },
            ),
            (
                "an existing directory is left alone",
                "d /app 700 3:3",
                FileActionMkDir {
                    owner: Some(chown_ids(7, 8)),
                    ..mkdir("/app", 0o755, true)
                },
            ),
            (
                "an existing file is left alone without make_parents",
                r#"f /app 644 "f""#,
                mkdir("/app", 0o755, false),
            ),
            (
                "an existing file is an error with make_parents",
                r#"f /app 644 "f""#,
                mkdir("/app/sub", 0o755, true),
            ),
            (
                "a relative path is taken from the root",
                "",
                mkdir("rel/dir", 0o755, true),
            ),
        ],
        |root, action| kiln_fileop::mkdir(root, action, &PasswdLookup::new(root)),
    );
}

fn mkfile(path: &str, data: &str, mode: i32) -> FileActionMkFile {
    FileActionMkFile {
        path: path.into(),
        mode,
        data: data.as_bytes().to_vec(),
        owner: None,
        timestamp: -1,
    }
}

#[test]
fn mkfile_cases() {
    check(
        "mkfile",
        vec![
            ("a new file", "", mkfile("/f", "hello", 0o644)),
            (
                "owner, mode and time",
                "",
                FileActionMkFile {
                    owner: Some(chown_ids(1, 2)),
                    timestamp: 1_111_111_111_000_000_000,
                    ..mkfile("/f", "x", 0o600)
                },
            ),
            (
                "an existing file is replaced",
                r#"f /f 777 "old" 5:5"#,
                mkfile("/f", "new", 0o640),
            ),
            (
                "a FIFO in the way is replaced, not opened",
                "p /f 644",
                mkfile("/f", "new", 0o644),
            ),
            (
                "a symbolic link is followed inside the root",
                r#"
                    d /etc 755
                    f /etc/target 644 "old"
                    l /f -> /etc/target
                "#,
                mkfile("/f", "new", 0o644),
            ),
            ("a missing parent", "", mkfile("/no/f", "x", 0o644)),
            ("the root itself", "", mkfile("/", "x", 0o644)),
            (
                "a directory in the way",
                "d /f 755",
                mkfile("/f", "x", 0o644),
            ),
        ],
        |root, action| kiln_fileop::mkfile(root, action, &PasswdLookup::new(root)),
    );
}

fn rm(path: &str, allow_not_found: bool, allow_wildcard: bool) -> FileActionRm {
    FileActionRm {
        path: path.into(),
        allow_not_found,
        allow_wildcard,
    }
}

#[test]
fn rm_cases() {
    let tree = r#"
        d /d 755
        f /d/a.txt 644 "a"
        f /d/b.txt 644 "b"
        f /d/c.md 644 "c"
        d /d/sub 755
        f /d/sub/x 644 "x"
        d /keep 755
        f /keep/file 644 "k"
        l /link -> /keep
    "#;
    check(
        "rm",
        vec![
            ("a file", tree, rm("/d/a.txt", false, false)),
            ("a directory and its contents", tree, rm("/d", false, false)),
            (
                "a symbolic link, not its target",
                tree,
                rm("/link", false, false),
            ),
            (
                "through a symbolic link in the parent",
                tree,
                rm("/link/file", false, false),
            ),
            ("a missing path", tree, rm("/nope", false, false)),
            (
                "a dangling symbolic link exists",
                "l /dangling -> /nowhere",
                rm("/dangling", false, false),
            ),
            (
                "a missing path with allow_not_found",
                tree,
                rm("/nope", true, false),
            ),
            ("a wildcard", tree, rm("/d/*.txt", false, true)),
            (
                "a wildcard without match",
                tree,
                rm("/d/*.nope", false, true),
            ),
            ("the root", tree, rm("/", true, false)),
        ],
        kiln_fileop::rm,
    );
}

fn symlink(oldpath: &str, newpath: &str) -> FileActionSymlink {
    FileActionSymlink {
        oldpath: oldpath.into(),
        newpath: newpath.into(),
        owner: None,
        timestamp: -1,
    }
}

#[test]
fn symlink_cases() {
    check(
        "symlink",
        vec![
            (
                "a link, target kept verbatim",
                "",
                symlink("../../etc/passwd", "/l"),
            ),
            (
                "owner and time",
                "",
                FileActionSymlink {
                    owner: Some(chown_ids(4, 4)),
                    timestamp: 1_222_222_222_000_000_000,
                    ..symlink("target", "/l")
                },
            ),
            (
                "an existing path is an error",
                r#"f /l 644 "f""#,
                symlink("target", "/l"),
            ),
            (
                "the parent is resolved inside the root",
                r#"
                    d /real 755
                    l /dir -> /real
                "#,
                symlink("x", "/dir/l"),
            ),
            ("a missing parent", "", symlink("x", "/no/l")),
        ],
        |root, action| kiln_fileop::symlink(root, action, &PasswdLookup::new(root)),
    );
}
