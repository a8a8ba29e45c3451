//! The local source (the build context) as BuildKit's clients send it: every path belongs to
//! root, whoever owns it on the client, with its permission bits (setuid, setgid included)
//! unchanged. Found by the parity test with the Docker engine (`kiln-cli/tests/parity.rs`).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use kiln_testkit::{FileTree, NodeKind};

/// A context entry: its path, whether it is a directory, its mode and its owner.
struct Entry {
    path: &'static str,
    dir: bool,
    mode: u32,
    owner: (u32, u32),
}

/// What a path of the local source's result must be: its mode and owner.
type Expected = BTreeMap<&'static str, (u32, (u32, u32))>;

fn write_context(dir: &Path, entries: &[Entry]) {
    for e in entries {
        let path = dir.join(e.path);
        if e.dir {
            std::fs::create_dir_all(&path).expect("mkdir");
        } else {
            std::fs::write(&path, e.path).expect("write");
        }
        // chown first: it clears setuid and setgid.
        std::os::unix::fs::lchown(&path, Some(e.owner.0), Some(e.owner.1)).expect("chown");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(e.mode)).expect("chmod");
    }
    std::os::unix::fs::symlink("a.txt", dir.join("link")).expect("symlink");
    std::os::unix::fs::lchown(dir.join("link"), Some(4242), Some(4343)).expect("lchown");
}

/// Runs the local source alone on a fresh worker and compares its result with `expected`.
async fn check(entries: &[Entry], expected: &Expected) {
    let context = tempfile::tempdir().expect("context");
    write_context(context.path(), entries);
    let (_state, _lock, worker) = common::open_worker("worker-local-").await;
    let (def, locals) = common::local_context(context.path());
    let result = worker
        .solve(&def, &locals, Arc::new(kiln_progress::Discard))
        .await
        .expect("solve");
    let out = tempfile::tempdir().expect("out");
    let dest = out.path().join("result");
    worker.export_local(&result, &dest).await.expect("export");

    let tree = FileTree::read(&dest).expect("read result");
    let mut failures = Vec::new();
    let got: BTreeMap<&str, (u32, (u32, u32))> = tree
        .nodes
        .iter()
        .map(|(path, node)| {
            let mode = if matches!(node.kind, NodeKind::Symlink { .. }) {
                0o777
            } else {
                node.mode
            };
            (path.as_str(), (mode, (node.uid, node.gid)))
        })
        .collect();
    for (path, want) in expected {
        match got.get(path) {
            Some(have) if have == want => {}
            Some(have) => failures.push(format!(
                "{path}: mode {:04o} owner {:?}, want mode {:04o} owner {:?}",
                have.0, have.1, want.0, want.1
            )),
            None => failures.push(format!("{path}: missing")),
        }
    }
    for path in got.keys() {
        if !expected.contains_key(path) {
            failures.push(format!("{path}: not expected"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn context_files_belong_to_root_with_their_modes() {
    let entries = [
        Entry {
            path: "a.txt",
            dir: false,
            mode: 0o640,
            owner: (4242, 4343),
        },
        Entry {
            path: "dir",
            dir: true,
            mode: 0o750,
            owner: (4242, 4343),
        },
        Entry {
            path: "dir/setuid",
            dir: false,
            mode: 0o4755,
            owner: (4242, 4343),
        },
        Entry {
            path: "dir/setgid-dir",
            dir: true,
            mode: 0o2775,
            owner: (1000, 1000),
        },
        Entry {
            path: "mine.txt",
            dir: false,
            mode: 0o600,
            owner: (0, 0),
        },
    ];
    let expected: Expected = [
        ("/a.txt", (0o640, (0, 0))),
        ("/dir", (0o750, (0, 0))),
        ("/dir/setuid", (0o4755, (0, 0))),
        ("/dir/setgid-dir", (0o2775, (0, 0))),
        ("/mine.txt", (0o600, (0, 0))),
        ("/link", (0o777, (0, 0))),
    ]
    .into_iter()
    .collect();
    check(&entries, &expected).await;
}
