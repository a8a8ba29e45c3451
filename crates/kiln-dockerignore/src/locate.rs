//! Which ignore file applies to a build.

use std::path::{Path, PathBuf};

/// The ignore file that applies to a build from the local directory `context_dir` with the
/// Dockerfile at `dockerfile`, or `None` when there is none (nothing is excluded then).
///
/// The rule, as buildx and BuildKit implement it together:
///
/// 1. buildx sends the Dockerfile's directory to BuildKit (as the `dockerfile` local) and
///    the Dockerfile's base name as the `filename` option. If that base name is
///    `Dockerfile` and the directory has no entry named exactly `Dockerfile` but one named
///    `dockerfile`, the name becomes `dockerfile` (buildx `build/opt.go`,
///    `handleLowercaseDockerfile`).
/// 2. BuildKit's Dockerfile frontend then reads `<name>.dockerignore` from that directory
///    (dockerui `ReadEntrypoint`). If it can be read, it is **the** ignore file, and the
///    context's `.dockerignore` is not read at all (the two are not merged).
/// 3. Otherwise the frontend reads `.dockerignore` at the root of the context
///    (dockerui `dockerIgnorePatterns`); a missing file means no patterns.
///
/// "Can be read" is decided here with [`Path::is_file`], so a symlink to a regular file
/// counts and a directory does not. A Dockerfile that is not a local file (standard input,
/// inline, or a URL) is written by buildx to a temporary directory as `Dockerfile`, so only
/// step 3 applies: pass an empty path as `dockerfile` for those. Remote contexts (Git, HTTP)
/// are not filtered by BuildKit at all; do not call this for them.
pub fn ignore_file_for(context_dir: &Path, dockerfile: &Path) -> Option<PathBuf> {
    if let Some(name) = dockerfile.file_name() {
        let dir = match dockerfile.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut name = name.to_os_string();
        if name == "Dockerfile" && uses_lowercase_dockerfile(dir) {
            name = "dockerfile".into();
        }
        name.push(".dockerignore");
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let root = context_dir.join(".dockerignore");
    root.is_file().then_some(root)
}

/// Whether `dir` has an entry named `dockerfile` and none named `Dockerfile` (compared
/// exactly, so this also holds on case-insensitive file systems).
fn uses_lowercase_dockerfile(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut lower = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == "Dockerfile" {
            return false;
        }
        lower |= name == "dockerfile";
    }
    lower
}
