//! Pushing an OCI layout to a registry with `skopeo`, a tool kiln did not write.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

use kiln_oci::Digest;
use serde_json::Value;

use crate::error::{Result, TestkitError, io_error};
use crate::layout::REF_NAME_ANNOTATION;

/// Where Debian installs skopeo.
pub const SKOPEO: &str = "/usr/bin/skopeo";

/// How to push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// The user name and password to push with; anonymous when `None`.
    pub credentials: Option<(String, String)>,
    /// Convert the manifests (and index) to this format while pushing; `None` pushes the
    /// layout's bytes unchanged (`--preserve-digests`). Converting rewrites the manifests, so
    /// their digests change; configs and layers are kept.
    pub convert: Option<ManifestFormat>,
}

/// A manifest format skopeo can convert to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// OCI image manifests and indexes (`--format oci`).
    Oci,
    /// Docker schema 2 manifests and manifest lists (`--format v2s2`).
    DockerV2S2,
}

/// An image pushed to a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// `ADDR/REPO:TAG`, as pushed.
    pub reference: String,
    /// The digest of the pushed manifest (or index), which skopeo kept unchanged.
    pub digest: Digest,
}

impl PushedImage {
    /// `ADDR/REPO@DIGEST`: the pushed image by digest.
    pub fn by_digest(&self) -> String {
        let name = match self.reference.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => name,
            _ => self.reference.as_str(),
        };
        format!("{name}@{}", self.digest)
    }
}

impl fmt::Display for PushedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reference)
    }
}

/// Pushes the image tagged `TAG` in the layout to `docker://ADDR/REPO:TAG`, anonymously.
///
/// `repo_tag` is `REPO:TAG` (`library/busybox:latest`); the same tag names the image in the
/// layout. An index is pushed with all its images (`--all`).
pub fn push_layout(layout_dir: &Path, registry_addr: &str, repo_tag: &str) -> Result<PushedImage> {
    push_layout_with(layout_dir, registry_addr, repo_tag, &PushOptions::default())
}

/// [`push_layout`] with options (credentials, format conversion).
///
/// Runs `skopeo copy --preserve-digests --dest-tls-verify=false oci:DIR:TAG
/// docker://ADDR/REPO:TAG`, so what lands in the registry is byte for byte what the layout holds;
/// skopeo accepting the layout is itself a check of it. skopeo (1.9) reads only layouts whose
/// `index.json` entries have OCI media types: a layout written with [`MediaTypes::Docker`]
/// (as `docker save` writes them) cannot be pushed; push an OCI layout with
/// [`PushOptions::convert`] set to [`ManifestFormat::DockerV2S2`] instead.
///
/// [`MediaTypes::Docker`]: crate::MediaTypes::Docker
pub fn push_layout_with(
    layout_dir: &Path,
    registry_addr: &str,
    repo_tag: &str,
    options: &PushOptions,
) -> Result<PushedImage> {
    if !Path::new(SKOPEO).exists() {
        return Err(TestkitError::MissingTool {
            program: SKOPEO.to_owned(),
            package: "skopeo".to_owned(),
        });
    }
    let (repo, tag) = match repo_tag.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !repo.is_empty() && !tag.is_empty() => {
            (repo, tag)
        }
        _ => {
            return Err(TestkitError::Invalid {
                what: "repository and tag",
                message: format!("{repo_tag:?} is not REPO:TAG"),
            });
        }
    };
    let is_index = layout_entry_is_index(layout_dir, tag)?;
    let digest_dir = tempfile::tempdir().map_err(io_error(
        "creating a temporary directory in",
        std::env::temp_dir(),
    ))?;
    let digest_file = digest_dir.path().join("digest");
    let source = format!("oci:{}:{tag}", layout_dir.display());
    let destination = format!("docker://{registry_addr}/{repo}:{tag}");
    let mut args: Vec<String> = vec![
        "--insecure-policy".into(),
        "copy".into(),
        "--quiet".into(),
        "--dest-tls-verify=false".into(),
        "--digestfile".into(),
        digest_file.display().to_string(),
    ];
    if is_index {
        args.push("--all".into());
    }
    match options.convert {
        None => args.push("--preserve-digests".into()),
        Some(ManifestFormat::Oci) => args.extend(["--format".into(), "oci".into()]),
        Some(ManifestFormat::DockerV2S2) => args.extend(["--format".into(), "v2s2".into()]),
    }
    match &options.credentials {
        Some((user, password)) => {
            args.push("--dest-creds".into());
            args.push(format!("{user}:{password}"));
        }
        None => args.push("--dest-no-creds".into()),
    }
    args.push(source);
    args.push(destination.clone());
    let output = Command::new(SKOPEO)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(io_error("running", SKOPEO))?;
    if !output.status.success() {
        let shown: Vec<String> = args
            .iter()
            .map(|arg| match &options.credentials {
                Some((user, password)) if *arg == format!("{user}:{password}") => {
                    format!("{user}:***")
                }
                _ => arg.clone(),
            })
            .collect();
        return Err(TestkitError::Command {
            command: format!("{SKOPEO} {}", shown.join(" ")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let text = std::fs::read_to_string(&digest_file).map_err(io_error("reading", &digest_file))?;
    let digest = Digest::parse(text.trim()).map_err(|e| TestkitError::Invalid {
        what: "digest",
        message: format!("skopeo wrote {text:?} to {}: {e}", digest_file.display()),
    })?;
    Ok(PushedImage {
        reference: format!("{registry_addr}/{repo}:{tag}"),
        digest,
    })
}

/// Whether the layout's entry for `tag` is an index (or a Docker manifest list).
fn layout_entry_is_index(layout_dir: &Path, tag: &str) -> Result<bool> {
    let path = layout_dir.join("index.json");
    let bytes = std::fs::read(&path).map_err(io_error("reading", &path))?;
    let index: Value = serde_json::from_slice(&bytes).map_err(|e| TestkitError::Invalid {
        what: "image layout",
        message: format!("{}: {e}", path.display()),
    })?;
    let entry = index["manifests"].as_array().and_then(|entries| {
        entries
            .iter()
            .find(|entry| entry["annotations"][REF_NAME_ANNOTATION] == tag)
    });
    let Some(entry) = entry else {
        return Err(TestkitError::Invalid {
            what: "image layout",
            message: format!("{} has no image tagged {tag:?}", path.display()),
        });
    };
    let media_type = entry["mediaType"].as_str().unwrap_or_default();
    Ok(
        media_type.ends_with("image.index.v1+json")
            || media_type.ends_with("manifest.list.v2+json"),
    )
}
