//! The printer: a renderer on its own thread, fed through a channel.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use kiln_progress::{Event, ProgressSink};

use crate::clock::Clock;
use crate::options::PrinterOptions;
use crate::renderer::{Renderer, Summary, TICK_INTERVAL};
use crate::{Error, ProgressMode};

/// The most events drawn as one batch (one rawjson line).
const MAX_BATCH: usize = 4096;

enum Message {
    Event(Event),
    Resize(usize, Option<usize>),
    Finish,
}

/// Shows the progress of a build on a writer (the binary gives it stderr).
///
/// Events sent to it (it is a [`ProgressSink`], and so are the handles of
/// [`Printer::sink`]) go through an unbounded channel to a thread that owns the writer and a
/// [`Renderer`]: sending never waits for the terminal. The thread draws each batch of events
/// that arrived together, and redraws every [`TICK_INTERVAL`] when nothing arrives.
/// [`Printer::finish`] waits for the final frame. Dropping the printer without calling it
/// finishes too.
pub struct Printer {
    tx: Sender<Message>,
    handle: Option<JoinHandle<Summary>>,
    mode: ProgressMode,
}

/// A cheap handle that sends events to a [`Printer`]; events sent after the printer finished
/// are dropped.
#[derive(Clone)]
pub struct PrinterSink {
    tx: Sender<Message>,
}

impl std::fmt::Debug for PrinterSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrinterSink").finish_non_exhaustive()
    }
}

impl ProgressSink for PrinterSink {
    fn send(&self, event: Event) {
        // The render thread is gone only after finishing; late events have nowhere to go.
        let _ = self.tx.send(Message::Event(event));
    }
}

impl Printer {
    /// A printer with default options (colors on, six log lines, no known height).
    pub fn new(
        mode: ProgressMode,
        out: Box<dyn Write + Send>,
        is_terminal: bool,
        width: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<Printer, Error> {
        Printer::with_options(mode, out, PrinterOptions::new(is_terminal, width, clock))
    }

    /// A printer with the given options. Fails when `tty` is asked for on something that is
    /// not a terminal, or when the render thread cannot start.
    pub fn with_options(
        mode: ProgressMode,
        out: Box<dyn Write + Send>,
        options: PrinterOptions,
    ) -> Result<Printer, Error> {
        let renderer = Renderer::new(mode, &options)?;
        let mode = renderer.mode();
        let tick = match mode {
            ProgressMode::Tty | ProgressMode::Plain => Some(TICK_INTERVAL),
            _ => None,
        };
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("kiln-progress".into())
            .spawn(move || run(renderer, out, rx, tick))
            .map_err(Error::Spawn)?;
        Ok(Printer {
            tx,
            handle: Some(handle),
            mode,
        })
    }

    /// The mode shown (never [`ProgressMode::Auto`]).
    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    /// Tells the display that the terminal was resized.
    pub fn resize(&self, width: usize, height: Option<usize>) {
        let _ = self.tx.send(Message::Resize(width, height));
    }

    /// A handle to send events from elsewhere (the engine), which can be cloned freely.
    pub fn sink(&self) -> PrinterSink {
        PrinterSink {
            tx: self.tx.clone(),
        }
    }

    /// Draws the final frame, the logs of failed steps and the warnings, and returns the
    /// counts. Events already sent are all drawn first.
    pub fn finish(mut self) -> Summary {
        self.stop()
    }

    fn stop(&mut self) -> Summary {
        let _ = self.tx.send(Message::Finish);
        match self.handle.take() {
            Some(handle) => handle.join().unwrap_or_default(),
            None => Summary::default(),
        }
    }
}

impl ProgressSink for Printer {
    fn send(&self, event: Event) {
        let _ = self.tx.send(Message::Event(event));
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        if self.handle.is_some() {
            self.stop();
        }
    }
}

impl std::fmt::Debug for Printer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Printer")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The render thread. Write errors are ignored: there is nobody to tell (the output is
/// where errors would go), and the build must go on.
fn run(
    mut renderer: Renderer,
    mut out: Box<dyn Write + Send>,
    rx: Receiver<Message>,
    tick: Option<Duration>,
) -> Summary {
    loop {
        let first = match tick {
            Some(tick) => match rx.recv_timeout(tick) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = renderer.tick(&mut out);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(message) => message,
                Err(_) => break,
            },
        };
        let event = match first {
            Message::Event(event) => event,
            Message::Resize(width, height) => {
                renderer.resize(width, height);
                continue;
            }
            Message::Finish => break,
        };
        let mut batch = vec![event];
        let mut finish = false;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Message::Event(event)) => batch.push(event),
                Ok(Message::Resize(width, height)) => renderer.resize(width, height),
                Ok(Message::Finish) => {
                    finish = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let _ = renderer.update(&batch, &mut out);
        if finish {
            break;
        }
    }
    renderer
        .finish(&mut out)
        .unwrap_or_else(|_| renderer.summary())
}
