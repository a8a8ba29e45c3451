//! No action reads or writes outside its roots, whatever the symbolic links in the trees or the
//! archives say. Each test builds a source root, a destination root and an `outside` directory
//! next to them holding a secret; symbolic links point at `outside` by its absolute host path or
//! climb towards it with `..`. Every test checks that `outside` is bit-for-bit unchanged and
//! that what was written landed inside the root.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{build, copy_action, dockerfile_copy, tempdir};
use kiln_fileop::{PasswdLookup, UserLookup};
use kiln_llb::ops::{
    ChownOpt, FileActionCopy, FileActionMkDir, FileActionMkFile, FileActionRm, FileActionSymlink,
    UserOpt,
};

struct World {
    _base: tempfile::TempDir,
    src: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
    before: String,
}

/// Every entry of a tree with all of its metadata and content, for exact comparison.
fn fingerprint(root: &Path) -> String {
    let mut lines = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let meta = fs::symlink_metadata(&dir).expect("lstat");
        lines.push(format!(
            "{} {:o} {}:{} {}.{} {}",
            dir.display(),
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.nlink()
        ));
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).expect("lstat");
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let content = if meta.is_file() {
                fs::read(&path)
                    .map(|d| String::from_utf8_lossy(&d).into_owned())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            lines.push(format!(
                "{} {:o} {}:{} {}.{} {} {content:?}",
                path.display(),
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.nlink()
            ));
        }
    }
    lines.sort();
    lines.join("\n")
}

impl World {
    /// `src` and `dest` specs may use `OUTSIDE` for the absolute host path of `outside`.
    fn new(src: &str, dest: &str) -> World {
        let base = tempdir();
        let outside = base.path().join("outside");
        let src_root = base.path().join("src");
        let dest_root = base.path().join("dest");
        for dir in [&outside, &src_root, &dest_root] {
            fs::create_dir(dir).expect("mkdir");
        }
        build(
            &outside,
            r#"
                f /secret 600 "host secret"
                f /passwd 644 "app:x:4242:4242::/:/bin/sh\n"
                d /dir 755
            "#,
        );
        let outside_text = outside.display().to_string();
        build(&src_root, &src.replace("OUTSIDE", &outside_text));
        build(&dest_root, &dest.replace("OUTSIDE", &outside_text));
        let before = fingerprint(&outside);
        World {
            _base: base,
            src: src_root,
            dest: dest_root,
            outside,
            before,
        }
    }

    /// The absolute host path of `outside`, as seen from inside a root.
    fn outside_inside(&self, root: &Path) -> PathBuf {
        root.join(self.outside.strip_prefix("/").unwrap_or(&self.outside))
    }

    fn assert_outside_untouched(&self) {
        assert_eq!(
            fingerprint(&self.outside),
            self.before,
            "the directory outside the roots changed"
        );
    }

    fn copy(&self, action: &FileActionCopy) -> Result<(), kiln_fileop::Error> {
        kiln_fileop::copy(
            &self.src,
            &self.dest,
            action,
            &PasswdLookup::new(&self.dest),
        )
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("<{e}>"))
}

#[test]
fn destination_symlink_to_an_absolute_host_path_resolves_in_the_root() {
    let w = World::new(r#"f /f 644 "payload""#, "l /escape -> OUTSIDE");
    w.copy(&dockerfile_copy("/f", "/escape/f")).expect("copy");
    w.assert_outside_untouched();
    assert_eq!(read(&w.outside_inside(&w.dest).join("f")), "payload");
}

#[test]
fn destination_symlink_climbing_out_stops_at_the_root() {
    let w = World::new(r#"f /f 644 "payload""#, "l /up -> ../../../../../../..");
    w.copy(&dockerfile_copy("/f", "/up/f")).expect("copy");
    w.assert_outside_untouched();
    assert_eq!(read(&w.dest.join("f")), "payload");
}

#[test]
fn destination_symlink_inside_a_copied_tree_is_never_entered() {
    let src = r#"
        d /d 755
        d /d/dir 755
        f /d/dir/secret 644 "overwrite"
    "#;
    let w = World::new(src, "d /out 755\nl /out/dir -> OUTSIDE");
    let err = w
        .copy(&FileActionCopy {
            dir_copy_contents: true,
            ..copy_action("/d", "/out")
        })
        .expect_err("a directory must not merge into a symbolic link");
    assert!(
        err.to_string().contains("cannot copy to non-directory"),
        "{err}"
    );
    w.assert_outside_untouched();

    // With replacement, the link itself is replaced.
    w.copy(&FileActionCopy {
        dir_copy_contents: true,
        always_replace_existing_dest_paths: true,
        ..copy_action("/d", "/out")
    })
    .expect("copy");
    w.assert_outside_untouched();
    assert_eq!(read(&w.dest.join("out/dir/secret")), "overwrite");
}

#[test]
fn destination_file_symlink_is_replaced_not_written_through() {
    let w = World::new(
        "d /d 755\nf /d/secret 644 \"overwrite\"",
        "d /out 755\nl /out/secret -> OUTSIDE/secret",
    );
    w.copy(&FileActionCopy {
        dir_copy_contents: true,
        ..copy_action("/d", "/out")
    })
    .expect("copy");
    w.assert_outside_untouched();
    assert!(
        fs::symlink_metadata(w.dest.join("out/secret"))
            .expect("lstat")
            .is_file()
    );
}

#[test]
fn followed_source_symlink_reads_the_roots_own_target() {
    let w = World::new(
        r#"
            d /etc 755
            f /etc/passwd 644 "in-root passwd"
            l /abs -> /etc/passwd
            l /climb -> ../../../../../etc/passwd
        "#,
        "",
    );
    for link in ["/abs", "/climb"] {
        let dest = format!("/copy{link}");
        w.copy(&FileActionCopy {
            follow_symlink: true,
            create_dest_path: true,
            ..copy_action(link, &dest)
        })
        .expect("copy");
        assert_eq!(
            read(&w.dest.join(dest.trim_start_matches('/'))),
            "in-root passwd",
            "{link}"
        );
    }
    w.assert_outside_untouched();
}

#[test]
fn followed_source_symlink_to_a_host_path_finds_nothing() {
    let w = World::new("l /leak -> OUTSIDE/secret", "");
    let err = w
        .copy(&FileActionCopy {
            follow_symlink: true,
            create_dest_path: true,
            ..copy_action("/leak", "/got")
        })
        .expect_err("the host file must not be found");
    assert!(err.to_string().contains("No such file"), "{err}");
    assert!(!w.dest.join("got").exists());
    w.assert_outside_untouched();
}

#[test]
fn wildcard_base_through_a_host_symlink_stays_in_the_root() {
    let w = World::new("l /w -> OUTSIDE", "");
    let result = w.copy(&FileActionCopy {
        follow_symlink: true,
        ..dockerfile_copy("/w/*", "/got/")
    });
    assert!(result.is_err(), "the host directory must not be listed");
    assert!(!w.dest.join("got/secret").exists());
    w.assert_outside_untouched();
}

#[test]
fn mkfile_mkdir_and_symlink_through_host_symlinks_stay_in_the_root() {
    let w = World::new(
        "",
        "l /f -> OUTSIDE/secret\nl /m -> OUTSIDE\nl /s -> OUTSIDE",
    );
    let users = PasswdLookup::new(&w.dest);
    // The link's target directory does not exist inside the root.
    let mkfile = FileActionMkFile {
        path: "/f".into(),
        mode: 0o644,
        data: b"overwrite".to_vec(),
        owner: None,
        timestamp: -1,
    };
    assert!(kiln_fileop::mkfile(&w.dest, &mkfile, &users).is_err());
    w.assert_outside_untouched();

    let mkdir = FileActionMkDir {
        path: "/m/new".into(),
        mode: 0o755,
        make_parents: true,
        owner: None,
        timestamp: -1,
    };
    kiln_fileop::mkdir(&w.dest, &mkdir, &users).expect("mkdir");
    assert!(w.outside_inside(&w.dest).join("new").is_dir());
    w.assert_outside_untouched();

    let symlink = FileActionSymlink {
        oldpath: "/etc/shadow".into(),
        newpath: "/s/dir/link".into(),
        owner: None,
        timestamp: -1,
    };
    assert!(kiln_fileop::symlink(&w.dest, &symlink, &users).is_err());
    w.assert_outside_untouched();

    // Once the directories exist inside the root, the file lands there.
    fs::create_dir_all(w.outside_inside(&w.dest)).expect("mkdir");
    kiln_fileop::mkfile(&w.dest, &mkfile, &users).expect("mkfile");
    assert_eq!(read(&w.outside_inside(&w.dest).join("secret")), "overwrite");
    w.assert_outside_untouched();
}

#[test]
fn rm_through_host_symlinks_removes_nothing_outside() {
    let w = World::new("", "l /r -> OUTSIDE");
    let rm = |path: &str, allow_not_found: bool, allow_wildcard: bool| {
        kiln_fileop::rm(
            &w.dest,
            &FileActionRm {
                path: path.into(),
                allow_not_found,
                allow_wildcard,
            },
        )
    };
    assert!(rm("/r/secret", false, false).is_err());
    rm("/r/secret", true, false).expect("rm with allow_not_found");
    // The link is not followed for a wildcard base: nothing matches.
    rm("/r/*", false, true).expect("rm wildcard");
    w.assert_outside_untouched();
    // The link itself can be removed.
    rm("/r", false, false).expect("rm link");
    assert!(fs::symlink_metadata(w.dest.join("r")).is_err());
    w.assert_outside_untouched();
}

#[test]
fn archive_links_to_host_paths_stay_in_the_destination() {
    let outside = "OUTSIDE";
    let w = World::new("", "");
    let host = w.outside.display().to_string();
    let mut builder = tar::Builder::new(Vec::new());
    let mut link = |name: &str, target: &str, kind: tar::EntryType| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o777);
        builder
            .append_link(&mut h, name, target)
            .expect("append link");
    };
    link("escape", &host, tar::EntryType::Symlink);
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    builder
        .append_data(&mut h, "escape/evil", &b"evil"[..])
        .expect("append file");
    let archive = builder.into_inner().expect("tar");
    fs::write(w.src.join("a.tar"), &archive).expect("write");
    let _ = outside;
    w.copy(&FileActionCopy {
        attempt_unpack_docker_compatibility: true,
        ..dockerfile_copy("/a.tar", "/x/")
    })
    .expect("extract");
    w.assert_outside_untouched();
    let inside = w
        .dest
        .join("x")
        .join(host.trim_start_matches('/'))
        .join("evil");
    assert_eq!(read(&inside), "evil");

    // A hard link to the host secret finds nothing inside the destination.
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    builder
        .append_link(&mut h, "stolen", format!("{host}/secret"))
        .expect("append link");
    fs::write(w.src.join("b.tar"), builder.into_inner().expect("tar")).expect("write");
    let err = w
        .copy(&FileActionCopy {
            attempt_unpack_docker_compatibility: true,
            ..dockerfile_copy("/b.tar", "/y/")
        })
        .expect_err("the host file must not be linked");
    assert!(err.to_string().contains("No such file"), "{err}");
    w.assert_outside_untouched();
}

#[test]
fn user_database_is_read_inside_the_root() {
    let w = World::new("", "l /etc -> OUTSIDE");
    let app = ChownOpt {
        user: Some(UserOpt::ByName {
            name: "app".into(),
            input: 0,
        }),
        group: None,
    };
    // The host-side passwd knows `app` as 4242; inside the root there is no such file.
    assert_eq!(
        PasswdLookup::new(&w.dest).lookup(&app).expect("lookup"),
        (0, 0)
    );
    w.assert_outside_untouched();
}

#[test]
fn swapping_a_directory_for_a_host_symlink_during_copies_never_escapes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let w = World::new(
        r#"
            d /tree 755
            f /tree/a 644 "a"
            d /tree/sub 755
            f /tree/sub/b 644 "b"
        "#,
        "d /d 755\nl /d.link -> OUTSIDE",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = Arc::clone(&stop);
        let dest = w.dest.clone();
        std::thread::spawn(move || {
            let (d, tmp, link) = (dest.join("d"), dest.join("d.tmp"), dest.join("d.link"));
            while !stop.load(Ordering::Relaxed) {
                // Swap the real directory and the link to the host directory back and forth.
                let _ = fs::rename(&d, &tmp);
                let _ = fs::rename(&link, &d);
                let _ = fs::rename(&d, &link);
                let _ = fs::rename(&tmp, &d);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut rounds = 0;
    while Instant::now() < deadline && rounds < 3000 {
        // Errors are expected when a swap lands mid-copy; escapes are not.
        let _ = w.copy(&FileActionCopy {
            dir_copy_contents: true,
            create_dest_path: true,
            always_replace_existing_dest_paths: true,
            ..copy_action("/tree", "/d/copy")
        });
        let _ = kiln_fileop::rm(
            &w.dest,
            &FileActionRm {
                path: "/d/copy".into(),
                allow_not_found: true,
                allow_wildcard: false,
            },
        );
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().expect("racer thread");
    w.assert_outside_untouched();
}
