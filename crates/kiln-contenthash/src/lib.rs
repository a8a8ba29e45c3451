//! Content checksums of directory trees, for cache keys: the digest of a build context (the
//! `local` source) and the digest of what a `COPY` or a bind mount reads from a tree
//! (BuildKit's `cache/contenthash` `Checksum`).
//!
//! * [`Hasher::tree_digest`] hashes everything under a root that a [`Filter`] keeps
//!   (`.dockerignore` excludes with `!` re-includes, include patterns, follow paths).
//! * [`Hasher::checksum`] hashes one selector inside a root: a path, or with
//!   [`ChecksumOpts::wildcard`] a Go `path.Match` pattern, optionally filtered by include and
//!   exclude patterns, optionally following a final symlink.
//! * [`Hasher::tree_manifest`] gives, from the same walk as the tree digest, each kept entry's
//!   own digest and time, so that a copy of the tree can be brought up to date entry by entry.
//! * [`StatCache`] remembers file content digests by path and `lstat` identity, in redb or in
//!   memory, so that an unchanged file is never read twice.
//!
//! **What a digest covers** (the exact byte streams are documented in [`encode`]; every
//! stream starts with the version tag [`VERSION`]): for each entry, in byte order of paths,
//! its name, its type, its permission bits (setuid, setgid and sticky included), its uid and
//! gid, a symlink's target (as stored, never followed while walking), a device's numbers,
//! the sha256 of a regular file's content, and its extended attributes except the
//! host-specific ones (as BuildKit: `security.*` other than `security.capability`,
//! `system.*` and `com.apple.*` do not count). A directory's digest covers its own entry and
//! its children's digests, recursively. Times (modification, access, change), inode numbers,
//! link counts and user names are **not** covered: touching a file keeps every digest,
//! changing one byte changes the digests of that file and of the directories above it
//! only. The root of a build context is the exception to "own entry counts": its mode and
//! owner are not part of [`Hasher::tree_digest`], as in BuildKit, where the transferred
//! context root carries no metadata.
//!
//! **What it deliberately does not know**: where trees come from (a context directory, a
//! mounted snapshot: the caller gives a path), how results are cached per build (the solver
//! keys ops by these digests), and progress reporting. It never writes to the trees it
//! reads, and it reads nothing outside the root: symlinks in selectors and follow paths are
//! resolved as if the root were `/`, and the walk itself never follows a symlink.
//!
//! **Why it is designed this way**: cache keys must be stable across machines, checkouts and
//! `touch`, and must change whenever what a step reads changes; so the digest is a canonical,
//! versioned encoding of exactly the copied metadata and content, never of `Debug` or
//! serde output. The digests are kiln's own (BuildKit's are not reproduced byte for byte,
//! and need not be: they never leave the cache); the *selection* rules (what a wildcard
//! matches, what patterns keep, when a symlink is followed, the digest of an empty wildcard
//! selection) are BuildKit's and fsutil's. Reading content is the expensive part, so files
//! are hashed on several threads, and the stat cache skips reads of unchanged files; a file
//! changed within the racy margin of its last hash is always read again (see [`StatCache`]).
//!
//! Trees are assumed not to change while they are hashed (a build context during a build, a
//! committed snapshot). A file that changes while it is read gets a digest of what was read
//! and no stat cache record, so the next run reads it again; files are opened with
//! `O_NOFOLLOW` and only when `lstat` saw a regular file.
//!
//! The API is blocking; async callers use `spawn_blocking`.

mod content;
pub mod encode;
mod error;
mod filter;
mod meta;
mod resolve;
mod statcache;
mod tree;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_gostd::path::{base, clean, join, matches, split_wildcards};
use kiln_oci::Digest;

pub use encode::VERSION;

/// What an entry of a [`Hasher::tree_manifest`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

/// One entry kept below a tree's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The path relative to the root (never empty: the root is not listed).
    pub path: PathBuf,
    /// What the entry is.
    pub kind: EntryKind,
    /// The digest of the entry itself: type, permissions, owner, size, link target, device
    /// numbers, extended attributes and, for a file, its content (not a directory's
    /// children).
    pub digest: [u8; 32],
    /// The modification time in nanoseconds since the epoch (not in `digest`: copies keep
    /// it, digests do not count it).
    pub mtime_ns: i64,
    /// Whether the entry has extended attributes that the digest covers.
    pub has_xattrs: bool,
}
pub use error::Error;
pub use statcache::StatCache;

use crate::encode::{EMPTY_CONTENT, Sum, selection_digest, to_digest};
use crate::error::io_err;
use crate::filter::{PatternFilter, follow_targets};
use crate::resolve::resolve_in_root;
use crate::tree::{RootMode, Tree, join_rel, list_dir};

/// What [`Hasher::tree_digest`] keeps of a tree, with the semantics of BuildKit's local
/// source (fsutil's filtered walk). Paths and patterns are relative to the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `.dockerignore` patterns: a matching path is left out, unless a later `!pattern`
    /// matches it; a directory is not even listed when no `!pattern` could apply below it.
    pub excludes: Vec<String>,
    /// When not empty, only paths matching one of these patterns (or below a matching
    /// directory) are kept, with the directories that lead to them.
    pub includes: Vec<String>,
    /// Paths whose symlinks are resolved: each path, every symlink on the way to it and what
    /// those point to (inside the root) are added to the include patterns. Wildcards are
    /// allowed in elements.
    pub follow_paths: Vec<String>,
}

/// How [`Hasher::checksum`] reads its selector (BuildKit's `ChecksumOpts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChecksumOpts {
    /// Follow the selected path when it is a symlink (inside the root), and hash what it
    /// points to.
    pub follow_links: bool,
    /// The selector is a Go `path.Match` pattern; no match is an empty selection, not an
    /// error.
    pub wildcard: bool,
    /// Keep only paths (relative to each selected item) matching these patterns.
    pub includes: Vec<String>,
    /// Leave out paths (relative to each selected item) matching these patterns.
    pub excludes: Vec<String>,
}

/// Counters of the work a [`Hasher`] did, since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashStats {
    /// Regular files whose content was read.
    pub files_read: u64,
    /// Bytes of content read.
    pub bytes_read: u64,
    /// Regular files whose content digest came from the stat cache.
    pub cache_hits: u64,
    /// Directories listed while walking trees (excluded directories that nothing below
    /// can re-include are not listed).
    pub dirs_listed: u64,
}

/// Computes digests of trees. Cheap to share between threads (`&Hasher` is enough); the
/// optional [`StatCache`] is consulted and updated by every call.
#[derive(Debug)]
pub struct Hasher {
    cache: Option<StatCache>,
    threads: usize,
    files_read: AtomicU64,
    bytes_read: AtomicU64,
    cache_hits: AtomicU64,
    dirs_listed: AtomicU64,
}

impl Hasher {
    /// A hasher using `cache` (or none), hashing on as many threads as there are cores.
    pub fn new(cache: Option<StatCache>) -> Hasher {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Hasher {
            cache,
            threads,
            files_read: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            dirs_listed: AtomicU64::new(0),
        }
    }

    /// Sets how many threads hash file content (at least one).
    pub fn with_threads(mut self, threads: usize) -> Hasher {
        self.threads = threads.max(1);
        self
    }

    /// The work done so far.
    pub fn stats(&self) -> HashStats {
        HashStats {
            files_read: self.files_read.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            dirs_listed: self.dirs_listed.load(Ordering::Relaxed),
        }
    }

    /// Digest of everything under `root` that `filter` keeps: the cache key of a local
    /// source. The root's own mode and owner do not count (see the crate documentation).
    pub fn tree_digest(&self, root: &Path, filter: &Filter) -> Result<Digest, Error> {
        let tree = self.filled_tree(root, filter)?;
        Ok(to_digest(&tree.digest().unwrap_or(EMPTY_CONTENT)))
    }

    /// [`Hasher::tree_digest`] and, from the same walk, every entry kept below the root with
    /// what it is (see [`ManifestEntry`]), parents before their children. Comparing two
    /// manifests of the same directory tells which entries changed, so that a copy of the
    /// tree can be brought up to date entry by entry.
    pub fn tree_manifest(
        &self,
        root: &Path,
        filter: &Filter,
    ) -> Result<(Digest, Vec<ManifestEntry>), Error> {
        let tree = self.filled_tree(root, filter)?;
        let digest = to_digest(&tree.digest().unwrap_or(EMPTY_CONTENT));
        let entries = tree
            .nodes
            .iter()
            .skip(1)
            .filter(|n| n.kept)
            .map(|n| ManifestEntry {
                path: n.rel.clone(),
                kind: match n.meta.kind {
                    meta::Kind::File => EntryKind::File,
                    meta::Kind::Dir => EntryKind::Dir,
                    meta::Kind::Symlink => EntryKind::Symlink,
                    _ => EntryKind::Other,
                },
                digest: encode::entry_digest(&n.meta, n.content.as_ref()),
                mtime_ns: n.meta.key.mtime_ns,
                has_xattrs: !n.meta.xattrs.is_empty(),
            })
            .collect();
        Ok((digest, entries))
    }

    /// The tree under `root` that `filter` keeps, with every file's content sum.
    fn filled_tree(&self, root: &Path, filter: &Filter) -> Result<Tree, Error> {
        let started = now_ns();
        let root = canonical_root(root)?;
        let mut includes = filter.includes.clone();
        if !filter.follow_paths.is_empty()
            && let Some(targets) = follow_targets(&root, &filter.follow_paths)?
        {
            includes.extend(targets);
        }
        // fsutil drops all include patterns when one of them is the root itself.
        if !filter.follow_paths.is_empty() && includes.iter().any(|p| clean(p) == ".") {
            includes.clear();
        }
        let patterns = PatternFilter::new(&includes, &filter.excludes)?;
        let tree = Tree::build(root.clone(), &patterns, RootMode::Context)?
            .ok_or_else(|| Error::RootNotDirectory { path: root.clone() })?;
        let mut trees = [tree];
        self.fill(&mut trees, started)?;
        let [tree] = trees;
        Ok(tree)
    }

    /// Digest of what a `COPY` or bind mount of `selector` inside `root` reads (BuildKit's
    /// `Checksum`).
    ///
    /// Without wildcard and patterns: the digest of the entry `selector` names (symlinks on
    /// the way resolved inside `root`, a final symlink only with `follow_links`), for a
    /// directory covering everything below it. A missing path is [`Error::NotFound`].
    ///
    /// With `wildcard`, every entry whose path matches the selector (Go's `path.Match`, on
    /// the path from the root) is an item; without, the selected entry is the only item.
    /// Include and exclude patterns filter each item's tree (paths relative to the item). A
    /// symlink item is replaced by what it points to when `follow_links` is set. Then: no
    /// item left gives the digest of no bytes (`sha256:e3b0c442…`, BuildKit's empty
    /// selection); one item with the selector's base name gives that item's digest; several
    /// give a digest of their names (paths below the selector's wildcard-free prefix) and
    /// digests.
    ///
    /// Deliberate differences from BuildKit, none of which makes a digest miss a change:
    /// a filtered directory is hashed as a tree (BuildKit hashes a flat list of base names
    /// and entry digests, so moving a file between two filtered directories could keep its
    /// digest); `follow_links` applies to the selected items only (BuildKit also follows
    /// symlinks nested in a selected directory when patterns are given, although `COPY`
    /// copies those as links); a selector ending in `/` still covers the directory's own
    /// entry.
    pub fn checksum(
        &self,
        root: &Path,
        selector: &str,
        opts: &ChecksumOpts,
    ) -> Result<Digest, Error> {
        let started = now_ns();
        let root = canonical_root(root)?;
        let selector_path = clean(&format!("/{selector}"));
        let plain = !opts.wildcard && opts.includes.is_empty() && opts.excludes.is_empty();
        if plain {
            let resolved = resolve_in_root(
                &root,
                OsStr::new(&selector_path),
                opts.follow_links,
                &selector_path,
            )?
            .ok_or_else(|| Error::NotFound {
                path: selector_path.clone(),
            })?;
            let tree = Tree::build(
                join_rel(&root, &resolved),
                &PatternFilter::none(),
                RootMode::Item,
            )?
            .ok_or_else(|| Error::NotFound {
                path: selector_path.clone(),
            })?;
            let mut trees = [tree];
            self.fill(&mut trees, started)?;
            let [tree] = trees;
            return Ok(to_digest(&tree.digest().unwrap_or(EMPTY_CONTENT)));
        }

        let patterns = PatternFilter::new(&opts.includes, &opts.excludes)?;
        let items = if opts.wildcard {
            // Matching the empty name checks the whole pattern, as Go reports it.
            matches(&selector_path, "").map_err(|_| Error::BadSelector {
                selector: selector.to_owned(),
            })?;
            wildcard_items(&root, &selector_path)?
        } else {
            let resolved =
                resolve_in_root(&root, OsStr::new(&selector_path), false, &selector_path)?
                    .ok_or_else(|| Error::NotFound {
                        path: selector_path.clone(),
                    })?;
            vec![Item {
                name: base(&selector_path).to_owned(),
                display: selector_path.clone(),
                resolved,
            }]
        };

        let mut names = Vec::with_capacity(items.len());
        let mut trees = Vec::with_capacity(items.len());
        for item in items {
            let path = join_rel(&root, &item.resolved);
            let is_link = std::fs::symlink_metadata(&path)
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false);
            let tree = if is_link && opts.follow_links {
                // BuildKit hashes the whole target of a followed link, unfiltered.
                let target =
                    resolve_in_root(&root, OsStr::new(&item.display), true, &item.display)?
                        .ok_or_else(|| Error::NotFound {
                            path: item.display.clone(),
                        })?;
                Tree::build(
                    join_rel(&root, &target),
                    &PatternFilter::none(),
                    RootMode::Item,
                )?
            } else {
                Tree::build(path, &patterns, RootMode::Item)?
            };
            // An item that vanished since it was listed is not selected any more.
            if let Some(tree) = tree {
                names.push(item);
                trees.push(tree);
            }
        }
        self.fill(&mut trees, started)?;

        // (name, display path, digest) of the items that are part of the result.
        let mut selected: Vec<(String, &str, Sum)> = Vec::new();
        for (item, tree) in names.iter().zip(&trees) {
            if let Some(digest) = tree.root_kept().then(|| tree.digest()).flatten() {
                selected.push((item.name.clone(), &item.display, digest));
            }
        }
        let sum = match selected.as_slice() {
            [] => EMPTY_CONTENT,
            [(_, display, digest)] if base(display) == base(&selector_path) => *digest,
            _ => {
                let mut items: Vec<(String, Sum)> = selected
                    .into_iter()
                    .map(|(name, _, digest)| (name, digest))
                    .collect();
                items.sort_by(|a, b| a.0.cmp(&b.0));
                selection_digest(&items)
            }
        };
        Ok(to_digest(&sum))
    }

    /// Fills in content sums and counts the work.
    fn fill(&self, trees: &mut [Tree], started: i64) -> Result<(), Error> {
        let stats = content::fill(trees, self.cache.as_ref(), self.threads, started)?;
        self.files_read
            .fetch_add(stats.files_read, Ordering::Relaxed);
        self.bytes_read
            .fetch_add(stats.bytes_read, Ordering::Relaxed);
        self.cache_hits.fetch_add(stats.hits, Ordering::Relaxed);
        let listed: u64 = trees.iter().map(|t| t.dirs_listed).sum();
        self.dirs_listed.fetch_add(listed, Ordering::Relaxed);
        Ok(())
    }
}

/// One entry a wildcard selector matched.
#[derive(Debug)]
struct Item {
    /// The name it is hashed under: its path below the wildcard-free prefix.
    name: String,
    /// Its path as the selector sees it (absolute, through symlinks of the prefix).
    display: String,
    /// Its path relative to the root, with symlinks resolved.
    resolved: PathBuf,
}

/// The entries matching a wildcard selector (`selector` cleaned and absolute). The
/// wildcard-free prefix is resolved inside the root (a final symlink too when wildcards
/// follow); below it, the walk descends only as deep as the pattern reaches and does not
/// look inside matched entries.
fn wildcard_items(root: &Path, selector: &str) -> Result<Vec<Item>, Error> {
    let (prefix, rest) = split_wildcards(selector);
    let Some(resolved_prefix) =
        resolve_in_root(root, OsStr::new(&prefix), !rest.is_empty(), &prefix)?
    else {
        return Ok(Vec::new());
    };
    if rest.is_empty() {
        // Nothing to expand: the prefix itself, if the pattern (with its escapes) names it.
        if !matches(selector, &prefix).unwrap_or(false) {
            return Ok(Vec::new());
        }
        return Ok(vec![Item {
            name: base(&prefix).to_owned(),
            display: prefix,
            resolved: resolved_prefix,
        }]);
    }
    let depth = selector.matches('/').count();
    let mut items = Vec::new();
    let mut pending: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir_path = join_rel(&join_rel(root, &resolved_prefix), &rel);
        for (name, is_dir) in list_dir(&dir_path)? {
            let child = rel.join(&name);
            let child_str = child.to_string_lossy().into_owned();
            let display = join(&[prefix.as_str(), child_str.as_str()]);
            let matched = matches(selector, &display).map_err(|_| Error::BadSelector {
                selector: selector.to_owned(),
            })?;
            if matched {
                items.push(Item {
                    name: child_str,
                    display,
                    resolved: resolved_prefix.join(&child),
                });
            } else if is_dir && display.matches('/').count() < depth {
                pending.push(child);
            }
        }
    }
    Ok(items)
}

/// The root made absolute and free of symlinks; it must be a directory.
fn canonical_root(root: &Path) -> Result<PathBuf, Error> {
    let canonical = std::fs::canonicalize(root).map_err(io_err("resolve", root))?;
    let meta = std::fs::metadata(&canonical).map_err(io_err("stat", &canonical))?;
    if !meta.is_dir() {
        return Err(Error::RootNotDirectory {
            path: root.to_path_buf(),
        });
    }
    Ok(canonical)
}

/// The wall clock in nanoseconds since the epoch (0 before 1970).
fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One hasher serves many threads (the solver checksums several inputs at once).
    #[test]
    fn shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Hasher>();
        assert_send_sync::<StatCache>();
        assert_send_sync::<Error>();
    }
}
