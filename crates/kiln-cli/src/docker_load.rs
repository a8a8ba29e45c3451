//! `--load` and `-o type=docker` without `dest`: the image goes into the Docker engine.
//!
//! buildx pipes the docker exporter's tarball into the engine's `POST /images/load`; kiln does
//! the same through the Engine API on the socket `DOCKER_HOST` names (`unix://` or plain
//! `tcp://`; the default is `/var/run/docker.sock`). The tarball is written by
//! [`kiln_export::write_docker_tar`] on a blocking thread into a small bounded channel that is
//! the request's body, so it is never held in memory whole. The engine's answer is a stream of
//! JSON messages; an `errorDetail` among them becomes one error.
//!
//! Unlike buildx, kiln first asks the engine whether it already has the image (`GET
//! /images/{config digest}/json`, whose `Id` must be that digest): then nothing is sent and the
//! names are only tagged (`POST /images/{id}/tag`). A rebuilt image that did not change costs
//! two small requests instead of a full upload.
//!
//! The client is hyper's HTTP/1.1 connection on a tokio socket, one connection per request.
//! Paths are unversioned, which every engine version answers with its own API version (so
//! there is no version negotiation).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use http_body_util::{BodyExt, Empty, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use kiln_progress::{Event, ProgressSink};
use tokio::sync::mpsc;

/// The `Host` header of requests on a unix socket (the one Docker's Go client sends).
const UNIX_HOST_HEADER: &str = "api.moby.localhost";

/// The most an engine's answer may hold (the load answer of `quiet=1` is a few lines).
const MAX_ANSWER: usize = 16 << 20;

/// How many bytes of tarball go into the request body at a time.
const CHUNK: usize = 256 << 10;

/// Why talking to the Docker engine failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine could not be reached through `ssh` (with what `ssh` said).
    #[error("cannot reach the Docker engine at {host} through ssh: {message}")]
    Ssh {
        /// The engine's address.
        host: String,
        /// What went wrong, and `ssh`'s messages.
        message: String,
    },
    /// TLS to the engine could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::engine_tls::TlsError),
    /// The Docker context naming the engine cannot be used.
    #[error(transparent)]
    Context(#[from] crate::docker_context::ContextError),
    /// `DOCKER_HOST` names something kiln cannot talk to.
    #[error("invalid DOCKER_HOST {value:?}: {reason}")]
    Host {
        /// The value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answers on the socket (the Docker CLI's wording, which leaves the system's
    /// error out).
    #[error("Cannot connect to the Docker daemon at {host}. Is the docker daemon running?")]
    Connect {
        /// The engine's address.
        host: String,
        /// The connection error (for `Debug` only).
        cause: std::io::Error,
    },
    /// The socket exists but this user may not use it (the Docker CLI's wording).
    #[error(
        "permission denied while trying to connect to the Docker daemon socket at {host}: {source}"
    )]
    Permission {
        /// The engine's address.
        host: String,
        /// The connection error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed (the engine closed the connection, or sent no valid HTTP).
    #[error("{what} on the Docker engine at {host}: {source}")]
    Http {
        /// The request (`loading the image`).
        what: String,
        /// The engine's address.
        host: String,
        /// The HTTP error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The engine refused a request.
    #[error("{what} on the Docker engine at {host}: {message} (HTTP {status})")]
    Refused {
        /// The request (`tagging the image as x:1`).
        what: String,
        /// The engine's address.
        host: String,
        /// The HTTP status.
        status: u16,
        /// The engine's message.
        message: String,
    },
    /// The engine reported an error while loading the tarball.
    #[error("failed to load the image into the Docker engine at {host}: {message}")]
    Load {
        /// The engine's address.
        host: String,
        /// The engine's `errorDetail` message.
        message: String,
    },
    /// The engine's answer is not the JSON it should be.
    #[error("{what} on the Docker engine at {host}: unexpected answer: {reason}")]
    Answer {
        /// The request.
        what: String,
        /// The engine's address.
        host: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// Writing the tarball failed (reading the content store).
    #[error("writing the image tarball for the Docker engine: {0}")]
    Export(#[from] kiln_export::Error),
    /// The engine stopped reading the tarball before its end without saying why.
    #[error(
        "the Docker engine at {host} stopped reading the image tarball before its end: {source}"
    )]
    Truncated {
        /// The engine's address.
        host: String,
        /// What the request ended with.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The blocking writer thread went away.
    #[error("writing the image tarball for the Docker engine: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    /// A unix socket.
    Unix(PathBuf),
    /// `host:port` over plain TCP.
    Tcp(String),
    /// Through `ssh` and `docker system dial-stdio` on the host.
    Ssh(crate::engine_ssh::SshTarget),
}

/// A Docker engine reached through its API socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// The address, as `DOCKER_HOST` spells it (for messages).
    host: String,
    address: Address,
    /// With TLS (TCP only): the directory holding `ca.pem`, `cert.pem` and `key.pem`.
    tls: Option<PathBuf>,
}

impl Engine {
    /// The engine the Docker CLI would use: `DOCKER_HOST`, else the current Docker context's
    /// (see [`crate::docker_context`]), else the default socket.
    pub fn from_env() -> Result<Engine, EngineError> {
        let endpoint = crate::docker_context::engine()?;
        Engine::parse_with_tls(&endpoint.host, endpoint.tls)
    }

    /// Parses a `DOCKER_HOST` value: `unix:///path` or `tcp://host[:port]` (port 2375 when
    /// missing, as Docker's client does), without TLS.
    #[cfg(test)]
    pub fn parse(value: &str) -> Result<Engine, EngineError> {
        Engine::parse_with_tls(value, None)
    }

    /// Parses a `DOCKER_HOST` value: `unix:///path` or `tcp://host[:port]`, with TLS material
    /// in `tls` (TCP only; a unix socket is never TLS, as for the Docker CLI). A missing port
    /// is 2375, or 2376 with TLS, as Docker's client has them.
    pub fn parse_with_tls(value: &str, tls: Option<PathBuf>) -> Result<Engine, EngineError> {
        let bad = |reason: &str| EngineError::Host {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = value
            .split_once("://")
            .ok_or_else(|| bad("expected unix:///PATH or tcp://HOST:PORT"))?;
        let address = match scheme {
            "unix" => {
                if rest.is_empty() {
                    return Err(bad("the socket path is empty"));
                }
                Address::Unix(PathBuf::from(rest))
            }
            "tcp" | "http" | "https" => {
                let hostport = rest.trim_end_matches('/');
                if hostport.is_empty() || hostport.contains('/') {
                    return Err(bad("expected tcp://HOST:PORT"));
                }
                let has_port = match hostport.rsplit_once(':') {
                    Some((h, p)) => !p.is_empty() && !h.ends_with(':') && !p.contains(']'),
                    None => false,
                };
                let port = if tls.is_some() { 2376 } else { 2375 };
                Address::Tcp(if has_port {
                    hostport.to_string()
                } else {
                    format!("{hostport}:{port}")
                })
            }
            "ssh" => Address::Ssh(crate::engine_ssh::parse(rest).map_err(|e| bad(&e))?),
            other => {
                return Err(bad(&format!(
                    "{other}:// connections are not supported by kiln (unix://, tcp:// and ssh:// are)"
                )));
            }
        };
        let tls = match address {
            Address::Tcp(_) => tls,
            Address::Unix(_) | Address::Ssh(_) => None,
        };
        Ok(Engine {
            tls,
            host: value.to_string(),
            address,
        })
    }

    /// Opens a connection and sends one request; returns the answer's status and its body
    /// (read whole, bounded).
    async fn send(
        &self,
        what: &str,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: BoxBody<Bytes, std::io::Error>,
    ) -> Result<(StatusCode, Bytes), EngineError> {
        let http = |source: Box<dyn std::error::Error + Send + Sync>| EngineError::Http {
            what: what.to_string(),
            host: self.host.clone(),
            source,
        };
        let connect_error = |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::PermissionDenied {
                EngineError::Permission {
                    host: self.host.clone(),
                    source,
                }
            } else {
                EngineError::Connect {
                    host: self.host.clone(),
                    cause: source,
                }
            }
        };
        let mut ssh_messages = None;
        let (mut sender, host_header) = match &self.address {
            Address::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect_error)?;
                (
                    handshake(stream).await.map_err(|e| http(e.into()))?,
                    UNIX_HOST_HEADER.to_string(),
                )
            }
            Address::Tcp(hostport) => {
                let stream = tokio::net::TcpStream::connect(hostport)
                    .await
                    .map_err(connect_error)?;
                let sender = match &self.tls {
                    Some(dir) => {
                        let stream = crate::engine_tls::connect(stream, hostport, dir).await?;
                        handshake(stream).await
                    }
                    None => handshake(stream).await,
                };
                (sender.map_err(|e| http(e.into()))?, hostport.clone())
            }
            Address::Ssh(target) => {
                let (stream, messages) =
                    crate::engine_ssh::connect(target).map_err(|source| EngineError::Ssh {
                        host: self.host.clone(),
                        message: format!("cannot run ssh: {source}"),
                    })?;
                ssh_messages = Some(messages);
                (
                    handshake(stream).await.map_err(|e| http(e.into()))?,
                    UNIX_HOST_HEADER.to_string(),
                )
            }
        };
        let result = Self::exchange(
            &mut sender,
            &host_header,
            method,
            path_and_query,
            content_type,
            body,
        )
        .await
        .map_err(http);
        match (result, ssh_messages) {
            (Err(e), Some(messages)) => {
                let text = messages.text().await;
                if text.is_empty() {
                    Err(e)
                } else {
                    Err(EngineError::Ssh {
                        host: self.host.clone(),
                        message: format!("{e}: {text}"),
                    })
                }
            }
            (result, _) => result,
        }
    }

    /// Sends one request on a connection and reads the whole (bounded) answer.
    async fn exchange(
        sender: &mut hyper::client::conn::http1::SendRequest<BoxBody<Bytes, std::io::Error>>,
        host_header: &str,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: BoxBody<Bytes, std::io::Error>,
    ) -> Result<(StatusCode, Bytes), Box<dyn std::error::Error + Send + Sync>> {
        let mut request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, host_header)
            .header(hyper::header::USER_AGENT, "kiln");
        if let Some(ct) = content_type {
            request = request.header(hyper::header::CONTENT_TYPE, ct);
        }
        let request = request.body(body)?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await?
            .to_bytes();
        Ok((status, body))
    }

    /// The error for an answer that is not a success: the engine's `message` when it sent one.
    fn refused(&self, what: &str, status: StatusCode, body: &[u8]) -> EngineError {
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
        EngineError::Refused {
            what: what.to_string(),
            host: self.host.clone(),
            status: status.as_u16(),
            message,
        }
    }

    /// Checks that the engine answers (`GET /_ping`), so that a build whose result goes into
    /// the engine fails before building, not after, when the engine cannot be reached.
    pub async fn ping(&self) -> Result<(), EngineError> {
        let what = "ping";
        let (status, body) = self
            .send(what, Method::GET, "/_ping", None, empty())
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(self.refused(what, status, &body))
        }
    }

    /// Whether the engine has the image whose id (config digest) is `id`.
    pub async fn has_image(&self, id: &kiln_oci::Digest) -> Result<bool, EngineError> {
        let what = format!("inspecting image {id}");
        let (status, body) = self
            .send(
                &what,
                Method::GET,
                &format!("/images/{id}/json"),
                None,
                empty(),
            )
            .await?;
        match status {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => {
                let v: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| EngineError::Answer {
                        what: what.clone(),
                        host: self.host.clone(),
                        reason: e.to_string(),
                    })?;
                // An engine that finds the image through another reference (the containerd
                // image store names images by manifest) does not have this image as such.
                Ok(v.get("Id").and_then(|i| i.as_str()) == Some(id.to_string().as_str()))
            }
            s => Err(self.refused(&what, s, &body)),
        }
    }

    /// Tags the image `id` as `name` (`repo:tag`; a name without a tag gets `latest`, a name
    /// with only a digest cannot be a tag and is skipped). Returns whether it tagged.
    pub async fn tag(&self, id: &kiln_oci::Digest, name: &str) -> Result<bool, EngineError> {
        let what = format!("tagging image {id} as {name}");
        let reference = kiln_oci::Reference::parse(name).map_err(|e| EngineError::Answer {
            what: what.clone(),
            host: self.host.clone(),
            reason: e.to_string(),
        })?;
        let tag = match (reference.tag(), reference.digest()) {
            (Some(tag), _) => tag.to_string(),
            (None, Some(_)) => return Ok(false),
            (None, None) => "latest".to_string(),
        };
        let path = format!(
            "/images/{id}/tag?repo={}&tag={}",
            query_escape(&reference.familiar_name()),
            query_escape(&tag)
        );
        let (status, body) = self.send(&what, Method::POST, &path, None, empty()).await?;
        if status.is_success() {
            Ok(true)
        } else {
            Err(self.refused(&what, status, &body))
        }
    }

    /// Streams `image` as a Docker tarball into `POST /images/load?quiet=1`; returns the
    /// engine's messages and the tarball's size.
    pub async fn load_tarball(
        &self,
        store: kiln_content::ContentStore,
        image: kiln_export::ExportedImage,
        names: Vec<kiln_export::ImageName>,
        annotations: BTreeMap<String, String>,
    ) -> Result<(Vec<String>, u64), EngineError> {
        let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let engine_gone = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let writer = {
            let engine_gone = Arc::clone(&engine_gone);
            let written = Arc::clone(&written);
            tokio::task::spawn_blocking(move || {
                let out = ChannelWriter {
                    tx: tx.clone(),
                    buf: Vec::with_capacity(CHUNK),
                    engine_gone,
                    written,
                };
                let result = kiln_export::write_docker_tar(
                    &store,
                    &image,
                    &names,
                    kiln_export::LayoutAnnotations::descriptor(&annotations),
                    out,
                )
                .and_then(|mut out| {
                    out.flush().map_err(|source| kiln_export::Error::Io {
                        action: "sending",
                        what: PathBuf::from("the image tarball"),
                        source,
                    })
                });
                if let Err(e) = &result {
                    // Fail the request body, so the engine never sees a tarball that merely
                    // ends early.
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                }
                result.map(|_| ())
            })
        };
        let body = StreamBody::new(futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|chunk| chunk.map(|c| c.map(Frame::data)))
        }));
        let answer = self
            .send(
                "loading the image",
                Method::POST,
                "/images/load?quiet=1",
                Some("application/x-tar"),
                BoxBody::new(body),
            )
            .await;
        let wrote = writer.await?;
        // A failure to read the content store explains whatever the engine said after the
        // body broke off; otherwise the engine's answer says why it stopped reading.
        if let Err(e) = wrote
            && !engine_gone.load(Ordering::SeqCst)
        {
            return Err(EngineError::Export(e));
        }
        let (status, body) = match answer {
            Ok(a) => a,
            Err(EngineError::Http { source, .. }) if engine_gone.load(Ordering::SeqCst) => {
                return Err(EngineError::Truncated {
                    host: self.host.clone(),
                    source,
                });
            }
            Err(e) => return Err(e),
        };
        if !status.is_success() {
            return Err(self.refused("loading the image", status, &body));
        }
        let messages = self.load_messages(&body)?;
        Ok((messages, written.load(Ordering::SeqCst)))
    }

    /// Reads the JSON message stream of a load: its `stream` lines, or the first error.
    fn load_messages(&self, body: &[u8]) -> Result<Vec<String>, EngineError> {
        let mut messages = Vec::new();
        for value in serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>() {
            let value = value.map_err(|e| EngineError::Answer {
                what: "loading the image".to_string(),
                host: self.host.clone(),
                reason: e.to_string(),
            })?;
            let error = value
                .get("errorDetail")
                .and_then(|d| d.get("message"))
                .or_else(|| value.get("error"))
                .and_then(|m| m.as_str());
            if let Some(message) = error {
                return Err(EngineError::Load {
                    host: self.host.clone(),
                    message: message.trim().to_string(),
                });
            }
            if let Some(text) = value.get("stream").and_then(|s| s.as_str()) {
                messages.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_string),
                );
            }
        }
        Ok(messages)
    }
}

/// What the engine said about a tarball it loaded, reported after the exporting vertex as
/// buildx reports it: an `importing to docker` vertex with the engine's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// When the tarball started going to the engine.
    started: SystemTime,
    /// When the engine answered.
    finished: SystemTime,
    /// The engine's messages (`Loaded image: x:1`).
    messages: Vec<String>,
}

impl Imported {
    /// Sends the `importing to docker` vertex.
    pub fn report(&self, sink: &Arc<dyn ProgressSink>) {
        let id = "importing to docker";
        crate::steps::begin_at(sink, id, self.started);
        for m in &self.messages {
            sink.send(Event::Log {
                id: id.to_string(),
                stream: 1,
                data: format!("{m}\n").into_bytes(),
                at: self.finished,
            });
        }
        crate::steps::end_at(sink, id, self.finished, None);
    }
}

/// `-o type=docker` into the engine: when the engine already has the image (same id), tags
/// its names and sends nothing; otherwise streams the tarball, whose `manifest.json` names
/// every name. Statuses go to the exporting vertex `vertex` (`sending tarball`, or that the
/// image was already there and `naming to NAME`); what the engine said about a sent tarball
/// comes back for [`Imported::report`].
pub async fn load_with_progress(
    sink: &Arc<dyn ProgressSink>,
    vertex: &str,
    store: kiln_content::ContentStore,
    image: kiln_export::ExportedImage,
    names: Vec<kiln_export::ImageName>,
    annotations: BTreeMap<String, String>,
) -> Result<Option<Imported>, EngineError> {
    let engine = Engine::from_env()?;
    let status = |task: String, current: u64, completed: bool| {
        sink.send(Event::Status {
            id: vertex.to_string(),
            task,
            current,
            total: None,
            completed,
        });
    };
    let id = image.config.digest.clone();
    if engine.has_image(&id).await? {
        status(
            format!("image {id} already present in the Docker engine: not sending the tarball"),
            0,
            true,
        );
        for name in &names {
            let name = name.full();
            status(format!("naming to {name}"), 0, false);
            engine.tag(&id, &name).await?;
            status(format!("naming to {name}"), 0, true);
        }
        return Ok(None);
    }
    let started = SystemTime::now();
    status("sending tarball".to_string(), 0, false);
    let (messages, bytes) = engine
        .load_tarball(store, image, names, annotations)
        .await?;
    status("sending tarball".to_string(), bytes, true);
    Ok(Some(Imported {
        started,
        finished: SystemTime::now(),
        messages,
    }))
}

/// An HTTP/1.1 client connection on `stream`, its connection task running on the runtime.
async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<BoxBody<Bytes, std::io::Error>>, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection's errors come back through the request's future.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// An empty request body.
fn empty() -> BoxBody<Bytes, std::io::Error> {
    BoxBody::new(Empty::new().map_err(|never| match never {}))
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The tarball writer on the blocking side: chunks go into the request body's channel.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
    /// Set when the body's receiver is gone (the engine stopped reading).
    engine_gone: Arc<AtomicBool>,
    /// Bytes handed to the body so far.
    written: Arc<AtomicU64>,
}

impl ChannelWriter {
    fn send_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let len = chunk.len() as u64;
        if self.tx.blocking_send(Ok(chunk)).is_err() {
            self.engine_gone.store(true, Ordering::SeqCst);
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the Docker engine stopped reading the image tarball",
            ));
        }
        self.written.fetch_add(len, Ordering::SeqCst);
        Ok(())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_host() {
        let check = |value: &str, want: Result<Address, &str>| {
            let got = Engine::parse(value).map(|e| e.address);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{value}"),
                (Err(g), Err(w)) => assert!(g.to_string().contains(w), "{value}: {g}"),
                _ => panic!("{value}: got {got:?}, want {want:?}"),
            }
        };
        check(
            "unix:///var/run/docker.sock",
            Ok(Address::Unix("/var/run/docker.sock".into())),
        );
        check(
            "unix:///nonexistent",
            Ok(Address::Unix("/nonexistent".into())),
        );
        check(
            "tcp://127.0.0.1:2375",
            Ok(Address::Tcp("127.0.0.1:2375".into())),
        );
        check("tcp://localhost", Ok(Address::Tcp("localhost:2375".into())));
        check("tcp://[::1]:2376", Ok(Address::Tcp("[::1]:2376".into())));
        check("tcp://[::1]", Ok(Address::Tcp("[::1]:2375".into())));
        check("unix://", Err("the socket path is empty"));
        check("/var/run/docker.sock", Err("expected unix:///PATH"));
        check("ftp://host", Err("ftp:// connections are not supported"));
        check("ssh://me@host/path", Err("has no path"));
        check("tcp://host/path", Err("expected tcp://HOST:PORT"));
        // With TLS the default port is 2376, and a unix socket ignores TLS.
        let tls = Some(PathBuf::from("/certs/client"));
        let engine = Engine::parse_with_tls("tcp://docker", tls.clone()).expect("tcp");
        assert_eq!(engine.address, Address::Tcp("docker:2376".into()));
        assert_eq!(engine.tls, tls);
        let engine = Engine::parse_with_tls("unix:///run/docker.sock", tls).expect("unix");
        assert_eq!(engine.tls, None);
    }

    #[test]
    fn reads_load_messages() {
        let engine = Engine::parse(crate::docker_context::DEFAULT_HOST).expect("default host");
        let check = |body: &str, want: Result<Vec<&str>, &str>| {
            let got = engine.load_messages(body.as_bytes());
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{body}"),
                (Err(g), Err(w)) => assert_eq!(g.to_string(), *w, "{body}"),
                _ => panic!("{body}: got {got:?}, want {want:?}"),
            }
        };
        check(
            "{\"stream\":\"Loaded image: a:1\\n\"}\n{\"stream\":\"Loaded image: a:2\\n\"}\n",
            Ok(vec!["Loaded image: a:1", "Loaded image: a:2"]),
        );
        check("", Ok(vec![]));
        check(
            "{\"errorMessage\":\"x\",\"errorDetail\":{\"message\":\"unexpected EOF\"},\"error\":\"unexpected EOF\"}",
            Err(
                "failed to load the image into the Docker engine at unix:///var/run/docker.sock: unexpected EOF",
            ),
        );
        check(
            "{\"error\":\"open /var/lib/docker/tmp/x: no such file\"}",
            Err(
                "failed to load the image into the Docker engine at unix:///var/run/docker.sock: open /var/lib/docker/tmp/x: no such file",
            ),
        );
        check(
            "not json",
            Err(
                "loading the image on the Docker engine at unix:///var/run/docker.sock: unexpected answer: expected ident at line 1 column 2",
            ),
        );
    }

    #[test]
    fn escapes_query_values() {
        for (input, want) in [
            ("kiln-load-test", "kiln-load-test"),
            ("localhost:5000/a/b", "localhost%3A5000%2Fa%2Fb"),
            ("v1.0_x~y", "v1.0_x~y"),
            ("a b&c", "a%20b%26c"),
        ] {
            assert_eq!(query_escape(input), want, "{input}");
        }
    }
}
