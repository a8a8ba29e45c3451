//! Where layout files go: entries of a deterministic tar, or files in a directory.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A destination for the files of an image layout. Names are relative, `/`-separated.
pub(crate) trait Sink {
    /// A directory (`blobs/`).
    fn dir(&mut self, name: &str) -> Result<()>;
    /// A file of `size` bytes read from `data`, with permission bits `mode`.
    fn file(&mut self, name: &str, mode: u32, size: u64, data: &mut dyn Read) -> Result<()>;
    /// Whether the file is there already (a directory layout keeps the blobs it has).
    fn has(&self, _name: &str) -> bool {
        false
    }
}

/// Tar entries with fixed times, owners and formats (ustar: every layout name is short).
///
/// Only [`TarSink::finish`] ends the archive. A sink dropped before it (the export failed
/// half-way) writes nothing more: the tar crate's builder would otherwise end the archive
/// when dropped, and a consumer of a tarball on standard output would read a well-formed tar
/// with the image's index missing instead of a truncated one.
pub(crate) struct TarSink<W: Write> {
    builder: Option<tar::Builder<Abandonable<W>>>,
}

/// A writer that refuses every write once abandoned.
struct Abandonable<W: Write> {
    inner: W,
    abandoned: bool,
}

impl<W: Write> Write for Abandonable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.abandoned {
            return Err(io::Error::other("the tar output was abandoned"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.abandoned {
            return Ok(());
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for TarSink<W> {
    fn drop(&mut self) {
        if let Some(builder) = self.builder.as_mut() {
            builder.get_mut().abandoned = true;
        }
    }
}

impl<W: Write> TarSink<W> {
    pub(crate) fn new(out: W) -> TarSink<W> {
        let mut builder = tar::Builder::new(Abandonable {
            inner: out,
            abandoned: false,
        });
        builder.mode(tar::HeaderMode::Deterministic);
        TarSink {
            builder: Some(builder),
        }
    }

    /// Writes the end-of-archive blocks and returns the writer.
    pub(crate) fn finish(mut self) -> Result<W> {
        let builder = self.builder.take().ok_or_else(|| {
            Error::io(
                "finishing",
                "tar output",
                io::Error::other("finished twice"),
            )
        })?;
        let mut out = builder
            .into_inner()
            .map_err(|e| Error::io("finishing", "tar output", e))?
            .inner;
        out.flush()
            .map_err(|e| Error::io("flushing", "tar output", e))?;
        Ok(out)
    }

    fn builder(&mut self, name: &str) -> Result<&mut tar::Builder<Abandonable<W>>> {
        self.builder.as_mut().ok_or_else(|| {
            Error::io(
                "writing tar entry",
                name,
                io::Error::other("the tar output is finished"),
            )
        })
    }

    fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> Result<tar::Header> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .map_err(|e| Error::io("naming tar entry", name, e))?;
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        Ok(h)
    }
}

impl<W: Write> Sink for TarSink<W> {
    fn dir(&mut self, name: &str) -> Result<()> {
        let h = Self::header(name, tar::EntryType::Directory, 0o755, 0)?;
        self.builder(name)?
            .append(&h, io::empty())
            .map_err(|e| Error::io("writing tar entry", name, e))
    }

    fn file(&mut self, name: &str, mode: u32, size: u64, data: &mut dyn Read) -> Result<()> {
        let h = Self::header(name, tar::EntryType::Regular, mode, size)?;
        // `append` copies exactly `size` bytes; a shorter source is an error, not padding.
        let mut exact = Exact {
            inner: data,
            left: size,
        };
        self.builder(name)?
            .append(&h, &mut exact)
            .map_err(|e| Error::io("writing tar entry", name, e))?;
        if exact.left != 0 {
            return Err(Error::io(
                "writing tar entry",
                name,
                io::Error::new(io::ErrorKind::UnexpectedEof, "source ended early"),
            ));
        }
        Ok(())
    }
}

/// Reads at most `left` bytes and reports an early end as an error.
struct Exact<'a> {
    inner: &'a mut dyn Read,
    left: u64,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(buf.get_mut(..max).unwrap_or_default())?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "blob shorter than its descriptor",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The lock BuildKit's client takes on a layout directory's index while it changes it: the
/// file `index.json.lock`, locked exclusively without waiting (another writer at work is an
/// error, as in BuildKit) and removed when released.
pub(crate) struct IndexLock {
    path: PathBuf,
    _file: fs::File,
}

impl IndexLock {
    pub(crate) fn take(dir: &Path) -> Result<IndexLock> {
        let path = dir.join("index.json.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("creating", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(IndexLock { path, _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::io(
                "locking",
                &path,
                io::Error::other("another export is writing this layout"),
            )),
            Err(fs::TryLockError::Error(e)) => Err(Error::io("locking", &path, e)),
        }
    }
}

impl Drop for IndexLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Files in a directory, each written under a temporary name, synced and renamed.
pub(crate) struct DirSink {
    root: PathBuf,
}

impl DirSink {
    pub(crate) fn new(root: &Path) -> Result<DirSink> {
        fs::create_dir_all(root).map_err(|e| Error::io("creating", root, e))?;
        Ok(DirSink {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        name.split('/')
            .filter(|c| !c.is_empty())
            .fold(self.root.clone(), |p, c| p.join(c))
    }
}

impl Sink for DirSink {
    fn dir(&mut self, name: &str) -> Result<()> {
        let path = self.path(name);
        fs::create_dir_all(&path).map_err(|e| Error::io("creating", &path, e))
    }

    fn has(&self, name: &str) -> bool {
        self.path(name).is_file()
    }

    fn file(&mut self, name: &str, mode: u32, size: u64, data: &mut dyn Read) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(name);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let mut tmp = tempfile::Builder::new()
            .prefix(".kiln-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io("creating a temporary file in", &dir, e))?;
        let mut exact = Exact {
            inner: data,
            left: size,
        };
        io::copy(&mut exact, tmp.as_file_mut()).map_err(|e| Error::io("writing", &path, e))?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("setting the mode of", &path, e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io("syncing", &path, e))?;
        tmp.persist(&path)
            .map_err(|e| Error::io("renaming into place", &path, e.error))?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("syncing", &dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes one 5-byte file into a tar sink, then finishes it or drops it.
    fn written(finish: bool) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut sink = TarSink::new(&mut out);
            sink.file("index.json", 0o644, 5, &mut &b"hello"[..])
                .expect("file");
            if finish {
                sink.finish().expect("finish");
            }
        }
        out
    }

    #[test]
    fn only_finish_ends_the_archive() {
        // A header block and a data block; finishing adds the two zero blocks that end a tar.
        assert_eq!(written(false).len(), 1024);
        let finished = written(true);
        assert_eq!(finished.len(), 2048);
        assert!(finished[1024..].iter().all(|b| *b == 0));
    }
}
