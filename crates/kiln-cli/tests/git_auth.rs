//! Private git repositories over HTTP, end to end: a repository served by `git http-backend`
//! behind a small HTTP server on loopback that demands `Authorization: Basic
//! base64(x-access-token:TOKEN)`. Without a secret the build fails and says which secret would
//! help; with `--secret id=GIT_AUTH_TOKEN` (or its per-host form, or `GIT_AUTH_HEADER`) `ADD`
//! and a git build context fetch the repository. The token never appears in kiln's output, in
//! the state directory, in the result, nor in the command line of any process.

mod common;

use common::{assert_success, kiln, state_dir};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A value no file could contain by chance.
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::from("tok");
    for i in 0..3u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

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

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=kiln",
            "-c",
            "user.email=kiln@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("git must be installed (scripts/prereqs.sh)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What the server saw: each request's path and status, and the processes whose command line
/// held the token while a request was being served.
#[derive(Default)]
struct Seen {
    requests: Vec<(String, u16)>,
    leaky_processes: Vec<String>,
}

/// A private repository `repo.git` served over smart HTTP by `git http-backend` on 127.0.0.1.
struct PrivateGit {
    _dir: tempfile::TempDir,
    port: u16,
    seen: Arc<Mutex<Seen>>,
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
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let root = dir.path().to_path_buf();
        let credentials = format!(
            "basic {}",
            base64(format!("x-access-token:{token}").as_bytes())
        );
        let needles = [token.to_string(), credentials.clone()];
        let seen2 = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &root, &credentials, &needles, &seen2);
            }
        });
        PrivateGit {
            _dir: dir,
            port,
            seen,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/repo.git", self.port)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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

/// Answers one request: 401 without the right credentials, else `git http-backend` as CGI.
fn serve(
    stream: TcpStream,
    root: &Path,
    credentials: &str,
    needles: &[String],
    seen: &Mutex<Seen>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut out = stream;

    // The scheme is case-insensitive (git sends what the header says: `basic`).
    let authorized = headers.get("authorization").is_some_and(|v| {
        v.split_once(' ').is_some_and(|(scheme, value)| {
            credentials
                .split_once(' ')
                .is_some_and(|(s, c)| s.eq_ignore_ascii_case(scheme) && c == value)
        })
    });
    if !authorized {
        seen.lock()
            .expect("seen")
            .requests
            .push((path.to_string(), 401));
        out.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"kiln\"\r\n\
              Content-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return out.flush();
    }
    // While git talks to us, its processes are alive: none may show the token.
    let leaky = processes_showing(needles);
    let mut cgi = Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", length.to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (header, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(v) = headers.get(header) {
            cgi.env(var, v);
        }
    }
    let mut child = cgi.spawn()?;
    child.stdin.take().expect("stdin").write_all(&body)?;
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
    let mut status = 200u16;
    let mut lines = Vec::new();
    for line in head.lines() {
        match line.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => {
                status = v
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(500);
            }
            Some(_) => lines.push(line.to_string()),
            None => {}
        }
    }
    {
        let mut seen = seen.lock().expect("seen");
        seen.requests.push((path.to_string(), status));
        seen.leaky_processes.extend(leaky);
    }
    let mut reply = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
    for line in lines {
        reply.push_str(&line);
        reply.push_str("\r\n");
    }
    reply.push_str(&format!("Content-Length: {}\r\n\r\n", content.len()));
    out.write_all(reply.as_bytes())?;
    out.write_all(&content)?;
    out.flush()
}

/// `kiln build` of `context` (a directory or a git URL) with `extra` flags and `env`.
fn build(state: &Path, context: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = kiln();
    cmd.arg("build")
        .arg("--root")
        .arg(state)
        .args(extra)
        .arg(context);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run kiln build")
}

/// Every regular file under `root` whose bytes contain one of `needles`.
fn files_containing(root: &Path, needles: &[String]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if meta.is_file() {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            if needles
                .iter()
                .any(|n| data.windows(n.len()).any(|w| w == n.as_bytes()))
            {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn private_repositories_need_the_token_secret() {
    let token = random_token();
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
    let out = build(
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
    let out = build(
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
        let out = build(state.path(), &context, &flags, env);
        assert_success(&out);
        let got = std::fs::read_to_string(out_dir.path().join(&dest_name).join("src/secret.txt"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, "private content\n", "{name}");
        outputs.push((name.to_string(), out));
    }

    // A git URL as the build context.
    let out = build(
        state.path(),
        &format!("{url}#main:ctx"),
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
    let seen = server.seen.lock().expect("seen");
    assert!(
        seen.requests.iter().any(|(_, s)| *s == 401)
            && seen.requests.iter().any(|(_, s)| *s == 200),
        "{:?}",
        seen.requests
    );
    assert!(
        seen.leaky_processes.is_empty(),
        "command lines showing the token:\n{}",
        seen.leaky_processes.join("\n")
    );
    drop(seen);

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
