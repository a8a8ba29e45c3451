//! Matching behaviour beyond upstream's vectors: where Docker differs from gitignore,
//! re-inclusion below excluded directories, and the corners of the pattern syntax. Results
//! are recorded in a snapshot (`tests/snapshots/`).

use kiln_dockerignore::PatternMatcher;
use serde_json::{Value, json};

fn run(cases: &[(&[&str], &str)]) -> Value {
    let rows: Vec<Value> = cases
        .iter()
        .map(|(patterns, path)| {
            let got = PatternMatcher::new(patterns).and_then(|m| m.matches_or_parent_matches(path));
            let got = got.map_or_else(|e| json!({ "error": e.to_string() }), |b| json!(b));
            json!([patterns, path, got])
        })
        .collect();
    Value::Array(rows)
}

#[test]
fn matching_corners() {
    insta::assert_json_snapshot!(run(&[
        // Not gitignore: a pattern without a slash is anchored at the root.
        (&["*.md"], "sub/readme.md"),
        (&["node_modules"], "a/node_modules"),
        (&["**/node_modules"], "a/node_modules/x"),
        // A trailing slash does not matter and `..` is cleaned; a leading slash is only
        // dropped by `read_ignore_file`, not by the matcher itself (as upstream).
        (&["/docs/"], "docs/a"),
        (&["a/../b"], "b"),
        // Re-inclusion below an excluded directory.
        (&["a", "!a/b"], "a/b/c"),
        (&["a", "!a/b"], "a/c"),
        (&["a/**", "!a/keep"], "a/keep"),
        // The context root is never excluded.
        (&["*"], "."),
        (&["**"], ""),
        (&["."], "."),
        // Paths are cleaned before matching.
        (&["a/b"], "./a//b/"),
        // Escapes and literal regular-expression characters.
        (&["a\\[b"], "a[b"),
        (&["a\\ b"], "a b"),
        (&["a^b"], "a^b"),
        (&["a^b*"], "a^bc"),
        (&["a\\d"], "a7"),
        (&["a\\1"], "a1"),
        // Classes.
        (&["[*]"], "*"),
        (&["[!a]"], "!"),
        (&["[^a]"], "/"),
        (&["x[z-a]"], "xa"),
        (&["!x[z-a]"], "y"),
        (&["*", "!x[z-a]"], "y"),
    ]));
}
