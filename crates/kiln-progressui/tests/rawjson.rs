//! The rawjson display: BuildKit's `SolveStatus` JSON, one object per batch.

mod common;

use std::sync::Arc;

use common::*;
use kiln_progress::Event;
use kiln_progressui::{ManualClock, PrinterOptions, ProgressMode, Renderer};

/// The lines written for `steps`, each batch drawn at its time.
fn lines(steps: &[Step]) -> Vec<String> {
    let clock = ManualClock::new(t0());
    let opts = PrinterOptions::new(true, 80, Arc::new(clock.clone()));
    let mut renderer = Renderer::new(ProgressMode::RawJson, &opts).expect("rawjson renderer");
    let mut out = Vec::new();
    for step in steps {
        clock.set(at(step.at_ms));
        renderer.update(&step.events, &mut out).expect("update");
        renderer.tick(&mut out).expect("tick");
    }
    renderer.finish(&mut out).expect("finish");
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}

fn check(name: &str, steps: &[Step]) {
    let lines = lines(steps);
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(value.is_object(), "not an object: {line}");
    }
    insta::assert_snapshot!(name, lines.join("\n"));
}

#[test]
fn recorded_build() {
    check("recorded_build", &build());
}

/// Go's encoder escapes `<`, `>` and `&`; data is base64; an empty batch writes nothing.
#[test]
fn escaping_and_empty_batches() {
    let steps = vec![
        Step {
            at_ms: 0,
            events: vec![],
        },
        Step {
            at_ms: 10,
            events: vec![
                Event::Vertex {
                    id: digest(1),
                    name: "[1/1] RUN echo \"a<b>&c\" > /out".into(),
                    inputs: vec![],
                },
                Event::Started {
                    id: digest(1),
                    at: at(10),
                },
                Event::Log {
                    id: digest(1),
                    stream: 2,
                    data: vec![0xff, b'\n'],
                    at: at(11),
                },
            ],
        },
    ];
    check("escaping", &steps);
}
