//! Incremental copies of a local directory: after random edits of the directory, the local
//! source's result (a snapshot on top of the previous copy, holding only what changed) must be
//! exactly the tree a full copy gives (types, modes, owner 0:0, contents, link targets,
//! modification times), and the later copies must really be incremental (a parent snapshot,
//! a small size).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use kiln_testkit::FileTree;
use kiln_worker::{Filter, RecordType, Worker};

/// A small deterministic generator (xorshift64*), so that a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = self.below(3000);
        (0..len).map(|_| (self.next() & 0xff) as u8).collect()
    }
}

/// Every file and directory below `root` (not `root`), sorted.
fn entries(root: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                dirs.push(path.clone());
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    dirs.sort();
    (files, dirs)
}

fn set_mtime(path: &Path, secs: u64) {
    let file = std::fs::File::open(path).expect("open for times");
    file.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .expect("set mtime");
}

/// One random edit of the context; returns what it did, for the failure message.
fn edit(rng: &mut Rng, root: &Path) -> String {
    let (files, dirs) = entries(root);
    let any_dir = |rng: &mut Rng| {
        if dirs.is_empty() || rng.below(4) == 0 {
            root.to_path_buf()
        } else {
            dirs[rng.below(dirs.len())].clone()
        }
    };
    match rng.below(9) {
        0 if !files.is_empty() => {
            let f = &files[rng.below(files.len())];
            let _ = std::fs::remove_file(f);
            std::fs::write(f, rng.bytes()).expect("rewrite");
            format!("rewrote {}", f.display())
        }
        1 => {
            let f = any_dir(rng).join(format!("new{}", rng.next() % 1000));
            let _ = std::fs::remove_dir_all(&f);
            std::fs::write(&f, rng.bytes()).expect("create");
            format!("created {}", f.display())
        }
        2 if !files.is_empty() => {
            let f = &files[rng.below(files.len())];
            std::fs::remove_file(f).expect("remove");
            format!("removed {}", f.display())
        }
        3 if !dirs.is_empty() => {
            let d = &dirs[rng.below(dirs.len())];
            std::fs::remove_dir_all(d).expect("remove dir");
            format!("removed dir {}", d.display())
        }
        4 => {
            // Not symlinks: chmod follows them.
            let candidates: Vec<&PathBuf> = files
                .iter()
                .chain(&dirs)
                .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_symlink()))
                .collect();
            if candidates.is_empty() {
                return "nothing to chmod".to_string();
            }
            let p = candidates[rng.below(candidates.len())];
            let mode = [0o600, 0o644, 0o755, 0o700, 0o4755][rng.below(5)];
            let mode = if p.is_dir() { mode | 0o700 } else { mode };
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            format!("chmod {mode:o} {}", p.display())
        }
        5 if !files.is_empty() => {
            let f = &files[rng.below(files.len())];
            let secs = 1_000_000_000 + rng.next() % 100_000_000;
            if std::fs::symlink_metadata(f).is_ok_and(|m| m.is_file()) {
                set_mtime(f, secs);
            }
            // A new time alone keeps the content digest, hence the cached copy (as in
            // BuildKit): a new file makes the copy happen, and it must carry the new time.
            let marker = root.join(format!("marker{}", rng.next() % 1000));
            let _ = std::fs::remove_dir_all(&marker);
            std::fs::write(&marker, rng.bytes()).expect("marker");
            format!("touched {} (and wrote {})", f.display(), marker.display())
        }
        6 if !files.is_empty() => {
            let f = &files[rng.below(files.len())];
            std::fs::remove_file(f).expect("remove for symlink");
            std::os::unix::fs::symlink(format!("target{}", rng.next() % 10), f).expect("symlink");
            format!("replaced {} by a symlink", f.display())
        }
        7 if !dirs.is_empty() => {
            let d = &dirs[rng.below(dirs.len())];
            std::fs::remove_dir_all(d).expect("remove dir for file");
            std::fs::write(d, rng.bytes()).expect("file where a dir was");
            format!("replaced dir {} by a file", d.display())
        }
        _ => {
            let d = any_dir(rng).join(format!("dir{}", rng.next() % 1000));
            if std::fs::symlink_metadata(&d).is_ok() {
                return format!("{} exists", d.display());
            }
            std::fs::create_dir(&d).expect("mkdir");
            std::fs::write(d.join("inside"), rng.bytes()).expect("file in new dir");
            format!("made {}", d.display())
        }
    }
}

/// The tree a full copy of `context` gives: the same, owned by root.
fn expected(context: &Path) -> FileTree {
    let mut tree = FileTree::read(context).expect("read context");
    for node in tree.nodes.values_mut() {
        node.uid = 0;
        node.gid = 0;
    }
    tree
}

fn differences(got: &FileTree, want: &FileTree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, w) in &want.nodes {
        match got.nodes.get(path) {
            Some(g) if g == w => {}
            Some(g) => out.push(format!("{path}: got {g:?}, want {w:?}")),
            None => out.push(format!("{path}: missing")),
        }
    }
    for path in got.nodes.keys() {
        if !want.nodes.contains_key(path) {
            out.push(format!("{path}: not expected"));
        }
    }
    out
}

#[tokio::test]
async fn incremental_copies_equal_full_copies() {
    let (_state, _lock, worker) = common::open_worker("worker-incremental-").await;
    let unused = tempfile::tempdir().expect("dir");
    let (def, _) = common::local_context(unused.path());
    for seed in [
        0x6b69_6c6e_2d73_796e_u64,
        0x1234_5678_9abc_def1,
        0x0fed_cba9_8765_4321,
    ] {
        edit_and_compare(&worker, &def, seed).await;
    }

    // Later copies are layers on top of earlier ones, each far smaller than the whole tree.
    let records = worker
        .storage()
        .disk_usage(&Filter::all(), &[])
        .expect("disk usage");
    let locals: Vec<_> = records
        .iter()
        .filter(|r| r.record_type == RecordType::LocalSource)
        .collect();
    let full = locals.iter().map(|r| r.size).max().unwrap_or(0);
    let layered: Vec<_> = locals.iter().filter(|r| !r.parents.is_empty()).collect();
    assert!(
        layered.len() >= 30,
        "only {} of {} local copies are incremental: {locals:#?}",
        layered.len(),
        locals.len()
    );
    assert!(
        layered.iter().all(|r| r.size * 4 < full),
        "an incremental copy is not much smaller than the full one ({full} bytes): {layered:#?}"
    );
}

/// 25 rounds of random edits of a new context (from `seed`), each followed by a build of the
/// local source whose result must equal a full copy of the context.
async fn edit_and_compare(worker: &Worker, def: &kiln_llb::Definition, seed: u64) {
    let context = tempfile::tempdir().expect("context");
    let mut rng = Rng(seed);
    // A starting tree of about 60 entries.
    for d in 0..6 {
        let dir = context.path().join(format!("d{d}"));
        std::fs::create_dir(&dir).expect("mkdir");
        for f in 0..8 {
            std::fs::write(dir.join(format!("f{f}")), rng.bytes()).expect("write");
        }
    }
    for f in 0..10 {
        std::fs::write(context.path().join(format!("top{f}")), rng.bytes()).expect("write");
    }

    let (_, locals) = common::local_context(context.path());
    let out = tempfile::tempdir().expect("out");
    let mut history = Vec::new();
    let mut failures = Vec::new();
    for round in 0..25 {
        if round > 0 {
            for _ in 0..=rng.below(3) {
                history.push(format!("round {round}: {}", edit(&mut rng, context.path())));
            }
            // Old times on some directories, so that a copy that left a directory with the
            // time its own writes gave it is seen (times are compared in whole seconds).
            let (_, dirs) = entries(context.path());
            for _ in 0..2 {
                if !dirs.is_empty() {
                    let d = &dirs[rng.below(dirs.len())];
                    set_mtime(d, 1_000_000_000 + rng.next() % 100_000_000);
                }
            }
        }
        let result = worker
            .solve(def, &locals, Arc::new(kiln_progress::Discard))
            .await
            .expect("solve");
        let dest = out.path().join(format!("r{round}"));
        worker.export_local(&result, &dest).await.expect("export");
        let got = FileTree::read(&dest).expect("read result");
        let diff = differences(&got, &expected(context.path()));
        if !diff.is_empty() {
            failures.push(format!("after round {round}:\n{}", diff.join("\n")));
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed:#x}: {}\nedits:\n{}",
        failures.join("\n"),
        history.join("\n")
    );
}
