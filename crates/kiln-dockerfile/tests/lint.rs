//! Build-check cases transcribed from BuildKit (`tests/data/lint/*.json`, see the README
//! there): the warnings of the rules this crate implements must match upstream's.

use std::collections::BTreeMap;

use kiln_dockerfile::linter::checks::{self, WordExpansion};
use kiln_dockerfile::{CheckConfig, LintWarning, Linter, Parsed, parse};
use serde::Deserialize;

/// The rules whose checks live in this crate.
const CRATE_RULES: &[&str] = &[
    "StageNameCasing",
    "FromAsCasing",
    "NoEmptyContinuation",
    "ConsistentInstructionCasing",
    "DuplicateStageName",
    "ReservedStageName",
    "JSONArgsRecommended",
    "MaintainerDeprecated",
    "MultipleInstructionsDisallowed",
    "LegacyKeyValueFormat",
    "RedundantTargetPlatform",
    "SecretsUsedInArgOrEnv",
    "FromPlatformFlagConstDisallowed",
    "InvalidDefinitionDescription",
    "ExposeProtoCasing",
    "ExposeInvalidFormat",
];

#[derive(Deserialize, Clone)]
struct Expected {
    rule: String,
    description: String,
    url: String,
    detail: String,
    line: usize,
}

#[derive(Deserialize)]
struct Case {
    test: String,
    case: usize,
    dockerfile: String,
    #[serde(default)]
    frontend_attrs: BTreeMap<String, String>,
    warnings: Vec<Expected>,
    #[serde(default)]
    unmarshal_warnings: Option<Vec<Expected>>,
    #[serde(default)]
    unmarshal_build_error: Option<String>,
    #[serde(default)]
    build_error_line: Option<usize>,
    #[serde(default)]
    error_origin: Option<String>,
}

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

/// A minimal `$VAR` / `${VAR}` expansion, enough for the `FROM --platform` values of the
/// cases (the real expansion is the shell lexer's, in the next layer).
fn expand(word: &str, env: &BTreeMap<String, String>) -> WordExpansion {
    let mut out = WordExpansion::default();
    let mut rest = word;
    while let Some(pos) = rest.find('$') {
        out.result.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').unwrap_or(inner.len());
            (&inner[..end], end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match env.get(name) {
            Some(value) => {
                out.result.push_str(value);
                out.matched.push(name.to_string());
            }
            None => out.unmatched.push(name.to_string()),
        }
        rest = after.get(len..).unwrap_or("");
    }
    out.result.push_str(rest);
    out
}

fn os_arch(platform: &str) -> Option<(String, String)> {
    let mut parts = platform.split('/');
    let os = parts.next()?.to_lowercase();
    let arch = match parts.next()?.to_lowercase().as_str() {
        "x86_64" | "x86-64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        other => other.to_string(),
    };
    (!os.is_empty() && !arch.is_empty()).then_some((os, arch))
}

/// The `FROM --platform` checks, as the converter runs them for every stage.
fn platform_checks(parsed: &Parsed, linter: &mut Linter) {
    let mut env = BTreeMap::new();
    env.insert("TARGETPLATFORM".to_string(), "linux/amd64".to_string());
    env.insert("BUILDPLATFORM".to_string(), "linux/amd64".to_string());
    for arg in parsed.meta_args.iter().flat_map(|a| &a.args) {
        if let Some(v) = &arg.value {
            env.insert(arg.key.clone(), v.trim_matches('"').to_string());
        }
    }
    for stage in &parsed.stages {
        let Some(platform) = &stage.platform else {
            continue;
        };
        let expansion = expand(platform, &env);
        let target = env.get("TARGETPLATFORM").map(String::as_str);
        checks::redundant_target_platform(platform, &expansion, target, stage.lines, linter);
        let parsed_platform = os_arch(&expansion.result);
        let os_arch = parsed_platform
            .as_ref()
            .map(|(o, a)| (o.as_str(), a.as_str()));
        let name = stage.name.as_deref().unwrap_or("");
        checks::from_platform_flag_const_disallowed(name, &expansion, os_arch, stage.lines, linter);
    }
}

type Key = (usize, String, String, String, String);

fn key(line: usize, rule: &str, description: &str, url: &str, detail: &str) -> Key {
    (
        line,
        detail.to_string(),
        rule.to_string(),
        description.to_string(),
        url.to_string(),
    )
}

/// Returns the mismatch, or `None` when the case passes.
fn check(case: &Case) -> Option<String> {
    let df = match kiln_dockerfile_parser::parse(case.dockerfile.as_bytes()) {
        Ok(df) => df,
        Err(e) => return Some(format!("the parser failed: {e}")),
    };
    let config = match case
        .frontend_attrs
        .get("build-arg:BUILDKIT_DOCKERFILE_CHECK")
    {
        Some(spec) => CheckConfig::parse(spec),
        None => CheckConfig::from_directives(&df.directives),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => return Some(format!("check config: {e}")),
    };
    let mut linter = Linter::new(config);
    let error = match parse(&df, &mut linter) {
        Ok(parsed) => {
            platform_checks(&parsed, &mut linter);
            for index in 0..parsed.stages.len() {
                checks::check_stage(&parsed, index, false, &mut linter);
            }
            linter.error()
        }
        Err(e) => Some(e),
    };

    let mut problems = Vec::new();
    let our_error = matches!(case.error_origin.as_deref(), Some("parse" | "linter"));
    let expected_error = if our_error {
        case.unmarshal_build_error.clone()
    } else {
        None
    };
    let got_error = error.as_ref().map(|e| e.message.clone());
    if got_error != expected_error {
        problems.push(format!("error {got_error:?}, expected {expected_error:?}"));
    }
    if case.error_origin.as_deref() == Some("parse")
        && let (Some(e), Some(line)) = (&error, case.build_error_line)
        && e.lines.map(|l| l.start) != Some(line)
    {
        problems.push(format!("error at {:?}, expected line {line}", e.lines));
    }

    let (expected, with_lines) = match &case.unmarshal_warnings {
        Some(w) => (w.clone(), false),
        None => (case.warnings.clone(), true),
    };
    let line = |l: usize| if with_lines { l } else { 0 };
    let mut expected: Vec<Key> = expected
        .iter()
        .filter(|w| CRATE_RULES.contains(&w.rule.as_str()))
        .map(|w| key(line(w.line), &w.rule, &w.description, &w.url, &w.detail))
        .collect();
    let mut got: Vec<Key> = linter
        .warnings()
        .iter()
        .map(|w: &LintWarning| {
            key(
                line(w.lines.start),
                w.rule,
                w.description,
                w.url,
                &w.message,
            )
        })
        .collect();
    expected.sort();
    got.sort();
    if got != expected {
        problems.push(format!("warnings {got:#?}\nexpected {expected:#?}"));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

fn run_file(text: &str) {
    let file: File = serde_json::from_str(text).expect("valid lint case file");
    let failures: Vec<String> = file
        .cases
        .iter()
        .filter_map(|c| check(c).map(|why| format!("{} #{}: {why}", c.test, c.case)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        file.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn buildkit_lint_cases() {
    run_file(include_str!("data/lint/buildkit-lint-cases.json"));
}

#[test]
fn buildkit_expose_doc_cases() {
    run_file(include_str!("data/lint/buildkit-expose-docs-cases.json"));
}
