//! `ADD` of local archives (`attempt_unpack_docker_compatibility`): detection by content, the
//! compressions Docker accepts, and extraction that never leaves the destination. Archives are
//! written by the tests with raw tar headers, so that hostile names can be expressed.

mod common;

use std::io::Write;

use common::{build, chown_ids, dockerfile_copy, dump, outcome, tempdir};
use kiln_fileop::PasswdLookup;
use kiln_llb::ops::FileActionCopy;

/// One archive member.
enum Member<'a> {
    File(&'a str, u32, &'a str),
    Dir(&'a str, u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str),
    /// A file with owner and modification time.
    Owned(&'a str, u32, u32, u64, &'a str),
}

fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    // Names are written raw: the builder's own path setter refuses `..`, which the tests need.
    let bytes = name.as_bytes();
    let field = &mut h.as_old_mut().name;
    let n = bytes.len().min(field.len());
    if let (Some(dst), Some(src)) = (field.get_mut(..n), bytes.get(..n)) {
        dst.copy_from_slice(src);
    }
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_300_000_000);
    h
}

fn set_link(h: &mut tar::Header, target: &str) {
    let field = &mut h.as_old_mut().linkname;
    let bytes = target.as_bytes();
    let n = bytes.len().min(field.len());
    if let (Some(dst), Some(src)) = (field.get_mut(..n), bytes.get(..n)) {
        dst.copy_from_slice(src);
    }
}

fn tar_bytes(members: &[Member<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for m in members {
        let (mut h, data): (tar::Header, &[u8]) = match m {
            Member::File(name, mode, data) => (
                header(name, tar::EntryType::Regular, *mode, data.len() as u64),
                data.as_bytes(),
            ),
            Member::Owned(name, uid, gid, mtime, data) => {
                let mut h = header(name, tar::EntryType::Regular, 0o640, data.len() as u64);
                h.set_uid(u64::from(*uid));
                h.set_gid(u64::from(*gid));
                h.set_mtime(*mtime);
                (h, data.as_bytes())
            }
            Member::Dir(name, mode) => (header(name, tar::EntryType::Directory, *mode, 0), &[]),
            Member::Symlink(name, target) => {
                let mut h = header(name, tar::EntryType::Symlink, 0o777, 0);
                set_link(&mut h, target);
                (h, &[])
            }
            Member::Hardlink(name, target) => {
                let mut h = header(name, tar::EntryType::Link, 0o644, 0);
                set_link(&mut h, target);
                (h, &[])
            }
            Member::Fifo(name) => (header(name, tar::EntryType::Fifo, 0o644, 0), &[]),
        };
        h.set_cksum();
        builder.append(&h, data).expect("append");
    }
    builder.into_inner().expect("finish")
}

#[derive(Clone, Copy)]
enum Codec {
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
    match codec {
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).expect("gzip");
            e.finish().expect("gzip")
        }
        Codec::Bzip2 => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            e.write_all(data).expect("bzip2");
            e.finish().expect("bzip2")
        }
        Codec::Xz => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
            e.write_all(data).expect("xz");
            e.finish().expect("xz")
        }
        Codec::Zstd => zstd::encode_all(data, 3).expect("zstd"),
    }
}

struct Case {
    name: &'static str,
    /// The file at `/archive` in the source root.
    archive: Vec<u8>,
    dest: &'static str,
    action: FileActionCopy,
}

fn add(dest: &str) -> FileActionCopy {
    FileActionCopy {
        attempt_unpack_docker_compatibility: true,
        ..dockerfile_copy("/archive", dest)
    }
}

fn check(snapshot: &str, cases: Vec<Case>) {
    let mut out = String::new();
    for c in cases {
        let src = tempdir();
        let dest = tempdir();
        std::fs::write(src.path().join("archive"), &c.archive).expect("write archive");
        build(dest.path(), c.dest);
        let result = kiln_fileop::copy(
            src.path(),
            dest.path(),
            &c.action,
            &PasswdLookup::new(dest.path()),
        );
        out.push_str(&format!(
            "## {}\n{}{}\n",
            c.name,
            outcome(result),
            dump(dest.path())
        ));
    }
    insta::assert_snapshot!(snapshot, out);
}

fn sample() -> Vec<u8> {
    tar_bytes(&[
        Member::Dir("app/", 0o750),
        Member::File("app/run.sh", 0o4755, "#!/bin/sh\n"),
        Member::Owned("app/data", 1000, 1000, 1_400_000_000, "data"),
        Member::Symlink("app/current", "run.sh"),
        Member::File("top.txt", 0o644, "top"),
        Member::Hardlink("app/again", "top.txt"),
    ])
}

#[test]
fn detection_and_compression() {
    let tar = sample();
    let small = tar_bytes(&[Member::File("only.txt", 0o600, "only")]);
    check(
        "detection_and_compression",
        vec![
            Case {
                name: "a plain tar is extracted with modes, owners, times and links",
                archive: tar.clone(),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "gzip",
                archive: compress(Codec::Gzip, &small),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "bzip2",
                archive: compress(Codec::Bzip2, &small),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "xz",
                archive: compress(Codec::Xz, &small),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "zstd",
                archive: compress(Codec::Zstd, &small),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "a text file is copied, not extracted",
                archive: b"just text\n".to_vec(),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "gzip data that is not a tar is copied as it is",
                archive: compress(Codec::Gzip, b"not a tar at all"),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "an empty tar is no archive",
                archive: vec![0u8; 1024],
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "without attempt_unpack the archive is copied",
                archive: small.clone(),
                dest: "",
                action: dockerfile_copy("/archive", "/dest/"),
            },
            Case {
                name: "the owner override applies to every entry; implied parents belong to root",
                archive: tar_bytes(&[
                    Member::File("deep/er/f", 0o644, "f"),
                    Member::Symlink("deep/l", "er"),
                ]),
                dest: "",
                action: FileActionCopy {
                    owner: Some(chown_ids(5, 6)),
                    ..add("/dest/")
                },
            },
            Case {
                name: "a timestamp does not change the times of extracted entries",
                archive: small.clone(),
                dest: "",
                action: FileActionCopy {
                    timestamp: 1_600_000_000_000_000_000,
                    ..add("/a/dest")
                },
            },
            Case {
                name: "device and FIFO entries are skipped",
                archive: tar_bytes(&[Member::Fifo("pipe"), Member::File("f", 0o644, "f")]),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "an entry replaces an existing file or directory; directories merge",
                archive: tar_bytes(&[
                    Member::File("was-dir", 0o644, "now a file"),
                    Member::Dir("merge/", 0o700),
                    Member::File("merge/new", 0o644, "new"),
                ]),
                dest: r#"
                    d /dest 755
                    d /dest/was-dir 755
                    f /dest/was-dir/inner 644 "gone"
                    d /dest/merge 755
                    f /dest/merge/old 644 "old"
                "#,
                action: add("/dest/"),
            },
        ],
    );
}

#[test]
fn hostile_archives() {
    check(
        "hostile_archives",
        vec![
            Case {
                name: "a name climbing out is refused",
                archive: tar_bytes(&[Member::File("../evil", 0o644, "evil")]),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "a name climbing out in the middle is refused",
                archive: tar_bytes(&[Member::File("a/../../evil", 0o644, "evil")]),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "an absolute name is extracted below the destination",
                archive: tar_bytes(&[Member::File("/etc/evil", 0o644, "evil")]),
                dest: r#"
                    d /etc 755
                "#,
                action: add("/dest/"),
            },
            Case {
                name: "a file through an absolute symbolic link stays in the destination",
                archive: tar_bytes(&[
                    Member::Symlink("cfg", "/etc"),
                    Member::File("cfg/passwd", 0o644, "evil"),
                ]),
                dest: r#"
                    d /etc 755
                    f /etc/passwd 644 "image passwd"
                "#,
                action: add("/dest/"),
            },
            Case {
                name: "a symbolic link to its own absolute path is a loop",
                archive: tar_bytes(&[
                    Member::Symlink("etc", "/etc"),
                    Member::File("etc/passwd", 0o644, "evil"),
                ]),
                dest: r#"
                    d /etc 755
                    f /etc/passwd 644 "image passwd"
                "#,
                action: add("/dest/"),
            },
            Case {
                name: "a file through a climbing symbolic link is refused",
                archive: tar_bytes(&[
                    Member::Symlink("up", "../../.."),
                    Member::File("up/evil", 0o644, "evil"),
                ]),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "a hard link out of the destination is refused",
                archive: tar_bytes(&[Member::Hardlink("h", "../outside")]),
                dest: r#"f /outside 644 "secret""#,
                action: add("/dest/"),
            },
            Case {
                name: "an absolute hard link target is looked up in the destination, not the image",
                archive: tar_bytes(&[Member::Hardlink("h", "/etc/passwd")]),
                dest: r#"
                    d /etc 755
                    f /etc/passwd 644 "image passwd"
                "#,
                action: add("/dest/"),
            },
            Case {
                name: "an absolute hard link target inside the destination",
                archive: tar_bytes(&[Member::Hardlink("h", "/etc/passwd")]),
                dest: r#"
                    d /dest 755
                    d /dest/etc 755
                    f /dest/etc/passwd 644 "dest passwd"
                "#,
                action: add("/dest/"),
            },
            Case {
                name: "a hard link to the root is refused",
                archive: tar_bytes(&[Member::Hardlink("h", "/")]),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "a hard link to a symbolic link links the link itself",
                archive: tar_bytes(&[
                    Member::Symlink("s", "/etc/passwd"),
                    Member::Hardlink("h", "s"),
                ]),
                dest: "",
                action: add("/dest/"),
            },
            Case {
                name: "a symbolic link already in the destination resolves inside it",
                archive: tar_bytes(&[Member::File("lib/x", 0o644, "x")]),
                dest: r#"
                    d /dest 755
                    l /dest/lib -> /usr/lib
                "#,
                action: add("/dest/"),
            },
            Case {
                name: "a symbolic link loop ends with an error",
                archive: tar_bytes(&[
                    Member::Symlink("a", "b"),
                    Member::Symlink("b", "a"),
                    Member::File("a/x", 0o644, "x"),
                ]),
                dest: "",
                action: add("/dest/"),
            },
        ],
    );
}
