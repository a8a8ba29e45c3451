//! What a conversion is asked to do: the build options that reach the converter.

use std::collections::BTreeMap;

use kiln_llb::ResolveMode;
use kiln_oci::Platform;

/// Options of one conversion (one target platform).
///
/// They mirror the frontend attributes buildx sends to BuildKit's Dockerfile frontend
/// (`target`, `build-arg:*`, `label:*`, `platform`, `no-cache`, `context:*`, ...), as typed
/// values.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// The name under which the Dockerfile is shown in errors and source maps.
    pub dockerfile_name: String,
    /// The stage to build (`--target`); the last stage when `None`.
    pub target: Option<String>,
    /// Build arguments (`--build-arg`).
    pub build_args: BTreeMap<String, String>,
    /// Labels added to the image config (`--label`), overriding `LABEL` instructions.
    pub labels: BTreeMap<String, String>,
    /// The platform to build for; the first build platform when `None` (an implicit target).
    pub target_platform: Option<Platform>,
    /// The platforms the build runs on (the worker's); the host when empty.
    pub build_platforms: Vec<Platform>,
    /// Whether several platforms are built at once (changes progress names only).
    pub multi_platform: bool,
    /// Named build contexts (`--build-context NAME=VALUE`), by name.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `--no-cache` / `--no-cache-filter`.
    pub no_cache: NoCache,
    /// How base images are resolved (`--pull` gives [`ResolveMode::ForcePull`]).
    pub image_resolve_mode: ResolveMode,
    /// The session through which the client serves its local directories.
    pub session_id: String,
    /// The `.dockerignore` patterns of the main build context.
    pub context_excludes: Vec<String>,
    /// The network every `RUN` gets unless it says otherwise (`force-network-mode`).
    pub force_network: Option<kiln_llb::ops::NetMode>,
    /// The hostname of `RUN` containers (`BUILDKIT_SANDBOX_HOSTNAME`).
    pub hostname: Option<String>,
    /// Extra `/etc/hosts` entries of `RUN` containers (`--add-host`).
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// The size of `/dev/shm` in `RUN` containers, in bytes (`--shm-size`).
    pub shm_size: Option<i64>,
    /// Resource limits of `RUN` containers (`--ulimit name=soft:hard`).
    pub ulimits: Vec<(String, i64, i64)>,
    /// The cgroup parent of `RUN` containers (`--cgroup-parent`).
    pub cgroup_parent: Option<String>,
}

/// Which stages ignore the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NoCache {
    /// The cache is used (the default).
    #[default]
    None,
    /// No stage uses the cache (`--no-cache`).
    All,
    /// The named stages do not use the cache (`--no-cache-filter`), compared case-insensitively.
    Stages(Vec<String>),
}

impl NoCache {
    /// Whether the stage named `name` ignores the cache.
    pub fn applies_to(&self, name: &str) -> bool {
        match self {
            NoCache::None => false,
            NoCache::All => true,
            NoCache::Stages(stages) => stages.iter().any(|s| s.eq_ignore_ascii_case(name)),
        }
    }
}

/// What a named build context (`--build-context NAME=VALUE`) points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// `docker-image://REF`: an image.
    Image(String),
    /// `oci-layout://PATH[:TAG|@DIGEST]`: an image from an OCI layout the client serves.
    ///
    /// As buildx does, the client resolves the tag to a digest in the layout and lends the
    /// layout under a store id before converting: [`NamedContext::parse`] gives the path and the
    /// tag or digest as written, and the converter needs the store id and a digest. The image is
    /// then resolved through [`crate::ImageResolver::resolve_oci_layout`].
    OciLayout {
        /// The layout's store id in the session (the path, as parsed).
        store: String,
        /// The image in the layout: `:TAG@sha256:…` or `@sha256:…` (`:TAG` alone as parsed).
        reference: String,
    },
    /// A local directory the client serves under this name.
    Local {
        /// The name of the directory in the session.
        name: String,
        /// The directory's `.dockerignore` patterns.
        excludes: Vec<String>,
    },
    /// A git repository (`https://…git#ref:dir`, `git@…`).
    Git(String),
    /// A file or tarball over HTTP(S).
    Http(String),
}

impl NamedContext {
    /// Parses a `--build-context` value the way buildx does. A value without a scheme is a local
    /// directory; `local_name` is the name under which the client will serve it.
    pub fn parse(value: &str, local_name: &str) -> Result<NamedContext, String> {
        if let Some(r) = value.strip_prefix("docker-image://") {
            if r.is_empty() {
                return Err(format!(
                    "invalid context value {value:?}: empty image reference"
                ));
            }
            return Ok(NamedContext::Image(r.to_string()));
        }
        if let Some(r) = value.strip_prefix("oci-layout://") {
            let (store, reference) = match r.rsplit_once('@') {
                Some((p, d)) => (p.to_string(), format!("@{d}")),
                None => match r.rsplit_once(':') {
                    Some((p, tag)) if !tag.contains('/') => (p.to_string(), format!(":{tag}")),
                    _ => (r.to_string(), ":latest".to_string()),
                },
            };
            if store.is_empty() {
                return Err(format!(
                    "invalid context value {value:?}: empty layout path"
                ));
            }
            return Ok(NamedContext::OciLayout { store, reference });
        }
        if is_git_url(value) {
            return Ok(NamedContext::Git(value.to_string()));
        }
        if value.starts_with("http://") || value.starts_with("https://") {
            return Ok(NamedContext::Http(value.to_string()));
        }
        if value.contains("://") {
            return Err(format!(
                "invalid context value {value:?}: unsupported scheme"
            ));
        }
        Ok(NamedContext::Local {
            name: local_name.to_string(),
            excludes: Vec::new(),
        })
    }
}

/// Whether a context or `ADD` source is a git repository, as BuildKit's `dfgitutil` decides for
/// the common forms: `git@host:path`, `git://`, `ssh://`, and `http(s)://` URLs whose path ends
/// in `.git` (optionally followed by a `#ref[:dir]` fragment) or that carry a fragment.
pub fn is_git_url(s: &str) -> bool {
    if s.starts_with("git@") || s.starts_with("git://") || s.starts_with("ssh://") {
        return true;
    }
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    let (path, fragment) = match rest.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (rest, None),
    };
    let path = path.split('?').next().unwrap_or(path);
    path.ends_with(".git") || (fragment.is_some() && path.contains('/'))
}
