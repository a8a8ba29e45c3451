//! Our own cases, beyond upstream's test vectors: CRLF, byte order marks, the backtick escape,
//! heredocs under ONBUILD, quoted flags, comments, errors, and the inputs the fuzzer found.
//! Each case renders the whole parse result as text and compares it with an `insta` snapshot
//! (`tests/snapshots/own__<case>.snap`).

use std::fmt::Write as _;

use kiln_dockerfile_parser::{Dockerfile, Node, dump, parse};

/// Renders everything the parser returns, so that a snapshot shows all of it.
fn describe(input: &[u8]) -> String {
    let df = match parse(input) {
        Ok(df) => df,
        Err(e) => return format!("error at line {}: {}\n", e.line, e.message),
    };
    describe_ok(&df)
}

fn describe_ok(df: &Dockerfile) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "dump:\n{}", dump(df));
    let _ = writeln!(
        out,
        "lines: {}-{}, escape: {:?}",
        df.lines.start, df.lines.end, df.escape
    );
    for d in &df.directives {
        let _ = writeln!(
            out,
            "directive {:?} = {:?} at line {}",
            d.name, d.value, d.line
        );
    }
    for node in &df.children {
        describe_node(&mut out, node, "");
    }
    for w in &df.warnings {
        let _ = writeln!(
            out,
            "warning {:?} at {}-{}: {:?} / {:?} / {:?}",
            w.rule, w.lines.start, w.lines.end, w.short, w.detail, w.url
        );
    }
    out
}

fn describe_node(out: &mut String, node: &Node, indent: &str) {
    let _ = writeln!(
        out,
        "{indent}node {:?} lines {}-{} json={} flags={:?} args={:?}",
        node.keyword, node.lines.start, node.lines.end, node.json, node.flags, node.args
    );
    let _ = writeln!(out, "{indent}  original={:?}", node.original);
    if !node.prev_comment.is_empty() {
        let _ = writeln!(out, "{indent}  prev_comment={:?}", node.prev_comment);
    }
    for h in &node.heredocs {
        let _ = writeln!(
            out,
            "{indent}  heredoc name={:?} fd={} expand={} chomp={} content={:?}",
            h.name, h.file_descriptor, h.expand, h.chomp, h.content
        );
    }
    if let Some(sub) = &node.sub {
        describe_node(out, sub, &format!("{indent}    "));
    }
}

/// Parses `input` and compares the rendering with the snapshot named after the case.
fn check(name: &str, input: &[u8]) {
    let mut settings = insta::Settings::clone_current();
    let text = String::from_utf8_lossy(input);
    let description: String = if text.chars().count() > 400 {
        text.chars().take(400).chain(" [...]".chars()).collect()
    } else {
        text.into_owned()
    };
    settings.set_description(description);
    settings.set_prepend_module_to_snapshot(true);
    settings.bind(|| insta::assert_snapshot!(name, describe(input)));
}

#[test]
fn crlf() {
    check(
        "crlf",
        b"# syntax=docker/dockerfile:1\r\nFROM alpine\r\nRUN echo \\\r\n  hello \\\r\n\r\n  world\r\nCOPY <<EOF /x\r\nline 1\r\nEOF\r\nCMD [\"a\",\r\n",
    );
}

#[test]
fn bom() {
    check(
        "bom_directive",
        b"\xef\xbb\xbf# escape=`\nFROM a\nRUN one `\n  two\n",
    );
    check("bom_instruction", b"\xef\xbb\xbfFROM a\n");
    // Only the first line loses a byte order mark; elsewhere it is part of the text.
    check("bom_second_line", b"FROM a\n\xef\xbb\xbfRUN x\n");
}

#[test]
fn backtick_escape() {
    check(
        "backtick_escape",
        b"# escape=`\n\nFROM mcr.microsoft.com/windows\nRUN dir c:\\ `\n  && echo `\n# a comment inside\n\n  done\nCOPY C:\\src\\ `\n  C:\\dst\\\nRUN x ``\nRUN y\nENV P=C:\\a`\\b Q=`\"q`\"\nRUN trailing \\\nRUN next\n",
    );
}

#[test]
fn onbuild_heredocs() {
    check(
        "onbuild_heredocs",
        b"FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\nONBUILD --x=1 COPY <<A <<B /d\na\nA\nb\nB\nONBUILD ONBUILD RUN <<EOF\nRUN x\nONBUILD RUN [\"<<EOF\"]\nONBUILD\nonbuild add <<-E /f\n\tbody\n\tE\n",
    );
}

#[test]
fn flags_with_quotes() {
    check(
        "flags_with_quotes",
        b"FROM --platform=$BUILDPLATFORM golang AS build\nCOPY --chown=\"a b\" --from='x y' --chmod=7\\ 55 src dst\nRUN --mount=type=secret,id=\"a\\\"b\" --network=none echo hi\nHEALTHCHECK --interval=\"5s\" CMD [\"x\"]\nCOPY --link -- --not-a-flag /d\nUNKNOWN --flag=1 some args\nCOPY --chown=\xc3\xbc x y\nCOPY --a='unterminated\n",
    );
}

#[test]
fn comments() {
    check(
        "comments",
        b"# syntax=x\n# doc for FROM\n#  second line  \nFROM a\n# dropped by the empty comment\n#\n# kept\n\n  # indented keeps its hash\nRUN b \\\n  # inside a continuation\n  c\n",
    );
}

#[test]
fn directives() {
    check(
        "directive_check_and_syntax",
        b"#Syntax = a/b:1 // x\n# CHECK=skip=all\n#escape=`\nFROM a\nRUN x `\n  y\n",
    );
    check("directive_after_blank", b"\n# escape=`\nFROM a\nRUN x `\n");
    check(
        "directive_unknown_key_ends_block",
        b"# foo=bar\n# escape=`\nFROM a\nRUN x `\n",
    );
}

#[test]
fn heredoc_forms() {
    check(
        "heredoc_forms",
        b"FROM a\nRUN <<EOF \\\n  && cat\nbody \\\nEOF\nRUN cat <<'A' 2<<\"B\" | sh\n$x\nA\n$y\nB\nRUN echo '<<EOF' \"unterminated\nRUN <<EOF x \"y\nnot a body\nRUN python3 <<EOF\nRUN x\nEOF\nCOPY <<- \"E F\" /x\n\t\tsome\n\tE F\nCOPY <<-\"E F\" /x\n\t\tsome\n\tE F\nRUN 99999999999<<EOF\nEOF\n",
    );
}

/// The examples of `conformance/README.md` §1.1 that no `result` file covers.
#[test]
fn readme_examples() {
    check(
        "readme_examples",
        b"FROM --platform=x img AS b\nBOGUS foo bar\nONBUILD --x RUN a\nONBUILD COPY --from=a x y\nCMD --doit -- [ ]\nRUN --mount=type=cache,target=/x <<EOF\nbody\nEOF\nENV name=\"a\\\"b\"\nARG abc=\"123 456\" def\nHEALTHCHECK CONNECT TCP 7000\n",
    );
}

#[test]
fn heredoc_quirks() {
    // Upstream's lexer loses the start of a word when a `${name:-...}` inside it is lexed, so
    // there this word is `${x:-'}` and not a heredoc marker. kiln-shell keeps the whole word
    // (a deliberate difference, see the crate doc): `<<${x:-'}` is a heredoc marker whose name
    // has an unbalanced quote once the escape inside `${...}` is processed, which is an error.
    check(
        "heredoc_word_with_substitution",
        b"FROM a\nRUN <<${x:-\\'}\nRUN y\n",
    );
    // An unbalanced quote anywhere on the line means no heredocs at all, and no error.
    check(
        "heredoc_line_bad_quote",
        b"FROM a\nRUN <<EOF ${x:-'}\nRUN y\n",
    );
}

#[test]
fn arguments() {
    check(
        "arguments",
        b"FROM a\nCMD [\"a\"] trailing text\nCMD [\"a\", 1e400]\nRUN [\"\\ud800\", \"x\"]\nENV\nARG\nLABEL a=\"b c\" d=e\nEXPOSE 80\x0b443\nUSER  root  \nhealthcheck NONE\nSTOPSIGNAL\nVOLUME /a /b\nMAINTAINER Me <me@example.com>\n",
    );
}

#[test]
fn odd_lines() {
    check("continuation_at_eof", b"FROM a\n\\\n");
    check("empty_keyword_continuation", b"FROM a\n\\\n  \n# c\n");
    check(
        "unicode_keyword",
        b"FROM a\nONBU\xc4\xb0LD RUN x\nHEALTHCHEC\xe2\x84\xaa CMD y\nRUN\xc2\xa0x\n",
    );
    check("invalid_utf8", b"FROM a\xff\nRUN \xc3\x28 \\\n\xe2\x82\n");
    check("nul_and_controls", b"FROM a\x00b\nRUN \x07\x1b[0m\x7f\n");
}

#[test]
fn errors() {
    check("error_empty", b"");
    check("error_only_comments", b"# a\n\n# b\n");
    check("error_env_no_value", b"FROM a\n\nENV PATH\n");
    check("error_label_no_value", b"FROM a\nLABEL key\n");
    check("error_env_missing_equals", b"FROM a\nENV a=b c\n");
    check(
        "error_nested_json",
        b"FROM a\nCMD [ \"echo\", [ \"nested json\" ] ]\n",
    );
    check(
        "error_unterminated_heredoc",
        b"FROM a\nRUN <<EOF\nnever ends\n",
    );
    check(
        "error_duplicate_directive",
        b"# syntax=a\n# Syntax=b\nFROM a\n",
    );
    check("error_bad_escape", b"# escape=x\nFROM a\n");
    check("error_blank_escape", b"# escape= \nFROM a\n");
    check(
        "error_onbuild_too_deep",
        &[b"FROM a\n".as_slice(), &b"ONBUILD ".repeat(65), b"RUN x\n"].concat(),
    );
}

#[test]
fn line_length_limit() {
    let long = "a".repeat(65_536);
    let at_limit = format!("FROM a\nLABEL x={}\n", &long[9..]);
    assert!(
        parse(at_limit.as_bytes()).is_ok(),
        "a line of exactly 65535 bytes is accepted"
    );
    check(
        "error_long_line",
        format!("FROM a\nRUN {long}\n").as_bytes(),
    );
    check(
        "error_long_line_first",
        format!("# c\nRUN {long}\nFROM a\n").as_bytes(),
    );
    check(
        "error_long_line_in_heredoc",
        format!("FROM a\nRUN <<EOF\n{long}\nEOF\n").as_bytes(),
    );
}
