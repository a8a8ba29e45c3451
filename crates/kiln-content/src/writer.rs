//! The ingest writer: hashes while it writes, commits by verify, fsync and rename.

use std::fs::Permissions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use kiln_oci::Digest;
use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use crate::error::{Error, Result, io_err};

/// The mode of committed blobs: read-only, as containerd leaves them.
const BLOB_MODE: u32 = 0o444;

/// A blob being written into the store.
///
/// Bytes written through [`std::io::Write`] go to a temporary file under `<root>/ingest/` and
/// into a sha256 hasher at the same time, so committing needs no second read. Nothing is
/// visible under `blobs/` until [`Writer::commit`] has verified digest and size, synced the
/// file and renamed it into place. Dropping a writer without committing removes its
/// temporary file.
#[derive(Debug)]
pub struct Writer {
    file: BufWriter<NamedTempFile>,
    hasher: Sha256,
    written: u64,
    expected: Option<(Digest, u64)>,
    blobs_dir: PathBuf,
}

impl Writer {
    pub(crate) fn new(
        file: NamedTempFile,
        expected: Option<(Digest, u64)>,
        blobs_dir: PathBuf,
    ) -> Writer {
        Writer {
            file: BufWriter::with_capacity(128 * 1024, file),
            hasher: Sha256::new(),
            written: 0,
            expected,
            blobs_dir,
        }
    }

    /// The number of bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        digest_of(self.hasher.clone())
    }

    /// Verifies what was written against the expectation given to
    /// [`ContentStore::writer`](crate::ContentStore::writer), syncs it and renames it into
    /// `blobs/sha256/<hex>`, then syncs that directory; returns the digest and size.
    ///
    /// A size or digest mismatch is an error and commits nothing. A blob that is already
    /// present (written earlier, or concurrently by another writer) counts as success.
    pub fn commit(self) -> Result<(Digest, u64)> {
        let Writer {
            file,
            hasher,
            written,
            expected,
            blobs_dir,
        } = self;
        let digest = digest_of(hasher);
        if let Some((want_digest, want_size)) = expected {
            if written != want_size {
                return Err(Error::SizeMismatch {
                    digest: want_digest,
                    expected: want_size,
                    actual: written,
                });
            }
            if digest != want_digest {
                return Err(Error::DigestMismatch {
                    expected: want_digest,
                    actual: digest,
                });
            }
        }
        let file = file.into_inner().map_err(|e| {
            let (error, writer) = e.into_parts();
            io_err("write", writer.get_ref().path())(error)
        })?;
        let target = blobs_dir.join(digest.encoded());
        if target.exists() {
            // Same digest, same content: the temporary file goes away with `file`.
            return Ok((digest, written));
        }
        let temp_path = file.path().to_owned();
        file.as_file()
            .set_permissions(Permissions::from_mode(BLOB_MODE))
            .map_err(io_err("set permissions of", &temp_path))?;
        file.as_file()
            .sync_all()
            .map_err(io_err("sync", &temp_path))?;
        file.persist(&target)
            .map_err(|e| io_err("rename into place", &target)(e.error))?;
        sync_dir(&blobs_dir)?;
        Ok((digest, written))
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some((digest, size)) = &self.expected {
            let after = self.written.saturating_add(buf.len() as u64);
            if after > *size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    Error::SizeMismatch {
                        digest: digest.clone(),
                        expected: *size,
                        actual: after,
                    },
                ));
            }
        }
        let n = self.file.write(buf)?;
        let accepted = buf.get(..n).unwrap_or(buf);
        self.hasher.update(accepted);
        self.written += accepted.len() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The `sha256:<hex>` digest a hasher has computed.
pub(crate) fn digest_of(hasher: Sha256) -> Digest {
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    // A sha256 sum in lower-case hex is always a valid digest; `of_bytes` of nothing is the
    // (unreachable) fallback that keeps this function total.
    Digest::parse(&format!("sha256:{hex}")).unwrap_or_else(|_| Digest::of_bytes(b""))
}

/// Syncs a directory, so that the renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}
