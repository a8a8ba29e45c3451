//! Overlayfs specifics: the mount options every overlay mount gets, and the test mount that
//! tells whether overlayfs works under a directory.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::mount::{Mount, mount_all, unmount};

/// The options every overlay mount of the snapshotter starts with.
///
/// `index=off` where the kernel knows the option (containerd does the same: with the index
/// on, a lower directory mounted under another upper directory later is refused). Where the
/// kernel defaults `redirect_dir` or `metacopy` to on, they are turned off: both store
/// changes as overlay-private xattrs instead of files, which neither the differ nor the
/// flattening of deep chains can read.
pub(crate) fn base_options() -> Vec<String> {
    let parameters = Path::new("/sys/module/overlay/parameters");
    let mut options = Vec::new();
    if parameters.join("index").exists() {
        options.push("index=off".to_owned());
    }
    for feature in ["redirect_dir", "metacopy"] {
        let value = fs::read_to_string(parameters.join(feature)).unwrap_or_default();
        if matches!(value.trim(), "Y" | "y" | "1" | "on") {
            options.push(format!("{feature}=off"));
        }
    }
    options
}

/// Mounts a small overlay under `dir` (two lower directories, an upper and a work
/// directory), deletes a lower file through it and checks that a whiteout appeared in the
/// upper directory. Everything is created in a temporary directory that is removed again.
pub(crate) fn check(dir: &Path, base: &[String]) -> Result<(), String> {
    let temp = tempfile::Builder::new()
        .prefix("check-")
        .tempdir_in(dir)
        .map_err(|e| format!("create a test directory in {}: {e}", dir.display()))?;
    let path = |name: &str| temp.path().join(name);
    for name in ["lower1", "lower2", "upper", "work", "merged"] {
        fs::create_dir(path(name)).map_err(|e| format!("create {}: {e}", path(name).display()))?;
    }
    fs::write(path("lower1").join("a"), b"a").map_err(|e| format!("write a test file: {e}"))?;
    let mut options = base.to_vec();
    options.push(format!(
        "lowerdir={}:{}",
        path("lower2").display(),
        path("lower1").display()
    ));
    options.push(format!("upperdir={}", path("upper").display()));
    options.push(format!("workdir={}", path("work").display()));
    let mount = Mount {
        kind: "overlay".to_owned(),
        source: "overlay".to_owned(),
        options,
    };
    let merged = path("merged");
    mount_all(std::slice::from_ref(&mount), &merged).map_err(|e| e.to_string())?;
    let used = fs::remove_file(merged.join("a"))
        .and_then(|()| fs::write(merged.join("b"), b"b"))
        .map_err(|e| format!("write through a test mount: {e}"));
    unmount(&merged).map_err(|e| e.to_string())?;
    used?;
    let whiteout = fs::symlink_metadata(path("upper").join("a"))
        .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0);
    if !whiteout {
        return Err(
            "deleting a lower file did not leave a whiteout in the upper directory".to_owned(),
        );
    }
    temp.close()
        .map_err(|e| format!("remove the test directory: {e}"))
}
