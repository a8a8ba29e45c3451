//! Gzip on several threads, with output that does not depend on the number of threads.
//!
//! The input is cut into blocks of [`BLOCK`] bytes. Each block is compressed on its own into
//! raw deflate, primed with the last 32 KiB of the block before it as the dictionary (so a
//! block's matches may reach back across the cut, as they would in one stream), and ended with
//! a sync flush (an empty stored block, which leaves the output at a byte boundary); the last
//! block ends the stream instead. The deflate pieces, in order, form one valid deflate stream,
//! wrapped in a gzip header and the CRC-32 and length of the whole input. This is how `pigz`
//! compresses; the result is an ordinary gzip file that any gunzip reads.
//!
//! What a block compresses to depends only on its bytes, the dictionary and the level, never on
//! which thread compressed it or how many there are, so the output is the same for every
//! worker count. An input of at most one block is compressed exactly as a single-threaded gzip
//! stream of the same level (levels 2 to 9: zlib-rs's level 1 ends deflate blocks where its
//! input happens to arrive, so a stream's bytes there depend on how it was fed, which the
//! blocks here fix once and for all).
//!
//! Memory is bounded: at most two blocks per worker are in flight (read, compressed or waiting
//! to be written in order), a few MiB whatever the layer's size.

use std::io::{self, Read, Write};

use flate2::{Compress, Crc, FlushCompress, Status};

use crate::error::{Error, Result};
use crate::pool::OrderedPool;

/// The size of the blocks compressed independently: large enough that the sync flush (five
/// bytes) and the restart of the match search cost nothing measurable, small enough that two
/// per worker stay a few MiB.
pub const BLOCK: usize = 1 << 20;

/// How much of the previous block primes each block's dictionary (deflate's whole window).
const DICTIONARY: usize = 32 << 10;

/// One block to compress.
struct Job {
    data: Vec<u8>,
    dictionary: Vec<u8>,
    last: bool,
}

/// Compresses everything `reader` yields into a gzip stream written to `writer`, at `level`
/// (0 to 9), on `workers` threads (0 is taken as 1). Returns the number of input bytes.
pub fn compress_gzip<R: Read, W: Write>(
    reader: &mut R,
    writer: &mut W,
    level: u32,
    workers: u32,
) -> Result<u64> {
    let level = level.min(9);
    let workers = usize::try_from(workers.max(1)).unwrap_or(1);
    writer.write_all(&header(level)).map_err(Error::Write)?;
    let mut crc = Crc::new();
    let mut total = 0u64;
    let mut pool = OrderedPool::new(workers, move |job: Job| {
        compress_block(&job.data, &job.dictionary, job.last, level)
    });
    let mut deliver = |out: Vec<u8>| writer.write_all(&out).map_err(Error::Write);
    let mut data = read_block(reader)?;
    let mut dictionary = Vec::new();
    loop {
        crc.update(&data);
        total += data.len() as u64;
        // Read ahead one block to know whether this one is the last.
        let next = if data.len() == BLOCK {
            read_block(reader)?
        } else {
            Vec::new()
        };
        let last = next.is_empty();
        let tail = tail(&data);
        pool.submit(
            Job {
                data,
                dictionary,
                last,
            },
            &mut deliver,
        )?;
        if last {
            break;
        }
        data = next;
        dictionary = tail;
    }
    pool.drain(&mut deliver)?;
    drop(pool);
    let mut trailer = [0u8; 8];
    trailer[..4].copy_from_slice(&crc.sum().to_le_bytes());
    trailer[4..].copy_from_slice(&crc.amount().to_le_bytes());
    writer.write_all(&trailer).map_err(Error::Write)?;
    Ok(total)
}

/// The gzip header kiln writes: no file name, modification time zero, the extra flags zlib
/// sets for the level, operating system "unknown" (255), as flate2's `GzBuilder` writes it.
fn header(level: u32) -> [u8; 10] {
    let extra_flags = if level >= 9 {
        2
    } else if level <= 1 {
        4
    } else {
        0
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, extra_flags, 255]
}

/// Reads up to [`BLOCK`] bytes (fewer only at the end of the input).
fn read_block<R: Read>(reader: &mut R) -> Result<Vec<u8>> {
    let mut block = vec![0u8; BLOCK];
    let mut filled = 0;
    while filled < BLOCK {
        let Some(rest) = block.get_mut(filled..) else {
            break;
        };
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Read(e)),
        }
    }
    block.truncate(filled);
    Ok(block)
}

/// The last [`DICTIONARY`] bytes of `data` (all of it when shorter).
fn tail(data: &[u8]) -> Vec<u8> {
    data.get(data.len().saturating_sub(DICTIONARY)..)
        .unwrap_or(data)
        .to_vec()
}

/// Compresses one block into raw deflate: primed with `dictionary`, ended with a sync flush,
/// or with the end of the stream when `last`.
fn compress_block(
    data: &[u8],
    dictionary: &[u8],
    last: bool,
    level: u32,
) -> std::result::Result<Vec<u8>, String> {
    let mut compress = Compress::new(flate2::Compression::new(level), false);
    if !dictionary.is_empty() {
        compress
            .set_dictionary(dictionary)
            .map_err(|e| e.to_string())?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        let consumed = usize::try_from(compress.total_in()).unwrap_or(usize::MAX);
        let rest = data.get(consumed..).unwrap_or_default();
        let status = compress
            .compress_vec(rest, &mut out, flush)
            .map_err(|e| e.to_string())?;
        let all_in = usize::try_from(compress.total_in()).unwrap_or(usize::MAX) >= data.len();
        match status {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete once all input is in and deflate stopped with room
            // left in the output.
            Status::Ok | Status::BufError if !last && all_in && out.len() < out.capacity() => {
                return Ok(out);
            }
            Status::Ok | Status::BufError => out.reserve(out.capacity().max(64 << 10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mixed data: text-like runs, repeats reaching back across block cuts, and noise.
    fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            match state % 4 {
                0 => out.extend_from_slice(b"the quick brown layer jumps over the lazy cache\n"),
                1 if out.len() > 40_000 => {
                    let from = out.len() - 40_000 + (state as usize % 1000);
                    let piece: Vec<u8> = out[from..from + 300].to_vec();
                    out.extend_from_slice(&piece);
                }
                _ => out.extend_from_slice(&state.to_le_bytes()),
            }
        }
        out.truncate(len);
        out
    }

    fn pgzip(data: &[u8], level: u32, workers: u32) -> Vec<u8> {
        let mut out = Vec::new();
        compress_gzip(&mut &data[..], &mut out, level, workers).expect("compress");
        out
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .expect("decompress");
        out
    }

    fn single_stream(data: &[u8], level: u32) -> Vec<u8> {
        let mut encoder = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(Vec::new(), flate2::Compression::new(level));
        encoder.write_all(data).expect("compress");
        encoder.finish().expect("finish")
    }

    #[test]
    fn round_trips_and_is_the_same_for_every_worker_count() {
        // Sizes around the block boundaries, and several blocks.
        let sizes = [0, 1, 1000, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12_345];
        let mut failures = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let data = sample(size, 7 + i as u64);
            for level in [1, 6, 9] {
                let one = pgzip(&data, level, 1);
                if gunzip(&one) != data {
                    failures.push(format!("size {size} level {level}: wrong round trip"));
                }
                for workers in [2, 3, 4] {
                    if pgzip(&data, level, workers) != one {
                        failures.push(format!(
                            "size {size} level {level}: {workers} workers differ from 1"
                        ));
                    }
                }
                if size <= BLOCK && level > 1 && one != single_stream(&data, level) {
                    failures.push(format!(
                        "size {size} level {level}: differs from a single-stream gzip"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn blocks_cost_almost_nothing_in_size() {
        let data = sample(8 * BLOCK, 99);
        let blocks = pgzip(&data, 6, 2).len() as f64;
        let stream = single_stream(&data, 6).len() as f64;
        assert!(
            blocks <= stream * 1.005,
            "blocks {blocks} bytes vs one stream {stream}"
        );
        // And the cut is real: more than one block gives other bytes than one stream.
        assert_ne!(pgzip(&data, 6, 2), single_stream(&data, 6));
    }

    /// The system's gzip (Debian's, always installed) reads a many-block stream too.
    #[test]
    fn system_gzip_reads_it() {
        let data = sample(5 * BLOCK + 777, 11);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("layer.gz");
        std::fs::write(&path, pgzip(&data, 6, 2)).expect("write");
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .output()
            .expect("run gzip");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == data, "gzip -dc gave other bytes");
    }

    #[test]
    fn header_and_trailer() {
        let data = sample(2 * BLOCK + 5, 3);
        let out = pgzip(&data, 6, 2);
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let mut crc = Crc::new();
        crc.update(&data);
        let n = out.len();
        assert_eq!(&out[n - 8..n - 4], &crc.sum().to_le_bytes());
        assert_eq!(&out[n - 4..], &(data.len() as u32).to_le_bytes());
        assert_eq!(pgzip(&data, 9, 1)[8], 2);
        assert_eq!(pgzip(&data, 1, 1)[8], 4);
    }
}
