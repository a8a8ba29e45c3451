//! The renderer: the display of one mode, driven by batches of events and by a tick.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kiln_progress::Event;

use crate::clock::Clock;
use crate::options::{Colors, PrinterOptions};
use crate::plain::PlainPrinter;
use crate::rawjson::SolveStatus;
use crate::trace::{Applied, Trace, TraceConfig};
use crate::tty::TtyDisplay;
use crate::{Error, ProgressMode};

/// The least time between two redraws caused by events (ticks redraw regardless).
pub const REDRAW_INTERVAL: Duration = Duration::from_millis(100);

/// How often a display without events is refreshed.
pub const TICK_INTERVAL: Duration = Duration::from_millis(150);

/// What a build did, as counted by the display.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Vertices that became known.
    pub vertices: usize,
    /// Vertices that completed (cached ones included).
    pub completed: usize,
    /// Vertices whose result came from the cache.
    pub cached: usize,
    /// Vertices that failed (canceled ones not included).
    pub errors: usize,
    /// Vertices canceled.
    pub canceled: usize,
    /// The distinct warnings, in the order they came.
    pub warnings: Vec<String>,
    /// From the start of the first vertex to the end of the display.
    pub duration: Duration,
}

enum Display {
    Plain(PlainPrinter),
    Tty(TtyDisplay),
    RawJson,
    Quiet,
}

/// The display of one progress mode.
///
/// [`Renderer::update`] applies a batch of events and draws when the display allows it (the
/// tty and plain displays draw at most every [`REDRAW_INTERVAL`], as BuildKit);
/// [`Renderer::tick`] redraws (the running times move on); [`Renderer::finish`] draws the
/// final frame, the logs of failed steps and the warnings. Output goes to the writer given to
/// each call, so a test can capture each frame separately; time comes from the clock of the
/// options, so a test with a [`crate::ManualClock`] gets the same bytes every time.
pub struct Renderer {
    mode: ProgressMode,
    trace: Trace,
    display: Display,
    clock: Arc<dyn Clock>,
    colors: Colors,
    last_draw: Option<SystemTime>,
    finished: Option<Summary>,
}

impl Renderer {
    /// A renderer for `mode`, resolved against the options (`auto` becomes `tty` or `plain`).
    pub fn new(mode: ProgressMode, options: &PrinterOptions) -> Result<Renderer, Error> {
        let mode = mode.resolve(options.is_terminal, options.dumb_terminal)?;
        let (display, config) = match mode {
            ProgressMode::Tty => {
                let tty = TtyDisplay::new(
                    options.width,
                    options.height,
                    options.phase.clone(),
                    options.description.as_ref().map(|d| d.console.clone()),
                    options.colors.clone(),
                    options.log_lines,
                );
                let config = TraceConfig {
                    pending_logs: false,
                    terminal: Some(tty.term_size()),
                };
                (Display::Tty(tty), config)
            }
            ProgressMode::Plain | ProgressMode::Auto => {
                let plain = PlainPrinter::new(options.description.as_ref().map(|d| d.text.clone()));
                (
                    Display::Plain(plain),
                    TraceConfig {
                        pending_logs: true,
                        terminal: None,
                    },
                )
            }
            ProgressMode::RawJson => (
                Display::RawJson,
                TraceConfig {
                    pending_logs: false,
                    terminal: None,
                },
            ),
            ProgressMode::Quiet => (
                Display::Quiet,
                TraceConfig {
                    pending_logs: false,
                    terminal: None,
                },
            ),
        };
        Ok(Renderer {
            mode,
            trace: Trace::new(config),
            display,
            clock: options.clock.clone(),
            colors: options.colors.clone(),
            last_draw: None,
            finished: None,
        })
    }

    /// The mode this renderer shows (never [`ProgressMode::Auto`]).
    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    /// Follows a change of the terminal's size (the tty display cuts its lines to the width
    /// and keeps within the height); the next frame uses it.
    pub fn resize(&mut self, width: usize, height: Option<usize>) {
        if let Display::Tty(tty) = &mut self.display {
            tty.resize(width, height);
            let (rows, cols) = tty.term_size();
            self.trace.resize_terminals(rows, cols);
        }
    }

    /// Whether a redraw caused by events is allowed now (one every [`REDRAW_INTERVAL`]).
    fn allow_draw(&mut self, now: SystemTime) -> bool {
        let allowed = self.last_draw.is_none_or(|last| {
            now.duration_since(last)
                .map_or(true, |d| d >= REDRAW_INTERVAL)
        });
        if allowed {
            self.last_draw = Some(now);
        }
        allowed
    }

    /// Applies a batch of events, and draws if it is time to.
    pub fn update(&mut self, events: &[Event], out: &mut dyn Write) -> io::Result<()> {
        if self.finished.is_some() {
            return Ok(());
        }
        let now = self.clock.now();
        let mut status = SolveStatus::default();
        for event in events {
            let applied = self.trace.apply(event, now);
            if matches!(self.display, Display::RawJson) {
                match applied {
                    Applied::Vertex(snap) => status.push_vertex(event_id(event), &snap),
                    Applied::Status(s) => status.push_status(&s),
                    Applied::Other => status.push_event(event),
                }
            }
        }
        match &mut self.display {
            Display::RawJson if !status.is_empty() => out.write_all(status.to_line().as_bytes()),
            Display::RawJson | Display::Quiet => Ok(()),
            Display::Plain(_) | Display::Tty(_) => {
                if self.allow_draw(now) {
                    self.draw(now, out)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn draw(&mut self, now: SystemTime, out: &mut dyn Write) -> io::Result<()> {
        let mut buf = Vec::new();
        match &mut self.display {
            Display::Plain(plain) => plain.print(&mut self.trace, now, &mut buf),
            Display::Tty(tty) => tty.print(&mut self.trace, now, false, &mut buf),
            Display::RawJson | Display::Quiet => {}
        }
        if buf.is_empty() {
            return Ok(());
        }
        out.write_all(&buf)?;
        out.flush()
    }

    /// Redraws with the current time (running steps' times move on).
    pub fn tick(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.finished.is_some() {
            return Ok(());
        }
        let now = self.clock.now();
        self.draw(now, out)
    }

    /// Draws the final frame, then the last output lines of failed steps and the warnings (as
    /// buildx prints them after its display), and returns the counts. Calling it again only
    /// returns the counts.
    pub fn finish(&mut self, out: &mut dyn Write) -> io::Result<Summary> {
        if let Some(summary) = &self.finished {
            return Ok(summary.clone());
        }
        let now = self.clock.now();
        let summary = self.summary_at(now);
        self.finished = Some(summary.clone());
        let mut buf = Vec::new();
        let text = match &mut self.display {
            Display::Plain(plain) => {
                plain.print(&mut self.trace, now, &mut buf);
                true
            }
            Display::Tty(tty) => {
                tty.print(&mut self.trace, now, true, &mut buf);
                true
            }
            Display::RawJson | Display::Quiet => false,
        };
        if text {
            buf.extend_from_slice(&self.trace.error_logs());
            buf.extend_from_slice(self.warnings_text(&summary.warnings).as_bytes());
        }
        if !buf.is_empty() {
            out.write_all(&buf)?;
        }
        out.flush()?;
        Ok(summary)
    }

    /// buildx's warning list: ` N warnings found:` then ` - message` lines.
    fn warnings_text(&self, warnings: &[String]) -> String {
        if warnings.is_empty() {
            return String::new();
        }
        let count = match warnings.len() {
            1 => "1 warning found:".to_string(),
            n => format!("{n} warnings found:"),
        };
        let header = match self.colors.warning.as_deref() {
            Some(sgr) => format!("\x1b[{sgr}m{count}\x1b[0m"),
            None => count,
        };
        let mut text = format!("\n {header}\n");
        for warning in warnings {
            text.push_str(&format!(" - {warning}\n"));
        }
        text
    }

    /// The counts so far.
    pub fn summary(&self) -> Summary {
        if let Some(summary) = &self.finished {
            return summary.clone();
        }
        self.summary_at(self.clock.now())
    }

    fn summary_at(&self, now: SystemTime) -> Summary {
        let (vertices, completed) = self.trace.counts();
        let vs = &self.trace.vertices;
        Summary {
            vertices,
            completed,
            cached: vs.iter().filter(|v| v.snap.cached).count(),
            errors: vs.iter().filter(|v| v.has_error()).count(),
            canceled: vs.iter().filter(|v| v.is_canceled()).count(),
            warnings: self.trace.distinct_warnings(),
            duration: self
                .trace
                .start_time
                .and_then(|start| now.duration_since(start).ok())
                .unwrap_or(Duration::ZERO),
        }
    }
}

fn event_id(event: &Event) -> &str {
    match event {
        Event::Vertex { id, .. }
        | Event::Started { id, .. }
        | Event::Cached { id }
        | Event::Completed { id, .. }
        | Event::Log { id, .. }
        | Event::Status { id, .. }
        | Event::Warning { id, .. } => id,
    }
}
