//! TLS to the Docker engine, set up as the Docker CLI sets it up for `DOCKER_TLS_VERIFY` (and
//! for Docker contexts with TLS material): the engine's certificate must chain to the
//! directory's `ca.pem` (only to it), and `cert.pem` with `key.pem`, when both are there, are
//! the client's certificate. Docker-in-Docker with `DOCKER_TLS_CERTDIR`, common in CI, is
//! reached this way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Why a TLS connection to the engine could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file of the TLS directory could not be read or holds no usable PEM.
    #[error("reading {path}: {message}")]
    Material {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The TLS configuration could not be made from the material.
    #[error("the TLS configuration from {dir}: {message}")]
    Config {
        /// The TLS directory.
        dir: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The engine's host is not a name or address a certificate can be checked against.
    #[error("{host:?} is not a host name or IP address TLS can verify")]
    ServerName {
        /// The host.
        host: String,
    },
    /// The TLS handshake failed (the engine's certificate was refused, or it refused ours).
    #[error("TLS handshake with the Docker engine at {host}: {source}")]
    Handshake {
        /// The engine's address.
        host: String,
        /// The handshake's error.
        #[source]
        source: std::io::Error,
    },
}

/// The client configuration for the engine whose TLS material is in `dir`.
pub fn client_config(dir: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let material = |name: &str, e: &dyn std::fmt::Display| TlsError::Material {
        path: dir.join(name),
        message: e.to_string(),
    };
    let ca = dir.join("ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca).map_err(|e| material("ca.pem", &e))? {
        let cert = cert.map_err(|e| material("ca.pem", &e))?;
        roots.add(cert).map_err(|e| material("ca.pem", &e))?;
    }
    if roots.is_empty() {
        return Err(material("ca.pem", &"no certificate in it"));
    }
    let config_error = |e: rustls::Error| TlsError::Config {
        dir: dir.to_path_buf(),
        message: e.to_string(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_root_certificates(roots);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !(cert.is_file() && key.is_file()) {
        return Ok(builder.with_no_client_auth());
    }
    let chain = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| material("cert.pem", &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| material("cert.pem", &e))?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| material("key.pem", &e))?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(config_error)
}

/// Wraps `stream`, connected to `hostport`, in TLS configured from `dir`.
pub async fn connect(
    stream: tokio::net::TcpStream,
    hostport: &str,
    dir: &Path,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, TlsError> {
    let config = client_config(dir)?;
    let host = host_of(hostport);
    let name = ServerName::try_from(host.to_string()).map_err(|_| TlsError::ServerName {
        host: host.to_string(),
    })?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(|source| TlsError::Handshake {
            host: hostport.to_string(),
            source,
        })
}

/// The host of `host:port` or `[v6]:port`, without brackets.
fn host_of(hostport: &str) -> &str {
    if let Some(rest) = hostport.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    hostport.rsplit_once(':').map_or(hostport, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_addresses() {
        for (hostport, want) in [
            ("docker:2376", "docker"),
            ("127.0.0.1:2376", "127.0.0.1"),
            ("[::1]:2376", "::1"),
        ] {
            assert_eq!(host_of(hostport), want, "{hostport}");
        }
    }

    #[test]
    fn refuses_missing_or_empty_material() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = client_config(dir.path()).expect_err("no ca.pem");
        assert!(err.to_string().contains("ca.pem"), "{err}");
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").expect("write");
        let err = client_config(dir.path()).expect_err("no certificate");
        assert!(err.to_string().contains("no certificate in it"), "{err}");
    }
}
