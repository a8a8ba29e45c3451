//! What an op produces: a committed snapshot, or nothing (scratch).

use std::sync::Arc;

use kiln_snapshot::{Kind, Snapshotter};
use kiln_solver::ResultCodec;

/// The result of an op: a committed snapshot, or the empty filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ref {
    /// The empty filesystem.
    Scratch,
    /// A committed snapshot, by name.
    Snapshot(Arc<str>),
}

impl Ref {
    /// The snapshot name, if any.
    pub fn snapshot(&self) -> Option<&str> {
        match self {
            Ref::Scratch => None,
            Ref::Snapshot(s) => Some(s),
        }
    }
}

/// Stores refs in the cache index as text, and drops the ones whose snapshot is gone.
pub(crate) struct RefCodec {
    pub snapshots: Arc<Snapshotter>,
}

impl ResultCodec<Ref> for RefCodec {
    fn encode(&self, value: &Ref) -> String {
        match value {
            Ref::Scratch => "scratch".to_string(),
            Ref::Snapshot(name) => format!("snapshot:{name}"),
        }
    }

    fn decode(&self, text: &str) -> Option<Ref> {
        if text == "scratch" {
            return Some(Ref::Scratch);
        }
        let name = text.strip_prefix("snapshot:")?;
        match self.snapshots.stat(name) {
            Ok(info) if info.kind == Kind::Committed => Some(Ref::Snapshot(name.into())),
            _ => None,
        }
    }
}
