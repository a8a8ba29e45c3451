//! The immutable, cheaply clonable [`State`]: one output of a vertex (or scratch) plus the
//! process settings that the next `run` inherits.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_oci::Platform;

use super::exec::ExecNode;
use super::file::FileNode;
use super::paths;
use crate::definition::{Definition, OpMetadata, ProgressGroup, Range};
use crate::error::Error;
use crate::ops::{HostIp, NetMode, SecurityMode, Ulimit};

/// A build state: what the filesystem is (an output of a vertex, or scratch) and the settings
/// (environment, working directory, user, platform, ...) that a later [`State::run`] uses.
///
/// States are immutable: every setter returns a new state sharing everything else, and cloning
/// is two reference-count increments.
#[derive(Clone)]
pub struct State {
    pub(crate) output: Option<Output>,
    pub(crate) meta: Arc<StateMeta>,
}

impl Default for State {
    /// The empty filesystem, [`State::scratch`].
    fn default() -> State {
        State::scratch()
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct StateMeta {
    pub env: Vec<(String, String)>,
    pub dir: String,
    pub user: String,
    pub platform: Option<Platform>,
    pub network: NetMode,
    pub security: SecurityMode,
    pub hostname: String,
    pub extra_hosts: Vec<HostIp>,
    pub ulimits: Vec<Ulimit>,
    pub cgroup_parent: String,
}

/// One output of a vertex under construction.
#[derive(Clone)]
pub(crate) struct Output {
    pub node: Arc<Node>,
    /// The output index, or why this output cannot be used as an input.
    pub index: Result<i64, String>,
}

impl Output {
    pub(crate) fn same(&self, other: &Output) -> bool {
        Arc::ptr_eq(&self.node, &other.node) && self.index == other.index
    }

    /// The platform a fresh state on this output starts with (BuildKit's `output.Platform()`).
    pub(crate) fn platform(&self) -> Option<&Platform> {
        match &self.node.kind {
            NodeKind::Source { .. } | NodeKind::Exec(_) => self.node.constraints.platform.as_ref(),
            _ => None,
        }
    }
}

/// A vertex under construction.
pub(crate) struct Node {
    pub kind: NodeKind,
    pub constraints: Constraints,
}

pub(crate) enum NodeKind {
    Source {
        identifier: String,
        attrs: BTreeMap<String, String>,
        error: Option<Error>,
    },
    Exec(Box<ExecNode>),
    File(FileNode),
    Merge(Vec<Output>),
    Diff {
        lower: Option<Output>,
        upper: Option<Output>,
    },
}

/// The per-vertex constraints BuildKit keeps next to each op.
#[derive(Clone, Default)]
pub(crate) struct Constraints {
    pub platform: Option<Platform>,
    pub worker_constraints: Vec<String>,
    pub metadata: OpMetadata,
    pub local_unique_id: Option<String>,
    pub locations: Vec<SourceLocation>,
}

impl Constraints {
    pub(crate) fn add_cap(&mut self, cap: &str) {
        self.metadata.caps.insert(cap.to_string(), true);
    }
}

/// Options every vertex accepts: its name in progress output, cache behaviour, platform and
/// where in the source it comes from. `Default` sets nothing.
#[derive(Clone, Default)]
pub struct VertexOpts {
    /// The name shown in progress output (`llb.customname`).
    pub custom_name: Option<String>,
    /// Further description entries.
    pub description: BTreeMap<String, String>,
    /// Do not use the cache for this vertex.
    pub ignore_cache: bool,
    /// Force (`Some(true)`) or forbid (`Some(false)`) exporting this vertex's cache.
    pub export_cache: Option<bool>,
    /// The progress group to show the vertex in.
    pub progress_group: Option<ProgressGroup>,
    /// The platform of the vertex, overriding the state's and the marshal default.
    pub platform: Option<Platform>,
    /// Worker constraints (BuildKit's `llb.Require`).
    pub worker_constraints: Vec<String>,
    /// Source locations (Dockerfile lines) this vertex comes from.
    pub locations: Vec<SourceLocation>,
}

impl VertexOpts {
    /// Options with only a custom name.
    pub fn named(name: impl Into<String>) -> VertexOpts {
        VertexOpts {
            custom_name: Some(name.into()),
            ..VertexOpts::default()
        }
    }

    pub(crate) fn into_constraints(self) -> Constraints {
        let mut metadata = OpMetadata {
            ignore_cache: self.ignore_cache,
            description: self.description,
            export_cache: self.export_cache,
            caps: BTreeMap::new(),
            progress_group: self.progress_group,
        };
        if let Some(name) = self.custom_name {
            metadata
                .description
                .insert("llb.customname".to_string(), name);
        }
        Constraints {
            platform: self.platform,
            worker_constraints: self.worker_constraints,
            metadata,
            local_unique_id: None,
            locations: self.locations,
        }
    }
}

/// A source file (a Dockerfile) that vertices can point into, BuildKit's `llb.SourceMap`.
/// Share it through an `Arc`: locations of one file are grouped by the `Arc`'s identity.
#[derive(Clone, Default)]
pub struct SourceMap {
    /// The file name.
    pub filename: String,
    /// The file content.
    pub data: Vec<u8>,
    /// The language (`Dockerfile`), empty when unknown.
    pub language: String,
    /// How to fetch the file, as an already marshalled definition.
    pub definition: Option<Definition>,
    /// How to fetch the file, as a state marshalled together with the graph.
    pub state: Option<State>,
}

impl SourceMap {
    /// A source file with a name and content.
    pub fn new(filename: impl Into<String>, data: impl Into<Vec<u8>>) -> Arc<SourceMap> {
        Arc::new(SourceMap {
            filename: filename.into(),
            data: data.into(),
            ..SourceMap::default()
        })
    }

    /// A location in this file covering `ranges` (BuildKit's `SourceMap.Location`).
    pub fn location(self: &Arc<Self>, ranges: Vec<Range>) -> SourceLocation {
        SourceLocation {
            map: Arc::clone(self),
            ranges,
        }
    }
}

/// Ranges of one source file that a vertex comes from.
#[derive(Clone)]
pub struct SourceLocation {
    /// The file.
    pub map: Arc<SourceMap>,
    /// The ranges in it.
    pub ranges: Vec<Range>,
}

impl State {
    /// The empty filesystem.
    pub fn scratch() -> State {
        State::new(None)
    }

    /// A fresh state on `output`: working directory `/`, platform from the output.
    pub(crate) fn new(output: Option<Output>) -> State {
        let platform = output.as_ref().and_then(|o| o.platform().cloned());
        State {
            output,
            meta: Arc::new(StateMeta {
                dir: "/".to_string(),
                platform,
                ..StateMeta::default()
            }),
        }
    }

    /// This state's settings on another output (BuildKit's `WithOutput`).
    pub(crate) fn with_output(&self, output: Option<Output>) -> State {
        let mut meta = (*self.meta).clone();
        if let Some(p) = output.as_ref().and_then(|o| o.platform()) {
            meta.platform = Some(p.clone());
        }
        State {
            output,
            meta: Arc::new(meta),
        }
    }

    fn with_meta(&self, f: impl FnOnce(&mut StateMeta)) -> State {
        let mut meta = (*self.meta).clone();
        f(&mut meta);
        State {
            output: self.output.clone(),
            meta: Arc::new(meta),
        }
    }

    /// Whether this is scratch (no vertex).
    pub fn is_scratch(&self) -> bool {
        self.output.is_none()
    }

    /// Sets an environment variable, replacing an earlier value and moving it to the end.
    pub fn add_env(&self, key: impl Into<String>, value: impl Into<String>) -> State {
        let (key, value) = (key.into(), value.into());
        self.with_meta(|m| {
            m.env.retain(|(k, _)| *k != key);
            m.env.push((key, value));
        })
    }

    /// Removes an environment variable.
    pub fn del_env(&self, key: &str) -> State {
        self.with_meta(|m| m.env.retain(|(k, _)| k != key))
    }

    /// The value of an environment variable.
    pub fn get_env(&self, key: &str) -> Option<&str> {
        self.meta
            .env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The environment, in the order variables were first set.
    pub fn env(&self) -> &[(String, String)] {
        &self.meta.env
    }

    /// The environment as `KEY=value` entries.
    pub fn env_list(&self) -> Vec<String> {
        self.meta
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// Sets the working directory; a relative path resolves against the current one.
    pub fn dir(&self, dir: &str) -> State {
        let new = if paths::is_abs(dir) {
            dir.to_string()
        } else {
            let prev = if self.meta.dir.is_empty() {
                "/"
            } else {
                self.meta.dir.as_str()
            };
            paths::join(&[prev, dir])
        };
        self.with_meta(|m| m.dir = new)
    }

    /// The working directory.
    pub fn get_dir(&self) -> &str {
        &self.meta.dir
    }

    /// Sets the user.
    pub fn user(&self, user: impl Into<String>) -> State {
        let user = user.into();
        self.with_meta(|m| m.user = user)
    }

    /// The user, empty for the image default.
    pub fn get_user(&self) -> &str {
        &self.meta.user
    }

    /// Sets the platform.
    pub fn platform(&self, platform: Platform) -> State {
        self.with_meta(|m| m.platform = Some(platform))
    }

    /// The platform, `None` until an image or an explicit setting gives one.
    pub fn get_platform(&self) -> Option<&Platform> {
        self.meta.platform.as_ref()
    }

    /// Sets the network mode of later runs.
    pub fn network(&self, network: NetMode) -> State {
        self.with_meta(|m| m.network = network)
    }

    /// The network mode.
    pub fn get_network(&self) -> NetMode {
        self.meta.network
    }

    /// Sets the security mode of later runs.
    pub fn security(&self, security: SecurityMode) -> State {
        self.with_meta(|m| m.security = security)
    }

    /// The security mode.
    pub fn get_security(&self) -> SecurityMode {
        self.meta.security
    }

    /// Sets the hostname of later runs.
    pub fn hostname(&self, hostname: impl Into<String>) -> State {
        let hostname = hostname.into();
        self.with_meta(|m| m.hostname = hostname)
    }

    /// The hostname, empty for the default.
    pub fn get_hostname(&self) -> &str {
        &self.meta.hostname
    }

    /// Adds an `/etc/hosts` entry for later runs.
    pub fn add_extra_host(&self, host: impl Into<String>, ip: std::net::IpAddr) -> State {
        let entry = HostIp {
            host: host.into(),
            ip: ip.to_string(),
        };
        self.with_meta(|m| m.extra_hosts.push(entry))
    }

    /// The extra hosts entries.
    pub fn extra_hosts(&self) -> &[HostIp] {
        &self.meta.extra_hosts
    }

    /// Adds a resource limit for later runs.
    pub fn add_ulimit(&self, name: impl Into<String>, soft: i64, hard: i64) -> State {
        let limit = Ulimit {
            name: name.into(),
            soft,
            hard,
        };
        self.with_meta(|m| m.ulimits.push(limit))
    }

    /// The resource limits.
    pub fn ulimits(&self) -> &[Ulimit] {
        &self.meta.ulimits
    }

    /// Sets the parent cgroup of later runs.
    pub fn cgroup_parent(&self, parent: impl Into<String>) -> State {
        let parent = parent.into();
        self.with_meta(|m| m.cgroup_parent = parent)
    }

    /// The parent cgroup, empty for the default.
    pub fn get_cgroup_parent(&self) -> &str {
        &self.meta.cgroup_parent
    }

    /// Applies an image config (JSON, as in an OCI image): its `Env` entries and `WorkingDir`,
    /// and its platform when `architecture` and `os` are both set (BuildKit's `WithImageConfig`).
    pub fn with_image_config(&self, config: &[u8]) -> Result<State, Error> {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct Inner {
            #[serde(rename = "Env")]
            env: Option<Vec<String>>,
            #[serde(rename = "WorkingDir")]
            working_dir: String,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct Image {
            architecture: String,
            os: String,
            variant: String,
            #[serde(rename = "os.version")]
            os_version: String,
            #[serde(rename = "os.features")]
            os_features: Option<Vec<String>>,
            config: Inner,
        }
        let img: Image = serde_json::from_slice(config)
            .map_err(|e| Error::build(format!("invalid image config: {e}")))?;
        let mut state = self.clone();
        for entry in img.config.env.unwrap_or_default() {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            if !k.is_empty() {
                state = state.add_env(k, v);
            }
        }
        state = state.dir(&img.config.working_dir);
        if !img.architecture.is_empty() && !img.os.is_empty() {
            state = state.platform(Platform {
                os: img.os,
                architecture: img.architecture,
                variant: img.variant,
                os_version: img.os_version,
                os_features: img.os_features.unwrap_or_default(),
            });
        }
        Ok(state)
    }

    /// A state with this one's filesystem and `other`'s settings (BuildKit's `Reset`).
    ///
    /// As in BuildKit, the working directory goes back to `/` and the output's platform, when
    /// it has one, wins over `other`'s.
    pub fn reset(&self, other: &State) -> State {
        let mut meta = (*other.meta).clone();
        meta.dir = "/".to_string();
        if let Some(p) = self.output.as_ref().and_then(|o| o.platform()) {
            meta.platform = Some(p.clone());
        }
        State {
            output: self.output.clone(),
            meta: Arc::new(meta),
        }
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("scratch", &self.is_scratch())
            .field("meta", &self.meta)
            .finish()
    }
}
