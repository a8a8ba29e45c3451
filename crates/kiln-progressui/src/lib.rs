//! Progress displays of a build, in the look of buildx and BuildKit: `--progress
//! auto|plain|tty|rawjson|quiet`.
//!
//! The input is the stream of [`kiln_progress::Event`]s the engine sends (a vertex became
//! known, started, was cached, completed or failed, wrote output, made byte progress,
//! warned). The output is what `docker buildx build` shows for the same build:
//!
//! - `plain`: BuildKit's numbered text (`#5 [build 2/4] RUN make`, `#5 0.123 <output>`,
//!   `#5 sha256:... 1.05MB / 3.20MB 0.4s`, `#5 DONE 1.2s`, `#5 CACHED`, `#5 ERROR: ...`),
//!   groups separated by blank lines;
//! - `tty`: buildx's live list redrawn in place (`[+] Building 3.2s (7/9)`, one line per step
//!   with its time right-aligned, the last log lines of running steps, finished steps
//!   colored);
//! - `rawjson`: BuildKit's `client.SolveStatus` as one JSON object per line;
//! - `quiet`: nothing;
//! - `auto`: `tty` on a terminal (not `TERM=dumb`), `plain` elsewhere.
//!
//! After the progress, `plain` and `tty` print the last output lines of failed steps and the
//! warnings (` 1 warning found:`), as BuildKit's display and buildx do.
//!
//! What it deliberately does not know: the environment, the terminal, the clock. The caller
//! passes whether the output is a terminal, its size, the values of `NO_COLOR`,
//! `BUILDKIT_PROGRESS`, `BUILDKIT_COLORS`, `BUILDKIT_TTY_LOG_LINES` and `TERM`
//! ([`PrinterOptions::with_env`], [`ProgressMode::with_env_default`]) and a [`Clock`]. It
//! never prints: a display writes only to the writer it is given. It does not print the
//! build's result or its final error message either; that is the caller's.
//!
//! Why: with the terminal, the environment and the time as inputs, every display is a pure
//! function of its events and clock, so tests render frames into buffers at chosen instants
//! with a [`ManualClock`] and compare them with snapshots. The [`Renderer`] does the drawing
//! and can be driven directly; the [`Printer`] runs one on a thread behind a channel so that
//! the engine, which sends events from its workers, never waits for a slow terminal.
//!
//! Events relate to BuildKit's status messages this way: `Vertex` announces a vertex (it is
//! counted, not shown, until it starts), `Started` and `Completed` set its times, and
//! `Cached` marks it cached and complete (at the current time if it did not start); a plain
//! `Completed` after `Cached` changes nothing. Sub-task progress (`Status`) and warnings carry
//! no time of their own, so the clock stamps them when they are drawn.

mod clock;
mod error;
mod format;
mod logtail;
mod mode;
mod options;
mod plain;
mod printer;
mod rawjson;
mod renderer;
mod trace;
mod tty;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use mode::{PROGRESS_ENV, ProgressMode};
pub use options::{Colors, DEFAULT_LOG_LINES, Description, PrinterOptions};
pub use printer::{Printer, PrinterSink};
pub use renderer::{REDRAW_INTERVAL, Renderer, Summary, TICK_INTERVAL};
