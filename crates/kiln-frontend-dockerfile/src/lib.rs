//! The Dockerfile frontend: a Dockerfile and build options in, an LLB graph and an OCI image
//! config out (BuildKit's `dockerfile2llb`).
//!
//! [`convert`] parses the Dockerfile (`kiln-dockerfile-parser`), turns it into typed stages
//! (`kiln-dockerfile`), expands variables (`kiln-shell`) with the global and per-stage
//! arguments, resolves base images through an [`ImageResolver`], and emits LLB through the
//! builder of `kiln-llb`: one image source per base image, one exec op per `RUN`, file ops for
//! `COPY`, `ADD` and `WORKDIR`, merge ops for `COPY --link`. Alongside, it builds the image
//! config the way BuildKit does, inherited from the base image, with one history entry per
//! instruction, and runs the build checks that need expanded values (`UndefinedVar`,
//! `WorkdirRelativePath`, ...).
//!
//! What it deliberately does not know: how LLB is executed, storage, registries and sessions.
//! Images are resolved through the [`ImageResolver`] trait (the engine implements it with a
//! registry client; tests use a fake); the build context is an LLB `local` source named
//! `context` that the solver fetches from the client. The frontend is a pure function of its
//! inputs, so the same Dockerfile and options always give the same graph and the same digests.
//!
//! Why: BuildKit's LLB is the contract between frontends and the solver. Producing exactly the
//! LLB BuildKit's own frontend produces (same ops, same digests) lets kiln's solver, BuildKit's
//! solver and BuildKit's cache treat kiln's graphs as their own.
//!
//! `docs/dev/dockerfile2llb.md` in the repository describes the behaviour reproduced here, in
//! detail.

mod args;
mod convert;
mod copy;
mod dispatch;
mod error;
mod names;
mod options;
mod resolver;
mod run;
mod stage;

pub use convert::{BaseImage, Converted, convert};
pub use error::ConvertError;
pub use options::{ConvertOptions, NamedContext, NoCache, is_git_url};
pub use resolver::{ImageResolver, ResolveError, ResolvedImage, Unresolved};
