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
pub(crate) struct TarSink<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarSink<W> {
    pub(crate) fn new(out: W) -> TarSink<W> {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Deterministic);
        TarSink { builder }
    }

    /// Writes the end-of-archive blocks and returns the writer.
    pub(crate) fn finish(self) -> Result<W> {
        let mut out = self
            .builder
            .into_inner()
            .map_err(|e| Error::io("finishing", "tar output", e))?;
        out.flush()
            .map_err(|e| Error::io("flushing", "tar output", e))?;
        Ok(out)
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
        self.builder
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
        self.builder
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
