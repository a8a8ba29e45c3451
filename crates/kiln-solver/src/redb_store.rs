//! A persistent cache index in a redb database.

use crate::key::CacheKey;
use crate::store::{CacheStore, ResultRecord, StoreError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Cache key (`sha256:...`) → id of its result.
const KEYS: TableDefinition<&str, &str> = TableDefinition::new("kiln.solver.v1.keys");
/// Result id → (cache key, created, last used, number of outputs); times in nanoseconds since
/// the Unix epoch.
const RESULTS: TableDefinition<&str, (&str, u64, u64, u64)> =
    TableDefinition::new("kiln.solver.v1.results");
/// (result id, output index) → the output value, encoded by the [`ResultCodec`].
const OUTPUTS: TableDefinition<(&str, u64), &str> = TableDefinition::new("kiln.solver.v1.outputs");

/// Turns result values into text and back, for [`RedbKeyIndex`]. For the build engine a value
/// is a handle to a committed snapshot, and its text is the snapshot's id.
pub trait ResultCodec<V>: Send + Sync {
    /// The text that stands for `value`.
    fn encode(&self, value: &V) -> String;

    /// The value `text` stands for, or `None` when it is gone (its snapshot was
    /// garbage-collected) or cannot be read: the cache entry then counts as a miss.
    fn decode(&self, text: &str) -> Option<V>;
}

/// One entry of the index, as listed by [`RedbKeyIndex::entries`] (for garbage collection
/// and `du`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The cache key.
    pub key: CacheKey,
    /// Its result.
    pub record: ResultRecord,
    /// When the result was last used.
    pub last_used: SystemTime,
    /// The encoded output values, in output order.
    pub outputs: Vec<String>,
}

/// A [`CacheStore`] that keeps the cache index (key → result → encoded output values) in
/// tables of a redb database shared with the rest of the engine. The values themselves live
/// elsewhere (snapshots); a [`ResultCodec`] maps them to and from text.
///
/// Every save is one write transaction committed with redb's default, immediate durability:
/// after a crash the index holds either the whole new entry or none of it.
pub struct RedbKeyIndex<V> {
    db: Arc<Database>,
    codec: Arc<dyn ResultCodec<V>>,
}

impl<V> std::fmt::Debug for RedbKeyIndex<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbKeyIndex").finish_non_exhaustive()
    }
}

fn nanos(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

fn time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn count(n: u64, id: &str) -> Result<usize, StoreError> {
    usize::try_from(n).map_err(|_| StoreError::Corrupt {
        id: id.to_owned(),
        reason: format!("output count {n} is too large"),
    })
}

fn index(i: usize) -> u64 {
    u64::try_from(i).unwrap_or(u64::MAX)
}

impl<V> RedbKeyIndex<V> {
    /// The index in `db`, creating its tables if they do not exist yet.
    pub fn new(
        db: Arc<Database>,
        codec: Arc<dyn ResultCodec<V>>,
    ) -> Result<RedbKeyIndex<V>, StoreError> {
        let txn = db.begin_write().map_err(StoreError::database)?;
        {
            txn.open_table(KEYS).map_err(StoreError::database)?;
            txn.open_table(RESULTS).map_err(StoreError::database)?;
            txn.open_table(OUTPUTS).map_err(StoreError::database)?;
        }
        txn.commit().map_err(StoreError::database)?;
        Ok(RedbKeyIndex { db, codec })
    }

    /// Every entry of the index, sorted by key.
    pub fn entries(&self) -> Result<Vec<IndexEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::database)?;
        let keys = txn.open_table(KEYS).map_err(StoreError::database)?;
        let results = txn.open_table(RESULTS).map_err(StoreError::database)?;
        let outputs = txn.open_table(OUTPUTS).map_err(StoreError::database)?;
        let mut entries = Vec::new();
        for row in keys.iter().map_err(StoreError::database)? {
            let (key_text, id) = row.map_err(StoreError::database)?;
            let key = CacheKey::parse(key_text.value()).map_err(|e| StoreError::Corrupt {
                id: id.value().to_owned(),
                reason: e.to_string(),
            })?;
            let id = id.value();
            let Some(result) = results.get(id).map_err(StoreError::database)? else {
                return Err(StoreError::Corrupt {
                    id: id.to_owned(),
                    reason: format!("key {key} points to a result that does not exist"),
                });
            };
            let (_, created, last_used, n) = result.value();
            let n = count(n, id)?;
            let mut values = Vec::with_capacity(n.min(64));
            for i in 0..n {
                match outputs.get((id, index(i))).map_err(StoreError::database)? {
                    Some(value) => values.push(value.value().to_owned()),
                    None => {
                        return Err(StoreError::Corrupt {
                            id: id.to_owned(),
                            reason: format!("output {i} is missing"),
                        });
                    }
                }
            }
            entries.push(IndexEntry {
                key,
                record: ResultRecord {
                    id: id.to_owned(),
                    outputs: n,
                    created: time(created),
                },
                last_used: time(last_used),
                outputs: values,
            });
        }
        Ok(entries)
    }

    /// Removes the entry for `key`; returns whether there was one.
    pub fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(StoreError::database)?;
        let removed = {
            let mut keys = txn.open_table(KEYS).map_err(StoreError::database)?;
            let mut results = txn.open_table(RESULTS).map_err(StoreError::database)?;
            let mut outputs = txn.open_table(OUTPUTS).map_err(StoreError::database)?;
            let old = keys
                .remove(key.to_string().as_str())
                .map_err(StoreError::database)?
                .map(|id| id.value().to_owned());
            if let Some(id) = &old {
                remove_result(&mut results, &mut outputs, id)?;
            }
            old.is_some()
        };
        txn.commit().map_err(StoreError::database)?;
        Ok(removed)
    }
}

/// Deletes a result row and its output rows.
fn remove_result(
    results: &mut redb::Table<'_, &str, (&str, u64, u64, u64)>,
    outputs: &mut redb::Table<'_, (&str, u64), &str>,
    id: &str,
) -> Result<(), StoreError> {
    let n = results
        .remove(id)
        .map_err(StoreError::database)?
        .map(|row| row.value().3);
    if let Some(n) = n {
        for i in 0..n {
            outputs.remove((id, i)).map_err(StoreError::database)?;
        }
    }
    Ok(())
}

impl<V: Send + Sync> CacheStore<V> for RedbKeyIndex<V> {
    fn lookup(&self, key: &CacheKey) -> Result<Option<ResultRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::database)?;
        let keys = txn.open_table(KEYS).map_err(StoreError::database)?;
        let Some(id) = keys
            .get(key.to_string().as_str())
            .map_err(StoreError::database)?
        else {
            return Ok(None);
        };
        let id = id.value().to_owned();
        let results = txn.open_table(RESULTS).map_err(StoreError::database)?;
        let Some(row) = results.get(id.as_str()).map_err(StoreError::database)? else {
            // A key without its result cannot be written by this index, but a miss is the
            // right answer for it anyway: the next save replaces it.
            return Ok(None);
        };
        let (_, created, _, n) = row.value();
        Ok(Some(ResultRecord {
            outputs: count(n, &id)?,
            id,
            created: time(created),
        }))
    }

    fn load(&self, record: &ResultRecord) -> Result<Option<Vec<V>>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::database)?;
        let results = txn.open_table(RESULTS).map_err(StoreError::database)?;
        let Some(row) = results
            .get(record.id.as_str())
            .map_err(StoreError::database)?
        else {
            return Ok(None);
        };
        let n = count(row.value().3, &record.id)?;
        let outputs = txn.open_table(OUTPUTS).map_err(StoreError::database)?;
        let mut values = Vec::with_capacity(n.min(64));
        for i in 0..n {
            let Some(text) = outputs
                .get((record.id.as_str(), index(i)))
                .map_err(StoreError::database)?
            else {
                return Ok(None);
            };
            let Some(value) = self.codec.decode(text.value()) else {
                return Ok(None);
            };
            values.push(value);
        }
        Ok(Some(values))
    }

    fn save(&self, key: &CacheKey, values: &[V]) -> Result<ResultRecord, StoreError> {
        let encoded: Vec<String> = values.iter().map(|v| self.codec.encode(v)).collect();
        let created = SystemTime::now();
        let created_nanos = nanos(created);
        let id = format!("{}.{created_nanos}", key.hex());
        let key_text = key.to_string();
        let txn = self.db.begin_write().map_err(StoreError::database)?;
        {
            let mut keys = txn.open_table(KEYS).map_err(StoreError::database)?;
            let mut results = txn.open_table(RESULTS).map_err(StoreError::database)?;
            let mut outputs = txn.open_table(OUTPUTS).map_err(StoreError::database)?;
            let old = keys
                .insert(key_text.as_str(), id.as_str())
                .map_err(StoreError::database)?
                .map(|old| old.value().to_owned());
            if let Some(old) = &old {
                remove_result(&mut results, &mut outputs, old)?;
            }
            results
                .insert(
                    id.as_str(),
                    (
                        key_text.as_str(),
                        created_nanos,
                        created_nanos,
                        index(encoded.len()),
                    ),
                )
                .map_err(StoreError::database)?;
            for (i, text) in encoded.iter().enumerate() {
                outputs
                    .insert((id.as_str(), index(i)), text.as_str())
                    .map_err(StoreError::database)?;
            }
        }
        txn.commit().map_err(StoreError::database)?;
        Ok(ResultRecord {
            id,
            outputs: encoded.len(),
            created,
        })
    }

    fn touch(&self, key: &CacheKey) -> Result<(), StoreError> {
        // A last-used time is a hint for garbage collection: it is written without waiting for
        // the disk (a crash may lose it, never the database's consistency), so that a cached
        // build does not pay one disk flush per vertex.
        let mut txn = self.db.begin_write().map_err(StoreError::database)?;
        // (It can only fail with persistent savepoints, which kiln never makes; the transaction
        // then stays durable.)
        let _ = txn.set_durability(redb::Durability::None);
        {
            let keys = txn.open_table(KEYS).map_err(StoreError::database)?;
            let id = keys
                .get(key.to_string().as_str())
                .map_err(StoreError::database)?
                .map(|id| id.value().to_owned());
            let mut results = txn.open_table(RESULTS).map_err(StoreError::database)?;
            if let Some(id) = id {
                let row = results
                    .get(id.as_str())
                    .map_err(StoreError::database)?
                    .map(|row| {
                        let (key, created, _, n) = row.value();
                        (key.to_owned(), created, n)
                    });
                if let Some((key, created, n)) = row {
                    results
                        .insert(
                            id.as_str(),
                            (key.as_str(), created, nanos(SystemTime::now()), n),
                        )
                        .map_err(StoreError::database)?;
                }
            }
        }
        txn.commit().map_err(StoreError::database)?;
        Ok(())
    }
}
