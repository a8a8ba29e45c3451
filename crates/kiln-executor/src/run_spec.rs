//! What to run: the process, its root filesystem and mounts, and its sandbox.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::Error;
use crate::rootpath::clean_absolute;

/// The `PATH` a process gets when its environment has none (BuildKit's default for Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One process to run in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The root filesystem: an already mounted directory (a snapshot's mount point). The
    /// executor never unmounts it; mount points it creates there are removed after the run.
    pub rootfs: PathBuf,
    /// Whether the root filesystem is mounted read-only in the container.
    pub readonly_rootfs: bool,
    /// Extra mounts, in order, after the standard ones (a later mount on the same destination
    /// replaces an earlier one).
    pub mounts: Vec<MountSpec>,
    /// The command and its arguments (not empty).
    pub args: Vec<String>,
    /// The environment, `KEY=value` entries. `PATH` is added when missing.
    pub env: Vec<String>,
    /// The working directory, an absolute container path (`/` when empty). It is created
    /// (owned by the process user) when missing, and stays in the root filesystem, as in
    /// BuildKit.
    pub cwd: String,
    /// The user: `""`, `name`, `uid`, `name:group`, `uid:gid` (see [`crate::resolve_user`]).
    pub user: String,
    /// The hostname (`buildkitsandbox` when empty).
    pub hostname: String,
    /// The network of the container.
    pub network: Network,
    /// The security mode of the container.
    pub security: Security,
    /// Extra `/etc/hosts` entries, name and address.
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// The cgroup parent (BuildKit's rule: `PARENT/buildkit/ID`, or `SLICE:ID` for a systemd
    /// slice ending in `:`). When `None`, the runtime puts the container in a cgroup named by
    /// its id under the executor's own cgroup.
    pub cgroup_parent: Option<String>,
    /// Secrets exposed as environment variables, name and value; they replace variables of the
    /// same name in `env`.
    pub secret_env: Vec<(String, String)>,
    /// Resource limits (`--ulimit`); when empty the process inherits the executor's, as in
    /// BuildKit.
    pub ulimits: Vec<Ulimit>,
}

impl RunSpec {
    /// A spec running `args` in `rootfs` with every other field at its default: root user,
    /// `/` as working directory, host network, sandboxed.
    pub fn new(rootfs: impl Into<PathBuf>, args: Vec<String>) -> RunSpec {
        RunSpec {
            rootfs: rootfs.into(),
            readonly_rootfs: false,
            mounts: Vec::new(),
            args,
            env: Vec::new(),
            cwd: "/".to_string(),
            user: String::new(),
            hostname: String::new(),
            network: Network::Host,
            security: Security::Sandbox,
            extra_hosts: Vec::new(),
            cgroup_parent: None,
            secret_env: Vec::new(),
            ulimits: Vec::new(),
        }
    }

    /// Checks the fields the runtime would reject or misread, before anything is created.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !self.rootfs.is_absolute() {
            return Err(Error::invalid("rootfs", "must be an absolute path"));
        }
        if self.args.is_empty() {
            return Err(Error::invalid("args", "must not be empty"));
        }
        for (i, a) in self.args.iter().enumerate() {
            if a.contains('\0') {
                return Err(Error::invalid(format!("args[{i}]"), "contains a NUL byte"));
            }
        }
        for (i, e) in self.env.iter().enumerate() {
            if e.contains('\0') {
                return Err(Error::invalid(format!("env[{i}]"), "contains a NUL byte"));
            }
        }
        for (i, (k, v)) in self.secret_env.iter().enumerate() {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return Err(Error::invalid(
                    format!("secret_env[{i}]"),
                    "name must be non-empty without '=' or NUL, value without NUL",
                ));
            }
        }
        if !self.cwd.is_empty() && !self.cwd.starts_with('/') {
            return Err(Error::invalid(
                "cwd",
                format!("{:?} is not absolute", self.cwd),
            ));
        }
        if self.cwd.contains('\0') {
            return Err(Error::invalid("cwd", "contains a NUL byte"));
        }
        if self
            .hostname
            .contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(Error::invalid(
                "hostname",
                format!("{:?} contains whitespace", self.hostname),
            ));
        }
        for (i, (name, _)) in self.extra_hosts.iter().enumerate() {
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Err(Error::invalid(
                    format!("extra_hosts[{i}]"),
                    format!("invalid host name {name:?}"),
                ));
            }
        }
        for (i, m) in self.mounts.iter().enumerate() {
            if !m.dest.starts_with('/') || m.dest.contains('\0') {
                return Err(Error::invalid(
                    format!("mounts[{i}].dest"),
                    format!("{:?} is not an absolute path", m.dest),
                ));
            }
            if clean_absolute(&m.dest) == "/" {
                return Err(Error::invalid(
                    format!("mounts[{i}].dest"),
                    "cannot mount over the root",
                ));
            }
            let needs_source = matches!(m.kind, MountKind::Bind { .. });
            if needs_source && !m.source.is_absolute() {
                return Err(Error::invalid(
                    format!("mounts[{i}].source"),
                    format!("{} is not an absolute path", m.source.display()),
                ));
            }
            if let MountKind::Other { fs_type, .. } = &m.kind
                && fs_type.is_empty()
            {
                return Err(Error::invalid(
                    format!("mounts[{i}].kind"),
                    "filesystem type is empty",
                ));
            }
        }
        for (i, u) in self.ulimits.iter().enumerate() {
            if u.name.is_empty() || !u.name.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(Error::invalid(
                    format!("ulimits[{i}].name"),
                    format!("invalid limit name {:?}", u.name),
                ));
            }
        }
        Ok(())
    }

    /// The environment the process gets: `env` with secrets replacing variables of the same
    /// name, and `PATH` added when missing.
    pub(crate) fn effective_env(&self) -> Vec<String> {
        let mut env: Vec<String> = self
            .env
            .iter()
            .filter(|e| {
                let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
                !self.secret_env.iter().any(|(k, _)| k == key)
            })
            .cloned()
            .collect();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        env.extend(self.secret_env.iter().map(|(k, v)| format!("{k}={v}")));
        env
    }
}

/// One extra mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Where it appears in the container (absolute).
    pub dest: String,
    /// The host path of the source (a directory or file for a bind mount; ignored by tmpfs;
    /// the device or name for [`MountKind::Other`]).
    pub source: PathBuf,
    /// The kind of mount and its options.
    pub kind: MountKind,
}

/// The kind of an extra mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A recursive bind mount of `source`.
    Bind {
        /// Whether it is read-only.
        readonly: bool,
    },
    /// A new tmpfs (`nosuid`, as BuildKit mounts them).
    Tmpfs {
        /// Its size limit in bytes.
        size: Option<u64>,
        /// Whether it is read-only.
        readonly: bool,
    },
    /// Any other mount, passed to the runtime as is (an overlay of a snapshot, for instance).
    Other {
        /// The filesystem type (`overlay`, `bind`, ...).
        fs_type: String,
        /// The mount options.
        options: Vec<String>,
    },
}

/// The network of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Share the host's network namespace (BuildKit's default without CNI).
    #[default]
    Host,
    /// A new network namespace with only the loopback interface.
    None,
}

/// The security mode of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// BuildKit's sandbox: the default capabilities, a seccomp filter, masked and read-only
    /// paths in `/proc` and `/sys`, read-only `/sys`.
    #[default]
    Sandbox,
    /// `security.insecure`: every capability the executor holds, no seccomp filter, nothing
    /// masked, writable `/sys` and cgroupfs, every device allowed.
    Insecure,
}

/// A resource limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    /// The name without `RLIMIT_` (`nofile`, `nproc`, ...), case-insensitive.
    pub name: String,
    /// The soft limit.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}
