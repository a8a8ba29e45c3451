//! Private git repositories over SSH, end to end: a real OpenSSH server (`/usr/sbin/sshd`, Debian
//! package `openssh-server`) on 127.0.0.1 serves a bare repository by path to one generated key,
//! and `ADD ssh://…`, `--build-context NAME=ssh://…` and an `ssh://…` build context fetch it with
//! the agent of `--ssh default=KEYFILE`, as BuildKit fetches with the build's SSH agent.
//!
//! The server listens on a free port, so the repositories are named with `ssh://` URLs: the
//! SCP-like form (`git@host:path`) cannot carry a port (what follows the colon is the path).
//! Known hosts (`git.knownsshhosts`) are not reachable from a Dockerfile (BuildKit's `ADD` has
//! no flag for them); the worker's unit tests cover them.

mod common;

use common::{assert_success, git, keygen, kiln_build, state_dir, step_state};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// `ssh-keygen` arguments for an ed25519 key without passphrase.
const ED25519: &[&str] = &["-t", "ed25519", "-N", ""];

/// An OpenSSH server on 127.0.0.1 that lets the holder of `client_key` in as root, and the
/// repository it serves; stopped on drop.
struct SshServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
    /// The key the server accepts.
    client_key: PathBuf,
    /// A key the server does not accept.
    other_key: PathBuf,
}

impl SshServer {
    /// Starts the server, with `repo.git` (branch `main`: `hello.txt`, and a build context in
    /// `ctx/`) in its directory.
    fn start() -> SshServer {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install the Debian package openssh-server (scripts/prereqs.sh)"
        );
        let dir = tempfile::Builder::new()
            .prefix("kiln-sshd-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        keygen(d, "host_key", ED25519);
        let client_key = keygen(d, "client_key", ED25519);
        let other_key = keygen(d, "other_key", ED25519);
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("keys");

        let work = d.join("work");
        std::fs::create_dir_all(work.join("ctx")).expect("work");
        std::fs::write(work.join("hello.txt"), "over ssh\n").expect("file");
        std::fs::write(work.join("ctx/data.txt"), "context over ssh\n").expect("file");
        std::fs::write(
            work.join("ctx/Dockerfile"),
            "FROM scratch\nCOPY data.txt /from-context.txt\n",
        )
        .expect("file");
        git(&work, &["init", "-q"]);
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "one"]);
        git(d, &["clone", "-q", "--bare", "--", "work", "repo.git"]);

        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
                 PidFile none\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n",
                host = d.join("host_key").display(),
                keys = d.join("authorized_keys").display(),
            ),
        )
        .expect("sshd_config");
        let log = std::fs::File::create(d.join("sshd.log")).expect("log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let mut server = SshServer {
            dir,
            port,
            child,
            client_key,
            other_key,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("sshd exited ({status}):\n{}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `ssh://root@127.0.0.1:PORT/…/repo.git`.
    fn url(&self) -> String {
        format!(
            "ssh://root@127.0.0.1:{}{}",
            self.port,
            self.dir.path().join("repo.git").display()
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kiln build` of `context` with `extra` flags, without the caller's SSH agent.
fn build(state: &Path, context: &str, extra: &[&str]) -> Output {
    kiln_build(state)
        .args(["--progress", "plain"])
        .args(extra)
        .arg(context)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("run kiln build")
}

/// Fails the test unless the build failed and its stderr holds every one of `needles`.
fn assert_fails_with(out: &Output, needles: &[&str], server: &SshServer) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the build succeeded:\n{stderr}");
    for n in needles {
        assert!(
            stderr.contains(n),
            "stderr lacks {n:?}:\n{stderr}\nsshd:\n{}",
            server.log()
        );
    }
}

#[test]
fn add_and_named_contexts_over_ssh_use_the_build_agent() {
    let server = SshServer::start();
    let url = server.url();
    let state = state_dir();
    let ctx = tempfile::tempdir().expect("context");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM scratch\nADD {url}#main /src\nCOPY --from=repo hello.txt /named.txt\n"),
    )
    .expect("Dockerfile");
    let context = ctx.path().display().to_string();
    let named = format!("repo={url}#main");
    let out_dir = tempfile::tempdir().expect("out");
    let dest = |name: &str| format!("type=local,dest={}", out_dir.path().join(name).display());
    let key = format!("default={}", server.client_key.display());
    let other_key = format!("default={}", server.other_key.display());
    let other_id = format!("deploy={}", server.client_key.display());

    // Without an agent: an error naming the agent the source needs.
    let out = build(
        state.path(),
        &context,
        &["--build-context", &named, "-o", &dest("none")],
    );
    assert_fails_with(
        &out,
        &[
            &format!("failed to fetch remote {url}"),
            "no SSH key \"default\" forwarded from the client",
        ],
        &server,
    );
    // Another id does not stand in for `default`.
    let out = build(
        state.path(),
        &context,
        &[
            "--ssh",
            &other_id,
            "--build-context",
            &named,
            "-o",
            &dest("other-id"),
        ],
    );
    assert_fails_with(&out, &["unset ssh forward key default"], &server);
    // A key the server does not accept: ssh's own refusal, no prompt.
    let out = build(
        state.path(),
        &context,
        &[
            "--ssh",
            &other_key,
            "--build-context",
            &named,
            "-o",
            &dest("other-key"),
        ],
    );
    assert_fails_with(&out, &["Permission denied (publickey)"], &server);

    // With the key: the files of the repository.
    let flags = ["--ssh", &key, "--build-context", &named, "-o"];
    let out = build(
        state.path(),
        &context,
        &[flags.as_slice(), &[&dest("first")]].concat(),
    );
    let log = assert_success(&out);
    let read = |name: &str, path: &str| {
        std::fs::read_to_string(out_dir.path().join(name).join(path))
            .unwrap_or_else(|e| panic!("{name}/{path}: {e}\n{log}"))
    };
    assert_eq!(read("first", "src/hello.txt"), "over ssh\n");
    assert_eq!(read("first", "src/ctx/data.txt"), "context over ssh\n");
    assert_eq!(read("first", "named.txt"), "over ssh\n");
    assert!(
        !out_dir.path().join("first/src/.git").exists(),
        "no .git without --keep-git-dir"
    );

    // Again: cached (the ref still resolves through the agent).
    let out = build(
        state.path(),
        &context,
        &[flags.as_slice(), &[&dest("second")]].concat(),
    );
    let log = assert_success(&out);
    assert_eq!(step_state(&log, "ADD "), Some("CACHED"), "{log}");
    assert_eq!(read("second", "src/hello.txt"), "over ssh\n");
    assert_eq!(read("second", "named.txt"), "over ssh\n");
}

#[test]
fn git_context_over_ssh() {
    let server = SshServer::start();
    let context = format!("{}#main:ctx", server.url());
    let state = state_dir();
    let out_dir = tempfile::tempdir().expect("out");
    let dest = format!("type=local,dest={}", out_dir.path().display());

    // Without `--ssh`, buildx forwards `SSH_AUTH_SOCK` as `default`; here it is unset.
    let out = build(state.path(), &context, &["-o", &dest]);
    assert_fails_with(
        &out,
        &["invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set"],
        &server,
    );

    let key = format!("default={}", server.client_key.display());
    let out = build(state.path(), &context, &["--ssh", &key, "-o", &dest]);
    let log = assert_success(&out);
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("from-context.txt"))
            .unwrap_or_else(|e| panic!("from-context.txt: {e}\n{log}")),
        "context over ssh\n"
    );
}
