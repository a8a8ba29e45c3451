//! Behaviour of the snapshotter with both drivers, through real mounts (run as root).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::{Change, Fixture, listing};
use kiln_snapshot::{Driver, DriverChoice, Error, Kind, Mount, Snapshotter, with_temp_mount};

/// One chain of layers (each applied on the previous one) and the listing a view of the last
/// one must show.
struct ChainCase {
    name: &'static str,
    layers: Vec<Vec<Change>>,
    expected: Vec<&'static str>,
}

fn chain_cases() -> Vec<ChainCase> {
    use Change::*;
    vec![
        ChainCase {
            name: "files of every layer are visible, later ones win",
            layers: vec![
                vec![Write("a", "1"), Write("dir/b", "b1"), Mkdir("empty")],
                vec![Write("a", "2"), Write("dir/c", "c2")],
                vec![Write("d", "3"), Symlink("link", "dir/b")],
            ],
            expected: vec![
                "a file \"2\" 644 0:0",
                "d file \"3\" 644 0:0",
                "dir dir 755 0:0",
                "dir/b file \"b1\" 644 0:0",
                "dir/c file \"c2\" 644 0:0",
                "empty dir 755 0:0",
                "link symlink -> dir/b 0:0",
            ],
        },
        ChainCase {
            name: "deletions in an upper layer hide lower files (whiteouts)",
            layers: vec![
                vec![
                    Write("keep", "k"),
                    Write("gone", "g"),
                    Write("dir/x", "x"),
                    Write("dir/y", "y"),
                ],
                vec![Remove("gone"), Remove("dir/x")],
                vec![Write("new", "n")],
            ],
            expected: vec![
                "dir dir 755 0:0",
                "dir/y file \"y\" 644 0:0",
                "keep file \"k\" 644 0:0",
                "new file \"n\" 644 0:0",
            ],
        },
        ChainCase {
            name: "a directory removed and made again hides its old contents (opaque)",
            layers: vec![
                vec![Write("dir/old1", "1"), Write("dir/sub/old2", "2")],
                vec![Remove("dir"), Write("dir/fresh", "f")],
            ],
            expected: vec!["dir dir 755 0:0", "dir/fresh file \"f\" 644 0:0"],
        },
        ChainCase {
            name: "a file replaced by a directory and modes changed",
            layers: vec![
                vec![Write("thing", "file"), Write("script", "#!/bin/sh")],
                vec![
                    Remove("thing"),
                    Write("thing/inside", "i"),
                    Chmod("script", 0o755),
                ],
            ],
            expected: vec![
                "script file \"#!/bin/sh\" 755 0:0",
                "thing dir 755 0:0",
                "thing/inside file \"i\" 644 0:0",
            ],
        },
    ]
}

/// Applies the layers of a case as a chain of committed snapshots and returns what a view of
/// the top shows, or a description of the mismatch.
fn check_chain(fixture: &Fixture, case: &ChainCase, prefix: &str) -> Option<String> {
    let mut parent: Option<String> = None;
    for (i, changes) in case.layers.iter().enumerate() {
        let name = format!("{prefix}-{i}");
        fixture.layer(&name, parent.as_deref(), changes);
        parent = Some(name);
    }
    let got = fixture.view_listing(&format!("{prefix}-view"), parent.as_deref());
    (got != case.expected)
        .then(|| format!("{}: got {got:#?}, want {:#?}", case.name, case.expected))
}

fn check_chains(choice: DriverChoice, driver: Driver) {
    let fixture = Fixture::new(choice);
    assert_eq!(fixture.snapshotter.driver(), driver);
    let failures: Vec<String> = chain_cases()
        .iter()
        .enumerate()
        .filter_map(|(i, case)| check_chain(&fixture, case, &format!("case{i}")))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn chains_through_overlay() {
    check_chains(DriverChoice::Overlay, Driver::Overlay);
}

#[test]
fn chains_through_copies() {
    check_chains(DriverChoice::Copy, Driver::Copy);
}

/// The mounts of each kind of snapshot, with the root directory replaced by `<root>`.
fn mounts_of(fixture: &Fixture, mounts: Vec<Mount>) -> Vec<Mount> {
    let root = fixture.snapshotter.root().to_string_lossy().into_owned();
    mounts
        .into_iter()
        .map(|m| Mount {
            kind: m.kind,
            source: m.source.replace(&root, "<root>"),
            options: m
                .options
                .iter()
                .map(|o| o.replace(&root, "<root>"))
                .collect(),
        })
        .collect()
}

fn check_mounts(choice: DriverChoice) -> Vec<(String, Vec<Mount>)> {
    let fixture = Fixture::new(choice);
    let s = &fixture.snapshotter;
    fixture.layer("base", None, &[Change::Write("a", "a")]);
    fixture.layer("mid", Some("base"), &[Change::Write("b", "b")]);
    let cases: Vec<(&str, Vec<Mount>)> = vec![
        (
            "prepare without parent",
            s.prepare("k1", None).expect("prepare"),
        ),
        (
            "prepare on one parent",
            s.prepare("k2", Some("base")).expect("prepare"),
        ),
        (
            "prepare on a chain",
            s.prepare("k3", Some("mid")).expect("prepare"),
        ),
        ("view without parent", s.view("v1", None).expect("view")),
        (
            "view of one parent",
            s.view("v2", Some("base")).expect("view"),
        ),
        ("view of a chain", s.view("v3", Some("mid")).expect("view")),
        ("mounts of k3 again", s.mounts("k3").expect("mounts")),
    ];
    cases
        .into_iter()
        .map(|(name, mounts)| (name.to_owned(), mounts_of(&fixture, mounts)))
        .collect()
}

#[test]
fn mounts_of_each_kind_overlay() {
    let mounts = check_mounts(DriverChoice::Overlay);
    // `index=off` comes first where the kernel knows the option; leave it out of the snapshot.
    let mounts: Vec<(String, Vec<Mount>)> = mounts
        .into_iter()
        .map(|(name, ms)| {
            let ms = ms
                .into_iter()
                .map(|mut m| {
                    m.options.retain(|o| o != "index=off");
                    m
                })
                .collect();
            (name, ms)
        })
        .collect();
    insta::assert_json_snapshot!(mounts);
}

#[test]
fn mounts_of_each_kind_copy() {
    insta::assert_json_snapshot!(check_mounts(DriverChoice::Copy));
}

/// What an operation must fail with.
fn check_error(name: &str, got: Result<(), Error>, want: &str) -> Option<String> {
    match got {
        Err(e) if e.to_string() == want => None,
        other => Some(format!("{name}: got {other:?}, want error {want:?}")),
    }
}

#[test]
fn refusals() {
    let fixture = Fixture::new(DriverChoice::Auto);
    let s = &fixture.snapshotter;
    fixture.layer("parent", None, &[Change::Write("a", "a")]);
    fixture.layer("child", Some("parent"), &[]);
    s.prepare("active", Some("child")).expect("prepare");
    s.view("view", Some("child")).expect("view");
    let cases = vec![
        (
            "remove a snapshot with children",
            s.remove("parent"),
            "cannot remove snapshot \"parent\": it is the parent of [\"child\"]",
        ),
        (
            "remove a snapshot with an active child and a view",
            s.remove("child"),
            "cannot remove snapshot \"child\": it is the parent of [\"active\", \"view\"]",
        ),
        (
            "prepare an existing key",
            s.prepare("active", None).map(drop),
            "snapshot \"active\" already exists",
        ),
        (
            "prepare on an active parent",
            s.prepare("x", Some("active")).map(drop),
            "parent \"active\" is not a committed snapshot",
        ),
        (
            "view of a missing parent",
            s.view("y", Some("missing")).map(drop),
            "snapshot \"missing\" not found",
        ),
        (
            "commit a view",
            s.commit("z", "view"),
            "snapshot \"view\" is not active",
        ),
        (
            "commit onto an existing name",
            s.commit("parent", "active"),
            "snapshot \"parent\" already exists",
        ),
        (
            "mounts of a committed snapshot",
            s.mounts("parent").map(drop),
            "snapshot \"parent\" is committed: only active snapshots and views have mounts",
        ),
        (
            "remove a missing snapshot",
            s.remove("missing"),
            "snapshot \"missing\" not found",
        ),
        (
            "an empty key",
            s.prepare("", None).map(drop),
            "invalid snapshot key \"\": keys must be non-empty and must not contain NUL",
        ),
    ];
    let failures: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, got, want)| check_error(name, got, want))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");

    // Removing bottom-up works.
    for key in ["active", "view", "child", "parent"] {
        s.remove(key).expect("remove");
    }
    assert!(s.walk().expect("walk").is_empty());
    let left = fs::read_dir(s.root().join("snapshots"))
        .expect("read")
        .count();
    assert_eq!(left, 0, "directories left after removing every snapshot");
}

#[test]
fn stat_walk_labels_and_usage() {
    let fixture = Fixture::new(DriverChoice::Overlay);
    let s = &fixture.snapshotter;
    fixture.layer("base", None, &[Change::Write("small", "x")]);
    let mounts = s.prepare("work", Some("base")).expect("prepare");
    let before = s.usage("work").expect("usage");
    with_temp_mount(&mounts, |root| {
        fs::write(root.join("big"), vec![1u8; 300_000])
    })
    .expect("mount")
    .expect("write");
    let after = s.usage("work").expect("usage");
    assert!(
        after >= before + 300_000,
        "usage went from {before} to {after}"
    );

    let info = s
        .update_labels("work", |labels| {
            labels.insert("kiln.ref".to_owned(), "r1".to_owned());
        })
        .expect("labels");
    assert_eq!(info.labels.get("kiln.ref").map(String::as_str), Some("r1"));
    s.commit("top", "work").expect("commit");
    let top = s.stat("top").expect("stat");
    assert_eq!(
        (top.kind, top.parent.as_deref()),
        (Kind::Committed, Some("base"))
    );
    assert_eq!(top.labels.get("kiln.ref").map(String::as_str), Some("r1"));
    assert_eq!(s.usage("top").expect("usage"), after);
    s.view("look", Some("top")).expect("view");
    assert_eq!(s.usage("look").expect("usage"), 0);
    let walked: Vec<(String, Kind, Option<String>)> = s
        .walk()
        .expect("walk")
        .into_iter()
        .map(|i| (i.name, i.kind, i.parent))
        .collect();
    assert_eq!(
        walked,
        vec![
            ("base".to_owned(), Kind::Committed, None),
            ("look".to_owned(), Kind::View, Some("top".to_owned())),
            ("top".to_owned(), Kind::Committed, Some("base".to_owned())),
        ]
    );
    assert!(matches!(s.stat("work"), Err(Error::NotFound { .. })));
    let upper = s.upper_dir("top").expect("upper dir");
    assert_eq!(
        fs::read(upper.join("big")).map(|b| b.len()).ok(),
        Some(300_000)
    );
    assert!(
        !upper.join("small").exists(),
        "the upper dir holds only the layer's own changes"
    );
}

/// A crash between renaming a directory into place and committing the transaction leaves a
/// directory without a record; temporary directories are left by crashes before that.
#[test]
fn crash_leaves_directories_without_metadata() {
    let fixture = Fixture::new(DriverChoice::Auto);
    fixture.layer("kept", None, &[Change::Write("a", "a")]);
    let snapshots = fixture.snapshotter.root().join("snapshots");
    for orphan in ["777", "new-abc123", "check-x"] {
        fs::create_dir_all(snapshots.join(orphan).join("fs/deep")).expect("orphan");
        fs::write(snapshots.join(orphan).join("fs/deep/file"), b"junk").expect("orphan file");
    }
    let fixture = fixture.reopen(DriverChoice::Auto);
    let recovery = fixture.snapshotter.recovery().clone();
    let removed: Vec<String> = recovery
        .removed_directories
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(removed, vec!["777", "check-x", "new-abc123"]);
    assert!(recovery.dropped_snapshots.is_empty());
    assert_eq!(fs::read_dir(&snapshots).expect("read").count(), 1);
    assert_eq!(
        fixture.view_listing("v", Some("kept")),
        vec!["a file \"a\" 644 0:0"]
    );
}

/// A process killed during the overlayfs check of `open` leaves the check's test mount in the
/// snapshotter's directory. The next open unmounts it before it removes the check's directory
/// (which it could not remove with the mount inside, so that every later open failed).
#[test]
fn crash_during_the_overlay_check_leaves_a_mount() {
    let fixture = Fixture::new(DriverChoice::Overlay);
    fixture.layer("kept", None, &[Change::Write("a", "a")]);
    let snapshots = fs::canonicalize(fixture.snapshotter.root().join("snapshots")).expect("path");
    let check = snapshots.join("check-killed");
    for dir in ["lower", "upper", "work", "merged"] {
        fs::create_dir_all(check.join(dir)).expect("check directory");
    }
    fs::write(check.join("lower/f"), b"f").expect("lower file");
    let overlay = Mount {
        kind: "overlay".to_owned(),
        source: "overlay".to_owned(),
        options: vec![
            format!("lowerdir={}", check.join("lower").display()),
            format!("upperdir={}", check.join("upper").display()),
            format!("workdir={}", check.join("work").display()),
        ],
    };
    kiln_snapshot::mount_all(&[overlay], &check.join("merged")).expect("mount");
    assert_eq!(
        kiln_snapshot::mounts_under(&snapshots).expect("mount table"),
        vec![check.join("merged")]
    );

    let fixture = fixture.reopen(DriverChoice::Overlay);
    let recovery = fixture.snapshotter.recovery().clone();
    assert_eq!(recovery.unmounted, vec![check.join("merged")]);
    assert_eq!(recovery.removed_directories, vec![check.clone()]);
    assert_eq!(
        kiln_snapshot::mounts_under(&snapshots).expect("mount table"),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        fixture.view_listing("v", Some("kept")),
        vec!["a file \"a\" 644 0:0"]
    );
}

/// Records whose directory is gone (damage from outside) are dropped with their descendants
/// on open; unrelated snapshots stay usable.
#[test]
fn crash_leaves_metadata_without_directories() {
    let fixture = Fixture::new(DriverChoice::Auto);
    fixture.layer("lost", None, &[Change::Write("a", "a")]);
    fixture.layer("lost-child", Some("lost"), &[Change::Write("b", "b")]);
    fixture
        .snapshotter
        .prepare("lost-grandchild", Some("lost-child"))
        .expect("prepare");
    fixture.layer("fine", None, &[Change::Write("c", "c")]);
    let lost_dir = fixture
        .snapshotter
        .upper_dir("lost")
        .expect("upper dir")
        .parent()
        .map(|p| p.to_owned())
        .expect("snapshot directory");
    fs::remove_dir_all(&lost_dir).expect("damage");

    let fixture = fixture.reopen(DriverChoice::Auto);
    let s = &fixture.snapshotter;
    assert_eq!(
        s.recovery().dropped_snapshots,
        vec!["lost", "lost-child", "lost-grandchild"]
    );
    assert_eq!(
        s.recovery().removed_directories.len(),
        2,
        "{:?}",
        s.recovery()
    );
    let names: Vec<String> = s
        .walk()
        .expect("walk")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["fine"]);
    assert_eq!(
        fixture.view_listing("v", Some("fine")),
        vec!["c file \"c\" 644 0:0"]
    );
    // The dropped names can be used again.
    fixture.layer("lost", None, &[Change::Write("again", "1")]);
}

/// With overlayfs unavailable under the root (here: the root is on an overlayfs mount,
/// which cannot hold an upper directory), `Auto` falls back to the copying driver and
/// `Overlay` is refused.
#[test]
fn driver_fallback_when_overlay_is_unavailable() {
    common::require_root();
    let dir = tempfile::Builder::new()
        .prefix("kiln-snapshot-nested-")
        .tempdir_in("/var/tmp")
        .expect("temporary directory");
    for sub in ["lower", "upper", "work", "merged"] {
        fs::create_dir(dir.path().join(sub)).expect("mkdir");
    }
    let outer = Mount {
        kind: "overlay".to_owned(),
        source: "overlay".to_owned(),
        options: vec![
            format!("lowerdir={}", dir.path().join("lower").display()),
            format!("upperdir={}", dir.path().join("upper").display()),
            format!("workdir={}", dir.path().join("work").display()),
        ],
    };
    let merged = dir.path().join("merged");
    kiln_snapshot::mount_all(&[outer], &merged).expect("mount the outer overlay");
    let outcome = std::panic::catch_unwind(|| {
        let db =
            std::sync::Arc::new(redb::Database::create(dir.path().join("meta.redb")).expect("db"));
        let root = merged.join("root");
        let refused = Snapshotter::open(&root, db.clone(), DriverChoice::Overlay);
        assert!(
            matches!(&refused, Err(Error::OverlayUnavailable { .. })),
            "overlay on overlay was not refused: {refused:?}"
        );
        let auto = Snapshotter::open(&root, db.clone(), DriverChoice::Auto).expect("open");
        assert_eq!(auto.driver(), Driver::Copy);
        let mounts = auto.prepare("k", None).expect("prepare");
        with_temp_mount(&mounts, |m| fs::write(m.join("f"), b"copied"))
            .expect("mount")
            .expect("write");
        auto.commit("c", "k").expect("commit");
        let mounts = auto.prepare("k2", Some("c")).expect("prepare on parent");
        let content =
            with_temp_mount(&mounts, |m| fs::read_to_string(m.join("f")).ok()).expect("mount");
        assert_eq!(content.as_deref(), Some("copied"));
    });
    kiln_snapshot::unmount(&merged).expect("unmount the outer overlay");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn auto_picks_overlay_on_a_disk_and_refuses_a_driver_change() {
    let fixture = Fixture::new(DriverChoice::Auto);
    assert_eq!(fixture.snapshotter.driver(), Driver::Overlay);
    fixture.layer("one", None, &[Change::Write("a", "a")]);
    let Fixture {
        dir,
        db,
        snapshotter,
    } = fixture;
    drop(snapshotter);
    let changed = Snapshotter::open(dir.path().join("root"), db, DriverChoice::Copy);
    assert_eq!(
        changed.map(|s| s.driver()).map_err(|e| e.to_string()),
        Err(format!(
            "snapshots under {} were made by the overlayfs driver, not the copy driver",
            dir.path().join("root").display()
        ))
    );
}

/// On tmpfs overlayfs may or may not work depending on the kernel; whichever driver `Auto`
/// picks must work.
#[test]
fn auto_on_tmpfs_works() {
    common::require_root();
    let dir = tempfile::Builder::new()
        .prefix("kiln-snapshot-tmpfs-")
        .tempdir_in("/var/tmp")
        .expect("temporary directory");
    let tmpfs = Mount {
        kind: "tmpfs".to_owned(),
        source: "tmpfs".to_owned(),
        options: vec!["size=64m".to_owned()],
    };
    kiln_snapshot::mount_all(&[tmpfs], dir.path()).expect("mount tmpfs");
    let outcome = std::panic::catch_unwind(|| {
        let db =
            std::sync::Arc::new(redb::Database::create(dir.path().join("meta.redb")).expect("db"));
        let s = Snapshotter::open(dir.path().join("root"), db, DriverChoice::Auto).expect("open");
        let mounts = s.prepare("k", None).expect("prepare");
        with_temp_mount(&mounts, |m| fs::write(m.join("f"), b"1"))
            .expect("mount")
            .expect("write");
        s.commit("a", "k").expect("commit");
        let mounts = s.prepare("k2", Some("a")).expect("prepare");
        with_temp_mount(&mounts, |m| fs::remove_file(m.join("f")))
            .expect("mount")
            .expect("rm");
        s.commit("b", "k2").expect("commit");
        let mounts = s.view("v", Some("b")).expect("view");
        let listing = with_temp_mount(&mounts, listing).expect("mount");
        assert!(listing.is_empty(), "{:?}: {listing:?}", s.driver());
    });
    kiln_snapshot::unmount(dir.path()).expect("unmount tmpfs");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn temp_mounts_are_unmounted_even_after_a_panic() {
    let fixture = Fixture::new(DriverChoice::Overlay);
    let mounts = fixture.snapshotter.prepare("k", None).expect("prepare");
    let seen = std::sync::Mutex::new(None);
    let outcome = std::panic::catch_unwind(|| {
        with_temp_mount(&mounts, |dir| {
            *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.to_owned());
            panic!("the closure fails");
        })
    });
    assert!(outcome.is_err());
    let dir = seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .expect("the closure ran");
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mountinfo.contains(&dir.to_string_lossy().into_owned()),
        "still mounted"
    );
    assert!(!dir.exists(), "temporary mount point left behind");
    // The inode of the snapshot's directory is intact.
    assert!(
        fixture
            .snapshotter
            .upper_dir("k")
            .expect("upper")
            .metadata()
            .map(|m| m.ino())
            .is_ok()
    );
}

/// Threads preparing, committing and viewing at the same time on one snapshotter: every
/// chain ends up complete and separate.
#[test]
fn concurrent_chains() {
    let fixture = Fixture::new(DriverChoice::Overlay);
    fixture.layer("base", None, &[Change::Write("base", "b")]);
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let fixture = &fixture;
                scope.spawn(move || -> Result<(), String> {
                    let mut parent = "base".to_owned();
                    for i in 0..5 {
                        let name = format!("t{t}-{i}");
                        let key = format!("{name}-active");
                        let s = &fixture.snapshotter;
                        let mounts = s.prepare(&key, Some(&parent)).map_err(|e| e.to_string())?;
                        with_temp_mount(&mounts, |root| {
                            fs::write(root.join(format!("t{t}")), i.to_string())
                        })
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                        s.commit(&name, &key).map_err(|e| e.to_string())?;
                        parent = name;
                    }
                    let got = fixture.view_listing(&format!("t{t}-view"), Some(&parent));
                    let want = vec![
                        "base file \"b\" 644 0:0".to_owned(),
                        format!("t{t} file \"4\" 644 0:0"),
                    ];
                    if got != want {
                        return Err(format!("thread {t}: {got:?}"));
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".to_owned())))
            .collect()
    });
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(fixture.snapshotter.walk().expect("walk").len(), 21);
}
