//! `-o type=image`, `-o type=registry` and `--push`: the image in kiln's own image store, and
//! pushed to a registry.
//!
//! `type=registry` is `type=image,push=true` (whatever `push` said), as buildx rewrites it;
//! `--push` and `-t` are applied by [`crate::output_flags`].
//! The attributes are BuildKit's image exporter's: `name`, `push`, `push-by-digest`,
//! `registry.insecure`, `name-canonical`, `dangling-name-prefix`, `unpack` (accepted: the
//! build's snapshots already are the unpacked image), `store` (`store=false` names nothing in
//! the image store), and the compression and media type attributes of the `oci` exporter. An
//! empty boolean value (`push=`) means true, as in BuildKit.
//!
//! The export runs as BuildKit's does, in one vertex `exporting to image`: the image is
//! assembled in the content store, each name is recorded in the image store (`naming to
//! NAME`), then pushed (`pushing layers`, `pushing manifest for NAME@DIGEST`). Blobs are pushed
//! four at a time; each is first checked with `HEAD` (nothing is sent when the repository has
//! it), then mounted from the repositories of the same registry the base images came from,
//! and only then uploaded. The manifest goes last. A push that fails leaves the built result
//! and the image-store record in place, so building again finds everything cached and pushes
//! only what the registry still lacks.
//!
//! Registry TLS: the CAs of `/etc/docker/certs.d/<host[:port]>/*.crt` are trusted, as Docker
//! does; the environment variable `KILN_CERTS_D` names another certificates directory (tests
//! use it). `registry.insecure=true` reaches the registries of the output's names as BuildKit
//! does: over HTTPS without verifying the certificate (nor its CAs from the certificates
//! directory), falling back to plain HTTP when HTTPS does not work for the registry (decided
//! once per registry, on first use, by `kiln_registry`).
//! Credentials come from Docker's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use futures::stream::{StreamExt as _, TryStreamExt as _};
use kiln_oci::{Digest, Reference};
use kiln_progress::{Event, ProgressSink};
use kiln_registry::{BlobPushed, BlobSource, Pusher as _, RegistryClient, RegistryConfig};

use crate::attrs::flag;
use crate::image_attrs::{ImageFormat, ImageOutput, parse_image_attrs};

/// The environment variable naming Docker's certificates directory for registries
/// (`<dir>/<host[:port]>/*.crt`); unset means `/etc/docker/certs.d`.
pub const CERTS_DIR_ENV: &str = "KILN_CERTS_D";

/// How many blobs are pushed at once.
const PUSH_CONCURRENCY: usize = 4;

/// A `type=image` (or `type=registry`) output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOutput {
    /// The image: names, compression, media types (Docker's unless `oci-mediatypes=true`).
    pub image: ImageOutput,
    /// `push=true`: push the image to the registry of each name.
    pub push: bool,
    /// `push-by-digest=true`: push the manifest by digest, without the tag.
    pub push_by_digest: bool,
    /// `registry.insecure=true`: reach the registries of the names over HTTPS without
    /// certificate verification, or over plain HTTP when HTTPS does not work for them.
    pub insecure: bool,
    /// `name-canonical=true`: also name the image `NAME@DIGEST` in the image store.
    pub name_canonical: bool,
    /// `dangling-name-prefix=PREFIX`: without a name, name the image `PREFIX@DIGEST`.
    pub dangling_prefix: Option<String>,
    /// `unpack=true` (accepted; kiln's snapshots are the unpacked image already).
    pub unpack: bool,
    /// `store=false`: record nothing in the image store.
    pub store: bool,
}

/// Parses the attributes (`type` removed) of an output of type `image` or `registry`.
pub fn parse(kind: &str, mut attrs: BTreeMap<String, String>) -> Result<StoreOutput, String> {
    if let Some(dest) = attrs.remove("dest") {
        return Err(format!(
            "output {kind} does not write files: dest={dest} is not supported (use type=oci or type=docker for a tarball)"
        ));
    }
    let push = flag(&mut attrs, "push", false)?;
    // buildx turns `registry` into `image` with `push=true`, whatever `push` said.
    let push = kind == "registry" || push;
    let push_by_digest = flag(&mut attrs, "push-by-digest", false)?;
    let insecure = flag(&mut attrs, "registry.insecure", false)?;
    let name_canonical = flag(&mut attrs, "name-canonical", false)?;
    let unpack = flag(&mut attrs, "unpack", false)?;
    let store = flag(&mut attrs, "store", true)?;
    let dangling_prefix = attrs
        .remove("dangling-name-prefix")
        .filter(|p| !p.is_empty());
    // Any other attribute is a shared image attribute or an error.
    let image = parse_image_attrs(kind, ImageFormat::Docker, attrs)?;
    Ok(StoreOutput {
        image,
        push,
        push_by_digest,
        insecure,
        name_canonical,
        dangling_prefix,
        unpack,
        store,
    })
}

/// The registry configuration of this process: Docker's certificates directory, or the one
/// [`CERTS_DIR_ENV`] names.
pub fn registry_config() -> RegistryConfig {
    RegistryConfig {
        certs_dir: std::env::var_os(CERTS_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(Into::into),
        ..RegistryConfig::default()
    }
}

/// What an image-store export made, for `--metadata-file` and `--iidfile`.
pub struct Exported {
    /// The manifest's descriptor.
    pub descriptor: kiln_registry::Descriptor,
    /// The config digest (the image id).
    pub config: Digest,
    /// The full names given (`docker.io/library/app:1`).
    pub names: Vec<String>,
}

/// Sends the statuses of one vertex.
struct Statuses<'a> {
    sink: &'a Arc<dyn ProgressSink>,
    id: String,
}

impl Statuses<'_> {
    fn send(&self, task: String, current: u64, total: Option<u64>, completed: bool) {
        self.sink.send(Event::Status {
            id: self.id.clone(),
            task,
            current,
            total,
            completed,
        });
    }

    fn done(&self, task: String) {
        self.send(task, 0, None, true);
    }
}

/// `-o type=image|registry`: assembles the image, names it in the image store and pushes it,
/// in the vertex `exporting to image`.
pub async fn export(
    worker: &kiln_worker::Worker,
    result: &kiln_worker::Ref,
    config: &kiln_oci::Image,
    facts: &crate::annotations::BuildFacts,
    out: &StoreOutput,
    sink: &Arc<dyn ProgressSink>,
) -> anyhow::Result<Exported> {
    let base_images = facts.base_images.as_slice();
    // Manifest annotations, SOURCE_DATE_EPOCH and buildinfo, as for the oci exporter (a
    // single-platform image has no index, so index annotations have nowhere to go).
    let prepared = out.image.content.prepare_for(facts, config)?;
    let id = "exporting to image".to_string();
    let (opts, mut warnings) = out.image.worker_options();
    warnings.extend(prepared.warnings.iter().cloned());
    for message in warnings {
        sink.send(Event::Warning {
            id: String::new(),
            message,
        });
    }
    let names: Vec<String> = out
        .image
        .names
        .iter()
        .map(|n| {
            kiln_export::ImageName::parse(n)
                .map(|n| n.full())
                .map_err(|e| anyhow::anyhow!("invalid name {n:?}: {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let status = Statuses {
        sink,
        id: id.clone(),
    };
    let work = async {
        let made = worker
            .export_image_with(result, config, &opts, &prepared.meta)
            .await?;
        status.done("exporting layers".to_string());
        for digest in &made.stats.created {
            status.done(format!("created layer {digest}"));
        }
        let image = made.image;
        status.done(format!("exporting manifest {}", image.manifest.digest));
        status.done(format!("exporting config {}", image.config.digest));

        // The names: those given, else `PREFIX@DIGEST` for an unnamed image.
        let mut targets = names.clone();
        let mut canonical = out.name_canonical;
        if targets.is_empty()
            && let Some(prefix) = &out.dangling_prefix
        {
            targets.push(format!("{prefix}@{}", image.manifest.digest));
            canonical = false;
        }
        let mut client = None;
        for target in &targets {
            if out.store {
                let task = format!("naming to {target}");
                status.send(task.clone(), 0, None, false);
                let mut record = vec![target.clone()];
                if canonical && !target.contains('@') {
                    record.push(format!("{target}@{}", image.manifest.digest));
                }
                tokio::task::block_in_place(|| {
                    record
                        .iter()
                        .try_for_each(|n| worker.name_image(n, &image).map(|_| ()))
                })
                .with_context(|| format!("naming the image {target}"))?;
                status.done(task);
            }
            if out.push {
                if client.is_none() {
                    client = Some(push_client(&targets, out.insecure)?);
                }
                let Some(client) = client.as_ref() else {
                    continue;
                };
                push(
                    client,
                    worker.content(),
                    &image,
                    target,
                    out.push_by_digest,
                    base_images,
                    &status,
                )
                .await
                .with_context(|| format!("failed to push {target}"))?;
            }
        }
        anyhow::Ok(image)
    };
    let image = crate::steps::step(sink, &id, work).await?;
    Ok(Exported {
        descriptor: image.manifest.clone(),
        config: image.config.digest.clone(),
        names,
    })
}

/// The registry client for pushing: when `registry.insecure=true`, the registries of
/// `targets` are insecure ([`RegistryConfig::insecure`]: HTTPS without certificate
/// verification, else plain HTTP), as BuildKit's push marks them both insecure and plain HTTP.
fn push_client(targets: &[String], insecure: bool) -> anyhow::Result<RegistryClient> {
    let mut config = registry_config();
    if insecure {
        for t in targets {
            if let Ok(r) = Reference::parse(t) {
                config.insecure.push(r.domain().to_string());
            }
        }
    }
    Ok(RegistryClient::new(config)?)
}

/// Pushes `image` as `target`: the config and layers (at most [`PUSH_CONCURRENCY`] at once,
/// each skipped when present, else mounted from a base image's repository, else uploaded),
/// then the manifest, by tag or (`by_digest`) by digest.
async fn push(
    client: &RegistryClient,
    content: &kiln_content::ContentStore,
    image: &kiln_export::ExportedImage,
    target: &str,
    by_digest: bool,
    base_images: &[kiln_frontend_dockerfile::BaseImage],
    status: &Statuses<'_>,
) -> anyhow::Result<()> {
    let reference = Reference::parse(target)?;
    let repository = reference.clone().without_tag_or_digest();
    let mount_from: Vec<Reference> = base_images
        .iter()
        .filter_map(|b| Reference::parse(&b.reference).ok())
        .map(Reference::without_tag_or_digest)
        .collect();
    let blobs: Vec<&kiln_registry::Descriptor> = image
        .blobs()
        .into_iter()
        .filter(|d| d.digest != image.manifest.digest)
        .collect();

    let layers_task = "pushing layers".to_string();
    status.send(layers_task.clone(), 0, None, false);
    futures::stream::iter(blobs.into_iter().map(|desc| {
        let repository = &repository;
        let mount_from = &mount_from;
        async move {
            let task = desc.digest.to_string();
            let size = desc.size;
            let progress = |sent: u64| status.send(task.clone(), sent, Some(size), false);
            let pushed = client
                .push_blob(
                    repository,
                    desc,
                    BlobSource::File(content.path(&desc.digest)),
                    mount_from,
                    &progress,
                )
                .await?;
            let shown = match pushed {
                BlobPushed::Present => format!("{task} exists"),
                BlobPushed::Mounted { from } => format!("{task} mounted from {from}"),
                BlobPushed::Uploaded => task.clone(),
            };
            status.send(shown, size, Some(size), true);
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(PUSH_CONCURRENCY)
    .try_collect::<Vec<()>>()
    .await?;
    status.done(layers_task);

    let manifest_ref = if by_digest || reference.digest().is_some() {
        repository
            .clone()
            .with_digest(image.manifest.digest.clone())
    } else {
        reference.clone().with_default_tag()
    };
    let shown = if by_digest {
        repository.to_string()
    } else {
        reference.clone().without_tag_or_digest_keeping_tag()
    };
    let task = format!("pushing manifest for {shown}@{}", image.manifest.digest);
    status.send(task.clone(), 0, None, false);
    client
        .push_manifest(
            &manifest_ref,
            &image.manifest.media_type,
            &image.manifest_json,
        )
        .await?;
    status.done(task);
    Ok(())
}

/// The `name[:tag]` of a reference, without its digest.
trait KeepTag {
    fn without_tag_or_digest_keeping_tag(self) -> String;
}

impl KeepTag for Reference {
    fn without_tag_or_digest_keeping_tag(self) -> String {
        match self.tag() {
            Some(t) => format!("{}:{t}", self.name()),
            None => self.name(),
        }
    }
}
