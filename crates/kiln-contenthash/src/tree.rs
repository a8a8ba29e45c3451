//! A tree of entries, as selected by a filter, and its digests.
//!
//! Building a tree lists directories and `lstat`s entries; it never follows a symlink and
//! never reads file content. Content sums are filled in afterwards (see `content`), then
//! [`Tree::digest`] computes the digests bottom-up.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::encode::{Sum, dir_digest, entry_digest};
use crate::error::{Error, io_err};
use crate::filter::{DirInfo, PatternFilter};
use crate::meta::{Kind, Meta, lstat};
use crate::resolve::is_missing;

/// One entry of a tree.
#[derive(Debug)]
pub(crate) struct Node {
    /// The path below the tree's base (empty for the base itself).
    pub(crate) rel: PathBuf,
    pub(crate) meta: Meta,
    /// Children in byte order of their names (directories only).
    pub(crate) children: Vec<usize>,
    /// Selected by the filter by itself.
    pub(crate) selected: bool,
    /// Part of the result: selected, or a directory with something kept below it.
    pub(crate) kept: bool,
    /// The sha256 of the content (kept regular files, once read or found in the cache).
    pub(crate) content: Option<Sum>,
}

/// What the root of a tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RootMode {
    /// A build context: always kept, and its own metadata does not count.
    Context,
    /// A selected item (a file, a directory, anything): its metadata counts, and with
    /// include patterns it is only kept for what it holds.
    Item,
}

/// The entries below (and including) one base path; node 0 is the base. A child always has
/// a larger index than its parent.
#[derive(Debug)]
pub(crate) struct Tree {
    /// Absolute and free of symlinks, so that `base.join(rel)` names each entry directly.
    pub(crate) base: PathBuf,
    pub(crate) nodes: Vec<Node>,
    /// How many directories were listed to build the tree.
    pub(crate) dirs_listed: u64,
    mode: RootMode,
}

impl Tree {
    /// Lists the tree at `base`, keeping what `filter` selects (patterns are matched against
    /// paths relative to `base`). `None` when `base` does not exist.
    pub(crate) fn build(
        base: PathBuf,
        filter: &PatternFilter,
        mode: RootMode,
    ) -> Result<Option<Tree>, Error> {
        let Some(meta) = lstat(&base)? else {
            return Ok(None);
        };
        let root_is_dir = meta.kind == Kind::Dir;
        let mut nodes = vec![Node {
            rel: PathBuf::new(),
            meta,
            children: Vec::new(),
            selected: mode == RootMode::Context || filter.root_selected(),
            kept: false,
            content: None,
        }];
        // What each directory waiting to be listed needs for its children.
        let mut pending: Vec<(usize, DirInfo)> = Vec::new();
        if root_is_dir {
            pending.push((0, DirInfo::default()));
        }
        let mut dirs_listed = 0;
        while let Some((index, info)) = pending.pop() {
            dirs_listed += 1;
            let rel = nodes.get(index).map(|n| n.rel.clone()).unwrap_or_default();
            let dir_path = join_rel(&base, &rel);
            for (name, is_dir) in list_dir(&dir_path)? {
                let child_rel = rel.join(&name);
                let match_path = child_rel.to_string_lossy();
                let Some((selected, child_info)) = filter.decide(&match_path, is_dir, &info)?
                else {
                    continue;
                };
                if !selected && !is_dir {
                    continue;
                }
                // Gone since the listing: as if it had never been there.
                let Some(meta) = lstat(&join_rel(&base, &child_rel))? else {
                    continue;
                };
                let child_is_dir = meta.kind == Kind::Dir;
                if !selected && !child_is_dir {
                    continue;
                }
                let child = nodes.len();
                nodes.push(Node {
                    rel: child_rel,
                    meta,
                    children: Vec::new(),
                    selected,
                    kept: false,
                    content: None,
                });
                if let Some(parent) = nodes.get_mut(index) {
                    parent.children.push(child);
                }
                if child_is_dir {
                    pending.push((child, child_info));
                }
            }
        }
        // Children come after their parents, so one backwards pass settles what is kept.
        for i in (0..nodes.len()).rev() {
            let Some(node) = nodes.get(i) else { continue };
            let kept = node.selected
                || node
                    .children
                    .iter()
                    .any(|&c| nodes.get(c).is_some_and(|child| child.kept));
            if let Some(node) = nodes.get_mut(i) {
                node.kept = kept;
            }
        }
        Ok(Some(Tree {
            base,
            nodes,
            dirs_listed,
            mode,
        }))
    }

    /// Whether the tree's root is part of the result.
    pub(crate) fn root_kept(&self) -> bool {
        self.nodes.first().is_some_and(|n| n.kept)
    }

    /// The regular files of the result whose content must be known: (node index, absolute
    /// path).
    pub(crate) fn files(&self) -> impl Iterator<Item = (usize, PathBuf)> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.kept && n.meta.kind == Kind::File)
            .map(|(i, n)| (i, join_rel(&self.base, &n.rel)))
    }

    /// The digest of the tree's root, once every kept file has its content sum; `None` when
    /// the root is not part of the result.
    pub(crate) fn digest(&self) -> Option<Sum> {
        let mut digests: Vec<Option<Sum>> = vec![None; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate().rev() {
            if !node.kept {
                continue;
            }
            let own = entry_digest(&node.meta, node.content.as_ref());
            let digest = if node.meta.kind == Kind::Dir {
                let header = (i != 0 || self.mode == RootMode::Item).then_some(&own);
                let children: Vec<(&[u8], &Sum)> = node
                    .children
                    .iter()
                    .filter_map(|&c| {
                        let child = self.nodes.get(c)?;
                        let digest = digests.get(c)?.as_ref()?;
                        let name = child.rel.file_name()?.as_bytes();
                        Some((name, digest))
                    })
                    .collect();
                dir_digest(header, children.into_iter())
            } else {
                own
            };
            if let Some(slot) = digests.get_mut(i) {
                *slot = Some(digest);
            }
        }
        digests.into_iter().next().flatten()
    }
}

/// `base` joined with a relative path; `base` itself for the empty path (`Path::join` would
/// add a trailing `/`, which makes opening a file fail).
pub(crate) fn join_rel(base: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

/// The entries of a directory, sorted by name, with whether each looks like a directory
/// (from the listing's type, without following symlinks). A directory that vanished is
/// empty.
pub(crate) fn list_dir(path: &Path) -> Result<Vec<(OsString, bool)>, Error> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if is_missing(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io_err("readdir", path)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("readdir", path))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        out.push((entry.file_name(), is_dir));
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}
