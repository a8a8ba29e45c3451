//! The plain display of the recorded build, and of smaller cases, against snapshots.

mod common;

use std::sync::Arc;

use common::*;
use kiln_progress::Event;
use kiln_progressui::{Description, ManualClock, PrinterOptions, ProgressMode, Renderer, Summary};

/// Draws `steps` with a plain display (each batch at its time, a tick between batches that are
/// far apart), finishes at `finish_ms`, and returns everything written and the summary.
fn render(
    options: impl FnOnce(PrinterOptions) -> PrinterOptions,
    steps: &[Step],
    finish_ms: u64,
) -> (String, Summary) {
    let clock = ManualClock::new(t0());
    let opts = options(PrinterOptions::new(false, 80, Arc::new(clock.clone())));
    let mut renderer = Renderer::new(ProgressMode::Auto, &opts).expect("plain renderer");
    assert_eq!(renderer.mode(), ProgressMode::Plain);
    let mut out = Vec::new();
    let mut last = 0;
    for step in steps {
        if step.at_ms > last + 150 {
            clock.set(at(last + 150));
            renderer.tick(&mut out).expect("tick");
        }
        clock.set(at(step.at_ms));
        renderer.update(&step.events, &mut out).expect("update");
        last = step.at_ms;
    }
    clock.set(at(finish_ms));
    let summary = renderer.finish(&mut out).expect("finish");
    (visible(&out), summary)
}

fn check(
    name: &str,
    options: impl FnOnce(PrinterOptions) -> PrinterOptions,
    steps: &[Step],
    finish_ms: u64,
) -> Summary {
    let (text, summary) = render(options, steps, finish_ms);
    insta::assert_snapshot!(name, text);
    summary
}

#[test]
fn recorded_build() {
    let summary = check("recorded_build", |o| o, &build(), FINISH_MS);
    assert_eq!(
        summary,
        Summary {
            vertices: 9,
            completed: 9,
            cached: 1,
            errors: 1,
            canceled: 0,
            warnings: vec![JSON_ARGS.to_string(), UNDEFINED_VAR.to_string()],
            duration: std::time::Duration::from_millis(FINISH_MS),
        }
    );
}

#[test]
fn recorded_build_without_color_and_with_description() {
    check(
        "recorded_build_no_color_desc",
        |o| {
            let mut o = o.with_env(|k| (k == "NO_COLOR").then(|| "1".to_string()));
            o.description = Some(Description {
                text: "building with \"default\" instance using embedded driver".into(),
                console: "embedded:default".into(),
            });
            o
        },
        &build(),
        FINISH_MS,
    );
}

/// Everything in one batch: what a fast build or a late reader sees.
#[test]
fn recorded_build_in_one_batch() {
    let steps = vec![Step {
        at_ms: 0,
        events: all_events(),
    }];
    check("recorded_build_one_batch", |o| o, &steps, FINISH_MS);
}

fn ev_vertex(n: u64, name: &str) -> Event {
    Event::Vertex {
        id: digest(n),
        name: name.into(),
        inputs: vec![],
    }
}

/// Two steps writing output at the same time: the display stays on one until the other has
/// waited too long, closing a group with `#N ...` when it switches.
#[test]
fn interleaved_steps() {
    let log = |n: u64, ms: u64, text: &str| Event::Log {
        id: digest(n),
        stream: 1,
        data: text.as_bytes().to_vec(),
        at: at(ms),
    };
    let mut steps = vec![Step {
        at_ms: 0,
        events: vec![
            ev_vertex(1, "[a 1/1] RUN loop-a"),
            ev_vertex(2, "[b 1/1] RUN loop-b"),
            Event::Started {
                id: digest(1),
                at: at(0),
            },
            Event::Started {
                id: digest(2),
                at: at(0),
            },
        ],
    }];
    for i in 1..=12u64 {
        let ms = i * 1000;
        steps.push(Step {
            at_ms: ms,
            events: vec![
                log(1, ms, &format!("a{i}\n")),
                log(2, ms + 1, &format!("b{i}\n")),
            ],
        });
    }
    steps.push(Step {
        at_ms: 13_000,
        events: vec![
            Event::Completed {
                id: digest(1),
                at: at(13_000),
                error: None,
            },
            Event::Completed {
                id: digest(2),
                at: at(13_000),
                error: None,
            },
        ],
    });
    check("interleaved_steps", |o| o, &steps, 13_100);
}

/// Canceled steps, a step that fails before it starts, a vertex that never starts, and
/// output of a vertex nobody announced.
#[test]
fn cancel_and_odd_events() {
    let steps = vec![
        Step {
            at_ms: 0,
            events: vec![
                ev_vertex(1, "[1/2] RUN sleep 100"),
                ev_vertex(2, "[2/2] RUN never"),
                ev_vertex(3, "[internal] load remote context"),
                Event::Started {
                    id: digest(1),
                    at: at(0),
                },
                Event::Log {
                    id: digest(9),
                    stream: 1,
                    data: b"lost\n".to_vec(),
                    at: at(0),
                },
            ],
        },
        Step {
            at_ms: 500,
            events: vec![
                Event::Completed {
                    id: digest(3),
                    at: at(450),
                    error: Some("failed to fetch: connection refused".into()),
                },
                Event::Log {
                    id: digest(1),
                    stream: 2,
                    data: b"no newline".to_vec(),
                    at: at(480),
                },
            ],
        },
        Step {
            at_ms: 700,
            events: vec![Event::Completed {
                id: digest(1),
                at: at(700),
                error: Some("failed to solve: context canceled".into()),
            }],
        },
    ];
    let summary = check("cancel_and_odd_events", |o| o, &steps, 800);
    assert_eq!(
        (summary.vertices, summary.errors, summary.canceled),
        (3, 1, 1)
    );
}

/// Byte progress printed no more often than every 5 % or 5 seconds.
#[test]
fn status_throttling() {
    let mut steps = vec![Step {
        at_ms: 0,
        events: vec![
            ev_vertex(1, "[1/1] FROM docker.io/library/alpine"),
            Event::Started {
                id: digest(1),
                at: at(0),
            },
        ],
    }];
    for i in 1..=20u64 {
        steps.push(Step {
            at_ms: i * 200,
            events: vec![Event::Status {
                id: digest(1),
                task: LAYER.into(),
                current: i * 50_000,
                total: Some(10_000_000),
                completed: false,
            }],
        });
    }
    steps.push(Step {
        at_ms: 6_000,
        events: vec![
            Event::Status {
                id: digest(1),
                task: LAYER.into(),
                current: 10_000_000,
                total: Some(10_000_000),
                completed: true,
            },
            Event::Completed {
                id: digest(1),
                at: at(6_000),
                error: None,
            },
        ],
    });
    check("status_throttling", |o| o, &steps, 6_100);
}
