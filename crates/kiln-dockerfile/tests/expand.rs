//! Which fields the expansion hooks touch: `tests/data/expand.Dockerfile` is parsed and every
//! command expanded with an expander that marks each word it is given (`$T` becomes `cache`,
//! other words `<word>`); the result is an `insta` snapshot. `expand_raw` marks with `[..]`
//! and `EXPOSE` is expanded with `expand_words`, splitting `$PORTS` into two ports.

use kiln_dockerfile::{CheckConfig, Command, Error, Linter, parse};

#[test]
fn expansion_hooks() {
    let df = kiln_dockerfile_parser::parse(include_bytes!("data/expand.Dockerfile"))
        .expect("parsable fixture");
    let mut linter = Linter::new(CheckConfig::default());
    let mut parsed = parse(&df, &mut linter).expect("valid fixture");
    let mut mark = |w: &str| -> Result<String, Error> {
        Ok(match w {
            "$T" => "cache".to_string(),
            other => format!("<{other}>"),
        })
    };
    let mut raw = |w: &str| -> Result<String, Error> { Ok(format!("[{w}]")) };
    let mut words = |w: &str| -> Result<Vec<String>, Error> {
        Ok(match w {
            "$PORTS" => vec!["8080".to_string(), "9090/udp".to_string()],
            other => vec![format!("<{other}>")],
        })
    };
    for arg in &mut parsed.meta_args {
        arg.expand(&mut mark).expect("expansion");
    }
    for stage in &mut parsed.stages {
        for command in &mut stage.commands {
            command.expand(&mut mark).expect("expansion");
            command.expand_raw(&mut raw).expect("raw expansion");
            if let Command::Expose(expose) = command {
                expose.expand_words(&mut words).expect("word expansion");
            }
        }
    }
    insta::assert_debug_snapshot!(parsed);
}

#[test]
fn expansion_errors_stop_and_propagate() {
    let df = kiln_dockerfile_parser::parse(
        b"FROM a\nRUN --mount=type=$BAD,target=/x true\nENV a=$FAIL\n",
    )
    .expect("parsable");
    let mut linter = Linter::new(CheckConfig::default());
    let mut parsed = parse(&df, &mut linter).expect("valid");
    let mut expander = |w: &str| -> Result<String, Error> {
        match w {
            "$FAIL" => Err(Error::new("failed to expand $FAIL")),
            other => Ok(other.to_string()),
        }
    };
    let results: Vec<String> = parsed.stages[0]
        .commands
        .iter_mut()
        .map(|c| match c.expand(&mut expander) {
            Ok(()) => "ok".to_string(),
            Err(e) => e.message,
        })
        .collect();
    assert_eq!(
        results,
        ["unsupported mount type \"$BAD\"", "failed to expand $FAIL"]
    );
}
