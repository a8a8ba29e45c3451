//! Resolving the owner of created files: [`UserLookup`] and its `/etc/passwd` implementation.

use std::io::Read;
use std::path::{Path, PathBuf};

use kiln_llb::ops::{ChownOpt, UserOpt};
use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

use crate::error::Error;
use crate::root::Root;

/// The largest user or group database read (a guard against a huge file in a hostile image).
const MAX_DB_SIZE: u64 = 64 << 20;

/// Turns an LLB ownership option into numeric ids.
///
/// The file actions call it only when the action has an owner; without one, copied files keep
/// the owner of their source and created files belong to the calling process (root).
pub trait UserLookup {
    /// The `(uid, gid)` that `opt` stands for.
    fn lookup(&self, opt: &ChownOpt) -> Result<(u32, u32), Error>;
}

/// Resolves names against `etc/passwd` and `etc/group` of a root file system, the way
/// BuildKit's `readUser` does:
///
/// * a user by id gives that uid and the same number as gid; by name, the uid and primary gid
///   of the first matching `passwd` line;
/// * a group by id or name (first matching `group` line) then replaces the gid;
/// * a name that is not found, or a missing database, leaves the id at 0 (root), silently,
///   as upstream does.
///
/// The databases are read inside their root: symbolic links in `/etc` resolve within it.
/// BuildKit reads them from the input that the `ByName` option points at; the caller picks
/// that root (usually the destination's own root file system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdLookup {
    /// The root file system whose `/etc/passwd` (and, without `group_root`, `/etc/group`)
    /// names are looked up in.
    pub root: PathBuf,
    /// A different root file system for `/etc/group`, when the group option points at another
    /// input than the user option.
    pub group_root: Option<PathBuf>,
}

impl PasswdLookup {
    /// A lookup in the databases of the root file system at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        PasswdLookup {
            root: root.into(),
            group_root: None,
        }
    }
}

impl UserLookup for PasswdLookup {
    fn lookup(&self, opt: &ChownOpt) -> Result<(u32, u32), Error> {
        let mut uid = 0;
        let mut gid = 0;
        match &opt.user {
            Some(UserOpt::ById(id)) => {
                uid = *id;
                gid = *id;
            }
            Some(UserOpt::ByName { name, .. }) => {
                let db = read_db(&self.root, "/etc/passwd")?;
                if let Some((u, g)) = find_user(&db, name.as_bytes()) {
                    uid = u;
                    gid = g;
                }
            }
            None => {}
        }
        match &opt.group {
            Some(UserOpt::ById(id)) => gid = *id,
            Some(UserOpt::ByName { name, .. }) => {
                let root = self.group_root.as_deref().unwrap_or(&self.root);
                let db = read_db(root, "/etc/group")?;
                if let Some(g) = find_group(&db, name.as_bytes()) {
                    gid = g;
                }
            }
            None => {}
        }
        Ok((uid, gid))
    }
}

/// Reads a database file inside `root`; a missing file (or a non-directory on the way) reads
/// as empty.
fn read_db(root: &Path, path: &str) -> Result<Vec<u8>, Error> {
    let root = Root::open(root)?;
    let resolved = root.resolve(path.as_bytes(), true)?;
    let (dir, name) = match root.open_parent(&resolved) {
        Ok(found) => found,
        Err(e) if is_missing(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let file = match rfs::openat(
        &dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("open", resolved.display(), e)),
    };
    let mut data = Vec::new();
    std::fs::File::from(file)
        .take(MAX_DB_SIZE)
        .read_to_end(&mut data)
        .map_err(|e| Error::std_io("read", resolved.display(), e))?;
    Ok(data)
}

fn is_missing(e: &Error) -> bool {
    matches!(e.errno(), Some(n) if n == Errno::NOENT.raw_os_error() || n == Errno::NOTDIR.raw_os_error())
}

/// Go's `strconv.Atoi` as moby/sys/user uses it: an unparsable number reads as 0.
fn parse_id(field: &[u8]) -> u32 {
    let text = std::str::from_utf8(field).unwrap_or("");
    let text = text.strip_prefix('+').unwrap_or(text);
    text.parse::<u32>().unwrap_or(0)
}

/// The non-empty, whitespace-trimmed lines of a database, split at `:`.
fn records(db: &[u8]) -> impl Iterator<Item = Vec<&[u8]>> {
    db.split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .map(|line| line.split(|&b| b == b':').collect())
}

/// `name:password:uid:gid:gecos:home:shell` → `(uid, gid)` of the first line named `name`.
pub(crate) fn find_user(db: &[u8], name: &[u8]) -> Option<(u32, u32)> {
    records(db)
        .find(|fields| fields.first().copied() == Some(name))
        .map(|fields| {
            let field = |i: usize| fields.get(i).copied().unwrap_or(b"");
            (parse_id(field(2)), parse_id(field(3)))
        })
}

/// `name:password:gid:members` → the gid of the first line named `name`.
pub(crate) fn find_group(db: &[u8], name: &[u8]) -> Option<u32> {
    records(db)
        .find(|fields| fields.first().copied() == Some(name))
        .map(|fields| parse_id(fields.get(2).copied().unwrap_or(b"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_moby_sys_user() {
        let passwd = b"root:x:0:0:root:/root:/bin/sh\n\n  app:x:1000:1001::/home/app:/bin/sh  \nbad:x:nope:7\napp:x:5:5\n";
        assert_eq!(find_user(passwd, b"root"), Some((0, 0)));
        assert_eq!(find_user(passwd, b"app"), Some((1000, 1001)));
        assert_eq!(find_user(passwd, b"bad"), Some((0, 7)));
        assert_eq!(find_user(passwd, b"nobody"), None);
        let group = b"root:x:0:\nstaff:x:50:app,root\n";
        assert_eq!(find_group(group, b"staff"), Some(50));
        assert_eq!(find_group(group, b"wheel"), None);
    }
}
