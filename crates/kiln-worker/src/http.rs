//! HTTP(S) sources (`ADD https://…`): one downloaded file in a snapshot of its own.
//!
//! The semantics are BuildKit's (`source/http`). With a pinned checksum (`http.checksum`) the
//! cache key is that checksum, so a cache hit needs no network at all, and the download is
//! verified against it. Without one, the source is resolved before the build runs, as BuildKit
//! resolves its cache key: the file is downloaded into the content store and the key is the
//! digest of what came back. The response's `ETag` is remembered per URL (with the digest and
//! `Last-Modified`), so the next resolution asks with `If-None-Match` and a `304 Not Modified`
//! keeps the stored content and the cached result without downloading again.
//!
//! The file is named by `http.filename`, else by the response's `Content-Disposition`, else by
//! the last segment of the URL path (BuildKit's `getFileName`, made safe as its
//! `pathutil.SafeFileName` does); its mode is `http.perm` (0600 by default), its owner
//! `http.uid`:`http.gid`, its mtime the `Last-Modified` date (the Unix epoch without one).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kiln_oci::Digest;
use kiln_solver::{BoxError, BoxFuture, CacheKeyInput, ExecCtx, Op};

use crate::Parts;
use crate::cachekey::KeyWriter;
use crate::error::{Error, Result};
use crate::ops::{boxed, commit, prepare_mounted};
use crate::refs::Ref;
use crate::task::blocking;

/// What an HTTP source op asks for (its identifier and attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpSpec {
    /// The URL.
    pub url: String,
    /// The pinned digest (`http.checksum`).
    pub checksum: Option<Digest>,
    /// The file name given (`http.filename`).
    pub filename: Option<String>,
    /// The file's mode (`http.perm`, 0600 when absent).
    pub perm: u32,
    /// The file's owner (`http.uid`).
    pub uid: u32,
    /// The file's group (`http.gid`).
    pub gid: u32,
}

impl HttpSpec {
    /// Reads an HTTP source op's identifier and attributes.
    pub fn parse(identifier: &str, attrs: &BTreeMap<String, String>) -> Result<HttpSpec> {
        let int = |key: &str| -> Result<Option<u32>> {
            attrs
                .get(key)
                .map(|v| {
                    parse_go_int(v).ok_or_else(|| {
                        Error::Invalid(format!("invalid {key} attribute {v:?} of {identifier}"))
                    })
                })
                .transpose()
        };
        let checksum = attrs
            .get("http.checksum")
            .map(|v| {
                Digest::parse(v).map_err(|e| Error::Invalid(format!("invalid checksum {v:?}: {e}")))
            })
            .transpose()?;
        if let Some(d) = &checksum
            && d.algorithm() != "sha256"
        {
            return Err(Error::Unsupported(format!(
                "checksum {d} of {identifier}: only sha256 checksums are supported by kiln yet"
            )));
        }
        Ok(HttpSpec {
            url: identifier.to_string(),
            checksum,
            filename: attrs.get("http.filename").cloned(),
            perm: int("http.perm")?.filter(|p| *p != 0).unwrap_or(0o600),
            uid: int("http.uid")?.unwrap_or(0),
            gid: int("http.gid")?.unwrap_or(0),
        })
    }

    /// The digest under which the validators of this URL are remembered: the URL and what
    /// shapes the result, as BuildKit's `urlHash`.
    fn url_hash(&self) -> String {
        let mut w = KeyWriter::new("kiln.source.http.url.v1");
        w.str(&self.url)
            .str(self.filename.as_deref().unwrap_or(""))
            .int(i64::from(self.perm))
            .int(i64::from(self.uid))
            .int(i64::from(self.gid));
        hex::encode(sha2::Digest::finalize(
            <sha2::Sha256 as sha2::Digest>::new_with_prefix(w.finish()),
        ))
    }
}

/// What a resolution found out: the content, its name and its date.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resolved {
    digest: Digest,
    filename: String,
    last_modified: Option<String>,
}

/// What is remembered about a URL between builds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Validators {
    etag: String,
    digest: String,
    filename: String,
    #[serde(default)]
    last_modified: Option<String>,
}

/// An HTTP source op, resolved.
pub(crate) struct HttpSource {
    parts: Arc<Parts>,
    spec: HttpSpec,
    resolved: Resolved,
}

/// The `User-Agent` of kiln's downloads.
const USER_AGENT: &str = concat!("kiln/", env!("CARGO_PKG_VERSION"));

impl HttpSource {
    /// Resolves an HTTP source: without a checksum this asks the server (downloading the file
    /// unless the remembered `ETag` still matches); with one it touches nothing.
    pub async fn resolve(parts: Arc<Parts>, spec: HttpSpec) -> Result<HttpSource> {
        let resolved = match &spec.checksum {
            Some(d) => Resolved {
                digest: d.clone(),
                filename: file_name(&spec.url, spec.filename.as_deref(), None),
                last_modified: None,
            },
            None => resolve_remote(&parts, &spec).await?,
        };
        Ok(HttpSource {
            parts,
            spec,
            resolved,
        })
    }
}

impl Op<Ref> for HttpSource {
    /// As BuildKit's `formatCacheKey`: the file name, mode, owner, content digest and (without
    /// a pinned checksum) the `Last-Modified` date.
    fn cache_key(&self) -> CacheKeyInput {
        let mut w = KeyWriter::new("kiln.source.http.v1");
        w.str(&self.resolved.filename)
            .int(i64::from(self.spec.perm))
            .int(i64::from(self.spec.uid))
            .int(i64::from(self.spec.gid))
            .str(&self.resolved.digest.to_string())
            .str(self.resolved.last_modified.as_deref().unwrap_or(""));
        CacheKeyInput::new("kiln.source.http.v1", w.finish())
    }

    fn exec<'a>(
        &'a self,
        _ctx: &'a ExecCtx,
        _inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, BoxError>> {
        Box::pin(async move { self.snapshot().await.map(|r| vec![r]).map_err(boxed) })
    }
}

impl HttpSource {
    async fn snapshot(&self) -> Result<Ref> {
        let mut last_modified = self.resolved.last_modified.clone();
        if !self.parts.content.exists(&self.resolved.digest)? {
            // Only a pinned checksum gets here: resolution stored the content otherwise.
            let fetched = download(&self.parts, &self.spec, None).await?;
            let Fetched::Stored {
                digest,
                last_modified: lm,
                ..
            } = fetched
            else {
                return Err(Error::Http(format!(
                    "invalid response to an unconditional request for {}",
                    self.spec.url
                )));
            };
            if digest != self.resolved.digest {
                let _ = self.parts.content.delete(&digest);
                return Err(Error::Http(format!(
                    "digest mismatch {digest}: {}",
                    self.resolved.digest
                )));
            }
            last_modified = lm;
        } else if last_modified.is_none() {
            // A pinned download made earlier remembered its date.
            if let Some(v) = read_validators(&self.parts.root, &self.spec.url_hash())
                && v.digest == self.resolved.digest.to_string()
            {
                last_modified = v.last_modified;
            }
        }
        let parts = Arc::clone(&self.parts);
        let digest = self.resolved.digest.clone();
        let name = self.resolved.filename.clone();
        let spec = self.spec.clone();
        blocking(move || write_snapshot(&parts, &digest, &name, &spec, last_modified.as_deref()))
            .await
    }
}

/// The result of one request.
enum Fetched {
    /// The server answered `304 Not Modified`.
    NotModified { etag: Option<String> },
    /// The body is in the content store.
    Stored {
        digest: Digest,
        etag: Option<String>,
        last_modified: Option<String>,
        disposition: Option<String>,
    },
}

async fn resolve_remote(parts: &Arc<Parts>, spec: &HttpSpec) -> Result<Resolved> {
    let url_hash = spec.url_hash();
    let known = read_validators(&parts.root, &url_hash).filter(|v| {
        Digest::parse(&v.digest)
            .ok()
            .and_then(|d| parts.content.exists(&d).ok())
            .unwrap_or(false)
    });
    let fetched = download(parts, spec, known.as_ref().map(|v| v.etag.as_str())).await?;
    match fetched {
        Fetched::NotModified { etag } => {
            let Some(v) = known else {
                return Err(Error::Http(format!(
                    "invalid not-modified ETag: {}",
                    etag.unwrap_or_default()
                )));
            };
            // A 304 without an ETag refers to the only one asked about.
            if let Some(e) = etag
                && etag_value(&e) != v.etag
            {
                return Err(Error::Http(format!("invalid not-modified ETag: {e}")));
            }
            let digest = Digest::parse(&v.digest)
                .map_err(|e| Error::Http(format!("invalid remembered digest: {e}")))?;
            Ok(Resolved {
                digest,
                filename: v.filename,
                last_modified: v.last_modified,
            })
        }
        Fetched::Stored {
            digest,
            etag,
            last_modified,
            disposition,
        } => {
            let filename = file_name(&spec.url, spec.filename.as_deref(), disposition.as_deref());
            if let Some(etag) = etag {
                write_validators(
                    &parts.root,
                    &url_hash,
                    &Validators {
                        etag: etag_value(&etag).to_string(),
                        digest: digest.to_string(),
                        filename: filename.clone(),
                        last_modified: last_modified.clone(),
                    },
                )?;
            }
            Ok(Resolved {
                digest,
                filename,
                last_modified,
            })
        }
    }
}

/// One GET request (conditional with `etag`), its body streamed into the content store.
async fn download(parts: &Parts, spec: &HttpSpec, etag: Option<&str>) -> Result<Fetched> {
    let client = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Http(format!("creating the HTTP client: {e}")))?;
    let mut request = client.get(&spec.url);
    if let Some(etag) = etag {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| Error::Http(format!("GET {}: {}", spec.url, error_chain(&e))))?;
    let status = response.status().as_u16();
    let header = |name: reqwest::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let response_etag = header(reqwest::header::ETAG);
    if status == 304 {
        return Ok(Fetched::NotModified {
            etag: response_etag,
        });
    }
    if !(200..400).contains(&status) {
        return Err(Error::Http(format!("invalid response status {status}")));
    }
    let last_modified = header(reqwest::header::LAST_MODIFIED);
    let disposition = header(reqwest::header::CONTENT_DISPOSITION);
    let mut writer = parts.content.writer(None)?;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::Http(format!("GET {}: {}", spec.url, error_chain(&e))))?
    {
        writer
            .write_all(&chunk)
            .map_err(|e| Error::io("writing the download of", &spec.url, e))?;
    }
    if let Some(want) = &spec.checksum {
        let got = writer.digest();
        if &got != want {
            return Err(Error::Http(format!("digest mismatch {got}: {want}")));
        }
    }
    let (digest, _) = writer.commit()?;
    Ok(Fetched::Stored {
        digest,
        etag: response_etag,
        last_modified,
        disposition,
    })
}

/// An error with its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

/// Writes the downloaded file into a new snapshot and commits it.
fn write_snapshot(
    parts: &Parts,
    digest: &Digest,
    name: &str,
    spec: &HttpSpec,
    last_modified: Option<&str>,
) -> Result<Ref> {
    let (key, mounted) = prepare_mounted(parts, &Ref::Scratch)?;
    let path = mounted.path().join(name);
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut blob = parts.content.open_blob(digest)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(spec.perm)
            .open(&path)
            .map_err(|e| Error::io("creating", &path, e))?;
        std::io::copy(&mut blob, &mut file).map_err(|e| Error::io("writing", &path, e))?;
        // The mode given wins over the process umask.
        std::fs::set_permissions(
            &path,
            std::os::unix::fs::PermissionsExt::from_mode(spec.perm & 0o7777),
        )
        .map_err(|e| Error::io("setting the mode of", &path, e))?;
        let mtime = last_modified
            .and_then(|t| httpdate::parse_http_date(t).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        file.set_times(
            std::fs::FileTimes::new()
                .set_accessed(mtime)
                .set_modified(mtime),
        )
        .map_err(|e| Error::io("setting the times of", &path, e))?;
        file.sync_all()
            .map_err(|e| Error::io("syncing", &path, e))?;
        drop(file);
        if spec.uid != 0 || spec.gid != 0 {
            std::os::unix::fs::lchown(&path, Some(spec.uid), Some(spec.gid))
                .map_err(|e| Error::io("changing the owner of", &path, e))?;
        }
        Ok(())
    })();
    match written {
        Ok(()) => commit(parts, key, mounted, "http/"),
        Err(e) => {
            drop(mounted);
            let _ = parts.snapshots.remove(&key);
            Err(e)
        }
    }
}

/// Where the validators of URLs are remembered.
fn validators_dir(root: &Path) -> PathBuf {
    root.join("http")
}

fn read_validators(root: &Path, url_hash: &str) -> Option<Validators> {
    let bytes = std::fs::read(validators_dir(root).join(format!("{url_hash}.json"))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Remembers a URL's validators: temporary file, fsync, rename, fsync of the directory.
fn write_validators(root: &Path, url_hash: &str, v: &Validators) -> Result<()> {
    let dir = validators_dir(root);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    let path = dir.join(format!("{url_hash}.json"));
    let bytes = serde_json::to_vec(v)
        .map_err(|e| Error::Invalid(format!("encoding HTTP validators: {e}")))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    tmp.write_all(&bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("writing", &path, e))?;
    tmp.persist(&path)
        .map_err(|e| Error::io("renaming into", &path, e.error))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing", &dir, e))?;
    Ok(())
}

/// An ETag without its weakness marker, for comparison.
fn etag_value(v: &str) -> &str {
    v.strip_prefix("W/").unwrap_or(v)
}

/// An integer as Go's `strconv.ParseInt(v, 0, 64)` reads it (`0o`, `0x`, `0b`, leading `0`).
fn parse_go_int(v: &str) -> Option<u32> {
    let (digits, radix) = if let Some(r) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        (r, 16)
    } else if let Some(r) = v.strip_prefix("0o").or_else(|| v.strip_prefix("0O")) {
        (r, 8)
    } else if let Some(r) = v.strip_prefix("0b").or_else(|| v.strip_prefix("0B")) {
        (r, 2)
    } else if v.len() > 1 && v.starts_with('0') {
        (&v[1..], 8)
    } else {
        (v, 10)
    };
    u32::from_str_radix(&digits.replace('_', ""), radix).ok()
}

/// The downloaded file's name (BuildKit's `getFileName`).
fn file_name(url: &str, given: Option<&str>, disposition: Option<&str>) -> String {
    if let Some(name) = given.filter(|n| !n.is_empty()) {
        return safe_file_name(name);
    }
    if let Some(name) = disposition.and_then(disposition_filename)
        && !name.ends_with('/')
        && !name.is_empty()
    {
        return safe_file_name(&name);
    }
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(url)
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let path = path.find('/').map(|i| &path[i..]).unwrap_or("");
    let base = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .map(percent_decode)
        .unwrap_or_default();
    safe_file_name(&base)
}

/// The `filename` parameter of a `Content-Disposition` header.
fn disposition_filename(header: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("filename") {
            return None;
        }
        let v = v.trim();
        Some(
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_string(),
        )
    })
}

/// Decodes `%XX` escapes of a URL path segment (invalid escapes stay as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A file name that stays in its directory (BuildKit's `pathutil.SafeFileName`): the last
/// path element, without outer whitespace; `download` for nothing, `.`, `..` or control
/// characters.
fn safe_file_name(name: &str) -> String {
    let trimmed = name.trim();
    let base = trimmed
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    if base.is_empty() || base == "." || base == ".." || base.chars().any(char::is_control) {
        return "download".to_string();
    }
    base.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cases: &[(&str, &str)], f: impl Fn(&str) -> String) {
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(input, want)| {
                let got = f(input);
                (got != *want).then(|| format!("{input:?}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// BuildKit's `TestSafeFileName` cases (Linux).
    #[test]
    fn safe_file_names() {
        check(
            &[
                ("foo", "foo"),
                ("foo.txt", "foo.txt"),
                ("資料.txt", "資料.txt"),
                ("тест-файл", "тест-файл"),
                ("name with spaces.txt", "name with spaces.txt"),
                ("  foo.txt  ", "foo.txt"),
                ("a/b/c.txt", "c.txt"),
                ("", "download"),
                (".", "download"),
                ("..", "download"),
                ("../", "download"),
                ("a\x00b", "download"),
                ("a\nb", "download"),
                ("..\\", "..\\"),
                ("a\\b\\c.txt", "a\\b\\c.txt"),
            ],
            safe_file_name,
        );
    }

    #[test]
    fn file_names_from_urls_and_headers() {
        check(
            &[
                ("http://h/a/b/file.tar.gz", "file.tar.gz"),
                ("http://h/a/b/dir/", "dir"),
                ("http://h/a/with%20space?x=1#f", "with space"),
                ("http://h", "download"),
                ("http://h/", "download"),
                ("http://h/x|attachment; filename=\"real.bin\"", "real.bin"),
                ("http://h/x|attachment; filename=../../etc/passwd", "passwd"),
                ("http://h/x|inline", "x"),
            ],
            |input| {
                let (url, disposition) = match input.split_once('|') {
                    Some((u, d)) => (u, Some(d)),
                    None => (input, None),
                };
                file_name(url, None, disposition)
            },
        );
        assert_eq!(file_name("http://h/x", Some("given"), None), "given");
    }

    #[test]
    fn go_integers() {
        check(
            &[
                ("0644", "420"),
                ("0o755", "493"),
                ("0x10", "16"),
                ("1000", "1000"),
                ("0", "0"),
                ("-1", "none"),
                ("abc", "none"),
            ],
            |v| parse_go_int(v).map_or("none".to_string(), |n| n.to_string()),
        );
    }
}
