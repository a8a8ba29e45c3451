//! Image writers: an image kiln assembled, written out as an OCI image layout (a tarball or a
//! directory) or as a Docker image tarball that `docker load` accepts.
//!
//! The input is an [`ExportedImage`] (the manifest and config documents and the layer
//! descriptors of one single-platform image) whose blobs are all in a
//! [`kiln_content::ContentStore`]. The writers follow what BuildKit's `oci` and `docker`
//! exporters produce through containerd's archive exporter:
//!
//! * [`write_oci_tar`] and [`write_oci_dir`]: `oci-layout`, `index.json` (one entry per image
//!   name, annotated with `io.containerd.image.name` and `org.opencontainers.image.ref.name`)
//!   and `blobs/sha256/<hex>` for the manifest, the config and every layer; into a directory
//!   that already is a layout, the image joins its `index.json` as BuildKit's client adds it;
//! * [`write_docker_tar`]: the same layout plus Docker's `manifest.json` (`Config`,
//!   `RepoTags`, `Layers` pointing at the blobs) and the legacy `repositories` file, which
//!   Docker 20.10 loads (and Docker 25 and later load as an OCI layout as well).
//!
//! What it deliberately does not know: snapshots, diffs and compression (the worker assembles
//! the image and puts its blobs into the store), the command line, where the bytes finally go
//! (callers hand a writer or a directory), progress reporting.
//!
//! Why it is built this way:
//!
//! * **Streaming.** Blobs are copied from the store into the tar (or the directory) through a
//!   fixed buffer; no layer is ever held in memory. Only the small JSON documents are.
//! * **Determinism.** Tar entries come in bytewise name order with fixed times (0), owners
//!   (0:0, no names) and modes, and every JSON document is serialized from ordered structures,
//!   so the same image and names always give the same bytes.
//! * **Nothing half-written is visible** in a layout directory: each file is written under a
//!   temporary name in its directory, synced and renamed; blobs already present are kept.

mod annotations;
mod docker;
mod error;
mod image;
mod layout;
mod sink;
mod time;

pub use annotations::{
    AnnotationError, AnnotationKey, AnnotationKind, Annotations, LayoutAnnotations,
};
pub use docker::{docker_manifest_json, repositories_json, write_docker_tar};
pub use error::{Error, Result};
pub use image::{ExportedImage, ImageName};
pub use layout::{OCI_LAYOUT, index_json, write_oci_dir, write_oci_tar};
pub use time::format_time;
