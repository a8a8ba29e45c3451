//! Reading file content: stat-cache lookups, then the remaining files hashed on several
//! threads.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest as _, Sha256};

use crate::encode::{EMPTY_CONTENT, Sum};
use crate::error::{Error, io_err};
use crate::meta::StatKey;
use crate::statcache::{Record, StatCache};
use crate::tree::Tree;

/// The read buffer of each hashing thread.
const BUFFER: usize = 256 * 1024;

/// What one content pass did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PassStats {
    pub(crate) hits: u64,
    pub(crate) files_read: u64,
    pub(crate) bytes_read: u64,
}

/// Fills in the content sum of every kept regular file of `trees`: empty files need no
/// read, files the stat cache vouches for need no read, the rest are read on up to
/// `threads` threads. New records go to the cache in one batch. `started_ns` is the wall
/// clock before any entry was examined.
pub(crate) fn fill(
    trees: &mut [Tree],
    cache: Option<&StatCache>,
    threads: usize,
    started_ns: i64,
) -> Result<PassStats, Error> {
    let mut stats = PassStats::default();
    // (tree, node, path, stat key) of the files that must be read.
    let mut jobs: Vec<(usize, usize, PathBuf, StatKey)> = Vec::new();
    let reader = cache.map(StatCache::reader).transpose()?;
    for (t, tree) in trees.iter_mut().enumerate() {
        let files: Vec<(usize, PathBuf)> = tree.files().collect();
        for (n, path) in files {
            let Some(node) = tree.nodes.get_mut(n) else {
                continue;
            };
            if node.meta.size == 0 {
                node.content = Some(EMPTY_CONTENT);
                continue;
            }
            let key = node.meta.key;
            if let (Some(cache), Some(reader)) = (cache, reader.as_ref())
                && let Some(sum) = cache.trusted(reader.get(&path)?, &key)
            {
                node.content = Some(sum);
                stats.hits += 1;
                continue;
            }
            jobs.push((t, n, path, key));
        }
    }
    drop(reader);

    let results = hash_files(&jobs, threads)?;
    let mut records = Vec::new();
    for ((t, n, path, key), (sum, bytes, consistent)) in jobs.into_iter().zip(results) {
        if let Some(node) = trees.get_mut(t).and_then(|tree| tree.nodes.get_mut(n)) {
            node.content = Some(sum);
        }
        stats.files_read += 1;
        stats.bytes_read += bytes;
        if consistent {
            records.push((
                path,
                Record {
                    key,
                    recorded_ns: started_ns,
                    content: sum,
                },
            ));
        }
    }
    if let Some(cache) = cache {
        cache.store(records)?;
    }
    Ok(stats)
}

/// The result of hashing one file: its sum, the bytes read, and whether the file was the
/// same (by its stat key) before and after the read as when it was listed.
type Hashed = (Sum, u64, bool);

/// Hashes the files of `jobs` on up to `threads` threads; results in the order of `jobs`.
/// The first error (in that order) wins.
fn hash_files(
    jobs: &[(usize, usize, PathBuf, StatKey)],
    threads: usize,
) -> Result<Vec<Hashed>, Error> {
    let threads = threads.clamp(1, jobs.len().max(1));
    if threads == 1 {
        let mut buf = vec![0u8; BUFFER];
        return jobs
            .iter()
            .map(|(_, _, path, key)| hash_file(path, key, &mut buf))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<Hashed, Error>>> = (0..jobs.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut buf = vec![0u8; BUFFER];
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((_, _, path, key)) = jobs.get(i) else {
                            break;
                        };
                        let result = hash_file(path, key, &mut buf);
                        let failed = result.is_err();
                        done.push((i, result));
                        if failed {
                            // Let the other threads run out of work quickly.
                            next.store(jobs.len(), Ordering::Relaxed);
                            break;
                        }
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(done) => {
                    for (i, result) in done {
                        if let Some(slot) = slots.get_mut(i) {
                            *slot = Some(result);
                        }
                    }
                }
                Err(_) => return Err(Error::Worker),
            }
        }
        Ok(())
    })?;
    let mut out = Vec::with_capacity(slots.len());
    let mut first_error = None;
    for slot in slots {
        match slot {
            Some(Ok(hashed)) => out.push(hashed),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            // Not reached because an earlier error stopped the work.
            None => {}
        }
    }
    match first_error {
        Some(e) => Err(e),
        None if out.len() == jobs.len() => Ok(out),
        None => Err(Error::Worker),
    }
}

/// Reads and hashes one regular file, never following a symlink and never blocking on
/// something that is not a regular file.
fn hash_file(path: &Path, listed: &StatKey, buf: &mut [u8]) -> Result<Hashed, Error> {
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err("open", path))?;
    let before = file.metadata().map_err(io_err("fstat", path))?;
    if !before.is_file() {
        return Err(io_err("open", path)(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file any more",
        )));
    }
    let before = StatKey::of(&before);
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", path)(e)),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
        total += n as u64;
    }
    let after = StatKey::of(&file.metadata().map_err(io_err("fstat", path))?);
    let consistent = before == *listed && after == before;
    Ok((hasher.finalize().into(), total, consistent))
}
