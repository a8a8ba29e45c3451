//! A recorded build, as the engine would send it, shared by the display tests.
//!
//! A two-stage build: the definition is loaded (with a warning about it), the base image is
//! pulled with byte progress while the context is transferred, the first stage's `COPY` is
//! cached and its `RUN make` writes output (a line in two pieces), the second stage copies
//! from the first and its `RUN ./test` fails. A warning about the whole build and a repeated
//! warning come at the end.

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use kiln_progress::Event;

/// The moment the recorded build starts.
pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// `ms` milliseconds after the start.
pub fn at(ms: u64) -> SystemTime {
    t0() + Duration::from_millis(ms)
}

/// A vertex digest.
pub fn digest(n: u64) -> String {
    format!("sha256:{n:064x}")
}

pub const DEF: u64 = 1;
pub const META: u64 = 2;
pub const IGNORE: u64 = 3;
pub const CONTEXT: u64 = 4;
pub const FROM: u64 = 5;
pub const COPY: u64 = 6;
pub const MAKE: u64 = 7;
pub const COPY_FROM: u64 = 8;
pub const TEST: u64 = 9;

/// The layer pulled for the base image.
pub const LAYER: &str = "sha256:5f65d64b4b2f24b655a8ac1733128933ef94dc1af9954a8ddd6026ca010c6a79";

/// One batch of events, drawn when the clock reads `at_ms`.
pub struct Step {
    pub at_ms: u64,
    pub events: Vec<Event>,
}

fn vertex(n: u64, name: &str, inputs: &[u64]) -> Event {
    Event::Vertex {
        id: digest(n),
        name: name.to_string(),
        inputs: inputs.iter().map(|i| digest(*i)).collect(),
    }
}

fn started(n: u64, ms: u64) -> Event {
    Event::Started {
        id: digest(n),
        at: at(ms),
    }
}

fn done(n: u64, ms: u64) -> Event {
    Event::Completed {
        id: digest(n),
        at: at(ms),
        error: None,
    }
}

fn failed(n: u64, ms: u64, error: &str) -> Event {
    Event::Completed {
        id: digest(n),
        at: at(ms),
        error: Some(error.to_string()),
    }
}

fn log(n: u64, stream: u8, ms: u64, data: &str) -> Event {
    Event::Log {
        id: digest(n),
        stream,
        data: data.as_bytes().to_vec(),
        at: at(ms),
    }
}

fn status(n: u64, task: &str, current: u64, total: Option<u64>, completed: bool) -> Event {
    Event::Status {
        id: digest(n),
        task: task.to_string(),
        current,
        total,
        completed,
    }
}

fn warning(n: Option<u64>, message: &str) -> Event {
    Event::Warning {
        id: n.map(digest).unwrap_or_default(),
        message: message.to_string(),
    }
}

pub const JSON_ARGS: &str = "JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 14)";
pub const UNDEFINED_VAR: &str = "UndefinedVar: Usage of undefined variable '$FOO' (line 9)";
pub const TEST_ERROR: &str =
    "process \"/bin/sh -c ./test\" did not complete successfully: exit code: 1";

/// The recorded build.
pub fn build() -> Vec<Step> {
    let image = "docker.io/library/busybox:latest";
    let resolve = format!(
        "resolve {image}@sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7"
    );
    vec![
        Step {
            at_ms: 0,
            events: vec![
                vertex(DEF, "[internal] load build definition from Dockerfile", &[]),
                vertex(META, &format!("[internal] load metadata for {image}"), &[]),
                vertex(IGNORE, "[internal] load .dockerignore", &[]),
                vertex(CONTEXT, "[internal] load build context", &[]),
                vertex(
                    FROM,
                    &format!(
                        "[build 1/3] FROM {image}@sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7"
                    ),
                    &[META],
                ),
                vertex(COPY, "[build 2/3] COPY src /src", &[FROM, CONTEXT]),
                vertex(MAKE, "[build 3/3] RUN make", &[COPY]),
                vertex(
                    COPY_FROM,
                    "[stage-1 2/3] COPY --from=build /src/app /app",
                    &[FROM, MAKE],
                ),
                vertex(TEST, "[stage-1 3/3] RUN ./test", &[COPY_FROM]),
                started(DEF, 0),
                status(DEF, "transferring dockerfile:", 0, None, false),
            ],
        },
        Step {
            at_ms: 120,
            events: vec![
                status(DEF, "transferring dockerfile:", 312, None, true),
                done(DEF, 110),
            ],
        },
        Step {
            at_ms: 240,
            events: vec![
                started(META, 230),
                started(IGNORE, 235),
                status(IGNORE, "transferring context:", 2, None, true),
                done(IGNORE, 238),
            ],
        },
        Step {
            at_ms: 360,
            events: vec![warning(Some(DEF), JSON_ARGS)],
        },
        Step {
            at_ms: 1500,
            events: vec![done(META, 1490)],
        },
        Step {
            at_ms: 1620,
            events: vec![
                started(CONTEXT, 1600),
                status(CONTEXT, "transferring context:", 524_288, None, false),
                started(FROM, 1605),
                status(FROM, &resolve, 0, None, true),
            ],
        },
        Step {
            at_ms: 1740,
            events: vec![
                status(CONTEXT, "transferring context:", 1_048_576, None, true),
                done(CONTEXT, 1700),
                status(FROM, LAYER, 1_050_000, Some(3_200_000), false),
            ],
        },
        Step {
            at_ms: 2000,
            events: vec![
                status(FROM, LAYER, 3_200_000, Some(3_200_000), true),
                status(FROM, &format!("extracting {LAYER}"), 0, None, true),
                done(FROM, 1990),
            ],
        },
        Step {
            at_ms: 2120,
            events: vec![Event::Cached { id: digest(COPY) }, started(MAKE, 2110)],
        },
        Step {
            at_ms: 2240,
            events: vec![
                log(MAKE, 1, 2200, "cc -c -o main.o main.c\n"),
                log(MAKE, 2, 2230, "main.c:3:9: warning: unused variable 'x'\n"),
            ],
        },
        Step {
            at_ms: 2360,
            events: vec![log(MAKE, 1, 2350, "cc -o app main.o")],
        },
        Step {
            at_ms: 2600,
            events: vec![log(MAKE, 1, 2590, " -static\nstrip app\n")],
        },
        Step {
            at_ms: 3200,
            events: vec![done(MAKE, 3150)],
        },
        Step {
            at_ms: 3320,
            events: vec![started(COPY_FROM, 3300), done(COPY_FROM, 3315)],
        },
        Step {
            at_ms: 3440,
            events: vec![started(TEST, 3440), log(TEST, 1, 3450, "running 3 tests\n")],
        },
        Step {
            at_ms: 3560,
            events: vec![log(
                TEST,
                1,
                3550,
                "test parse ... ok\ntest render ... ok\ntest exit ... FAILED\n",
            )],
        },
        Step {
            at_ms: 3680,
            events: vec![failed(TEST, 3670, TEST_ERROR)],
        },
        Step {
            at_ms: 3800,
            events: vec![warning(None, UNDEFINED_VAR), warning(Some(DEF), JSON_ARGS)],
        },
    ]
}

/// When the display is finished.
pub const FINISH_MS: u64 = 3900;

/// Every event of the build, in order.
pub fn all_events() -> Vec<Event> {
    build().into_iter().flat_map(|s| s.events).collect()
}

/// Makes escape sequences visible in snapshots.
pub fn visible(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace('\x1b', "\\e")
        .replace('\r', "\\r")
}

/// What a terminal of `rows` by `cols` shows after receiving `output` (the tty turns `\n`
/// into `\r\n`, as a real one does for programs).
pub fn screen(output: &[u8], rows: u16, cols: u16) -> String {
    let mut parser = vt100::Parser::new(
        std::num::NonZeroU16::new(rows).unwrap_or(std::num::NonZeroU16::MIN),
        std::num::NonZeroU16::new(cols).unwrap_or(std::num::NonZeroU16::MIN),
        0,
    );
    let mut cooked = Vec::with_capacity(output.len());
    for b in output {
        if *b == b'\n' {
            cooked.push(b'\r');
        }
        cooked.push(*b);
    }
    parser.process(&cooked);
    let text: Vec<String> = parser
        .screen()
        .rows(0, cols)
        .map(|row| row.trim_end().to_string())
        .collect();
    let used = text
        .iter()
        .rposition(|r| !r.is_empty())
        .map_or(0, |i| i + 1);
    text[..used].join("\n")
}
