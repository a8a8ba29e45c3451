//! Helpers shared by the end-to-end tests of the `kiln` binary.
//!
//! Each test file uses a subset of them.
#![allow(dead_code)]

use std::process::Output;

/// The `kiln` binary under test.
pub fn kiln() -> assert_cmd::Command {
    assert_cmd::cargo::cargo_bin_cmd!("kiln")
}

/// A state directory for one test, on a filesystem where overlayfs works (not tmpfs).
pub fn state_dir() -> tempfile::TempDir {
    std::fs::create_dir_all("/var/tmp/kiln-tests").expect("create /var/tmp/kiln-tests");
    tempfile::Builder::new()
        .prefix("state-")
        .tempdir_in("/var/tmp/kiln-tests")
        .expect("state dir")
}

/// Fails the test with kiln's stderr unless the command succeeded; returns that stderr.
pub fn assert_success(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "kiln build failed ({:?}):\n{stderr}",
        out.status.code()
    );
    stderr
}

/// How a step ended in a plain progress log: `CACHED`, `DONE` or `ERROR`; `None` if the step
/// does not appear.
pub fn step_state<'a>(log: &'a str, step: &str) -> Option<&'a str> {
    let number = log.lines().find_map(|l| {
        let (num, rest) = l.strip_prefix('#')?.split_once(' ')?;
        (rest.contains(step) && rest.starts_with('[')).then_some(num)
    })?;
    let prefix = format!("#{number} ");
    log.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .find_map(|rest| {
            ["CACHED", "DONE", "ERROR"]
                .into_iter()
                .find(|s| rest.starts_with(s))
        })
}
