//! Helpers shared by the integration tests: temporary trees, trees built from JSON specs,
//! tree snapshots for comparisons, tar listings, and hand-made (malicious) tar streams.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// A temporary directory on a real file system (not tmpfs), as overlayfs and trusted xattrs need.
pub fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kiln-diff-test-")
        .tempdir_in("/var/tmp")
        .expect("create a temporary directory in /var/tmp")
}

/// Path of a test data file.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn num(e: &Value, key: &str) -> i64 {
    e.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn text<'a>(e: &'a Value, key: &str) -> &'a str {
    e.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Builds the entries of a spec (the format of `tests/data/gotar/cases.json`) under `root`:
/// types, contents, owners, modes, xattrs (hex values) and times with nanoseconds. Entries of
/// type `whiteout` are skipped.
pub fn build_tree(root: &Path, entries: &[Value]) {
    for e in entries {
        let kind = text(e, "type");
        if kind == "whiteout" {
            continue;
        }
        let path = root.join(text(e, "path"));
        match kind {
            "dir" => fs::create_dir_all(&path).unwrap(),
            "file" => fs::write(&path, text(e, "content")).unwrap(),
            "symlink" => std::os::unix::fs::symlink(text(e, "target"), &path).unwrap(),
            "hardlink" => {
                fs::hard_link(root.join(text(e, "target")), &path).unwrap();
                continue;
            }
            "char" | "block" | "fifo" => {
                let ft = match kind {
                    "char" => FileType::CharacterDevice,
                    "block" => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(num(e, "major") as u32, num(e, "minor") as u32);
                rustix::fs::mknodat(CWD, &path, ft, Mode::from_raw_mode(0o600), dev).unwrap();
            }
            other => panic!("unknown spec type {other}"),
        }
        set_meta(&path, e, kind == "symlink");
    }
    // Times last, children before parents, so that nothing disturbs them afterwards.
    for e in entries.iter().rev() {
        let kind = text(e, "type");
        if kind == "whiteout" || kind == "hardlink" {
            continue;
        }
        let mt = e
            .get("mtime")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let ts = Timespec {
            tv_sec: mt.first().and_then(Value::as_i64).unwrap_or(0),
            tv_nsec: mt.get(1).and_then(Value::as_i64).unwrap_or(0),
        };
        let path = root.join(text(e, "path"));
        rustix::fs::utimensat(
            CWD,
            &path,
            &Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
}

fn set_meta(path: &Path, e: &Value, symlink: bool) {
    rustix::fs::chownat(
        CWD,
        path,
        Some(rustix::process::Uid::from_raw(num(e, "uid") as u32)),
        Some(rustix::process::Gid::from_raw(num(e, "gid") as u32)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    if let Some(xattrs) = e.get("xattrs").and_then(Value::as_object) {
        for (k, v) in xattrs {
            let value = hex::decode(v.as_str().unwrap()).unwrap();
            xattr::set(path, k, &value).unwrap();
        }
    }
    if !symlink {
        rustix::fs::chmodat(
            CWD,
            path,
            Mode::from_raw_mode(num(e, "mode") as u32),
            AtFlags::empty(),
        )
        .unwrap();
    }
}

/// Sets the modification (and access) time of `path` without following symlinks.
pub fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let ts = Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// What a comparison of two trees looks at for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub content: String,
    pub rdev: (u32, u32),
    pub xattrs: BTreeMap<String, String>,
    /// For the second and later names of a hard-linked inode: the first name.
    pub link_of: Option<String>,
}

/// A description of every path below `root` (not `root` itself), keyed by relative path.
/// Directory sizes and access times are left out; modification times are whole seconds.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let meta = fs::symlink_metadata(&dir).unwrap();
        if meta.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for name in names.into_iter().rev() {
                stack.push(rel.join(&name));
            }
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        let ft = meta.file_type();
        let key = rel.to_string_lossy().into_owned();
        let (kind, content) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_file() {
            let bytes = fs::read(&dir).unwrap();
            ("file", format!("{:x}", Sha256::digest(&bytes)))
        } else if ft.is_symlink() {
            (
                "symlink",
                fs::read_link(&dir).unwrap().to_string_lossy().into_owned(),
            )
        } else if ft.is_char_device() {
            ("char", String::new())
        } else if ft.is_block_device() {
            ("block", String::new())
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            ("other", String::new())
        };
        let mut link_of = None;
        if !ft.is_dir() && meta.nlink() > 1 {
            let id = (meta.dev(), meta.ino());
            match inodes.get(&id) {
                Some(first) => link_of = Some(first.clone()),
                None => {
                    inodes.insert(id, key.clone());
                }
            }
        }
        let mut xattrs = BTreeMap::new();
        for name in xattr::list(&dir).unwrap() {
            let n = name.as_bytes();
            if n.starts_with(b"trusted.overlay.") || n == b"security.selinux" {
                continue;
            }
            if let Some(v) = xattr::get(&dir, &name).unwrap() {
                xattrs.insert(name.to_string_lossy().into_owned(), hex::encode(v));
            }
        }
        out.insert(
            key,
            Node {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: meta.mtime(),
                content,
                rdev: (
                    rustix::fs::major(meta.rdev()),
                    rustix::fs::minor(meta.rdev()),
                ),
                xattrs,
                link_of,
            },
        );
    }
    out
}

/// Lists the differences between two snapshots, one line each.
pub fn compare(expected: &BTreeMap<String, Node>, actual: &BTreeMap<String, Node>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in expected {
        match actual.get(k) {
            None => out.push(format!("missing {k}")),
            Some(a) if a != v => out.push(format!("{k}: expected {v:?}, got {a:?}")),
            Some(_) => {}
        }
    }
    for k in actual.keys() {
        if !expected.contains_key(k) {
            out.push(format!("unexpected {k}"));
        }
    }
    out
}

/// A readable listing of every raw header of a tar stream (PAX extended headers included),
/// for snapshots and failure messages.
pub fn listing(tar_bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut archive = tar::Archive::new(tar_bytes);
    let mut entries = archive.entries().unwrap().raw(true);
    for entry in entries.by_ref() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let kind = h.entry_type().as_byte() as char;
        let format = if h.as_ustar().is_some() {
            "ustar"
        } else if h.as_gnu().is_some() {
            "gnu"
        } else {
            "v7"
        };
        let line = format!(
            "{kind} {format} {:?} mode={:o} uid={} gid={} size={} mtime={} link={:?} dev={:?}/{:?}",
            String::from_utf8_lossy(&h.path_bytes()),
            h.mode().unwrap_or(0),
            h.uid().unwrap_or(0),
            h.gid().unwrap_or(0),
            h.size().unwrap_or(0),
            h.mtime().unwrap_or(0),
            h.link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned()),
            h.device_major().ok().flatten(),
            h.device_minor().ok().flatten(),
        );
        out.push_str(&line);
        out.push('\n');
        if kind == 'x' {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            for rec in String::from_utf8_lossy(&data).lines() {
                out.push_str("    ");
                out.push_str(&rec.escape_debug().to_string());
                out.push('\n');
            }
        }
    }
    out
}

/// One entry of a hand-made tar stream.
#[derive(Debug, Clone, Default)]
pub struct Raw {
    pub name: Vec<u8>,
    pub typeflag: u8,
    pub linkname: Vec<u8>,
    pub data: Vec<u8>,
    pub mode: u32,
    pub pax: Vec<(String, Vec<u8>)>,
}

impl Raw {
    pub fn file(name: &str, data: &str) -> Raw {
        Raw {
            name: name.into(),
            typeflag: b'0',
            data: data.into(),
            mode: 0o644,
            ..Raw::default()
        }
    }
    pub fn dir(name: &str) -> Raw {
        Raw {
            name: name.into(),
            typeflag: b'5',
            mode: 0o755,
            ..Raw::default()
        }
    }
    pub fn symlink(name: &str, target: &str) -> Raw {
        Raw {
            name: name.into(),
            typeflag: b'2',
            linkname: target.into(),
            mode: 0o777,
            ..Raw::default()
        }
    }
    pub fn hardlink(name: &str, target: &str) -> Raw {
        Raw {
            name: name.into(),
            typeflag: b'1',
            linkname: target.into(),
            mode: 0o644,
            ..Raw::default()
        }
    }
    pub fn with_pax(mut self, key: &str, value: &[u8]) -> Raw {
        self.pax.push((key.to_string(), value.to_vec()));
        self
    }
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    field[..width].copy_from_slice(s.as_bytes());
}

fn header(name: &[u8], typeflag: u8, linkname: &[u8], size: u64, mode: u32) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_600_000_000);
    h[156] = typeflag;
    let l = linkname.len().min(100);
    h[157..157 + l].copy_from_slice(&linkname[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// Writes a tar stream with exactly the given names (no sanitising at all): the way an
/// attacker would. Long names and PAX records go through a PAX extended header.
pub fn raw_tar(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut pax = e.pax.clone();
        if e.name.len() > 100 {
            pax.push(("path".into(), e.name.clone()));
        }
        if e.linkname.len() > 100 {
            pax.push(("linkpath".into(), e.linkname.clone()));
        }
        if !pax.is_empty() {
            let mut data = Vec::new();
            for (k, v) in &pax {
                let body_len = k.len() + v.len() + 3;
                let mut len = body_len + 1;
                while body_len + len.to_string().len() != len {
                    len = body_len + len.to_string().len();
                }
                data.extend_from_slice(format!("{len} {k}=").as_bytes());
                data.extend_from_slice(v);
                data.push(b'\n');
            }
            out.extend_from_slice(&header(
                b"PaxHeaders/x",
                b'x',
                b"",
                data.len() as u64,
                0o644,
            ));
            out.extend_from_slice(&data);
            pad(&mut out);
        }
        out.extend_from_slice(&header(
            &e.name,
            e.typeflag,
            &e.linkname,
            e.data.len() as u64,
            e.mode,
        ));
        out.extend_from_slice(&e.data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Runs `cmd` with `args`, panicking with its output when it fails.
pub fn run(cmd: &str, args: &[&OsStr]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {cmd} (is it installed? scripts/prereqs.sh installs it): {e}")
        });
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An overlayfs mount, unmounted on drop.
pub struct Overlay {
    pub merged: PathBuf,
}

impl Overlay {
    /// Mounts `lowers` (top-most first) and `upper` at `merged`, with the features that make
    /// upper directories hold whole files (no index, redirects or metacopy), as kiln's
    /// snapshotter mounts them.
    pub fn mount(lowers: &[&Path], upper: &Path, work: &Path, merged: &Path) -> Overlay {
        let lowerdir = lowers
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":");
        let opts = format!(
            "lowerdir={lowerdir},upperdir={},workdir={},index=off,redirect_dir=off,metacopy=off",
            upper.display(),
            work.display()
        );
        run(
            "mount",
            &[
                OsStr::new("-t"),
                OsStr::new("overlay"),
                OsStr::new("overlay"),
                OsStr::new("-o"),
                OsStr::new(&opts),
                merged.as_os_str(),
            ],
        );
        Overlay {
            merged: merged.to_path_buf(),
        }
    }
}

impl Overlay {
    /// Mounts `lowers` (top-most first, at least two) read-only, without an upper directory.
    pub fn mount_lowers(lowers: &[&Path], merged: &Path) -> Overlay {
        let lowerdir = lowers
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":");
        let opts = format!("lowerdir={lowerdir},index=off,redirect_dir=off,metacopy=off");
        run(
            "mount",
            &[
                OsStr::new("-t"),
                OsStr::new("overlay"),
                OsStr::new("overlay"),
                OsStr::new("-o"),
                OsStr::new(&opts),
                merged.as_os_str(),
            ],
        );
        Overlay {
            merged: merged.to_path_buf(),
        }
    }
}

/// Sets the modification time of everything below `root` (and `root`) to `secs`.
pub fn set_all_mtimes(root: &Path, secs: i64) {
    let mut paths = vec![root.to_path_buf()];
    let mut i = 0;
    while i < paths.len() {
        let p = paths[i].clone();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                paths.push(e.unwrap().path());
            }
        }
        i += 1;
    }
    for p in paths.iter().rev() {
        set_mtime(p, secs, 0);
    }
}

/// Clamps every modification time of a snapshot to `epoch`.
pub fn clamp(mut snap: BTreeMap<String, Node>, epoch: i64) -> BTreeMap<String, Node> {
    for node in snap.values_mut() {
        node.mtime = node.mtime.min(epoch);
    }
    snap
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.merged)
            .status();
    }
}

/// Copies a tree with everything (`cp -a`): owners, modes, times, xattrs, hard links, nodes.
pub fn copy_tree(from: &Path, to: &Path) {
    run("cp", &[OsStr::new("-a"), from.as_os_str(), to.as_os_str()]);
}

/// A listing of a directory as overlayfs sees an upper or lower layer: whiteouts (character
/// devices 0/0) and opaque directories are marked; regular files show their content.
pub fn layer_listing(root: &Path) -> String {
    let mut out = String::new();
    for (path, node) in snapshot(root) {
        let full = root.join(&path);
        let meta = fs::symlink_metadata(&full).unwrap();
        let kind = if node.kind == "char" && meta.rdev() == 0 {
            "whiteout"
        } else {
            node.kind
        };
        out.push_str(&format!(
            "{path} {kind} {:o} {}:{}",
            node.mode, node.uid, node.gid
        ));
        if kind == "dir"
            && xattr::get(&full, "trusted.overlay.opaque")
                .unwrap()
                .as_deref()
                == Some(&b"y"[..])
        {
            out.push_str(" opaque");
        }
        match node.kind {
            "symlink" => out.push_str(&format!(" -> {}", node.content)),
            "file" => out.push_str(&format!(
                " {:?}",
                String::from_utf8_lossy(&fs::read(&full).unwrap())
            )),
            "char" | "block" if kind != "whiteout" => {
                out.push_str(&format!(" {}:{}", node.rdev.0, node.rdev.1))
            }
            _ => {}
        }
        if let Some(first) = &node.link_of {
            out.push_str(&format!(" (hard link of {first})"));
        }
        for (k, v) in &node.xattrs {
            out.push_str(&format!(" {k}={v}"));
        }
        out.push('\n');
    }
    out
}
