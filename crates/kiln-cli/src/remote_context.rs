//! Where a build's context and Dockerfile come from, as buildx's `loadInputs` and the
//! `initContext` of BuildKit's Dockerfile frontend (dockerui) decide:
//!
//! * `-`: stdin holds a context archive (possibly compressed) or a Dockerfile (see
//!   [`crate::tar_context`]);
//! * a local directory;
//! * a git URL (`git://host/repo.git#ref:subdir`, `https://host/repo.git`, `git@host:repo.git`):
//!   the repository is fetched as a git source;
//! * any other HTTP(S) URL: the file is downloaded as an HTTP source named `context`; if it is an
//!   archive it is unpacked and becomes the context, otherwise it is the Dockerfile and the
//!   context holds just that file.
//!
//! Sources are fetched by kiln's own worker, so they are cached in the state directory like any
//! `ADD` (a git repository by commit, a download revalidated with its `ETag`), then exported
//! into a temporary directory that serves the build as an ordinary local context.
//!
//! For remote contexts `-f` follows buildx: `-` reads the Dockerfile from stdin, an absolute
//! path names a file on the host, and a relative one a file inside the context (with BuildKit's
//! `Dockerfile` → `dockerfile` fallback). A downloaded Dockerfile ignores a relative `-f`, as
//! BuildKit does. Files inside a fetched context are read with symbolic links resolved inside
//! it, never on the host.
//!
//! `.dockerignore`: BuildKit filters only contexts the client sends (local directories), not
//! git repositories, archives or downloads ("`.dockerignore` only applies to transferring local
//! files from client to the daemon", docker/cli#2827), and kiln does the same. A repository's
//! ignore file is therefore never read (nor could a hostile one, a link to `/dev/zero`, hang
//! the client).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use crate::commands::debug::{display_name, read_input};
use crate::tar_context::{self, ARCHIVE_NAME, StdinInput};

/// A build context made ready for the worker, and the Dockerfile that goes with it.
pub struct Prepared {
    /// The directory served to the build as the `context` local.
    pub dir: PathBuf,
    /// The Dockerfile's content.
    pub source: Vec<u8>,
    /// The name under which errors show the Dockerfile.
    pub name: String,
    /// The directory whose `.dockerignore` filters the context (an empty one when nothing
    /// filters it).
    pub ignore_dir: PathBuf,
    /// The Dockerfile whose own `<Dockerfile>.dockerignore` takes precedence (`-` for none).
    pub ignore_dockerfile: PathBuf,
    /// The temporary directories the paths above live in, removed when this is dropped.
    _temps: Vec<tempfile::TempDir>,
}

/// Whether a context argument names a git repository, as buildx's `isRemoteURL` decides for
/// git: a `git://`, `ssh://` or `git@` remote, or an HTTP(S) URL whose path ends in `.git`.
pub fn is_git_context(context: &str) -> bool {
    let base = context.split('#').next().unwrap_or(context);
    if base.starts_with("git://") || base.starts_with("ssh://") || base.starts_with("git@") {
        return true;
    }
    is_http_url(base) && base.ends_with(".git")
}

/// Whether a context argument is a git repository over SSH (`ssh://…`, or SCP-like
/// `git@host:path`), as buildx's `IsGitSSH` decides.
pub fn is_git_ssh(context: &str) -> bool {
    is_git_context(context) && (context.starts_with("ssh://") || !context.contains("://"))
}

/// Whether a context argument is an HTTP(S) URL (buildx's `isHTTPURL`).
pub fn is_http_url(context: &str) -> bool {
    context.starts_with("https://") || context.starts_with("http://")
}

/// Prepares the context named by `context` and reads the Dockerfile (`file` is `-f`). Fetching
/// a remote context holds the state directory's lock at `root` while it runs; a git repository
/// authenticates with `session`: its secrets over HTTP(S) (`GIT_AUTH_TOKEN`,
/// `GIT_AUTH_HEADER`), its `default` SSH agent over SSH.
pub fn prepare(
    context: &Path,
    file: Option<&Path>,
    root: &Path,
    session: &kiln_worker::Session,
) -> anyhow::Result<Prepared> {
    if context.as_os_str() == "-" {
        return from_stdin(file);
    }
    if context.is_dir() {
        return local(context, file);
    }
    match context.to_str() {
        Some(url) if is_git_context(url) => from_git(url, file, root, session),
        Some(url) if is_http_url(url) => from_http(url, file, root),
        _ => anyhow::bail!(
            "unable to prepare context: path {:?} not found",
            context.display().to_string()
        ),
    }
}

/// A new empty temporary directory.
fn empty_dir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("kiln-empty-")
        .tempdir()
        .context("creating an empty context")
}

/// A local directory, its Dockerfile `PATH/Dockerfile` unless `-f` says otherwise.
fn local(context: &Path, file: Option<&Path>) -> anyhow::Result<Prepared> {
    let dockerfile = file.map_or_else(|| context.join("Dockerfile"), Path::to_path_buf);
    Ok(Prepared {
        dir: context.to_path_buf(),
        source: read_input(&dockerfile)?,
        name: display_name(&dockerfile),
        ignore_dir: context.to_path_buf(),
        ignore_dockerfile: dockerfile,
        _temps: Vec::new(),
    })
}

/// `kiln build -`: a context archive or a Dockerfile on stdin.
fn from_stdin(file: Option<&Path>) -> anyhow::Result<Prepared> {
    if file.is_some_and(|f| f.as_os_str() == "-") {
        anyhow::bail!("invalid argument: can't use stdin for both build context and dockerfile");
    }
    let empty = empty_dir()?;
    match tar_context::read_stdin(std::io::stdin().lock(), file.is_some())? {
        StdinInput::Dockerfile(source) => Ok(Prepared {
            dir: empty.path().to_path_buf(),
            source,
            name: display_name(Path::new("-")),
            ignore_dir: empty.path().to_path_buf(),
            ignore_dockerfile: PathBuf::from("-"),
            _temps: vec![empty],
        }),
        StdinInput::Context(dir) => {
            // The Dockerfile comes from the archive, even when `-f` is absolute: buildx passes
            // the name to the frontend, which reads it from the uploaded context.
            let name = file.map_or_else(
                || "Dockerfile".to_string(),
                |f| f.to_string_lossy().into_owned(),
            );
            Ok(Prepared {
                dir: dir.path().to_path_buf(),
                source: read_inside(dir.path(), &name)?,
                name,
                ignore_dir: empty.path().to_path_buf(),
                ignore_dockerfile: PathBuf::from("-"),
                _temps: vec![dir, empty],
            })
        }
    }
}

/// Reads the Dockerfile `name` inside a fetched or unpacked context.
fn read_inside(dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    tar_context::read_dockerfile(dir, name).context("failed to solve")
}

/// Where the Dockerfile of a remote context comes from (`-f`).
enum Wanted<'a> {
    /// `-f -`.
    Stdin,
    /// An absolute `-f`: a file on the host.
    Host(&'a Path),
    /// A file inside the context (`Dockerfile` by default).
    Inside(String),
}

fn wanted(file: Option<&Path>) -> Wanted<'_> {
    match file {
        None => Wanted::Inside("Dockerfile".to_string()),
        Some(f) if f.as_os_str() == "-" => Wanted::Stdin,
        Some(f) if f.is_absolute() => Wanted::Host(f),
        Some(f) => Wanted::Inside(f.to_string_lossy().into_owned()),
    }
}

/// A git repository, fetched as a git source.
fn from_git(
    url: &str,
    file: Option<&Path>,
    root: &Path,
    session: &kiln_worker::Session,
) -> anyhow::Result<Prepared> {
    let (remote, fragment) = url.split_once('#').unwrap_or((url, ""));
    let state = kiln_llb::State::git(remote, fragment, kiln_llb::GitOpts::default());
    let dir = tempfile::Builder::new()
        .prefix("kiln-context-")
        .tempdir()
        .context("creating a directory for the git context")?;
    solve_to(&state, root, dir.path(), session.clone())
        .with_context(|| format!("unable to prepare context: fetching {url}"))?;
    let (source, name) = match wanted(file) {
        Wanted::Stdin => {
            let stdin = Path::new("-");
            (read_input(stdin)?, display_name(stdin))
        }
        Wanted::Host(path) => (read_input(path)?, display_name(path)),
        Wanted::Inside(name) => (read_inside(dir.path(), &name)?, name),
    };
    let empty = empty_dir()?;
    Ok(Prepared {
        dir: dir.path().to_path_buf(),
        source,
        name,
        ignore_dir: empty.path().to_path_buf(),
        ignore_dockerfile: PathBuf::from("-"),
        _temps: vec![dir, empty],
    })
}

/// Any other HTTP(S) URL: an archive that becomes the context, or a Dockerfile.
fn from_http(url: &str, file: Option<&Path>, root: &Path) -> anyhow::Result<Prepared> {
    let state = kiln_llb::State::http(
        url,
        kiln_llb::HttpOpts {
            filename: Some(ARCHIVE_NAME.to_string()),
            vertex: kiln_llb::VertexOpts::named("[internal] load remote build context"),
            ..kiln_llb::HttpOpts::default()
        },
    );
    let download = tempfile::Builder::new()
        .prefix("kiln-download-")
        .tempdir()
        .context("creating a directory for the remote context")?;
    solve_to(
        &state,
        root,
        download.path(),
        kiln_worker::Session::default(),
    )
    .context("failed to solve: failed to read downloaded context")?;
    let downloaded = download.path().join(ARCHIVE_NAME);
    let head = tar_context::read_head(&downloaded)
        .context("failed to solve: failed to read downloaded context")?;
    let empty = empty_dir()?;
    if tar_context::is_archive(&head) {
        let dir = tar_context::unpack(download.path(), ARCHIVE_NAME)?;
        drop(download);
        let (source, name) = match wanted(file) {
            Wanted::Stdin => (read_input(Path::new("-"))?, display_name(Path::new("-"))),
            Wanted::Host(path) => (read_input(path)?, display_name(path)),
            Wanted::Inside(name) => (read_inside(dir.path(), &name)?, name),
        };
        return Ok(Prepared {
            dir: dir.path().to_path_buf(),
            source,
            name,
            ignore_dir: empty.path().to_path_buf(),
            ignore_dockerfile: PathBuf::from("-"),
            _temps: vec![dir, empty],
        });
    }
    // Not an archive: the download is the Dockerfile, and the context holds just that file.
    let (source, name) = match wanted(file) {
        Wanted::Stdin => (read_input(Path::new("-"))?, display_name(Path::new("-"))),
        Wanted::Host(path) => (read_input(path)?, display_name(path)),
        Wanted::Inside(_) => (
            read_inside(download.path(), ARCHIVE_NAME)?,
            ARCHIVE_NAME.to_string(),
        ),
    };
    Ok(Prepared {
        dir: download.path().to_path_buf(),
        source,
        name,
        ignore_dir: empty.path().to_path_buf(),
        ignore_dockerfile: PathBuf::from("-"),
        _temps: vec![download, empty],
    })
}

/// Solves `state` on kiln's worker (no progress shown), with what `session` lends it, and
/// exports the result into `dest`, holding the state directory's lock.
fn solve_to(
    state: &kiln_llb::State,
    root: &Path,
    dest: &Path,
    session: kiln_worker::Session,
) -> anyhow::Result<()> {
    let definition = state
        .marshal(&kiln_llb::MarshalOpts::default())
        .context("preparing the context source")?;
    let _lock = kiln_worker::StateLock::acquire(root, |_| {})
        .with_context(|| format!("locking {}", root.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
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
            .solve_with_session(
                &definition,
                &Default::default(),
                Arc::new(session),
                Arc::new(kiln_progress::Discard),
            )
            .await?;
        worker.export_local(&result, dest).await?;
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails with every case where `classify` disagrees with the expected answer.
    fn check(classify: fn(&str) -> bool, cases: &[(&str, bool)]) {
        let failures: Vec<String> = cases
            .iter()
            .filter(|(c, want)| classify(c) != *want)
            .map(|(c, want)| format!("{c:?}: want {want}"))
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn git_contexts() {
        let cases = [
            ("git://127.0.0.1:9418/repo.git#v1:sub", true),
            ("git@github.com:moby/buildkit.git", true),
            ("ssh://git@host/repo", true),
            ("https://github.com/moby/buildkit.git#master", true),
            ("https://example.com/context.tar.gz", false),
            ("http://127.0.0.1:8080/Dockerfile", false),
            ("./dir", false),
            ("-", false),
            ("github.com/moby/buildkit", false),
        ];
        check(is_git_context, &cases);
    }

    #[test]
    fn git_ssh_contexts() {
        let cases = [
            ("git@github.com:moby/buildkit.git", true),
            ("git@github.com:moby/buildkit.git#main:sub", true),
            ("ssh://git@host/repo", true),
            ("ssh://root@127.0.0.1:2222/srv/repo.git#main", true),
            ("git://127.0.0.1:9418/repo.git", false),
            ("https://github.com/moby/buildkit.git", false),
            ("./dir", false),
        ];
        check(is_git_ssh, &cases);
    }

    #[test]
    fn http_contexts() {
        let cases = [
            ("https://example.com/context.tar.gz", true),
            ("http://127.0.0.1:8080/Dockerfile", true),
            ("HTTP://example.com/x", false),
            ("ftp://example.com/x", false),
            ("./http://x", false),
        ];
        check(is_http_url, &cases);
    }

    #[test]
    fn dockerfile_flag_for_remote_contexts() {
        let cases: [(Option<&str>, &str); 5] = [
            (None, "inside Dockerfile"),
            (Some("-"), "stdin"),
            (Some("/abs/Dockerfile.dev"), "host /abs/Dockerfile.dev"),
            (Some("sub/Dockerfile"), "inside sub/Dockerfile"),
            (Some("./Dockerfile"), "inside ./Dockerfile"),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(flag, want)| {
                let got = match wanted(flag.map(Path::new)) {
                    Wanted::Stdin => "stdin".to_string(),
                    Wanted::Host(p) => format!("host {}", p.display()),
                    Wanted::Inside(n) => format!("inside {n}"),
                };
                (got != *want).then(|| format!("{flag:?}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
