//! `mkdir`, `mkfile`, `rm` and `symlink` (BuildKit's `file/backend.go`).

use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_llb::ops::{FileActionMkDir, FileActionMkFile, FileActionRm, FileActionSymlink};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::error::Error;
use crate::root::{InPath, Root, chown_at, chown_fd, remove_all_at, set_times_at, set_times_fd};
use crate::users::UserLookup;
use crate::wildcard::resolve_wildcards;
use crate::{clean_path, timestamp};

/// Creates a directory; see [`crate::mkdir`].
pub(crate) fn mkdir(
    root: &Path,
    action: &FileActionMkDir,
    users: &dyn UserLookup,
) -> Result<(), Error> {
    let root = Root::open(root)?;
    let owner = match &action.owner {
        Some(opt) => Some(users.lookup(opt)?),
        None => None,
    };
    let perm = (action.mode as u32) & 0o777;
    let time = timestamp(action.timestamp);
    let path = root.resolve(action.path.as_bytes(), true)?;
    if action.make_parents {
        root.mkdir_all(&path, perm, owner, time)?;
        return Ok(());
    }
    let Some(name) = path.name() else {
        // The root exists; Go's os.Mkdir reports EEXIST, which upstream ignores.
        return Ok(());
    };
    let shown = path.display();
    let parent = root
        .open_dir(&path.parent())
        .map_err(|e| relabel(e, "mkdir", &shown))?;
    match rfs::mkdirat(&parent, name, Mode::from_raw_mode(perm)) {
        Ok(()) => {}
        Err(Errno::EXIST) => return Ok(()),
        Err(e) => return Err(Error::io("mkdir", shown, e)),
    }
    let dir = rfs::openat(
        &parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", shown.clone(), e))?;
    rfs::fchmod(&dir, Mode::from_raw_mode(perm))
        .map_err(|e| Error::io("chmod", shown.clone(), e))?;
    if let Some((uid, gid)) = owner {
        chown_fd(&dir, uid, gid).map_err(|e| Error::io("chown", shown.clone(), e))?;
    }
    if let Some(t) = time {
        set_times_fd(&dir, t, t).map_err(|e| Error::io("utime", shown, e))?;
    }
    Ok(())
}

/// An error about a parent directory, reported for the path the action names.
fn relabel(e: Error, op: &'static str, shown: &str) -> Error {
    match e {
        Error::Io { source, .. } => Error::Io {
            op,
            path: shown.to_owned(),
            source,
        },
        other => other,
    }
}

/// Creates or replaces a file; see [`crate::mkfile`].
pub(crate) fn mkfile(
    root: &Path,
    action: &FileActionMkFile,
    users: &dyn UserLookup,
) -> Result<(), Error> {
    let root = Root::open(root)?;
    let target = format!("/{}", action.path);
    let path = root.resolve(target.as_bytes(), true)?;
    let Some(name) = path.name() else {
        return Err(Error::io(
            "mkfile",
            InPath::lexical(target.as_bytes()).display(),
            Errno::ISDIR,
        ));
    };
    let owner = match &action.owner {
        Some(opt) => Some(users.lookup(opt)?),
        None => None,
    };
    let shown = path.display();
    let parent = root
        .open_dir(&path.parent())
        .map_err(|e| relabel(e, "open", &shown))?;
    // The new content goes to a temporary file next to the target, renamed over it: whatever
    // was there (a device node, a FIFO, a symbolic link) is replaced, never opened.
    let mut attempt = 0u32;
    let (tmp_name, tmp) = loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let candidate = format!(".tmp-mkfile{}-{nanos}-{attempt}", std::process::id());
        match rfs::openat(
            &parent,
            candidate.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => break (candidate, fd),
            Err(Errno::EXIST) if attempt < 100 => attempt += 1,
            Err(e) => return Err(Error::io("create", shown, e)),
        }
    };
    let result = (|| {
        let mut file = std::fs::File::from(tmp);
        file.write_all(&action.data)
            .map_err(|e| Error::std_io("write", shown.clone(), e))?;
        rfs::fchmod(&file, Mode::from_raw_mode((action.mode as u32) & 0o777))
            .map_err(|e| Error::io("chmod", shown.clone(), e))?;
        if let Some((uid, gid)) = owner {
            chown_fd(&file, uid, gid).map_err(|e| Error::io("chown", shown.clone(), e))?;
        }
        if let Some(t) = timestamp(action.timestamp) {
            set_times_fd(&file, t, t).map_err(|e| Error::io("utime", shown.clone(), e))?;
        }
        drop(file);
        rfs::renameat(&parent, tmp_name.as_str(), &parent, name)
            .map_err(|e| Error::io("rename", shown.clone(), e))
    })();
    if result.is_err() {
        let _ = rfs::unlinkat(&parent, tmp_name.as_str(), AtFlags::empty());
    }
    result
}

/// Removes paths; see [`crate::rm`].
pub(crate) fn rm(root: &Path, action: &FileActionRm) -> Result<(), Error> {
    let root = Root::open(root)?;
    if action.allow_wildcard {
        let pattern = clean_path(&action.path);
        for found in resolve_wildcards(&root, &pattern, false)? {
            rm_path(&root, &found, &action.path, action.allow_not_found)?;
        }
        return Ok(());
    }
    rm_path(
        &root,
        action.path.as_bytes(),
        &action.path,
        action.allow_not_found,
    )
}

/// BuildKit's `rmPath`: the parent is resolved, the last component is removed as it is (a
/// symbolic link, not its target).
fn rm_path(root: &Root, path: &[u8], given: &str, allow_not_found: bool) -> Result<(), Error> {
    let lexical = InPath::lexical(path);
    let Some(name) = lexical.name() else {
        return Err(Error::RemoveRoot {
            path: given.to_owned(),
        });
    };
    let parent = root.resolve(&lexical.parent().relative_bytes(), true)?;
    let target = parent.child(name);
    let shown = target.display();
    // Upstream checks existence with os.Stat, which follows a final symbolic link, so that a
    // dangling link cannot be removed without allow_not_found; here the link itself counts.
    if !allow_not_found && root.lstat(&target)?.is_none() {
        return Err(Error::io("stat", shown, Errno::NOENT));
    }
    let dir = match root.open_dir(&parent) {
        Ok(dir) => dir,
        // Nothing to remove below a missing directory (Go's RemoveAll).
        Err(e) if e.errno() == Some(Errno::NOENT.raw_os_error()) => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_all_at(dir.as_fd(), name, &shown)
}

/// Creates a symbolic link; see [`crate::symlink`].
pub(crate) fn symlink(
    root: &Path,
    action: &FileActionSymlink,
    users: &dyn UserLookup,
) -> Result<(), Error> {
    let root = Root::open(root)?;
    let path = root.resolve(format!("/{}", action.newpath).as_bytes(), true)?;
    let shown = path.display();
    let Some(name) = path.name() else {
        return Err(Error::io("symlink", shown, Errno::EXIST));
    };
    let owner = match &action.owner {
        Some(opt) => Some(users.lookup(opt)?),
        None => None,
    };
    let parent = root
        .open_dir(&path.parent())
        .map_err(|e| relabel(e, "symlink", &shown))?;
    rfs::symlinkat(action.oldpath.as_str(), &parent, name)
        .map_err(|e| Error::io("symlink", shown.clone(), e))?;
    if let Some((uid, gid)) = owner {
        chown_at(parent.as_fd(), name, uid, gid)
            .map_err(|e| Error::io("chown", shown.clone(), e))?;
    }
    if let Some(t) = timestamp(action.timestamp) {
        set_times_at(parent.as_fd(), name, t, t).map_err(|e| Error::io("utime", shown, e))?;
    }
    Ok(())
}
