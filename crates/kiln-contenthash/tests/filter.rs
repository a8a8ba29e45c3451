//! What `tree_digest` keeps: `.dockerignore` excludes and `!` re-includes, include
//! patterns, follow paths, and BuildKit's dockerignore build scenarios.
//!
//! Each case compares the digest of a full tree under a filter with the digest of a tree
//! holding only what should be kept, without filter: equal digests mean the same entries,
//! with the same metadata and content, were kept.

mod support;

use std::collections::BTreeMap;

use kiln_contenthash::{Filter, Hasher};
use support::{Spec, strings, tree};

/// The context most cases start from.
const CONTEXT: &[Spec<'static>] = &[
    Spec::File("Dockerfile", "FROM scratch\n", 0o644),
    Spec::File("README.md", "readme", 0o644),
    Spec::File("main.go", "package main", 0o644),
    Spec::File("docs/guide.md", "guide", 0o644),
    Spec::File("docs/img/logo.png", "png", 0o644),
    Spec::File("src/app.rs", "app", 0o644),
    Spec::File("src/notes.md", "notes", 0o644),
    Spec::File("src/keep/me.txt", "me", 0o644),
    Spec::File("node_modules/a/index.js", "a", 0o644),
    Spec::File("node_modules/b/index.js", "b", 0o644),
    Spec::Link("latest", "src/app.rs"),
    Spec::Link("etc-link", "/etc"),
];

fn filter(excludes: &[&str], includes: &[&str], follow: &[&str]) -> Filter {
    Filter {
        excludes: strings(excludes),
        includes: strings(includes),
        follow_paths: strings(follow),
    }
}

/// The entries of [`CONTEXT`] with these paths (implicit directories included).
fn only(paths: &[&str]) -> Vec<Spec<'static>> {
    CONTEXT
        .iter()
        .filter(|s| {
            let p = match s {
                Spec::File(p, _, _) | Spec::Dir(p, _) | Spec::Link(p, _) => *p,
            };
            paths.contains(&p)
        })
        .copied()
        .collect()
}

#[test]
fn dockerignore() {
    let cases: Vec<(&str, Filter, Vec<Spec<'static>>)> = vec![
        ("no patterns", filter(&[], &[], &[]), CONTEXT.to_vec()),
        (
            "patterns are anchored at the root",
            filter(&["*.md"], &[], &[]),
            only(&[
                "Dockerfile",
                "main.go",
                "docs/guide.md",
                "docs/img/logo.png",
                "src/app.rs",
                "src/notes.md",
                "src/keep/me.txt",
                "node_modules/a/index.js",
                "node_modules/b/index.js",
                "latest",
                "etc-link",
            ]),
        ),
        (
            "** reaches every level, and emptied directories stay",
            filter(&["**/*.md", "node_modules", "docs/img"], &[], &[]),
            [
                only(&[
                    "Dockerfile",
                    "main.go",
                    "src/app.rs",
                    "src/keep/me.txt",
                    "latest",
                    "etc-link",
                ]),
                vec![Spec::Dir("docs", 0o755)],
            ]
            .concat(),
        ),
        (
            "a directory excludes everything below it",
            filter(&["src", "node_modules/"], &[], &[]),
            only(&[
                "Dockerfile",
                "README.md",
                "main.go",
                "docs/guide.md",
                "docs/img/logo.png",
                "latest",
                "etc-link",
            ]),
        ),
        (
            "! re-includes below an excluded directory",
            filter(&["src", "!src/keep"], &[], &[]),
            only(&[
                "Dockerfile",
                "README.md",
                "main.go",
                "docs/guide.md",
                "docs/img/logo.png",
                "src/keep/me.txt",
                "node_modules/a/index.js",
                "node_modules/b/index.js",
                "latest",
                "etc-link",
            ]),
        ),
        (
            "the last matching pattern wins",
            filter(&["!src/keep", "src"], &[], &[]),
            only(&[
                "Dockerfile",
                "README.md",
                "main.go",
                "docs/guide.md",
                "docs/img/logo.png",
                "node_modules/a/index.js",
                "node_modules/b/index.js",
                "latest",
                "etc-link",
            ]),
        ),
        (
            "exclude everything but a few",
            filter(&["*", "!Dockerfile", "!src/*.rs"], &[], &[]),
            only(&["Dockerfile", "src/app.rs"]),
        ),
        (
            "wildcard re-includes",
            filter(&["node_modules", "!node_modules/*/index.js"], &[], &[]),
            CONTEXT.to_vec(),
        ),
        (
            "wildcard re-includes, then a directory excluded again",
            filter(
                &[
                    "node_modules",
                    "!node_modules/*/index.js",
                    "node_modules/b/*",
                ],
                &[],
                &[],
            ),
            only(&[
                "Dockerfile",
                "README.md",
                "main.go",
                "docs/guide.md",
                "docs/img/logo.png",
                "src/app.rs",
                "src/notes.md",
                "src/keep/me.txt",
                "node_modules/a/index.js",
                "latest",
                "etc-link",
            ]),
        ),
        (
            // Upstream's walk (fsutil with patternmatcher's `MatchesUsingParentResults`)
            // does not test `node_modules/b` against the last pattern, because the directory
            // is already excluded when that pattern comes; so its children do not inherit the
            // match, and `!node_modules/*/index.js` keeps `node_modules/b/index.js`.
            // `MatchesOrParentMatches` would exclude it. The digest follows the walk, which is
            // what BuildKit sends.
            "a directory excluded twice does not pass the second match down",
            filter(
                &["node_modules", "!node_modules/*/index.js", "node_modules/b"],
                &[],
                &[],
            ),
            CONTEXT.to_vec(),
        ),
        (
            "symlinks are excluded like files, never followed",
            filter(&["latest", "etc-link/passwd"], &[], &[]),
            only(&[
                "Dockerfile",
                "README.md",
                "main.go",
                "docs/guide.md",
                "docs/img/logo.png",
                "src/app.rs",
                "src/notes.md",
                "src/keep/me.txt",
                "node_modules/a/index.js",
                "node_modules/b/index.js",
                "etc-link",
            ]),
        ),
        (
            "include patterns keep matches and the directories leading to them",
            filter(&[], &["src/keep", "main.go"], &[]),
            only(&["main.go", "src/keep/me.txt"]),
        ),
        (
            "include wildcards",
            filter(&[], &["**/*.md"], &[]),
            only(&["README.md", "docs/guide.md", "src/notes.md"]),
        ),
        (
            "includes then excludes",
            filter(&["**/*.md"], &["src", "docs"], &[]),
            [only(&[
                "docs/img/logo.png",
                "src/app.rs",
                "src/keep/me.txt",
            ])]
            .concat(),
        ),
        (
            "an include pattern that matches nothing",
            filter(&[], &["nothing"], &[]),
            Vec::new(),
        ),
    ];
    check_filters(&cases);
}

#[test]
fn follow_paths() {
    let cases: Vec<(&str, Filter, Vec<Spec<'static>>)> = vec![
        (
            "a plain follow path",
            filter(&[], &[], &["Dockerfile"]),
            only(&["Dockerfile"]),
        ),
        (
            "a missing follow path keeps nothing for it",
            filter(&[], &[], &["Dockerfile", "Dockerfile.dockerignore"]),
            only(&["Dockerfile"]),
        ),
        (
            "a symlink and its target",
            filter(&[], &[], &["latest"]),
            only(&["latest", "src/app.rs"]),
        ),
        (
            "a symlink to /etc is resolved inside the root",
            filter(&[], &[], &["etc-link/passwd"]),
            only(&["etc-link"]),
        ),
        (
            "wildcards in follow paths",
            filter(&[], &[], &["*.go", "lat*"]),
            only(&["main.go", "latest", "src/app.rs"]),
        ),
        (
            "the root is everything",
            filter(&[], &[], &["Dockerfile", "."]),
            CONTEXT.to_vec(),
        ),
        (
            "follow paths add to include patterns",
            filter(&[], &["docs"], &["Dockerfile"]),
            only(&["Dockerfile", "docs/guide.md", "docs/img/logo.png"]),
        ),
        (
            "excludes still apply",
            filter(&["src"], &[], &["latest"]),
            only(&["latest"]),
        ),
    ];
    check_filters(&cases);
}

fn check_filters(cases: &[(&str, Filter, Vec<Spec<'static>>)]) {
    let hasher = Hasher::new(None);
    let full = tree(CONTEXT);
    let mut failures = Vec::new();
    for (name, filter, kept) in cases {
        let expected_tree = tree(kept);
        let want = hasher.tree_digest(expected_tree.path(), &Filter::default());
        let got = hasher.tree_digest(full.path(), filter);
        match (&got, &want) {
            (Ok(got), Ok(want)) if got == want => {}
            _ => failures.push(format!(
                "{name}: got {got:?}, want {want:?} (the digest of the kept entries)"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} filter cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Excluded directories that no `!pattern` can reach are not listed at all.
#[test]
fn excluded_directories_are_not_walked() {
    let mut spec = vec![Spec::File("keep", "k", 0o644)];
    let names: Vec<String> = (0..40).map(|i| format!("big/d{i}/f")).collect();
    for name in &names {
        spec.push(Spec::File(name, "x", 0o644));
    }
    let root = tree(&spec);
    // (filter, directories listed): the root, plus `big` and its 40 children when walked.
    let cases: Vec<(&str, Filter, u64)> = vec![
        ("no filter", filter(&[], &[], &[]), 42),
        ("excluded", filter(&["big"], &[], &[]), 1),
        (
            "excluded with an unrelated re-include",
            filter(&["big", "!other/x"], &[], &[]),
            1,
        ),
        (
            "excluded with a re-include below",
            filter(&["big", "!big/d7"], &[], &[]),
            3,
        ),
        (
            "excluded with a wildcard re-include",
            filter(&["big", "!*/d7"], &[], &[]),
            42,
        ),
        ("include prefix", filter(&[], &["keep"], &[]), 1),
        ("include below", filter(&[], &["big/d3/f"], &[]), 3),
    ];
    let mut failures = Vec::new();
    for (name, filter, want) in cases {
        let hasher = Hasher::new(None);
        if let Err(e) = hasher.tree_digest(root.path(), &filter) {
            failures.push(format!("{name}: {e}"));
            continue;
        }
        let got = hasher.stats().dirs_listed;
        if got != want {
            failures.push(format!("{name}: listed {got} directories, want {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// BuildKit's dockerignore build scenarios (`conformance/dockerignore/context-cases.json`):
/// the files a `COPY . .` sees are exactly the context kept by the ignore file.
#[test]
fn buildkit_dockerignore_scenarios() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conformance/dockerignore/context-cases.json"
    ))
    .expect("read context-cases.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("parse context-cases.json");
    let cases = doc["cases"].as_array().expect("cases");
    let hasher = Hasher::new(None);
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        match run_scenario(&hasher, case) {
            Scenario::Passed => ran += 1,
            Scenario::Failed(why) => {
                ran += 1;
                failures.push(format!("{name}: {why}"));
            }
            // Scenarios about where the ignore file is found (kiln-dockerignore's
            // `ignore_file_for`) whose expectations live in RUN steps: nothing to compare
            // here.
            Scenario::OutOfScope => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(ran, 2, "scenarios run");
}

enum Scenario {
    Passed,
    Failed(String),
    OutOfScope,
}

fn run_scenario(hasher: &Hasher, case: &serde_json::Value) -> Scenario {
    let Some(ignore) = case["dockerignore"].as_str() else {
        return Scenario::OutOfScope;
    };
    let patterns = kiln_dockerignore::read_ignore_file(ignore.as_bytes());
    let dockerfile = case["dockerfile"].as_str().unwrap_or_default();
    let files: BTreeMap<String, String> = case["context_files"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let content = match v.as_str().unwrap_or_default() {
                        "<the Dockerfile above>" => dockerfile,
                        "<the .dockerignore above>" => ignore,
                        other => other,
                    };
                    (k.clone(), content.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let context: Vec<Spec<'_>> = files.iter().map(|(k, v)| Spec::File(k, v, 0o644)).collect();
    let root = tree(&context);
    let result = patterns.map_err(|e| e.to_string()).and_then(|excludes| {
        hasher
            .tree_digest(
                root.path(),
                &Filter {
                    excludes,
                    ..Filter::default()
                },
            )
            .map_err(|e| e.to_string())
    });
    if case["expect_error"].as_bool() == Some(true) {
        return match result {
            Err(_) => Scenario::Passed,
            Ok(d) => Scenario::Failed(format!("expected an error, got {d}")),
        };
    }
    let Some(expected) = case["expect_in_output"].as_object() else {
        return Scenario::Failed("no expectation".to_owned());
    };
    let kept: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let kept_spec: Vec<Spec<'_>> = kept.iter().map(|(k, v)| Spec::File(k, v, 0o644)).collect();
    let expected_root = tree(&kept_spec);
    let want = hasher.tree_digest(expected_root.path(), &Filter::default());
    match (result, want) {
        (Ok(got), Ok(want)) if got == want => Scenario::Passed,
        (got, want) => Scenario::Failed(format!("got {got:?}, want {want:?}")),
    }
}
