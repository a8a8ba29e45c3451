//! Turning build flags into converter options, shared by `build` and `debug dump-llb`: build
//! arguments, labels, named contexts, the platform, no-cache settings and `.dockerignore`.

use anyhow::Context as _;
use kiln_frontend_dockerfile::{ConvertOptions, NamedContext, NoCache};
use std::collections::BTreeMap;
use std::path::Path;

/// The flags that shape a conversion.
pub struct BuildInputs<'a> {
    /// The build context directory.
    pub context: &'a Path,
    /// The Dockerfile (`-` for stdin).
    pub dockerfile: &'a Path,
    /// The name errors show for the Dockerfile.
    pub name: &'a str,
    /// `--target`.
    pub target: Option<&'a str>,
    /// `--build-arg` values.
    pub build_args: &'a [String],
    /// `--label` values.
    pub labels: &'a [String],
    /// `--build-context` values.
    pub build_contexts: &'a [String],
    /// `--platform` (one platform).
    pub platform: Option<&'a str>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--no-cache-filter` values.
    pub no_cache_filter: &'a [String],
    /// `--pull`.
    pub pull: bool,
}

/// `KEY=VALUE` build arguments; `KEY` alone takes the value from the environment and is dropped
/// when the variable is unset, as buildx does.
pub fn build_args(values: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for kv in values {
        match kv.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(kv) {
                    out.insert(kv.clone(), v);
                }
            }
        }
    }
    out
}

/// The converter options for a build.
pub fn convert_options(i: &BuildInputs<'_>, session_id: &str) -> anyhow::Result<ConvertOptions> {
    let mut labels = BTreeMap::new();
    for kv in i.labels {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let target_platform = match i.platform {
        None => None,
        Some(p) if p.contains(',') => {
            anyhow::bail!(
                "building for several platforms at once is not supported by kiln yet: {p:?}"
            )
        }
        Some(p) => {
            Some(kiln_oci::Platform::parse(p).with_context(|| format!("invalid platform {p:?}"))?)
        }
    };
    let mut named_contexts = BTreeMap::new();
    for kv in i.build_contexts {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("invalid --build-context {kv:?}: expected NAME=VALUE"))?;
        let mut ctx = NamedContext::parse(v, k).map_err(|e| anyhow::anyhow!(e))?;
        if let NamedContext::OciLayout { .. } = ctx {
            // The tag resolved to a digest in the layout, lent under a store id.
            ctx = crate::oci_layout::named_context(v)?;
        }
        if let NamedContext::Local { excludes, .. } = &mut ctx {
            *excludes = read_dockerignore(Path::new(v), None)?;
        }
        named_contexts.insert(k.to_string(), ctx);
    }
    let no_cache = if i.no_cache {
        NoCache::All
    } else if !i.no_cache_filter.is_empty() {
        NoCache::Stages(i.no_cache_filter.to_vec())
    } else {
        NoCache::None
    };
    let dockerfile_for_ignore = (i.dockerfile.as_os_str() != "-").then_some(i.dockerfile);
    Ok(ConvertOptions {
        dockerfile_name: i.name.to_string(),
        target: i.target.map(str::to_string),
        build_args: build_args(i.build_args),
        labels,
        target_platform,
        named_contexts,
        no_cache,
        image_resolve_mode: if i.pull {
            kiln_llb::ResolveMode::ForcePull
        } else {
            kiln_llb::ResolveMode::Default
        },
        session_id: session_id.to_string(),
        context_excludes: read_dockerignore(i.context, dockerfile_for_ignore)?,
        ..ConvertOptions::default()
    })
}

/// The `.dockerignore` patterns of a context (or the Dockerfile's own ignore file).
pub fn read_dockerignore(context: &Path, dockerfile: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let Some(path) =
        kiln_dockerignore::ignore_file_for(context, dockerfile.unwrap_or(Path::new("")))
    else {
        return Ok(Vec::new());
    };
    let content = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    kiln_dockerignore::read_ignore_file(&content)
        .with_context(|| format!("reading {}", path.display()))
}
