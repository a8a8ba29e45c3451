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
use crate::ops::{blocking, boxed, commit, prepare_mounted};
use crate::refs::Ref;

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

/// A git source op, resolved to a commit.
pub(crate) struct GitSource {
    parts: Arc<Parts>,
    spec: GitSpec,
    /// The ref to fetch (the default branch when none was given).
    git_ref: String,
    /// What `git ls-remote` gave for it (or the commit itself).
    commit: String,
}

impl GitSource {
    /// Resolves the ref to a commit with `git ls-remote` (no network for a full commit id).
    pub async fn resolve(parts: Arc<Parts>, spec: GitSpec) -> Result<GitSource> {
        let spec2 = spec.clone();
        let (git_ref, commit) = blocking(move || resolve_ref(&spec2)).await?;
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
        Box::pin(async move {
            blocking(move || snapshot(&parts, &spec, &git_ref, &commit))
                .await
                .map(|r| vec![r])
                .map_err(boxed)
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
        .env(
            "GIT_SSH_COMMAND",
            "ssh -F /dev/null -o StrictHostKeyChecking=no",
        )
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

/// The ref to fetch and the commit it names.
fn resolve_ref(spec: &GitSpec) -> Result<(String, String)> {
    let what = format!("failed to fetch remote {}", spec.remote);
    let mut git_ref = spec.git_ref.clone();
    if git_ref.is_empty() {
        let mut cmd = git();
        cmd.args(["ls-remote", "--symref", "--", &spec.remote, "HEAD"]);
        let out = run(cmd, &what)?;
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
                    spec.remote
                ))
            })?;
    }
    if is_commit_sha(&git_ref) {
        return Ok((git_ref.clone(), git_ref));
    }
    let mut cmd = git();
    cmd.args(["ls-remote", "--", &spec.remote, &git_ref]);
    let out = run(cmd, &what)?;
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
fn snapshot(parts: &Parts, spec: &GitSpec, git_ref: &str, commit_sha: &str) -> Result<Ref> {
    let bare = bare_repo(&parts.root, &spec.remote)?;
    let _lock = FileLock::acquire(&bare.with_extension("lock"))?;
    fetch(&bare, spec, git_ref, commit_sha)?;

    let (key, mounted) = prepare_mounted(parts, &Ref::Scratch)?;
    let result = checkout(&bare, spec, commit_sha, mounted.path());
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
fn fetch(bare: &Path, spec: &GitSpec, git_ref: &str, commit_sha: &str) -> Result<()> {
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
    let mut cmd = git();
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
    run(cmd, &format!("failed to fetch remote {}", spec.remote))?;
    let mut cmd = git();
    cmd.arg("--git-dir")
        .arg(bare)
        .args(["reflog", "expire", "--all", "--expire=now"]);
    run(
        cmd,
        &format!("failed to expire reflog for remote {}", spec.remote),
    )?;
    Ok(())
}

/// Checks `commit_sha` out into `dest` (the subdirectory's content, or the tree, with `.git`
/// when asked for).
fn checkout(bare: &Path, spec: &GitSpec, commit_sha: &str, dest: &Path) -> Result<()> {
    let what = format!("failed to checkout remote {}", spec.remote);
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
            &spec.remote,
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
        let mut cmd = git();
        cmd.arg("--git-dir")
            .arg(&git_dir)
            .arg("--work-tree")
            .arg(dest)
            .current_dir(dest)
            .args(["submodule", "update", "--init", "--recursive", "--depth=1"]);
        run(
            cmd,
            &format!("failed to update submodules for {}", spec.remote),
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
}
