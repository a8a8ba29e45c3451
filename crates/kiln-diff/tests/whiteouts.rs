//! Whiteouts and opaque directories, applied in both modes: deleting from a full copy of the
//! lower layers, and recorded for overlayfs in an upper directory, which the kernel must then
//! show exactly as the deleting mode left the copy.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Overlay, Raw, compare, layer_listing, raw_tar, snapshot, tmpdir};
use kiln_diff::{ApplyOptions, WhiteoutMode, apply_layer, apply_layer_with};

/// The lower layer the whiteout layer is applied over.
fn build_lower(root: &Path) {
    let files = [
        ("a/gone", "g"),
        ("a/kept", "k"),
        ("a/olddir/x", "x"),
        ("b/c/x", "x"),
        ("top", "t"),
        ("opq/old1", "1"),
        ("opq/sub/old2", "2"),
        ("opq2/old", "o"),
        ("keepdir/f", "f"),
    ];
    for (path, content) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
}

/// A layer with whiteouts of files, directories and absent names, opaque markers before and
/// after their directory's new entries, and whiteouts in directories the layer does not list.
fn layer() -> Vec<u8> {
    raw_tar(&[
        Raw::dir("a/"),
        Raw::file("a/.wh.gone", ""),
        Raw::file("a/.wh.olddir", ""),
        Raw::file("a/new", "n"),
        Raw::file(".wh.top", ""),
        Raw::dir("opq/"),
        Raw::file("opq/.wh..wh..opq", ""),
        Raw::file("opq/new", "n"),
        Raw::dir("opq/sub/"),
        Raw::file("opq/sub/fresh", "f"),
        Raw::dir("opq2/"),
        Raw::file("opq2/new", "n"),
        Raw::file("opq2/.wh..wh..opq", ""),
        Raw::file("b/c/.wh.x", ""),
        Raw::file(".wh.missing", ""),
    ])
}

/// Directory times differ between the modes (the deleting mode touches directories the layer
/// does not list); everything else must not.
fn without_times(mut snap: BTreeMap<String, common::Node>) -> BTreeMap<String, common::Node> {
    for node in snap.values_mut() {
        node.mtime = 0;
    }
    snap
}

#[test]
fn whiteouts_delete_in_delete_mode() {
    let dir = tmpdir();
    let dest = dir.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    build_lower(&dest);
    let applied = apply_layer(&layer()[..], &dest, WhiteoutMode::Delete).unwrap();
    assert!(applied.warnings.is_empty(), "{:?}", applied.warnings);
    insta::assert_snapshot!(layer_listing(&dest));
}

#[test]
fn whiteouts_become_overlay_markers_and_mount_like_delete_mode() {
    let dir = tmpdir();
    let lower = dir.path().join("lower");
    let upper = dir.path().join("upper");
    let work = dir.path().join("work");
    let merged = dir.path().join("merged");
    let deleted = dir.path().join("deleted");
    for d in [&lower, &upper, &work, &merged, &deleted] {
        std::fs::create_dir(d).unwrap();
    }
    build_lower(&lower);
    build_lower(&deleted);
    apply_layer(&layer()[..], &deleted, WhiteoutMode::Delete).unwrap();

    let applied = apply_layer_with(
        &layer()[..],
        &upper,
        &ApplyOptions {
            mode: WhiteoutMode::Overlay,
            lowers: &[&lower],
            sync: false,
        },
    )
    .unwrap();
    assert!(applied.warnings.is_empty(), "{:?}", applied.warnings);
    insta::assert_snapshot!(layer_listing(&upper));

    let mount = Overlay::mount(&[&lower], &upper, &work, &merged);
    // The lower tree is written twice (once for each mode), so its files' own times may differ
    // by a clock tick: compare without times; what matters here is which entries exist and what
    // they hold.
    let failures = compare(
        &without_times(snapshot(&deleted)),
        &without_times(snapshot(&mount.merged)),
    );
    drop(mount);
    assert!(
        failures.is_empty(),
        "overlay view differs from delete mode:\n{}",
        failures.join("\n")
    );
}

/// In overlay mode, directories the layer needs but does not list take the lower layers'
/// metadata, symlinks of the lower layers are followed as the mounted overlay would, and a
/// hard link to a file only a lower layer has copies that file up.
#[test]
fn overlay_mode_consults_the_lower_layers() {
    let dir = tmpdir();
    let lower = dir.path().join("lower");
    let upper = dir.path().join("upper");
    let plain = dir.path().join("plain");
    for d in [&lower, &upper, &plain] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::create_dir_all(lower.join("usr/local")).unwrap();
    std::fs::create_dir_all(lower.join("usr/lib")).unwrap();
    std::fs::create_dir_all(lower.join("bin")).unwrap();
    std::os::unix::fs::symlink("usr/lib", lower.join("lib")).unwrap();
    std::fs::write(lower.join("bin/sh"), "shell").unwrap();
    std::fs::set_permissions(
        lower.join("bin/sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    rustix::fs::chown(
        lower.join("usr/local").as_path(),
        Some(rustix::process::Uid::from_raw(7)),
        Some(rustix::process::Gid::from_raw(8)),
    )
    .unwrap();
    std::fs::set_permissions(
        lower.join("usr/local"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    xattr::set(lower.join("usr/local"), "user.origin", b"lower").unwrap();

    let layer = raw_tar(&[
        Raw::file("usr/local/bin/tool", "t"),
        Raw::file("lib/libx.so", "x"),
        Raw::hardlink("bin/sh2", "bin/sh"),
    ]);
    apply_layer_with(
        &layer[..],
        &upper,
        &ApplyOptions {
            mode: WhiteoutMode::Overlay,
            lowers: &[&lower],
            sync: false,
        },
    )
    .unwrap();
    insta::assert_snapshot!("with_lowers", layer_listing(&upper));

    // Without lower layers the missing directories are plain 0755 ones, the symlink is not
    // known and the hard link has no target.
    let err = apply_layer(&layer[..], &plain, WhiteoutMode::Overlay).unwrap_err();
    assert!(err.to_string().contains("bin/sh2"), "{err}");
    insta::assert_snapshot!("without_lowers", layer_listing(&plain));
}

/// An existing directory replaced by a file, a file replaced by a directory, and a directory
/// merged with a directory (keeping what the layer does not mention).
#[test]
fn entries_replace_what_is_there() {
    let dir = tmpdir();
    let dest = dir.path();
    std::fs::create_dir_all(dest.join("was-dir/child")).unwrap();
    std::fs::write(dest.join("was-file"), "f").unwrap();
    std::fs::create_dir_all(dest.join("merge")).unwrap();
    std::fs::write(dest.join("merge/old"), "o").unwrap();
    std::os::unix::fs::symlink("merge", dest.join("was-link")).unwrap();
    let layer = raw_tar(&[
        Raw::file("was-dir", "now a file"),
        Raw::dir("was-file/"),
        Raw::file("was-file/inside", "i"),
        Raw::dir("merge/"),
        Raw::file("merge/new", "n"),
        Raw::file("was-link", "no longer a link"),
    ]);
    apply_layer(&layer[..], dest, WhiteoutMode::Delete).unwrap();
    insta::assert_snapshot!(layer_listing(dest));
}
