//! Frames of the tty display at chosen instants of the recorded build, as a terminal shows
//! them (the bytes are played into a terminal emulator), against snapshots.

mod common;

use std::sync::Arc;

use common::*;
use kiln_progress::Event;
use kiln_progressui::{ManualClock, PrinterOptions, ProgressMode, Renderer};

/// Plays `steps` into a tty display of `width` columns (and `height` rows if given), ticking
/// every 150 ms between batches, and returns what the terminal shows right after each
/// instant of `instants` (times of steps) and at the end, and all the bytes written.
fn play(
    width: usize,
    height: Option<usize>,
    options: impl FnOnce(PrinterOptions) -> PrinterOptions,
    steps: &[Step],
    instants: &[u64],
    finish_ms: u64,
) -> (String, Vec<u8>) {
    let clock = ManualClock::new(t0());
    let mut opts = options(PrinterOptions::new(true, width, Arc::new(clock.clone())));
    opts.height = height;
    let mut renderer = Renderer::new(ProgressMode::Auto, &opts).expect("tty renderer");
    assert_eq!(renderer.mode(), ProgressMode::Tty);
    let rows = height.unwrap_or(60) as u16;
    let mut out = Vec::new();
    let mut shots = Vec::new();
    let mut last = 0;
    for step in steps {
        let mut tick = last + 150;
        while tick < step.at_ms {
            clock.set(at(tick));
            renderer.tick(&mut out).expect("tick");
            tick += 150;
        }
        clock.set(at(step.at_ms));
        renderer.update(&step.events, &mut out).expect("update");
        if instants.contains(&step.at_ms) {
            shots.push(format!(
                "== {} ms ==\n{}",
                step.at_ms,
                screen(&out, rows, width as u16)
            ));
        }
        last = step.at_ms;
    }
    clock.set(at(finish_ms));
    renderer.finish(&mut out).expect("finish");
    shots.push(format!(
        "== finished at {finish_ms} ms ==\n{}",
        screen(&out, 60, width as u16)
    ));
    (shots.join("\n\n"), out)
}

fn check(
    name: &str,
    width: usize,
    height: Option<usize>,
    options: impl FnOnce(PrinterOptions) -> PrinterOptions,
    steps: &[Step],
    instants: &[u64],
    finish_ms: u64,
) -> Vec<u8> {
    let (shots, bytes) = play(width, height, options, steps, instants, finish_ms);
    insta::assert_snapshot!(name, shots);
    bytes
}

#[test]
fn recorded_build_frames() {
    check(
        "recorded_build",
        100,
        None,
        |o| o,
        &build(),
        &[0, 240, 360, 1740, 2360, 2600, 3560],
        FINISH_MS,
    );
}

#[test]
fn recorded_build_narrow_and_short() {
    check(
        "recorded_build_narrow_short",
        64,
        Some(9),
        |o| o,
        &build(),
        &[1740, 2360, 3560],
        FINISH_MS,
    );
}

/// The first frames byte for byte: cursor movements, padding, colors.
#[test]
fn recorded_build_first_frames_bytes() {
    let steps: Vec<Step> = build().into_iter().take(3).collect();
    let (_, bytes) = play(72, None, |o| o, &steps, &[], 300);
    insta::assert_snapshot!(
        "recorded_build_bytes",
        visible(&bytes)
            .replace("\\e[?25l", "\n<hide>")
            .replace("\\e[?25h", "<show>\n")
    );
}

#[test]
fn no_color() {
    let steps: Vec<Step> = build().into_iter().take(3).collect();
    let (_, bytes) = play(
        72,
        None,
        |o| o.with_env(|k| (k == "NO_COLOR").then(|| "1".into())),
        &steps,
        &[],
        300,
    );
    let text = visible(&bytes);
    assert!(
        !text.contains("\\e[34m") && !text.contains("\\e[31m"),
        "colors despite NO_COLOR: {text}"
    );
}

/// A long-running step with a lot of output shows only its last lines, and a progress bar
/// drawn with carriage returns shows as one line.
#[test]
fn log_tail() {
    let mut steps = vec![Step {
        at_ms: 0,
        events: vec![
            Event::Vertex {
                id: digest(1),
                name: "[1/1] RUN ./configure && make".into(),
                inputs: vec![],
            },
            Event::Started {
                id: digest(1),
                at: at(0),
            },
        ],
    }];
    for i in 1..=9u64 {
        steps.push(Step {
            at_ms: i * 200,
            events: vec![Event::Log {
                id: digest(1),
                stream: 1,
                data: format!("checking for feature {i}... yes\n").into_bytes(),
                at: at(i * 200),
            }],
        });
    }
    steps.push(Step {
        at_ms: 2000,
        events: vec![Event::Log {
            id: digest(1),
            stream: 2,
            data: b"downloading  10%\rdownloading  55%\rdownloading 100%".to_vec(),
            at: at(2000),
        }],
    });
    steps.push(Step {
        at_ms: 2500,
        events: vec![Event::Completed {
            id: digest(1),
            at: at(2500),
            error: None,
        }],
    });
    check(
        "log_tail",
        80,
        None,
        |o| o,
        &steps,
        &[600, 1800, 2000],
        2600,
    );
}

/// `BUILDKIT_TTY_LOG_LINES` and a builder description in the header.
#[test]
fn log_lines_and_description() {
    let steps: Vec<Step> = build().into_iter().take(12).collect();
    check(
        "log_lines_desc",
        90,
        None,
        |o| {
            let mut o = o.with_env(|k| (k == "BUILDKIT_TTY_LOG_LINES").then(|| "2".into()));
            o.description = Some(kiln_progressui::Description {
                text: "building with \"default\" instance using embedded driver".into(),
                console: "embedded:default".into(),
            });
            o
        },
        &steps,
        &[2600],
        2700,
    );
}
