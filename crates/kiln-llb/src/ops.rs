//! The LLB op types as plain Rust data, mirroring `solver/pb/ops.proto` field by field.
//!
//! Indexes keep the protobuf's signed form (`-1` for "none") so that a decoded op converts back
//! to exactly the message it came from; [`crate::Graph`] validates every index.

use std::collections::BTreeMap;

use kiln_oci::{Digest, Platform};

/// The index meaning "no input" (a scratch mount, a file action without base).
pub const EMPTY_INPUT: i64 = -1;
/// The output index meaning "this mount or action produces no output".
pub const SKIP_OUTPUT: i64 = -1;
/// The mount point of an exec's root filesystem.
pub const ROOT_MOUNT: &str = "/";

/// One vertex of the graph as it travels on the wire: an op body plus its input edges,
/// platform and worker constraints (`pb.Op`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Operation {
    /// The input edges, referred to by index from inside the op body.
    pub inputs: Vec<Input>,
    /// The op body; `None` only for the terminal pseudo-op that points at the final output.
    pub op: Option<Op>,
    /// The platform the op is meant for; BuildKit leaves it out for platform-neutral ops.
    pub platform: Option<Platform>,
    /// Worker constraints (containerd-style filters); BuildKit always sends the message.
    pub constraints: Option<WorkerConstraints>,
}

/// An edge: one output of another op (`pb.Input`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Input {
    /// The digest of the marshalled input op.
    pub digest: Digest,
    /// Which output of that op.
    pub index: i64,
}

/// Worker constraints of an op (`pb.WorkerConstraints`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkerConstraints {
    /// Containerd-style filters a worker must satisfy.
    pub filter: Vec<String>,
}

/// The body of an op (the `op` oneof of `pb.Op`).
// The variants mirror the protobuf messages; boxing the large exec would only cost clarity.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Run a command in a container.
    Exec(ExecOp),
    /// Bring in content: an image, a local directory, a git repository, a URL.
    Source(SourceOp),
    /// Copy, create and remove files.
    File(FileOp),
    /// Nested build (experimental in BuildKit).
    Build(BuildOp),
    /// Stack inputs on top of each other.
    Merge(MergeOp),
    /// The changes that turn one input into another.
    Diff(DiffOp),
}

impl Op {
    /// The lower-case kind name (`exec`, `source`, ...), as in BuildKit's JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Exec(_) => "exec",
            Op::Source(_) => "source",
            Op::File(_) => "file",
            Op::Build(_) => "build",
            Op::Merge(_) => "merge",
            Op::Diff(_) => "diff",
        }
    }
}

/// `pb.ExecOp`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOp {
    /// The process to run and its environment.
    pub meta: Meta,
    /// The filesystems to mount, the root mount (`/`) included.
    pub mounts: Vec<Mount>,
    /// The network mode.
    pub network: NetMode,
    /// The security mode.
    pub security: SecurityMode,
    /// Environment variables filled from secrets.
    pub secretenv: Vec<SecretEnv>,
    /// CDI devices to expose.
    pub cdi_devices: Vec<CdiDevice>,
}

/// `pb.Meta`: the process of an exec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// The command line.
    pub args: Vec<String>,
    /// `KEY=value` environment entries.
    pub env: Vec<String>,
    /// The working directory.
    pub cwd: String,
    /// The user (`name`, `uid`, `uid:gid`).
    pub user: String,
    /// Proxy settings that do not take part in the cache key.
    pub proxy_env: Option<ProxyEnv>,
    /// Extra `/etc/hosts` entries.
    pub extra_hosts: Vec<HostIp>,
    /// The container hostname.
    pub hostname: String,
    /// Resource limits.
    pub ulimit: Vec<Ulimit>,
    /// The parent cgroup.
    pub cgroup_parent: String,
    /// Remove mount stubs recursively after the run (BuildKit always sets it).
    pub remove_mount_stubs_recursive: bool,
    /// Exit codes that count as success; empty means only 0.
    pub valid_exit_codes: Vec<i32>,
}

/// `pb.ProxyEnv`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProxyEnv {
    /// `HTTP_PROXY`.
    pub http_proxy: String,
    /// `HTTPS_PROXY`.
    pub https_proxy: String,
    /// `FTP_PROXY`.
    pub ftp_proxy: String,
    /// `NO_PROXY`.
    pub no_proxy: String,
    /// `ALL_PROXY`.
    pub all_proxy: String,
}

/// `pb.HostIP`: one extra hosts entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostIp {
    /// The host name.
    pub host: String,
    /// The address, as text.
    pub ip: String,
}

/// `pb.Ulimit`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ulimit {
    /// The limit name (`nofile`, `nproc`, ...).
    pub name: String,
    /// The soft limit.
    pub soft: i64,
    /// The hard limit.
    pub hard: i64,
}

/// `pb.SecretEnv`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretEnv {
    /// The secret id.
    pub id: String,
    /// The variable name.
    pub name: String,
    /// Whether a missing secret is tolerated.
    pub optional: bool,
}

/// `pb.CDIDevice`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CdiDevice {
    /// Fully qualified device name (`vendor.com/gpu=all`).
    pub name: String,
    /// Whether a missing device is tolerated.
    pub optional: bool,
}

/// `pb.NetMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum NetMode {
    /// The default sandboxed network (`UNSET`).
    #[default]
    Sandbox,
    /// The host network.
    Host,
    /// No network.
    None,
}

/// `pb.SecurityMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum SecurityMode {
    /// The default sandbox.
    #[default]
    Sandbox,
    /// Privileged (`INSECURE`).
    Insecure,
}

/// `pb.Mount`: one filesystem mounted into an exec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// Index into the op's inputs, or [`EMPTY_INPUT`].
    pub input: i64,
    /// A path inside the input to mount instead of its root.
    pub selector: String,
    /// The mount point.
    pub dest: String,
    /// The output index this mount produces, or [`SKIP_OUTPUT`].
    pub output: i64,
    /// Whether the mount is read-only.
    pub readonly: bool,
    /// The kind of mount.
    pub mount_type: MountType,
    /// Options of a tmpfs mount.
    pub tmpfs_opt: Option<TmpfsOpt>,
    /// Options of a cache mount.
    pub cache_opt: Option<CacheOpt>,
    /// Options of a secret mount.
    pub secret_opt: Option<SecretOpt>,
    /// Options of an SSH agent mount.
    pub ssh_opt: Option<SshOpt>,
    /// A result id (gateway containers only).
    pub result_id: String,
    /// Whether the mount's content may be checksummed for the cache.
    pub content_cache: MountContentCache,
}

/// `pb.MountType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum MountType {
    /// A bind mount of an input.
    #[default]
    Bind,
    /// A secret file.
    Secret,
    /// An SSH agent socket.
    Ssh,
    /// A persistent cache directory.
    Cache,
    /// A tmpfs.
    Tmpfs,
}

/// `pb.MountContentCache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum MountContentCache {
    /// Let the solver decide.
    #[default]
    Default,
    /// Always checksum the content.
    On,
    /// Never checksum the content.
    Off,
}

/// `pb.TmpfsOpt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TmpfsOpt {
    /// Size limit in bytes, 0 for none.
    pub size: i64,
}

/// `pb.CacheOpt`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheOpt {
    /// The cache namespace.
    pub id: String,
    /// How concurrent writers share it.
    pub sharing: CacheSharing,
}

/// `pb.CacheSharingOpt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum CacheSharing {
    /// Concurrent writers share one directory.
    #[default]
    Shared,
    /// Each concurrent writer gets its own directory.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// `pb.SecretOpt`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretOpt {
    /// The secret id.
    pub id: String,
    /// Owner uid of the file.
    pub uid: u32,
    /// Owner gid of the file.
    pub gid: u32,
    /// Permission bits of the file.
    pub mode: u32,
    /// Whether a missing secret is tolerated.
    pub optional: bool,
}

/// `pb.SSHOpt`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshOpt {
    /// The SSH forwarding id.
    pub id: String,
    /// Owner uid of the socket.
    pub uid: u32,
    /// Owner gid of the socket.
    pub gid: u32,
    /// Permission bits of the socket.
    pub mode: u32,
    /// Whether a missing agent is tolerated.
    pub optional: bool,
}

/// `pb.SourceOp`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceOp {
    /// `docker-image://...`, `local://...`, `git://...`, `https://...`, `oci-layout://...`.
    pub identifier: String,
    /// Source-specific attributes (`local.session`, `git.fullurl`, ...).
    pub attrs: BTreeMap<String, String>,
}

/// `pb.BuildOp` (experimental upstream; kept for completeness).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildOp {
    /// The input index of the builder.
    pub builder: i64,
    /// Named inputs, each an input index.
    pub inputs: BTreeMap<String, i64>,
    /// An inline definition to build.
    pub def: Option<Box<crate::definition::Definition>>,
    /// Build attributes.
    pub attrs: BTreeMap<String, String>,
}

/// `pb.MergeOp`: each entry is an index into the op's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergeOp {
    /// The merged inputs, bottom first.
    pub inputs: Vec<i64>,
}

/// `pb.DiffOp`: each side is an input index, [`EMPTY_INPUT`] for scratch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiffOp {
    /// The lower side.
    pub lower: Option<i64>,
    /// The upper side.
    pub upper: Option<i64>,
}

/// `pb.FileOp`: a chain of file actions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileOp {
    /// The actions, in execution order.
    pub actions: Vec<FileAction>,
}

/// `pb.FileAction`.
///
/// `input` and `secondary_input` index the op's inputs when below `inputs.len()`, and the
/// output of action `n - inputs.len()` otherwise; `-1` means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAction {
    /// The filesystem the action works on.
    pub input: i64,
    /// The copy source, `-1` when none.
    pub secondary_input: i64,
    /// The output index this action produces, or [`SKIP_OUTPUT`].
    pub output: i64,
    /// What the action does.
    pub action: FileActionKind,
}

/// The `action` oneof of `pb.FileAction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileActionKind {
    /// Copy from the secondary input.
    Copy(FileActionCopy),
    /// Create a file.
    Mkfile(FileActionMkFile),
    /// Create a directory.
    Mkdir(FileActionMkDir),
    /// Remove a path.
    Rm(FileActionRm),
    /// Create a symlink.
    Symlink(FileActionSymlink),
}

/// `pb.FileActionCopy`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileActionCopy {
    /// The source path.
    pub src: String,
    /// The destination path.
    pub dest: String,
    /// Ownership override.
    pub owner: Option<ChownOpt>,
    /// Permission override, `-1` for none.
    pub mode: i32,
    /// Follow symlinks in the source.
    pub follow_symlink: bool,
    /// Copy the contents of a source directory rather than the directory itself.
    pub dir_copy_contents: bool,
    /// Unpack archives like Docker's `ADD`.
    pub attempt_unpack_docker_compatibility: bool,
    /// Create missing parent directories of the destination.
    pub create_dest_path: bool,
    /// Interpret wildcards in the source.
    pub allow_wildcard: bool,
    /// Do not fail when a wildcard matches nothing.
    pub allow_empty_wildcard: bool,
    /// Timestamp override in Unix nanoseconds, `-1` for none.
    pub timestamp: i64,
    /// Only copy paths matching one of these patterns.
    pub include_patterns: Vec<String>,
    /// Skip paths matching any of these patterns.
    pub exclude_patterns: Vec<String>,
    /// Replace destination paths of a different type instead of failing.
    pub always_replace_existing_dest_paths: bool,
    /// Permission override in symbolic form (`u+x`).
    pub mode_str: String,
    /// Paths that must be present when include patterns are used.
    pub required_paths: Vec<String>,
}

/// `pb.FileActionMkFile`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileActionMkFile {
    /// The file path.
    pub path: String,
    /// Permission bits.
    pub mode: i32,
    /// The content.
    pub data: Vec<u8>,
    /// Ownership.
    pub owner: Option<ChownOpt>,
    /// Timestamp in Unix nanoseconds, `-1` for none.
    pub timestamp: i64,
}

/// `pb.FileActionMkDir`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileActionMkDir {
    /// The directory path.
    pub path: String,
    /// Permission bits.
    pub mode: i32,
    /// Create missing parents.
    pub make_parents: bool,
    /// Ownership.
    pub owner: Option<ChownOpt>,
    /// Timestamp in Unix nanoseconds, `-1` for none.
    pub timestamp: i64,
}

/// `pb.FileActionRm`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileActionRm {
    /// The path to remove.
    pub path: String,
    /// Do not fail when the path is missing.
    pub allow_not_found: bool,
    /// Interpret wildcards in the path.
    pub allow_wildcard: bool,
}

/// `pb.FileActionSymlink`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileActionSymlink {
    /// The link target.
    pub oldpath: String,
    /// The path of the link itself.
    pub newpath: String,
    /// Ownership.
    pub owner: Option<ChownOpt>,
    /// Timestamp in Unix nanoseconds, `-1` for none.
    pub timestamp: i64,
}

/// `pb.ChownOpt`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChownOpt {
    /// The owning user.
    pub user: Option<UserOpt>,
    /// The owning group.
    pub group: Option<UserOpt>,
}

/// `pb.UserOpt`: a user or group, by name or by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserOpt {
    /// A name, resolved against `/etc/passwd` or `/etc/group` of input `input`.
    ByName {
        /// The user or group name.
        name: String,
        /// The input whose files resolve the name, `-1` for none.
        input: i64,
    },
    /// A numeric id.
    ById(u32),
}
