//! Copying many small files: 20,000 files of 8 KiB in 100 directories. With
//! `KILN_FILEOP_BENCH=1` the copy is also timed against `cp -a` of the same tree (run with
//! `--nocapture` to see the numbers); CI skips that comparison to save disk traffic.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{NoUsers, copy_action, tempdir};
use kiln_llb::ops::FileActionCopy;

const DIRS: usize = 100;
const FILES_PER_DIR: usize = 200;
const FILE_SIZE: usize = 8 * 1024;

fn make_tree(root: &Path) {
    let src = root.join("src");
    fs::create_dir(&src).expect("mkdir");
    let mut data = vec![0u8; FILE_SIZE];
    for d in 0..DIRS {
        let dir = src.join(format!("d{d:03}"));
        fs::create_dir(&dir).expect("mkdir");
        for f in 0..FILES_PER_DIR {
            let seed = d * FILES_PER_DIR + f;
            for (i, b) in data.iter_mut().enumerate() {
                *b = (seed + i) as u8;
            }
            fs::write(dir.join(format!("f{f:03}")), &data).expect("write");
        }
    }
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for entry in fs::read_dir(dir).expect("read_dir").flatten() {
        let ty = entry.file_type().expect("file type");
        if ty.is_dir() {
            n += count_files(&entry.path());
        } else {
            n += 1;
        }
    }
    n
}

#[test]
#[allow(clippy::print_stderr)]
fn twenty_thousand_small_files() {
    let src = tempdir();
    make_tree(src.path());

    let dest = tempdir();
    let action = FileActionCopy {
        create_dest_path: true,
        ..copy_action("/src", "/out")
    };
    let started = Instant::now();
    kiln_fileop::copy(src.path(), dest.path(), &action, &NoUsers).expect("copy");
    let ours = started.elapsed();

    assert_eq!(count_files(&dest.path().join("out")), DIRS * FILES_PER_DIR);
    let sample = fs::read(dest.path().join("out/d042/f007")).expect("read sample");
    let original = fs::read(src.path().join("src/d042/f007")).expect("read original");
    assert!(sample == original, "copied content differs");

    if std::env::var_os("KILN_FILEOP_BENCH").is_some() {
        let reference = tempdir();
        let started = Instant::now();
        let status = Command::new("cp")
            .arg("-a")
            .arg(src.path().join("src"))
            .arg(reference.path().join("out"))
            .status()
            .expect("run cp -a");
        let cp = started.elapsed();
        assert!(status.success(), "cp -a failed");
        eprintln!(
            "copy of {} files x {} KiB: kiln-fileop {:.2?}, cp -a {:.2?} (ratio {:.2})",
            DIRS * FILES_PER_DIR,
            FILE_SIZE / 1024,
            ours,
            cp,
            ours.as_secs_f64() / cp.as_secs_f64().max(1e-9)
        );
    } else {
        eprintln!(
            "copy of {} files x {} KiB: kiln-fileop {:.2?}",
            DIRS * FILES_PER_DIR,
            FILE_SIZE / 1024,
            ours
        );
    }
    // A generous bound that still catches a pathological slowdown (per-file path walks from
    // the root, fsync per file...).
    assert!(ours < Duration::from_secs(120), "copying took {ours:?}");
}
