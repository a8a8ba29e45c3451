//! The registry errors, and how oci-client's errors map onto them.

use std::io;

use kiln_oci::Digest;
use oci_client::errors::{OciDistributionError, OciErrorCode};

/// Why a registry operation failed. Every message names the registry, repository, reference or
/// digest involved.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The tag, digest or repository does not exist.
    #[error("{reference}: not found")]
    NotFound {
        /// The reference asked for.
        reference: String,
    },
    /// A blob does not exist in the repository.
    #[error("blob {digest} not found in {repository}")]
    BlobNotFound {
        /// The repository (`127.0.0.1:5000/library/busybox`).
        repository: String,
        /// The blob.
        digest: Digest,
    },
    /// The registry refused access: no credentials, wrong ones, or not enough rights.
    #[error("unauthorized: {registry} denied access to {repository}{detail}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// What the registry said, starting with `: `, or empty.
        detail: String,
    },
    /// The registry could not be reached, or the connection broke.
    #[error("cannot reach registry {registry}: {message}")]
    Network {
        /// The registry host.
        registry: String,
        /// What failed (connection refused, TLS, timeout, ...).
        message: String,
    },
    /// The registry answered with an error this crate has no better name for.
    #[error("registry {registry} failed for {reference}: {message}")]
    Server {
        /// The registry host.
        registry: String,
        /// The reference or blob asked for.
        reference: String,
        /// What the registry said.
        message: String,
    },
    /// The index lists no manifest for the platform.
    #[error("no match for platform {platform} in {reference} (the index has {available})")]
    NoMatchingPlatform {
        /// The reference.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms the index lists.
        available: String,
    },
    /// The document is not an image manifest or index kiln can use.
    #[error("unsupported manifest for {reference}: {media_type}")]
    UnsupportedManifest {
        /// The reference (with the digest of the document).
        reference: String,
        /// Its media type, or why it is unsupported.
        media_type: String,
    },
    /// The config is not an image config.
    #[error("unsupported config media type {media_type} in {reference}")]
    UnsupportedConfig {
        /// The reference.
        reference: String,
        /// The config's media type.
        media_type: String,
    },
    /// The manifest is not valid.
    #[error("invalid manifest {reference}: {message}")]
    InvalidManifest {
        /// The reference (with the digest of the document).
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// The image config is not valid JSON of the expected shape.
    #[error("invalid image config {digest} of {reference}: {message}")]
    InvalidConfig {
        /// The reference.
        reference: String,
        /// The config's digest.
        digest: Digest,
        /// What is wrong.
        message: String,
    },
    /// Content does not have the digest it was asked for.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched (`blob sha256:... of ...`, `manifest ...`).
        what: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: String,
    },
    /// Content does not have the size its descriptor states.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was fetched.
        what: String,
        /// The size the descriptor states.
        expected: u64,
        /// The size that arrived (or was announced), at least.
        actual: u64,
    },
    /// A manifest or config is larger than kiln keeps in memory.
    #[error("{what} is too large: {size} bytes, the limit is {limit}")]
    TooLarge {
        /// What was fetched.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The Docker config or a credential helper failed.
    #[error("credentials for {registry}: {message}")]
    Credentials {
        /// The registry host.
        registry: String,
        /// What failed (the config file and the error, or the helper's answer).
        message: String,
    },
    /// Writing a fetched blob to its destination failed.
    #[error("writing blob {digest}: {source}")]
    Write {
        /// The blob.
        digest: Digest,
        /// The underlying error.
        source: io::Error,
    },
    /// The HTTP client could not be created.
    #[error("cannot create the registry client: {message}")]
    Client {
        /// What failed.
        message: String,
    },
    /// The CAs configured for a registry cannot be used.
    #[error("TLS configuration of registry {registry} in {}: {message}", dir.display())]
    Tls {
        /// The registry host.
        registry: String,
        /// Its certificates directory.
        dir: std::path::PathBuf,
        /// What failed (a file that cannot be read, a certificate that cannot be parsed).
        message: String,
    },
    /// Pushing a blob failed; `cause` says how (refused, network, ...).
    #[error("pushing blob {digest} to {repository}: {cause}")]
    PushBlob {
        /// The repository, with its registry (`127.0.0.1:5000/library/busybox`).
        repository: String,
        /// The blob.
        digest: Digest,
        /// What failed.
        cause: Box<RegistryError>,
    },
    /// Pushing a manifest or index failed; `cause` says how.
    #[error("pushing manifest {digest} as {reference}: {cause}")]
    PushManifest {
        /// The reference pushed to (`127.0.0.1:5000/library/busybox:latest`).
        reference: String,
        /// The manifest's digest.
        digest: Digest,
        /// What failed.
        cause: Box<RegistryError>,
    },
    /// The content of a blob to push could not be read.
    #[error("reading blob {digest} to push: {message}")]
    ReadBlob {
        /// The blob.
        digest: Digest,
        /// What failed, naming the file when there is one.
        message: String,
    },
    /// A blocking task (the credential lookup) panicked or was cancelled.
    #[error("credential lookup for {registry} did not finish: {message}")]
    Task {
        /// The registry host.
        registry: String,
        /// What happened to the task.
        message: String,
    },
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, RegistryError>;

/// What was being asked for when oci-client failed, to name it in the error.
pub(crate) struct Context<'a> {
    /// The registry host.
    pub registry: &'a str,
    /// The repository, with its registry (`127.0.0.1:5000/library/busybox`).
    pub repository: &'a str,
    /// The reference (for manifests) or blob digest asked for.
    pub reference: &'a str,
    /// The blob's digest, when a blob was asked for.
    pub blob: Option<&'a Digest>,
}

impl Context<'_> {
    fn not_found(&self) -> RegistryError {
        match self.blob {
            Some(digest) => RegistryError::BlobNotFound {
                repository: self.repository.to_owned(),
                digest: digest.clone(),
            },
            None => RegistryError::NotFound {
                reference: self.reference.to_owned(),
            },
        }
    }

    fn unauthorized(&self, detail: &str) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.registry.to_owned(),
            repository: self.repository.to_owned(),
            detail: if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            },
        }
    }

    fn server(&self, message: String) -> RegistryError {
        RegistryError::Server {
            registry: self.registry.to_owned(),
            reference: self.reference.to_owned(),
            message,
        }
    }

    fn network(&self, message: String) -> RegistryError {
        RegistryError::Network {
            registry: self.registry.to_owned(),
            message,
        }
    }

    /// Maps an oci-client error onto ours.
    pub(crate) fn map(&self, error: OciDistributionError) -> RegistryError {
        match error {
            OciDistributionError::UnauthorizedError { .. } => self.unauthorized(""),
            OciDistributionError::AuthenticationFailure(reason) => self.unauthorized(reason.trim()),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let message = envelope
                    .errors
                    .iter()
                    .map(|e| e.message.as_str())
                    .filter(|m| !m.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                let not_found = codes.iter().any(|code| {
                    matches!(
                        code,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                });
                let denied = codes
                    .iter()
                    .any(|code| matches!(code, OciErrorCode::Unauthorized | OciErrorCode::Denied));
                if not_found {
                    self.not_found()
                } else if denied {
                    self.unauthorized(&message)
                } else {
                    self.server(message)
                }
            }
            OciDistributionError::ServerError { code, message, .. } => match code {
                404 => self.not_found(),
                401 | 403 => self.unauthorized(message.trim()),
                _ => self.server(format!("HTTP {code}: {}", message.trim())),
            },
            // oci-client's `blob_exists` turns an error status into a request error.
            OciDistributionError::RequestError(error) => match error.status() {
                Some(status) if status.as_u16() == 404 => self.not_found(),
                Some(status) if matches!(status.as_u16(), 401 | 403) => {
                    self.unauthorized(&format!("HTTP {status}"))
                }
                // Go's HTTPS servers answer plain HTTP with a 400.
                Some(status)
                    if status.as_u16() == 400
                        && error.url().is_some_and(|url| url.scheme() == "http") =>
                {
                    self.server(format!(
                        "HTTP {status} to plain HTTP: if the registry speaks HTTPS, put its CA \
                         in the certificates directory (<certs.d>/{}/ca.crt)",
                        self.registry
                    ))
                }
                Some(status) => self.server(format!("HTTP {status}")),
                None => self.network(error_chain(&error)),
            },
            OciDistributionError::IoError(error) => self.network(error_chain(&error)),
            other => self.server(other.to_string()),
        }
    }
}

/// An error and its sources, joined with `: ` (reqwest's own message alone hides the cause).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// An I/O error from a blob stream, as the network error it is.
pub(crate) fn stream_error(registry: &str, error: &io::Error) -> RegistryError {
    let message = match error.get_ref() {
        Some(inner) => error_chain(inner),
        None => error.to_string(),
    };
    RegistryError::Network {
        registry: registry.to_owned(),
        message,
    }
}
