//! Mount descriptions (containerd's `mount.Mount`) and the helpers that perform them.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::error::MountError;

/// One mount, as containerd's `mount.Mount` describes it: mounting `source` with type `kind`
/// and fstab-style `options` on a target gives the snapshot's filesystem.
///
/// The snapshotter returns `overlay` mounts (source `overlay`, options
/// `lowerdir=…,upperdir=…,workdir=…`) and `bind` mounts (options `rbind` plus `rw` or `ro`).
/// The same list can be handed to an OCI runtime as the root filesystem's mounts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// The filesystem type: `overlay` or `bind`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The source: a directory for binds, `overlay` for overlays.
    pub source: String,
    /// The options, fstab style; flags (`ro`, `rbind`, `nosuid`, …) and filesystem data
    /// (`lowerdir=…`) alike.
    pub options: Vec<String>,
}

impl Mount {
    /// The length of the data string `mount(2)` gets for this mount, with its terminating
    /// NUL; it must not exceed the page size.
    pub fn data_len(&self) -> usize {
        parse_options(&self.options).data.len() + 1
    }

    /// Whether the mount is read-only.
    pub fn is_read_only(&self) -> bool {
        parse_options(&self.options)
            .flags
            .contains(MountFlags::RDONLY)
    }
}

/// Options split into `mount(2)` flags, propagation flags and the data string.
struct ParsedOptions {
    flags: MountFlags,
    propagation: MountPropagationFlags,
    remount: bool,
    data: String,
}

/// Splits fstab-style options the way containerd's `parseMountOptions` does: known flag
/// names set or clear flags, everything else is filesystem data.
fn parse_options(options: &[String]) -> ParsedOptions {
    let mut flags = MountFlags::empty();
    let mut propagation = MountPropagationFlags::empty();
    let mut remount = false;
    let mut data: Vec<&str> = Vec::new();
    for option in options {
        let (set, clear) = match option.as_str() {
            "async" => (MountFlags::empty(), MountFlags::SYNCHRONOUS),
            "atime" => (MountFlags::empty(), MountFlags::NOATIME),
            "bind" => (MountFlags::BIND, MountFlags::empty()),
            "defaults" => (MountFlags::empty(), MountFlags::empty()),
            "dev" => (MountFlags::empty(), MountFlags::NODEV),
            "diratime" => (MountFlags::empty(), MountFlags::NODIRATIME),
            "dirsync" => (MountFlags::DIRSYNC, MountFlags::empty()),
            "exec" => (MountFlags::empty(), MountFlags::NOEXEC),
            "mand" => (
                MountFlags::PERMIT_MANDATORY_FILE_LOCKING,
                MountFlags::empty(),
            ),
            "noatime" => (MountFlags::NOATIME, MountFlags::empty()),
            "nodev" => (MountFlags::NODEV, MountFlags::empty()),
            "nodiratime" => (MountFlags::NODIRATIME, MountFlags::empty()),
            "noexec" => (MountFlags::NOEXEC, MountFlags::empty()),
            "nomand" => (
                MountFlags::empty(),
                MountFlags::PERMIT_MANDATORY_FILE_LOCKING,
            ),
            "norelatime" => (MountFlags::empty(), MountFlags::RELATIME),
            "nostrictatime" => (MountFlags::empty(), MountFlags::STRICTATIME),
            "nosuid" => (MountFlags::NOSUID, MountFlags::empty()),
            "rbind" => (MountFlags::BIND | MountFlags::REC, MountFlags::empty()),
            "relatime" => (MountFlags::RELATIME, MountFlags::empty()),
            "ro" => (MountFlags::RDONLY, MountFlags::empty()),
            "rw" => (MountFlags::empty(), MountFlags::RDONLY),
            "strictatime" => (MountFlags::STRICTATIME, MountFlags::empty()),
            "suid" => (MountFlags::empty(), MountFlags::NOSUID),
            "sync" => (MountFlags::SYNCHRONOUS, MountFlags::empty()),
            "remount" => {
                remount = true;
                continue;
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let kind = match option.trim_start_matches('r') {
                    "private" => MountPropagationFlags::PRIVATE,
                    "shared" => MountPropagationFlags::SHARED,
                    "slave" => MountPropagationFlags::DOWNSTREAM,
                    _ => MountPropagationFlags::UNBINDABLE,
                };
                propagation |= kind;
                if option.starts_with('r') {
                    propagation |= MountPropagationFlags::REC;
                }
                continue;
            }
            other => {
                data.push(other);
                continue;
            }
        };
        flags = (flags | set) - clear;
    }
    ParsedOptions {
        flags,
        propagation,
        remount,
        data: data.join(","),
    }
}

/// The page size, which limits the data of one `mount(2)` call.
pub(crate) fn page_size() -> usize {
    rustix::param::page_size()
}

/// Mounts `mounts` on `target`, one over the other, in order. When one fails, those already
/// mounted are unmounted again before the error is returned.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), MountError> {
    for (done, mount) in mounts.iter().enumerate() {
        if let Err(error) = mount_one(mount, target) {
            for _ in 0..done {
                // Best effort: the first error is the one to report.
                let _ = unmount(target);
            }
            return Err(error);
        }
    }
    Ok(())
}

/// Performs one mount, as containerd's `Mount.Mount` does on Linux.
fn mount_one(mount: &Mount, target: &Path) -> Result<(), MountError> {
    let parsed = parse_options(&mount.options);
    let max = page_size();
    let len = parsed.data.len() + 1;
    if len > max {
        return Err(MountError::OptionsTooLong {
            kind: mount.kind.clone(),
            target: target.to_owned(),
            len,
            max,
        });
    }
    let failed = |errno: io::Error| MountError::Mount {
        kind: mount.kind.clone(),
        device: mount.source.clone(),
        target: target.to_owned(),
        errno,
    };
    let data = CString::new(parsed.data.as_str())
        .map_err(|e| failed(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    if !parsed.remount {
        let data = (!parsed.data.is_empty()).then_some(data.as_c_str());
        rustix::mount::mount(
            mount.source.as_str(),
            target,
            mount.kind.as_str(),
            parsed.flags,
            data,
        )
        .map_err(|e| failed(e.into()))?;
    } else if !parsed.data.is_empty() {
        // A remount that changes filesystem data needs the mount call itself (moby#34077).
        rustix::mount::mount_remount(target, parsed.flags, data.as_c_str())
            .map_err(|e| failed(e.into()))?;
    }
    if !parsed.propagation.is_empty() {
        rustix::mount::mount_change(target, parsed.propagation).map_err(|e| failed(e.into()))?;
    }
    let bind_ro = MountFlags::BIND | MountFlags::RDONLY;
    if parsed.flags.contains(bind_ro) {
        // A bind mount ignores MS_RDONLY: make it read-only with a remount.
        if let Err(e) = rustix::mount::mount_remount(target, parsed.flags, "") {
            let _ = unmount(target);
            return Err(failed(e.into()));
        }
    }
    Ok(())
}

/// Unmounts `target`, retrying for a while when it is busy (as containerd does). A target
/// that is not a mount point counts as unmounted.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    for _ in 0..50 {
        match rustix::mount::unmount(target, UnmountFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INVAL) => return Ok(()),
            Err(rustix::io::Errno::BUSY) => thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                return Err(MountError::Unmount {
                    target: target.to_owned(),
                    errno: e.into(),
                });
            }
        }
    }
    Err(MountError::Unmount {
        target: target.to_owned(),
        errno: rustix::io::Errno::BUSY.into(),
    })
}

/// Unmounts everything mounted on `target` (a stack of mounts), falling back to a lazy
/// detach when the target stays busy.
fn unmount_all(target: &Path) -> Result<(), MountError> {
    loop {
        match rustix::mount::unmount(target, UnmountFlags::empty()) {
            Ok(()) => continue,
            Err(rustix::io::Errno::INVAL) => return Ok(()),
            Err(rustix::io::Errno::BUSY) => match unmount(target) {
                Ok(()) => continue,
                Err(_) => {
                    rustix::mount::unmount(target, UnmountFlags::DETACH).map_err(|e| {
                        MountError::Unmount {
                            target: target.to_owned(),
                            errno: e.into(),
                        }
                    })?;
                }
            },
            Err(e) => {
                return Err(MountError::Unmount {
                    target: target.to_owned(),
                    errno: e.into(),
                });
            }
        }
    }
}

/// Where the kernel lists this process's mounts.
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The mount points under `dir` (not `dir` itself), in the order they were mounted (parents
/// before what is mounted inside them), from `/proc/self/mountinfo`. `dir` should be
/// canonical: the kernel lists resolved paths.
pub fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>, MountError> {
    let table = std::fs::read_to_string(MOUNTINFO).map_err(|errno| MountError::MountTable {
        path: PathBuf::from(MOUNTINFO),
        errno,
    })?;
    Ok(parse_mountinfo(&table)
        .into_iter()
        .filter(|point| point != dir && point.starts_with(dir))
        .collect())
}

/// The mount points of a mountinfo table (its fifth field, with the kernel's octal escapes of
/// space, tab, newline and backslash undone), in table order.
fn parse_mountinfo(table: &str) -> Vec<PathBuf> {
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect()
}

/// Undoes the `\NNN` octal escapes of a mountinfo field.
fn unescape_octal(field: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let digits = bytes
            .get(i + 1..i + 4)
            .filter(|d| b == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match digits {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
}

/// Unmounts everything mounted under `dir` (not `dir` itself), the most recent mount first (so that what is
/// mounted inside another mount goes before it), falling back to a lazy detach for a mount
/// that stays busy. Returns the mount points, in the order they were unmounted.
///
/// This is the cleanup after a crash: a process killed while it had something mounted under
/// its state directory leaves the mount behind, and a directory with a mount inside cannot be
/// removed (worse, removing it recursively would delete files through the mount).
pub fn unmount_under(dir: &Path) -> Result<Vec<PathBuf>, MountError> {
    let mut points = mounts_under(dir)?;
    points.reverse();
    let mut done: Vec<PathBuf> = Vec::new();
    for point in points {
        // A mount point listed twice (a stack of mounts) is unmounted whole the first time.
        if done.contains(&point) {
            continue;
        }
        unmount_all(&point)?;
        done.push(point);
    }
    Ok(done)
}

/// Unmounts and removes a temporary mount point when dropped, so that a panic in the closure
/// of [`with_temp_mount`] does not leak the mount.
struct TempMount {
    dir: Option<tempfile::TempDir>,
}

impl TempMount {
    fn release(&mut self) -> Result<(), MountError> {
        let Some(dir) = self.dir.take() else {
            return Ok(());
        };
        let path = dir.path().to_owned();
        unmount_all(&path)?;
        dir.close()
            .map_err(|errno| MountError::TempDir { path, errno })
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        // Reached only when the closure panicked or a release failed; nothing to report to.
        let _ = self.release();
    }
}

/// Mounts `mounts` on a new temporary directory, runs `f` with that directory, and unmounts
/// and removes the directory again whatever `f` does (returns or panics).
pub fn with_temp_mount<T>(mounts: &[Mount], f: impl FnOnce(&Path) -> T) -> Result<T, MountError> {
    let parent = std::env::temp_dir();
    let dir = tempfile::Builder::new()
        .prefix("kiln-mount-")
        .tempdir_in(&parent)
        .map_err(|errno| MountError::TempDir {
            path: parent.clone(),
            errno,
        })?;
    let path: PathBuf = dir.path().to_owned();
    mount_all(mounts, &path)?;
    let mut guard = TempMount { dir: Some(dir) };
    let result = f(&path);
    guard.release()?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::{parse_mountinfo, parse_options};
    use std::path::PathBuf;

    use rustix::mount::{MountFlags, MountPropagationFlags};

    /// Mount points come out of mountinfo lines in table order, with escapes undone.
    #[test]
    fn mount_points_of_a_table() {
        let table = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                     45 22 0:39 / /var/tmp/a\\040b/merged rw,relatime - overlay overlay rw,lowerdir=/x\n\
                     46 45 0:40 / /var/tmp/a\\134c\\011d rw - tmpfs tmpfs rw\n\
                     47 22 0:41 / /var/tmp/bad\\9 rw - tmpfs tmpfs rw\n";
        let want: Vec<PathBuf> = [
            "/",
            "/var/tmp/a b/merged",
            "/var/tmp/a\\c\td",
            "/var/tmp/bad\\9",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(parse_mountinfo(table), want);
    }

    fn check(
        options: &[&str],
        flags: MountFlags,
        propagation: MountPropagationFlags,
        data: &str,
    ) -> Option<String> {
        let options: Vec<String> = options.iter().map(|s| (*s).to_owned()).collect();
        let parsed = parse_options(&options);
        let ok = parsed.flags == flags && parsed.propagation == propagation && parsed.data == data;
        (!ok).then(|| {
            format!(
                "{options:?}: got {:?} {:?} {:?}, want {flags:?} {propagation:?} {data:?}",
                parsed.flags, parsed.propagation, parsed.data
            )
        })
    }

    #[test]
    fn splits_flags_from_data() {
        let none = MountPropagationFlags::empty();
        let cases = [
            (
                vec!["rw", "rbind"],
                MountFlags::BIND | MountFlags::REC,
                none,
                "",
            ),
            (
                vec!["ro", "rbind"],
                MountFlags::BIND | MountFlags::REC | MountFlags::RDONLY,
                none,
                "",
            ),
            (vec!["ro", "rw"], MountFlags::empty(), none, ""),
            (
                vec![
                    "index=off",
                    "workdir=/w",
                    "upperdir=/u",
                    "lowerdir=/a:/b",
                    "nosuid",
                ],
                MountFlags::NOSUID,
                none,
                "index=off,workdir=/w,upperdir=/u,lowerdir=/a:/b",
            ),
            (
                vec!["rprivate"],
                MountFlags::empty(),
                MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
                "",
            ),
            (
                vec!["shared"],
                MountFlags::empty(),
                MountPropagationFlags::SHARED,
                "",
            ),
            (
                vec!["nodev", "dev", "mode=755"],
                MountFlags::empty(),
                none,
                "mode=755",
            ),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(options, flags, propagation, data)| {
                check(options, *flags, *propagation, data)
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
