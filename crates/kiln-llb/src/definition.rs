//! A marshalled graph as it travels between client, frontend and daemon (`pb.Definition`),
//! with the per-vertex metadata that never takes part in a digest.

use std::collections::BTreeMap;

use kiln_oci::Digest;

use crate::error::Error;
use crate::ops::Operation;

/// `pb.Definition`: the marshalled ops of a graph, in dependency order, the last one being the
/// terminal pseudo-op that points at the result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Definition {
    /// The marshalled ops; each one's digest is the sha256 of its bytes.
    pub def: Vec<Vec<u8>>,
    /// Per-vertex metadata, keyed by op digest.
    pub metadata: BTreeMap<Digest, OpMetadata>,
    /// Source locations (which Dockerfile lines produced which vertex).
    pub source: Option<Source>,
}

impl Definition {
    /// The digests of the ops, in order.
    pub fn digests(&self) -> Vec<Digest> {
        self.def.iter().map(|dt| Digest::of_bytes(dt)).collect()
    }

    /// Decodes every op of the definition, without checking the graph.
    pub fn operations(&self) -> Result<Vec<(Digest, Operation)>, Error> {
        self.def
            .iter()
            .enumerate()
            .map(|(i, dt)| {
                let op = crate::wire::decode_op(dt).map_err(|e| match e {
                    Error::Decode { message, .. } => Error::Decode {
                        what: format!("op {i} of the definition"),
                        message,
                    },
                    other => other,
                })?;
                Ok((Digest::of_bytes(dt), op))
            })
            .collect()
    }

    /// The input the terminal op points at (BuildKit's `Definition.Head`), `None` for an empty
    /// definition or a terminal op without input.
    pub fn head(&self) -> Result<Option<crate::ops::Input>, Error> {
        let Some(last) = self.def.last() else {
            return Ok(None);
        };
        let op = crate::wire::decode_op(last)?;
        Ok(op.inputs.into_iter().next())
    }
}

/// `pb.OpMetadata`: what BuildKit records about a vertex outside its digest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpMetadata {
    /// Do not use the cache for this vertex.
    pub ignore_cache: bool,
    /// Free-form description; `llb.customname` is the name progress output shows.
    pub description: BTreeMap<String, String>,
    /// Force (`Some(true)`) or forbid (`Some(false)`) exporting this vertex's cache.
    pub export_cache: Option<bool>,
    /// The LLB capabilities the vertex needs (`source.image`, `exec.mount.bind`, ...).
    pub caps: BTreeMap<String, bool>,
    /// The progress group the vertex is shown in.
    pub progress_group: Option<ProgressGroup>,
}

impl OpMetadata {
    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        *self == OpMetadata::default()
    }

    /// Merges `other` into `self` the way BuildKit's `mergeMetadata` does: flags are or-ed,
    /// descriptions and caps are unioned, and set options replace.
    pub fn merge(&mut self, other: &OpMetadata) {
        if other.ignore_cache {
            self.ignore_cache = true;
        }
        for (k, v) in &other.description {
            self.description.insert(k.clone(), v.clone());
        }
        if other.export_cache.is_some() {
            self.export_cache = other.export_cache;
        }
        for k in other.caps.keys() {
            self.caps.insert(k.clone(), true);
        }
        if other.progress_group.is_some() {
            self.progress_group.clone_from(&other.progress_group);
        }
    }
}

/// `pb.ProgressGroup`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgressGroup {
    /// The group id.
    pub id: String,
    /// The name shown for the group.
    pub name: String,
    /// Whether the group only applies while vertices are running together.
    pub weak: bool,
}

/// `pb.Source`: the source files of a definition and which of their ranges each vertex came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    /// Per op digest, the locations it came from.
    pub locations: BTreeMap<Digest, Vec<Location>>,
    /// The source files, referred to by index from [`Location::source_index`].
    pub infos: Vec<SourceInfo>,
}

/// `pb.SourceInfo`: one source file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceInfo {
    /// The file name (`Dockerfile`).
    pub filename: String,
    /// The file content.
    pub data: Vec<u8>,
    /// How to fetch the file, as LLB.
    pub definition: Option<Definition>,
    /// The language (`Dockerfile`), empty when unknown.
    pub language: String,
}

/// `pb.Location`: ranges in one source file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// Index into [`Source::infos`].
    pub source_index: i32,
    /// The ranges.
    pub ranges: Vec<Range>,
}

/// `pb.Range`: an area of a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    /// Where it starts.
    pub start: Position,
    /// Where it ends.
    pub end: Position,
}

impl Range {
    /// The range of whole lines `start..=end` (1-based, character 0), as the Dockerfile frontend
    /// records instruction locations.
    pub fn lines(start: i32, end: i32) -> Range {
        Range {
            start: Position {
                line: start,
                character: 0,
            },
            end: Position {
                line: end,
                character: 0,
            },
        }
    }
}

/// `pb.Position`: a point in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// The line (1-based in BuildKit's Dockerfile frontend).
    pub line: i32,
    /// The character in the line.
    pub character: i32,
}
