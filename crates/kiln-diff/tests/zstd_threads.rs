//! zstd compression with worker threads: the same input gives the same bytes whatever the
//! number of workers (1, 2, 4, and the default [`kiln_diff::compression_workers`]) and from one run
//! to the next, and the blob decompresses back to the input.

use std::io::Read;

use kiln_diff::{Compression, compress, compress_with_workers, decompress};
use kiln_oci::Digest;

/// About 20 MB of mixed content: runs of pseudo-random bytes (incompressible), repeated text
/// (very compressible) and zeros, in blocks of varying sizes, so that zstd cuts it into
/// several jobs with different kinds of data at their edges.
fn mixed_input() -> Vec<u8> {
    const SIZE: usize = 20 * 1024 * 1024;
    let mut out = Vec::with_capacity(SIZE + 64 * 1024);
    // xorshift64: a fixed seed, so every run of the test compresses the same bytes.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let text = b"kiln writes layers the same way every time, whatever the thread count. ";
    while out.len() < SIZE {
        let r = next();
        let len = 4096 + (r % (60 * 1024)) as usize;
        match r % 3 {
            0 => {
                for _ in 0..len.div_ceil(8) {
                    out.extend_from_slice(&next().to_le_bytes());
                }
            }
            1 => {
                for i in 0..len {
                    out.push(text[(i + (r as usize % text.len())) % text.len()]);
                }
            }
            _ => out.resize(out.len() + len, 0),
        }
    }
    out.truncate(SIZE);
    out
}

/// Compresses `input` at zstd `level` with `workers` threads (`None`: [`compress`]'s
/// default), checks the reported digests and sizes and the round trip, and returns the blob
/// (or what is wrong with it).
fn check(input: &[u8], level: i32, workers: Option<u32>) -> Result<Vec<u8>, String> {
    let label = format!("level {level}, workers {workers:?}");
    let compression = Compression::Zstd { level };
    let mut blob = Vec::new();
    let made = match workers {
        Some(w) => compress_with_workers(input, &mut blob, compression, w),
        None => compress(input, &mut blob, compression),
    }
    .map_err(|e| format!("{label}: compress: {e}"))?;
    if made.digest != Digest::of_bytes(&blob) || made.size != blob.len() as u64 {
        return Err(format!("{label}: wrong blob digest or size"));
    }
    if made.diff_id != Digest::of_bytes(input) || made.uncompressed_size != input.len() as u64 {
        return Err(format!("{label}: wrong diff_id or uncompressed size"));
    }
    let mut back = Vec::new();
    {
        let (_, mut reader) =
            decompress(blob.as_slice()).map_err(|e| format!("{label}: decompress: {e}"))?;
        reader
            .read_to_end(&mut back)
            .map_err(|e| format!("{label}: decompress: {e}"))?;
    }
    if back != input {
        return Err(format!("{label}: round trip changed the data"));
    }
    Ok(blob)
}

#[test]
fn output_does_not_depend_on_worker_count() {
    let input = mixed_input();
    let mut failures = Vec::new();
    for level in [1, 3] {
        let mut blobs: Vec<(String, Digest)> = Vec::new();
        // 1, 2 and 4 workers, the default, and 2 workers again (a second run).
        for workers in [Some(1), Some(2), Some(4), None, Some(2)] {
            match check(&input, level, workers) {
                Ok(blob) => blobs.push((format!("{workers:?}"), Digest::of_bytes(&blob))),
                Err(e) => failures.push(e),
            }
        }
        if let Some((first_label, first)) = blobs.first() {
            for (label, digest) in &blobs {
                if digest != first {
                    failures.push(format!(
                        "level {level}: workers {label} gave {digest}, workers {first_label} gave {first}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}
