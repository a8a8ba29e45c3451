//! Resolution against real trees: the union of the cases of the crates that each had their own
//! resolver (fileop, diff, executor, contenthash), for every upstream reading of `..` and of
//! missing components, plus link limits, the directory hook and a race against a swapped link.
//!
//! Every tree has an `outside` directory next to the root, and links that point at it by its
//! absolute host path or climb towards it; the expected results show them resolved inside the
//! root.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use kiln_fsroot::{
    Dir, DotDot, Error, Escape, Fill, GO_MAX_LINKS, InPath, LINUX_MAX_LINKS, Options, Policy,
    open_root, resolve, resolve_dir,
};

/// A root and the `outside` directory next to it.
struct World {
    _base: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

/// Builds the shared tree: `d` directories, `f` files, `l` symbolic links (`OUTSIDE` in a
/// target stands for the host path of the outside directory).
fn world() -> World {
    let base = tempfile::tempdir().expect("tempdir");
    let root = base.path().join("root");
    let outside = base.path().join("outside");
    fs::create_dir_all(outside.join("sub")).expect("mkdir outside");
    fs::write(outside.join("secret"), "host secret").expect("write secret");
    let outside_text = outside.display().to_string();
    let spec: &[(&str, &str, &str)] = &[
        ("d", "etc/real", ""),
        ("f", "etc/real/file", ""),
        ("f", "etc/passwd", ""),
        ("d", "usr/lib", ""),
        ("f", "file", ""),
        ("d", "deep/dir", ""),
        ("l", "lib", "/usr/lib"),
        ("l", "etc/escape", "../../../../.."),
        ("l", "abs-escape", "/etc/../../../outside"),
        ("l", "host", "OUTSIDE"),
        ("l", "etc/rel", "real"),
        ("l", "loop1", "loop2"),
        ("l", "loop2", "loop1"),
        ("l", "self", "self"),
        ("l", "etc/resolv.conf", "../run/stub.conf"),
        ("l", "chain1", "chain2"),
        ("l", "chain2", "chain3"),
        ("l", "chain3", "/etc/real"),
        ("l", "sub", "deep/dir"),
        ("l", "x", "sub/../t"),
        ("l", "filelink", "/file"),
        ("l", "up", ".."),
        ("l", "dotlink", "."),
        ("l", "rootlink", "/"),
        ("l", "trailing", "etc/real/"),
    ];
    fs::create_dir(&root).expect("mkdir root");
    for (kind, path, target) in spec {
        let at = root.join(path);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).expect("mkdir parent");
        }
        match *kind {
            "d" => fs::create_dir_all(&at).expect("mkdir"),
            "f" => fs::write(&at, path).expect("write"),
            _ => symlink(target.replace("OUTSIDE", &outside_text), &at).expect("symlink"),
        }
    }
    // A chain of 256 links: `long0` -> `long1` -> ... -> `long255` -> `long-end`.
    fs::create_dir(root.join("long-end")).expect("mkdir long-end");
    for i in 0..=GO_MAX_LINKS {
        let target = if i == GO_MAX_LINKS {
            "long-end".to_owned()
        } else {
            format!("long{}", i + 1)
        };
        symlink(target, root.join(format!("long{i}"))).expect("symlink long");
    }
    World {
        _base: base,
        root,
        outside,
    }
}

/// What a resolution gives, as text: the path inside the root, or `error: ` and the message.
fn outcome(result: Result<InPath, Error>) -> String {
    match result {
        Ok(path) => path.display(),
        Err(e) => format!("error: {e}"),
    }
}

/// Resolves every input with `options` and fails with the list of the cases that differ.
fn check(w: &World, name: &str, options: &Options, cases: &[(&str, &str)]) {
    let root = open_root(&w.root).expect("open root");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(input, want)| {
            let got = outcome(resolve(root.as_fd(), input.as_bytes(), options));
            (got != *want).then(|| format!("{name}: {input:?} gave {got:?}, want {want:?}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} case(s) failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

const LOOP1: &str = "error: too many levels of symbolic links resolving \"/loop1/x\"";

#[test]
fn continuity_reads_dotdot_lexically() {
    let w = world();
    check(
        &w,
        "continuity",
        &Options::continuity(),
        &[
            ("", "/"),
            ("/", "/"),
            ("/etc", "/etc"),
            ("etc/./real/", "/etc/real"),
            ("/lib/x", "/usr/lib/x"),
            ("/etc/escape/etc", "/etc"),
            ("/abs-escape/x", "/outside/x"),
            ("/host/secret", &format!("{}/secret", w.outside.display())),
            ("/etc/rel/file", "/etc/real/file"),
            ("/missing/../etc", "/etc"),
            ("/missing/deeper/../x", "/missing/x"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/etc/resolv.conf", "/run/stub.conf"),
            ("/loop1/x", LOOP1),
            (
                "/self",
                "error: too many levels of symbolic links resolving \"/self\"",
            ),
            ("/chain1/file", "/etc/real/file"),
            ("/trailing", "/etc/real"),
            // A target's `..` cancels lexically, even after a link (`sub` -> `deep/dir`).
            ("/x", "/t"),
            ("/sub/..", "/"),
            ("/lib/../etc", "/etc"),
            ("/file/x", "error: /file is not a directory"),
            ("/filelink/x", "error: /file is not a directory"),
            ("/missing/../lib/x", "/usr/lib/x"),
            ("/up/up/etc", "/etc"),
            ("/dotlink/dotlink/etc/rel", "/etc/real"),
            ("/rootlink/rootlink/lib", "/usr/lib"),
            ("/long1", "/long-end"),
            (
                "/long0",
                "error: too many levels of symbolic links resolving \"/long0\"",
            ),
        ],
    );
}

#[test]
fn the_last_link_is_kept_when_asked() {
    let w = world();
    for (name, dotdot) in [
        ("continuity", DotDot::Lexical),
        ("securejoin", DotDot::Resolved),
    ] {
        check(
            &w,
            name,
            &Options {
                follow_last: false,
                dotdot,
                ..Options::continuity()
            },
            &[
                ("/lib", "/lib"),
                // A trailing slash does not force following.
                ("/lib/", "/lib"),
                ("/lib/.", "/lib"),
                ("/etc/rel", "/etc/rel"),
                ("/chain1", "/chain1"),
                ("/self", "/self"),
                ("/etc/resolv.conf", "/etc/resolv.conf"),
                ("/lib/x", "/usr/lib/x"),
                ("/chain1/file", "/etc/real/file"),
                ("/host", "/host"),
            ],
        );
    }
}

#[test]
fn securejoin_reads_dotdot_where_it_is_met() {
    let w = world();
    check(
        &w,
        "securejoin",
        &Options::securejoin(),
        &[
            ("/", "/"),
            ("etc/./real/", "/etc/real"),
            ("/lib/x", "/usr/lib/x"),
            ("/lib/../etc", "/usr/etc"),
            ("/x", "/deep/t"),
            ("/sub/..", "/deep"),
            ("/etc/escape/etc", "/etc"),
            ("/abs-escape/x", "/outside/x"),
            ("/host/secret", &format!("{}/secret", w.outside.display())),
            ("/etc/rel/file", "/etc/real/file"),
            ("/../../etc/hosts", "/etc/hosts"),
            ("/etc/resolv.conf", "/run/stub.conf"),
            ("/loop1/x", LOOP1),
            // Below a file or a missing directory, names are kept; `..` climbs back, and a
            // link met after it is still followed.
            ("/file/x", "/file/x"),
            ("/file/../etc", "/etc"),
            ("/missing/../etc", "/etc"),
            ("/missing/../lib/x", "/usr/lib/x"),
            ("/missing/a/../../lib", "/usr/lib"),
            ("/up/up/etc", "/etc"),
            ("/rootlink/lib/../lib", "/usr/lib"),
        ],
    );
}

#[test]
fn missing_components_can_fail() {
    let w = world();
    let options = Options {
        missing: Policy::Fail,
        not_dir: Policy::Fail,
        ..Options::securejoin()
    };
    check(
        &w,
        "strict",
        &options,
        &[
            ("/etc/passwd", "/etc/passwd"),
            ("/missing", "error: /missing does not exist"),
            ("/etc/missing/x", "error: /etc/missing does not exist"),
            ("/file/x", "error: /file is not a directory"),
            ("/file/..", "error: /file is not a directory"),
            ("/etc/resolv.conf", "error: /run does not exist"),
            ("/missing/../etc", "error: /missing does not exist"),
        ],
    );
    check(
        &w,
        "strict, last kept",
        &Options {
            follow_last: false,
            ..options
        },
        &[("/etc/resolv.conf", "/etc/resolv.conf")],
    );
}

#[test]
fn climbing_out_can_fail() {
    let w = world();
    for (name, dotdot) in [("lexical", DotDot::Lexical), ("resolved", DotDot::Resolved)] {
        check(
            &w,
            name,
            &Options {
                follow_last: false,
                escape: Escape::Fail,
                dotdot,
                ..Options::continuity()
            },
            &[
                ("../x", "error: \"../x\" leads outside the root"),
                ("/up/x", "error: \"/up/x\" leads outside the root"),
                (
                    "/etc/escape/x",
                    "error: \"/etc/escape/x\" leads outside the root",
                ),
                (
                    "/abs-escape/x",
                    "error: \"/abs-escape/x\" leads outside the root",
                ),
                ("/lib/x", "/usr/lib/x"),
                ("a/../b", "/b"),
                ("/etc/rel/../passwd", "/etc/passwd"),
            ],
        );
    }
}

#[test]
fn link_limits() {
    let w = world();
    let limited = |max_links| Options {
        max_links,
        ..Options::securejoin()
    };
    check(
        &w,
        "3 links",
        &limited(3),
        &[("/chain1/file", "/etc/real/file")],
    );
    check(
        &w,
        "2 links",
        &limited(2),
        &[(
            "/chain1/file",
            "error: too many levels of symbolic links resolving \"/chain1/file\"",
        )],
    );
    check(
        &w,
        "0 links",
        &limited(0),
        &[("/etc/passwd", "/etc/passwd")],
    );
}

/// The host path a descriptor names, from `/proc/self/fd`.
fn fd_path(dir: &Dir) -> PathBuf {
    fs::read_link(format!("/proc/self/fd/{}", dir.fd.as_raw_fd())).expect("readlink fd")
}

fn strict_dirs() -> Options {
    Options {
        missing: Policy::Fail,
        not_dir: Policy::Fail,
        max_links: LINUX_MAX_LINKS,
        ..Options::securejoin()
    }
}

#[test]
fn directories_resolve_open() {
    let w = world();
    let root = open_root(&w.root).expect("open root");
    let real_root = fs::canonicalize(&w.root).expect("canonicalize");
    // The absolute host path of `outside` starts with a directory the root does not have.
    let host_top = w
        .outside
        .components()
        .nth(1)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    let host_missing = format!("error: /{host_top} does not exist");
    let cases: &[(&str, &str)] = &[
        ("", "/"),
        ("etc/rel", "/etc/real"),
        ("lib", "/usr/lib"),
        ("chain1", "/etc/real"),
        ("trailing", "/etc/real"),
        ("rootlink/up/etc", "/etc"),
        ("file", "error: /file is not a directory"),
        ("filelink", "error: /file is not a directory"),
        ("missing/a", "error: /missing does not exist"),
        ("etc/resolv.conf", "error: /run does not exist"),
        ("abs-escape/..", "error: /outside does not exist"),
        ("host", &host_missing),
    ];
    let mut failures = Vec::new();
    for (input, want) in cases {
        let got = resolve_dir(
            root.as_fd(),
            input.as_bytes(),
            &strict_dirs(),
            &mut |_, _, _| Ok(Fill::Absent),
        );
        let shown = match &got {
            Ok(dir) => {
                let host = real_root.join(dir.path.to_path_buf());
                if fd_path(dir) != host {
                    failures.push(format!(
                        "{input:?}: descriptor names {}, want {}",
                        fd_path(dir).display(),
                        host.display()
                    ));
                }
                dir.path.display()
            }
            Err(e) => format!("error: {e}"),
        };
        if shown != *want {
            failures.push(format!("{input:?} gave {shown:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_hook_fills_in_missing_directories() {
    let w = world();
    let root = open_root(&w.root).expect("open root");
    let mut asked = Vec::new();
    let dir = resolve_dir(
        root.as_fd(),
        b"new/a/../b/lower/c",
        &strict_dirs(),
        &mut |at, parent, name| {
            asked.push(parent.join(name.as_encoded_bytes()).display());
            if name == "lower" {
                return Ok(Fill::Link(b"../../etc/real".to_vec()));
            }
            rustix::fs::mkdirat(at, name, rustix::fs::Mode::from_raw_mode(0o755))?;
            Ok(Fill::Created)
        },
    )
    .expect("resolve with the hook");
    assert_eq!(dir.path.display(), "/etc/real/c");
    assert_eq!(
        asked,
        ["/new", "/new/a", "/new/b", "/new/b/lower", "/etc/real/c"]
    );
    assert!(w.root.join("new/a").is_dir() && w.root.join("etc/real/c").is_dir());
    assert_eq!(
        fd_path(&dir),
        fs::canonicalize(&w.root)
            .expect("canonicalize")
            .join("etc/real/c")
    );

    // A hook error stops resolution and keeps the system error.
    let err = resolve_dir(root.as_fd(), b"none/x", &strict_dirs(), &mut |_, _, _| {
        Err(io::Error::from_raw_os_error(libc_eacces()))
    })
    .expect_err("the hook fails");
    assert_eq!(
        err.to_string(),
        "fill in /none: Permission denied (os error 13)"
    );
    assert_eq!(err.into_io().raw_os_error(), Some(libc_eacces()));

    // Links supplied by the hook count towards the limit.
    let err = resolve_dir(root.as_fd(), b"spin", &strict_dirs(), &mut |_, _, _| {
        Ok(Fill::Link(b"spin".to_vec()))
    })
    .expect_err("a loop through the hook");
    assert!(matches!(err, Error::TooManyLinks { .. }), "{err}");
}

/// `EACCES` (13 on every Linux architecture).
fn libc_eacces() -> i32 {
    13
}

#[test]
fn errors_map_to_system_errors() {
    let w = world();
    let root = open_root(&w.root).expect("open root");
    let strict = Options {
        missing: Policy::Fail,
        not_dir: Policy::Fail,
        escape: Escape::Fail,
        ..Options::securejoin()
    };
    let failures: Vec<String> = [("loop1", 40), ("file/x", 20), ("missing", 2), ("up", 18)]
        .iter()
        .filter_map(|(input, errno)| {
            let got = resolve(root.as_fd(), input.as_bytes(), &strict)
                .map_err(|e| e.into_io().raw_os_error());
            (got != Err(Some(*errno)))
                .then(|| format!("{input:?} gave {got:?}, want errno {errno}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    match resolve(root.as_fd(), b"file/x", &strict) {
        Err(Error::NotADirectory { path, next }) => {
            assert_eq!(path.display(), "/file");
            assert_eq!(next.as_deref(), Some(OsStr::new("x")));
        }
        other => panic!("want NotADirectory, got {other:?}"),
    }
}

/// A thread keeps swapping a directory for a link to the outside directory (which has the same
/// layout) while directories below it are resolved: every resolution either fails or yields a
/// descriptor inside the root.
#[test]
fn a_link_swapped_in_during_resolution_never_leads_outside() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let w = world();
    fs::create_dir_all(w.root.join("d/sub")).expect("mkdir d/sub");
    // Relative, so that a kernel lookup would follow it out of the root.
    symlink("../outside", w.root.join("d.link")).expect("symlink");
    let real_root = fs::canonicalize(&w.root).expect("canonicalize");
    let root = open_root(&w.root).expect("open root");

    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = Arc::clone(&stop);
        let base = w.root.clone();
        std::thread::spawn(move || {
            let (d, tmp, link) = (base.join("d"), base.join("d.tmp"), base.join("d.link"));
            while !stop.load(Ordering::Relaxed) {
                let _ = fs::rename(&d, &tmp);
                let _ = fs::rename(&link, &d);
                let _ = fs::rename(&d, &link);
                let _ = fs::rename(&tmp, &d);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_millis(700);
    let (mut rounds, mut resolved) = (0, 0);
    let mut escapes = Vec::new();
    while Instant::now() < deadline && rounds < 20_000 {
        rounds += 1;
        for options in [Options::securejoin(), Options::continuity()] {
            let Ok(dir) = resolve_dir(root.as_fd(), b"d/sub", &options, &mut |_, _, _| {
                Ok(Fill::Absent)
            }) else {
                continue;
            };
            resolved += 1;
            let host = fd_path(&dir);
            if !host.starts_with(&real_root) {
                escapes.push(host);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().expect("racer thread");
    assert!(escapes.is_empty(), "escaped to {escapes:?}");
    assert!(resolved > 0, "no resolution succeeded in {rounds} rounds");
    assert_eq!(
        fs::read_to_string(w.outside.join("secret")).expect("secret"),
        "host secret"
    );
}

#[test]
fn roots_open_through_host_links() {
    let w = world();
    let alias = w.root.with_file_name("alias");
    symlink(&w.root, &alias).expect("symlink alias");
    let root = open_root(&alias).expect("open root through a link");
    assert_eq!(
        outcome(resolve(root.as_fd(), b"lib", &Options::securejoin())),
        "/usr/lib"
    );
    let missing = open_root(Path::new("/nonexistent-kiln-root")).expect_err("no such root");
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);
}
