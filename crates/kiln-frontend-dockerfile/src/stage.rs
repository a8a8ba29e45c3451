//! The per-stage conversion state (BuildKit's `dispatchState`).

use std::collections::BTreeSet;

use kiln_dockerfile::linter::checks::UsedOnce;
use kiln_dockerfile::{Command, Stage};
use kiln_llb::State;
use kiln_oci::{Image, Platform};

use crate::options::NamedContext;

/// One command of a stage, with the stages it reads from.
#[derive(Debug, Clone)]
pub(crate) struct StageCommand {
    /// The instruction.
    pub command: Command,
    /// For `COPY --from`: the source stage. For `RUN`: the stage of each `--mount` value, in
    /// the order of `mount_specs` (the scratch sentinel when the mount has no `from`).
    pub sources: Vec<usize>,
    /// Whether the command is an `ONBUILD` trigger inherited from the base.
    pub on_build: bool,
}

/// The state of one stage while the Dockerfile is converted.
///
/// Stages come from the Dockerfile (`FROM ... AS name`), or are "unregistered": images and
/// named contexts that `COPY --from` and `RUN --mount=from=` refer to, which get a state so
/// that they resolve the same way as a `FROM`.
#[derive(Clone, Default)]
pub(crate) struct StageState {
    /// The parsed stage (for unregistered states: a stage with only `base_name` set).
    pub stage: Stage,
    /// The base, expanded: an image reference, a stage name or `scratch`; pinned to a digest
    /// once the image is resolved.
    pub base_name: String,
    /// The base as expanded, before normalization (for messages).
    pub orig_base_name: String,
    /// The lower-case stage name, when the stage has one.
    pub name: Option<String>,
    /// The name shown in progress names (`build`, `stage-1`, or empty for single-stage builds).
    pub stage_name: String,
    /// The stage's platform, once known.
    pub platform: Option<Platform>,
    /// Whether `FROM --platform` was given.
    pub explicit_platform: bool,
    /// The parent stage when the stage is `FROM <another stage>`.
    pub base: Option<usize>,
    /// The stages the commands read from (`COPY --from`, `RUN --mount=from=`).
    pub deps: BTreeSet<usize>,
    /// The commands, with their sources.
    pub commands: Vec<StageCommand>,
    /// The filesystem and run settings so far.
    pub state: State,
    /// The image config so far.
    pub image: Image,
    /// Whether the base is an image (or a named context) rather than a stage or scratch.
    pub has_image_base: bool,
    /// The declared `ARG`s (inherited ones first), with their values.
    pub build_args: Vec<(String, Option<String>)>,
    /// Paths this stage reads from the main build context.
    pub ctx_paths: BTreeSet<String>,
    /// Paths other stages read from this one (for the follow paths of local named contexts);
    /// `/` when all of it is used.
    pub paths: BTreeSet<String>,
    /// Progress numbering: the index of the last numbered command and the total.
    pub cmd_index: usize,
    /// The number of numbered commands (`FROM <image>`, `ADD`, `COPY`, `RUN`, `WORKDIR`).
    pub cmd_total: usize,
    /// Whether the command being dispatched is an `ONBUILD` trigger (its progress name then
    /// reads `[i/n] ONBUILD ...`).
    pub cmd_is_on_build: bool,
    /// Whether the stage ignores the cache (`--no-cache`, `--no-cache-filter`).
    pub ignore_cache: bool,
    /// Whether a `WORKDIR` was set in the stage or its parents.
    pub workdir_set: bool,
    /// Whether the stage is converted already.
    pub dispatched: bool,
    /// Whether the base was resolved.
    pub resolved: bool,
    /// Whether the stage's base stage was applied (`init`).
    pub initialized: bool,
    /// Whether this is an unregistered state (an image or named context used by `--from`).
    pub unregistered: bool,
    /// The named context that replaces this stage or its base, if any.
    pub named_context: Option<NamedContext>,
    /// The `CMD`/`ENTRYPOINT`/`HEALTHCHECK` trackers of `MultipleInstructionsDisallowed`.
    pub used_once: UsedOnce,
    /// Whether a `CMD` was set in this stage (an `ENTRYPOINT` then keeps it).
    pub cmd_set: bool,
}

/// Docker's `NormalizeWorkdir`: a relative path is joined onto the current directory; the
/// result is clean and absolute.
pub(crate) fn normalize_workdir(current: &str, requested: &str) -> String {
    let joined = if requested.starts_with('/') {
        requested.to_string()
    } else {
        format!("/{current}/{requested}")
    };
    kiln_gostd::path::clean(&joined)
}
