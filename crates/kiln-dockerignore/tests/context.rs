//! BuildKit's `.dockerignore` build scenarios (`conformance/dockerignore/context-cases.json`),
//! checked at the library level: which ignore file applies, and which context files the
//! patterns keep. (The full builds are the job of the end-to-end tests.)

use std::collections::BTreeMap;
use std::path::Path;

use kiln_dockerignore::{PatternMatcher, ignore_file_for, read_ignore_file};
use serde::Deserialize;

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../conformance/dockerignore/context-cases.json"
);

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    dockerignore: Option<String>,
    #[serde(default)]
    context_files: BTreeMap<String, String>,
    #[serde(default)]
    expect_in_output: BTreeMap<String, String>,
    #[serde(default)]
    expect_absent_from_output: Vec<String>,
    #[serde(default)]
    expect_error: bool,
    #[serde(default)]
    builds: Vec<Build>,
}

#[derive(Deserialize)]
struct Build {
    filename: String,
    effective_ignore_file: String,
}

fn case(name: &str) -> Case {
    let file: File =
        serde_json::from_slice(&std::fs::read(CASES).expect("readable")).expect("valid JSON");
    file.cases
        .into_iter()
        .find(|c| c.name == name)
        .expect("scenario exists")
}

fn matcher(ignore_file: &[u8]) -> Result<PatternMatcher, kiln_dockerignore::Error> {
    PatternMatcher::new(&read_ignore_file(ignore_file)?)
}

/// `expected` maps each path to whether it must be excluded.
fn check(m: &PatternMatcher, expected: &BTreeMap<&str, bool>) -> Vec<String> {
    expected
        .iter()
        .filter_map(|(path, &want)| {
            let got = m.matches_or_parent_matches(path);
            (got != Ok(want)).then(|| format!("{path}: want excluded={want}, got {got:?}"))
        })
        .collect()
}

#[test]
fn dockerignore_basic() {
    let c = case("dockerignore-basic");
    let m = matcher(c.dockerignore.as_deref().unwrap_or("").as_bytes()).expect("valid");
    let mut expected: BTreeMap<&str, bool> = BTreeMap::new();
    expected.extend(c.expect_in_output.keys().map(|k| (k.as_str(), false)));
    expected.extend(
        c.expect_absent_from_output
            .iter()
            .map(|k| (k.as_str(), true)),
    );
    assert_eq!(
        expected.len(),
        c.context_files.len(),
        "every file is covered"
    );
    let failures = check(&m, &expected);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn dockerignore_invalid() {
    let c = case("dockerignore-invalid");
    assert!(c.expect_error);
    let got = matcher(c.dockerignore.as_deref().unwrap_or("").as_bytes());
    assert!(got.is_err(), "a lone ! must be rejected");
}

/// Reads the `[ -f x ]` / `[ ! -f x ]` tests of the Dockerfile's RUN line: each names a file
/// that must (or must not) reach the build.
fn run_checks(dockerfile: &str) -> BTreeMap<&str, bool> {
    let run = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("RUN "))
        .expect("a RUN line");
    run.split("&&")
        .map(|test| {
            let words: Vec<&str> = test.split_whitespace().collect();
            match words[..] {
                ["[", "-f", file, "]"] => (file, false),
                ["[", "!", "-f", file, "]"] => (file, true),
                _ => panic!("unexpected test {test:?}"),
            }
        })
        .collect()
}

#[test]
fn dockerignore_per_dockerfile_override() {
    let c = case("dockerignore-per-dockerfile-override");
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, content) in &c.context_files {
        std::fs::write(dir.path().join(name), content).expect("write");
    }
    assert_eq!(c.builds.len(), 2);
    let mut failures = Vec::new();
    for b in &c.builds {
        let found = ignore_file_for(dir.path(), &dir.path().join(&b.filename));
        let want = dir.path().join(&b.effective_ignore_file);
        if found.as_deref() != Some(want.as_path()) {
            failures.push(format!("{}: want {want:?}, got {found:?}", b.filename));
            continue;
        }
        let m = matcher(&std::fs::read(&want).expect("read")).expect("valid");
        let dockerfile = &c.context_files[&b.filename];
        failures.extend(
            check(&m, &run_checks(dockerfile))
                .into_iter()
                .map(|f| format!("{}: {f}", b.filename)),
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// More layouts. Each scenario lists the files (a name ending in `/` is a directory) and the
/// Dockerfile path, both relative to a fresh directory whose `ctx/` is the context; the
/// snapshot records which ignore file was chosen.
#[test]
fn ignore_file_lookup() {
    let scenarios: &[(&str, &[&str], &str)] = &[
        (
            "only the context file",
            &["ctx/Dockerfile", "ctx/.dockerignore"],
            "ctx/Dockerfile",
        ),
        (
            "per-Dockerfile file wins",
            &[
                "ctx/Dockerfile",
                "ctx/.dockerignore",
                "ctx/Dockerfile.dockerignore",
            ],
            "ctx/Dockerfile",
        ),
        (
            "named Dockerfile in a subdirectory",
            &[
                "ctx/.dockerignore",
                "ctx/sub/build.Dockerfile",
                "ctx/sub/build.Dockerfile.dockerignore",
            ],
            "ctx/sub/build.Dockerfile",
        ),
        (
            "ignore file next to the context root does not count for a subdirectory Dockerfile",
            &[
                "ctx/.dockerignore",
                "ctx/sub/app.Dockerfile",
                "ctx/app.Dockerfile.dockerignore",
            ],
            "ctx/sub/app.Dockerfile",
        ),
        (
            "Dockerfile outside the context",
            &[
                "ctx/.dockerignore",
                "other/Dockerfile",
                "other/Dockerfile.dockerignore",
            ],
            "other/Dockerfile",
        ),
        (
            "no ignore file at all",
            &["ctx/Dockerfile"],
            "ctx/Dockerfile",
        ),
        (
            "lower-case dockerfile uses dockerfile.dockerignore",
            &[
                "ctx/dockerfile",
                "ctx/dockerfile.dockerignore",
                "ctx/Dockerfile.dockerignore",
                "ctx/.dockerignore",
            ],
            "ctx/Dockerfile",
        ),
        (
            "lower-case dockerfile ignores Dockerfile.dockerignore",
            &[
                "ctx/dockerfile",
                "ctx/Dockerfile.dockerignore",
                "ctx/.dockerignore",
            ],
            "ctx/Dockerfile",
        ),
        (
            "a directory named like the ignore file is not a file",
            &[
                "ctx/Dockerfile",
                "ctx/Dockerfile.dockerignore/",
                "ctx/.dockerignore",
            ],
            "ctx/Dockerfile",
        ),
        (
            "a Dockerfile from stdin (empty path) uses the context file",
            &["ctx/Dockerfile.dockerignore", "ctx/.dockerignore"],
            "",
        ),
    ];
    let mut results = Vec::new();
    for (name, files, dockerfile) in scenarios {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("ctx")).expect("mkdir");
        for f in *files {
            let path = root.path().join(f);
            if let Some(d) = f.strip_suffix('/') {
                std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
                continue;
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&path, "x").expect("write");
        }
        let dockerfile = if dockerfile.is_empty() {
            Path::new("").to_path_buf()
        } else {
            root.path().join(dockerfile)
        };
        let found = ignore_file_for(&root.path().join("ctx"), &dockerfile);
        let shown = found.map(|p| {
            p.strip_prefix(root.path())
                .map(|r| r.display().to_string())
                .unwrap_or_else(|_| p.display().to_string())
        });
        results.push(serde_json::json!({ "scenario": name, "ignore_file": shown }));
    }
    insta::assert_json_snapshot!(results);
}
