//! kiln's own image store: names pointing at image manifests whose blobs are in the content
//! store, as containerd's image store does for BuildKit's `image` exporter.
//!
//! A record maps a name (`docker.io/library/app:1`, or `prefix@sha256:...` for an unnamed image
//! with `dangling-name-prefix`) to the manifest's descriptor, the time it was named, and the
//! digests of every blob the image needs (manifest, config, layers). The records live in the
//! redb table `kiln.worker.v1.images` of the state's metadata database, so naming an image is
//! one transaction: a crash leaves the old record or the new one, never half of one.
//!
//! The blob list is kept with the record so that the garbage collector ([`crate::usage`]) can
//! keep every blob a name refers to without reading manifests: [`held_blobs`] is the set it
//! never removes. Removing a name (or pointing it at another image) releases its blobs for the
//! next collection.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use kiln_export::ExportedImage;
use kiln_oci::Digest;
use kiln_registry::Descriptor;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Image name → the JSON of a [`Stored`] record.
const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("kiln.worker.v1.images");

/// A named image of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The name (`docker.io/library/app:1`).
    pub name: String,
    /// The manifest's descriptor: its digest is the image's digest.
    pub target: Descriptor,
    /// When the name was last pointed at this image.
    pub created: SystemTime,
    /// Every blob the image needs (manifest, config, layers), each once.
    pub blobs: Vec<Digest>,
}

/// A record as stored (the name is the key).
#[derive(Serialize, Deserialize)]
struct Stored {
    target: Descriptor,
    /// Seconds and nanoseconds since the Unix epoch.
    created: (u64, u32),
    blobs: Vec<Digest>,
}

/// The error for a failure of the metadata database.
fn db_err(root: &Path, e: impl std::fmt::Display) -> Error {
    Error::Database {
        path: root.join("metadata.redb"),
        message: e.to_string(),
    }
}

fn decode(root: &Path, name: &str, bytes: &[u8]) -> Result<ImageRecord> {
    let stored: Stored = serde_json::from_slice(bytes)
        .map_err(|e| db_err(root, format!("image record {name:?} is corrupt: {e}")))?;
    Ok(ImageRecord {
        name: name.to_string(),
        target: stored.target,
        created: SystemTime::UNIX_EPOCH
            + Duration::new(stored.created.0, stored.created.1.min(999_999_999)),
        blobs: stored.blobs,
    })
}

/// Points `name` at `image` (creating or replacing its record) in one transaction.
pub(crate) fn put(
    db: &redb::Database,
    root: &Path,
    name: &str,
    image: &ExportedImage,
) -> Result<ImageRecord> {
    if name.is_empty() {
        return Err(Error::Invalid("an image name cannot be empty".to_string()));
    }
    let created = SystemTime::now();
    let since = created
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let blobs: Vec<Digest> = image
        .blobs()
        .into_iter()
        .map(|d| d.digest.clone())
        .collect();
    let stored = Stored {
        target: image.manifest.clone(),
        created: (since.as_secs(), since.subsec_nanos()),
        blobs: blobs.clone(),
    };
    let bytes = serde_json::to_vec(&stored).map_err(|e| db_err(root, e))?;
    let txn = db.begin_write().map_err(|e| db_err(root, e))?;
    {
        let mut table = txn.open_table(IMAGES).map_err(|e| db_err(root, e))?;
        table
            .insert(name, bytes.as_slice())
            .map_err(|e| db_err(root, e))?;
    }
    txn.commit().map_err(|e| db_err(root, e))?;
    Ok(ImageRecord {
        name: name.to_string(),
        target: image.manifest.clone(),
        created,
        blobs,
    })
}

/// Every record, sorted by name.
pub(crate) fn list(db: &redb::Database, root: &Path) -> Result<Vec<ImageRecord>> {
    let txn = db.begin_read().map_err(|e| db_err(root, e))?;
    let table = match txn.open_table(IMAGES) {
        Ok(t) => t,
        // Nothing was ever named in this state directory.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db_err(root, e)),
    };
    let mut out = Vec::new();
    for row in table.iter().map_err(|e| db_err(root, e))? {
        let (k, v) = row.map_err(|e| db_err(root, e))?;
        out.push(decode(root, k.value(), v.value())?);
    }
    Ok(out)
}

/// Removes the record of `name`; false when there was none.
pub(crate) fn remove(db: &redb::Database, root: &Path, name: &str) -> Result<bool> {
    let txn = db.begin_write().map_err(|e| db_err(root, e))?;
    let removed = {
        let mut table = txn.open_table(IMAGES).map_err(|e| db_err(root, e))?;
        table.remove(name).map_err(|e| db_err(root, e))?.is_some()
    };
    txn.commit().map_err(|e| db_err(root, e))?;
    Ok(removed)
}

/// The blobs some named image needs (digests as text): the garbage collector keeps them.
pub(crate) fn held_blobs(db: &redb::Database, root: &Path) -> Result<BTreeSet<String>> {
    Ok(list(db, root)?
        .into_iter()
        .flat_map(|r| r.blobs)
        .map(|d| d.to_string())
        .collect())
}

impl crate::Storage {
    /// The images of kiln's image store (`-o type=image`), sorted by name, without opening a
    /// worker (as `kiln images` reads them).
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        list(self.db(), self.root())
    }
}

impl crate::Worker {
    /// The images of kiln's image store (`-o type=image`), sorted by name.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        list(self.storage.db(), self.storage.root())
    }

    /// Points `name` at `image`, whose blobs must be in the content store (as
    /// [`Worker::export_image`](crate::Worker::export_image) leaves them); from then on the
    /// garbage collector keeps those blobs.
    pub fn name_image(&self, name: &str, image: &ExportedImage) -> Result<ImageRecord> {
        put(self.storage.db(), self.storage.root(), name, image)
    }

    /// Removes the name `name` from the image store (its blobs become collectable unless
    /// another name needs them); false when no image had that name.
    pub fn remove_image(&self, name: &str) -> Result<bool> {
        remove(self.storage.db(), self.storage.root(), name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(layer: &str) -> ExportedImage {
        let layer = Digest::of_bytes(layer.as_bytes());
        let config = Digest::of_bytes(b"config");
        let manifest = Digest::of_bytes(format!("manifest {layer}").as_bytes());
        ExportedImage {
            manifest: Descriptor::new(crate::OCI_MANIFEST, manifest, 10),
            manifest_json: Vec::new(),
            config: Descriptor::new(crate::OCI_CONFIG, config, 6),
            config_json: Vec::new(),
            layers: vec![
                Descriptor::new(
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                    layer.clone(),
                    5,
                ),
                Descriptor::new("application/vnd.oci.image.layer.v1.tar+gzip", layer, 5),
            ],
            diff_ids: Vec::new(),
        }
    }

    #[test]
    fn names_replace_and_hold_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let db = crate::state::open_db(root).expect("db");
        assert_eq!(list(&db, root).expect("list"), Vec::new());

        let a = image("a");
        let b = image("b");
        put(&db, root, "docker.io/library/app:1", &a).expect("put");
        put(&db, root, "docker.io/library/app:2", &a).expect("put");
        put(&db, root, "docker.io/library/app:2", &b).expect("replace");
        let records = list(&db, root).expect("list");
        let got: Vec<(&str, &Digest, usize)> = records
            .iter()
            .map(|r| (r.name.as_str(), &r.target.digest, r.blobs.len()))
            .collect();
        assert_eq!(
            got,
            [
                ("docker.io/library/app:1", &a.manifest.digest, 3),
                ("docker.io/library/app:2", &b.manifest.digest, 3),
            ]
        );
        let held = held_blobs(&db, root).expect("held");
        let want: BTreeSet<String> = a
            .blobs()
            .into_iter()
            .chain(b.blobs())
            .map(|d| d.digest.to_string())
            .collect();
        assert_eq!(held, want);

        assert!(remove(&db, root, "docker.io/library/app:2").expect("remove"));
        assert!(!remove(&db, root, "docker.io/library/app:2").expect("remove again"));
        let held = held_blobs(&db, root).expect("held");
        assert!(!held.contains(&b.layers[0].digest.to_string()));
        assert!(held.contains(&a.layers[0].digest.to_string()));
        assert!(put(&db, root, "", &a).is_err());
    }
}
