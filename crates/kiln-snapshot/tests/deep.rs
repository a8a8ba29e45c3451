//! Deep parent chains (flattened past overlayfs' limits) and metadata that must survive
//! flattening and copying (run as root).

mod common;

use std::fs;
use std::path::Path;
use std::time::Instant;

use common::{Change, Fixture};
use kiln_snapshot::{DriverChoice, Kind, MAX_LOWER_DIRS};
use rustix::fs::{CWD, FileType, Gid, Mode, Uid};

/// A layer with every kind of file and metadata a copy must keep.
fn rich_layer(root: &Path) {
    let meta = root.join("meta");
    fs::create_dir(&meta).expect("mkdir");
    let chown = |path: &Path, uid: u32, gid: u32| {
        rustix::fs::chownat(
            CWD,
            path,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .expect("chown");
    };
    let chmod = |path: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    };
    fs::write(meta.join("setuid"), b"suid").expect("write");
    chown(&meta.join("setuid"), 1234, 5678);
    chmod(&meta.join("setuid"), 0o4755);
    fs::write(meta.join("xattr"), b"x").expect("write");
    xattr::set(meta.join("xattr"), "user.kiln", b"yes").expect("xattr");
    fs::write(meta.join("hard1"), b"linked").expect("write");
    fs::hard_link(meta.join("hard1"), meta.join("hard2")).expect("hard link");
    std::os::unix::fs::symlink("../meta/hard1", meta.join("link")).expect("symlink");
    chown(&meta.join("link"), 7, 8);
    rustix::fs::mknodat(
        CWD,
        meta.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .expect("fifo");
    rustix::fs::mknodat(
        CWD,
        meta.join("null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .expect("char device");
    chmod(&meta.join("null"), 0o666);
    fs::create_dir(meta.join("private")).expect("mkdir");
    fs::write(meta.join("private/secret"), b"s").expect("write");
    chown(&meta.join("private"), 42, 43);
    chmod(&meta.join("private"), 0o700);
    fs::create_dir_all(root.join("opaque/sub")).expect("mkdir");
    fs::write(root.join("opaque/sub/old"), b"old").expect("write");
}

/// What a view of the rich layer shows.
const RICH: &[&str] = &[
    "meta dir 755 0:0",
    "meta/fifo fifo 640 0:0",
    "meta/hard1 file \"linked\" 644 0:0",
    "meta/hard2 hardlink to meta/hard1",
    "meta/link symlink -> ../meta/hard1 7:8",
    "meta/null char 1:3 666 0:0",
    "meta/private dir 700 42:43",
    "meta/private/secret file \"s\" 644 0:0",
    "meta/setuid file \"suid\" 4755 1234:5678",
    "meta/xattr file \"x\" 644 0:0 user.kiln=yes",
];

fn check_listing(name: &str, mut got: Vec<String>, want: &[String]) -> Option<String> {
    got.sort();
    let mut want = want.to_vec();
    want.sort();
    (got != want).then(|| {
        let missing: Vec<&String> = want.iter().filter(|w| !got.contains(w)).collect();
        let extra: Vec<&String> = got.iter().filter(|g| !want.contains(g)).collect();
        format!("{name}: missing {missing:#?}, unexpected {extra:#?}")
    })
}

/// A chain of 200 snapshots: the rich layer, then one file per layer, deletions every tenth
/// layer, and an opaque directory at layer 120. Overlayfs cannot stack 200 lower
/// directories (nor fit their paths into a page), so the snapshotter flattens the chain on
/// the way; a view of every layer (including those whose chain was flattened, which a view
/// shows through a bind mount of the flattened tree alone) must show exactly the merged
/// contents.
#[test]
fn chain_of_200_snapshots() {
    let started = Instant::now();
    let fixture = Fixture::new(DriverChoice::Overlay);
    let s = &fixture.snapshotter;
    fixture.layer("layer-0", None, &[Change::Custom(rich_layer)]);
    let mut expected: Vec<String> = RICH.iter().map(|l| (*l).to_owned()).collect();
    expected.extend(
        [
            "opaque dir 755 0:0",
            "opaque/sub dir 755 0:0",
            "opaque/sub/old file \"old\" 644 0:0",
        ]
        .map(str::to_owned),
    );
    let mut files: Vec<usize> = Vec::new();
    // What a view of each layer must show, checked once the whole chain exists (flattening
    // happens on the way, when a layer is prepared on a parent whose chain is too long).
    let mut wants: Vec<Vec<String>> = Vec::new();
    for i in 1..200usize {
        let mut changes = vec![Change::Write(
            leak(format!("layers/f{i}")),
            leak(i.to_string()),
        )];
        files.push(i);
        if i % 10 == 0 {
            changes.push(Change::Remove(leak(format!("layers/f{}", i - 5))));
            files.retain(|f| *f != i - 5);
        }
        if i == 120 {
            changes.push(Change::Remove("opaque"));
            changes.push(Change::Write("opaque/new", "fresh"));
            expected.retain(|l| !l.starts_with("opaque"));
            expected.extend(
                ["opaque dir 755 0:0", "opaque/new file \"fresh\" 644 0:0"].map(str::to_owned),
            );
        }
        fixture.layer(
            &format!("layer-{i}"),
            Some(&format!("layer-{}", i - 1)),
            &changes,
        );
        let mut want = expected.clone();
        want.push("layers dir 755 0:0".to_owned());
        want.extend(
            files
                .iter()
                .map(|f| format!("layers/f{f} file \"{f}\" 644 0:0")),
        );
        wants.push(want);
    }
    let failures: Vec<String> = wants
        .iter()
        .enumerate()
        .filter_map(|(i, want)| {
            let layer = i + 1;
            let got =
                fixture.view_listing(&format!("view-{layer}"), Some(&format!("layer-{layer}")));
            check_listing(&format!("view of layer {layer}"), got, want)
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");

    // The mounts of a snapshot on top fit into mount(2) and stack few lower directories.
    let mounts = s.prepare("top", Some("layer-199")).expect("prepare on top");
    for mount in &mounts {
        let lowers = mount
            .options
            .iter()
            .find_map(|o| o.strip_prefix("lowerdir="))
            .map_or(0, |l| l.split(':').count());
        assert!(mount.data_len() <= rustix::param::page_size(), "{mount:?}");
        assert!(lowers <= MAX_LOWER_DIRS, "{lowers} lower directories");
    }
    // Flattened trees are not snapshots of their own, but they are directories.
    let infos = s.walk().expect("walk");
    assert_eq!(
        infos.iter().filter(|i| i.kind == Kind::Committed).count(),
        200
    );
    let dirs = fs::read_dir(s.root().join("snapshots"))
        .expect("read")
        .count();
    assert!(
        dirs > 201,
        "no flattened directory among {dirs} directories"
    );

    // Everything can be removed from the top down, flattened directories included.
    s.remove("top").expect("remove top");
    for i in (0..200).rev() {
        s.remove(&format!("layer-{i}")).expect("remove");
    }
    assert_eq!(
        fs::read_dir(s.root().join("snapshots"))
            .expect("read")
            .count(),
        0
    );
    assert!(
        started.elapsed().as_secs() < 120,
        "took {:?}",
        started.elapsed()
    );
}

/// Metadata survives the copying driver (each snapshot a full copy of its parent).
#[test]
fn metadata_survives_copies() {
    let fixture = Fixture::new(DriverChoice::Copy);
    fixture.layer("rich", None, &[Change::Custom(rich_layer)]);
    fixture.layer(
        "next",
        Some("rich"),
        &[
            Change::Write("added", "a"),
            Change::Remove("opaque/sub/old"),
        ],
    );
    let mut want: Vec<String> = RICH.iter().map(|l| (*l).to_owned()).collect();
    want.extend(
        [
            "added file \"a\" 644 0:0",
            "opaque dir 755 0:0",
            "opaque/sub dir 755 0:0",
        ]
        .map(str::to_owned),
    );
    let got = fixture.view_listing("v", Some("next"));
    let failures: Vec<String> = check_listing("copy of the rich layer", got, &want)
        .into_iter()
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Makes a `'static` string for a [`Change`] built in a loop.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
