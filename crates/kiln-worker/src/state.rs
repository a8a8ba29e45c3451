//! What a state directory holds that nothing needs: the garbage collection run when a worker
//! opens, and [`check_state`], which reports leftovers without removing them (for tests and
//! diagnostics).
//!
//! A committed snapshot is needed while the cache index holds it, directly (an entry's output
//! is that snapshot) or as an ancestor of one it holds. Everything else is garbage: a snapshot
//! committed by a build that was killed before it recorded the result in the index, or the
//! previous result of a key whose entry was replaced (`--no-cache`). Without collection each
//! such crash would leave a snapshot behind for ever.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_snapshot::{Info, Kind, Snapshotter};
use kiln_solver::{CacheKey, RedbKeyIndex};

use crate::error::{Error, Result};
use crate::refs::{Ref, RefCodec};

/// What [`check_state`] found in a state directory. A state left by builds that finished, or
/// by a killed build followed by one that finished, has nothing in any of the lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCheck {
    /// The number of committed snapshots.
    pub committed: usize,
    /// Snapshots that are not committed: the writable snapshots and views of an op that never
    /// finished.
    pub temporary_snapshots: Vec<String>,
    /// Committed snapshots that no cache entry holds, directly or as an ancestor.
    pub unreferenced_snapshots: Vec<String>,
    /// Cache entries (by key) whose snapshot is gone.
    pub dangling_cache_entries: Vec<String>,
    /// Directories of the snapshotter that no snapshot record refers to (removed by the check,
    /// as opening the snapshotter always does).
    pub orphan_directories: Vec<PathBuf>,
    /// Snapshot records whose directory was missing (dropped by the check, as opening the
    /// snapshotter always does).
    pub dropped_snapshots: Vec<String>,
    /// Mounts left in the snapshotter's directory (unmounted by the check, as opening the
    /// snapshotter always does).
    pub unmounted: Vec<PathBuf>,
}

impl StateCheck {
    /// Each problem found, as one sentence.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.temporary_snapshots {
            out.push(format!("temporary snapshot {s} was left behind"));
        }
        for s in &self.unreferenced_snapshots {
            out.push(format!("committed snapshot {s} is held by no cache entry"));
        }
        for k in &self.dangling_cache_entries {
            out.push(format!("cache entry {k} points to a missing snapshot"));
        }
        for d in &self.orphan_directories {
            out.push(format!(
                "snapshot directory {} belongs to no snapshot",
                d.display()
            ));
        }
        for s in &self.dropped_snapshots {
            out.push(format!("snapshot {s} had lost its directory"));
        }
        for m in &self.unmounted {
            out.push(format!("{} was still mounted", m.display()));
        }
        out
    }
}

/// Opens the metadata database of a state directory.
pub(crate) fn open_db(root: &Path) -> Result<Arc<redb::Database>> {
    let path = root.join("metadata.redb");
    redb::Database::create(&path)
        .map(Arc::new)
        .map_err(|e| Error::Database {
            path,
            message: e.to_string(),
        })
}

/// Opens the cache index of a state directory.
pub(crate) fn open_index(
    root: &Path,
    db: Arc<redb::Database>,
    snapshots: Arc<Snapshotter>,
) -> Result<RedbKeyIndex<Ref>> {
    RedbKeyIndex::new(db, Arc::new(RefCodec { snapshots })).map_err(|e| Error::Database {
        path: root.join("metadata.redb"),
        message: e.to_string(),
    })
}

/// Checks a state directory that no build is using (the caller holds its
/// [`StateLock`](crate::StateLock)) and reports what a crash left in it. Opening the
/// snapshotter repairs its own metadata and removes its orphan directories, as every build
/// does; the check reports those too. Nothing else is changed.
pub fn check_state(root: &Path) -> Result<StateCheck> {
    let db = open_db(root)?;
    let snapshots = Arc::new(Snapshotter::open(
        root.join("snapshotter"),
        Arc::clone(&db),
        kiln_snapshot::DriverChoice::Auto,
    )?);
    let recovery = snapshots.recovery().clone();
    let index = open_index(root, db, Arc::clone(&snapshots))?;
    let infos = snapshots.walk()?;
    let garbage = find_garbage(root, &infos, &index)?;
    Ok(StateCheck {
        committed: infos.iter().filter(|i| i.kind == Kind::Committed).count(),
        temporary_snapshots: infos
            .iter()
            .filter(|i| i.kind != Kind::Committed)
            .map(|i| i.name.clone())
            .collect(),
        unreferenced_snapshots: garbage.snapshots,
        dangling_cache_entries: garbage.dangling.iter().map(|k| k.to_string()).collect(),
        orphan_directories: recovery.removed_directories,
        dropped_snapshots: recovery.dropped_snapshots,
        unmounted: recovery.unmounted,
    })
}

/// What the cache index does not hold.
struct Garbage {
    /// Committed snapshots no entry holds, children before their parents.
    snapshots: Vec<String>,
    /// Entries whose snapshot is gone.
    dangling: Vec<CacheKey>,
}

fn find_garbage(root: &Path, infos: &[Info], index: &RedbKeyIndex<Ref>) -> Result<Garbage> {
    let entries = index.entries().map_err(|e| Error::Database {
        path: root.join("metadata.redb"),
        message: e.to_string(),
    })?;
    let by_name: BTreeMap<&str, &Info> = infos.iter().map(|i| (i.name.as_str(), i)).collect();
    let mut held: BTreeSet<&str> = BTreeSet::new();
    let mut dangling = Vec::new();
    for entry in &entries {
        let mut complete = true;
        for text in &entry.outputs {
            let Some(name) = text.strip_prefix("snapshot:") else {
                continue;
            };
            match by_name.get(name) {
                Some(info) if info.kind == Kind::Committed => {
                    // The snapshot and its ancestors.
                    let mut next = Some(info.name.as_str());
                    while let Some(n) = next {
                        if !held.insert(n) {
                            break;
                        }
                        next = by_name.get(n).and_then(|i| i.parent.as_deref());
                    }
                }
                _ => complete = false,
            }
        }
        if !complete {
            dangling.push(entry.key);
        }
    }
    // Children first, so that each removal finds no child left.
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    for info in infos {
        let mut d = 0usize;
        let mut next = info.parent.as_deref();
        while let Some(p) = next {
            d += 1;
            if d > infos.len() {
                break;
            }
            next = by_name.get(p).and_then(|i| i.parent.as_deref());
        }
        depth.insert(info.name.as_str(), d);
    }
    let mut snapshots: Vec<&Info> = infos
        .iter()
        .filter(|i| i.kind == Kind::Committed && !held.contains(i.name.as_str()))
        .collect();
    snapshots.sort_by_key(|i| {
        (
            std::cmp::Reverse(depth.get(i.name.as_str()).copied().unwrap_or(0)),
            i.name.clone(),
        )
    });
    Ok(Garbage {
        snapshots: snapshots.into_iter().map(|i| i.name.clone()).collect(),
        dangling,
    })
}

/// Removes what nothing needs: every snapshot that is not committed (the caller holds the
/// state lock, so these belong to an interrupted build), the cache entries whose snapshot is
/// gone, and the committed snapshots the cache index does not hold. Returns the names of the
/// snapshots removed.
pub(crate) fn collect_garbage(
    root: &Path,
    snapshots: &Snapshotter,
    index: &RedbKeyIndex<Ref>,
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    // Views and writable snapshots have no children: remove them first.
    for info in snapshots.walk()? {
        if info.kind != Kind::Committed {
            snapshots.remove(&info.name)?;
            removed.push(info.name);
        }
    }
    let infos = snapshots.walk()?;
    let garbage = find_garbage(root, &infos, index)?;
    for key in &garbage.dangling {
        index.remove(key).map_err(|e| Error::Database {
            path: root.join("metadata.redb"),
            message: e.to_string(),
        })?;
    }
    for name in garbage.snapshots {
        snapshots.remove(&name)?;
        removed.push(name);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_solver::{CacheKeyInput, CacheStore};

    /// A state directory with a copying snapshotter (no mounts needed) and its cache index.
    struct State {
        _dir: tempfile::TempDir,
        root: PathBuf,
        snapshots: Arc<Snapshotter>,
        index: RedbKeyIndex<Ref>,
    }

    fn state() -> State {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let db = open_db(&root).expect("db");
        let snapshots = Arc::new(
            Snapshotter::open(
                root.join("snapshotter"),
                Arc::clone(&db),
                kiln_snapshot::DriverChoice::Copy,
            )
            .expect("snapshotter"),
        );
        let index = open_index(&root, db, Arc::clone(&snapshots)).expect("index");
        State {
            _dir: dir,
            root,
            snapshots,
            index,
        }
    }

    fn key(n: u8) -> CacheKey {
        CacheKey::compute(&CacheKeyInput::new("test", vec![n]), &[])
    }

    /// Commits `name` on `parent`.
    fn committed(s: &State, name: &str, parent: Option<&str>) {
        let key = format!("active/{name}");
        s.snapshots.prepare(&key, parent).expect("prepare");
        s.snapshots.commit(name, &key).expect("commit");
    }

    fn names(s: &State) -> Vec<String> {
        s.snapshots
            .walk()
            .expect("walk")
            .into_iter()
            .map(|i| i.name)
            .collect()
    }

    /// A chain `base <- mid <- top` held through `top`, a snapshot committed without a cache
    /// entry on top of `mid` (a build killed between commit and save), a temporary snapshot
    /// and a view (an op killed while running), and an entry whose snapshot is gone.
    #[test]
    fn collects_what_no_cache_entry_holds() {
        let s = state();
        committed(&s, "layer/base", None);
        committed(&s, "exec/mid", Some("layer/base"));
        committed(&s, "exec/top", Some("exec/mid"));
        committed(&s, "exec/killed", Some("exec/mid"));
        committed(&s, "file/killed-child", Some("exec/killed"));
        committed(&s, "local/alone", None);
        s.snapshots
            .prepare("active/running", Some("exec/top"))
            .expect("prepare");
        s.snapshots
            .view("view/reading", Some("exec/top"))
            .expect("view");
        s.index
            .save(&key(1), &[Ref::Snapshot("exec/top".into())])
            .expect("save");
        s.index.save(&key(2), &[Ref::Scratch]).expect("save");
        s.index
            .save(&key(3), &[Ref::Snapshot("exec/gone".into())])
            .expect("save");

        let check = {
            let infos = s.snapshots.walk().expect("walk");
            find_garbage(&s.root, &infos, &s.index).expect("garbage")
        };
        assert_eq!(
            check.snapshots,
            ["file/killed-child", "exec/killed", "local/alone"],
            "children come before their parents"
        );
        assert_eq!(check.dangling, [key(3)]);

        let removed = collect_garbage(&s.root, &s.snapshots, &s.index).expect("collect");
        assert_eq!(
            removed,
            [
                "active/running",
                "view/reading",
                "file/killed-child",
                "exec/killed",
                "local/alone"
            ]
        );
        assert_eq!(names(&s), ["exec/mid", "exec/top", "layer/base"]);
        let keys: Vec<CacheKey> = s
            .index
            .entries()
            .expect("entries")
            .into_iter()
            .map(|e| e.key)
            .collect();
        let mut want = vec![key(1), key(2)];
        want.sort();
        assert_eq!(keys, want);
        // Nothing left to collect.
        assert_eq!(
            collect_garbage(&s.root, &s.snapshots, &s.index).expect("collect"),
            Vec::<String>::new()
        );
    }
}
