//! LLB, BuildKit's build graph, as plain Rust data: the intermediate form between kiln's
//! Dockerfile frontend, its solver and its daemon.
//!
//! The crate has four parts:
//!
//! * **Domain types** ([`ops`], [`definition`]): every message of BuildKit's `solver/pb/ops.proto`
//!   as a plain Rust type ([`Operation`] with its [`Op`] body, [`Definition`], [`OpMetadata`], ...)
//!   and a validated [`Digest`] (`kiln_oci`'s, re-exported).
//! * **Wire conversion** ([`wire`]): the one module that touches the generated protobuf types of
//!   `bollard-buildkit-proto`. It converts both ways and encodes ops with the exact bytes Go's
//!   deterministic protobuf marshalling produces, so a vertex digest (`sha256` of those bytes) is
//!   the one BuildKit computes for the same op. [`Graph`] decodes a definition into a checked DAG.
//! * **The builder** ([`builder`]): BuildKit's `llb.State` API ([`State::image`],
//!   [`State::run`], [`State::file`], [`State::merge`], ...) and [`State::marshal`], which lays out
//!   a [`Definition`] as BuildKit's `Marshal` does.
//! * **Dumps** ([`dump_json`], [`dump_dot`]) for `kiln debug dump-llb`.
//!
//! What it deliberately does not know: Dockerfiles, how ops are executed, registries (image
//! configs are resolved elsewhere and applied with [`State::with_image_config`]), sessions and
//! gRPC. Protobuf types never leave [`wire`], so the frontend and the solver depend on this
//! crate's types only, and a change of protobuf crate stays local.
//!
//! Unlike Go's `llb.State`, whose values are lazy closures evaluated with a context, a [`State`]
//! here is eager: settings are plain values behind an `Arc`, so reading the environment or the
//! working directory cannot fail. Marshalling is a pure function of the graph and the
//! [`MarshalOpts`]; there is no random id and no global state, so the same graph always
//! marshals to the same bytes.
//!
//! # Where kiln differs from BuildKit's Go client
//!
//! * Local sources without session: BuildKit adds a random `local.unique` attribute per
//!   marshal; kiln adds it only when [`LocalOpts::unique_id`] or [`MarshalOpts::local_unique_id`]
//!   gives one.
//! * The default platform is [`default_platform`] (the host, like Go's `platforms.DefaultSpec`);
//!   pass [`MarshalOpts::platform`] for reproducible digests across machines.
//! * Git sources over SSH: BuildKit runs `ssh-keyscan` when no known hosts are given; kiln
//!   never touches the network and leaves the attribute out.
//! * File ops get the capabilities their actions need (`file.copy.modestring`, ...); BuildKit's
//!   client computes them too late to record them. Capabilities never change a digest.
//! * Source-map ranges of a vertex reached twice are appended rather than replaced.
//! * No async image-config resolution: resolve the config elsewhere and apply it with
//!   [`State::with_image_config`]. No copy from another file-action chain (`FileAction.WithState`).

pub mod builder;
pub mod definition;
mod dump;
mod error;
pub mod graph;
pub mod ops;
pub mod wire;

pub use builder::{
    Chown, ChownUser, CopyInfo, CopyMode, DiffType, ExecState, FileActions, GitOpts, HttpOpts,
    ImageOpts, LocalOpts, MarshalOpts, MkdirOpts, MkfileOpts, MountKind, OciLayoutOpts,
    ResolveMode, RmOpts, RunMount, RunOpts, SourceLocation, SourceMap, State, SymlinkOpts,
    VertexOpts, default_platform,
};
pub use definition::{
    Definition, Location, OpMetadata, Position, ProgressGroup, Range, Source, SourceInfo,
};
pub use dump::{dump_dot, dump_json};
pub use error::Error;
pub use graph::{Graph, Vertex};
pub use kiln_oci::Platform;
pub use kiln_oci::{Digest, DigestError};
pub use ops::{Input, Op, Operation};
