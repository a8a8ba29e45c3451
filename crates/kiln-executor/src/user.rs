//! Resolving the process user in the root filesystem's `/etc/passwd` and `/etc/group`.
//!
//! The rules are BuildKit's (`executor/oci/user.go`) on top of runc's `GetExecUser`:
//!
//! - `uid:gid` with both halves numeric (or `root`) is taken as is, without reading any file,
//!   and gets no supplementary groups beyond its primary group;
//! - anything else is looked up: the user part by name, or by number (a number not in
//!   `/etc/passwd` is still accepted, with gid 0); the group part by name or number; without a
//!   group part, the primary group comes from `/etc/passwd` and the supplementary groups are
//!   the groups of `/etc/group` that list the user's name;
//! - an empty user means `0` (root, with root's supplementary groups), and falls back to
//!   `0:0` when the files cannot be used;
//! - the primary gid is always among the additional gids (containerd's `ensureAdditionalGids`).

use std::path::Path;

use crate::Error;
use crate::rootpath;

/// The ids a process runs with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResolvedUser {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The supplementary group ids, the primary one first unless it was already listed.
    pub additional_gids: Vec<u32>,
}

/// Resolves `user` against the `/etc/passwd` and `/etc/group` of `rootfs` (symlinks in the
/// root filesystem are followed without leaving it).
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<ResolvedUser, Error> {
    let read = |name: &str| -> Option<String> {
        let path = rootpath::resolve(rootfs, Path::new(name)).ok()?;
        let bytes = std::fs::read(path).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    // The files are only read when the fast path does not apply.
    if !user.is_empty() && fast_path(user).is_some() {
        return resolve_user_in(user, None, None);
    }
    let passwd = read("/etc/passwd");
    let group = read("/etc/group");
    resolve_user_in(user, passwd.as_deref(), group.as_deref())
}

/// Resolves `user` against the given file contents (`None` when a file is missing).
pub fn resolve_user_in(
    user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, Error> {
    let is_default = user.is_empty();
    let spec = if is_default { "0" } else { user };
    if let Some((uid, gid)) = fast_path(spec) {
        return Ok(with_primary(uid, gid, Vec::new()));
    }
    match exec_user(spec, passwd, group) {
        Ok((uid, gid, sgids)) => Ok(with_primary(uid, gid, sgids)),
        Err(_) if is_default => Ok(with_primary(0, 0, Vec::new())),
        Err(reason) => Err(Error::User {
            user: user.to_string(),
            reason,
        }),
    }
}

fn with_primary(uid: u32, gid: u32, sgids: Vec<u32>) -> ResolvedUser {
    let mut additional_gids = sgids;
    if !additional_gids.contains(&gid) {
        additional_gids.insert(0, gid);
    }
    ResolvedUser {
        uid,
        gid,
        additional_gids,
    }
}

/// `uid:gid` with both halves numeric (or `root`).
fn fast_path(spec: &str) -> Option<(u32, u32)> {
    if spec.is_empty() {
        return Some((0, 0));
    }
    let (user, group) = spec.split_once(':')?;
    Some((parse_id(user)?, parse_id(group)?))
}

fn parse_id(s: &str) -> Option<u32> {
    if s == "root" {
        return Some(0);
    }
    // Go's ParseUint: digits only, no sign.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits that fit in 64 bits.
fn atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The largest id runc accepts (`math.MaxInt32`).
const MAX_ID: i64 = i32::MAX as i64;

struct PasswdEntry {
    name: String,
    uid: i64,
    gid: i64,
}

struct GroupEntry {
    name: String,
    gid: i64,
    members: Vec<String>,
}

/// Splits one line into its `:`-separated fields; numeric fields that do not parse are 0,
/// as in runc's `parseLine`.
fn fields(line: &str) -> Vec<&str> {
    line.split(':').collect()
}

fn num(field: Option<&&str>) -> i64 {
    field.and_then(|f| atoi(f)).unwrap_or(0)
}

fn parse_passwd(content: &str) -> Vec<PasswdEntry> {
    content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f = fields(line);
            PasswdEntry {
                name: f.first().map(|s| s.to_string()).unwrap_or_default(),
                uid: num(f.get(2)),
                gid: num(f.get(3)),
            }
        })
        .collect()
}

fn parse_group(content: &str) -> Vec<GroupEntry> {
    content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f = fields(line);
            let members = match f.get(3) {
                Some(list) if !list.is_empty() => list.split(',').map(str::to_string).collect(),
                _ => Vec::new(),
            };
            GroupEntry {
                name: f.first().map(|s| s.to_string()).unwrap_or_default(),
                gid: num(f.get(2)),
                members,
            }
        })
        .collect()
}

fn check_range(id: i64) -> Result<u32, String> {
    if !(0..=MAX_ID).contains(&id) {
        return Err(format!(
            "uids and gids must be in range 0-{MAX_ID}, got {id}"
        ));
    }
    u32::try_from(id).map_err(|_| format!("uids and gids must be in range 0-{MAX_ID}, got {id}"))
}

/// runc's `GetExecUser` with no defaults beyond root: returns uid, gid and the supplementary
/// gids, or a message.
fn exec_user(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<(u32, u32, Vec<u32>), String> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let uid_arg = atoi(user_arg);
    let gid_arg = atoi(group_arg);

    let mut uid: i64 = 0;
    let mut gid: i64 = 0;
    let mut name = String::new();

    let users: Vec<PasswdEntry> = passwd
        .map(parse_passwd)
        .unwrap_or_default()
        .into_iter()
        .filter(|u| {
            if user_arg.is_empty() {
                u.uid == uid
            } else if let Some(n) = uid_arg {
                u.uid == n
            } else {
                u.name == user_arg
            }
        })
        .collect();

    let mut matched_user = false;
    if let Some(u) = users.first() {
        uid = u.uid;
        gid = u.gid;
        name = u.name.clone();
        matched_user = !user_arg.is_empty();
    } else if !user_arg.is_empty() {
        match uid_arg {
            Some(n) => {
                uid = n;
                check_range(uid)?;
            }
            None => {
                return Err(format!(
                    "unable to find user {user_arg}: no matching entries in passwd file"
                ));
            }
        }
    }

    let mut sgids = Vec::new();
    if !group_arg.is_empty() || matched_user {
        let groups: Vec<GroupEntry> = group
            .map(parse_group)
            .unwrap_or_default()
            .into_iter()
            .filter(|g| {
                if group_arg.is_empty() {
                    g.members.contains(&name)
                } else if let Some(n) = gid_arg {
                    g.gid == n
                } else {
                    g.name == group_arg
                }
            })
            .collect();
        if !group_arg.is_empty() {
            match (groups.first(), gid_arg) {
                (Some(g), _) => gid = g.gid,
                (None, Some(n)) => {
                    gid = n;
                    check_range(gid)?;
                }
                (None, None) => {
                    return Err(format!(
                        "unable to find group {group_arg}: no matching entries in group file"
                    ));
                }
            }
        } else {
            for g in &groups {
                sgids.push(check_range(g.gid)?);
            }
        }
    }
    Ok((check_range(uid)?, check_range(gid)?, sgids))
}
