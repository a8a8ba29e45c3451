//! Which entries of a tree are selected: include and exclude patterns as fsutil's filtered
//! walk applies them (the walk that sends a build context), and follow paths.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use kiln_dockerignore::{MatchInfo, PatternMatcher};
use kiln_gostd::path::{base, clean, contains_wildcards, dir, join, matches};

use crate::error::{Error, io_err};
use crate::resolve::is_missing;

/// Characters that make a pattern more than a plain path (fsutil's list for Unix).
const PATTERN_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];

/// One side of the filter (includes or excludes) and whether its walk can be pruned by
/// plain prefixes.
#[derive(Debug)]
struct Side {
    matcher: PatternMatcher,
    /// Includes: no include pattern has wildcards before a final `/*` or `/**`, so a
    /// directory that no pattern starts with holds nothing to include. Excludes: the same
    /// about the exclusions (`!…`), so an excluded directory that no exclusion starts with
    /// holds nothing to include again.
    only_prefixes: bool,
}

/// What the walk remembers about a directory for its children.
#[derive(Debug, Clone, Default)]
pub(crate) struct DirInfo {
    include: MatchInfo,
    exclude: MatchInfo,
}

/// Include and exclude patterns (both optional), relative to the root of a walk.
#[derive(Debug, Default)]
pub(crate) struct PatternFilter {
    include: Option<Side>,
    exclude: Option<Side>,
}

impl PatternFilter {
    /// A filter that selects everything.
    pub(crate) fn none() -> PatternFilter {
        PatternFilter::default()
    }

    /// A filter from `.dockerignore`-syntax patterns. An empty list means "no filter" on
    /// that side.
    pub(crate) fn new(includes: &[String], excludes: &[String]) -> Result<PatternFilter, Error> {
        let include = if includes.is_empty() {
            None
        } else {
            let matcher = PatternMatcher::new(includes).map_err(|source| Error::Pattern {
                kind: "include",
                source,
            })?;
            let only_prefixes = !matcher.patterns().iter().any(|p| {
                !p.exclusion() && without_trailing_glob(p.as_str()).contains(PATTERN_CHARS)
            });
            Some(Side {
                matcher,
                only_prefixes,
            })
        };
        let exclude = if excludes.is_empty() {
            None
        } else {
            let matcher = PatternMatcher::new(excludes).map_err(|source| Error::Pattern {
                kind: "exclude",
                source,
            })?;
            let only_prefixes = !matcher.patterns().iter().any(|p| {
                p.exclusion() && without_trailing_glob(p.as_str()).contains(PATTERN_CHARS)
            });
            Some(Side {
                matcher,
                only_prefixes,
            })
        };
        Ok(PatternFilter { include, exclude })
    }

    /// Whether the root of a walk counts as selected by itself. Exclude patterns never
    /// exclude the root; include patterns never name it (it has no path), so with includes
    /// the root is only there for what it holds.
    pub(crate) fn root_selected(&self) -> bool {
        self.include.is_none()
    }

    /// Decides about the entry at `path` (relative to the root of the walk, `/`-separated),
    /// given what is known about its parent directory. `None`: leave it out, and when it is
    /// a directory do not even look inside. Otherwise whether it is selected by itself, and
    /// (for a directory) what its children need.
    pub(crate) fn decide(
        &self,
        path: &str,
        is_dir: bool,
        parent: &DirInfo,
    ) -> Result<Option<(bool, DirInfo)>, Error> {
        let mut selected = true;
        let mut info = DirInfo::default();
        if let Some(side) = &self.include {
            let (matched, match_info) = side
                .matcher
                .matches_using_parent_results(path, &parent.include)
                .map_err(|source| Error::Pattern {
                    kind: "include",
                    source,
                })?;
            info.include = match_info;
            if !matched {
                if is_dir && side.only_prefixes && !could_hold(&side.matcher, path, false) {
                    return Ok(None);
                }
                selected = false;
            }
        }
        if let Some(side) = &self.exclude {
            let (matched, match_info) = side
                .matcher
                .matches_using_parent_results(path, &parent.exclude)
                .map_err(|source| Error::Pattern {
                    kind: "exclude",
                    source,
                })?;
            info.exclude = match_info;
            if matched {
                if is_dir
                    && (!side.matcher.exclusions()
                        || (side.only_prefixes && !could_hold(&side.matcher, path, true)))
                {
                    return Ok(None);
                }
                selected = false;
            }
        }
        Ok(Some((selected, info)))
    }
}

/// Whether a pattern of the given polarity (`exclusion`: the `!…` ones) lies below the
/// directory `dir`, so that something inside it could match.
fn could_hold(matcher: &PatternMatcher, dir: &str, exclusion: bool) -> bool {
    let dir_slash = format!("{dir}/");
    matcher
        .patterns()
        .iter()
        .filter(|p| p.exclusion() == exclusion)
        .any(|p| format!("{}/", without_trailing_glob(p.as_str())).starts_with(&dir_slash))
}

/// A pattern without a final `/**` or `/*` (fsutil's `patternWithoutTrailingGlob`).
fn without_trailing_glob(pattern: &str) -> &str {
    let p = pattern.strip_suffix("/**").unwrap_or(pattern);
    p.strip_suffix("/*").unwrap_or(p)
}

/// How many symlinks the resolution of follow paths may go through in all.
const MAX_FOLLOW_LINKS: usize = 255;

/// Resolves follow paths into include patterns (fsutil's `FollowLinks`): each path, every
/// symlink met on the way to it (a wildcard in an element matches the directory's
/// entries), and what those symlinks point to, resolved inside `root` in turn. `None` means
/// "no restriction" (one of the paths is the root itself).
pub(crate) fn follow_targets(root: &Path, paths: &[String]) -> Result<Option<Vec<String>>, Error> {
    let mut resolver = Resolver {
        root,
        resolved: BTreeSet::new(),
        links: 0,
    };
    for p in paths {
        resolver.append(p)?;
    }
    let mut out: Vec<String> = Vec::new();
    for p in resolver.resolved {
        if p == "." {
            return Ok(None);
        }
        // Sorted order puts a directory before what is below it.
        if out
            .last()
            .is_some_and(|last| p.starts_with(&format!("{last}/")))
        {
            continue;
        }
        out.push(p);
    }
    Ok(Some(out))
}

struct Resolver<'a> {
    root: &'a Path,
    resolved: BTreeSet<String>,
    links: usize,
}

impl Resolver<'_> {
    fn append(&mut self, p: &str) -> Result<(), Error> {
        // Paths are inside the root: `..` cannot leave it.
        let cleaned = clean(&format!("/{p}"));
        let elements: Vec<&str> = cleaned.split('/').filter(|e| !e.is_empty()).collect();
        if elements.is_empty() {
            self.resolved.insert(".".to_owned());
            return Ok(());
        }
        let mut current = String::new();
        for (i, element) in elements.iter().enumerate() {
            current = join(&[current.as_str(), element]);
            let rest = elements.get(i + 1..).unwrap_or_default().join("/");
            let targets = self.symlink_targets(&current, true)?;
            if (rest.is_empty() || !targets.is_empty()) && self.resolved.contains(&current) {
                return Ok(());
            }
            if !targets.is_empty() {
                self.resolved.insert(current.clone());
                for target in targets {
                    self.links += 1;
                    if self.links > MAX_FOLLOW_LINKS {
                        return Err(Error::TooManyLinks { path: p.to_owned() });
                    }
                    self.append(&join(&[target.as_str(), rest.as_str()]))?;
                }
                return Ok(());
            }
            if rest.is_empty() {
                self.resolved.insert(current);
                return Ok(());
            }
        }
        Ok(())
    }

    /// The targets (as absolute paths inside the root) of the symlink at `p`, or of every
    /// symlink whose name matches the last element of `p` when it has wildcards. Empty when
    /// there is no such symlink.
    fn symlink_targets(&self, p: &str, allow_wildcard: bool) -> Result<Vec<String>, Error> {
        let name = base(p);
        if allow_wildcard && contains_wildcards(name) {
            let parent = dir(p);
            let dir_path = self.root.join(&parent);
            let entries = match std::fs::read_dir(&dir_path) {
                Ok(entries) => entries,
                Err(e) if is_missing(&e) => return Ok(Vec::new()),
                Err(e) => return Err(io_err("readdir", dir_path)(e)),
            };
            // A malformed pattern matches nothing here, as in fsutil.
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.map_err(io_err("readdir", &dir_path))?;
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            let mut out = Vec::new();
            for entry_name in names {
                if matches(name, &entry_name) == Ok(true) {
                    out.extend(
                        self.symlink_targets(&join(&[parent.as_str(), &entry_name]), false)?,
                    );
                }
            }
            return Ok(out);
        }
        let path = self.root.join(p);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if is_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err(io_err("lstat", path)(e)),
        };
        if !meta.file_type().is_symlink() {
            return Ok(Vec::new());
        }
        let link = std::fs::read_link(&path).map_err(io_err("readlink", &path))?;
        let link = OsStr::from_bytes(link.as_os_str().as_bytes()).to_string_lossy();
        let link = clean(&link);
        if link.starts_with('/') {
            Ok(vec![link])
        } else {
            Ok(vec![join(&["/", dir(p).as_str(), link.as_str()])])
        }
    }
}
