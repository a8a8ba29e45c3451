//! Where the output of a process goes, where its input comes from, and how it ended.

use std::fmt;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// A function receiving output chunks.
pub type ChunkCallback = Box<dyn FnMut(&[u8]) + Send>;

/// A destination for one output stream of the process. Chunks are delivered as they are
/// read (at most 32 KiB each), never accumulated.
pub enum OutputSink {
    /// Drop the output.
    Discard,
    /// Send each chunk on a channel (a full channel slows the process down; a closed one
    /// discards the rest).
    Channel(mpsc::Sender<Vec<u8>>),
    /// Call a function with each chunk (it must not block for long).
    Callback(ChunkCallback),
    /// Write each chunk to an async writer (flushed after each chunk).
    Writer(Box<dyn AsyncWrite + Send + Unpin>),
}

impl fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputSink::Discard => "Discard",
            OutputSink::Channel(_) => "Channel",
            OutputSink::Callback(_) => "Callback",
            OutputSink::Writer(_) => "Writer",
        })
    }
}

impl OutputSink {
    /// Delivers one chunk; returns `false` once the sink no longer wants output.
    pub(crate) async fn deliver(&mut self, chunk: &[u8]) -> bool {
        match self {
            OutputSink::Discard => true,
            OutputSink::Channel(tx) => tx.send(chunk.to_vec()).await.is_ok(),
            OutputSink::Callback(f) => {
                f(chunk);
                true
            }
            OutputSink::Writer(w) => w.write_all(chunk).await.is_ok() && w.flush().await.is_ok(),
        }
    }
}

/// The standard streams of a process.
pub struct ProcessIo {
    /// What the process reads on stdin (`None`: `/dev/null`).
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Where stdout goes.
    pub stdout: OutputSink,
    /// Where stderr goes.
    pub stderr: OutputSink,
}

impl fmt::Debug for ProcessIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessIo")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish()
    }
}

impl Default for ProcessIo {
    /// No input, output discarded.
    fn default() -> Self {
        ProcessIo {
            stdin: None,
            stdout: OutputSink::Discard,
            stderr: OutputSink::Discard,
        }
    }
}

impl ProcessIo {
    /// Output on two channels of `capacity` chunks each; returns the receivers of stdout and
    /// stderr.
    pub fn channels(
        capacity: usize,
    ) -> (ProcessIo, mpsc::Receiver<Vec<u8>>, mpsc::Receiver<Vec<u8>>) {
        let (out_tx, out_rx) = mpsc::channel(capacity.max(1));
        let (err_tx, err_rx) = mpsc::channel(capacity.max(1));
        (
            ProcessIo {
                stdin: None,
                stdout: OutputSink::Channel(out_tx),
                stderr: OutputSink::Channel(err_tx),
            },
            out_rx,
            err_rx,
        )
    }
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Termination {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
}

/// The exit status of a container's process, as the runtime reports it: the exit code, or
/// 128 + the signal number when a signal ended the process (as shells report it).
///
/// The runtime only passes on a number, so a process that itself exits with 128 + n cannot be
/// told apart from one killed by signal n; [`ExitStatus::termination`] reads codes 129..=192
/// as signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitStatus {
    code: i32,
}

impl ExitStatus {
    /// The status for the code the runtime exited with.
    pub fn from_code(code: i32) -> ExitStatus {
        ExitStatus { code }
    }

    /// The exit code (128 + n for signal n).
    pub fn code(&self) -> i32 {
        self.code
    }

    /// Whether the process exited with 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// The signal that ended the process, if the code says so.
    pub fn signal(&self) -> Option<i32> {
        match self.termination() {
            Termination::Signaled(s) => Some(s),
            Termination::Exited(_) => None,
        }
    }

    /// The code read as an exit or a signal.
    pub fn termination(&self) -> Termination {
        if (129..=192).contains(&self.code) {
            Termination::Signaled(self.code - 128)
        } else {
            Termination::Exited(self.code)
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.termination() {
            Termination::Exited(c) => write!(f, "exit code: {c}"),
            Termination::Signaled(s) => write!(f, "exit code: {} (signal {s})", self.code),
        }
    }
}
