//! Credentials from Docker's `config.json` and its credential helpers.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use docker_credential::{CredentialRetrievalError, DockerCredential};

use crate::error::{RegistryError, Result};

/// The key Docker files Docker Hub's credentials under, and hands to credential helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// What a registry is accessed with.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// No credentials: anonymous access (with an anonymous token where the registry wants one).
    Anonymous,
    /// A user name and password (or token used as a password), for basic auth or to obtain a
    /// bearer token.
    Basic(String, String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Anonymous => f.write_str("Anonymous"),
            Credential::Basic(user, _) => write!(f, "Basic({user:?}, ***)"),
        }
    }
}

/// The Docker config directory when none is given: `$DOCKER_CONFIG`, else `~/.docker`.
pub(crate) fn default_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker")))
}

/// Looks up the credentials for `registry` (`host[:port]`, `docker.io` for Docker Hub) in
/// `config_dir/config.json`, running a credential helper when the config names one.
///
/// This blocks (it reads a file and may run a helper): call it through `spawn_blocking`.
///
/// A missing config file, a registry with no entry and a helper that answers "credentials not
/// found" all mean anonymous access; an unreadable or malformed config, a helper that cannot
/// be run or fails otherwise, and identity tokens (OAuth refresh tokens, which oci-client
/// cannot exchange) are errors.
pub(crate) fn lookup(config_dir: Option<&Path>, registry: &str) -> Result<Credential> {
    let Some(dir) = config_dir else {
        return Ok(Credential::Anonymous);
    };
    let path = dir.join("config.json");
    let error = |message: String| RegistryError::Credentials {
        registry: registry.to_owned(),
        message,
    };
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Credential::Anonymous),
        Err(e) => return Err(error(format!("reading {}: {e}", path.display()))),
    };
    // Docker Hub's entry is usually filed under its v1 URL; any key naming one of its hosts
    // is accepted too.
    let keys: &[&str] = if registry == "docker.io" {
        &[DOCKER_HUB_KEY, "index.docker.io"]
    } else {
        &[registry]
    };
    for key in keys {
        match docker_credential::get_credential_from_reader(bytes.as_slice(), key) {
            Ok(DockerCredential::UsernamePassword(user, password)) => {
                return Ok(Credential::Basic(user, password));
            }
            Ok(DockerCredential::IdentityToken(_)) => {
                return Err(error(format!(
                    "{} holds an identity token, which kiln cannot use yet: log in with a \
                     user name and password or access token instead",
                    path.display()
                )));
            }
            Err(CredentialRetrievalError::NoCredentialConfigured) => continue,
            Err(CredentialRetrievalError::HelperFailure { stdout, .. })
                if stdout.contains("credentials not found") =>
            {
                continue;
            }
            Err(CredentialRetrievalError::ConfigReadError) => {
                return Err(error(format!(
                    "{} is not a valid Docker config",
                    path.display()
                )));
            }
            Err(CredentialRetrievalError::HelperCommunicationError) => {
                return Err(error(format!(
                    "cannot run the credential helper that {} names",
                    path.display()
                )));
            }
            Err(other) => return Err(error(format!("{other} (from {})", path.display()))),
        }
    }
    Ok(Credential::Anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looks up `registry` in a config directory holding `config` (no file when `None`) and
    /// describes the outcome: `anonymous`, `basic USER PASSWORD` or `error MESSAGE`.
    fn check(config: Option<&str>, registry: &str, expected: &str) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        if let Some(config) = config {
            fs::write(dir.path().join("config.json"), config)
                .unwrap_or_else(|e| panic!("writing config: {e}"));
        }
        let got = match lookup(Some(dir.path()), registry) {
            Ok(Credential::Anonymous) => "anonymous".to_owned(),
            Ok(Credential::Basic(user, password)) => format!("basic {user} {password}"),
            Err(e) => format!(
                "error {}",
                e.to_string()
                    .replace(&dir.path().display().to_string(), "DIR")
            ),
        };
        assert_eq!(got, expected, "config {config:?}, registry {registry}");
    }

    #[test]
    fn lookups() {
        // base64("kiln:secret") and base64("hub:pw").
        let kiln = "a2lsbjpzZWNyZXQ=";
        let hub = "aHViOnB3";
        let cases: Vec<(Option<String>, &str, String)> = vec![
            (None, "127.0.0.1:5000", "anonymous".into()),
            (Some("{}".into()), "127.0.0.1:5000", "anonymous".into()),
            (
                Some(format!(
                    r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{kiln}"}}}}}}"#
                )),
                "127.0.0.1:5000",
                "basic kiln secret".into(),
            ),
            (
                Some(format!(
                    r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{kiln}"}}}}}}"#
                )),
                "127.0.0.1:5001",
                "anonymous".into(),
            ),
            (
                Some(format!(
                    r#"{{"auths":{{"http://localhost:5000":{{"auth":"{kiln}"}}}}}}"#
                )),
                "localhost:5000",
                "basic kiln secret".into(),
            ),
            (
                Some(r#"{"auths":{"r.example":{"username":"u","password":"p"}}}"#.into()),
                "r.example",
                "basic u p".into(),
            ),
            (
                Some(format!(
                    r#"{{"auths":{{"{DOCKER_HUB_KEY}":{{"auth":"{hub}"}}}}}}"#
                )),
                "docker.io",
                "basic hub pw".into(),
            ),
            (
                Some(format!(r#"{{"auths":{{"docker.io":{{"auth":"{hub}"}}}}}}"#)),
                "docker.io",
                "basic hub pw".into(),
            ),
            (
                Some(r#"{"auths":{"r.example":{"identitytoken":"t"}}}"#.into()),
                "r.example",
                "error credentials for r.example: DIR/config.json holds an identity token, \
                 which kiln cannot use yet: log in with a user name and password or access \
                 token instead"
                    .into(),
            ),
            (
                Some("{not json".into()),
                "r.example",
                "error credentials for r.example: DIR/config.json is not a valid Docker config"
                    .into(),
            ),
            (
                Some(r#"{"credsStore":"kiln-test-no-such-helper"}"#.into()),
                "r.example",
                "error credentials for r.example: cannot run the credential helper that \
                 DIR/config.json names"
                    .into(),
            ),
            (
                Some(r#"{"credHelpers":{"other.example":"kiln-test-no-such-helper"}}"#.into()),
                "r.example",
                "anonymous".into(),
            ),
        ];
        for (config, registry, expected) in cases {
            check(config.as_deref(), registry, &expected);
        }
    }

    #[test]
    fn no_config_dir_is_anonymous() {
        assert_eq!(lookup(None, "r.example").ok(), Some(Credential::Anonymous));
    }
}
