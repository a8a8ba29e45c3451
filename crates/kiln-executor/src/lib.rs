//! Runs the processes of RUN steps in containers, through an OCI runtime binary (`runc`, or
//! `crun` where it works), the way BuildKit's runc executor does.
//!
//! For each run the executor writes a bundle (`config.json` generated with the `oci-spec`
//! runtime types, plus the container's `/etc/hosts` and `/etc/resolv.conf`) in its state
//! directory, creates the mount points the root filesystem lacks, runs `runtime run` in the
//! foreground with the process's stdout and stderr on pipes, streams them to the caller as
//! they arrive, and returns the exit status. Afterwards the bundle is removed and the mount
//! points it created are removed again (unless the process put something in them), so that
//! `/proc`, `/dev`, `/sys`, `/etc/hosts` and the like never end up in the layer.
//!
//! The container is what BuildKit gives a RUN step: the standard mounts (`/proc`, a tmpfs
//! `/dev` with the runtime's default device nodes, `/dev/pts`, `/dev/shm`, `/dev/mqueue`,
//! read-only `/sys` and cgroupfs), the generated hosts and resolver files bind-mounted
//! read-only, Docker's default capabilities, `noNewPrivileges` off, runc's masked and
//! read-only paths, a seccomp filter (see [`seccomp`]), umask 0022, the hostname
//! `buildkitsandbox`, and either the host's network or a new network namespace with only the
//! loopback interface. The insecure mode grants every capability the executor holds, as
//! `security.insecure` does.
//!
//! What it deliberately does not know: snapshots, mounts of snapshots, LLB, caching, progress
//! rendering. The caller (the worker) mounts the root filesystem and the extra mounts and
//! hands over plain paths; the executor only borrows them for the duration of a run. Runs on
//! different root filesystems proceed in parallel; runs on the same one wait for each other,
//! since each creates and removes mount points in it.
//!
//! Mount points: the executor creates the missing ones itself before the runtime starts,
//! records exactly what it created, and after the process exits removes those that are still
//! empty (never through a symlink the process planted), restoring the modification times of
//! the directories that held them. The working directory, when missing, is created and kept,
//! as BuildKit does.
//!
//! Why a runtime binary rather than an in-process container library: it is what BuildKit
//! does, it needs nothing at build time, and a forked child of a multi-threaded tokio process
//! may do almost nothing safely before `exec` (youki's `libcontainer` clones the caller).
//! The runtime is chosen at [`Executor::new`] by running a tiny static program (written by the
//! executor itself) in an empty root filesystem: `crun` is preferred when it works, as it
//! starts containers several times faster; on hosts with cgroup v1 and v2 mounted together
//! (hybrid mode) `crun` 1.8 refuses to create any container, and `runc` is used.
//! [`Executor::runtime_info`] says which runtime is used and why the others were rejected.

mod caps;
mod error;
mod executor;
mod hosts;
mod oci;
mod process_io;
pub mod resolvconf;
mod rootpath;
mod run_spec;
mod runtime;
pub mod seccomp;
mod stubs;
mod user;

pub use caps::DEFAULT_CAPABILITIES;
pub use error::Error;
pub use executor::{Executor, ExecutorConfig};
pub use hosts::{DEFAULT_HOSTNAME, hosts_file};
pub use oci::{
    HostFacts, MASKED_PATHS, READONLY_PATHS, SpecInput, UMASK, build_spec, cgroups_path,
};
pub use process_io::{ChunkCallback, ExitStatus, OutputSink, ProcessIo, Termination};
pub use resolvconf::DnsConfig;
pub use rootpath::{resolve as resolve_in_root, resolve_relative as resolve_in_root_relative};
pub use run_spec::{DEFAULT_PATH, MountKind, MountSpec, Network, RunSpec, Security, Ulimit};
pub use runtime::{
    Rejected, Runtime, RuntimeInfo, RuntimeKind, find_binary, log_errors, probe_program,
};
pub use stubs::MountStubs;
pub use tokio_util::sync::CancellationToken;
pub use user::{ResolvedUser, resolve_user, resolve_user_in};
