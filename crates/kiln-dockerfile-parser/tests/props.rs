//! Property tests: the parser never panics, and what it returns is consistent.

use kiln_dockerfile_parser::{
    Dockerfile, detect_syntax, dump, parse, parse_directive_check, parse_directives,
};
use proptest::prelude::*;

/// Invariants every successful parse must satisfy.
fn check_invariants(input: &[u8], df: &Dockerfile) -> Result<(), TestCaseError> {
    let line_count = input.split(|&b| b == b'\n').count();
    prop_assert!(!df.children.is_empty());
    prop_assert!(df.escape == '\\' || df.escape == '`');
    let mut previous_end = 0;
    for node in &df.children {
        prop_assert!(node.lines.start >= 1 && node.lines.start <= node.lines.end);
        prop_assert!(node.lines.end <= line_count);
        prop_assert!(node.lines.start > previous_end, "instructions overlap");
        previous_end = node.lines.end;
    }
    prop_assert_eq!(df.lines.start, df.children[0].lines.start);
    prop_assert_eq!(df.lines.end, previous_end);
    let rendered = dump(df);
    prop_assert_eq!(rendered.matches(")\n").count() >= df.children.len(), true);
    Ok(())
}

/// One line of Dockerfile-ish text, drawn from the constructs the parser treats specially.
fn dockerfile_line() -> impl Strategy<Value = String> {
    let keyword = prop_oneof![
        Just("FROM"),
        Just("RUN"),
        Just("COPY"),
        Just("ADD"),
        Just("ONBUILD"),
        Just("ONBUILD RUN"),
        Just("ENV"),
        Just("LABEL"),
        Just("ARG"),
        Just("CMD"),
        Just("ENTRYPOINT"),
        Just("SHELL"),
        Just("HEALTHCHECK"),
        Just("HEALTHCHECK CMD"),
        Just("VOLUME"),
        Just("EXPOSE"),
        Just("USER"),
        Just("WORKDIR"),
        Just("MAINTAINER"),
        Just("STOPSIGNAL"),
        Just("BOGUS"),
        Just("run"),
    ];
    let token = prop_oneof![
        "[a-zA-Z0-9_./:=-]{1,8}",
        Just("<<EOF".to_owned()),
        Just("<<-EOF".to_owned()),
        Just("<<'EOF'".to_owned()),
        Just("3<<EOF".to_owned()),
        Just("<< EOF".to_owned()),
        Just("--mount=type=cache,target=/x".to_owned()),
        Just("--from=\"a b\"".to_owned()),
        Just("--".to_owned()),
        Just("[\"a\", \"b\"]".to_owned()),
        Just("[\"a\", 1]".to_owned()),
        Just("[".to_owned()),
        Just("\"quoted value\"".to_owned()),
        Just("'single'".to_owned()),
        Just("${VAR:-default}".to_owned()),
        Just("$VAR".to_owned()),
        Just("a=b".to_owned()),
        Just("\\".to_owned()),
        Just("`".to_owned()),
        Just("\u{a0}".to_owned()),
        Just("é♥".to_owned()),
    ];
    let instruction = (keyword, prop::collection::vec(token, 0..5))
        .prop_map(|(keyword, tokens)| format!("{keyword} {}", tokens.join(" ")));
    prop_oneof![
        4 => instruction,
        1 => Just("EOF".to_owned()),
        1 => Just("\tEOF".to_owned()),
        1 => Just(String::new()),
        1 => Just("   ".to_owned()),
        1 => Just("# a comment".to_owned()),
        1 => Just("# escape=`".to_owned()),
        1 => Just("# escape=\\".to_owned()),
        1 => Just("# syntax=docker/dockerfile:1".to_owned()),
        1 => Just("# check=skip=all".to_owned()),
        1 => Just("#".to_owned()),
        1 => Just("\\".to_owned()),
        1 => Just("  continued \\".to_owned()),
        1 => Just("  continued `".to_owned()),
        1 => "[ -~]{0,20}",
    ]
}

fn dockerfile_text() -> impl Strategy<Value = String> {
    prop::collection::vec(dockerfile_line(), 0..20).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(df) = parse(&input) {
            check_invariants(&input, &df)?;
        }
        let _ = detect_syntax(&input);
        let _ = parse_directive_check(&input);
        let _ = parse_directives(&input);
    }

    #[test]
    fn dockerfile_like_text_never_panics(text in dockerfile_text(), bom in any::<bool>()) {
        let input = if bom { format!("\u{feff}{text}") } else { text };
        if let Ok(df) = parse(input.as_bytes()) {
            check_invariants(input.as_bytes(), &df)?;
        }
        let _ = detect_syntax(input.as_bytes());
    }

    /// Turning every `\n` into `\r\n` changes nothing but heredoc bodies.
    #[test]
    fn crlf_parses_like_lf(text in dockerfile_text()) {
        prop_assume!(!text.contains('\r'));
        let crlf = text.replace('\n', "\r\n");
        match (parse(text.as_bytes()), parse(crlf.as_bytes())) {
            (Ok(lf), Ok(cr)) => {
                prop_assert_eq!(dump(&lf), dump(&cr));
                let ranges = |df: &Dockerfile| df.children.iter().map(|n| n.lines).collect::<Vec<_>>();
                prop_assert_eq!(ranges(&lf), ranges(&cr));
                prop_assert_eq!(lf.warnings.len(), cr.warnings.len());
                prop_assert_eq!(lf.directives, cr.directives);
            }
            (Err(lf), Err(cr)) => prop_assert_eq!(lf, cr),
            (lf, cr) => prop_assert!(false, "LF gave {:?}, CRLF gave {:?}", lf.map(|d| dump(&d)), cr.map(|d| dump(&d))),
        }
    }
}
