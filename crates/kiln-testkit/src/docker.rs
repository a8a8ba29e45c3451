//! The Docker engine (Debian's `docker.io`), as the reference that kiln's results are compared
//! with: `DOCKER_BUILDKIT=1 docker build` runs a build on the engine's own BuildKit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::error::{Result, TestkitError, io_error};

/// Where Debian's `docker.io` installs its command line client.
///
/// Another `docker` earlier in `PATH` (a newer client without the buildx plugin) refuses
/// `DOCKER_BUILDKIT=1` builds, so the fixture uses Debian's client unless `KILN_DOCKER` names
/// another one.
pub const DOCKER: &str = "/usr/bin/docker";

/// The environment variable that overrides [`DOCKER`].
pub const DOCKER_ENV: &str = "KILN_DOCKER";

/// A Docker engine answering on its default unix socket, driven through its command line client.
///
/// The engine is started by `scripts/dockerd.sh` (which `scripts/test.sh` runs) without a
/// bridge network, so builds through it pass `--network host` for their RUN steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerEngine {
    cli: PathBuf,
    server_version: String,
}

impl DockerEngine {
    /// Checks that the client is installed and that the daemon answers.
    pub fn connect() -> Result<DockerEngine> {
        let cli = std::env::var_os(DOCKER_ENV).map_or_else(|| PathBuf::from(DOCKER), PathBuf::from);
        if !cli.exists() {
            return Err(TestkitError::MissingTool {
                program: cli.display().to_string(),
                package: "docker.io".to_owned(),
            });
        }
        let output = Command::new(&cli)
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .map_err(io_error("running", &cli))?;
        if !output.status.success() {
            return Err(TestkitError::Command {
                command: format!("{} version", cli.display()),
                status: output.status.to_string(),
                stderr: format!(
                    "{} (the tests need a running Docker engine: run scripts/dockerd.sh)",
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            });
        }
        let server_version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(DockerEngine {
            cli,
            server_version,
        })
    }

    /// The client in use.
    pub fn cli(&self) -> &Path {
        &self.cli
    }

    /// The daemon's version, as `docker version` reports it.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// A `docker` command with BuildKit enabled (`DOCKER_BUILDKIT=1`).
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.cli);
        command.env("DOCKER_BUILDKIT", "1");
        command
    }

    /// Runs `DOCKER_BUILDKIT=1 docker build --network host --progress plain ARGS… CONTEXT` and
    /// returns its output whatever its exit status.
    pub fn build(&self, context: &Path, args: &[&str]) -> Result<Output> {
        self.command()
            .args(["build", "--network", "host", "--progress", "plain"])
            .args(args)
            .arg(context)
            .output()
            .map_err(io_error("running", &self.cli))
    }
}

/// Writes the Docker context `name` for the engine at `host` (a `DOCKER_HOST`-style address)
/// into the Docker config directory `config`, as `docker context create NAME --docker
/// host=HOST` does: `contexts/meta/<SHA-256 of the name>/meta.json`.
pub fn write_docker_context(config: &Path, name: &str, host: &str) -> Result<PathBuf> {
    let id = kiln_oci::Digest::of_bytes(name.as_bytes());
    let meta = config.join("contexts/meta").join(id.encoded());
    std::fs::create_dir_all(&meta).map_err(io_error("create", &meta))?;
    let file = meta.join("meta.json");
    let doc = serde_json::json!({
        "Name": name,
        "Metadata": {},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}},
    });
    std::fs::write(&file, doc.to_string()).map_err(io_error("write", &file))?;
    Ok(file)
}
