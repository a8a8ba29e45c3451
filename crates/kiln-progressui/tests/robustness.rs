//! Any sequence of events, in any mode and terminal size, renders without panicking, and the
//! counts stay consistent.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{at, digest, t0};
use kiln_progress::Event;
use kiln_progressui::{ManualClock, PrinterOptions, ProgressMode, Renderer};
use proptest::prelude::*;

fn event() -> impl Strategy<Value = Event> {
    let id = prop_oneof![(0u64..4).prop_map(digest), Just(String::new())];
    let time = (0u64..20_000).prop_map(at);
    let text = "[ -~\\n\\r\\t\\x1b]{0,40}";
    prop_oneof![
        (
            id.clone(),
            text,
            proptest::collection::vec(id.clone(), 0..3)
        )
            .prop_map(|(id, name, inputs)| Event::Vertex { id, name, inputs }),
        (id.clone(), time.clone()).prop_map(|(id, at)| Event::Started { id, at }),
        id.clone().prop_map(|id| Event::Cached { id }),
        (
            id.clone(),
            time.clone(),
            proptest::option::of("[a-z ]{0,20}")
        )
            .prop_map(|(id, at, error)| Event::Completed { id, at, error }),
        (
            id.clone(),
            0u8..3,
            proptest::collection::vec(any::<u8>(), 0..60),
            time
        )
            .prop_map(|(id, stream, data, at)| Event::Log {
                id,
                stream,
                data,
                at
            }),
        (
            id.clone(),
            "[a-z: ]{0,12}",
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            any::<bool>()
        )
            .prop_map(|(id, task, current, total, completed)| Event::Status {
                id,
                task,
                current,
                total,
                completed
            }),
        (id, "[ -~]{0,30}").prop_map(|(id, message)| Event::Warning { id, message }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_events_render(
        batches in proptest::collection::vec((0u64..3000, proptest::collection::vec(event(), 0..8)), 0..12),
        width in 0usize..140,
        height in proptest::option::of(0usize..30),
        mode_index in 0usize..4,
    ) {
        let mode = [ProgressMode::Plain, ProgressMode::Tty, ProgressMode::RawJson, ProgressMode::Quiet][mode_index];
        let clock = ManualClock::new(t0());
        let mut options = PrinterOptions::new(true, width, Arc::new(clock.clone()));
        options.height = height;
        options.log_lines = 3;
        let mut renderer = Renderer::new(mode, &options).expect("renderer");
        let mut out = Vec::new();
        let mut known = std::collections::BTreeSet::new();
        for (advance, events) in &batches {
            clock.advance(Duration::from_millis(*advance));
            for e in events {
                if !matches!(e, Event::Log { .. } | Event::Status { .. } | Event::Warning { .. }) {
                    known.insert(match e {
                        Event::Vertex { id, .. } | Event::Started { id, .. } | Event::Cached { id } | Event::Completed { id, .. } => id.clone(),
                        _ => String::new(),
                    });
                }
            }
            renderer.update(events, &mut out).expect("update");
            renderer.tick(&mut out).expect("tick");
        }
        if width > 0 && width % 7 == 0 {
            renderer.resize(width / 2, height);
            renderer.tick(&mut out).expect("tick after resize");
        }
        let summary = renderer.finish(&mut out).expect("finish");
        prop_assert_eq!(summary.vertices, known.len());
        prop_assert!(summary.completed <= summary.vertices);
        prop_assert!(summary.cached <= summary.vertices);
        if mode == ProgressMode::Quiet {
            prop_assert!(out.is_empty());
        }
        if mode == ProgressMode::RawJson {
            for line in String::from_utf8_lossy(&out).lines() {
                prop_assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "not JSON: {}", line);
            }
        }
    }
}
