//! A generic build-graph solver with a persistent cache.
//!
//! The solver takes a graph of vertices (each with a stable id, a display name, inputs that
//! name an output of another vertex, and an [`Op`]) and a target output, and produces the
//! target's value. `V`, the value type, is chosen by the user: for kiln's build engine it is
//! a handle to a committed snapshot.
//!
//! # What it deliberately does not know
//!
//! Nothing here knows LLB, containers, snapshots, registries or gRPC. An op is three
//! questions (what is your key, which inputs are keyed on their content and what is that
//! content's digest, run yourself) and a store is four (lookup, load, save, touch). The LLB
//! ops and the snapshot-backed store live on top of this crate. That keeps the hardest
//! logic of the engine (laziness, deduplication, cancellation) testable in milliseconds with
//! toy ops, as BuildKit's own solver is.
//!
//! # How a target is solved
//!
//! - **Cache keys** ([`CacheKey`]) are SHA-256 over a canonical, versioned, length-prefixed
//!   encoding of the op's own key material ([`CacheKeyInput`]) and, per input, either the
//!   input's cache key and output index, or the digest of the input's content with a
//!   [`Selector`] (BuildKit's content-based keys: a `COPY` from the build context keys on
//!   the checksum of the copied files, not on the context's vertex). Keys never come from
//!   `Debug`, `Hash` or serde output; golden tests pin them.
//! - **Lazy evaluation.** A vertex's key is computed from its inputs' keys without running
//!   anything, unless an input is keyed on its content: that input is then materialized.
//!   When the key is in the store (and the vertex does not ignore the cache), the result is
//!   loaded and the inputs are never materialized, so a fully cached rebuild runs nothing and
//!   loads only the final result. Otherwise the inputs are materialized concurrently, the op
//!   runs, and its result is saved under its key. A stored result whose values are gone
//!   ([`CacheStore::load`] returns `None`) is a miss.
//! - **`ignore_cache`** skips the lookup of that vertex: whenever the target reaches it, it
//!   runs (even when a consumer turns out to be cached, as in BuildKit, where such a vertex
//!   has no key to offer before it has run), and its fresh result is saved under its key,
//!   replacing the old one. Its consumers still look their own keys up, so they can be
//!   cached; a caller that wants "rebuild this and everything after it" (`--no-cache`) sets
//!   the flag on all of those vertices.
//! - **Scheduling.** Independent branches run in parallel; at most
//!   [`Solver::concurrency`] ops execute at once (content digests and store calls are not
//!   counted). A vertex needed by many consumers runs once per solve, and vertices with the
//!   same cache key run once across the concurrent solves of one [`Solver`] (in-flight
//!   deduplication): the later ones wait for the running execution and receive its progress.
//! - **Failure.** The first failure fails the solve: every execution that only this solve
//!   waits for has its [`CancelToken`] fired and is awaited before `solve` returns, and
//!   nothing is saved for failed or cancelled executions. Bad graphs (cycles, missing
//!   vertices, wrong output indices) are typed [`SolveError`]s found before anything runs.
//!
//! # Progress
//!
//! For every vertex the target reaches, `solve` sends one [`Event::Vertex`] up front (inputs
//! before their consumers), then exactly one of: `Started` … `Completed` when it runs (or
//! fails: `Completed` carries the error), or `Cached` when its result was loaded from the
//! store or was not needed because a consumer was cached (those last ones are sent when the
//! solve succeeds). [`ExecCtx`] gives a running op the sink and its vertex id for logs and
//! status.
//!
//! # Stores
//!
//! [`MemoryStore`] keeps everything in memory (tests). [`RedbKeyIndex`] keeps the index
//! (key → result → output values as text, through a [`ResultCodec`]) in tables named
//! `kiln.solver.v1.*` of a redb database shared with the rest of the engine.
//!
//! # Example
//!
//! ```
//! use kiln_progress::{Discard, ProgressSink};
//! use kiln_solver::{
//!     BoxError, BoxFuture, CacheKeyInput, CacheStore, Edge, ExecCtx, Graph, MemoryStore, Op,
//!     Solver, Vertex,
//! };
//! use std::sync::Arc;
//!
//! /// Appends its text to its inputs.
//! struct Append(&'static str);
//!
//! impl Op<String> for Append {
//!     fn cache_key(&self) -> CacheKeyInput {
//!         CacheKeyInput::new("append.v1", self.0.as_bytes())
//!     }
//!
//!     fn exec<'a>(
//!         &'a self,
//!         _ctx: &'a ExecCtx,
//!         inputs: Vec<String>,
//!     ) -> BoxFuture<'a, Result<Vec<String>, BoxError>> {
//!         Box::pin(async move { Ok(vec![inputs.concat() + self.0]) })
//!     }
//! }
//!
//! let mut graph: Graph<String> = Graph::new();
//! graph.add(Vertex::new("a", "a", Arc::new(Append("hello"))))?;
//! graph.add(Vertex::new("b", "b", Arc::new(Append(", world"))).input("a", 0))?;
//!
//! let store: Arc<dyn CacheStore<String>> = Arc::new(MemoryStore::new());
//! let solver = Solver::new(store);
//! let sink: Arc<dyn ProgressSink> = Arc::new(Discard);
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! let value = runtime.block_on(solver.solve(graph, Edge::new("b", 0), sink))?;
//! assert_eq!(value, "hello, world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Event::Vertex`]: kiln_progress::Event::Vertex

mod error;
mod graph;
mod key;
mod op;
mod redb_store;
mod solver;
mod store;

pub use error::{OpError, SolveError};
pub use graph::{Edge, Graph, Vertex};
pub use key::{CacheKey, CacheKeyInput, ContentDigest, InputKey, InvalidCacheKey, Selector};
pub use op::{BoxError, BoxFuture, CancelToken, ExecCtx, Op};
pub use redb_store::{IndexEntry, RedbKeyIndex, ResultCodec};
pub use solver::Solver;
pub use store::{CacheStore, MemoryStore, ResultRecord, StoreError};
