//! End-to-end tests of the `kiln` binary: the debug commands on upstream's conformance
//! Dockerfiles and on the examples, error rendering and exit codes.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn kiln() -> Command {
    assert_cmd::cargo::cargo_bin_cmd!("kiln")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn conformance_cases(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        std::fs::read_dir(repo().join("conformance/dockerfile-parser").join(dir))
            .expect("conformance directory")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.is_dir())
            .collect();
    out.sort();
    out
}

/// `kiln debug parse-dockerfile` prints exactly upstream's `result` for all 33 cases.
#[test]
fn parse_dockerfile_matches_upstream_results() {
    let cases = conformance_cases("testfiles");
    assert_eq!(cases.len(), 33);
    let mut failures = Vec::new();
    for case in &cases {
        let out = kiln()
            .arg("debug")
            .arg("parse-dockerfile")
            .arg(case.join("Dockerfile"))
            .output()
            .expect("run kiln");
        let expected = std::fs::read(case.join("result")).expect("result file");
        if !out.status.success() || out.stdout != expected {
            failures.push(format!(
                "{}: exit {:?}\n--- got\n{}--- want\n{}--- stderr\n{}",
                case.display(),
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Reading the Dockerfile from stdin gives the same dump.
#[test]
fn parse_dockerfile_reads_stdin() {
    let case = repo().join("conformance/dockerfile-parser/testfiles/health");
    let input = std::fs::read(case.join("Dockerfile")).expect("Dockerfile");
    let expected = std::fs::read(case.join("result")).expect("result");
    kiln()
        .args(["debug", "parse-dockerfile", "-"])
        .write_stdin(input)
        .assert()
        .success()
        .stdout(expected);
}

/// Upstream's negative cases fail with `file:line: message` and exit code 1.
#[test]
fn parse_dockerfile_rejects_negative_cases() {
    let cases = conformance_cases("testfiles-negative");
    assert_eq!(cases.len(), 4);
    for case in cases {
        let out = kiln()
            .arg("debug")
            .arg("parse-dockerfile")
            .arg(case.join("Dockerfile"))
            .output()
            .expect("run kiln");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", case.display());
        assert!(
            stderr.starts_with("Dockerfile:"),
            "{}: {stderr}",
            case.display()
        );
        assert!(out.stdout.is_empty(), "{}", case.display());
    }
}

/// The conformance Dockerfiles that BuildKit itself cannot build either (they test the parser
/// only), with the first line of the error kiln gives. Every other one converts.
const EXPECTED_CONVERSION_ERRORS: &[(&str, &str)] = &[
    (
        "testfiles/env",
        "Dockerfile:12: failed to process \"'a\\\\'b'\": unexpected end of statement while looking for matching single-quote",
    ),
    ("testfiles/escapes", "Dockerfile:6: failed to process"),
    (
        "testfiles/flags",
        "Dockerfile:3: dockerfile parse error on line 3: unknown flag: --user",
    ),
    (
        "testfiles/health",
        "Dockerfile:4: dockerfile parse error on line 4: HEALTHCHECK requires at least one argument",
    ),
    (
        "testfiles/jeztah-invalid-json-json-inside-string",
        "Dockerfile:1: no build stage in current context",
    ),
    (
        "testfiles/jeztah-invalid-json-json-inside-string-double",
        "Dockerfile:1: no build stage in current context",
    ),
    (
        "testfiles/jeztah-invalid-json-single-quotes",
        "Dockerfile:1: no build stage in current context",
    ),
    (
        "testfiles/jeztah-invalid-json-unterminated-bracket",
        "Dockerfile:1: no build stage in current context",
    ),
    (
        "testfiles/jeztah-invalid-json-unterminated-string",
        "Dockerfile:1: no build stage in current context",
    ),
    (
        "testfiles/json",
        "Dockerfile:1: no build stage in current context",
    ),
    (
        "testfiles-negative/empty_dockerfile",
        "Dockerfile: the Dockerfile cannot be empty",
    ),
    (
        "testfiles-negative/env_no_value",
        "Dockerfile:3: dockerfile parse error on line 3: ENV must have two arguments",
    ),
    (
        "testfiles-negative/only_comments",
        "Dockerfile:3: dockerfile parse error on line 3: file with no instructions",
    ),
    (
        "testfiles-negative/shykes-nested-json",
        "Dockerfile:1: dockerfile parse error on line 1: when using JSON array syntax, arrays must be comprised of strings only",
    ),
];

/// `dump-llb` converts every conformance Dockerfile, or fails with a located message; it never
/// crashes.
#[test]
fn dump_llb_handles_every_conformance_dockerfile() {
    let mut failures = Vec::new();
    let mut converted = 0;
    for case in conformance_cases("testfiles")
        .into_iter()
        .chain(conformance_cases("testfiles-negative"))
    {
        let key = format!(
            "{}/{}",
            case.parent()
                .and_then(|p| p.file_name())
                .expect("parent")
                .to_string_lossy(),
            case.file_name().expect("name").to_string_lossy()
        );
        let expected_error = EXPECTED_CONVERSION_ERRORS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, e)| *e);
        let out = kiln()
            .args(["debug", "dump-llb", "-f"])
            .arg(case.join("Dockerfile"))
            .arg(&case)
            .output()
            .expect("run kiln");
        let stderr = String::from_utf8_lossy(&out.stderr);
        match (out.status.code(), expected_error) {
            (Some(0), None) => {
                let stdout = String::from_utf8(out.stdout).expect("utf-8");
                for line in stdout.lines() {
                    let op: serde_json::Value =
                        serde_json::from_str(line).expect("one JSON op per line");
                    assert!(
                        op["Digest"]
                            .as_str()
                            .is_some_and(|d| d.starts_with("sha256:")),
                        "{line}"
                    );
                }
                assert!(stdout.lines().count() >= 2, "{key}: {stdout}");
                converted += 1;
            }
            (Some(1), Some(want)) if stderr.starts_with(want) => {}
            (code, want) => failures.push(format!(
                "{key}: exit {code:?}, expected error {want:?}, stderr: {stderr}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(converted, 37 - EXPECTED_CONVERSION_ERRORS.len());
}

/// The README's example converts, and its graph pins the base image and reads the context.
#[test]
fn dump_llb_of_the_hello_example() {
    let out = kiln()
        .args(["debug", "dump-llb"])
        .arg(repo().join("examples/hello"))
        .output()
        .expect("run kiln");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        stdout.contains("docker-image://docker.io/library/busybox:1.36"),
        "{stdout}"
    );
    assert!(stdout.contains("local://context"), "{stdout}");
    assert!(
        stdout.contains(r#""local.followpaths":"[\"greeting.txt\"]""#),
        "{stdout}"
    );
}

/// Errors show `Dockerfile:LINE: message`, the offending line, and exit with 1.
#[test]
fn conversion_errors_point_at_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM busybox\nRUN true\nRUNN echo typo\n",
    )
    .expect("write");
    let out = kiln()
        .args(["debug", "dump-llb"])
        .arg(dir.path())
        .output()
        .expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(
            "Dockerfile:3: dockerfile parse error on line 3: unknown instruction: RUNN"
        ),
        "{stderr}"
    );
    assert!(stderr.contains(">>> RUNN echo typo"), "{stderr}");
}

/// A missing Dockerfile is one clear message, exit 1.
#[test]
fn missing_dockerfile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kiln()
        .args(["debug", "dump-llb"])
        .arg(dir.path())
        .output()
        .expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with("ERROR: reading ") && stderr.contains("Dockerfile"),
        "{stderr}"
    );
}

/// Unknown flags are usage errors (exit 2).
#[test]
fn usage_errors_exit_2() {
    kiln()
        .args(["debug", "dump-llb", "--no-such-flag", "."])
        .assert()
        .code(2);
    kiln().args(["frobnicate"]).assert().code(2);
}

/// Build checks are printed as warnings; `check=error=true` makes them fatal.
#[test]
fn build_check_warnings_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("Dockerfile"), "FROM busybox\nCMD echo hi\n").expect("write");
    let out = kiln()
        .args(["debug", "dump-llb"])
        .arg(dir.path())
        .output()
        .expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1 warning found"), "{stderr}");
    assert!(
        stderr.contains("JSONArgsRecommended: JSON arguments recommended for CMD"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("Dockerfile"),
        "# check=error=true\nFROM busybox\nCMD echo hi\n",
    )
    .expect("write");
    let out = kiln()
        .args(["debug", "dump-llb"])
        .arg(dir.path())
        .output()
        .expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("JSONArgsRecommended"), "{stderr}");
}

/// Every example Dockerfile of the repository converts.
#[test]
fn dump_llb_of_every_example() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 4, "{dirs:?}");
    for dir in dirs {
        let out = kiln()
            .args(["debug", "dump-llb"])
            .arg(&dir)
            .output()
            .expect("run kiln");
        assert!(
            out.status.success(),
            "{}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let ops = String::from_utf8(out.stdout)
            .expect("utf-8")
            .lines()
            .count();
        assert!(ops >= 3, "{}: only {ops} ops", dir.display());
    }
}
