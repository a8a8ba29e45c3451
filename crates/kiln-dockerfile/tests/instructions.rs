//! Instruction fixtures: every `tests/data/instructions/*.Dockerfile` is parsed (with the
//! real parser) and turned into stages; the stages and the build-check warnings of the parse
//! are compared with an `insta` snapshot (`tests/snapshots/instructions__<name>.snap`).
//! The stages are shown after an identity expansion, which changes no value but parses the
//! `RUN --mount` specifications.

use std::fs;
use std::path::Path;

use kiln_dockerfile::{CheckConfig, Error, Linter, parse};

fn render(source: &[u8]) -> String {
    let df = match kiln_dockerfile_parser::parse(source) {
        Ok(df) => df,
        Err(e) => return format!("parser error: {e}\n"),
    };
    let config = CheckConfig::from_directives(&df.directives).unwrap_or_default();
    let mut linter = Linter::new(config);
    let result = parse(&df, &mut linter);
    let mut out = String::new();
    for w in linter.warnings() {
        out.push_str(&format!("warning: {}\n", w.short()));
    }
    match result {
        Ok(mut parsed) => {
            for stage in &mut parsed.stages {
                for command in &mut stage.commands {
                    if let Err(e) = command.expand::<Error>(&mut |w| Ok(w.to_string())) {
                        out.push_str(&format!(
                            "expansion error (line {}): {e}\n",
                            command.lines().start
                        ));
                    }
                }
            }
            out.push_str(&format!("{parsed:#?}\n"));
        }
        Err(e) => out.push_str(&format!("error (lines {:?}): {e}\n", e.lines)),
    }
    out
}

#[test]
fn instruction_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/instructions");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("fixture directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "Dockerfile"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    for file in files {
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("unnamed")
            .to_string();
        let source = fs::read(&file).expect("readable fixture");
        insta::with_settings!({ description => format!("tests/data/instructions/{name}.Dockerfile"), omit_expression => true }, {
            insta::assert_snapshot!(name, render(&source));
        });
    }
}
