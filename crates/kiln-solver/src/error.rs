//! The errors of a solve.

use crate::store::StoreError;
use kiln_progress::VertexId;
use std::sync::Arc;

/// The error of an op, shared (a failed vertex's error reaches every build waiting for it).
pub type OpError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a graph could not be solved.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SolveError {
    /// Two vertices with the same id were added to a graph.
    #[error("vertex {id} is already in the graph")]
    DuplicateVertex {
        /// The id.
        id: VertexId,
    },
    /// The target vertex is not in the graph.
    #[error("target vertex {id} is not in the graph")]
    MissingTarget {
        /// The target's id.
        id: VertexId,
    },
    /// The target names an output its vertex does not have.
    #[error("target vertex {id} has {outputs} outputs, not output {output}")]
    BadTargetOutput {
        /// The target's id.
        id: VertexId,
        /// The output asked for.
        output: usize,
        /// How many outputs the vertex has.
        outputs: usize,
    },
    /// An input of a vertex is not in the graph.
    #[error("input {input} of vertex {vertex} is vertex {missing}, which is not in the graph")]
    MissingInput {
        /// The vertex whose input is missing.
        vertex: VertexId,
        /// The index of the input.
        input: usize,
        /// The id of the missing vertex.
        missing: VertexId,
    },
    /// An input of a vertex names an output the input vertex does not have.
    #[error(
        "input {input} of vertex {vertex} is output {output} of vertex {from}, which has {outputs} outputs"
    )]
    BadOutputIndex {
        /// The vertex whose input is wrong.
        vertex: VertexId,
        /// The index of the input.
        input: usize,
        /// The input vertex.
        from: VertexId,
        /// The output asked for.
        output: usize,
        /// How many outputs the input vertex has.
        outputs: usize,
    },
    /// The graph has a cycle.
    #[error("the build graph has a cycle through vertex {vertex}")]
    Cycle {
        /// A vertex on the cycle.
        vertex: VertexId,
    },
    /// An op declared content keys for more inputs than its vertex has.
    #[error("vertex {vertex} declares content keys for {declared} inputs but has {inputs}")]
    BadContentKeys {
        /// The vertex.
        vertex: VertexId,
        /// How many content keys the op returned.
        declared: usize,
        /// How many inputs the vertex has.
        inputs: usize,
    },
    /// Computing the content digest of an input failed.
    #[error("computing the content key of input {input} of {name} failed")]
    ContentDigest {
        /// The vertex whose input was being digested.
        vertex: VertexId,
        /// Its display name.
        name: String,
        /// The index of the input.
        input: usize,
        /// The op's error.
        #[source]
        source: OpError,
    },
    /// An op failed.
    #[error("{name} failed")]
    Exec {
        /// The vertex that failed.
        vertex: VertexId,
        /// Its display name.
        name: String,
        /// The op's error.
        #[source]
        source: OpError,
    },
    /// An op returned the wrong number of outputs.
    #[error("{name} returned {got} outputs instead of {expected}")]
    WrongOutputCount {
        /// The vertex.
        vertex: VertexId,
        /// Its display name.
        name: String,
        /// How many outputs the vertex declares.
        expected: usize,
        /// How many the op returned.
        got: usize,
    },
    /// An op panicked.
    #[error("{name} panicked")]
    Panicked {
        /// The vertex.
        vertex: VertexId,
        /// Its display name.
        name: String,
    },
    /// The cache store failed while looking up, loading or saving a vertex's result.
    #[error("the build cache failed for {name}")]
    Store {
        /// The vertex.
        vertex: VertexId,
        /// Its display name.
        name: String,
        /// The store's error.
        #[source]
        source: Arc<StoreError>,
    },
    /// The build was cancelled (another vertex failed, or the solve was dropped).
    #[error("the build was cancelled")]
    Cancelled,
    /// `solve` was called outside a tokio runtime.
    #[error("the solver must run inside a tokio runtime")]
    NoRuntime,
}

/// An error and its sources, joined with `": "`, for progress events.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
