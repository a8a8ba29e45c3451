//! Content checksums of committed snapshots, remembered across builds.
//!
//! A `COPY` is keyed by the content of what it copies (BuildKit's content-based cache keys),
//! so even a fully cached rebuild must know the checksum of each copy's sources in its input
//! snapshot. Committed snapshots never change and their names are never reused, so such a
//! checksum, once computed, holds for ever: this memo keeps it in the state's database and a
//! rebuild reads one row instead of mounting the snapshot and reading every file under the
//! source (160 MB for a large context). BuildKit keeps its content-hash cache per ref in its
//! metadata store for the same reason.
//!
//! Rows are written without waiting for the disk: a crash only loses work (the next build
//! computes the checksum again). Rows of removed snapshots are dropped when a build opens the
//! state ([`ChecksumMemo::retain`]).

use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::{Error, Result};

/// `snapshot name \0 what was summed` → checksum.
const CHECKSUMS: TableDefinition<&[u8], &str> = TableDefinition::new("kiln.worker.v1.checksums");

/// The remembered checksums of committed snapshots.
pub(crate) struct ChecksumMemo {
    db: Arc<redb::Database>,
}

fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("checksum memo: {e}"))
}

fn row_key(snapshot: &str, material: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(snapshot.len() + 1 + material.len());
    key.extend_from_slice(snapshot.as_bytes());
    key.push(0);
    key.extend_from_slice(material);
    key
}

impl ChecksumMemo {
    /// The memo kept in `db` (its table is created on first write).
    pub(crate) fn new(db: Arc<redb::Database>) -> ChecksumMemo {
        ChecksumMemo { db }
    }

    /// The checksum remembered for `material` (an encoding of what was summed and how) in the
    /// committed snapshot `snapshot`.
    pub(crate) fn get(&self, snapshot: &str, material: &[u8]) -> Result<Option<String>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = match txn.open_table(CHECKSUMS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(e)),
        };
        let found = table
            .get(row_key(snapshot, material).as_slice())
            .map_err(db_err)?;
        Ok(found.map(|v| v.value().to_string()))
    }

    /// Remembers `checksum` for `material` in `snapshot`.
    pub(crate) fn put(&self, snapshot: &str, material: &[u8], checksum: &str) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(db_err)?;
        // Only saves work: a lost row is computed again (see the module doc).
        let _ = txn.set_durability(redb::Durability::None);
        {
            let mut table = txn.open_table(CHECKSUMS).map_err(db_err)?;
            table
                .insert(row_key(snapshot, material).as_slice(), checksum)
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Drops the rows of snapshots for which `exists` is false; returns how many.
    pub(crate) fn retain(&self, exists: impl Fn(&str) -> bool) -> Result<usize> {
        let stale: Vec<Vec<u8>> = {
            let txn = self.db.begin_read().map_err(db_err)?;
            let table = match txn.open_table(CHECKSUMS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
                Err(e) => return Err(db_err(e)),
            };
            let mut stale = Vec::new();
            for row in table.iter().map_err(db_err)? {
                let (key, _) = row.map_err(db_err)?;
                let key = key.value();
                let name = key.split(|b| *b == 0).next().unwrap_or_default();
                if !std::str::from_utf8(name).is_ok_and(&exists) {
                    stale.push(key.to_vec());
                }
            }
            stale
        };
        if stale.is_empty() {
            return Ok(0);
        }
        let mut txn = self.db.begin_write().map_err(db_err)?;
        let _ = txn.set_durability(redb::Durability::None);
        {
            let mut table = txn.open_table(CHECKSUMS).map_err(db_err)?;
            for key in &stale {
                table.remove(key.as_slice()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(stale.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memo() -> (tempfile::TempDir, ChecksumMemo) {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("m.redb")).unwrap();
        (dir, ChecksumMemo::new(Arc::new(db)))
    }

    #[test]
    fn remembers_per_snapshot_and_material() {
        let (_d, m) = memo();
        assert_eq!(m.get("a", b"/src").unwrap(), None);
        m.put("a", b"/src", "sha256:1").unwrap();
        m.put("ab", b"/src", "sha256:2").unwrap();
        m.put("a", b"/other", "sha256:3").unwrap();
        assert_eq!(m.get("a", b"/src").unwrap().as_deref(), Some("sha256:1"));
        assert_eq!(m.get("ab", b"/src").unwrap().as_deref(), Some("sha256:2"));
        assert_eq!(m.get("a", b"/other").unwrap().as_deref(), Some("sha256:3"));
        assert_eq!(m.get("b", b"/src").unwrap(), None);
    }

    #[test]
    fn retain_drops_rows_of_removed_snapshots() {
        let (_d, m) = memo();
        assert_eq!(m.retain(|_| false).unwrap(), 0);
        m.put("keep", b"x", "sha256:1").unwrap();
        m.put("gone", b"x", "sha256:2").unwrap();
        m.put("gone", b"y", "sha256:3").unwrap();
        assert_eq!(m.retain(|s| s == "keep").unwrap(), 2);
        assert_eq!(m.get("keep", b"x").unwrap().as_deref(), Some("sha256:1"));
        assert_eq!(m.get("gone", b"x").unwrap(), None);
    }
}
