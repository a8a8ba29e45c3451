//! Incremental copies of local directories (the build context, named local contexts).
//!
//! A local source's result is a snapshot holding a filtered copy of the client's directory.
//! Copying the whole directory again after one file changed costs as much as the first copy
//! (20,000 files, 160 MB, for the benchmark's context) and keeps a second full copy on disk.
//! BuildKit avoids both: its file sync sends only what changed into the snapshot it kept from
//! the last build. kiln does the same with what it already computes for the cache key: the
//! content walk gives every kept entry's digest and modification time (a
//! [`ManifestEntry`]); the manifest of each local snapshot is kept, and the next copy of the
//! same directory is a new snapshot on top of the last one, in which only the entries whose
//! digest, type or time changed are written and the ones that went away are removed (through
//! the overlay, which records the removals as whiteouts).
//!
//! The result is the same tree as a full copy (a property test compares the two after random
//! edits). Anything unusual falls back to the full copy: no earlier snapshot, entries that are
//! neither files, directories nor symlinks, extended attributes, more than half of the entries
//! changed (a new layer would then hold nearly everything anyway), or a copy already
//! [`MAX_LAYERS`] layers deep.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_contenthash::{EntryKind, ManifestEntry};
use kiln_llb::ops::{ChownOpt, FileActionCopy, UserOpt};
use redb::{ReadableDatabase, TableDefinition};

use crate::error::{Error, Result};

/// The most layers a local directory's copy stacks: the next change is a full copy again, so
/// that reading the copy never goes through a long overlay chain.
pub(crate) const MAX_LAYERS: usize = 16;

/// `local source key` → the last snapshot made for it and its manifest (see [`encode`]).
const LOCALS: TableDefinition<&str, &[u8]> = TableDefinition::new("kiln.worker.v1.locals");

fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("local source records: {e}"))
}

/// The last snapshot made for each local directory (by path, name and filter).
pub(crate) struct LocalRecords {
    db: Arc<redb::Database>,
}

/// The last copy of a local directory: its snapshot and what it holds.
pub(crate) struct LastCopy {
    pub snapshot: String,
    pub manifest: Vec<ManifestEntry>,
}

impl LocalRecords {
    pub(crate) fn new(db: Arc<redb::Database>) -> LocalRecords {
        LocalRecords { db }
    }

    /// The last copy recorded for `key`.
    pub(crate) fn get(&self, key: &str) -> Result<Option<LastCopy>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = match txn.open_table(LOCALS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(e)),
        };
        let Some(value) = table.get(key).map_err(db_err)? else {
            return Ok(None);
        };
        Ok(decode(value.value()))
    }

    /// Records `snapshot`, holding `manifest`, as the last copy for `key`. Written without
    /// waiting for the disk: a lost record only means a full copy next time.
    pub(crate) fn put(&self, key: &str, snapshot: &str, manifest: &[ManifestEntry]) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(db_err)?;
        let _ = txn.set_durability(redb::Durability::None);
        {
            let mut table = txn.open_table(LOCALS).map_err(db_err)?;
            table
                .insert(key, encode(snapshot, manifest).as_slice())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }
}

/// The record key of a local directory: its path, the name it is served under and its
/// filter, hashed.
pub(crate) fn record_key(dir: &Path, name: &str, filter: &[&[String]]) -> String {
    let mut w = crate::cachekey::KeyWriter::new("kiln.localsync.v1");
    w.bytes(dir.as_os_str().as_encoded_bytes()).str(name);
    for list in filter {
        w.list(list, |w, p| {
            w.str(p);
        });
    }
    hex::encode(sha2::Digest::finalize(
        <sha2::Sha256 as sha2::Digest>::new_with_prefix(w.finish()),
    ))
}

fn kind_code(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::File => 0,
        EntryKind::Dir => 1,
        EntryKind::Symlink => 2,
        EntryKind::Other => 3,
    }
}

/// `snapshot` then each entry: path length (u32 LE), path bytes, kind, digest, mtime (i64
/// LE), xattrs flag.
fn encode(snapshot: &str, manifest: &[ManifestEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(manifest.len() * 80 + snapshot.len() + 4);
    let put_bytes = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(b);
    };
    put_bytes(&mut out, snapshot.as_bytes());
    for e in manifest {
        put_bytes(&mut out, e.path.as_os_str().as_encoded_bytes());
        out.push(kind_code(e.kind));
        out.extend_from_slice(&e.digest);
        out.extend_from_slice(&e.mtime_ns.to_le_bytes());
        out.push(u8::from(e.has_xattrs));
    }
    out
}

fn decode(mut data: &[u8]) -> Option<LastCopy> {
    fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = data.split_at_checked(n)?;
        *data = rest;
        Some(head)
    }
    fn bytes<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(take(data, 4)?.try_into().ok()?);
        take(data, usize::try_from(len).ok()?)
    }
    let snapshot = String::from_utf8(bytes(&mut data)?.to_vec()).ok()?;
    let mut manifest = Vec::new();
    while !data.is_empty() {
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(bytes(&mut data)?));
        let kind = match take(&mut data, 1)?.first()? {
            0 => EntryKind::File,
            1 => EntryKind::Dir,
            2 => EntryKind::Symlink,
            _ => EntryKind::Other,
        };
        let digest: [u8; 32] = take(&mut data, 32)?.try_into().ok()?;
        let mtime_ns = i64::from_le_bytes(take(&mut data, 8)?.try_into().ok()?);
        let has_xattrs = *take(&mut data, 1)?.first()? != 0;
        manifest.push(ManifestEntry {
            path,
            kind,
            digest,
            mtime_ns,
            has_xattrs,
        });
    }
    Some(LastCopy { snapshot, manifest })
}

/// What turns the last copy into the new one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Entries to remove, top-most only (a removed directory goes with what it holds).
    pub remove: Vec<PathBuf>,
    /// Entries to write (new, changed, or of another type than before), parents first.
    pub write: Vec<(PathBuf, EntryKind)>,
}

/// The changes from `old` to `new`, or `None` when a full copy is the better way (see the
/// module documentation).
pub(crate) fn plan(old: &[ManifestEntry], new: &[ManifestEntry]) -> Option<Changes> {
    let old_by_path: HashMap<&Path, &ManifestEntry> =
        old.iter().map(|e| (e.path.as_path(), e)).collect();
    let new_by_path: HashMap<&Path, &ManifestEntry> =
        new.iter().map(|e| (e.path.as_path(), e)).collect();
    let mut write = Vec::new();
    let mut replaced = BTreeSet::new();
    for e in new {
        let same = old_by_path
            .get(e.path.as_path())
            .is_some_and(|o| o.kind == e.kind && o.digest == e.digest && o.mtime_ns == e.mtime_ns);
        if same {
            continue;
        }
        if e.kind == EntryKind::Other || e.has_xattrs {
            return None;
        }
        if let Some(o) = old_by_path.get(e.path.as_path())
            && (o.kind != e.kind || o.has_xattrs)
        {
            replaced.insert(e.path.clone());
        }
        write.push((e.path.clone(), e.kind));
    }
    let mut gone: BTreeSet<PathBuf> = old
        .iter()
        .filter(|o| !new_by_path.contains_key(o.path.as_path()))
        .map(|o| o.path.clone())
        .collect();
    gone.extend(replaced);
    // Top-most only: what is below a removed entry goes with it.
    let remove: Vec<PathBuf> = gone
        .iter()
        .filter(|p| !p.ancestors().skip(1).any(|a| gone.contains(a)))
        .cloned()
        .collect();
    if (write.len() + remove.len()) * 2 > new.len().max(1) {
        return None;
    }
    Some(Changes { remove, write })
}

/// Applies `changes` to `dest` (a writable mount of the last copy) from the directory `src`,
/// as the full copy would have written each entry: files and symlinks through the same copy
/// as [`kiln_fileop::copy`] with owner 0:0, directories with their mode and owner 0:0, then
/// every directory whose entries changed gets its times back from `src`.
pub(crate) fn apply(changes: &Changes, src: &Path, dest: &Path) -> Result<()> {
    let users = kiln_fileop::PasswdLookup::new(dest);
    let mut retime: BTreeSet<PathBuf> = BTreeSet::new();
    for path in &changes.remove {
        let target = dest.join(path);
        let meta =
            std::fs::symlink_metadata(&target).map_err(|e| Error::io("reading", &target, e))?;
        let removed = if meta.is_dir() {
            std::fs::remove_dir_all(&target)
        } else {
            std::fs::remove_file(&target)
        };
        removed.map_err(|e| Error::io("removing", &target, e))?;
        retime.insert(parent_of(path));
    }
    for (path, kind) in &changes.write {
        let from = src.join(path);
        let to = dest.join(path);
        match kind {
            EntryKind::Dir => {
                let meta =
                    std::fs::symlink_metadata(&from).map_err(|e| Error::io("reading", &from, e))?;
                match std::fs::symlink_metadata(&to) {
                    Ok(m) if m.is_dir() => {}
                    _ => std::fs::create_dir(&to).map_err(|e| Error::io("creating", &to, e))?,
                }
                std::fs::set_permissions(
                    &to,
                    std::fs::Permissions::from_mode(meta.mode() & 0o7777),
                )
                .map_err(|e| Error::io("setting the mode of", &to, e))?;
                std::os::unix::fs::lchown(&to, Some(0), Some(0))
                    .map_err(|e| Error::io("setting the owner of", &to, e))?;
                retime.insert(path.clone());
            }
            EntryKind::File | EntryKind::Symlink => {
                // The copy would write through or keep an existing symlink: the old entry
                // goes first (a directory of that name is in the removals already).
                if std::fs::symlink_metadata(&to).is_ok_and(|m| !m.is_dir()) {
                    std::fs::remove_file(&to).map_err(|e| Error::io("replacing", &to, e))?;
                }
                let rel = format!("/{}", path.display());
                let copy = FileActionCopy {
                    src: rel.clone(),
                    dest: rel,
                    mode: -1,
                    create_dest_path: true,
                    allow_wildcard: false,
                    always_replace_existing_dest_paths: true,
                    timestamp: -1,
                    owner: Some(ChownOpt {
                        user: Some(UserOpt::ById(0)),
                        group: Some(UserOpt::ById(0)),
                    }),
                    ..FileActionCopy::default()
                };
                kiln_fileop::copy(src, dest, &copy, &users)?;
            }
            EntryKind::Other => {
                return Err(Error::Invalid(format!(
                    "{}: not a file, directory or symlink",
                    path.display()
                )));
            }
        }
        retime.insert(parent_of(path));
    }
    // Deepest first: setting a directory's times does not touch its parent's.
    for path in retime.iter().rev() {
        if path.as_os_str().is_empty() {
            continue;
        }
        let from = src.join(path);
        let to = dest.join(path);
        let meta = std::fs::symlink_metadata(&from).map_err(|e| Error::io("reading", &from, e))?;
        let times = std::fs::FileTimes::new()
            .set_accessed(
                meta.accessed()
                    .map_err(|e| Error::io("reading", &from, e))?,
            )
            .set_modified(
                meta.modified()
                    .map_err(|e| Error::io("reading", &from, e))?,
            );
        std::fs::File::open(&to)
            .and_then(|f| f.set_times(times))
            .map_err(|e| Error::io("setting the times of", &to, e))?;
    }
    Ok(())
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind, digest: u8, mtime_ns: i64) -> ManifestEntry {
        ManifestEntry {
            path: PathBuf::from(path),
            kind,
            digest: [digest; 32],
            mtime_ns,
            has_xattrs: false,
        }
    }

    #[test]
    fn records_round_trip() {
        let manifest = vec![
            entry("a", EntryKind::Dir, 1, 10),
            entry("a/b.txt", EntryKind::File, 2, -20),
            entry("l", EntryKind::Symlink, 3, 30),
        ];
        let decoded = decode(&encode("local/x", &manifest)).expect("decode");
        assert_eq!(decoded.snapshot, "local/x");
        assert_eq!(decoded.manifest, manifest);
        assert!(decode(&encode("s", &manifest)[..20]).is_none());
    }

    /// One `check(old, new, expected)` per case: `None` means a full copy.
    #[test]
    fn plans() {
        use EntryKind::{Dir, File, Other, Symlink};
        let base: Vec<ManifestEntry> = (0..10)
            .map(|i| entry(&format!("f{i}"), File, i, 1))
            .chain([entry("d", Dir, 50, 1), entry("d/x", File, 51, 1)])
            .collect();
        let with = |f: &dyn Fn(&mut Vec<ManifestEntry>)| {
            let mut m = base.clone();
            f(&mut m);
            m
        };
        let p = PathBuf::from;
        let cases: Vec<(&str, Vec<ManifestEntry>, Option<Changes>)> = vec![
            (
                "nothing changed",
                base.clone(),
                Some(Changes {
                    remove: vec![],
                    write: vec![],
                }),
            ),
            (
                "one file's content",
                with(&|m| m[3].digest = [99; 32]),
                Some(Changes {
                    remove: vec![],
                    write: vec![(p("f3"), File)],
                }),
            ),
            (
                "only a time",
                with(&|m| m[4].mtime_ns = 2),
                Some(Changes {
                    remove: vec![],
                    write: vec![(p("f4"), File)],
                }),
            ),
            (
                "a directory removed with its file",
                with(&|m| m.truncate(10)),
                Some(Changes {
                    remove: vec![p("d")],
                    write: vec![],
                }),
            ),
            (
                "a file became a symlink",
                with(&|m| m[0].kind = Symlink),
                Some(Changes {
                    remove: vec![p("f0")],
                    write: vec![(p("f0"), Symlink)],
                }),
            ),
            (
                "a directory became a file",
                with(&|m| {
                    m.truncate(10);
                    m.push(entry("d", File, 7, 1));
                }),
                Some(Changes {
                    remove: vec![p("d")],
                    write: vec![(p("d"), File)],
                }),
            ),
            (
                "a device",
                with(&|m| m.push(entry("dev", Other, 1, 1))),
                None,
            ),
            (
                "extended attributes",
                with(&|m| {
                    m[1].has_xattrs = true;
                    m[1].digest = [98; 32];
                }),
                None,
            ),
            (
                "most entries changed",
                with(&|m| m.iter_mut().for_each(|e| e.mtime_ns = 5)),
                None,
            ),
        ];
        let failures: Vec<String> = cases
            .into_iter()
            .filter_map(|(name, new, want)| {
                let got = plan(&base, &new);
                (got != want).then(|| format!("{name}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
