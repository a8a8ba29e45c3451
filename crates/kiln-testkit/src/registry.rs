//! A real registry (Debian's `docker-registry`, the CNCF distribution server) on loopback.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_oci::Digest;

use crate::error::{Result, TestkitError, io_error};
use crate::tls::{CaPem, ServerCertificates, server_certificates};

/// Where Debian installs the registry binary.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// The response header whose value tells our registry from any other server on the port.
const MARKER_HEADER: &str = "X-Kiln-Testkit";

/// How long the registry may take to answer `GET /v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How many free ports are tried when the registry exits at once (another process took the
/// port between our probe and the registry's bind).
const START_ATTEMPTS: usize = 5;

/// The bcrypt cost of the htpasswd file: the lowest bcrypt allows, since the registry checks
/// the password on every request.
const BCRYPT_COST: u32 = 4;

/// A running registry on `127.0.0.1`, storing into a temporary directory; the process is
/// killed and the directory removed on drop.
///
/// The registry speaks plain HTTP, or HTTPS with a certificate from a CA made for it
/// ([`TestRegistry::start_secure`]). Its config (written by [`TestRegistry::start`]) enables
/// deletes, the access log ([`TestRegistry::requests`]) and, with
/// [`TestRegistry::start_with_htpasswd`] or [`TestRegistry::start_secure`], basic
/// authentication.
#[derive(Debug)]
pub struct TestRegistry {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    credentials: Option<(String, String)>,
    ca: Option<CaPem>,
}

/// One request from the registry's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// The method (`HEAD`, `POST`, ...).
    pub method: String,
    /// The path and query (`/v2/library/busybox/blobs/uploads/?mount=...`).
    pub path: String,
    /// The status the registry answered with.
    pub status: u16,
}

impl TestRegistry {
    /// Starts a registry that anyone may pull from and push to.
    pub fn start() -> Result<TestRegistry> {
        TestRegistry::start_inner(None, None)
    }

    /// Starts a registry that requires basic authentication as `user` with `password`
    /// (htpasswd with a bcrypt hash).
    pub fn start_with_htpasswd(user: &str, password: &str) -> Result<TestRegistry> {
        TestRegistry::start_inner(Some((user.to_owned(), password.to_owned())), None)
    }

    /// Starts a registry that speaks HTTPS only, with a server certificate (for `127.0.0.1`,
    /// `::1` and `localhost`) signed by a CA made for it, and requires basic authentication
    /// as `user` with `password`. Returns the registry and the CA a client must trust:
    /// see [`CaPem`] for how (for kiln, [`CaPem::install`] into the certs directory the
    /// client is configured with).
    ///
    /// Each call makes a new CA, so one secure registry's CA does not open another's.
    pub fn start_secure(user: &str, password: &str) -> Result<(TestRegistry, CaPem)> {
        let certificates = server_certificates("kiln test registry CA")?;
        let ca = certificates.ca.clone();
        let registry = TestRegistry::start_inner(
            Some((user.to_owned(), password.to_owned())),
            Some(certificates),
        )?;
        Ok((registry, ca))
    }

    /// The CA that signed the registry's certificate, when it speaks HTTPS.
    pub fn ca(&self) -> Option<&CaPem> {
        self.ca.as_ref()
    }

    /// The address the registry listens on: `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The user name and password the registry requires, if it requires any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }

    /// The registry's storage root (`storage.filesystem.rootdirectory`).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the registry keeps the bytes of a blob, so that a test can corrupt them.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let encoded = digest.encoded();
        let prefix = encoded.get(..2).unwrap_or(encoded);
        self.storage_dir()
            .join("docker/registry/v2/blobs")
            .join(digest.algorithm())
            .join(prefix)
            .join(encoded)
            .join("data")
    }

    /// The registry's log so far (its standard output and error).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The requests the registry has answered so far, in order, from its access log (the
    /// readiness probes excluded). The registry writes a request's line after answering it,
    /// so a request whose answer a client has received is listed.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log().lines().filter_map(parse_access_line).collect()
    }

    fn start_inner(
        credentials: Option<(String, String)>,
        tls: Option<ServerCertificates>,
    ) -> Result<TestRegistry> {
        if !Path::new(DOCKER_REGISTRY).exists() {
            return Err(TestkitError::MissingTool {
                program: DOCKER_REGISTRY.to_owned(),
                package: "docker-registry".to_owned(),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("kiln-registry-")
            .tempdir()
            .map_err(io_error(
                "creating a temporary directory in",
                std::env::temp_dir(),
            ))?;
        let storage = dir.path().join("storage");
        fs::create_dir(&storage).map_err(io_error("creating directory", &storage))?;
        let htpasswd = match &credentials {
            Some((user, password)) => {
                let hash =
                    bcrypt::hash(password, BCRYPT_COST).map_err(|e| TestkitError::Invalid {
                        what: "htpasswd password",
                        message: e.to_string(),
                    })?;
                let path = dir.path().join("htpasswd");
                fs::write(&path, format!("{user}:{hash}\n")).map_err(io_error("writing", &path))?;
                Some(path)
            }
            None => None,
        };
        let tls_files = match &tls {
            Some(certificates) => {
                let certificate = dir.path().join("server.crt");
                let key = dir.path().join("server.key");
                fs::write(&certificate, &certificates.certificate)
                    .map_err(io_error("writing", &certificate))?;
                fs::write(&key, &certificates.key).map_err(io_error("writing", &key))?;
                Some((certificate, key))
            }
            None => None,
        };
        // The temporary directory's name is unique: it tells our registry from another one
        // that might answer on the same port.
        let marker = dir
            .path()
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("kiln-registry")
            .to_owned();
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let addr = free_port()?;
            let config = dir.path().join("config.yml");
            let tls_paths = tls_files
                .as_ref()
                .map(|(certificate, key)| (certificate.as_path(), key.as_path()));
            let text = config_yaml(addr, &storage, htpasswd.as_deref(), tls_paths, &marker);
            fs::write(&config, text).map_err(io_error("writing", &config))?;
            let log_path = dir.path().join("registry.log");
            let log = fs::File::create(&log_path).map_err(io_error("creating", &log_path))?;
            let log_err = log.try_clone().map_err(io_error("opening", &log_path))?;
            let mut command = Command::new(DOCKER_REGISTRY);
            command
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err);
            // REGISTRY_* variables override the config file: keep the caller's out.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("REGISTRY_") {
                    command.env_remove(key);
                }
            }
            let mut child = command
                .spawn()
                .map_err(io_error("starting", DOCKER_REGISTRY))?;
            match wait_ready(&mut child, addr, &marker, tls.is_some()) {
                Ok(()) => {
                    return Ok(TestRegistry {
                        child,
                        addr,
                        dir,
                        credentials,
                        ca: tls.map(|certificates| certificates.ca),
                    });
                }
                Err(Failure::Exited(status)) => {
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    last_error = format!("{DOCKER_REGISTRY} exited with {status}: {}", tail(&log));
                }
                Err(Failure::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    return Err(TestkitError::RegistryStart {
                        message: format!(
                            "{addr} did not answer GET /v2/ within {}s: {}",
                            START_TIMEOUT.as_secs(),
                            tail(&log)
                        ),
                    });
                }
                Err(Failure::Io(e)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(TestkitError::RegistryStart {
                        message: format!("waiting for {DOCKER_REGISTRY}: {e}"),
                    });
                }
            }
        }
        Err(TestkitError::RegistryStart {
            message: format!("gave up after {START_ATTEMPTS} ports: {last_error}"),
        })
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago: bind port 0, read the port, close.
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(io_error("binding a port on", PathBuf::from("127.0.0.1:0")))?;
    listener.local_addr().map_err(io_error(
        "reading the address of",
        PathBuf::from("127.0.0.1:0"),
    ))
}

/// The registry config (YAML; paths are written as JSON strings, which YAML reads as is).
fn config_yaml(
    addr: SocketAddr,
    storage: &Path,
    htpasswd: Option<&Path>,
    tls: Option<(&Path, &Path)>,
    marker: &str,
) -> String {
    let quote = |path: &Path| {
        serde_json::to_string(&path.to_string_lossy()).unwrap_or_else(|_| "\"\"".to_owned())
    };
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {addr}\n  headers:\n    {MARKER_HEADER}: [\"{marker}\"]\n",
        storage = quote(storage),
    );
    if let Some((certificate, key)) = tls {
        config.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            quote(certificate),
            quote(key)
        ));
    }
    if let Some(path) = htpasswd {
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
            quote(path)
        ));
    }
    config
}

enum Failure {
    Exited(std::process::ExitStatus),
    Timeout,
    Io(std::io::Error),
}

/// Polls `GET /v2/` until our registry (the one sending our marker header) answers, the
/// process exits, or the time is up.
///
/// A registry speaking HTTPS cannot be asked without a TLS client, which this crate does not
/// have: Go's server answers a plain request with `400 Client sent an HTTP request to an
/// HTTPS server`, and that answer (while our process is still running) is taken as ready.
fn wait_ready(
    child: &mut Child,
    addr: SocketAddr,
    marker: &str,
    tls: bool,
) -> std::result::Result<(), Failure> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(Failure::Io)? {
            return Err(Failure::Exited(status));
        }
        let expected = if tls {
            HTTPS_ANSWER.to_owned()
        } else {
            format!("{MARKER_HEADER}: {marker}")
        };
        if probe(addr, &expected) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Failure::Timeout);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What Go's HTTPS server answers a plain HTTP request with.
const HTTPS_ANSWER: &str = "Client sent an HTTP request to an HTTPS server.";

/// The path of the readiness probe's request, which [`TestRegistry::requests`] leaves out.
const PROBE_PATH: &str = "/v2/?kiln-testkit-probe";

/// Whether `GET /v2/` on `addr` is answered with a line equal to `expected` (our marker
/// header, or Go's answer to plain HTTP on an HTTPS port).
fn probe(addr: SocketAddr, expected: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET {PROBE_PATH} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = stream.take(64 * 1024).read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    text.lines()
        .any(|line| line.trim_end().eq_ignore_ascii_case(expected))
}

/// A request from an access-log line (Apache's combined format, as the registry writes it:
/// `127.0.0.1 - - [date] "HEAD /v2/... HTTP/1.1" 200 0 "" "agent"`).
fn parse_access_line(line: &str) -> Option<LoggedRequest> {
    let (_, rest) = line.split_once("] \"")?;
    let (request, rest) = rest.split_once('"')?;
    let mut words = request.split(' ');
    let method = words.next()?;
    let path = words.next()?;
    if path == PROBE_PATH {
        return None;
    }
    let status = rest.trim_start().split(' ').next()?.parse().ok()?;
    Some(LoggedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        status,
    })
}

/// The last lines of a log, for error messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.len().saturating_sub(10);
    lines.get(start..).unwrap_or_default().join("\n")
}
