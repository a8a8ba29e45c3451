//! Git sources (`ADD git@…`, `ADD https://…/repo.git#ref:subdir`, git build contexts), through
//! the `git` binary.
//!
//! The semantics are BuildKit's (`source/git`). Resolution, before the build runs, turns the
//! ref into a commit with `git ls-remote` (a full 40-hex commit needs no network), and the
//! cache key is that commit, the subdirectory and whether `.git` is kept: the same commit
//! fetched again is a cache hit whatever the ref was called. The objects are fetched into a
//! bare repository kept per remote under the state directory (`git/<sha256 of remote>`), so a
//! later fetch of the same remote only transfers what is new; named refs are fetched shallow
//! (`--depth=1`), commits in full. The checkout goes into a new snapshot: the tree only, or with
//! `--keep-git-dir` a repository of its own whose `origin` is the remote; a subdirectory's
//! content becomes the snapshot's root. Modes are those git gives under umask 022 (0644 and
//! 0755), owners root.
//!
//! Private repositories over HTTP(S) authenticate as with BuildKit, from the build's secrets:
//! the source names two (attributes `git.authheadersecret` and `git.authtokensecret`, which
//! the Dockerfile frontend sets to `GIT_AUTH_HEADER` and `GIT_AUTH_TOKEN`), looked up first in
//! their per-host forms (`GIT_AUTH_TOKEN.github.com`), header before token. A header secret is
//! the `Authorization` value itself; a token becomes `basic base64(x-access-token:TOKEN)`.
//! The header reaches git through `http.<remote>.extraheader` (scoped to the remote, or to all
//! of `https://github.com/` for a GitHub remote, as `actions/checkout` does), given in the
//! `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/`GIT_CONFIG_VALUE_0` environment of the commands that
//! talk to the remote: never in a command line (`ps`), a cache key, an error message, the
//! repository's configuration or any other file.
//!
//! Private repositories over SSH (`git@host:repo.git`, `ssh://…`) authenticate as with
//! BuildKit, with the build's SSH agent: the source names one (attribute `git.mountsshsock`,
//! which `llb.Git` sets to `default` for SSH remotes), served for the duration of the git
//! commands on a private socket of the session directory (the same proxy as `RUN
//! --mount=type=ssh`) given to git as `SSH_AUTH_SOCK`; a build without that agent fails with
//! an error naming it. Known hosts (`git.knownsshhosts`) go to a private file that ssh checks
//! the host key against strictly; without them any host key is accepted, as in BuildKit. The
//! ssh command is BuildKit's made hermetic (see [`ssh_command`]): no prompt, no key file of the
//! user's, the user's `known_hosts` untouched. Neither the agent nor the socket is part of the
//! cache key.
//!
//! Every git command runs without system or user configuration (`GIT_CONFIG_NOSYSTEM`,
//! `HOME=/dev/null`), without prompts, with `protocol.file.allow=user` (no sneaky local
//! submodules), and with `--` before positional arguments; refs and subdirectories that start
//! with `-` are refused outright (CVE-2019-13139: a ref such as `--upload-pack=…` ran commands
//! in `docker build`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use kiln_solver::{BoxError, BoxFuture, CacheKeyInput, ExecCtx, Op};

use crate::Parts;
use crate::cachekey::KeyWriter;
use crate::error::{Error, Result};
use crate::mounts::unique_id;
use crate::ops::{boxed, commit, prepare_mounted};
use crate::refs::Ref;
use crate::session::{Session, SshAgents, SshProxy, session_dir};
use crate::task::blocking;

/// What a git source op asks for (its identifier and attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitSpec {
    /// The remote handed to git.
    pub remote: String,
    /// The ref (branch, tag, full ref or commit); empty for the default branch.
    pub git_ref: String,
    /// The subdirectory whose content is the result; empty for the whole tree.
    pub subdir: String,
    /// Whether `.git` is kept.
    pub keep_git_dir: bool,
    /// The commit the ref must resolve to (`git.checksum`).
    pub checksum: Option<String>,
    /// Whether submodules are left out.
    pub skip_submodules: bool,
    /// The secret holding an `Authorization` header value (`git.authheadersecret`).
    pub auth_header_secret: Option<String>,
    /// The secret holding a token (`git.authtokensecret`).
    pub auth_token_secret: Option<String>,
    /// The SSH agent served to git (`git.mountsshsock`, which `llb.Git` sets to `default` for
    /// SSH remotes); `None` when the attribute is absent or empty, as in BuildKit.
    pub mount_ssh_sock: Option<String>,
    /// The known hosts lines ssh checks the host key against (`git.knownsshhosts`); without
    /// them any host key is accepted, as in BuildKit.
    pub known_ssh_hosts: Option<String>,
}

impl GitSpec {
    /// Reads a git source op: `identifier` without its `git://` prefix (`host/path#ref:subdir`)
    /// and its attributes (`git.fullurl` gives the remote).
    pub fn parse(identifier: &str, attrs: &BTreeMap<String, String>) -> Result<GitSpec> {
        let (location, fragment) = identifier.split_once('#').unwrap_or((identifier, ""));
        let (git_ref, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        let remote = match attrs.get("git.fullurl").filter(|u| !u.is_empty()) {
            Some(u) if is_git_transport(u) => u.clone(),
            Some(u) => format!("https://{u}"),
            None => format!("https://{location}"),
        };
        let spec = GitSpec {
            remote,
            git_ref: git_ref.to_string(),
            subdir: subdir.to_string(),
            keep_git_dir: attrs.get("git.keepgitdir").is_some_and(|v| v == "true"),
            checksum: attrs.get("git.checksum").filter(|c| !c.is_empty()).cloned(),
            skip_submodules: attrs.get("git.skipsubmodules").is_some_and(|v| v == "true"),
            auth_header_secret: attrs
                .get("git.authheadersecret")
                .filter(|v| !v.is_empty())
                .cloned(),
            auth_token_secret: attrs
                .get("git.authtokensecret")
                .filter(|v| !v.is_empty())
                .cloned(),
            mount_ssh_sock: attrs
                .get("git.mountsshsock")
                .filter(|v| !v.is_empty())
                .cloned(),
            known_ssh_hosts: attrs
                .get("git.knownsshhosts")
                .filter(|v| !v.is_empty())
                .cloned(),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Refuses what git could take for an option (CVE-2019-13139) or what leaves the checkout.
    fn validate(&self) -> Result<()> {
        for (what, value) in [
            ("ref", &self.git_ref),
            ("subdirectory", &self.subdir),
            ("remote", &self.remote),
        ] {
            if value.starts_with('-') {
                return Err(Error::Git(format!(
                    "invalid git {what} {value:?}: must not start with \"-\""
                )));
            }
            if value.chars().any(char::is_control) {
                return Err(Error::Git(format!(
                    "invalid git {what} {value:?}: control characters are not allowed"
                )));
            }
        }
        if self.subdir.split('/').any(|c| c == "..") {
            return Err(Error::Git(format!(
                "invalid git subdirectory {:?}: must stay inside the repository",
                self.subdir
            )));
        }
        Ok(())
    }

    /// The subdirectory, cleaned (`.` for the whole tree).
    fn clean_subdir(&self) -> String {
        let parts: Vec<&str> = self
            .subdir
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if parts.is_empty() {
            ".".to_string()
        } else {
            parts.join("/")
        }
    }
}

/// Whether a remote names its transport (`http(s)://`, `git://`, `ssh://`, `git@`), as
/// BuildKit's `isGitTransport`.
fn is_git_transport(remote: &str) -> bool {
    ["http://", "https://", "git://", "ssh://", "file://"]
        .iter()
        .any(|p| remote.starts_with(p))
        || remote.starts_with("git@")
}

/// Whether a ref is a full commit id.
fn is_commit_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The host (and port) of an HTTP(S) remote, as Go's `url.URL.Host` gives it; `None` for
/// other transports, which take no header.
fn http_host(remote: &str) -> Option<&str> {
    let rest = remote
        .strip_prefix("https://")
        .or_else(|| remote.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then_some(host)
}

/// Where git sends the header: the remote itself, or every GitHub repository for a GitHub
/// remote (BuildKit's `tokenScope`).
fn token_scope(remote: &str) -> &str {
    ["https://github.com/", "https://www.github.com/"]
        .into_iter()
        .find(|p| remote.starts_with(p))
        .unwrap_or(remote)
}

/// The remote with the password of its user information hidden, for messages (BuildKit's
/// `RedactCredentials`).
fn redacted(remote: &str) -> String {
    let Some((scheme, rest)) = remote.split_once("://") else {
        return remote.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:xxxxx@{host}{path}"),
            None => remote.to_string(),
        },
        None => remote.to_string(),
    }
}

/// The `Authorization` header git sends to an HTTP(S) remote, from the build's secrets. Its
/// `Debug` output shows where it goes, never the value.
#[derive(Clone)]
pub(crate) struct GitAuth {
    /// The URL prefix of `http.<url>.extraheader`.
    scope: String,
    /// `Authorization: …`.
    header: String,
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitAuth")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl GitAuth {
    /// The header of the first secret the session holds, in BuildKit's order: the header
    /// secret for the remote's host, the token secret for the host, the header secret, the
    /// token secret. `None` when it holds none of them, or for a remote that is not HTTP(S).
    pub fn from_session(spec: &GitSpec, session: &Session) -> Result<Option<GitAuth>> {
        use base64::Engine as _;
        let Some(host) = http_host(&spec.remote) else {
            return Ok(None);
        };
        let mut names: Vec<(String, bool)> = Vec::new();
        if let Some(h) = &spec.auth_header_secret {
            names.push((format!("{h}.{host}"), false));
        }
        if let Some(t) = &spec.auth_token_secret {
            names.push((format!("{t}.{host}"), true));
        }
        if let Some(h) = &spec.auth_header_secret {
            names.push((h.clone(), false));
        }
        if let Some(t) = &spec.auth_token_secret {
            names.push((t.clone(), true));
        }
        for (name, token) in names {
            let Some(value) = session.secrets.get(&name)? else {
                continue;
            };
            let value = if token {
                let mut credentials = b"x-access-token:".to_vec();
                credentials.extend_from_slice(&value);
                format!(
                    "basic {}",
                    base64::engine::general_purpose::STANDARD.encode(credentials)
                )
            } else {
                String::from_utf8_lossy(&value).into_owned()
            };
            return Ok(Some(GitAuth {
                scope: token_scope(&spec.remote).to_string(),
                header: format!("Authorization: {value}"),
            }));
        }
        Ok(None)
    }

    /// Gives the header to a git command through its environment.
    fn apply(&self, cmd: &mut Command) {
        cmd.env("GIT_CONFIG_COUNT", "1")
            .env(
                "GIT_CONFIG_KEY_0",
                format!("http.{}.extraheader", self.scope),
            )
            .env("GIT_CONFIG_VALUE_0", &self.header);
    }
}

/// How the git commands that talk to the remote reach it: the header of an HTTP(S) remote, the
/// agent socket and known hosts file of an SSH remote. Plain paths, so that it can go to the
/// blocking threads that run git while [`SshGuard`] keeps what they name alive.
#[derive(Debug, Clone, Default)]
struct Access {
    /// The `Authorization` header (HTTP(S) remotes).
    auth: Option<GitAuth>,
    /// The socket where the build's SSH agent answers (`SSH_AUTH_SOCK`).
    ssh_auth_sock: Option<PathBuf>,
    /// The file of known hosts ssh checks the host key against.
    known_hosts: Option<PathBuf>,
}

/// What serves an SSH remote while git talks to it: the agent's socket (in a private
/// directory) and the known hosts file, both in the session directory, removed on drop.
#[derive(Default)]
struct SshGuard {
    _proxy: Option<SshProxy>,
    _known_hosts: Option<tempfile::NamedTempFile>,
}

/// The access to the remote for one phase of the op (resolution or fetch): the header, and for
/// an SSH remote the agent the op names (`git.mountsshsock`) served on a socket of this process,
/// and its known hosts written to a file. A missing agent is an error naming its id. Must run
/// within the tokio runtime.
fn open_access(
    root: &Path,
    spec: &GitSpec,
    agents: &SshAgents,
    auth: Option<GitAuth>,
) -> Result<(Access, SshGuard)> {
    let fail = |e: Error| {
        Error::Git(format!(
            "failed to fetch remote {}: {e}",
            redacted(&spec.remote)
        ))
    };
    let mut access = Access {
        auth,
        ..Access::default()
    };
    let mut guard = SshGuard::default();
    let dir = session_dir(root);
    if let Some(id) = &spec.mount_ssh_sock {
        let agent = agents.agent(id).map_err(fail)?;
        let proxy = SshProxy::start(
            &dir,
            Arc::clone(agent),
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
            0o600,
        )
        .map_err(fail)?;
        access.ssh_auth_sock = Some(proxy.socket().to_path_buf());
        guard._proxy = Some(proxy);
    }
    if let Some(hosts) = &spec.known_ssh_hosts {
        use std::io::Write as _;
        let mut file = tempfile::Builder::new()
            .prefix("known-hosts-")
            .tempfile_in(&dir)
            .map_err(|e| fail(Error::io("creating a known hosts file in", &dir, e)))?;
        file.write_all(hosts.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| fail(Error::io("writing", file.path(), e)))?;
        access.known_hosts = Some(file.path().to_path_buf());
        guard._known_hosts = Some(file);
    }
    Ok((access, guard))
}

/// The ssh command git runs (`GIT_SSH_COMMAND`, read by a shell): BuildKit's (`ssh -F
/// /dev/null`, the known hosts file when the op gives one, else any host key accepted), made
/// hermetic for a builder that runs in the user's session where BuildKit runs in a daemon: no
/// prompts on the user's terminal (`BatchMode`, `StrictHostKeyChecking=yes` rather than `ask`),
/// no key files of the user's own (`IdentityFile=none`: only the build's agent authenticates),
/// and the user's `~/.ssh/known_hosts` neither read nor written.
fn ssh_command(known_hosts: Option<&Path>) -> String {
    let mut cmd = "ssh -F /dev/null -o BatchMode=yes -o IdentityFile=none".to_string();
    match known_hosts {
        Some(file) => {
            cmd.push_str(" -o StrictHostKeyChecking=yes -o UserKnownHostsFile=");
            cmd.push_str(&shell_quote(&file.to_string_lossy()));
        }
        None => cmd.push_str(
            " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        ),
    }
    cmd
}

/// A word quoted for the shell (`'…'`, a quote inside as `'\''`).
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// A git command that talks to the remote, with the header or the agent and known hosts.
fn git_remote(access: &Access) -> Command {
    let mut cmd = git();
    if let Some(auth) = &access.auth {
        auth.apply(&mut cmd);
    }
    cmd.env(
        "GIT_SSH_COMMAND",
        ssh_command(access.known_hosts.as_deref()),
    );
    if let Some(sock) = &access.ssh_auth_sock {
        cmd.env("SSH_AUTH_SOCK", sock);
    }
    cmd
}

/// A git source op, resolved to a commit.
pub(crate) struct GitSource {
    parts: Arc<Parts>,
    spec: GitSpec,
    /// The ref to fetch (the default branch when none was given).
    git_ref: String,
    /// What `git ls-remote` gave for it (or the commit itself).
    commit: String,
    /// The header for an HTTP(S) remote, from the build's secrets.
    auth: Option<GitAuth>,
    /// The build's SSH agents, for an SSH remote.
    agents: SshAgents,
}

impl GitSource {
    /// Resolves the ref to a commit with `git ls-remote` (no network for a full commit id),
    /// authenticated with the session's secrets (see [`GitAuth::from_session`]) or, for an SSH
    /// remote, the session's agent that the op names.
    pub async fn resolve(parts: Arc<Parts>, spec: GitSpec, session: &Session) -> Result<GitSource> {
        let auth = GitAuth::from_session(&spec, session)?;
        let (git_ref, commit) = if is_commit_sha(&spec.git_ref) {
            (spec.git_ref.clone(), spec.git_ref.clone())
        } else {
            let (access, guard) = open_access(&parts.root, &spec, &session.ssh, auth.clone())?;
            let spec2 = spec.clone();
            let resolved = blocking(move || resolve_ref(&spec2, &access)).await;
            drop(guard);
            resolved?
        };
        if let Some(want) = &spec.checksum
            && !commit.starts_with(want.as_str())
        {
            return Err(Error::Git(format!(
                "expected checksum to match {want}, got {commit}"
            )));
        }
        Ok(GitSource {
            parts,
            spec,
            git_ref,
            commit,
            auth,
            agents: session.ssh.clone(),
        })
    }
}

impl Op<Ref> for GitSource {
    /// As BuildKit's `shaToCacheKey`: the commit, whether `.git` is kept, the subdirectory.
    fn cache_key(&self) -> CacheKeyInput {
        let mut w = KeyWriter::new("kiln.source.git.v1");
        w.str(&self.commit)
            .bool(self.spec.keep_git_dir)
            .str(&self.spec.clean_subdir())
            .bool(self.spec.skip_submodules);
        CacheKeyInput::new("kiln.source.git.v1", w.finish())
    }

    fn exec<'a>(
        &'a self,
        _ctx: &'a ExecCtx,
        _inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, BoxError>> {
        let parts = Arc::clone(&self.parts);
        let spec = self.spec.clone();
        let git_ref = self.git_ref.clone();
        let commit = self.commit.clone();
        let auth = self.auth.clone();
        let agents = self.agents.clone();
        Box::pin(async move {
            let (access, guard) = open_access(&parts.root, &spec, &agents, auth).map_err(boxed)?;
            let result =
                blocking(move || snapshot(&parts, &spec, &git_ref, &commit, &access)).await;
            drop(guard);
            result.map(|r| vec![r]).map_err(boxed)
        })
    }
}

/// A `git` command with BuildKit's isolation: no system or user configuration, no prompts,
/// local protocols only when the user asked for them.
fn git() -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", "/dev/null")
        .env("LC_ALL", "C")
        .env("GIT_SSH_COMMAND", ssh_command(None))
        .args(["-c", "protocol.file.allow=user"])
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs a git command; its stdout, or an error with its stderr.
fn run(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| Error::Git(format!("{what}: running git: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Git(format!("{what}: {}", stderr.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a git command that talks to the remote; when it fails for want of credentials and the
/// build has none for this remote, the error says which secrets would give them.
fn run_remote(cmd: Command, what: &str, spec: &GitSpec, access: &Access) -> Result<String> {
    run(cmd, what).map_err(|e| match e {
        Error::Git(msg) if access.auth.is_none() && needs_credentials(&msg) => {
            match (http_host(&spec.remote), &spec.auth_token_secret) {
                (Some(host), Some(token)) => Error::Git(format!(
                    "{msg} (the remote asks for credentials: give a token with \
                     --secret id={token},env=VAR or id={token}.{host},src=FILE)"
                )),
                _ => Error::Git(msg),
            }
        }
        other => other,
    })
}

/// Whether git's message says the remote wants credentials it could not ask for.
fn needs_credentials(message: &str) -> bool {
    message.contains("could not read Username")
        || message.contains("could not read Password")
        || message.contains("Authentication failed")
}

/// The ref to fetch and the commit it names.
fn resolve_ref(spec: &GitSpec, access: &Access) -> Result<(String, String)> {
    let what = format!("failed to fetch remote {}", redacted(&spec.remote));
    let mut git_ref = spec.git_ref.clone();
    if git_ref.is_empty() {
        let mut cmd = git_remote(access);
        cmd.args(["ls-remote", "--symref", "--", &spec.remote, "HEAD"]);
        let out = run_remote(cmd, &what, spec, access)?;
        git_ref = out
            .lines()
            .find_map(|l| {
                l.strip_prefix("ref: refs/heads/")
                    .and_then(|r| r.split_whitespace().next())
            })
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Git(format!(
                    "could not find default branch for repository: {}",
                    redacted(&spec.remote)
                ))
            })?;
    }
    if is_commit_sha(&git_ref) {
        return Ok((git_ref.clone(), git_ref));
    }
    let mut cmd = git_remote(access);
    cmd.args(["ls-remote", "--", &spec.remote, &git_ref]);
    let out = run_remote(cmd, &what, spec, access)?;
    let Some((sha, _)) = out.split_once('\t') else {
        return Err(Error::Git(format!(
            "repository does not contain ref {git_ref}, output: {out:?}"
        )));
    };
    if !is_commit_sha(sha) {
        return Err(Error::Git(format!("invalid commit sha {sha:?}")));
    }
    Ok((git_ref, sha.to_string()))
}

/// The bare repository that caches a remote's objects, created on first use (under a
/// temporary name, renamed into place, so that a crash leaves nothing half-made).
fn bare_repo(root: &Path, remote: &str) -> Result<PathBuf> {
    let dir = root.join("git");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    let name = hex::encode(sha2::Digest::finalize(
        <sha2::Sha256 as sha2::Digest>::new_with_prefix(remote.as_bytes()),
    ));
    let repo = dir.join(&name);
    if repo.is_dir() {
        return Ok(repo);
    }
    let tmp = dir.join(unique_id(&format!("{name}.tmp-")));
    let made = (|| {
        let mut cmd = git();
        cmd.args(["-c", "init.defaultBranch=master", "init", "--bare", "--"])
            .arg(&tmp);
        run(cmd, &format!("failed to init repo at {}", tmp.display()))?;
        let mut cmd = git();
        cmd.arg("--git-dir")
            .arg(&tmp)
            .args(["remote", "add", "--", "origin", remote]);
        run(cmd, &format!("failed add origin repo at {}", tmp.display()))?;
        std::fs::rename(&tmp, &repo).map_err(|e| Error::io("renaming into", &repo, e))
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another op of the same build may have made it meanwhile.
        if repo.is_dir() {
            return Ok(repo);
        }
        return Err(e);
    }
    Ok(repo)
}

/// Holds an exclusive lock on a file while alive (one op at a time per bare repository).
struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    fn acquire(path: &Path) -> Result<FileLock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("opening", path, e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io("locking", path, e.into()))?;
        Ok(FileLock { _file: file })
    }
}

/// Fetches the commit into the remote's bare repository and checks it out into a new snapshot.
fn snapshot(
    parts: &Parts,
    spec: &GitSpec,
    git_ref: &str,
    commit_sha: &str,
    access: &Access,
) -> Result<Ref> {
    let bare = bare_repo(&parts.root, &spec.remote)?;
    let _lock = FileLock::acquire(&bare.with_extension("lock"))?;
    fetch(&bare, spec, git_ref, commit_sha, access)?;

    let (key, mounted) = prepare_mounted(parts, &Ref::Scratch)?;
    let result = checkout(&bare, spec, commit_sha, mounted.path(), access);
    match result {
        Ok(()) => commit(parts, key, mounted, "git/"),
        Err(e) => {
            drop(mounted);
            let _ = parts.snapshots.remove(&key);
            Err(e)
        }
    }
}

/// Brings `commit_sha` into the bare repository unless it is there already.
fn fetch(
    bare: &Path,
    spec: &GitSpec,
    git_ref: &str,
    commit_sha: &str,
    access: &Access,
) -> Result<()> {
    let mut cmd = git();
    cmd.arg("--git-dir")
        .arg(bare)
        .args(["cat-file", "-e", "--end-of-options"])
        .arg(format!("{commit_sha}^{{commit}}"));
    let present = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    // A fetch killed earlier may have left its lock.
    let _ = std::fs::remove_file(bare.join("shallow.lock"));
    let mut cmd = git_remote(access);
    cmd.arg("--git-dir").arg(bare).arg("fetch");
    if is_commit_sha(git_ref) {
        if bare.join("shallow").exists() {
            cmd.arg("--unshallow");
        }
        cmd.args(["--", "origin"]);
    } else {
        // The ref is kept as a local tag so that later fetches negotiate from it; forced, as a
        // branch moves.
        cmd.args(["--depth=1", "--no-tags", "--force", "--", "origin"])
            .arg(format!("{git_ref}:tags/{git_ref}"));
    }
    run_remote(
        cmd,
        &format!("failed to fetch remote {}", redacted(&spec.remote)),
        spec,
        access,
    )?;
    let mut cmd = git();
    cmd.arg("--git-dir")
        .arg(bare)
        .args(["reflog", "expire", "--all", "--expire=now"]);
    run(
        cmd,
        &format!(
            "failed to expire reflog for remote {}",
            redacted(&spec.remote)
        ),
    )?;
    Ok(())
}

/// Checks `commit_sha` out into `dest` (the subdirectory's content, or the tree, with `.git`
/// when asked for).
fn checkout(
    bare: &Path,
    spec: &GitSpec,
    commit_sha: &str,
    dest: &Path,
    access: &Access,
) -> Result<()> {
    let what = format!("failed to checkout remote {}", redacted(&spec.remote));
    let subdir = spec.clean_subdir();
    let git_dir = if spec.keep_git_dir && subdir == "." {
        let dot_git = dest.join(".git");
        let mut cmd = git();
        cmd.args(["-c", "init.defaultBranch=master", "init", "--"])
            .arg(dest);
        run(cmd, &what)?;
        // The file protocol disables local-clone shortcuts (hard links into the cache).
        let mut cmd = git();
        cmd.arg("--git-dir")
            .arg(&dot_git)
            .args(["remote", "add", "--", "origin"])
            .arg(format!("file://{}", bare.display()));
        run(cmd, &what)?;
        let pull_ref = format!("refs/kiln/{}", unique_id(""));
        let mut cmd = git();
        cmd.arg("--git-dir")
            .arg(bare)
            .args(["update-ref", "--", &pull_ref, commit_sha]);
        run(cmd, &what)?;
        let mut cmd = git();
        cmd.arg("--git-dir").arg(&dot_git).args([
            "fetch",
            "-u",
            "--depth=1",
            "--",
            "origin",
            &pull_ref,
        ]);
        let fetched = run(cmd, &what);
        let mut cmd = git();
        cmd.arg("--git-dir")
            .arg(bare)
            .args(["update-ref", "-d", "--", &pull_ref]);
        let _ = run(cmd, &what);
        fetched?;
        let mut cmd = git();
        cmd.arg("--git-dir")
            .arg(&dot_git)
            .arg("--work-tree")
            .arg(dest)
            .current_dir(dest)
            .args(["checkout", "FETCH_HEAD"]);
        run(cmd, &what)?;
        let mut cmd = git();
        cmd.arg("--git-dir").arg(&dot_git).args([
            "remote",
            "set-url",
            "--",
            "origin",
            &redacted(&spec.remote),
        ]);
        run(cmd, &what)?;
        let mut cmd = git();
        cmd.arg("--git-dir")
            .arg(&dot_git)
            .args(["reflog", "expire", "--all", "--expire=now"]);
        run(cmd, &what)?;
        match std::fs::remove_file(dot_git.join("FETCH_HEAD")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", dot_git.join("FETCH_HEAD"), e)),
        }
        dot_git
    } else {
        let work = if subdir == "." {
            dest.to_path_buf()
        } else {
            let w = dest.join(unique_id(".checkout-"));
            std::fs::create_dir(&w).map_err(|e| Error::io("creating", &w, e))?;
            w
        };
        // A private index, so that the shared bare repository is never changed by a checkout.
        let index = work.with_extension("index");
        let mut cmd = git();
        cmd.arg("--git-dir")
            .arg(bare)
            .arg("--work-tree")
            .arg(&work)
            .current_dir(&work)
            .env("GIT_INDEX_FILE", &index)
            .args(["checkout", commit_sha, "--", "."]);
        let checked = run(cmd, &what);
        let _ = std::fs::remove_file(&index);
        checked?;
        if subdir != "." {
            let from = work.join(&subdir);
            let meta = std::fs::symlink_metadata(&from)
                .map_err(|e| Error::Git(format!("failed to open subdir {subdir}: {e}")))?;
            if !meta.is_dir() {
                return Err(Error::Git(format!(
                    "failed to open subdir {subdir}: not a directory"
                )));
            }
            for entry in std::fs::read_dir(&from).map_err(|e| Error::io("reading", &from, e))? {
                let entry = entry.map_err(|e| Error::io("reading", &from, e))?;
                let to = dest.join(entry.file_name());
                std::fs::rename(entry.path(), &to).map_err(|e| Error::io("moving", &to, e))?;
            }
            std::fs::remove_dir_all(&work).map_err(|e| Error::io("removing", &work, e))?;
        }
        bare.to_path_buf()
    };
    if !spec.skip_submodules && dest.join(".gitmodules").exists() {
        let mut cmd = git_remote(access);
        cmd.arg("--git-dir")
            .arg(&git_dir)
            .arg("--work-tree")
            .arg(dest)
            .current_dir(dest)
            .args(["submodule", "update", "--init", "--recursive", "--depth=1"]);
        run_remote(
            cmd,
            &format!("failed to update submodules for {}", redacted(&spec.remote)),
            spec,
            access,
        )?;
    }
    standard_umask(dest)
}

/// Gives the checkout the modes git makes under umask 022, whatever the umask of this
/// process: no group or other write bits.
fn standard_umask(root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("reading", &path, e))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & !0o022))
                .map_err(|e| Error::io("changing the mode of", &path, e))?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| Error::io("reading", &path, e))? {
                stack.push(entry.map_err(|e| Error::io("reading", &path, e))?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An identifier, its attributes, and the spec rendered as text (or the error).
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

    /// One spec per identifier and attributes, rendered as text (or the error).
    fn check(cases: &[Case]) {
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(id, attrs, want)| {
                let attrs: BTreeMap<String, String> = attrs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let got = match GitSpec::parse(id, &attrs) {
                    Ok(s) => format!(
                        "{} ref={} subdir={} keep={}",
                        s.remote,
                        s.git_ref,
                        s.clean_subdir(),
                        s.keep_git_dir
                    ),
                    Err(e) => format!("error: {e}"),
                };
                (got != *want).then(|| format!("{id:?}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn specs() {
        check(&[
            (
                "github.com/moby/buildkit#v0.12:docs/",
                &[],
                "https://github.com/moby/buildkit ref=v0.12 subdir=docs keep=false",
            ),
            (
                "127.0.0.1:9418/repo.git#v1:sub",
                &[("git.fullurl", "git://127.0.0.1:9418/repo.git")],
                "git://127.0.0.1:9418/repo.git ref=v1 subdir=sub keep=false",
            ),
            (
                "host/repo.git",
                &[
                    ("git.fullurl", "git@host:repo.git"),
                    ("git.keepgitdir", "true"),
                ],
                "git@host:repo.git ref= subdir=. keep=true",
            ),
            (
                "host/repo.git#main:/./a//b/",
                &[],
                "https://host/repo.git ref=main subdir=a/b keep=false",
            ),
            (
                "host/repo.git#--upload-pack=touch /tmp/pwned",
                &[],
                "error: invalid git ref \"--upload-pack=touch /tmp/pwned\": must not start with \"-\"",
            ),
            (
                "host/repo.git#main:-x",
                &[],
                "error: invalid git subdirectory \"-x\": must not start with \"-\"",
            ),
            (
                "host/repo.git#main:../../etc",
                &[],
                "error: invalid git subdirectory \"../../etc\": must stay inside the repository",
            ),
        ]);
    }

    /// A remote, the source's attributes, the build's secrets and the expected header.
    type AuthCase<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        &'a str,
    );

    /// The header a remote gets from the secrets (`id=value`) of a build, for a source with
    /// `attrs`: `scope => header`, or `none`.
    fn check_auth(cases: &[AuthCase]) {
        use crate::session::{SecretSpec, SecretStore};
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(remote, attrs, secrets, want)| {
                let mut all = vec![("git.fullurl", *remote)];
                all.extend_from_slice(attrs);
                let attrs: BTreeMap<String, String> = all
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let specs: Vec<SecretSpec> = secrets
                    .iter()
                    .map(|(id, _)| SecretSpec {
                        id: id.to_string(),
                        file: None,
                        env: Some(format!("V_{id}")),
                    })
                    .collect();
                let env: BTreeMap<String, String> = secrets
                    .iter()
                    .map(|(id, v)| (format!("V_{id}"), v.to_string()))
                    .collect();
                let session = Session {
                    secrets: SecretStore::new(&specs, &env).expect("secrets"),
                    ..Session::default()
                };
                let got = GitSpec::parse("host/repo", &attrs)
                    .and_then(|spec| GitAuth::from_session(&spec, &session))
                    .map(|a| match a {
                        Some(a) => format!("{} => {}", a.scope, a.header),
                        None => "none".to_string(),
                    })
                    .unwrap_or_else(|e| format!("error: {e}"));
                (got != *want).then(|| format!("{remote} {secrets:?}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn auth_headers_follow_buildkit() {
        // What the Dockerfile frontend sets on every git source.
        let default: &[(&str, &str)] = &[
            ("git.authtokensecret", "GIT_AUTH_TOKEN"),
            ("git.authheadersecret", "GIT_AUTH_HEADER"),
        ];
        let remote = "http://127.0.0.1:8080/repo.git";
        check_auth(&[
            (remote, default, &[], "none"),
            // base64("x-access-token:tok")
            (
                remote,
                default,
                &[("GIT_AUTH_TOKEN", "tok")],
                "http://127.0.0.1:8080/repo.git => Authorization: basic eC1hY2Nlc3MtdG9rZW46dG9r",
            ),
            (
                remote,
                default,
                &[("GIT_AUTH_HEADER", "bearer abc")],
                "http://127.0.0.1:8080/repo.git => Authorization: bearer abc",
            ),
            // The header wins over the token, the host's secrets over the others.
            (
                remote,
                default,
                &[("GIT_AUTH_TOKEN", "tok"), ("GIT_AUTH_HEADER", "bearer abc")],
                "http://127.0.0.1:8080/repo.git => Authorization: bearer abc",
            ),
            (
                remote,
                default,
                &[
                    ("GIT_AUTH_HEADER", "bearer abc"),
                    ("GIT_AUTH_TOKEN.127.0.0.1:8080", "tok"),
                ],
                "http://127.0.0.1:8080/repo.git => Authorization: basic eC1hY2Nlc3MtdG9rZW46dG9r",
            ),
            (
                remote,
                default,
                &[
                    ("GIT_AUTH_TOKEN.127.0.0.1:8080", "tok"),
                    ("GIT_AUTH_HEADER.127.0.0.1:8080", "bearer host"),
                ],
                "http://127.0.0.1:8080/repo.git => Authorization: bearer host",
            ),
            // Another host's secret does not apply.
            (
                remote,
                default,
                &[("GIT_AUTH_TOKEN.example.com", "tok")],
                "none",
            ),
            // Any GitHub repository may use the token, as actions/checkout does.
            (
                "https://github.com/moby/buildkit.git",
                default,
                &[("GIT_AUTH_TOKEN.github.com", "tok")],
                "https://github.com/ => Authorization: basic eC1hY2Nlc3MtdG9rZW46dG9r",
            ),
            // Sources name their secrets; without names no secret is used.
            (
                remote,
                &[("git.authtokensecret", "MY_TOKEN")],
                &[("MY_TOKEN", "tok"), ("GIT_AUTH_TOKEN", "other")],
                "http://127.0.0.1:8080/repo.git => Authorization: basic eC1hY2Nlc3MtdG9rZW46dG9r",
            ),
            (remote, &[], &[("GIT_AUTH_TOKEN", "tok")], "none"),
            // SSH remotes authenticate with keys, never with a header.
            (
                "git@github.com:moby/buildkit.git",
                default,
                &[("GIT_AUTH_TOKEN", "tok")],
                "none",
            ),
            (
                "ssh://git@host/repo.git",
                default,
                &[("GIT_AUTH_TOKEN", "tok")],
                "none",
            ),
        ]);
    }

    #[test]
    fn ssh_commands() {
        let cases = [
            (
                None,
                "ssh -F /dev/null -o BatchMode=yes -o IdentityFile=none \
                 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            ),
            (
                Some("/var/lib/kiln/session/known-hosts-1"),
                "ssh -F /dev/null -o BatchMode=yes -o IdentityFile=none \
                 -o StrictHostKeyChecking=yes -o UserKnownHostsFile='/var/lib/kiln/session/known-hosts-1'",
            ),
            (
                Some("/state dir/it's"),
                "ssh -F /dev/null -o BatchMode=yes -o IdentityFile=none \
                 -o StrictHostKeyChecking=yes -o UserKnownHostsFile='/state dir/it'\\''s'",
            ),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(file, want)| {
                let got = ssh_command(file.map(Path::new));
                (got != *want).then(|| format!("{file:?}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn ssh_attributes() {
        let attrs: BTreeMap<String, String> = [
            ("git.fullurl", "git@host:repo.git"),
            ("git.mountsshsock", "deploy"),
            ("git.knownsshhosts", "host ssh-ed25519 AAAA"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let spec = GitSpec::parse("host/repo.git", &attrs).expect("spec");
        assert_eq!(spec.mount_ssh_sock.as_deref(), Some("deploy"));
        assert_eq!(
            spec.known_ssh_hosts.as_deref(),
            Some("host ssh-ed25519 AAAA")
        );
        // An empty attribute asks for nothing, as in BuildKit.
        let empty: BTreeMap<String, String> = [("git.mountsshsock", ""), ("git.knownsshhosts", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let spec = GitSpec::parse("host/repo.git", &empty).expect("spec");
        assert_eq!((spec.mount_ssh_sock, spec.known_ssh_hosts), (None, None));
    }

    /// Generates an ed25519 key pair at `path`; returns the public key line.
    fn keygen(path: &Path) -> String {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "kiln", "-f"])
            .arg(path)
            .output()
            .expect("ssh-keygen (Debian package openssh-client) must be installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(path.with_extension("pub"))
            .expect("public key")
            .trim()
            .to_string()
    }

    /// A real OpenSSH server on 127.0.0.1 (kiln-testkit's) serving `repo.git` (branch `main`)
    /// to its client key; stopped on drop.
    fn sshd() -> kiln_testkit::SshServer {
        let sshd = kiln_testkit::SshServer::start().unwrap_or_else(|e| panic!("{e}"));
        let d = sshd.dir.path();
        let work = d.join("work");
        std::fs::create_dir(&work).expect("work");
        std::fs::write(work.join("f"), "x").expect("file");
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["add", "f"],
            &[
                "-c",
                "user.name=k",
                "-c",
                "user.email=k@k",
                "commit",
                "-qm",
                "one",
            ],
        ] {
            let mut cmd = Command::new("git");
            cmd.arg("-C").arg(&work).args(args);
            run(cmd, "git").expect("git");
        }
        let mut cmd = Command::new("git");
        cmd.args(["clone", "-q", "--bare", "--"])
            .arg(&work)
            .arg(d.join("repo.git"));
        run(cmd, "git clone").expect("git clone");
        sshd
    }

    /// Resolves `main` of the server's repository with the source's SSH attributes
    /// (`git.mountsshsock`, `git.knownsshhosts`) and the build's agents: `ok` or the error.
    async fn resolve_over_ssh(
        root: &Path,
        url: &str,
        attrs: &[(&str, &str)],
        agents: &SshAgents,
    ) -> String {
        let mut all = vec![("git.fullurl", url)];
        all.extend_from_slice(attrs);
        let attrs: BTreeMap<String, String> = all
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let spec = match GitSpec::parse("127.0.0.1/repo.git#main", &attrs) {
            Ok(s) => s,
            Err(e) => return format!("error: {e}"),
        };
        let (access, guard) = match open_access(root, &spec, agents, None) {
            Ok(a) => a,
            Err(e) => return format!("error: {e}"),
        };
        let resolved = tokio::task::spawn_blocking(move || resolve_ref(&spec, &access))
            .await
            .expect("join");
        drop(guard);
        match resolved {
            Ok((r, c)) if r == "main" && is_commit_sha(&c) => "ok".to_string(),
            Ok(other) => format!("unexpected {other:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    /// A name, the source's SSH attributes, the build's agents, and what the result contains.
    type SshCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a SshAgents, String);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ssh_remotes_use_the_agent_and_known_hosts() {
        use crate::session::SshSpec;
        let sshd = sshd();
        let root = tempfile::tempdir().expect("root");
        std::fs::create_dir(session_dir(root.path())).expect("session dir");
        let url = format!(
            "ssh://root@127.0.0.1:{}{}",
            sshd.port,
            sshd.dir.path().join("repo.git").display()
        );
        let agents = |id: &str| {
            SshAgents::new(
                &[SshSpec {
                    id: id.to_string(),
                    paths: vec![sshd.client_key.clone()],
                }],
                None,
            )
            .expect("agents")
        };
        let with_key = agents("default");
        let other_id = agents("deploy");
        let none = SshAgents::default();
        let wrong_host_key = keygen(&sshd.dir.path().join("other_host_key"));
        let known = |key: &str| format!("[127.0.0.1]:{} {key}\n", sshd.port);
        let good = known(&sshd.host_key);
        let bad = known(&wrong_host_key);
        let sock = ("git.mountsshsock", "default");
        let cases: Vec<SshCase> = vec![
            (
                "agent, any host key",
                vec![sock],
                &with_key,
                "ok".to_string(),
            ),
            (
                "agent, known host",
                vec![sock, ("git.knownsshhosts", &good)],
                &with_key,
                "ok".to_string(),
            ),
            (
                "agent, another host key",
                vec![sock, ("git.knownsshhosts", &bad)],
                &with_key,
                "Host key verification failed".to_string(),
            ),
            (
                "no socket asked for",
                vec![],
                &with_key,
                "Permission denied (publickey".to_string(),
            ),
            (
                "no agent",
                vec![sock],
                &none,
                format!(
                    "error: failed to fetch remote {url}: no SSH key \"default\" forwarded from the client"
                ),
            ),
            (
                "another agent",
                vec![sock],
                &other_id,
                format!("error: failed to fetch remote {url}: unset ssh forward key default"),
            ),
        ];
        let mut failures = Vec::new();
        for (name, attrs, agents, want) in &cases {
            let got = resolve_over_ssh(root.path(), &url, attrs, agents).await;
            if !got.contains(want.as_str()) {
                failures.push(format!("{name}: got {got:?}, want {want:?}"));
            }
        }
        // Nothing is left in the session directory: sockets and known hosts files are removed.
        let left: Vec<_> = std::fs::read_dir(session_dir(root.path()))
            .expect("session dir")
            .flatten()
            .map(|e| e.path())
            .collect();
        if !left.is_empty() {
            failures.push(format!("left in the session directory: {left:?}"));
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn remotes_in_messages_hide_passwords() {
        let cases = [
            ("https://host/repo.git", "https://host/repo.git"),
            ("https://user@host/repo.git", "https://user@host/repo.git"),
            (
                "https://user:s3cret@host:8080/repo.git",
                "https://user:xxxxx@host:8080/repo.git",
            ),
            ("https://host/a@b", "https://host/a@b"),
            ("git@host:repo.git", "git@host:repo.git"),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(remote, want)| redacted(remote) != *want)
            .map(|(remote, want)| format!("{remote}: got {}, want {want}", redacted(remote)))
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        let auth = GitAuth {
            scope: "https://host/".to_string(),
            header: "Authorization: basic c2VjcmV0".to_string(),
        };
        assert!(!format!("{auth:?}").contains("c2VjcmV0"));
    }
}
