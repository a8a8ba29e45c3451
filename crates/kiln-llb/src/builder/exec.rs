//! `State::run`: exec vertices, their mounts and their outputs, as `client/llb/exec.go` builds them.

use std::sync::Arc;

use super::source::caps;
use super::state::{Constraints, Node, NodeKind, Output, State, StateMeta, VertexOpts};
use crate::error::Error;
use crate::ops::{CacheSharing, MountContentCache, NetMode, ProxyEnv, ROOT_MOUNT, SecurityMode};

/// What kind of filesystem a [`RunMount`] provides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MountKind {
    /// The source state, bind-mounted.
    #[default]
    Bind,
    /// A persistent cache directory, seeded from the source state when it is not scratch.
    Cache {
        /// The cache namespace.
        id: String,
        /// How concurrent writers share it.
        sharing: CacheSharing,
    },
    /// A tmpfs (the source must be scratch).
    Tmpfs {
        /// Size limit in bytes, 0 for none.
        size: i64,
    },
    /// A secret, as a file at the target (unless the target is empty) and/or an environment variable.
    Secret {
        /// The secret id.
        id: String,
        /// Owner uid of the file.
        uid: u32,
        /// Owner gid of the file.
        gid: u32,
        /// Permission bits of the file (BuildKit's default is 0o400).
        mode: u32,
        /// Whether a missing secret is tolerated.
        optional: bool,
        /// Also (or only, with an empty target) expose the secret as this variable.
        env: Option<String>,
    },
    /// An SSH agent socket at the target (`/run/buildkit/ssh_agent.N` when the target is empty).
    Ssh {
        /// The SSH forwarding id.
        id: String,
        /// Owner uid of the socket.
        uid: u32,
        /// Owner gid of the socket.
        gid: u32,
        /// Permission bits of the socket (BuildKit's default is 0o600).
        mode: u32,
        /// Whether a missing agent is tolerated.
        optional: bool,
    },
}

/// A mount of a [`RunOpts`].
#[derive(Clone)]
pub struct RunMount {
    /// The mount point.
    pub target: String,
    /// The filesystem to mount (ignored for secrets and SSH).
    pub source: State,
    /// A path inside the source to mount instead of its root.
    pub selector: Option<String>,
    /// Mount read-only (the mount then produces no output).
    pub readonly: bool,
    /// The kind of mount.
    pub kind: MountKind,
    /// Whether the content may be checksummed for the cache.
    pub content_cache: MountContentCache,
    /// Writable, but produce no output (BuildKit's `ForceNoOutput`).
    pub no_output: bool,
}

impl RunMount {
    /// A bind mount of `source` at `target`.
    pub fn bind(target: impl Into<String>, source: State) -> RunMount {
        RunMount {
            target: target.into(),
            source,
            selector: None,
            readonly: false,
            kind: MountKind::Bind,
            content_cache: MountContentCache::Default,
            no_output: false,
        }
    }

    /// A mount of another kind at `target`, with a scratch source.
    pub fn of_kind(target: impl Into<String>, kind: MountKind) -> RunMount {
        RunMount {
            kind,
            ..RunMount::bind(target, State::scratch())
        }
    }
}

/// Options of [`State::run`].
#[derive(Clone, Default)]
pub struct RunOpts {
    /// The command line (required).
    pub args: Vec<String>,
    /// Environment variables set for this run only, on top of the state's.
    pub env: Vec<(String, String)>,
    /// Working directory for this run only; relative paths resolve against the state's.
    pub dir: Option<String>,
    /// User for this run only.
    pub user: Option<String>,
    /// Hostname for this run only.
    pub hostname: Option<String>,
    /// Network mode for this run only.
    pub network: Option<NetMode>,
    /// Security mode for this run only.
    pub security: Option<SecurityMode>,
    /// Additional mounts (the root mount comes from the state).
    pub mounts: Vec<RunMount>,
    /// Mount the root filesystem read-only (the run then has no root output).
    pub readonly_rootfs: bool,
    /// Proxy settings, which do not take part in the cache key.
    pub proxy_env: Option<ProxyEnv>,
    /// Exit codes that count as success.
    pub valid_exit_codes: Option<Vec<i32>>,
    /// Extra `/etc/hosts` entries for this run only.
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// Resource limits for this run only: name, soft, hard.
    pub ulimits: Vec<(String, i64, i64)>,
    /// Parent cgroup for this run only.
    pub cgroup_parent: Option<String>,
    /// Name, cache behaviour, platform and source locations of the vertex.
    pub vertex: VertexOpts,
}

/// A mount of an exec under construction, in BuildKit's sorted order.
pub(crate) struct ExecMount {
    pub target: String,
    pub source: Option<Output>,
    pub readonly: bool,
    pub selector: String,
    pub cache: Option<(String, CacheSharing)>,
    pub tmpfs: Option<i64>,
    pub no_output: bool,
    pub content_cache: MountContentCache,
    /// The output index, `None` when the mount produces none.
    pub output: Option<i64>,
}

pub(crate) struct SecretMount {
    pub id: String,
    pub target: Option<String>,
    pub env: Option<String>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub optional: bool,
}

pub(crate) struct SshMount {
    pub id: String,
    pub target: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub optional: bool,
}

pub(crate) struct ExecNode {
    pub meta: StateMeta,
    pub args: Vec<String>,
    pub proxy_env: Option<ProxyEnv>,
    pub valid_exit_codes: Option<Vec<i32>>,
    pub mounts: Vec<ExecMount>,
    pub secrets: Vec<SecretMount>,
    pub ssh: Vec<SshMount>,
}

/// The result of [`State::run`]: the root filesystem after the run, and the other mounts.
#[derive(Clone)]
pub struct ExecState {
    root: State,
    node: Arc<Node>,
}

impl ExecState {
    /// The root filesystem after the run, with the settings of the state `run` was called on.
    pub fn root(&self) -> State {
        self.root.clone()
    }

    /// The filesystem of the mount at `target` after the run, as a fresh state.
    ///
    /// A read-only mount gives back its source; tmpfs, cache and no-output mounts have no
    /// filesystem to give.
    pub fn get_mount(&self, target: &str) -> Result<State, Error> {
        let NodeKind::Exec(exec) = &self.node.kind else {
            return Err(Error::build("not an exec vertex"));
        };
        let m = exec
            .mounts
            .iter()
            .find(|m| m.target == target)
            .ok_or_else(|| Error::build(format!("exec has no mount at {target}")))?;
        Ok(State::new(mount_output(&self.node, m)))
    }
}

/// The output a mount exposes, as BuildKit's `AddMount` sets `m.output`.
fn mount_output(node: &Arc<Node>, m: &ExecMount) -> Option<Output> {
    if m.readonly {
        return m.source.clone();
    }
    let index = if m.tmpfs.is_some() {
        Err(format!(
            "tmpfs mount for {} can't be used as a parent",
            m.target
        ))
    } else if m.no_output {
        Err(format!(
            "mount marked no-output and {} can't be used as a parent",
            m.target
        ))
    } else {
        m.output
            .ok_or_else(|| format!("invalid mount: {}", m.target))
    };
    Some(Output {
        node: Arc::clone(node),
        index,
    })
}

impl State {
    /// Runs a command on this state's filesystem (BuildKit's `State.Run`).
    ///
    /// The process settings come from this state, with the per-run overrides of `opts` applied.
    pub fn run(&self, opts: RunOpts) -> ExecState {
        // Per-run settings apply to a copy of the state only (BuildKit's `ei.State`).
        let mut st = self.clone();
        for (k, v) in &opts.env {
            st = st.add_env(k.clone(), v.clone());
        }
        if let Some(dir) = &opts.dir {
            st = st.dir(dir);
        }
        if let Some(user) = &opts.user {
            st = st.user(user.clone());
        }
        if let Some(hostname) = &opts.hostname {
            st = st.hostname(hostname.clone());
        }
        if let Some(network) = opts.network {
            st = st.network(network);
        }
        if let Some(security) = opts.security {
            st = st.security(security);
        }
        for (host, ip) in &opts.extra_hosts {
            st = st.add_extra_host(host.clone(), *ip);
        }
        for (name, soft, hard) in &opts.ulimits {
            st = st.add_ulimit(name.clone(), *soft, *hard);
        }
        if let Some(cp) = &opts.cgroup_parent {
            st = st.cgroup_parent(cp.clone());
        }
        let constraints: Constraints = opts.vertex.into_constraints();

        let mut mounts = vec![ExecMount {
            target: ROOT_MOUNT.to_string(),
            source: st.output.clone(),
            readonly: opts.readonly_rootfs,
            selector: String::new(),
            cache: None,
            tmpfs: None,
            no_output: false,
            content_cache: MountContentCache::Default,
            output: None,
        }];
        let mut secrets = Vec::new();
        let mut ssh = Vec::new();
        for m in opts.mounts {
            match m.kind {
                MountKind::Secret {
                    id,
                    uid,
                    gid,
                    mode,
                    optional,
                    env,
                } => secrets.push(SecretMount {
                    id,
                    target: (!m.target.is_empty()).then_some(m.target),
                    env,
                    uid,
                    gid,
                    mode,
                    optional,
                }),
                MountKind::Ssh {
                    id,
                    uid,
                    gid,
                    mode,
                    optional,
                } => ssh.push(SshMount {
                    id,
                    target: m.target,
                    uid,
                    gid,
                    mode,
                    optional,
                }),
                kind => {
                    let (cache, tmpfs) = match kind {
                        // As in BuildKit, a cache mount without id is a plain mount.
                        MountKind::Cache { id, sharing } if !id.is_empty() => {
                            (Some((id, sharing)), None)
                        }
                        MountKind::Tmpfs { size } => (None, Some(size)),
                        _ => (None, None),
                    };
                    mounts.push(ExecMount {
                        target: m.target,
                        source: m.source.output.clone(),
                        readonly: m.readonly,
                        selector: m.selector.unwrap_or_default(),
                        cache,
                        tmpfs,
                        no_output: m.no_output,
                        content_cache: m.content_cache,
                        output: None,
                    });
                }
            }
        }
        for (i, s) in ssh.iter_mut().enumerate() {
            if s.target.is_empty() {
                s.target = format!("/run/buildkit/ssh_agent.{i}");
            }
        }
        // BuildKit sorts mounts by target and numbers the outputs of the writable ones.
        mounts.sort_by(|a, b| a.target.cmp(&b.target));
        let mut next = 0;
        for m in &mut mounts {
            if !(m.no_output || m.readonly || m.tmpfs.is_some() || m.cache.is_some()) {
                m.output = Some(next);
                next += 1;
            }
        }

        let exec = ExecNode {
            meta: (*st.meta).clone(),
            args: opts.args,
            proxy_env: opts.proxy_env,
            valid_exit_codes: opts.valid_exit_codes,
            mounts,
            secrets,
            ssh,
        };
        let node = Arc::new(Node {
            kind: NodeKind::Exec(Box::new(exec)),
            constraints,
        });
        let root_output = match &node.kind {
            NodeKind::Exec(e) => e
                .mounts
                .iter()
                .find(|m| m.target == ROOT_MOUNT)
                .and_then(|m| mount_output(&node, m)),
            _ => None,
        };
        ExecState {
            root: self.with_output(root_output),
            node,
        }
    }
}

/// The caps an exec needs, computed when it is marshalled.
pub(crate) fn exec_caps(exec: &ExecNode, c: &mut Constraints) {
    if exec.valid_exit_codes.is_some() {
        c.add_cap(caps::EXEC_VALID_EXIT_CODE);
    }
    if !exec.meta.ulimits.is_empty() {
        c.add_cap(caps::EXEC_META_ULIMIT);
    }
    if exec.meta.network != NetMode::Sandbox {
        c.add_cap(caps::EXEC_META_NETWORK);
    }
    if exec.meta.security != SecurityMode::Sandbox {
        c.add_cap(caps::EXEC_META_SECURITY);
    }
    if exec.proxy_env.is_some() {
        c.add_cap(caps::EXEC_META_PROXY);
    }
    c.add_cap(caps::EXEC_META_BASE);
    for m in &exec.mounts {
        if !m.selector.is_empty() {
            c.add_cap(caps::EXEC_MOUNT_SELECTOR);
        }
        if m.cache.is_some() {
            c.add_cap(caps::EXEC_MOUNT_CACHE);
            c.add_cap(caps::EXEC_MOUNT_CACHE_SHARING);
        } else if let Some(size) = m.tmpfs {
            c.add_cap(caps::EXEC_MOUNT_TMPFS);
            if size > 0 {
                c.add_cap(caps::EXEC_MOUNT_TMPFS_SIZE);
            }
        } else if m.source.is_some() {
            c.add_cap(caps::EXEC_MOUNT_BIND);
        }
        if m.content_cache != MountContentCache::Default {
            c.add_cap(caps::EXEC_MOUNT_CONTENT_CACHE);
        }
    }
    if !exec.secrets.is_empty() {
        c.add_cap(caps::EXEC_MOUNT_SECRET);
        if exec.secrets.iter().any(|s| s.env.is_some()) {
            c.add_cap(caps::EXEC_SECRET_ENV);
        }
    }
    if !exec.ssh.is_empty() {
        c.add_cap(caps::EXEC_MOUNT_SSH);
    }
}
