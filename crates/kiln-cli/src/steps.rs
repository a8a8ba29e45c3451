//! Progress for work that is not an LLB vertex (loading the definition, exporting, pushing):
//! reported as a vertex of its own, as BuildKit's client shows it.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use kiln_progress::{Event, ProgressSink};

/// The vertex `id` appears and starts `at`.
pub(crate) fn begin_at(sink: &Arc<dyn ProgressSink>, id: &str, at: SystemTime) {
    sink.send(Event::Vertex {
        id: id.to_string(),
        name: id.to_string(),
        inputs: Vec::new(),
    });
    sink.send(Event::Started {
        id: id.to_string(),
        at,
    });
}

/// The vertex `id` ends `at`, with the error's whole chain when it failed.
pub(crate) fn end_at(
    sink: &Arc<dyn ProgressSink>,
    id: &str,
    at: SystemTime,
    error: Option<&anyhow::Error>,
) {
    sink.send(Event::Completed {
        id: id.to_string(),
        at,
        error: error.map(|e| format!("{e:#}")),
    });
}

fn begin(sink: &Arc<dyn ProgressSink>, id: &str) {
    begin_at(sink, id, SystemTime::now());
}

fn end(sink: &Arc<dyn ProgressSink>, id: &str, error: Option<&anyhow::Error>) {
    end_at(sink, id, SystemTime::now(), error);
}

/// Reports a step that is not an LLB vertex (loading the definition, exporting).
pub(crate) async fn step<T, E: Into<anyhow::Error>>(
    sink: &Arc<dyn ProgressSink>,
    id: &str,
    work: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    begin(sink, id);
    let result = work.await.map_err(Into::into);
    end(sink, id, result.as_ref().err());
    result
}

/// [`step`] for work that runs at once and whose error is only shown.
pub(crate) fn internal_step(
    sink: &Arc<dyn ProgressSink>,
    id: &str,
    work: impl FnOnce() -> anyhow::Result<()>,
) {
    begin(sink, id);
    let result = work();
    end(sink, id, result.as_ref().err());
}
