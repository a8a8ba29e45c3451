//! Toy ops and a small graph language for the solver's tests.
//!
//! A graph is written one vertex per line: `ID[!] = KIND ARG [<- INPUT ...]`, where `!`
//! sets `ignore_cache`, an input is `ID` or `ID.OUTPUT`, and KIND is one of:
//!
//! - `src KEY=TEXT`: no inputs; keyed on `KEY`, produces `TEXT`.
//! - `cat TAG`: produces `TAG[input+input...]`.
//! - `copy TAG`: like `cat` (`TAG<...>`), but every input is keyed on its content (and
//!   the digest of a value that starts with `bad` fails).
//! - `split TAG`: two outputs, `TAG.0[...]` and `TAG.1[...]`.
//! - `slow MS`: sleeps MS milliseconds (or until cancelled), then acts like `cat slowMS`.
//! - `wait TAG`: waits until cancelled (at most 10 s), then fails.
//! - `fail MESSAGE`: fails with MESSAGE (after 20 ms, so that siblings have started).
//! - `panic TAG`: panics.
//! - `wrong TAG`: returns no output.
//!
//! Every op's key material is its kind and argument, so two vertices with different ids and
//! the same definition have the same cache key.

#![allow(dead_code)]

use kiln_progress::{Event, ProgressSink, Recorder};
use kiln_solver::{
    BoxError, BoxFuture, CacheKey, CacheKeyInput, CacheStore, ContentDigest, ExecCtx, Graph,
    MemoryStore, Op, ResultRecord, Selector, SolveError, Solver, StoreError, Vertex,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the toy ops did.
#[derive(Default)]
pub struct Log {
    /// The vertex ids whose op ran, in completion order.
    pub execs: Mutex<Vec<String>>,
    /// The vertex ids whose op observed its cancellation.
    pub cancelled: Mutex<Vec<String>>,
    /// The vertex ids whose op returned after being cancelled (so the solver awaited it).
    pub finished_after_cancel: Mutex<Vec<String>>,
    /// How many ops run now, and the most that ever ran at once.
    pub running: Mutex<(usize, usize)>,
    /// Content digests computed, as `vertex:input`.
    pub digests: Mutex<Vec<String>>,
}

impl Log {
    pub fn take_execs(&self) -> Vec<String> {
        let mut execs = std::mem::take(&mut *self.execs.lock().unwrap());
        execs.sort();
        execs
    }

    pub fn max_running(&self) -> usize {
        self.running.lock().unwrap().1
    }

    fn enter(&self) {
        let mut running = self.running.lock().unwrap();
        running.0 += 1;
        running.1 = running.1.max(running.0);
    }

    fn leave(&self) {
        self.running.lock().unwrap().0 -= 1;
    }
}

#[derive(Clone)]
enum Kind {
    Src { key: String, text: String },
    Cat(String),
    Copy(String),
    Split(String),
    Slow(u64),
    Wait(String),
    Fail(String),
    Panic(String),
    Wrong(String),
}

struct Toy {
    kind: Kind,
    definition: String,
    inputs: usize,
    log: Arc<Log>,
}

impl Op<String> for Toy {
    fn cache_key(&self) -> CacheKeyInput {
        CacheKeyInput::new("toy.v1", self.definition.as_bytes())
    }

    fn content_keys(&self) -> Vec<Option<Selector>> {
        match self.kind {
            Kind::Copy(_) => vec![Some(Selector::new(b"/".to_vec())); self.inputs],
            _ => Vec::new(),
        }
    }

    fn content_digest<'a>(
        &'a self,
        input: usize,
        value: &'a String,
        _selector: &'a Selector,
    ) -> BoxFuture<'a, Result<ContentDigest, BoxError>> {
        Box::pin(async move {
            if value.starts_with("bad") {
                return Err("unreadable content".into());
            }
            self.log
                .digests
                .lock()
                .unwrap()
                .push(format!("{}:{input}", self.definition));
            Ok(ContentDigest::new(format!("text:{value}")))
        })
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a ExecCtx,
        inputs: Vec<String>,
    ) -> BoxFuture<'a, Result<Vec<String>, BoxError>> {
        Box::pin(async move {
            self.log.enter();
            let result = self.run(ctx, inputs).await;
            self.log.leave();
            if result.is_ok() {
                self.log.execs.lock().unwrap().push(ctx.vertex().to_owned());
            }
            result
        })
    }
}

impl Toy {
    async fn run(&self, ctx: &ExecCtx, inputs: Vec<String>) -> Result<Vec<String>, BoxError> {
        let joined = inputs.join("+");
        match &self.kind {
            Kind::Src { text, .. } => Ok(vec![text.clone()]),
            Kind::Cat(tag) => {
                ctx.log(1, format!("cat {tag}\n"));
                Ok(vec![format!("{tag}[{joined}]")])
            }
            Kind::Copy(tag) => Ok(vec![format!("{tag}<{joined}>")]),
            Kind::Split(tag) => Ok(vec![
                format!("{tag}.0[{joined}]"),
                format!("{tag}.1[{joined}]"),
            ]),
            Kind::Slow(ms) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(*ms)) => {
                        Ok(vec![format!("slow{ms}[{joined}]")])
                    }
                    () = ctx.cancelled() => {
                        self.log.cancelled.lock().unwrap().push(ctx.vertex().to_owned());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        self.log.finished_after_cancel.lock().unwrap().push(ctx.vertex().to_owned());
                        Err("interrupted".into())
                    }
                }
            }
            Kind::Wait(_) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(10)) => Err("never cancelled".into()),
                    () = ctx.cancelled() => {
                        self.log.cancelled.lock().unwrap().push(ctx.vertex().to_owned());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        self.log.finished_after_cancel.lock().unwrap().push(ctx.vertex().to_owned());
                        Err("interrupted".into())
                    }
                }
            }
            Kind::Fail(message) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(message.clone().into())
            }
            Kind::Panic(tag) => panic!("toy op {tag} panics"),
            Kind::Wrong(_) => Ok(Vec::new()),
        }
    }
}

/// Parses the graph language (see the module doc).
pub fn graph(spec: &str, log: &Arc<Log>) -> Graph<String> {
    let mut graph = Graph::new();
    for line in spec.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (head, rest) = line.split_once('=').expect("`=` in a vertex line");
        let head = head.trim();
        let (id, ignore) = match head.strip_suffix('!') {
            Some(id) => (id, true),
            None => (head, false),
        };
        let (definition, inputs) = match rest.split_once("<-") {
            Some((d, i)) => (d.trim(), i.split_whitespace().collect::<Vec<_>>()),
            None => (rest.trim(), Vec::new()),
        };
        let (kind, arg) = definition.split_once(' ').unwrap_or((definition, ""));
        let kind = match kind {
            "src" => {
                let (key, text) = arg.split_once('=').expect("src KEY=TEXT");
                Kind::Src {
                    key: key.to_owned(),
                    text: text.to_owned(),
                }
            }
            "cat" => Kind::Cat(arg.to_owned()),
            "copy" => Kind::Copy(arg.to_owned()),
            "split" => Kind::Split(arg.to_owned()),
            "slow" => Kind::Slow(arg.parse().expect("slow MS")),
            "wait" => Kind::Wait(arg.to_owned()),
            "fail" => Kind::Fail(arg.to_owned()),
            "panic" => Kind::Panic(arg.to_owned()),
            "wrong" => Kind::Wrong(arg.to_owned()),
            other => panic!("unknown toy kind {other}"),
        };
        let key_material = match &kind {
            Kind::Src { key, .. } => format!("src {key}"),
            _ => definition.to_owned(),
        };
        let outputs = if matches!(kind, Kind::Split(_)) { 2 } else { 1 };
        let op = Toy {
            kind,
            definition: key_material,
            inputs: inputs.len(),
            log: Arc::clone(log),
        };
        let mut vertex = Vertex::new(
            id,
            format!("[{id}] {definition}"),
            Arc::new(op) as Arc<dyn Op<String>>,
        )
        .outputs(outputs)
        .ignore_cache(ignore);
        for input in inputs {
            let (vertex_id, output) = match input.split_once('.') {
                Some((v, o)) => (v, o.parse().expect("ID.OUTPUT")),
                None => (input, 0),
            };
            vertex = vertex.input(vertex_id, output);
        }
        graph
            .add(vertex)
            .expect("no duplicate vertex in a toy graph");
    }
    graph
}

/// A store that counts what it is asked, around a [`MemoryStore`].
#[derive(Default)]
pub struct CountingStore {
    pub inner: MemoryStore<String>,
    /// The first value of every result loaded.
    pub loads: Mutex<Vec<String>>,
    pub saves: Mutex<usize>,
    /// Results whose first value is here are gone (`load` returns `None`).
    pub gone: Mutex<Vec<String>>,
    /// Whether saves fail (a full disk).
    pub failing: Mutex<bool>,
}

impl CountingStore {
    pub fn take_loads(&self) -> Vec<String> {
        let mut loads = std::mem::take(&mut *self.loads.lock().unwrap());
        loads.sort();
        loads
    }
}

impl CacheStore<String> for CountingStore {
    fn lookup(&self, key: &CacheKey) -> Result<Option<ResultRecord>, StoreError> {
        self.inner.lookup(key)
    }

    fn load(&self, record: &ResultRecord) -> Result<Option<Vec<String>>, StoreError> {
        let values = self.inner.load(record)?;
        let first = values.as_ref().and_then(|v| v.first());
        if first.is_some_and(|first| self.gone.lock().unwrap().contains(first)) {
            return Ok(None);
        }
        if let Some(first) = first {
            self.loads.lock().unwrap().push(first.clone());
        }
        Ok(values)
    }

    fn save(&self, key: &CacheKey, outputs: &[String]) -> Result<ResultRecord, StoreError> {
        *self.saves.lock().unwrap() += 1;
        if *self.failing.lock().unwrap() {
            return Err(StoreError::Other("disk full".into()));
        }
        self.inner.save(key, outputs)
    }

    fn touch(&self, key: &CacheKey) -> Result<(), StoreError> {
        self.inner.touch(key)
    }
}

/// A solver over a counting store, and the log of its toy ops.
pub struct World {
    pub store: Arc<CountingStore>,
    pub solver: Solver<String>,
    pub log: Arc<Log>,
}

impl World {
    pub fn new(concurrency: usize) -> World {
        let store = Arc::new(CountingStore::default());
        let solver = Solver::with_concurrency(
            Arc::clone(&store) as Arc<dyn CacheStore<String>>,
            concurrency,
        );
        World {
            store,
            solver,
            log: Arc::new(Log::default()),
        }
    }

    /// Solves output `target` (`ID` or `ID.OUTPUT`) of the graph `spec`.
    pub async fn solve(&self, spec: &str, target: &str) -> (Result<String, SolveError>, Recorder) {
        let recorder = Recorder::new();
        let (id, output) = match target.split_once('.') {
            Some((v, o)) => (v, o.parse().expect("ID.OUTPUT")),
            None => (target, 0),
        };
        let result = self
            .solver
            .solve(
                graph(spec, &self.log),
                kiln_solver::Edge::new(id, output),
                Arc::new(recorder.clone()) as Arc<dyn ProgressSink>,
            )
            .await;
        (result, recorder)
    }
}

/// An error and its sources, joined with `": "`.
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The result of a solve as text: the value, or `error: ...`.
pub fn outcome(result: &Result<String, SolveError>) -> String {
    match result {
        Ok(value) => value.clone(),
        Err(error) => format!("error: {}", error_text(error)),
    }
}

/// Events as short text, per vertex: `started`, `cached`, `completed`,
/// `completed: ERROR`, `log 1 TEXT`. `Vertex` events are checked separately.
pub fn per_vertex(events: &[Event]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in events {
        let (id, text) = match event {
            Event::Vertex { .. } => continue,
            Event::Started { id, .. } => (id, "started".to_owned()),
            Event::Cached { id } => (id, "cached".to_owned()),
            Event::Completed {
                id, error: None, ..
            } => (id, "completed".to_owned()),
            Event::Completed {
                id, error: Some(e), ..
            } => (id, format!("completed: {e}")),
            Event::Log {
                id, stream, data, ..
            } => (
                id,
                format!("log {stream} {}", String::from_utf8_lossy(data).trim_end()),
            ),
            Event::Status { id, task, .. } => (id, format!("status {task}")),
            Event::Warning { id, message } => (id, format!("warning {message}")),
        };
        map.entry(id.clone()).or_default().push(text);
    }
    map
}

/// The `Vertex` events as `ID <- INPUT,INPUT`, in the order sent.
pub fn vertices(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Vertex { id, inputs, .. } => Some(format!("{id} <- {}", inputs.join(","))),
            _ => None,
        })
        .collect()
}

/// Whether every `Vertex` event comes before every other event.
pub fn vertices_first(events: &[Event]) -> bool {
    let first_other = events
        .iter()
        .position(|e| !matches!(e, Event::Vertex { .. }));
    let last_vertex = events
        .iter()
        .rposition(|e| matches!(e, Event::Vertex { .. }));
    match (first_other, last_vertex) {
        (Some(other), Some(vertex)) => vertex < other,
        _ => true,
    }
}
