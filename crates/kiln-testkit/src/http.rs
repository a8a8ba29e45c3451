//! A small HTTP/1.1 server on loopback whose answers come from a closure.
//!
//! End-to-end tests need a web server for `ADD https://…`, HTTP build contexts and git's smart
//! HTTP protocol. Each wants different answers (files with ETags, 401 until the right
//! credentials come, a CGI program), so the server only parses requests, writes responses and
//! logs `(path, status)`; what to answer is the test's [`Handler`]. [`StaticFiles`] is the
//! handler most tests want: files from memory, with `ETag`, `Last-Modified` and
//! `If-None-Match` revalidation.
//!
//! The server answers one connection at a time, each with `Connection: close`, and stops when
//! it is dropped.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Result, io_error};

/// How long the server waits for a client to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What a test's server answers: called once per request, in the order requests arrive.
pub type Handler = Box<dyn FnMut(&Request) -> Response + Send>;

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method: `GET`, `HEAD`, `POST`, ...
    pub method: String,
    /// The request target as sent: the path and, after `?`, the query.
    pub target: String,
    /// The headers, by lower-case name (a repeated header keeps its last value).
    pub headers: BTreeMap<String, String>,
    /// The body, `Content-Length` bytes of it.
    pub body: Vec<u8>,
}

impl Request {
    /// The target's path, without the query.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The target's query, without the `?`; empty when there is none.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// The value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// What the server sends back. `Connection: close` and, except for 304, `Content-Length` are
/// added by the server; the body is not sent in answer to `HEAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Further headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status` and `body` and no further headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// 404 with the body `not found\n`.
    pub fn not_found() -> Response {
        Response::new(404, "not found\n")
    }

    /// The response with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// One file [`StaticFiles`] serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticFile {
    /// The content.
    pub body: Vec<u8>,
    /// The `ETag` header's value (quotes included), if the file has one.
    pub etag: Option<String>,
    /// The `Last-Modified` header's value, if the file has one.
    pub last_modified: Option<String>,
}

impl StaticFile {
    /// A file with `body` and neither `ETag` nor `Last-Modified`.
    pub fn new(body: impl Into<Vec<u8>>) -> StaticFile {
        StaticFile {
            body: body.into(),
            ..StaticFile::default()
        }
    }

    /// The file with the `ETag` `etag` (quotes included: `"v1"`).
    pub fn with_etag(mut self, etag: impl Into<String>) -> StaticFile {
        self.etag = Some(etag.into());
        self
    }

    /// The file with the `Last-Modified` value `date` (an HTTP date).
    pub fn with_last_modified(mut self, date: impl Into<String>) -> StaticFile {
        self.last_modified = Some(date.into());
        self
    }
}

/// Files served from memory by path: 200 with the content, 304 when `If-None-Match` names the
/// file's `ETag`, 404 for any other path.
#[derive(Debug, Clone, Default)]
pub struct StaticFiles {
    files: BTreeMap<String, StaticFile>,
}

impl StaticFiles {
    /// Serves `files`, `(path, file)` with paths such as `/dir/name.txt`.
    pub fn new<P: Into<String>>(files: impl IntoIterator<Item = (P, StaticFile)>) -> StaticFiles {
        StaticFiles {
            files: files.into_iter().map(|(p, f)| (p.into(), f)).collect(),
        }
    }

    /// The answer to `request`.
    pub fn answer(&self, request: &Request) -> Response {
        let Some(file) = self.files.get(request.path()) else {
            return Response::not_found();
        };
        let matched = file.etag.as_ref().is_some_and(|etag| {
            request
                .header("if-none-match")
                .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
        });
        let mut response = if matched {
            Response::new(304, Vec::new())
        } else {
            Response::new(200, file.body.clone())
        };
        if let Some(etag) = &file.etag {
            response = response.with_header("ETag", etag);
        }
        if let Some(date) = &file.last_modified {
            response = response.with_header("Last-Modified", date);
        }
        response
    }
}

/// Each request's path (without the query) and the status it was answered with.
type RequestLog = Arc<Mutex<Vec<(String, u16)>>>;

/// A running server on `127.0.0.1` and a free port; it stops accepting when dropped.
pub struct HttpServer {
    addr: SocketAddr,
    log: RequestLog,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Starts a server that answers each request with `handler`.
    pub fn start(handler: impl FnMut(&Request) -> Response + Send + 'static) -> Result<HttpServer> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(io_error("binding", "127.0.0.1:0"))?;
        let addr = listener
            .local_addr()
            .map_err(io_error("reading the address of", "127.0.0.1:0"))?;
        let log: RequestLog = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut handler: Handler = Box::new(handler);
        let thread = {
            let log = Arc::clone(&log);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        // A client that goes away mid-request is its own test's failure.
                        let _ = serve(stream, &mut handler, &log);
                    }
                }
            })
        };
        Ok(HttpServer {
            addr,
            log,
            stop,
            thread: Some(thread),
        })
    }

    /// Starts a server answering with `files` (see [`StaticFiles`]).
    pub fn start_static(files: StaticFiles) -> Result<HttpServer> {
        HttpServer::start(move |request| files.answer(request))
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far: its path (without the query) and the status it was answered with.
    pub fn requests(&self) -> Vec<(String, u16)> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread up so that it sees the flag.
        if TcpStream::connect(self.addr).is_ok()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

/// Reads one request from `stream`, answers it with `handler` and logs it.
fn serve(
    stream: TcpStream,
    handler: &mut Handler,
    log: &Mutex<Vec<(String, u16)>>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut parts = request_line.split_whitespace();
    let request = Request {
        method: parts.next().unwrap_or_default().to_owned(),
        target: parts.next().unwrap_or_default().to_owned(),
        headers,
        body,
    };
    let response = handler(&request);
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((request.path().to_owned(), response.status));

    let mut head = format!(
        "HTTP/1.1 {} {}\r\nConnection: close\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if response.status != 304 {
        head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    head.push_str("\r\n");
    let mut out = stream;
    out.write_all(head.as_bytes())?;
    if request.method != "HEAD" {
        out.write_all(&response.body)?;
    }
    out.flush()
}

/// The reason phrase of `status` (clients ignore it, people reading a capture do not).
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `request` (raw bytes) and returns the raw response.
    fn exchange(server: &HttpServer, request: &str) -> String {
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("receive");
        response
    }

    #[test]
    fn static_files_revalidate_and_log() {
        let server = HttpServer::start_static(StaticFiles::new([(
            "/a.txt",
            StaticFile::new("hello\n")
                .with_etag("\"v1\"")
                .with_last_modified("Wed, 21 Oct 2015 07:28:00 GMT"),
        )]))
        .expect("start");
        let cases = [
            (
                "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
                "HTTP/1.1 200 OK\r\nConnection: close\r\nETag: \"v1\"\r\n\
                 Last-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nContent-Length: 6\r\n\r\nhello\n",
            ),
            (
                "GET /a.txt HTTP/1.1\r\nIf-None-Match: \"v0\", \"v1\"\r\n\r\n",
                "HTTP/1.1 304 Not Modified\r\nConnection: close\r\nETag: \"v1\"\r\n\
                 Last-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n",
            ),
            (
                "HEAD /missing?x=1 HTTP/1.1\r\n\r\n",
                "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 10\r\n\r\n",
            ),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(request, want)| {
                let got = exchange(&server, request);
                (got != *want).then(|| format!("{request:?}:\n got {got:?}\nwant {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert_eq!(
            server.requests(),
            [
                ("/a.txt".to_owned(), 200),
                ("/a.txt".to_owned(), 304),
                ("/missing".to_owned(), 404)
            ]
        );
    }

    #[test]
    fn handler_sees_method_query_headers_and_body() {
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let server = {
            let seen = Arc::clone(&seen);
            HttpServer::start(move |request| {
                seen.lock().expect("seen").push(request.clone());
                Response::new(401, "").with_header("WWW-Authenticate", "Basic realm=\"kiln\"")
            })
            .expect("start")
        };
        let got = exchange(
            &server,
            "POST /repo.git/git-upload-pack?service=x HTTP/1.1\r\nContent-Type: text/plain\r\n\
             Content-Length: 4\r\n\r\nbody",
        );
        assert_eq!(
            got,
            "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\
             WWW-Authenticate: Basic realm=\"kiln\"\r\nContent-Length: 0\r\n\r\n"
        );
        let seen = seen.lock().expect("seen");
        let request = seen.first().expect("one request");
        assert_eq!(request.method, "POST");
        assert_eq!(request.path(), "/repo.git/git-upload-pack");
        assert_eq!(request.query(), "service=x");
        assert_eq!(request.header("CONTENT-TYPE"), Some("text/plain"));
        assert_eq!(request.body, b"body");
        assert_eq!(
            server.requests(),
            [("/repo.git/git-upload-pack".to_owned(), 401)]
        );
    }
}
