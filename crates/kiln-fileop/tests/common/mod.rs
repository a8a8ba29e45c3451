//! Shared test helpers: trees written from a compact text spec, and a deterministic dump of a
//! tree (the expected outputs are insta snapshots of such dumps).
//!
//! Spec lines (one entry each; parents must come first):
//!
//! ```text
//! d /dir 755 [uid:gid] [@mtime]
//! f /dir/file 644 "content" [uid:gid] [@mtime]
//! l /dir/link -> target [uid:gid]
//! h /dir/other = /dir/file        (hard link)
//! p /dir/fifo 600                 (named pipe)
//! x /dir/file user.key=value      (extended attribute)
//! ```
//!
//! Without an owner an entry belongs to 0:0; without `@mtime` its times are [`FIXED_TIME`].
//! Directory times are applied after all entries exist.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_fileop::{Error, UserLookup};
use kiln_llb::ops::{ChownOpt, FileActionCopy, UserOpt};
use rustix::fs::{self as rfs, AtFlags, Mode, Timespec, Timestamps};

/// The time given to spec entries without `@mtime`.
pub const FIXED_TIME: i64 = 1_000_000_000;

/// A temporary directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kiln-fileop-")
        .tempdir()
        .expect("create a temporary directory")
}

fn times(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rfs::utimensat(
        rfs::CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("utime {}: {e}", path.display()));
}

fn owner_of(word: Option<&str>) -> Option<(u32, u32)> {
    let word = word?;
    let (u, g) = word.split_once(':')?;
    Some((u.parse().ok()?, g.parse().ok()?))
}

/// Splits a spec line into words; a double-quoted word may contain spaces and `\n`.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            word.push('"');
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => word.push('\n'),
                        Some(other) => word.push(other),
                        None => {}
                    },
                    other => word.push(other),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
    out
}

/// Writes the entries of `spec` below `root`.
pub fn build(root: &Path, spec: &str) {
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    for line in spec.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let w = words(line);
        let get = |i: usize| w.get(i).map(String::as_str);
        let kind = get(0).unwrap_or("");
        let rel = get(1).unwrap_or("").trim_start_matches('/');
        let path = root.join(rel);
        let rest: Vec<&str> = w.iter().skip(2).map(String::as_str).collect();
        let owner = rest
            .iter()
            .find(|r| r.contains(':') && !r.contains('='))
            .copied();
        let mtime = rest
            .iter()
            .find_map(|r| r.strip_prefix('@'))
            .and_then(|t| t.parse().ok())
            .unwrap_or(FIXED_TIME);
        let mode = || u32::from_str_radix(get(2).unwrap_or("644"), 8).expect("octal mode");
        match kind {
            "d" => {
                fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {rel}: {e}"));
                fs::set_permissions(&path, fs::Permissions::from_mode(mode())).expect("chmod");
                dir_times.push((path.clone(), mtime));
            }
            "f" => {
                let content = rest.iter().find_map(|r| r.strip_prefix('"')).unwrap_or("");
                fs::write(&path, content).unwrap_or_else(|e| panic!("write {rel}: {e}"));
                fs::set_permissions(&path, fs::Permissions::from_mode(mode())).expect("chmod");
            }
            "l" => {
                let target = get(3).unwrap_or("");
                std::os::unix::fs::symlink(target, &path)
                    .unwrap_or_else(|e| panic!("symlink {rel}: {e}"));
            }
            "h" => {
                let existing = root.join(get(3).unwrap_or("").trim_start_matches('/'));
                fs::hard_link(existing, &path).unwrap_or_else(|e| panic!("link {rel}: {e}"));
                continue;
            }
            "p" => {
                rfs::mknodat(
                    rfs::CWD,
                    &path,
                    rfs::FileType::Fifo,
                    Mode::from_raw_mode(mode()),
                    0,
                )
                .unwrap_or_else(|e| panic!("mkfifo {rel}: {e}"));
                rfs::chmodat(
                    rfs::CWD,
                    &path,
                    Mode::from_raw_mode(mode()),
                    AtFlags::empty(),
                )
                .expect("chmod");
            }
            "x" => {
                let (key, value) = get(2).and_then(|kv| kv.split_once('=')).expect("key=value");
                xattr_set(&path, key, value.as_bytes());
                continue;
            }
            other => panic!("unknown spec kind {other:?} in {line:?}"),
        }
        let (uid, gid) = owner_of(owner).unwrap_or((0, 0));
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).expect("lchown");
        if kind == "d" {
            continue;
        }
        // chown clears set-id bits: restore the mode.
        if kind == "f" {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode())).expect("chmod");
        }
        times(&path, mtime);
    }
    for (path, mtime) in dir_times.into_iter().rev() {
        times(&path, mtime);
    }
}

fn xattr_set(path: &Path, key: &str, value: &[u8]) {
    rfs::lsetxattr(path, key, value, rfs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {key} on {}: {e}", path.display()));
}

fn xattrs(path: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let Ok(n) = rfs::llistxattr(path, &mut buf[..]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in buf
        .get(..n)
        .unwrap_or(&[])
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let key = String::from_utf8_lossy(name).into_owned();
        if !key.starts_with("user.") && key != "security.capability" {
            continue;
        }
        let mut value = vec![0u8; 4096];
        let len = rfs::lgetxattr(path, OsStr::from_bytes(name), &mut value[..]).unwrap_or(0);
        out.push(format!(
            "{key}={}",
            String::from_utf8_lossy(value.get(..len).unwrap_or(&[]))
        ));
    }
    out.sort();
    out
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A deterministic listing of everything below `root` (not `root` itself), one line per
/// entry in path order: type, mode, owner, modification time (`@now` for times set during the
/// test run), then the content, link target or hard-link group, and user extended attributes.
pub fn dump(root: &Path) -> String {
    let started = now() - 3600;
    let mut entries: Vec<PathBuf> = Vec::new();
    collect(root, &mut entries);
    entries.sort();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut out = String::new();
    for path in entries {
        let rel = format!(
            "/{}",
            path.strip_prefix(root)
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "link"
        } else if ft.is_file() {
            "file"
        } else {
            "other"
        };
        let mtime = if meta.mtime() >= started {
            "@now".to_owned()
        } else {
            format!("@{}", meta.mtime())
        };
        let mut line = if ft.is_symlink() {
            format!("{rel} link {}:{} {mtime}", meta.uid(), meta.gid())
        } else {
            format!(
                "{rel} {kind} {:04o} {}:{} {mtime}",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            )
        };
        if ft.is_symlink() {
            let target = fs::read_link(&path).expect("readlink");
            line.push_str(&format!(" -> {}", target.display()));
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                match inodes.get(&key) {
                    Some(first) => line.push_str(&format!(" hardlink={first}")),
                    None => {
                        inodes.insert(key, rel.clone());
                    }
                }
            }
            let data = fs::read(&path).expect("read");
            if data.len() <= 64 {
                line.push_str(&format!(" {:?}", String::from_utf8_lossy(&data)));
            } else {
                line.push_str(&format!(" ({} bytes)", data.len()));
            }
        }
        for x in xattrs(&path) {
            line.push_str(&format!(" [{x}]"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(read) = fs::read_dir(dir) else {
        return;
    };
    for entry in read.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        out.push(path.clone());
        if is_dir {
            collect(&path, out);
        }
    }
}

/// A copy action with BuildKit's "unset" values (`mode` and `timestamp` -1), everything else
/// off.
pub fn copy_action(src: &str, dest: &str) -> FileActionCopy {
    FileActionCopy {
        src: src.to_owned(),
        dest: dest.to_owned(),
        mode: -1,
        timestamp: -1,
        ..FileActionCopy::default()
    }
}

/// A copy action as the Dockerfile frontend emits it for `COPY`.
pub fn dockerfile_copy(src: &str, dest: &str) -> FileActionCopy {
    FileActionCopy {
        follow_symlink: true,
        dir_copy_contents: true,
        create_dest_path: true,
        allow_wildcard: true,
        allow_empty_wildcard: true,
        ..copy_action(src, dest)
    }
}

/// An owner by numeric ids.
pub fn chown_ids(uid: u32, gid: u32) -> ChownOpt {
    ChownOpt {
        user: Some(UserOpt::ById(uid)),
        group: Some(UserOpt::ById(gid)),
    }
}

/// A lookup that must not be called.
pub struct NoUsers;

impl UserLookup for NoUsers {
    fn lookup(&self, opt: &ChownOpt) -> Result<(u32, u32), Error> {
        Err(Error::Lookup(format!("unexpected lookup of {opt:?}")))
    }
}

/// The outcome of an action as text: the error, or nothing.
pub fn outcome(result: Result<(), Error>) -> String {
    match result {
        Ok(()) => String::new(),
        Err(e) => format!("error: {e}\n"),
    }
}
