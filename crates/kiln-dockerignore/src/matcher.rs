//! The pattern list and its matching rules.

use kiln_gostd::path::{clean as clean_path, dir};

use crate::error::Error;
use crate::glob::{self, Compiled, MatchType};

/// One `.dockerignore` pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    match_type: MatchType,
    compiled: Compiled,
}

impl Pattern {
    /// The pattern as it is matched: trimmed, path-cleaned, without its leading `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is an exclusion (`!pattern`): a path it matches is included again.
    pub fn exclusion(&self) -> bool {
        self.exclusion
    }

    /// How the pattern is matched (upstream's classification).
    pub fn match_type(&self) -> MatchType {
        self.match_type
    }

    /// The regular expression of a [`MatchType::Regex`] pattern, or `None`.
    pub fn regex(&self) -> Option<&str> {
        match &self.compiled {
            Compiled::Regex(re) => Some(re.as_str()),
            _ => None,
        }
    }

    /// Whether the pattern matches `path` itself (no parent directories considered). The
    /// path must be cleaned and `/`-separated.
    ///
    /// Fails when the pattern is malformed in a way that only shows when it is used (for
    /// example the reversed range in `[z-a]`).
    pub fn matches(&self, path: &str) -> Result<bool, Error> {
        let pattern = self.cleaned.as_bytes();
        let path_bytes = path.as_bytes();
        match &self.compiled {
            Compiled::Exact => Ok(path == self.cleaned),
            Compiled::Prefix => {
                let prefix = pattern
                    .get(..pattern.len().saturating_sub(2))
                    .unwrap_or(&[]);
                Ok(path_bytes.starts_with(prefix))
            }
            Compiled::Suffix => {
                let suffix = pattern.get(2..).unwrap_or(&[]);
                if path_bytes.ends_with(suffix) {
                    return Ok(true);
                }
                // `**/foo` also matches `foo`.
                Ok(suffix.first() == Some(&b'/') && suffix.get(1..) == Some(path_bytes))
            }
            Compiled::Regex(re) => Ok(re.is_match(path)),
            Compiled::Invalid(reason) => Err(Error::BadPattern {
                pattern: self.display(),
                reason: reason.clone(),
            }),
        }
    }

    /// The pattern as the user would recognise it, with its `!`.
    fn display(&self) -> String {
        if self.exclusion {
            format!("!{}", self.cleaned)
        } else {
            self.cleaned.clone()
        }
    }

    /// Whether the pattern matches `path` or, when `path` has parent directories, one of
    /// them (`dir` matches `dir/file`).
    fn matches_self_or_parent(&self, path: &str) -> Result<bool, Error> {
        if self.matches(path)? {
            return Ok(true);
        }
        let parent = dir(path);
        if parent == "." {
            return Ok(false);
        }
        let mut prefix = String::with_capacity(parent.len());
        for (i, part) in parent.split('/').enumerate() {
            if i > 0 {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.matches(&prefix)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// What a tree walk remembers about a directory, so that its children are matched without
/// re-testing every parent: for each pattern, whether it matched the directory or one of
/// its parents.
///
/// The default value means "nothing known"; matching then tests the parents itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// A list of `.dockerignore` patterns, applied in order; the last pattern that matches a
/// path decides whether it is excluded.
#[derive(Debug, Clone)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl PatternMatcher {
    /// Builds a matcher from patterns as they come from [`crate::read_ignore_file`] (or
    /// from anywhere else).
    ///
    /// Each pattern is trimmed; empty ones are dropped. It is then path-cleaned
    /// ([`clean_path`]); a leading `!` makes it an exclusion. Fails on a lone `!` and on a
    /// pattern that Go's `filepath.Match` calls malformed (such as `[`, `[]a]`, `[x-]` or a
    /// trailing `\`). A few other malformed patterns (a reversed range like `[z-a]`, an
    /// escape with no meaning like `\1`) are accepted here, as upstream does, and make
    /// matching fail whenever they are evaluated.
    pub fn new(patterns: &[impl AsRef<str>]) -> Result<Self, Error> {
        let mut out = Vec::with_capacity(patterns.len());
        let mut exclusions = false;
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let cleaned = clean_path(p);
            let (exclusion, body) = match cleaned.strip_prefix('!') {
                Some("") => return Err(Error::IllegalExclusion),
                Some(body) => (true, body),
                None => (false, cleaned.as_str()),
            };
            exclusions |= exclusion;
            glob::validate(body).map_err(|reason| Error::BadPattern {
                pattern: p.to_owned(),
                reason,
            })?;
            let (match_type, compiled) = glob::compile(body);
            out.push(Pattern {
                cleaned: body.to_owned(),
                exclusion,
                match_type,
                compiled,
            });
        }
        Ok(PatternMatcher {
            patterns: out,
            exclusions,
        })
    }

    /// Whether `path` is excluded: some pattern matches it or one of its parent
    /// directories, and no later exclusion pattern (`!…`) matches it or a parent.
    ///
    /// `path` is `/`-separated and relative to the context root; it is cleaned first. The
    /// root itself (`.`, or the empty path) is never excluded.
    pub fn matches_or_parent_matches(&self, path: &str) -> Result<bool, Error> {
        let path = clean_path(path);
        if path == "." {
            return Ok(false);
        }
        let mut matched = false;
        for pattern in &self.patterns {
            // An inclusion cannot change an already excluded path, nor an exclusion a path
            // that is not excluded, so such patterns are skipped (and not evaluated, which
            // matters for patterns that fail only when used).
            if pattern.exclusion != matched {
                continue;
            }
            if pattern.matches_self_or_parent(&path)? {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// Same answer as [`PatternMatcher::matches_or_parent_matches`], for tree walks: pass
    /// the [`MatchInfo`] returned for the parent directory (or `MatchInfo::default()` for a
    /// path whose parent was not matched, such as a top-level entry), and keep the returned
    /// one for the children of `path`.
    ///
    /// Fails if `parent` comes from a matcher with a different number of patterns.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), Error> {
        let parent_matched = &parent.parent_matched;
        if !parent_matched.is_empty() && parent_matched.len() != self.patterns.len() {
            return Err(Error::ParentInfoLength {
                got: parent_matched.len(),
                expected: self.patterns.len(),
            });
        }
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        let path = clean_path(path);
        if path == "." {
            return Ok((false, info));
        }
        let mut matched = false;
        for (i, pattern) in self.patterns.iter().enumerate() {
            // When the parent matched this pattern there is no need to test it again.
            let mut hit = parent_matched.get(i).copied().unwrap_or(false);
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = if parent_matched.is_empty() {
                    pattern.matches_self_or_parent(&path)?
                } else {
                    pattern.matches(&path)?
                };
            }
            if let Some(slot) = info.parent_matched.get_mut(i) {
                *slot = hit;
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok((matched, info))
    }

    /// Whether any pattern is an exclusion (`!…`). A walker must then descend into
    /// excluded directories, because something below them may be included again.
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// The patterns kept (empty ones dropped), in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }
}
