//! A real OpenSSH server on 127.0.0.1 (Debian's `openssh-server`), for tests of everything kiln
//! reaches over SSH: git repositories, Docker engines.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, TestkitError, io_error};

/// The OpenSSH server binary.
pub const SSHD: &str = "/usr/sbin/sshd";

/// An OpenSSH server on 127.0.0.1 that lets the holder of [`SshServer::client_key`] in as any
/// user with an `authorized_keys` entry (root included, as tests run as root); stopped on drop.
/// Its directory holds its keys, configuration and log, and whatever a test adds there.
pub struct SshServer {
    /// The server's directory.
    pub dir: tempfile::TempDir,
    /// The port it listens on.
    pub port: u16,
    /// The key the server accepts (ed25519, no passphrase).
    pub client_key: PathBuf,
    /// A key the server does not accept.
    pub other_key: PathBuf,
    /// The server's public host key (`ssh-ed25519 AAAA… host_key`), for a `known_hosts` line.
    pub host_key: String,
    child: Child,
}

impl SshServer {
    /// Starts the server and waits until it listens.
    pub fn start() -> Result<SshServer> {
        if !Path::new(SSHD).exists() {
            return Err(TestkitError::MissingTool {
                program: SSHD.to_string(),
                package: "openssh-server".to_string(),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("kiln-sshd-")
            .tempdir()
            .map_err(io_error(
                "create a temporary directory in",
                std::env::temp_dir(),
            ))?;
        let d = dir.path();
        let host_key = keygen(&d.join("host_key"))?;
        let client_key = d.join("client_key");
        let client_public = keygen(&client_key)?;
        let other_key = d.join("other_key");
        keygen(&other_key)?;
        let keys = d.join("authorized_keys");
        std::fs::write(&keys, client_public + "\n").map_err(io_error("write", &keys))?;
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").map_err(io_error("create", "/run/sshd"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io_error("find a free port on", "127.0.0.1"))?
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
                keys = keys.display(),
            ),
        )
        .map_err(io_error("write", &config))?;
        let log_path = d.join("sshd.log");
        let log = std::fs::File::create(&log_path).map_err(io_error("create", &log_path))?;
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io_error("start", SSHD))?;
        let mut server = SshServer {
            dir,
            port,
            client_key,
            other_key,
            host_key,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = matches!(server.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() >= deadline {
                return Err(TestkitError::Fixture {
                    name: "sshd",
                    message: format!(
                        "{} on port {port}:\n{}",
                        if exited { "exited" } else { "did not listen" },
                        server.log()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes an ed25519 key without passphrase at `path`; returns its public key line.
fn keygen(path: &Path) -> Result<String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", &name, "-f"])
        .arg(path)
        .output()
        .map_err(|_| TestkitError::MissingTool {
            program: "ssh-keygen".to_string(),
            package: "openssh-client".to_string(),
        })?;
    if !out.status.success() {
        return Err(TestkitError::Command {
            command: format!("ssh-keygen -f {}", path.display()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let mut public = path.as_os_str().to_owned();
    public.push(".pub");
    let public = PathBuf::from(public);
    std::fs::read_to_string(&public)
        .map(|line| line.trim().to_string())
        .map_err(io_error("read", &public))
}
