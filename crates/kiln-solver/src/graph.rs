//! The build graph: vertices, their inputs, and the checks a graph must pass before it runs.

use crate::error::SolveError;
use crate::op::Op;
use kiln_progress::VertexId;
use std::collections::HashMap;
use std::sync::Arc;

/// A reference to one output of a vertex: an input of another vertex, or a solve target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Edge {
    /// The vertex.
    pub vertex: VertexId,
    /// The index of its output (from 0).
    pub output: usize,
}

impl Edge {
    /// Output `output` of vertex `vertex`.
    pub fn new(vertex: impl Into<VertexId>, output: usize) -> Edge {
        Edge {
            vertex: vertex.into(),
            output,
        }
    }
}

/// A vertex of the build graph.
pub struct Vertex<V> {
    /// Its stable id (for LLB, the op's digest). Vertices with the same id are the same
    /// vertex.
    pub id: VertexId,
    /// Its display name (`[build 2/5] RUN make`).
    pub name: String,
    /// Its inputs, in the order the op receives them.
    pub inputs: Vec<Edge>,
    /// How many outputs the op produces (usually 1).
    pub outputs: usize,
    /// Whether to skip the cache lookup for this vertex (it always runs; its result is still
    /// saved, so later builds can use it).
    pub ignore_cache: bool,
    /// The operation.
    pub op: Arc<dyn Op<V>>,
}

impl<V> Clone for Vertex<V> {
    fn clone(&self) -> Vertex<V> {
        Vertex {
            id: self.id.clone(),
            name: self.name.clone(),
            inputs: self.inputs.clone(),
            outputs: self.outputs,
            ignore_cache: self.ignore_cache,
            op: Arc::clone(&self.op),
        }
    }
}

impl<V> std::fmt::Debug for Vertex<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vertex")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("ignore_cache", &self.ignore_cache)
            .finish_non_exhaustive()
    }
}

impl<V> Vertex<V> {
    /// A vertex with no inputs, one output, and the cache enabled.
    pub fn new(id: impl Into<VertexId>, name: impl Into<String>, op: Arc<dyn Op<V>>) -> Vertex<V> {
        Vertex {
            id: id.into(),
            name: name.into(),
            inputs: Vec::new(),
            outputs: 1,
            ignore_cache: false,
            op,
        }
    }

    /// Adds an input: output `output` of vertex `vertex`.
    pub fn input(mut self, vertex: impl Into<VertexId>, output: usize) -> Vertex<V> {
        self.inputs.push(Edge::new(vertex, output));
        self
    }

    /// Sets the number of outputs.
    pub fn outputs(mut self, outputs: usize) -> Vertex<V> {
        self.outputs = outputs;
        self
    }

    /// Sets whether the cache lookup is skipped.
    pub fn ignore_cache(mut self, ignore: bool) -> Vertex<V> {
        self.ignore_cache = ignore;
        self
    }
}

/// A build graph: vertices by id.
pub struct Graph<V> {
    vertices: HashMap<VertexId, Vertex<V>>,
}

impl<V> Default for Graph<V> {
    fn default() -> Graph<V> {
        Graph {
            vertices: HashMap::new(),
        }
    }
}

impl<V> Clone for Graph<V> {
    fn clone(&self) -> Graph<V> {
        Graph {
            vertices: self.vertices.clone(),
        }
    }
}

impl<V> std::fmt::Debug for Graph<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("vertices", &self.vertices)
            .finish()
    }
}

impl<V> Graph<V> {
    /// An empty graph.
    pub fn new() -> Graph<V> {
        Graph::default()
    }

    /// Adds a vertex. Its inputs need not be in the graph yet; they are checked when the
    /// graph is solved.
    pub fn add(&mut self, vertex: Vertex<V>) -> Result<(), SolveError> {
        if self.vertices.contains_key(&vertex.id) {
            return Err(SolveError::DuplicateVertex { id: vertex.id });
        }
        self.vertices.insert(vertex.id.clone(), vertex);
        Ok(())
    }

    /// The vertex with this id.
    pub fn get(&self, id: &str) -> Option<&Vertex<V>> {
        self.vertices.get(id)
    }

    /// The number of vertices.
    pub fn len(&self) -> usize {
        self.vertices.len()
    }

    /// Whether the graph has no vertex.
    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
    }

    /// The vertices reachable from `target`, inputs before the vertices that use them, after
    /// checking that the target exists, every input exists and names an existing output, and
    /// that there is no cycle. Vertices that the target does not reach are not checked.
    pub fn reachable(&self, target: &Edge) -> Result<Vec<VertexId>, SolveError> {
        let Some(root) = self.vertices.get(&target.vertex) else {
            return Err(SolveError::MissingTarget {
                id: target.vertex.clone(),
            });
        };
        if target.output >= root.outputs {
            return Err(SolveError::BadTargetOutput {
                id: target.vertex.clone(),
                output: target.output,
                outputs: root.outputs,
            });
        }

        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        let mut marks: HashMap<&str, Mark> = HashMap::new();
        let mut order = Vec::new();
        // An explicit stack of (vertex, next input to visit): no recursion, so a deep graph
        // cannot overflow the stack.
        let mut stack: Vec<(&Vertex<V>, usize)> = vec![(root, 0)];
        marks.insert(root.id.as_str(), Mark::Visiting);
        while let Some((vertex, next)) = stack.pop() {
            let Some(edge) = vertex.inputs.get(next) else {
                marks.insert(vertex.id.as_str(), Mark::Done);
                order.push(vertex.id.clone());
                continue;
            };
            stack.push((vertex, next + 1));
            let Some(input) = self.vertices.get(&edge.vertex) else {
                return Err(SolveError::MissingInput {
                    vertex: vertex.id.clone(),
                    input: next,
                    missing: edge.vertex.clone(),
                });
            };
            if edge.output >= input.outputs {
                return Err(SolveError::BadOutputIndex {
                    vertex: vertex.id.clone(),
                    input: next,
                    from: edge.vertex.clone(),
                    output: edge.output,
                    outputs: input.outputs,
                });
            }
            match marks.get(input.id.as_str()) {
                Some(Mark::Done) => {}
                Some(Mark::Visiting) => {
                    return Err(SolveError::Cycle {
                        vertex: input.id.clone(),
                    });
                }
                None => {
                    marks.insert(input.id.as_str(), Mark::Visiting);
                    stack.push((input, 0));
                }
            }
        }
        Ok(order)
    }
}
