//! `FileActionCopy` semantics, each case a source tree, a destination tree and an action; the
//! expected outcome (error and destination tree) is an insta snapshot per feature.

mod common;

use common::{build, chown_ids, copy_action, dockerfile_copy, dump, outcome, tempdir};
use kiln_fileop::PasswdLookup;
use kiln_llb::ops::{ChownOpt, FileActionCopy, UserOpt};

struct Case {
    name: &'static str,
    src: &'static str,
    dest: &'static str,
    action: FileActionCopy,
}

fn case(name: &'static str, src: &'static str, dest: &'static str, action: FileActionCopy) -> Case {
    Case {
        name,
        src,
        dest,
        action,
    }
}

/// Runs every case and compares all outcomes with one snapshot, so that a failure shows every
/// case that changed.
fn check(snapshot: &str, cases: Vec<Case>) {
    let mut out = String::new();
    for c in cases {
        let src = tempdir();
        let dest = tempdir();
        build(src.path(), c.src);
        build(dest.path(), c.dest);
        let users = PasswdLookup::new(dest.path());
        let result = kiln_fileop::copy(src.path(), dest.path(), &c.action, &users);
        out.push_str(&format!(
            "## {}\n{}{}\n",
            c.name,
            outcome(result),
            dump(dest.path())
        ));
    }
    insta::assert_snapshot!(snapshot, out);
}

const TREE: &str = r#"
    d /src 750 @1100000000
    f /src/x 640 "x" 1000:1000 @1200000000
    d /src/sub 700
    f /src/sub/y 600 "y"
    l /src/sub/rel -> ../x
    l /src/sub/abs -> /etc/passwd
"#;

#[test]
fn paths_and_directories() {
    check(
        "paths_and_directories",
        vec![
            case(
                "file to a new name",
                r#"f /a.txt 644 "a""#,
                "",
                FileActionCopy {
                    create_dest_path: true,
                    ..copy_action("/a.txt", "/b.txt")
                },
            ),
            case(
                "file to a destination ending in / goes inside, the directory is created",
                r#"f /a.txt 644 "a""#,
                "",
                FileActionCopy {
                    create_dest_path: true,
                    ..copy_action("/a.txt", "/dir/")
                },
            ),
            case(
                "file onto an existing directory goes inside",
                r#"f /a.txt 644 "a""#,
                "d /dir 711",
                copy_action("/a.txt", "/dir"),
            ),
            case(
                "missing destination parent without create_dest_path",
                r#"f /a.txt 644 "a""#,
                "",
                copy_action("/a.txt", "/missing/b.txt"),
            ),
            case(
                "create_dest_path creates every parent",
                r#"f /a.txt 644 "a""#,
                "",
                FileActionCopy {
                    create_dest_path: true,
                    ..copy_action("/a.txt", "/p/q/r.txt")
                },
            ),
            case(
                "directory contents to a new destination",
                TREE,
                "",
                FileActionCopy {
                    dir_copy_contents: true,
                    create_dest_path: true,
                    ..copy_action("/src", "/out")
                },
            ),
            case(
                "directory to a missing destination becomes it",
                TREE,
                "",
                FileActionCopy {
                    create_dest_path: true,
                    ..copy_action("/src", "/out")
                },
            ),
            case(
                "directory onto an existing directory goes inside",
                TREE,
                "d /out 755",
                copy_action("/src", "/out"),
            ),
            case(
                "directory contents merge into an existing directory, which keeps its mode and gets the source times",
                TREE,
                r#"
                    d /out 700 5:5
                    f /out/keep 644 "keep"
                    f /out/x 644 "old"
                "#,
                FileActionCopy {
                    dir_copy_contents: true,
                    ..copy_action("/src", "/out")
                },
            ),
            case(
                "a source ending in /. copies the contents",
                TREE,
                "d /out 755",
                copy_action("/src/.", "/out"),
            ),
            case(
                "the whole source root",
                TREE,
                "",
                dockerfile_copy("/", "/ctx/"),
            ),
            case(
                "Dockerfile COPY of a file into the image root",
                r#"f /a.txt 600 "a" 7:7"#,
                "d /etc 755",
                dockerfile_copy("a.txt", "/"),
            ),
        ],
    );
}

#[test]
fn links_and_special_files() {
    check(
        "links_and_special_files",
        vec![
            case(
                "a symbolic link source is followed with follow_symlink",
                r#"
                    d /real 755
                    f /real/f 644 "f"
                    l /link -> real
                "#,
                "",
                FileActionCopy {
                    follow_symlink: true,
                    dir_copy_contents: true,
                    create_dest_path: true,
                    ..copy_action("/link", "/out")
                },
            ),
            case(
                "a symbolic link source is copied as a link without follow_symlink",
                r#"
                    d /real 755
                    l /link -> real
                "#,
                "",
                FileActionCopy {
                    create_dest_path: true,
                    ..copy_action("/link", "/out")
                },
            ),
            case(
                "links inside a copied tree stay links, whatever they point to",
                TREE,
                "",
                FileActionCopy {
                    follow_symlink: true,
                    create_dest_path: true,
                    ..copy_action("/src/sub", "/out")
                },
            ),
            case(
                "hard links within one copy are preserved",
                r#"
                    d /d 755
                    f /d/a 644 "same" 3:3
                    h /d/b = /d/a
                    d /d/sub 755
                    h /d/sub/c = /d/a
                    f /d/lonely 644 "no"
                "#,
                "",
                FileActionCopy {
                    dir_copy_contents: true,
                    create_dest_path: true,
                    ..copy_action("/d", "/out")
                },
            ),
            case(
                "named pipes are recreated",
                "p /fifo 640 9:9",
                "",
                FileActionCopy {
                    create_dest_path: true,
                    ..copy_action("/fifo", "/out/fifo")
                },
            ),
            case(
                "extended attributes are copied",
                r#"
                    f /a 644 "a"
                    x /a user.greeting=hello
                    d /d 755
                    x /d user.kind=dir
                "#,
                "",
                FileActionCopy {
                    create_dest_path: true,
                    ..copy_action("/", "/out/")
                },
            ),
        ],
    );
}

#[test]
fn ownership_modes_and_times() {
    let passwd = r#"
        d /etc 755
        f /etc/passwd 644 "root:x:0:0::/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n"
        f /etc/group 644 "root:x:0:\ngrp:x:777:app\n"
    "#;
    check(
        "ownership_modes_and_times",
        vec![
            case(
                "without an owner the source owner is kept; created parents belong to root",
                TREE,
                "",
                FileActionCopy {
                    create_dest_path: true,
                    ..copy_action("/src", "/a/b/out")
                },
            ),
            case(
                "an owner by id applies to every entry and created parent",
                TREE,
                "",
                FileActionCopy {
                    owner: Some(chown_ids(5, 6)),
                    create_dest_path: true,
                    ..copy_action("/src", "/a/b/out")
                },
            ),
            case(
                "owner names resolve in the destination's /etc/passwd and /etc/group",
                r#"f /f 644 "f""#,
                passwd,
                FileActionCopy {
                    owner: Some(ChownOpt {
                        user: Some(UserOpt::ByName {
                            name: "app".into(),
                            input: 0,
                        }),
                        group: Some(UserOpt::ByName {
                            name: "grp".into(),
                            input: 0,
                        }),
                    }),
                    ..copy_action("/f", "/f")
                },
            ),
            case(
                "a user name alone gives its primary group",
                r#"f /f 644 "f""#,
                passwd,
                FileActionCopy {
                    owner: Some(ChownOpt {
                        user: Some(UserOpt::ByName {
                            name: "app".into(),
                            input: 0,
                        }),
                        group: None,
                    }),
                    ..copy_action("/f", "/f")
                },
            ),
            case(
                "an unknown user name is root, silently, as upstream",
                r#"f /f 644 "f""#,
                passwd,
                FileActionCopy {
                    owner: Some(ChownOpt {
                        user: Some(UserOpt::ByName {
                            name: "ghost".into(),
                            input: 0,
                        }),
                        group: None,
                    }),
                    ..copy_action("/f", "/f")
                },
            ),
            case(
                "an octal mode applies to files and directories",
                TREE,
                "",
                FileActionCopy {
                    mode: 0o755,
                    create_dest_path: true,
                    ..copy_action("/src", "/out")
                },
            ),
            case(
                "an octal mode with set-id bits",
                r#"f /tool 755 "t""#,
                "",
                FileActionCopy {
                    mode: 0o4750,
                    ..copy_action("/tool", "/tool")
                },
            ),
            case(
                "a symbolic mode applies per entry",
                TREE,
                "",
                FileActionCopy {
                    mode_str: "u+x,go+rX".into(),
                    create_dest_path: true,
                    ..copy_action("/src", "/out")
                },
            ),
            case(
                "the symbolic mode wins over the octal one",
                r#"f /f 600 "f""#,
                "",
                FileActionCopy {
                    mode: 0o777,
                    mode_str: "g+r".into(),
                    ..copy_action("/f", "/f")
                },
            ),
            case(
                "a timestamp applies to every copied entry and created parent",
                TREE,
                "",
                FileActionCopy {
                    timestamp: 1_500_000_000_000_000_000,
                    create_dest_path: true,
                    ..copy_action("/src", "/p/out")
                },
            ),
            case(
                "set-id bits of the source survive the change of owner",
                r#"f /su 4755 "s" 1:1"#,
                "",
                FileActionCopy {
                    owner: Some(chown_ids(2, 2)),
                    ..copy_action("/su", "/su")
                },
            ),
        ],
    );
}

#[test]
fn replacing_existing_paths() {
    check(
        "replacing_existing_paths",
        vec![
            case(
                "a file replaces a file",
                r#"f /f 644 "new""#,
                r#"f /f 600 "old" 4:4"#,
                copy_action("/f", "/f"),
            ),
            case(
                "a file in a tree replaces a symbolic link instead of writing through it",
                r#"
                    d /d 755
                    f /d/f 644 "new"
                "#,
                r#"
                    d /out 755
                    f /victim 644 "keep"
                    l /out/f -> /victim
                "#,
                FileActionCopy {
                    dir_copy_contents: true,
                    ..copy_action("/d", "/out")
                },
            ),
            case(
                "a directory does not replace a file",
                r#"
                    d /d 755
                    d /d/sub 755
                    f /d/sub/f 644 "f"
                "#,
                r#"
                    d /out 755
                    f /out/sub 644 "file"
                "#,
                FileActionCopy {
                    dir_copy_contents: true,
                    ..copy_action("/d", "/out")
                },
            ),
            case(
                "with always_replace_existing_dest_paths it does",
                r#"
                    d /d 755
                    d /d/sub 755
                    f /d/sub/f 644 "f"
                "#,
                r#"
                    d /out 755
                    f /out/sub 644 "file"
                "#,
                FileActionCopy {
                    dir_copy_contents: true,
                    always_replace_existing_dest_paths: true,
                    ..copy_action("/d", "/out")
                },
            ),
            case(
                "a file never replaces a directory",
                r#"
                    d /d 755
                    f /d/sub 644 "f"
                "#,
                r#"
                    d /out 755
                    d /out/sub 755
                    f /out/sub/keep 644 "keep"
                "#,
                FileActionCopy {
                    dir_copy_contents: true,
                    ..copy_action("/d", "/out")
                },
            ),
            case(
                "a directory replaces a symbolic link with always_replace_existing_dest_paths",
                r#"
                    d /d 755
                    d /d/sub 755
                    f /d/sub/f 644 "f"
                "#,
                r#"
                    d /out 755
                    d /elsewhere 755
                    l /out/sub -> /elsewhere
                "#,
                FileActionCopy {
                    dir_copy_contents: true,
                    always_replace_existing_dest_paths: true,
                    ..copy_action("/d", "/out")
                },
            ),
        ],
    );
}

#[test]
fn wildcards() {
    let tree = r#"
        f /a.txt 644 "a"
        f /b.txt 644 "b"
        f /c.md 644 "c"
        d /d1 755
        f /d1/one 644 "1"
        d /d2 755
        f /d2/two 644 "2"
        d /src 755
        d /src/p 755
        f /src/p/x.txt 644 "px"
        d /src/q 755
        f /src/q/x.txt 644 "qx"
        f /src/q/y.txt 644 "qy"
        l /linkdir -> src
    "#;
    let wild = |src: &str, dest: &str| FileActionCopy {
        allow_wildcard: true,
        create_dest_path: true,
        ..copy_action(src, dest)
    };
    check(
        "wildcards",
        vec![
            case(
                "several files into a directory",
                tree,
                "",
                wild("/*.txt", "/out/"),
            ),
            case("a class", tree, "", wild("/[ab].txt", "/out/")),
            case(
                "directories matched by a wildcard copy their contents with dir_copy_contents",
                tree,
                "",
                FileActionCopy {
                    dir_copy_contents: true,
                    ..wild("/d*", "/out/")
                },
            ),
            case(
                "a wildcard in a middle element",
                tree,
                "",
                wild("/src/*/x.txt", "/out/"),
            ),
            case("no match is an error", tree, "", wild("/*.nope", "/out/")),
            case(
                "no match is nothing with allow_empty_wildcard",
                tree,
                "",
                FileActionCopy {
                    allow_empty_wildcard: true,
                    ..wild("/*.nope", "/out/")
                },
            ),
            case(
                "a missing directory before the wildcard is an error",
                tree,
                "",
                FileActionCopy {
                    allow_empty_wildcard: true,
                    ..wild("/missing/*.txt", "/out/")
                },
            ),
            case(
                "the directory before the wildcard is followed when following links",
                tree,
                "",
                FileActionCopy {
                    follow_symlink: true,
                    ..wild("/linkdir/q/*", "/out/")
                },
            ),
            case(
                "an escaped wildcard is no wildcard, and stays escaped (as upstream)",
                r#"
                    f /star* 644 "s"
                    f /starx 644 "x"
                "#,
                "",
                wild("/star\\*", "/out/"),
            ),
        ],
    );
}

#[test]
fn include_and_exclude_patterns() {
    let tree = r#"
        d /src 755
        f /src/a.txt 644 "a"
        f /src/b.log 644 "b"
        d /src/sub 755
        f /src/sub/c.txt 644 "c"
        f /src/sub/keep.log 644 "k"
        d /src/deep 755
        d /src/deep/x 755
        f /src/deep/x/c 644 "c"
        d /src/deep/y 755
        f /src/deep/y/d 644 "d"
    "#;
    let with = |include: &[&str], exclude: &[&str]| FileActionCopy {
        include_patterns: include.iter().map(|s| (*s).to_owned()).collect(),
        exclude_patterns: exclude.iter().map(|s| (*s).to_owned()).collect(),
        dir_copy_contents: true,
        create_dest_path: true,
        ..copy_action("/src", "/out")
    };
    check(
        "include_and_exclude_patterns",
        vec![
            case(
                "exclude by extension at the top",
                tree,
                "",
                with(&[], &["*.log"]),
            ),
            case("exclude a directory", tree, "", with(&[], &["sub"])),
            case(
                "an exception brings a file back",
                tree,
                "",
                with(&[], &["sub", "!sub/keep.log"]),
            ),
            case(
                "include only matching entries",
                tree,
                "",
                with(&["*.txt"], &[]),
            ),
            case(
                "included paths get their parents, created lazily",
                tree,
                "",
                with(&["deep/*/c"], &[]),
            ),
            case(
                "include and exclude together",
                tree,
                "",
                with(&["sub", "a.txt"], &["**/*.log"]),
            ),
            case("a malformed pattern", tree, "", with(&[], &["["])),
        ],
    );
}
