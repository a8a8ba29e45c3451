//! Upstream BuildKit's parser test vectors (`conformance/dockerfile-parser`, see
//! `conformance/README.md` §1). Every case must pass; failures are collected and listed.

use std::fs;
use std::path::{Path, PathBuf};

use kiln_dockerfile_parser::{
    Heredoc, chomp_heredoc_content, detect_syntax, dump, heredocs_from_line, parse,
    parse_directive_check, parse_directives, parse_heredoc, parse_json_array, split_words,
};
use serde_json::Value;

const ROOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../conformance/dockerfile-parser"
);

fn path(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    fs::read(path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn json(rel: &str) -> Value {
    serde_json::from_slice(&read(rel)).unwrap_or_else(|e| panic!("cannot parse {rel}: {e}"))
}

fn case_dirs(rel: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(path(rel))
        .unwrap_or_else(|e| panic!("cannot list {rel}: {e}"))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().map(|s| str_of(s).to_owned()).collect(),
        other => panic!("expected a list of strings, got {other}"),
    }
}

/// Fails with the list of failed cases, if any; checks that the expected number of cases ran.
fn report(what: &str, ran: usize, expected: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{what}: {} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(ran, expected, "{what}: unexpected number of cases");
}

/// A positive case: the dump must equal `result` byte for byte. (Upstream's `Dump` leaves out
/// the last line's `\n` and its test adds it back; [`dump`] ends every line with `\n`.)
fn check_testfile(name: &str) -> Result<(), String> {
    let input = read(&format!("testfiles/{name}/Dockerfile"));
    let expected = read(&format!("testfiles/{name}/result"));
    let df = parse(&input).map_err(|e| format!("{name}: parse error at line {}: {e}", e.line))?;
    let got = dump(&df);
    if got.as_bytes() == expected.as_slice() {
        Ok(())
    } else {
        Err(format!(
            "{name}: dump differs\n--- got\n{got}--- want\n{}",
            String::from_utf8_lossy(&expected)
        ))
    }
}

#[test]
fn testfiles() {
    let names = case_dirs("testfiles");
    let failures = names
        .iter()
        .filter_map(|n| check_testfile(n).err())
        .collect();
    report("testfiles", names.len(), 33, failures);
}

#[test]
fn testfiles_negative() {
    let names = case_dirs("testfiles-negative");
    let failures = names
        .iter()
        .filter_map(
            |name| match parse(&read(&format!("testfiles-negative/{name}/Dockerfile"))) {
                Ok(df) => Some(format!("{name}: parsed, want an error:\n{}", dump(&df))),
                Err(_) => None,
            },
        )
        .collect();
    report("testfiles-negative", names.len(), 4, failures);
}

#[test]
fn testfile_line() {
    let expected = json("testfile-line/expected.json");
    let df = parse(&read("testfile-line/Dockerfile")).expect("testfile-line parses");
    let got_children: Vec<[usize; 2]> = df
        .children
        .iter()
        .map(|c| [c.lines.start, c.lines.end])
        .collect();
    let want_children: Vec<[usize; 2]> =
        serde_json::from_value(expected["children"].clone()).expect("children");
    let root = &expected["root"];
    assert_eq!(
        (
            df.lines.start,
            df.lines.end,
            got_children.len(),
            got_children
        ),
        (
            root["start_line"].as_u64().expect("start") as usize,
            root["end_line"].as_u64().expect("end") as usize,
            expected["children_count"].as_u64().expect("count") as usize,
            want_children
        )
    );
}

fn heredoc_json(h: &Heredoc) -> Value {
    serde_json::json!({
        "name": h.name,
        "file_descriptor": h.file_descriptor,
        "expand": h.expand,
        "chomp": h.chomp,
        "content": h.content,
    })
}

/// Compares the heredocs of the instructions listed in an `expected.json`.
fn check_heredoc_children(dir: &str, expected_count: usize) {
    let expected = json(&format!("extra/{dir}/expected.json"));
    let df = parse(&read(&format!("extra/{dir}/Dockerfile"))).expect("parses");
    let cases = expected["children"].as_array().expect("children");
    let failures = cases
        .iter()
        .filter_map(|case| {
            let index = case["child_index"].as_u64().expect("child_index") as usize;
            let want = match &case["heredocs"] {
                Value::Null => Value::Array(Vec::new()),
                other => other.clone(),
            };
            let Some(child) = df.children.get(index) else {
                return Some(format!(
                    "child {index}: missing (only {} instructions)",
                    df.children.len()
                ));
            };
            let got = Value::Array(child.heredocs.iter().map(heredoc_json).collect());
            (got != want)
                .then(|| format!("child {index} ({}): got {got}, want {want}", child.original))
        })
        .collect();
    report(dir, cases.len(), expected_count, failures);
}

#[test]
fn heredoc_extract() {
    check_heredoc_children("heredoc-extract", 27);
}

#[test]
fn heredoc_json_form() {
    check_heredoc_children("heredoc-json-form", 3);
}

#[test]
fn heredoc_words() {
    let data = json("extra/heredoc-words.json");
    let words = &data["parse_heredoc"];
    let mut failures = Vec::new();
    let mut ran = 0;
    for word in words["valid_name_EOF"].as_array().expect("valid") {
        ran += 1;
        match parse_heredoc(str_of(word)) {
            Ok(Some(h)) if h.name == "EOF" => {}
            other => failures.push(format!("valid {word}: got {other:?}")),
        }
    }
    for word in words["invalid_error"].as_array().expect("invalid") {
        ran += 1;
        if let Ok(got) = parse_heredoc(str_of(word)) {
            failures.push(format!("invalid {word}: got {got:?}, want an error"));
        }
    }
    for word in words["not_heredoc"].as_array().expect("not_heredoc") {
        ran += 1;
        match parse_heredoc(str_of(word)) {
            Ok(None) => {}
            other => failures.push(format!("not a heredoc {word}: got {other:?}")),
        }
    }
    for case in data["heredocs_from_line"]["cases"]
        .as_array()
        .expect("cases")
    {
        ran += 1;
        // Where upstream's implementation finds other names than its table lists, the README
        // records what it finds (`observed_names`); that is what we must find too.
        let want = strings(case.get("observed_names").unwrap_or(&case["heredoc_names"]));
        match heredocs_from_line(str_of(&case["line"])) {
            Ok(found) => {
                let got: Vec<String> = found.into_iter().map(|h| h.name).collect();
                if got != want {
                    failures.push(format!("line {}: got {got:?}, want {want:?}", case["line"]));
                }
            }
            Err(e) => failures.push(format!("line {}: error {e}", case["line"])),
        }
    }
    for case in data["chomp_heredoc_content"]["cases"]
        .as_array()
        .expect("chomp")
    {
        ran += 1;
        let got = chomp_heredoc_content(str_of(&case["input"]));
        if got != str_of(&case["expected"]) {
            failures.push(format!("chomp {}: got {got:?}", case["input"]));
        }
    }
    report("heredoc-words", ran, 9 + 4 + 7 + 10 + 1, failures);
}

#[test]
fn json_arrays() {
    let data = json("extra/json-arrays.json");
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in data["valid"].as_array().expect("valid") {
        ran += 1;
        let want = strings(&case["expected"]);
        match parse_json_array(str_of(&case["input"])) {
            Ok(Some(got)) if got == want => {}
            other => failures.push(format!(
                "valid {}: got {other:?}, want {want:?}",
                case["input"]
            )),
        }
    }
    for input in data["invalid_not_string_array"]
        .as_array()
        .expect("invalid")
    {
        ran += 1;
        match parse_json_array(str_of(input)) {
            Err(e)
                if e.message
                    == "when using JSON array syntax, arrays must be comprised of strings only" => {
            }
            other => failures.push(format!("invalid {input}: got {other:?}")),
        }
    }
    report("json-arrays", ran, 16, failures);
}

#[test]
fn parse_words() {
    let data = json("extra/parse-words.json");
    let cases = data["cases"].as_array().expect("cases");
    let failures = cases
        .iter()
        .filter_map(|case| {
            let got = split_words(str_of(&case["input"]), '\\');
            let want = strings(&case["expected"]);
            (got != want).then(|| format!("{}: got {got:?}, want {want:?}", case["input"]))
        })
        .collect();
    report("parse-words", cases.len(), 8, failures);
}

/// Compares a directive lookup with an `expected` object; absent fields are not checked.
fn check_lookup(
    found: Option<(String, String, kiln_dockerfile_parser::LineRange)>,
    expected: &Value,
) -> Result<(), String> {
    let ok = expected["ok"].as_bool().expect("ok");
    if found.is_some() != ok {
        return Err(format!("found {found:?}, want ok={ok}"));
    }
    let (reference, cmdline, lines) = found.unwrap_or_default();
    let mut errors = Vec::new();
    if let Some(want) = expected.get("ref")
        && reference != str_of(want)
    {
        errors.push(format!("ref {reference:?} want {want}"));
    }
    if let Some(want) = expected.get("cmdline")
        && cmdline != str_of(want)
    {
        errors.push(format!("cmdline {cmdline:?} want {want}"));
    }
    if let Some(want) = expected.get("line").and_then(Value::as_u64)
        && (lines.start as u64 != want || lines.end as u64 != want)
    {
        errors.push(format!("lines {lines:?} want {want}"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join(", "))
    }
}

#[test]
fn directives() {
    let data = json("extra/directives.json");
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in data["parse_all"]["cases"].as_array().expect("parse_all") {
        ran += 1;
        let want: Vec<(String, String)> = case["expected"]
            .as_array()
            .expect("expected")
            .iter()
            .map(|d| {
                (
                    str_of(&d["name"]).to_owned(),
                    str_of(&d["value"]).to_owned(),
                )
            })
            .collect();
        match parse_directives(str_of(&case["text"]).as_bytes()) {
            Ok(found) => {
                let got: Vec<(String, String)> =
                    found.into_iter().map(|d| (d.name, d.value)).collect();
                if got != want {
                    failures.push(format!(
                        "parse_all {}: got {got:?}, want {want:?}",
                        case["source"]
                    ));
                }
            }
            Err(e) => failures.push(format!("parse_all {}: error {e}", case["source"])),
        }
    }
    for case in data["detect_syntax"]["cases"]
        .as_array()
        .expect("detect_syntax")
    {
        ran += 1;
        if let Err(e) = check_lookup(
            detect_syntax(str_of(&case["text"]).as_bytes()),
            &case["expected"],
        ) {
            failures.push(format!("detect_syntax {}: {e}", case["source"]));
        }
    }
    for case in data["parse_directive_check"]["cases"]
        .as_array()
        .expect("check")
    {
        ran += 1;
        if let Err(e) = check_lookup(
            parse_directive_check(str_of(&case["text"]).as_bytes()),
            &case["expected"],
        ) {
            failures.push(format!("parse_directive_check {}: {e}", case["source"]));
        }
    }
    report("directives", ran, 2 + 10 + 5, failures);
}

#[test]
fn line_too_long() {
    let data = json("extra/line-too-long.json");
    let long = str_of(&data["label_repeat_char"])
        .repeat(data["label_repeat_count"].as_u64().expect("count") as usize);
    let input = str_of(&data["template"]).replace("%s", &long);
    match parse(input.as_bytes()) {
        Err(e) => assert_eq!(e.message, str_of(&data["expected_error"])),
        Ok(df) => panic!("parsed, want an error: {}", dump(&df)),
    }
}

#[test]
fn warn_empty_continuation() {
    let expected = json("extra/warn-empty-continuation/expected.json");
    let df = parse(&read("extra/warn-empty-continuation/Dockerfile")).expect("parses");
    let mut failures = Vec::new();
    let count = expected["warning_count"].as_u64().expect("count") as usize;
    if df.warnings.len() != count {
        failures.push(format!(
            "{} warnings, want {count}: {:#?}",
            df.warnings.len(),
            df.warnings
        ));
    }
    let checks = [("short_contains", false), ("detail0_contains", true)];
    let mut ran = 0;
    for (key, detail) in checks {
        for check in expected[key].as_array().expect("checks") {
            ran += 1;
            let index = check["warning"].as_u64().expect("warning") as usize;
            let substring = str_of(&check["substring"]);
            let text = df.warnings.get(index).map(|w| {
                if detail {
                    w.detail.first().cloned().unwrap_or_default()
                } else {
                    w.short.clone()
                }
            });
            if !text.as_deref().is_some_and(|t| t.contains(substring)) {
                failures.push(format!(
                    "warning {index} {key}: {text:?} lacks {substring:?}"
                ));
            }
        }
    }
    report("warn-empty-continuation", ran, 4, failures);
}
