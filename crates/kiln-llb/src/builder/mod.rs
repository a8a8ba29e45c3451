//! The graph builder, BuildKit's `client/llb` in Rust: immutable [`State`]s, their vertices,
//! and [`State::marshal`].

mod exec;
mod file;
mod gitutil;
mod marshal;
pub mod paths;
mod reference;
mod source;
mod state;

pub use exec::{ExecState, MountKind, RunMount, RunOpts};
pub use file::{
    Chown, ChownUser, CopyInfo, CopyMode, FileActions, MkdirOpts, MkfileOpts, RmOpts, SymlinkOpts,
};
pub use marshal::{MarshalOpts, default_platform};
pub use source::{
    DiffType, GitOpts, HttpOpts, ImageOpts, LocalOpts, OciLayoutOpts, ResolveMode, attr, caps,
};
pub use state::{SourceLocation, SourceMap, State, VertexOpts};
