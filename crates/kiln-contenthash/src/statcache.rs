//! The stat cache: the sha256 of a file's content, remembered with the file's `lstat`
//! identity so that an unchanged file is never read again.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};

use crate::encode::Sum;
use crate::error::{Error, db_err};
use crate::meta::StatKey;

/// Absolute file path → encoded [`Record`].
const FILES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kiln.contenthash.v1.files");

/// The default racy margin: the coarsest timestamp granularity of the file systems a
/// context may live on (FAT keeps modification times in 2 second steps).
const DEFAULT_RACY_MARGIN: Duration = Duration::from_secs(2);

/// Remembers the content digest of files, keyed by path and checked against the file's
/// device, inode, size, modification and change times (nanoseconds) and mode: when all of
/// them are unchanged, the file is not read again.
///
/// **The racy case.** Timestamps have a granularity (a few milliseconds on Linux, whole
/// seconds on some file systems), so a file written twice within one tick can keep its
/// times. A record is therefore only trusted when the file's change time lies more than the
/// *racy margin* (2 s by default) before the moment the record was made; a younger file is
/// read again (and re-recorded, so that the next run can trust it). This is git's
/// "racily clean" rule. The change time cannot be set by users (unlike the modification
/// time, which `touch -d` sets), so restoring an old mtime after editing a file does not
/// fool the cache: the change time moves.
///
/// Two variants: [`StatCache::persistent`] keeps the records in a redb database (table
/// `kiln.contenthash.v1.files`), shared with other stores; [`StatCache::in_memory`] keeps them
/// in memory. Clones share the same records.
#[derive(Debug, Clone)]
pub struct StatCache {
    store: Arc<Store>,
    racy_margin_ns: i64,
}

#[derive(Debug)]
enum Store {
    Memory(Mutex<HashMap<PathBuf, Record>>),
    Redb(Arc<Database>),
}

/// What is remembered about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) key: StatKey,
    /// When the record was made (wall clock, nanoseconds since the epoch), taken before the
    /// file was examined.
    pub(crate) recorded_ns: i64,
    pub(crate) content: Sum,
}

/// The encoded length of a [`Record`].
const RECORD_LEN: usize = 1 + 8 * 6 + 4 + 32;
/// The format byte that starts an encoded [`Record`].
const RECORD_FORMAT: u8 = 1;

impl Record {
    fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        let mut w = Writer {
            buf: &mut out,
            at: 0,
        };
        w.put(&[RECORD_FORMAT]);
        w.put(&self.key.dev.to_le_bytes());
        w.put(&self.key.ino.to_le_bytes());
        w.put(&self.key.size.to_le_bytes());
        w.put(&self.key.mtime_ns.to_le_bytes());
        w.put(&self.key.ctime_ns.to_le_bytes());
        w.put(&self.recorded_ns.to_le_bytes());
        w.put(&self.key.mode.to_le_bytes());
        w.put(&self.content);
        out
    }

    /// Decodes a record; `None` for anything that is not one (a record of another format is
    /// simply not used).
    fn decode(bytes: &[u8]) -> Option<Record> {
        if bytes.len() != RECORD_LEN || bytes.first() != Some(&RECORD_FORMAT) {
            return None;
        }
        let mut r = Reader { buf: bytes, at: 1 };
        let dev = u64::from_le_bytes(r.take()?);
        let ino = u64::from_le_bytes(r.take()?);
        let size = u64::from_le_bytes(r.take()?);
        let mtime_ns = i64::from_le_bytes(r.take()?);
        let ctime_ns = i64::from_le_bytes(r.take()?);
        let recorded_ns = i64::from_le_bytes(r.take()?);
        let mode = u32::from_le_bytes(r.take()?);
        let content = r.take()?;
        Some(Record {
            key: StatKey {
                dev,
                ino,
                size,
                mtime_ns,
                ctime_ns,
                mode,
            },
            recorded_ns,
            content,
        })
    }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(slot) = self.buf.get_mut(self.at..self.at + bytes.len()) {
            slot.copy_from_slice(bytes);
        }
        self.at += bytes.len();
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let out = self.buf.get(self.at..self.at + N)?.try_into().ok()?;
        self.at += N;
        Some(out)
    }
}

impl StatCache {
    /// A cache that lives in memory only (for tests, and for one-off hashing).
    pub fn in_memory() -> StatCache {
        StatCache {
            store: Arc::new(Store::Memory(Mutex::new(HashMap::new()))),
            racy_margin_ns: margin_ns(DEFAULT_RACY_MARGIN),
        }
    }

    /// A cache kept in `db` (table `kiln.contenthash.v1.files`, created when missing). The
    /// database may hold other stores' tables too.
    pub fn persistent(db: Arc<Database>) -> Result<StatCache, Error> {
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(FILES).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(StatCache {
            store: Arc::new(Store::Redb(db)),
            racy_margin_ns: margin_ns(DEFAULT_RACY_MARGIN),
        })
    }

    /// Sets the racy margin (2 s by default): a file whose change time is less than this
    /// before a record was made is read again. Only lower it for file systems known to keep
    /// fine-grained timestamps (tests on ext4 or tmpfs).
    pub fn with_racy_margin(mut self, margin: Duration) -> StatCache {
        self.racy_margin_ns = margin_ns(margin);
        self
    }

    /// The number of files remembered.
    pub fn len(&self) -> Result<u64, Error> {
        match &*self.store {
            Store::Memory(map) => Ok(lock(map).len() as u64),
            Store::Redb(db) => {
                let txn = db.begin_read().map_err(db_err)?;
                let table = txn.open_table(FILES).map_err(db_err)?;
                table.len().map_err(db_err)
            }
        }
    }

    /// Whether no file is remembered.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Forgets every file at or below `dir` (an absolute path, as hashed: for example a
    /// snapshot's directory that is being removed). Returns how many records went.
    pub fn forget_under(&self, dir: &Path) -> Result<u64, Error> {
        let under = |path: &Path| path.starts_with(dir);
        match &*self.store {
            Store::Memory(map) => {
                let mut map = lock(map);
                let before = map.len();
                map.retain(|path, _| !under(path));
                Ok((before - map.len()) as u64)
            }
            Store::Redb(db) => {
                let txn = db.begin_write().map_err(db_err)?;
                let mut removed = 0u64;
                {
                    let mut table = txn.open_table(FILES).map_err(db_err)?;
                    // Everything at or below `dir` sorts between `dir` and `dir` + "0" ('0'
                    // follows '/'); the callback still checks whole path elements.
                    let start = dir.as_os_str().as_bytes();
                    let end = [start, b"0"].concat();
                    table
                        .retain_in::<&[u8], _>(start..end.as_slice(), |key, _| {
                            let path = Path::new(std::ffi::OsStr::from_bytes(key));
                            if under(path) {
                                removed += 1;
                                false
                            } else {
                                true
                            }
                        })
                        .map_err(db_err)?;
                }
                txn.commit().map_err(db_err)?;
                Ok(removed)
            }
        }
    }

    /// Starts a batch of lookups (one consistent read of the database).
    pub(crate) fn reader(&self) -> Result<CacheReader<'_>, Error> {
        Ok(match &*self.store {
            Store::Memory(map) => CacheReader::Memory(map),
            Store::Redb(db) => {
                let txn = db.begin_read().map_err(db_err)?;
                CacheReader::Redb(txn.open_table(FILES).map_err(db_err)?)
            }
        })
    }

    /// The content digest of `path` if a trustworthy record matches `key`.
    pub(crate) fn trusted(&self, record: Option<Record>, key: &StatKey) -> Option<Sum> {
        let record = record?;
        let racy = record.key.ctime_ns >= record.recorded_ns.saturating_sub(self.racy_margin_ns);
        (record.key == *key && !racy).then_some(record.content)
    }

    /// Stores new records, all in one transaction.
    pub(crate) fn store(&self, records: Vec<(PathBuf, Record)>) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        match &*self.store {
            Store::Memory(map) => {
                lock(map).extend(records);
                Ok(())
            }
            Store::Redb(db) => {
                // The stat cache only saves work: its records are written without waiting for
                // the disk (a crash loses them, the next build reads the files again).
                let mut txn = db.begin_write().map_err(db_err)?;
                // (It can only fail with persistent savepoints, which kiln never makes; the
                // transaction then stays durable.)
                let _ = txn.set_durability(redb::Durability::None);
                {
                    let mut table = txn.open_table(FILES).map_err(db_err)?;
                    for (path, record) in records {
                        table
                            .insert(path.as_os_str().as_bytes(), record.encode().as_slice())
                            .map_err(db_err)?;
                    }
                }
                txn.commit().map_err(db_err)
            }
        }
    }
}

/// A batch of lookups.
pub(crate) enum CacheReader<'a> {
    Memory(&'a Mutex<HashMap<PathBuf, Record>>),
    Redb(redb::ReadOnlyTable<&'static [u8], &'static [u8]>),
}

impl CacheReader<'_> {
    /// The record of `path`, if any (and readable).
    pub(crate) fn get(&self, path: &Path) -> Result<Option<Record>, Error> {
        match self {
            CacheReader::Memory(map) => Ok(lock(map).get(path).copied()),
            CacheReader::Redb(table) => {
                let value = table.get(path.as_os_str().as_bytes()).map_err(db_err)?;
                Ok(value.and_then(|v| Record::decode(v.value())))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere cannot leave the map half-updated in a harmful way: every update
    // is a plain insert or removal.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn margin_ns(margin: Duration) -> i64 {
    i64::try_from(margin.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let record = Record {
            key: StatKey {
                dev: 1,
                ino: u64::MAX,
                size: 8192,
                mtime_ns: -5,
                ctime_ns: 1_700_000_000_123_456_789,
                mode: 0o100644,
            },
            recorded_ns: 42,
            content: [7; 32],
        };
        assert_eq!(Record::decode(&record.encode()), Some(record));
        assert_eq!(Record::decode(&[2; RECORD_LEN]), None);
        assert_eq!(Record::decode(&[1; 3]), None);
    }
}
