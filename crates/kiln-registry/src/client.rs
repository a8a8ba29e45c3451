//! [`RegistryClient`]: the [`Registry`] implementation on top of oci-client.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use kiln_oci::{Digest, Image, Platform, Reference};
use oci_client::client::{
    Certificate, CertificateEncoding, ClientConfig, ClientProtocol, LayerDescriptor,
};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;

use crate::credentials::{self, Credential};
use crate::error::{Context, RegistryError, Result, stream_error};
use crate::manifest::{
    ACCEPTED_MANIFEST_TYPES, DOCKER_CONFIG, Descriptor, Document, DocumentError, Manifest,
    OCI_CONFIG, parse_document,
};
use crate::select::{ManifestSource, select_manifest};
use crate::verify::Verifier;
use crate::{BoxFuture, Registry, Resolved};

/// The largest image config kept in memory (configs are a few KiB; 16 MiB is generous).
pub const MAX_CONFIG_SIZE: u64 = 16 << 20;

/// The largest manifest or index accepted, as containerd limits them. oci-client reads a
/// manifest whole before kiln sees it, so a larger one is rejected after it arrived (but is
/// never parsed); an index entry that states a larger size is not fetched at all.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a registry may stay silent in the middle of a response.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Where Docker looks for the CAs of registries whose certificates the system roots do not
/// cover: `<dir>/<host[:port]>/*.crt`. The default of [`RegistryConfig::certs_dir`].
pub const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";

/// The `User-Agent` sent when [`RegistryConfig::user_agent`] is empty.
pub const DEFAULT_USER_AGENT: &str = concat!("kiln/", env!("CARGO_PKG_VERSION"));

/// How a [`RegistryClient`] reaches registries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Insecure registries (`host:port`, or a host alone, which then matches every port of
    /// it), reached as BuildKit reaches a registry configured with `insecure` and
    /// `http` (what `registry.insecure=true` sets): over HTTPS that accepts any certificate
    /// and any host name, or, when HTTPS does not work for the registry (the TLS connection
    /// fails, as when the server speaks plain HTTP), over plain HTTP.
    ///
    /// Which of the two is decided once per registry, on its first use, by a probe:
    /// `GET https://<registry>/v2/` without verification. Any HTTP response at all (even
    /// `401` or `404`) means HTTPS works; a failed connection means plain HTTP is probed the
    /// same way and used when it answers. When neither answers nothing is decided (the next
    /// use probes again) and the request goes over unverified HTTPS, failing with the
    /// connection's error. Listing a registry here overrides both the loopback rule (plain
    /// HTTP) and the CAs of [`RegistryConfig::certs_dir`].
    pub insecure: Vec<String>,
    /// The Docker config directory holding `config.json`; `None` means `$DOCKER_CONFIG`, else
    /// `~/.docker`.
    pub docker_config_dir: Option<PathBuf>,
    /// The `User-Agent` header; empty means [`DEFAULT_USER_AGENT`]. A `&'static str` because
    /// oci-client takes one.
    pub user_agent: &'static str,
    /// Docker's certificates directory: the CAs a registry is trusted with, besides the
    /// system's roots, are the `*.crt` files of `<certs_dir>/<host[:port]>/` (the registry
    /// as it is named in references). `None` means [`DOCKER_CERTS_DIR`].
    ///
    /// A registry with CAs there is always reached over HTTPS verified with them, even on
    /// loopback, where registries are otherwise plain HTTP: configuring a CA for it says it
    /// speaks TLS. Only a registry listed in [`RegistryConfig::insecure`] ignores its CAs.
    /// (BuildKit configures the same per registry in `buildkitd.toml`:
    /// `[registry."host:port"] ca = ["/path/ca.pem"]`; `kiln` may map that onto this later.)
    /// Client certificates (`*.cert` with `*.key`, Docker's mutual TLS) are not supported yet.
    pub certs_dir: Option<PathBuf>,
}

/// How a [`RegistryClient`] reaches one registry ([`RegistryClient::transport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS verified against the system's roots: every registry that is neither on
    /// loopback, nor has CAs in the certificates directory, nor is listed as insecure.
    Https,
    /// HTTPS verified against the system's roots and the registry's own CAs from the
    /// certificates directory ([`RegistryConfig::certs_dir`]).
    HttpsWithCas,
    /// HTTPS that accepts any certificate and host name: an insecure registry that speaks
    /// HTTPS, or one whose probe found neither protocol answering.
    HttpsUnverified,
    /// Plain HTTP: a loopback registry (neither listed as insecure nor with CAs), or an
    /// insecure registry whose HTTPS did not work.
    PlainHttp,
}

/// The [`Registry`] implementation that talks to real registries, through oci-client.
///
/// It holds up to three shared HTTP clients, each with its own token cache: HTTPS verified
/// with the system's roots, plain HTTP (loopback registries, and insecure registries that do
/// not speak HTTPS), and HTTPS without verification (insecure registries that speak HTTPS);
/// plus one verified HTTPS client per registry that has its own CAs in the certificates
/// directory ([`RegistryConfig::certs_dir`]). All are made on first use, and the system's TLS
/// roots are read once for all of them: reading them (a file per certificate) cost a fully
/// cached build more than the rest of its work.
///
/// How each registry is reached ([`Transport`]) is decided once, on its first use, and
/// remembered in the client: for a registry listed as insecure by a probe (see
/// [`RegistryConfig::insecure`]), for the others by looking at the certificates directory
/// (one `read_dir` of a directory that usually does not exist). Concurrent first uses of a
/// registry wait for one decision. Credentials are looked up once per registry, on first
/// use, from the Docker config and its credential helpers.
pub struct RegistryClient {
    https: OnceLock<oci_client::Client>,
    http: OnceLock<oci_client::Client>,
    /// HTTPS accepting any certificate, for insecure registries that speak HTTPS.
    unverified: OnceLock<oci_client::Client>,
    /// The system's TLS roots, read on first use.
    roots: OnceLock<Vec<Certificate>>,
    /// By registry host: how it is reached, decided on its first use.
    routes: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Route>>>>,
    certs_dir: PathBuf,
    user_agent: &'static str,
    insecure: Vec<String>,
    docker_config_dir: Option<PathBuf>,
    /// The credentials looked up so far, by registry host.
    credentials: Mutex<HashMap<String, RegistryAuth>>,
}

/// How one registry is reached: the transport and the client that implements it (a cheap
/// handle on a shared connection pool and token cache).
#[derive(Clone)]
struct Route {
    transport: Transport,
    client: oci_client::Client,
}

/// Why no [`Route`] was remembered for a registry.
enum NotDecided {
    /// Setting up its client failed.
    Failed(RegistryError),
    /// An insecure registry answered neither over HTTPS nor over plain HTTP: this use goes
    /// over unverified HTTPS, and the next one probes again.
    Unanswered(Route),
}

/// What one probe (`GET <scheme>://<host>/v2/`) of an insecure registry found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    /// The server answered with an HTTP response (any status): the protocol works.
    Answered,
    /// No connection could be made: refused, unreachable, or (for HTTPS) the TLS handshake
    /// failed, as it does when the server speaks plain HTTP.
    ConnectFailed(String),
    /// The connection was made but the request failed otherwise (a timeout, a broken
    /// response).
    Failed(String),
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("insecure", &self.insecure)
            .field("docker_config_dir", &self.docker_config_dir)
            .field("certs_dir", &self.certs_dir)
            .finish_non_exhaustive()
    }
}

/// The shared clients of a [`RegistryClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shared {
    /// HTTPS verified with the system's roots.
    Https,
    /// Plain HTTP.
    Http,
    /// HTTPS accepting any certificate.
    Unverified,
}

impl RegistryClient {
    /// A client with this configuration. Nothing is read or connected before the first
    /// request; a failure to set up HTTP (for instance TLS roots that cannot be loaded) is
    /// the first request's error.
    pub fn new(config: RegistryConfig) -> Result<RegistryClient> {
        Ok(RegistryClient {
            https: OnceLock::new(),
            http: OnceLock::new(),
            unverified: OnceLock::new(),
            roots: OnceLock::new(),
            routes: Mutex::new(HashMap::new()),
            certs_dir: config
                .certs_dir
                .unwrap_or_else(|| PathBuf::from(DOCKER_CERTS_DIR)),
            user_agent: if config.user_agent.is_empty() {
                DEFAULT_USER_AGENT
            } else {
                config.user_agent
            },
            insecure: config.insecure,
            docker_config_dir: config
                .docker_config_dir
                .or_else(credentials::default_config_dir),
            credentials: Mutex::new(HashMap::new()),
        })
    }

    /// The system's TLS roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` are honoured), read once. Empty
    /// when none could be read: the HTTP client then looks for them itself, and reports it.
    fn roots(&self) -> &Vec<Certificate> {
        self.roots.get_or_init(|| {
            rustls_native_certs::load_native_certs()
                .certs
                .into_iter()
                .map(|der| Certificate {
                    encoding: CertificateEncoding::Der,
                    data: der.to_vec(),
                })
                .collect()
        })
    }

    /// One of the shared HTTP clients, made on first use.
    fn shared(&self, which: Shared) -> Result<&oci_client::Client> {
        let (cell, protocol, verify) = match which {
            Shared::Https => (&self.https, ClientProtocol::Https, true),
            Shared::Http => (&self.http, ClientProtocol::Http, true),
            Shared::Unverified => (&self.unverified, ClientProtocol::Https, false),
        };
        if let Some(client) = cell.get() {
            return Ok(client);
        }
        let client = self
            .make_client(protocol, Vec::new(), verify)
            .map_err(|message| RegistryError::Client { message })?;
        // Two tasks may race to make it: one of the two equivalent clients is kept.
        let _ = cell.set(client);
        cell.get().ok_or_else(|| RegistryError::Client {
            message: "the HTTP client could not be kept".to_owned(),
        })
    }

    /// An oci-client client: the system roots plus `extra_roots` (or, unless `verify`, any
    /// certificate and host name), kiln's timeouts and `User-Agent`, monolithic blob uploads
    /// (one streamed `PUT`, see [`crate::Pusher`]).
    fn make_client(
        &self,
        protocol: ClientProtocol,
        extra_roots: Vec<Certificate>,
        verify: bool,
    ) -> std::result::Result<oci_client::Client, String> {
        let client_config = ClientConfig {
            protocol,
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: self.user_agent,
            // Plain-HTTP registries may still redirect blob downloads to HTTPS storage.
            tls_certs_only: if verify {
                self.roots().clone()
            } else {
                Vec::new()
            },
            extra_root_certificates: extra_roots,
            // With rustls this turns verification off altogether, so any host name is
            // accepted too (oci-client has `accept_invalid_hostnames` for native-tls only).
            accept_invalid_certificates: !verify,
            use_monolithic_push: true,
            ..ClientConfig::default()
        };
        oci_client::Client::try_from(client_config).map_err(|e| crate::error::error_chain(&e))
    }

    /// How `registry` (`host[:port]`, as references name it) is reached: decided on its
    /// first use (for an insecure registry by probing it, see [`RegistryConfig::insecure`])
    /// and remembered. Fails when the registry's CAs cannot be read or a client cannot be
    /// made.
    pub async fn transport(&self, registry: &str) -> Result<Transport> {
        Ok(self.route(registry).await?.transport)
    }

    /// The route to `registry`, decided on first use.
    async fn route(&self, registry: &str) -> Result<Route> {
        let cell = match self.routes.lock() {
            Ok(mut routes) => Arc::clone(routes.entry(registry.to_owned()).or_default()),
            // A poisoned map only costs remembering: decide afresh.
            Err(_) => Arc::new(tokio::sync::OnceCell::new()),
        };
        let decided = cell.get_or_try_init(|| self.decide(registry)).await;
        match decided {
            Ok(route) => Ok(route.clone()),
            Err(NotDecided::Failed(error)) => Err(error),
            Err(NotDecided::Unanswered(route)) => Ok(route),
        }
    }

    /// Decides how `registry` is reached: insecure registries by probing, the others by their
    /// CAs and the loopback rule.
    async fn decide(&self, registry: &str) -> std::result::Result<Route, NotDecided> {
        let route = |transport: Transport, which: Shared| {
            self.shared(which)
                .map(|client| Route {
                    transport,
                    client: client.clone(),
                })
                .map_err(NotDecided::Failed)
        };
        if is_insecure(registry, &self.insecure) {
            let probe_client = self.probe_client().map_err(NotDecided::Failed)?;
            let host = api_host(registry);
            let https = probe(&probe_client, "https", host).await;
            let http = if matches!(https, Probe::ConnectFailed(_)) {
                Some(probe(&probe_client, "http", host).await)
            } else {
                None
            };
            return match insecure_transport(&https, http.as_ref()) {
                Some(Transport::PlainHttp) => route(Transport::PlainHttp, Shared::Http),
                Some(transport) => route(transport, Shared::Unverified),
                None => Err(NotDecided::Unanswered(route(
                    Transport::HttpsUnverified,
                    Shared::Unverified,
                )?)),
            };
        }
        let dir = self.certs_dir.join(registry);
        let tls_error = |message| {
            NotDecided::Failed(RegistryError::Tls {
                registry: registry.to_owned(),
                dir: dir.clone(),
                message,
            })
        };
        let cas = registry_cas(&dir).map_err(tls_error)?;
        if !cas.is_empty() {
            let client = self
                .make_client(ClientProtocol::Https, cas, true)
                .map_err(tls_error)?;
            return Ok(Route {
                transport: Transport::HttpsWithCas,
                client,
            });
        }
        if is_plain_http(registry, &self.insecure) {
            route(Transport::PlainHttp, Shared::Http)
        } else {
            route(Transport::Https, Shared::Https)
        }
    }

    /// The HTTP client that probes insecure registries: no certificate verification, no
    /// redirects (a redirect is an answer), kiln's timeouts and `User-Agent`.
    fn probe_client(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| RegistryError::Client {
                message: crate::error::error_chain(&e),
            })
    }

    /// Whether `registry` (`host[:port]`) is reached over plain HTTP by the rule alone: a
    /// loopback registry not listed as insecure. A registry with its own CAs in the
    /// certificates directory is reached over HTTPS all the same, and an insecure registry
    /// over plain HTTP only when its probe finds that HTTPS does not work
    /// ([`RegistryClient::transport`] says what was decided).
    pub fn is_plain_http(&self, registry: &str) -> bool {
        is_plain_http(registry, &self.insecure)
    }

    /// The HTTP client for the reference's registry, with its credentials stored in it.
    /// (Clients are cheap handles on shared connection pools and token caches.)
    pub(crate) async fn client_for(&self, reference: &Reference) -> Result<oci_client::Client> {
        let registry = reference.domain();
        let client = self.route(registry).await?.client;
        let known = self.cached_auth(registry);
        let auth = match known {
            Some(auth) => auth,
            None => {
                let dir = self.docker_config_dir.clone();
                let host = registry.to_owned();
                let credential =
                    tokio::task::spawn_blocking(move || credentials::lookup(dir.as_deref(), &host))
                        .await
                        .map_err(|e| RegistryError::Task {
                            registry: registry.to_owned(),
                            message: e.to_string(),
                        })??;
                let auth = match credential {
                    Credential::Anonymous => RegistryAuth::Anonymous,
                    Credential::Basic(user, password) => RegistryAuth::Basic(user, password),
                };
                if let Ok(mut map) = self.credentials.lock() {
                    map.insert(registry.to_owned(), auth.clone());
                }
                auth
            }
        };
        let target = oci_reference(reference);
        client
            .store_auth_if_needed(target.resolve_registry(), &auth)
            .await;
        Ok(client)
    }

    fn cached_auth(&self, registry: &str) -> Option<RegistryAuth> {
        self.credentials
            .lock()
            .ok()
            .and_then(|map| map.get(registry).cloned())
    }

    /// Fetches a manifest document by tag or digest, verifying it against the reference's
    /// digest (and `expected`'s size, when it comes from an index).
    async fn fetch_document(
        &self,
        client: &oci_client::Client,
        reference: &Reference,
        expected: Option<&Descriptor>,
    ) -> Result<(Vec<u8>, Digest, Document)> {
        let target = oci_reference(reference);
        let shown = reference.to_string();
        if let Some(descriptor) = expected
            && descriptor.size > MAX_MANIFEST_SIZE
        {
            return Err(RegistryError::TooLarge {
                what: format!("manifest {shown}"),
                size: descriptor.size,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let context = Context {
            registry: reference.domain(),
            repository: &reference.name(),
            reference: &shown,
            blob: None,
        };
        let (bytes, _) = client
            .pull_manifest_raw(&target, &RegistryAuth::Anonymous, ACCEPTED_MANIFEST_TYPES)
            .await
            .map_err(|e| match (e, reference.digest()) {
                (e @ OciDistributionError::DigestError(_), Some(wanted)) => {
                    RegistryError::DigestMismatch {
                        what: format!("manifest {shown}"),
                        expected: wanted.clone(),
                        actual: e.to_string(),
                    }
                }
                (e @ OciDistributionError::DigestError(_), None) => RegistryError::Server {
                    registry: reference.domain().to_owned(),
                    reference: shown.clone(),
                    message: format!("the manifest does not match its Docker-Content-Digest: {e}"),
                },
                (other, _) => context.map(other),
            })?;
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(RegistryError::TooLarge {
                what: format!("manifest {shown}"),
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let bytes = bytes.to_vec();
        let actual = match reference.digest() {
            Some(wanted) => {
                let actual = Verifier::digest_of(wanted, &bytes);
                if actual != wanted.as_str() {
                    return Err(RegistryError::DigestMismatch {
                        what: format!("manifest {shown}"),
                        expected: wanted.clone(),
                        actual,
                    });
                }
                wanted.clone()
            }
            None => Digest::of_bytes(&bytes),
        };
        if let Some(descriptor) = expected
            && descriptor.size != bytes.len() as u64
        {
            return Err(RegistryError::SizeMismatch {
                what: format!("manifest {shown}"),
                expected: descriptor.size,
                actual: bytes.len() as u64,
            });
        }
        let document = parse_document(&bytes).map_err(|e| match e {
            DocumentError::UnsupportedMediaType(media_type) => RegistryError::UnsupportedManifest {
                reference: shown.clone(),
                media_type,
            },
            DocumentError::Invalid(message) => RegistryError::InvalidManifest {
                reference: shown.clone(),
                message,
            },
        })?;
        Ok((bytes, actual, document))
    }

    async fn resolve_inner(&self, reference: &Reference, platform: &Platform) -> Result<Resolved> {
        let reference = reference.clone().with_default_tag();
        let client = self.client_for(&reference).await?;
        let (bytes, top_digest, document) = self.fetch_document(&client, &reference, None).await?;
        let source = RepositorySource {
            registry: self,
            client: &client,
            repository: reference.clone().without_tag_or_digest(),
        };
        let selected =
            select_manifest(&source, top_digest.clone(), bytes, document, platform).await?;
        Ok(Resolved {
            reference: reference.with_digest(top_digest),
            manifest_digest: selected.digest,
            manifest: selected.manifest,
            manifest_bytes: selected.bytes,
            config_bytes: selected.config_bytes,
            config: selected.config,
        })
    }

    /// Fetches and parses the config of `manifest`.
    async fn fetch_config(
        &self,
        reference: &Reference,
        manifest: &Manifest,
    ) -> Result<(Vec<u8>, Image)> {
        let descriptor = &manifest.config;
        let shown = reference.to_string();
        if descriptor.media_type != OCI_CONFIG && descriptor.media_type != DOCKER_CONFIG {
            return Err(RegistryError::UnsupportedConfig {
                reference: shown,
                media_type: descriptor.media_type.clone(),
            });
        }
        if descriptor.size > MAX_CONFIG_SIZE {
            return Err(RegistryError::TooLarge {
                what: format!("config {} of {shown}", descriptor.digest),
                size: descriptor.size,
                limit: MAX_CONFIG_SIZE,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(descriptor.size).unwrap_or(0));
        self.fetch_blob_inner(reference, descriptor, &mut bytes, &|_| {})
            .await?;
        let config: Image =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidConfig {
                reference: shown,
                digest: descriptor.digest.clone(),
                message: e.to_string(),
            })?;
        Ok((bytes, config))
    }

    async fn fetch_blob_inner(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        out: &mut (dyn Write + Send),
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let client = self.client_for(reference).await?;
        let target = oci_reference(reference);
        let registry = reference.domain();
        let repository = reference.name();
        let digest = &descriptor.digest;
        let what = format!("blob {digest} of {repository}");
        let context = Context {
            registry,
            repository: &repository,
            reference: digest.as_str(),
            blob: Some(digest),
        };
        // Foreign-layer URLs are never followed: only the registry is asked.
        let layer = LayerDescriptor {
            digest: digest.as_str(),
            urls: &None,
        };
        let mut stream = client
            .pull_blob_stream(&target, &layer)
            .await
            .map_err(|e| context.map(e))?;
        if let Some(length) = stream.content_length
            && length != descriptor.size
        {
            return Err(RegistryError::SizeMismatch {
                what,
                expected: descriptor.size,
                actual: length,
            });
        }
        let mut verifier = Verifier::new(digest);
        let mut received: u64 = 0;
        while let Some(item) = stream.next().await {
            let chunk = match item {
                Ok(chunk) => chunk,
                Err(error) => {
                    // oci-client's own check fails at the end of the stream; ours names the
                    // digests.
                    if received == descriptor.size && !verifier.matches() {
                        return Err(RegistryError::DigestMismatch {
                            what,
                            expected: digest.clone(),
                            actual: verifier.finish(),
                        });
                    }
                    return Err(stream_error(registry, &error));
                }
            };
            received += chunk.len() as u64;
            if received > descriptor.size {
                return Err(RegistryError::SizeMismatch {
                    what,
                    expected: descriptor.size,
                    actual: received,
                });
            }
            verifier.update(&chunk);
            out.write_all(&chunk)
                .map_err(|source| RegistryError::Write {
                    digest: digest.clone(),
                    source,
                })?;
            progress(received);
        }
        if received != descriptor.size {
            return Err(RegistryError::SizeMismatch {
                what,
                expected: descriptor.size,
                actual: received,
            });
        }
        let actual = verifier.finish();
        if actual != digest.as_str() {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: digest.clone(),
                actual,
            });
        }
        out.flush().map_err(|source| RegistryError::Write {
            digest: digest.clone(),
            source,
        })
    }
}

/// The documents of one repository, for [`select_manifest`].
struct RepositorySource<'a> {
    registry: &'a RegistryClient,
    client: &'a oci_client::Client,
    /// The repository, without tag or digest.
    repository: Reference,
}

impl ManifestSource for RepositorySource<'_> {
    fn child<'a>(&'a self, entry: &'a Descriptor) -> BoxFuture<'a, Result<(Vec<u8>, Document)>> {
        Box::pin(async move {
            let child = self.repository.clone().with_digest(entry.digest.clone());
            let (bytes, _, document) = self
                .registry
                .fetch_document(self.client, &child, Some(entry))
                .await?;
            Ok((bytes, document))
        })
    }

    fn config<'a>(
        &'a self,
        manifest: &'a Manifest,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<(Vec<u8>, Image)>> {
        Box::pin(async move {
            let by_manifest = self.repository.clone().with_digest(digest.clone());
            self.registry.fetch_config(&by_manifest, manifest).await
        })
    }

    fn shown(&self, digest: &Digest) -> String {
        self.repository
            .clone()
            .with_digest(digest.clone())
            .to_string()
    }
}

impl Registry for RegistryClient {
    fn resolve<'a>(
        &'a self,
        reference: &'a Reference,
        platform: &'a Platform,
    ) -> BoxFuture<'a, Result<Resolved>> {
        Box::pin(self.resolve_inner(reference, platform))
    }

    fn fetch_blob<'a>(
        &'a self,
        reference: &'a Reference,
        descriptor: &'a Descriptor,
        out: &'a mut (dyn Write + Send),
        progress: &'a (dyn Fn(u64) + Send + Sync),
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.fetch_blob_inner(reference, descriptor, out, progress))
    }
}

/// The CAs in a registry's certificates directory (`*.crt`, PEM, sorted by name); none when
/// the directory does not exist.
fn registry_cas(dir: &Path) -> std::result::Result<Vec<Certificate>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading the directory: {e}")),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading the directory: {e}"))?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "crt") {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let data =
                std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            Ok(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            })
        })
        .collect()
}

/// oci-client's form of a reference: registry, repository, and the digest if there is one,
/// else the tag.
pub(crate) fn oci_reference(reference: &Reference) -> oci_client::Reference {
    let registry = reference.domain().to_owned();
    let repository = reference.path().to_owned();
    match (reference.digest(), reference.tag()) {
        (Some(digest), _) => {
            oci_client::Reference::with_digest(registry, repository, digest.to_string())
        }
        (None, Some(tag)) => oci_client::Reference::with_tag(registry, repository, tag.to_owned()),
        (None, None) => oci_client::Reference::with_tag(registry, repository, "latest".to_owned()),
    }
}

/// Whether `registry` (`host[:port]`) is reached over plain HTTP by the rule alone: a
/// loopback registry (`localhost`, `127.0.0.0/8`, `::1`, BuildKit's localhost rule) that
/// `insecure` does not list. A loopback registry with CAs in the certificates directory is
/// reached over HTTPS all the same; an insecure registry (see [`is_insecure`]) is probed,
/// and reached over plain HTTP only when HTTPS does not work for it.
pub fn is_plain_http(registry: &str, insecure: &[String]) -> bool {
    is_loopback(registry) && !is_insecure(registry, insecure)
}

/// Whether `insecure` lists `registry` (`host[:port]`), as `host:port` or as a host alone
/// (matching every port of it), ignoring case: such a registry is reached over HTTPS that
/// accepts any certificate, or over plain HTTP when HTTPS does not work for it (see
/// [`RegistryConfig::insecure`]).
pub fn is_insecure(registry: &str, insecure: &[String]) -> bool {
    let host = host_of(registry);
    insecure.iter().any(|entry| {
        let entry = entry.trim();
        entry.eq_ignore_ascii_case(registry)
            || (host_of(entry) == entry && entry.eq_ignore_ascii_case(host))
    })
}

/// Whether the host of `registry` is `localhost`, in `127.0.0.0/8`, or `::1`.
fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        || host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host that serves `registry`'s API, as oci-client addresses it: Docker Hub's API is
/// `index.docker.io`.
fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    }
}

/// Probes `GET <scheme>://<host>/v2/` with `client`; the response itself (any status) is
/// not read.
async fn probe(client: &reqwest::Client, scheme: &str, host: &str) -> Probe {
    match client.get(format!("{scheme}://{host}/v2/")).send().await {
        Ok(_) => Probe::Answered,
        Err(e) if e.is_connect() => Probe::ConnectFailed(crate::error::error_chain(&e)),
        Err(e) => Probe::Failed(crate::error::error_chain(&e)),
    }
}

/// How an insecure registry is reached, from its HTTPS probe and (when HTTPS could not
/// connect) its plain-HTTP probe: HTTPS when it answered, plain HTTP when only that
/// answered, `None` (nothing decided) otherwise.
fn insecure_transport(https: &Probe, http: Option<&Probe>) -> Option<Transport> {
    match (https, http) {
        (Probe::Answered, _) => Some(Transport::HttpsUnverified),
        (Probe::ConnectFailed(_), Some(Probe::Answered)) => Some(Transport::PlainHttp),
        _ => None,
    }
}

/// The host of `host[:port]` or `[v6]:port`, without brackets.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => registry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How `registry` is reached by the rules alone, without CAs in the certificates
    /// directory: `probe` (insecure), `http` or `https`.
    fn check(registry: &str, insecure: &[&str], expected: &str) {
        let insecure: Vec<String> = insecure.iter().map(|s| (*s).to_owned()).collect();
        let actual = match (
            is_insecure(registry, &insecure),
            is_plain_http(registry, &insecure),
        ) {
            (true, false) => "probe",
            (false, true) => "http",
            (false, false) => "https",
            (true, true) => "both insecure and plain HTTP",
        };
        assert_eq!(actual, expected, "{registry} with insecure {insecure:?}");
    }

    #[test]
    fn registries_by_rule() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("localhost", &[], "http"),
            ("localhost:5000", &[], "http"),
            ("LOCALHOST:5000", &[], "http"),
            ("127.0.0.1:5000", &[], "http"),
            ("127.1.2.3", &[], "http"),
            ("[::1]:5000", &[], "http"),
            ("[::1]", &[], "http"),
            ("docker.io", &[], "https"),
            ("128.0.0.1:5000", &[], "https"),
            ("localhost.example:5000", &[], "https"),
            ("[::2]:5000", &[], "https"),
            ("10.0.0.1:5000", &[], "https"),
            ("reg.example:5000", &["reg.example:5000"], "probe"),
            ("REG.example:5000", &["reg.EXAMPLE:5000"], "probe"),
            ("reg.example:5000", &[" reg.example:5000 "], "probe"),
            ("reg.example:5001", &["reg.example:5000"], "https"),
            ("reg.example:5001", &["reg.example"], "probe"),
            ("reg.example", &["reg.example"], "probe"),
            ("reg.example", &["reg.example:443"], "https"),
            ("other.example", &["reg.example"], "https"),
            ("[fd00::1]:5000", &["fd00::1"], "probe"),
            ("[fd00::1]:5000", &["[fd00::1]:5000"], "probe"),
            // Listing a loopback registry as insecure probes it, as BuildKit tries HTTPS
            // first for an insecure registry even on localhost.
            ("127.0.0.1:5000", &["127.0.0.1:5000"], "probe"),
            ("localhost:5000", &["localhost"], "probe"),
            ("[::1]:5000", &["::1"], "probe"),
            ("127.0.0.1:5001", &["127.0.0.1:5000"], "http"),
        ];
        for (registry, insecure, expected) in cases {
            check(registry, insecure, expected);
        }
    }

    /// The transport decided for an insecure registry from its probes.
    fn check_decision(https: &Probe, http: Option<&Probe>, expected: Option<Transport>) {
        assert_eq!(
            insecure_transport(https, http),
            expected,
            "https {https:?}, http {http:?}"
        );
    }

    #[test]
    fn insecure_decisions() {
        let answered = Probe::Answered;
        let refused = Probe::ConnectFailed("connection refused".to_owned());
        let tls = Probe::ConnectFailed("received corrupt message".to_owned());
        let timeout = Probe::Failed("operation timed out".to_owned());
        let cases: &[(&Probe, Option<&Probe>, Option<Transport>)] = &[
            (&answered, None, Some(Transport::HttpsUnverified)),
            (&tls, Some(&answered), Some(Transport::PlainHttp)),
            (&refused, Some(&answered), Some(Transport::PlainHttp)),
            (&refused, Some(&refused), None),
            (&tls, Some(&timeout), None),
            (&tls, None, None),
            // A connection that was made (TLS worked) but then failed is not a reason to
            // try plain HTTP; nothing is decided, and the next use probes again.
            (&timeout, None, None),
        ];
        for (https, http, expected) in cases {
            check_decision(https, *http, *expected);
        }
    }

    /// Which host a registry's API (and its probe) is addressed at.
    fn check_api_host(registry: &str, expected: &str) {
        assert_eq!(api_host(registry), expected, "{registry}");
    }

    #[test]
    fn api_hosts() {
        for (registry, expected) in [
            ("docker.io", "index.docker.io"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("[::1]:5000", "[::1]:5000"),
            ("ghcr.io", "ghcr.io"),
        ] {
            check_api_host(registry, expected);
        }
    }
}
