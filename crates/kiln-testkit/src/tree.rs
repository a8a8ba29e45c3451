//! A snapshot of a directory tree as a build exports it: each path's type, permission bits,
//! owner, contents, link target and hard-link structure, so that two builds' results (kiln's and
//! another builder's) can be compared path by path.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{Result, io_error};

/// What a path is, with what identifies its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory.
    Dir,
    /// A regular file: its size and the SHA-256 of its bytes (hex).
    File {
        /// The size in bytes.
        size: u64,
        /// The SHA-256 of the contents, in hex.
        sha256: String,
    },
    /// A symbolic link and its target, as stored (never followed).
    Symlink {
        /// The link's target.
        target: String,
    },
    /// A named pipe.
    Fifo,
    /// A character device and its device number.
    CharDevice {
        /// The device number (`st_rdev`).
        rdev: u64,
    },
    /// A block device and its device number.
    BlockDevice {
        /// The device number (`st_rdev`).
        rdev: u64,
    },
    /// A unix socket.
    Socket,
}

impl NodeKind {
    /// A short name of the kind: `dir`, `file`, `symlink`, `fifo`, `char`, `block`, `socket`.
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::Dir => "dir",
            NodeKind::File { .. } => "file",
            NodeKind::Symlink { .. } => "symlink",
            NodeKind::Fifo => "fifo",
            NodeKind::CharDevice { .. } => "char",
            NodeKind::BlockDevice { .. } => "block",
            NodeKind::Socket => "socket",
        }
    }
}

/// One path of a [`FileTree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The type and contents.
    pub kind: NodeKind,
    /// The permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// The owner's uid.
    pub uid: u32,
    /// The owner's gid.
    pub gid: u32,
    /// The modification time, in whole seconds since the epoch.
    pub mtime: i64,
    /// For a path that shares its inode with other paths of the tree, the first of them in
    /// sorted order (the same for every member of the group); `None` for a path with no other
    /// link inside the tree.
    pub hardlink_group: Option<String>,
}

/// Every path under a root (the root itself excluded), keyed by its path relative to the root
/// with a leading `/` (`/bin/busybox`), in sorted order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileTree {
    /// The paths and what they are.
    pub nodes: BTreeMap<String, Node>,
}

impl FileTree {
    /// Reads the tree under `root` without following any symbolic link.
    pub fn read(root: &Path) -> Result<FileTree> {
        let mut nodes = BTreeMap::new();
        let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
        walk(root, "", &mut nodes, &mut inodes)?;
        for paths in inodes.values_mut() {
            if paths.len() < 2 {
                continue;
            }
            paths.sort();
            let first = paths[0].clone();
            for p in paths.iter() {
                if let Some(node) = nodes.get_mut(p) {
                    node.hardlink_group = Some(first.clone());
                }
            }
        }
        Ok(FileTree { nodes })
    }
}

fn walk(
    dir: &Path,
    prefix: &str,
    nodes: &mut BTreeMap<String, Node>,
    inodes: &mut HashMap<(u64, u64), Vec<String>>,
) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(io_error("reading directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_error("reading directory", dir))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(io_error("inspecting", &path))?;
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        let file_type = meta.file_type();
        let kind = if file_type.is_dir() {
            NodeKind::Dir
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path).map_err(io_error("reading link", &path))?;
            NodeKind::Symlink {
                target: target.to_string_lossy().into_owned(),
            }
        } else if file_type.is_file() {
            NodeKind::File {
                size: meta.len(),
                sha256: file_sha256(&path)?,
            }
        } else if file_type.is_fifo() {
            NodeKind::Fifo
        } else if file_type.is_char_device() {
            NodeKind::CharDevice { rdev: meta.rdev() }
        } else if file_type.is_block_device() {
            NodeKind::BlockDevice { rdev: meta.rdev() }
        } else {
            NodeKind::Socket
        };
        if !file_type.is_dir() && meta.nlink() > 1 {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(name.clone());
        }
        nodes.insert(
            name.clone(),
            Node {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: meta.mtime(),
                hardlink_group: None,
            },
        );
        if file_type.is_dir() {
            walk(&path, &name, nodes, inodes)?;
        }
    }
    Ok(())
}

fn file_sha256(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).map_err(io_error("opening", path))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(io_error("reading", path))?;
    Ok(hex::encode(hasher.finalize()))
}
