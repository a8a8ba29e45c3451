//! The overlay differ against real overlayfs mounts: changes made through a mount are
//! recorded from its upper directory, and applying the layer (to a copy of the lower layers,
//! or as a new upper directory mounted over them) shows exactly what the mount showed.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use common::{Overlay, clamp, compare, copy_tree, listing, set_all_mtimes, snapshot, tmpdir};
use kiln_diff::{
    ApplyOptions, DiffOpts, WhiteoutMode, XattrPolicy, apply_layer, apply_layer_with,
    write_diff_overlay,
};
use rustix::fs::{CWD, FileType, Mode};

/// `SOURCE_DATE_EPOCH` for the diffs: everything created during the test is clamped to it,
/// which makes the layer's listing stable.
const EPOCH: i64 = 1_000_000_000;
/// The time of everything in the base layer.
const OLD: i64 = 900_000_000;

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn build_base(l1: &Path) {
    for (rel, content) in [
        ("etc/passwd", "root:x:0:0\n"),
        ("etc/group", "root:x:0:\n"),
        ("etc/hosts", "127.0.0.1 localhost\n"),
        ("etc/hostname", "base\n"),
        ("etc/hostname2", "file that becomes a directory\n"),
        ("usr/bin/a", "a"),
        ("usr/bin/b", "b"),
        ("usr/lib/libc", "libc"),
        ("var/cache/x/y", "y"),
        ("var/log/old.log", "old"),
        ("opt/app/conf", "conf"),
        ("opt/other/file", "other"),
    ] {
        write(l1, rel, content);
    }
    fs::hard_link(l1.join("usr/lib/libc"), l1.join("usr/lib/libc2")).unwrap();
    symlink("usr/lib", l1.join("lib")).unwrap();
    set_all_mtimes(l1, OLD);
}

/// First session: its upper directory becomes the second lower layer.
fn session1(m: &Path) {
    fs::remove_file(m.join("usr/bin/a")).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(m.join("etc/hosts"))
        .unwrap();
    write(m, "etc/hosts", "127.0.0.1 localhost\n::1 localhost\n");
    write(m, "new1/f", "f");
    fs::remove_dir_all(m.join("opt/app")).unwrap();
    write(m, "opt/app/fresh", "fresh");
}

/// Second session: the changes the layer must record.
fn session2(m: &Path) {
    write(m, "etc/passwd", "root:x:0:0\nuser:x:1000:1000\n");
    fs::set_permissions(m.join("etc/group"), PermissionsExt::from_mode(0o600)).unwrap();
    // A copy-up without a change: not recorded.
    rustix::fs::chown(m.join("etc/hostname").as_path(), None, None).unwrap();
    fs::remove_file(m.join("usr/bin/b")).unwrap();
    fs::remove_dir_all(m.join("var/cache/x")).unwrap();
    fs::remove_dir_all(m.join("var/log")).unwrap();
    write(m, "var/log/new", "new");
    write(m, "srv/www/index.html", "<html>");
    write(m, &format!("srv/{}/deep", "long-name-".repeat(12)), "pax");
    fs::hard_link(m.join("usr/lib/libc"), m.join("usr/lib/libc3")).unwrap();
    symlink("etc/passwd", m.join("newlink")).unwrap();
    rustix::fs::mknodat(
        CWD,
        m.join("run.fifo").as_path(),
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        CWD,
        m.join("etc/null2").as_path(),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    write(m, "usr/bin/newbin", "#!/bin/sh\n");
    fs::set_permissions(m.join("usr/bin/newbin"), PermissionsExt::from_mode(0o4755)).unwrap();
    xattr::set(m.join("etc/hosts"), "user.k", b"v").unwrap();
    fs::remove_dir_all(m.join("new1")).unwrap();
    write(m, "opt/app/fresh2", "fresh2");
    write(m, "usr/bin/a", "a is back");
    fs::remove_file(m.join("etc/hostname2")).unwrap();
    write(m, "etc/hostname2/now-a-dir", "d");
    fs::remove_dir_all(m.join("opt/other")).unwrap();
    symlink("../etc", m.join("opt/other")).unwrap();
    fs::create_dir(m.join("tmpd")).unwrap();
    fs::remove_dir(m.join("tmpd")).unwrap();
    write(m, "ephemeral", "e");
    fs::remove_file(m.join("ephemeral")).unwrap();
}

struct Dirs {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let tmp = tmpdir();
        let root = tmp.path().to_path_buf();
        Dirs { _tmp: tmp, root }
    }
    fn mk(&self, name: &str) -> PathBuf {
        let p = self.root.join(name);
        fs::create_dir(&p).unwrap();
        p
    }
}

#[test]
fn overlay_diff_records_what_the_mount_showed() {
    let d = Dirs::new();
    let (l1, l2, u2) = (d.mk("l1"), d.mk("l2"), d.mk("u2"));
    build_base(&l1);
    {
        let m = Overlay::mount(&[&l1], &l2, &d.mk("w1"), &d.mk("m1"));
        session1(&m.merged);
    }
    let expected = {
        let m = Overlay::mount(&[&l2, &l1], &u2, &d.mk("w2"), &d.mk("m2"));
        session2(&m.merged);
        clamp(snapshot(&m.merged), EPOCH)
    };
    let opts = DiffOpts {
        source_date_epoch: Some(EPOCH),
        xattrs: XattrPolicy::All,
    };
    let mut layer = Vec::new();
    let stats = write_diff_overlay(&u2, &[&l2, &l1], &mut layer, opts).unwrap();
    assert_eq!(stats.diff_id, kiln_oci::Digest::of_bytes(&layer));
    insta::assert_snapshot!(listing(&layer));

    let mut failures = Vec::new();

    // Applied to a full copy of the lower layers.
    let copy = d.root.join("copy");
    {
        let ro = Overlay::mount_lowers(&[&l2, &l1], &d.mk("ro"));
        copy_tree(&ro.merged, &copy);
    }
    let applied = apply_layer(&layer[..], &copy, WhiteoutMode::Delete).unwrap();
    assert_eq!(applied.diff_id, stats.diff_id);
    for line in compare(&expected, &clamp(snapshot(&copy), EPOCH)) {
        failures.push(format!("delete mode: {line}"));
    }

    // Applied as a new upper directory and mounted.
    let u3 = d.mk("u3");
    apply_layer_with(
        &layer[..],
        &u3,
        &ApplyOptions {
            mode: WhiteoutMode::Overlay,
            lowers: &[&l2, &l1],
            sync: true,
        },
    )
    .unwrap();
    {
        let m = Overlay::mount(&[&l2, &l1], &u3, &d.mk("w3"), &d.mk("m3"));
        for line in compare(&expected, &clamp(snapshot(&m.merged), EPOCH)) {
            failures.push(format!("overlay mode: {line}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Diffing the same upper directory again gives the same bytes.
    let mut again = Vec::new();
    write_diff_overlay(&u2, &[&l2, &l1], &mut again, opts).unwrap();
    assert!(
        again == layer,
        "two diffs of the same upper directory differ"
    );
}

/// Upper directories made by hand: whiteouts of names no lower layer has are dropped, an
/// opaque directory with nothing below it in the lower layers is a plain directory, an
/// unchanged copied-up directory or file is not recorded, and a directory that only holds a
/// change is written right before it.
#[test]
fn overlay_diff_consults_lowers_like_buildkit() {
    let d = Dirs::new();
    let (lower, upper) = (d.mk("lower"), d.mk("upper"));
    write(&lower, "keep/same", "same");
    write(&lower, "keep/changed", "before");
    write(&lower, "gone", "g");
    set_all_mtimes(&lower, OLD);

    copy_tree(&lower.join("keep"), &upper.join("keep"));
    write(&upper, "keep/changed", "after");
    let whiteout = |rel: &str| {
        rustix::fs::mknodat(
            CWD,
            upper.join(rel).as_path(),
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .unwrap();
    };
    whiteout("gone");
    whiteout("never-existed");
    write(&upper, "fresh/new", "n");
    xattr::set(upper.join("fresh"), "trusted.overlay.opaque", b"y").unwrap();
    set_all_mtimes(&upper, OLD);
    fs::write(upper.join("keep/changed"), "after").unwrap();
    common::set_mtime(&upper.join("keep/changed"), OLD + 5, 0);

    let mut layer = Vec::new();
    write_diff_overlay(
        &upper,
        &[&lower],
        &mut layer,
        DiffOpts {
            source_date_epoch: Some(EPOCH),
            xattrs: XattrPolicy::All,
        },
    )
    .unwrap();
    insta::assert_snapshot!(listing(&layer));
}
