//! The printer: a renderer on its own thread behind a channel.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kiln_progress::{Event, ProgressSink};
use kiln_progressui::{Error, ManualClock, Printer, ProgressMode, Summary, SystemClock};

/// A writer whose bytes a test can read afterwards.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|b| b.clone()).unwrap_or_default()).into_owned()
    }
}

fn expected_summary() -> Summary {
    Summary {
        vertices: 9,
        completed: 9,
        cached: 1,
        errors: 1,
        canceled: 0,
        warnings: vec![JSON_ARGS.to_string(), UNDEFINED_VAR.to_string()],
        duration: Duration::from_millis(FINISH_MS),
    }
}

/// Runs the recorded build through a printer of `mode`, the events sent from another thread
/// through a sink handle, and returns the output and the summary.
fn run(mode: ProgressMode, is_terminal: bool) -> (String, Summary) {
    let out = Shared::default();
    let clock = ManualClock::new(at(FINISH_MS));
    let printer = Printer::new(
        mode,
        Box::new(out.clone()),
        is_terminal,
        100,
        Arc::new(clock),
    )
    .expect("printer");
    let sink = printer.sink();
    std::thread::spawn(move || {
        for event in all_events() {
            sink.send(event);
        }
    })
    .join()
    .expect("sender thread");
    let summary = printer.finish();
    (out.text(), summary)
}

fn check_lines(mode: ProgressMode, is_terminal: bool, wanted: &[&str]) {
    let (text, summary) = run(mode, is_terminal);
    assert_eq!(summary, expected_summary(), "{mode}");
    let missing: Vec<&&str> = wanted.iter().filter(|w| !text.contains(**w)).collect();
    assert!(
        missing.is_empty(),
        "{mode}: missing {missing:?} in:\n{text}"
    );
}

#[test]
fn plain_through_a_thread() {
    check_lines(
        ProgressMode::Auto,
        false,
        &[
            "#1 [internal] load build definition from Dockerfile\n",
            // Numbers past the first steps depend on how the thread batched the events.
            " CACHED\n",
            " 0.240 cc -o app main.o -static\n",
            " ERROR: process \"/bin/sh -c ./test\" did not complete successfully: exit code: 1\n",
            "------\n > [stage-1 3/3] RUN ./test:\n0.010 running 3 tests\n",
            "2 warnings found:",
            " - UndefinedVar: Usage of undefined variable '$FOO' (line 9)\n",
        ],
    );
}

#[test]
fn tty_through_a_thread() {
    check_lines(
        ProgressMode::Tty,
        true,
        &[
            "[+] Building 3.9s (9/9) FINISHED",
            "CACHED [build 2/3] COPY src /src",
            "ERROR [stage-1 3/3] RUN ./test",
            "2 warnings found:",
        ],
    );
}

#[test]
fn rawjson_through_a_thread() {
    let (text, summary) = run(ProgressMode::RawJson, false);
    assert_eq!(summary, expected_summary());
    let mut counts = [0usize; 4];
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        for (i, key) in ["vertexes", "statuses", "logs", "warnings"]
            .iter()
            .enumerate()
        {
            counts[i] += value
                .get(key)
                .and_then(|v| v.as_array())
                .map_or(0, Vec::len);
        }
    }
    let events = all_events();
    let count = |f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
    let want = [
        count(|e| {
            matches!(
                e,
                Event::Vertex { .. }
                    | Event::Started { .. }
                    | Event::Cached { .. }
                    | Event::Completed { .. }
            )
        }),
        count(|e| matches!(e, Event::Status { .. })),
        count(|e| matches!(e, Event::Log { .. })),
        count(|e| matches!(e, Event::Warning { .. })),
    ];
    assert_eq!(counts, want, "vertexes, statuses, logs, warnings");
}

#[test]
fn quiet_writes_nothing() {
    let (text, summary) = run(ProgressMode::Quiet, true);
    assert_eq!(text, "");
    assert_eq!(summary, expected_summary());
}

#[test]
fn tty_needs_a_terminal() {
    let err = Printer::new(
        ProgressMode::Tty,
        Box::new(Shared::default()),
        false,
        80,
        Arc::new(SystemClock),
    )
    .map(|_| ())
    .expect_err("tty on a pipe");
    assert!(matches!(err, Error::NotATerminal), "{err}");
}

/// A writer that blocks until released (or for ten seconds at most).
struct Stuck(Arc<AtomicBool>);

impl Write for Stuck {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let until = Instant::now() + Duration::from_secs(10);
        while !self.0.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sending never waits for the output, however slow it is.
#[test]
fn sending_does_not_wait_for_the_output() {
    let released = Arc::new(AtomicBool::new(false));
    let printer = Printer::new(
        ProgressMode::Plain,
        Box::new(Stuck(released.clone())),
        false,
        80,
        Arc::new(SystemClock),
    )
    .expect("printer");
    let start = Instant::now();
    printer.send(Event::Vertex {
        id: "a".into(),
        name: "step".into(),
        inputs: vec![],
    });
    printer.send(Event::Started {
        id: "a".into(),
        at: std::time::SystemTime::now(),
    });
    for i in 0..20_000 {
        printer.send(Event::Log {
            id: "a".into(),
            stream: 1,
            data: format!("line {i}\n").into_bytes(),
            at: std::time::SystemTime::now(),
        });
    }
    let sending = start.elapsed();
    released.store(true, Ordering::SeqCst);
    printer.send(Event::Completed {
        id: "a".into(),
        at: std::time::SystemTime::now(),
        error: None,
    });
    let summary = printer.finish();
    assert!(sending < Duration::from_secs(5), "sending took {sending:?}");
    assert_eq!((summary.vertices, summary.completed), (1, 1));
}

/// Dropping a printer without finishing it still draws the end, and late events are dropped.
#[test]
fn drop_finishes() {
    let out = Shared::default();
    let printer = Printer::new(
        ProgressMode::Plain,
        Box::new(out.clone()),
        false,
        80,
        Arc::new(ManualClock::new(at(0))),
    )
    .expect("printer");
    let sink = printer.sink();
    sink.send(Event::Vertex {
        id: "a".into(),
        name: "step".into(),
        inputs: vec![],
    });
    sink.send(Event::Started {
        id: "a".into(),
        at: at(0),
    });
    sink.send(Event::Completed {
        id: "a".into(),
        at: at(0),
        error: None,
    });
    drop(printer);
    sink.send(Event::Warning {
        id: String::new(),
        message: "too late".into(),
    });
    assert_eq!(out.text(), "#1 step\n#1 DONE 0.0s\n");
}
