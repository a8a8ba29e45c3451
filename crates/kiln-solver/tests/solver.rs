//! Behaviour of the solver with toy ops: caching, laziness, content keys, scheduling,
//! deduplication, failures, bad graphs and progress.

mod toy;

use kiln_progress::{Event, ProgressSink, Recorder};
use kiln_solver::{CacheStore, Edge, Graph, MemoryStore, SolveError, Solver, Vertex};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use toy::{World, outcome, per_vertex, vertices, vertices_first};

/// One solve of a scenario and what it must do.
struct Step {
    /// The graph (see `toy`).
    spec: &'static str,
    /// The target, `ID` or `ID.OUTPUT`.
    target: &'static str,
    /// Results (by first value) that are gone from the store before this step.
    gone: &'static [&'static str],
    /// The value, or `error: ...`.
    expect: &'static str,
    /// The vertices whose op ran (sorted).
    execs: &'static [&'static str],
    /// The results loaded from the store, by first value (sorted).
    loads: &'static [&'static str],
}

/// Runs the steps of a scenario in order on one store, and returns what went wrong.
async fn check_scenario(name: &str, steps: &[Step]) -> Vec<String> {
    let world = World::new(4);
    let mut failures = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        world
            .store
            .gone
            .lock()
            .unwrap()
            .extend(step.gone.iter().map(|s| s.to_string()));
        let (result, _) = world.solve(step.spec, step.target).await;
        let got = outcome(&result);
        if got != step.expect {
            failures.push(format!(
                "{name} step {n}: value {got:?}, expected {:?}",
                step.expect
            ));
        }
        let execs = world.log.take_execs();
        if execs != step.execs {
            failures.push(format!(
                "{name} step {n}: ran {execs:?}, expected {:?}",
                step.execs
            ));
        }
        let loads = world.store.take_loads();
        if loads != step.loads {
            failures.push(format!(
                "{name} step {n}: loaded {loads:?}, expected {:?}",
                step.loads
            ));
        }
    }
    failures
}

async fn check_scenarios(scenarios: &[(&str, &[Step])]) {
    let mut failures = Vec::new();
    for (name, steps) in scenarios {
        failures.extend(check_scenario(name, steps).await);
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const BASE: &str = "
    a = src k=A
    b = cat b <- a
    c = cat c <- b
    d = cat d <- c a
";

const BASE_C2: &str = "
    a = src k=A
    b = cat b <- a
    c = cat c2 <- b
    d = cat d <- c a
";

const BASE_C_IGNORED: &str = "
    a = src k=A
    b = cat b <- a
    c! = cat c <- b
    d = cat d <- c a
";

const BASE_D_IGNORED: &str = "
    a = src k=A
    b = cat b <- a
    c = cat c <- b
    d! = cat d <- c a
";

const BASE_ALL_IGNORED: &str = "
    a! = src k=A
    b! = cat b <- a
    c! = cat c <- b
    d! = cat d <- c a
";

/// Other ids, same definitions as `a` and `b` of `BASE`.
const RENAMED: &str = "
    x = src k=A
    y = cat b <- x
";

const D: &str = "d[c[b[A]]+A]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching() {
    check_scenarios(&[
        (
            "rebuild",
            &[
                Step {
                    spec: BASE,
                    target: "d",
                    gone: &[],
                    expect: D,
                    execs: &["a", "b", "c", "d"],
                    loads: &[],
                },
                // Fully cached: nothing runs, only the target is loaded.
                Step {
                    spec: BASE,
                    target: "d",
                    gone: &[],
                    expect: D,
                    execs: &[],
                    loads: &[D],
                },
                // An intermediate target: loaded alone too.
                Step {
                    spec: BASE,
                    target: "c",
                    gone: &[],
                    expect: "c[b[A]]",
                    execs: &[],
                    loads: &["c[b[A]]"],
                },
                // Keys do not depend on vertex ids.
                Step {
                    spec: RENAMED,
                    target: "y",
                    gone: &[],
                    expect: "b[A]",
                    execs: &[],
                    loads: &["b[A]"],
                },
            ],
        ),
        (
            "change in the middle",
            &[
                Step {
                    spec: BASE,
                    target: "d",
                    gone: &[],
                    expect: D,
                    execs: &["a", "b", "c", "d"],
                    loads: &[],
                },
                // c changed: c and d run; their cached inputs are loaded, nothing else.
                Step {
                    spec: BASE_C2,
                    target: "d",
                    gone: &[],
                    expect: "d[c2[b[A]]+A]",
                    execs: &["c", "d"],
                    loads: &["A", "b[A]"],
                },
                Step {
                    spec: BASE,
                    target: "d",
                    gone: &[],
                    expect: D,
                    execs: &[],
                    loads: &[D],
                },
            ],
        ),
        (
            "stored result gone",
            &[
                Step {
                    spec: BASE,
                    target: "d",
                    gone: &[],
                    expect: D,
                    execs: &["a", "b", "c", "d"],
                    loads: &[],
                },
                // d's values were garbage-collected: a miss, so d runs again on loaded inputs.
                Step {
                    spec: BASE,
                    target: "d",
                    gone: &[D],
                    expect: D,
                    execs: &["d"],
                    loads: &["A", "c[b[A]]"],
                },
            ],
        ),
        (
            "multiple outputs",
            &[
                Step {
                    spec: "a = src k=A\n m = split m <- a\n x = cat z <- m.1\n y = cat z <- m.0",
                    target: "x",
                    gone: &[],
                    expect: "z[m.1[A]]",
                    execs: &["a", "m", "x"],
                    loads: &[],
                },
                // Same op on the other output: another key.
                Step {
                    spec: "a = src k=A\n m = split m <- a\n x = cat z <- m.1\n y = cat z <- m.0",
                    target: "y",
                    gone: &[],
                    expect: "z[m.0[A]]",
                    execs: &["y"],
                    loads: &["m.0[A]"],
                },
                Step {
                    spec: "a = src k=A\n m = split m <- a",
                    target: "m.1",
                    gone: &[],
                    expect: "m.1[A]",
                    execs: &[],
                    loads: &["m.0[A]"],
                },
            ],
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_cache() {
    check_scenarios(&[(
        "ignore cache",
        &[
            Step {
                spec: BASE,
                target: "d",
                gone: &[],
                expect: D,
                execs: &["a", "b", "c", "d"],
                loads: &[],
            },
            // c always runs, even though d is cached; d keeps its cache entry.
            Step {
                spec: BASE_C_IGNORED,
                target: "d",
                gone: &[],
                expect: D,
                execs: &["c"],
                loads: &["b[A]", D],
            },
            // The target itself: it runs on loaded inputs.
            Step {
                spec: BASE_D_IGNORED,
                target: "d",
                gone: &[],
                expect: D,
                execs: &["d"],
                loads: &["A", "c[b[A]]"],
            },
            // `--no-cache`: everything runs.
            Step {
                spec: BASE_ALL_IGNORED,
                target: "d",
                gone: &[],
                expect: D,
                execs: &["a", "b", "c", "d"],
                loads: &[],
            },
            Step {
                spec: BASE,
                target: "d",
                gone: &[],
                expect: D,
                execs: &[],
                loads: &[D],
            },
        ],
    )])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_keys() {
    const HELLO_K1: &str = "s = src k1=hello\n t = copy t <- s\n u = cat u <- t";
    const HELLO_K2: &str = "s = src k2=hello\n t = copy t <- s\n u = cat u <- t";
    const WORLD_K2: &str = "s! = src k2=world\n t = copy t <- s\n u = cat u <- t";
    check_scenarios(&[(
        "content keys",
        &[
            Step {
                spec: HELLO_K1,
                target: "u",
                gone: &[],
                expect: "u[t<hello>]",
                execs: &["s", "t", "u"],
                loads: &[],
            },
            // The source's key changed but not its content: it must run (to be digested),
            // and everything after it stays cached.
            Step {
                spec: HELLO_K2,
                target: "u",
                gone: &[],
                expect: "u[t<hello>]",
                execs: &["s"],
                loads: &["u[t<hello>]"],
            },
            // Same key, other content (the source ignores the cache, like a build context):
            // everything after it runs.
            Step {
                spec: WORLD_K2,
                target: "u",
                gone: &[],
                expect: "u[t<world>]",
                execs: &["s", "t", "u"],
                loads: &[],
            },
            // Back to the first content: the source is loaded to be digested, the rest hits.
            Step {
                spec: HELLO_K1,
                target: "u",
                gone: &[],
                expect: "u[t<hello>]",
                execs: &[],
                loads: &["hello", "u[t<hello>]"],
            },
        ],
    )])
    .await;
}

/// Solves `spec` for `target` with the given concurrency; returns the value, the time taken
/// and the largest number of ops that ran at once.
async fn timed(spec: &str, target: &str, concurrency: usize) -> (String, Duration, usize) {
    let world = World::new(concurrency);
    let start = Instant::now();
    let (result, _) = world.solve(spec, target).await;
    (outcome(&result), start.elapsed(), world.log.max_running())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallelism_and_limit() {
    const TWO: &str = "x = slow 200\n y = slow 201\n j = cat j <- x y";
    const FOUR: &str =
        "w = slow 200\n x = slow 201\n y = slow 202\n z = slow 203\n j = cat j <- w x y z";
    let mut failures = Vec::new();
    // (spec, concurrency, value, at least, at most, most at once)
    let cases: &[(&str, usize, &str, u64, u64, usize)] = &[
        (TWO, 4, "j[slow200[]+slow201[]]", 200, 380, 2),
        (TWO, 1, "j[slow200[]+slow201[]]", 400, 1000, 1),
        (
            FOUR,
            2,
            "j[slow200[]+slow201[]+slow202[]+slow203[]]",
            400,
            780,
            2,
        ),
    ];
    for &(spec, concurrency, value, least, most, at_once) in cases {
        let (got, took, max) = timed(spec, "j", concurrency).await;
        let took_ms = u64::try_from(took.as_millis()).unwrap();
        if got != value || took_ms < least || took_ms > most || max != at_once {
            failures.push(format!(
                "concurrency {concurrency}: {got:?} in {took_ms} ms with {max} at once, expected {value:?} in {least}..{most} ms with {at_once}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn default_concurrency_is_the_cpu_count() {
    let store: Arc<dyn CacheStore<String>> = Arc::new(MemoryStore::new());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    assert_eq!(Solver::new(Arc::clone(&store)).concurrency(), cpus);
    assert_eq!(Solver::with_concurrency(store, 0).concurrency(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_vertices_run_once() {
    // A diamond, plus `b2`, another id with `b`'s definition (so the same cache key).
    const SPEC: &str = "
        a = src k=A
        b = cat b <- a
        c = cat c <- a
        d = cat d <- b c
        b2 = cat b <- a
        e = cat e <- d b2
    ";
    let world = World::new(4);
    let (result, recorder) = world.solve(SPEC, "e").await;
    assert_eq!(outcome(&result), "e[d[b[A]+c[A]]+b[A]]");
    let execs = world.log.take_execs();
    let ran_b = execs.iter().filter(|id| *id == "b" || *id == "b2").count();
    assert_eq!((execs.len(), ran_b), (5, 1), "ran {execs:?}");
    // Both b and b2 report an outcome: each either ran (joining the one execution in flight)
    // or, when the other had already finished and saved its result, came from the cache; the
    // op itself ran once either way (checked above). Which one depends on scheduling.
    let events = per_vertex(&recorder.events());
    for id in ["b", "b2"] {
        let outcome = events
            .get(id)
            .map(|e| (e[0].as_str(), e[e.len() - 1].as_str()));
        assert!(
            matches!(
                outcome,
                Some(("started", "completed") | ("cached", "cached"))
            ),
            "{id}: {outcome:?}"
        );
    }

    // Two concurrent solves of different graphs with the same op run it once.
    let world = World::new(4);
    let (first, second) = tokio::join!(
        world.solve("p = slow 300", "p"),
        world.solve("q = slow 300", "q")
    );
    assert_eq!(
        (outcome(&first.0), outcome(&second.0)),
        ("slow300[]".to_owned(), "slow300[]".to_owned())
    );
    assert_eq!(world.log.take_execs().len(), 1);
    assert_eq!(
        per_vertex(&first.1.events()).get("p").cloned(),
        Some(vec!["started".to_owned(), "completed".to_owned()])
    );
    assert_eq!(
        per_vertex(&second.1.events()).get("q").cloned(),
        Some(vec!["started".to_owned(), "completed".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_cancels_the_build_and_saves_nothing() {
    const SPEC: &str = "
        f = fail boom
        w = wait w
        s = slow 3000
        j = cat j <- f w s
    ";
    let world = World::new(4);
    let start = Instant::now();
    let (result, recorder) = world.solve(SPEC, "j").await;
    let took = start.elapsed();
    assert_eq!(outcome(&result), "error: [f] fail boom failed: boom");
    assert!(matches!(result, Err(SolveError::Exec { ref vertex, .. }) if vertex == "f"));
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let mut cancelled = world.log.cancelled.lock().unwrap().clone();
    cancelled.sort();
    let mut finished = world.log.finished_after_cancel.lock().unwrap().clone();
    finished.sort();
    // The running siblings were told to stop, and were awaited.
    assert_eq!(
        (cancelled, finished),
        (
            vec!["s".to_owned(), "w".to_owned()],
            vec!["s".to_owned(), "w".to_owned()]
        )
    );
    assert_eq!(*world.store.saves.lock().unwrap(), 0);
    assert!(world.store.inner.is_empty());
    let events = per_vertex(&recorder.events());
    let expected: BTreeMap<String, Vec<String>> = [
        ("f", vec!["started", "completed: boom"]),
        ("s", vec!["started", "completed: the build was cancelled"]),
        ("w", vec!["started", "completed: the build was cancelled"]),
    ]
    .into_iter()
    .map(|(id, e)| (id.to_owned(), e.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(events, expected);

    // A second solve on the same solver works, and runs what was cancelled.
    let (result, _) = world.solve("x = slow 10\n y = cat y <- x", "y").await;
    assert_eq!(outcome(&result), "y[slow10[]]");
}

/// A build that fails, and how.
struct Failure {
    spec: &'static str,
    target: &'static str,
    /// Whether the store's saves fail.
    failing_store: bool,
    /// The error.
    expect: &'static str,
    /// The vertex the failure is reported on, and its events.
    vertex: &'static str,
    events: &'static [&'static str],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_ops() {
    let cases = [
        Failure {
            spec: "a = src k=A\n p = panic p <- a\n q = cat q <- p",
            target: "q",
            failing_store: false,
            expect: "error: [p] panic p panicked",
            vertex: "p",
            events: &["started", "completed: [p] panic p panicked"],
        },
        Failure {
            spec: "w = wrong w",
            target: "w",
            failing_store: false,
            expect: "error: [w] wrong w returned 0 outputs instead of 1",
            vertex: "w",
            events: &[
                "started",
                "completed: [w] wrong w returned 0 outputs instead of 1",
            ],
        },
        Failure {
            spec: "a = src k=A\n f = fail bad\n c = copy c <- a f",
            target: "c",
            failing_store: false,
            expect: "error: [f] fail bad failed: bad",
            vertex: "f",
            events: &["started", "completed: bad"],
        },
        // The content digest failure is reported on the vertex whose key needed it.
        Failure {
            spec: "a = src k=bad\n c = copy c <- a",
            target: "c",
            failing_store: false,
            expect: "error: computing the content key of input 0 of [c] copy c failed: unreadable content",
            vertex: "c",
            events: &[
                "started",
                "completed: computing the content key of input 0 of [c] copy c failed: unreadable content",
            ],
        },
        // A store that cannot save fails the build, and names the vertex being saved.
        Failure {
            spec: "a = src k=A\n b = cat b <- a",
            target: "b",
            failing_store: true,
            expect: "error: the build cache failed for [a] src k=A: cache store error: disk full",
            vertex: "a",
            events: &[
                "started",
                "completed: the build cache failed for [a] src k=A: cache store error: disk full",
            ],
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let world = World::new(2);
        *world.store.failing.lock().unwrap() = case.failing_store;
        let (result, recorder) = world.solve(case.spec, case.target).await;
        let got = outcome(&result);
        if got != case.expect {
            failures.push(format!(
                "{:?}: {got:?}, expected {:?}",
                case.spec, case.expect
            ));
        }
        let events = per_vertex(&recorder.events());
        let got_events = events.get(case.vertex).cloned().unwrap_or_default();
        if got_events != case.events {
            failures.push(format!(
                "{:?}: events of {} {got_events:?}, expected {:?}",
                case.spec, case.vertex, case.events
            ));
        }
        if events.contains_key(case.target) && case.target != case.vertex {
            failures.push(format!(
                "{:?}: the target was reported: {events:?}",
                case.spec
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_graphs() {
    // (spec, target, expected)
    let cases: &[(&str, &str, &str)] = &[
        (
            "a = src k=A",
            "zz",
            "error: target vertex zz is not in the graph",
        ),
        (
            "a = src k=A",
            "a.3",
            "error: target vertex a has 1 outputs, not output 3",
        ),
        (
            "b = cat b <- nope",
            "b",
            "error: input 0 of vertex b is vertex nope, which is not in the graph",
        ),
        (
            "a = src k=A\n b = cat b <- a a.1",
            "b",
            "error: input 1 of vertex b is output 1 of vertex a, which has 1 outputs",
        ),
        (
            "a = cat a <- a",
            "a",
            "error: the build graph has a cycle through vertex a",
        ),
        (
            "a = cat a <- b\n b = cat b <- a",
            "a",
            "error: the build graph has a cycle through vertex a",
        ),
        (
            "t = cat t <- a\n a = cat a <- b\n b = cat b <- c\n c = cat c <- a",
            "t",
            "error: the build graph has a cycle through vertex a",
        ),
        // What the target does not reach is not checked.
        ("a = src k=A\n z = cat z <- nope z", "a", "A"),
        // A diamond is not a cycle.
        (
            "a = src k=A\n b = cat b <- a\n c = cat c <- a b\n d = cat d <- b c",
            "d",
            "d[b[A]+c[A+b[A]]]",
        ),
    ];
    let mut failures = Vec::new();
    for (spec, target, expected) in cases {
        let world = World::new(2);
        let (result, recorder) = world.solve(spec, target).await;
        let got = outcome(&result);
        if got != *expected {
            failures.push(format!(
                "{spec:?} -> {target}: {got:?}, expected {expected:?}"
            ));
        }
        if result.is_err() && (!world.log.take_execs().is_empty() || !recorder.events().is_empty())
        {
            failures.push(format!(
                "{spec:?} -> {target}: something ran or was reported"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let mut graph: Graph<String> = toy::graph("a = src k=A", &Arc::new(toy::Log::default()));
    let again = toy::graph("a = src k=B", &Arc::new(toy::Log::default()));
    let vertex: Vertex<String> = again.get("a").unwrap().clone();
    assert_eq!(
        graph.add(vertex).unwrap_err().to_string(),
        "vertex a is already in the graph"
    );
}

#[test]
fn solving_outside_a_runtime_is_an_error() {
    let store: Arc<dyn CacheStore<String>> = Arc::new(MemoryStore::new());
    let solver = Solver::with_concurrency(store, 1);
    let graph = toy::graph("a = src k=A", &Arc::new(toy::Log::default()));
    let sink: Arc<dyn ProgressSink> = Arc::new(Recorder::new());
    let result = futures_executor_block_on(solver.solve(graph, Edge::new("a", 0), sink));
    assert!(matches!(result, Err(SolveError::NoRuntime)), "{result:?}");
}

/// Polls a future to completion on this thread, without a tokio runtime.
fn futures_executor_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::yield_now();
    }
}

/// One solve of a progress scenario: the `Vertex` events and, per vertex, the other events.
struct ProgressStep {
    spec: &'static str,
    target: &'static str,
    vertices: &'static [&'static str],
    events: &'static [(&'static str, &'static [&'static str])],
}

async fn check_progress(steps: &[ProgressStep]) -> Vec<String> {
    let world = World::new(4);
    let mut failures = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        let (_, recorder) = world.solve(step.spec, step.target).await;
        let events: Vec<Event> = recorder.events();
        if !vertices_first(&events) {
            failures.push(format!(
                "step {n}: a Vertex event comes after another event"
            ));
        }
        let got_vertices = vertices(&events);
        if got_vertices != step.vertices {
            failures.push(format!(
                "step {n}: vertices {got_vertices:?}, expected {:?}",
                step.vertices
            ));
        }
        let got = per_vertex(&events);
        let expected: BTreeMap<String, Vec<String>> = step
            .events
            .iter()
            .map(|(id, e)| (id.to_string(), e.iter().map(|s| s.to_string()).collect()))
            .collect();
        if got != expected {
            failures.push(format!("step {n}: events {got:?}, expected {expected:?}"));
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_events() {
    const CHAIN: &str = "a = src k=A\n b = cat b <- a\n c = cat c <- b";
    const CHAIN_C_IGNORED: &str = "a = src k=A\n b = cat b <- a\n c! = cat c <- b";
    const CHAIN_FAIL: &str = "a = src k=A\n b = cat b <- a\n f = fail oops <- b\n c = cat c <- f";
    let failures = check_progress(&[
        ProgressStep {
            spec: CHAIN,
            target: "c",
            vertices: &["a <- ", "b <- a", "c <- b"],
            events: &[
                ("a", &["started", "completed"]),
                ("b", &["started", "log 1 cat b", "completed"]),
                ("c", &["started", "log 1 cat c", "completed"]),
            ],
        },
        // Fully cached: c is loaded, a and b are cached without being loaded.
        ProgressStep {
            spec: CHAIN,
            target: "c",
            vertices: &["a <- ", "b <- a", "c <- b"],
            events: &[("a", &["cached"]), ("b", &["cached"]), ("c", &["cached"])],
        },
        ProgressStep {
            spec: CHAIN_C_IGNORED,
            target: "c",
            vertices: &["a <- ", "b <- a", "c <- b"],
            events: &[
                ("a", &["cached"]),
                ("b", &["cached"]),
                ("c", &["started", "log 1 cat c", "completed"]),
            ],
        },
        // A failure: c never starts, and nothing is reported as cached after it.
        ProgressStep {
            spec: CHAIN_FAIL,
            target: "c",
            vertices: &["a <- ", "b <- a", "f <- b", "c <- f"],
            events: &[("b", &["cached"]), ("f", &["started", "completed: oops"])],
        },
    ])
    .await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The Vertex events come inputs first, whatever the graph's insertion order.
    let failures = check_progress(&[ProgressStep {
        spec: "d = cat d <- b c\n c = cat c <- a\n b = cat b <- a a\n a = src k=A",
        target: "d",
        vertices: &["a <- ", "b <- a", "c <- a", "d <- b,c"],
        events: &[
            ("a", &["started", "completed"]),
            ("b", &["started", "log 1 cat b", "completed"]),
            ("c", &["started", "log 1 cat c", "completed"]),
            ("d", &["started", "log 1 cat d", "completed"]),
        ],
    }])
    .await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_does_not_cancel_work_another_build_waits_for() {
    let world = World::new(4);
    let (failing, waiting) = tokio::join!(
        world.solve("s = slow 300\n f = fail x\n j = cat j <- s f", "j"),
        world.solve("s2 = slow 300", "s2"),
    );
    assert_eq!(outcome(&failing.0), "error: [f] fail x failed: x");
    assert_eq!(outcome(&waiting.0), "slow300[]");
    assert!(world.log.cancelled.lock().unwrap().is_empty());
    assert_eq!(world.log.take_execs().len(), 1);
    // The failing build saw its share of the execution cancelled; the other saw it complete.
    let failing_events = per_vertex(&failing.1.events());
    assert_eq!(
        failing_events.get("s").map(|e| e.join(", ")).as_deref(),
        Some("started, completed: the build was cancelled")
    );
    let waiting_events = per_vertex(&waiting.1.events());
    assert_eq!(
        waiting_events.get("s2").map(|e| e.join(", ")).as_deref(),
        Some("started, completed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_build_hands_over_to_the_builds_waiting_for_it() {
    const SPEC: &str = "x = slow 300\n t = cat t <- x";
    let world = World::new(4);
    let dropped = async {
        // Dropped after 100 ms, while `t` waits for `x`.
        tokio::time::timeout(Duration::from_millis(100), world.solve(SPEC, "t"))
            .await
            .is_err()
    };
    let waiting = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        world.solve(SPEC, "t").await.0
    };
    let start = Instant::now();
    let (timed_out, result) = tokio::join!(dropped, waiting);
    let took = start.elapsed();
    assert!(timed_out);
    assert_eq!(outcome(&result), "t[slow300[]]");
    // The first run of `x` was cancelled when its only build was dropped; the waiting build
    // ran it again, then `t`.
    assert_eq!(*world.log.cancelled.lock().unwrap(), ["x"]);
    assert_eq!(world.log.take_execs(), ["t", "x"]);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(900),
        "took {took:?}"
    );
}

#[tokio::test]
async fn works_on_a_current_thread_runtime() {
    check_scenarios(&[(
        "current thread",
        &[
            Step {
                spec: BASE,
                target: "d",
                gone: &[],
                expect: D,
                execs: &["a", "b", "c", "d"],
                loads: &[],
            },
            Step {
                spec: BASE,
                target: "d",
                gone: &[],
                expect: D,
                execs: &[],
                loads: &[D],
            },
        ],
    )])
    .await;
    let (value, took, max) = timed("x = slow 200\n y = slow 201\n j = cat j <- x y", "j", 2).await;
    assert_eq!((value.as_str(), max), ("j[slow200[]+slow201[]]", 2));
    assert!(took < Duration::from_millis(380), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_graphs_do_not_overflow_the_stack() {
    const DEPTH: usize = 3000;
    let mut spec = String::from("v0 = src k=x\n");
    for i in 1..DEPTH {
        spec.push_str(&format!("v{i} = cat {i} <- v{}\n", i - 1));
    }
    let target = format!("v{}", DEPTH - 1);
    let world = World::new(2);
    let (result, _) = world.solve(&spec, &target).await;
    let value = outcome(&result);
    let expected = format!(
        "{}x{}",
        (1..DEPTH)
            .rev()
            .map(|i| format!("{i}["))
            .collect::<String>(),
        "]".repeat(DEPTH - 1)
    );
    assert!(value == expected, "{}", &value[..40.min(value.len())]);
    assert_eq!(world.log.take_execs().len(), DEPTH);
    let (again, _) = world.solve(&spec, &target).await;
    assert_eq!(outcome(&again), value);
    assert_eq!(
        (world.log.take_execs().len(), world.store.take_loads().len()),
        (0, 1)
    );

    // A cycle at the bottom of a deep chain is found without recursion too.
    let cyclic = spec.replace("v0 = src k=x", "v0 = cat 0 <- v5");
    let (result, _) = world.solve(&cyclic, &target).await;
    assert_eq!(
        outcome(&result),
        "error: the build graph has a cycle through vertex v5"
    );
}
