//! The snapshot metadata in redb: one record per snapshot, a child index, a few settings.
//!
//! Tables (all prefixed `kiln.snapshot.v1.`, so that the database can be shared with other
//! stores):
//! - `snapshots`: key or name → the JSON of a [`Record`].
//! - `children`: `<parent name>\0<child key>` → nothing; answers "has this snapshot
//!   children?" without a scan.
//! - `settings`: `next_id` (the next directory id) and `driver` (which driver made the
//!   snapshots).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadableTable, TableDefinition};

use crate::error::{Error, Result, db_err};
use crate::{Info, Kind};

/// Snapshot records by key (active snapshots and views) or name (committed snapshots).
pub(crate) const SNAPSHOTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("kiln.snapshot.v1.snapshots");
/// `<parent>\0<child>` for every snapshot that has a parent.
pub(crate) const CHILDREN: TableDefinition<&str, ()> =
    TableDefinition::new("kiln.snapshot.v1.children");
/// Counters and settings.
pub(crate) const SETTINGS: TableDefinition<&str, u64> =
    TableDefinition::new("kiln.snapshot.v1.settings");

/// The `settings` key of the next directory id.
pub(crate) const NEXT_ID: &str = "next_id";
/// The `settings` key of the driver that made the snapshots (1 overlay, 2 copy).
pub(crate) const DRIVER: &str = "driver";

/// The boot (first 64 bits of the kernel's boot id) in which the overlay check last passed.
pub(crate) const OVERLAY_CHECKED_BOOT: &str = "overlay_checked_boot";

/// The device of the file system on which the overlay check last passed.
pub(crate) const OVERLAY_CHECKED_DEV: &str = "overlay_checked_dev";

/// What is stored about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Record {
    /// The directory of the snapshot: `<root>/snapshots/<id>`.
    pub(crate) id: u64,
    pub(crate) kind: Kind,
    pub(crate) parent: Option<String>,
    /// Nanoseconds since the Unix epoch.
    pub(crate) created: u64,
    pub(crate) updated: u64,
    pub(crate) labels: BTreeMap<String, String>,
    /// The disk usage of the snapshot's own directory, measured when it was committed.
    #[serde(default)]
    pub(crate) size: u64,
    /// For a committed snapshot of the overlay driver whose parent chain was flattened: the
    /// id of the directory holding the whole chain, this snapshot included, merged into one
    /// tree. Descendants use it instead of the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) flat: Option<u64>,
}

impl Record {
    pub(crate) fn info(&self, name: &str) -> Info {
        Info {
            name: name.to_owned(),
            kind: self.kind,
            parent: self.parent.clone(),
            created: from_nanos(self.created),
            updated: from_nanos(self.updated),
            labels: self.labels.clone(),
        }
    }
}

/// The current time in nanoseconds since the Unix epoch.
pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn from_nanos(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// The key of the child index entry of `child` under `parent`.
pub(crate) fn child_key(parent: &str, child: &str) -> String {
    format!("{parent}\0{child}")
}

/// Reads the record of `key` from any table handle.
pub(crate) fn get<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    key: &str,
) -> Result<Option<Record>> {
    let Some(value) = table.get(key).map_err(db_err)? else {
        return Ok(None);
    };
    decode(key, value.value()).map(Some)
}

/// Decodes a record.
pub(crate) fn decode(key: &str, bytes: &[u8]) -> Result<Record> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// Encodes a record.
pub(crate) fn encode(key: &str, record: &Record) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| Error::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// The children of `parent` in the child index.
pub(crate) fn children<T: ReadableTable<&'static str, ()>>(
    table: &T,
    parent: &str,
) -> Result<Vec<String>> {
    let start = format!("{parent}\0");
    let end = format!("{parent}\u{1}");
    let mut children = Vec::new();
    for entry in table.range(start.as_str()..end.as_str()).map_err(db_err)? {
        let (key, ()) = entry.map_err(db_err).map(|(k, v)| (k, v.value()))?;
        if let Some(child) = key.value().strip_prefix(start.as_str()) {
            children.push(child.to_owned());
        }
    }
    Ok(children)
}
