//! The content store of the embedded builder: blobs (layers, manifests, configs) addressed by
//! their sha256 digest, as containerd's `content/local` store keeps them.
//!
//! Layout under the root directory given to [`ContentStore::open`]:
//! `blobs/sha256/<hex>` holds committed blobs, read-only; `ingest/` holds writes in progress.
//! A [`Writer`] hashes while it writes, and [`Writer::commit`] verifies the digest and size
//! against what the caller expected, syncs the file, renames it into `blobs/` and syncs that
//! directory. So a blob under `blobs/` is always complete and verified, whatever moment a
//! crash hits: a crash leaves at most a file in `ingest/`, which the next
//! [`ContentStore::open`] removes once its process is gone.
//!
//! What it deliberately does not know: which blobs are in use. References, leases and garbage
//! collection live in the metadata database of the caller, which decides what to
//! [`ContentStore::delete`]. It also does not know registries or media types: a blob is bytes
//! and a digest.
//!
//! Why: keeping the store this small (a directory and a naming rule) makes its crash safety
//! easy to reason about, and lets several processes and stores share one root without any
//! lock: a blob is only ever created by an atomic rename of verified content, and two writers
//! of the same digest write the same bytes.

mod error;
mod ingest;
mod store;
mod writer;

pub use error::{Error, Result};
pub use store::{ContentStore, IngestCleanup, VerifiedReader};
pub use writer::Writer;
