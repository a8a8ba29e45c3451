//! `--load` and `-o type=docker` without `dest`: the image goes into the Docker engine
//! (`scripts/dockerd.sh`) through its API socket, and a second load of the same image sends
//! nothing but tags. kiln talks to the engine through a recording proxy on a unix socket
//! (`DOCKER_HOST`), so the tests see every request and every byte it sent.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use common::{assert_success, busybox, context_with, kiln_build, state_dir};
use kiln_testkit::DockerEngine;

/// The engine's socket, where the proxy forwards to.
const ENGINE_SOCKET: &str = "/var/run/docker.sock";

/// One connection through the proxy: the first request line and how many bytes the client
/// sent on it (headers and body of every request on the connection).
#[derive(Debug, Clone, Default)]
struct Connection {
    request_line: String,
    client_bytes: u64,
}

/// A unix socket that forwards every connection to the engine's socket and records it.
struct RecordingProxy {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    connections: Arc<Mutex<Vec<Arc<Mutex<Connection>>>>>,
}

impl RecordingProxy {
    fn start() -> RecordingProxy {
        let dir = tempfile::tempdir().expect("proxy dir");
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).expect("bind the proxy socket");
        let connections: Arc<Mutex<Vec<Arc<Mutex<Connection>>>>> = Arc::default();
        let recorded = Arc::clone(&connections);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let conn = Arc::new(Mutex::new(Connection::default()));
                recorded.lock().expect("lock").push(Arc::clone(&conn));
                std::thread::spawn(move || forward(client, &conn));
            }
        });
        RecordingProxy {
            _dir: dir,
            socket,
            connections,
        }
    }

    /// `DOCKER_HOST` for kiln.
    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The connections made so far (and forgets them).
    fn take(&self) -> Vec<Connection> {
        let taken = std::mem::take(&mut *self.connections.lock().expect("lock"));
        taken
            .iter()
            .map(|c| c.lock().expect("lock").clone())
            .collect()
    }
}

/// Copies the client's bytes to the engine (recording the first line and counting bytes) and
/// the engine's answers back, until both sides are done.
fn forward(mut client: UnixStream, conn: &Mutex<Connection>) {
    let Ok(mut engine) = UnixStream::connect(ENGINE_SOCKET) else {
        return;
    };
    let (Ok(mut client_out), Ok(mut engine_in)) = (client.try_clone(), engine.try_clone()) else {
        return;
    };
    let answers = std::thread::spawn(move || {
        let _ = std::io::copy(&mut engine_in, &mut client_out);
        let _ = client_out.shutdown(std::net::Shutdown::Write);
    });
    let mut first_line = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = buf.get(..n).unwrap_or_default();
        {
            let mut c = conn.lock().expect("lock");
            c.client_bytes += n as u64;
            if c.request_line.is_empty() {
                first_line.extend_from_slice(data);
                if let Some(end) = first_line.windows(2).position(|w| w == b"\r\n") {
                    c.request_line =
                        String::from_utf8_lossy(first_line.get(..end).unwrap_or_default())
                            .into_owned();
                }
            }
        }
        if engine.write_all(data).is_err() {
            break;
        }
    }
    let _ = engine.shutdown(std::net::Shutdown::Write);
    let _ = answers.join();
}

/// Runs `docker ARGS` and returns its stdout; fails the test when it fails.
fn docker(engine: &DockerEngine, args: &[&str]) -> String {
    let out = engine.command().args(args).output().expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kiln build --progress plain EXTRA CONTEXT` with `DOCKER_HOST` set.
fn build(state: &Path, ctx: &Path, docker_host: &str, extra: &[&str]) -> Output {
    kiln_build(state)
        .args(["--progress", "plain"])
        .args(extra)
        .arg(ctx)
        .env("DOCKER_HOST", docker_host)
        .output()
        .expect("run kiln build")
}

#[test]
fn load_puts_the_image_into_the_engine_and_a_second_load_only_tags() {
    let engine = DockerEngine::connect().expect("the Docker engine (scripts/dockerd.sh)");
    let (_registry, base) = busybox();
    let state = state_dir();
    // A file no earlier run wrote, so the engine cannot have the image yet.
    let text = common::unique_value("loaded-");
    let ctx = context_with(&[
        ("Dockerfile", &format!("FROM {base}\nCOPY file /file\n")),
        ("file", &text),
    ]);
    let repo = format!(
        "kiln-load-test-{}",
        text.get(7..19).expect("unique value is long enough")
    );
    let names: Vec<String> = ["1", "2", "3"]
        .iter()
        .map(|t| format!("{repo}:{t}"))
        .collect();
    let work = tempfile::tempdir().expect("work dir");
    let iidfile = work.path().join("iid");
    let proxy = RecordingProxy::start();

    let result = std::panic::catch_unwind(|| {
        // The first load sends the tarball, which names both tags.
        let out = build(
            state.path(),
            ctx.path(),
            &proxy.docker_host(),
            &[
                "--load",
                "-t",
                &names[0],
                "-t",
                &names[1],
                "--iidfile",
                iidfile.to_str().expect("path"),
            ],
        );
        let stderr = assert_success(&out);
        let id = std::fs::read_to_string(&iidfile).expect("iidfile");
        assert!(id.starts_with("sha256:"), "{id}");
        let first = proxy.take();
        let loads: Vec<&Connection> = first
            .iter()
            .filter(|c| c.request_line.starts_with("POST /images/load?quiet=1 "))
            .collect();
        assert_eq!(loads.len(), 1, "{first:#?}\n{stderr}");
        // The whole tarball went through (it holds busybox's layer, far above 100 kB).
        assert!(loads[0].client_bytes > 100_000, "{first:#?}");
        assert!(stderr.contains("importing to docker"), "{stderr}");
        assert!(
            stderr.contains(&format!("Loaded image: {}", names[0])),
            "{stderr}"
        );

        // Both names are the image whose id is the config digest, and it runs.
        for name in &names[..2] {
            let got = docker(&engine, &["image", "inspect", "--format", "{{.Id}}", name]);
            assert_eq!(got.trim(), id, "{name}");
        }
        let printed = docker(
            &engine,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                &names[0],
                "cat",
                "/file",
            ],
        );
        assert_eq!(printed, text);

        // The same build again, as `-o type=docker` with a third name: nothing is sent but
        // the tags. This time the engine is named by a Docker context (as `docker context
        // create kiln-proxy --docker host=…` writes it) rather than by DOCKER_HOST.
        let config = tempfile::tempdir().expect("docker config dir");
        kiln_testkit::write_docker_context(config.path(), "kiln-proxy", &proxy.docker_host())
            .expect("write the context");
        let out = kiln_build(state.path())
            .args(["--progress", "plain"])
            .args([
                "-o",
                "type=docker",
                "-t",
                &names[0],
                "-t",
                &names[1],
                "-t",
                &names[2],
            ])
            .arg(ctx.path())
            .env_remove("DOCKER_HOST")
            .env("DOCKER_CONFIG", config.path())
            .env("DOCKER_CONTEXT", "kiln-proxy")
            .output()
            .expect("run kiln build");
        let stderr = assert_success(&out);
        let second = proxy.take();
        let lines: Vec<&str> = second.iter().map(|c| c.request_line.as_str()).collect();
        // The engine is pinged before the build, then asked for the image.
        let mut want = vec![
            "GET /_ping HTTP/1.1".to_string(),
            format!("GET /images/{id}/json HTTP/1.1"),
        ];
        for name in &names {
            let tag = name.rsplit(':').next().unwrap_or_default();
            want.push(format!(
                "POST /images/{id}/tag?repo={repo}&tag={tag} HTTP/1.1"
            ));
        }
        assert_eq!(lines, want, "{stderr}");
        // No request carried a tarball, whatever its request line.
        let sent: u64 = second.iter().map(|c| c.client_bytes).sum();
        assert!(sent < 4096, "{sent} bytes sent: {second:#?}");
        assert!(
            stderr.contains(&format!("image {id} already present in the Docker engine")),
            "{stderr}"
        );
        let got = docker(
            &engine,
            &["image", "inspect", "--format", "{{.Id}}", &names[2]],
        );
        assert_eq!(got.trim(), id);
    });

    let mut rm = vec!["image", "rm", "--force"];
    rm.extend(names.iter().map(String::as_str));
    let _ = engine.command().args(&rm).output();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn load_without_an_engine_gives_the_docker_clis_message() {
    let state = state_dir();
    let ctx = context_with(&[
        ("Dockerfile", "FROM scratch\nCOPY file /file\n"),
        ("file", "no engine\n"),
    ]);
    // The exit code (2 for a usage error) and the end of a line of stderr.
    let check = |docker_host: &str, flags: &[&str], code: i32, want: &str| {
        let out = build(state.path(), ctx.path(), docker_host, flags);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(
            stderr.lines().any(|l| l.ends_with(want)),
            "DOCKER_HOST={docker_host} {flags:?}: want a line ending with {want:?}:\n{stderr}"
        );
    };
    check(
        "unix:///nonexistent",
        &["--load", "-t", "kiln-load-test:none"],
        1,
        "Cannot connect to the Docker daemon at unix:///nonexistent. Is the docker daemon running?",
    );
    check(
        "unix:///nonexistent",
        &["-o", "type=docker"],
        1,
        "Cannot connect to the Docker daemon at unix:///nonexistent. Is the docker daemon running?",
    );
    // Nothing listens on port 1 of the loopback address.
    check(
        "tcp://127.0.0.1:1",
        &["--load"],
        1,
        "Cannot connect to the Docker daemon at tcp://127.0.0.1:1. Is the docker daemon running?",
    );
    // `--load` with `--push`: the unreachable engine stops the build before any step runs,
    // so nothing is pushed either.
    let registry = kiln_testkit::TestRegistry::start().expect("start a registry");
    let target = format!("{}/kiln/load-and-push:1", registry.addr());
    check(
        "unix:///nonexistent",
        &["--load", "--push", "-t", &target],
        1,
        "Cannot connect to the Docker daemon at unix:///nonexistent. Is the docker daemon running?",
    );
    let out = build(
        state.path(),
        ctx.path(),
        "unix:///nonexistent",
        &["--load", "--push", "-t", &target],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("COPY") && !stderr.contains("exporting"),
        "the build ran:\n{stderr}"
    );
    assert!(
        registry.requests().is_empty(),
        "the registry was reached: {:?}",
        registry.requests()
    );
    // The engine of the config's current context, and a context that does not exist.
    let config = tempfile::tempdir().expect("docker config dir");
    kiln_testkit::write_docker_context(config.path(), "elsewhere", "unix:///nonexistent-context")
        .expect("write the context");
    std::fs::write(
        config.path().join("config.json"),
        r#"{"currentContext":"elsewhere"}"#,
    )
    .expect("config.json");
    let with_config = |context: Option<&str>| {
        let mut command = kiln_build(state.path());
        command
            .args(["--progress", "plain", "--load"])
            .arg(ctx.path())
            .env_remove("DOCKER_HOST")
            .env("DOCKER_CONFIG", config.path());
        match context {
            Some(c) => command.env("DOCKER_CONTEXT", c),
            None => command.env_remove("DOCKER_CONTEXT"),
        };
        command.output().expect("run kiln build")
    };
    let out = with_config(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "Cannot connect to the Docker daemon at unix:///nonexistent-context. Is the docker daemon running?"
        ),
        "{stderr}"
    );
    let out = with_config(Some("missing"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("context \"missing\" does not exist"),
        "{stderr}"
    );
    // A DOCKER_HOST kiln cannot use is refused before the build.
    check(
        "ftp://me@example.invalid",
        &["--load"],
        2,
        "invalid DOCKER_HOST \"ftp://me@example.invalid\": ftp:// connections are not supported by kiln (unix://, tcp:// and ssh:// are)",
    );
    // An ssh:// engine that cannot be reached: ssh's own message is in the error.
    let out = build(
        state.path(),
        ctx.path(),
        "ssh://root@127.0.0.1:1",
        &["--load"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Docker engine at ssh://root@127.0.0.1:1 through ssh")
            && stderr.contains("Connection refused"),
        "{stderr}"
    );
}

/// A fake engine on a unix socket: it has no image, reads a whole load request (a chunked
/// body) and answers it with an `errorDetail` in the JSON message stream, as an engine does
/// when the tarball is bad. Returns the socket's directory and the bytes of the load body.
fn fake_engine_refusing_loads() -> (tempfile::TempDir, PathBuf, Arc<Mutex<u64>>) {
    let dir = tempfile::tempdir().expect("fake engine dir");
    let socket = dir.path().join("engine.sock");
    let listener = UnixListener::bind(&socket).expect("bind the fake engine");
    let body_bytes = Arc::new(Mutex::new(0u64));
    let seen = Arc::clone(&body_bytes);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut data = Vec::new();
            let mut buf = vec![0u8; 64 << 10];
            // The request ends with its headers (GET) or with the last chunk (the load).
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
                data.extend_from_slice(buf.get(..n).unwrap_or_default());
                let is_load = data.starts_with(b"POST /images/load");
                if (!is_load && data.windows(4).any(|w| w == b"\r\n\r\n"))
                    || (is_load && data.ends_with(b"\r\n0\r\n\r\n"))
                {
                    break;
                }
            }
            let answer: &[u8] = if data.starts_with(b"POST /images/load") {
                *seen.lock().expect("lock") = data.len() as u64;
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 88\r\nConnection: close\r\n\r\n{\"errorDetail\":{\"message\":\"archive/tar: invalid tar header\"},\"error\":\"invalid header\"}\n\n"
            } else if data.starts_with(b"GET /_ping ") {
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"
            } else {
                b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 29\r\nConnection: close\r\n\r\n{\"message\":\"No such image\"}\n\n"
            };
            let _ = conn.write_all(answer);
        }
    });
    (dir, socket, body_bytes)
}

#[test]
fn an_engine_error_while_loading_is_one_clear_message() {
    let (_dir, socket, body_bytes) = fake_engine_refusing_loads();
    let state = state_dir();
    let ctx = context_with(&[
        ("Dockerfile", "FROM scratch\nCOPY file /file\n"),
        ("file", "refused\n"),
    ]);
    let host = format!("unix://{}", socket.display());
    let out = build(state.path(), ctx.path(), &host, &["--load"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let want = format!(
        "ERROR: failed to solve: failed to load the image into the Docker engine at {host}: archive/tar: invalid tar header"
    );
    assert!(
        stderr.lines().any(|l| l == want),
        "want {want:?}:\n{stderr}"
    );
    // The whole tarball was sent before the engine answered.
    assert!(*body_bytes.lock().expect("lock") > 2048, "{stderr}");
}

/// A Docker engine reached over TCP with TLS, as Docker-in-Docker with `DOCKER_TLS_CERTDIR`
/// serves it in CI: `DOCKER_HOST=tcp://…`, `DOCKER_TLS_VERIFY=1` and `DOCKER_CERT_PATH` with
/// `ca.pem`, `cert.pem` and `key.pem`. The engine here is the local one behind a TLS endpoint
/// that, like `dockerd --tlsverify`, requires a client certificate signed by its CA.
#[test]
fn load_into_an_engine_over_tls() {
    let engine = DockerEngine::connect().expect("the Docker engine (scripts/dockerd.sh)");
    let certs = kiln_testkit::server_certificates("kiln engine CA").expect("certificates");
    let addr = tls_engine_proxy(&certs, PathBuf::from("/var/run/docker.sock"));
    let state = state_dir();
    let text = common::unique_value("over-tls-");
    let ctx = context_with(&[
        ("Dockerfile", "FROM scratch\nCOPY file /file\n"),
        ("file", &text),
    ]);
    let tag = format!(
        "kiln-tls-test:{}",
        text.get(9..21).expect("unique value is long enough")
    );
    let cert_dir = tempfile::tempdir().expect("cert dir");
    let write = |name: &str, pem: &str| {
        std::fs::write(cert_dir.path().join(name), pem).expect("write a PEM file");
    };
    write("ca.pem", certs.ca.as_str());
    let load = |extra_env: &[(&str, &str)]| {
        kiln_build(state.path())
            .args(["--progress", "plain", "--load", "-t", &tag])
            .arg(ctx.path())
            .env("DOCKER_HOST", format!("tcp://{addr}"))
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", cert_dir.path())
            .envs(extra_env.iter().copied())
            .output()
            .expect("run kiln build")
    };
    // Without a client certificate the engine refuses the connection. With TLS 1.3 the
    // refusal is an alert after the handshake, which the HTTP client reports as the alert or as
    // a connection that was not ready, depending on timing: the test checks the failure, the
    // engine named, and that nothing was built.
    let out = load(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("ping on the Docker engine at tcp://{addr}"))
            && !stderr.contains("COPY"),
        "{stderr}"
    );
    // With it, the image is loaded.
    write("cert.pem", &certs.client_certificate);
    write("key.pem", &certs.client_key);
    let out = load(&[]);
    let stderr = assert_success(&out);
    assert!(stderr.contains("importing to docker"), "{stderr}");
    take_image(&engine, &tag);
    // An engine whose certificate another CA signed is refused.
    let other = kiln_testkit::server_certificates("another CA").expect("certificates");
    write("ca.pem", other.ca.as_str());
    let out = load(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
}

/// A TLS endpoint on 127.0.0.1 in front of the unix socket `socket`, requiring a client
/// certificate signed by `certs`' CA. Returns its `host:port`; it serves until the test ends.
fn tls_engine_proxy(certs: &kiln_testkit::ServerCertificates, socket: PathBuf) -> String {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(certs.ca.as_str().as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let chain = CertificateDer::pem_slice_iter(certs.certificate.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("server certificate");
    let key = PrivateKeyDer::from_pem_slice(certs.key.as_bytes()).expect("server key");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let socket = socket.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Ok(mut unix) = tokio::net::UnixStream::connect(&socket).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut unix).await;
                    }
                });
            }
        });
    });
    addr
}

/// A Docker engine reached over SSH (`DOCKER_HOST=ssh://root@127.0.0.1:PORT`), as the Docker
/// CLI reaches one: a real OpenSSH server on loopback runs `docker system dial-stdio` against
/// the local engine. The user's `ssh` is stood in for by a wrapper on `PATH` that adds the test's
/// key and host-key settings, as a user's `~/.ssh/config` would.
#[test]
fn load_into_an_engine_over_ssh() {
    let engine = DockerEngine::connect().expect("the Docker engine (scripts/dockerd.sh)");
    let server = common::ssh_server();
    let state = state_dir();
    let text = common::unique_value("over-ssh-");
    let ctx = context_with(&[
        ("Dockerfile", "FROM scratch\nCOPY file /file\n"),
        ("file", &text),
    ]);
    let tag = format!(
        "kiln-ssh-test:{}",
        text.get(9..21).expect("unique value is long enough")
    );
    let bin = tempfile::tempdir().expect("wrapper dir");
    let load = |key: &Path| {
        let wrapper = bin.path().join("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
                 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \"$@\"\n",
                key.display()
            ),
        )
        .expect("write the ssh wrapper");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the wrapper");
        let path = format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        kiln_build(state.path())
            .args(["--progress", "plain", "--load", "-t", &tag])
            .arg(ctx.path())
            .env(
                "DOCKER_HOST",
                format!("ssh://root@127.0.0.1:{}", server.port),
            )
            .env("PATH", path)
            .output()
            .expect("run kiln build")
    };
    // A key the server refuses: ssh's message says why.
    let out = load(&server.other_key);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("through ssh") && stderr.contains("Permission denied"),
        "{stderr}\nsshd:\n{}",
        server.log()
    );
    // The key it accepts: the image is loaded.
    let out = load(&server.client_key);
    let stderr = assert_success(&out);
    assert!(stderr.contains("importing to docker"), "{stderr}");
    take_image(&engine, &tag);
}

/// Checks that the engine has the image `tag`, and removes it.
fn take_image(engine: &DockerEngine, tag: &str) {
    let inspect = engine
        .command()
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .expect("docker image inspect");
    let _ = engine.command().args(["image", "rm", "-f", tag]).output();
    assert!(
        inspect.status.success(),
        "{tag}: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
}
