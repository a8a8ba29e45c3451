//! Which Docker engine `--load` talks to, chosen as the Docker CLI (and so buildx) chooses it:
//! `DOCKER_HOST` when set; else the context `DOCKER_CONTEXT` names; else the config's
//! `currentContext`; else the `default` context, the local socket.
//!
//! A context other than `default` is a directory of the Docker config
//! (`$DOCKER_CONFIG`, else `~/.docker`): `contexts/meta/<sha256 of the name>/meta.json` holds
//! its endpoints, of which kiln reads the engine's (`Endpoints.docker.Host`). TLS material of a
//! context (`contexts/tls/<sha256>/docker/`) is refused, as `DOCKER_TLS_VERIFY` is: kiln does
//! not speak TLS to the engine yet.

use std::path::{Path, PathBuf};

/// The engine address of the `default` context.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Why no engine address could be found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    /// The named context has no metadata directory.
    #[error("context {name:?} does not exist")]
    NotFound {
        /// The context's name.
        name: String,
    },
    /// The context or the config could not be read or is not what the Docker CLI writes.
    #[error("reading Docker context {name:?}: {reason}")]
    Invalid {
        /// The context's name (or `config.json` for the config file).
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The context connects to its engine with TLS.
    #[error(
        "Docker context {name:?} uses TLS to reach its engine, which kiln does not support yet"
    )]
    Tls {
        /// The context's name.
        name: String,
    },
}

/// Where the Docker CLI looks for its engine, read from the process environment: the
/// `DOCKER_HOST`-style address of the engine.
pub fn engine_host() -> Result<String, ContextError> {
    let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    let config_dir = env("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".docker")));
    resolve(
        env("DOCKER_HOST").as_deref(),
        env("DOCKER_CONTEXT").as_deref(),
        config_dir.as_deref(),
    )
}

/// [`engine_host`] for given environment values and Docker config directory.
pub fn resolve(
    docker_host: Option<&str>,
    docker_context: Option<&str>,
    config_dir: Option<&Path>,
) -> Result<String, ContextError> {
    if let Some(host) = docker_host {
        return Ok(host.to_string());
    }
    let name = match docker_context {
        Some(name) => name.to_string(),
        None => match config_dir {
            Some(dir) => current_context(dir)?.unwrap_or_default(),
            None => String::new(),
        },
    };
    if name.is_empty() || name == "default" {
        return Ok(DEFAULT_HOST.to_string());
    }
    let Some(dir) = config_dir else {
        return Err(ContextError::NotFound { name });
    };
    context_host(dir, &name)
}

/// The config's `currentContext`, if it names one (a missing config names none).
fn current_context(config_dir: &Path) -> Result<Option<String>, ContextError> {
    let path = config_dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ContextError::Invalid {
                name: "config.json".to_string(),
                reason: format!("{}: {e}", path.display()),
            });
        }
    };
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ContextError::Invalid {
            name: "config.json".to_string(),
            reason: format!("{}: {e}", path.display()),
        })?;
    Ok(config
        .get("currentContext")
        .and_then(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_string))
}

/// The engine address of the context `name` stored under `config_dir`.
fn context_host(config_dir: &Path, name: &str) -> Result<String, ContextError> {
    let id = kiln_oci::Digest::of_bytes(name.as_bytes());
    let id = id.encoded();
    let meta = config_dir.join("contexts/meta").join(id).join("meta.json");
    let invalid = |reason: String| ContextError::Invalid {
        name: name.to_string(),
        reason,
    };
    let text = match std::fs::read_to_string(&meta) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ContextError::NotFound {
                name: name.to_string(),
            });
        }
        Err(e) => return Err(invalid(format!("{}: {e}", meta.display()))),
    };
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(format!("{}: {e}", meta.display())))?;
    let tls = config_dir.join("contexts/tls").join(id).join("docker");
    if std::fs::read_dir(&tls).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ContextError::Tls {
            name: name.to_string(),
        });
    }
    doc.pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("{} has no Endpoints.docker.Host", meta.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_context(dir: &Path, name: &str, host: &str) {
        kiln_testkit::write_docker_context(dir, name, host).expect("write the context");
    }

    #[test]
    fn chooses_the_engine_as_the_docker_cli_does() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path();
        write_context(config, "rootless", "unix:///run/user/1000/docker.sock");
        write_context(config, "remote", "tcp://127.0.0.1:2375");
        let check = |host: Option<&str>,
                     context: Option<&str>,
                     current: Option<&str>,
                     want: Result<&str, ContextError>| {
            match current {
                Some(c) => std::fs::write(
                    config.join("config.json"),
                    serde_json::json!({"auths": {}, "currentContext": c}).to_string(),
                )
                .expect("config.json"),
                None => {
                    let _ = std::fs::remove_file(config.join("config.json"));
                }
            }
            let got = resolve(host, context, Some(config));
            assert_eq!(
                got,
                want.map(str::to_string),
                "DOCKER_HOST={host:?} DOCKER_CONTEXT={context:?} currentContext={current:?}"
            );
        };
        check(None, None, None, Ok(DEFAULT_HOST));
        check(None, None, Some("default"), Ok(DEFAULT_HOST));
        check(
            None,
            None,
            Some("rootless"),
            Ok("unix:///run/user/1000/docker.sock"),
        );
        // DOCKER_CONTEXT over the config's current context, DOCKER_HOST over both.
        check(
            None,
            Some("remote"),
            Some("rootless"),
            Ok("tcp://127.0.0.1:2375"),
        );
        check(None, Some("default"), Some("rootless"), Ok(DEFAULT_HOST));
        check(
            Some("unix:///tmp/x.sock"),
            Some("remote"),
            Some("rootless"),
            Ok("unix:///tmp/x.sock"),
        );
        check(
            None,
            Some("missing"),
            None,
            Err(ContextError::NotFound {
                name: "missing".to_string(),
            }),
        );
        check(
            None,
            None,
            Some("gone"),
            Err(ContextError::NotFound {
                name: "gone".to_string(),
            }),
        );
        // A context with TLS material is refused.
        let id = kiln_oci::Digest::of_bytes(b"remote");
        let tls = config
            .join("contexts/tls")
            .join(id.encoded())
            .join("docker");
        std::fs::create_dir_all(&tls).expect("tls dir");
        std::fs::write(tls.join("ca.pem"), "x").expect("ca.pem");
        check(
            None,
            Some("remote"),
            None,
            Err(ContextError::Tls {
                name: "remote".to_string(),
            }),
        );
    }

    #[test]
    fn reads_the_directory_docker_context_create_makes() {
        // `docker context create rootless --docker host=…` writes its metadata under the
        // SHA-256 of the name (computed independently: `sha256sum` of the bare name).
        let dir = tempfile::tempdir().expect("temp dir");
        let meta = dir
            .path()
            .join("contexts/meta/12b961af5feb3e9d39f93b2cefb9a1a944f18d02cca0cac2f04f5a982240605f");
        std::fs::create_dir_all(&meta).expect("meta dir");
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"rootless","Metadata":{"Description":""},"Endpoints":{"docker":{"Host":"unix:///run/user/1000/docker.sock","SkipTLSVerify":false}}}"#,
        )
        .expect("meta.json");
        assert_eq!(
            resolve(None, Some("rootless"), Some(dir.path())),
            Ok("unix:///run/user/1000/docker.sock".to_string())
        );
    }
}
