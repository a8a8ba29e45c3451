//! Image references against `distribution/reference`'s own test tables
//! (`tests/data/references.json`), plus kiln's expectations for error messages (insta snapshot).

use std::fmt::Write;

use kiln_oci::{Digest, Reference};
use serde::Deserialize;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/references.json");

#[derive(Deserialize)]
struct Tables {
    parse: Vec<ParseCase>,
    domain_and_path: Vec<SplitCase>,
    parse_named: Vec<SplitCase>,
    valid_reference_names: Vec<String>,
    invalid_reference_names: Vec<String>,
    valid_remote_names: Vec<String>,
    invalid_remote_names: Vec<String>,
    repository_info: Vec<RepositoryInfo>,
    tag_and_digest: Vec<TagAndDigest>,
    invalid_components: InvalidComponents,
    parse_any: Vec<ParseAny>,
    normalized_split_hostname: Vec<SplitCase>,
    parse_docker_ref: Vec<DockerRef>,
}

#[derive(Deserialize)]
struct ParseCase {
    input: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

#[derive(Deserialize)]
struct SplitCase {
    input: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct RepositoryInfo {
    remote_name: String,
    familiar_name: String,
    full_name: String,
    ambiguous_name: String,
    domain: String,
}

#[derive(Deserialize)]
struct TagAndDigest {
    input: String,
    full: String,
    familiar: String,
}

#[derive(Deserialize)]
struct InvalidComponents {
    name: String,
    base: String,
    tag: String,
}

#[derive(Deserialize)]
struct ParseAny {
    reference: String,
    equivalent: String,
}

#[derive(Deserialize)]
struct DockerRef {
    name: String,
    input: String,
    expected: String,
}

fn tables() -> Tables {
    let text = std::fs::read_to_string(DATA).expect("tests/data/references.json is readable");
    serde_json::from_str(&text).expect("tests/data/references.json is valid")
}

fn assert_no_failures(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} {what} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Compares one field and records a failure when it differs.
fn expect<T: PartialEq + std::fmt::Debug>(
    failures: &mut Vec<String>,
    input: &str,
    field: &str,
    got: T,
    want: T,
) {
    if got != want {
        failures.push(format!("{input:?}: {field} is {got:?}, want {want:?}"));
    }
}

/// One `TestReferenceParse` row, through the non-normalizing parser.
fn check_parse(case: &ParseCase) -> Vec<String> {
    let mut failures = Vec::new();
    let input = case.input.as_str();
    match (Reference::parse_raw(input), &case.error) {
        (Err(err), Some(want)) => {
            expect(&mut failures, input, "error", err.to_string(), want.clone())
        }
        (Ok(r), Some(want)) => {
            failures.push(format!("{input:?}: parsed as {r}, want error {want:?}"))
        }
        (Err(err), None) => failures.push(format!("{input:?}: unexpected error: {err}")),
        (Ok(r), None) => {
            expect(
                &mut failures,
                input,
                "string",
                r.to_string(),
                case.input.clone(),
            );
            expect(
                &mut failures,
                input,
                "name",
                r.name(),
                case.repository.clone(),
            );
            expect(&mut failures, input, "domain", r.domain(), &case.domain);
            expect(&mut failures, input, "tag", r.tag(), case.tag.as_deref());
            expect(
                &mut failures,
                input,
                "digest",
                r.digest().map(Digest::as_str),
                case.digest.as_deref(),
            );
        }
    }
    failures
}

#[test]
fn upstream_reference_parse() {
    let tables = tables();
    assert_eq!(tables.parse.len(), 47, "row count of TestReferenceParse");
    let failures: Vec<String> = tables.parse.iter().flat_map(check_parse).collect();
    assert_no_failures("TestReferenceParse", &failures);
}

/// Rows giving a domain and a path, or an error, for one of the parsers.
fn check_split(cases: &[SplitCase], parse: fn(&str) -> Result<Reference, String>) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let input = case.input.as_str();
        match (parse(input), &case.error) {
            (Err(err), Some(want)) => expect(&mut failures, input, "error", &err, want),
            (Ok(r), Some(want)) => {
                failures.push(format!("{input:?}: parsed as {r}, want error {want:?}"))
            }
            (Err(err), None) => failures.push(format!("{input:?}: unexpected error: {err}")),
            (Ok(r), None) => {
                expect(&mut failures, input, "domain", r.domain(), &case.domain);
                expect(&mut failures, input, "path", r.path(), &case.path);
            }
        }
    }
    failures
}

#[test]
fn upstream_domain_and_path() {
    let failures = check_split(&tables().domain_and_path, |s| {
        Reference::parse_raw(s).map_err(|e| e.to_string())
    });
    assert_no_failures("TestDomainAndPath", &failures);
}

#[test]
fn upstream_normalized_split_hostname() {
    let failures = check_split(&tables().normalized_split_hostname, |s| {
        Reference::parse(s).map_err(|e| e.to_string())
    });
    assert_no_failures("TestNormalizedSplitHostname", &failures);
}

/// Upstream `ParseNamed`: the normalizing parser, and the input must already be in full form.
#[test]
fn upstream_parse_named() {
    let failures = check_split(&tables().parse_named, |s| {
        let r = Reference::parse(s).map_err(|e| e.to_string())?;
        if r.to_string() == s {
            Ok(r)
        } else {
            Err("repository name must be canonical".to_owned())
        }
    });
    assert_no_failures("TestParseNamed", &failures);
}

fn check_validity(valid: &[String], invalid: &[String]) -> Vec<String> {
    let wrongly_rejected = valid.iter().filter_map(|name| {
        Reference::parse(name)
            .err()
            .map(|err| format!("{name:?} should be valid: {err}"))
    });
    let wrongly_accepted = invalid.iter().filter_map(|name| {
        Reference::parse(name)
            .ok()
            .map(|r| format!("{name:?} should be invalid, parsed as {r}"))
    });
    wrongly_rejected.chain(wrongly_accepted).collect()
}

#[test]
fn upstream_validate_reference_name() {
    let tables = tables();
    let failures = check_validity(
        &tables.valid_reference_names,
        &tables.invalid_reference_names,
    );
    assert_no_failures("TestValidateReferenceName", &failures);
}

#[test]
fn upstream_validate_remote_name() {
    let tables = tables();
    let failures = check_validity(&tables.valid_remote_names, &tables.invalid_remote_names);
    assert_no_failures("TestValidateRemoteName", &failures);
}

#[test]
fn upstream_parse_repository_info() {
    let mut failures = Vec::new();
    for case in &tables().repository_info {
        let names = [&case.familiar_name, &case.full_name, &case.ambiguous_name];
        for input in names.into_iter().filter(|n| !n.is_empty()) {
            match Reference::parse(input) {
                Err(err) => failures.push(format!("{input:?}: unexpected error: {err}")),
                Ok(r) => {
                    expect(
                        &mut failures,
                        input,
                        "familiar name",
                        r.familiar_name(),
                        case.familiar_name.clone(),
                    );
                    expect(
                        &mut failures,
                        input,
                        "full name",
                        r.to_string(),
                        case.full_name.clone(),
                    );
                    expect(&mut failures, input, "domain", r.domain(), &case.domain);
                    expect(
                        &mut failures,
                        input,
                        "remote name",
                        r.path(),
                        &case.remote_name,
                    );
                }
            }
        }
    }
    assert_no_failures("TestParseRepositoryInfo", &failures);
}

#[test]
fn upstream_parse_reference_with_tag_and_digest() {
    let mut failures = Vec::new();
    for case in &tables().tag_and_digest {
        let input = case.input.as_str();
        match Reference::parse(input) {
            Err(err) => failures.push(format!("{input:?}: unexpected error: {err}")),
            Ok(r) => {
                expect(
                    &mut failures,
                    input,
                    "string",
                    r.to_string(),
                    case.full.clone(),
                );
                expect(&mut failures, input, "has tag", r.tag().is_some(), true);
                expect(
                    &mut failures,
                    input,
                    "has digest",
                    r.digest().is_some(),
                    true,
                );
                expect(
                    &mut failures,
                    input,
                    "familiar",
                    r.familiar(),
                    case.familiar.clone(),
                );
            }
        }
    }
    assert_no_failures("TestParseReferenceWithTagAndDigest", &failures);
}

#[test]
fn upstream_invalid_reference_components() {
    let case = tables().invalid_components;
    let mut failures = Vec::new();
    if let Ok(r) = Reference::parse(&case.name) {
        failures.push(format!("{:?} should be invalid, parsed as {r}", case.name));
    }
    match Reference::parse(&case.base) {
        Ok(base) => {
            if let Ok(r) = base.with_tag(&case.tag) {
                failures.push(format!("tag {:?} should be invalid, got {r}", case.tag));
            }
        }
        Err(err) => failures.push(format!("{:?}: unexpected error: {err}", case.base)),
    }
    assert_no_failures("TestInvalidReferenceComponents", &failures);
}

#[test]
fn upstream_parse_any_reference() {
    let mut failures = Vec::new();
    for case in &tables().parse_any {
        let input = case.reference.as_str();
        match (
            Reference::parse(input),
            Reference::parse_raw(&case.equivalent),
        ) {
            (Ok(r), Ok(equivalent)) => {
                expect(
                    &mut failures,
                    input,
                    "string",
                    r.to_string(),
                    case.equivalent.clone(),
                );
                expect(&mut failures, input, "reference", &r, &equivalent);
            }
            (r, equivalent) => failures.push(format!("{input:?}: got {r:?} and {equivalent:?}")),
        }
    }
    assert_no_failures("TestParseAnyReference", &failures);
}

#[test]
fn upstream_parse_docker_ref() {
    let mut failures = Vec::new();
    for case in &tables().parse_docker_ref {
        match Reference::parse_docker_ref(&case.input) {
            Err(err) => failures.push(format!(
                "{} ({:?}): unexpected error: {err}",
                case.name, case.input
            )),
            Ok(r) => {
                expect(
                    &mut failures,
                    &case.input,
                    "string",
                    r.to_string(),
                    case.expected.clone(),
                );
                if let Err(err) = Reference::parse_raw(&r.to_string()) {
                    failures.push(format!(
                        "{}: {r} is not a valid reference: {err}",
                        case.name
                    ));
                }
            }
        }
    }
    assert_no_failures("TestParseDockerRef", &failures);
}

/// How the normalizing parser handles each input, one line per input.
#[test]
fn normalized_references() {
    let sha = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
    let inputs = [
        "busybox".to_owned(),
        "busybox:1.36".to_owned(),
        "library/busybox".to_owned(),
        "index.docker.io/library/busybox".to_owned(),
        "index.docker.io/busybox:latest".to_owned(),
        "localhost/foo".to_owned(),
        "localhost:5000/foo/bar:v1".to_owned(),
        "127.0.0.1:5000/foo".to_owned(),
        "[::1]:5000/foo".to_owned(),
        "registry.example.com/team/app:1.0".to_owned(),
        format!("busybox:latest@{sha}"),
        format!("busybox@{sha}"),
        "Busybox".to_owned(),
        "docker.io/library/Busybox:latest".to_owned(),
        "Foo/bar".to_owned(),
        "example.com/Foo/bar".to_owned(),
        "busybox:".to_owned(),
        "busybox:-tag".to_owned(),
        "busybox@sha256:abc".to_owned(),
        format!("busybox@{}", sha.to_uppercase()),
        format!("busybox@sha256:{}", "F".repeat(64)),
        "busybox@md5:0123456789abcdef0123456789abcdef".to_owned(),
        "e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582".to_owned(),
        String::new(),
        " busybox".to_owned(),
    ];
    let mut out = String::new();
    for input in &inputs {
        let line = match Reference::parse(input) {
            Ok(r) => format!(
                "{r} | domain={} path={} tag={:?} digest={:?} | familiar={} | default-tag={} | docker-ref={}",
                r.domain(),
                r.path(),
                r.tag(),
                r.digest().map(Digest::as_str),
                r.familiar(),
                r.clone().with_default_tag(),
                Reference::parse_docker_ref(input)
                    .map(|d| d.to_string())
                    .unwrap_or_else(|e| e.to_string()),
            ),
            Err(err) => format!("error: {err}"),
        };
        let _ = writeln!(out, "{input:?} => {line}");
    }
    insta::assert_snapshot!(out);
}

#[test]
fn serde_round_trip() {
    let r: Reference = serde_json::from_str("\"busybox:1.36\"").expect("parses");
    assert_eq!(
        serde_json::to_string(&r).ok().as_deref(),
        Some("\"docker.io/library/busybox:1.36\"")
    );
    let err = serde_json::from_str::<Reference>("\"Busybox\"").expect_err("rejects upper case");
    assert_eq!(
        err.to_string(),
        "invalid reference format: repository name (library/Busybox) must be lowercase"
    );
}
