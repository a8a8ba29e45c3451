//! The solver: lazy cache keys, cache lookups, deduplicated and bounded execution.
//!
//! A solve is a *job*. For every vertex the job needs, it spawns at most one task that
//! computes the vertex's cache key and at most one that materializes its result; both are
//! shared (`futures_util::future::Shared` over the task's join handle), so every consumer of
//! a vertex waits for the same work, and no future is polled recursively (a deep graph cannot
//! overflow the stack).
//!
//! Executions are *flights*, kept by the solver across jobs and keyed by cache key: a job
//! that needs a key that is already being executed waits for that flight instead of running
//! the op again. A flight is cancelled (its [`CancelToken`] fired) when the last job waiting
//! for it gives up; a job that gives up last waits for the flight to end before its `solve`
//! returns, so no op is left running behind a failed build.

use crate::error::{OpError, SolveError, error_chain};
use crate::graph::{Edge, Graph, Vertex};
use crate::key::{CacheKey, InputKey};
use crate::op::{BoxFuture, CancelToken, ExecCtx, Op};
use crate::store::CacheStore;
use futures_util::FutureExt as _;
use futures_util::future::{Shared, join_all, try_join_all};
use kiln_progress::{Event, ProgressSink, VertexId};
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;
use tokio::sync::{Semaphore, watch};
use tokio::task::AbortHandle;

/// Locks a mutex, ignoring poisoning: the solver's critical sections never panic, and the
/// data they protect stays consistent if one did.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The shared result of a job's task.
type SharedTask<T> = Shared<BoxFuture<'static, Result<T, Arc<SolveError>>>>;

/// Solves build graphs against a cache store. Cloning gives another handle to the same
/// solver (same store, same concurrency limit, same in-flight executions).
pub struct Solver<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for Solver<V> {
    fn clone(&self) -> Solver<V> {
        Solver {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V> std::fmt::Debug for Solver<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Solver")
            .field("concurrency", &self.inner.concurrency)
            .finish_non_exhaustive()
    }
}

struct Inner<V> {
    store: Arc<dyn CacheStore<V>>,
    concurrency: usize,
    limit: Arc<Semaphore>,
    flights: Mutex<HashMap<CacheKey, Arc<Flight<V>>>>,
}

impl<V: Clone + Send + Sync + 'static> Solver<V> {
    /// A solver over `store` that runs at most as many ops at once as the machine has CPUs.
    pub fn new(store: Arc<dyn CacheStore<V>>) -> Solver<V> {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Solver::with_concurrency(store, cpus)
    }

    /// A solver over `store` that runs at most `concurrency` ops at once (at least one).
    pub fn with_concurrency(store: Arc<dyn CacheStore<V>>, concurrency: usize) -> Solver<V> {
        let concurrency = concurrency.clamp(1, Semaphore::MAX_PERMITS);
        Solver {
            inner: Arc::new(Inner {
                store,
                concurrency,
                limit: Arc::new(Semaphore::new(concurrency)),
                flights: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How many ops may run at once.
    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// The cache store.
    pub fn store(&self) -> &Arc<dyn CacheStore<V>> {
        &self.inner.store
    }

    /// Solves `target` (an output of a vertex of `graph`) and returns its value, sending
    /// progress events about every vertex the target reaches to `progress`.
    ///
    /// Must run inside a tokio runtime. Dropping the returned future cancels the build (the
    /// executions only this build waits for get their cancellation token fired), but cannot
    /// wait for the running ops to stop; a failing build does wait for them.
    pub async fn solve(
        &self,
        graph: Graph<V>,
        target: Edge,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<V, SolveError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SolveError::NoRuntime);
        }
        let order = graph.reachable(&target)?;
        for id in &order {
            if let Some(vertex) = graph.get(id) {
                let mut inputs: Vec<VertexId> = Vec::new();
                for edge in &vertex.inputs {
                    if !inputs.contains(&edge.vertex) {
                        inputs.push(edge.vertex.clone());
                    }
                }
                progress.send(Event::Vertex {
                    id: id.clone(),
                    name: vertex.name.clone(),
                    inputs,
                });
            }
        }

        let job = Arc::new(Job {
            solver: Arc::clone(&self.inner),
            graph,
            sink: progress,
            state: Mutex::new(JobState::default()),
            reaped: Arc::new(Mutex::new(Vec::new())),
        });
        let guard = CloseOnDrop(Arc::clone(&job));
        let result = job.result(&target.vertex).await;
        job.close_and_wait().await;
        drop(guard);

        let values = result.map_err(|e| Arc::try_unwrap(e).unwrap_or_else(|e| (*e).clone()))?;
        // The vertices whose key was computed but whose result was never needed are as good
        // as cached: say so, in graph order.
        let handled = std::mem::take(&mut lock(&job.state).handled);
        for id in order.iter().filter(|id| !handled.contains(*id)) {
            job.sink.send(Event::Cached { id: id.clone() });
        }
        values
            .get(target.output)
            .cloned()
            .ok_or_else(|| SolveError::BadTargetOutput {
                id: target.vertex.clone(),
                output: target.output,
                outputs: values.len(),
            })
    }
}

/// The state of one solve.
struct Job<V> {
    solver: Arc<Inner<V>>,
    graph: Graph<V>,
    sink: Arc<dyn ProgressSink>,
    state: Mutex<JobState<V>>,
    /// Flights this job cancelled (as their last waiter): it waits for them to end.
    reaped: Arc<Mutex<Vec<Arc<Flight<V>>>>>,
}

struct JobState<V> {
    keys: HashMap<VertexId, SharedTask<CacheKey>>,
    results: HashMap<VertexId, SharedTask<Arc<Vec<V>>>>,
    tasks: Vec<AbortHandle>,
    /// Set when the job ends: no new task starts after that.
    closed: bool,
    /// The vertices that were loaded, executed or failed (and so got their own progress
    /// events).
    handled: HashSet<VertexId>,
}

impl<V> Default for JobState<V> {
    fn default() -> JobState<V> {
        JobState {
            keys: HashMap::new(),
            results: HashMap::new(),
            tasks: Vec::new(),
            closed: false,
            handled: HashSet::new(),
        }
    }
}

/// Closes a job when the solve ends or its future is dropped.
struct CloseOnDrop<V>(Arc<Job<V>>);

impl<V> Drop for CloseOnDrop<V> {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        state.closed = true;
        for task in state.tasks.drain(..) {
            task.abort();
        }
        state.keys.clear();
        state.results.clear();
    }
}

impl<V: Clone + Send + Sync + 'static> Job<V> {
    fn vertex(&self, id: &str) -> Result<&Vertex<V>, Arc<SolveError>> {
        self.graph
            .get(id)
            .ok_or_else(|| Arc::new(SolveError::MissingTarget { id: id.to_owned() }))
    }

    /// Spawns a task of this job and shares its result.
    fn spawn<T, F>(self: &Arc<Self>, state: &mut JobState<V>, id: &str, work: F) -> SharedTask<T>
    where
        T: Clone + Send + Sync + 'static,
        F: Future<Output = Result<T, Arc<SolveError>>> + Send + 'static,
    {
        if state.closed {
            let cancelled: BoxFuture<'static, _> =
                Box::pin(async { Err(Arc::new(SolveError::Cancelled)) });
            return cancelled.shared();
        }
        let handle = tokio::spawn(work);
        state.tasks.push(handle.abort_handle());
        let vertex = id.to_owned();
        let name = self
            .graph
            .get(id)
            .map(|v| v.name.clone())
            .unwrap_or_default();
        let joined: BoxFuture<'static, _> = Box::pin(async move {
            match handle.await {
                Ok(result) => result,
                Err(error) if error.is_panic() => {
                    Err(Arc::new(SolveError::Panicked { vertex, name }))
                }
                Err(_) => Err(Arc::new(SolveError::Cancelled)),
            }
        });
        joined.shared()
    }

    /// The cache key of a vertex (computed once per job).
    fn key(self: &Arc<Self>, id: &str) -> SharedTask<CacheKey> {
        let mut state = lock(&self.state);
        if let Some(task) = state.keys.get(id) {
            return task.clone();
        }
        let job = Arc::clone(self);
        let owned = id.to_owned();
        let task = self.spawn(&mut state, id, async move { job.compute_key(&owned).await });
        state.keys.insert(id.to_owned(), task.clone());
        task
    }

    /// The result of a vertex (materialized once per job).
    fn result(self: &Arc<Self>, id: &str) -> SharedTask<Arc<Vec<V>>> {
        let mut state = lock(&self.state);
        if let Some(task) = state.results.get(id) {
            return task.clone();
        }
        let job = Arc::clone(self);
        let owned = id.to_owned();
        let task = self.spawn(&mut state, id, async move { job.materialize(&owned).await });
        state.results.insert(id.to_owned(), task.clone());
        task
    }

    /// One output of a vertex, materialized.
    async fn output(self: &Arc<Self>, edge: &Edge) -> Result<V, Arc<SolveError>> {
        let values = self.result(&edge.vertex).await?;
        values.get(edge.output).cloned().ok_or_else(|| {
            let vertex = self.graph.get(&edge.vertex);
            Arc::new(SolveError::WrongOutputCount {
                vertex: edge.vertex.clone(),
                name: vertex.map(|v| v.name.clone()).unwrap_or_default(),
                expected: vertex.map_or(0, |v| v.outputs),
                got: values.len(),
            })
        })
    }

    async fn compute_key(self: &Arc<Self>, id: &str) -> Result<CacheKey, Arc<SolveError>> {
        let vertex = self.vertex(id)?;
        let own = vertex.op.cache_key();
        let content = vertex.op.content_keys();
        if content.len() > vertex.inputs.len() {
            let error = Arc::new(SolveError::BadContentKeys {
                vertex: id.to_owned(),
                declared: content.len(),
                inputs: vertex.inputs.len(),
            });
            self.report_failure(id, &error);
            return Err(error);
        }
        let inputs = vertex.inputs.iter().enumerate().map(|(index, edge)| {
            let selector = content.get(index).cloned().flatten();
            async move {
                let Some(selector) = selector else {
                    // An input that ignores the cache always runs (as in BuildKit, where
                    // such a vertex has no key to offer until it has run); its consumers
                    // are then keyed as usual, so they can still be cached.
                    if self
                        .graph
                        .get(&edge.vertex)
                        .is_some_and(|input| input.ignore_cache)
                    {
                        self.result(&edge.vertex).await?;
                    }
                    let key = self.key(&edge.vertex).await?;
                    return Ok(InputKey::Key {
                        key,
                        output: edge.output,
                    });
                };
                let value = self.output(edge).await?;
                match vertex.op.content_digest(index, &value, &selector).await {
                    Ok(digest) => Ok(InputKey::Content { digest, selector }),
                    Err(source) => {
                        let error = Arc::new(SolveError::ContentDigest {
                            vertex: id.to_owned(),
                            name: vertex.name.clone(),
                            input: index,
                            source: OpError::from(source),
                        });
                        self.report_failure(id, &error);
                        Err(error)
                    }
                }
            }
        });
        let inputs = try_join_all(inputs).await?;
        Ok(CacheKey::compute(&own, &inputs))
    }

    async fn materialize(self: &Arc<Self>, id: &str) -> Result<Arc<Vec<V>>, Arc<SolveError>> {
        let vertex = self.vertex(id)?;
        let key = self.key(id).await?;
        loop {
            if !vertex.ignore_cache
                && let Some(values) = self.load(vertex, key).await?
            {
                self.mark_handled(id);
                self.sink.send(Event::Cached { id: id.to_owned() });
                return Ok(values);
            }
            if lock(&self.state).closed {
                return Err(Arc::new(SolveError::Cancelled));
            }
            let mut guard = self.solver.join_flight(key, &self.sink, id, &self.reaped);
            if guard.leader {
                // A flight for the same key may have finished (and saved its result) between
                // the lookup above and joining: look once more before running the op, so that
                // identical vertices never run twice. Dropping an unlaunched leader abandons
                // the flight, and whoever waits on it looks again.
                if !vertex.ignore_cache
                    && let Some(values) = self.load(vertex, key).await?
                {
                    drop(guard);
                    self.mark_handled(id);
                    self.sink.send(Event::Cached { id: id.to_owned() });
                    return Ok(values);
                }
                let inputs =
                    try_join_all(vertex.inputs.iter().map(|edge| self.output(edge))).await?;
                guard.launch(Arc::clone(&self.solver), vertex, inputs);
            }
            match guard.wait().await {
                FlightOutcome::Done(values) => {
                    self.mark_handled(id);
                    return Ok(values);
                }
                FlightOutcome::Failed(error) => {
                    self.mark_handled(id);
                    return Err(error);
                }
                // The flight's leader gave up before running the op, or every job waiting
                // for it gave up: look again.
                FlightOutcome::Abandoned => {}
            }
        }
    }

    /// The stored result for `key`, when there is one and its values are still there.
    async fn load(
        &self,
        vertex: &Vertex<V>,
        key: CacheKey,
    ) -> Result<Option<Arc<Vec<V>>>, Arc<SolveError>> {
        let store = Arc::clone(&self.solver.store);
        let outputs = vertex.outputs;
        let loaded = tokio::task::spawn_blocking(move || {
            let Some(record) = store.lookup(&key)? else {
                return Ok(None);
            };
            let Some(values) = store.load(&record)? else {
                return Ok(None);
            };
            if values.len() != outputs {
                // Not what this vertex produces: a miss, and the next save replaces it.
                return Ok(None);
            }
            store.touch(&key)?;
            Ok(Some(Arc::new(values)))
        })
        .await;
        let failure = |source| {
            let error = Arc::new(SolveError::Store {
                vertex: vertex.id.clone(),
                name: vertex.name.clone(),
                source: Arc::new(source),
            });
            self.report_failure(&vertex.id, &error);
            error
        };
        match loaded {
            Ok(Ok(values)) => Ok(values),
            Ok(Err(source)) => Err(failure(source)),
            Err(_) => Err(Arc::new(SolveError::Panicked {
                vertex: vertex.id.clone(),
                name: vertex.name.clone(),
            })),
        }
    }

    fn mark_handled(&self, id: &str) {
        lock(&self.state).handled.insert(id.to_owned());
    }

    /// Reports a failure that happened outside an execution (a content digest, the store).
    fn report_failure(&self, id: &str, error: &SolveError) {
        self.mark_handled(id);
        let at = SystemTime::now();
        self.sink.send(Event::Started {
            id: id.to_owned(),
            at,
        });
        self.sink.send(Event::Completed {
            id: id.to_owned(),
            at,
            error: Some(error_chain(error)),
        });
    }

    /// Ends the job: stops its tasks, waits for them and for the flights it cancelled.
    async fn close_and_wait(&self) {
        let (tasks, keys, results) = {
            let mut state = lock(&self.state);
            state.closed = true;
            let keys: Vec<_> = state.keys.values().cloned().collect();
            let results: Vec<_> = state.results.values().cloned().collect();
            (std::mem::take(&mut state.tasks), keys, results)
        };
        for task in tasks {
            task.abort();
        }
        // Every task has ended (and dropped its flight guards) once its shared result is
        // ready.
        join_all(keys).await;
        join_all(results).await;
        let reaped = std::mem::take(&mut *lock(&self.reaped));
        for flight in reaped {
            flight.finished().await;
        }
        let mut state = lock(&self.state);
        state.keys.clear();
        state.results.clear();
    }
}

/// How a flight ended.
enum FlightOutcome<V> {
    /// The op ran and its result was saved.
    Done(Arc<Vec<V>>),
    /// The op failed.
    Failed(Arc<SolveError>),
    /// The op did not run, or was cancelled: nothing was saved.
    Abandoned,
}

impl<V> Clone for FlightOutcome<V> {
    fn clone(&self) -> FlightOutcome<V> {
        match self {
            FlightOutcome::Done(values) => FlightOutcome::Done(Arc::clone(values)),
            FlightOutcome::Failed(error) => FlightOutcome::Failed(Arc::clone(error)),
            FlightOutcome::Abandoned => FlightOutcome::Abandoned,
        }
    }
}

/// One execution of an op, shared by every vertex (of any job) with its cache key.
struct Flight<V> {
    key: CacheKey,
    cancel: CancelToken,
    state: Mutex<FlightState>,
    outcome: watch::Sender<Option<FlightOutcome<V>>>,
}

#[derive(Default)]
struct FlightState {
    /// The jobs' vertices waiting for this flight.
    watchers: Vec<Watcher>,
    next_watcher: u64,
    /// When the op started, once it has.
    started: Option<SystemTime>,
}

/// A vertex waiting for a flight, and where its progress events go.
struct Watcher {
    id: u64,
    vertex: VertexId,
    sink: Arc<dyn ProgressSink>,
    started_sent: bool,
}

impl<V> Flight<V> {
    /// Completes when the flight has ended.
    async fn finished(&self) {
        let mut receiver = self.outcome.subscribe();
        // The sender lives in `self`, so the wait can only end with an outcome.
        let _ = receiver.wait_for(Option::is_some).await;
    }

    /// Sends `event` to every watcher. An event about vertex `about` (the flight's leader)
    /// reaches each watcher as an event about the watcher's own vertex; any other event is
    /// forwarded as it is, once per sink.
    fn broadcast(&self, event: &Event, about: &str) {
        let targets: Vec<(VertexId, Arc<dyn ProgressSink>)> = lock(&self.state)
            .watchers
            .iter()
            .map(|w| (w.vertex.clone(), Arc::clone(&w.sink)))
            .collect();
        if event_id(event) == about {
            for (vertex, sink) in targets {
                sink.send(with_id(event.clone(), &vertex));
            }
            return;
        }
        let mut sent: Vec<*const ()> = Vec::new();
        for (_, sink) in targets {
            let address = Arc::as_ptr(&sink).cast::<()>();
            if !sent.contains(&address) {
                sent.push(address);
                sink.send(event.clone());
            }
        }
    }
}

/// The vertex an event is about.
#[allow(unreachable_patterns)]
fn event_id(event: &Event) -> &str {
    match event {
        Event::Vertex { id, .. }
        | Event::Started { id, .. }
        | Event::Cached { id }
        | Event::Completed { id, .. }
        | Event::Log { id, .. }
        | Event::Status { id, .. }
        | Event::Warning { id, .. } => id,
        _ => "",
    }
}

/// `event`, about vertex `id` instead.
#[allow(unreachable_patterns)]
fn with_id(event: Event, id: &str) -> Event {
    let id = id.to_owned();
    match event {
        Event::Vertex { name, inputs, .. } => Event::Vertex { id, name, inputs },
        Event::Started { at, .. } => Event::Started { id, at },
        Event::Cached { .. } => Event::Cached { id },
        Event::Completed { at, error, .. } => Event::Completed { id, at, error },
        Event::Log {
            stream, data, at, ..
        } => Event::Log {
            id,
            stream,
            data,
            at,
        },
        Event::Status {
            task,
            current,
            total,
            completed,
            ..
        } => Event::Status {
            id,
            task,
            current,
            total,
            completed,
        },
        Event::Warning { message, .. } => Event::Warning { id, message },
        other => other,
    }
}

/// The progress sink of a running op: forwards to every vertex waiting for the flight.
struct FanOut<V> {
    flight: Arc<Flight<V>>,
    /// The vertex the op runs as (the flight's leader).
    vertex: VertexId,
}

impl<V: Send + Sync> ProgressSink for FanOut<V> {
    fn send(&self, event: Event) {
        self.flight.broadcast(&event, &self.vertex);
    }
}

impl<V: Clone + Send + Sync + 'static> Inner<V> {
    /// Joins the flight for `key`, or starts one (then the caller leads it: it must
    /// materialize the inputs and [`FlightGuard::launch`] the op).
    fn join_flight(
        self: &Arc<Self>,
        key: CacheKey,
        sink: &Arc<dyn ProgressSink>,
        vertex: &str,
        reaped: &Arc<Mutex<Vec<Arc<Flight<V>>>>>,
    ) -> FlightGuard<V> {
        let mut flights = lock(&self.flights);
        let (flight, leader) = match flights.get(&key) {
            Some(flight) if !flight.cancel.is_cancelled() => (Arc::clone(flight), false),
            _ => {
                let flight = Arc::new(Flight {
                    key,
                    cancel: CancelToken::new(),
                    state: Mutex::new(FlightState::default()),
                    outcome: watch::Sender::new(None),
                });
                flights.insert(key, Arc::clone(&flight));
                (flight, true)
            }
        };
        let (watcher, started) = {
            let mut state = lock(&flight.state);
            let id = state.next_watcher;
            state.next_watcher += 1;
            let started = state.started;
            state.watchers.push(Watcher {
                id,
                vertex: vertex.to_owned(),
                sink: Arc::clone(sink),
                started_sent: started.is_some(),
            });
            (id, started)
        };
        drop(flights);
        if let Some(at) = started {
            sink.send(Event::Started {
                id: vertex.to_owned(),
                at,
            });
        }
        FlightGuard {
            solver: Arc::clone(self),
            flight,
            watcher,
            leader,
            launched: false,
            reaped: Arc::clone(reaped),
        }
    }

    /// Ends a flight: forgets it (so later lookups go to the store), tells its watchers, and
    /// publishes the outcome.
    fn finish(&self, flight: &Arc<Flight<V>>, outcome: FlightOutcome<V>) {
        if flight.outcome.borrow().is_some() {
            return;
        }
        {
            let mut flights = lock(&self.flights);
            if flights
                .get(&flight.key)
                .is_some_and(|f| Arc::ptr_eq(f, flight))
            {
                flights.remove(&flight.key);
            }
        }
        let error = match &outcome {
            FlightOutcome::Done(_) => None,
            FlightOutcome::Failed(error) => Some(match error.as_ref() {
                SolveError::Exec { source, .. } => error_chain(source.as_ref()),
                other => error_chain(other),
            }),
            FlightOutcome::Abandoned => Some(SolveError::Cancelled.to_string()),
        };
        let watchers = std::mem::take(&mut lock(&flight.state).watchers);
        let at = SystemTime::now();
        for watcher in watchers.into_iter().filter(|w| w.started_sent) {
            watcher.sink.send(Event::Completed {
                id: watcher.vertex,
                at,
                error: error.clone(),
            });
        }
        flight.outcome.send_replace(Some(outcome));
    }
}

/// A vertex's membership in a flight. Dropping it before the flight ends means giving up:
/// a leader that has not launched the op abandons the flight; otherwise the last one to give
/// up cancels the op.
struct FlightGuard<V: Clone + Send + Sync + 'static> {
    solver: Arc<Inner<V>>,
    flight: Arc<Flight<V>>,
    watcher: u64,
    leader: bool,
    launched: bool,
    reaped: Arc<Mutex<Vec<Arc<Flight<V>>>>>,
}

impl<V: Clone + Send + Sync + 'static> FlightGuard<V> {
    /// Starts the op of a flight this guard leads, in its own task.
    fn launch(&mut self, solver: Arc<Inner<V>>, vertex: &Vertex<V>, inputs: Vec<V>) {
        self.launched = true;
        let run = Run {
            solver,
            flight: Arc::clone(&self.flight),
            op: Arc::clone(&vertex.op),
            vertex: vertex.id.clone(),
            name: vertex.name.clone(),
            outputs: vertex.outputs,
        };
        tokio::spawn(run.run(inputs));
    }

    /// Waits for the flight to end.
    async fn wait(&self) -> FlightOutcome<V> {
        let mut receiver = self.flight.outcome.subscribe();
        match receiver.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(FlightOutcome::Abandoned),
            Err(_) => FlightOutcome::Abandoned,
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Drop for FlightGuard<V> {
    fn drop(&mut self) {
        if self.flight.outcome.borrow().is_some() {
            return;
        }
        if self.leader && !self.launched {
            self.solver.finish(&self.flight, FlightOutcome::Abandoned);
            return;
        }
        let flights = lock(&self.solver.flights);
        let (watcher, last) = {
            let mut state = lock(&self.flight.state);
            let position = state.watchers.iter().position(|w| w.id == self.watcher);
            let watcher = position.map(|p| state.watchers.remove(p));
            (watcher, state.watchers.is_empty())
        };
        let mut flights = flights;
        if last {
            if flights
                .get(&self.flight.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                flights.remove(&self.flight.key);
            }
            self.flight.cancel.cancel();
            lock(&self.reaped).push(Arc::clone(&self.flight));
        }
        drop(flights);
        if let Some(watcher) = watcher.filter(|w| w.started_sent) {
            watcher.sink.send(Event::Completed {
                id: watcher.vertex,
                at: SystemTime::now(),
                error: Some(SolveError::Cancelled.to_string()),
            });
        }
    }
}

/// The task that runs a flight's op.
struct Run<V> {
    solver: Arc<Inner<V>>,
    flight: Arc<Flight<V>>,
    op: Arc<dyn Op<V>>,
    vertex: VertexId,
    name: String,
    outputs: usize,
}

/// Makes sure a flight ends even if its task is dropped (runtime shutdown).
struct Publisher<V: Clone + Send + Sync + 'static> {
    solver: Arc<Inner<V>>,
    flight: Arc<Flight<V>>,
}

impl<V: Clone + Send + Sync + 'static> Drop for Publisher<V> {
    fn drop(&mut self) {
        self.solver.finish(&self.flight, FlightOutcome::Abandoned);
    }
}

impl<V: Clone + Send + Sync + 'static> Run<V> {
    async fn run(self, inputs: Vec<V>) {
        let publisher = Publisher {
            solver: Arc::clone(&self.solver),
            flight: Arc::clone(&self.flight),
        };
        let permit = tokio::select! {
            biased;
            () = self.flight.cancel.cancelled() => return,
            permit = Arc::clone(&self.solver.limit).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let at = SystemTime::now();
        {
            let mut state = lock(&self.flight.state);
            state.started = Some(at);
            for watcher in &mut state.watchers {
                watcher.started_sent = true;
            }
        }
        self.flight.broadcast(
            &Event::Started {
                id: self.vertex.clone(),
                at,
            },
            &self.vertex,
        );

        let progress: Arc<dyn ProgressSink> = Arc::new(FanOut {
            flight: Arc::clone(&self.flight),
            vertex: self.vertex.clone(),
        });
        let ctx = ExecCtx::new(
            self.vertex.clone(),
            self.name.clone(),
            progress,
            self.flight.cancel.clone(),
        );
        let result = AssertUnwindSafe(self.op.exec(&ctx, inputs))
            .catch_unwind()
            .await;
        drop(permit);

        let outcome = if self.flight.cancel.is_cancelled() {
            FlightOutcome::Abandoned
        } else {
            match result {
                Err(_) => self.failed(SolveError::Panicked {
                    vertex: self.vertex.clone(),
                    name: self.name.clone(),
                }),
                Ok(Err(source)) => self.failed(SolveError::Exec {
                    vertex: self.vertex.clone(),
                    name: self.name.clone(),
                    source: OpError::from(source),
                }),
                Ok(Ok(values)) if values.len() != self.outputs => {
                    self.failed(SolveError::WrongOutputCount {
                        vertex: self.vertex.clone(),
                        name: self.name.clone(),
                        expected: self.outputs,
                        got: values.len(),
                    })
                }
                Ok(Ok(values)) => self.save(values).await,
            }
        };
        self.solver.finish(&self.flight, outcome);
        drop(publisher);
    }

    fn failed(&self, error: SolveError) -> FlightOutcome<V> {
        FlightOutcome::Failed(Arc::new(error))
    }

    async fn save(&self, values: Vec<V>) -> FlightOutcome<V> {
        let values = Arc::new(values);
        let store = Arc::clone(&self.solver.store);
        let key = self.flight.key;
        let saving = Arc::clone(&values);
        match tokio::task::spawn_blocking(move || store.save(&key, &saving)).await {
            Ok(Ok(_)) => FlightOutcome::Done(values),
            Ok(Err(source)) => self.failed(SolveError::Store {
                vertex: self.vertex.clone(),
                name: self.name.clone(),
                source: Arc::new(source),
            }),
            Err(_) => self.failed(SolveError::Panicked {
                vertex: self.vertex.clone(),
                name: self.name.clone(),
            }),
        }
    }
}
