//! Progress events of a build, and the sinks they are sent to.
//!
//! Everything that happens during a build and that a user may want to see is an [`Event`]
//! about a vertex (an LLB op, identified by its digest): it started, it was cached, it
//! completed (with its duration or its error), it wrote log lines, it made byte progress
//! (pulls, transfers), it warned. The engine sends events to a [`ProgressSink`]; renderers
//! (tty, plain, rawjson, quiet) and the daemon's `Status` stream consume them.
//!
//! What it deliberately does not know: rendering, terminals, gRPC. Events are plain data, in
//! the shape of BuildKit's `StatusResponse` (vertexes, statuses, logs, warnings), so that the
//! daemon can forward them and a client can render BuildKit's own status stream with the same
//! renderer.
//!
//! Why: progress as events keeps libraries from printing, makes the engine testable (a test
//! sink records what happened), and lets one build feed several consumers.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The id of a vertex: its LLB digest (`sha256:...`), or any stable string for work that is
/// not an LLB op (`[internal] load metadata for ...`).
pub type VertexId = String;

/// Something that happened during a build.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A vertex became known (before it starts), with its display name and inputs.
    Vertex {
        /// The vertex.
        id: VertexId,
        /// Its display name (`[build 2/5] RUN make`).
        name: String,
        /// The vertices it depends on.
        inputs: Vec<VertexId>,
    },
    /// A vertex started running.
    Started {
        /// The vertex.
        id: VertexId,
        /// When.
        at: SystemTime,
    },
    /// A vertex's result came from the cache.
    Cached {
        /// The vertex.
        id: VertexId,
    },
    /// A vertex finished; `error` is set when it failed.
    Completed {
        /// The vertex.
        id: VertexId,
        /// When.
        at: SystemTime,
        /// Why it failed, if it did.
        error: Option<String>,
    },
    /// Output of a vertex (a RUN step's stdout or stderr, or a message of the engine).
    Log {
        /// The vertex.
        id: VertexId,
        /// 1 for stdout, 2 for stderr.
        stream: u8,
        /// The bytes written.
        data: Vec<u8>,
        /// When.
        at: SystemTime,
    },
    /// Progress of a sub-task of a vertex (a layer being pulled, a file being transferred).
    Status {
        /// The vertex.
        id: VertexId,
        /// The sub-task (`sha256:...` of a layer, `transferring context`).
        task: String,
        /// Done so far (bytes).
        current: u64,
        /// Total when known (bytes).
        total: Option<u64>,
        /// Whether the sub-task finished.
        completed: bool,
    },
    /// A warning about a vertex (or about the build, with an empty id).
    Warning {
        /// The vertex.
        id: VertexId,
        /// The message.
        message: String,
    },
}

/// Where events go. Implementations must be cheap and must not block for long: the engine
/// calls them from its worker threads.
pub trait ProgressSink: Send + Sync {
    /// Receives one event.
    fn send(&self, event: Event);
}

/// A sink that drops everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl ProgressSink for Discard {
    fn send(&self, _event: Event) {}
}

/// A sink that keeps every event, for tests.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    /// A new, empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// The events received so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl ProgressSink for Recorder {
    fn send(&self, event: Event) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }
}

impl<T: ProgressSink + ?Sized> ProgressSink for Arc<T> {
    fn send(&self, event: Event) {
        (**self).send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_keeps_events_in_order() {
        let r = Recorder::new();
        let sink: Arc<dyn ProgressSink> = Arc::new(r.clone());
        sink.send(Event::Cached { id: "a".into() });
        sink.send(Event::Warning {
            id: String::new(),
            message: "w".into(),
        });
        assert_eq!(
            r.events(),
            vec![
                Event::Cached { id: "a".into() },
                Event::Warning {
                    id: String::new(),
                    message: "w".into()
                }
            ]
        );
    }
}
