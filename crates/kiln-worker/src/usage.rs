//! Disk usage, pruning and garbage collection of the build cache, as BuildKit's cache manager
//! does them (`DiskUsage`, `Prune`, the daemon's GC policy).
//!
//! # Records
//!
//! The state directory holds three kinds of things, and [`Storage::disk_usage`] gives one
//! [`UsageRecord`] for each of them:
//!
//! - a committed snapshot: the result of an op (or one layer of a pulled image). Its size is its
//!   own disk usage (for the overlay driver its changes against its parent) plus the layer blob
//!   it was unpacked from when no other snapshot was unpacked from the same blob. Its parent is
//!   the record of its parent snapshot. Its last use is the latest use (the solver's `touch`) of
//!   any cache entry holding it, directly or as an ancestor, and its usage count the number of
//!   such entries. It is *shared* when several cache entries hold it;
//! - a content blob (a pulled layer) that no snapshot or several snapshots were unpacked from;
//! - a cache mount directory (`RUN --mount=type=cache`), mutable, of type `exec.cachemount`:
//!   one record per instance (a cache used `sharing=private` concurrently has several), in use
//!   while a step holds it.
//!
//! The description of a snapshot record is the name of the vertex that produced it, recorded
//! when the op ran in the redb table `kiln.worker.v1.records` (snapshot name → description); the
//! record types are BuildKit's (`regular`, `source.local`, `exec.cachemount`; kiln has no
//! `internal` or `frontend` records yet).
//!
//! # Pruning
//!
//! [`Storage::prune`] mirrors BuildKit's `Prune`: it removes, oldest last use first, the records
//! that match the filter, were not used within the keep duration and that nothing else needs
//! (a snapshot that is the parent of another stays until its children are gone; the loop runs
//! again after each round, as BuildKit's does), until the total size is within the limit
//! computed from the reserved space, the maximum used space and the minimum free space (BuildKit's
//! `calculateKeepBytes`; no limit at all removes every candidate). Without `all`, records of
//! type `internal` and `frontend` stay (BuildKit also keeps the records it shares with an image
//! store outside BuildKit; kiln has no such store, so its *shared* records are prunable).
//! Removing a snapshot record removes the cache entries whose outputs are that snapshot first,
//! then the snapshot, then the blob it was unpacked from when no remaining snapshot was
//! unpacked from it.
//!
//! The blobs of named images ([`crate::images`]) are never removed: their records are not
//! prunable and a snapshot unpacked from one leaves it when it goes.
//!
//! Records in use are never removed: the snapshots a caller says it holds (the result of the
//! running build) and their ancestors, and the parents of every snapshot that is not committed
//! (an op in progress).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kiln_oci::Digest;
use kiln_snapshot::{Kind, Snapshotter};
use kiln_solver::{BoxError, BoxFuture, CacheKeyInput, ContentDigest, ExecCtx, Op, Selector};
use kiln_solver::{CacheKey, RedbKeyIndex};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::{Error, Result};
use crate::refs::Ref;

/// Snapshot name → description (the name of the vertex that produced it).
const RECORDS: TableDefinition<&str, &str> = TableDefinition::new("kiln.worker.v1.records");

/// The snapshot label naming the blob a layer snapshot was unpacked from.
pub(crate) const BLOB_LABEL: &str = "kiln.layer.blob";

/// BuildKit's record types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    /// Results of ops and image layers.
    Regular,
    /// Copies of local directories (the build context).
    LocalSource,
    /// Git checkouts.
    GitCheckout,
    /// Cache mounts.
    CacheMount,
    /// Data the builder keeps for itself.
    Internal,
    /// Frontend images.
    Frontend,
}

impl RecordType {
    /// The name BuildKit gives the type (`regular`, `source.local`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Regular => "regular",
            RecordType::LocalSource => "source.local",
            RecordType::GitCheckout => "source.git.checkout",
            RecordType::CacheMount => "exec.cachemount",
            RecordType::Internal => "internal",
            RecordType::Frontend => "frontend",
        }
    }
}

/// One record of the build cache, as `buildx du` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// A stable id (25 hex digits).
    pub id: String,
    /// The ids of the parent records.
    pub parents: Vec<String>,
    /// When it was created.
    pub created: SystemTime,
    /// When it was last used.
    pub last_used: Option<SystemTime>,
    /// How many cache entries hold it.
    pub usage_count: u64,
    /// Its size in bytes (see the module documentation).
    pub size: u64,
    /// Whether several cache entries hold it.
    pub shared: bool,
    /// Whether a running build holds it (then it is not reclaimable).
    pub in_use: bool,
    /// Whether it can still change (cache mounts).
    pub mutable: bool,
    /// What it is.
    pub description: String,
    /// Its type.
    pub record_type: RecordType,
}

/// A comparison of a filter.
#[derive(Debug, Clone)]
enum Cond {
    Eq(String, String),
    Ne(String, String),
    Matches(String, regex::Regex),
    Present(String),
    OneOf(String, Vec<String>),
}

/// A filter on records in BuildKit's syntax: `key==value`, `key!=value`, `key~=regexp` or a bare
/// boolean key, separated by commas, all of which must hold. Keys: `id`, `parents` (the parent
/// ids joined by `;`), `description`, `type`, and the booleans `inuse`, `mutable`, `immutable`,
/// `shared`, `private`, `reclaimable`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    conds: Vec<Cond>,
}

impl Filter {
    /// The filter that matches every record.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// Parses a filter expression; an empty string matches everything.
    pub fn parse(expr: &str) -> Result<Filter> {
        let mut conds = Vec::new();
        for part in expr.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let cond = if let Some((k, v)) = part.split_once("==") {
                Cond::Eq(check_key(k)?, v.to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Cond::Ne(check_key(k)?, v.to_string())
            } else if let Some((k, v)) = part.split_once("~=") {
                let re = regex::Regex::new(v)
                    .map_err(|e| Error::Invalid(format!("invalid filter {part:?}: {e}")))?;
                Cond::Matches(check_key(k)?, re)
            } else if let Some((k, v)) = part.split_once('=') {
                Cond::Eq(check_key(k)?, v.to_string())
            } else {
                Cond::Present(check_key(part)?)
            };
            conds.push(cond);
        }
        Ok(Filter { conds })
    }

    /// Whether the filter matches nothing but everything (no condition).
    pub fn is_empty(&self) -> bool {
        self.conds.is_empty()
    }

    /// Whether `record` passes the filter.
    pub fn matches(&self, record: &UsageRecord) -> bool {
        self.conds.iter().all(|c| match c {
            Cond::Eq(k, v) => field(record, k) == *v,
            Cond::Ne(k, v) => field(record, k) != *v,
            Cond::Matches(k, re) => re.is_match(&field(record, k)),
            Cond::Present(k) => field(record, k) == "true",
            Cond::OneOf(k, values) => values.contains(&field(record, k)),
        })
    }
}

const KEYS: &[&str] = &[
    "id",
    "parents",
    "parent",
    "description",
    "type",
    "inuse",
    "mutable",
    "immutable",
    "shared",
    "private",
    "reclaimable",
];

fn check_key(key: &str) -> Result<String> {
    let key = key.trim();
    if KEYS.contains(&key) {
        Ok(key.to_string())
    } else {
        Err(Error::Invalid(format!(
            "invalid filter key {key:?} (expected one of {})",
            KEYS.join(", ")
        )))
    }
}

fn field(r: &UsageRecord, key: &str) -> String {
    match key {
        "id" => r.id.clone(),
        "parents" | "parent" => r.parents.join(";"),
        "description" => r.description.clone(),
        "type" => r.record_type.as_str().to_string(),
        "inuse" => r.in_use.to_string(),
        "reclaimable" => (!r.in_use).to_string(),
        "mutable" => r.mutable.to_string(),
        "immutable" => (!r.mutable).to_string(),
        "shared" => r.shared.to_string(),
        "private" => (!r.shared).to_string(),
        _ => String::new(),
    }
}

/// What [`Storage::prune`] removes, as BuildKit's `PruneInfo`.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Also remove `internal` and `frontend` records.
    pub all: bool,
    /// Only records matching this filter.
    pub filter: Filter,
    /// Keep the records used within this duration (`--filter until=24h`).
    pub keep_duration: Option<Duration>,
    /// Never take the cache below this many bytes (`--reserved-space`, `--keep-storage`).
    pub reserved_space: u64,
    /// Remove records until the cache is at most this many bytes (`--max-used-space`).
    pub max_used_space: u64,
    /// Remove records until the disk has this many bytes free (`--min-free-space`).
    pub min_free_space: u64,
}

/// A disk space limit: bytes, or a percentage of the disk holding the state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskSpace {
    /// A number of bytes.
    Bytes(u64),
    /// A percentage of the disk's size.
    Percent(u64),
}

impl DiskSpace {
    /// Parses `10%` or a size as `docker` takes it (`512MB`, `2g`, `1.5GiB`: binary units, as
    /// go-units' `RAMInBytes`).
    pub fn parse(text: &str) -> Result<DiskSpace> {
        let t = text.trim();
        if let Some(p) = t.strip_suffix('%') {
            return p
                .trim()
                .parse()
                .map(DiskSpace::Percent)
                .map_err(|_| Error::Invalid(format!("invalid disk space {text:?}")));
        }
        parse_size(t).map(DiskSpace::Bytes)
    }

    /// The number of bytes on a disk of `disk_total` bytes, rounded up to whole gigabytes as
    /// BuildKit does (2 GB when the disk size is unknown).
    pub fn bytes(self, disk_total: u64) -> u64 {
        match self {
            DiskSpace::Bytes(b) => b,
            DiskSpace::Percent(0) => 0,
            DiskSpace::Percent(_) if disk_total == 0 => 2_000_000_000,
            DiskSpace::Percent(p) => {
                let avail = u128::from(disk_total) * u128::from(p) / 100;
                let rounded = (avail / (1 << 30) + 1) * 1_000_000_000;
                u64::try_from(rounded).unwrap_or(u64::MAX)
            }
        }
    }
}

/// Parses a size with binary units (`10MB` is 10 MiB), as go-units' `RAMInBytes` (which
/// `docker` uses for `--keep-storage`).
pub fn parse_size(text: &str) -> Result<u64> {
    let invalid = || Error::Invalid(format!("invalid size: {text:?}"));
    let t = text.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let value: f64 = num.parse().map_err(|_| invalid())?;
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(invalid()),
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as u64)
}

/// The limits of the garbage collection of the embedded builder. `None` everywhere gives
/// BuildKit's defaults (see [`default_gc_policy`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcConfig {
    /// The space the cache may always keep.
    pub reserved_space: Option<DiskSpace>,
    /// The most space the cache may use.
    pub max_used_space: Option<DiskSpace>,
    /// The free space to leave on the disk.
    pub min_free_space: Option<DiskSpace>,
}

/// BuildKit's default GC policy for Linux (`DefaultGCPolicy` of buildkitd), in order:
///
/// 1. local sources, cache mounts and git checkouts not used for 48 hours, while the cache uses
///    more than 512 MB;
/// 2. anything not used for 60 days, down to the limits;
/// 3. anything but internal and frontend records, down to the limits;
/// 4. everything, down to the limits.
///
/// The limits are the configured ones; when none is configured, BuildKit's defaults: reserved
/// space 10 % of the disk (at most 10 GB), maximum used space 80 % of the disk (at most
/// 100 GB), minimum free space 20 % of the disk. `disk_total` is the size of the disk holding
/// the state directory.
pub fn default_gc_policy(cfg: &GcConfig, disk_total: u64) -> Vec<PruneOptions> {
    let bytes = |d: Option<DiskSpace>| d.map(|d| d.bytes(disk_total)).unwrap_or(0);
    let (reserved, max_used, min_free) = if *cfg == GcConfig::default() {
        (
            DiskSpace::Percent(10).bytes(disk_total).min(10_000_000_000),
            DiskSpace::Percent(80)
                .bytes(disk_total)
                .min(100_000_000_000),
            DiskSpace::Percent(20).bytes(disk_total),
        )
    } else {
        (
            bytes(cfg.reserved_space),
            bytes(cfg.max_used_space),
            bytes(cfg.min_free_space),
        )
    };
    let limits = PruneOptions {
        reserved_space: reserved,
        max_used_space: max_used,
        min_free_space: min_free,
        ..PruneOptions::default()
    };
    // BuildKit writes this filter as `type==source.local,type==exec.cachemount,...`, meant as
    // any of the types.
    let easy_filter = Filter {
        conds: vec![Cond::OneOf(
            "type".to_string(),
            [
                RecordType::LocalSource,
                RecordType::CacheMount,
                RecordType::GitCheckout,
            ]
            .iter()
            .map(|t| t.as_str().to_string())
            .collect(),
        )],
    };
    vec![
        PruneOptions {
            filter: easy_filter,
            keep_duration: Some(Duration::from_secs(48 * 3600)),
            max_used_space: 512_000_000,
            ..PruneOptions::default()
        },
        PruneOptions {
            keep_duration: Some(Duration::from_secs(60 * 24 * 3600)),
            ..limits.clone()
        },
        limits.clone(),
        PruneOptions {
            all: true,
            ..limits
        },
    ]
}

/// BuildKit's `calculateKeepBytes`: how many bytes the cache may keep (0: no limit).
fn keep_bytes(total: u64, free: u64, o: &PruneOptions) -> u64 {
    if o.max_used_space == 0 && o.reserved_space == 0 && o.min_free_space == 0 {
        return 0;
    }
    let mut keep = o.max_used_space;
    if o.min_free_space > free {
        let excess = o.min_free_space - free;
        let target = total.saturating_sub(excess);
        keep = if keep == 0 { target } else { keep.min(target) };
    } else if o.min_free_space != 0 && keep == 0 {
        keep = total;
    }
    keep.max(o.reserved_space)
}

/// What a record stands for.
#[derive(Debug, Clone)]
enum Item {
    Snapshot(String),
    Blob(Digest),
    /// A cache mount instance, by directory name.
    CacheMount(String),
}

#[derive(Debug, Clone)]
struct Node {
    record: UsageRecord,
    item: Item,
    /// Whether nothing else needs it (no child snapshot, no snapshot unpacked from the blob).
    leaf: bool,
    /// The cache entries whose outputs are this snapshot.
    entries: Vec<CacheKey>,
    /// The blobs removed with this snapshot.
    blobs: Vec<Digest>,
}

/// The build cache of a state directory: snapshots, cache index, content blobs, cache mounts.
pub struct Storage {
    root: PathBuf,
    snapshots: Arc<Snapshotter>,
    content: kiln_content::ContentStore,
    index: Arc<RedbKeyIndex<Ref>>,
    db: Arc<redb::Database>,
    /// The cache mounts, whose instances in use are never removed.
    cache_mounts: Arc<crate::cachemount::CacheMounts>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens the build cache of a state directory without the rest of a worker (no container
    /// runtime), for `du` and `prune`. The caller must hold the directory's
    /// [`StateLock`](crate::StateLock).
    pub fn open(root: &Path) -> Result<Storage> {
        let db = crate::state::open_db(root)?;
        let snapshots = Arc::new(Snapshotter::open(
            root.join("snapshotter"),
            Arc::clone(&db),
            kiln_snapshot::DriverChoice::Auto,
        )?);
        let content = kiln_content::ContentStore::open(root.join("content"))?;
        let index = Arc::new(crate::state::open_index(
            root,
            Arc::clone(&db),
            Arc::clone(&snapshots),
        )?);
        let cache_mounts = Arc::new(crate::cachemount::CacheMounts::open(
            root.join("cache-mounts"),
        )?);
        Storage::new(root, db, snapshots, content, index, cache_mounts)
    }

    pub(crate) fn new(
        root: &Path,
        db: Arc<redb::Database>,
        snapshots: Arc<Snapshotter>,
        content: kiln_content::ContentStore,
        index: Arc<RedbKeyIndex<Ref>>,
        cache_mounts: Arc<crate::cachemount::CacheMounts>,
    ) -> Result<Storage> {
        let s = Storage {
            root: root.to_path_buf(),
            snapshots,
            content,
            index,
            db,
            cache_mounts,
        };
        let txn = s.db.begin_write().map_err(|e| s.db_err(e))?;
        txn.open_table(RECORDS).map_err(|e| s.db_err(e))?;
        txn.commit().map_err(|e| s.db_err(e))?;
        Ok(s)
    }

    /// The metadata database (the image store keeps its records there).
    pub(crate) fn db(&self) -> &redb::Database {
        &self.db
    }

    /// The state directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn db_err(&self, e: impl std::fmt::Display) -> Error {
        Error::Database {
            path: self.root.join("metadata.redb"),
            message: e.to_string(),
        }
    }

    /// Records `description` for each snapshot of `names` that has none yet.
    pub(crate) fn describe(&self, names: &[String], description: &str) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| self.db_err(e))?;
            for name in names {
                let known = table
                    .get(name.as_str())
                    .map_err(|e| self.db_err(e))?
                    .is_some();
                if !known {
                    table
                        .insert(name.as_str(), description)
                        .map_err(|e| self.db_err(e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.db_err(e))
    }

    fn descriptions(&self) -> Result<BTreeMap<String, String>> {
        let txn = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let table = txn.open_table(RECORDS).map_err(|e| self.db_err(e))?;
        let mut out = BTreeMap::new();
        for row in table.iter().map_err(|e| self.db_err(e))? {
            let (k, v) = row.map_err(|e| self.db_err(e))?;
            out.insert(k.value().to_string(), v.value().to_string());
        }
        Ok(out)
    }

    fn forget(&self, name: &str) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| self.db_err(e))?;
            table.remove(name).map_err(|e| self.db_err(e))?;
        }
        txn.commit().map_err(|e| self.db_err(e))
    }

    /// The records of the cache that match `filter`, sorted by id. `held` are the results a
    /// running build holds (in use, with their ancestors).
    pub fn disk_usage(&self, filter: &Filter, held: &[Ref]) -> Result<Vec<UsageRecord>> {
        let mut records: Vec<UsageRecord> = self
            .nodes(held)?
            .into_iter()
            .map(|n| n.record)
            .filter(|r| filter.matches(r))
            .collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    /// The size and free space of the disk holding the state directory.
    pub fn disk_stat(&self) -> (u64, u64) {
        match rustix::fs::statvfs(&self.root) {
            Ok(st) => (
                st.f_blocks.saturating_mul(st.f_frsize),
                st.f_bavail.saturating_mul(st.f_frsize),
            ),
            Err(_) => (0, 0),
        }
    }

    /// Removes records as BuildKit's `Prune` does (see the module documentation) and returns
    /// them, in the order they were removed. `held` are the results a running build holds.
    pub fn prune(&self, opts: &PruneOptions, held: &[Ref]) -> Result<Vec<UsageRecord>> {
        let mut removed = Vec::new();
        let now = SystemTime::now();
        loop {
            let nodes = self.nodes(held)?;
            let mut total: u64 = nodes.iter().map(|n| n.record.size).sum();
            let (_, free) = self.disk_stat();
            let keep = keep_bytes(total, free, opts);
            if keep != 0 && total <= keep {
                break;
            }
            let mut candidates: Vec<&Node> = nodes
                .iter()
                .filter(|n| n.leaf && !n.record.in_use)
                .filter(|n| {
                    opts.all
                        || !matches!(
                            n.record.record_type,
                            RecordType::Internal | RecordType::Frontend
                        )
                })
                .filter(|n| opts.filter.matches(&n.record))
                .filter(|n| match (opts.keep_duration, n.record.last_used) {
                    (Some(d), Some(used)) => now.duration_since(used).is_ok_and(|age| age >= d),
                    _ => true,
                })
                .collect();
            if candidates.is_empty() {
                break;
            }
            candidates.sort_by(|a, b| {
                (a.record.last_used, &a.record.id).cmp(&(b.record.last_used, &b.record.id))
            });
            let mut progressed = false;
            for node in candidates {
                if keep != 0 && total <= keep {
                    break;
                }
                if !self.remove(node)? {
                    continue;
                }
                total = total.saturating_sub(node.record.size);
                removed.push(node.record.clone());
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        Ok(removed)
    }

    /// Runs the policies in order (the garbage collection of the embedded builder) and returns
    /// what was removed.
    pub fn collect(&self, policies: &[PruneOptions], held: &[Ref]) -> Result<Vec<UsageRecord>> {
        let mut removed = Vec::new();
        for policy in policies {
            removed.extend(self.prune(policy, held)?);
        }
        Ok(removed)
    }

    /// Removes what a record stands for; false when it turned out to be in use.
    fn remove(&self, node: &Node) -> Result<bool> {
        match &node.item {
            Item::Snapshot(name) => {
                // The cache entries first: an entry never points to a missing snapshot.
                for key in &node.entries {
                    self.index.remove(key).map_err(|e| self.db_err(e))?;
                }
                self.snapshots.remove(name)?;
                self.forget(name)?;
                for blob in &node.blobs {
                    match self.content.delete(blob) {
                        Ok(()) | Err(kiln_content::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(true)
            }
            Item::Blob(d) => match self.content.delete(d) {
                Ok(()) | Err(kiln_content::Error::NotFound { .. }) => Ok(true),
                Err(e) => Err(e.into()),
            },
            // Through the cache mount manager, which keeps the instances a step holds.
            Item::CacheMount(name) => self.cache_mounts.remove(name),
        }
    }

    fn nodes(&self, held: &[Ref]) -> Result<Vec<Node>> {
        let infos = self.snapshots.walk()?;
        let by_name: BTreeMap<&str, &kiln_snapshot::Info> =
            infos.iter().map(|i| (i.name.as_str(), i)).collect();
        let ancestors = |start: &str| -> Vec<String> {
            let mut out = Vec::new();
            let mut next = Some(start.to_string());
            while let Some(n) = next {
                if out.contains(&n) || out.len() > infos.len() {
                    break;
                }
                next = by_name.get(n.as_str()).and_then(|i| i.parent.clone());
                out.push(n);
            }
            out
        };
        // Who holds what.
        let entries = self.index.entries().map_err(|e| self.db_err(e))?;
        let mut direct: BTreeMap<String, Vec<CacheKey>> = BTreeMap::new();
        let mut holders: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        let mut last_used: BTreeMap<String, SystemTime> = BTreeMap::new();
        for (i, entry) in entries.iter().enumerate() {
            for out in &entry.outputs {
                let Some(name) = out.strip_prefix("snapshot:") else {
                    continue;
                };
                direct.entry(name.to_string()).or_default().push(entry.key);
                for n in ancestors(name) {
                    holders.entry(n.clone()).or_default().insert(i);
                    let t = last_used.entry(n).or_insert(entry.last_used);
                    if entry.last_used > *t {
                        *t = entry.last_used;
                    }
                }
            }
        }
        let mut in_use: BTreeSet<String> = BTreeSet::new();
        for r in held {
            if let Some(name) = r.snapshot() {
                in_use.extend(ancestors(name));
            }
        }
        let mut has_child: BTreeSet<&str> = BTreeSet::new();
        for info in &infos {
            if let Some(p) = info.parent.as_deref() {
                has_child.insert(p);
                if info.kind != Kind::Committed {
                    in_use.extend(ancestors(p));
                }
            }
        }
        // Blobs and the snapshots unpacked from them.
        let blobs = self.content.list()?;
        let mut owners: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for info in infos.iter().filter(|i| i.kind == Kind::Committed) {
            if let Some(d) = info.labels.get(BLOB_LABEL) {
                owners
                    .entry(d.clone())
                    .or_default()
                    .push(info.name.as_str());
            }
        }
        let blob_size: BTreeMap<String, u64> =
            blobs.iter().map(|(d, s)| (d.to_string(), *s)).collect();
        let descriptions = self.descriptions()?;
        // The blobs of named images (kiln's image store) are never removed: a snapshot keeps
        // them when it goes, and their own records are not prunable.
        let named = crate::images::held_blobs(&self.db, &self.root)?;

        let mut nodes = Vec::new();
        for info in infos.iter().filter(|i| i.kind == Kind::Committed) {
            let name = info.name.as_str();
            let mut size = self.snapshots.usage(name)?;
            let mut own_blobs = Vec::new();
            if let Some(d) = info.labels.get(BLOB_LABEL)
                && !named.contains(d)
                && owners.get(d).is_some_and(|o| o.len() == 1)
                && let Some(s) = blob_size.get(d)
                && let Ok(digest) = Digest::parse(d)
            {
                size = size.saturating_add(*s);
                own_blobs.push(digest);
            }
            let held_by = holders.get(name).map_or(0, BTreeSet::len);
            let record_type = if name.starts_with("local/") {
                RecordType::LocalSource
            } else {
                RecordType::Regular
            };
            let description = descriptions.get(name).cloned().unwrap_or_else(|| {
                match name.strip_prefix("layer/") {
                    Some(chain) => format!("image layer {chain}"),
                    None => name.to_string(),
                }
            });
            nodes.push(Node {
                record: UsageRecord {
                    id: record_id("snapshot", name),
                    parents: info
                        .parent
                        .iter()
                        .map(|p| record_id("snapshot", p))
                        .collect(),
                    created: info.created,
                    last_used: Some(last_used.get(name).copied().unwrap_or(info.created)),
                    usage_count: u64::try_from(held_by).unwrap_or(u64::MAX),
                    size,
                    shared: held_by > 1,
                    in_use: in_use.contains(name),
                    mutable: false,
                    description,
                    record_type,
                },
                item: Item::Snapshot(name.to_string()),
                leaf: !has_child.contains(name),
                entries: direct.get(name).cloned().unwrap_or_default(),
                blobs: own_blobs,
            });
        }
        for (digest, size) in &blobs {
            let text = digest.to_string();
            let owned_by = owners.get(&text).map_or(0, Vec::len);
            let is_named = named.contains(&text);
            if owned_by == 1 && !is_named {
                continue;
            }
            let modified = std::fs::metadata(self.content.path(digest))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            nodes.push(Node {
                record: UsageRecord {
                    id: record_id("blob", &text),
                    parents: Vec::new(),
                    created: modified,
                    last_used: Some(modified),
                    usage_count: u64::try_from(owned_by).unwrap_or(u64::MAX),
                    size: *size,
                    shared: owned_by > 1,
                    in_use: false,
                    mutable: false,
                    description: format!("layer blob {text}"),
                    record_type: RecordType::Regular,
                },
                item: Item::Blob(digest.clone()),
                leaf: owned_by == 0 && !is_named,
                entries: Vec::new(),
                blobs: Vec::new(),
            });
        }
        if let Ok(dirs) = std::fs::read_dir(self.cache_mounts.dir()) {
            for entry in dirs.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "tmp") || !path.is_dir() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let meta = std::fs::metadata(&path).map_err(|e| Error::io("reading", &path, e))?;
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                nodes.push(Node {
                    record: UsageRecord {
                        id: record_id("cachemount", &name),
                        parents: Vec::new(),
                        created: meta.created().unwrap_or(modified),
                        last_used: Some(modified),
                        usage_count: 0,
                        size: dir_usage(&path),
                        shared: false,
                        in_use: self.cache_mounts.in_use(&name),
                        mutable: true,
                        description: format!("cache mount {name}"),
                        record_type: RecordType::CacheMount,
                    },
                    item: Item::CacheMount(name),
                    leaf: true,
                    entries: Vec::new(),
                    blobs: Vec::new(),
                });
            }
        }
        Ok(nodes)
    }
}

/// A stable record id: 25 hex digits of the digest of what the record stands for.
fn record_id(kind: &str, name: &str) -> String {
    let digest = Digest::of_bytes(format!("{kind}:{name}").as_bytes());
    digest.encoded().chars().take(25).collect()
}

/// The allocated bytes under `dir`, each inode once (errors count as 0: sizes are advisory).
fn dir_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = BTreeSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if seen.insert((meta.dev(), meta.ino())) {
            total = total.saturating_add(meta.blocks().saturating_mul(512));
        }
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
    total
}

/// An op that records the name of its vertex as the description of the snapshots it produces
/// (and of the image layers under them), for `du`.
pub(crate) struct Described {
    pub inner: Arc<dyn Op<Ref>>,
    pub storage: Arc<Storage>,
}

impl Op<Ref> for Described {
    fn cache_key(&self) -> CacheKeyInput {
        self.inner.cache_key()
    }

    fn content_keys(&self) -> Vec<Option<Selector>> {
        self.inner.content_keys()
    }

    fn content_digest<'a>(
        &'a self,
        input: usize,
        value: &'a Ref,
        selector: &'a Selector,
    ) -> BoxFuture<'a, Result<ContentDigest, BoxError>> {
        self.inner.content_digest(input, value, selector)
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a ExecCtx,
        inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, BoxError>> {
        Box::pin(async move {
            let outputs = self.inner.exec(ctx, inputs).await?;
            let mut names = Vec::new();
            for r in &outputs {
                let Some(name) = r.snapshot() else { continue };
                names.push(name.to_string());
                // The layers of an image under its top layer.
                let mut next = self
                    .storage
                    .snapshots
                    .stat(name)
                    .ok()
                    .and_then(|i| i.parent);
                while let Some(p) =
                    next.filter(|p| p.starts_with("layer/") && name.starts_with("layer/"))
                {
                    if names.contains(&p) {
                        break;
                    }
                    next = self.storage.snapshots.stat(&p).ok().and_then(|i| i.parent);
                    names.push(p);
                }
            }
            if !names.is_empty() {
                let storage = Arc::clone(&self.storage);
                let description = ctx.name().to_string();
                // Descriptions are only shown by `du`: failing to record one does not fail the
                // build.
                let _ = tokio::task::spawn_blocking(move || storage.describe(&names, &description))
                    .await;
            }
            Ok(outputs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_keep(total: u64, free: u64, o: PruneOptions, want: u64) {
        assert_eq!(keep_bytes(total, free, &o), want, "{o:?}");
    }

    #[test]
    fn keep_bytes_follows_buildkit() {
        let o = PruneOptions::default;
        check_keep(100, 1000, o(), 0);
        check_keep(
            100,
            1000,
            PruneOptions {
                reserved_space: 30,
                ..o()
            },
            30,
        );
        check_keep(
            100,
            1000,
            PruneOptions {
                max_used_space: 50,
                ..o()
            },
            50,
        );
        check_keep(
            100,
            10,
            PruneOptions {
                min_free_space: 50,
                ..o()
            },
            60,
        );
        check_keep(
            100,
            1000,
            PruneOptions {
                min_free_space: 50,
                ..o()
            },
            100,
        );
        check_keep(
            100,
            10,
            PruneOptions {
                min_free_space: 50,
                reserved_space: 80,
                ..o()
            },
            80,
        );
    }

    fn check_size(text: &str, want: Option<u64>) {
        assert_eq!(parse_size(text).ok(), want, "{text}");
    }

    #[test]
    fn sizes_use_binary_units() {
        check_size("512", Some(512));
        check_size("10MB", Some(10 << 20));
        check_size("1.5g", Some(3 << 29));
        check_size("2GiB", Some(2 << 30));
        check_size("1 kb", Some(1024));
        check_size("ten", None);
        check_size("5XB", None);
        assert_eq!(DiskSpace::parse("10%").ok(), Some(DiskSpace::Percent(10)));
        // 10 % of 100 GiB, rounded up to whole gigabytes as BuildKit does.
        assert_eq!(DiskSpace::Percent(10).bytes(100 << 30), 11_000_000_000);
    }

    fn record(record_type: RecordType, in_use: bool) -> UsageRecord {
        UsageRecord {
            id: "abc123".into(),
            parents: vec!["p1".into(), "p2".into()],
            created: SystemTime::UNIX_EPOCH,
            last_used: None,
            usage_count: 0,
            size: 0,
            shared: false,
            in_use,
            mutable: false,
            description: "[build 1/2] RUN make".into(),
            record_type,
        }
    }

    #[test]
    fn filters_match_as_buildkit_filters() {
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("type==regular", true),
            ("type==source.local", false),
            ("type!=source.local", true),
            ("id~=^abc", true),
            ("description~=RUN", true),
            ("parents==p1;p2", true),
            ("inuse", false),
            ("private", true),
            ("type==regular,inuse", false),
            ("type=regular", true),
        ];
        let r = record(RecordType::Regular, false);
        let mut failures = Vec::new();
        for (expr, want) in cases {
            match Filter::parse(expr) {
                Ok(f) if f.matches(&r) == *want => {}
                Ok(_) => failures.push(format!("{expr}: expected {want}")),
                Err(e) => failures.push(format!("{expr}: {e}")),
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        assert!(Filter::parse("color==red").is_err());
    }

    #[test]
    fn default_policy_mirrors_buildkit() {
        let p = default_gc_policy(&GcConfig::default(), 1000 << 30);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].max_used_space, 512_000_000);
        assert_eq!(p[0].keep_duration, Some(Duration::from_secs(48 * 3600)));
        assert!(p[0].filter.matches(&record(RecordType::LocalSource, false)));
        assert!(p[0].filter.matches(&record(RecordType::CacheMount, false)));
        assert!(!p[0].filter.matches(&record(RecordType::Regular, false)));
        assert_eq!(p[1].keep_duration, Some(Duration::from_secs(60 * 86400)));
        assert_eq!(p[2].reserved_space, 10_000_000_000);
        assert_eq!(p[2].max_used_space, 100_000_000_000);
        assert_eq!(p[2].min_free_space, 201_000_000_000);
        assert!(p[3].all && !p[2].all);
        let small = default_gc_policy(
            &GcConfig {
                max_used_space: Some(DiskSpace::Bytes(1000)),
                ..GcConfig::default()
            },
            1000 << 30,
        );
        assert_eq!(
            (
                small[2].reserved_space,
                small[2].max_used_space,
                small[2].min_free_space
            ),
            (0, 1000, 0)
        );
    }
}
