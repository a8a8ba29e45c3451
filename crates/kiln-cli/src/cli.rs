//! clap definitions of kiln's commands and flags.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// kiln: a container image builder with the commands and flags of docker buildx.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// kiln's top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a build.
    #[command(alias = "b")]
    Build(Box<BuildArgs>),
    /// Tools for looking inside kiln: parse trees and LLB graphs.
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Disk usage of the build cache.
    Du(DuArgs),
    /// Remove build cache.
    Prune(PruneArgs),
    /// List the images of kiln's image store (`-o type=image`, or `-t` without an output).
    Images(ImagesArgs),
    /// Show kiln's version.
    Version,
}

/// Arguments of `kiln du` (the flags of `docker buildx du`).
#[derive(Debug, Args)]
pub struct DuArgs {
    /// Provide filter values (`type=regular`, `id=ID`, `until=24h`, ...).
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Provide a more verbose output.
    #[arg(long)]
    pub verbose: bool,
    /// The directory holding kiln's state (default: `/var/lib/kiln` for root).
    #[arg(long = "root", env = "KILN_ROOT", hide = true)]
    pub root: Option<PathBuf>,
}

/// Arguments of `kiln images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show the names.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show full digests.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// The directory holding kiln's state (default: `/var/lib/kiln` for root).
    #[arg(long = "root", env = "KILN_ROOT", hide = true)]
    pub root: Option<PathBuf>,
}

/// Arguments of `kiln prune` (the flags of `docker buildx prune`).
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Include internal/frontend images.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values (`until=24h`, `type=exec.cachemount`, ...).
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Amount of disk space always allowed to keep for cache.
    #[arg(long = "reserved-space", value_name = "BYTES")]
    pub reserved_space: Option<String>,
    /// Maximum amount of disk space allowed to keep for cache.
    #[arg(long = "max-used-space", value_name = "BYTES")]
    pub max_used_space: Option<String>,
    /// Target amount of free disk space after pruning.
    #[arg(long = "min-free-space", value_name = "BYTES")]
    pub min_free_space: Option<String>,
    /// Amount of disk space to keep for cache (deprecated: use `--reserved-space`).
    #[arg(long = "keep-storage", value_name = "BYTES")]
    pub keep_storage: Option<String>,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide a more verbose output.
    #[arg(long)]
    pub verbose: bool,
    /// The directory holding kiln's state (default: `/var/lib/kiln` for root).
    #[arg(long = "root", env = "KILN_ROOT", hide = true)]
    pub root: Option<PathBuf>,
}

/// `kiln debug ...`.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print the parse tree of a Dockerfile, one line per instruction.
    ParseDockerfile(ParseDockerfileArgs),
    /// Print the LLB graph a Dockerfile compiles to, one JSON op per line.
    DumpLlb(DumpLlbArgs),
}

/// Arguments of `kiln debug parse-dockerfile`.
#[derive(Debug, Args)]
pub struct ParseDockerfileArgs {
    /// The Dockerfile to parse (`-` for stdin).
    #[arg(default_value = "Dockerfile")]
    pub file: PathBuf,
}

/// Arguments of `kiln debug dump-llb`.
#[derive(Debug, Args)]
pub struct DumpLlbArgs {
    /// The Dockerfile and how to convert it.
    #[command(flatten)]
    pub definition: DefinitionArgs,
    /// Set the target platform for the build.
    #[arg(long)]
    pub platform: Option<String>,
    /// Print the image config the Dockerfile produces instead of the graph.
    #[arg(long = "image-config")]
    pub image_config: bool,
    /// The build context directory.
    pub context: PathBuf,
}

/// Arguments of `kiln build` (the flags of `docker buildx build`).
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The Dockerfile and how to convert it.
    #[command(flatten)]
    pub definition: DefinitionArgs,
    /// Name and optionally a tag (format: `name:tag`).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Set target platform for build.
    #[arg(long)]
    pub platform: Vec<String>,
    /// Always attempt to pull all referenced images.
    #[arg(long)]
    pub pull: bool,
    /// Set type of progress output (`auto`, `plain`, `tty`, `rawjson`, `quiet`).
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Suppress the build output and print the result on success.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write the image ID to a file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Write build result metadata to a file.
    #[arg(long = "metadata-file")]
    pub metadata_file: Option<PathBuf>,
    /// Output destination (format: `type=local,dest=path`).
    #[arg(short = 'o', long = "output")]
    pub outputs: Vec<String>,
    /// Add annotation to the image (format: `[TYPE[,TYPE...][\[PLATFORM\]]:]KEY=VALUE`).
    #[arg(long = "annotation", value_name = "ANNOTATION")]
    pub annotations: Vec<String>,
    /// Shorthand for `--output=type=registry`.
    #[arg(long)]
    pub push: bool,
    /// Shorthand for `--output=type=docker`: the image goes into the Docker engine.
    #[arg(long)]
    pub load: bool,
    /// Add a custom host-to-IP mapping (format: `host:ip`).
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,
    /// Allow extra privileged entitlement (e.g., `network.host`, `security.insecure`).
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,
    /// Secret to expose to the build (format: `id=mysecret[,src=/local/secret]`).
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Shared memory size for build containers (`/dev/shm`).
    #[arg(long = "shm-size", value_name = "BYTES")]
    pub shm_size: Option<String>,
    /// SSH agent socket or keys to expose to the build (format:
    /// `default|<id>[=<socket>|<key>[,<key>]]`).
    #[arg(long = "ssh")]
    pub ssh: Vec<String>,
    /// Ulimit options (format: `name=soft[:hard]`).
    #[arg(long = "ulimit", value_name = "ULIMIT")]
    pub ulimits: Vec<String>,
    /// The directory holding kiln's state (default: `/var/lib/kiln` for root).
    #[arg(long = "root", env = "KILN_ROOT", hide = true)]
    pub root: Option<PathBuf>,
    /// The build context: a directory, a git URL, an HTTP(S) URL of a tarball or a Dockerfile,
    /// or `-` to read a tarball or a Dockerfile (with no context) from stdin.
    pub context: PathBuf,
}

/// The flags that say which Dockerfile to convert and how, shared by `build` and
/// `debug dump-llb` (the names and meanings of `docker buildx build`).
#[derive(Debug, Args)]
pub struct DefinitionArgs {
    /// Name of the Dockerfile (default: `PATH/Dockerfile`; `-` reads it from stdin).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Set build-time variables (`KEY=VALUE`, or `KEY` to take the value from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Additional build contexts (`NAME=PATH|docker-image://REF|oci-layout://PATH[:TAG|@DIGEST]|git URL`).
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// Set metadata for an image (`KEY=VALUE`).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Do not cache specified stages.
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// Do not use cache when building the image.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
}
