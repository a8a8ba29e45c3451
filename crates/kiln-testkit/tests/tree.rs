//! `FileTree`: what it records of a tree (types, modes, owners, contents, link targets,
//! hard-link groups), checked against trees made with `materialize`.

use std::collections::BTreeMap;

use kiln_testkit::{FileTree, NodeKind, TarEntry, materialize};
use sha2::{Digest as _, Sha256};

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// What one path must be: kind, mode, owner and hard-link group.
type Want = (NodeKind, u32, (u32, u32), Option<&'static str>);

/// Materializes `entries`, reads the tree back and compares every path with `want`.
fn check(entries: &[TarEntry], want: &[(&str, Want)]) {
    let dir = tempfile::tempdir().expect("temp dir");
    materialize(entries, dir.path()).expect("materialize");
    let tree = FileTree::read(dir.path()).expect("read tree");
    let want: BTreeMap<String, Want> = want
        .iter()
        .map(|(path, w)| ((*path).to_owned(), w.clone()))
        .collect();
    let mut failures = Vec::new();
    for (path, node) in &tree.nodes {
        let got: Want = (
            node.kind.clone(),
            node.mode,
            (node.uid, node.gid),
            None, // compared below
        );
        match want.get(path) {
            None => failures.push(format!("{path}: not expected ({node:?})")),
            Some(w) => {
                if (&got.0, got.1, got.2) != (&w.0, w.1, w.2) {
                    failures.push(format!("{path}: got {got:?}, want {w:?}"));
                }
                if node.hardlink_group.as_deref() != w.3 {
                    failures.push(format!(
                        "{path}: hard-link group {:?}, want {:?}",
                        node.hardlink_group, w.3
                    ));
                }
            }
        }
    }
    for path in want.keys() {
        if !tree.nodes.contains_key(path) {
            failures.push(format!("{path}: missing"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn records_types_modes_owners_contents_and_links() {
    let file = |data: &[u8]| NodeKind::File {
        size: data.len() as u64,
        sha256: sha(data),
    };
    check(
        &[
            TarEntry::dir("etc").mode(0o750).owner(0, 42),
            TarEntry::file("etc/passwd", "root\n"),
            TarEntry::file("bin/suid", "suid").mode(0o4755).owner(7, 8),
            TarEntry::file("bin/tool", "tool").mode(0o755),
            TarEntry::hardlink("bin/tool-again", "bin/tool"),
            TarEntry::hardlink("z-third-link", "bin/tool"),
            TarEntry::symlink("bin/sh", "tool").owner(1, 2),
            TarEntry::dir("tmp").mode(0o1777),
        ],
        &[
            (
                "/z-third-link",
                (file(b"tool"), 0o755, (0, 0), Some("/bin/tool")),
            ),
            ("/bin", (NodeKind::Dir, 0o755, (0, 0), None)),
            ("/bin/suid", (file(b"suid"), 0o4755, (7, 8), None)),
            (
                "/bin/sh",
                (
                    NodeKind::Symlink {
                        target: "tool".to_owned(),
                    },
                    0o777,
                    (1, 2),
                    None,
                ),
            ),
            (
                "/bin/tool",
                (file(b"tool"), 0o755, (0, 0), Some("/bin/tool")),
            ),
            (
                "/bin/tool-again",
                (file(b"tool"), 0o755, (0, 0), Some("/bin/tool")),
            ),
            ("/etc", (NodeKind::Dir, 0o750, (0, 42), None)),
            ("/etc/passwd", (file(b"root\n"), 0o644, (0, 0), None)),
            ("/tmp", (NodeKind::Dir, 0o1777, (0, 0), None)),
        ],
    );
}
