//! OCI layers in and out.
//!
//! This crate turns layer blobs into directories and directories back into layer blobs:
//!
//! * [`apply_layer`] unpacks a layer (gzip, zstd or plain tar, detected from the magic bytes)
//!   onto a directory, either an overlayfs upper directory ([`WhiteoutMode::Overlay`]:
//!   whiteouts become 0/0 character devices, opaque markers the `trusted.overlay.opaque`
//!   xattr) or a full copy of the lower layers ([`WhiteoutMode::Delete`]: whiteouts delete).
//!   It returns the layer's `diff_id`, hashed while unpacking. [`apply_layer_with`] adds the
//!   lower layers (for an overlay upper directory: missing parents take their metadata,
//!   their symlinks are followed, hard link targets are copied up) and an optional `syncfs`.
//! * [`write_diff_overlay`] and [`write_diff_dirs`] write the difference between a snapshot and
//!   its parent as a layer tar, from an overlayfs upper directory (the fast path) or by
//!   comparing two full trees (the copying snapshotter).
//! * [`compress`] compresses a tar and reports the blob digest and the `diff_id` from one pass;
//!   [`HashingWriter`], [`HashingReader`] and [`CountingWriter`] are the adapters it is built
//!   from, public for the exporter.
//! * [`compress_estargz`] writes a layer tar as an eStargz blob (gzip members per file and
//!   chunk, a table of contents and a footer) for lazy pulling, reporting its digests in one pass.
//!
//! What it deliberately does not know: snapshots, mounts, content stores, media types beyond
//! the compression suffix, progress reporting. Callers hand it directories and streams, run it
//! on blocking threads, and decide where the bytes go; it never prints and keeps no state
//! between calls (compression starts its worker threads for one call and joins them before it
//! returns).
//!
//! Why it is built this way:
//!
//! * **Upstream semantics, our code.** Applying follows containerd's `archive.Apply`, the
//!   overlay differ BuildKit's `util/overlay`, the tree differ continuity's double walk, and the
//!   tar headers Go's `archive/tar` writer as containerd drives it. A layer kiln writes from a
//!   tree therefore has the same bytes, and so the same `diff_id`, as BuildKit's from the same
//!   tree (with [`XattrPolicy::CapabilityOnly`], which records only the xattr BuildKit
//!   records). The headers are encoded here rather than by the `tar` crate's builder, which
//!   writes GNU long names where Go writes PAX records.
//! * **Nothing escapes the destination.** Layers are untrusted input. Every path is resolved
//!   component by component through directory descriptors opened with `O_NOFOLLOW`, with
//!   symlinks re-resolved inside the root and `..` clamped at it (the user-space equivalent of
//!   `openat2(RESOLVE_IN_ROOT)`), and the final component is always created or changed with
//!   `*at` calls that do not follow it. `../../etc/x`, absolute names, symlinks to `/` (even
//!   ones the same archive created a moment before), and hard links to `/etc/passwd` all stay
//!   inside the destination.
//! * **Determinism.** Diffs walk each directory in bytewise name order, cut times to seconds,
//!   clamp them to `SOURCE_DATE_EPOCH`, leave user and group names empty and date whiteouts at
//!   0, so the same tree always gives the same bytes.
//! * **Streaming.** Nothing holds a whole layer in memory; digests are computed by adapters on
//!   the way through.

mod apply;
mod compress;
mod diff;
mod error;
mod estargz;
mod fsutil;
mod gotar;
mod hash;
mod lowers;
mod pgzip;
mod pool;
mod resolve;

pub use apply::{Applied, ApplyOptions, WhiteoutMode, apply_layer, apply_layer_with};
pub use compress::{
    Compressed, Compression, CompressionKind, compress, compress_with_workers, compression_workers,
    decompress, detect_compression,
};
pub use diff::{DiffOpts, DiffStats, write_diff_dirs, write_diff_overlay};
pub use error::{Error, Result};
pub use estargz::{
    DEFAULT_CHUNK_SIZE, DEFAULT_LEVEL, Estargz, EstargzOptions, FOOTER_SIZE, NO_PREFETCH_LANDMARK,
    PREFETCH_LANDMARK, TOC_DIGEST_ANNOTATION, TOC_TAR_NAME, UNCOMPRESSED_SIZE_ANNOTATION,
    compress_estargz,
};
pub use fsutil::XattrPolicy;
pub use hash::{CountingWriter, HashingReader, HashingWriter};
