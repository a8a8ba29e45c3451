//! Pushing blobs and manifests: the [`Pusher`] trait and its implementation on
//! [`RegistryClient`].
//!
//! A blob is pushed the way containerd and BuildKit push one: `HEAD` first, and nothing more
//! when the repository has it; else a cross-repository mount from a repository of the same
//! registry the caller knows holds it (`POST .../blobs/uploads/?mount=<digest>&from=<repo>`);
//! else an upload: `POST` to open an upload session, then one `PUT ...?digest=<digest>` whose
//! body is streamed from the source with its `Content-Length` (a monolithic upload: one
//! request, never the whole blob in memory). Each call opens a new session, so a retry after
//! a failure starts over cleanly; the registry discards the abandoned session.
//!
//! The source is read on a blocking thread in chunks of [`CHUNK_SIZE`] and checked against
//! the descriptor while it is sent: more bytes than the descriptor states, fewer, or another
//! digest abort the upload before its last byte, so the registry never commits a blob that is
//! not the one named.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt;
use kiln_oci::{Digest, Reference};
use oci_client::errors::OciDistributionError;

use crate::BoxFuture;
use crate::client::{MAX_MANIFEST_SIZE, RegistryClient, oci_reference};
use crate::error::{Context, RegistryError, Result};
use crate::manifest::Descriptor;
use crate::verify::Verifier;

/// The size of the chunks a blob is read and sent in.
pub const CHUNK_SIZE: usize = 256 * 1024;

/// How many chunks may wait between the reading thread and the upload.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Where the bytes of a blob to push come from.
pub enum BlobSource {
    /// A file (a content-store blob), opened when the upload starts.
    File(PathBuf),
    /// A reader, read once from its current position. To retry a failed push, make a new
    /// one.
    Reader(Box<dyn Read + Send>),
}

impl std::fmt::Debug for BlobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobSource::File(path) => f.debug_tuple("File").field(path).finish(),
            BlobSource::Reader(_) => f.write_str("Reader(..)"),
        }
    }
}

/// What pushing a blob did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobPushed {
    /// The repository had the blob already: nothing was sent.
    Present,
    /// The registry mounted the blob from another of its repositories (named here, with
    /// its registry).
    Mounted {
        /// The repository it was mounted from (`127.0.0.1:5000/library/busybox`).
        from: String,
    },
    /// The blob was uploaded.
    Uploaded,
}

/// A destination for images: checks, mounts and uploads blobs, and puts manifests.
///
/// Kept apart from [`crate::Registry`], which sources that cannot be pushed to (an OCI layout
/// store) implement as well. The repository arguments are references whose tag or digest is
/// ignored.
pub trait Pusher: Send + Sync {
    /// Whether `repository` holds the blob `digest` (`HEAD /v2/<name>/blobs/<digest>`).
    fn blob_exists<'a>(
        &'a self,
        repository: &'a Reference,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Makes sure `repository` holds the blob `descriptor` names: nothing when it has it,
    /// else a mount from the first of `mount_from` (repositories known to hold it; those on
    /// other registries are skipped) that the registry accepts, else an upload of `source`,
    /// verified against the descriptor's size and digest while it is sent.
    ///
    /// `progress` is called after each chunk with the number of bytes sent so far. A failure
    /// is a [`RegistryError::PushBlob`] naming the repository and the blob (with the
    /// registry's refusal or the network error inside), or a [`RegistryError::ReadBlob`] when
    /// the source cannot be read; calling again retries from the start.
    fn push_blob<'a>(
        &'a self,
        repository: &'a Reference,
        descriptor: &'a Descriptor,
        source: BlobSource,
        mount_from: &'a [Reference],
        progress: &'a (dyn Fn(u64) + Send + Sync),
    ) -> BoxFuture<'a, Result<BlobPushed>>;

    /// Puts the manifest or index `bytes` of `media_type` as `reference`: by its tag (the
    /// reference's tag, `latest` when it has neither tag nor digest) or by its digest (which
    /// must be the digest of `bytes`). Returns the digest of `bytes`.
    ///
    /// Push the blobs (and, for an index, the manifests) it refers to first: registries refuse
    /// a manifest whose blobs they do not have.
    fn push_manifest<'a>(
        &'a self,
        reference: &'a Reference,
        media_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<Digest>>;
}

impl Pusher for RegistryClient {
    fn blob_exists<'a>(
        &'a self,
        repository: &'a Reference,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let client = self.client_for(repository).await?;
            let name = repository.name();
            let context = blob_context(repository, &name, digest);
            client
                .blob_exists(&oci_reference(repository), digest.as_str())
                .await
                .map_err(|e| context.map(e))
        })
    }

    fn push_blob<'a>(
        &'a self,
        repository: &'a Reference,
        descriptor: &'a Descriptor,
        source: BlobSource,
        mount_from: &'a [Reference],
        progress: &'a (dyn Fn(u64) + Send + Sync),
    ) -> BoxFuture<'a, Result<BlobPushed>> {
        Box::pin(async move {
            let wrap = |cause: RegistryError| match cause {
                cause @ RegistryError::ReadBlob { .. } => cause,
                cause => RegistryError::PushBlob {
                    repository: repository.name(),
                    digest: descriptor.digest.clone(),
                    cause: Box::new(cause),
                },
            };
            self.push_blob_inner(repository, descriptor, source, mount_from, progress)
                .await
                .map_err(wrap)
        })
    }

    fn push_manifest<'a>(
        &'a self,
        reference: &'a Reference,
        media_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<Digest>> {
        Box::pin(async move {
            let digest = match reference.digest() {
                Some(wanted) => wanted.clone(),
                None => Digest::of_bytes(bytes),
            };
            let shown = reference.clone().with_default_tag().to_string();
            match self
                .push_manifest_inner(reference, media_type, bytes, &digest)
                .await
            {
                Ok(()) => Ok(digest),
                Err(cause) => Err(RegistryError::PushManifest {
                    reference: shown,
                    digest,
                    cause: Box::new(cause),
                }),
            }
        })
    }
}

impl RegistryClient {
    async fn push_blob_inner(
        &self,
        repository: &Reference,
        descriptor: &Descriptor,
        source: BlobSource,
        mount_from: &[Reference],
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<BlobPushed> {
        let client = self.client_for(repository).await?;
        let target = oci_reference(repository);
        let digest = &descriptor.digest;
        let name = repository.name();
        let context = blob_context(repository, &name, digest);
        if client
            .blob_exists(&target, digest.as_str())
            .await
            .map_err(|e| context.map(e))?
        {
            return Ok(BlobPushed::Present);
        }
        for from in mount_from {
            if from.domain() != repository.domain() || from.path() == repository.path() {
                continue;
            }
            // A registry that cannot mount answers 202 and opens an upload session instead,
            // which oci-client reports as an error: the upload below follows, and the
            // registry discards the session it opened.
            if client
                .mount_blob(&target, &oci_reference(from), digest.as_str())
                .await
                .is_ok()
            {
                return Ok(BlobPushed::Mounted { from: from.name() });
            }
        }
        self.upload(&client, repository, descriptor, source, progress)
            .await?;
        Ok(BlobPushed::Uploaded)
    }

    /// Uploads `source` (POST, then one streamed PUT), verifying it against `descriptor`
    /// while it is sent.
    async fn upload(
        &self,
        client: &oci_client::Client,
        repository: &Reference,
        descriptor: &Descriptor,
        source: BlobSource,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let digest = &descriptor.digest;
        let name = repository.name();
        let context = blob_context(repository, &name, digest);
        let target = oci_reference(repository);

        // The reading thread sends chunks here; the feed below checks them and passes them on
        // to the request body.
        let (read_tx, mut read_rx) =
            tokio::sync::mpsc::channel::<std::result::Result<Bytes, String>>(CHUNKS_IN_FLIGHT);
        let reader = tokio::task::spawn_blocking(move || read_chunks(source, read_tx));
        let (body_tx, body_rx) = tokio::sync::mpsc::channel::<
            std::result::Result<Bytes, OciDistributionError>,
        >(CHUNKS_IN_FLIGHT);
        let body = futures_util::stream::unfold(body_rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed();

        let upload = client.push_blob_stream(&target, body, digest.as_str(), Some(descriptor.size));
        let what = format!("blob {digest} of {name}");
        let feed = async move {
            let mut verifier = Verifier::new(digest);
            let mut sent: u64 = 0;
            let abort = |message: &str| {
                Err(OciDistributionError::GenericError(Some(format!(
                    "upload aborted: {message}"
                ))))
            };
            while let Some(item) = read_rx.recv().await {
                let chunk = match item {
                    Ok(chunk) => chunk,
                    Err(message) => {
                        let _ = body_tx.send(abort(&message)).await;
                        return Err(RegistryError::ReadBlob {
                            digest: digest.clone(),
                            message,
                        });
                    }
                };
                let total = sent + chunk.len() as u64;
                if total > descriptor.size {
                    let _ = body_tx
                        .send(abort("more bytes than the descriptor states"))
                        .await;
                    return Err(RegistryError::SizeMismatch {
                        what,
                        expected: descriptor.size,
                        actual: total,
                    });
                }
                verifier.update(&chunk);
                if total == descriptor.size && !verifier.matches() {
                    let _ = body_tx.send(abort("wrong digest")).await;
                    return Err(RegistryError::DigestMismatch {
                        what,
                        expected: digest.clone(),
                        actual: verifier.finish(),
                    });
                }
                if body_tx.send(Ok(chunk)).await.is_err() {
                    // The request ended early (refused, or the connection broke): its
                    // error says why.
                    return Ok(());
                }
                sent = total;
                progress(sent);
            }
            if sent != descriptor.size {
                let _ = body_tx
                    .send(abort("fewer bytes than the descriptor states"))
                    .await;
                return Err(RegistryError::SizeMismatch {
                    what,
                    expected: descriptor.size,
                    actual: sent,
                });
            }
            Ok(())
        };
        let (uploaded, fed) = futures_util::future::join(upload, feed).await;
        // The reader stops once its channel is gone; its outcome is in what it sent.
        let _ = reader.await;
        fed?;
        uploaded.map(|_| ()).map_err(|e| context.map(e))
    }

    async fn push_manifest_inner(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: &[u8],
        digest: &Digest,
    ) -> Result<()> {
        let shown = reference.to_string();
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(RegistryError::TooLarge {
                what: format!("manifest {shown}"),
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        if reference.digest().is_some() {
            let actual = Verifier::digest_of(digest, bytes);
            if actual != digest.as_str() {
                return Err(RegistryError::DigestMismatch {
                    what: format!("manifest {shown}"),
                    expected: digest.clone(),
                    actual,
                });
            }
        }
        let content_type = media_type
            .parse()
            .map_err(|_| RegistryError::UnsupportedManifest {
                reference: shown.clone(),
                media_type: format!("{media_type:?} is not a valid Content-Type"),
            })?;
        let reference = if reference.digest().is_some() {
            reference.clone()
        } else {
            reference.clone().with_default_tag()
        };
        let client = self.client_for(&reference).await?;
        let name = reference.name();
        let context = Context {
            registry: reference.domain(),
            repository: &name,
            reference: &shown,
            blob: None,
        };
        // By digest, the digest goes in as the "tag": the URL is the same
        // (`/v2/NAME/manifests/sha256:…`), and oci-client's workaround for registries that
        // answer without `Location` (ECR) strips the tag from the URL, which panics for a
        // digest reference.
        let target = match reference.digest() {
            Some(digest) => oci_client::Reference::with_tag(
                reference.domain().to_owned(),
                reference.path().to_owned(),
                digest.to_string(),
            ),
            None => oci_reference(&reference),
        };
        client
            .push_manifest_raw(&target, bytes.to_vec(), content_type)
            .await
            .map(|_| ())
            .map_err(|e| context.map(e))
    }
}

/// The context of errors about one blob of a repository.
fn blob_context<'a>(repository: &'a Reference, name: &'a str, digest: &'a Digest) -> Context<'a> {
    Context {
        registry: repository.domain(),
        repository: name,
        reference: digest.as_str(),
        blob: Some(digest),
    }
}

/// Reads `source` in chunks into `tx` (on a blocking thread), stopping when the receiver is
/// gone; a read error is sent as the last item.
fn read_chunks(
    source: BlobSource,
    tx: tokio::sync::mpsc::Sender<std::result::Result<Bytes, String>>,
) {
    let (mut reader, shown): (Box<dyn Read + Send>, String) = match source {
        BlobSource::File(path) => match File::open(&path) {
            Ok(file) => (Box::new(file), path.display().to_string()),
            Err(e) => {
                let _ = tx.blocking_send(Err(format!("opening {}: {e}", path.display())));
                return;
            }
        },
        BlobSource::Reader(reader) => (reader, "the reader".to_owned()),
    };
    loop {
        let mut buffer = vec![0u8; CHUNK_SIZE];
        let mut filled = 0;
        // Fill the chunk (readers may return short reads), up to the end of the source.
        while filled < CHUNK_SIZE {
            let Some(rest) = buffer.get_mut(filled..) else {
                break;
            };
            match reader.read(rest) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(format!("reading {shown}: {e}")));
                    return;
                }
            }
        }
        if filled == 0 {
            return;
        }
        buffer.truncate(filled);
        if tx.blocking_send(Ok(Bytes::from(buffer))).is_err() {
            return;
        }
        if filled < CHUNK_SIZE {
            return;
        }
    }
}
