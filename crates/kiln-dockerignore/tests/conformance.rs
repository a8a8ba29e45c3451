//! moby/patternmatcher's own test vectors (`conformance/dockerignore/`), read exactly as
//! `conformance/README.md` §3 describes.

use kiln_dockerignore::{MatchInfo, MatchType, PatternMatcher, clean_path, read_ignore_file};
use serde::Deserialize;
use serde_json::Value;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../conformance/dockerignore"
);

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).expect("conformance file is readable")
}

/// Fails with a readable list when any case failed.
fn report(set: &str, ran: usize, want_ran: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{set}: {} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(ran, want_ran, "{set}: number of cases run");
}

#[derive(Deserialize)]
struct Row {
    id: u32,
    source: String,
    patterns: Vec<String>,
    path: String,
    expected: Value,
}

fn rows() -> Vec<Row> {
    serde_json::from_slice(&read("patterns.json")).expect("valid JSON")
}

/// The README's single rule: build the matcher, then ask `matches_or_parent_matches` (which
/// cleans the path and never excludes `.`). Any error is `"error"`.
fn evaluate(patterns: &[String], path: &str) -> Value {
    let result = PatternMatcher::new(patterns).and_then(|m| m.matches_or_parent_matches(path));
    match result {
        Ok(b) => Value::Bool(b),
        Err(_) => Value::String("error".to_owned()),
    }
}

#[test]
fn patterns_json() {
    let rows = rows();
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let got = evaluate(&r.patterns, &r.path);
            (got != r.expected).then(|| {
                format!(
                    "row {} ({}): {:?} on {:?}: want {}, got {got}",
                    r.id, r.source, r.patterns, r.path, r.expected
                )
            })
        })
        .collect();
    report("patterns.json", rows.len(), 138, &failures);
}

/// A tree walk from the top down to `path`, carrying [`MatchInfo`] from each directory to
/// its child, must give the same answer as `matches_or_parent_matches`.
fn walk(matcher: &PatternMatcher, path: &str) -> Result<bool, String> {
    let cleaned = clean_path(path);
    let mut info = MatchInfo::default();
    let mut result = false;
    let mut prefix = String::new();
    for (i, part) in cleaned.split('/').enumerate() {
        if i > 0 {
            prefix.push('/');
        }
        prefix.push_str(part);
        if prefix.is_empty() {
            continue; // the root of an absolute path
        }
        let (m, next) = matcher
            .matches_using_parent_results(&prefix, &info)
            .map_err(|e| e.to_string())?;
        result = m;
        info = next;
    }
    Ok(result)
}

#[test]
fn parent_results_agree_with_matches_or_parent_matches() {
    let rows = rows();
    let mut ran = 0;
    let mut failures = Vec::new();
    for r in rows.iter().filter(|r| r.expected != "error") {
        ran += 1;
        let matcher = PatternMatcher::new(&r.patterns).expect("builds");
        let direct = matcher.matches_or_parent_matches(&r.path);
        let no_info = matcher
            .matches_using_parent_results(&r.path, &MatchInfo::default())
            .map(|(m, _)| m);
        let walked = walk(&matcher, &r.path);
        let direct = direct.map_err(|e| e.to_string());
        let no_info = no_info.map_err(|e| e.to_string());
        if walked != direct || no_info != direct {
            failures.push(format!(
                "row {}: {:?} on {:?}: direct {direct:?}, without parent info {no_info:?}, walked {walked:?}",
                r.id, r.patterns, r.path
            ));
        }
    }
    // 120 rows are true or false.
    report("parent results", ran, 120, &failures);
}

#[test]
fn parent_info_from_another_matcher_is_rejected() {
    let two = PatternMatcher::new(&["a", "b"]).expect("builds");
    let one = PatternMatcher::new(&["a"]).expect("builds");
    let (_, info) = two
        .matches_using_parent_results("a", &MatchInfo::default())
        .expect("matches");
    assert!(one.matches_using_parent_results("a/b", &info).is_err());
}

fn json_string(field: &str) -> String {
    serde_json::from_str(field).expect("JSON string column")
}

#[test]
fn compile_tsv() {
    let text = String::from_utf8(read("compile.tsv")).expect("UTF-8");
    let mut ran = 0;
    let mut failures = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [source, pattern, match_type, regexp_slash, _regexp_backslash] = cols[..] else {
            panic!("compile.tsv: 5 columns expected in {line:?}");
        };
        ran += 1;
        let pattern = json_string(pattern);
        let want_regex = json_string(regexp_slash);
        let matcher = PatternMatcher::new(&[&pattern]).expect("builds");
        let Some(p) = matcher.patterns().first() else {
            failures.push(format!("{source}: {pattern:?}: no pattern kept"));
            continue;
        };
        let got_type = match p.match_type() {
            MatchType::Exact => "exactMatch",
            MatchType::Prefix => "prefixMatch",
            MatchType::Suffix => "suffixMatch",
            MatchType::Regex => "regexpMatch",
        };
        let got_regex = p.regex().unwrap_or("");
        if got_type != match_type || got_regex != want_regex {
            failures.push(format!(
                "{source}: {pattern:?}: want {match_type} {want_regex:?}, got {got_type} {got_regex:?}"
            ));
        }
    }
    report("compile.tsv", ran, 21, &failures);
}

#[derive(Deserialize)]
struct NewCase {
    source: String,
    patterns: Vec<String>,
    expect: NewExpect,
}

#[derive(Deserialize)]
struct NewExpect {
    count: Option<usize>,
    exclusions: Option<bool>,
    #[serde(default)]
    error: bool,
}

#[test]
fn new_patterns_json() {
    let cases: Vec<NewCase> =
        serde_json::from_slice(&read("new-patterns.json")).expect("valid JSON");
    let mut failures = Vec::new();
    for c in &cases {
        let got = PatternMatcher::new(&c.patterns);
        let problem = match (&got, c.expect.error) {
            (Err(_), true) => None,
            (Ok(_), true) => Some("want an error".to_owned()),
            (Err(e), false) => Some(format!("unexpected error: {e}")),
            (Ok(m), false) => {
                let count = m.patterns().len();
                if c.expect.count.is_some_and(|want| want != count) {
                    Some(format!("want {:?} patterns, got {count}", c.expect.count))
                } else if c
                    .expect
                    .exclusions
                    .is_some_and(|want| want != m.exclusions())
                {
                    Some(format!("want exclusions {:?}", c.expect.exclusions))
                } else {
                    None
                }
            }
        };
        if let Some(p) = problem {
            failures.push(format!("{}: {:?}: {p}", c.source, c.patterns));
        }
    }
    report("new-patterns.json", cases.len(), 6, &failures);
}

#[test]
fn readall_basic() {
    let content = read("readall/basic/dockerignore");
    let expected: Value =
        serde_json::from_slice(&read("readall/basic/expected.json")).expect("valid JSON");
    let want: Vec<String> =
        serde_json::from_value(expected["expected"].clone()).expect("a list of strings");
    assert_eq!(read_ignore_file(&content), Ok(want));
    // Upstream also checks that no input gives no patterns.
    assert_eq!(read_ignore_file(b""), Ok(vec![]));
}
