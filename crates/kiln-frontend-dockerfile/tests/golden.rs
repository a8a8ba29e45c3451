//! Golden tests of the Dockerfile → LLB conversion.
//!
//! Each directory under `tests/golden/` (except `images.json`, the fake registry) is one case:
//! a `Dockerfile`, optionally an `options.json` (target, build args, platform, labels, named
//! contexts, no-cache, .dockerignore patterns), and the expected result as an insta snapshot
//! in `tests/snapshots/`: the LLB graph (one op per line, as `kiln debug dump-llb` prints it),
//! the image config and the build-check warnings, or the error.
//!
//! To add a case, add a directory and run `INSTA_UPDATE=always cargo test -p
//! kiln-frontend-dockerfile --test golden`, then review the new snapshot.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};

use kiln_frontend_dockerfile::{
    ConvertOptions, ImageResolver, NamedContext, NoCache, ResolveError, ResolvedImage, convert,
};
use kiln_llb::ResolveMode;
use kiln_oci::{Digest, Image, Platform};

/// The fake registry: `images.json`.
struct FakeRegistry {
    images: BTreeMap<String, (Digest, Image)>,
}

impl FakeRegistry {
    fn load(path: &Path) -> FakeRegistry {
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&std::fs::read(path).expect("images.json"))
                .expect("images.json is JSON");
        let images = raw
            .into_iter()
            .filter(|(k, _)| !k.starts_with("//"))
            .map(|(k, v)| {
                let digest =
                    Digest::parse(v["digest"].as_str().expect("digest")).expect("valid digest");
                let config: Image =
                    serde_json::from_value(v["config"].clone()).expect("valid config");
                (k, (digest, config))
            })
            .collect();
        FakeRegistry { images }
    }
}

impl ImageResolver for FakeRegistry {
    fn resolve(
        &self,
        reference: &str,
        _platform: &Platform,
        _mode: ResolveMode,
    ) -> impl Future<Output = Result<ResolvedImage, ResolveError>> + Send {
        let found = self.images.get(reference).cloned();
        let reference = reference.to_string();
        async move {
            let (digest, config) = found.ok_or_else(|| ResolveError {
                message: format!("failed to resolve source metadata for {reference}: not found"),
            })?;
            Ok(ResolvedImage {
                reference,
                digest: Some(digest),
                config: Some(config),
            })
        }
    }

    /// Images of OCI layouts are listed as `oci-layout://STORE/REFERENCE`.
    fn resolve_oci_layout(
        &self,
        _name: &str,
        store: &str,
        reference: &str,
        _platform: &Platform,
    ) -> impl Future<Output = Result<ResolvedImage, ResolveError>> + Send {
        let key = format!("oci-layout://{store}/{reference}");
        let found = self.images.get(&key).cloned();
        let reference = reference.to_string();
        async move {
            let (digest, config) = found.ok_or_else(|| ResolveError {
                message: format!("{key}: not found"),
            })?;
            Ok(ResolvedImage {
                reference,
                digest: Some(digest),
                config: Some(config),
            })
        }
    }
}

/// `options.json` of a case.
#[derive(Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CaseOptions {
    target: Option<String>,
    build_args: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    platform: Option<String>,
    build_platform: Option<String>,
    multi_platform: bool,
    build_contexts: BTreeMap<String, String>,
    no_cache: Option<Vec<String>>,
    pull: bool,
    dockerignore: Vec<String>,
}

fn options(dir: &Path) -> ConvertOptions {
    let path = dir.join("options.json");
    let o: CaseOptions = if path.exists() {
        serde_json::from_slice(&std::fs::read(&path).expect("options.json"))
            .expect("valid options.json")
    } else {
        CaseOptions::default()
    };
    let amd64 = Platform::parse("linux/amd64").expect("platform");
    ConvertOptions {
        dockerfile_name: "Dockerfile".to_string(),
        target: o.target,
        build_args: o.build_args,
        labels: o.labels,
        // As buildx does, send the target platform explicitly (linux/amd64 by default).
        target_platform: Some(
            o.platform
                .map(|p| Platform::parse(&p).expect("platform"))
                .unwrap_or(amd64.clone()),
        ),
        build_platforms: vec![
            o.build_platform
                .map(|p| Platform::parse(&p).expect("platform"))
                .unwrap_or(amd64),
        ],
        multi_platform: o.multi_platform,
        named_contexts: o
            .build_contexts
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    NamedContext::parse(v, k).expect("valid build context"),
                )
            })
            .collect(),
        no_cache: match o.no_cache {
            None => NoCache::None,
            Some(v) if v.is_empty() => NoCache::All,
            Some(v) => NoCache::Stages(v),
        },
        image_resolve_mode: if o.pull {
            ResolveMode::ForcePull
        } else {
            ResolveMode::Default
        },
        session_id: "test-session".to_string(),
        context_excludes: o.dockerignore,
        ..ConvertOptions::default()
    }
}

/// Converts one case and renders everything the snapshot pins.
fn render(dir: &Path, registry: &FakeRegistry) -> String {
    let dockerfile = std::fs::read(dir.join("Dockerfile")).expect("Dockerfile");
    let opts = options(dir);
    let mut out = String::new();
    match futures::executor::block_on(convert(&dockerfile, &opts, registry)) {
        Ok(c) => {
            out.push_str("# llb\n");
            for op in kiln_llb::dump_json(&c.definition).expect("dump") {
                out.push_str(&serde_json::to_string(&op).expect("json"));
                out.push('\n');
            }
            out.push_str("# image config\n");
            out.push_str(&serde_json::to_string_pretty(&c.image).expect("json"));
            out.push('\n');
            if !c.warnings.is_empty() {
                out.push_str("# warnings\n");
                for w in &c.warnings {
                    out.push_str(&format!(
                        "{} (lines {}-{}): {}\n",
                        w.rule, w.lines.start, w.lines.end, w.message
                    ));
                }
            }
            if !c.base_images.is_empty() {
                out.push_str("# base images\n");
                for b in &c.base_images {
                    out.push_str(&format!("{} -> {} ({})\n", b.name, b.reference, b.platform));
                }
            }
        }
        Err(e) => {
            out.push_str("# error\n");
            out.push_str(&e.message);
            out.push('\n');
            for l in &e.lines {
                out.push_str(&format!("at lines {}-{}\n", l.start, l.end));
            }
        }
    }
    out
}

/// The case directories: `tests/golden/*` and the repository's `examples/*`.
fn cases() -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = Vec::new();
    for root in [
        manifest.join("tests/golden"),
        manifest.join("../../examples"),
    ] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&root)
            .expect("case directory")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.join("Dockerfile").is_file())
            .collect();
        found.sort();
        dirs.extend(found);
    }
    dirs
}

/// The snapshot name of a case (`example-<dir>` for the repository's examples).
fn case_name(dir: &Path) -> String {
    let name = dir
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    if dir
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|p| p == "examples")
    {
        format!("example-{name}")
    } else {
        name
    }
}

#[test]
fn golden() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let registry = FakeRegistry::load(&root.join("images.json"));
    let cases = cases();
    assert!(
        cases.len() >= 30,
        "expected at least 30 golden cases, found {}",
        cases.len()
    );
    for dir in cases {
        let name = case_name(&dir);
        let rendered = render(&dir, &registry);
        insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false, input_file => dir.join("Dockerfile") }, {
            insta::assert_snapshot!(name, rendered);
        });
    }
}

/// The same inputs always give the same bytes (no randomness, no iteration-order effects).
#[test]
fn conversion_is_deterministic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let registry = FakeRegistry::load(&root.join("images.json"));
    for dir in cases() {
        assert_eq!(
            render(&dir, &registry),
            render(&dir, &registry),
            "{}",
            dir.display()
        );
    }
}
