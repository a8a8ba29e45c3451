//! `FileActionCopy`: BuildKit's `docopy` and fsutil's `copy.Copy`, on descriptors. The rules
//! are stated on [`crate::copy`].
//!
//! The walk keeps a stack of the directories being copied. A directory that does not match the
//! include patterns itself is not created when it is entered but when something below it is
//! (fsutil's `createParentDirs`); until then its level only remembers the source metadata and,
//! if the destination directory already exists, a descriptor for it.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use kiln_dockerignore::{MatchInfo, PatternMatcher};
use kiln_llb::ops::FileActionCopy;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec};
use rustix::io::Errno;

use crate::archive;
use crate::chmod::ModeSet;
use crate::error::Error;
use crate::root::{
    InPath, Meta, Root, chmod_special_at, chown_at, chown_fd, open_dir_beneath, read_dir_names,
    remove_all_at, set_times_at, set_times_fd, stat_at,
};
use crate::users::UserLookup;
use crate::wildcard::{resolve_wildcards, root_path};
use crate::xattr::{XattrFile, copy_all, fd_file};
use crate::{clean_path, timestamp};

/// How the permission bits of copied entries are set.
#[derive(Debug, Clone)]
enum ModeOverride {
    /// Keep the source's bits.
    Keep,
    /// Exactly these bits (permissions and set-id/sticky).
    Absolute(u32),
    /// A symbolic change applied to the source's bits.
    Symbolic(ModeSet),
}

/// What applies to every entry of one copy.
struct Options {
    owner: Option<(u32, u32)>,
    utime: Option<Timespec>,
    mode: ModeOverride,
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
    always_replace: bool,
    copy_dir_contents: bool,
    follow_links: bool,
}

/// Copies `action.src` of the tree at `src_root` to `action.dest` of the tree at `dest_root`.
pub(crate) fn copy(
    src_root: &Path,
    dest_root: &Path,
    action: &FileActionCopy,
    users: &dyn UserLookup,
) -> Result<(), Error> {
    let src = Root::open(src_root)?;
    let dst = Root::open(dest_root)?;
    let src_path = clean_path(&action.src);
    let dest_path = clean_path(&action.dest);

    if !action.create_dest_path {
        let resolved = dst.resolve(format!("/{}", action.dest).as_bytes(), true)?;
        let parent = resolved.parent();
        if !resolved.is_root() && dst.lstat(&parent)?.is_none() {
            return Err(Error::DestParentMissing {
                path: action.dest.clone(),
                parent: parent.display(),
            });
        }
    }

    let owner = match &action.owner {
        Some(opt) => Some(users.lookup(opt)?),
        None => None,
    };
    let mode = if !action.mode_str.is_empty() {
        ModeOverride::Symbolic(ModeSet::parse(&action.mode_str)?)
    } else if action.mode != -1 {
        ModeOverride::Absolute((action.mode as u32) & 0o7777)
    } else {
        ModeOverride::Keep
    };
    let matcher = |kind: &'static str, patterns: &[String]| {
        if patterns.is_empty() {
            return Ok(None);
        }
        PatternMatcher::new(patterns)
            .map(Some)
            .map_err(|source| Error::Patterns {
                kind,
                patterns: patterns.to_vec(),
                source,
            })
    };
    let opts = Options {
        owner,
        utime: timestamp(action.timestamp),
        mode,
        include: matcher("include", &action.include_patterns)?,
        exclude: matcher("exclude", &action.exclude_patterns)?,
        always_replace: action.always_replace_existing_dest_paths,
        copy_dir_contents: action.dir_copy_contents,
        follow_links: action.follow_symlink,
    };

    let sources = if action.allow_wildcard {
        let found = resolve_wildcards(&src, &src_path, action.follow_symlink)?;
        if found.is_empty() {
            if action.allow_empty_wildcard {
                return Ok(());
            }
            return Err(Error::NoMatch { path: src_path });
        }
        found
    } else {
        vec![src_path.into_bytes()]
    };

    for source in &sources {
        if action.attempt_unpack_docker_compatibility
            && archive::unpack(&src, source, &dst, &dest_path, opts.owner, opts.utime)?
        {
            continue;
        }
        copy_one(&src, source, &dst, &dest_path, &opts)?;
    }
    Ok(())
}

/// Go's `filepath.Split`: everything up to and including the last `/`, and the rest.
fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => path.split_at(i + 1),
        None => ("", path),
    }
}

/// Go's `filepath.Base` on bytes.
fn base(path: &[u8]) -> &[u8] {
    let trimmed = {
        let mut end = path.len();
        while end > 0 && path.get(end - 1) == Some(&b'/') {
            end -= 1;
        }
        path.get(..end).unwrap_or(&[])
    };
    if trimmed.is_empty() {
        return if path.is_empty() { b"." } else { b"/" };
    }
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => trimmed.get(i + 1..).unwrap_or(&[]),
        None => trimmed,
    }
}

/// fsutil's `Copy` for one source path.
fn copy_one(
    src: &Root,
    source: &[u8],
    dst: &Root,
    dest: &str,
    opts: &Options,
) -> Result<(), Error> {
    let (dir_part, file_part) = split(dest);
    let ensure = if !file_part.is_empty() && file_part != "." {
        dir_part
    } else {
        dest
    };
    if !ensure.is_empty() {
        let ensure = dst.resolve(ensure.as_bytes(), true)?;
        dst.mkdir_all(&ensure, 0o755, opts.owner, opts.utime)?;
    }
    let dest_resolved = dst.resolve(dest.as_bytes(), true)?;
    let src_followed = root_path(src, source, opts.follow_links)?;

    // prepareTargetDir
    let Some(src_meta) = src.lstat(&src_followed)? else {
        return Err(Error::io("lstat", src_followed.display(), Errno::NOENT));
    };
    let dest_meta = dst.lstat(&dest_resolved)?;
    let mut dest_path = dest_resolved;
    let src_is_dir = src_meta.is_dir();
    if (!opts.copy_dir_contents && src_is_dir && dest_meta.is_some())
        || (!src_is_dir && dest_meta.is_some_and(|m| m.is_dir()))
    {
        dest_path = dest_path.join(base(source));
    }
    let target = if opts.copy_dir_contents && src_is_dir && dest_meta.is_none() {
        dest_path.clone()
    } else {
        dest_path.parent()
    };
    dst.mkdir_all(&target, 0o755, opts.owner, opts.utime)?;

    // The entry to copy and where it goes, each as a directory plus a name.
    let (src_dir, src_name) = match src_followed.name() {
        Some(name) => (src.open_dir(&src_followed.parent())?, name.to_os_string()),
        None => (src.open_dir(&src_followed)?, OsString::from(".")),
    };
    let (dst_dir, dst_name, top_shown) = match dest_path.name() {
        Some(name) => {
            let parent = dest_path.parent();
            (dst.open_dir(&parent)?, name.to_os_string(), parent)
        }
        None => (
            dst.open_dir(&dest_path)?,
            OsString::from("."),
            InPath::root(),
        ),
    };
    let mut copier = Copier {
        opts,
        top: dst_dir,
        top_shown,
        src_shown: src_followed.clone(),
        inodes: HashMap::new(),
        levels: Vec::new(),
        reflink: true,
    };
    copier.copy_entry(
        src_dir.as_fd(),
        &src_name,
        &[],
        &[dst_name],
        false,
        &MatchInfo::default(),
        &MatchInfo::default(),
    )
}

/// A directory being copied, on the stack of the walk.
struct Level {
    /// The source directory's metadata (applied when the copy is created lazily).
    src_meta: Meta,
    /// The source directory, for its extended attributes (shared with the walk, so that a level
    /// costs no extra descriptor).
    src_fd: Rc<OwnedFd>,
    /// The destination directory's name in its parent.
    dst_name: OsString,
    /// The destination directory, when it exists.
    dst_fd: Option<OwnedFd>,
    /// Whether the destination directory has been created or taken over.
    copied: bool,
    /// Its path relative to the top-level parent, for messages.
    dst_rel: Vec<OsString>,
}

struct Copier<'o> {
    opts: &'o Options,
    /// The directory that holds the top-level destination entry.
    top: OwnedFd,
    /// That directory, inside the destination root.
    top_shown: InPath,
    /// The top-level source entry, inside the source root.
    src_shown: InPath,
    /// The first destination (relative to `top`) of each multiply linked source inode.
    inodes: HashMap<(u64, u64), Vec<OsString>>,
    levels: Vec<Level>,
    /// Whether reflinks are worth trying (cleared after the first refusal).
    reflink: bool,
}

/// The owner, mode and times to give an entry copied from `meta`.
fn apply_info(opts: &Options, meta: &Meta) -> (u32, u32, u32, Timespec, Timespec) {
    let (uid, gid) = opts.owner.unwrap_or((meta.uid, meta.gid));
    let mode = match &opts.mode {
        ModeOverride::Keep => meta.perm(),
        ModeOverride::Absolute(bits) => *bits,
        ModeOverride::Symbolic(set) => set.apply(meta.perm(), meta.is_dir()),
    };
    let (atime, mtime) = match opts.utime {
        Some(t) => (t, t),
        None => (meta.atime, meta.mtime),
    };
    (uid, gid, mode, atime, mtime)
}

/// fsutil's `copyFileInfo` on an open file or directory: owner, then mode, then times.
fn set_info_fd(opts: &Options, fd: BorrowedFd<'_>, meta: &Meta) -> Result<(), Errno> {
    let (uid, gid, mode, atime, mtime) = apply_info(opts, meta);
    chown_fd(fd, uid, gid)?;
    rfs::fchmod(fd, Mode::from_raw_mode(mode))?;
    set_times_fd(fd, atime, mtime)
}

/// `copyDirectoryOnly`: creates `name` in `parent` as a directory like `meta`, or takes over
/// an existing directory (changing its mode when `overwrite`). Returns whether it was created,
/// and the directory.
fn copy_directory_only(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    meta: &Meta,
    overwrite: bool,
    shown: &str,
) -> Result<(bool, OwnedFd), Error> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match stat_at(parent, name, shown)? {
        None => {
            rfs::mkdirat(parent, name, Mode::from_raw_mode(meta.perm() & 0o777))
                .map_err(|e| Error::io("mkdir", shown, e))?;
            let fd = rfs::openat(parent, name, flags, Mode::empty())
                .map_err(|e| Error::io("open", shown, e))?;
            Ok((true, fd))
        }
        Some(existing) if !existing.is_dir() => Err(Error::NotADirectory {
            path: shown.to_owned(),
        }),
        Some(_) => {
            let fd = rfs::openat(parent, name, flags, Mode::empty())
                .map_err(|e| Error::io("open", shown, e))?;
            if overwrite {
                rfs::fchmod(&fd, Mode::from_raw_mode(meta.perm()))
                    .map_err(|e| Error::io("chmod", shown, e))?;
            }
            Ok((false, fd))
        }
    }
}

impl Copier<'_> {
    /// The destination path for messages.
    fn dst_shown(&self, rel: &[OsString]) -> String {
        let mut path = self.top_shown.clone();
        for c in rel {
            if c != "." {
                path = path.child(c);
            }
        }
        path.display()
    }

    /// The source path for messages.
    fn src_shown(&self, rel: &[u8]) -> String {
        self.src_shown.join(rel).display()
    }

    /// The directory that receives the entries of the current level, if it exists.
    fn current_parent(&self) -> Option<BorrowedFd<'_>> {
        parent_of(&self.levels, &self.top)
    }

    /// fsutil's `createParentDirs`: creates (or takes over) every directory of the stack that
    /// was postponed because it did not match the include patterns itself.
    fn ensure_parents(&mut self, overwrite: bool) -> Result<(), Error> {
        for i in 0..self.levels.len() {
            if self.levels.get(i).is_some_and(|l| l.copied) {
                continue;
            }
            let parent = match i.checked_sub(1) {
                None => self.top.as_fd(),
                Some(p) => match self.levels.get(p).and_then(|l| l.dst_fd.as_ref()) {
                    Some(fd) => fd.as_fd(),
                    None => return Err(Error::io("mkdir", self.top_shown.display(), Errno::NOENT)),
                },
            };
            let Some(level) = self.levels.get(i) else {
                break;
            };
            let shown = self.dst_shown(&level.dst_rel);
            let (created, fd) =
                copy_directory_only(parent, &level.dst_name, &level.src_meta, overwrite, &shown)?;
            if created {
                set_info_fd(self.opts, fd.as_fd(), &level.src_meta)
                    .map_err(|e| Error::io("copy file info", shown.clone(), e))?;
                copy_all(&fd_file(&level.src_fd), &fd_file(&fd));
            }
            if let Some(level) = self.levels.get_mut(i) {
                level.dst_fd = Some(fd);
                level.copied = true;
            }
        }
        Ok(())
    }

    /// fsutil's `copy`: one entry and, for a directory, everything below it.
    #[allow(clippy::too_many_arguments)]
    fn copy_entry(
        &mut self,
        src_dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &[u8],
        dst_rel: &[OsString],
        overwrite: bool,
        include_parent: &MatchInfo,
        exclude_parent: &MatchInfo,
    ) -> Result<(), Error> {
        let Some(meta) = stat_at(src_dir, name, &self.src_shown(rel))? else {
            return Err(Error::io("lstat", self.src_shown(rel), Errno::NOENT));
        };
        let Some(dst_name) = dst_rel.last() else {
            return Ok(());
        };
        let shown = self.dst_shown(dst_rel);

        let mut include = true;
        let mut include_info = MatchInfo::default();
        let mut exclude_info = MatchInfo::default();
        if !rel.is_empty() {
            let text = String::from_utf8_lossy(rel);
            if let Some(m) = &self.opts.include {
                let (hit, info) = m
                    .matches_using_parent_results(&text, include_parent)
                    .map_err(|source| Error::Patterns {
                        kind: "include",
                        patterns: m.patterns().iter().map(|p| p.as_str().to_owned()).collect(),
                        source,
                    })?;
                include = hit;
                include_info = info;
            }
            if let Some(m) = &self.opts.exclude {
                let (hit, info) = m
                    .matches_using_parent_results(&text, exclude_parent)
                    .map_err(|source| Error::Patterns {
                        kind: "exclude",
                        patterns: m.patterns().iter().map(|p| p.as_str().to_owned()).collect(),
                        source,
                    })?;
                if hit {
                    include = false;
                    // Nothing below an excluded directory can come back without an
                    // exclusion (`!`) pattern, so there is no need to walk it.
                    if !m.exclusions() {
                        return Ok(());
                    }
                }
                exclude_info = info;
            }
        }

        let mut target = match self.current_parent() {
            Some(parent) => stat_at(parent, dst_name, &shown)?,
            None => None,
        };

        if include {
            if self.opts.always_replace
                && let Some(existing) = target
                && !(meta.is_dir() && existing.is_dir())
                && let Some(parent) = self.current_parent()
            {
                remove_all_at(parent, dst_name, &shown)?;
                target = None;
            }
            self.ensure_parents(overwrite)?;
        }

        if !meta.is_dir() {
            if !include {
                return Ok(());
            }
            let Some(parent) = self.current_parent() else {
                return Err(Error::io("open", shown, Errno::NOENT));
            };
            // ensureEmptyFileTarget (`target` is current: only a removal or the creation of
            // the empty parent directory happened since it was read).
            if let Some(existing) = target {
                if existing.is_dir() {
                    return Err(Error::ReplaceDirectory { path: shown });
                }
                rfs::unlinkat(parent, dst_name, AtFlags::empty())
                    .map_err(|e| Error::io("remove", shown.clone(), e))?;
            }
        }

        match meta.kind() {
            FileType::Directory => {
                let (created, dst_fd) = self.copy_directory(
                    src_dir,
                    name,
                    rel,
                    dst_rel,
                    &meta,
                    overwrite,
                    include,
                    &include_info,
                    &exclude_info,
                )?;
                let (copy_info, restore_times) = if overwrite {
                    (include, false)
                } else {
                    (created, !created)
                };
                if let Some(fd) = dst_fd {
                    if copy_info {
                        set_info_fd(self.opts, fd.as_fd(), &meta)
                            .map_err(|e| Error::io("copy file info", shown.clone(), e))?;
                        let src_fd = open_src_dir(src_dir, name, &self.src_shown(rel))?;
                        copy_all(&fd_file(&src_fd), &fd_file(&fd));
                    } else if restore_times && target.is_some() {
                        let (_, _, _, atime, mtime) = apply_info(self.opts, &meta);
                        set_times_fd(&fd, atime, mtime)
                            .map_err(|e| Error::io("utime", shown.clone(), e))?;
                    }
                }
                Ok(())
            }
            FileType::RegularFile => self.copy_regular(src_dir, name, rel, dst_rel, &meta, &shown),
            FileType::Symlink => {
                let Some(parent) = self.current_parent() else {
                    return Err(Error::io("open", shown, Errno::NOENT));
                };
                let link = rfs::readlinkat(src_dir, name, Vec::new())
                    .map_err(|e| Error::io("readlink", self.src_shown(rel), e))?;
                rfs::symlinkat(link.as_c_str(), parent, dst_name)
                    .map_err(|e| Error::io("symlink", shown.clone(), e))?;
                let (uid, gid, _, atime, mtime) = apply_info(self.opts, &meta);
                chown_at(parent, dst_name, uid, gid)
                    .map_err(|e| Error::io("chown", shown.clone(), e))?;
                set_times_at(parent, dst_name, atime, mtime)
                    .map_err(|e| Error::io("utime", shown.clone(), e))?;
                copy_special_xattrs(src_dir, name, parent, dst_name);
                Ok(())
            }
            kind @ (FileType::CharacterDevice
            | FileType::BlockDevice
            | FileType::Fifo
            | FileType::Socket) => {
                let Some(parent) = self.current_parent() else {
                    return Err(Error::io("open", shown, Errno::NOENT));
                };
                rfs::mknodat(
                    parent,
                    dst_name,
                    kind,
                    Mode::from_raw_mode(meta.perm() & 0o777),
                    meta.rdev,
                )
                .map_err(|e| Error::io("mknod", shown.clone(), e))?;
                let (uid, gid, mode, atime, mtime) = apply_info(self.opts, &meta);
                chown_at(parent, dst_name, uid, gid)
                    .map_err(|e| Error::io("chown", shown.clone(), e))?;
                chmod_special_at(parent, dst_name, mode)
                    .map_err(|e| Error::io("chmod", shown.clone(), e))?;
                set_times_at(parent, dst_name, atime, mtime)
                    .map_err(|e| Error::io("utime", shown.clone(), e))?;
                copy_special_xattrs(src_dir, name, parent, dst_name);
                Ok(())
            }
            FileType::Unknown => Err(Error::UnsupportedType {
                path: self.src_shown(rel),
                mode: meta.mode,
            }),
        }
    }

    /// fsutil's `copyDirectory`: the directory itself (now, or later if only something below
    /// it is included) and its entries in name order. Returns whether the directory was
    /// created, and the destination directory if it exists.
    #[allow(clippy::too_many_arguments)]
    fn copy_directory(
        &mut self,
        src_dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &[u8],
        dst_rel: &[OsString],
        meta: &Meta,
        overwrite: bool,
        include: bool,
        include_info: &MatchInfo,
        exclude_info: &MatchInfo,
    ) -> Result<(bool, Option<OwnedFd>), Error> {
        let src_shown = self.src_shown(rel);
        let src_fd = open_src_dir(src_dir, name, &src_shown)?;
        let Some(dst_name) = dst_rel.last().cloned() else {
            return Ok((false, None));
        };
        let shown = self.dst_shown(dst_rel);
        let mut created = false;
        let (dst_fd, copied) = if include {
            let Some(parent) = self.current_parent() else {
                return Err(Error::io("open", shown, Errno::NOENT));
            };
            let (was_created, fd) =
                copy_directory_only(parent, &dst_name, meta, overwrite, &shown)?;
            created = was_created;
            (Some(fd), true)
        } else {
            // Postponed: use the directory if it already exists, create it only when
            // something below it is included.
            let existing = self.current_parent().and_then(|parent| {
                rfs::openat(
                    parent,
                    &dst_name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()
            });
            (existing, false)
        };
        let src_fd = Rc::new(src_fd);
        self.levels.push(Level {
            src_meta: *meta,
            src_fd: Rc::clone(&src_fd),
            dst_name,
            dst_fd,
            copied,
            dst_rel: dst_rel.to_vec(),
        });
        let result = self.copy_children(&src_fd, rel, dst_rel, include_info, exclude_info);
        let level = self.levels.pop();
        result?;
        Ok((
            created,
            level.and_then(|l| if l.copied { l.dst_fd } else { None }),
        ))
    }

    fn copy_children(
        &mut self,
        src_fd: &OwnedFd,
        rel: &[u8],
        dst_rel: &[OsString],
        include_info: &MatchInfo,
        exclude_info: &MatchInfo,
    ) -> Result<(), Error> {
        let names =
            read_dir_names(src_fd).map_err(|e| Error::io("readdir", self.src_shown(rel), e))?;
        let mut child_rel = Vec::with_capacity(rel.len() + 32);
        let mut child_dst = Vec::with_capacity(dst_rel.len() + 1);
        child_dst.extend_from_slice(dst_rel);
        child_dst.push(OsString::new());
        for child in names {
            use std::os::unix::ffi::OsStrExt;
            child_rel.clear();
            child_rel.extend_from_slice(rel);
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(child.as_bytes());
            if let Some(slot) = child_dst.last_mut() {
                slot.clone_from(&child);
            }
            self.copy_entry(
                src_fd.as_fd(),
                &child,
                &child_rel,
                &child_dst,
                true,
                include_info,
                exclude_info,
            )?;
        }
        Ok(())
    }

    /// A regular file: a hard link to an earlier copy of the same inode, or a new file with the
    /// source's content; then its owner, mode, times and extended attributes.
    fn copy_regular(
        &mut self,
        src_dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &[u8],
        dst_rel: &[OsString],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), Error> {
        let Some(dst_name) = dst_rel.last() else {
            return Ok(());
        };
        let Some(parent) = parent_of(&self.levels, &self.top) else {
            return Err(Error::io("open", shown, Errno::NOENT));
        };
        let src_file = rfs::openat(
            src_dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", self.src_shown(rel), e))?;
        let st = rfs::fstat(&src_file).map_err(|e| Error::io("stat", self.src_shown(rel), e))?;
        let opened = Meta::from_stat(&st);
        if opened.kind() != FileType::RegularFile
            || opened.ino != meta.ino
            || opened.dev != meta.dev
        {
            // The source changed under us.
            return Err(Error::io("open", self.src_shown(rel), Errno::STALE));
        }

        let mut linked = false;
        if meta.nlink > 1 {
            let key = (meta.dev, meta.ino);
            if let Some(first) = self.inodes.get(&key) {
                let (first_parent, first_name) = match first.split_last() {
                    Some((last, dirs)) => (
                        open_dir_beneath(self.top.as_fd(), dirs, self.top_shown.components())?,
                        last.clone(),
                    ),
                    None => return Err(Error::io("link", shown, Errno::NOENT)),
                };
                rfs::linkat(
                    &first_parent,
                    &first_name,
                    parent,
                    dst_name,
                    AtFlags::empty(),
                )
                .map_err(|e| Error::io("link", shown, e))?;
                linked = true;
            } else {
                self.inodes.insert(key, dst_rel.to_vec());
            }
        }

        let dst_file = if linked {
            rfs::openat(
                parent,
                dst_name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
                Mode::empty(),
            )
            .map_err(|e| Error::io("open", shown, e))?
        } else {
            let fd = rfs::openat(
                parent,
                dst_name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| Error::io("create", shown, e))?;
            copy_contents(&src_file, &fd, st.st_size.max(0) as u64, &mut self.reflink)
                .map_err(|e| Error::std_io("copy", shown, e))?;
            fd
        };
        set_info_fd(self.opts, dst_file.as_fd(), meta)
            .map_err(|e| Error::io("copy file info", shown, e))?;
        copy_all(&fd_file(&src_file), &fd_file(&dst_file));
        Ok(())
    }
}

/// The destination directory of the innermost level (or `top` outside any), if it exists.
fn parent_of<'a>(levels: &'a [Level], top: &'a OwnedFd) -> Option<BorrowedFd<'a>> {
    match levels.last() {
        Some(level) => level.dst_fd.as_ref().map(|fd| fd.as_fd()),
        None => Some(top.as_fd()),
    }
}

/// Opens a source directory entry for reading.
fn open_src_dir(dir: BorrowedFd<'_>, name: &OsStr, shown: &str) -> Result<OwnedFd, Error> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", shown, e))
}

/// Extended attributes of a symbolic link or special file (best effort, as upstream).
fn copy_special_xattrs(
    src_dir: BorrowedFd<'_>,
    name: &OsStr,
    dst_dir: BorrowedFd<'_>,
    dst_name: &OsStr,
) {
    if let (Ok(src), Ok(dst)) = (
        XattrFile::open_path(src_dir, name),
        XattrFile::open_path(dst_dir, dst_name),
    ) {
        copy_all(&src, &dst);
    }
}

/// Copies `size` bytes of `src` into the empty file `dst`: a reflink where the file system
/// offers one, else `copy_file_range` (done in the kernel), else a read/write loop.
/// `reflink` says whether to try a reflink; it is cleared when the file system refuses one.
fn copy_contents(
    src: &OwnedFd,
    dst: &OwnedFd,
    size: u64,
    reflink: &mut bool,
) -> std::io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    if *reflink {
        match rfs::ioctl_ficlone(dst, src) {
            Ok(()) => return Ok(()),
            Err(Errno::OPNOTSUPP | Errno::XDEV | Errno::INVAL | Errno::NOTTY | Errno::NOSYS) => {
                *reflink = false;
            }
            Err(_) => {}
        }
    }
    let mut remaining = size;
    let mut first = true;
    while remaining > 0 {
        let chunk = usize::try_from(remaining.min(1 << 30)).unwrap_or(1 << 30);
        match rfs::copy_file_range(src, None, dst, None, chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                remaining = remaining.saturating_sub(n as u64);
                first = false;
            }
            Err(Errno::INTR) => {}
            Err(Errno::NOSYS | Errno::XDEV | Errno::OPNOTSUPP | Errno::INVAL | Errno::PERM)
                if first =>
            {
                let mut reader = File::from(src.try_clone()?);
                let mut writer = File::from(dst.try_clone()?);
                std::io::copy(&mut reader, &mut writer)?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
