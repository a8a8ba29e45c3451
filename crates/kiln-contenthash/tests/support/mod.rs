//! Shared test helpers: trees built from a small description, with fixed modes and owners.
//!
//! The tests run as root (as CI does): owners are set explicitly with `lchown`.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::Path;

use kiln_contenthash::{ChecksumOpts, Filter, Hasher};
use tempfile::TempDir;

/// One entry of a test tree. Parent directories that are not listed are made with mode
/// 0755.
#[derive(Debug, Clone, Copy)]
pub enum Spec<'a> {
    /// A regular file: path, content, mode.
    File(&'a str, &'a str, u32),
    /// A directory: path, mode.
    Dir(&'a str, u32),
    /// A symlink: path, target.
    Link(&'a str, &'a str),
}

/// A fresh temporary directory on a real disk (not tmpfs), mode 0755, owned by 0:0.
pub fn tempdir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("kiln-contenthash-")
        .tempdir_in("/var/tmp")
        .expect("create a temporary directory under /var/tmp");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod root");
    lchown(dir.path(), Some(0), Some(0)).expect("chown root (tests run as root)");
    dir
}

/// Writes the entries of `spec` under `root`.
pub fn write(root: &Path, spec: &[Spec<'_>]) {
    let mut dirs = Vec::new();
    for entry in spec {
        let path = match entry {
            Spec::File(p, _, _) | Spec::Dir(p, _) | Spec::Link(p, _) => root.join(p),
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent directories");
        }
        match entry {
            Spec::File(_, content, mode) => {
                fs::write(&path, content).expect("write file");
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).expect("chmod");
            }
            Spec::Dir(_, mode) => {
                fs::create_dir_all(&path).expect("create directory");
                dirs.push((path.clone(), *mode));
            }
            Spec::Link(_, target) => symlink(target, &path).expect("create symlink"),
        }
    }
    // Owners, and modes of implicit directories, everywhere below the root.
    fix_owners(root);
    for (path, mode) in dirs.iter().rev() {
        fs::set_permissions(path, fs::Permissions::from_mode(*mode)).expect("chmod directory");
    }
}

fn fix_owners(dir: &Path) {
    for entry in fs::read_dir(dir).expect("list") {
        let entry = entry.expect("list entry");
        let path = entry.path();
        lchown(&path, Some(0), Some(0)).expect("lchown (tests run as root)");
        let file_type = entry.file_type().expect("file type");
        if file_type.is_dir() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
            fix_owners(&path);
        }
    }
}

/// A new temporary tree with the entries of `spec`.
pub fn tree(spec: &[Spec<'_>]) -> TempDir {
    let dir = tempdir();
    write(dir.path(), spec);
    dir
}

/// What a digest probe looks at.
#[derive(Debug, Clone)]
pub enum Probe {
    /// `tree_digest` with this filter.
    Tree(Filter),
    /// `checksum` of a selector with options.
    Checksum(&'static str, ChecksumOpts),
}

impl Probe {
    /// The digest (or the error message) of this probe on `root`.
    pub fn run(&self, hasher: &Hasher, root: &Path) -> Result<String, String> {
        let result = match self {
            Probe::Tree(filter) => hasher.tree_digest(root, filter),
            Probe::Checksum(selector, opts) => hasher.checksum(root, selector, opts),
        };
        result.map(|d| d.to_string()).map_err(|e| e.to_string())
    }
}

/// A plain checksum probe.
pub fn sel(selector: &'static str) -> Probe {
    Probe::Checksum(selector, ChecksumOpts::default())
}

/// A checksum probe that follows a final symlink.
pub fn follow(selector: &'static str) -> Probe {
    Probe::Checksum(
        selector,
        ChecksumOpts {
            follow_links: true,
            ..ChecksumOpts::default()
        },
    )
}

/// A wildcard checksum probe.
pub fn wild(selector: &'static str) -> Probe {
    Probe::Checksum(
        selector,
        ChecksumOpts {
            wildcard: true,
            ..ChecksumOpts::default()
        },
    )
}

/// A checksum probe with exclude patterns.
pub fn excluding(selector: &'static str, patterns: &[&str]) -> Probe {
    Probe::Checksum(
        selector,
        ChecksumOpts {
            excludes: patterns.iter().map(|s| s.to_string()).collect(),
            ..ChecksumOpts::default()
        },
    )
}

/// A checksum probe with include patterns.
pub fn including(selector: &'static str, patterns: &[&str]) -> Probe {
    Probe::Checksum(
        selector,
        ChecksumOpts {
            includes: patterns.iter().map(|s| s.to_string()).collect(),
            ..ChecksumOpts::default()
        },
    )
}

/// A `tree_digest` probe without filter.
pub fn whole() -> Probe {
    Probe::Tree(Filter::default())
}

/// Strings from string slices.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The digest of no bytes: BuildKit's digest of an empty selection.
pub const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
