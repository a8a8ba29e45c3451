//! Layer compression: detection from magic bytes, decompression, and compression that yields
//! both digests of a layer in one pass.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};

use kiln_oci::Digest;

use crate::error::{Error, Result};
use crate::hash::{HashingReader, HashingWriter};

/// How a layer blob is compressed, as detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionKind {
    /// A plain tar stream (`application/vnd.oci.image.layer.v1.tar`).
    Uncompressed,
    /// gzip (`...tar+gzip`); several concatenated members are read as one stream.
    Gzip,
    /// zstd (`...tar+zstd`); several concatenated frames are read as one stream.
    Zstd,
}

impl CompressionKind {
    /// The suffix of the OCI layer media type: `""`, `"+gzip"` or `"+zstd"`.
    pub fn media_type_suffix(self) -> &'static str {
        match self {
            CompressionKind::Uncompressed => "",
            CompressionKind::Gzip => "+gzip",
            CompressionKind::Zstd => "+zstd",
        }
    }
}

/// The compression to write a layer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// No compression: the blob is the tar itself, and its digest is the `diff_id`.
    Uncompressed,
    /// gzip at `level` (0-9; BuildKit's default is 6 through Go's `gzip.DefaultCompression`).
    Gzip {
        /// The deflate level, 0 (store) to 9 (best); larger values are clamped to 9.
        level: u32,
    },
    /// zstd at `level` (1-22; BuildKit's default is 3).
    Zstd {
        /// The zstd level; 0 means zstd's default (3).
        level: i32,
    },
    /// eStargz (a seekable gzip, [`crate::compress_estargz`]) at gzip `level`, with
    /// BuildKit's defaults otherwise.
    Estargz {
        /// The deflate level, 0 to 9.
        level: u32,
    },
}

impl Compression {
    /// The kind of stream this compression produces.
    pub fn kind(self) -> CompressionKind {
        match self {
            Compression::Uncompressed => CompressionKind::Uncompressed,
            Compression::Gzip { .. } => CompressionKind::Gzip,
            Compression::Zstd { .. } => CompressionKind::Zstd,
            Compression::Estargz { .. } => CompressionKind::Gzip,
        }
    }
}

/// The result of [`compress`]: the identities of the blob and of the tar inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    /// The digest of the compressed blob (what a manifest's layer descriptor names).
    pub digest: Digest,
    /// The size of the compressed blob in bytes.
    pub size: u64,
    /// The digest of the uncompressed tar (the image config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// The size of the uncompressed tar in bytes.
    pub uncompressed_size: u64,
    /// Annotations the layer's descriptor carries (eStargz's TOC digest and uncompressed
    /// size; empty for the other compressions).
    pub annotations: BTreeMap<String, String>,
}

/// What the first bytes of a blob say about its compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Magic {
    Layer(CompressionKind),
    NotALayer(&'static str),
}

/// The longest magic number we look at (xz's six bytes).
const MAGIC_LEN: usize = 6;

/// Classifies a blob by its first bytes, as containerd's `DetectCompression` does, and also
/// recognises bzip2 and xz so that they can be refused with a clear message.
fn classify(head: &[u8]) -> Magic {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Magic::Layer(CompressionKind::Gzip);
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Magic::Layer(CompressionKind::Zstd);
    }
    // A zstd skippable frame (magic 0x184D2A50..=0x184D2A5F, little-endian) also starts a
    // valid zstd stream.
    if let [b0, 0x2a, 0x4d, 0x18, ..] = head
        && b0 & 0xf0 == 0x50
    {
        return Magic::Layer(CompressionKind::Zstd);
    }
    if head.starts_with(b"BZh") {
        return Magic::NotALayer("bzip2");
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        return Magic::NotALayer("xz");
    }
    Magic::Layer(CompressionKind::Uncompressed)
}

/// Detects the compression of a blob from its first bytes (at least six bytes should be given
/// when the blob has them).
///
/// Returns an error for bzip2 and xz, which are valid for `docker load` archives but are not
/// OCI layer media types.
pub fn detect_compression(head: &[u8]) -> Result<CompressionKind> {
    match classify(head) {
        Magic::Layer(kind) => Ok(kind),
        Magic::NotALayer(name) => Err(Error::UnsupportedCompression(name)),
    }
}

/// Opens a layer blob for reading its uncompressed tar, detecting the compression from the
/// magic bytes.
///
/// The returned reader yields the whole decompressed stream (all gzip members, all zstd
/// frames).
pub fn decompress<'a, R: Read + 'a>(
    mut reader: R,
) -> Result<(CompressionKind, Box<dyn Read + 'a>)> {
    let mut head = [0u8; MAGIC_LEN];
    let mut filled = 0;
    while filled < MAGIC_LEN {
        let rest = head.get_mut(filled..).unwrap_or_default();
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Read(e)),
        }
    }
    let head = head.get(..filled).unwrap_or_default().to_vec();
    let kind = detect_compression(&head)?;
    let stream = Cursor::new(head).chain(reader);
    let decoded: Box<dyn Read + 'a> = match kind {
        CompressionKind::Uncompressed => Box::new(stream),
        CompressionKind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        CompressionKind::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(stream).map_err(Error::Read)?)
        }
    };
    Ok((kind, decoded))
}

/// Compresses the tar read from `reader` into `writer`, returning the blob digest and size and
/// the `diff_id` and size of the tar, all computed in the same pass.
///
/// The output is deterministic for a given input and compression: the gzip header carries no
/// file name and a zero modification time, and gzip, eStargz and zstd compress with
/// [`compression_workers`] worker threads, whose output does not depend on how many workers
/// there are (see [`compress_with_workers`]).
pub fn compress<R: Read, W: Write>(
    reader: R,
    writer: W,
    compression: Compression,
) -> Result<Compressed> {
    compress_with_workers(reader, writer, compression, compression_workers())
}

/// The most worker threads gzip, eStargz and zstd compression use.
const MAX_COMPRESSION_WORKERS: u32 = 4;

/// The number of worker threads [`compress`] gives gzip, eStargz and zstd: the machine's
/// available parallelism, at most 4 (at least 1).
pub fn compression_workers() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(MAX_COMPRESSION_WORKERS))
        .unwrap_or(1)
        .clamp(1, MAX_COMPRESSION_WORKERS)
}

/// [`compress`] with `workers` worker threads (every compression but none uses them).
///
/// gzip cuts the input into blocks of 1 MiB compressed on their own, each primed with the
/// previous block's last 32 KiB, as `pigz` does (see the `pgzip` module): the bytes depend on
/// the input and level only, and `workers = 0` means one worker. An input of at most one block
/// gives exactly the bytes of a single-threaded gzip stream (at levels 2 to 9).
///
/// eStargz compresses its gzip members (one per file chunk) on the workers, each member on its
/// own, so its bytes do not depend on the number of workers either.
///
/// zstd's multi-threaded mode (`workers` ≥ 1) cuts the input into jobs whose size depends on
/// the level only, never on the number of workers, so every worker count from 1 up gives the
/// same bytes (zstd documents this, and `tests/zstd_threads.rs` checks it). `workers = 0` is
/// zstd's single-threaded streaming mode, which frames the data differently: its bytes differ
/// from the multi-threaded ones, so kiln never uses it for layers.
pub fn compress_with_workers<R: Read, W: Write>(
    reader: R,
    writer: W,
    compression: Compression,
    workers: u32,
) -> Result<Compressed> {
    if let Compression::Estargz { level } = compression {
        let made = crate::compress_estargz(
            reader,
            writer,
            &crate::EstargzOptions {
                level,
                workers,
                ..crate::EstargzOptions::default()
            },
        )?;
        return Ok(Compressed {
            annotations: made.annotations(),
            digest: made.digest,
            size: made.size,
            diff_id: made.diff_id,
            uncompressed_size: made.uncompressed_size,
        });
    }
    let mut input = HashingReader::new(reader);
    let mut output = HashingWriter::new(writer);
    match compression {
        Compression::Uncompressed => {
            copy(&mut input, &mut output)?;
        }
        Compression::Gzip { level } => {
            crate::pgzip::compress_gzip(&mut input, &mut output, level, workers)?;
        }
        Compression::Zstd { level } => {
            let mut encoder =
                zstd::stream::write::Encoder::new(&mut output, level).map_err(Error::Write)?;
            if workers > 0 {
                encoder.multithread(workers).map_err(Error::Write)?;
            }
            copy(&mut input, &mut encoder)?;
            encoder.finish().map_err(Error::Write)?;
        }
        // Written above, by its own writer.
        Compression::Estargz { .. } => {}
    }
    output.flush().map_err(Error::Write)?;
    let (_, diff_id, uncompressed_size) = input.finish();
    let (_, digest, size) = output.finish();
    Ok(Compressed {
        digest,
        size,
        diff_id,
        uncompressed_size,
        annotations: BTreeMap::new(),
    })
}

/// Copies `reader` to `writer`, telling read errors from write errors.
fn copy(reader: &mut impl Read, writer: &mut impl Write) -> Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Read(e)),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        writer.write_all(chunk).map_err(Error::Write)?;
        total += n as u64;
    }
}
