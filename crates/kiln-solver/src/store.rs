//! Where results are cached: the [`CacheStore`] trait and an in-memory store.

use crate::key::CacheKey;
use crate::op::BoxError;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// A stored result: what [`CacheStore::lookup`] finds for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRecord {
    /// The store's id of the result.
    pub id: String,
    /// How many output values it holds.
    pub outputs: usize,
    /// When it was saved.
    pub created: SystemTime,
}

/// Why a cache store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The cache index database failed.
    #[error("cache index database error")]
    Database(#[source] redb::Error),
    /// A stored record cannot be read.
    #[error("cache record {id} is corrupt: {reason}")]
    Corrupt {
        /// The record's id (or key).
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other failure, from a store implemented outside this crate.
    #[error("cache store error")]
    Other(#[source] BoxError),
}

impl StoreError {
    /// Wraps any redb error (database, transaction, table, storage or commit).
    pub fn database(error: impl Into<redb::Error>) -> StoreError {
        StoreError::Database(error.into())
    }
}

/// A cache of results by cache key. Methods are blocking; the solver calls them on tokio's
/// blocking threads.
pub trait CacheStore<V>: Send + Sync {
    /// The result saved under `key`, if any.
    fn lookup(&self, key: &CacheKey) -> Result<Option<ResultRecord>, StoreError>;

    /// The values of a result found by [`CacheStore::lookup`], or `None` when they are gone
    /// (garbage-collected): the solver then treats the key as a miss.
    fn load(&self, record: &ResultRecord) -> Result<Option<Vec<V>>, StoreError>;

    /// Saves the result of a vertex (one value per output) under `key`, replacing any
    /// previous result for that key.
    fn save(&self, key: &CacheKey, outputs: &[V]) -> Result<ResultRecord, StoreError>;

    /// Records that the result under `key` was just used.
    fn touch(&self, key: &CacheKey) -> Result<(), StoreError>;
}

/// A cache store in memory, for tests and one-shot builds.
pub struct MemoryStore<V> {
    inner: Mutex<MemoryInner<V>>,
}

struct MemoryInner<V> {
    keys: HashMap<CacheKey, MemoryEntry>,
    values: HashMap<String, Vec<V>>,
    next_id: u64,
}

struct MemoryEntry {
    record: ResultRecord,
    last_used: SystemTime,
}

impl<V> Default for MemoryStore<V> {
    fn default() -> MemoryStore<V> {
        MemoryStore {
            inner: Mutex::new(MemoryInner {
                keys: HashMap::new(),
                values: HashMap::new(),
                next_id: 0,
            }),
        }
    }
}

impl<V> std::fmt::Debug for MemoryStore<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.len())
            .finish()
    }
}

impl<V> MemoryStore<V> {
    /// An empty store.
    pub fn new() -> MemoryStore<V> {
        MemoryStore::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemoryInner<V>>, StoreError> {
        self.inner.lock().map_err(|_| StoreError::Corrupt {
            id: "memory store".to_owned(),
            reason: "a thread panicked while holding its lock".to_owned(),
        })
    }

    /// How many keys have a result.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|inner| inner.keys.len()).unwrap_or(0)
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys that have a result, sorted.
    pub fn keys(&self) -> Vec<CacheKey> {
        let mut keys: Vec<CacheKey> = self
            .inner
            .lock()
            .map(|inner| inner.keys.keys().copied().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// When the result under `key` was last used (saved or loaded).
    pub fn last_used(&self, key: &CacheKey) -> Option<SystemTime> {
        self.inner
            .lock()
            .ok()?
            .keys
            .get(key)
            .map(|entry| entry.last_used)
    }

    /// Drops the values of the result under `key` but keeps the key, as a garbage collector
    /// that removed the stored data would. Returns whether there was such a result.
    pub fn forget_values(&self, key: &CacheKey) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        let Some(id) = inner.keys.get(key).map(|entry| entry.record.id.clone()) else {
            return false;
        };
        inner.values.remove(&id).is_some()
    }
}

impl<V: Clone + Send + Sync> CacheStore<V> for MemoryStore<V> {
    fn lookup(&self, key: &CacheKey) -> Result<Option<ResultRecord>, StoreError> {
        Ok(self.lock()?.keys.get(key).map(|entry| entry.record.clone()))
    }

    fn load(&self, record: &ResultRecord) -> Result<Option<Vec<V>>, StoreError> {
        Ok(self.lock()?.values.get(&record.id).cloned())
    }

    fn save(&self, key: &CacheKey, outputs: &[V]) -> Result<ResultRecord, StoreError> {
        let mut inner = self.lock()?;
        let now = SystemTime::now();
        let id = format!("{}-{}", key.hex(), inner.next_id);
        inner.next_id += 1;
        let record = ResultRecord {
            id: id.clone(),
            outputs: outputs.len(),
            created: now,
        };
        if let Some(old) = inner.keys.insert(
            *key,
            MemoryEntry {
                record: record.clone(),
                last_used: now,
            },
        ) {
            inner.values.remove(&old.record.id);
        }
        inner.values.insert(id, outputs.to_vec());
        Ok(record)
    }

    fn touch(&self, key: &CacheKey) -> Result<(), StoreError> {
        if let Some(entry) = self.lock()?.keys.get_mut(key) {
            entry.last_used = SystemTime::now();
        }
        Ok(())
    }
}
