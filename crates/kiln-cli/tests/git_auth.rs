//! Private git repositories over HTTP, end to end: a repository served by `git http-backend`
//! behind a small HTTP server on loopback that demands `Authorization: Basic
//! base64(x-access-token:TOKEN)`. Without a secret the build fails and says which secret would
//! help; with `--secret id=GIT_AUTH_TOKEN` (or its per-host form, or `GIT_AUTH_HEADER`) `ADD`
//! and a git build context fetch the repository. The token never appears in kiln's output, in
//! the state directory, in the result, nor in the command line of any process.

mod common;

use common::{assert_success, build_with, files_containing, git, state_dir, unique_value};

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use kiln_testkit::{HttpServer, Request, Response};

/// Standard base64, for the expected `Authorization` value.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A private repository `repo.git` served over smart HTTP by `git http-backend` on 127.0.0.1.
struct PrivateGit {
    _dir: tempfile::TempDir,
    server: HttpServer,
    /// The processes whose command line held the token while a request was being served.
    leaky_processes: Arc<Mutex<Vec<String>>>,
}

impl PrivateGit {
    /// `repo.git` with `secret.txt` and a build context in `ctx/`, on branch `main`; only
    /// requests with `Authorization: Basic base64(x-access-token:TOKEN)` are answered.
    fn start(token: &str) -> PrivateGit {
        let dir = tempfile::tempdir().expect("dir");
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("ctx")).expect("mkdir");
        std::fs::write(work.join("secret.txt"), "private content\n").expect("write");
        std::fs::write(work.join("ctx/Dockerfile"), "FROM scratch\nCOPY . /ctx/\n").expect("write");
        std::fs::write(work.join("ctx/data.txt"), "private context\n").expect("write");
        git(&work, &["init", "-q"]);
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "one"]);
        git(
            dir.path(),
            &["clone", "-q", "--bare", "--", "work", "repo.git"],
        );
        let leaky_processes: Arc<Mutex<Vec<String>>> = Arc::default();
        let root = dir.path().to_path_buf();
        let credentials = format!(
            "basic {}",
            base64(format!("x-access-token:{token}").as_bytes())
        );
        let needles = [token.to_string(), credentials.clone()];
        let leaky = Arc::clone(&leaky_processes);
        let server = HttpServer::start(move |request| {
            answer(request, &root, &credentials, &needles, &leaky)
        })
        .expect("http server");
        PrivateGit {
            _dir: dir,
            server,
            leaky_processes,
        }
    }

    fn url(&self) -> String {
        self.server.url("/repo.git")
    }

    fn host(&self) -> String {
        self.server.host()
    }
}

/// The processes (pid and command line) whose command line holds one of `needles`.
fn processes_showing(needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let lower = text.to_ascii_lowercase();
        if needles
            .iter()
            .any(|n| text.contains(n.as_str()) || lower.contains(&n.to_ascii_lowercase()))
        {
            found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// Answers one request: 401 without the right credentials, else `git http-backend` as CGI
/// (502 if it cannot be run). Records the processes showing one of `needles` meanwhile.
fn answer(
    request: &Request,
    root: &Path,
    credentials: &str,
    needles: &[String],
    leaky_processes: &Mutex<Vec<String>>,
) -> Response {
    // The scheme is case-insensitive (git sends what the header says: `basic`).
    let authorized = request.header("authorization").is_some_and(|v| {
        v.split_once(' ').is_some_and(|(scheme, value)| {
            credentials
                .split_once(' ')
                .is_some_and(|(s, c)| s.eq_ignore_ascii_case(scheme) && c == value)
        })
    });
    if !authorized {
        return Response::new(401, "").with_header("WWW-Authenticate", "Basic realm=\"kiln\"");
    }
    // While git talks to us, its processes are alive: none may show the token.
    let leaky = processes_showing(needles);
    leaky_processes.lock().expect("leaky").extend(leaky);
    match http_backend(request, root) {
        Ok(response) => response,
        Err(e) => Response::new(502, format!("git http-backend: {e}\n")),
    }
}

/// Runs `git http-backend` as a CGI program on `request`.
fn http_backend(request: &Request, root: &Path) -> std::io::Result<Response> {
    let mut cgi = Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &request.method)
        .env("PATH_INFO", request.path())
        .env("QUERY_STRING", request.query())
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (header, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(v) = request.header(header) {
            cgi.env(var, v);
        }
    }
    let mut child = cgi.spawn()?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&request.body)?;
    let output = child.wait_with_output()?;
    let response = output.stdout;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            response
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        });
    let (head, content) = match split {
        Some((end, start)) => (
            String::from_utf8_lossy(&response[..end]).into_owned(),
            response[start..].to_vec(),
        ),
        None => (String::new(), response),
    };
    let mut reply = Response::new(200, content);
    for line in head.lines() {
        match line.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => {
                reply.status = v
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(500);
            }
            Some((k, v)) => reply = reply.with_header(k, v.trim_start()),
            None => {}
        }
    }
    Ok(reply)
}

#[test]
fn private_repositories_need_the_token_secret() {
    let token = unique_value("tok");
    let server = PrivateGit::start(&token);
    let url = server.url();
    let state = state_dir();
    let ctx = tempfile::tempdir().expect("context");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM scratch\nADD {url}#main /src\n"),
    )
    .expect("Dockerfile");
    let context = ctx.path().display().to_string();
    let out_dir = tempfile::tempdir().expect("out");
    let dest = |name: &str| format!("type=local,dest={}", out_dir.path().join(name).display());
    let env = [("KILN_GIT_TOKEN", token.as_str())];
    let wrong = [("KILN_GIT_TOKEN", "not-the-token")];
    let mut outputs: Vec<(String, Output)> = Vec::new();

    // Without a secret: git's error, and which secret would help.
    let out = build_with(
        state.path(),
        &context,
        &["--progress", "plain", "-o", &dest("none")],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    let want = format!("failed to fetch remote {url}: ");
    assert!(stderr.contains(&want), "{stderr}");
    assert!(stderr.contains("could not read Username"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "give a token with --secret id=GIT_AUTH_TOKEN,env=VAR or id=GIT_AUTH_TOKEN.{},src=FILE",
            server.host()
        )),
        "{stderr}"
    );
    outputs.push(("no secret".to_string(), out));

    // A wrong token is refused by the server.
    let out = build_with(
        state.path(),
        &context,
        &[
            "--progress",
            "plain",
            "--secret",
            "id=GIT_AUTH_TOKEN,env=KILN_GIT_TOKEN",
            "-o",
            &dest("wrong"),
        ],
        &wrong,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&want), "{stderr}");

    // The token, by its plain id, its per-host id, or as a header.
    let per_host = format!("id=GIT_AUTH_TOKEN.{},env=KILN_GIT_TOKEN", server.host());
    let header = format!(
        "basic {}",
        base64(format!("x-access-token:{token}").as_bytes())
    );
    let header_env = [("KILN_GIT_HEADER", header.as_str())];
    // A name, the `--secret` flag, the environment and the progress mode.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            "token",
            "id=GIT_AUTH_TOKEN,env=KILN_GIT_TOKEN",
            &env,
            "plain",
        ),
        ("per-host", &per_host, &env, "plain"),
        (
            "header",
            "id=GIT_AUTH_HEADER,env=KILN_GIT_HEADER",
            &header_env,
            "plain",
        ),
        (
            "token, again, rawjson",
            "id=GIT_AUTH_TOKEN,env=KILN_GIT_TOKEN",
            &env,
            "rawjson",
        ),
    ];
    for (name, secret, env, progress) in cases {
        let dest_name = name.replace([' ', ','], "-");
        let mut flags = vec!["--progress", progress, "--secret", secret];
        let output = dest(&dest_name);
        flags.extend(["-o", output.as_str()]);
        // Every build fetches again (the cached commit would skip the fetch).
        if name != "token" {
            flags.push("--no-cache");
        }
        let out = build_with(state.path(), &context, &flags, env);
        assert_success(&out);
        let got = std::fs::read_to_string(out_dir.path().join(&dest_name).join("src/secret.txt"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, "private content\n", "{name}");
        outputs.push((name.to_string(), out));
    }

    // A git URL as the build context.
    let out = build_with(
        state.path(),
        format!("{url}#main:ctx"),
        &[
            "--progress",
            "plain",
            "--secret",
            "id=GIT_AUTH_TOKEN,env=KILN_GIT_TOKEN",
            "-o",
            &dest("context"),
        ],
        &env,
    );
    assert_success(&out);
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("context/ctx/data.txt")).expect("data"),
        "private context\n"
    );
    outputs.push(("git context".to_string(), out));

    // The server did see requests refused and answered.
    let requests = server.server.requests();
    assert!(
        requests.iter().any(|(_, s)| *s == 401) && requests.iter().any(|(_, s)| *s == 200),
        "{requests:?}"
    );
    let leaky = server.leaky_processes.lock().expect("leaky");
    assert!(
        leaky.is_empty(),
        "command lines showing the token:\n{}",
        leaky.join("\n")
    );
    drop(leaky);

    // Neither the token nor the header made of it appears anywhere.
    let needles = [
        token.clone(),
        base64(format!("x-access-token:{token}").as_bytes()),
    ];
    let mut leaks = Vec::new();
    for (name, out) in &outputs {
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let text = String::from_utf8_lossy(bytes);
            if needles.iter().any(|n| text.contains(n.as_str())) {
                leaks.push(format!("{name}: {stream}"));
            }
        }
    }
    for root in [state.path(), out_dir.path()] {
        leaks.extend(
            files_containing(root, &needles)
                .into_iter()
                .map(|p| p.display().to_string()),
        );
    }
    assert!(
        leaks.is_empty(),
        "the token leaked into:\n{}",
        leaks.join("\n")
    );
}
