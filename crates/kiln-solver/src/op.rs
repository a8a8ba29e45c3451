//! What the solver asks of an operation, and what an operation gets while it runs.

use crate::key::{CacheKeyInput, ContentDigest, Selector};
use kiln_progress::{Event, ProgressSink, VertexId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;
use tokio::sync::Notify;

/// A boxed, sendable future, as returned by the methods of [`Op`] (which must stay usable as
/// `dyn Op<V>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The error type of ops: any error. The solver keeps it as the source of its own error, so
/// the caller can downcast it back to the op's own type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An operation: how a vertex is keyed and how it runs. `V` is the result type chosen by the
/// user of the solver (for the build engine, a handle to a committed snapshot).
///
/// The solver knows nothing else about an op. It calls [`Op::cache_key`] and
/// [`Op::content_keys`] to compute the vertex's cache key, [`Op::content_digest`] for the
/// inputs keyed on their content, and [`Op::exec`] when the result is not in the cache.
pub trait Op<V>: Send + Sync {
    /// The op's own key material: canonical bytes and a version tag. It must cover everything
    /// the result depends on except the inputs, which the solver adds.
    fn cache_key(&self) -> CacheKeyInput;

    /// For each input (in order), whether the cache key uses the input's *content* (with the
    /// given selector) instead of the input's cache key. A missing entry means "no", so the
    /// default (an empty list) keys every input on its cache key. Returning more entries than
    /// the vertex has inputs is an error.
    fn content_keys(&self) -> Vec<Option<Selector>> {
        Vec::new()
    }

    /// The digest of the content of input `input` (its materialized value) covered by
    /// `selector`. Called only for the inputs [`Op::content_keys`] selects; the default
    /// refuses.
    fn content_digest<'a>(
        &'a self,
        input: usize,
        value: &'a V,
        selector: &'a Selector,
    ) -> BoxFuture<'a, Result<ContentDigest, BoxError>> {
        let _ = (value, selector);
        Box::pin(async move {
            Err(BoxError::from(format!(
                "the op has no content key for input {input}"
            )))
        })
    }

    /// Runs the op on its inputs' values (one per input, in order) and returns one value per
    /// output. Long-running ops should watch [`ExecCtx::cancelled`] and return early (with
    /// any error) when it fires: the solver then discards the result.
    fn exec<'a>(
        &'a self,
        ctx: &'a ExecCtx,
        inputs: Vec<V>,
    ) -> BoxFuture<'a, Result<Vec<V>, BoxError>>;
}

/// A cancellation signal shared by the solver and a running op. Cloning gives another handle
/// to the same signal.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

#[derive(Debug, Default)]
struct CancelInner {
    fired: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    /// A new token that has not fired.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Fires the token; every current and future [`CancelToken::cancelled`] wait completes.
    pub fn cancel(&self) {
        self.inner.fired.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether the token has fired.
    pub fn is_cancelled(&self) -> bool {
        self.inner.fired.load(Ordering::SeqCst)
    }

    /// Completes when the token fires (at once if it already has).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Register before checking the flag, so a `cancel` in between is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// What a running op gets from the solver: its vertex, the progress sink, and the
/// cancellation token of its execution.
#[derive(Clone)]
pub struct ExecCtx {
    vertex: VertexId,
    name: String,
    progress: Arc<dyn ProgressSink>,
    cancel: CancelToken,
}

impl std::fmt::Debug for ExecCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecCtx")
            .field("vertex", &self.vertex)
            .field("name", &self.name)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl ExecCtx {
    /// A context for running an op outside the solver (in an op's own tests).
    pub fn new(
        vertex: impl Into<VertexId>,
        name: impl Into<String>,
        progress: Arc<dyn ProgressSink>,
        cancel: CancelToken,
    ) -> ExecCtx {
        ExecCtx {
            vertex: vertex.into(),
            name: name.into(),
            progress,
            cancel,
        }
    }

    /// The id of the vertex being run.
    pub fn vertex(&self) -> &str {
        &self.vertex
    }

    /// The display name of the vertex being run.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The progress sink. Events sent here about this vertex reach every build waiting for
    /// it (with each build's own vertex id).
    pub fn progress(&self) -> &Arc<dyn ProgressSink> {
        &self.progress
    }

    /// Sends a log chunk (`stream` 1 for stdout, 2 for stderr) about this vertex.
    pub fn log(&self, stream: u8, data: impl Into<Vec<u8>>) {
        self.progress.send(Event::Log {
            id: self.vertex.clone(),
            stream,
            data: data.into(),
            at: SystemTime::now(),
        });
    }

    /// The cancellation token of this execution.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Whether this execution has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when this execution is cancelled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }
}
