//! A build context named by a git URL (`kiln build git://host/repo.git#ref:subdir`,
//! `kiln build https://host/repo.git`, `kiln build git@host:repo.git`).
//!
//! BuildKit fetches such a context as a git source and reads the Dockerfile from it. kiln does
//! the same with its own worker: the repository is fetched as a git source (cached by commit in
//! the state directory, like any `ADD git…`) and exported into a temporary directory, which then
//! serves as an ordinary local context (its `.dockerignore` applies, its Dockerfile is the
//! default one).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

/// Whether a context argument names a git repository, as buildx's `isRemoteURL` decides for
/// git: a `git://`, `ssh://` or `git@` remote, or an HTTP(S) URL whose path ends in `.git`.
pub fn is_git_context(context: &str) -> bool {
    let base = context.split('#').next().unwrap_or(context);
    if base.starts_with("git://") || base.starts_with("ssh://") || base.starts_with("git@") {
        return true;
    }
    (base.starts_with("https://") || base.starts_with("http://")) && base.ends_with(".git")
}

/// Fetches a git context into a new temporary directory, or returns `None` when `context` is
/// not a git URL. Holds the state directory's lock while it runs.
pub fn fetch(context: &Path, root: &Path) -> anyhow::Result<Option<tempfile::TempDir>> {
    let Some(url) = context.to_str().filter(|c| is_git_context(c)) else {
        return Ok(None);
    };
    let (remote, fragment) = url.split_once('#').unwrap_or((url, ""));
    let state = kiln_llb::State::git(remote, fragment, kiln_llb::GitOpts::default());
    let definition = state
        .marshal(&kiln_llb::MarshalOpts::default())
        .context("preparing the git context")?;
    let dir = tempfile::Builder::new()
        .prefix("kiln-context-")
        .tempdir()
        .context("creating a directory for the git context")?;
    let _lock = kiln_worker::StateLock::acquire(root, |_| {})
        .with_context(|| format!("locking {}", root.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let dest = dir.path().to_path_buf();
    runtime
        .block_on(async {
            let registry: Arc<dyn kiln_registry::Registry> = Arc::new(
                kiln_registry::RegistryClient::new(kiln_registry::RegistryConfig::default())?,
            );
            let worker = kiln_worker::Worker::open(kiln_worker::WorkerOptions {
                root: root.to_path_buf(),
                registry,
                platform: kiln_oci::Platform::host(),
                snapshotter: kiln_snapshot::DriverChoice::Auto,
                concurrency: 0,
            })
            .await?;
            let result = worker
                .solve(
                    &definition,
                    &Default::default(),
                    Arc::new(kiln_progress::Discard),
                )
                .await?;
            worker.export_local(&result, &dest).await?;
            anyhow::Ok(())
        })
        .with_context(|| format!("unable to prepare context: fetching {url}"))?;
    Ok(Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_contexts() {
        let cases = [
            ("git://127.0.0.1:9418/repo.git#v1:sub", true),
            ("git@github.com:moby/buildkit.git", true),
            ("ssh://git@host/repo", true),
            ("https://github.com/moby/buildkit.git#master", true),
            ("https://example.com/context.tar.gz", false),
            ("./dir", false),
            ("-", false),
            ("github.com/moby/buildkit", false),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(c, want)| is_git_context(c) != *want)
            .map(|(c, want)| format!("{c:?}: want {want}"))
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
