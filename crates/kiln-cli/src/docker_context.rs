//! Which Docker engine `--load` talks to, chosen as the Docker CLI (and so buildx) chooses it:
//! `DOCKER_HOST` when set; else the context `DOCKER_CONTEXT` names; else the config's
//! `currentContext`; else the `default` context, the local socket.
//!
//! A context other than `default` is a directory of the Docker config
//! (`$DOCKER_CONFIG`, else `~/.docker`): `contexts/meta/<sha256 of the name>/meta.json` holds
//! its endpoints, of which kiln reads the engine's (`Endpoints.docker.Host`), and
//! `contexts/tls/<sha256>/docker/` its TLS material (`ca.pem`, `cert.pem`, `key.pem`).
//!
//! With `DOCKER_HOST`, TLS is `DOCKER_TLS_VERIFY` (any non-empty value), with the material in
//! `DOCKER_CERT_PATH` (else the config directory), as the Docker CLI reads them: the engine's
//! certificate must chain to `ca.pem`, and `cert.pem` with `key.pem` are the client's
//! certificate (Docker-in-Docker's `DOCKER_TLS_CERTDIR` set-up in CI, for instance).

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
    /// The context reaches its engine with TLS without verifying it (`SkipTLSVerify`).
    #[error(
        "Docker context {name:?} skips verifying its engine's TLS certificate, which kiln does not support"
    )]
    SkipTlsVerify {
        /// The context's name.
        name: String,
    },
}

/// Where the engine is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The `DOCKER_HOST`-style address.
    pub host: String,
    /// With TLS: the directory holding `ca.pem` (and the client's `cert.pem` and `key.pem`).
    pub tls: Option<PathBuf>,
}

impl Endpoint {
    fn plain(host: &str) -> Endpoint {
        Endpoint {
            host: host.to_string(),
            tls: None,
        }
    }
}

/// The engine the Docker CLI would use, read from the process environment.
pub fn engine() -> Result<Endpoint, ContextError> {
    let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    let config_dir = env("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".docker")));
    let tls_dir = env("DOCKER_TLS_VERIFY").and_then(|_| {
        env("DOCKER_CERT_PATH")
            .map(PathBuf::from)
            .or_else(|| config_dir.clone())
    });
    resolve(
        env("DOCKER_HOST").as_deref(),
        tls_dir,
        env("DOCKER_CONTEXT").as_deref(),
        config_dir.as_deref(),
    )
}

/// [`engine`] for given environment values (`docker_tls`: the TLS directory when
/// `DOCKER_TLS_VERIFY` is set) and Docker config directory.
pub fn resolve(
    docker_host: Option<&str>,
    docker_tls: Option<PathBuf>,
    docker_context: Option<&str>,
    config_dir: Option<&Path>,
) -> Result<Endpoint, ContextError> {
    if let Some(host) = docker_host {
        return Ok(Endpoint {
            host: host.to_string(),
            tls: docker_tls,
        });
    }
    let name = match docker_context {
        Some(name) => name.to_string(),
        None => match config_dir {
            Some(dir) => current_context(dir)?.unwrap_or_default(),
            None => String::new(),
        },
    };
    if name.is_empty() || name == "default" {
        return Ok(Endpoint::plain(DEFAULT_HOST));
    }
    let Some(dir) = config_dir else {
        return Err(ContextError::NotFound { name });
    };
    context_endpoint(dir, &name)
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

/// The engine of the context `name` stored under `config_dir`.
fn context_endpoint(config_dir: &Path, name: &str) -> Result<Endpoint, ContextError> {
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
    let host = doc
        .pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid(format!("{} has no Endpoints.docker.Host", meta.display())))?;
    if doc
        .pointer("/Endpoints/docker/SkipTLSVerify")
        .and_then(|v| v.as_bool())
        == Some(true)
    {
        return Err(ContextError::SkipTlsVerify {
            name: name.to_string(),
        });
    }
    let tls = config_dir.join("contexts/tls").join(id).join("docker");
    let has_tls = std::fs::read_dir(&tls).is_ok_and(|mut entries| entries.next().is_some());
    Ok(Endpoint {
        host: host.to_string(),
        tls: has_tls.then_some(tls),
    })
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
                     want: Result<(&str, Option<PathBuf>), ContextError>| {
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
            let got = resolve(host, None, context, Some(config));
            let want = want.map(|(host, tls)| Endpoint {
                host: host.to_string(),
                tls,
            });
            assert_eq!(
                got, want,
                "DOCKER_HOST={host:?} DOCKER_CONTEXT={context:?} currentContext={current:?}"
            );
        };
        check(None, None, None, Ok((DEFAULT_HOST, None)));
        check(None, None, Some("default"), Ok((DEFAULT_HOST, None)));
        check(
            None,
            None,
            Some("rootless"),
            Ok(("unix:///run/user/1000/docker.sock", None)),
        );
        // DOCKER_CONTEXT over the config's current context, DOCKER_HOST over both.
        check(
            None,
            Some("remote"),
            Some("rootless"),
            Ok(("tcp://127.0.0.1:2375", None)),
        );
        check(
            None,
            Some("default"),
            Some("rootless"),
            Ok((DEFAULT_HOST, None)),
        );
        check(
            Some("unix:///tmp/x.sock"),
            Some("remote"),
            Some("rootless"),
            Ok(("unix:///tmp/x.sock", None)),
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
        // A context with TLS material is reached with it.
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
            Ok(("tcp://127.0.0.1:2375", Some(tls))),
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
            resolve(None, None, Some("rootless"), Some(dir.path())),
            Ok(Endpoint::plain("unix:///run/user/1000/docker.sock"))
        );
        // DOCKER_HOST with DOCKER_TLS_VERIFY: its TLS directory.
        assert_eq!(
            resolve(
                Some("tcp://docker:2376"),
                Some(PathBuf::from("/certs/client")),
                Some("rootless"),
                Some(dir.path())
            ),
            Ok(Endpoint {
                host: "tcp://docker:2376".to_string(),
                tls: Some(PathBuf::from("/certs/client")),
            })
        );
    }
}
