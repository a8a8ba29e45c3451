//! Malicious layers: whatever their names, links and symlinks say, nothing is written,
//! changed or deleted outside the destination, in either whiteout mode.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{Raw, raw_tar, snapshot, tmpdir};
use kiln_diff::{WhiteoutMode, apply_layer};

/// What applying a case must give.
enum Expect {
    /// Success, with these paths (relative to the destination) of these kinds.
    Ok(Vec<(String, &'static str)>),
    /// Failure, with this text in the error chain.
    Err(&'static str),
}

struct Case {
    name: &'static str,
    entries: Vec<Raw>,
    expect: Expect,
}

fn ok(paths: &[(&str, &'static str)]) -> Expect {
    Expect::Ok(paths.iter().map(|(p, k)| (p.to_string(), *k)).collect())
}

/// The cases; `out` is the absolute path of the directory outside the destination and `rel`
/// the same path without its leading slash (where in-root resolution puts it).
fn cases(out: &str) -> Vec<Case> {
    let rel = out.trim_start_matches('/');
    let at = |p: &str| format!("{rel}/{p}");
    vec![
        Case {
            name: "dot-dot",
            entries: vec![Raw::file("../../outside/canary", "pwned")],
            expect: ok(&[("outside/canary", "file")]),
        },
        Case {
            name: "absolute name",
            entries: vec![Raw::file(&format!("{out}/canary"), "pwned")],
            expect: Expect::Ok(vec![(at("canary"), "file")]),
        },
        Case {
            name: "symlink to / then a file through it",
            entries: vec![
                Raw::symlink("root", "/"),
                Raw::file(&format!("root{out}/canary"), "pwned"),
            ],
            expect: Expect::Ok(vec![(at("canary"), "file"), ("root".into(), "symlink")]),
        },
        Case {
            name: "absolute symlink to outside then a file through it",
            entries: vec![Raw::symlink("esc", out), Raw::file("esc/canary", "pwned")],
            expect: Expect::Ok(vec![(at("canary"), "file")]),
        },
        Case {
            name: "relative symlink climbing out then a file through it",
            entries: vec![
                Raw::symlink("esc", "../../../../../../../../outside"),
                Raw::file("esc/canary", "pwned"),
            ],
            expect: ok(&[("outside/canary", "file")]),
        },
        Case {
            name: "absolute symlink chain",
            entries: vec![
                Raw::symlink("a", "/b"),
                Raw::symlink("b", "/c"),
                Raw::symlink("c", out),
                Raw::file("a/new", "pwned"),
            ],
            expect: Expect::Ok(vec![(at("new"), "file")]),
        },
        Case {
            name: "symlink into a symlinked directory chain",
            entries: vec![
                Raw::dir("d/"),
                Raw::symlink("d/up", "../.."),
                Raw::file("d/up/up/outside/canary", "pwned"),
            ],
            // `d/up` is the root (`..` stops there); the root has no `up`, so one is made.
            expect: ok(&[("up/outside/canary", "file")]),
        },
        Case {
            name: "hard link to /etc/passwd",
            entries: vec![Raw::hardlink("pw", "/etc/passwd")],
            expect: Expect::Err("pw"),
        },
        Case {
            name: "hard link climbing out",
            entries: vec![Raw::hardlink("h", "../outside/canary")],
            expect: Expect::Err("h"),
        },
        Case {
            name: "hard link through a symlink to outside",
            entries: vec![Raw::symlink("esc", out), Raw::hardlink("h", "esc/canary")],
            expect: Expect::Err("h"),
        },
        Case {
            name: "hard link to a symlink pointing outside, with a mode",
            entries: vec![
                Raw::symlink("s", &format!("{out}/canary")),
                Raw {
                    mode: 0o777,
                    ..Raw::hardlink("h", "s")
                },
            ],
            expect: ok(&[("h", "symlink"), ("s", "symlink")]),
        },
        Case {
            name: "file over a symlink to an outside file",
            entries: vec![
                Raw::symlink("f", &format!("{out}/canary")),
                Raw::file("f", "pwned"),
            ],
            expect: ok(&[("f", "file")]),
        },
        Case {
            name: "directory over a symlink to an outside directory",
            entries: vec![
                Raw::symlink("d", &format!("{out}/dir")),
                Raw {
                    mode: 0o777,
                    ..Raw::dir("d/")
                },
                Raw::file("d/x", "x"),
            ],
            expect: ok(&[("d", "dir"), ("d/x", "file")]),
        },
        Case {
            name: "whiteout through a symlink",
            entries: vec![Raw::symlink("w", out), Raw::file("w/.wh.canary", "")],
            expect: ok(&[("w", "symlink")]),
        },
        Case {
            name: "opaque marker through a symlink",
            entries: vec![Raw::symlink("o", out), Raw::file("o/.wh..wh..opq", "")],
            expect: ok(&[("o", "symlink")]),
        },
        Case {
            name: "whiteout of ..",
            entries: vec![Raw::file(".wh..", "")],
            expect: Expect::Err("invalid whiteout"),
        },
        Case {
            name: "whiteout of .. in a directory",
            entries: vec![Raw::dir("sub/"), Raw::file("sub/.wh..", "")],
            expect: Expect::Err("invalid whiteout"),
        },
        Case {
            name: "symlink loop",
            entries: vec![
                Raw::symlink("l1", "l2"),
                Raw::symlink("l2", "l1"),
                Raw::file("l1/x", "x"),
            ],
            expect: Expect::Err("l1/x"),
        },
        Case {
            name: "device node through a symlink",
            entries: vec![
                Raw::symlink("esc", out),
                Raw {
                    typeflag: b'6',
                    mode: 0o644,
                    ..Raw::file("esc/fifo", "")
                },
            ],
            expect: Expect::Ok(vec![(at("fifo"), "fifo")]),
        },
        Case {
            name: "PAX path climbing out",
            entries: vec![
                Raw::file("innocent", "pwned").with_pax("path", b"../../../outside/canary"),
            ],
            expect: ok(&[("outside/canary", "file")]),
        },
        Case {
            name: "xattr on a symlink pointing outside",
            entries: vec![
                Raw::symlink("sx", &format!("{out}/canary"))
                    .with_pax("SCHILY.xattr.trusted.evil", b"1"),
            ],
            expect: ok(&[("sx", "symlink")]),
        },
        Case {
            name: "root entry with a mode",
            entries: vec![
                Raw {
                    mode: 0o777,
                    ..Raw::dir("./")
                },
                Raw::file("./a", "a"),
            ],
            expect: ok(&[("a", "file")]),
        },
        Case {
            name: "overlayfs xattrs from the archive",
            entries: vec![
                Raw::dir("d/").with_pax("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            ],
            expect: ok(&[("d", "dir")]),
        },
    ]
}

fn kind_of(path: &Path) -> &'static str {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return "missing";
    };
    let ft = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "other"
    }
}

/// Applies one case in one mode; returns what went wrong.
fn check(index: usize, mode: WhiteoutMode) -> Vec<String> {
    let tmp = tmpdir();
    let outside = tmp.path().join("outside");
    let dest = tmp.path().join("dest");
    fs::create_dir_all(outside.join("dir")).unwrap();
    fs::create_dir(&dest).unwrap();
    fs::write(outside.join("canary"), "canary").unwrap();
    let out = outside.to_str().unwrap().to_string();
    let case = cases(&out).into_iter().nth(index).unwrap();
    let label = format!("{} ({mode:?})", case.name);

    let before = snapshot(tmp.path().join("outside").as_path());
    let passwd = fs::symlink_metadata("/etc/passwd").unwrap();
    let dest_mode = fs::symlink_metadata(&dest).unwrap().mode();

    let result = apply_layer(&raw_tar(&case.entries)[..], &dest, mode);

    let mut failures = Vec::new();
    let after = snapshot(&outside);
    for line in common::compare(&before, &after) {
        failures.push(format!("{label}: outside changed: {line}"));
    }
    let passwd_after = fs::symlink_metadata("/etc/passwd").unwrap();
    if (passwd.nlink(), passwd.mtime(), passwd.ino())
        != (
            passwd_after.nlink(),
            passwd_after.mtime(),
            passwd_after.ino(),
        )
    {
        failures.push(format!("{label}: /etc/passwd changed"));
    }
    if fs::symlink_metadata(&dest).unwrap().mode() != dest_mode {
        failures.push(format!("{label}: the destination's own mode changed"));
    }
    match (&case.expect, result) {
        (Expect::Ok(paths), Ok(_)) => {
            for (p, kind) in paths {
                let got = kind_of(&dest.join(p));
                if got != *kind {
                    failures.push(format!("{label}: {p} is {got}, expected {kind}"));
                }
            }
        }
        (Expect::Ok(_), Err(e)) => failures.push(format!("{label}: unexpected error: {e:?}")),
        (Expect::Err(text), Ok(_)) => failures.push(format!(
            "{label}: applied, expected an error about {text:?}"
        )),
        (Expect::Err(text), Err(e)) => {
            let mut chain = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                chain.push_str(&format!(": {s}"));
                source = s.source();
            }
            if !chain.contains(text) {
                failures.push(format!(
                    "{label}: error {chain:?} does not mention {text:?}"
                ));
            }
        }
    }
    failures
}

#[test]
fn malicious_layers_never_escape_the_destination() {
    let count = cases("/x").len();
    let mut failures = Vec::new();
    for index in 0..count {
        for mode in [WhiteoutMode::Delete, WhiteoutMode::Overlay] {
            failures.extend(check(index, mode));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
