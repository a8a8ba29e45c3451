//! Source vertices: images, local directories, git repositories, URLs and OCI layouts, with the
//! identifiers and attributes `client/llb/source.go` writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_oci::Digest;

use super::gitutil::{self, GitUrlError};
use super::reference::normalize_image_ref;
use super::state::{Constraints, Node, NodeKind, Output, State, VertexOpts};
use crate::error::Error;

/// Source attribute keys (`solver/pb/attr.go`).
pub mod attr {
    /// Keep the `.git` directory.
    pub const GIT_KEEP_DIR: &str = "git.keepgitdir";
    /// The full remote URL.
    pub const GIT_FULL_URL: &str = "git.fullurl";
    /// Secret name of an HTTP auth header.
    pub const GIT_AUTH_HEADER_SECRET: &str = "git.authheadersecret";
    /// Secret name of an HTTP auth token.
    pub const GIT_AUTH_TOKEN_SECRET: &str = "git.authtokensecret";
    /// Known SSH host keys.
    pub const GIT_KNOWN_SSH_HOSTS: &str = "git.knownsshhosts";
    /// The SSH agent id to mount.
    pub const GIT_MOUNT_SSH_SOCK: &str = "git.mountsshsock";
    /// The expected commit checksum.
    pub const GIT_CHECKSUM: &str = "git.checksum";
    /// Do not fetch submodules.
    pub const GIT_SKIP_SUBMODULES: &str = "git.skipsubmodules";
    /// File modification time policy.
    pub const GIT_MTIME: &str = "git.mtime";
    /// The session of a local directory.
    pub const LOCAL_SESSION_ID: &str = "local.session";
    /// A unique id for a local directory without session.
    pub const LOCAL_UNIQUE_ID: &str = "local.unique";
    /// JSON list of include patterns.
    pub const LOCAL_INCLUDE_PATTERNS: &str = "local.includepattern";
    /// JSON list of paths to follow.
    pub const LOCAL_FOLLOW_PATHS: &str = "local.followpaths";
    /// JSON list of exclude patterns.
    pub const LOCAL_EXCLUDE_PATTERNS: &str = "local.excludepatterns";
    /// A hint to share the transfer cache between sessions.
    pub const LOCAL_SHARED_KEY_HINT: &str = "local.sharedkeyhint";
    /// How to compare files when transferring.
    pub const LOCAL_DIFFER: &str = "local.differ";
    /// The expected checksum of a download.
    pub const HTTP_CHECKSUM: &str = "http.checksum";
    /// The file name of a download.
    pub const HTTP_FILENAME: &str = "http.filename";
    /// Permission bits of a download, octal.
    pub const HTTP_PERM: &str = "http.perm";
    /// Owner uid of a download.
    pub const HTTP_UID: &str = "http.uid";
    /// Owner gid of a download.
    pub const HTTP_GID: &str = "http.gid";
    /// How to resolve an image.
    pub const IMAGE_RESOLVE_MODE: &str = "image.resolvemode";
    /// The record type of an image (`internal`).
    pub const IMAGE_RECORD_TYPE: &str = "image.recordtype";
    /// How many layers of an image to use.
    pub const IMAGE_LAYER_LIMIT: &str = "image.layerlimit";
    /// The session of an OCI layout.
    pub const OCI_SESSION_ID: &str = "oci.session";
    /// The store of an OCI layout.
    pub const OCI_STORE_ID: &str = "oci.store";
    /// How many layers of an OCI layout image to use.
    pub const OCI_LAYER_LIMIT: &str = "oci.layerlimit";
}

/// Capability ids (`solver/pb/caps.go`).
pub mod caps {
    #![allow(missing_docs)]
    pub const SOURCE_IMAGE: &str = "source.image";
    pub const SOURCE_IMAGE_RESOLVE_MODE: &str = "source.image.resolvemode";
    pub const SOURCE_IMAGE_LAYER_LIMIT: &str = "source.image.layerlimit";
    pub const SOURCE_LOCAL: &str = "source.local";
    pub const SOURCE_LOCAL_UNIQUE: &str = "source.local.unique";
    pub const SOURCE_LOCAL_SESSION_ID: &str = "source.local.sessionid";
    pub const SOURCE_LOCAL_INCLUDE_PATTERNS: &str = "source.local.includepatterns";
    pub const SOURCE_LOCAL_FOLLOW_PATHS: &str = "source.local.followpaths";
    pub const SOURCE_LOCAL_EXCLUDE_PATTERNS: &str = "source.local.excludepatterns";
    pub const SOURCE_LOCAL_SHARED_KEY_HINT: &str = "source.local.sharedkeyhint";
    pub const SOURCE_LOCAL_DIFFER: &str = "source.local.differ";
    pub const SOURCE_GIT: &str = "source.git";
    pub const SOURCE_GIT_KEEP_DIR: &str = "source.git.keepgitdir";
    pub const SOURCE_GIT_FULL_URL: &str = "source.git.fullurl";
    pub const SOURCE_GIT_HTTP_AUTH: &str = "source.git.httpauth";
    pub const SOURCE_GIT_KNOWN_SSH_HOSTS: &str = "source.git.knownsshhosts";
    pub const SOURCE_GIT_MOUNT_SSH_SOCK: &str = "source.git.mountsshsock";
    pub const SOURCE_GIT_SUBDIR: &str = "source.git.subdir";
    pub const SOURCE_GIT_CHECKSUM: &str = "source.git.checksum";
    pub const SOURCE_GIT_SKIP_SUBMODULES: &str = "source.git.skipsubmodules";
    pub const SOURCE_GIT_MTIME: &str = "source.git.mtime";
    pub const SOURCE_HTTP: &str = "source.http";
    pub const SOURCE_HTTP_CHECKSUM: &str = "source.http.checksum";
    pub const SOURCE_HTTP_PERM: &str = "source.http.perm";
    /// Spelled `soruce` upstream; kept as is because daemons compare it verbatim.
    pub const SOURCE_HTTP_UIDGID: &str = "soruce.http.uidgid";
    pub const SOURCE_OCI_LAYOUT: &str = "source.ocilayout";
    pub const EXEC_META_BASE: &str = "exec.meta.base";
    pub const EXEC_META_NETWORK: &str = "exec.meta.network";
    pub const EXEC_META_PROXY: &str = "exec.meta.proxyenv";
    pub const EXEC_META_SECURITY: &str = "exec.meta.security";
    pub const EXEC_META_ULIMIT: &str = "exec.meta.ulimit";
    pub const EXEC_META_CGROUP_PARENT: &str = "exec.meta.cgroup.parent";
    pub const EXEC_MOUNT_BIND: &str = "exec.mount.bind";
    pub const EXEC_MOUNT_CACHE: &str = "exec.mount.cache";
    pub const EXEC_MOUNT_CACHE_SHARING: &str = "exec.mount.cache.sharing";
    pub const EXEC_MOUNT_SELECTOR: &str = "exec.mount.selector";
    pub const EXEC_MOUNT_TMPFS: &str = "exec.mount.tmpfs";
    pub const EXEC_MOUNT_TMPFS_SIZE: &str = "exec.mount.tmpfs.size";
    pub const EXEC_MOUNT_SECRET: &str = "exec.mount.secret";
    pub const EXEC_MOUNT_SSH: &str = "exec.mount.ssh";
    pub const EXEC_MOUNT_CONTENT_CACHE: &str = "exec.mount.cache.content";
    pub const EXEC_SECRET_ENV: &str = "exec.secretenv";
    pub const EXEC_VALID_EXIT_CODE: &str = "exec.validexitcode";
    pub const FILE_BASE: &str = "file.base";
    pub const FILE_COPY_INCLUDE_EXCLUDE_PATTERNS: &str = "file.copy.includeexcludepatterns";
    pub const FILE_COPY_ALWAYS_REPLACE_EXISTING_DEST_PATHS: &str =
        "file.copy.alwaysreplaceexistingdestpaths";
    pub const FILE_COPY_MODE_STRING: &str = "file.copy.modestring";
    pub const FILE_SYMLINK_CREATE: &str = "file.symlink.create";
    pub const CONSTRAINTS: &str = "constraints";
    pub const PLATFORM: &str = "platform";
    pub const META_IGNORE_CACHE: &str = "meta.ignorecache";
    pub const META_DESCRIPTION: &str = "meta.description";
    pub const META_EXPORT_CACHE: &str = "meta.exportcache";
    pub const MERGE_OP: &str = "mergeop";
    pub const DIFF_OP: &str = "diffop";
}

/// How the daemon resolves an image reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResolveMode {
    /// The daemon's default (no attribute is written).
    #[default]
    Default,
    /// Always pull (`pull`).
    ForcePull,
    /// Prefer a local copy (`local`).
    PreferLocal,
}

/// Options of [`State::image`].
#[derive(Clone, Default)]
pub struct ImageOpts {
    /// How to resolve the reference.
    pub resolve_mode: ResolveMode,
    /// The record type (`internal` marks images the user did not ask for).
    pub record_type: Option<String>,
    /// Use only the first layers.
    pub layer_limit: Option<i32>,
    /// Platform, name and other per-vertex options; the platform selects the image variant.
    pub vertex: VertexOpts,
}

/// How a local directory is compared when transferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffType {
    /// Transfer everything.
    None,
    /// Compare metadata (the default behaviour).
    Metadata,
}

/// Options of [`State::local`].
#[derive(Clone, Default)]
pub struct LocalOpts {
    /// The session that serves the directory.
    pub session_id: Option<String>,
    /// A hint to share transfer caches between sessions.
    pub shared_key_hint: Option<String>,
    /// Only transfer paths matching these patterns.
    pub include_patterns: Vec<String>,
    /// Skip paths matching these patterns (`.dockerignore`).
    pub exclude_patterns: Vec<String>,
    /// Paths whose symlinks are followed.
    pub follow_paths: Vec<String>,
    /// The differ, and whether the daemon must support choosing it.
    pub differ: Option<(DiffType, bool)>,
    /// The unique id used when there is no session (BuildKit's `LocalUniqueID`); the marshal
    /// options supply one otherwise.
    pub unique_id: Option<String>,
    /// Per-vertex options.
    pub vertex: VertexOpts,
}

/// Options of [`State::git`].
#[derive(Clone, Default)]
pub struct GitOpts {
    /// The ref, overriding the one in the fragment argument.
    pub git_ref: Option<String>,
    /// The subdirectory, overriding the one in the fragment argument.
    pub subdir: Option<String>,
    /// Keep the `.git` directory.
    pub keep_git_dir: bool,
    /// The expected commit checksum.
    pub checksum: Option<String>,
    /// Do not fetch submodules.
    pub skip_submodules: bool,
    /// Set file times to the commit time.
    pub mtime_from_commit: bool,
    /// Secret name of the auth token; `None` keeps BuildKit's default `GIT_AUTH_TOKEN`.
    pub auth_token_secret: Option<String>,
    /// Secret name of the auth header; `None` keeps BuildKit's default `GIT_AUTH_HEADER`.
    pub auth_header_secret: Option<String>,
    /// Known host keys for SSH remotes (BuildKit would run `ssh-keyscan` when absent; kiln does not).
    pub known_ssh_hosts: Option<String>,
    /// The SSH agent id to mount for SSH remotes, `default` when absent.
    pub mount_ssh_sock: Option<String>,
    /// Per-vertex options.
    pub vertex: VertexOpts,
}

/// Options of [`State::http`].
#[derive(Clone, Default)]
pub struct HttpOpts {
    /// The expected checksum of the content.
    pub checksum: Option<Digest>,
    /// The name of the downloaded file.
    pub filename: Option<String>,
    /// Permission bits of the file (masked with 0o777).
    pub perm: Option<u32>,
    /// Owner uid.
    pub uid: Option<u32>,
    /// Owner gid.
    pub gid: Option<u32>,
    /// Per-vertex options.
    pub vertex: VertexOpts,
}

/// Options of [`State::oci_layout`].
#[derive(Clone, Default)]
pub struct OciLayoutOpts {
    /// The session that serves the content store.
    pub session_id: Option<String>,
    /// The content store id.
    pub store_id: Option<String>,
    /// Use only the first layers.
    pub layer_limit: Option<i32>,
    /// Per-vertex options; the platform selects the image variant.
    pub vertex: VertexOpts,
}

fn source_state(
    identifier: String,
    attrs: BTreeMap<String, String>,
    constraints: Constraints,
    error: Option<Error>,
) -> State {
    let node = Arc::new(Node {
        kind: NodeKind::Source {
            identifier,
            attrs,
            error,
        },
        constraints,
    });
    State::new(Some(Output { node, index: Ok(0) }))
}

impl State {
    /// An image from a registry (`docker-image://<normalized ref>`).
    ///
    /// An unparsable reference is kept verbatim and reported when the graph is marshalled, as
    /// BuildKit does.
    pub fn image(reference: &str, opts: ImageOpts) -> State {
        let (reference, error) = match normalize_image_ref(reference) {
            Ok(r) => (r, None),
            Err(e) => (reference.to_string(), Some(e)),
        };
        let mut c = opts.vertex.into_constraints();
        c.add_cap(caps::SOURCE_IMAGE);
        let mut attrs = BTreeMap::new();
        match opts.resolve_mode {
            ResolveMode::Default => {}
            ResolveMode::ForcePull => {
                attrs.insert(attr::IMAGE_RESOLVE_MODE.to_string(), "pull".to_string());
                c.add_cap(caps::SOURCE_IMAGE_RESOLVE_MODE);
            }
            ResolveMode::PreferLocal => {
                attrs.insert(attr::IMAGE_RESOLVE_MODE.to_string(), "local".to_string());
            }
        }
        if let Some(rt) = opts.record_type.filter(|r| !r.is_empty()) {
            attrs.insert(attr::IMAGE_RECORD_TYPE.to_string(), rt);
        }
        if let Some(limit) = opts.layer_limit {
            attrs.insert(attr::IMAGE_LAYER_LIMIT.to_string(), limit.to_string());
            c.add_cap(caps::SOURCE_IMAGE_LAYER_LIMIT);
        }
        source_state(format!("docker-image://{reference}"), attrs, c, error)
    }

    /// A directory of the client (`local://<name>`), transferred through a session.
    pub fn local(name: &str, opts: LocalOpts) -> State {
        let mut c = opts.vertex.into_constraints();
        c.local_unique_id = opts.unique_id;
        let mut attrs = BTreeMap::new();
        if let Some(session) = opts.session_id.filter(|s| !s.is_empty()) {
            attrs.insert(attr::LOCAL_SESSION_ID.to_string(), session);
            c.add_cap(caps::SOURCE_LOCAL_SESSION_ID);
        }
        if !opts.include_patterns.is_empty() {
            attrs.insert(
                attr::LOCAL_INCLUDE_PATTERNS.to_string(),
                kiln_gostd::json::marshal_strings(&opts.include_patterns),
            );
            c.add_cap(caps::SOURCE_LOCAL_INCLUDE_PATTERNS);
        }
        if !opts.follow_paths.is_empty() {
            attrs.insert(
                attr::LOCAL_FOLLOW_PATHS.to_string(),
                kiln_gostd::json::marshal_strings(&opts.follow_paths),
            );
            c.add_cap(caps::SOURCE_LOCAL_FOLLOW_PATHS);
        }
        if !opts.exclude_patterns.is_empty() {
            attrs.insert(
                attr::LOCAL_EXCLUDE_PATTERNS.to_string(),
                kiln_gostd::json::marshal_strings(&opts.exclude_patterns),
            );
            c.add_cap(caps::SOURCE_LOCAL_EXCLUDE_PATTERNS);
        }
        if let Some(hint) = opts.shared_key_hint.filter(|s| !s.is_empty()) {
            attrs.insert(attr::LOCAL_SHARED_KEY_HINT.to_string(), hint);
            c.add_cap(caps::SOURCE_LOCAL_SHARED_KEY_HINT);
        }
        if let Some((differ, required)) = opts.differ {
            let value = match differ {
                DiffType::None => "none",
                DiffType::Metadata => "metadata",
            };
            attrs.insert(attr::LOCAL_DIFFER.to_string(), value.to_string());
            if required {
                c.add_cap(caps::SOURCE_LOCAL_DIFFER);
            }
        }
        c.add_cap(caps::SOURCE_LOCAL);
        source_state(format!("local://{name}"), attrs, c, None)
    }

    /// A git repository (`git://host/path#ref:subdir`).
    ///
    /// `fragment` is `ref` or `ref:subdir`; [`GitOpts::git_ref`] and [`GitOpts::subdir`] override
    /// its parts. Remotes without a scheme get `https://`, as in BuildKit.
    pub fn git(remote: &str, fragment: &str, opts: GitOpts) -> State {
        let mut url = remote.to_string();
        let mut parsed = gitutil::parse_url(&url);
        if parsed == Err(GitUrlError::UnknownProtocol) {
            url = format!("https://{url}");
            parsed = gitutil::parse_url(&url);
        }
        if let Ok(p) = &parsed {
            url.clone_from(&p.remote);
        }
        let (frag_ref, frag_subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        let git_ref = opts.git_ref.clone().unwrap_or_else(|| frag_ref.to_string());
        let subdir = opts
            .subdir
            .clone()
            .unwrap_or_else(|| frag_subdir.to_string());
        let id = match &parsed {
            Ok(p) => gitutil::identifier(p, &git_ref, &subdir),
            Err(_) => url.clone(),
        };

        let mut c = opts.vertex.into_constraints();
        let mut attrs = BTreeMap::new();
        if opts.keep_git_dir {
            attrs.insert(attr::GIT_KEEP_DIR.to_string(), "true".to_string());
            c.add_cap(caps::SOURCE_GIT_KEEP_DIR);
        }
        if !url.is_empty() {
            attrs.insert(attr::GIT_FULL_URL.to_string(), url.clone());
            c.add_cap(caps::SOURCE_GIT_FULL_URL);
        }
        for (key, value, default) in [
            (
                attr::GIT_AUTH_TOKEN_SECRET,
                &opts.auth_token_secret,
                "GIT_AUTH_TOKEN",
            ),
            (
                attr::GIT_AUTH_HEADER_SECRET,
                &opts.auth_header_secret,
                "GIT_AUTH_HEADER",
            ),
        ] {
            let v = value.as_deref().unwrap_or(default);
            if !v.is_empty() {
                attrs.insert(key.to_string(), v.to_string());
                if value.is_some() {
                    c.add_cap(caps::SOURCE_GIT_HTTP_AUTH);
                }
            }
        }
        if parsed.as_ref().is_ok_and(|p| p.scheme == "ssh") {
            if let Some(hosts) = opts.known_ssh_hosts.as_ref().filter(|h| !h.is_empty()) {
                attrs.insert(attr::GIT_KNOWN_SSH_HOSTS.to_string(), hosts.clone());
            }
            c.add_cap(caps::SOURCE_GIT_KNOWN_SSH_HOSTS);
            let sock = opts
                .mount_ssh_sock
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".to_string());
            attrs.insert(attr::GIT_MOUNT_SSH_SOCK.to_string(), sock);
            c.add_cap(caps::SOURCE_GIT_MOUNT_SSH_SOCK);
        }
        if !subdir.is_empty() {
            c.add_cap(caps::SOURCE_GIT_SUBDIR);
        }
        if let Some(sum) = opts.checksum.filter(|s| !s.is_empty()) {
            attrs.insert(attr::GIT_CHECKSUM.to_string(), sum);
            c.add_cap(caps::SOURCE_GIT_CHECKSUM);
        }
        if opts.skip_submodules {
            attrs.insert(attr::GIT_SKIP_SUBMODULES.to_string(), "true".to_string());
            c.add_cap(caps::SOURCE_GIT_SKIP_SUBMODULES);
        }
        if opts.mtime_from_commit {
            attrs.insert(attr::GIT_MTIME.to_string(), "commit".to_string());
            c.add_cap(caps::SOURCE_GIT_MTIME);
        }
        c.add_cap(caps::SOURCE_GIT);
        source_state(format!("git://{id}"), attrs, c, None)
    }

    /// A file downloaded over HTTP(S); the URL is the identifier.
    pub fn http(url: &str, opts: HttpOpts) -> State {
        let mut c = opts.vertex.into_constraints();
        let mut attrs = BTreeMap::new();
        if let Some(sum) = opts.checksum {
            attrs.insert(attr::HTTP_CHECKSUM.to_string(), sum.to_string());
            c.add_cap(caps::SOURCE_HTTP_CHECKSUM);
        }
        if let Some(name) = opts.filename.filter(|f| !f.is_empty()) {
            attrs.insert(attr::HTTP_FILENAME.to_string(), name);
        }
        if let Some(perm) = opts.perm.map(|p| p & 0o777).filter(|p| *p != 0) {
            attrs.insert(attr::HTTP_PERM.to_string(), format!("0{perm:o}"));
            c.add_cap(caps::SOURCE_HTTP_PERM);
        }
        if let Some(uid) = opts.uid.filter(|u| *u != 0) {
            attrs.insert(attr::HTTP_UID.to_string(), uid.to_string());
            c.add_cap(caps::SOURCE_HTTP_UIDGID);
        }
        if let Some(gid) = opts.gid.filter(|g| *g != 0) {
            attrs.insert(attr::HTTP_GID.to_string(), gid.to_string());
            c.add_cap(caps::SOURCE_HTTP_UIDGID);
        }
        c.add_cap(caps::SOURCE_HTTP);
        source_state(url.to_string(), attrs, c, None)
    }

    /// An image from an OCI layout served by the client (`oci-layout://<ref>`).
    pub fn oci_layout(reference: &str, opts: OciLayoutOpts) -> State {
        let mut c = opts.vertex.into_constraints();
        let mut attrs = BTreeMap::new();
        if let Some(s) = opts.session_id.filter(|s| !s.is_empty()) {
            attrs.insert(attr::OCI_SESSION_ID.to_string(), s);
        }
        if let Some(s) = opts.store_id.filter(|s| !s.is_empty()) {
            attrs.insert(attr::OCI_STORE_ID.to_string(), s);
        }
        if let Some(limit) = opts.layer_limit {
            attrs.insert(attr::OCI_LAYER_LIMIT.to_string(), limit.to_string());
        }
        c.add_cap(caps::SOURCE_OCI_LAYOUT);
        source_state(format!("oci-layout://{reference}"), attrs, c, None)
    }

    /// A source with an arbitrary identifier and attributes (BuildKit's `NewSource`).
    pub fn source(identifier: &str, attrs: BTreeMap<String, String>, vertex: VertexOpts) -> State {
        source_state(
            identifier.to_string(),
            attrs,
            vertex.into_constraints(),
            None,
        )
    }
}
