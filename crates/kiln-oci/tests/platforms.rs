//! Platforms against containerd's own test tables (`tests/data/platforms.json`), plus kiln's
//! expectations for normalization, error messages and manifest selection (insta snapshots).

use std::fmt::Write;

use kiln_oci::{Matcher, Platform};
use serde::Deserialize;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/platforms.json");

#[derive(Deserialize)]
struct Tables {
    parse: Vec<ParseCase>,
    parse_invalid: Vec<String>,
    format_all: Vec<FormatAllCase>,
    only: Vec<MatchCase>,
    only_strict: Vec<MatchCase>,
}

#[derive(Deserialize)]
struct ParseCase {
    input: String,
    expected: Platform,
    matches: Vec<Platform>,
    formatted: Vec<String>,
    format_all: bool,
}

#[derive(Deserialize)]
struct FormatAllCase {
    platform: Platform,
    expected: String,
    round_trip: bool,
}

#[derive(Deserialize)]
struct MatchCase {
    platform: String,
    #[serde(rename = "match")]
    matching: Vec<String>,
    no_match: Vec<String>,
}

/// Reads the tables, with upstream's runtime defaults filled in for kiln: an architecture alone
/// means Linux, a lone OS gets the host's architecture, and the host's ARM variant is `v7`.
fn tables() -> Tables {
    let text = std::fs::read_to_string(DATA).expect("tests/data/platforms.json is readable");
    let host = Platform::host();
    let variant = if host.architecture == "arm" && host.variant != "v7" {
        host.variant.clone()
    } else {
        String::new()
    };
    let text = text
        .replace("${default_os}", "linux")
        .replace("${default_arch}", &host.architecture)
        .replace("${default_variant}", &variant);
    serde_json::from_str(&text).expect("tests/data/platforms.json is valid")
}

fn assert_no_failures(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} {what} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One `TestParseSelector` row: parse, match, format, and reparse the formatted output.
fn check_parse(case: &ParseCase) -> Vec<String> {
    let mut failures = Vec::new();
    let parsed = match Platform::parse_unnormalized(&case.input) {
        Ok(parsed) => parsed,
        Err(err) => return vec![format!("{:?}: unexpected error: {err}", case.input)],
    };
    if parsed != case.expected {
        failures.push(format!(
            "{:?}: parsed {parsed:?}, want {:?}",
            case.input, case.expected
        ));
    }
    for candidate in std::iter::once(&case.expected).chain(&case.matches) {
        if !parsed.matches(candidate) {
            failures.push(format!("{:?}: does not match {candidate:?}", case.input));
        }
    }
    let format = |p: &Platform| {
        if case.format_all {
            p.format_all()
        } else {
            p.to_string()
        }
    };
    let want = kiln_gostd::path::join(&case.formatted);
    let formatted = format(&parsed);
    if formatted != want {
        failures.push(format!(
            "{:?}: formatted {formatted:?}, want {want:?}",
            case.input
        ));
    }
    match Platform::parse_unnormalized(&formatted) {
        Ok(reparsed) if format(&reparsed) == formatted => {}
        Ok(reparsed) => failures.push(format!(
            "{:?}: {formatted:?} reparsed as {:?}",
            case.input,
            format(&reparsed)
        )),
        Err(err) => failures.push(format!(
            "{:?}: {formatted:?} does not reparse: {err}",
            case.input
        )),
    }
    // kiln's parse is containerd's Normalize(Parse(s)).
    match Platform::parse(&case.input) {
        Ok(normalized) if normalized == case.expected.normalize() => {}
        other => failures.push(format!(
            "{:?}: parse gave {other:?}, want {:?}",
            case.input,
            case.expected.normalize()
        )),
    }
    failures
}

#[test]
fn containerd_parse_selector() {
    let tables = tables();
    assert_eq!(tables.parse.len(), 26, "row count of TestParseSelector");
    let failures: Vec<String> = tables.parse.iter().flat_map(check_parse).collect();
    assert_no_failures("TestParseSelector", &failures);
}

#[test]
fn containerd_parse_selector_invalid() {
    let tables = tables();
    let failures: Vec<String> = tables
        .parse_invalid
        .iter()
        .filter_map(
            |input| match (Platform::parse_unnormalized(input), Platform::parse(input)) {
                (Err(_), Err(_)) => None,
                (raw, normalized) => Some(format!(
                    "{input:?}: want an error, got {raw:?} / {normalized:?}"
                )),
            },
        )
        .collect();
    assert_no_failures("TestParseSelectorInvalid", &failures);
}

#[test]
fn containerd_format_all() {
    let tables = tables();
    let mut failures = Vec::new();
    for case in &tables.format_all {
        let formatted = case.platform.format_all();
        if formatted != case.expected {
            failures.push(format!(
                "{:?}: formatted {formatted:?}, want {:?}",
                case.platform, case.expected
            ));
            continue;
        }
        if !case.round_trip {
            continue;
        }
        match Platform::parse_unnormalized(&formatted) {
            Ok(p)
                if p.os_version == case.platform.os_version
                    && p.os_features == case.platform.os_features => {}
            other => failures.push(format!("{formatted:?}: reparsed as {other:?}")),
        }
    }
    assert_no_failures("TestFormatAllEncoding", &failures);
}

/// One `TestOnly`/`TestOnlyStrict` row.
fn check_matcher(name: &str, case: &MatchCase, matcher: fn(&Platform) -> Matcher) -> Vec<String> {
    let wanted = match Platform::parse_unnormalized(&case.platform) {
        Ok(p) => p,
        Err(err) => return vec![format!("{name}({:?}): {err}", case.platform)],
    };
    let matcher = matcher(&wanted);
    let expectations = case
        .matching
        .iter()
        .map(|c| (c, true))
        .chain(case.no_match.iter().map(|c| (c, false)));
    expectations
        .filter_map(
            |(candidate, want)| match Platform::parse_unnormalized(candidate) {
                Ok(p) if matcher.matches(&p) == want => None,
                Ok(_) => Some(format!(
                    "{name}({:?}).Match({candidate:?}) should be {want}",
                    case.platform
                )),
                Err(err) => Some(format!("{candidate:?}: {err}")),
            },
        )
        .collect()
}

#[test]
fn containerd_only() {
    let tables = tables();
    let failures: Vec<String> = tables
        .only
        .iter()
        .flat_map(|case| check_matcher("Only", case, Matcher::only))
        .collect();
    assert_no_failures("TestOnly", &failures);
}

#[test]
fn containerd_only_strict() {
    let tables = tables();
    let failures: Vec<String> = tables
        .only_strict
        .iter()
        .flat_map(|case| check_matcher("OnlyStrict", case, Matcher::only_strict))
        .collect();
    assert_no_failures("TestOnlyStrict", &failures);
}

/// Renders how `Platform::parse` handles each input, one line per input.
fn parse_report(inputs: &[&str]) -> String {
    let mut out = String::new();
    for input in inputs {
        let result = match Platform::parse(input) {
            Ok(p) => format!("{p}  {}", serde_json::to_string(&p).unwrap_or_default()),
            Err(err) => format!("error: {err}"),
        };
        let _ = writeln!(out, "{input:?} => {result}");
    }
    out
}

#[test]
fn normalized_specifiers() {
    insta::assert_snapshot!(parse_report(&[
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm64/8",
        "linux/arm/v7",
        "linux/arm",
        "linux/arm/7",
        "arm64",
        "amd64",
        "x86_64",
        "x86-64",
        "aarch64",
        "armhf",
        "armel",
        "i386",
        "windows/amd64",
        "linux/riscv64",
        "linux/ppc64le",
        "linux/s390x",
        "linux/amd64/v1",
        "linux/amd64/v3",
        "LINUX/AMD64",
        "linux/arm64/v9.0",
        "windows(10.0.20348)/amd64",
        "linux(+zeta+alpha+zeta)/amd64",
    ]));
}

#[test]
fn error_messages() {
    insta::assert_snapshot!(parse_report(&[
        "local",
        "",
        "foo",
        "linux/*",
        "/linux/arm",
        "linux/arm/",
        "linux /arm",
        "linux/&arm",
        "linux/arm/foo/bar",
        "linux/arm/foo/bar/baz",
        "linux(%zz)/amd64",
        "linux(+a%2)/amd64",
        "linux(++)/amd64",
        "lin\"ux/amd64",
    ]));
}

#[test]
fn parse_list() {
    let check = |input: &str, want: Result<&[&str], &str>| {
        let got = Platform::parse_list(input)
            .map(|list| list.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| e.to_string());
        let want = want
            .map(|list| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .map_err(str::to_owned);
        (got != want).then(|| format!("{input:?}: got {got:?}, want {want:?}"))
    };
    let failures: Vec<String> = [
        check("linux/amd64,linux/arm64", Ok(&["linux/amd64", "linux/arm64"])),
        check("arm64,arm,amd64,arm64", Ok(&["linux/arm64", "linux/arm/v7", "linux/amd64", "linux/arm64"])),
        check("linux/amd64", Ok(&["linux/amd64"])),
        check(
            "linux/amd64, linux/arm64",
            Err(r#"" linux" is an invalid OS component of " linux/arm64": OSAndVersion specifier component must match "^([A-Za-z0-9_-]+)(?:\\(([A-Za-z0-9_.%-]*)((?:\\+[A-Za-z0-9_.%-]+)*)\\))?$": invalid argument"#),
        ),
        check("linux/amd64,", Err(r#""" is an invalid OS component of "": OSAndVersion specifier component must match "^([A-Za-z0-9_-]+)(?:\\(([A-Za-z0-9_.%-]*)((?:\\+[A-Za-z0-9_.%-]+)*)\\))?$": invalid argument"#)),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert_no_failures("parse_list", &failures);
}

/// Which entry of an index each matcher picks.
#[test]
fn manifest_selection() {
    let index: Vec<Option<Platform>> = [
        Some("linux/386"),
        Some("linux/arm/v6"),
        Some("linux/arm/v7"),
        Some("linux/amd64"),
        None,
        Some("linux/arm64/v8"),
        Some("windows(10.0.17763)/amd64"),
        Some("windows(10.0.20348)/amd64"),
    ]
    .iter()
    .map(|s| s.map(|s| Platform::parse_unnormalized(s).expect("index platforms parse")))
    .collect();
    let entries = || index.iter().map(Option::as_ref);

    let mut out = String::new();
    for wanted in [
        "linux/amd64",
        "linux/amd64/v3",
        "linux/386",
        "linux/arm64",
        "linux/arm64/v8.2",
        "linux/arm/v8",
        "linux/arm/v6",
        "linux/arm/v5",
        "linux/riscv64",
        "windows(10.0.17763)/amd64",
        "windows(10.0.26100)/amd64",
        "windows(10.0.19041)/amd64",
    ] {
        let platform = Platform::parse(wanted).expect("wanted platforms parse");
        let show = |choice: Option<usize>| match choice {
            Some(i) => match index.get(i) {
                Some(Some(p)) => format!("#{i} {}", p.format_all()),
                _ => format!("#{i} (no platform)"),
            },
            None => "none".to_owned(),
        };
        let _ = writeln!(
            out,
            "{wanted}: only => {}; only_strict => {}",
            show(Matcher::only(&platform).select(entries())),
            show(Matcher::only_strict(&platform).select(entries())),
        );
    }
    insta::assert_snapshot!(out);
}

#[test]
fn more_os_features_win_ties() {
    let wanted = Platform::parse("linux(+gpu+simd)/amd64").expect("parses");
    let plain = Platform::parse("linux/amd64").expect("parses");
    let gpu = Platform::parse("linux(+gpu)/amd64").expect("parses");
    let both = Platform::parse("linux(+gpu+simd)/amd64").expect("parses");
    let other = Platform::parse("linux(+tpu)/amd64").expect("parses");
    let matcher = Matcher::only(&wanted);
    let chosen = matcher.select([Some(&plain), Some(&other), Some(&gpu), Some(&both)]);
    assert_eq!(chosen, Some(3));
    assert!(!matcher.matches(&other));
    assert!(matcher.less(&gpu, &plain));
    assert!(!matcher.less(&plain, &gpu));
}
