//! A definition decoded and checked into a graph the solver can walk.

use std::collections::{BTreeMap, BTreeSet};

use kiln_oci::Digest;

use crate::definition::{Definition, OpMetadata};
use crate::error::Error;
use crate::ops::{EMPTY_INPUT, FileActionKind, Input, MountType, Op, Operation, UserOpt};

/// One vertex of a decoded graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vertex {
    /// The vertex digest (sha256 of its marshalled bytes, as received).
    pub digest: Digest,
    /// The decoded op; its body is always present.
    pub op: Operation,
    /// Its metadata, empty when the definition had none.
    pub metadata: OpMetadata,
}

impl Vertex {
    /// The op body (never the terminal pseudo-op).
    pub fn body(&self) -> Option<&Op> {
        self.op.op.as_ref()
    }

    /// How many outputs the vertex has.
    pub fn output_count(&self) -> usize {
        output_count(&self.op)
    }
}

/// A validated LLB graph: every input edge points at a vertex of the graph and at an output that
/// vertex has, every internal index is in range, and there is no cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// All vertices of the definition except the terminal pseudo-op.
    pub vertices: BTreeMap<Digest, Vertex>,
    /// The output the definition evaluates to.
    pub terminal: Input,
}

impl Graph {
    /// Decodes and validates `def`, the way BuildKit's solver loads a definition.
    ///
    /// The last op is the terminal pseudo-op, whose first input is the result; ops that the
    /// result does not reach are kept and validated too.
    pub fn from_definition(def: &Definition) -> Result<Graph, Error> {
        Graph::from_operations(&def.operations()?, &def.metadata)
    }

    /// Validates ops that are already decoded, each with the digest it is known by; the last one
    /// is the terminal pseudo-op.
    ///
    /// This is for callers that rename vertices (BuildKit's gateway normalizes the digests of
    /// definitions sent by frontends); [`Graph::from_definition`] computes the digests itself.
    pub fn from_operations(
        ops: &[(Digest, Operation)],
        metadata: &BTreeMap<Digest, OpMetadata>,
    ) -> Result<Graph, Error> {
        let Some(((terminal_digest, terminal_op), rest)) = ops.split_last() else {
            return Err(Error::EmptyDefinition);
        };
        if terminal_op.op.is_some() {
            return Err(Error::TerminalNotBare {
                digest: terminal_digest.clone(),
            });
        }
        let Some(terminal) = terminal_op.inputs.first().cloned() else {
            return Err(Error::TerminalWithoutInput {
                digest: terminal_digest.clone(),
            });
        };

        let mut vertices = BTreeMap::new();
        for (digest, op) in rest {
            if op.op.is_none() {
                return Err(Error::invalid(
                    format!("op {digest}"),
                    "only the last op of a definition may lack an op body",
                ));
            }
            check_internal_indexes(digest, op)?;
            vertices.insert(
                digest.clone(),
                Vertex {
                    digest: digest.clone(),
                    op: op.clone(),
                    metadata: metadata.get(digest).cloned().unwrap_or_default(),
                },
            );
        }
        for digest in metadata.keys() {
            if !vertices.contains_key(digest) && digest != terminal_digest {
                return Err(Error::UnknownMetadata {
                    digest: digest.clone(),
                });
            }
        }

        let check_edge = |op: &Digest, input: &Input| -> Result<(), Error> {
            let target = vertices
                .get(&input.digest)
                .ok_or_else(|| Error::UnknownInput {
                    op: op.clone(),
                    input: input.digest.clone(),
                })?;
            let outputs = target.output_count();
            if input.index < 0 || input.index as u64 >= outputs as u64 {
                return Err(Error::BadOutputIndex {
                    op: op.clone(),
                    input: input.digest.clone(),
                    index: input.index,
                    outputs,
                });
            }
            Ok(())
        };
        for v in vertices.values() {
            for input in &v.op.inputs {
                check_edge(&v.digest, input)?;
            }
        }
        check_edge(terminal_digest, &terminal)?;
        check_acyclic(&vertices)?;
        Ok(Graph { vertices, terminal })
    }

    /// The vertex the definition evaluates to.
    pub fn terminal_vertex(&self) -> Option<&Vertex> {
        self.vertices.get(&self.terminal.digest)
    }

    /// The vertices in dependency order (inputs before the ops that use them), ties broken by digest.
    pub fn topological_order(&self) -> Vec<&Vertex> {
        let mut done: BTreeSet<&Digest> = BTreeSet::new();
        let mut order = Vec::with_capacity(self.vertices.len());
        for start in self.vertices.keys() {
            if done.contains(start) {
                continue;
            }
            // Iterative post-order walk; validation guarantees there is no cycle.
            let mut stack: Vec<(&Digest, usize)> = vec![(start, 0)];
            while let Some((digest, next)) = stack.pop() {
                let Some(v) = self.vertices.get(digest) else {
                    continue;
                };
                if let Some(input) = v.op.inputs.get(next) {
                    stack.push((digest, next + 1));
                    if let Some((key, _)) = self.vertices.get_key_value(&input.digest)
                        && !done.contains(key)
                        && !stack.iter().any(|(d, _)| *d == key)
                    {
                        stack.push((key, 0));
                    }
                } else if done.insert(digest) {
                    order.push(v);
                }
            }
        }
        order
    }
}

/// How many outputs an op has: one per output-producing mount or file action, one otherwise.
pub(crate) fn output_count(op: &Operation) -> usize {
    match &op.op {
        // Secret and SSH mounts carry output 0 in BuildKit's encoding but produce nothing.
        Some(Op::Exec(e)) => e
            .mounts
            .iter()
            .filter(|m| m.output >= 0 && produces_output(m))
            .map(|m| m.output as u64 + 1)
            .max()
            .unwrap_or(0) as usize,
        Some(Op::File(f)) => f
            .actions
            .iter()
            .filter(|a| a.output >= 0)
            .map(|a| a.output as u64 + 1)
            .max()
            .unwrap_or(0) as usize,
        Some(_) => 1,
        None => 0,
    }
}

fn produces_output(m: &crate::ops::Mount) -> bool {
    matches!(m.mount_type, MountType::Bind)
}

fn check_internal_indexes(digest: &Digest, op: &Operation) -> Result<(), Error> {
    let n = op.inputs.len() as i64;
    let bad = |message: String| Error::BadIndex {
        op: digest.clone(),
        message,
    };
    let input_or_empty = |what: &str, i: i64| -> Result<(), Error> {
        if i == EMPTY_INPUT || (0..n).contains(&i) {
            Ok(())
        } else {
            Err(bad(format!(
                "{what} refers to input {i}, but the op has {n} inputs"
            )))
        }
    };
    match &op.op {
        Some(Op::Exec(e)) => {
            let mut outputs = BTreeSet::new();
            for m in &e.mounts {
                input_or_empty(&format!("mount {:?}", m.dest), m.input)?;
                if m.output < -1 {
                    return Err(bad(format!(
                        "mount {:?} has output index {}",
                        m.dest, m.output
                    )));
                }
                if m.output >= 0 && produces_output(m) && !outputs.insert(m.output) {
                    return Err(bad(format!(
                        "output index {} is used by two mounts",
                        m.output
                    )));
                }
            }
        }
        Some(Op::File(f)) => {
            for (i, a) in f.actions.iter().enumerate() {
                // An action may use the op's inputs or the output of an earlier action.
                let limit = n + i as i64;
                for (what, idx) in [("input", a.input), ("secondary input", a.secondary_input)] {
                    if idx != EMPTY_INPUT && !(0..limit).contains(&idx) {
                        return Err(bad(format!(
                            "file action {i} has {what} {idx}, but only inputs 0..{n} and earlier actions exist"
                        )));
                    }
                }
                if a.output < -1 {
                    return Err(bad(format!(
                        "file action {i} has output index {}",
                        a.output
                    )));
                }
                let owner = match &a.action {
                    FileActionKind::Copy(c) => c.owner.as_ref(),
                    FileActionKind::Mkfile(m) => m.owner.as_ref(),
                    FileActionKind::Mkdir(m) => m.owner.as_ref(),
                    FileActionKind::Symlink(s) => s.owner.as_ref(),
                    FileActionKind::Rm(_) => None,
                };
                if let Some(owner) = owner {
                    for u in [&owner.user, &owner.group].into_iter().flatten() {
                        if let UserOpt::ByName { input, .. } = u
                            && *input != EMPTY_INPUT
                            && !(0..limit).contains(input)
                        {
                            return Err(bad(format!(
                                "file action {i} resolves an owner name against input {input}"
                            )));
                        }
                    }
                }
            }
        }
        Some(Op::Merge(m)) => {
            if m.inputs.is_empty() {
                return Err(bad("merge has no input".to_string()));
            }
            for i in &m.inputs {
                if !(0..n).contains(i) {
                    return Err(bad(format!(
                        "merge refers to input {i}, but the op has {n} inputs"
                    )));
                }
            }
        }
        Some(Op::Diff(d)) => {
            for (what, side) in [("lower", d.lower), ("upper", d.upper)] {
                if let Some(i) = side {
                    input_or_empty(&format!("diff {what}"), i)?;
                }
            }
        }
        Some(Op::Build(b)) => {
            input_or_empty("build builder", b.builder)?;
            for (name, i) in &b.inputs {
                input_or_empty(&format!("build input {name:?}"), *i)?;
            }
        }
        Some(Op::Source(_)) | None => {}
    }
    Ok(())
}

fn check_acyclic(vertices: &BTreeMap<Digest, Vertex>) -> Result<(), Error> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    let mut marks: BTreeMap<&Digest, Mark> = BTreeMap::new();
    for start in vertices.keys() {
        if marks.contains_key(start) {
            continue;
        }
        // Iterative depth-first search: (vertex, next input to look at).
        let mut stack: Vec<(&Digest, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Active);
        while let Some((digest, next)) = stack.pop() {
            let inputs = vertices
                .get(digest)
                .map(|v| v.op.inputs.as_slice())
                .unwrap_or(&[]);
            if let Some(input) = inputs.get(next) {
                stack.push((digest, next + 1));
                match marks.get(&input.digest) {
                    Some(Mark::Active) => {
                        return Err(Error::Cycle {
                            digest: input.digest.clone(),
                        });
                    }
                    Some(Mark::Done) => {}
                    None => {
                        if let Some((key, _)) = vertices.get_key_value(&input.digest) {
                            marks.insert(key, Mark::Active);
                            stack.push((key, 0));
                        }
                    }
                }
            } else {
                marks.insert(digest, Mark::Done);
            }
        }
    }
    Ok(())
}
