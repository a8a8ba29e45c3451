//! Error fixtures (`tests/data/errors.json`): Dockerfiles that must fail to turn into stages,
//! with BuildKit's message and the lines of the instruction at fault.

use kiln_dockerfile::{CheckConfig, Linter, parse};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    dockerfile: String,
    error: String,
    lines: [usize; 2],
}

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

/// Returns a description of the mismatch, or `None` when the case passes.
fn check(case: &Case) -> Option<String> {
    let df = match kiln_dockerfile_parser::parse(case.dockerfile.as_bytes()) {
        Ok(df) => df,
        Err(e) => return Some(format!("the parser failed: {e}")),
    };
    let mut linter = Linter::new(CheckConfig::default());
    match parse(&df, &mut linter) {
        Ok(_) => Some("parsed without error".to_string()),
        Err(e) => {
            let lines = e.lines.map(|l| [l.start, l.end]);
            if e.message == case.error && lines == Some(case.lines) {
                None
            } else {
                Some(format!(
                    "got {:?} at {:?}, expected {:?} at {:?}",
                    e.message, lines, case.error, case.lines
                ))
            }
        }
    }
}

#[test]
fn error_fixtures() {
    let text = include_str!("data/errors.json");
    let cases: Cases = serde_json::from_str(text).expect("valid errors.json");
    let failures: Vec<String> = cases
        .cases
        .iter()
        .filter_map(|c| check(c).map(|why| format!("{:?}: {why}", c.dockerfile)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.cases.len(),
        failures.join("\n")
    );
}
