//! BuildKit's own shell-lexer test vectors (`conformance/shell-lexer/`), read exactly as
//! `conformance/README.md` §2 describes.

use std::collections::{BTreeMap, BTreeSet};

use kiln_shell::{EnvGetter, KeyValueList, Lexer};
use serde::Deserialize;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../conformance/shell-lexer");

fn read(name: &str) -> String {
    let bytes = std::fs::read(format!("{DIR}/{name}")).expect("conformance file is readable");
    String::from_utf8(bytes).expect("conformance file is UTF-8")
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

/// One single-word expansion: `expected` is `None` when the expansion must fail.
fn check_word(input: &str, env: &dyn EnvGetter, expected: Option<&str>) -> Result<(), String> {
    let got = Lexer::new('\\').process_word(input, env);
    match (expected, got) {
        (Some(want), Ok(got)) if got == want => Ok(()),
        (None, Err(_)) => Ok(()),
        (want, got) => Err(format!("{input:?}: want {want:?}, got {got:?}")),
    }
}

#[test]
fn env_var_test() {
    let env: Vec<String> = ["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let env = KeyValueList(&env);
    let text = read("envVarTest");
    let mut ran = 0;
    let mut failures = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.starts_with('#') {
            continue;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [platform, input, expected] = fields[..] else {
            panic!("envVarTest line {}: not 3 fields: {line:?}", n + 1);
        };
        if platform == "W" {
            continue;
        }
        assert!(
            platform == "A" || platform == "U",
            "line {}: bad platform",
            n + 1
        );
        ran += 1;
        let expected = (expected != "error").then_some(expected);
        if let Err(e) = check_word(input, &env, expected) {
            failures.push(format!("line {}: {e}", n + 1));
        }
    }
    report("envVarTest", ran, 228, &failures);
}

#[test]
fn words_test() {
    let text = read("wordsTest");
    let mut env: Vec<String> = Vec::new();
    let mut ran = 0;
    let mut failures = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.is_empty() && n + 1 == text.split('\n').count() {
            continue; // the text after the final newline
        }
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            env.push(rest.trim_start_matches(' ').to_owned());
            continue;
        }
        let (input, expected) = line.split_once('|').expect("one | per line");
        assert!(!expected.contains('|'), "line {}: more than one |", n + 1);
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        ran += 1;
        let got = match Lexer::new('\\').process_words(input, &KeyValueList(&env)) {
            Ok(words) => words,
            Err(_) => vec!["error".to_owned()],
        };
        if got != expected {
            failures.push(format!(
                "line {}: {input:?}: want {expected:?}, got {got:?}",
                n + 1
            ));
        }
    }
    report("wordsTest", ran, 24, &failures);
}

#[derive(Deserialize)]
struct Cases<T> {
    cases: Vec<T>,
}

#[derive(Deserialize)]
struct WithMatches {
    source: String,
    input: String,
    env: BTreeMap<String, String>,
    expected: Option<String>,
    #[serde(default)]
    expected_error: bool,
    matched: Option<BTreeSet<String>>,
    unmatched: Option<BTreeSet<String>>,
}

#[derive(Deserialize)]
struct Platform {
    source: String,
    input: String,
    env: BTreeMap<String, String>,
    expected: String,
}

#[derive(Deserialize)]
struct Mandatory {
    source: String,
    input: String,
    env_list: Vec<String>,
    expected: Option<String>,
    expected_error_contains: Option<String>,
}

#[derive(Deserialize)]
struct ProcessWordCases {
    with_matches: Cases<WithMatches>,
    platform_release_name: Cases<Platform>,
    mandatory_env: Cases<Mandatory>,
}

fn process_word_cases() -> ProcessWordCases {
    serde_json::from_str(&read("process-word-cases.json")).expect("valid JSON")
}

fn check_with_matches(case: &WithMatches) -> Result<(), String> {
    let got = Lexer::new('\\').process_word_with_matches(&case.input, &case.env);
    let got = match (case.expected_error, got) {
        (true, Err(_)) => return Ok(()),
        (true, Ok(r)) => return Err(format!("want an error, got {:?}", r.result)),
        (false, Err(e)) => return Err(format!("unexpected error: {e}")),
        (false, Ok(r)) => r,
    };
    if Some(&got.result) != case.expected.as_ref() {
        return Err(format!("want {:?}, got {:?}", case.expected, got.result));
    }
    if let Some(want) = &case.matched
        && want != &got.matched
    {
        return Err(format!("matched: want {want:?}, got {:?}", got.matched));
    }
    if let Some(want) = &case.unmatched
        && want != &got.unmatched
    {
        return Err(format!("unmatched: want {want:?}, got {:?}", got.unmatched));
    }
    Ok(())
}

#[test]
fn process_word_with_matches() {
    let cases = process_word_cases().with_matches.cases;
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            check_with_matches(c)
                .err()
                .map(|e| format!("{} {:?}: {e}", c.source, c.input))
        })
        .collect();
    report("with_matches", cases.len(), 47, &failures);
}

#[test]
fn platform_release_name() {
    let cases = process_word_cases().platform_release_name.cases;
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            check_word(&c.input, &c.env, Some(&c.expected))
                .err()
                .map(|e| format!("{}: {e}", c.source))
        })
        .collect();
    report("platform_release_name", cases.len(), 3, &failures);
}

fn check_mandatory(case: &Mandatory) -> Result<(), String> {
    let got = Lexer::new('\\').process_word(&case.input, &KeyValueList(&case.env_list));
    match (&case.expected, &case.expected_error_contains, got) {
        (Some(want), None, Ok(got)) if &got == want => Ok(()),
        (None, Some(text), Err(e)) if e.to_string().contains(text.as_str()) => Ok(()),
        (want, text, got) => Err(format!(
            "want {want:?} / error containing {text:?}, got {:?}",
            got.map_err(|e| e.to_string())
        )),
    }
}

#[test]
fn mandatory_env() {
    let cases = process_word_cases().mandatory_env.cases;
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            check_mandatory(c)
                .err()
                .map(|e| format!("{} {:?}: {e}", c.source, c.input))
        })
        .collect();
    report("mandatory_env", cases.len(), 6, &failures);
}
