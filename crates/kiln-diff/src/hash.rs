//! Reader and writer adapters that digest or count the bytes going through them.
//!
//! A layer is identified twice: by the digest of its compressed blob and by its `diff_id`, the
//! digest of the uncompressed tar. These adapters compute both in the same pass as the copy,
//! so no layer is ever read twice just to hash it.

use std::io::{self, Read, Write};

use kiln_oci::Digest;
use sha2::{Digest as _, Sha256};

/// Formats a finished SHA-256 state as a `sha256:` digest.
fn digest_of(hasher: Sha256) -> Digest {
    let text = format!("sha256:{:x}", hasher.finalize());
    // A lower-case hex SHA-256 always parses; fall back to hashing nothing only to avoid a panic path.
    Digest::parse(&text).unwrap_or_else(|_| Digest::of_bytes(&[]))
}

/// A writer that hashes (SHA-256) and counts every byte written through it to `inner`.
///
/// Only the bytes `inner` accepted are hashed, so the digest matches what was really written.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The number of bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest of the bytes written so far, without consuming the writer.
    pub fn digest(&self) -> Digest {
        digest_of(self.hasher.clone())
    }

    /// A shared reference to the wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Returns the wrapped writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, digest_of(self.hasher), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or(buf);
        self.hasher.update(written);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes (SHA-256) and counts every byte read through it from `inner`.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The number of bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest of the bytes read so far, without consuming the reader.
    pub fn digest(&self) -> Digest {
        digest_of(self.hasher.clone())
    }

    /// Reads `inner` to its end (hashing what is left) and returns the digest and byte count.
    ///
    /// Used after a tar reader stopped at the end-of-archive marker: the bytes after it (the
    /// second zero block, record padding) belong to the blob and so to its digest.
    pub fn drain(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((digest_of(self.hasher), self.count))
    }

    /// Returns the wrapped reader, the digest and the byte count of what was read.
    pub fn finish(self) -> (R, Digest, u64) {
        (self.inner, digest_of(self.hasher), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = buf.get(..n).unwrap_or(buf);
        self.hasher.update(read);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that counts the bytes written through it to `inner`.
#[derive(Debug)]
pub struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> CountingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        CountingWriter { inner, count: 0 }
    }

    /// The number of bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Returns the wrapped writer and the byte count.
    pub fn finish(self) -> (W, u64) {
        (self.inner, self.count)
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_adapters_agree_with_digest_of_bytes() {
        let data = b"hello layer";
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(data).unwrap();
        let (out, digest, count) = w.finish();
        assert_eq!(out, data);
        assert_eq!(digest, Digest::of_bytes(data));
        assert_eq!(count, data.len() as u64);

        let r = HashingReader::new(&data[..]);
        let (digest, count) = r.drain().unwrap();
        assert_eq!(digest, Digest::of_bytes(data));
        assert_eq!(count, data.len() as u64);

        let mut c = CountingWriter::new(io::sink());
        c.write_all(data).unwrap();
        assert_eq!(c.count(), data.len() as u64);
    }
}
