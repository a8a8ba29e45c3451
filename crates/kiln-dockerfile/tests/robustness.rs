//! No input makes the conversion panic: random Dockerfile-like text goes through the parser,
//! then through `parse`, every stage check and every expansion hook.

use kiln_dockerfile::linter::checks;
use kiln_dockerfile::{CheckConfig, Error, Linter, parse};
use proptest::prelude::*;

fn run(text: &str) {
    let Ok(df) = kiln_dockerfile_parser::parse(text.as_bytes()) else {
        return;
    };
    let config = CheckConfig::from_directives(&df.directives).unwrap_or_default();
    let mut linter = Linter::new(config);
    if let Ok(mut parsed) = parse(&df, &mut linter) {
        for index in 0..parsed.stages.len() {
            checks::check_stage(&parsed, index, false, &mut linter);
        }
        for stage in &mut parsed.stages {
            for command in &mut stage.commands {
                let _ = command.expand::<Error>(&mut |w| Ok(w.to_string()));
            }
        }
    }
    let _ = linter.finish();
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "(.|\n){0,200}") {
        run(&text);
    }

    #[test]
    fn dockerfile_like_text_never_panics(
        lines in proptest::collection::vec(
            "(# check=.{0,12}|#.{0,10}|(FROM|from|RUN|COPY|ADD|ENV|ARG|LABEL|CMD|ENTRYPOINT|HEALTHCHECK|EXPOSE|ONBUILD|SHELL|VOLUME|USER|WORKDIR|STOPSIGNAL|MAINTAINER|BOGUS) (--[a-z-]{1,8}(=[a-z0-9$,=/\"']{0,8})? ){0,2}[ -~]{0,24})",
            0..12,
        ),
    ) {
        run(&lines.join("\n"));
    }
}
