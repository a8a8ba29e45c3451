//! Cases beyond upstream's vectors: the backtick escape, word splitting corners, the raw and
//! skip modes, pattern operations and the exact error messages. Each group runs a list of
//! inputs and snapshots every result (`tests/snapshots/`), so the expected values are
//! reviewed data, not code.

use kiln_shell::{KeyValueList, Lexer};
use serde_json::{Value, json};

fn env() -> Vec<String> {
    [
        "PWD=/home",
        "EMPTY=",
        "SPACE=a  b",
        "LEAD=  a",
        "PATHV=/usr/local/bin",
        "FOO=foo",
        "BR=[ab]ab",
        "NL=a\nb",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs `process_word` (or `process_words`) on every input and returns `input → result`,
/// where a result is a string, a list of words, or `{"error": message}`.
fn run(lexer: &Lexer, words: bool, inputs: &[&str]) -> Value {
    let env = env();
    let env = KeyValueList(&env);
    let rows: Vec<Value> = inputs
        .iter()
        .map(|input| {
            let got = if words {
                lexer.process_words(input, &env).map(|w| json!(w))
            } else {
                lexer.process_word(input, &env).map(|w| json!(w))
            };
            let got = got.unwrap_or_else(|e| json!({ "error": e.to_string() }));
            json!([input, got])
        })
        .collect();
    Value::Array(rows)
}

#[test]
fn backtick_escape() {
    let lexer = Lexer::new('`');
    insta::assert_json_snapshot!(run(
        &lexer,
        false,
        &[
            "a`$PWD",
            "C:\\path\\$PWD",
            "`\"x`\"",
            "\"a`\"b\"",
            "\"a\\\"",
            "\"a``b\"",
            "\"a`xb\"",
            "hello`",
            "'a`b'",
            "a` b",
            "${UNSET:-`}}x",
            "${PWD#/`*}",
            "${PWD#/h}",
        ]
    ));
    insta::assert_json_snapshot!(run(&lexer, true, &["a` b c", "`'a b`'", "x\\ y"]));
}

#[test]
fn process_words_edges() {
    let lexer = Lexer::new('\\');
    insta::assert_json_snapshot!(run(
        &lexer,
        true,
        &[
            "",
            "   ",
            "a b",
            "\"\"",
            "a\"\"b",
            "\"\" a",
            "'a b' c",
            "a\\ b",
            "$SPACE",
            "x$SPACE",
            "\"$SPACE\"",
            "$LEAD",
            "a$EMPTY b",
            "${UNSET:-x y}",
            "${UNSET:-\"x y\"}",
            "a${UNSET:-b}c",
            "a${UNSET:-b c}d",
            "a\tb",
            "a\u{a0}b",
            "\\",
            "a\\",
            "$NL",
            "\"a b",
        ]
    ));
}

#[test]
fn modes() {
    let mut raw_quotes = Lexer::new('\\');
    raw_quotes.raw_quotes = true;
    insta::assert_json_snapshot!(
        "raw_quotes_word",
        run(&raw_quotes, false, &["'a b' \"c $PWD\""])
    );
    insta::assert_json_snapshot!(
        "raw_quotes_words",
        run(&raw_quotes, true, &["'a b' \"c $PWD\""])
    );

    let mut skip_unset = Lexer::new('\\');
    skip_unset.skip_unset_env = true;
    insta::assert_json_snapshot!(
        "skip_unset",
        run(
            &skip_unset,
            false,
            &[
                "$UNSET ${UNSET} ${UNSET:-d} ${UNSET-d} ${UNSET:+a} ${UNSET?m}",
                "${UNSET/a/b} ${UNSET//a/b} ${UNSET#x} ${UNSET%%x} $PWD ${EMPTY:-d}",
                "${UNSET:Y}",
            ]
        )
    );

    let mut raw_escapes = Lexer::new('\\');
    raw_escapes.raw_escapes = true;
    insta::assert_json_snapshot!(
        "raw_escapes",
        run(
            &raw_escapes,
            false,
            &["a\\$PWD\\ b", "\"a\\b\\\"c\"", "end\\"]
        )
    );

    let mut no_quotes = Lexer::new('\\');
    no_quotes.skip_process_quotes = true;
    insta::assert_json_snapshot!(
        "skip_process_quotes",
        run(&no_quotes, false, &["'$PWD' \"x\"", "it's"])
    );

    let mut heredoc = Lexer::new('\\');
    heredoc.raw_quotes = true;
    heredoc.skip_unset_env = true;
    insta::assert_json_snapshot!(
        "heredoc_names",
        run(&heredoc, false, &["<<\"EOF\"", "<<$EOF", "<<'E O F'"])
    );
}

/// An unquoted `<<` keeps the blanks after it in its word; a lone `<`, a quoted or escaped
/// `<<` and the blanks inside `${…}` do not. `process_word` is unaffected (nothing is removed).
#[test]
fn heredoc_markers() {
    let lexer = Lexer::new('\\');
    let inputs = [
        "RUN <<  EOF x",
        "a <<\tb",
        "<<- EOF",
        "3<< EOF",
        "a < b",
        "a<<",
        "a<< ",
        "<<\u{b}EOF",
        "\"<< a\" b",
        "'<< a' b",
        "\\<< a",
        "<\\< a",
        "${UNSET:-<< a} b",
        "<<$PWD x",
    ];
    insta::assert_json_snapshot!("heredoc_markers_words", run(&lexer, true, &inputs));
    insta::assert_json_snapshot!("heredoc_markers_word", run(&lexer, false, &inputs));
}

#[test]
fn pattern_operations() {
    let lexer = Lexer::new('\\');
    insta::assert_json_snapshot!(run(
        &lexer,
        false,
        &[
            "${PATHV%/*}",
            "${PATHV%%/*}",
            "${PATHV#*/}",
            "${PATHV##*/}",
            "${PATHV/local/opt}",
            "${PATHV//\\//:}",
            "${BR//[ab]/x}",
            "${FOO//o/\\$0}",
            "${FOO/o/\\$0}",
            "${FOO//o/$.}",
            "${FOO//*/x}",
            "${FOO//?/x}",
            "${EMPTY//*/x}",
            "${NL#*}",
            "${NL##*}",
            "${NL/?/x}",
            "${FOO#\\x}",
            "${FOO%%\\}",
        ]
    ));
}

#[test]
fn error_messages() {
    let lexer = Lexer::new('\\');
    insta::assert_json_snapshot!(run(
        &lexer,
        false,
        &[
            "${a",
            "${",
            "${}",
            "${a:-b",
            "${a:",
            "${a/b",
            "${a//b}",
            "${a=b}",
            "${a:#b}",
            "${a:=b}",
            "${.}",
            "${UNSET?}",
            "${EMPTY:?}",
            "${UNSET:?custom $PWD}",
            "'abc",
            "\"abc",
            "${a:-'b}",
            "${a:-${UNSET?msg}}",
            "${a:-${UNSET?msg}",
            "tab\there${",
        ]
    ));
}

#[test]
fn nesting_limit() {
    let env: Vec<(String, String)> = Vec::new();
    let nest = |depth: usize| format!("{}x{}", "${a:-".repeat(depth), "}".repeat(depth));
    let lexer = Lexer::new('\\');
    assert_eq!(
        lexer.process_word(&nest(kiln_shell::MAX_NESTING), &env),
        Ok("x".to_owned())
    );
    let err = lexer
        .process_word(&nest(kiln_shell::MAX_NESTING + 1), &env)
        .map_err(|e| e.kind);
    assert_eq!(
        err,
        Err(kiln_shell::ShellErrorKind::TooDeep(kiln_shell::MAX_NESTING))
    );
}

#[test]
fn matches_are_reported_for_every_lookup() {
    let lexer = Lexer::new('\\');
    let env = env();
    let r = lexer
        .process_word_with_matches("$PWD ${UNSET:-$EMPTY} ${X#$FOO}", &KeyValueList(&env))
        .expect("expands");
    insta::assert_json_snapshot!(json!({
        "result": r.result,
        "words": r.words,
        "matched": r.matched,
        "unmatched": r.unmatched,
    }));
}
