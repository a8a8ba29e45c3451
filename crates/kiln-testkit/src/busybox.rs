//! A busybox base image made from Debian's `busybox-static`, built once and pushed on demand.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kiln_oci::Platform;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Result, TestkitError, io_error};
use crate::layer::{Layer, TarEntry, materialize};
use crate::layout::{
    BuiltImage, BuiltIndex, MediaTypes, OciImageBuilder, write_atomic, write_index,
};
use crate::push::{PushOptions, PushedImage, push_layout_with};
use crate::registry::TestRegistry;

/// Where Debian's `busybox-static` installs the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The repository the busybox fixtures are pushed to.
pub const BUSYBOX_REPOSITORY: &str = "library/busybox";

/// The tag of the single-platform image, in the layout and in the registry.
pub const BUSYBOX_TAG: &str = "latest";

/// The tag of the two-platform index (`linux/amd64` and `linux/arm64`).
pub const BUSYBOX_INDEX_TAG: &str = "multiplatform";

/// Bumped whenever the fixture's contents change, so that stale cached layouts are not reused.
const FORMAT_VERSION: &str = "kiln-testkit-busybox-1";

/// `/etc/passwd` of the busybox root filesystem.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      app:x:1000:1000:app:/home/app:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

/// `/etc/group` of the busybox root filesystem.
const GROUP: &str = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n";

/// The busybox layout, built and cached on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusyboxLayout {
    /// The OCI layout directory (shared by every test process: read it, never write to it).
    pub dir: PathBuf,
    /// The single-platform image (the host's platform), tagged [`BUSYBOX_TAG`].
    pub image: BuiltImage,
    /// The two-platform index (`linux/amd64`, `linux/arm64`, both with the same busybox
    /// files), tagged [`BUSYBOX_INDEX_TAG`].
    pub index: BuiltIndex,
}

/// The entries of a minimal busybox root filesystem: `/bin/busybox`, one symlink to it per
/// applet (the paths `busybox --list-full` prints), `/etc/passwd` (root, `app` with uid 1000,
/// nobody), `/etc/group`, `/tmp` (mode 1777), `/root` (0700) and `/home/app` (owned by 1000).
pub fn busybox_entries() -> Result<Vec<TarEntry>> {
    if !Path::new(BUSYBOX).exists() {
        return Err(TestkitError::MissingTool {
            program: BUSYBOX.to_owned(),
            package: "busybox-static".to_owned(),
        });
    }
    let binary = fs::read(BUSYBOX).map_err(io_error("reading", BUSYBOX))?;
    let output = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .map_err(io_error("running", BUSYBOX))?;
    if !output.status.success() {
        return Err(TestkitError::Command {
            command: format!("{BUSYBOX} --list-full"),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let list = String::from_utf8_lossy(&output.stdout);
    let mut entries = vec![
        TarEntry::dir("bin"),
        TarEntry::file("bin/busybox", binary).mode(0o755),
        TarEntry::dir("etc"),
        TarEntry::file("etc/passwd", PASSWD),
        TarEntry::file("etc/group", GROUP),
        TarEntry::dir("home"),
        TarEntry::dir("home/app").owner(1000, 1000),
        TarEntry::dir("root").mode(0o700),
        TarEntry::dir("tmp").mode(0o1777),
    ];
    let mut dirs = vec!["bin".to_owned()];
    for applet in list.lines().map(|line| line.trim().trim_start_matches('/')) {
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        // Parent directories the applets need (`sbin`, `usr`, `usr/bin`, `usr/sbin`).
        let mut parent = String::new();
        let components: Vec<&str> = applet.split('/').collect();
        for component in components.iter().take(components.len().saturating_sub(1)) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            if !dirs.contains(&parent) {
                dirs.push(parent.clone());
                entries.push(TarEntry::dir(&parent));
            }
        }
        entries.push(TarEntry::symlink(applet, "/bin/busybox"));
    }
    Ok(entries)
}

/// Writes the busybox root filesystem (see [`busybox_entries`]) into `dir`, which must exist.
/// Setting the owners needs root.
pub fn busybox_rootfs(dir: &Path) -> Result<()> {
    materialize(&busybox_entries()?, dir)
}

/// The busybox layout: built on first use and cached for the whole process, and on disk under
/// the system's temporary directory (keyed by the busybox binary's digest), so that the test
/// processes of a run share one build.
pub fn busybox_layout() -> Result<&'static BusyboxLayout> {
    static LAYOUT: OnceLock<std::result::Result<BusyboxLayout, String>> = OnceLock::new();
    LAYOUT
        .get_or_init(|| build_cached().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|message| TestkitError::Fixture {
            name: "busybox layout",
            message: message.clone(),
        })
}

/// Pushes the single-platform busybox image to `registry` as `library/busybox:latest` (with
/// the registry's credentials, if it has any).
pub fn busybox_image(registry: &TestRegistry) -> Result<PushedImage> {
    let layout = busybox_layout()?;
    push_to(registry, &layout.dir, BUSYBOX_TAG)
}

/// Pushes the two-platform busybox index to `registry` as `library/busybox:multiplatform`.
pub fn busybox_index_image(registry: &TestRegistry) -> Result<PushedImage> {
    let layout = busybox_layout()?;
    push_to(registry, &layout.dir, BUSYBOX_INDEX_TAG)
}

fn push_to(registry: &TestRegistry, layout: &Path, tag: &str) -> Result<PushedImage> {
    let options = PushOptions {
        credentials: registry
            .credentials()
            .map(|(user, password)| (user.to_owned(), password.to_owned())),
        convert: None,
    };
    push_layout_with(
        layout,
        &registry.addr(),
        &format!("{BUSYBOX_REPOSITORY}:{tag}"),
        &options,
    )
}

/// Builds the layout into the on-disk cache, or reads the one a previous process built.
fn build_cached() -> Result<BusyboxLayout> {
    let binary = fs::read(BUSYBOX).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => TestkitError::MissingTool {
            program: BUSYBOX.to_owned(),
            package: "busybox-static".to_owned(),
        },
        _ => io_error("reading", BUSYBOX)(e),
    })?;
    let mut hasher = Sha256::new();
    hasher.update(FORMAT_VERSION.as_bytes());
    hasher.update(&binary);
    let key = hex::encode(hasher.finalize());
    let cache_root = std::env::temp_dir().join("kiln-testkit");
    let final_dir = cache_root.join(format!("busybox-{}", key.get(..16).unwrap_or(&key)));
    let metadata = final_dir.join("built.json");
    if let Some(layout) = read_metadata(&metadata, &final_dir) {
        return Ok(layout);
    }
    fs::create_dir_all(&cache_root).map_err(io_error("creating directory", &cache_root))?;
    let staging = tempfile::Builder::new()
        .prefix("busybox-building-")
        .tempdir_in(&cache_root)
        .map_err(io_error("creating a temporary directory in", &cache_root))?;
    let layout_dir = staging.path().join("layout");
    let (image, index) = build(&layout_dir)?;
    let built = BusyboxLayout {
        dir: final_dir.join("layout"),
        image,
        index,
    };
    let json = serde_json::to_vec_pretty(&built).map_err(|e| TestkitError::Invalid {
        what: "fixture metadata",
        message: e.to_string(),
    })?;
    write_atomic(&staging.path().join("built.json"), &json)?;
    // A stale or broken cache entry is replaced; a complete one another process renamed into
    // place first is kept (the bytes are the same, builds are deterministic).
    if final_dir.exists() && read_metadata(&metadata, &final_dir).is_none() {
        let _ = fs::remove_dir_all(&final_dir);
    }
    let staged = staging.keep();
    if fs::rename(&staged, &final_dir).is_err() {
        let _ = fs::remove_dir_all(&staged);
    }
    read_metadata(&metadata, &final_dir).ok_or_else(|| TestkitError::Invalid {
        what: "fixture metadata",
        message: format!(
            "{} is missing or unreadable after the build",
            metadata.display()
        ),
    })
}

/// Reads a complete cache entry, if there is one.
fn read_metadata(metadata: &Path, dir: &Path) -> Option<BusyboxLayout> {
    let bytes = fs::read(metadata).ok()?;
    let layout: BusyboxLayout = serde_json::from_slice(&bytes).ok()?;
    (layout.dir == dir.join("layout") && layout.dir.join("index.json").exists()).then_some(layout)
}

/// Writes both busybox images into `layout_dir`.
fn build(layout_dir: &Path) -> Result<(BuiltImage, BuiltIndex)> {
    let entries = busybox_entries()?;
    let image =
        |platform: Platform| OciImageBuilder::new(platform).layer(Layer::entries(entries.clone()));
    let single = image(Platform::host()).write(layout_dir, BUSYBOX_TAG)?;
    let index = write_index(
        layout_dir,
        BUSYBOX_INDEX_TAG,
        &[
            image(Platform::new("linux", "amd64", "")),
            image(Platform::new("linux", "arm64", "")),
        ],
        MediaTypes::Oci,
    )?;
    Ok((single, index))
}
