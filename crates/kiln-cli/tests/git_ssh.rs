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

use common::{assert_success, git, kiln_build, ssh_server, state_dir, step_state};
use kiln_testkit::SshServer;

use std::path::Path;
use std::process::Output;

/// The repository the server's directory holds: `repo.git` (branch `main`: `hello.txt`, and a
/// build context in `ctx/`).
fn with_repository(server: SshServer) -> SshServer {
    let d = server.dir.path();
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
    server
}

/// `ssh://root@127.0.0.1:PORT/…/repo.git`.
fn repo_url(server: &SshServer) -> String {
    format!(
        "ssh://root@127.0.0.1:{}{}",
        server.port,
        server.dir.path().join("repo.git").display()
    )
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
    let server = with_repository(ssh_server());
    let url = repo_url(&server);
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
    let server = with_repository(ssh_server());
    let context = format!("{}#main:ctx", repo_url(&server));
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
