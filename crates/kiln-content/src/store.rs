//! The content store: a directory of blobs named by their digest.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use kiln_oci::Digest;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result, io_err};
use crate::ingest::{ProcessTag, SUFFIX};
use crate::writer::{Writer, digest_of, sync_dir};

/// Which ingest files [`ContentStore::open_with`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IngestCleanup {
    /// Those of processes that are no longer running (and any file whose name is not an
    /// ingest name): the leftovers of crashes. Ingests of live processes, including other
    /// stores of this process, are left alone.
    #[default]
    Stale,
    /// All of them. Only correct when the caller knows no writer is active, for example
    /// because it holds the lock of the whole state directory.
    All,
}

/// A content-addressed store of verified blobs under a root directory:
/// `<root>/blobs/sha256/<hex>` for committed blobs, `<root>/ingest/` for writes in progress.
///
/// The store holds no state besides its paths: several stores (and processes) may share a
/// root, and a store can be shared between threads.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    blobs: PathBuf,
    ingest: PathBuf,
    process: ProcessTag,
}

impl ContentStore {
    /// Opens (creating if needed) the store at `root`, removing the ingest files of processes
    /// that are gone.
    pub fn open(root: impl AsRef<Path>) -> Result<ContentStore> {
        ContentStore::open_with(root, IngestCleanup::Stale)
    }

    /// Opens (creating if needed) the store at `root`, removing the ingest files `cleanup`
    /// selects.
    pub fn open_with(root: impl AsRef<Path>, cleanup: IngestCleanup) -> Result<ContentStore> {
        let root = root.as_ref().to_owned();
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        for dir in [&blobs, &ingest] {
            fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        }
        let store = ContentStore {
            root,
            blobs,
            ingest,
            process: ProcessTag::current(),
        };
        store.clean_ingest(cleanup)?;
        Ok(store)
    }

    /// The root directory of the store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest is (or would be) stored.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.encoded())
    }

    /// Starts writing a blob. With an expectation `(digest, size)`, [`Writer::commit`]
    /// refuses content that does not match it (and writes past `size` fail at once).
    pub fn writer(&self, expected: Option<(Digest, u64)>) -> Result<Writer> {
        if let Some((digest, _)) = &expected
            && digest.algorithm() != "sha256"
        {
            return Err(Error::UnsupportedAlgorithm {
                algorithm: digest.algorithm().to_owned(),
                digest: digest.clone(),
            });
        }
        let file = tempfile::Builder::new()
            .prefix(&self.process.prefix())
            .suffix(SUFFIX)
            .tempfile_in(&self.ingest)
            .map_err(io_err("create ingest file in", &self.ingest))?;
        Ok(Writer::new(file, expected, self.blobs.clone()))
    }

    /// Writes `data` as a blob and returns its digest and size (a convenience for small
    /// blobs such as manifests and configs).
    pub fn put(&self, data: &[u8]) -> Result<(Digest, u64)> {
        let mut writer = self.writer(None)?;
        io::Write::write_all(&mut writer, data).map_err(io_err("write", &self.ingest))?;
        writer.commit()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| self.not_found_or(digest, "open", &path, e))
    }

    /// Opens a blob for a reading that verifies its digest: the reader fails with
    /// [`io::ErrorKind::InvalidData`] (wrapping [`Error::Corrupt`]) at the end of a blob whose
    /// content no longer matches its digest.
    pub fn read_verified(&self, digest: &Digest) -> Result<VerifiedReader> {
        if digest.algorithm() != "sha256" {
            return Err(Error::UnsupportedAlgorithm {
                algorithm: digest.algorithm().to_owned(),
                digest: digest.clone(),
            });
        }
        Ok(VerifiedReader {
            file: self.open_blob(digest)?,
            hasher: Sha256::new(),
            digest: digest.clone(),
            actual: None,
        })
    }

    /// Reads a whole blob and checks that it still hashes to its digest; returns its size.
    pub fn verify(&self, digest: &Digest) -> Result<u64> {
        let mut reader = self.read_verified(digest)?;
        let path = self.path(digest);
        match io::copy(&mut reader, &mut io::sink()) {
            Ok(size) => Ok(size),
            Err(e) => match e.downcast::<Error>() {
                Ok(error) => Err(error),
                Err(e) => Err(io_err("read", path)(e)),
            },
        }
    }

    /// Whether a blob is present.
    pub fn exists(&self, digest: &Digest) -> Result<bool> {
        let path = self.path(digest);
        match fs::symlink_metadata(&path) {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("stat", path)(e)),
        }
    }

    /// The size of a blob in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let path = self.path(digest);
        fs::symlink_metadata(&path)
            .map(|meta| meta.len())
            .map_err(|e| self.not_found_or(digest, "stat", &path, e))
    }

    /// Removes a blob; [`Error::NotFound`] when it is not there.
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.path(digest);
        fs::remove_file(&path).map_err(|e| self.not_found_or(digest, "remove", &path, e))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Every blob with its size, sorted by digest. Files under `blobs/sha256/` whose names
    /// are not sha256 digests are not blobs and are left out.
    pub fn list(&self) -> Result<Vec<(Digest, u64)>> {
        let entries = fs::read_dir(&self.blobs).map_err(io_err("read directory", &self.blobs))?;
        let mut blobs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("read directory", &self.blobs))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(digest) = Digest::parse(&format!("sha256:{name}")) else {
                continue;
            };
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Deleted since the directory was read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("stat", entry.path())(e)),
            };
            if meta.is_file() {
                blobs.push((digest, meta.len()));
            }
        }
        blobs.sort();
        Ok(blobs)
    }

    /// The total size of all blobs in bytes.
    pub fn usage(&self) -> Result<u64> {
        Ok(self.list()?.iter().map(|(_, size)| size).sum())
    }

    /// Removes the ingest files `cleanup` selects.
    fn clean_ingest(&self, cleanup: IngestCleanup) -> Result<()> {
        let entries = fs::read_dir(&self.ingest).map_err(io_err("read directory", &self.ingest))?;
        for entry in entries {
            let entry = entry.map_err(io_err("read directory", &self.ingest))?;
            let name = entry.file_name();
            let owner = name.to_str().and_then(ProcessTag::of_ingest_name);
            let keep = match cleanup {
                IngestCleanup::All => false,
                IngestCleanup::Stale => owner.is_some_and(|owner| owner.is_alive()),
            };
            if keep {
                continue;
            }
            let path = entry.path();
            let removed = match entry.file_type() {
                Ok(kind) if kind.is_dir() => fs::remove_dir_all(&path),
                _ => fs::remove_file(&path),
            };
            match removed {
                Ok(()) => {}
                // Committed or abandoned by its writer meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove stale ingest", path)(e)),
            }
        }
        Ok(())
    }

    fn not_found_or(
        &self,
        digest: &Digest,
        action: &'static str,
        path: &Path,
        e: io::Error,
    ) -> Error {
        if e.kind() == io::ErrorKind::NotFound {
            Error::NotFound {
                digest: digest.clone(),
            }
        } else {
            io_err(action, path)(e)
        }
    }
}

/// A reader of a blob that checks its digest when it reaches the end; see
/// [`ContentStore::read_verified`].
#[derive(Debug)]
pub struct VerifiedReader {
    file: File,
    hasher: Sha256,
    digest: Digest,
    /// The digest of the content, once the end was reached.
    actual: Option<Digest>,
}

impl VerifiedReader {
    /// The digest the blob is expected to have.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

impl Read for VerifiedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n > 0 {
            self.hasher.update(buf.get(..n).unwrap_or_default());
            return Ok(n);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let actual = self
            .actual
            .get_or_insert_with(|| digest_of(self.hasher.clone()));
        if *actual != self.digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Error::Corrupt {
                    digest: self.digest.clone(),
                    actual: actual.clone(),
                },
            ));
        }
        Ok(0)
    }
}
